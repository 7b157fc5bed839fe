//! The behaviour table, end to end: the demo rmcp server behind a test auth layer and
//! `SessionBindingLayer`, on loopback, driven by the rmcp client and by raw HTTP.

use crate::support::MISMATCH_MESSAGE;
use crate::support;

use std::sync::{Arc, Mutex};

use http::{Method, StatusCode};
use mcp_session_binding::{
    Identity, MismatchAnswer, SessionBindingLayer,
    store::{BindingStore, Lookup, MemoryStore, Owner},
};
use rmcp::model::{CallToolRequestParams, GetPromptRequestParams, ReadResourceRequestParams};
use serde_json::json;
use support::{
    fault_store::{Fault, FaultStore},
    *,
};


fn alice(nonce: u32) -> String {
    token(ISS_A, "alice", nonce)
}

fn bob() -> String {
    token(ISS_A, "bob", 1)
}

/// Asserts that `answer` is the mismatch `isError` tool result for request `id`.
fn assert_is_error_result(answer: &Answer, id: u64) {
    answer.assert_mismatch(Some(id));
}

/// Asserts the session is over: 404 for its owner, and the inner service was told (DELETE).
async fn assert_session_ended(server: &TestServer, raw: &Raw, session: &str, owner: &str) {
    let answer = raw.whoami(session, Some(owner), 99).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{answer:?}");
    assert!(
        server.forwarded_with(session).contains(&Method::DELETE),
        "the inner session was not deleted: {:?}",
        server.forwarded_with(session)
    );
}

#[tokio::test]
async fn token_refresh_keeps_the_session_for_100_calls() {
    let server = serve(SessionBindingLayer::new()).await;
    let client = RotatingClient::new(alice(0));
    let running = client.clone().connect(&server.url).await;
    for nonce in 1..=100 {
        client.rotate(alice(nonce));
        let result = running
            .call_tool(CallToolRequestParams::new("whoami"))
            .await
            .unwrap_or_else(|e| panic!("call {nonce} after refresh failed: {e}"));
        assert_ne!(result.is_error, Some(true));
        let text = result.content[0].as_text().unwrap().text.clone();
        assert_eq!(text, format!("{ISS_A} alice"));
    }
    running.cancel().await.unwrap();
}

#[tokio::test]
async fn tool_call_by_another_sub_gets_is_error_and_ends_the_session() {
    let server = serve(SessionBindingLayer::new()).await;
    let raw = Raw::new(&server);
    let session = raw.open_session(Some(&alice(1))).await;
    assert_eq!(
        tool_text(&raw.whoami(&session, Some(&alice(2)), 1).await.json()),
        format!("{ISS_A} alice")
    );
    let forwarded_before = server.forwarded_with(&session).len();

    let answer = raw.whoami(&session, Some(&bob()), 7).await;
    assert_is_error_result(&answer, 7);
    let after = server.forwarded_with(&session);
    assert_eq!(
        after[forwarded_before..],
        [Method::DELETE],
        "only the ending DELETE reached the server"
    );
    assert_session_ended(&server, &raw, &session, &alice(3)).await;
}

#[tokio::test]
async fn same_sub_from_another_issuer_is_a_mismatch() {
    let server = serve(SessionBindingLayer::new()).await;
    let raw = Raw::new(&server);
    let session = raw.open_session(Some(&alice(1))).await;
    let answer = raw
        .whoami(&session, Some(&token(ISS_B, "alice", 1)), 3)
        .await;
    assert_is_error_result(&answer, 3);
    assert_session_ended(&server, &raw, &session, &alice(2)).await;
}

#[tokio::test]
async fn anonymous_caller_on_a_bound_session_is_a_mismatch() {
    let server = serve(SessionBindingLayer::new().allow_anonymous(true)).await;
    let raw = Raw::new(&server);
    let session = raw.open_session(Some(&alice(1))).await;
    assert_is_error_result(&raw.whoami(&session, None, 4).await, 4);
    assert_session_ended(&server, &raw, &session, &alice(2)).await;
}

