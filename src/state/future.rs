//! [`ResponseFuture`]: the response future of [`RequestState`](super::RequestState).

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use futures::future::BoxFuture;
use http::Response;

use crate::ResponseBody;

/// Response future of [`RequestState`](super::RequestState): the inner service's response, its
/// `input_required` state sealed on the way out, or the layer's own answer (a refused state,
/// an unreadable body). Opaque, so that how the layer waits can change without a breaking change.
pub struct ResponseFuture<B, E> {
    inner: BoxFuture<'static, Result<Response<ResponseBody<B>>, E>>,
}

impl<B, E> ResponseFuture<B, E> {
    pub(super) fn new(
        inner: impl Future<Output = Result<Response<ResponseBody<B>>, E>> + Send + 'static,
    ) -> Self {
        Self {
            inner: Box::pin(inner),
        }
    }
}

impl<B, E> Future for ResponseFuture<B, E> {
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<B, E> fmt::Debug for ResponseFuture<B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
