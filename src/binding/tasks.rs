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
use futures::future::{BoxFuture, FutureExt};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, header};
use http_body::Body;
use serde::Deserialize;
use serde_json::value::RawValue;
use tower::Service;

use crate::{
    Identity, ResponseBody,
    binding::{
        config::Config,
        decide,
        future::{AfterResponse, Then},
        reject::{self, RejectionReason},
        trace,
    },
    protocol::{
        early,
        envelope::{self, Classified, Message},
        headers::{MCP_METHOD, MCP_NAME},
        jsonrpc::{self, code},
        scan::{self, Framing, Inspect, Scan, Verdict},
    },
    store::{BindOutcome, BindingStore, Owner, SessionKey, StoreError, StoreErrorKind},
};

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

/// How long a task record lives: twice the task's `ttlMs` (rmcp keeps a finished task for one
/// more TTL) plus a minute, at most the configured [task TTL](crate::SessionBindingLayer::task_ttl);
/// the configured TTL when the task has none. Each check slides it.
fn record_ttl(ttl_ms: Option<u64>, config: &Config) -> Duration {
    ttl_ms.map_or(config.task_ttl, |ms| {
        Duration::from_millis(ms.saturating_mul(2))
            .saturating_add(Duration::from_secs(60))
            .min(config.task_ttl)
    })
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
            trace::rejected(reason, caller.as_ref(), Some(key), None);
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
    let key = store.key_derivation().task(task_id);
    let found = store.task_owner(key, slide).await;
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
    let (status, body) = match id {
        // The id came from the body, bounded by the body cap; the answer is bounded too.
        Some(id) if id.get().len() + message.len() < config.max_answer_bytes => {
            (StatusCode::OK, jsonrpc::error_for(id, code, message))
        }
        _ => (StatusCode::BAD_REQUEST, jsonrpc::error(code, message)),
    };
    let mut answer = jsonrpc::response(status, body);
    answer.extensions_mut().insert(reason);
    answer
}

/// What a scanned answer is inspected for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A `tools/call` answer, in any era: record the task it creates, whichever shape its result
    /// has (`result.taskId` with `resultType: "task"`, the tasks extension's, which rmcp also
    /// sends in 2025-11-25 sessions; or 2025-11-25's `result.task.taskId`).
    Create,
    /// A `subscriptions/listen` stream: drop notifications about other callers' tasks.
    Listen,
}

/// The work after a `tools/call` or `subscriptions/listen` answered: scan its body.
pub(crate) struct Capture<St> {
    pub(crate) store: St,
    pub(crate) config: Arc<Config>,
    pub(crate) caller: Option<Identity>,
    pub(crate) mode: Mode,
}

impl<St> Capture<St> {
    /// The scan of this capture's answer, with the capture as its recorder, boxed: on the
    /// sessionless path it is the work after the answer, and becomes its body's state, so the
    /// request costs one allocation.
    pub(crate) fn scan(self) -> Box<Scan<TaskInspect<Self>>> {
        let cap = self.config.max_body_bytes;
        Box::new(Scan::new(
            // Set from the answer's `Content-Type` before the body is read.
            Framing::Json,
            cap,
            TaskInspect {
                mode: self.mode,
                done: false,
                recorder: self,
            },
        ))
    }
}

impl<St, ResBody, E> AfterResponse<ResBody, E> for Capture<St>
where
    St: BindingStore + Clone,
    ResBody: Send + 'static,
    E: Send + 'static,
{
    fn applies_to(&self, response: &Response<ResBody>) -> bool {
        response.status().is_success() && scan::framing(response.headers()).is_some()
    }

    fn run(self: Box<Self>, response: Response<ResBody>) -> Then<ResBody, E> {
        if !AfterResponse::<ResBody, E>::applies_to(&*self, &response) {
            return Then::Now(Ok(response.map(ResponseBody::inner)));
        }
        (*self).scan().run(response)
    }
}

