//! Carrying out a refusal: the answer made before a body is read, and, for a caller refused on
//! a session, ending the session and answering each request. What to refuse, and how, is
//! [`decide`](super::decide)'s.

use bytes::{Buf, Bytes};
use http::{Request, Response, StatusCode, request::Parts};
use http_body::Body;
use http_body_util::Full;
use serde_json::value::RawValue;
use tower::Service;

use crate::{
    Identity, ResponseBody,
    binding::{
        config::{Config, InnerHead},
        decide,
        end::end_session,
        plumbing::Checked,
        reject::{self, RejectionReason},
        trace,
    },
    protocol::{
        early,
        envelope::{self, Classified, Message},
        headers::MCP_SESSION_ID,
        jsonrpc::{Refusal, code},
    },
    store::{BindingStore, SessionKey},
};

/// The answer to a request of a session whose `Last-Event-ID` is not that session's.
pub(super) fn foreign_event_id(
    caller: Option<&Identity>,
    key: SessionKey,
    why: &str,
) -> Response<Full<Bytes>> {
    let reason = RejectionReason::ForeignEventId;
    trace::rejected(reason, caller, Some(key), Some(why));
    reject::plain(reason, None)
}

impl<S, St, ReqBody, ResBody> Checked<S, St, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Send + 'static,
    S::Future: Send,
    St: BindingStore,
    ReqBody: Body + Default + Send + 'static,
    ReqBody::Data: Buf,
    ResBody: Send + 'static,
{
    /// Answers a refused caller and ends the session (unless configured not to).
    ///
    /// The ending starts first, before the body is read, and is detached: it completes even if
    /// the caller resets the stream or closes the connection. The MCP answer waits for it, so a
    /// refused caller's answer means the session is over; the 404-style answer does not (it must
    /// look like an unknown session's).
    pub(super) async fn refuse(
        self,
        reason: RejectionReason,
        answer: decide::Answer,
        end: bool,
    ) -> Result<Response<ResponseBody<ResBody>>, S::Error> {
        let Checked {
            binding,
            caller,
            key,
            parts,
            body,
        } = self;
        let (ready, store, config) = (binding.inner, binding.store, binding.config);
        // Present: only requests with a valid session header get here.
        let session = parts.headers.get(MCP_SESSION_ID).cloned();
        let ending = match (end, session) {
            (true, Some(session)) => Some(end_session(
                ready,
                store,
                Some(key),
                config.clone(),
                InnerHead::for_ending(&config, &parts),
                session,
                caller,
            )),
            _ => None,
        };
        let version = parts.version;
        let answer = match answer {
            decide::Answer::NotFound => {
                let answer = reject::plain(RejectionReason::UnknownSession, None);
                return Ok(early::answer(version, body, answer)
                    .await
                    .map(ResponseBody::answer));
            }
            decide::Answer::PerRequest => mcp_answer(&parts, body, &config, reason).await,
            decide::Answer::Plain => {
                early::answer(version, body, reject::plain(reason, None)).await
            }
        };
        if let Some(ending) = ending {
            ending.await;
        }
        Ok(answer.map(ResponseBody::answer))
    }
}

/// Reads a refused POST body (up to the cap, within the time limit) and answers each request in
/// it, within the answer bound.
async fn mcp_answer<B>(
    parts: &Parts,
    body: B,
    config: &Config,
    reason: RejectionReason,
) -> Response<Full<Bytes>>
where
    B: Body,
    B::Data: Buf,
{
    match reject::read_refused(parts, body, config).await {
        Ok(bytes) => {
            let classified = envelope::classify(&bytes, config.max_batch_answers);
            reject::mismatch(&classified, reason, config.max_answer_bytes)
        }
        Err(answer) => answer,
    }
}

/// A `-32602` answer with `message`, carrying the refused request's `id` (its body is read
/// within the layer's bounds). A body without a usable id gets 400 and no `id`.
pub(crate) async fn refusal<B>(
    parts: &http::request::Parts,
    body: B,
    config: &Config,
    reason: RejectionReason,
    message: &str,
) -> Response<http_body_util::Full<Bytes>>
where
    B: Body,
    B::Data: bytes::Buf,
{
    match reject::read_refused(parts, body, config).await {
        Ok(bytes) => answer_for(&bytes, config, reason, code::INVALID_PARAMS, message),
        Err(answer) => answer,
    }
}

/// A JSON-RPC error (`code`, `message`) answering the request in `bytes` with its `id`; a body
/// without a usable id (a batch, a notification, not JSON-RPC) gets 400 and no `id`.
pub(crate) fn answer_for(
    bytes: &[u8],
    config: &Config,
    reason: RejectionReason,
    code: i32,
    message: &str,
) -> Response<http_body_util::Full<Bytes>> {
    let id = match envelope::classify(bytes, 1) {
        Classified::Single(Message::Request { id, .. }) => {
            serde_json::from_str::<&RawValue>(id).ok()
        }
        _ => None,
    };
    // The id came from the body, bounded by the body cap; the answer is bounded too.
    let id = id.filter(|id| id.get().len() + message.len() < config.max_answer_bytes);
    let status = match id {
        Some(_) => StatusCode::OK,
        None => StatusCode::BAD_REQUEST,
    };
    Refusal::new(status, code, message).id(id).response(reason)
}
