//! Binding the session a response creates, before its id leaves the layer. The work after a
//! response is carried by [`After`](super::plumbing::After); this file says which responses
//! need it and binds.

use std::sync::Arc;

use http::Response;

use crate::{
    Identity, ResponseBody,
    binding::config::{Config, InnerHead},
    binding::decide,
    binding::end::{Inner, end_session},
    binding::plumbing::AfterKind,
    binding::reject::{self, RejectionReason},
    binding::trace,
    protocol::headers::{self, MCP_SESSION_ID, SessionHeader},
    store::{BindingStore, StoreError},
};

/// Whether `response` needs the work of `kind`: a successful answer to a request without a
/// session that carries a session id (bound before it leaves), or a successful `DELETE` of its
/// owner (tombstoned). Any other response leaves as it is.
pub(super) fn needs_work<B>(kind: &AfterKind, response: &Response<B>) -> bool {
    response.status().is_success()
        && match kind {
            AfterKind::BindNew { .. } => response.headers().contains_key(MCP_SESSION_ID),
            AfterKind::EndOnSuccess(_) => true,
        }
}

/// Binds the session a response just created, before the response leaves the layer.
pub(super) async fn bind_new<S, St, ReqBody, ResBody>(
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
    let minted = response.headers().get_all(MCP_SESSION_ID).iter();
    let session = match headers::session_header(minted, config.max_session_id_len) {
        SessionHeader::Present(session) => session.clone(),
        SessionHeader::Absent | SessionHeader::Malformed(_) => {
            let what = "the inner service minted a session id that is not a valid Mcp-Session-Id";
            let reason = RejectionReason::InvalidMintedSessionId;
            trace::rejected(reason, caller.as_ref(), None, Some(what));
            return reject::plain(reason, None).map(ResponseBody::answer);
        }
    };
    let key = store.key_derivation().session(headers::as_str(&session));
    let owner = match decide::new_owner(caller.as_ref(), credentials, &config.policy()) {
        Ok(owner) => owner,
        Err(reason) => {
            trace::new_session_refused(reason, key);
            end_session(inner, store, None, config, head, session, None).await;
            return reject::plain(reason, None).map(ResponseBody::answer);
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
        head.remember(&config);
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
        None => reject::plain(reason, None).map(ResponseBody::answer),
    }
}