impl<St, ResBody, E> AfterResponse<ResBody, E> for Scan<TaskInspect<Capture<St>>>
where
    St: BindingStore + Clone,
    ResBody: Send + 'static,
    E: Send + 'static,
{
    fn applies_to(&self, response: &Response<ResBody>) -> bool {
        AfterResponse::<ResBody, E>::applies_to(&self.inspector().recorder, response)
    }

    fn run(mut self: Box<Self>, response: Response<ResBody>) -> Then<ResBody, E> {
        // One look at `Content-Type`: it decides both whether to scan and how.
        let framing = match scan::framing(response.headers()) {
            Some(framing) if response.status().is_success() => framing,
            _ => return Then::Now(Ok(response.map(ResponseBody::inner))),
        };
        self.set_framing(framing);
        let (mut parts, body) = response.into_parts();
        // The answer may be rewritten (a task that could not be recorded): its length may change.
        parts.headers.remove(header::CONTENT_LENGTH);
        // The same box, its inspector's type erased: no allocation.
        let body = ResponseBody::scanned(body, self);
        Then::Now(Ok(Response::from_parts(parts, body)))
    }
}

/// Records and checks tasks for one caller, behind a trait object so the response body does not
/// carry the store's type.
pub(crate) trait TaskRecorder: Send + Sync {
    /// Records that the caller created `task_id`. Whether it worked.
    fn record(&self, task_id: String, ttl_ms: Option<u64>) -> BoxFuture<'static, bool>;
    /// Whether the caller created `task_id`.
    fn owns(&self, task_id: String) -> BoxFuture<'static, bool>;
}

impl<St: BindingStore + Clone> TaskRecorder for Capture<St> {
    fn record(&self, task_id: String, ttl_ms: Option<u64>) -> BoxFuture<'static, bool> {
        let store = self.store.clone();
        let ttl = record_ttl(ttl_ms, &self.config);
        let caller = self.caller.clone();
        async move {
            let key = store.key_derivation().task(&task_id);
            let owner = Owner::of(caller.as_ref());
            let outcome = store.bind_task(key, &owner, ttl).await;
            let recorded =
                decide::task_recorded(outcome.as_ref().map_err(StoreError::kind), caller.as_ref());
            match outcome {
                Ok(BindOutcome::Created) => trace::task_recorded(caller.as_ref(), key),
                Ok(_) if recorded => {}
                Ok(_) => {
                    let reason = RejectionReason::TaskNotRecorded;
                    let what = "the task id is already recorded for someone else";
                    trace::rejected(reason, caller.as_ref(), Some(key), Some(what));
                }
                Err(error) => {
                    let reason = RejectionReason::TaskNotRecorded;
                    let what = "could not record a new task; its id is withheld";
                    trace::failed(reason, caller.as_ref(), key, &error, what);
                }
            }
            recorded
        }
        .boxed()
    }

    fn owns(&self, task_id: String) -> BoxFuture<'static, bool> {
        let store = self.store.clone();
        let caller = self.caller.clone();
        async move {
            let (_, decision) = ownership(&store, caller.as_ref(), &task_id, None).await;
            decision == decide::Task::Forward
        }
        .boxed()
    }
}

/// What the task layers look for in an answer: a task created, or a notification about one.
///
/// `R` is the recorder: the [`Capture`] while the scan waits for the answer, erased to
/// `dyn TaskRecorder` in the body (it is the last field, so a box of one coerces to the other).
pub(crate) struct TaskInspect<R: ?Sized> {
    mode: Mode,
    /// The answer was seen: nothing after it can create a task.
    done: bool,
    recorder: R,
}

