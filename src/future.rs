//! [`ResponseFuture`]: the inner call, unboxed on the matching path.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};

use bytes::Bytes;
use futures::future::BoxFuture;
use http::{Request, Response};
use http_body_util::Full;
use pin_project_lite::pin_project;
use tower::Service;

use crate::{ResponseBody, after::After, store::BindingStore};

type Answer<ResBody, E> = Result<Response<ResponseBody<ResBody>>, E>;

pin_project! {
    /// Response future of [`SessionBinding`](crate::SessionBinding).
    ///
    /// A request whose session matches, on a store that answers synchronously (such as
    /// [`MemoryStore`](crate::store::MemoryStore)), is just the inner future: no allocation. Store
    /// round trips and the rare paths (binding a new session, refusing a caller) run in a boxed
    /// future.
    pub struct ResponseFuture<S, St, ReqBody, ResBody>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    {
        #[pin]
        state: State<S, St, ReqBody, ResBody>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, St, ReqBody, ResBody>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    {
        Inner {
            #[pin]
            future: S::Future,
            // Boxed: the work after a response is rare (a new session, the owner's DELETE), and
            // inline it would make every response future, moved at each layer of the stack, a
            // few hundred bytes larger.
            after: Option<Box<After<S, St>>>,
        },
        Boxed {
            future: BoxFuture<'static, Answer<ResBody, S::Error>>,
        },
        Ready {
            response: Option<Response<ResponseBody<ResBody>>>,
        },
    }
}

impl<S, St, ReqBody, ResBody> ResponseFuture<S, St, ReqBody, ResBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    pub(crate) fn inner(future: S::Future, after: Option<After<S, St>>) -> Self {
        Self {
            state: State::Inner {
                future,
                after: after.map(Box::new),
            },
        }
    }

    pub(crate) fn boxed(future: BoxFuture<'static, Answer<ResBody, S::Error>>) -> Self {
        Self {
            state: State::Boxed { future },
        }
    }

    pub(crate) fn answer(response: Response<Full<Bytes>>) -> Self {
        Self {
            state: State::Ready {
                response: Some(response.map(ResponseBody::answer)),
            },
        }
    }
}

impl<S, St, ReqBody, ResBody> Future for ResponseFuture<S, St, ReqBody, ResBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send,
    St: BindingStore + Clone,
    ReqBody: Default + Send + 'static,
    ResBody: Send + 'static,
{
    type Output = Answer<ResBody, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Inner { future, after } => {
                    let response = ready!(future.poll(cx))?;
                    match after.take() {
                        Some(after) if after.applies_to(&response) => {
                            let future = (*after).run(response);
                            state.set(State::Boxed { future });
                        }
                        _ => return Poll::Ready(Ok(response.map(ResponseBody::inner))),
                    }
                }
                StateProj::Boxed { future } => return future.as_mut().poll(cx),
                StateProj::Ready { response } => {
                    return Poll::Ready(Ok(response
                        .take()
                        .expect("ResponseFuture polled after completion")));
                }
            }
        }
    }
}

impl<S, St, ReqBody, ResBody> std::fmt::Debug for ResponseFuture<S, St, ReqBody, ResBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
