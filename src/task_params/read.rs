//! What a task request names, read from its body as the MCP server will read it: serde's JSON
//! (escapes decoded, a repeated key refused), never a byte pattern. [`TaskParams`](super::TaskParams)
//! decides on the [`Plan`] these functions return.

use std::{borrow::Cow, fmt};

use serde::{
    Deserialize,
    de::{IgnoredAny, SeqAccess, Visitor},
};
use serde_json::value::RawValue;

use super::config::Settings;
use crate::{
    binding::reject::RejectionReason,
    protocol::{jsonrpc::code, scan},
};

/// The message of the answer to a legacy `tasks/list` (JSON-RPC `-32600`, with the request's
/// `id`): see [the module docs](super#why-taskslist-is-refused).
pub(crate) const TASK_LIST_REFUSED: &str = "tasks/list is not available: tasks are bound to their \
     creator and the list cannot be filtered; poll each of your tasks with tasks/get";

/// What to do with a request whose body was read.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Plan {
    /// Forward it; scan the answer for a task it creates when `true`.
    Forward { capture: bool },
    /// Forward it if the caller created every one of these tasks (sorted, no repeats).
    Check(Vec<String>),
    /// Answer with a JSON-RPC error (`code`, `message`) carrying the request's `id`.
    Refuse {
        reason: RejectionReason,
        code: i32,
        message: Cow<'static, str>,
    },
    /// Not a JSON-RPC body the layer can read: 400, nothing forwarded.
    Unreadable,
}

impl Plan {
    fn invalid(message: impl Into<Cow<'static, str>>) -> Self {
        Self::Refuse {
            reason: RejectionReason::InvalidTaskRequest,
            code: code::INVALID_PARAMS,
            message: message.into(),
        }
    }
}

/// A JSON-RPC message as far as the layer reads it. Envelope keys are declared so that a repeated
/// one makes the body unreadable (no parser difference can hide a method).
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow)]
    params: Option<&'a RawValue>,
    #[allow(dead_code)]
    id: Option<IgnoredAny>,
    #[allow(dead_code)]
    jsonrpc: Option<IgnoredAny>,
    #[allow(dead_code)]
    result: Option<IgnoredAny>,
    #[allow(dead_code)]
    error: Option<IgnoredAny>,
}

/// `params` of a legacy task request, or of a `tools/call`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacyParams<'a> {
    #[serde(borrow)]
    task_id: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ListenParams<'a> {
    #[serde(borrow)]
    notifications: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ListenNotifications<'a> {
    #[serde(borrow, rename = "taskIds")]
    task_ids: Option<&'a RawValue>,
}

/// `raw` read as an object of type `T`: `Ok(None)` when absent or `null`; `Err(())` when it is
/// not an object (a struct would also read an array, by position) or does not parse.
fn object<'a, T: Deserialize<'a>>(raw: Option<&'a RawValue>) -> Result<Option<T>, ()> {
    let Some(raw) = raw else { return Ok(None) };
    match raw.get().trim_start().as_bytes().first() {
        Some(b'{') => serde_json::from_str(raw.get()).map(Some).map_err(|_| ()),
        Some(b'n') if raw.get().trim() == "null" => Ok(None),
        _ => Err(()),
    }
}

/// A task id from a body: a string, 1 to `max_len` bytes.
fn task_id(raw: &RawValue, max_len: usize, what: &str) -> Result<String, Plan> {
    let Ok(task_id) = serde_json::from_str::<String>(raw.get()) else {
        return Err(Plan::invalid(format!("{what} must be a string")));
    };
    if task_id.is_empty() {
        return Err(Plan::invalid(format!("{what} is empty")));
    }
    if task_id.len() > max_len {
        return Err(Plan::invalid("the task id is too long"));
    }
    Ok(task_id)
}

