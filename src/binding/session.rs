//! Work after the inner service answered (binding a new session, tombstoning on the owner's
//! DELETE), and ending a session.

use std::{future::Future, marker::PhantomData, sync::Arc};

use futures::future::{BoxFuture, FutureExt};
use http::{HeaderValue, Request, Response};
use tower::{Service, ServiceExt};

use crate::{
    Identity, ResponseBody,
    binding::config::{Config, InnerHead},
    binding::decide,
    binding::future::{AfterResponse, Then},
    binding::reject::{self, RejectionReason},
    binding::trace,
    protocol::headers::{self, MCP_SESSION_ID, SessionHeader},
    store::{BindOutcome, BindingStore, SessionKey, StoreError, StoreErrorKind},
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

/// Work to do once the inner service has answered.
pub(crate) struct After<S, St, ReqBody> {
    pub(crate) inner: S,
    pub(crate) store: St,
    pub(crate) config: Arc<Config>,
    pub(crate) caller: Option<Identity>,
    pub(crate) kind: AfterKind,
    pub(crate) request: PhantomData<fn(ReqBody)>,
}

pub(crate) enum AfterKind {
    /// A request without a session: bind the session its response creates. `credentials`: the
    /// request carried an `Authorization` header.
    BindNew { head: InnerHead, credentials: bool },
    /// The owner's `DELETE`: tombstone the session once the inner service agreed.
    EndOnSuccess(SessionKey),
}

impl<S, St, ReqBody, ResBody> AfterResponse<ResBody, S::Error> for After<S, St, ReqBody>
where
    S: Inner<ReqBody, ResBody>,
    St: BindingStore + Clone,
    ReqBody: Default + Send + 'static,
    ResBody: Send + 'static,
{
    fn applies_to(&self, response: &Response<ResBody>) -> bool {
        response.status().is_success()
            && match self.kind {
                AfterKind::BindNew { .. } => response.headers().contains_key(MCP_SESSION_ID),
                AfterKind::EndOnSuccess(_) => true,
            }
    }

    fn run(self: Box<Self>, response: Response<ResBody>) -> Then<ResBody, S::Error> {
        if !self.applies_to(&response) {
            return Then::Now(Ok(response.map(ResponseBody::inner)));
        }
        let After {
            inner,
            store,
            config,
            caller,
            kind,
            request: _,
        } = *self;
        let work = async move {
            match kind {
                AfterKind::EndOnSuccess(key) => {
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
                    Ok(response.map(ResponseBody::inner))
                }
                AfterKind::BindNew { head, credentials } => {
                    Ok(bind_new(inner, store, config, caller, head, credentials, response).await)
                }
            }
        }
        .boxed();
        Then::Later(work)
    }
}

/// Binds the session a response just created, before the response leaves the layer.
async fn bind_new<S, St, ReqBody, ResBody>(
    inner: S,
    store: St,
    config: Arc<Config>,
    caller: Option<Identity>,
    head: InnerHead,
    credentials: bool,
    response: Response<ResBody>,
) -> Response<ResponseBody<ResBody>>
where
    S: Inner<ReqBody, ResBody>,
    St: BindingStore + Clone,
    ReqBody: Default + Send + 'static,
    ResBody: Send + 'static,
{
    let session = match headers::session_header(response.headers(), config.max_session_id_len) {
        SessionHeader::Present(session) => session.clone(),
        SessionHeader::Absent | SessionHeader::Malformed(_) => {
            let what = "the inner service minted a session id that is not a valid Mcp-Session-Id";
            let reason = RejectionReason::InvalidMintedSessionId;
            trace::rejected(reason, caller.as_ref(), None, Some(what));
            return refuse(reason);
        }
    };
    let key = store.key_derivation().session(headers::as_str(&session));
    let owner = match decide::new_owner(caller.as_ref(), credentials, &config.policy()) {
        Ok(owner) => owner,
        Err(reason) => {
            if reason == RejectionReason::CredentialsWithoutIdentity {
                trace::misconfigured(key);
            } else {
                trace::rejected(reason, None, Some(key), None);
            }
            end_session(inner, store, None, config, head, session, None).await;
            return refuse(reason);
        }
    };
    let limit = config.session_limit(&owner);
    let ttl = config.binding_ttl_of(&owner);
    let outcome = store.bind(key, &owner, ttl, limit).await;
    let decision = decide::bound(outcome.as_ref().map_err(StoreError::kind));
    let decide::Bound::Refuse {
        reason,
        end,
        tombstone,
        retry_after,
    } = decision
    else {
        trace::bound(caller.as_ref(), key);
        if config.end_session_uri.is_none()
            && let Ok(mut created_at) = config.created_at.lock()
        {
            *created_at = Some(head);
        }
        return response.map(ResponseBody::inner);
    };
    match &outcome {
        Err(error) if error.kind() == StoreErrorKind::Corrupt => {
            let what = "a new session id collides with a corrupt stored value";
            let corrupt = RejectionReason::CorruptBinding;
            trace::failed(corrupt, caller.as_ref(), key, error, what);
        }
        Err(error) => {
            let what = "could not bind a new session; ending it";
            trace::failed(reason, caller.as_ref(), key, error, what);
        }
        Ok(BindOutcome::AlreadyBound(_)) => {
            let what = "the inner service minted the id of a live session; it is left as it is";
            trace::rejected(reason, caller.as_ref(), Some(key), Some(what));
        }
        Ok(_) => trace::rejected(reason, caller.as_ref(), Some(key), None),
    }
    // Never hand out a session that is not bound to its caller.
    if end {
        let tombstone = tombstone.then_some(key);
        end_session(inner, store, tombstone, config, head, session, caller).await;
    }
    match retry_after {
        Some(retry_after) => reject::too_many_sessions(retry_after).map(ResponseBody::answer),
        None => refuse(reason),
    }
}

fn refuse<B>(reason: RejectionReason) -> Response<ResponseBody<B>> {
    reject::plain(reason, None).map(ResponseBody::answer)
}
