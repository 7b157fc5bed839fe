//! Work after the inner service answered (binding a new session, tombstoning on the owner's
//! DELETE), and ending a session.

use futures::future::{BoxFuture, FutureExt};
use http::{HeaderValue, Method, Request, Response, Uri, header::HOST};
use tower::{Service, ServiceExt};

use crate::{
    Identity, ResponseBody,
    layer::Config,
    rejection::{self, RejectionReason},
    session_id::{self, MCP_PROTOCOL_VERSION, MCP_SESSION_ID, SessionHeader},
    store::{BindOutcome, BindingStore, Owner, SessionKey, StoreErrorKind},
    trace,
};

/// What a `DELETE` to the inner service needs from the original request.
#[derive(Clone, Debug)]
pub(crate) struct InnerHead {
    uri: Uri,
    host: Option<HeaderValue>,
    protocol_version: Option<HeaderValue>,
}

impl InnerHead {
    pub(crate) fn of(parts: &http::request::Parts) -> Self {
        Self {
            uri: parts.uri.clone(),
            host: parts.headers.get(HOST).cloned(),
            protocol_version: parts.headers.get(MCP_PROTOCOL_VERSION).cloned(),
        }
    }

    fn delete<B: Default>(&self, session: HeaderValue) -> Request<B> {
        let mut request = Request::new(B::default());
        *request.method_mut() = Method::DELETE;
        *request.uri_mut() = self.uri.clone();
        let headers = request.headers_mut();
        headers.insert(MCP_SESSION_ID, session);
        if let Some(host) = &self.host {
            headers.insert(HOST, host.clone());
        }
        if let Some(version) = &self.protocol_version {
            headers.insert(MCP_PROTOCOL_VERSION, version.clone());
        }
        request
    }
}

/// Ends a session: tombstones `key` (when given) so every replica answers 404, then sends a
/// `DELETE` to the inner service so it frees the session. Failures are logged, not returned: the
/// caller's answer does not depend on them.
pub(crate) async fn end_session<S, St, ReqBody, ResBody>(
    inner: S,
    store: &St,
    tombstone: Option<SessionKey>,
    config: &Config,
    head: &InnerHead,
    session: HeaderValue,
    caller: Option<&Identity>,
) where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    St: BindingStore,
    ReqBody: Default,
{
    let key = SessionKey::from_session_id(session_id::as_str(&session));
    if let Some(key) = tombstone
        && let Err(error) = store.end(key, config.tombstone_ttl).await
    {
        trace::failed(
            "store_error",
            caller,
            key,
            &error,
            "could not tombstone an ended session",
        );
    }
    match inner.oneshot(head.delete(session)).await {
        Ok(response) => trace::ended(caller, key, Some(response.status().as_u16())),
        Err(_) => {
            let what = "inner service failed the DELETE that ends the session";
            trace::failed("ended", caller, key, &"inner service error", what);
        }
    }
}

/// Work to do once the inner service has answered.
pub(crate) struct After<S, St> {
    pub(crate) inner: S,
    pub(crate) store: St,
    pub(crate) config: Config,
    pub(crate) caller: Option<Identity>,
    pub(crate) kind: AfterKind,
}

pub(crate) enum AfterKind {
    /// A request without a session: bind the session its response creates.
    BindNew(InnerHead),
    /// The owner's `DELETE`: tombstone the session once the inner service agreed.
    EndOnSuccess(SessionKey),
}

impl<S, St> After<S, St> {
    /// Whether the response needs this work (the rest passes through untouched).
    pub(crate) fn applies_to<B>(&self, response: &Response<B>) -> bool {
        response.status().is_success()
            && match self.kind {
                AfterKind::BindNew(_) => response.headers().contains_key(MCP_SESSION_ID),
                AfterKind::EndOnSuccess(_) => true,
            }
    }

