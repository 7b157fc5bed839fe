//! The paths around the binding check, attacked: bounded answers, a body read with a deadline, an
//! ending that starts before the body is read and that no client can cancel, a cleanup `DELETE`
//! built only from trusted values, sessionless GET/DELETE, a misordered auth layer, and early
//! answers that keep HTTP/1.1 connections usable. Real rmcp servers over loopback TCP (HTTP/1.1
//! and h2c); Redis cases against a real `redis-server`.

use crate::support;
#[cfg(feature = "redis")]
use support::redis_server;

use std::{
    future::Future,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{Router, extract::Request, middleware::Next, response::IntoResponse};
use bytes::Bytes;
use futures::StreamExt;
use http::StatusCode;
use mcp_session_binding::{
    SessionBindingLayer,
    store::{BindingStore, Lookup, MemoryStore, Owner, Record},
};
use serde_json::{Value, json};
use support::{fault_store::FaultStore, logs::Captured, *};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const WAIT: Duration = Duration::from_secs(10);

/// Polls `check` until it holds, for at most [`WAIT`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < WAIT, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The session is over: its owner gets 404 and the inner service saw a `DELETE` for it.
async fn assert_ended(server: &TestServer, raw: &Raw, session: &str, owner: &str) {
    eventually("the inner service saw the DELETE", || async {
        server
            .forwarded_with(session)
            .contains(&http::Method::DELETE)
    })
    .await;
    let answer = raw.whoami(session, Some(owner), 99).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{answer:?}");
}

// ---------------------------------------------------------------------------------------------
// A raw HTTP/1.1 connection: the tests need to send a head without its body, send bytes the
// HTTP client libraries would not, and see whether the server keeps the connection.

struct Conn {
    stream: TcpStream,
    buffer: Vec<u8>,
}

#[derive(Debug)]
struct RawAnswer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawAnswer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON answer")
    }
}

impl Conn {
    async fn open(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Self {
            stream,
            buffer: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        match tokio::time::timeout(WAIT, self.stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => false,
            Ok(Ok(n)) => {
                self.buffer.extend_from_slice(&chunk[..n]);
                true
            }
            Err(_) => panic!("no answer within {WAIT:?}"),
        }
    }

    /// The next answer (with a `Content-Length` body), or `None` when the server closed.
    async fn answer(&mut self) -> Option<RawAnswer> {
        let head_end = loop {
            if let Some(end) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            if !self.fill().await {
                return None;
            }
        };
        let head = String::from_utf8(self.buffer[..head_end].to_vec()).unwrap();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map_or(0, |(_, v)| v.parse().unwrap());
        self.buffer.drain(..head_end + 4);
        while self.buffer.len() < length {
            assert!(self.fill().await, "connection closed inside a body");
        }
        let body = self.buffer.drain(..length).collect();
        Some(RawAnswer {
            status,
            headers,
            body,
        })
    }

    /// Whether the server closed the connection (EOF) within [`WAIT`].
    async fn closed(&mut self) -> bool {
        self.buffer.clear();
        !self.fill().await
    }
}

/// The head of an MCP request (ends with the blank line).
fn head(
    addr: SocketAddr,
    method: &str,
    session: &str,
    token: Option<&str>,
    length: usize,
    extra: &str,
) -> String {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    format!(
        "{method} /mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nMcp-Session-Id: {session}\r\n\
         {auth}Content-Length: {length}\r\n{extra}\r\n"
    )
}

// ---------------------------------------------------------------------------------------------
// Bounded answers.

#[tokio::test]
async fn a_refused_batch_of_junk_gets_one_small_answer_without_id() {
    let server = serve(SessionBindingLayer::new()).await;
    let raw = Raw::new(&server);
    let alice = token(ISS_A, "alice", 1);
    let mallory = token(ISS_A, "mallory", 1);
    let session = raw.open_session(Some(&alice)).await;

    // 500 KB of `[1,1,1,…]`: once answered with 61 times its size.
    let mut junk = vec![b'['];
    junk.extend(std::iter::repeat_n(&b"1,"[..], 250_000).flatten());
    junk.extend_from_slice(b"1]");
    let answer = raw.post_bytes(Some(&session), Some(&mallory), junk).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{answer:?}");
    assert!(answer.text.len() < 512, "{} bytes", answer.text.len());
    assert!(answer.json().get("id").is_none());
    assert_ended(&server, &raw, &session, &alice).await;
}

#[tokio::test]
async fn a_refused_batch_answers_at_most_64_requests_within_64_kib() {
    let server = serve(SessionBindingLayer::new().end_session_on_mismatch(false)).await;
    let raw = Raw::new(&server);
    let alice = token(ISS_A, "alice", 1);
    let mallory = token(ISS_A, "mallory", 1);
    let session = raw.open_session(Some(&alice)).await;
    let batch = |n: u64| -> Value { (0..n).map(|i| tool_call(i, "whoami", json!({}))).collect() };

    let answer = raw.post(Some(&session), Some(&mallory), &batch(64)).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.text.len() <= 64 * 1024);
    let entries = answer.json();
    assert_eq!(entries.as_array().unwrap().len(), 64);
    assert_eq!(entries[63]["id"], json!(63));
    assert_eq!(entries[63]["result"]["isError"], json!(true));

