//! `TaskParamsLayer`: task ids carried in request bodies, bound to their creator.
//!
//! - `subscriptions/listen` (revision 2026-07-28): a real rmcp server (the demo server, whose
//!   `slow_echo` runs as an rmcp task) behind the test auth layer, `SessionBindingLayer` (which
//!   records the tasks) and `TaskParamsLayer` on the same store; memory and Redis stores. rmcp 3.9
//!   does not serve `subscriptions/listen` (it answers `-32601`), so an accepted listen is one
//!   that reaches it.
//! - Legacy 2025-11-25 tasks: rmcp does not implement them (it serves the 2026-07-28 tasks
//!   extension only, without `tasks/result` or `tasks/list`), so they are driven through a
//!   scripted inner service that answers the 2025-11-25 wire shapes.

use crate::support;

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicU64, Ordering},
};

use axum::Router;
use http::StatusCode;
use mcp_session_binding::{
    SessionBindingLayer,
    store::{BindingStore, MemoryStore},
    task_params::TaskParamsLayer,
};
use serde_json::{Value, json};
use support::{
    Answer, Raw, TestServer,
    modern::{alice, bob, create_task, modern, request, without},
    serve_router,
};

/// The task layer's answer to `tasks/list`. (not exported)
const TASK_LIST_REFUSED: &str = "tasks/list is not available: tasks are bound to their creator and the list cannot be filtered; poll each of your tasks with tasks/get";

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

// ---- Legacy 2025-11-25 tasks, on a scripted inner service ----

/// A scripted 2025-11-25 server (rmcp does not serve these tasks): `initialize` opens a session;
/// a `tools/call` with `params.task` answers a `CreateTaskResult` whose `result.task.taskId` is
/// `legacy-<text>`, as JSON or, for the tool `sse`, as an SSE stream with a notification first;
/// `tasks/get|result|cancel` answer with the task id they name; `tasks/list` lists every task;
/// notifications get 202; anything else an empty result.
fn legacy_server() -> (Router, support::Recorded) {
    use axum::{body::Body, response::Response};
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let sessions = Arc::new(AtomicU64::new(0));
    let handler = move |request: axum::extract::Request| {
        let (record, sessions) = (record.clone(), sessions.clone());
        async move {
            record.lock().unwrap().push(support::Seen::of(&request));
            let bytes = axum::body::to_bytes(request.into_body(), usize::MAX)
                .await
                .unwrap();
            let message: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let json = |body: Value| {
                Response::builder()
                    .header("content-type", "application/json")
                    .body(Body::from(body.to_string()))
                    .unwrap()
            };
            if message.is_array() {
                return json(json!([]));
            }
            let Some(id) = message.get("id").cloned() else {
                return Response::builder().status(202).body(Body::empty()).unwrap();
            };
            let params = &message["params"];
            let result = |result: Value| json!({"jsonrpc": "2.0", "id": id, "result": result});
            match message["method"].as_str().unwrap_or_default() {
                "initialize" => {
                    let n = sessions.fetch_add(1, Ordering::Relaxed);
                    let mut answer = json(result(json!({
                        "protocolVersion": "2025-11-25", "capabilities": {"tasks": {}},
                        "serverInfo": {"name": "legacy", "version": "0"}})));
                    answer.headers_mut().insert(
                        "mcp-session-id",
                        format!("legacy-session-{n}").parse().unwrap(),
                    );
                    answer
                }
                "tools/call" if params.get("task").is_some() => {
                    let text = params["arguments"]["text"].as_str().unwrap_or_default();
                    let created = result(json!({"task": {
                        "taskId": format!("legacy-{text}"), "status": "working",
                        "createdAt": "2026-11-30T00:00:00Z", "ttl": 60000, "pollInterval": 100}}));
                    if params["name"] != "sse" {
                        return json(created);
                    }
                    let note = json!({"jsonrpc": "2.0", "method": "notifications/progress",
                        "params": {"progressToken": 1, "progress": 0}});
                    Response::builder()
                        .header("content-type", "text/event-stream")
                        .body(Body::from(format!("data: {note}\n\ndata: {created}\n\n")))
                        .unwrap()
                }
                "tasks/get" | "tasks/result" | "tasks/cancel" => json(result(
                    json!({"taskId": params["taskId"], "status": "working"}),
                )),
                "tasks/list" => json(result(json!({"tasks": [{"taskId": "legacy-a"}]}))),
                _ => json(result(json!({}))),
            }
        }
    };
    let app = Router::new().route("/mcp", axum::routing::post(handler));
    (app, seen)
}

