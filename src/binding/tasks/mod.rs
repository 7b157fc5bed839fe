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
//! one. Answers are read by the shared scanner ([`scan`]): JSON after unescaping, SSE in every
//! framing a client accepts. [`TaskParamsLayer`](crate::task_params::TaskParamsLayer) uses the
//! same recording and checks for tasks reached from session-era sessions, by their bodies.
//!
//! Task records are a kind of record of their own in the store
//! ([`BindingStore::bind_task`]), so tasks never count against the per-identity session limits.
//!
//! [`KeyDerivation::task`]: crate::store::KeyDerivation::task

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body::Body;
use serde_json::value::RawValue;
use tower::Service;

use crate::{
    Identity, ResponseBody,
    binding::{
        config::Config,
        decide,
        reject::{self, RejectionReason},
        trace,
    },
    protocol::{
        early,
        envelope::{self, Classified, Message},
        headers::{MCP_METHOD, MCP_NAME},
        jsonrpc::{Refusal, code},
    },
    store::{BindingStore, SessionKey, StoreError, StoreErrorKind},
};

mod capture;

pub(crate) use capture::{Capture, Mode};

/// What the layer does with a sessionless request, by its `Mcp-Method`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Route<'a> {
    /// `tools/call`: its answer may create a task, to record.
    Create,
    /// `tasks/get`, `tasks/update`, `tasks/cancel`: the task id from `Mcp-Name`, or why it is
    /// unusable.
    Check(Result<&'a str, &'static str>),
    /// `subscriptions/listen`: task notifications on its stream are filtered.
    Listen,
}

/// One header value, if the header is present exactly once.
fn single<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a HeaderValue> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => Some(value),
        _ => None,
    }
}

/// The route of a sessionless POST, from its headers only. `None`: nothing to do.
pub(crate) fn route(headers: &HeaderMap, max_task_id_len: usize) -> Option<Route<'_>> {
    let method = Method::of(single(headers, &MCP_METHOD)?.as_bytes())?;
    Some(method.route(headers, max_task_id_len))
}

/// The `Mcp-Method`s that take a route of their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    ToolsCall,
    Listen,
    /// `tasks/get`, `tasks/update`, `tasks/cancel`.
    Task,
}

impl Method {
    fn of(method: &[u8]) -> Option<Self> {
        match method {
            b"tools/call" => Some(Self::ToolsCall),
            b"subscriptions/listen" => Some(Self::Listen),
            b"tasks/get" | b"tasks/update" | b"tasks/cancel" => Some(Self::Task),
            _ => None,
        }
    }

    /// The route of a request with this method and `headers`.
    pub(crate) fn route(self, headers: &HeaderMap, max_task_id_len: usize) -> Route<'_> {
        match self {
            Self::ToolsCall => Route::Create,
            Self::Listen => Route::Listen,
            Self::Task => Route::Check(task_name(headers, max_task_id_len)),
        }
    }
}

/// What one pass over a sessionless POST's headers found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct SessionlessHeaders {
    /// `Mcp-Session-Id` is present (to remove).
    pub(crate) session_id: bool,
    /// `Last-Event-ID` is present (to remove).
    pub(crate) last_event_id: bool,
    /// The method of the single `Mcp-Method` header, when it takes a route ([`route`]'s).
    pub(crate) method: Option<Method>,
}

/// Reads what the layer needs of a sessionless POST's headers in one pass over them, comparing
/// names, instead of hashing three names to look each up: the same answers as `contains_key` and
/// [`route`]. It costs a few instructions a header, a small share of what parsing and storing
/// that header cost the server first.
pub(crate) fn sessionless_headers(headers: &HeaderMap) -> SessionlessHeaders {
    let mut seen = SessionlessHeaders::default();
    let mut methods = 0_usize;
    let mut method = None;
    // One item per value: a repeated header is seen as often as it is repeated.
    for (name, value) in headers {
        // Names are lowercase in a `HeaderMap` (the constants' names; a test checks them).
        match name.as_str() {
            "mcp-method" => {
                methods += 1;
                method = Some(value);
            }
            "last-event-id" => seen.last_event_id = true,
            "mcp-session-id" => seen.session_id = true,
            _ => {}
        }
    }
    if methods == 1 {
        seen.method = method.and_then(|value| Method::of(value.as_bytes()));
    }
    seen
}

