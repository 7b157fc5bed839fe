//! Reading a task's record: under the key of the current secret, then, during a key rotation's
//! overlap, under the key before it; a store failure is logged. Whether the caller may use the
//! task is [`decide::task`](crate::binding::decide::task)'s, asked by
//! [`ownership`](super::ownership).

use std::time::Duration;

use crate::{
    Identity,
    binding::{reject::RejectionReason, trace},
    store::{BindingStore, Owner, SessionKey, StoreError, StoreErrorKind},
};

/// The record of the task `task_id` (read with `slide`), and the key it was read under.
pub(super) async fn read<St: BindingStore>(
    store: &St,
    caller: Option<&Identity>,
    task_id: &str,
    slide: Option<Duration>,
) -> (SessionKey, Result<Option<Owner>, StoreError>) {
    let mut key = store.key_derivation().task(task_id);
    let mut found = store.task_owner(key, slide).await;
    // A task recorded under the key secret before a rotation, during its overlap.
    if let (Ok(None), Some(old)) = (&found, store.key_derivation().previous_task(task_id)) {
        let before = store.task_owner(old, slide).await;
        if !matches!(before, Ok(None)) {
            (key, found) = (old, before);
        }
    }
    if let Err(error) = &found {
        let reason = match error.kind() {
            StoreErrorKind::Corrupt => RejectionReason::CorruptBinding,
            _ => RejectionReason::StoreUnavailable,
        };
        trace::failed(reason, caller, key, error, "task check failed");
    }
    (key, found)
}
