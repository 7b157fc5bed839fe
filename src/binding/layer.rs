//! [`SessionBindingLayer`] and its configuration.

use std::{
    fmt,
    sync::{Arc, Mutex},
    time::Duration,
};

use http::{Uri, request::Parts};
use tower::Layer;

use crate::{
    SessionBinding,
    identity::{FromIdentityExtension, IdentityExtractor},
    store::BindingStore,
};

/// Bindings live for 24 hours after the last refresh.
pub const DEFAULT_BINDING_TTL: Duration = Duration::from_secs(24 * 3600);
/// Tombstones of ended sessions live for 24 hours.
pub const DEFAULT_TOMBSTONE_TTL: Duration = Duration::from_secs(24 * 3600);
/// 4 MiB, rmcp's own request body cap.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Longest accepted `Mcp-Session-Id`, in bytes.
pub const DEFAULT_MAX_SESSION_ID_LEN: usize = 1024;
/// Largest answer the layer makes to a refused request, in bytes, whatever the request's body.
pub const DEFAULT_MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Most answered entries in the answer to a refused JSON-RPC batch; a larger batch gets one
/// error without `id`.
pub const DEFAULT_MAX_BATCH_ANSWERS: usize = 64;
/// How long the layer waits for the body of a refused request before answering 408.
pub const DEFAULT_REFUSED_BODY_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// notifications, responses and unparseable bodies get 403. The refused body is read, up to
    /// the body cap, to build it.
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
    pub(crate) tombstone_ttl: Duration,
    pub(crate) sliding: bool,
    pub(crate) allow_anonymous: bool,
    pub(crate) end_on_mismatch: bool,
    pub(crate) mismatch_answer: MismatchAnswer,
    pub(crate) max_body_bytes: usize,
    pub(crate) max_session_id_len: usize,
    pub(crate) max_answer_bytes: usize,
    pub(crate) max_batch_answers: usize,
    pub(crate) refused_body_timeout: Duration,
    /// Where the inner `DELETE` that ends a session goes, when configured.
    pub(crate) end_session_uri: Option<Uri>,
    pub(crate) end_request_hook: Option<EndRequestHook>,
    /// The path and `Host` of the last request through this layer that created a session: values
    /// the inner service accepted, used for the `DELETE` that ends a session when no
    /// [`end_session_uri`](Self::end_session_uri) is configured.
    pub(crate) created_at: Arc<Mutex<Option<super::session::InnerHead>>>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            binding_ttl: DEFAULT_BINDING_TTL,
            tombstone_ttl: DEFAULT_TOMBSTONE_TTL,
            sliding: true,
            allow_anonymous: false,
            end_on_mismatch: true,
            mismatch_answer: MismatchAnswer::Mcp,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_session_id_len: DEFAULT_MAX_SESSION_ID_LEN,
            max_answer_bytes: DEFAULT_MAX_ANSWER_BYTES,
            max_batch_answers: DEFAULT_MAX_BATCH_ANSWERS,
            refused_body_timeout: DEFAULT_REFUSED_BODY_TIMEOUT,
            end_session_uri: None,
            end_request_hook: None,
            created_at: Arc::default(),
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("binding_ttl", &self.binding_ttl)
            .field("tombstone_ttl", &self.tombstone_ttl)
            .field("sliding", &self.sliding)
            .field("allow_anonymous", &self.allow_anonymous)
            .field("end_on_mismatch", &self.end_on_mismatch)
            .field("mismatch_answer", &self.mismatch_answer)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_session_id_len", &self.max_session_id_len)
            .field("max_answer_bytes", &self.max_answer_bytes)
            .field("max_batch_answers", &self.max_batch_answers)
            .field("refused_body_timeout", &self.refused_body_timeout)
            .field("end_session_uri", &self.end_session_uri)
            .field("end_request_hook", &self.end_request_hook.is_some())
            .finish_non_exhaustive()
    }
}

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
///     .store(MemoryStore::new().with_capacity(1_000_000))
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
impl SessionBindingLayer<crate::store::MemoryStore> {
    /// A layer on a new [`MemoryStore`](crate::store::MemoryStore), reading this crate's
    /// [`Identity`](crate::Identity) from the request extensions, with the defaults.
    pub fn new() -> Self {
        Self::with_store(crate::store::MemoryStore::new())
    }
}