/// The task id a `tasks/*` request names in `Mcp-Name`.
fn task_name(headers: &HeaderMap, max_len: usize) -> Result<&str, &'static str> {
    let mut values = headers.get_all(MCP_NAME).iter();
    let value = match (values.next(), values.next()) {
        (None, _) => return Err("the Mcp-Name header (the task id) is required"),
        (Some(_), Some(_)) => return Err("the Mcp-Name header is repeated"),
        (Some(value), None) => value,
    };
    let bytes = value.as_bytes();
    if bytes.is_empty() {
        return Err("the Mcp-Name header is empty");
    }
    if bytes.len() > max_len {
        return Err("the task id is too long");
    }
    if !bytes.iter().all(|b| (0x20..=0x7e).contains(b)) {
        return Err("the Mcp-Name header has a byte outside 0x20-0x7E");
    }
    value
        .to_str()
        .map_err(|_| "the Mcp-Name header is not text")
}

/// Checks a `tasks/get`, `tasks/update` or `tasks/cancel`: forwards it when the caller created
/// the task, else answers without forwarding.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn check<S, St, ReqBody, ResBody>(
    mut ready: S,
    store: St,
    config: Arc<Config>,
    caller: Option<Identity>,
    task_id: Result<String, &'static str>,
    parts: http::request::Parts,
    body: ReqBody,
) -> Result<Response<ResponseBody<ResBody>>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    St: BindingStore,
    ReqBody: Body,
    ReqBody::Data: bytes::Buf,
{
    let task_id = match task_id {
        Ok(task_id) => task_id,
        Err(why) => {
            let reason = RejectionReason::InvalidTaskRequest;
            trace::rejected(reason, caller.as_ref(), None, Some(why));
            let answer = refusal(&parts, body, &config, reason, why).await;
            return Ok(answer.map(ResponseBody::answer));
        }
    };
    let (key, decision) = ownership(&store, caller.as_ref(), &task_id, Some(config.task_ttl)).await;
    match decision {
        decide::Task::Forward => {
            let response = ready.call(Request::from_parts(parts, body)).await?;
            Ok(response.map(ResponseBody::inner))
        }
        decide::Task::Unknown(reason) => {
            // A corrupt record was logged by `ownership` already.
            if reason == RejectionReason::UnknownTask {
                trace::rejected(reason, caller.as_ref(), Some(key), None);
            }
            let message = format!("unknown task: {task_id}");
            let answer = refusal(&parts, body, &config, reason, &message).await;
            Ok(answer.map(ResponseBody::answer))
        }
        decide::Task::Unavailable => {
            let reason = RejectionReason::StoreUnavailable;
            let answer = early::answer(parts.version, body, reject::plain(reason, None)).await;
            Ok(answer.map(ResponseBody::answer))
        }
    }
}

/// Whether `caller` may use the task `task_id` (its record read with `slide`), and the task's
/// key: every task check asks here. Store failures are logged.
pub(crate) async fn ownership<St: BindingStore>(
    store: &St,
    caller: Option<&Identity>,
    task_id: &str,
    slide: Option<Duration>,
) -> (SessionKey, decide::Task) {
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
    let found = found.as_ref().map(Option::as_ref).map_err(StoreError::kind);
    (key, decide::task(found, caller))
}

