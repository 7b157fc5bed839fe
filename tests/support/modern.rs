//! Raw HTTP helpers for sessionless (revision 2026-07-28) requests: the standard headers, the
//! per-request `_meta`, and tasks of the demo server's `slow_echo`.

use http::StatusCode;
use serde_json::{Value, json};

use super::{Answer, Raw, token};

pub const MODERN: &str = "2026-07-28";

pub fn alice() -> String {
    token(super::ISS_A, "alice", 1)
}

pub fn bob() -> String {
    token(super::ISS_A, "bob", 1)
}

/// The per-request `_meta` revision 2026-07-28 requires, declaring the tasks extension.
pub fn meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {
            "extensions": {"io.modelcontextprotocol/tasks": {}}
        }
    })
}

pub fn request(id: u64, method: &str, mut params: Value) -> Value {
    params["_meta"] = meta();
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// A sessionless POST with the standard headers (`Mcp-Name` when given).
pub async fn modern(
    raw: &Raw,
    token: Option<&str>,
    method: &str,
    name: Option<&str>,
    body: &Value,
) -> Answer {
    Raw::send(modern_request(raw, token, method, name.as_slice(), body)).await
}

/// A sessionless POST with the standard headers, one `Mcp-Name` header for each of `names`,
/// and the bearer token when given; more headers can be added before it is sent.
pub fn modern_request(
    raw: &Raw,
    token: Option<&str>,
    method: &str,
    names: &[&str],
    body: &Value,
) -> reqwest::RequestBuilder {
    let mut builder = post_json(raw, MODERN, token, body).header("mcp-method", method);
    for name in names {
        builder = builder.header("mcp-name", *name);
    }
    builder
}

/// A POST of `body` that accepts JSON and SSE and names `version` in `MCP-Protocol-Version`,
/// with the bearer token when given.
pub fn post_json(
    raw: &Raw,
    version: &str,
    token: Option<&str>,
    body: &Value,
) -> reqwest::RequestBuilder {
    let builder = raw
        .http
        .post(&raw.url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", version)
        .body(body.to_string());
    match token {
        Some(token) => builder.bearer_auth(token),
        None => builder,
    }
}

/// Starts `slow_echo` as a task for `token`; returns the task id.
pub async fn create_task(raw: &Raw, token: &str, text: &str, ms: u64) -> String {
    let body = request(
        1,
        "tools/call",
        json!({"name": "slow_echo", "arguments": {"text": text, "ms": ms}}),
    );
    let answer = modern(raw, Some(token), "tools/call", Some("slow_echo"), &body).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let message = answer.json();
    assert_eq!(message["result"]["resultType"], "task", "{message}");
    message["result"]["taskId"]
        .as_str()
        .unwrap_or_else(|| panic!("no taskId in {message}"))
        .to_owned()
}

/// The answer with the task id it names replaced, to compare refusals of different ids.
pub fn without(answer: &Answer, task_id: &str) -> (StatusCode, Value) {
    let mut message = answer.json();
    if let Some(text) = message["error"]["message"].as_str() {
        message["error"]["message"] = Value::from(text.replace(task_id, "<id>"));
    }
    (answer.status, message)
}
