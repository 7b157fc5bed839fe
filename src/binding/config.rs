//! The binding service's settings, as [`SessionBindingLayer`](crate::SessionBindingLayer) sets
//! them, and the head of the `DELETE` that ends a session.

use std::{
    fmt,
    sync::{Arc, Mutex},
    time::Duration,
};

use http::{HeaderValue, Method, Request, Uri, header::HOST, request::Parts};

#[cfg(doc)]
use crate::SessionBindingLayer;
use crate::protocol::headers::MCP_SESSION_ID;

/// Bindings live for 24 hours after the last refresh.
pub(crate) const DEFAULT_BINDING_TTL: Duration = Duration::from_secs(24 * 3600);
/// Anonymous bindings live for 10 minutes after their last use: see
/// [`SessionBindingLayer::anonymous_binding_ttl`].
pub(crate) const DEFAULT_ANONYMOUS_BINDING_TTL: Duration = Duration::from_secs(10 * 60);
/// Tombstones of ended sessions live for 24 hours.
pub(crate) const DEFAULT_TOMBSTONE_TTL: Duration = Duration::from_secs(24 * 3600);
/// 4 MiB, rmcp's own request body cap.
pub(crate) const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Longest accepted `Mcp-Session-Id`, in bytes.
pub(crate) const DEFAULT_MAX_SESSION_ID_LEN: usize = 1024;
/// Live sessions one identity may hold at once: see
/// [`SessionBindingLayer::max_sessions_per_identity`].
pub(crate) const DEFAULT_MAX_SESSIONS_PER_IDENTITY: usize = 100;
/// Live anonymous sessions, all anonymous callers together: see
/// [`SessionBindingLayer::max_anonymous_sessions`].
pub(crate) const DEFAULT_MAX_ANONYMOUS_SESSIONS: usize = 10_000;
/// Largest answer the layer makes to a refused request, in bytes, whatever the request's body.
pub(crate) const DEFAULT_MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Most answered entries in the answer to a refused JSON-RPC batch; a larger batch gets one
/// error without `id`.
pub(crate) const DEFAULT_MAX_BATCH_ANSWERS: usize = 64;
/// How long the layer waits for the body of a refused request before answering 408.
pub(crate) const DEFAULT_REFUSED_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest task id the layer accepts in `Mcp-Name` on `tasks/*` requests, in bytes.
pub(crate) const DEFAULT_MAX_TASK_ID_LEN: usize = 256;
/// Longest a task record lives without being checked: see [`SessionBindingLayer::task_ttl`].
pub(crate) const DEFAULT_TASK_TTL: Duration = Duration::from_secs(24 * 3600);

/// How a refused caller is answered.
///
/// ```
/// # #[cfg(feature = "memory")] {
/// use mcp_session_binding::{MismatchAnswer, SessionBindingLayer};
///
/// // No existence oracle: a stolen id answers exactly like an unknown one.
/// let layer = SessionBindingLayer::new().mismatch_answer(MismatchAnswer::NotFound);
/// # let _ = layer;
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum MismatchAnswer {
    /// The MCP answer: `tools/call` gets HTTP 200 with an `isError` tool result, other requests a
    /// JSON-RPC error with their `id`, a batch one answer per request; GET, DELETE,
    /// notifications, responses and unparseable bodies get 403. Each says
    /// `Unauthorized: caller identity does not match session owner`. The refused body is read,
    /// up to the body cap, to build it.
    #[default]
    Mcp,
    /// Exactly the answer for an unknown session (404), so a caller cannot tell that the id
    /// exists. The body is not read.
    NotFound,
}

/// A hook that adjusts the `DELETE` the layer sends the inner service to end a session; see
/// [`SessionBindingLayer::end_request_hook`].
pub(crate) type EndRequestHook = Arc<dyn Fn(&mut Parts) + Send + Sync>;

