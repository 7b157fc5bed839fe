//! The response body: the inner service's body untouched, or a rejection's JSON.

use std::{
    fmt,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

pin_project! {
    /// Response body of [`JwtAuth`](super::JwtAuth): the inner service's body, streamed as it
    /// is (SSE flows frame by frame), or the small JSON body of a rejection.
    ///
    /// ```
    /// use http_body::Body;
    /// use mcp_session_binding::jwt::JwtBody;
    ///
    /// let body = JwtBody::new(http_body_util::Full::new(bytes::Bytes::from_static(b"hi")));
    /// assert_eq!(body.size_hint().exact(), Some(2));
    /// ```
    pub struct JwtBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Inner { #[pin] body: B },
        Rejection { data: Option<Bytes> },
    }
}

impl<B> JwtBody<B> {
    /// Wraps the inner service's body.
    ///
    /// ```
    /// use http_body::Body;
    /// use mcp_session_binding::jwt::JwtBody;
    ///
    /// let body = JwtBody::new(http_body_util::Full::new(bytes::Bytes::from_static(b"{}")));
    /// assert_eq!(body.size_hint().exact(), Some(2));
    /// ```
    pub fn new(body: B) -> Self {
        Self {
            kind: Kind::Inner { body },
        }
    }

    pub(crate) fn rejection(data: Bytes) -> Self {
        Self {
            kind: Kind::Rejection {
                data: (!data.is_empty()).then_some(data),
            },
        }
    }

    /// Whether this is a rejection's body rather than the inner service's.
    ///
    /// ```
    /// use mcp_session_binding::jwt::JwtBody;
    /// assert!(!JwtBody::new(http_body_util::Empty::<bytes::Bytes>::new()).is_rejection());
    /// ```
    pub fn is_rejection(&self) -> bool {
        matches!(self.kind, Kind::Rejection { .. })
    }
}

impl<B> Body for JwtBody<B>
where
    B: Body,
    B::Data: From<Bytes>,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match self.project().kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx),
            KindProj::Rejection { data } => {
                Poll::Ready(data.take().map(|data| Ok(Frame::data(data.into()))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Rejection { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Rejection { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.remaining() as u64))
            }
        }
    }
}

impl<B> fmt::Debug for JwtBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Inner { .. } => f.write_str("JwtBody::Inner"),
            Kind::Rejection { data } => f
                .debug_struct("JwtBody::Rejection")
                .field("len", &data.as_ref().map_or(0, Bytes::len))
                .finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    #[tokio::test]
    async fn rejection_body_yields_its_bytes_once() {
        let body: JwtBody<Full<Bytes>> = JwtBody::rejection(Bytes::from_static(b"{}"));
        assert!(body.is_rejection());
        assert_eq!(body.size_hint().exact(), Some(2));
        assert_eq!(body.collect().await.unwrap().to_bytes(), "{}");
        let empty: JwtBody<Full<Bytes>> = JwtBody::rejection(Bytes::new());
        assert!(empty.is_end_stream());
    }

    #[tokio::test]
    async fn inner_body_passes_through() {
        let body = JwtBody::new(Full::new(Bytes::from_static(b"data: x\n\n")));
        assert!(!body.is_rejection());
        assert_eq!(body.collect().await.unwrap().to_bytes(), "data: x\n\n");
    }
}