#[cfg(feature = "memory")]
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
    /// Uses another binding store.
    pub fn store<St2: BindingStore + Clone>(self, store: St2) -> SessionBindingLayer<St2, I> {
        SessionBindingLayer {
            store,
            identity: self.identity,
            config: self.config,
        }
    }

    /// Reads the identity with another extractor.
    ///
    /// ```
    /// # #[cfg(feature = "memory")] {
    /// use mcp_session_binding::{SessionBindingLayer, identity::FromClaims};
    ///
    /// let layer = SessionBindingLayer::new().identity(FromClaims);
    /// # let _ = layer;
    /// # }
    /// ```
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

    /// Cap on the body the mismatch path reads (default 4 MiB). Over it: 413.
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.config.max_body_bytes = bytes;
        self
    }

    /// Cap on the `Mcp-Session-Id` length (default 1024 bytes). Over it: 400.
    pub fn max_session_id_len(mut self, bytes: usize) -> Self {
        self.config.max_session_id_len = bytes;
        self
    }

    /// How long a binding lives (default 24 h), counted from the last refresh when sliding.
    /// Make it at least as long as the MCP server keeps idle sessions.
    pub fn binding_ttl(mut self, ttl: Duration) -> Self {
        self.config.binding_ttl = ttl;
        self
    }

    /// How long the tombstone of an ended session lives (default 24 h). Until it expires, the id
    /// can never be bound again; after, it reads as unknown (still 404).
    pub fn tombstone_ttl(mut self, ttl: Duration) -> Self {
        self.config.tombstone_ttl = ttl;
        self
    }

    /// Whether activity extends a binding (default `true`). The store refreshes at most once per
    /// half TTL, not on every request.
    pub fn sliding_expiry(mut self, sliding: bool) -> Self {
        self.config.sliding = sliding;
        self
    }

    /// Largest answer to a refused request (default 64 KiB), whatever its body. An answer that
    /// would be larger (a batch of many requests, a huge `id`) is replaced by one JSON-RPC error
    /// without `id`.
    ///
    /// ```
    /// # #[cfg(feature = "memory")] {
    /// use mcp_session_binding::SessionBindingLayer;
    ///
    /// let layer = SessionBindingLayer::new().max_answer_bytes(16 * 1024);
    /// # let _ = layer;
    /// # }
    /// ```
    pub fn max_answer_bytes(mut self, bytes: usize) -> Self {
        self.config.max_answer_bytes = bytes;
        self
    }

    /// Most requests answered one by one in a refused JSON-RPC batch (default 64). A batch with
    /// more requests, or with any element that is not a JSON-RPC message, gets one JSON-RPC error
    /// without `id`.
    ///
    /// ```
    /// # #[cfg(feature = "memory")] {
    /// use mcp_session_binding::SessionBindingLayer;
    ///
    /// let layer = SessionBindingLayer::new().max_batch_answers(16);
    /// # let _ = layer;
    /// # }
    /// ```
    pub fn max_batch_answers(mut self, entries: usize) -> Self {
        self.config.max_batch_answers = entries;
        self
    }

    /// How long the layer reads the body of a refused request (default 10 s). Past it the
    /// caller gets 408 with a JSON-RPC error; the session is ended all the same (ending starts
    /// before the body is read).
    ///
    /// ```
    /// # #[cfg(feature = "memory")] {
    /// use std::time::Duration;
    /// use mcp_session_binding::SessionBindingLayer;
    ///
    /// let layer = SessionBindingLayer::new().refused_body_timeout(Duration::from_secs(2));
    /// # let _ = layer;
    /// # }
    /// ```
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
    ///
    /// ```
    /// # #[cfg(feature = "memory")] {
    /// use mcp_session_binding::SessionBindingLayer;
    ///
    /// let layer = SessionBindingLayer::new()
    ///     .end_session_uri(http::Uri::from_static("http://localhost:8080/mcp"));
    /// # let _ = layer;
    /// # }
    /// ```
    pub fn end_session_uri(mut self, uri: Uri) -> Self {
        self.config.end_session_uri = Some(uri);
        self
    }

    /// A hook that adjusts the `DELETE` the layer sends the inner service to end a session,
    /// for inner services that need more than the session id to accept it (an upstream that
    /// wants credentials, a routing header). It runs last, on the request head the layer built.
    ///
    /// ```
    /// # #[cfg(feature = "memory")] {
    /// use http::HeaderValue;
    /// use mcp_session_binding::SessionBindingLayer;
    ///
    /// let layer = SessionBindingLayer::new().end_request_hook(|parts| {
    ///     parts
    ///         .headers
    ///         .insert("x-internal-auth", HeaderValue::from_static("layer-secret"));
    /// });
    /// # let _ = layer;
    /// # }
    /// ```
    pub fn end_request_hook(mut self, hook: impl Fn(&mut Parts) + Send + Sync + 'static) -> Self {
        self.config.end_request_hook = Some(Arc::new(hook));
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