/// Settings shared by the layer and its services, behind one `Arc`: cloning a service does not
/// copy them.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) binding_ttl: Duration,
    pub(crate) anonymous_binding_ttl: Duration,
    pub(crate) tombstone_ttl: Duration,
    pub(crate) sliding: bool,
    pub(crate) allow_anonymous: bool,
    pub(crate) end_on_mismatch: bool,
    pub(crate) mismatch_answer: MismatchAnswer,
    pub(crate) max_body_bytes: usize,
    pub(crate) max_session_id_len: usize,
    pub(crate) max_sessions_per_identity: usize,
    pub(crate) max_anonymous_sessions: usize,
    pub(crate) max_answer_bytes: usize,
    pub(crate) max_batch_answers: usize,
    pub(crate) refused_body_timeout: Duration,
    /// Whether sessionless tasks are bound to their creator.
    pub(crate) bind_tasks: bool,
    pub(crate) task_ttl: Duration,
    pub(crate) max_task_id_len: usize,
    /// Where the inner `DELETE` that ends a session goes, when configured.
    pub(crate) end_session_uri: Option<Uri>,
    pub(crate) end_request_hook: Option<EndRequestHook>,
    /// The path and `Host` of the last request through this layer that created a session: values
    /// the inner service accepted, used for the `DELETE` that ends a session when no
    /// [`end_session_uri`](Self::end_session_uri) is configured.
    pub(crate) created_at: Arc<Mutex<Option<InnerHead>>>,
    /// How often an open GET stream of a session checks its binding again; zero: never.
    pub(crate) stream_recheck_interval: Duration,
    /// With [`SessionBindingLayer::max_session_age`]: sessions end at this age.
    pub(crate) max_session_age: Option<Duration>,
    /// With [`SessionBindingLayer::bind_event_ids`]: the key that tags SSE event ids with their
    /// session.
    pub(crate) event_ids: Option<Arc<super::event_ids::EventIdKey>>,
    /// Whether sessions and tasks are bound to `(iss, sub, jkt)` rather than `(iss, sub)`.
    pub(crate) bind_dpop_key: bool,
}

impl Config {
    /// How many live sessions `owner` may hold.
    pub(crate) fn session_limit(&self, owner: &crate::store::Owner) -> usize {
        match owner {
            crate::store::Owner::User(_) => self.max_sessions_per_identity,
            crate::store::Owner::Anonymous => self.max_anonymous_sessions,
        }
    }

    /// The settings the binding decision depends on.
    pub(crate) fn policy(&self) -> crate::binding::decide::Policy {
        crate::binding::decide::Policy {
            allow_anonymous: self.allow_anonymous,
            mismatch_answer: self.mismatch_answer,
            end_on_mismatch: self.end_on_mismatch,
            max_age: self.max_session_age,
        }
    }

    /// Whether a binding made at `bound_at` has reached the maximum age now (the clock is read
    /// only with a maximum age set).
    #[inline]
    pub(crate) fn too_old(&self, bound_at: Option<std::time::SystemTime>) -> bool {
        self.max_session_age.is_some()
            && crate::binding::decide::too_old(
                bound_at,
                std::time::SystemTime::now(),
                &self.policy(),
            )
    }

    /// How long a binding of `owner` lives after its last use.
    pub(crate) fn binding_ttl_of(&self, owner: &crate::store::Owner) -> Duration {
        match owner {
            crate::store::Owner::User(_) => self.binding_ttl,
            crate::store::Owner::Anonymous => self.anonymous_binding_ttl,
        }
    }

