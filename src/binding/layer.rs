//! [`SessionBindingLayer`]: the builder of the binding service's settings, and the
//! [`SessionBinding`] service it makes (its type and constructors; what it does with a request
//! is `service`'s).

use std::{sync::Arc, time::Duration};

use http::{Uri, request::Parts};
use tower::Layer;

use crate::{
    binding::config::*,
    identity::{FromIdentityExtension, IdentityExtractor},
    store::BindingStore,
};

/// Binds each MCP session to the caller's `(iss, sub)` and checks it on every later request.
///
/// Put it *inside* the auth layer (the auth layer runs first and puts the identity in the request
/// extensions) and *outside* the MCP service. See the [crate docs](crate) for the behaviour.
///
/// ```
/// # #[cfg(feature = "memory")] {
/// use std::time::Duration;
/// use mcp_session_binding::{SessionBindingLayer, store::MemoryStore};
///
/// let layer = SessionBindingLayer::new()                 // MemoryStore, reads `Identity`
///     .store(MemoryStore::with_capacity(1_000_000))
///     .binding_ttl(Duration::from_secs(8 * 3600))
///     .max_body_bytes(1 << 20);
/// # let _ = layer;
/// # }
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct SessionBindingLayer<St, I = FromIdentityExtension> {
    store: St,
    identity: I,
    config: Config,
}

#[cfg(feature = "memory")]
#[cfg_attr(docsrs, doc(cfg(feature = "memory")))]
impl SessionBindingLayer<crate::store::MemoryStore> {
    /// A layer on a new [`MemoryStore`](crate::store::MemoryStore), reading this crate's
    /// [`Identity`](crate::Identity) from the request extensions, with the defaults.
    pub fn new() -> Self {
        Self::with_store(crate::store::MemoryStore::new())
    }
}

#[cfg(feature = "memory")]
#[cfg_attr(docsrs, doc(cfg(feature = "memory")))]
impl Default for SessionBindingLayer<crate::store::MemoryStore> {
    fn default() -> Self {
        Self::new()
    }
}

impl<St: BindingStore + Clone> SessionBindingLayer<St> {
    /// A layer on `store`, reading this crate's [`Identity`](crate::Identity), with the defaults.
    ///
    /// ```
    /// # #[cfg(feature = "memory")] {
    /// use std::sync::Arc;
    /// use mcp_session_binding::{SessionBindingLayer, store::{BindingStore, MemoryStore}};
    ///
    /// // Chosen at run time, behind a trait object:
    /// let store: Arc<dyn BindingStore> = Arc::new(MemoryStore::new());
    /// let layer = SessionBindingLayer::with_store(store);
    /// # let _ = layer;
    /// # }
    /// ```
    pub fn with_store(store: St) -> Self {
        Self {
            store,
            identity: FromIdentityExtension,
            config: Config::default(),
        }
    }
}

impl<St, I> SessionBindingLayer<St, I> {
    /// The store and the settings, for the operator calls of `revoke.rs`.
    pub(crate) fn store_and_config(&self) -> (&St, &Config) {
        (&self.store, &self.config)
    }

    /// Uses another binding store.
    pub fn store<St2: BindingStore + Clone>(self, store: St2) -> SessionBindingLayer<St2, I> {
        SessionBindingLayer {
            store,
            identity: self.identity,
            config: self.config,
        }
    }

    /// Reads the identity with another extractor.
    pub fn identity<I2: IdentityExtractor>(self, identity: I2) -> SessionBindingLayer<St, I2> {
        SessionBindingLayer {
            store: self.store,
            identity,
            config: self.config,
        }
    }

    /// How a refused caller is answered (default [`MismatchAnswer::Mcp`]).
    pub fn mismatch_answer(mut self, answer: MismatchAnswer) -> Self {
        self.config.mismatch_answer = answer;
        self
    }

    /// Whether a mismatch ends the session (default `true`): the attacker had the id, so the
    /// owner must re-initialize and get a fresh one.
    pub fn end_session_on_mismatch(mut self, end: bool) -> Self {
        self.config.end_on_mismatch = end;
        self
    }

    /// Whether a request without identity may create a session (default `false`: 401). An
    /// anonymous session is bound to a marker that only callers without identity match.
    pub fn allow_anonymous(mut self, allow: bool) -> Self {
        self.config.allow_anonymous = allow;
        self
    }

