//! Ending a session: the tombstone every replica reads, and the `DELETE` that frees the inner
//! service's session. Whether to end one is [`decide`](super::decide)'s.

use std::{future::Future, sync::Arc};

use futures::future::{BoxFuture, FutureExt};
use http::{HeaderValue, Request, Response};
use tower::{Service, ServiceExt};

use crate::{
    Identity,
    binding::config::{Config, InnerHead},
    binding::reject::RejectionReason,
    binding::trace,
    protocol::headers,
    store::{BindingStore, SessionKey},
};

/// The inner service as ending a session needs it: it takes the `DELETE`, from a task of its own.
pub(crate) trait Inner<ReqBody, ResBody>:
    Service<Request<ReqBody>, Response = Response<ResBody>, Future: Send> + Send + 'static
{
}

impl<T, ReqBody, ResBody> Inner<ReqBody, ResBody> for T where
    T: Service<Request<ReqBody>, Response = Response<ResBody>, Future: Send> + Send + 'static
{
}

/// Runs `work` to completion even if the returned future is dropped (the client went away, the
/// connection was reset): on a tokio runtime it is spawned. Outside one it runs inline.
pub(crate) fn detach(work: impl Future<Output = ()> + Send + 'static) -> BoxFuture<'static, ()> {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            let task = runtime.spawn(work);
            async move {
                let _ = task.await;
            }
            .boxed()
        }
        Err(_) => work.boxed(),
    }
}

/// Ends a session: tombstones `key` (when given) so every replica answers 404, then sends a
/// `DELETE` to the inner service so it frees the session. Failures are logged, not returned: the
/// caller's answer does not depend on them. The work is [detached](detach): it completes even
/// if the returned future is dropped.
pub(crate) fn end_session<S, St, ReqBody, ResBody>(
    inner: S,
    store: St,
    tombstone: Option<SessionKey>,
    config: Arc<Config>,
    head: InnerHead,
    session: HeaderValue,
    caller: Option<Identity>,
) -> BoxFuture<'static, ()>
where
    S: Inner<ReqBody, ResBody>,
    St: BindingStore,
    ReqBody: Default + Send + 'static,
    ResBody: Send + 'static,
{
    detach(async move {
        let caller = caller.as_ref();
        // The key the logs name: the one tombstoned, else the store's key of the session id.
        let key =
            tombstone.unwrap_or_else(|| store.key_derivation().session(headers::as_str(&session)));
        if let Some(key) = tombstone
            && let Err(error) = store.end(key, config.tombstone_ttl).await
        {
            trace::failed(
                RejectionReason::StoreUnavailable,
                caller,
                key,
                &error,
                "could not tombstone an ended session",
            );
        }
        let delete = head.delete(session, &config);
        match inner.oneshot(delete).await {
            Ok(response) => {
                let status = response.status();
                // 404: the inner service had already forgotten it; 405: it has no DELETE.
                if status.is_success() || status == 404 || status == 405 {
                    trace::ended(caller, key, Some(status.as_u16()));
                } else {
                    trace::end_failed(caller, key, Some(status.as_u16()));
                }
            }
            Err(_) => trace::end_failed(caller, key, None),
        }
    })
}

/// Tombstones the session its owner deleted (the inner service agreed), so every replica answers
/// 404 from now on. A failure is logged: the owner's answer does not depend on it. The work is
/// [detached](detach).
pub(crate) async fn tombstone_deleted<St: BindingStore + Send + 'static>(
    store: St,
    config: &Config,
    caller: Option<Identity>,
    key: SessionKey,
) {
    let ttl = config.tombstone_ttl;
    detach(async move {
        match store.end(key, ttl).await {
            Ok(()) => trace::owner_ended(caller.as_ref(), key),
            Err(error) => trace::failed(
                RejectionReason::StoreUnavailable,
                caller.as_ref(),
                key,
                &error,
                "could not tombstone a session its owner deleted",
            ),
        }
    })
    .await;
}