#[tokio::test]
async fn token_on_an_anonymous_session_is_a_mismatch() {
    let server = serve(SessionBindingLayer::new().allow_anonymous(true)).await;
    let raw = Raw::new(&server);
    let session = raw.open_session(None).await;
    assert_eq!(
        tool_text(&raw.whoami(&session, None, 1).await.json()),
        "anonymous"
    );
    assert_is_error_result(&raw.whoami(&session, Some(&alice(1)), 5).await, 5);
    let answer = raw.whoami(&session, None, 6).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn session_creation_without_identity_is_401_unless_anonymous_is_allowed() {
    let server = serve(SessionBindingLayer::new()).await;
    let raw = Raw::new(&server);
    let answer = raw.post(None, None, &initialize_body()).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{answer:?}");
    assert!(
        answer.headers.get("mcp-session-id").is_none(),
        "no session id handed out"
    );
    assert!(
        answer.text.contains("authentication layer"),
        "{}",
        answer.text
    );
    // The session rmcp created was ended at once.
    let seen = server.seen.lock().unwrap().clone();
    let deleted = seen
        .iter()
        .find(|s| s.method == Method::DELETE)
        .expect("inner DELETE");
    let session = deleted.session.clone().unwrap();
    assert_eq!(
        raw.whoami(&session, None, 1).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn other_requests_by_another_identity_get_a_json_rpc_error_with_their_id() {
    let server = serve(SessionBindingLayer::new().end_session_on_mismatch(false)).await;
    let raw = Raw::new(&server);
    let session = raw.open_session(Some(&alice(1))).await;
    for (id, method, params) in [
        (11, "resources/read", json!({"uri": "session://whoami"})),
        (
            12,
            "prompts/get",
            json!({"name": "greet", "arguments": {"name": "x"}}),
        ),
        (13, "tools/list", json!({})),
        (14, "ping", json!({})),
    ] {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let answer = raw.post(Some(&session), Some(&bob()), &body).await;
        assert_eq!(answer.status, StatusCode::OK, "{method}: {answer:?}");
        let message = answer.json();
        assert_eq!(message["id"], json!(id), "{method}");
        assert_eq!(
            message["error"]["message"],
            json!(MISMATCH_MESSAGE),
            "{method}"
        );
        assert!(message.get("result").is_none());
    }
    // Kept alive by configuration: the owner goes on.
    assert_eq!(
        tool_text(&raw.whoami(&session, Some(&alice(2)), 1).await.json()),
        format!("{ISS_A} alice")
    );
}

#[tokio::test]
async fn rmcp_client_of_the_owner_sees_resources_and_prompts() {
    let server = serve(SessionBindingLayer::new()).await;
    let running = RotatingClient::new(alice(1)).connect(&server.url).await;
    let resource = running
        .read_resource(ReadResourceRequestParams::new(
            support::demo_mcp::WHOAMI_URI,
        ))
        .await
        .unwrap();
    let text = serde_json::to_value(&resource.contents[0]).unwrap()["text"].clone();
    assert_eq!(text, json!(format!("{ISS_A} alice")));
    let prompt = running
        .get_prompt(
            GetPromptRequestParams::new("greet")
                .with_arguments(serde_json::from_value(json!({"name": "Ada"})).unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(prompt.messages.len(), 1);
    running.cancel().await.unwrap();
}

#[tokio::test]
async fn notifications_get_403_and_end_the_session() {
    let server = serve(SessionBindingLayer::new()).await;
    let raw = Raw::new(&server);
    let session = raw.open_session(Some(&alice(1))).await;
    let note =
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}});
    let answer = raw.post(Some(&session), Some(&bob()), &note).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(answer.json().get("id").is_none());
    let response = json!({"jsonrpc": "2.0", "id": 5, "result": {}});
    let session2 = raw.open_session(Some(&alice(1))).await;
    let answer = raw.post(Some(&session2), Some(&bob()), &response).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_session_ended(&server, &raw, &session, &alice(2)).await;
}

#[tokio::test]
async fn get_stream_by_another_identity_is_403_and_ends_the_session() {
    let server = serve(SessionBindingLayer::new()).await;
    let raw = Raw::new(&server);
    let session = raw.open_session(Some(&alice(1))).await;
    assert_eq!(
        raw.get_stream_status(&session, Some(&bob())).await,
        StatusCode::FORBIDDEN
    );
    assert!(!server.forwarded_with(&session).contains(&Method::GET));
    assert_session_ended(&server, &raw, &session, &alice(2)).await;
}

#[tokio::test]
async fn owner_get_stream_flows() {
    let server = serve(SessionBindingLayer::new()).await;
    let raw = Raw::new(&server);
    let session = raw.open_session(Some(&alice(1))).await;
    let response = raw
        .request(reqwest::Method::GET, Some(&session), Some(&alice(2)))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .as_bytes()
            .starts_with(b"text/event-stream")
    );
}

#[tokio::test]
async fn delete_by_another_identity_is_403_and_ends_the_session() {
    let server = serve(SessionBindingLayer::new()).await;
    let raw = Raw::new(&server);
    let session = raw.open_session(Some(&alice(1))).await;
    let answer = raw.delete(&session, Some(&bob())).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.json()["error"]["message"], json!(MISMATCH_MESSAGE));
    assert_session_ended(&server, &raw, &session, &alice(2)).await;
}

