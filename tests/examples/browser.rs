#![cfg(feature = "jwt")]
//! Browser clients of the `mcp_server` example (`--cors-origin`): CORS and the `Origin` check
//! seen over raw HTTP, then a real headless Chromium running a page of a second loopback origin
//! that initializes, calls a tool, sees a thief refused and reads the 404 body.

use crate::support;
use crate::support::MISMATCH_MESSAGE;

use support::jwt_stack;

use std::{
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Router,
    extract::State,
    response::Html,
    routing::{get, post},
};
use http::StatusCode;
use jwt_stack::{DEFAULT_AUDIENCE, DEFAULT_ISSUER, TokenMinter};
use serde_json::{Value, json};
use support::{
    Answer, Raw,
    example_bin::{Spawned, example},
    external, initialize_body, tool_call,
};

/// The binding layer's default `max_sessions_per_identity`. (not exported)
const DEFAULT_MAX_SESSIONS_PER_IDENTITY: usize = 100;

const SECRET: &str = "browser-test-secret-0123456789abcdef";
/// The origin of the page in the raw HTTP tests (nothing listens there; only the header counts).
const PAGE_ORIGIN: &str = "http://127.0.0.1:9";

fn minter() -> TokenMinter {
    TokenMinter::new(SECRET.as_bytes(), DEFAULT_AUDIENCE)
}

/// `mcp_server` allowing pages of `origins`.
fn server(origins: &[&str]) -> Spawned {
    let mut command = support::example_bin::server_command("mcp_server", Some(SECRET));
    for origin in origins {
        command.args(["--cors-origin", origin]);
    }
    Spawned::start(&mut command)
}

fn header<'a>(answer: &'a Answer, name: &str) -> &'a str {
    answer
        .headers
        .get(name)
        .map_or("", |v| v.to_str().unwrap_or(""))
}

/// The answer carries the CORS headers for [`PAGE_ORIGIN`], and lets scripts read the session
/// id.
#[track_caller]
fn assert_cors(answer: &Answer) {
    assert_eq!(
        header(answer, "access-control-allow-origin"),
        PAGE_ORIGIN,
        "{answer:?}"
    );
    let exposed = header(answer, "access-control-expose-headers").to_ascii_lowercase();
    for name in ["mcp-session-id", "www-authenticate"] {
        assert!(exposed.contains(name), "{name} not exposed: {answer:?}");
    }
}

/// A raw client whose requests carry `Origin: origin`.
fn raw_from(url: &str, origin: &str) -> Raw {
    let mut headers = http::HeaderMap::new();
    headers.insert("origin", origin.parse().unwrap());
    Raw {
        http: reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .unwrap(),
        url: url.to_owned(),
    }
}

#[tokio::test]
async fn preflights_need_no_token_and_allow_the_mcp_headers() {
    let server = server(&[PAGE_ORIGIN]);
    let http = reqwest::Client::new();
    let preflight = |origin: &str| {
        http.request(reqwest::Method::OPTIONS, &server.url)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type,mcp-session-id,mcp-protocol-version,last-event-id,mcp-method,mcp-name",
            )
    };
    let answer = Raw::send(preflight(PAGE_ORIGIN)).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(header(&answer, "access-control-allow-origin"), PAGE_ORIGIN);
    let allowed = header(&answer, "access-control-allow-headers").to_ascii_lowercase();
    for name in [
        "authorization",
        "content-type",
        "mcp-session-id",
        "mcp-protocol-version",
        "last-event-id",
        "mcp-method",
        "mcp-name",
    ] {
        assert!(allowed.contains(name), "{name} not allowed: {answer:?}");
    }
    let methods = header(&answer, "access-control-allow-methods");
    for method in ["GET", "POST", "DELETE"] {
        assert!(methods.contains(method), "{method} not allowed: {answer:?}");
    }

    // Another origin's preflight gets no permission.
    let answer = Raw::send(preflight("http://127.0.0.1:10")).await;
    assert!(
        answer.headers.get("access-control-allow-origin").is_none(),
        "{answer:?}"
    );
}

