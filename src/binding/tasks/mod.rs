//! Tasks (MCP tasks extension, revision 2026-07-28 and later) bound to the principal whose
//! `tools/call` created them.
//!
//! Revision 2026-07-28 has no sessions, so the hijack a session binding stops moved to task ids:
//! whoever knows one can poll, feed or cancel the task. This module
//!
//! - **records** each task a `tools/call` creates: the answer (JSON, or an event of an SSE
//!   stream) whose `result.resultType` is `"task"` carries `result.taskId`; the layer stores
//!   `taskId → (iss, sub)` under [`KeyDerivation::task`], a key space of its own in the
//!   same [`BindingStore`] (so on Redis every replica sees it), before that answer leaves the
//!   layer;
//! - **checks** `tasks/get`, `tasks/update` and `tasks/cancel`: the task id is the `Mcp-Name`
//!   header, trusted because the request names a revision (2026-07-28 or later) whose servers
//!   must reject a header that does not match the body. A task the caller did not create, an
//!   unknown one, and an expired record all get the same answer: JSON-RPC `-32602`
//!   `unknown task: <id>` with the request's `id` (rmcp's own answer for an unknown task), and
//!   nothing is forwarded, so the answer tells nothing about other callers' tasks;
//! - **filters** `subscriptions/listen` streams: a `notifications/tasks` event about a task the
//!   caller did not create is dropped.
//!
//! Which sessionless requests take these paths is decided from the `Mcp-Method` header alone:
//! every other request passes as before, and no request body is read except to answer a refused
//! one. Answers are read by the shared scanner ([`scan`](crate::protocol::scan)): JSON after
//! unescaping, SSE in every framing a client accepts.
//! [`TaskParamsLayer`](crate::task_params::TaskParamsLayer) uses the same recording and checks
//! for tasks reached from session-era sessions, by their bodies.
//!
//! Task records are a kind of record of their own in the store
//! ([`BindingStore::bind_task`]), so tasks never count against the per-identity session limits.
//!
//! [`KeyDerivation::task`]: crate::store::KeyDerivation::task

use std::time::Duration;

use http::{Request, Response};
use http_body::Body;
use tower::Service;

use crate::{
    Identity, ResponseBody,
    binding::{
        decide,
        plumbing::Carried,
        reject::{self, RejectionReason},
        trace,
    },
    protocol::early,
    store::{BindingStore, SessionKey, StoreError},
};

mod capture;
mod record;

pub(crate) use crate::binding::refuse::answer_for;
use crate::binding::refuse::refusal;
pub(crate) use capture::{Capture, Mode};

/// Checks a `tasks/get`, `tasks/update` or `tasks/cancel`: forwards it when the caller created
/// the task, else answers without forwarding.
pub(crate) async fn check<S, St, ReqBody, ResBody>(
    mut binding: Carried<S, St>,
    caller: Option<Identity>,
    task_id: Result<String, &'static str>,
    parts: http::request::Parts,
    body: ReqBody,
) -> Result<Response<ResponseBody<ResBody>>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    St: BindingStore,
    ReqBody: Body<Data: bytes::Buf>,
{
    let (store, config) = (&binding.store, &binding.config);
    let caller = caller.as_ref();
    let answer = match task_id {
        Err(why) => {
            let reason = RejectionReason::InvalidTaskRequest;
            trace::rejected(reason, caller, None, Some(why));
            refusal(&parts, body, config, reason, why).await
        }
        Ok(task_id) => match ownership(store, caller, &task_id, Some(config.task_ttl)).await {
            (_, decide::Task::Forward) => {
                crate::metrics::task_forwarded();
                let response = binding.inner.call(Request::from_parts(parts, body)).await?;
                return Ok(response.map(ResponseBody::inner));
            }
            (key, decide::Task::Unknown(reason)) => {
                trace::unknown_task(reason, caller, key);
                let message = format!("unknown task: {task_id}");
                refusal(&parts, body, config, reason, &message).await
            }
            (_, decide::Task::Unavailable) => {
                let answer = reject::plain(RejectionReason::StoreUnavailable, None);
                early::answer(parts.version, body, answer).await
            }
        },
    };
    Ok(answer.map(ResponseBody::answer))
}

/// The first of `task_ids` that `caller` may not use, with its key and the decision on it;
/// `Ok` when the caller created every one. Each record is read with `slide`.
pub(crate) async fn owns_all<'a, St: BindingStore>(
    store: &St,
    caller: Option<&Identity>,
    task_ids: &'a [String],
    slide: Option<Duration>,
) -> Result<(), (&'a str, SessionKey, decide::Task)> {
    for task_id in task_ids {
        match ownership(store, caller, task_id, slide).await {
            (_, decide::Task::Forward) => {}
            (key, decision) => return Err((task_id, key, decision)),
        }
    }
    Ok(())
}

/// Whether `caller` may use the task `task_id` (its record read with `slide`), and the task's
/// key: every task check asks here. Store failures are logged.
pub(crate) async fn ownership<St: BindingStore>(
    store: &St,
    caller: Option<&Identity>,
    task_id: &str,
    slide: Option<Duration>,
) -> (SessionKey, decide::Task) {
    let (key, found) = record::read(store, caller, task_id, slide).await;
    let found = found.as_ref().map(Option::as_ref).map_err(StoreError::kind);
    (key, decide::task(found, caller))
}
