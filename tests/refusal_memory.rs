//! Memory held by refused requests is bounded by the body cap plus the answer bound: eight
//! concurrent refused 4 MiB batches, answers left unread, measured as the growth of this
//! process's peak resident set (`VmHWM`). Alone in its test binary, so no other test's memory is
//! counted.

mod support;

use std::time::Duration;

use mcp_session_binding::SessionBindingLayer;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The binding layer's default `max_body_bytes` (4 MiB). (not exported)
const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// A `/proc/self/status` figure, in KiB.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_refused_4_mib_batches_hold_bounded_memory() {
    const REQUESTS: usize = 8;
    let server = serve(SessionBindingLayer::new()).await;
    let raw = Raw::new(&server);
    let alice = token(ISS_A, "alice", 1);
    let mallory = token(ISS_A, "mallory", 1);
    let mut sessions = Vec::new();
    for _ in 0..REQUESTS {
        sessions.push(raw.open_session(Some(&alice)).await);
    }
    // `[1,1,1,…]` just under the body cap: once answered with ~60 times its size, built in memory.
    let mut body = Vec::with_capacity(DEFAULT_MAX_BODY_BYTES);
    body.push(b'[');
    while body.len() < DEFAULT_MAX_BODY_BYTES - 4 {
        body.extend_from_slice(b"1,");
    }
    body.extend_from_slice(b"1]");
    let body = std::sync::Arc::new(body);

    let before = status_kib("VmHWM:").max(status_kib("VmRSS:"));
    let mut connections = Vec::new();
    for session in &sessions {
        let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let head = format!(
            "POST /mcp HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Mcp-Session-Id: {session}\r\nMCP-Protocol-Version: {PROTOCOL}\r\n\
             Authorization: Bearer {mallory}\r\nContent-Length: {}\r\n\r\n",
            server.addr,
            body.len()
        );
        let body = body.clone();
        connections.push(tokio::spawn(async move {
            stream.write_all(head.as_bytes()).await.unwrap();
            stream.write_all(&body).await.unwrap();
            stream
        }));
    }
    let mut streams = Vec::new();
    for connection in connections {
        streams.push(connection.await.unwrap());
    }
    // Every body was read and refused (the session ended) while no answer was read.
    for session in &sessions {
        let start = std::time::Instant::now();
        while raw.whoami(session, Some(&alice), 1).await.status != http::StatusCode::NOT_FOUND {
            assert!(start.elapsed() < Duration::from_secs(30), "never refused");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = status_kib("VmHWM:");
    let growth_mib = after.saturating_sub(before) as f64 / 1024.0;
    eprintln!(
        "refusal_memory: peak RSS growth for {REQUESTS} concurrent refused {} MiB batches: \
         {growth_mib:.1} MiB",
        DEFAULT_MAX_BODY_BYTES >> 20
    );
    // The bound: each request holds at most its body (4 MiB) and a small answer; allow for the
    // allocator and the transport's buffers.
    assert!(
        growth_mib < 3.0 * (REQUESTS * (DEFAULT_MAX_BODY_BYTES >> 20)) as f64,
        "peak RSS grew {growth_mib:.1} MiB"
    );
    for mut stream in streams {
        let mut answer = vec![0u8; 4096];
        let n = stream.read(&mut answer).await.unwrap();
        let text = String::from_utf8_lossy(&answer[..n]);
        assert!(text.starts_with("HTTP/1.1 403"), "{text}");
    }
}