#[tokio::test]
async fn every_answer_to_an_allowed_origin_carries_cors_headers() {
    let server = server(&[PAGE_ORIGIN]);
    let page = raw_from(&server.url, PAGE_ORIGIN);
    let minter = minter();
    let alice = minter.token(DEFAULT_ISSUER, "alice");
    let bob = minter.token(DEFAULT_ISSUER, "bob");

    // 401 from the JWT layer.
    let answer = page.post(None, None, &initialize_body()).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{answer:?}");
    assert_cors(&answer);
    assert!(header(&answer, "www-authenticate").starts_with("Bearer"));

    // 200 with the session id, and the owner's tool call.
    let answer = page.post(None, Some(&alice), &initialize_body()).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_cors(&answer);
    let session = answer.session_id();
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let answer = page.post(Some(&session), Some(&alice), &note).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{answer:?}");
    assert_cors(&answer);

    // 400: a malformed session id.
    let answer = page.post(Some("bad id"), Some(&alice), &note).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{answer:?}");
    assert_cors(&answer);

    // 403: the thief's GET stream (the mismatch answer without id); it ends the session.
    let answer = Raw::send(
        page.request(reqwest::Method::GET, Some(&session), Some(&bob))
            .header("accept", "text/event-stream"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{answer:?}");
    assert_cors(&answer);

    // 404: the owner comes back to the ended session.
    let answer = page.whoami(&session, Some(&alice), 2).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{answer:?}");
    assert_cors(&answer);

    // The mismatch answer to a tool call (200, isError).
    let session = page.open_session(Some(&alice)).await;
    let answer = page.whoami(&session, Some(&bob), 3).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(answer.json()["result"]["isError"], json!(true));
    assert_cors(&answer);

    // 429: over the per-identity session limit (100 live sessions).
    let carol = minter.token(DEFAULT_ISSUER, "carol");
    let mut refused = None;
    for _ in 0..=DEFAULT_MAX_SESSIONS_PER_IDENTITY {
        let answer = page.post(None, Some(&carol), &initialize_body()).await;
        if answer.status != StatusCode::OK {
            refused = Some(answer);
            break;
        }
    }
    let answer = refused.expect("the session limit was never reached");
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS, "{answer:?}");
    assert_cors(&answer);
    assert!(header(&answer, "access-control-expose-headers").contains("retry-after"));

    // The metadata document the 401 names is readable too.
    let metadata = page
        .http
        .get(format!(
            "{}/.well-known/oauth-protected-resource/mcp",
            server.base_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(metadata.status(), StatusCode::OK);
    assert_eq!(
        metadata.headers()["access-control-allow-origin"],
        PAGE_ORIGIN
    );
}

#[tokio::test]
async fn foreign_malformed_or_repeated_origins_get_403_before_authentication() {
    let server = server(&[PAGE_ORIGIN]);
    let alice = minter().token(DEFAULT_ISSUER, "alice");

    for origin in ["http://127.0.0.1:10", "null", "http://127.0.0.1:9/"] {
        let page = raw_from(&server.url, origin);
        // With a valid token: still refused, and nothing reached the inner layers.
        let answer = page.post(None, Some(&alice), &initialize_body()).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{origin}: {answer:?}");
        assert!(answer.headers.get("mcp-session-id").is_none());
        assert!(answer.headers.get("access-control-allow-origin").is_none());
        let body = answer.json();
        assert_eq!(body["error"]["code"], json!(-32600), "{body}");
        assert!(body.get("id").is_none(), "{body}");
        // Without a token: 403, not 401 (the page learns nothing about authentication).
        let answer = page.post(None, None, &initialize_body()).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{origin}: {answer:?}");
    }

    let answer = Raw::send(
        Raw::at(&server.url)
            .request(reqwest::Method::POST, None, Some(&alice))
            .header("origin", PAGE_ORIGIN)
            .header("origin", PAGE_ORIGIN)
            .body(initialize_body().to_string()),
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{answer:?}");

    // Clients without Origin (SDKs, curl) are not affected.
    let session = Raw::at(&server.url).open_session(Some(&alice)).await;
    assert!(!session.is_empty());

    // Without --cors-origin, every Origin is refused.
    let server = server_without_origins();
    let answer = raw_from(&server.url, PAGE_ORIGIN)
        .post(None, Some(&alice), &initialize_body())
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{answer:?}");
}

/// 408 (a refused body that never arrives) and 503 (the binding store down) reach the page
/// with CORS headers too.
#[tokio::test]
async fn slow_body_and_store_outage_answers_carry_cors_headers() {
    let Some(mut redis) = support::redis_server::RedisServer::start() else {
        return;
    };
    let mut command = support::example_bin::server_command("mcp_server", Some(SECRET));
    command
        .args(["--cors-origin", PAGE_ORIGIN])
        .args(["--redis", &redis.url()]);
    let server = Spawned::start(&mut command);
    let page = raw_from(&server.url, PAGE_ORIGIN);
    let alice = minter().token(DEFAULT_ISSUER, "alice");
    let bob = minter().token(DEFAULT_ISSUER, "bob");

    // 408: Bob's refused POST announces a body and never sends it; the layer stops waiting
    // after 10 s. Raw bytes, since an HTTP client always sends the body it announces.
    let session = page.open_session(Some(&alice)).await;
    let addr = server
        .base_url()
        .strip_prefix("http://")
        .unwrap()
        .to_owned();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nOrigin: {PAGE_ORIGIN}\r\n\
         Authorization: Bearer {bob}\r\nMcp-Session-Id: {session}\r\n\
         MCP-Protocol-Version: {}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: 100\r\n\r\n{{\"jsonrpc\"",
        support::PROTOCOL
    );
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = async {
        let mut chunk = [0u8; 4096];
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("an answer within 30 s");
    let head = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 408"), "{head}");
    assert!(
        head.contains(&format!("access-control-allow-origin: {PAGE_ORIGIN}")),
        "{head}"
    );

    // 503: the binding store is down.
    let session = page.open_session(Some(&alice)).await;
    redis.stop();
    let answer = page.whoami(&session, Some(&alice), 2).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{answer:?}");
    assert_cors(&answer);
}

fn server_without_origins() -> Spawned {
    server(&[])
}

#[test]
fn an_invalid_cors_origin_is_refused_at_start() {
    let output = Command::new(example("mcp_server"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--cors-origin",
            "https://app.example/",
        ])
        .env("MCP_JWT_SECRET", SECRET)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--cors-origin"), "{stderr}");
}

// ---- The real browser ----

/// The page: runs the MCP flow against `{mcp}` with fetch, and posts what it saw to `/result`
/// of its own origin.
const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>mcp browser client</title></head>
<body><pre id="out">running</pre>
<script>
const MCP = "{mcp}";
const ALICE = "{alice}";
const BOB = "{bob}";
const PROTOCOL = "2025-11-25";

// The JSON-RPC messages of a JSON or SSE body.
async function messages(response) {
  const text = await response.text();
  if ((response.headers.get("content-type") || "").startsWith("text/event-stream")) {
    return text.split("\n").filter(l => l.startsWith("data:"))
      .map(l => l.slice(5).trim()).filter(l => l.length > 0).map(l => JSON.parse(l));
  }
  return text.length > 0 ? [JSON.parse(text)] : [];
}

async function call(token, session, body) {
  const headers = {
    "Authorization": "Bearer " + token,
    "Content-Type": "application/json",
    "Accept": "application/json, text/event-stream",
  };
  if (session) {
    headers["Mcp-Session-Id"] = session;
    headers["MCP-Protocol-Version"] = PROTOCOL;
  }
  const response = await fetch(MCP, { method: "POST", headers, body: JSON.stringify(body) });
  return {
    status: response.status,
    session: response.headers.get("mcp-session-id"),
    messages: await messages(response),
  };
}

async function run() {
  const seen = { origin: location.origin };
  const init = await call(ALICE, null, {
    jsonrpc: "2.0", id: 1, method: "initialize",
    params: { protocolVersion: PROTOCOL, capabilities: {}, clientInfo: { name: "chromium", version: "0" } },
  });
  seen.initialize = { status: init.status, session: init.session, result: init.messages[0] };
  const session = init.session;
  const note = await call(ALICE, session, { jsonrpc: "2.0", method: "notifications/initialized" });
  seen.initialized = note.status;
  const echo = await call(ALICE, session, {
    jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: "echo", arguments: { text: "from the page" } },
  });
  seen.echo = { status: echo.status, message: echo.messages[0] };
  const thief = await call(BOB, session, {
    jsonrpc: "2.0", id: 3, method: "tools/call", params: { name: "whoami", arguments: {} },
  });
  seen.thief = { status: thief.status, message: thief.messages[0] };
  const after = await call(ALICE, session, {
    jsonrpc: "2.0", id: 4, method: "tools/call", params: { name: "whoami", arguments: {} },
  });
  seen.after = { status: after.status, message: after.messages[0] };
  return seen;
}

run().catch(e => ({ error: String(e) })).then(seen => {
  document.getElementById("out").textContent = JSON.stringify(seen);
  return fetch("/result", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(seen) });
});
</script></body></html>
"#;

/// Debian's chromium, or `None` after a `SKIP` (a failure with `CI` set).
fn chromium() -> Option<std::path::PathBuf> {
    let found = std::env::var_os("CHROMIUM")
        .map(std::path::PathBuf::from)
        .or_else(|| external::on_path("chromium"))
        .or_else(|| external::on_path("chromium-browser"));
    if found.is_none() {
        external::missing("chromium", "Debian: apt-get install -y chromium");
    }
    found
}

#[tokio::test]
async fn a_page_of_another_origin_uses_the_server_in_chromium() {
    let Some(chromium) = chromium() else { return };

    // The page's server: a second loopback origin.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let page_origin = format!("http://{}", listener.local_addr().unwrap());
    let mcp = server(&[&page_origin]);
    let minter = minter();
    let page = PAGE
        .replace("{mcp}", &mcp.url)
        .replace("{alice}", &minter.token(DEFAULT_ISSUER, "alice"))
        .replace("{bob}", &minter.token(DEFAULT_ISSUER, "bob"));
    let (results_tx, mut results) = tokio::sync::mpsc::channel::<Value>(1);
    #[derive(Clone)]
    struct Page {
        html: Arc<String>,
        results: tokio::sync::mpsc::Sender<Value>,
    }
    let app = Router::new()
        .route(
            "/",
            get(|State(page): State<Page>| async move { Html(page.html.to_string()) }),
        )
        .route(
            "/result",
            post(
                |State(page): State<Page>, axum::Json(seen): axum::Json<Value>| async move {
                    let _ = page.results.try_send(seen);
                    StatusCode::NO_CONTENT
                },
            ),
        )
        .with_state(Page {
            html: Arc::new(page),
            results: results_tx,
        });
    let page_server = tokio::spawn(async move { axum::serve(listener, app).await });

    let profile = external::unique_dir("mcpsb-chromium");
    let stderr = Arc::new(Mutex::new(String::new()));
    let mut browser = tokio::process::Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("{page_origin}/"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("chromium starts");
    {
        let mut pipe = browser.stderr.take().unwrap();
        let sink = stderr.clone();
        tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut chunk = [0u8; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut chunk).await {
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        });
    }

    let started = Instant::now();
    let seen = tokio::time::timeout(Duration::from_secs(60), results.recv()).await;
    let _ = browser.kill().await;
    page_server.abort();
    let _ = std::fs::remove_dir_all(&profile);
    let seen = match seen {
        Ok(Some(seen)) => seen,
        _ => panic!(
            "no result from the page within 60 s\nchromium stderr:\n{}\nserver stderr:\n{}",
            stderr.lock().unwrap(),
            mcp.stderr()
        ),
    };
    eprintln!("page results after {:?}: {seen}", started.elapsed());
    assert!(seen.get("error").is_none(), "the page failed: {seen}");
    assert_eq!(seen["origin"], json!(page_origin));

    // Initialized, with the session id readable by the script.
    assert_eq!(seen["initialize"]["status"], json!(200), "{seen}");
    let session = seen["initialize"]["session"].as_str().unwrap_or("");
    assert!(!session.is_empty(), "session id not exposed: {seen}");
    assert!(seen["initialize"]["result"]["result"]["serverInfo"].is_object());
    assert_eq!(seen["initialized"], json!(202), "{seen}");

    // The tool answered.
    assert_eq!(seen["echo"]["status"], json!(200), "{seen}");
    assert_eq!(
        seen["echo"]["message"]["result"]["content"][0]["text"],
        json!("from the page"),
        "{seen}"
    );

    // The thief, on the same page with another token, was refused.
    assert_eq!(seen["thief"]["status"], json!(200), "{seen}");
    assert_eq!(seen["thief"]["message"]["id"], json!(3), "{seen}");
    assert_eq!(seen["thief"]["message"]["result"]["isError"], json!(true));
    assert_eq!(
        seen["thief"]["message"]["result"]["content"][0]["text"],
        json!(MISMATCH_MESSAGE)
    );

    // The owner's next call: 404, and the script read its body (re-initialize).
    assert_eq!(seen["after"]["status"], json!(404), "{seen}");
    assert_eq!(seen["after"]["message"]["jsonrpc"], json!("2.0"), "{seen}");
    assert_eq!(
        seen["after"]["message"]["error"]["code"],
        json!(-32001),
        "{seen}"
    );

    // The thief's request reached nothing: a raw check that the session is gone for everyone.
    let alice = minter.token(DEFAULT_ISSUER, "alice");
    let answer = Raw::at(&mcp.url)
        .post(
            Some(session),
            Some(&alice),
            &tool_call(5, "whoami", json!({})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{answer:?}");
}

/// The status of a raw `initialize` POST to `addr` with `Host: host` and, if given, `Origin`.
async fn initialize_status(addr: &str, host: &str, origin: Option<&str>) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = initialize_body().to_string();
    let origin = origin.map_or(String::new(), |origin| format!("Origin: {origin}\r\n"));
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: {host}\r\n{origin}Content-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nConnection: close\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 1024];
    while !answer.windows(2).any(|w| w == b"\r\n") {
        match tcp.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
        }
    }
    let line = String::from_utf8_lossy(&answer);
    line.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {line:?}"))
}

/// The MCP conformance suite's `dns-rebinding-protection` checks, against `mcp_server` on a
/// loopback port (anonymous sessions allowed, as the scenario targets servers without auth): a
/// foreign `Host`/`Origin` gets 4xx, the server's own loopback `Host`/`Origin` 2xx.
#[tokio::test]
async fn the_loopback_server_passes_the_dns_rebinding_checks() {
    let mut command = support::example_bin::server_command("mcp_server", Some(SECRET));
    command.arg("--allow-anonymous");
    let server = Spawned::start(&mut command);
    let addr = server
        .base_url()
        .strip_prefix("http://")
        .unwrap()
        .to_owned();
    let port = addr.rsplit(':').next().unwrap();

    for (host, origin) in [
        ("evil.example.com".to_owned(), None),
        (format!("evil.example.com:{port}"), None),
        (
            format!("evil.example.com:{port}"),
            Some(format!("http://evil.example.com:{port}")),
        ),
        (
            format!("127.0.0.1:{port}"),
            Some(format!("http://evil.example.com:{port}")),
        ),
        (format!("127.0.0.1:{}", 1), None),
    ] {
        let status = initialize_status(&addr, &host, origin.as_deref()).await;
        assert_eq!(status, 403, "Host {host}, Origin {origin:?}");
    }
    for name in ["127.0.0.1", "localhost", "[::1]"] {
        let host = format!("{name}:{port}");
        let origin = format!("http://{host}");
        for origin in [None, Some(origin.as_str())] {
            let status = initialize_status(&addr, &host, origin).await;
            assert_eq!(status, 200, "Host {host}, Origin {origin:?}");
        }
    }
}