    /// Cap on the body the mismatch path reads (default 4 MiB, rmcp's own request body cap).
    /// Over it: 413.
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.config.max_body_bytes = bytes;
        self
    }

    /// Cap on the `Mcp-Session-Id` length (default 1024 bytes, far above the ids servers mint:
    /// rmcp's are 36). Over it: 400.
    pub fn max_session_id_len(mut self, bytes: usize) -> Self {
        self.config.max_session_id_len = bytes;
        self
    }

    /// How long a binding lives (default 24 h), counted from the last refresh when sliding.
    /// Make it at least as long as the MCP server keeps idle sessions. Anonymous bindings have
    /// their own, shorter TTL: [`anonymous_binding_ttl`](Self::anonymous_binding_ttl).
    pub fn binding_ttl(mut self, ttl: Duration) -> Self {
        self.config.binding_ttl = ttl;
        self
    }

    /// How long an anonymous binding lives after its last use (default 10 minutes, twice rmcp's
    /// idle timeout), sliding like
    /// [`binding_ttl`](Self::binding_ttl), which it replaces for anonymous sessions. Only
    /// matters with [`allow_anonymous`](Self::allow_anonymous).
    ///
    /// It bounds how long an anonymous flood outlives itself: anonymous callers share one
    /// [budget](Self::max_anonymous_sessions), and a flood that spent it locks every other
    /// anonymous caller out (429) until its bindings expire, so at most this long after the
    /// flood's last request; the 429's `Retry-After` is at most this too.
    ///
    /// **The trade-off.** An anonymous client idle for longer than this finds its session gone
    /// (404) and must initialize again, as the MCP clients do on a 404. rmcp itself drops a
    /// session idle for about 5 minutes (`keep_alive`), so the default costs rmcp clients
    /// nothing; keep this above your server's idle timeout. A longer one keeps idle anonymous
    /// sessions, and a flood's effect, for longer; a larger budget dilutes a flood instead.
    ///
    /// A request on an anonymous session by a caller with an identity is refused and, by
    /// default, ends the session; with [`end_session_on_mismatch(false)`](Self::end_session_on_mismatch)
    /// such a refused lookup may extend the anonymous binding up to the binding TTL.
    pub fn anonymous_binding_ttl(mut self, ttl: Duration) -> Self {
        self.config.anonymous_binding_ttl = ttl;
        self
    }

    /// How long the tombstone of an ended session lives (default 24 h, as long as a binding
    /// lives by default, so a refused id stays dead at least as long as it could have lived).
    /// Until it expires, the id can never be bound again; after, it reads as unknown (still 404).
    ///
    /// Each identity keeps at most twice its [session limit](Self::max_sessions_per_identity)
    /// of bindings and tombstones together (the anonymous owner, twice the
    /// [anonymous budget](Self::max_anonymous_sessions)): creating a session evicts the
    /// identity's oldest tombstones beyond the limit, whatever their TTL. An evicted tombstone
    /// reads as unknown early, so its session still answers 404; see the
    /// [store docs](crate::store#semantics-every-store-must-have).
    pub fn tombstone_ttl(mut self, ttl: Duration) -> Self {
        self.config.tombstone_ttl = ttl;
        self
    }

    /// Whether tasks (MCP tasks extension, revision 2026-07-28 and later) are bound to the
    /// principal whose `tools/call` created them (default `true`).
    ///
    /// The layer records each task id a sessionless `tools/call` answer creates
    /// (`result.resultType == "task"`, JSON or SSE) in the binding store, before the answer
    /// leaves the layer; `tasks/get`, `tasks/update` and `tasks/cancel` (task id from
    /// `Mcp-Name`) by anyone else get JSON-RPC `-32602` `unknown task: <id>`, exactly as an
    /// unknown task, and are not forwarded; `notifications/tasks` about other callers' tasks are
    /// dropped from `subscriptions/listen` streams. Task records do not count against
    /// [`max_sessions_per_identity`](Self::max_sessions_per_identity). Off: sessionless requests
    /// pass untouched, and task ids are bearer tokens.
    pub fn bind_tasks(mut self, bind: bool) -> Self {
        self.config.bind_tasks = bind;
        self
    }

    /// Binds sessions and tasks to `(iss, sub, jkt)`, the caller and the DPoP key its token is
    /// bound to ([`Identity::jkt`](crate::Identity::jkt)), rather than to `(iss, sub)` (default
    /// `false`).
    ///
    /// On, a second device of the same user, with its own key, gets its own sessions, and a
    /// session cannot be used with a bearer token of the same user (no key) nor after the client
    /// changes its key: it must start a new session. Off, a session follows the user across
    /// keys and devices, as it does across token refreshes. Callers without a key (bearer
    /// tokens) are bound to `(iss, sub)` either way; each key counts as its own owner for
    /// [`max_sessions_per_identity`](Self::max_sessions_per_identity). See
    /// `docs/behaviour.md`, "Binding to the DPoP key".
    pub fn bind_to_dpop_key(mut self, bind: bool) -> Self {
        self.config.bind_dpop_key = bind;
        self
    }

    /// The longest a task record lives (default 24 h, the binding TTL's default): twice the task's
    /// own `ttlMs` plus a minute when that is shorter. Each check of the task slides it. Make it
    /// at least as long as the MCP server keeps tasks without a TTL: once the record expires,
    /// the task is refused to everyone.
    pub fn task_ttl(mut self, ttl: Duration) -> Self {
        self.config.task_ttl = ttl;
        self
    }

    /// Cap on the task id in `Mcp-Name` (default 256 bytes, room for any id a server mints, a
    /// UUID being 36). Over it: JSON-RPC `-32602`, not forwarded.
    pub fn max_task_id_len(mut self, bytes: usize) -> Self {
        self.config.max_task_id_len = bytes;
        self
    }

    /// How many live sessions one identity (`iss`, `sub`) may hold at once (default 100).
    /// `usize::MAX`: no limit.
    ///
    /// A session-creating request over it is answered 429 with `Retry-After` (when the
    /// identity's oldest binding expires) and a JSON-RPC error, reason `too_many_sessions`; the
    /// session the inner service just created is ended, and no id is handed out. A session frees
    /// its slot when its owner deletes it (`DELETE`), when the layer ends it, or when its
    /// binding expires. The store counts, in the same step as the bind (one round trip on
    /// Redis, shared by every replica); checking a request on a session costs nothing more.
    ///
    /// A binding counts until it expires, [`binding_ttl`](Self::binding_ttl) after its last
    /// use, even when its client just went away: size the limit for the sessions one identity
    /// opens within one binding TTL (docs/deployment.md in the repository, "Session limits").
    pub fn max_sessions_per_identity(mut self, max: usize) -> Self {
        self.config.max_sessions_per_identity = max;
        self
    }

    /// How many live anonymous sessions there may be at once, all anonymous callers together
    /// (default 10,000: a small server's anonymous traffic within one
    /// [`anonymous_binding_ttl`](Self::anonymous_binding_ttl)). Only matters with
    /// [`allow_anonymous`](Self::allow_anonymous).
    ///
    /// Anonymous callers cannot be told apart, so they share one budget, separate from every
    /// identity's: an anonymous flood meets 429 (`too_many_sessions`) once the budget is spent,
    /// and authenticated users keep creating sessions. The flood can still lock out other
    /// anonymous callers until its bindings expire, at most
    /// [`anonymous_binding_ttl`](Self::anonymous_binding_ttl) (10 minutes) after its last
    /// request; size this for the anonymous sessions you expect within that TTL. A
    /// [`MemoryStore`](crate::store::MemoryStore) with a capacity also keeps anonymous bindings
    /// to half of it, whatever this says.
    pub fn max_anonymous_sessions(mut self, max: usize) -> Self {
        self.config.max_anonymous_sessions = max;
        self
    }

    /// Whether activity extends a binding (default `true`). The store refreshes at most once per
    /// half TTL, not on every request.
    pub fn sliding_expiry(mut self, sliding: bool) -> Self {
        self.config.sliding = sliding;
        self
    }

    /// Largest answer to a refused request (default 64 KiB: every answer to a batch of the
    /// default 64 requests with ordinary ids fits), whatever its body. An answer that
    /// would be larger (a batch of many requests, a huge `id`) is replaced by one JSON-RPC error
    /// without `id`.
    pub fn max_answer_bytes(mut self, bytes: usize) -> Self {
        self.config.max_answer_bytes = bytes;
        self
    }

    /// Most requests answered one by one in a refused JSON-RPC batch (default 64, more than any
    /// client batches; a larger batch is almost certainly not a client's). A batch with
    /// more requests, or with any element that is not a JSON-RPC message, gets one JSON-RPC error
    /// without `id`.
    pub fn max_batch_answers(mut self, entries: usize) -> Self {
        self.config.max_batch_answers = entries;
        self
    }

    /// How long the layer reads the body of a refused request (default 10 s, ample for the
    /// default 4 MiB body on a slow link, short enough that a silent client cannot hold the
    /// request open). Past it the
    /// caller gets 408 with a JSON-RPC error; the session is ended all the same (ending starts
    /// before the body is read).
    pub fn refused_body_timeout(mut self, timeout: Duration) -> Self {
        self.config.refused_body_timeout = timeout;
        self
    }

    /// Where the `DELETE` that ends a session is sent: its path, and its authority as the `Host`
    /// header (for rmcp, a host in its `allowed_hosts`).
    ///
    /// The layer never copies the refused caller's URI, `Host` or `MCP-Protocol-Version` into
    /// that `DELETE`. Without this setting it uses the path and `Host` of the last request
    /// through this layer that created a session (values the inner service accepted); before any
    /// session was created through it, the path of the refused request without its query and no
    /// `Host`.
    pub fn end_session_uri(mut self, uri: Uri) -> Self {
        self.config.end_session_uri = Some(uri);
        self
    }

    /// A hook that adjusts the `DELETE` the layer sends the inner service to end a session,
    /// for inner services that need more than the session id to accept it (an upstream that
    /// wants credentials, a routing header). It runs last, on the request head the layer built.
    pub fn end_request_hook(mut self, hook: impl Fn(&mut Parts) + Send + Sync + 'static) -> Self {
        self.config.end_request_hook = Some(Arc::new(hook));
        self
    }

    /// How often an open GET stream of a session checks the session's binding again (default
    /// 5 s; at least 10 ms). `Duration::ZERO`: never.
    ///
    /// A request is checked when it arrives; a GET answered with `text/event-stream` (the
    /// standalone stream, or a resumed one) then stays open. With this setting the layer looks
    /// the session up again every interval while such a stream is open, and ends the stream (a
    /// clean end of the response body) once the session is ended, expired, unknown, or bound to
    /// anyone other than the caller. So a session ended on another replica (a refused thief, the
    /// owner's `DELETE` there) stops streaming here within the interval plus the time the store
    /// takes to show the ending: with `RedisStore`, one round trip, or with its client-side
    /// cache, at most the cache's `max_staleness`. A recheck is a lookup with the same sliding
    /// expiry as a request's, so an open stream keeps its binding alive.
    ///
    /// When the store cannot answer (an error, or no answer within the interval), the stream
    /// goes on and the next interval checks again: its caller was checked when it opened, and
    /// every new request still fails closed (503). A store error that is not transient (a
    /// stored value that does not parse) ends it.
    ///
    /// POST answers streamed as SSE are not rechecked: they end with their request's answer.
    /// Watching them would cost every POST of a session (most MCP servers stream their
    /// answers) a header lookup, an allocation and a timer.
    ///
    /// Cost: nothing for requests other than GET; per open stream, one timer and one lookup
    /// per interval (local with a `MemoryStore` or a warm client-side cache).
    pub fn stream_recheck_interval(mut self, interval: Duration) -> Self {
        self.config.stream_recheck_interval = interval;
        self
    }

    /// Ends every session at `max_age` after it was bound, whatever its activity (default: off,
    /// sessions live while they are used, see [`binding_ttl`](Self::binding_ttl)).
    ///
    /// The first request on a session that reached its maximum age, whoever sends it, ends the
    /// session as a refusal does: its binding is replaced by a tombstone, the inner session is
    /// deleted, and the request is answered 404 `Session not found` (reason
    /// [`RejectionReason::SessionMaxAge`](crate::RejectionReason::SessionMaxAge)), after the
    /// ending. From then on it is an ended session on every replica. An open GET stream of it
    /// ends at its next recheck ([`stream_recheck_interval`](Self::stream_recheck_interval)).
    ///
    /// The age is counted from the bind time the store keeps with the binding (its own clock:
    /// Redis' `TIME` for `RedisStore`) against this process's clock, so replicas whose clocks
    /// are apart by `d` end a session up to `d` early or late. A binding written before its
    /// store recorded bind times (an older version) has no age and is not ended by this setting.
    /// The store must report bind times
    /// ([`BindingStore::lookup_with_age`](crate::store::BindingStore::lookup_with_age)), as
    /// `MemoryStore` and `RedisStore` do.
    ///
    /// Cost: one clock read per request on a session.
    pub fn max_session_age(mut self, max_age: Duration) -> Self {
        self.config.max_session_age = Some(max_age);
        self
    }

    /// Binds SSE event ids to their session (off by default), so that a resumption
    /// (`Last-Event-ID`) can only name events of its own session, whatever the event store
    /// behind the inner server.
    ///
    /// Every `id` field of a session's SSE answers (GET streams and POST answers) leaves the
    /// layer as `<id>~<tag>`, the tag a MAC of the session and the id under a key derived from
    /// `secret`; lines are read as a client reads them (CRLF, LF or CR, a leading byte order
    /// mark). A request of a session that carries `Last-Event-ID` is forwarded only if its tag
    /// is that session's, with the tag stripped; otherwise it gets 400 (reason
    /// `foreign_event_id`) and is not forwarded. A request without a session has its
    /// `Last-Event-ID` removed. Empty ids, ids with a NUL and ids over 1024 bytes pass
    /// untagged: a client cannot resume from them.
    ///
    /// Every replica that serves the same sessions needs the same `secret` (it may be the
    /// store's key secret: the derivations are separate). A new secret makes the ids issued
    /// before it unusable for resumption (400), nothing else. Off, the layer neither reads nor
    /// changes event ids, and requests pay nothing for it; on, every SSE answer of a session is
    /// scanned line by line, and a request of a session costs one more header lookup.
    pub fn bind_event_ids(mut self, secret: crate::store::KeySecret) -> Self {
        self.config.event_ids = Some(Arc::new(super::event_ids::EventIdKey::new(secret)));
        self
    }
}

