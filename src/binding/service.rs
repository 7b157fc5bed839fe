//! Which path a request to [`SessionBinding`] takes (sessionless, new session, named session,
//! task route), and the decision's answer carried out on it. The type and its constructors are
//! in `layer`; what to answer is [`decide`]'s.

use std::task::{Context, Poll};

use bytes::Bytes;
use futures::future::FutureExt;
use http::{Method, Request, Response, header::AUTHORIZATION, request::Parts};
use http_body_util::Full;
use tower::Service;

use crate::{
    Identity, ResponseBody, ResponseFuture, SessionBinding,
    binding::config::{Config, InnerHead},
    binding::decide,
    binding::end::Inner,
    binding::event_ids,
    binding::plumbing::{After, AfterKind, Checked, RequestBody, capture},
    binding::refuse::foreign_event_id,
    binding::reject::{self, RejectionReason},
    binding::stream,
    binding::tasks,
    binding::trace,
    identity::IdentityExtractor,
    protocol::headers::{LAST_EVENT_ID, MCP_PROTOCOL_VERSION, MCP_SESSION_ID, SessionHeader},
    protocol::route::{self, Route, Sessionless},
    store::{BindingStore, SessionKey, StoreError, StoreErrorKind, aged},
};

/// The layer's answer to a request it does not forward, made before its body is read.
type Early = Box<Response<Full<Bytes>>>;

/// The path a request takes.
enum Path {
    /// No session named: forward, and bind the session its answer may create.
    New,
    /// A sessionless POST with a task route, by its `Mcp-Method`.
    Task(route::Method),
    /// A session named: its key, and its key under the secret before a rotation, during the
    /// rotation's overlap.
    Named {
        key: SessionKey,
        previous: Option<SessionKey>,
    },
}

impl<S, St, I, ReqBody, ResBody> Service<Request<ReqBody>> for SessionBinding<S, St, I>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>, Error: Send>,
    S: Inner<ReqBody, ResBody> + Clone,
    St: BindingStore + Clone,
    I: IdentityExtractor,
    ReqBody: RequestBody,
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
        let (path, caller) = match self.path(&mut parts) {
            Ok(read) => read,
            Err(answer) => {
                drop(self.take_ready());
                return ResponseFuture::early(parts.version, body, *answer);
            }
        };
        match path {
            Path::New => self.new_session(parts, body, caller),
            Path::Task(method) => self.task(method, parts, body, caller),
            Path::Named { key, previous } => self.named(parts, body, caller, key, previous),
        }
    }
}

impl<S: Clone, St: BindingStore + Clone, I: IdentityExtractor> SessionBinding<S, St, I> {
    /// The request's path and caller, from its headers; `Err`: the answer, at once.
    fn path(&self, parts: &mut Parts) -> Result<(Path, Option<Identity>), Early> {
        let tasks = self.config.bind_tasks && parts.method == Method::POST;
        let (seen, values) = route::request_headers(&parts.headers);
        let sessionless = values.sessionless();
        // Task ids are checked on requests whose header names 2026-07-28 or later; make sure the
        // inner server cannot serve any other request that way.
        let remove_version = tasks && !sessionless && values.versions[0].is_some();
        // The key is all the named path needs of the header: no copy of the value is kept.
        let (path, key) = match values.session(self.config.max_session_id_len) {
            _ if sessionless => (sessionless_path(parts, tasks, seen)?, None),
            SessionHeader::Absent => (Path::New, None),
            SessionHeader::Present(session) => {
                let keys = self.store.key_derivation();
                let key = keys.session_bytes(session.as_bytes());
                let previous = keys.previous_session_bytes(session.as_bytes());
                (Path::Named { key, previous }, Some(key))
            }
            SessionHeader::Malformed(why) => {
                let reason = RejectionReason::MalformedSessionId;
                trace::rejected(reason, None, None, Some(why));
                return Err(Box::new(reject::plain(reason, Some(why))));
            }
        };
        if remove_version {
            parts.headers.remove(MCP_PROTOCOL_VERSION);
        }
        let caller = self.identity.extract(parts).map_err(|error| {
            let detail = error.to_string();
            let reason = RejectionReason::InvalidIdentity;
            trace::rejected(reason, None, key, Some(&detail));
            Box::new(reject::plain(reason, Some(&detail)))
        })?;
        // Handlers see the identity compared here, whichever extractor read it.
        crate::identity::expose(&self.identity, &mut parts.extensions, caller.as_ref());
        // Bound to the DPoP key too, when configured: the owner is `(iss, sub, jkt)`.
        let caller = match caller {
            Some(caller) if self.config.bind_dpop_key => Some(caller.with_key_in_issuer()),
            caller => caller,
        };
        Ok((path, caller))
    }