/// A `-32602` answer with `message`, carrying the refused request's `id` (its body is read
/// within the layer's bounds). A body without a usable id gets 400 and no `id`.
async fn refusal<B>(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn routes_come_from_mcp_method() {
        let route_of = |pairs: &[(&str, &str)]| {
            route(&headers(pairs), 8).map(|r| match r {
                Route::Check(r) => format!("check {r:?}"),
                other => format!("{other:?}"),
            })
        };
        assert_eq!(route_of(&[("mcp-method", "tools/call")]).unwrap(), "Create");
        assert_eq!(
            route_of(&[("mcp-method", "subscriptions/listen")]).unwrap(),
            "Listen"
        );
        assert_eq!(route_of(&[("mcp-method", "tools/list")]), None);
        assert_eq!(route_of(&[]), None);
        assert_eq!(
            route_of(&[("mcp-method", "tools/call"), ("mcp-method", "tools/call")]),
            None
        );
        assert_eq!(
            route_of(&[("mcp-method", "tasks/get"), ("mcp-name", "abc")]).unwrap(),
            r#"check Ok("abc")"#
        );
        for (name, why) in [
            (None, "the Mcp-Name header (the task id) is required"),
            (Some("123456789"), "the task id is too long"),
            (Some(""), "the Mcp-Name header is empty"),
        ] {
            let mut pairs = vec![("mcp-method", "tasks/cancel")];
            if let Some(name) = name {
                pairs.push(("mcp-name", name));
            }
            assert_eq!(
                route_of(&pairs).unwrap(),
                format!("check Err({why:?})"),
                "{name:?}"
            );
        }
    }

    #[test]
    fn one_pass_over_the_headers_agrees_with_lookups() {
        use crate::protocol::headers::{LAST_EVENT_ID, MCP_SESSION_ID};
        // The names the pass compares are the constants' names.
        assert_eq!(MCP_METHOD.as_str(), "mcp-method");
        assert_eq!(LAST_EVENT_ID.as_str(), "last-event-id");
        assert_eq!(MCP_SESSION_ID.as_str(), "mcp-session-id");
        let cases: &[&[(&str, &str)]] = &[
            &[],
            &[("mcp-method", "tools/call")],
            &[("Mcp-Method", "tools/call"), ("MCP-SESSION-ID", "s")],
            &[("mcp-method", "tools/call"), ("mcp-method", "tools/call")],
            &[("mcp-method", "tools/list"), ("last-event-id", "7")],
            &[
                ("mcp-method", "subscriptions/listen"),
                ("content-length", "2"),
            ],
            &[
                ("mcp-method", "tasks/get"),
                ("mcp-name", "t"),
                ("authorization", "x"),
            ],
            &[("mcp-method", "tasks/cancel")],
            &[("mcp-method", "TOOLS/CALL"), ("mcp-session-id", "a")],
            &[
                ("mcp-session-id", "a"),
                ("mcp-session-id", "b"),
                ("last-event-id", "1"),
            ],
            &[
                ("x-mcp-method", "tools/call"),
                ("mcp-methods", "tools/call"),
            ],
        ];
        for pairs in cases {
            let map = headers(pairs);
            let seen = sessionless_headers(&map);
            assert_eq!(
                seen.session_id,
                map.contains_key(MCP_SESSION_ID),
                "{pairs:?}"
            );
            assert_eq!(
                seen.last_event_id,
                map.contains_key(LAST_EVENT_ID),
                "{pairs:?}"
            );
            assert_eq!(
                seen.method.map(|m| m.route(&map, 8)),
                route(&map, 8),
                "{pairs:?}"
            );
        }
        let seen = |pairs| sessionless_headers(&headers(pairs));
        assert_eq!(
            seen(&[("mcp-method", "tools/call")]).method,
            Some(Method::ToolsCall)
        );
        assert_eq!(
            seen(&[("mcp-method", "tools/call"), ("mcp-method", "tools/call")]).method,
            None
        );
        assert!(seen(&[("mcp-session-id", "a"), ("mcp-session-id", "b")]).session_id);
    }
}
