//! Composing `SessionBindingLayer` with your own auth: static API keys.
//!
//! ```text
//! cargo run --all-features --example api_keys [-- --listen 127.0.0.1:8080]
//! ```
//!
//! The binding layer does not care how a caller was authenticated: it reads the [`Identity`] an
//! outer layer put in the request extensions. Here that outer layer is a few lines of
//! `axum::middleware::from_fn` that maps `Authorization: Bearer <key>` to an identity from a
//! fixed table (`key-alice` → `(https://keys.example, alice)`, `key-bob` → `(…, bob)`) and
//! answers anything else with 401. The MCP server is the rmcp demo server of
//! `common/demo_mcp.rs`.
//!
//! Once it listens, it prints `listening on http://HOST:PORT/mcp` on stdout. Try it:
//!
//! ```text
//! curl -i http://127.0.0.1:8080/mcp -H 'Authorization: Bearer key-alice' \
//!   -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
//!   -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"curl","version":"0"}}}'
//! ```
//!
//! then call `whoami` with the `Mcp-Session-Id` it returned, once with `key-alice` and once with
//! `key-bob`.

#[path = "common/demo_mcp.rs"]
mod demo_mcp;

use std::{io::Write, process::ExitCode, sync::Arc};

use axum::{
    Router,
    extract::{Request, State},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use http::{HeaderValue, StatusCode, header};
use mcp_session_binding::{Identity, SessionBindingLayer};
use tracing_subscriber::EnvFilter;

/// The issuer of every key: any fixed string that names this key table.
const KEY_ISSUER: &str = "https://keys.example";

/// API key → identity. A real server would load hashed keys from its configuration or database.
type KeyTable = Arc<Vec<(&'static str, Identity)>>;

fn key_table() -> KeyTable {
    let user = |sub: &str| Identity::new(KEY_ISSUER, sub).expect("a valid identity");
    Arc::new(vec![("key-alice", user("alice")), ("key-bob", user("bob"))])
}

/// The auth layer: a known key puts its `Identity` in the request extensions; a missing or
/// unknown key gets 401. It runs on every request, sessions or not (MCP: authorization is sent
/// with every request).
async fn api_key_auth(State(keys): State<KeyTable>, mut request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let mut identity = None;
    if let Some(presented) = presented {
        // Compare with every key, in full: the time taken does not tell where a guess differs
        // (`constant_time_eq`, already a dependency of the crate; the length is not secret).
        for (key, owner) in keys.iter() {
            if constant_time_eq::constant_time_eq(key.as_bytes(), presented.as_bytes()) {
                identity = Some(owner.clone());
            }
        }
    }
    match identity {
        Some(identity) => {
            request.extensions_mut().insert(identity);
            next.run(request).await
        }
        None => {
            let mut response =
                (StatusCode::UNAUTHORIZED, "a valid API key is required\n").into_response();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
    }
}

/// `--listen ADDR` (default `127.0.0.1:8080`), or `Ok(None)` for `--help`.
fn listen_address(mut args: impl Iterator<Item = String>) -> Result<Option<String>, String> {
    let mut listen = "127.0.0.1:8080".to_owned();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = args.next().ok_or("--listen needs a value")?,
            "-h" | "--help" => return Ok(None),
            _ => match arg.strip_prefix("--listen=") {
                Some(value) => listen = value.to_owned(),
                None => return Err(format!("unknown argument {arg:?}")),
            },
        }
    }
    Ok(Some(listen))
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,rmcp=warn".into()),
        )
        .init();
    const USAGE: &str = "usage: api_keys [--listen ADDR]   (default 127.0.0.1:8080; port 0 picks a free port)\n\
                         keys: key-alice, key-bob";
    let listen = match listen_address(std::env::args().skip(1)) {
        Ok(Some(listen)) => listen,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("error: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };

    let app = Router::new()
        .nest_service("/mcp", demo_mcp::service())
        // Inner: binds each session to the identity the auth layer found, checks it after.
        .layer(SessionBindingLayer::new())
        // Outer: runs first.
        .layer(middleware::from_fn_with_state(key_table(), api_key_auth));

    let listener = match tokio::net::TcpListener::bind(&listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("error: cannot listen on {listen}: {e}");
            return ExitCode::from(2);
        }
    };
    let addr = listener
        .local_addr()
        .expect("a bound socket has an address");
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "listening on http://{addr}/mcp");
    let _ = stdout.flush();
    drop(stdout);

    // TCP_NODELAY: SSE answers are written in small pieces; without it each one waits ~40 ms for
    // the client's delayed ACK.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    match axum::serve(listener, app).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: server stopped: {e}");
            ExitCode::FAILURE
        }
    }
}