    pub(crate) fn run<ReqBody, ResBody>(
        self,
        response: Response<ResBody>,
    ) -> BoxFuture<'static, Result<Response<ResponseBody<ResBody>>, S::Error>>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>> + Send + 'static,
        S::Future: Send,
        St: BindingStore,
        ReqBody: Default + Send + 'static,
        ResBody: Send + 'static,
    {
        let After {
            inner,
            store,
            config,
            caller,
            kind,
        } = self;
        async move {
            match kind {
                AfterKind::EndOnSuccess(key) => {
                    match store.end(key, config.tombstone_ttl).await {
                        Ok(()) => trace::owner_ended(caller.as_ref(), key),
                        Err(error) => trace::failed(
                            "store_error",
                            caller.as_ref(),
                            key,
                            &error,
                            "could not tombstone a session its owner deleted",
                        ),
                    }
                    Ok(response.map(ResponseBody::inner))
                }
                AfterKind::BindNew(head) => {
                    Ok(bind_new(inner, &store, &config, caller, &head, response).await)
                }
            }
        }
        .boxed()
    }
}

/// Binds the session a response just created, before the response leaves the layer.
async fn bind_new<S, St, ReqBody, ResBody>(
    inner: S,
    store: &St,
    config: &Config,
    caller: Option<Identity>,
    head: &InnerHead,
    response: Response<ResBody>,
) -> Response<ResponseBody<ResBody>>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    St: BindingStore,
    ReqBody: Default,
{
    let session = match session_id::session_header(response.headers(), config.max_session_id_len) {
        SessionHeader::Present(session) => session.clone(),
        SessionHeader::Absent | SessionHeader::Malformed(_) => {
            tracing::error!(
                reason = "invalid_minted_session_id",
                "the inner service minted a session id that is not a valid Mcp-Session-Id"
            );
            return refuse(RejectionReason::InvalidMintedSessionId);
        }
    };
    let key = SessionKey::from_session_id(session_id::as_str(&session));
    let owner = match (&caller, config.allow_anonymous) {
        (Some(identity), _) => Owner::User(identity.clone()),
        (None, true) => Owner::Anonymous,
        (None, false) => {
            trace::rejected(RejectionReason::MissingIdentity, None, key);
            end_session(inner, store, None, config, head, session, caller.as_ref()).await;
            return refuse(RejectionReason::MissingIdentity);
        }
    };
    let limit = config.session_limit(&owner);
    let (tombstone, reason) = match store.bind(key, &owner, config.binding_ttl, limit).await {
        Ok(BindOutcome::Created) => {
            trace::bound(caller.as_ref(), key);
            return response.map(ResponseBody::inner);
        }
        Ok(BindOutcome::LimitReached { retry_after }) => {
            // Nothing was written: no tombstone, the inner session is ended and no id leaves.
            let reason = RejectionReason::TooManySessions;
            trace::rejected(reason, caller.as_ref(), key);
            end_session(inner, store, None, config, head, session, caller.as_ref()).await;
            return rejection::too_many_sessions(retry_after).map(ResponseBody::answer);
        }
        Ok(BindOutcome::AlreadyBound(_) | BindOutcome::AlreadyEnded) => {
            trace::rejected(RejectionReason::BindConflict, caller.as_ref(), key);
            (Some(key), RejectionReason::BindConflict)
        }
        Err(error) if error.kind() == StoreErrorKind::Corrupt => {
            let what = "a new session id collides with a corrupt stored value";
            trace::failed("corrupt_binding", caller.as_ref(), key, &error, what);
            (Some(key), RejectionReason::BindConflict)
        }
        Err(error) => {
            let what = "could not bind a new session; ending it";
            trace::failed("store_error", caller.as_ref(), key, &error, what);
            (None, RejectionReason::StoreUnavailable)
        }
    };
    // Never hand out a session that is not bound to its caller.
    end_session(
        inner,
        store,
        tombstone,
        config,
        head,
        session,
        caller.as_ref(),
    )
    .await;
    refuse(reason)
}

fn refuse<B>(reason: RejectionReason) -> Response<ResponseBody<B>> {
    rejection::plain(reason, None).map(ResponseBody::answer)
}