/// The plan for a session-era message (legacy tasks on).
fn legacy_message(message: &Envelope<'_>, max_id_len: usize) -> Plan {
    let method = message.method.as_deref().unwrap_or_default();
    let task_method = matches!(
        method,
        "tasks/get" | "tasks/result" | "tasks/cancel" | "tasks/update"
    );
    if !task_method && method != "tools/call" && method != "tasks/list" {
        return Plan::Forward { capture: false };
    }
    if method == "tasks/list" {
        return Plan::Refuse {
            reason: RejectionReason::InvalidTaskRequest,
            code: code::INVALID_REQUEST,
            message: Cow::Borrowed(TASK_LIST_REFUSED),
        };
    }
    if !task_method {
        // A `tools/call`: its answer may create a task, whether or not it asked for one (the
        // tasks extension lets a server answer with a task unasked, and rmcp does so in
        // 2025-11-25 sessions too).
        return Plan::Forward { capture: true };
    }
    let params = object::<LegacyParams<'_>>(message.params);
    let raw = match params {
        Ok(Some(LegacyParams {
            task_id: Some(raw), ..
        })) => raw,
        Ok(_) => return Plan::invalid("params.taskId (the task id) is required"),
        Err(()) => return Plan::invalid("params must be an object without repeated keys"),
    };
    match task_id(raw, max_id_len, "params.taskId") {
        Ok(task_id) => Plan::Check(vec![task_id]),
        Err(refused) => refused,
    }
}

/// Whether a batch holds any legacy task request; read element by element.
struct BatchHasTasks {
    max_id_len: usize,
}

impl<'de> Visitor<'de> for BatchHasTasks {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON-RPC batch")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        let mut found = false;
        while let Some(message) = seq.next_element::<Envelope<'de>>()? {
            found |= legacy_message(&message, self.max_id_len) != Plan::Forward { capture: false };
        }
        Ok(found)
    }
}

/// `tasks/` (every method that names a task starts with it) and `tools/call` (the method that
/// may create one).
const METHODS: [scan::Name; 2] = [
    scan::Name::new(b"tasks/", 5),
    scan::Name::new(b"tools/call", 5),
];

/// The plan for a session-era body (legacy tasks on).
#[inline] // the pre-scan, into the service; the parse stays out of line
pub(super) fn legacy_plan(bytes: &[u8], max_id_len: usize) -> Plan {
    // Only task methods are checked: a body that cannot name one in any spelling is not parsed.
    // Its answer is scanned for a task when it may be a `tools/call` (scanning an answer that
    // creates none costs little; answers of other methods are not scanned).
    let named = scan::named(bytes, &METHODS);
    if named & 1 == 0 {
        return Plan::Forward {
            capture: named & 2 != 0,
        };
    }
    legacy_parse(bytes, max_id_len)
}

/// The plan for a session-era body that may name a task method: parsed.
#[inline(never)]
fn legacy_parse(bytes: &[u8], max_id_len: usize) -> Plan {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Plan::Unreadable;
    };
    if text.trim_start().starts_with('[') {
        let mut de = serde_json::Deserializer::from_str(text);
        let visitor = BatchHasTasks { max_id_len };
        return match serde::Deserializer::deserialize_seq(&mut de, visitor)
            .and_then(|found| de.end().map(|()| found))
        {
            Ok(false) => Plan::Forward { capture: false },
            Ok(true) => Plan::Refuse {
                reason: RejectionReason::InvalidTaskRequest,
                code: code::INVALID_REQUEST,
                message: Cow::Borrowed(
                    "task requests may not be sent in a JSON-RPC batch (revision 2025-11-25 has \
                     no batches)",
                ),
            },
            Err(_) => Plan::Unreadable,
        };
    }
    match serde_json::from_str::<Envelope<'_>>(text) {
        Ok(message) => legacy_message(&message, max_id_len),
        Err(_) => Plan::Unreadable,
    }
}

/// Task ids of a `subscriptions/listen`, read one by one: at most `max` kept, the rest counted.
struct TaskIds<'de> {
    max: usize,
    ids: Vec<&'de RawValue>,
    more: bool,
}

impl<'de> Visitor<'de> for TaskIds<'de> {
    type Value = Self;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of task ids")
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Self, A::Error> {
        while self.ids.len() < self.max {
            match seq.next_element::<&'de RawValue>()? {
                Some(id) => self.ids.push(id),
                None => return Ok(self),
            }
        }
        // Past the cap: the rest is only skipped (the body is bounded by the body cap).
        while seq.next_element::<IgnoredAny>()?.is_some() {
            self.more = true;
        }
        Ok(self)
    }
}

