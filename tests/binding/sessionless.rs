//! The sessionless era (MCP 2026-07-28): tasks bound to the principal whose `tools/call` created
//! them. A real rmcp server (the demo server's `slow_echo` runs as an rmcp task) behind the test
//! auth layer and `SessionBindingLayer`, driven with raw HTTP; memory and Redis stores; two
//! replicas on one Redis. The `subscriptions/listen` filter and JSON framing are also driven
//! through a scripted inner service, since rmcp 3.9 does not stream task notifications.

use crate::support;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::Router;
use http::StatusCode;
use mcp_session_binding::{SessionBindingLayer, store::BindingStore};
use serde_json::{Value, json};
use support::{
    Answer, Raw, TestServer,
    modern::{alice, bob, create_task, modern, modern_request, request, without},
    serve_router,
};

/// A `tasks/*` request on `task_id`, named in `Mcp-Name`.
async fn task_request(raw: &Raw, token: Option<&str>, method: &str, task_id: &str) -> Answer {
    let mut params = json!({"taskId": task_id});
    if method == "tasks/update" {
        params["inputResponses"] = json!({});
    }
    let body = request(7, method, params);
    modern(raw, token, method, Some(task_id), &body).await
}

/// Polls `tasks/get` as `token` until the task is terminal (at most 100 polls); the last answer.
async fn wait_terminal(raw: &Raw, token: &str, task_id: &str) -> Value {
    for _ in 0..100 {
        let message = task_request(raw, Some(token), "tasks/get", task_id)
            .await
            .json();
        let status = message["result"]["status"].as_str().unwrap_or_default();
        if !matches!(status, "working" | "input_required") {
            return message;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    panic!("task {task_id} did not finish");
}

async fn serve_demo<St: BindingStore + Clone>(layer: SessionBindingLayer<St>) -> TestServer {
    support::serve(layer).await
}

/// alice's task is hers: bob's `tasks/get`, `tasks/update`, `tasks/cancel` are answered exactly
/// like a random id, nothing of them reaches the server, and alice's task completes.
async fn tasks_are_bound_to_their_creator(server: &TestServer) {
    let raw = Raw::new(server);
    let task_id = create_task(&raw, &alice(), "hello", 300).await;
    let random = "0b1e9d4c-57aa-4a8e-8d8e-4f7e6c1b2a39";
    let forwarded = server.forwarded_count();
    for method in ["tasks/get", "tasks/update", "tasks/cancel"] {
        let theirs = task_request(&raw, Some(&bob()), method, &task_id).await;
        let unknown = task_request(&raw, Some(&bob()), method, random).await;
        assert_eq!(
            without(&theirs, &task_id),
            without(&unknown, random),
            "{method}"
        );
        let message = theirs.json();
        assert_eq!(message["id"], 7, "{message}");
        assert_eq!(message["error"]["code"], -32602, "{message}");
        assert_eq!(
            message["error"]["message"],
            format!("unknown task: {task_id}"),
            "{message}"
        );
        // Anonymous callers are no one's task owner either.
        let anonymous = task_request(&raw, None, method, &task_id).await;
        assert_eq!(without(&anonymous, &task_id), without(&unknown, random));
    }
    assert_eq!(
        server.forwarded_count(),
        forwarded,
        "a refusal was forwarded"
    );

    let done = wait_terminal(&raw, &alice(), &task_id).await;
    assert_eq!(done["result"]["status"], "completed", "{done}");
    assert_eq!(
        done["result"]["result"]["content"][0]["text"], "hello",
        "{done}"
    );
}

#[tokio::test]
async fn memory_tasks_are_bound_to_their_creator() {
    let server = serve_demo(SessionBindingLayer::new()).await;
    tasks_are_bound_to_their_creator(&server).await;
}

#[tokio::test]
async fn redis_tasks_are_bound_to_their_creator() {
    let Some(redis) = support::redis_server::RedisServer::start() else {
        return;
    };
    let store = mcp_session_binding::store::RedisStore::connect(&redis.url())
        .await
        .unwrap();
    let server = serve_demo(SessionBindingLayer::with_store(store)).await;
    tasks_are_bound_to_their_creator(&server).await;
}

/// The refusal is rmcp's own answer for a task that does not exist: the same JSON-RPC message
/// a server without the layer gives.
#[tokio::test]
async fn the_refusal_is_rmcps_unknown_task_answer() {
    let bound = serve_demo(SessionBindingLayer::new()).await;
    let unbound = serve_demo(SessionBindingLayer::new().bind_tasks(false)).await;
    let random = "5d0c7e52-3a55-4e5c-9f7e-0c2b7f9a6d11";
    let ours = task_request(&Raw::new(&bound), Some(&bob()), "tasks/get", random).await;
    let rmcps = task_request(&Raw::new(&unbound), Some(&bob()), "tasks/get", random).await;
    assert_eq!(ours.json(), rmcps.json());
}

/// bob's cancel cannot stop alice's task; alice's own cancel does.
#[tokio::test]
async fn only_the_creator_cancels() {
    let server = serve_demo(SessionBindingLayer::new()).await;
    let raw = Raw::new(&server);
    let task_id = create_task(&raw, &alice(), "x", 5_000).await;
    let refused = task_request(&raw, Some(&bob()), "tasks/cancel", &task_id).await;
    assert_eq!(refused.json()["error"]["code"], -32602);
    let status = task_request(&raw, Some(&alice()), "tasks/get", &task_id)
        .await
        .json();
    assert_eq!(status["result"]["status"], "working", "{status}");
    let cancelled = task_request(&raw, Some(&alice()), "tasks/cancel", &task_id).await;
    assert!(cancelled.json().get("error").is_none(), "{cancelled:?}");
    let done = wait_terminal(&raw, &alice(), &task_id).await;
    assert_eq!(done["result"]["status"], "cancelled", "{done}");
}

/// Task records are not sessions: an identity at its session limit still creates tasks, and
/// its tasks take no session slot.
#[tokio::test]
async fn tasks_do_not_count_against_the_session_limit() {
    let server = serve_demo(SessionBindingLayer::new().max_sessions_per_identity(1)).await;
    let raw = Raw::new(&server);
    for i in 0..3 {
        create_task(&raw, &alice(), &format!("t{i}"), 1).await;
    }
    let session = raw.open_session(Some(&alice())).await;
    assert!(!session.is_empty());
}

/// Bad task requests: each gets a clear JSON-RPC error, never a panic, and alice's task is
/// untouched.
#[tokio::test]
async fn bad_task_requests_get_clear_errors() {
    let server = serve_demo(SessionBindingLayer::new().max_task_id_len(64)).await;
    let raw = Raw::new(&server);
    let task_id = create_task(&raw, &alice(), "kept", 200).await;
    let bobs = create_task(&raw, &bob(), "bob's", 1).await;
    let long = "x".repeat(65);
    let body = |task: &str| request(9, "tasks/cancel", json!({"taskId": task}));
    struct Case {
        what: &'static str,
        name: Vec<&'static str>,
        body: Value,
        status: StatusCode,
        message: &'static str,
    }
    let leak = |s: &str| -> &'static str { Box::leak(s.to_owned().into_boxed_str()) };
    let cases = [
        Case {
            what: "Mcp-Name missing",
            name: vec![],
            body: body(&task_id),
            status: StatusCode::OK,
            message: "the Mcp-Name header (the task id) is required",
        },
        Case {
            what: "Mcp-Name repeated",
            name: vec![leak(&task_id), leak(&task_id)],
            body: body(&task_id),
            status: StatusCode::OK,
            message: "the Mcp-Name header is repeated",
        },
        Case {
            what: "task id over the cap",
            name: vec![leak(&long)],
            body: body(&long),
            status: StatusCode::OK,
            message: "the task id is too long",
        },
        Case {
            what: "Mcp-Name empty",
            name: vec![""],
            body: body(&task_id),
            status: StatusCode::OK,
            message: "the Mcp-Name header is empty",
        },
        Case {
            what: "body not JSON-RPC (no id to answer)",
            name: vec![leak(&long)],
            body: json!("nope"),
            status: StatusCode::BAD_REQUEST,
            message: "the task id is too long",
        },
    ];
    for case in cases {
        let builder = modern_request(&raw, Some(&bob()), "tasks/cancel", &case.name, &case.body);
        let answer = Raw::send(builder).await;
        assert_eq!(answer.status, case.status, "{}: {answer:?}", case.what);
        let message = answer.json();
        assert_eq!(message["error"]["code"], -32602, "{}: {message}", case.what);
        assert_eq!(
            message["error"]["message"], case.message,
            "{}: {message}",
            case.what
        );
        if case.status == StatusCode::OK {
            assert_eq!(message["id"], 9, "{}: {message}", case.what);
        } else {
            assert!(message.get("id").is_none(), "{}: {message}", case.what);
        }
    }
    // Mcp-Name naming bob's own task while the body names alice's: the layer checks the header
    // (bob's), and rmcp refuses the mismatch itself (revision 2026-07-28 requires it).
    let answer = modern(
        &raw,
        Some(&bob()),
        "tasks/cancel",
        Some(&bobs),
        &body(&task_id),
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{answer:?}");
    assert!(answer.json()["error"]["code"].is_i64(), "{answer:?}");

    let done = wait_terminal(&raw, &alice(), &task_id).await;
    assert_eq!(done["result"]["status"], "completed", "{done}");
}

/// Two replicas on one Redis: a task created on A is refused to bob on B and served to alice on
/// B (the demo server's task manager is shared in the process, standing in for a task backend
/// both replicas reach).
#[tokio::test]
async fn replicas_share_task_records() {
    let Some(redis) = support::redis_server::RedisServer::start() else {
        return;
    };
    let store = || async {
        mcp_session_binding::store::RedisStore::connect(&redis.url())
            .await
            .unwrap()
    };
    let a = serve_demo(SessionBindingLayer::with_store(store().await)).await;
    let b = serve_demo(SessionBindingLayer::with_store(store().await)).await;
    let task_id = create_task(&Raw::new(&a), &alice(), "across", 100).await;
    let on_b = Raw::new(&b);
    let refused = task_request(&on_b, Some(&bob()), "tasks/get", &task_id).await;
    assert_eq!(refused.json()["error"]["code"], -32602, "{refused:?}");
    let done = wait_terminal(&on_b, &alice(), &task_id).await;
    assert_eq!(done["result"]["status"], "completed", "{done}");
}

/// A scripted inner service: JSON answers (rmcp's `json_response` framing) and a
/// `subscriptions/listen` stream with task notifications, which rmcp 3.9 does not send.
fn scripted() -> (Router, Arc<Mutex<Vec<support::Seen>>>) {
    use axum::{body::Body, response::Response};
    support::scripted(|request: axum::extract::Request| async move {
        let method = support::header_text(request.headers(), "mcp-method");
        let name = support::header_text(request.headers(), "mcp-name");
        let (content_type, body) = match method.as_str() {
            "tools/call" => (
                "application/json",
                json!({"jsonrpc": "2.0", "id": 1, "result": {
                        "resultType": "task", "taskId": format!("task-of-{name}"),
                        "status": "working", "createdAt": "2026-11-30T00:00:00Z",
                        "lastUpdatedAt": "2026-11-30T00:00:00Z", "ttlMs": 60000}})
                .to_string(),
            ),
            "tasks/get" => (
                "application/json",
                json!({"jsonrpc": "2.0", "id": 7, "result": {"taskId": name, "status": "working"}})
                    .to_string(),
            ),
            "subscriptions/listen" => {
                let note = |task: &str| {
                    format!(
                        "data: {}\n\n",
                        json!({"jsonrpc": "2.0", "method": "notifications/tasks",
                                   "params": {"taskId": task, "status": "working"}})
                    )
                };
                let other = json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"});
                (
                    "text/event-stream",
                    format!(
                        "{}{}data: {other}\n\n{}",
                        note("task-of-a"),
                        note("task-of-b"),
                        note("never-created")
                    ),
                )
            }
            _ => ("application/json", "{}".to_owned()),
        };
        Response::builder()
            .header("content-type", content_type)
            .body(Body::from(body))
            .unwrap()
    })
}

async fn serve_scripted() -> TestServer {
    let (inner, seen) = scripted();
    let app = inner
        .layer(SessionBindingLayer::new())
        .layer(axum::middleware::from_fn(support::auth));
    serve_router(app, seen).await
}

/// JSON answers are scanned as well as SSE: the task a JSON `tools/call` answer creates is
/// recorded, with the answer passed on byte for byte.
#[tokio::test]
async fn json_answers_record_tasks() {
    let server = serve_scripted().await;
    let raw = Raw::new(&server);
    let body = request(1, "tools/call", json!({"name": "a", "arguments": {}}));
    let created = modern(&raw, Some(&alice()), "tools/call", Some("a"), &body).await;
    assert_eq!(created.json()["result"]["taskId"], "task-of-a");
    let mine = task_request(&raw, Some(&alice()), "tasks/get", "task-of-a").await;
    assert_eq!(mine.json()["result"]["taskId"], "task-of-a", "{mine:?}");
    let refused = task_request(&raw, Some(&bob()), "tasks/get", "task-of-a").await;
    assert_eq!(refused.json()["error"]["code"], -32602, "{refused:?}");
}

/// `subscriptions/listen`: notifications about other callers' tasks (and tasks no one created
/// through the layer) are dropped; the caller's own and other notifications pass.
#[tokio::test]
async fn listen_streams_carry_only_the_callers_tasks() {
    let server = serve_scripted().await;
    let raw = Raw::new(&server);
    for (token, tool) in [(alice(), "a"), (bob(), "b")] {
        let body = request(1, "tools/call", json!({"name": tool, "arguments": {}}));
        modern(&raw, Some(&token), "tools/call", Some(tool), &body).await;
    }
    let listen = request(3, "subscriptions/listen", json!({"notifications": {}}));
    let answer = modern(&raw, Some(&alice()), "subscriptions/listen", None, &listen).await;
    assert_eq!(answer.status, StatusCode::OK);
    let events: Vec<Value> = answer
        .text
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .map(|data| serde_json::from_str(data).unwrap())
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["params"]["taskId"], "task-of-a");
    assert_eq!(events[1]["method"], "notifications/tools/list_changed");
}

/// A scripted inner service whose `tools/call` answers arrive in many body frames, split inside
/// the `taskId` key, inside the task id and (SSE) inside the blank line that ends the event; its
/// `tasks/get` answers with the task named in `Mcp-Name`. The name of the tool (`json` or `sse`)
/// picks the framing.
fn split_answers() -> (Router, Arc<Mutex<Vec<support::Seen>>>) {
    use axum::{body::Body, response::Response};
    support::scripted(|request: axum::extract::Request| {
        async move {
            let header = |name: &str| support::header_text(request.headers(), name);
            let (method, name) = (header("mcp-method"), header("mcp-name"));
            let (content_type, chunks): (_, Vec<String>) = match (method.as_str(), name.as_str()) {
                ("tools/call", "json") => (
                    "application/json",
                    [
                        r#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"task","task"#,
                        r#"Id":"split-"#,
                        r#"json","status":"working","ttlMs":60000}}"#,
                    ]
                    .map(String::from)
                    .into(),
                ),
                ("tools/call", "sse") => (
                    "text/event-stream",
                    [
                        // A whole event naming no task: passed on as it came.
                        "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progress\":1}}\n\n",
                        "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"resultType\":\"task\",\"ta",
                        "skId\":\"split-s",
                        "se\",\"status\":\"working\"}}\n",
                        "\n",
                    ]
                    .map(String::from)
                    .into(),
                ),
                ("tasks/get", _) => (
                    "application/json",
                    vec![json!({"jsonrpc": "2.0", "id": 7, "result": {"taskId": name, "status": "working"}}).to_string()],
                ),
                _ => ("application/json", vec!["{}".to_owned()]),
            };
            let frames = chunks
                .into_iter()
                .map(|chunk| Ok::<_, std::convert::Infallible>(bytes::Bytes::from(chunk)));
            Response::builder()
                .header("content-type", content_type)
                .body(Body::from_stream(futures::stream::iter(frames)))
                .unwrap()
        }
    })
}

/// A task id that arrives split across body frames (JSON) or across the frames of one SSE event
/// is still recorded for its creator, and the answer passes on byte for byte: the scan never
/// lets a frame through unscanned because it holds only part of `taskId`.
#[tokio::test]
async fn a_task_split_across_frames_is_still_bound() {
    let (inner, seen) = split_answers();
    let app = inner
        .layer(SessionBindingLayer::new())
        .layer(axum::middleware::from_fn(support::auth));
    let server = serve_router(app, seen).await;
    let raw = Raw::new(&server);
    for (tool, task_id) in [("json", "split-json"), ("sse", "split-sse")] {
        let body = request(1, "tools/call", json!({"name": tool, "arguments": {}}));
        let created = modern(&raw, Some(&alice()), "tools/call", Some(tool), &body).await;
        assert_eq!(created.status, StatusCode::OK, "{created:?}");
        assert!(
            created.text.contains(&format!(r#""taskId":"{task_id}""#)),
            "{tool}: the answer passes on whole: {created:?}"
        );
        if tool == "sse" {
            assert!(
                created.text.starts_with(
                    "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\""
                )
            );
            assert!(created.text.ends_with("}}\n\n"), "{created:?}");
        }
        let mine = task_request(&raw, Some(&alice()), "tasks/get", task_id).await;
        assert_eq!(
            mine.json()["result"]["taskId"],
            task_id,
            "{tool}: the creator's task was not recorded: {mine:?}"
        );
        let refused = task_request(&raw, Some(&bob()), "tasks/get", task_id).await;
        assert_eq!(
            refused.json()["error"]["code"],
            -32602,
            "{tool}: {refused:?}"
        );
    }
}

// ---- requestState sealed to the principal ----

use mcp_session_binding::state::{RequestStateLayer, StateKeys};

const KEY_A: [u8; 32] = [0x11; 32];

/// The demo server behind the test auth layer, `SessionBindingLayer` and a
/// `RequestStateLayer` with `keys` and `ttl`.
async fn serve_sealed(keys: StateKeys, ttl: Duration) -> TestServer {
    let (mcp, seen) = support::recorded_mcp();
    let app = Router::new()
        .nest_service("/mcp", mcp)
        .layer(RequestStateLayer::new(keys).ttl(ttl))
        .layer(SessionBindingLayer::new())
        .layer(axum::middleware::from_fn(support::auth));
    serve_router(app, seen).await
}

fn call(id: u64, tool: &str, text: &str, state: Option<Value>) -> Value {
    let mut params = json!({"name": tool, "arguments": {"text": text}});
    if let Some(state) = state {
        params["requestState"] = state;
        params["inputResponses"] =
            json!({"confirm": {"action": "accept", "content": {"ok": true}}});
    }
    request(id, "tools/call", params)
}

async fn tool_call(raw: &Raw, token: &str, tool: &str, body: &Value) -> Answer {
    modern(raw, Some(token), "tools/call", Some(tool), body).await
}

/// alice's first `confirm_echo` round: the sealed state.
async fn first_round(raw: &Raw, token: &str, text: &str) -> String {
    let answer = tool_call(
        raw,
        token,
        "confirm_echo",
        &call(1, "confirm_echo", text, None),
    )
    .await;
    let message = answer.json();
    assert_eq!(
        message["result"]["resultType"], "input_required",
        "{message}"
    );
    assert!(
        message["result"]["inputRequests"]["confirm"].is_object(),
        "{message}"
    );
    let state = message["result"]["requestState"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(state.starts_with("mcpsb1."), "not sealed: {state}");
    assert!(
        !state.contains("confirm:"),
        "the server's state leaks: {state}"
    );
    state
}

fn assert_invalid_state(answer: &Answer, id: u64) {
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let message = answer.json();
    assert_eq!(message["id"], id, "{message}");
    assert_eq!(message["error"]["code"], -32602, "{message}");
    assert_eq!(
        message["error"]["message"], "Invalid or expired requestState",
        "{message}"
    );
}

#[tokio::test]
async fn request_state_completes_for_its_caller_only() {
    let server = serve_sealed(StateKeys::new(KEY_A), Duration::from_secs(300)).await;
    let raw = Raw::new(&server);
    let state = first_round(&raw, &alice(), "hi").await;
    let forwarded = server.forwarded_count();

    // bob replays alice's state: refused, and the tool does not run.
    let replay = call(2, "confirm_echo", "hi", Some(Value::from(state.clone())));
    assert_invalid_state(&tool_call(&raw, &bob(), "confirm_echo", &replay).await, 2);
    // Her state on another tool, or with other arguments, or tampered.
    let other_tool = call(3, "echo", "hi", Some(Value::from(state.clone())));
    assert_invalid_state(&tool_call(&raw, &alice(), "echo", &other_tool).await, 3);
    let other_args = call(4, "confirm_echo", "bye", Some(Value::from(state.clone())));
    assert_invalid_state(
        &tool_call(&raw, &alice(), "confirm_echo", &other_args).await,
        4,
    );
    let mut tampered = state.clone().into_bytes();
    let at = tampered.len() / 2;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = call(
        5,
        "confirm_echo",
        "hi",
        Some(Value::from(String::from_utf8(tampered).unwrap())),
    );
    assert_invalid_state(
        &tool_call(&raw, &alice(), "confirm_echo", &tampered).await,
        5,
    );
    // The plain state the server wrote is not accepted either.
    let plain = call(6, "confirm_echo", "hi", Some(Value::from("confirm:hi")));
    assert_invalid_state(&tool_call(&raw, &alice(), "confirm_echo", &plain).await, 6);
    assert_eq!(
        server.forwarded_count(),
        forwarded,
        "a refusal was forwarded"
    );

    // alice completes.
    let retry = call(7, "confirm_echo", "hi", Some(Value::from(state)));
    let done = tool_call(&raw, &alice(), "confirm_echo", &retry)
        .await
        .json();
    assert_eq!(support::tool_text(&done), "hi", "{done}");
}

#[tokio::test]
async fn expired_request_state_is_refused() {
    let server = serve_sealed(StateKeys::new(KEY_A), Duration::from_secs(1)).await;
    let raw = Raw::new(&server);
    let state = first_round(&raw, &alice(), "late").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let retry = call(2, "confirm_echo", "late", Some(Value::from(state)));
    assert_invalid_state(&tool_call(&raw, &alice(), "confirm_echo", &retry).await, 2);
}

/// Bad `requestState` values: each a clear JSON-RPC error with the request's id.
#[tokio::test]
async fn bad_request_states_get_clear_errors() {
    let server = serve_sealed(StateKeys::new(KEY_A), Duration::from_secs(300)).await;
    let raw = Raw::new(&server);
    let cases = [
        ("a number", json!(5)),
        ("an object", json!({"s": "x"})),
        ("null", Value::Null),
        ("oversized", Value::from("A".repeat(70 * 1024))),
        ("not base64", Value::from("mcpsb1.!!!not base64!!!")),
        ("empty", Value::from("")),
        ("another format", Value::from("rs1.abc.def")),
    ];
    for (i, (what, state)) in cases.into_iter().enumerate() {
        let id = 10 + i as u64;
        let body = call(id, "confirm_echo", "x", Some(state));
        let answer = tool_call(&raw, &alice(), "confirm_echo", &body).await;
        assert_eq!(answer.status, StatusCode::OK, "{what}: {answer:?}");
        let message = answer.json();
        assert_eq!(message["id"], id, "{what}: {message}");
        assert_eq!(message["error"]["code"], -32602, "{what}: {message}");
    }
}

/// Two replicas with the same keys: a state sealed on A opens on B, for alice only; a rotated
/// ring (new key first, old key kept) still opens it.
#[tokio::test]
async fn replicas_share_state_keys() {
    let a = serve_sealed(StateKeys::new(KEY_A), Duration::from_secs(300)).await;
    let rotated = StateKeys::new([0x22; 32]).with_key(KEY_A);
    let b = serve_sealed(rotated, Duration::from_secs(300)).await;
    let state = first_round(&Raw::new(&a), &alice(), "across").await;
    let on_b = Raw::new(&b);
    let retry = call(2, "confirm_echo", "across", Some(Value::from(state)));
    assert_invalid_state(&tool_call(&on_b, &bob(), "confirm_echo", &retry).await, 2);
    let done = tool_call(&on_b, &alice(), "confirm_echo", &retry)
        .await
        .json();
    assert_eq!(support::tool_text(&done), "across", "{done}");
    // Without the key, B refuses it.
    let c = serve_sealed(StateKeys::new([0x33; 32]), Duration::from_secs(300)).await;
    let state = first_round(&Raw::new(&a), &alice(), "x").await;
    let retry = call(3, "confirm_echo", "x", Some(Value::from(state)));
    assert_invalid_state(
        &tool_call(&Raw::new(&c), &alice(), "confirm_echo", &retry).await,
        3,
    );
}

/// A `tasks/*` request can be served sessionless by rmcp without naming revision 2026-07-28 in
/// its header: rmcp treats any request whose `_meta` carries a protocol version and client
/// capabilities as sessionless, whatever version they name. bob tries that on alice's task, with
/// an older revision in the header, no `Mcp-Method`/`Mcp-Name`, with no session and with a
/// session of his own. The layer removes the header from such requests, so rmcp refuses them.
#[tokio::test]
async fn a_legacy_header_does_not_get_around_the_task_check() {
    let server = serve_demo(SessionBindingLayer::new()).await;
    let raw = Raw::new(&server);
    let task_id = create_task(&raw, &alice(), "secret", 200).await;
    let bobs_session = raw.open_session(Some(&bob())).await;
    for session in [None, Some(bobs_session.as_str())] {
        for version in ["2025-11-25", "2025-06-18"] {
            for method in ["tasks/get", "tasks/cancel"] {
                let body = json!({
                    "jsonrpc": "2.0", "id": 9, "method": method,
                    "params": {
                        "taskId": task_id,
                        "_meta": {
                            "io.modelcontextprotocol/protocolVersion": version,
                            "io.modelcontextprotocol/clientCapabilities": {
                                "extensions": {"io.modelcontextprotocol/tasks": {}}
                            }
                        }
                    }
                });
                let mut request = support::modern::post_json(&raw, version, Some(&bob()), &body);
                if let Some(session) = session {
                    request = request.header("mcp-session-id", session);
                }
                let answer = Raw::send(request).await;
                let text = format!("{} {}", answer.status, answer.text);
                assert!(
                    !text.contains("\"result\""),
                    "bob, {version} header, session {session:?}, {method}: {text}"
                );
            }
        }
    }
    // bob cancelled nothing: alice's task completes.
    let done = wait_terminal(&raw, &alice(), &task_id).await;
    assert_eq!(done["result"]["status"], "completed", "{done}");
}

/// The same legacy-header path around `RequestStateLayer` alone: a plain state the server would
/// accept, sent with an older revision in the header and 2026-07-28 `_meta` keys, must not make
/// the tool run.
#[tokio::test]
async fn a_legacy_header_does_not_get_around_the_state_check() {
    let (mcp, seen) = support::recorded_mcp();
    let app = Router::new()
        .nest_service("/mcp", mcp)
        .layer(RequestStateLayer::new(StateKeys::random()))
        .layer(axum::middleware::from_fn(support::auth));
    let server = serve_router(app, seen).await;
    let raw = Raw::new(&server);
    let version = "2025-11-25";
    let body = json!({
        "jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {
            "name": "confirm_echo",
            "arguments": {"text": "hi"},
            "requestState": "confirm:hi",
            "inputResponses": {"confirm": {"action": "accept", "content": {"ok": true}}},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": version,
                "io.modelcontextprotocol/clientCapabilities": {}
            }
        }
    });
    let answer = Raw::send(
        raw.http
            .post(&raw.url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-protocol-version", version)
            .bearer_auth(alice())
            .body(body.to_string()),
    )
    .await;
    assert!(
        !answer.text.contains("\"result\""),
        "an unsealed state was accepted: {} {}",
        answer.status,
        answer.text
    );
}
