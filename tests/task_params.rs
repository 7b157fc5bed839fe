//! `TaskParamsLayer`: task ids carried in request bodies, bound to their creator.
//!
//! - `subscriptions/listen` (revision 2026-07-28): a real rmcp server (the demo server, whose
//!   `slow_echo` runs as an rmcp task) behind the test auth layer, `SessionBindingLayer` (which
//!   records the tasks) and `TaskParamsLayer` on the same store; memory and Redis stores.
//! - Legacy 2025-11-25 tasks: rmcp does not implement them (it serves the 2026-07-28 tasks
//!   extension only, without `tasks/result` or `tasks/list`), so they are driven through a
//!   scripted inner service that answers the 2025-11-25 wire shapes.

mod support;

use std::sync::{Arc, Mutex};

use axum::Router;
use http::StatusCode;
use mcp_session_binding::{
    SessionBindingLayer,
    store::{BindingStore, MemoryStore},
    task_params::{TASK_LIST_REFUSED, TaskParamsLayer},
};
use serde_json::{Value, json};
use support::{
    Answer, Raw, TestServer,
    modern::{alice, bob, create_task, modern, request, without},
    serve_router,
};

/// The demo rmcp server behind the test auth layer, `SessionBindingLayer` and `layer`, both on
/// `store`.
async fn serve_demo<St: BindingStore + Clone>(
    store: St,
    layer: impl FnOnce(TaskParamsLayer<St>) -> TaskParamsLayer<St>,
) -> TestServer {
    let (mcp, seen) = support::recorded_mcp();
    let app = Router::new()
        .nest_service("/mcp", mcp)
        .layer(layer(TaskParamsLayer::new(store.clone())))
        .layer(SessionBindingLayer::with_store(store))
        .layer(axum::middleware::from_fn(support::auth));
    serve_router(app, seen).await
}

/// A `subscriptions/listen` naming `task_ids` (any JSON) in `params.notifications.taskIds`.
async fn listen(raw: &Raw, token: Option<&str>, task_ids: Value) -> Answer {
    let body = request(
        5,
        "subscriptions/listen",
        json!({"notifications": {"taskIds": task_ids}}),
    );
    listen_body(raw, token, body.to_string()).await
}