    /// No session yet: forward, and bind the session the response may create.
    fn new_session<B: RequestBody, RB: Send + 'static>(
        &mut self,
        mut parts: Parts,
        body: B,
        caller: Option<Identity>,
    ) -> ResponseFuture<S::Future, RB>
    where
        S: Inner<B, RB, Error: Send>,
    {
        // With event ids bound, no event id is any use without a session.
        if self.config.event_ids.is_some() {
            parts.headers.remove(LAST_EVENT_ID);
        }
        let kind = AfterKind::BindNew {
            head: InnerHead::of_creating(&parts),
            credentials: parts.headers.contains_key(AUTHORIZATION),
        };
        let mut inner = self.take_ready();
        let after = After::new(self.carry(self.inner.clone()), caller, kind);
        let future = inner.call(Request::from_parts(parts, body));
        ResponseFuture::inner(future, Some(Box::new(after)))
    }

    /// A task route: `tasks/*` checked before forwarding, the answers of `tools/call` and
    /// `subscriptions/listen` read as they pass.
    fn task<B: RequestBody, RB: Send + 'static>(
        &mut self,
        method: route::Method,
        parts: Parts,
        body: B,
        caller: Option<Identity>,
    ) -> ResponseFuture<S::Future, RB>
    where
        S: Inner<B, RB, Error: Send>,
    {
        let mode = match method.route(&parts.headers, self.config.max_task_id_len) {
            Route::Check(task_id) => {
                let task_id = task_id.map(str::to_owned);
                let check = tasks::check(self.take(), caller, task_id, parts, body);
                return ResponseFuture::boxed(check.boxed());
            }
            Route::Create => tasks::Mode::Create,
            Route::Listen => tasks::Mode::Listen,
        };
        let after = capture(self.store.clone(), self.config.clone(), caller, mode);
        // Called at once: the service polled ready is used here, not cloned.
        let future = self.inner.call(Request::from_parts(parts, body));
        ResponseFuture::inner(future, Some(after))
    }

    /// A request naming a session: decided at once on a store that answers at once, else once
    /// it answers.
    fn named<B: RequestBody, RB: Send + 'static>(
        &mut self,
        parts: Parts,
        body: B,
        caller: Option<Identity>,
        key: SessionKey,
        previous: Option<SessionKey>,
    ) -> ResponseFuture<S::Future, RB>
    where
        S: Inner<B, RB, Error: Send>,
    {
        let found = self.lookup_now(key, previous, caller.as_ref());
        if let Some(Ok(found)) = &found
            && let decide::Session::Forward {
                tombstone_on_success,
            } = decision(&self.config, Ok(found), caller.as_ref(), &parts.method)
        {
            // The matching path: the inner service polled ready is called here, nothing is
            // cloned or boxed.
            let request = Request::from_parts(parts, body);
            return self.forward(request, caller, key, tombstone_on_success);
        }
        let mut checked = self.checked(caller, key, parts, body);
        match found {
            Some(found) => checked.decide(found),
            None => ResponseFuture::boxed(
                async move {
                    let found = checked.lookup_either(previous).await;
                    checked.decide(found).await
                }
                .boxed(),
            ),
        }
    }
}

