//! [`ResponseBody`], the response body of every middleware in the crate: the inner service's
//! body untouched, the inner body scanned or watched on its way out, or a layer's own answer.

use std::{
    fmt,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use pin_project_lite::pin_project;

use super::scan::{Inspect, Scan};

pin_project! {
    /// Response body of every middleware in this crate: the inner service's body streamed as it
    /// is (SSE flows frame by frame), or a small JSON answer made by the layer.
    ///
    /// An inner body that a layer reads on its way out (the task records of a `tools/call`
    /// answer, a sealed `requestState`, a watched SSE stream) is still passed on frame by
    /// frame; only its length is then unknown in advance ([`Body::size_hint`]).
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Inner { #[pin] body: B },
        Answer { body: Full<Bytes> },
        Scanned { #[pin] body: B, scan: Box<Scan<dyn Inspect>> },
        Watched { #[pin] body: B, watch: Pin<Box<dyn Watch<B>>> },
    }
}

/// What polling a body for its next frame gives.
pub(crate) type NextFrame<B> = Poll<Option<Result<Frame<Bytes>, <B as Body>::Error>>>;

/// Something other than a [`Scan`] that passes the inner body's frames on, and may end the body
/// early: a session's watched and tagged SSE stream.
pub(crate) trait Watch<B>: Send {
    /// The next frame to send, read from `body` as needed.
    fn poll_frame(self: Pin<&mut Self>, body: Pin<&mut B>, cx: &mut Context<'_>) -> NextFrame<B>
    where
        B: Body<Data = Bytes>;

    /// Whether nothing more will be sent.
    fn is_end_stream(&self, body: &B) -> bool
    where
        B: Body;
}

impl<B> ResponseBody<B> {
    /// The inner service's body, untouched.
    pub(crate) fn inner(body: B) -> Self {
        Self {
            kind: Kind::Inner { body },
        }
    }

    /// A layer's own answer.
    pub(crate) fn answer(body: Full<Bytes>) -> Self {
        Self {
            kind: Kind::Answer { body },
        }
    }

    /// The inner body, passed through `scan`.
    pub(crate) fn scanned(body: B, scan: Box<Scan<dyn Inspect>>) -> Self {
        Self {
            kind: Kind::Scanned { body, scan },
        }
    }

    /// The inner body, passed through `watch`.
    pub(crate) fn watched(body: B, watch: Pin<Box<dyn Watch<B>>>) -> Self {
        Self {
            kind: Kind::Watched { body, watch },
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
            KindProj::Watched { body, watch } => watch.as_mut().poll_frame(body, cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Answer { body } => body.is_end_stream(),
            Kind::Scanned { scan, .. } => scan.is_end_stream(),
            Kind::Watched { body, watch } => watch.is_end_stream(body),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Answer { body } => body.size_hint(),
            // A scanned answer may be rewritten, a watched stream may end early: their length is
            // not known in advance.
            Kind::Scanned { .. } | Kind::Watched { .. } => SizeHint::default(),
        }
    }
}

impl<B> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Inner { .. } => "inner",
            Kind::Answer { .. } => "answer",
            Kind::Scanned { .. } => "scanned",
            Kind::Watched { .. } => "watched",
        };
        f.debug_struct("ResponseBody").field("kind", &kind).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn an_answer_yields_its_bytes_once_and_an_inner_body_passes_through() {
        let answer: ResponseBody<Full<Bytes>> = ResponseBody::answer(Full::new("{}".into()));
        assert_eq!(answer.size_hint().exact(), Some(2));
        assert_eq!(answer.collect().await.unwrap().to_bytes(), "{}");
        let empty: ResponseBody<Full<Bytes>> = ResponseBody::answer(Full::new(Bytes::new()));
        assert!(empty.is_end_stream());

        let inner = ResponseBody::inner(Full::new(Bytes::from_static(b"data: x\n\n")));
        assert_eq!(inner.size_hint().exact(), Some(9));
        assert_eq!(inner.collect().await.unwrap().to_bytes(), "data: x\n\n");
    }
}