/// The plan for a sessionless `subscriptions/listen` body.
pub(super) fn listen_plan(bytes: &[u8], settings: &Settings) -> Plan {
    let Ok(message) = serde_json::from_slice::<Envelope<'_>>(bytes) else {
        return Plan::Unreadable;
    };
    let what = "params.notifications.taskIds";
    let notifications = match object::<ListenParams<'_>>(message.params) {
        Ok(params) => params.and_then(|p| p.notifications),
        Err(()) => return Plan::invalid("params must be an object without repeated keys"),
    };
    let raw = match object::<ListenNotifications<'_>>(notifications) {
        Ok(notifications) => notifications.and_then(|n| n.task_ids),
        Err(()) => {
            return Plan::invalid("params.notifications must be an object without repeated keys");
        }
    };
    let Some(raw) = raw.filter(|raw| raw.get() != "null") else {
        return Plan::Forward { capture: false };
    };
    let mut de = serde_json::Deserializer::from_str(raw.get());
    let visitor = TaskIds {
        max: settings.max_listen_task_ids,
        ids: Vec::new(),
        more: false,
    };
    let Ok(found) = serde::Deserializer::deserialize_seq(&mut de, visitor) else {
        return Plan::invalid(format!("{what} must be an array of task ids"));
    };
    if found.more {
        return Plan::invalid(format!(
            "{what} names more than {} tasks",
            settings.max_listen_task_ids
        ));
    }
    let mut task_ids = Vec::with_capacity(found.ids.len());
    for raw in found.ids {
        match task_id(raw, settings.config.max_task_id_len, "each task id") {
            Ok(task_id) => task_ids.push(task_id),
            Err(refused) => return refused,
        }
    }
    task_ids.sort_unstable();
    task_ids.dedup();
    Plan::Check(task_ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn legacy(body: &str) -> Plan {
        legacy_plan(body.as_bytes(), 8)
    }

    #[test]
    fn legacy_bodies_are_read_strictly() {
        let forward = Plan::Forward { capture: false };
        assert_eq!(
            legacy(r#"{"jsonrpc":"2.0","id":1,"method":"tasks\/get","params":{"taskId":"t1"}}"#),
            Plan::Check(vec!["t1".into()])
        );
        assert_eq!(
            legacy(
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","task":{}}}"#
            ),
            Plan::Forward { capture: true }
        );
        // Every `tools/call` answer may carry a task (the tasks extension needs no `params.task`).
        assert_eq!(
            legacy(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}"#),
            Plan::Forward { capture: true }
        );
        // Every task method, in every spelling serde reads.
        for body in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tasks/update","params":{"taskId":"t1","inputResponses":{}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tasks/cancel","params":{"task\u0049d":"t1"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tasks\u002fget","params":{"taskId":"t1"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"\u006dethod":"tasks/result","params":{"taskId":"t\u0031"}}"#,
        ] {
            assert_eq!(legacy(body), Plan::Check(vec!["t1".into()]), "{body}");
        }
        assert_eq!(
            legacy(r#"{"jsonrpc":"2.0","id":1,"method":"tools\/call","params":{"name":"x"}}"#),
            Plan::Forward { capture: true }
        );
        assert_eq!(
            legacy(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#),
            forward
        );
        // A repeated method or task id could make the server read another one.
        for body in [
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","method":"tasks/get","params":{"taskId":"t"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","\u006dethod":"tasks/get","params":{"taskId":"t"}}"#,
            r#"not json, tasks/get"#,
            r#"[1, "\n"]"#,
        ] {
            assert_eq!(legacy(body), Plan::Unreadable, "{body}");
        }
        assert!(matches!(
            legacy(
                r#"{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"taskId":"a","taskId":"b"}}"#
            ),
            Plan::Refuse { .. }
        ));
        // Positional params are not read as the task id.
        assert!(matches!(
            legacy(r#"{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":["t1"]}"#),
            Plan::Refuse { .. }
        ));
        assert_eq!(
            legacy(
                r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/x"}]"#
            ),
            forward
        );
        assert!(matches!(
            legacy(
                r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"tasks/list"}]"#
            ),
            Plan::Refuse { .. }
        ));
    }
}