/// A sessionless request (protocol 2026-07-28 and later) has no session: a session id on it is
/// removed (so no inner server routes it into a session), and so is `Last-Event-ID` (no
/// resumption: an event store keyed by event id alone would replay another caller's stream).
/// It has no GET stream and no DELETE either. `tasks`: a POST with task routes.
fn sessionless_path(parts: &mut Parts, tasks: bool, seen: Sessionless) -> Result<Path, Early> {
    if seen.session_id {
        parts.headers.remove(MCP_SESSION_ID);
    }
    if seen.last_event_id {
        parts.headers.remove(LAST_EVENT_ID);
    }
    if parts.method == Method::GET || parts.method == Method::DELETE {
        let reason = RejectionReason::SessionlessMethod;
        return Err(Box::new(reject::plain(reason, None)));
    }
    Ok(seen.method.filter(|_| tasks).map_or(Path::New, Path::Task))
}

impl<S: Clone, St: BindingStore + Clone, B: RequestBody> Checked<S, St, B> {
    fn decide<RB: Send + 'static>(
        mut self,
        found: Result<aged::Aged, StoreError>,
    ) -> ResponseFuture<S::Future, RB>
    where
        S: Inner<B, RB, Error: Send>,
    {
        let (caller, method) = (self.caller.as_ref(), &self.parts.method);
        let found_kind = found.as_ref().map_err(StoreError::kind);
        let decision = decision(&self.binding.config, found_kind, caller, method);
        trace::decision(&decision, &found, caller, self.key);
        let answer = match decision {
            decide::Session::Forward {
                tombstone_on_success: tombstone,
            } => {
                let request = Request::from_parts(self.parts, self.body);
                let (caller, key) = (self.caller, self.key);
                return self.binding.forward(request, caller, key, tombstone);
            }
            decide::Session::Refuse {
                reason,
                answer,
                end,
            } => return ResponseFuture::boxed(self.refuse(reason, answer, end).boxed()),
            decide::Session::AlreadyEnded => reject::already_ended(),
            decide::Session::Answer(reason) => reject::plain(reason, None),
        };
        ResponseFuture::early(self.parts.version, self.body, answer)
    }
}

/// [`decide::session`] on a request of `method` by `caller`, on a session the store `found`.
fn decision(
    config: &Config,
    found: Result<&aged::Aged, StoreErrorKind>,
    caller: Option<&Identity>,
    method: &Method,
) -> decide::Session {
    let too_old = found.is_ok_and(|(_, bound_at)| config.too_old(*bound_at));
    let found = found.map(|(lookup, _)| lookup);
    decide::session(
        found,
        caller,
        decide::Kind::of(method),
        &config.policy(),
        too_old,
    )
}

impl<S: Clone, St: BindingStore + Clone, I> SessionBinding<S, St, I> {
    /// Forwards a request on its owner's session to the inner service (polled ready), unless its
    /// `Last-Event-ID` (with event ids bound) is another session's. After the answer: the tombstone
    /// of a session its owner deleted (`tombstone_on_success`), else the watch over a GET stream
    /// and the tagging of event ids ([`stream::after`]).
    fn forward<B: RequestBody, RB: Send + 'static>(
        &mut self,
        mut request: Request<B>,
        caller: Option<Identity>,
        key: SessionKey,
        tombstone_on_success: bool,
    ) -> ResponseFuture<S::Future, RB>
    where
        S: Inner<B, RB, Error: Send>,
    {
        if let Some(ids) = &self.config.event_ids
            && let Err(why) = event_ids::open_last_event_id(request.headers_mut(), ids, key)
        {
            let answer = foreign_event_id(caller.as_ref(), key, why);
            drop(self.take_ready());
            return ResponseFuture::early(request.version(), request.into_body(), answer);
        }
        let after = if tombstone_on_success {
            let kind = AfterKind::EndOnSuccess(key);
            Some(Box::new(After::new(self.carry(self.inner.clone()), caller, kind)) as Box<_>)
        } else {
            stream::after(&self.store, &self.config, request.method(), key, caller)
        };
        crate::metrics::forwarded();
        ResponseFuture::inner(self.inner.call(request), after)
    }
}