/// The legacy server behind the test auth layer, `SessionBindingLayer` and `layer`, both on
/// `store`.
async fn serve_legacy<St: BindingStore + Clone>(
    store: St,
    layer: impl FnOnce(TaskParamsLayer<St>) -> TaskParamsLayer<St>,
) -> TestServer {
    let (inner, seen) = legacy_server();
    let app = inner
        .layer(layer(TaskParamsLayer::new(store.clone())))
        .layer(SessionBindingLayer::with_store(store))
        .layer(axum::middleware::from_fn(support::auth));
    serve_router(app, seen).await
}

/// The JSON-RPC messages of an answer (JSON, or the events of an SSE stream).
fn messages(answer: &Answer) -> Vec<Value> {
    if !answer.text.starts_with("data:") {
        return vec![answer.json()];
    }
    answer
        .text
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .map(str::trim)
        .filter(|data| !data.is_empty())
        .map(|data| serde_json::from_str(data).unwrap())
        .collect()
}

/// Starts a legacy task in `session` (the tool `sse` answers with an SSE stream); its id.
async fn create_legacy_task(
    raw: &Raw,
    session: &str,
    token: &str,
    tool: &str,
    text: &str,
) -> String {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": tool, "arguments": {"text": text}, "task": {"ttl": 60000}}});
    let answer = raw.post(Some(session), Some(token), &body).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let last = messages(&answer).pop().unwrap();
    last["result"]["task"]["taskId"]
        .as_str()
        .unwrap_or_else(|| panic!("no task in {answer:?}"))
        .to_owned()
}

/// A legacy `tasks/*` request naming `task_id` in `params.taskId`.
async fn legacy_task_request(
    raw: &Raw,
    session: &str,
    token: &str,
    method: &str,
    task_id: &str,
) -> Answer {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": {"taskId": task_id}});
    raw.post(Some(session), Some(token), &body).await
}

/// alice's legacy tasks (created by a JSON and by an SSE answer) are hers: bob's `tasks/get`,
/// `tasks/result` and `tasks/cancel` on them, from his own session, are answered exactly like a
/// random id, and nothing reaches the server; alice's own are served.
async fn legacy_tasks_are_bound_to_their_creator<St: BindingStore + Clone>(store: St) {
    let server = serve_legacy(store, |layer| layer.legacy_tasks(true)).await;
    let raw = Raw::new(&server);
    let (alices_session, bobs_session) = (
        raw.open_session(Some(&alice())).await,
        raw.open_session(Some(&bob())).await,
    );
    let json_task = create_legacy_task(&raw, &alices_session, &alice(), "echo", "a").await;
    let sse_task = create_legacy_task(&raw, &alices_session, &alice(), "sse", "b").await;
    assert_eq!(
        (json_task.as_str(), sse_task.as_str()),
        ("legacy-a", "legacy-b")
    );
    let random = "legacy-never-created";
    let forwarded = server.forwarded_count();
    for task_id in [&json_task, &sse_task] {
        for method in ["tasks/get", "tasks/result", "tasks/cancel"] {
            let theirs = legacy_task_request(&raw, &bobs_session, &bob(), method, task_id).await;
            assert_refused(&theirs, 7, &format!("unknown task: {task_id}"));
            let unknown = legacy_task_request(&raw, &bobs_session, &bob(), method, random).await;
            assert_eq!(
                without(&theirs, task_id),
                without(&unknown, random),
                "{method}"
            );
        }
    }
    // A task request sent as a notification (no id) is refused too, without an id.
    let note = json!({"jsonrpc": "2.0", "method": "tasks/cancel", "params": {"taskId": json_task}});
    let answer = raw.post(Some(&bobs_session), Some(&bob()), &note).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{answer:?}");
    assert_eq!(answer.json()["error"]["code"], -32602, "{answer:?}");
    assert_eq!(
        server.forwarded_count(),
        forwarded,
        "a refused task request was forwarded"
    );

    for task_id in [&json_task, &sse_task] {
        for method in ["tasks/get", "tasks/result", "tasks/cancel"] {
            let mine = legacy_task_request(&raw, &alices_session, &alice(), method, task_id).await;
            assert_eq!(
                mine.json()["result"]["taskId"],
                task_id.as_str(),
                "{method}: {mine:?}"
            );
        }
    }
    // A task is bound to its creator, not to the session that created it.
    let other_session = raw.open_session(Some(&alice())).await;
    let mine = legacy_task_request(&raw, &other_session, &alice(), "tasks/get", &json_task).await;
    assert_eq!(
        mine.json()["result"]["taskId"],
        json_task.as_str(),
        "{mine:?}"
    );
}

