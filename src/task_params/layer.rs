//! [`TaskParamsLayer`], its settings, and the [`TaskParams`] service it makes (its type and
//! constructor; what it does with a request is `service`'s).

use std::{fmt, sync::Arc, time::Duration};

use tower::Layer;

use super::config::{DEFAULT_MAX_LISTEN_TASK_IDS, Settings};
use crate::{binding::config::Config, store::BindingStore};

/// Binds the task ids that request bodies carry to the caller whose `tools/call` created them:
/// `subscriptions/listen` (2026-07-28) and the tasks of session-era (2025-11-25) sessions. See the
/// [module docs](super).
///
/// Put it *inside* [`SessionBindingLayer`](crate::SessionBindingLayer), on the **same store**
/// (clone it: on Redis every replica shares the records), with the same
/// [`task_ttl`](Self::task_ttl) and [`max_task_id_len`](Self::max_task_id_len). It reads the
/// caller's [`Identity`](crate::Identity) from the request extensions, where the binding layer
/// leaves the identity it checked.
///
/// ```
/// # #[cfg(feature = "memory")] {
/// use mcp_session_binding::{SessionBindingLayer, store::MemoryStore, task_params::TaskParamsLayer};
/// use tower::ServiceBuilder;
///
/// let store = MemoryStore::new();
/// let mcp = tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Empty::<bytes::Bytes>::new()))
/// });
/// let service = ServiceBuilder::new()
///     .layer(SessionBindingLayer::with_store(store.clone())) // outer: checks, records tasks
///     .layer(TaskParamsLayer::new(store))                     // inner: reads task ids in bodies
///     .service(mcp);
/// # let _ = service;
/// # }
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct TaskParamsLayer<St> {
    store: St,
    settings: Settings,
}

impl<St: BindingStore + Clone> TaskParamsLayer<St> {
    /// A layer on `store` (the binding layer's): `subscriptions/listen` and session-era tasks
    /// checked, the binding layer's defaults for the caps and the task TTL.
    pub fn new(store: St) -> Self {
        Self {
            store,
            settings: Settings {
                config: Arc::new(Config::default()),
                legacy: true,
                listen: true,
                max_listen_task_ids: DEFAULT_MAX_LISTEN_TASK_IDS,
            },
        }
    }
}

impl<St> TaskParamsLayer<St> {
    fn config(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.settings.config)
    }

    /// Whether tasks reached from session-era (2025-11-25 and older) sessions are bound to their
    /// creator (default `true`). rmcp serves the tasks extension inside such sessions too, so
    /// turn it off only for a server that serves no tasks there. On, the body of every
    /// session-era POST is read: see
    /// [the cost](super#session-era-tasks-cost-a-body-read-on-every-session-era-post).
    pub fn legacy_tasks(mut self, on: bool) -> Self {
        self.settings.legacy = on;
        self
    }

    /// Whether `subscriptions/listen` requests (2026-07-28) may name only the caller's tasks in
    /// `params.notifications.taskIds` (default `true`). The binding layer records the tasks:
    /// with its [`bind_tasks`](crate::SessionBindingLayer::bind_tasks) off, turn this off too,
    /// or every listen naming a task is refused.
    pub fn check_listen(mut self, on: bool) -> Self {
        self.settings.listen = on;
        self
    }

    /// Cap on the request bodies the layer reads (default 4 MiB, rmcp's own request body cap).
    /// Over it: 413, not forwarded.
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.config().max_body_bytes = bytes;
        self
    }

    /// How long the layer waits for a body it reads (default 10 s, as the binding layer's
    /// [`refused_body_timeout`](crate::SessionBindingLayer::refused_body_timeout)). Past it:
    /// 408, not forwarded.
    pub fn body_timeout(mut self, timeout: Duration) -> Self {
        self.config().refused_body_timeout = timeout;
        self
    }

    /// The longest a legacy task record lives (default 24 h, as the binding layer's
    /// [`task_ttl`](crate::SessionBindingLayer::task_ttl)): twice the task's own `ttl` plus a
    /// minute when that is shorter; each check slides it. Use the binding layer's
    /// [`task_ttl`](crate::SessionBindingLayer::task_ttl).
    pub fn task_ttl(mut self, ttl: Duration) -> Self {
        self.config().task_ttl = ttl;
        self
    }

    /// Cap on a task id in a body (default 256 bytes, as the binding layer's
    /// [`max_task_id_len`](crate::SessionBindingLayer::max_task_id_len)). Over it:
    /// JSON-RPC `-32602`, not forwarded. Use the binding layer's
    /// [`max_task_id_len`](crate::SessionBindingLayer::max_task_id_len).
    pub fn max_task_id_len(mut self, bytes: usize) -> Self {
        self.config().max_task_id_len = bytes;
        self
    }

    /// Most task ids one `subscriptions/listen` may name (default 64: each costs a store
    /// lookup before the stream opens). Over it: JSON-RPC `-32602`, not forwarded.
    pub fn max_listen_task_ids(mut self, max: usize) -> Self {
        self.settings.max_listen_task_ids = max;
        self
    }
}

impl<S, St: Clone> Layer<S> for TaskParamsLayer<St> {
    type Service = TaskParams<S, St>;

    fn layer(&self, inner: S) -> Self::Service {
        TaskParams::new(inner, self.store.clone(), Arc::new(self.settings.clone()))
    }
}

/// The service [`TaskParamsLayer`] makes.
///
/// ```
/// # #[cfg(feature = "memory")] {
/// use mcp_session_binding::{store::MemoryStore, task_params::{TaskParams, TaskParamsLayer}};
/// use tower::Layer;
///
/// let mcp = tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Empty::<bytes::Bytes>::new()))
/// });
/// let service: TaskParams<_, MemoryStore> = TaskParamsLayer::new(MemoryStore::new()).layer(mcp);
/// # let _ = service;
/// # }
/// ```
#[derive(Clone)]
pub struct TaskParams<S, St> {
    pub(super) inner: S,
    pub(super) store: St,
    pub(super) settings: Arc<Settings>,
}

impl<S, St> TaskParams<S, St> {
    fn new(inner: S, store: St, settings: Arc<Settings>) -> Self {
        Self {
            inner,
            store,
            settings,
        }
    }
}

impl<S: Clone, St: Clone> TaskParams<S, St> {
    /// This service with the instance polled ready, for a future that calls it; a clone stays
    /// for the next request.
    pub(super) fn take(&mut self) -> Self {
        Self {
            inner: crate::ready::take_ready(&mut self.inner),
            store: self.store.clone(),
            settings: self.settings.clone(),
        }
    }
}

impl<S: fmt::Debug, St> fmt::Debug for TaskParams<S, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskParams")
            .field("inner", &self.inner)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}