#[tokio::test]
async fn delete_by_the_owner_ends_the_session() {
    let server = serve(SessionBindingLayer::new()).await;
    let raw = Raw::new(&server);
    let session = raw.open_session(Some(&alice(1))).await;
    let answer = raw.delete(&session, Some(&alice(2))).await;
    assert!(answer.status.is_success(), "{answer:?}");
    assert_eq!(
        raw.whoami(&session, Some(&alice(3)), 1).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        raw.get_stream_status(&session, Some(&alice(3))).await,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn unknown_session_is_404_and_never_adopted() {
    let server = serve(SessionBindingLayer::new()).await;
    let raw = Raw::new(&server);
    let answer = raw
        .whoami("3f2a9c1e-0b7d-4e8a-9c55-2d1f6b8e7a40", Some(&alice(1)), 1)
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.json()["error"]["code"], json!(-32001));
    assert_eq!(server.forwarded_count(), 0);
}

#[tokio::test]
async fn malformed_session_headers_are_400_and_not_forwarded() {
    let server = serve(SessionBindingLayer::new()).await;
    let raw = Raw::new(&server);
    let body = tool_call(1, "whoami", json!({})).to_string();
    let long = "a".repeat(9000);
    let cases: Vec<(&str, Vec<&[u8]>)> = vec![
        ("space", vec![b"abc def"]),
        ("non-ASCII", vec!["séance".as_bytes()]),
        ("9000 bytes", vec![long.as_bytes()]),
        ("empty", vec![b""]),
        ("repeated", vec![b"abc", b"abc"]),
    ];
    for (name, values) in cases {
        let mut builder = raw
            .http
            .post(&raw.url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .bearer_auth(alice(1))
            .body(body.clone());
        for value in values {
            builder = builder.header(
                "mcp-session-id",
                reqwest::header::HeaderValue::from_bytes(value).unwrap(),
            );
        }
        let answer = Raw::send(builder).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{name}: {answer:?}");
        assert!(
            answer.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("Mcp-Session-Id")
        );
    }
    assert_eq!(server.forwarded_count(), 0);
}

#[tokio::test]
async fn oversized_body_on_the_mismatch_path_is_413_and_nothing_forwarded() {
    let server = serve(SessionBindingLayer::new()).await;
    let raw = Raw::new(&server);
    let session = raw.open_session(Some(&alice(1))).await;
    let before = server.forwarded_with(&session).len();
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"echo","arguments":{{"text":"{}"}}}}}}"#,
        "x".repeat(9 * 1024 * 1024)
    );
    let answer = raw
        .post_bytes(Some(&session), Some(&bob()), big.clone().into_bytes())
        .await;
    assert_eq!(
        answer.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        answer.text
    );
    // Chunked, without Content-Length: the cap holds while streaming.
    let stream = futures::stream::iter(
        big.into_bytes()
            .chunks(64 * 1024)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let session2 = raw.open_session(Some(&alice(1))).await;
    let answer = Raw::send(
        raw.request(reqwest::Method::POST, Some(&session2), Some(&bob()))
            .body(reqwest::Body::wrap_stream(stream)),
    )
    .await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    let forwarded = server.forwarded_with(&session);
    assert_eq!(
        forwarded[before..],
        [Method::DELETE],
        "only the ending DELETE"
    );
}