    let answer = raw.post(Some(&session), Some(&mallory), &batch(65)).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(answer.json().get("id").is_none());

    // One element that is not a JSON-RPC message spoils the batch.
    let mut spoiled = batch(3);
    spoiled.as_array_mut().unwrap().push(json!(1));
    let answer = raw.post(Some(&session), Some(&mallory), &spoiled).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(answer.json().get("id").is_none());

    // A huge id cannot make a huge answer either.
    let huge = json!({"jsonrpc": "2.0", "id": "x".repeat(1 << 20), "method": "tools/call"});
    let answer = raw.post(Some(&session), Some(&mallory), &huge).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(answer.text.len() < 512);
    assert!(answer.json().get("id").is_none());

    // The owner was never disturbed, and nothing of the thief's reached the server.
    assert_eq!(
        raw.whoami(&session, Some(&alice), 1).await.status,
        StatusCode::OK
    );
    assert!(
        !server
            .forwarded_with(&session)
            .contains(&http::Method::DELETE)
    );
}

// ---------------------------------------------------------------------------------------------
// The body of a refused request: read after the ending started, within a deadline.

#[tokio::test]
async fn the_session_ends_before_the_refused_body_is_read() {
    let server = serve(SessionBindingLayer::new()).await;
    let raw = Raw::new(&server);
    let alice = token(ISS_A, "alice", 1);
    let mallory = token(ISS_A, "mallory", 1);
    let session = raw.open_session(Some(&alice)).await;

    // The thief sends a head and promises a body that never comes.
    let mut conn = Conn::open(server.addr).await;
    conn.send(head(server.addr, "POST", &session, Some(&mallory), 1000, "").as_bytes())
        .await;
    assert_ended(&server, &raw, &session, &alice).await;
    drop(conn);
}