async fn listen_body(raw: &Raw, token: Option<&str>, body: String) -> Answer {
    let mut builder = raw
        .http
        .post(&raw.url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", support::modern::MODERN)
        .header("mcp-method", "subscriptions/listen")
        .body(body);
    if let Some(token) = token {
        builder = builder.bearer_auth(token);
    }
    Raw::send(builder).await
}

/// A refusal: JSON-RPC `-32602` with `message`, answering the request with `id`.
fn assert_refused(answer: &Answer, id: u64, message: &str) {
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let json = answer.json();
    assert_eq!(json["id"], id, "{json}");
    assert_eq!(json["error"]["code"], -32602, "{json}");
    assert_eq!(json["error"]["message"], message, "{json}");
}

/// alice creates a task; a `subscriptions/listen` naming it is refused to bob (exactly like a
/// random id) and to anonymous callers, and nothing reaches the server; alice's is forwarded.
async fn listen_names_only_the_callers_tasks<St: BindingStore + Clone>(store: St) {
    let server = serve_demo(store, |layer| layer).await;
    let raw = Raw::new(&server);
    let alices = create_task(&raw, &alice(), "mine", 50).await;
    let bobs = create_task(&raw, &bob(), "his", 50).await;
    let random = "0b1e9d4c-57aa-4a8e-8d8e-4f7e6c1b2a39";
    let forwarded = server.forwarded_count();

    let theirs = listen(&raw, Some(&bob()), json!([alices])).await;
    assert_refused(&theirs, 5, &format!("unknown task: {alices}"));
    let unknown = listen(&raw, Some(&bob()), json!([random])).await;
    assert_eq!(without(&theirs, &alices), without(&unknown, random));
    // One of his own does not let another's through.
    let mixed = listen(&raw, Some(&bob()), json!([bobs, alices])).await;
    assert_refused(&mixed, 5, &format!("unknown task: {alices}"));
    let anonymous = listen(&raw, None, json!([alices])).await;
    assert_refused(&anonymous, 5, &format!("unknown task: {alices}"));
    assert_eq!(
        server.forwarded_count(),
        forwarded,
        "a refused listen was forwarded"
    );

    // alice's own tasks, and a listen naming no task, reach the server.
    for (token, task_ids) in [
        (alice(), json!([alices])),
        (alice(), json!([alices, alices])),
        (bob(), json!([bobs])),
        (bob(), json!([])),
        (bob(), Value::Null),
    ] {
        let before = server.forwarded_count();
        let answer = listen(&raw, Some(&token), task_ids.clone()).await;
        assert_eq!(
            server.forwarded_count(),
            before + 1,
            "{task_ids}: {answer:?}"
        );
        assert!(
            !answer.text.contains("unknown task"),
            "{task_ids}: {answer:?}"
        );
    }
}

#[tokio::test]
async fn memory_listen_names_only_the_callers_tasks() {
    listen_names_only_the_callers_tasks(MemoryStore::new()).await;
}

#[tokio::test]
async fn redis_listen_names_only_the_callers_tasks() {
    let Some(redis) = support::redis_server::RedisServer::start() else {
        return;
    };
    let store = mcp_session_binding::store::RedisStore::connect(&redis.url())
        .await
        .unwrap();
    listen_names_only_the_callers_tasks(store).await;
}

/// Bad `subscriptions/listen` bodies: each gets a clear answer, and none is forwarded.
#[tokio::test]
async fn bad_listen_requests_get_clear_errors() {
    let server = serve_demo(MemoryStore::new(), |layer| {
        layer
            .max_task_id_len(16)
            .max_listen_task_ids(2)
            .max_body_bytes(4096)
    })
    .await;
    let raw = Raw::new(&server);
    let forwarded = server.forwarded_count();
    let cases = [
        (
            "not an array",
            json!("t1"),
            "params.notifications.taskIds must be an array of task ids",
        ),
        (
            "an object",
            json!({"0": "t1"}),
            "params.notifications.taskIds must be an array of task ids",
        ),
        (
            "a number in it",
            json!([5]),
            "each task id must be a string",
        ),
        ("null in it", json!([null]), "each task id must be a string"),
        ("an empty id", json!([""]), "each task id is empty"),
        (
            "an id over the cap",
            json!(["x".repeat(17)]),
            "the task id is too long",
        ),
        (
            "too many ids",
            json!(["a", "b", "c"]),
            "params.notifications.taskIds names more than 2 tasks",
        ),
    ];
    for (what, task_ids, message) in cases {
        let answer = listen(&raw, Some(&alice()), task_ids).await;
        assert_eq!(answer.status, StatusCode::OK, "{what}: {answer:?}");
        let json = answer.json();
        assert_eq!(json["id"], 5, "{what}: {json}");
        assert_eq!(json["error"]["code"], -32602, "{what}: {json}");
        assert_eq!(json["error"]["message"], message, "{what}: {json}");
    }
    let params = |params: Value| {
        json!({"jsonrpc": "2.0", "id": 5, "method": "subscriptions/listen", "params": params})
            .to_string()
    };
    let bodies = [
        ("params an array", params(json!([{"taskIds": ["t"]}])), StatusCode::OK, "params must be an object without repeated keys"),
        ("notifications an array", params(json!({"notifications": [["t"]]})), StatusCode::OK, "params.notifications must be an object without repeated keys"),
        ("not JSON", "{\"jsonrpc\": ".to_owned(), StatusCode::BAD_REQUEST, ""),
        ("a repeated params key", r#"{"jsonrpc":"2.0","id":5,"method":"subscriptions/listen","params":{},"params":{"notifications":{"taskIds":["t"]}}}"#.to_owned(), StatusCode::BAD_REQUEST, ""),
        ("a repeated taskIds key", params(json!({"notifications": {}})).replace("{}", r#"{"taskIds":[],"taskIds":["t"]}"#), StatusCode::OK, "params.notifications must be an object without repeated keys"),
        ("over the body cap", params(json!({"pad": "x".repeat(5000)})), StatusCode::PAYLOAD_TOO_LARGE, ""),
    ];
    for (what, body, status, message) in bodies {
        let answer = listen_body(&raw, Some(&alice()), body).await;
        assert_eq!(answer.status, status, "{what}: {answer:?}");
        let json = answer.json();
        if status == StatusCode::OK {
            assert_eq!(json["id"], 5, "{what}: {json}");
            assert_eq!(json["error"]["code"], -32602, "{what}: {json}");
            assert_eq!(json["error"]["message"], message, "{what}: {json}");
        } else {
            assert!(json.get("id").is_none(), "{what}: {json}");
            assert!(json["error"]["code"].is_i64(), "{what}: {json}");
        }
    }
    assert_eq!(
        server.forwarded_count(),
        forwarded,
        "a bad listen was forwarded"
    );
}

/// Other requests pass untouched: a sessionless `tools/call` and a session-era session (legacy
/// tasks are off by default, so their bodies are not read).
#[tokio::test]
async fn other_requests_pass() {
    let server = serve_demo(MemoryStore::new(), |layer| layer).await;
    let raw = Raw::new(&server);
    let body = request(
        2,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "hi"}}),
    );
    let answer = modern(&raw, Some(&alice()), "tools/call", Some("echo"), &body).await;
    assert_eq!(support::tool_text(&answer.json()), "hi", "{answer:?}");
    let session = raw.open_session(Some(&alice())).await;
    let answer = raw.whoami(&session, Some(&alice()), 3).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
}