#[tokio::test]
async fn malformed_json_and_duplicate_keys_get_403_without_id() {
    let server = serve(SessionBindingLayer::new().end_session_on_mismatch(false)).await;
    let raw = Raw::new(&server);
    let session = raw.open_session(Some(&alice(1))).await;
    let before = server.forwarded_with(&session).len();
    for body in [
        &b"{not json"[..],
        br#"{"jsonrpc":"2.0","id":1,"method":"ping","method":"tools/call"}"#,
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","id":2}"#,
        br#"[]"#,
    ] {
        let answer = raw
            .post_bytes(Some(&session), Some(&bob()), body.to_vec())
            .await;
        assert_eq!(
            answer.status,
            StatusCode::FORBIDDEN,
            "{}",
            String::from_utf8_lossy(body)
        );
        let message = answer.json();
        assert!(message.get("id").is_none());
        assert_eq!(message["error"]["message"], json!(MISMATCH_MESSAGE));
    }
    assert_eq!(
        server.forwarded_with(&session).len(),
        before,
        "nothing forwarded"
    );
}

#[tokio::test]
async fn a_2025_03_26_batch_gets_one_answer_per_request() {
    let server = serve(SessionBindingLayer::new()).await;
    let raw = Raw::new(&server);
    let session = raw.open_session(Some(&alice(1))).await;
    let batch = json!([
        tool_call(21, "whoami", json!({})),
        {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": 1, "progress": 1}},
        {"jsonrpc": "2.0", "id": "r-22", "method": "resources/read", "params": {"uri": "session://whoami"}},
    ]);
    let answer = raw.post(Some(&session), Some(&bob()), &batch).await;
    assert_eq!(answer.status, StatusCode::OK);
    let answers = answer.json();
    let answers = answers.as_array().unwrap();
    assert_eq!(answers.len(), 2);
    assert_eq!(answers[0]["id"], json!(21));
    assert_eq!(answers[0]["result"]["isError"], json!(true));
    assert_eq!(answers[1]["id"], json!("r-22"));
    assert_eq!(answers[1]["error"]["message"], json!(MISMATCH_MESSAGE));
    assert_session_ended(&server, &raw, &session, &alice(2)).await;
}

#[tokio::test]
async fn sessionless_2026_07_28_requests_pass_through_without_the_session_header() {
    let server = serve(SessionBindingLayer::new()).await;
    let raw = Raw::new(&server);
    let session = raw.open_session(Some(&alice(1))).await;
    let before = server.forwarded_count();
    // Bob names alice's session, but in a sessionless revision: it is stripped, not checked.
    let answer = Raw::send(
        raw.http
            .post(&raw.url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-session-id", &session)
            .bearer_auth(bob())
            .body(tool_call(1, "whoami", json!({})).to_string()),
    )
    .await;
    assert_ne!(answer.text, "", "{answer:?}");
    assert!(!answer.text.contains(MISMATCH_MESSAGE), "{answer:?}");
    let seen = server.seen.lock().unwrap()[before..].to_vec();
    assert_eq!(seen.len(), 1, "forwarded once");
    assert_eq!(
        seen[0].session, None,
        "the stray session header was removed"
    );
    assert!(answer.headers.get("mcp-session-id").is_none());
    // Alice's session is untouched.
    assert_eq!(
        tool_text(&raw.whoami(&session, Some(&alice(2)), 2).await.json()),
        format!("{ISS_A} alice")
    );
}

#[tokio::test]
async fn mismatch_can_answer_like_an_unknown_session() {
    let server = serve(SessionBindingLayer::new().mismatch_answer(MismatchAnswer::NotFound)).await;
    let raw = Raw::new(&server);
    let session = raw.open_session(Some(&alice(1))).await;
    let stolen = raw.whoami(&session, Some(&bob()), 1).await;
    let unknown = raw.whoami("no-such-session", Some(&bob()), 1).await;
    assert_eq!(stolen.status, StatusCode::NOT_FOUND);
    assert_eq!(stolen.text, unknown.text, "no existence oracle");
    assert_session_ended(&server, &raw, &session, &alice(2)).await;
}

#[tokio::test]
async fn store_errors_are_503_and_keep_the_session() {
    let store = FaultStore::<MemoryStore>::default();
    let server = serve(SessionBindingLayer::with_store(store.clone())).await;
    let raw = Raw::new(&server);
    let session = raw.open_session(Some(&alice(1))).await;
    let before = server.forwarded_with(&session).len();

    store.set(Fault::Unavailable);
    for token in [alice(2), bob()] {
        let answer = raw.whoami(&session, Some(&token), 1).await;
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(answer.headers.contains_key("retry-after"));
    }
    assert_eq!(
        raw.get_stream_status(&session, Some(&alice(2))).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        server.forwarded_with(&session).len(),
        before,
        "nothing forwarded, no DELETE"
    );

    store.set(Fault::None);
    assert_eq!(
        tool_text(&raw.whoami(&session, Some(&alice(3)), 2).await.json()),
        format!("{ISS_A} alice")
    );
}

#[tokio::test]
async fn bind_failure_hands_out_no_session() {
    let store = FaultStore::<MemoryStore>::default();
    store.set(Fault::Unavailable);
    let server = serve(SessionBindingLayer::with_store(store.clone())).await;
    let raw = Raw::new(&server);
    let answer = raw.post(None, Some(&alice(1)), &initialize_body()).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(answer.headers.get("mcp-session-id").is_none());
    let deleted = server
        .seen
        .lock()
        .unwrap()
        .iter()
        .any(|s| s.method == Method::DELETE);
    assert!(deleted, "the unbound inner session was ended");
}

#[tokio::test]
async fn corrupt_binding_fails_closed_and_ends_the_session() {
    let store = FaultStore::<MemoryStore>::default();
    let server = serve(SessionBindingLayer::with_store(store.clone())).await;
    let raw = Raw::new(&server);
    let session = raw.open_session(Some(&alice(1))).await;
    store.set(Fault::Corrupt);
    assert_is_error_result(&raw.whoami(&session, Some(&alice(2)), 8).await, 8);
    store.set(Fault::None);
    assert_session_ended(&server, &raw, &session, &alice(3)).await;
}

#[tokio::test]
async fn a_minted_id_of_someone_elses_session_is_500_and_ends_nothing() {
    // A server underneath that hands bob the id of alice's live session (session fixation in
    // the upstream): rmcp behind a rewrite of the minted `Mcp-Session-Id`.
    let fixed: Arc<Mutex<Option<http::HeaderValue>>> = Arc::default();
    let rewrite = fixed.clone();
    let (mcp, seen) = support::recorded_mcp();
    let mcp = tower::util::MapResponse::new(mcp, move |mut response: http::Response<_>| {
        if let Some(id) = rewrite.lock().unwrap().clone()
            && response.headers().contains_key("mcp-session-id")
        {
            response.headers_mut().insert("mcp-session-id", id);
        }
        response
    });
    let store = MemoryStore::new();
    let app = axum::Router::new()
        .nest_service("/mcp", mcp)
        .layer(SessionBindingLayer::with_store(store.clone()))
        .layer(axum::middleware::from_fn(support::auth));
    let server = support::serve_router(app, seen).await;
    let raw = Raw::new(&server);
    let session = raw.open_session(Some(&alice(1))).await;
    *fixed.lock().unwrap() = Some(session.parse().unwrap());

    let answer = raw.post(None, Some(&bob()), &initialize_body()).await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(answer.headers.get("mcp-session-id").is_none());
    assert!(
        !server.forwarded_with(&session).contains(&Method::DELETE),
        "alice's inner session was not ended"
    );
    let key = store.key_derivation().session(&session);
    assert_eq!(
        store.lookup(key, None).await.unwrap(),
        Lookup::Bound(Owner::User(Identity::new(ISS_A, "alice").unwrap())),
        "alice's binding is left as it is"
    );
    // Alice goes on; bob still cannot use her session.
    assert_eq!(
        tool_text(&raw.whoami(&session, Some(&alice(2)), 2).await.json()),
        format!("{ISS_A} alice")
    );
    assert_is_error_result(&raw.whoami(&session, Some(&bob()), 3).await, 3);
}
