//! The response future: a rejection, a pending revocation check, or the inner call.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use http::{Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use tower::Service;

use crate::{ResponseBody, protocol::early::EarlyAnswer};

use super::{
    JwtRejection,
    admit::{Admission, ReplayFuture, admit},
    config::Config,
    revocation::RevocationFuture,
    validate::Verified,
};

pin_project! {
    /// Response future of [`JwtAuth`](super::JwtAuth).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use mcp_session_binding::jwt::{Algorithm, JwtAuthLayer, JwtKey, ResponseFuture};
    /// use tower::{Layer, Service, ServiceExt};
    ///
    /// let layer = JwtAuthLayer::builder()
    ///     .issuer_keys("https://auth.example.com", JwtKey::hmac([7u8; 32]).unwrap())
    ///     .algorithms([Algorithm::HS256])
    ///     .audiences(["https://mcp.example.com/mcp"])
    ///     .build()
    ///     .unwrap();
    /// let mut service = layer.layer(tower::service_fn(|_: http::Request<String>| async {
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    /// }));
    /// let future: ResponseFuture<_, String> = service.ready().await.unwrap().call(http::Request::new(String::new()));
    /// assert_eq!(future.await.unwrap().status(), http::StatusCode::UNAUTHORIZED);
    /// # });
    /// ```
    pub struct ResponseFuture<S, ReqB>
    where
        S: Service<Request<ReqB>>,
    {
        #[pin]
        state: State<S, ReqB>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqB>
    where
        S: Service<Request<ReqB>>,
    {
        // A rejection made before the request body was read: drains a small body first, or
        // says `Connection: close` (HTTP/1.1).
        Rejected {
            answer: EarlyAnswer,
        },
        Revocation {
            #[pin]
            check: tokio::time::Timeout<RevocationFuture>,
            // The service instance `poll_ready` was called on, and the request to give it.
            pending: Option<(S, Request<ReqB>)>,
            config: Arc<Config>,
        },
        Inner {
            #[pin]
            future: S::Future,
        },
        Verifying {
            verifying: VerifyingFuture,
            // The service instance `poll_ready` was called on, and the request to give it.
            pending: Option<(S, Request<ReqB>)>,
            config: Arc<Config>,
        },
        // A DPoP proof's replay check in a store, then the revocation check if any.
        Replay {
            check: ReplayFuture,
            revocation: Option<RevocationFuture>,
            // The service instance `poll_ready` was called on, and the request to give it.
            pending: Option<(S, Request<ReqB>)>,
            config: Arc<Config>,
        },
    }
}

/// A verification waiting for the issuer's keys (feature `oidc`).
#[cfg(feature = "oidc")]
type VerifyingFuture = futures::future::BoxFuture<'static, Result<Verified, JwtRejection>>;
#[cfg(not(feature = "oidc"))]
type VerifyingFuture = std::future::Pending<Result<Verified, JwtRejection>>;

impl<S, ReqB> ResponseFuture<S, ReqB>
where
    S: Service<Request<ReqB>>,
{
    pub(crate) fn rejected(response: Rejection, request: Request<ReqB>) -> Self
    where
        ReqB: Body + Send + 'static,
        ReqB::Data: Send,
    {
        Self {
            state: rejection(response, request),
        }
    }

    pub(crate) fn revocation(
        check: RevocationFuture,
        ready_service: S,
        request: Request<ReqB>,
        config: Arc<Config>,
    ) -> Self {
        Self {
            state: State::Revocation {
                check: tokio::time::timeout(config.revocation_timeout, check),
                pending: Some((ready_service, request)),
                config,
            },
        }
    }

    pub(crate) fn replay(
        check: ReplayFuture,
        revocation: Option<RevocationFuture>,
        ready_service: S,
        request: Request<ReqB>,
        config: Arc<Config>,
    ) -> Self {
        Self {
            state: State::Replay {
                check,
                revocation,
                pending: Some((ready_service, request)),
                config,
            },
        }
    }

    #[cfg(feature = "oidc")]
    pub(crate) fn verifying(
        verifying: VerifyingFuture,
        ready_service: S,
        request: Request<ReqB>,
        config: Arc<Config>,
    ) -> Self {
        Self {
            state: State::Verifying {
                verifying,
                pending: Some((ready_service, request)),
                config,
            },
        }
    }

    pub(crate) fn inner(future: S::Future) -> Self {
        Self {
            state: State::Inner { future },
        }
    }
}

/// A rejection the layer made.
type Rejection = Response<http_body_util::Full<bytes::Bytes>>;

/// The state that answers `request` with `response`, its body not read.
fn rejection<S, ReqB>(response: Rejection, request: Request<ReqB>) -> State<S, ReqB>
where
    S: Service<Request<ReqB>>,
    ReqB: Body + Send + 'static,
    ReqB::Data: Send,
{
    State::Rejected {
        answer: EarlyAnswer::new(request.version(), request.into_body(), response),
    }
}

impl<S, ReqB, ResB> Future for ResponseFuture<S, ReqB>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ReqB: Body + Send + 'static,
    ReqB::Data: Send,
{
    type Output = Result<Response<ResponseBody<ResB>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Rejected { answer } => {
                    let response = ready!(Pin::new(answer).poll(cx));
                    return Poll::Ready(Ok(response.map(ResponseBody::answer)));
                }
                StateProj::Inner { future } => {
                    let response = ready!(future.poll(cx))?;
                    return Poll::Ready(Ok(response.map(ResponseBody::inner)));
                }
                StateProj::Verifying {
                    verifying,
                    pending,
                    config,
                } => {
                    let verified = ready!(Pin::new(verifying).poll(cx));
                    let (mut service, mut request) = pending
                        .take()
                        .expect("ResponseFuture polled after completion");
                    let next = match admit(config, verified, &mut request) {
                        Admission::Rejected(response) => rejection(response, request),
                        Admission::Forward => State::Inner {
                            future: service.call(request),
                        },
                        Admission::Check(check) => State::Revocation {
                            check: tokio::time::timeout(config.revocation_timeout, check),
                            pending: Some((service, request)),
                            config: config.clone(),
                        },
                        Admission::Replay(check, revocation) => State::Replay {
                            check,
                            revocation,
                            pending: Some((service, request)),
                            config: config.clone(),
                        },
                    };
                    this.state.set(next);
                }
                StateProj::Replay {
                    check,
                    revocation,
                    pending,
                    config,
                } => {
                    let verdict = ready!(Pin::new(check).poll(cx));
                    let (mut service, request) = pending
                        .take()
                        .expect("ResponseFuture polled after completion");
                    let rejection = match verdict {
                        Ok(true) => None,
                        Ok(false) => Some(JwtRejection::Dpop(super::DpopError::Replayed)),
                        Err(err) => {
                            // Fail closed: a proof the store did not remember is not admitted.
                            tracing::warn!(
                                reason = "dpop_replay_unavailable",
                                error = %err,
                                "DPoP proof refused: the replay store failed"
                            );
                            Some(JwtRejection::DpopReplayUnavailable)
                        }
                    };
                    let next = match (rejection, revocation.take()) {
                        (Some(rejection), _) => {
                            tracing::debug!(reason = rejection.code(), "bearer token rejected");
                            let response =
                                config.rejector.response_to(rejection, request.headers());
                            self::rejection(response, request)
                        }
                        (None, Some(check)) => State::Revocation {
                            check: tokio::time::timeout(config.revocation_timeout, check),
                            pending: Some((service, request)),
                            config: config.clone(),
                        },
                        (None, None) => {
                            crate::metrics::auth_accepted(request.extensions());
                            State::Inner {
                                future: service.call(request),
                            }
                        }
                    };
                    this.state.set(next);
                }
                StateProj::Revocation {
                    check,
                    pending,
                    config,
                } => {
                    let verdict = match ready!(check.poll(cx)) {
                        Ok(verdict) => verdict,
                        Err(_elapsed) => {
                            Err(format!("no answer within {:?}", config.revocation_timeout).into())
                        }
                    };
                    let rejection = match verdict {
                        Ok(false) => None,
                        Ok(true) => Some(JwtRejection::Revoked),
                        Err(err) => {
                            // Fail closed: an unanswered check never admits the token.
                            tracing::warn!(
                                reason = "revocation_unavailable",
                                error = %err,
                                "bearer token refused: revocation check failed"
                            );
                            Some(JwtRejection::RevocationUnavailable)
                        }
                    };
                    let next = match rejection {
                        Some(rejection) => {
                            tracing::debug!(reason = rejection.code(), "bearer token rejected");
                            let (_, request) = pending
                                .take()
                                .expect("ResponseFuture polled after completion");
                            let response =
                                config.rejector.response_to(rejection, request.headers());
                            self::rejection(response, request)
                        }
                        None => {
                            let (mut service, request) = pending
                                .take()
                                .expect("ResponseFuture polled after completion");
                            crate::metrics::auth_accepted(request.extensions());
                            State::Inner {
                                future: service.call(request),
                            }
                        }
                    };
                    this.state.set(next);
                }
            }
        }
    }
}

impl<S, ReqB> fmt::Debug for ResponseFuture<S, ReqB>
where
    S: Service<Request<ReqB>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Rejected { .. } => "rejected",
            State::Revocation { .. } => "revocation_check",
            State::Inner { .. } => "inner",
            State::Verifying { .. } => "fetching_keys",
            State::Replay { .. } => "dpop_replay_check",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}
