//! Work after the inner service answered: binding a new session before its id leaves the layer,
//! and tombstoning a session its owner deleted.

use std::{marker::PhantomData, sync::Arc};

use futures::future::FutureExt;
use http::Response;

use crate::{
    Identity, ResponseBody,
    binding::config::{Config, InnerHead},
    binding::decide,
    binding::end::{Inner, detach, end_session},
    binding::future::{AfterResponse, Then},
    binding::reject::{self, RejectionReason},
    binding::trace,
    protocol::headers::{self, MCP_SESSION_ID, SessionHeader},
    store::{BindingStore, SessionKey, StoreError},
};

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
    let outcome = store
        .bind(crate::store::Record::new(key, &owner, ttl), limit)
        .await;
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
    trace::bind_refused(reason, caller.as_ref(), key, &outcome);
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