/// A message, as far as the task scan reads it (serde unescapes keys and strings).
#[derive(Deserialize)]
struct Scanned<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    method: Option<String>,
    result: Option<ScannedResult>,
    params: Option<ScannedParams>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScannedResult {
    result_type: Option<String>,
    task_id: Option<String>,
    ttl_ms: Option<u64>,
    /// The 2025-11-25 `CreateTaskResult`: `result.task`.
    task: Option<ScannedTask>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScannedTask {
    task_id: Option<String>,
    /// Milliseconds, or `null`.
    ttl: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScannedParams {
    task_id: Option<String>,
}

/// `taskId`: every message that creates or is about a task carries it, in some spelling.
const TASK_ID: scan::Name = scan::Name::new(b"taskId", 4);

impl ScannedResult {
    /// The task this result creates, and its TTL in milliseconds.
    fn created(&self) -> Option<(String, Option<u64>)> {
        if self.result_type.as_deref() == Some("task")
            && let Some(task_id) = &self.task_id
        {
            return Some((task_id.clone(), self.ttl_ms));
        }
        let task = self.task.as_ref()?;
        Some((task.task_id.clone()?, task.ttl))
    }
}

impl<R: TaskRecorder + ?Sized> Inspect for TaskInspect<R> {
    fn concerns(&self, raw: &[u8]) -> bool {
        scan::may_name(raw, &TASK_ID)
    }

    fn inspect(&mut self, json: &[u8]) -> Verdict {
        let message = serde_json::from_slice::<Scanned<'_>>(json);
        match self.mode {
            Mode::Create => {
                // A message that may name a task but does not parse passes: it records nothing,
                // so the task in it (if any) is nobody's and cannot be used.
                let Ok(message) = message else {
                    return Verdict::Pass;
                };
                if message.result.is_some() {
                    self.done = true;
                }
                let created = message.result.as_ref().and_then(ScannedResult::created);
                let (Some((task_id, ttl_ms)), Some(id)) = (created, message.id) else {
                    return Verdict::Pass;
                };
                let error = jsonrpc::error_for(
                    id,
                    code::SERVER_ERROR,
                    "The task could not be recorded for its creator, so it cannot be used; retry",
                );
                Verdict::Wait {
                    decision: self.recorder.record(task_id, ttl_ms),
                    instead: Some(error),
                }
            }
            Mode::Listen => {
                // Fail closed: a message that may be about a task and cannot be read is dropped.
                let Ok(message) = message else {
                    return Verdict::Drop;
                };
                let about_tasks = message
                    .method
                    .as_deref()
                    .is_some_and(|m| m.starts_with("notifications/tasks"));
                if !about_tasks {
                    return Verdict::Pass;
                }
                match message.params.and_then(|p| p.task_id) {
                    Some(task_id) => Verdict::Wait {
                        decision: self.recorder.owns(task_id),
                        instead: None,
                    },
                    None => Verdict::Drop,
                }
            }
        }
    }

    fn done(&self) -> bool {
        self.done
    }

    fn ends_when_too_large(&self) -> bool {
        // A listen stream's event that cannot be read may be about another caller's task.
        self.mode == Mode::Listen
    }
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

    /// A recorder that records in memory and owns what it is told.
    #[derive(Clone, Default)]
    struct Recorded {
        recorded: Arc<std::sync::Mutex<Vec<String>>>,
        owned: &'static [&'static str],
    }

    impl TaskRecorder for Recorded {
        fn record(&self, task_id: String, _: Option<u64>) -> BoxFuture<'static, bool> {
            self.recorded.lock().unwrap().push(task_id);
            futures::future::ready(true).boxed()
        }
        fn owns(&self, task_id: String) -> BoxFuture<'static, bool> {
            futures::future::ready(self.owned.contains(&task_id.as_str())).boxed()
        }
    }

    /// `text` with the characters at the positions set in `mask` written as `\uXXXX` (upper
    /// or lower case hex, as `upper` says): every spelling of a key that serde reads.
    fn escaped(text: &str, mask: u32, upper: bool) -> String {
        text.chars()
            .enumerate()
            .map(|(i, c)| match (mask >> i) & 1 {
                1 if upper => format!("\\u{:04X}", c as u32),
                1 => format!("\\u{:04x}", c as u32),
                _ => c.to_string(),
            })
            .collect()
    }

    /// `json` as the body of each framing: JSON, and an SSE event in each line ending, with
    /// and without a leading BOM.
    fn bodies(json: &str) -> Vec<(Framing, Vec<u8>)> {
        let mut bodies = vec![(Framing::Json, json.as_bytes().to_vec())];
        for end in ["\n", "\r\n", "\r"] {
            for bom in ["", "\u{feff}"] {
                // The BOM right before the data line: only stripped, the line is data.
                let event = format!("{bom}data: {json}{end}id: 1{end}{end}");
                bodies.push((Framing::Sse, event.into_bytes()));
            }
        }
        bodies
    }

    /// Scans `body`, split at its middle, for `mode`; what came out and what was recorded.
    fn scan(
        mode: Mode,
        framing: Framing,
        body: &[u8],
        owned: &'static [&'static str],
    ) -> (Vec<u8>, Vec<String>) {
        let recorder = Recorded {
            owned,
            ..Recorded::default()
        };
        let recorded = recorder.recorded.clone();
        let inspector = TaskInspect {
            mode,
            done: false,
            recorder,
        };
        let scan = Scan::new(framing, 1 << 16, inspector);
        let (a, b) = body.split_at(body.len() / 2);
        let out = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(crate::protocol::scan::run(scan, &[a, b]));
        let ids = recorded.lock().unwrap().clone();
        (out, ids)
    }

    #[test]
    fn created_tasks_are_recorded_in_every_spelling_and_framing() {
        for mask in 0..64 {
            for upper in [false, true] {
                let key = escaped("taskId", mask, upper);
                for answer in [
                    format!(
                        r#"{{"jsonrpc":"2.0","id":1,"result":{{"resultType":"task","{key}":"t-1"}}}}"#
                    ),
                    format!(
                        r#"{{"jsonrpc":"2.0","id":1,"result":{{"task":{{"{key}":"t-1","ttl":null}}}}}}"#
                    ),
                    format!(
                        r#"{{"jsonrpc":"2.0","id":1,"result":{{"result\u0054ype":"t\u0061sk","{key}":"t\u002d1"}}}}"#
                    ),
                ] {
                    for (framing, body) in bodies(&answer) {
                        let (out, ids) = scan(Mode::Create, framing, &body, &[]);
                        let text = String::from_utf8_lossy(&body);
                        assert_eq!(ids, ["t-1"], "{text}");
                        assert_eq!(out, body, "passed on as it came: {text}");
                    }
                }
            }
        }
    }

    #[test]
    fn listen_streams_drop_other_callers_tasks_in_every_spelling_and_framing() {
        for mask in 0..64 {
            let key = escaped("taskId", mask, mask % 2 == 0);
            for method in [
                r"notifications/tasks/status",
                r"notifications\/tasks\/status",
                r"notific\u0061tions/tasks/status",
            ] {
                let about = |task: &str| {
                    format!(
                        r#"{{"jsonrpc":"2.0","method":"{method}","params":{{"{key}":"{task}","status":"completed"}}}}"#
                    )
                };
                for (framing, body) in bodies(&about("alices")) {
                    if framing == Framing::Json {
                        continue; // a listen stream is SSE
                    }
                    let text = String::from_utf8_lossy(&body);
                    let (out, _) = scan(Mode::Listen, framing, &body, &["bobs"]);
                    assert!(out.is_empty(), "{text}");
                    let (out, _) = scan(Mode::Listen, framing, &body, &["alices"]);
                    assert_eq!(out, body, "{text}");
                }
            }
        }
        // An event that may be about a task but does not parse is dropped.
        for event in [
            &b"data: {\"method\":\"notifications/tasks/status\",\"params\":{\"taskId\":1}}\n\n"[..],
            b"data: {\"method\":\"notifications/tasks/status\",\"params\":{\"task\\u0049d\":\"a\",\"taskId\":\"b\"}}\n\n",
        ] {
            let (out, _) = scan(Mode::Listen, Framing::Sse, event, &["a", "b"]);
            assert!(out.is_empty(), "{}", String::from_utf8_lossy(event));
        }
    }
}
