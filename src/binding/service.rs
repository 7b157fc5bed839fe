//! [`SessionBinding`]: the service [`SessionBindingLayer`](crate::SessionBindingLayer) makes.

use std::{
    marker::PhantomData,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::{Buf, Bytes};
use futures::future::FutureExt;
use http::{Method, Request, Response, header::AUTHORIZATION, request::Parts};
use http_body::Body;
use http_body_util::Full;
use tower::Service;

use crate::{
    Identity, ResponseBody, ResponseFuture,
    binding::config::{Config, InnerHead},
    binding::decide,
    binding::end::Inner,
    binding::event_ids,
    binding::future::AfterResponse,
    binding::refuse::foreign_event_id,
    binding::reject::{self, RejectionReason},
    binding::session::{After, AfterKind},
    binding::stream,
    binding::tasks,
    binding::trace,
    identity::{FromIdentityExtension, IdentityExtractor},
    protocol::headers::{self, LAST_EVENT_ID, MCP_SESSION_ID, SessionHeader},
    protocol::route::{self, Route},
    store::{BindingStore, Lookup, SessionKey, StoreError, aged},
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Binds MCP sessions to the caller's identity and checks it on every request. Made by
/// [`SessionBindingLayer`](crate::SessionBindingLayer).
///
/// Its responses carry [`ResponseBody`]; the inner service's error type passes through unchanged
/// (every refusal is a response). Requests keep their body type, which must implement `Default`
/// so the layer can send the inner service the `DELETE` that ends a session (axum's `Body` does;
/// for hyper's `Incoming`, map the body first, for example to
/// `http_body_util::combinators::BoxBody`).
///
/// ```
/// use std::convert::Infallible;
/// use http::{Request, Response, StatusCode};
/// use http_body_util::Full;
/// use bytes::Bytes;
/// use tower::{ServiceBuilder, ServiceExt};
/// use mcp_session_binding::SessionBindingLayer;
///
/// # #[cfg(feature = "memory")] {
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let mcp = tower::service_fn(|_req: Request<Full<Bytes>>| async {
///     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"{}"))))
/// });
/// let svc = ServiceBuilder::new().layer(SessionBindingLayer::new()).service(mcp);
///
/// // A session id nobody bound: 404, the MCP "session not found".
/// let req = Request::post("/mcp")
///     .header("mcp-session-id", "3f2a9c1e-0b7d-4e8a-9c55-2d1f6b8e7a40")
///     .body(Full::default())
///     .unwrap();
/// let res = svc.oneshot(req).await.unwrap();
/// assert_eq!(res.status(), StatusCode::NOT_FOUND);
/// # });
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct SessionBinding<S, St, I = FromIdentityExtension> {
    inner: S,
    store: St,
    identity: I,
    config: Arc<Config>,
}

impl<S, St: BindingStore + Clone> SessionBinding<S, St> {
    /// Wraps `inner`, with bindings in `store`, reading this crate's [`Identity`] from the request
    /// extensions, with the default settings. [`SessionBindingLayer`](crate::SessionBindingLayer)
    /// configures the rest.
    ///
    /// ```
    /// # #[cfg(feature = "memory")] {
    /// use std::convert::Infallible;
    /// use http::{Request, Response};
    /// use mcp_session_binding::{SessionBinding, store::MemoryStore};
    ///
    /// let mcp = tower::service_fn(|_req: Request<String>| async {
    ///     Ok::<_, Infallible>(Response::new(String::new()))
    /// });
    /// let service = SessionBinding::new(mcp, MemoryStore::new());
    /// # let _ = service;
    /// # }
    /// ```
    pub fn new(inner: S, store: St) -> Self {
        Self::from_parts(inner, store, FromIdentityExtension, Arc::default())
    }

    /// A [`SessionBindingLayer`](crate::SessionBindingLayer) on `store`, with the defaults: the
    /// same as [`SessionBindingLayer::with_store`](crate::SessionBindingLayer::with_store).
    ///
    /// ```
    /// # #[cfg(feature = "memory")] {
    /// use mcp_session_binding::{SessionBinding, store::MemoryStore};
    ///
    /// let layer = SessionBinding::<(), _>::layer(MemoryStore::new()).allow_anonymous(true);
    /// # let _ = layer;
    /// # }
    /// ```
    pub fn layer(store: St) -> crate::SessionBindingLayer<St> {
        crate::SessionBindingLayer::with_store(store)
    }
}

impl<S, St, I> SessionBinding<S, St, I> {
    pub(crate) fn from_parts(inner: S, store: St, identity: I, config: Arc<Config>) -> Self {
        Self {
            inner,
            store,
            identity,
            config,
        }
    }

    define_inner_service_accessors!();
}

impl<S, St, I, ReqBody, ResBody> Service<Request<ReqBody>> for SessionBinding<S, St, I>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send,
    St: BindingStore + Clone,
    I: IdentityExtractor,
    ReqBody: Body + Default + Send + 'static,
    ReqBody::Data: Buf + Send,
    ReqBody::Error: Into<BoxError>,
    ResBody: Send + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let (mut parts, body) = request.into_parts();

        // Protocol 2026-07-28 has no sessions: a session id on such a request is ignored (and
        // removed, so no inner server routes the request into a session), and so is
        // `Last-Event-ID` (no resumption: an event store keyed by event id alone would replay
        // another caller's stream). It has no GET stream and no DELETE either.
        let sessionless = if self.config.bind_tasks && parts.method == Method::POST {
            // Task ids are checked on requests whose header names 2026-07-28 or later; make
            // sure the inner server cannot serve any other request that way.
            headers::remove_session_era_version(&mut parts.headers)
        } else {
            headers::is_sessionless(&parts.headers)
        };
        // The method of a sessionless POST's `Mcp-Method` header, when it takes a task route.
        let mut task_method = None;
        if sessionless {
            if self.config.bind_tasks && parts.method == Method::POST {
                // One pass over the headers instead of three lookups; most have neither header.
                let seen = route::sessionless_headers(&parts.headers);
                if seen.session_id {
                    parts.headers.remove(MCP_SESSION_ID);
                }
                if seen.last_event_id {
                    parts.headers.remove(LAST_EVENT_ID);
                }
                task_method = seen.method;
            } else {
                parts.headers.remove(MCP_SESSION_ID);
                parts.headers.remove(LAST_EVENT_ID);
            }
            if parts.method == Method::GET || parts.method == Method::DELETE {
                drop(self.take_ready());
                let answer = reject::plain(RejectionReason::SessionlessMethod, None);
                return ResponseFuture::early(parts.version, body, answer);
            }
        }
        // The key is all the matching path needs of the header: no copy of the value is kept.
        let header = if sessionless {
            SessionHeader::Absent // removed above
        } else {
            headers::session_header(&parts.headers, self.config.max_session_id_len)
        };
        // With a key secret rotated within its overlap, also the key under the secret before.
        let mut previous = None;
        let key = match header {
            SessionHeader::Absent => None,
            SessionHeader::Present(session) => {
                let keys = self.store.key_derivation();
                previous = keys.previous_session_bytes(session.as_bytes());
                Some(keys.session_bytes(session.as_bytes()))
            }
            SessionHeader::Malformed(why) => {
                let reason = RejectionReason::MalformedSessionId;
                trace::rejected(reason, None, None, Some(why));
                let answer = reject::plain(reason, Some(why));
                drop(self.take_ready());
                return ResponseFuture::early(parts.version, body, answer);
            }
        };
        let caller = match self.identity.extract(&parts) {
            Ok(caller) => caller,
            Err(error) => {
                let detail = error.to_string();
                let reason = RejectionReason::InvalidIdentity;
                trace::rejected(reason, None, key, Some(&detail));
                let answer = reject::plain(reason, Some(&detail));
                drop(self.take_ready());
                return ResponseFuture::early(parts.version, body, answer);
            }
        };
        // Handlers see the identity compared here, whichever extractor read it.
        crate::identity::expose(&self.identity, &mut parts.extensions, caller.as_ref());
        // Bound to the DPoP key too, when configured: the owner is `(iss, sub, jkt)`.
        let caller = match caller {
            Some(caller) if self.config.bind_dpop_key => Some(caller.with_key_in_issuer()),
            caller => caller,
        };

        let Some(key) = key else {
            if let Some(method) = task_method {
                let mode = match method.route(&parts.headers, self.config.max_task_id_len) {
                    Route::Check(task_id) => {
                        let task_id = task_id.map(str::to_owned);
                        let check = tasks::check(
                            self.take_ready(),
                            self.store.clone(),
                            self.config.clone(),
                            caller,
                            task_id,
                            parts,
                            body,
                        );
                        return ResponseFuture::boxed(check.boxed());
                    }
                    Route::Create => tasks::Mode::Create,
                    Route::Listen => tasks::Mode::Listen,
                };
                let capture = tasks::Capture {
                    store: self.store.clone(),
                    config: self.config.clone(),
                    caller,
                    mode,
                };
                // Called at once: the service polled ready is used here, not cloned.
                let future = self.inner.call(Request::from_parts(parts, body));
                return ResponseFuture::inner(future, Some(capture.scan()));
            }
            // No session yet: forward, and bind the session the response may create. With event
            // ids bound, no event id is any use without a session.
            if self.config.event_ids.is_some() {
                parts.headers.remove(LAST_EVENT_ID);
            }
            let mut inner = self.take_ready();
            let after = After {
                inner: self.inner.clone(),
                store: self.store.clone(),
                config: self.config.clone(),
                caller,
                kind: AfterKind::BindNew {
                    head: InnerHead::of_creating(&parts),
                    credentials: parts.headers.contains_key(AUTHORIZATION),
                },
                request: PhantomData,
            };
            let future = inner.call(Request::from_parts(parts, body));
            return ResponseFuture::inner(future, Some(Box::new(after)));
        };

        let slide = self.config.slide(caller.as_ref());
        let aged = self.config.max_session_age.is_some();
        // Not found under the current key, during a rotation's overlap: ask again, under both.
        let found = match aged::lookup_now(&self.store, key, slide, aged) {
            Some(Ok((Lookup::Missing, _))) if previous.is_some() => None,
            found => found,
        };
        if let Some(Ok((lookup, bound_at))) = &found
            && let decide::Session::Forward {
                tombstone_on_success,
            } = decide::session(
                Ok(lookup),
                caller.as_ref(),
                decide::Kind::of(&parts.method),
                &self.config.policy(),
                self.config.too_old(*bound_at),
            )
        {
            // The matching path, on a store that answers at once: the inner service polled
            // ready is called here, nothing is cloned or boxed (a DELETE, rare, needs the
            // `After` that tombstones the session; a GET, the watch over its stream; with event
            // ids bound, an SSE answer is tagged).
            if let Some(answer) = open_event_id(&self.config, &mut parts, caller.as_ref(), key) {
                drop(self.take_ready());
                return ResponseFuture::early(parts.version, body, answer);
            }
            let (store, config) = (&self.store, &self.config);
            let after = after_forward(
                &self.inner,
                store,
                config,
                &parts,
                key,
                caller,
                tombstone_on_success,
            );
            crate::metrics::forwarded();
            return ResponseFuture::inner(self.inner.call(Request::from_parts(parts, body)), after);
        }
        let mut checked = Checked {
            ready: self.take_ready(),
            store: self.store.clone(),
            config: self.config.clone(),
            caller,
            key,
            parts,
            body,
        };
        match found {
            Some(found) => checked.decide(found),
            None => ResponseFuture::boxed(
                async move {
                    // A session bound under the key secret before a rotation, during its
                    // overlap, is served and ended under its old key.
                    let store = &checked.store;
                    let (key, found) = aged::lookup_either(store, key, previous, slide, aged).await;
                    checked.key = key;
                    checked.decide(found).await
                }
                .boxed(),
            ),
        }
    }
}

impl<S: Clone, St, I> SessionBinding<S, St, I> {
    /// Takes the service polled ready, leaving a clone for the next request.
    fn take_ready(&mut self) -> S {
        crate::ready::take_ready(&mut self.inner)
    }
}

/// A request that names a session, waiting for the store's answer.
pub(super) struct Checked<S, St, ReqBody> {
    /// The service polled ready: the one to forward to, or to send the `DELETE` that ends the
    /// session.
    pub(super) ready: S,
    pub(super) store: St,
    pub(super) config: Arc<Config>,
    pub(super) caller: Option<Identity>,
    pub(super) key: SessionKey,
    pub(super) parts: Parts,
    pub(super) body: ReqBody,
}

impl<S, St, ReqBody, ResBody> Checked<S, St, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send,
    St: BindingStore + Clone,
    ReqBody: Body + Default + Send + 'static,
    ReqBody::Data: Buf + Send,
    ReqBody::Error: Into<BoxError>,
    ResBody: Send + 'static,
{
    fn decide(self, found: Result<aged::Aged, StoreError>) -> ResponseFuture<S::Future, ResBody> {
        let kind = decide::Kind::of(&self.parts.method);
        let too_old = found
            .as_ref()
            .is_ok_and(|(_, bound_at)| self.config.too_old(*bound_at));
        let found = found.map(|(found, _)| found);
        let decision = decide::session(
            found.as_ref().map_err(StoreError::kind),
            self.caller.as_ref(),
            kind,
            &self.config.policy(),
            too_old,
        );
        trace::decision(&decision, &found, self.caller.as_ref(), self.key);
        match decision {
            decide::Session::Forward {
                tombstone_on_success,
            } => self.forward(tombstone_on_success),
            decide::Session::AlreadyEnded => {
                ResponseFuture::early(self.parts.version, self.body, reject::already_ended())
            }
            decide::Session::Answer(reason) => {
                ResponseFuture::early(self.parts.version, self.body, reject::plain(reason, None))
            }
            decide::Session::Refuse {
                reason,
                answer,
                end,
            } => ResponseFuture::boxed(self.refuse(reason, answer, end).boxed()),
        }
    }

    fn forward(mut self, tombstone_on_success: bool) -> ResponseFuture<S::Future, ResBody> {
        let caller = self.caller.as_ref();
        if let Some(answer) = open_event_id(&self.config, &mut self.parts, caller, self.key) {
            return ResponseFuture::early(self.parts.version, self.body, answer);
        }
        let (store, config, key) = (&self.store, &self.config, self.key);
        let after = after_forward(
            &self.ready,
            store,
            config,
            &self.parts,
            key,
            self.caller,
            tombstone_on_success,
        );
        let request = Request::from_parts(self.parts, self.body);
        crate::metrics::forwarded();
        ResponseFuture::inner(self.ready.call(request), after)
    }
}

/// With event ids bound, opens the request's `Last-Event-ID` for the inner service; the answer
/// when it belongs to another session.
fn open_event_id(
    config: &Config,
    parts: &mut Parts,
    caller: Option<&Identity>,
    key: SessionKey,
) -> Option<Response<Full<Bytes>>> {
    let ids = config.event_ids.as_ref()?;
    let why = event_ids::open_last_event_id(&mut parts.headers, ids, key).err()?;
    Some(foreign_event_id(caller, key, why))
}

/// What runs after a request forwarded on its owner's session: the tombstone of a session its
/// owner deleted (`tombstone_on_success`), else the watch over a GET stream and the tagging of
/// event ids ([`stream::after`]).
fn after_forward<S, St, ReqBody, ResBody>(
    ready: &S,
    store: &St,
    config: &Arc<Config>,
    parts: &Parts,
    key: SessionKey,
    caller: Option<Identity>,
    tombstone_on_success: bool,
) -> Option<Box<dyn AfterResponse<ResBody, S::Error>>>
where
    S: Inner<ReqBody, ResBody> + Clone,
    S::Error: Send,
    St: BindingStore + Clone,
    ReqBody: Default + Send + 'static,
    ResBody: Send + 'static,
{
    if !tombstone_on_success {
        return stream::after(store, config, &parts.method, key, caller);
    }
    Some(Box::new(After {
        inner: ready.clone(),
        store: store.clone(),
        config: config.clone(),
        caller,
        kind: AfterKind::EndOnSuccess(key),
        request: PhantomData,
    }))
}
