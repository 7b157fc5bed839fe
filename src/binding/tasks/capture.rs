//! The answers of task-creating and task-listening requests, read as they pass: the task a
//! `tools/call` creates is recorded for its caller before its id leaves the layer (withheld when
//! it cannot be), and a `subscriptions/listen` stream drops notifications about other callers'
//! tasks. Whether a task is the caller's is [`decide::task`]; this file reads answers.

use std::{sync::Arc, time::Duration};

use futures::future::{BoxFuture, FutureExt};
use http::{Response, header};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::{
    Identity, ResponseBody,
    binding::{
        config::Config,
        decide,
        future::{AfterResponse, Then},
        reject::RejectionReason,
        trace,
    },
    protocol::{
        jsonrpc::{self, code},
        scan::{self, Framing, Inspect, Scan, Verdict},
    },
    store::{BindOutcome, BindingStore, Owner, Record, StoreError},
};

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

    fn run(mut self: Box<Self>, mut response: Response<ResBody>) -> Then<ResBody, E> {
        // One look at the headers: `Content-Type` decides both whether to scan and how.
        let (framing, length) = scan::framing_and_length(response.headers());
        let framing = match framing {
            Some(framing) if response.status().is_success() => framing,
            _ => return Then::Now(Ok(response.map(ResponseBody::inner))),
        };
        self.set_framing(framing);
        if length {
            // The answer may be rewritten (a task that could not be recorded): its length may
            // change.
            response.headers_mut().remove(header::CONTENT_LENGTH);
        }
        // The same box, its inspector's type erased: no allocation.
        Then::Now(Ok(response.map(|body| ResponseBody::scanned(body, self))))
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
            let outcome = store.bind_task(Record::new(key, &owner, ttl)).await;
            let recorded =
                decide::task_recorded(outcome.as_ref().map_err(StoreError::kind), caller.as_ref());
            if !recorded {
                crate::metrics::refused(RejectionReason::TaskNotRecorded);
            }
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
            let (_, decision) = super::ownership(&store, caller.as_ref(), &task_id, None).await;
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