#[tokio::test]
async fn memory_legacy_tasks_are_bound_to_their_creator() {
    legacy_tasks_are_bound_to_their_creator(MemoryStore::new()).await;
}

#[tokio::test]
async fn redis_legacy_tasks_are_bound_to_their_creator() {
    let Some(redis) = support::redis_server::RedisServer::start() else {
        return;
    };
    let store = mcp_session_binding::store::RedisStore::connect(&redis.url())
        .await
        .unwrap();
    legacy_tasks_are_bound_to_their_creator(store).await;
}

/// A task record that is not a record (a corrupt value in Redis, the only store that can hold
/// one) is answered like an unknown task, with `CorruptBinding` as its reason, as the sessionless
/// check answers it; nothing is forwarded.
#[tokio::test]
async fn corrupt_legacy_task_records_are_refused_as_corrupt() {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use mcp_session_binding::{Identity, RejectionReason, store::RedisStore};
    use tower::{Layer, ServiceExt};
    let Some(redis) = support::redis_server::RedisServer::start() else {
        return;
    };
    let store = RedisStore::connect(&redis.url()).await.unwrap();
    let key = store.key_derivation().task("t-corrupt").to_hex();
    redis.command(&[
        "SET",
        &format!("{}task:{key}", store.prefix()),
        "not a record",
    ]);
    let layer = TaskParamsLayer::new(store).legacy_tasks(true);
    let service = layer.layer(tower::service_fn(|_: http::Request<Full<Bytes>>| async {
        panic!("a request naming a corrupt task record was forwarded");
        #[allow(unreachable_code)]
        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::new())))
    }));
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tasks/get",
        "params": {"taskId": "t-corrupt"}});
    let mut request = http::Request::post("/mcp")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let caller = Identity::new("https://issuer.example", "alice").unwrap();
    request.extensions_mut().insert(caller);
    let response = service.oneshot(request).await.unwrap();
    assert_eq!(
        response.extensions().get::<RejectionReason>(),
        Some(&RejectionReason::CorruptBinding)
    );
    let answer: Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(answer["id"], 7, "{answer}");
    assert_eq!(
        answer["error"]["message"], "unknown task: t-corrupt",
        "{answer}"
    );
}

