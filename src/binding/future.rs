//! [`ResponseFuture`]: the inner call, unboxed on the matching path.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};

use bytes::Bytes;
use futures::{TryFuture, future::BoxFuture};
use http::{Response, Version};
use http_body::Body;
use http_body_util::Full;
use pin_project_lite::pin_project;

use crate::{ResponseBody, protocol::early::EarlyAnswer};

type Answer<B, E> = Result<Response<ResponseBody<B>>, E>;

/// Work to do once the inner service answered (binding a new session, tombstoning on the owner's
/// `DELETE`), behind a box so the future does not carry the service's and store's types.
pub(crate) trait AfterResponse<B, E>: Send {
    /// Whether the response needs this work (the rest passes through untouched).
    fn applies_to(&self, response: &Response<B>) -> bool;
    /// Does the work if the response needs it (see [`applies_to`](Self::applies_to)), else
    /// passes the response through untouched; the response leaves the layer when it is done.
    fn run(self: Box<Self>, response: Response<B>) -> Then<B, E>;
}

/// What [`AfterResponse::run`] gives back: the answer at once, or work to wait for.
pub(crate) enum Then<B, E> {
    Now(Answer<B, E>),
    Later(BoxFuture<'static, Answer<B, E>>),
}

pin_project! {
    /// Response future of [`SessionBinding`](crate::SessionBinding): `F` is the inner service's
    /// future, `B` its response body.
    ///
    /// A request whose session matches, on a store that answers synchronously (such as
    /// [`MemoryStore`](crate::store::MemoryStore)), is just the inner future: no allocation. Store
    /// round trips and the rare paths (binding a new session, refusing a caller) run in a boxed
    /// future.
    ///
    /// ```
    /// # #[cfg(feature = "memory")] {
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use mcp_session_binding::{ResponseFuture, SessionBindingLayer};
    /// use tower::{Layer, Service, ServiceExt};
    ///
    /// let mut service = SessionBindingLayer::new().layer(tower::service_fn(|_: http::Request<String>| async {
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    /// }));
    /// // A request without a session, whose answer creates none: passed through.
    /// let future: ResponseFuture<_, String> = service.ready().await.unwrap().call(http::Request::new(String::new()));
    /// assert_eq!(future.await.unwrap().status(), http::StatusCode::OK);
    /// # });
    /// # }
    /// ```
    pub struct ResponseFuture<F, B>
    where
        F: TryFuture<Ok = Response<B>>,
    {
        #[pin]
        state: State<F, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B>
    where
        F: TryFuture<Ok = Response<B>>,
    {
        Inner {
            #[pin]
            future: F,
            // Boxed: the work after a response is rare (a new session, the owner's DELETE), and
            // inline it would make every response future, moved at each layer of the stack, a
            // few hundred bytes larger.
            after: Option<Box<dyn AfterResponse<B, F::Error>>>,
        },
        Boxed {
            future: BoxFuture<'static, Answer<B, F::Error>>,
        },
        // The layer's own answer, the request body not read: drained, or `Connection: close`.
        Early {
            answer: EarlyAnswer,
        },
    }
}

impl<F, B> ResponseFuture<F, B>
where
    F: TryFuture<Ok = Response<B>>,
{
    pub(crate) fn inner(future: F, after: Option<Box<dyn AfterResponse<B, F::Error>>>) -> Self {
        Self {
            state: State::Inner { future, after },
        }
    }

    pub(crate) fn boxed(future: BoxFuture<'static, Answer<B, F::Error>>) -> Self {
        Self {
            state: State::Boxed { future },
        }
    }

    /// The layer's `answer` to a request of `version` whose `body` was not read.
    pub(crate) fn early<ReqB>(version: Version, body: ReqB, answer: Response<Full<Bytes>>) -> Self
    where
        ReqB: Body + Send + 'static,
        ReqB::Data: Send,
    {
        Self {
            state: State::Early {
                answer: EarlyAnswer::new(version, body, answer),
            },
        }
    }
}

impl<F, B> Future for ResponseFuture<F, B>
where
    F: TryFuture<Ok = Response<B>>,
{
    type Output = Answer<B, F::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Inner { future, after } => {
                    let response = ready!(future.try_poll(cx))?;
                    // `run` decides itself whether the response needs the work: one call.
                    match after.take() {
                        Some(after) => match after.run(response) {
                            Then::Now(answer) => return Poll::Ready(answer),
                            Then::Later(future) => state.set(State::Boxed { future }),
                        },
                        None => return Poll::Ready(Ok(response.map(ResponseBody::inner))),
                    }
                }
                StateProj::Boxed { future } => return future.as_mut().poll(cx),
                StateProj::Early { answer } => {
                    let answer = ready!(Pin::new(answer).poll(cx));
                    return Poll::Ready(Ok(answer.map(ResponseBody::answer)));
                }
            }
        }
    }
}

impl<F, B> std::fmt::Debug for ResponseFuture<F, B>
where
    F: TryFuture<Ok = Response<B>>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