    /// The slide of a lookup by `caller`, when sliding: the TTL of the bindings `caller` can
    /// own, so an anonymous caller never keeps a binding alive longer than the anonymous TTL.
    /// (A binding the caller does not own is refused; the slide only ever extends.)
    #[inline]
    pub(crate) fn slide(&self, caller: Option<&crate::Identity>) -> Option<Duration> {
        let ttl = if caller.is_some() {
            self.binding_ttl
        } else {
            self.anonymous_binding_ttl
        };
        self.sliding.then_some(ttl)
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            binding_ttl: DEFAULT_BINDING_TTL,
            anonymous_binding_ttl: DEFAULT_ANONYMOUS_BINDING_TTL,
            tombstone_ttl: DEFAULT_TOMBSTONE_TTL,
            sliding: true,
            allow_anonymous: false,
            end_on_mismatch: true,
            mismatch_answer: MismatchAnswer::Mcp,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_session_id_len: DEFAULT_MAX_SESSION_ID_LEN,
            max_sessions_per_identity: DEFAULT_MAX_SESSIONS_PER_IDENTITY,
            max_anonymous_sessions: DEFAULT_MAX_ANONYMOUS_SESSIONS,
            max_answer_bytes: DEFAULT_MAX_ANSWER_BYTES,
            max_batch_answers: DEFAULT_MAX_BATCH_ANSWERS,
            refused_body_timeout: DEFAULT_REFUSED_BODY_TIMEOUT,
            bind_tasks: true,
            task_ttl: DEFAULT_TASK_TTL,
            max_task_id_len: DEFAULT_MAX_TASK_ID_LEN,
            end_session_uri: None,
            end_request_hook: None,
            created_at: Arc::default(),
            stream_recheck_interval: Duration::from_secs(5),
            max_session_age: None,
            event_ids: None,
            bind_dpop_key: false,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("binding_ttl", &self.binding_ttl)
            .field("anonymous_binding_ttl", &self.anonymous_binding_ttl)
            .field("tombstone_ttl", &self.tombstone_ttl)
            .field("sliding", &self.sliding)
            .field("allow_anonymous", &self.allow_anonymous)
            .field("end_on_mismatch", &self.end_on_mismatch)
            .field("mismatch_answer", &self.mismatch_answer)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_session_id_len", &self.max_session_id_len)
            .field("max_sessions_per_identity", &self.max_sessions_per_identity)
            .field("max_anonymous_sessions", &self.max_anonymous_sessions)
            .field("max_answer_bytes", &self.max_answer_bytes)
            .field("max_batch_answers", &self.max_batch_answers)
            .field("refused_body_timeout", &self.refused_body_timeout)
            .field("bind_tasks", &self.bind_tasks)
            .field("task_ttl", &self.task_ttl)
            .field("max_task_id_len", &self.max_task_id_len)
            .field("end_session_uri", &self.end_session_uri)
            .field("end_request_hook", &self.end_request_hook.is_some())
            .field("stream_recheck_interval", &self.stream_recheck_interval)
            .field("max_session_age", &self.max_session_age)
            .field("event_ids", &self.event_ids.is_some())
            .field("bind_dpop_key", &self.bind_dpop_key)
            .finish_non_exhaustive()
    }
}

/// The head of the `DELETE` that ends a session. It holds only values the layer trusts, never
/// the refused caller's `Host`, query or `MCP-Protocol-Version` (which the inner service could
/// refuse, leaving the session alive).
#[derive(Clone, Debug, Default)]
pub(crate) struct InnerHead {
    uri: Option<Uri>,
    host: Option<HeaderValue>,
}

impl InnerHead {
    /// The path (without query) and `Host` of a request whose response created a session: the
    /// inner service accepted them.
    pub(crate) fn of_creating(parts: &Parts) -> Self {
        Self {
            uri: path_only(&parts.uri),
            host: parts.headers.get(HOST).cloned(),
        }
    }

    /// The head for ending a session a caller was refused on: the configured
    /// [`end_session_uri`](crate::SessionBindingLayer::end_session_uri), else the head of the last
    /// session created through this layer, else the refused request's path without its query.
    pub(crate) fn for_ending(config: &Config, refused: &Parts) -> Self {
        if let Some(uri) = &config.end_session_uri {
            return Self {
                host: uri
                    .authority()
                    .and_then(|a| HeaderValue::from_str(a.as_str()).ok()),
                uri: Some(uri.clone()),
            };
        }
        let recorded = config
            .created_at
            .lock()
            .map(|head| head.clone())
            .unwrap_or_default();
        recorded.unwrap_or_else(|| Self {
            uri: path_only(&refused.uri),
            host: None,
        })
    }

    /// Records `self`, the head of a request whose response created a session, as the head of
    /// the `DELETE`s that end sessions, unless an
    /// [`end_session_uri`](crate::SessionBindingLayer::end_session_uri) is configured.
    pub(crate) fn remember(self, config: &Config) {
        if config.end_session_uri.is_none()
            && let Ok(mut created_at) = config.created_at.lock()
        {
            *created_at = Some(self);
        }
    }

    pub(crate) fn delete<B: Default>(&self, session: HeaderValue, config: &Config) -> Request<B> {
        let mut request = Request::new(B::default());
        *request.method_mut() = Method::DELETE;
        if let Some(uri) = &self.uri {
            *request.uri_mut() = uri.clone();
        }
        let headers = request.headers_mut();
        headers.insert(MCP_SESSION_ID, session);
        if let Some(host) = &self.host {
            headers.insert(HOST, host.clone());
        }
        match &config.end_request_hook {
            Some(hook) => {
                let (mut parts, body) = request.into_parts();
                hook(&mut parts);
                Request::from_parts(parts, body)
            }
            None => request,
        }
    }
}

fn path_only(uri: &Uri) -> Option<Uri> {
    uri.path().parse().ok()
}