/// An expired task record is refused like an unknown task, to its creator too (the record lives
/// at most `task_ttl`).
#[tokio::test]
async fn expired_legacy_task_records_are_refused() {
    let server = serve_legacy(MemoryStore::new(), |layer| {
        layer
            .legacy_tasks(true)
            .task_ttl(std::time::Duration::from_secs(1))
    })
    .await;
    let raw = Raw::new(&server);
    let session = raw.open_session(Some(&alice())).await;
    let task_id = create_legacy_task(&raw, &session, &alice(), "echo", "a").await;
    let fresh = legacy_task_request(&raw, &session, &alice(), "tasks/get", &task_id).await;
    assert_eq!(
        fresh.json()["result"]["taskId"],
        task_id.as_str(),
        "{fresh:?}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let expired = legacy_task_request(&raw, &session, &alice(), "tasks/get", &task_id).await;
    assert_refused(&expired, 7, &format!("unknown task: {task_id}"));
}

/// `tasks/list` is refused with a clear JSON-RPC error and the request's id: the layer cannot
/// tell whose tasks the server lists.
#[tokio::test]
async fn legacy_task_list_is_refused() {
    let server = serve_legacy(MemoryStore::new(), |layer| layer.legacy_tasks(true)).await;
    let raw = Raw::new(&server);
    let session = raw.open_session(Some(&alice())).await;
    create_legacy_task(&raw, &session, &alice(), "echo", "a").await;
    let forwarded = server.forwarded_count();
    let body = json!({"jsonrpc": "2.0", "id": 8, "method": "tasks/list", "params": {}});
    let answer = raw.post(Some(&session), Some(&alice()), &body).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let json = answer.json();
    assert_eq!(json["id"], 8, "{json}");
    assert_eq!(json["error"]["code"], -32600, "{json}");
    assert_eq!(json["error"]["message"], TASK_LIST_REFUSED, "{json}");
    assert_eq!(
        server.forwarded_count(),
        forwarded,
        "tasks/list was forwarded"
    );
}

/// Legacy tasks are opt-in: by default no session-era body is read, and a task request passes
/// to the server unchecked.
#[tokio::test]
async fn legacy_tasks_are_on_by_default() {
    let server = serve_legacy(MemoryStore::new(), |layer| layer).await;
    let raw = Raw::new(&server);
    let alices = raw.open_session(Some(&alice())).await;
    let bobs = raw.open_session(Some(&bob())).await;
    let task_id = create_legacy_task(&raw, &alices, &alice(), "echo", "a").await;
    let answer = legacy_task_request(&raw, &bobs, &bob(), "tasks/get", &task_id).await;
    let refused = messages(&answer).pop().unwrap();
    assert_eq!(
        refused["error"]["message"],
        format!("unknown task: {task_id}"),
        "{answer:?}"
    );
}

/// Bad legacy task requests: each a clear answer, none forwarded; a batch without task requests
/// passes.
#[tokio::test]
async fn bad_legacy_requests_get_clear_errors() {
    let server = serve_legacy(MemoryStore::new(), |layer| {
        layer
            .legacy_tasks(true)
            .max_task_id_len(16)
            .max_body_bytes(4096)
    })
    .await;
    let raw = Raw::new(&server);
    let session = raw.open_session(Some(&alice())).await;
    let task_id = create_legacy_task(&raw, &session, &alice(), "echo", "a").await;
    let forwarded = server.forwarded_count();
    let get = |params: Value| {
        json!({"jsonrpc": "2.0", "id": 9, "method": "tasks/get", "params": params}).to_string()
    };
    let cases = [
        (
            "taskId a number",
            get(json!({"taskId": 5})),
            "params.taskId must be a string",
        ),
        (
            "taskId an object",
            get(json!({"taskId": {"id": task_id}})),
            "params.taskId must be a string",
        ),
        (
            "taskId missing",
            get(json!({})),
            "params.taskId (the task id) is required",
        ),
        (
            "params missing",
            r#"{"jsonrpc":"2.0","id":9,"method":"tasks/get"}"#.to_owned(),
            "params.taskId (the task id) is required",
        ),
        (
            "taskId empty",
            get(json!({"taskId": ""})),
            "params.taskId is empty",
        ),
        (
            "taskId over the cap",
            get(json!({"taskId": "x".repeat(17)})),
            "the task id is too long",
        ),
        (
            "params positional",
            get(json!([task_id])),
            "params must be an object without repeated keys",
        ),
        (
            "taskId repeated",
            get(json!({"taskId": "other"})).replace(
                r#""taskId":"other""#,
                &format!(r#""taskId":"other","taskId":"{task_id}""#),
            ),
            "params must be an object without repeated keys",
        ),
    ];
    for (what, body, message) in cases {
        let answer = raw
            .post_bytes(Some(&session), Some(&alice()), body.into_bytes())
            .await;
        assert_refused_with(&answer, what, message);
    }
    let call =
        json!({"jsonrpc": "2.0", "id": 1, "method": "tasks/get", "params": {"taskId": task_id}});
    let bodies = [
        (
            // (A body that names no task method in any spelling passes: it cannot be one.)
            "not JSON",
            b"{\"method\": \"tasks/get\", ".to_vec(),
            StatusCode::BAD_REQUEST,
            -32600,
        ),
        (
            "a repeated method",
            r#"{"jsonrpc":"2.0","id":9,"method":"ping","method":"tasks/list"}"#
                .to_owned()
                .into_bytes(),
            StatusCode::BAD_REQUEST,
            -32600,
        ),
        (
            "over the body cap",
            get(json!({"taskId": task_id, "pad": "x".repeat(5000)})).into_bytes(),
            StatusCode::PAYLOAD_TOO_LARGE,
            -32600,
        ),
        (
            "a batch with a task request",
            json!([{"jsonrpc": "2.0", "id": 2, "method": "ping"}, call])
                .to_string()
                .into_bytes(),
            StatusCode::BAD_REQUEST,
            -32600,
        ),
    ];
    for (what, body, status, code) in bodies {
        let answer = raw.post_bytes(Some(&session), Some(&alice()), body).await;
        assert_eq!(answer.status, status, "{what}: {answer:?}");
        let json = answer.json();
        assert!(json.get("id").is_none(), "{what}: {json}");
        assert_eq!(json["error"]["code"], code, "{what}: {json}");
    }
    assert_eq!(
        server.forwarded_count(),
        forwarded,
        "a bad request was forwarded"
    );
    let batch = json!([{"jsonrpc": "2.0", "id": 2, "method": "ping"}, {"jsonrpc": "2.0", "method": "notifications/x"}]);
    let answer = raw.post(Some(&session), Some(&alice()), &batch).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(server.forwarded_count(), forwarded + 1);
}

fn assert_refused_with(answer: &Answer, what: &str, message: &str) {
    assert_eq!(answer.status, StatusCode::OK, "{what}: {answer:?}");
    let json = answer.json();
    assert_eq!(json["id"], 9, "{what}: {json}");
    assert_eq!(json["error"]["code"], -32602, "{what}: {json}");
    assert_eq!(json["error"]["message"], message, "{what}: {json}");
}

/// The example server wires `TaskParamsLayer` inside its binding layer: bob's
/// `subscriptions/listen` naming alice's task is refused, alice's reaches rmcp. Tokens are the
/// ones the example prints when it runs without `MCP_JWT_SECRET`.
#[cfg(all(feature = "jwt", feature = "oidc"))]
#[tokio::test]
async fn the_example_server_checks_listen() {
    let example_attacks::Example {
        raw, alice, bob, ..
    } = &example_attacks::example_server();
    let task_id = create_task(raw, alice, "example", 10).await;
    let refused = listen(raw, Some(bob), json!([task_id])).await;
    assert_refused(&refused, 5, &format!("unknown task: {task_id}"));
    let served = listen(raw, Some(alice), json!([task_id])).await;
    assert!(!served.text.contains("unknown task"), "{served:?}");
    // rmcp 3.9 has no `subscriptions/listen`: its own answer says so.
    assert_eq!(served.json()["error"]["code"], -32601, "{served:?}");
}

/// The attacks of issue 19 against the example server (JWT, binding, task and state layers, rmcp
/// 3.9 underneath), with the tokens it prints when it runs without `MCP_JWT_SECRET`.
#[cfg(all(feature = "jwt", feature = "oidc"))]
mod example_attacks {
    use super::*;
    use support::example_bin::{Spawned, example};

    /// The example server, with the tokens it printed.
    pub(super) struct Example {
        _server: Spawned,
        pub(super) raw: Raw,
        pub(super) alice: String,
        pub(super) bob: String,
    }

    /// Starts the example server without `MCP_JWT_*` settings, so it prints tokens.
    pub(super) fn example_server() -> Example {
        let server = Spawned::start(
            std::process::Command::new(example("mcp_server"))
                .args(["--listen", "127.0.0.1:0"])
                .env_remove("MCP_JWT_SECRET")
                .env_remove("MCP_JWT_ISSUERS")
                .env_remove("MCP_JWT_AUDIENCE"),
        );
        let printed = |who: &str| {
            server
                .banner
                .iter()
                .find_map(|line| line.trim().strip_prefix(who))
                .map(|token| token.trim().to_owned())
                .unwrap_or_else(|| panic!("no {who} token in {:?}", server.banner))
        };
        let (alice, bob) = (printed("alice "), printed("bob "));
        let raw = Raw::at(server.url.clone());
        Example {
            _server: server,
            raw,
            alice,
            bob,
        }
    }

    /// A 2025-11-25 session of `token` that declares the tasks extension.
    pub(super) async fn legacy_session_with_tasks(raw: &Raw, token: &str) -> String {
        let mut body = support::initialize_body();
        body["params"]["capabilities"] =
            json!({"extensions": {"io.modelcontextprotocol/tasks": {}}});
        let answer = raw.post(None, Some(token), &body).await;
        assert_eq!(answer.status, StatusCode::OK, "initialize: {answer:?}");
        let session = answer.session_id();
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let answer = raw.post(Some(&session), Some(token), &note).await;
        assert_eq!(
            answer.status,
            StatusCode::ACCEPTED,
            "initialized: {answer:?}"
        );
        session
    }

    /// The one JSON-RPC message of an answer (JSON, or the last event of an SSE stream).
    pub(super) fn message(answer: &Answer) -> Value {
        messages(answer)
            .pop()
            .unwrap_or_else(|| panic!("no message in {answer:?}"))
    }

    fn task_request(method: &str, task_id: &str) -> Value {
        let mut params = json!({"taskId": task_id});
        if method == "tasks/update" {
            params["inputResponses"] =
                json!({"confirm": {"action": "accept", "content": {"ok": true}}});
        }
        json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params})
    }

    /// Issue 19, findings 1 and 2: bob's own 2025-11-25 session reaches none of alice's tasks
    /// (`tasks/get`, `tasks/update`, `tasks/cancel`), whichever era created them; alice's own
    /// session reaches hers.
    #[tokio::test]
    async fn a_legacy_session_reaches_no_one_elses_task() {
        let Example {
            raw, alice, bob, ..
        } = &example_server();
        // alice's task, created without a session; and one created in her legacy session.
        let sessionless_task = create_task(raw, alice, "a", 60_000).await;
        let alices = legacy_session_with_tasks(raw, alice).await;
        let call = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
            "params": {"name": "slow_echo", "arguments": {"text": "b", "ms": 60_000}}});
        let created = message(&raw.post(Some(&alices), Some(alice), &call).await);
        assert_eq!(created["result"]["resultType"], "task", "{created}");
        let legacy_task = created["result"]["taskId"].as_str().unwrap().to_owned();

        let bobs = legacy_session_with_tasks(raw, bob).await;
        for task_id in [&sessionless_task, &legacy_task] {
            for method in ["tasks/get", "tasks/update", "tasks/cancel"] {
                let answer = raw
                    .post(Some(&bobs), Some(bob), &task_request(method, task_id))
                    .await;
                let refused = message(&answer);
                assert_eq!(refused["error"]["code"], -32602, "{method}: {refused}");
                assert_eq!(
                    refused["error"]["message"],
                    format!("unknown task: {task_id}"),
                    "{method}: {refused}"
                );
            }
        }
        // Neither task was cancelled or fed, and alice's session reaches hers.
        for task_id in [&sessionless_task, &legacy_task] {
            let answer = raw
                .post(
                    Some(&alices),
                    Some(alice),
                    &task_request("tasks/get", task_id),
                )
                .await;
            let served = message(&answer);
            assert_eq!(served["result"]["taskId"], task_id.as_str(), "{served}");
            assert_eq!(served["result"]["status"], "working", "{served}");
        }
    }

    /// `tools/call` of `confirm_echo` with `state` under the key spelled `key`, and accepting
    /// input responses, as raw JSON text.
    pub(super) fn forged_retry(key: &str, state: &str, extra: &str) -> String {
        format!(
            r#"{{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{{"name":"confirm_echo","arguments":{{"text":"hi"}},"{key}":"{state}","inputResponses":{{"confirm":{{"action":"accept","content":{{"ok":true}}}}}}{extra}}}}}"#
        )
    }

    /// Issue 19, findings 3 and 4: a forged `requestState` (the server's own plain state,
    /// `confirm:hi`) never reaches the tool: not under an escaped key, and not from a 2025-11-25
    /// session.
    #[cfg(feature = "request-state")]
    #[tokio::test]
    async fn a_forged_request_state_is_refused_in_every_era_and_spelling() {
        let Example { raw, bob, .. } = &example_server();
        let keys = ["requestState", r"request\u0053tate", r"\u0072equestState"];
        let assert_refused = |answer: &Answer, what: &str| {
            let refused = message(answer);
            assert_eq!(refused["error"]["code"], -32602, "{what}: {refused}");
            assert_eq!(
                refused["error"]["message"], "Invalid or expired requestState",
                "{what}: {refused}"
            );
        };
        for key in keys {
            // Sessionless, with the `_meta` and headers revision 2026-07-28 asks for.
            let meta = format!(r#","_meta":{}"#, support::modern::meta());
            let body = forged_retry(key, "confirm:hi", &meta);
            let answer = Raw::send(
                raw.http
                    .post(&raw.url)
                    .header("accept", "application/json, text/event-stream")
                    .header("content-type", "application/json")
                    .header("mcp-protocol-version", support::modern::MODERN)
                    .header("mcp-method", "tools/call")
                    .header("mcp-name", "confirm_echo")
                    .bearer_auth(bob)
                    .body(body.clone()),
            )
            .await;
            assert_refused(&answer, &format!("sessionless, {key}: {body}"));
        }
        let bobs = legacy_session_with_tasks(raw, bob).await;
        for key in keys {
            let answer = raw
                .post_bytes(
                    Some(&bobs),
                    Some(bob),
                    forged_retry(key, "confirm:hi", "").into_bytes(),
                )
                .await;
            assert_refused(&answer, &format!("legacy session, {key}"));
        }
    }
}