#[tokio::test]
async fn a_refused_body_that_does_not_arrive_in_time_gets_408_and_the_session_ends() {
    let layer = SessionBindingLayer::new().refused_body_timeout(Duration::from_millis(300));
    let server = serve(layer).await;
    let raw = Raw::new(&server);
    let alice = token(ISS_A, "alice", 1);
    let mallory = token(ISS_A, "mallory", 1);
    let session = raw.open_session(Some(&alice)).await;

    let mut conn = Conn::open(server.addr).await;
    conn.send(head(server.addr, "POST", &session, Some(&mallory), 1000, "").as_bytes())
        .await;
    conn.send(br#"{"jsonrpc":"2.0","#).await;
    let answer = conn.answer().await.expect("an answer");
    assert_eq!(answer.status, 408, "{answer:?}");
    assert_eq!(answer.header("connection"), Some("close"));
    let error = answer.json();
    assert!(error.get("id").is_none());
    assert!(error["error"]["message"].is_string());
    assert!(
        conn.closed().await,
        "the server keeps a connection with an unread body"
    );
    assert_ended(&server, &raw, &session, &alice).await;
}

// ---------------------------------------------------------------------------------------------
// Ending a session cannot be cancelled by the refused client.

#[derive(Clone, Copy, Debug)]
enum Wire {
    Http1,
    H2c,
}

/// The thief sends the head of a refused POST, then goes away while the layer waits for the
/// body (HTTP/1.1: resets the connection; h2c: resets the stream).
async fn send_and_vanish(server: &TestServer, wire: Wire, session: &str, thief: &str) {
    match wire {
        Wire::Http1 => {
            let mut conn = Conn::open(server.addr).await;
            let head = head(server.addr, "POST", session, Some(thief), 1000, "");
            conn.send(head.as_bytes()).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
            // A reset, not a polite close: the server's connection task fails and drops the
            // request's future while the layer waits for the body.
            #[allow(deprecated)]
            conn.stream.set_linger(Some(Duration::ZERO)).unwrap();
            drop(conn);
        }
        Wire::H2c => {
            let client = reqwest::Client::builder()
                .http2_prior_knowledge()
                .build()
                .unwrap();
            let never = futures::stream::pending::<Result<Bytes, std::io::Error>>();
            let request = client
                .post(&server.url)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .header("mcp-session-id", session)
                .header("mcp-protocol-version", PROTOCOL)
                .bearer_auth(thief)
                .body(reqwest::Body::wrap_stream(never))
                .send();
            let sent = tokio::time::timeout(Duration::from_millis(100), request).await;
            assert!(
                sent.is_err(),
                "the layer answered before the body: {sent:?}"
            );
            drop(client);
        }
    }
}

async fn ending_survives_the_thief_leaving<St: BindingStore + Clone>(store: St, wire: Wire) {
    let slow = FaultStore::new(store).slow_end(Duration::from_millis(500));
    let server = serve(SessionBindingLayer::with_store(slow)).await;
    let raw = Raw::new(&server);
    let alice = token(ISS_A, "alice", 1);
    let session = raw.open_session(Some(&alice)).await;
    send_and_vanish(&server, wire, &session, &token(ISS_A, "mallory", 1)).await;
    assert_ended(&server, &raw, &session, &alice).await;
}

#[tokio::test]
async fn ending_survives_the_thief_leaving_memory_http1() {
    ending_survives_the_thief_leaving(MemoryStore::new(), Wire::Http1).await;
}

#[tokio::test]
async fn ending_survives_the_thief_leaving_memory_h2c() {
    ending_survives_the_thief_leaving(MemoryStore::new(), Wire::H2c).await;
}

#[cfg(feature = "redis")]
async fn redis_store() -> Option<(
    redis_server::RedisServer,
    mcp_session_binding::store::RedisStore,
)> {
    let server = redis_server::RedisServer::start()?;
    let store = mcp_session_binding::store::RedisStore::connect(&server.url())
        .await
        .expect("connect to the test redis");
    Some((server, store))
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn ending_survives_the_thief_leaving_redis_http1() {
    let Some((_redis, store)) = redis_store().await else {
        return;
    };
    ending_survives_the_thief_leaving(store, Wire::Http1).await;
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn ending_survives_the_thief_leaving_redis_h2c() {
    let Some((_redis, store)) = redis_store().await else {
        return;
    };
    ending_survives_the_thief_leaving(store, Wire::H2c).await;
}

// ---------------------------------------------------------------------------------------------
// The cleanup DELETE is built from trusted values only.

/// Opens alice's GET stream; the returned task ends when rmcp closes the stream.
async fn open_stream(raw: &Raw, session: &str, owner: &str) -> tokio::task::JoinHandle<()> {
    let response = raw
        .request(reqwest::Method::GET, Some(session), Some(owner))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut stream = response.bytes_stream();
    tokio::spawn(async move { while let Some(Ok(_)) = stream.next().await {} })
}

async fn assert_stream_closes(stream: tokio::task::JoinHandle<()>, what: &str) {
    tokio::time::timeout(WAIT, stream)
        .await
        .unwrap_or_else(|_| panic!("rmcp kept the session ({what}): the owner's stream is open"))
        .unwrap();
}

#[tokio::test]
async fn the_cleanup_delete_ignores_what_the_refused_caller_sent() {
    let server = serve(SessionBindingLayer::new()).await;
    let raw = Raw::new(&server);
    let alice = token(ISS_A, "alice", 1);
    let mallory = token(ISS_A, "mallory", 1);
    let call = tool_call(7, "whoami", json!({})).to_string();
    for (what, extra, host) in [
        (
            "a garbage protocol version",
            "MCP-Protocol-Version: garbage\r\n",
            None,
        ),
        (
            "a repeated protocol version",
            "MCP-Protocol-Version: 2025-11-25\r\nMCP-Protocol-Version: 2025-06-18\r\n",
            None,
        ),
        ("a foreign Host", "", Some("evil.example")),
        ("a query string", "", None),
    ] {
        let session = raw.open_session(Some(&alice)).await;
        let stream = open_stream(&raw, &session, &alice).await;
        let mut request = head(
            server.addr,
            "POST",
            &session,
            Some(&mallory),
            call.len(),
            extra,
        );
        if let Some(host) = host {
            request = request.replace(&format!("Host: {}", server.addr), &format!("Host: {host}"));
        }
        if what == "a query string" {
            request = request.replacen("/mcp", "/mcp?x=1", 1);
        }
        let mut conn = Conn::open(server.addr).await;
        conn.send(request.as_bytes()).await;
        conn.send(call.as_bytes()).await;
        let answer = conn.answer().await.expect("an answer");
        assert_eq!(answer.status, 200, "{what}: {answer:?}");
        assert_eq!(answer.json()["result"]["isError"], json!(true), "{what}");
        assert_stream_closes(stream, what).await;
        assert_ended(&server, &raw, &session, &alice).await;
    }
}

/// An inner gate that refuses a `DELETE` without `x-end-auth` with 401, as an upstream that
/// wants credentials (or a misplaced auth layer) would.
async fn gate(request: Request, next: Next) -> axum::response::Response {
    if request.method() == http::Method::DELETE && !request.headers().contains_key("x-end-auth") {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    next.run(request).await
}

async fn serve_gated(layer: SessionBindingLayer<MemoryStore>) -> TestServer {
    let (mcp, seen) = recorded_mcp();
    let app = Router::new()
        .nest_service("/mcp", mcp)
        .layer(axum::middleware::from_fn(gate))
        .layer(layer)
        .layer(axum::middleware::from_fn(auth));
    serve_router(app, seen).await
}

#[tokio::test(flavor = "current_thread")]
async fn a_refused_cleanup_delete_is_logged_and_the_hook_can_fix_it() {
    let captured = Captured::default();
    let _guard = captured.install();
    let alice = token(ISS_A, "alice", 1);
    let mallory = token(ISS_A, "mallory", 1);

    // Without the hook, the inner gate refuses the layer's DELETE: warn `end_failed` with the
    // status and a hint, never `ended` at info.
    let server = serve_gated(SessionBindingLayer::new()).await;
    let raw = Raw::new(&server);
    let session = raw.open_session(Some(&alice)).await;
    raw.whoami(&session, Some(&mallory), 1).await;
    let failed = captured.lines_with("reason=\"end_failed\"");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].contains("WARN") && failed[0].contains("inner_status=401"));
    assert!(failed[0].contains("end_request_hook"), "{}", failed[0]);
    assert!(captured.lines_with("session ended").is_empty());
    // The tombstone holds all the same.
    assert_eq!(
        raw.whoami(&session, Some(&alice), 2).await.status,
        StatusCode::NOT_FOUND
    );

    // With the hook, the DELETE gets through and rmcp frees the session.
    let layer = SessionBindingLayer::new().end_request_hook(|parts| {
        parts
            .headers
            .insert("x-end-auth", http::HeaderValue::from_static("yes"));
    });
    let server = serve_gated(layer).await;
    let raw = Raw::new(&server);
    let session = raw.open_session(Some(&alice)).await;
    let stream = open_stream(&raw, &session, &alice).await;
    raw.whoami(&session, Some(&mallory), 1).await;
    assert_stream_closes(stream, "with the hook").await;
    assert_eq!(captured.lines_with("reason=\"end_failed\"").len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Sessionless revisions have no GET stream, no DELETE, no resumption.

#[tokio::test]
async fn sessionless_get_and_delete_are_405_and_last_event_id_is_removed() {
    let server = serve(SessionBindingLayer::new()).await;
    let raw = Raw::new(&server);
    let alice = token(ISS_A, "alice", 1);
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let answer = Raw::send(
            raw.request(method.clone(), None, Some(&alice))
                .header("mcp-protocol-version", "2026-07-28")
                .header("last-event-id", "1"),
        )
        .await;
        assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(answer.headers["allow"], "POST");
        assert!(answer.json()["error"]["message"].is_string());
    }
    assert_eq!(
        server.forwarded_count(),
        0,
        "a sessionless GET/DELETE was forwarded"
    );

    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    Raw::send(
        raw.request(reqwest::Method::POST, None, Some(&alice))
            .header("mcp-protocol-version", "2026-07-28")
            .header("last-event-id", "1")
            .body(ping.to_string()),
    )
    .await;
    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].last_event_id, None,
        "Last-Event-ID reached the server"
    );
}

// ---------------------------------------------------------------------------------------------
// An auth layer inside the binding layer must not turn every session anonymous.

#[tokio::test(flavor = "current_thread")]
async fn credentials_without_identity_are_refused_even_in_anonymous_mode() {
    let captured = Captured::default();
    let _guard = captured.install();
    for anonymous in [true, false] {
        let (mcp, seen) = recorded_mcp();
        // The wrong order: the auth layer runs after the binding layer.
        let app = Router::new()
            .nest_service("/mcp", mcp)
            .layer(axum::middleware::from_fn(auth))
            .layer(SessionBindingLayer::new().allow_anonymous(anonymous));
        let server = serve_router(app, seen).await;
        let raw = Raw::new(&server);

        let answer = raw
            .post(None, Some(&token(ISS_A, "alice", 1)), &initialize_body())
            .await;
        assert_eq!(
            answer.status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{answer:?}"
        );
        assert!(answer.headers.get("mcp-session-id").is_none());
        let message = answer.json()["error"]["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(message.contains("must run before"), "{message}");
        // The session rmcp created was ended.
        let minted = server.seen.lock().unwrap().clone();
        assert!(
            minted
                .iter()
                .any(|s| s.method == http::Method::DELETE && s.session.is_some())
        );

        if anonymous {
            // Anonymous callers (no credentials at all) still get their sessions.
            raw.open_session(None).await;
        }
    }
    let errors = captured.lines_with("reason=\"credentials_without_identity\"");
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors
            .iter()
            .all(|l| l.contains("ERROR") && l.contains("must run before"))
    );
}

// ---------------------------------------------------------------------------------------------
// Early answers keep HTTP/1.1 connections usable.

fn unknown_get(addr: SocketAddr) -> String {
    head(addr, "GET", "never-issued", None, 0, "")
}

#[tokio::test]
async fn an_early_answer_drains_a_small_body_and_keeps_the_connection() {
    let server = serve(SessionBindingLayer::new()).await;
    let alice = token(ISS_A, "alice", 1);
    let body = tool_call(1, "whoami", json!({})).to_string();
    let mut conn = Conn::open(server.addr).await;
    let request = head(
        server.addr,
        "POST",
        "never-issued",
        Some(&alice),
        body.len(),
        "",
    );
    conn.send(request.as_bytes()).await;
    // The body follows a little later, as it does over a real network.
    tokio::time::sleep(Duration::from_millis(100)).await;
    conn.send(body.as_bytes()).await;
    let answer = conn.answer().await.expect("an answer");
    assert_eq!(answer.status, 404);
    assert_eq!(answer.header("connection"), None);
    // The same connection carries the next request.
    conn.send(unknown_get(server.addr).as_bytes()).await;
    let answer = conn.answer().await.expect("the connection is still usable");
    assert_eq!(answer.status, 404);
}

#[tokio::test]
async fn an_early_answer_to_an_unsent_or_large_body_says_connection_close() {
    let server = serve(SessionBindingLayer::new()).await;
    let alice = token(ISS_A, "alice", 1);

    // The client waits for the answer before sending the body (as a client that refreshes its
    // token and retries does): the answer must tell it not to reuse the connection.
    let mut conn = Conn::open(server.addr).await;
    let request = head(server.addr, "POST", "never-issued", Some(&alice), 100, "");
    conn.send(request.as_bytes()).await;
    let answer = conn.answer().await.expect("an answer");
    assert_eq!(answer.status, 404);
    assert_eq!(answer.header("connection"), Some("close"));
    assert!(conn.closed().await);

    // A body over the drain bound, sent at once.
    let big = vec![b' '; 200 * 1024];
    let mut conn = Conn::open(server.addr).await;
    let request = head(
        server.addr,
        "POST",
        "never-issued",
        Some(&alice),
        big.len(),
        "",
    );
    conn.send(request.as_bytes()).await;
    let _ = conn.stream.write_all(&big).await;
    let answer = conn.answer().await.expect("an answer");
    assert_eq!(answer.status, 404);
    assert_eq!(answer.header("connection"), Some("close"));
}

#[tokio::test]
async fn early_answers_over_h2c_keep_the_connection() {
    let server = serve(SessionBindingLayer::new()).await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    for id in 0..3 {
        let response = client
            .post(&server.url)
            .header("content-type", "application/json")
            .header("mcp-session-id", "never-issued")
            .bearer_auth(token(ISS_A, "alice", 1))
            .body(tool_call(id, "whoami", json!({})).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.version(), http::Version::HTTP_2);
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert!(response.headers().get("connection").is_none());
    }
}

/// Whatever drops the response future (a timeout layer, a server shutting down, a reset
/// connection), the ending completes.
#[tokio::test]
async fn ending_survives_a_dropped_response_future() {
    use tower::{Service, ServiceExt};
    let store = FaultStore::new(MemoryStore::new()).slow_end(Duration::from_millis(200));
    let owner = Owner::User(mcp_session_binding::Identity::new(ISS_A, "alice").unwrap());
    let key = store.key_derivation().session("s-1");
    store
        .bind(
            Record::new(key, &owner, Duration::from_secs(60)),
            usize::MAX,
        )
        .await
        .unwrap();
    let deletes = Arc::new(Mutex::new(Vec::new()));
    let inner = {
        let deletes = deletes.clone();
        tower::service_fn(move |request: http::Request<axum::body::Body>| {
            deletes.lock().unwrap().push(request.method().clone());
            async {
                Ok::<_, std::convert::Infallible>(http::Response::new(axum::body::Body::empty()))
            }
        })
    };
    let mut service = tower::Layer::layer(&SessionBindingLayer::with_store(store.clone()), inner);
    let never = futures::stream::pending::<Result<Bytes, std::io::Error>>();
    let mut request = http::Request::post("/mcp")
        .header("mcp-session-id", "s-1")
        .body(axum::body::Body::from_stream(never))
        .unwrap();
    request
        .extensions_mut()
        .insert(mcp_session_binding::Identity::new(ISS_A, "mallory").unwrap());
    let future = service.ready().await.unwrap().call(request);
    assert!(
        tokio::time::timeout(Duration::from_millis(50), future)
            .await
            .is_err(),
        "answered before the body arrived"
    );
    eventually("the tombstone and the DELETE", || async {
        store.lookup(key, None).await.unwrap() == Lookup::Ended
            && deletes.lock().unwrap().contains(&http::Method::DELETE)
    })
    .await;
}

/// The JWT layer's 401 is an early answer too: it drains a body that follows, and says
/// `Connection: close` when the body does not come.
#[cfg(feature = "jwt")]
#[tokio::test]
async fn the_jwt_layers_early_401_keeps_or_closes_the_connection() {
    use mcp_session_binding::jwt::{Algorithm, JwtAuthLayer, JwtKey};
    let auth = JwtAuthLayer::builder()
        .issuer_keys(ISS_A, JwtKey::hmac([7u8; 32]).unwrap())
        .algorithms([Algorithm::HS256])
        .audiences(["https://mcp.example/mcp"])
        .build()
        .unwrap();
    let app = Router::new()
        .route("/mcp", axum::routing::any(|| async { "reached" }))
        .layer(auth);
    let server = serve_router(app, Arc::default()).await;
    let body = tool_call(1, "whoami", json!({})).to_string();

    let mut conn = Conn::open(server.addr).await;
    let request = head(server.addr, "POST", "s", Some("not-a-jwt"), body.len(), "");
    conn.send(request.as_bytes()).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    conn.send(body.as_bytes()).await;
    let answer = conn.answer().await.expect("an answer");
    assert_eq!(answer.status, 401);
    assert_eq!(answer.header("connection"), None);
    conn.send(head(server.addr, "GET", "s", None, 0, "").as_bytes())
        .await;
    let answer = conn.answer().await.expect("the connection is still usable");
    assert_eq!(answer.status, 401);

    let mut conn = Conn::open(server.addr).await;
    conn.send(request.as_bytes()).await;
    let answer = conn.answer().await.expect("an answer");
    assert_eq!(answer.status, 401);
    assert_eq!(answer.header("connection"), Some("close"));
    assert!(conn.closed().await);
}
