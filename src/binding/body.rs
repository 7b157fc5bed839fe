//! The response body: the inner service's body, untouched (or watched and tagged, for a
//! session's SSE answer), or the layer's own answer.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use pin_project_lite::pin_project;

pin_project! {
    /// Response body of [`SessionBinding`](crate::SessionBinding) and
    /// [`Origin`](crate::origin::Origin): the inner body streamed as it is (SSE
    /// included), or a small JSON answer made by the layer.
    ///
    /// ```
    /// use http_body::Body;
    /// use mcp_session_binding::ResponseBody;
    ///
    /// let body: ResponseBody<http_body_util::Empty<bytes::Bytes>> = ResponseBody::inner(Default::default());
    /// assert!(body.is_end_stream());
    /// ```
    #[derive(Debug)]
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    #[derive(Debug)]
    enum Kind<B> {
        Inner { #[pin] body: B },
        Answer { body: Full<Bytes> },
        Scanned { #[pin] body: B, scan: Box<crate::binding::tasks::TaskScan> },
        Session { #[pin] body: B, stream: Pin<Box<crate::binding::stream::SessionStream>> },
    }
}

impl<B> ResponseBody<B> {
    /// Wraps an inner body.
    ///
    /// ```
    /// use http_body::Body;
    /// use mcp_session_binding::ResponseBody;
    ///
    /// let body = ResponseBody::inner(http_body_util::Full::new(bytes::Bytes::from_static(b"{}")));
    /// assert_eq!(body.size_hint().exact(), Some(2));
    /// ```
    pub fn inner(body: B) -> Self {
        Self {
            kind: Kind::Inner { body },
        }
    }

    pub(crate) fn scanned(body: B, scan: Box<crate::binding::tasks::TaskScan>) -> Self {
        Self {
            kind: Kind::Scanned { body, scan },
        }
    }

    /// An SSE answer of a bound session: watched (ended early once the session is no longer
    /// bound to its caller), its event ids tagged, or both.
    pub(crate) fn session(
        body: B,
        stream: Pin<Box<crate::binding::stream::SessionStream>>,
    ) -> Self {
        Self {
            kind: Kind::Session { body, stream },
        }
    }

    pub(crate) fn answer(body: Full<Bytes>) -> Self {
        Self {
            kind: Kind::Answer { body },
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.project().kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx),
            KindProj::Answer { body } => match Pin::new(body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
                Poll::Ready(Some(Err(never))) => match never {},
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
            KindProj::Scanned { body, scan } => scan.poll_frame(body, cx),
            KindProj::Session { body, stream } => stream.as_mut().poll_frame(body, cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Answer { body } => body.is_end_stream(),
            Kind::Scanned { scan, .. } => scan.is_end_stream(),
            Kind::Session { body, stream } => stream.is_end_stream(body),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Answer { body } => body.size_hint(),
            // A scanned or tagged answer may be rewritten, a watched stream may end early: their
            // length is not known in advance.
            Kind::Scanned { .. } | Kind::Session { .. } => SizeHint::default(),
        }
    }
}