impl<S, St: Clone, I: Clone> Layer<S> for SessionBindingLayer<St, I> {
    type Service = SessionBinding<S, St, I>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionBinding::from_parts(
            inner,
            self.store.clone(),
            self.identity.clone(),
            Arc::new(self.config.clone()),
        )
    }
}

/// Binds MCP sessions to the caller's identity and checks it on every request. Made by
/// [`SessionBindingLayer`].
///
/// Its responses carry [`ResponseBody`](crate::ResponseBody); the inner service's error type passes through unchanged
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
    pub(super) inner: S,
    pub(super) store: St,
    pub(super) identity: I,
    pub(super) config: Arc<Config>,
}

impl<S, St: BindingStore + Clone> SessionBinding<S, St> {
    /// Wraps `inner`, with bindings in `store`, reading this crate's [`Identity`](crate::Identity) from the request
    /// extensions, with the default settings. [`SessionBindingLayer`]
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

    /// A [`SessionBindingLayer`] on `store`, with the defaults: the
    /// same as [`SessionBindingLayer::with_store`].
    ///
    /// ```
    /// # #[cfg(feature = "memory")] {
    /// use mcp_session_binding::{SessionBinding, store::MemoryStore};
    ///
    /// let layer = SessionBinding::<(), _>::layer(MemoryStore::new()).allow_anonymous(true);
    /// # let _ = layer;
    /// # }
    /// ```
    pub fn layer(store: St) -> SessionBindingLayer<St> {
        SessionBindingLayer::with_store(store)
    }
}

impl<S, St, I> SessionBinding<S, St, I> {
    fn from_parts(inner: S, store: St, identity: I, config: Arc<Config>) -> Self {
        Self {
            inner,
            store,
            identity,
            config,
        }
    }

    define_inner_service_accessors!();
}

impl<S: Clone, St, I> SessionBinding<S, St, I> {
    /// Takes the service polled ready, leaving a clone for the next request.
    pub(super) fn take_ready(&mut self) -> S {
        crate::ready::take_ready(&mut self.inner)
    }
}
