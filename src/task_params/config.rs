//! The settings [`TaskParamsLayer`](super::TaskParamsLayer) gives its services.

use std::sync::Arc;

use crate::binding::config::Config;

/// Most task ids one `subscriptions/listen` may name in `params.notifications.taskIds`: 64.
/// Each costs a store lookup; a request naming more gets JSON-RPC `-32602`.
pub(crate) const DEFAULT_MAX_LISTEN_TASK_IDS: usize = 64;

/// The settings of the layer and its services, behind one `Arc`.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    /// Body cap, time limit, answer cap, task TTL and id cap: the binding layer's settings and
    /// defaults, so both layers answer alike.
    pub(crate) config: Arc<Config>,
    pub(crate) legacy: bool,
    pub(crate) listen: bool,
    pub(crate) max_listen_task_ids: usize,
}
