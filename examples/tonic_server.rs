//! A tonic server with one port for gRPC and MCP: the standard gRPC health service
//! (`grpc.health.v1.Health`, from `tonic-health`) and the demo MCP server at `/mcp`, both behind
//! the JWT layer, the MCP path also behind `SessionBindingLayer`.
//!
//! ```text
//! cargo run --all-features --example tonic_server [-- --listen 127.0.0.1:8080]
//! ```
//!
//! The glue, in order:
//!
//! - **One router.** tonic's `Routes` is an axum router: the MCP stack of `common/jwt_stack.rs`
//!   (`/mcp` behind `SessionBindingLayer` behind `JwtAuthLayer`, and the RFC 9728 metadata
//!   document outside them) is merged with the health service's routes, which get the same
//!   `JwtAuthLayer` (clones share their keys and settings). gRPC requests never reach the binding
//!   layer, and would pass it untouched if they did: they name no MCP session.
//! - **HTTP/1.1 and h2c on one port.** tonic's server refuses HTTP/1.1 unless
//!   `.accept_http1(true)`; MCP clients speak HTTP/1.1, gRPC clients HTTP/2 with prior knowledge
//!   (h2c). With it, tonic serves both on the same listener.
//! - **gRPC refusals are gRPC statuses.** The JWT layer answers a request whose `content-type`
//!   is `application/grpc…` with a trailers-only response: `grpc-status` 16 (`UNAUTHENTICATED`)
//!   for a missing or invalid token, 7 (`PERMISSION_DENIED`) for a missing scope, 14
//!   (`UNAVAILABLE`) for what is a 503 over HTTP. A gRPC client sees a status, not a protocol
//!   error about a JSON body.
//!
//! Environment: the HS256 development mode of `mcp_server`: `MCP_JWT_SECRET` (at least 32
//! bytes), `MCP_JWT_ISSUERS` (the one issuer the secret belongs to, default
//! `https://issuer.example`), `MCP_JWT_AUDIENCE` (default `mcp-session-binding-example`),
//! `RUST_LOG` (logs on stderr). Without `MCP_JWT_SECRET`, the server picks a random secret and
//! prints tokens for `alice` and `bob`.
//!
//! Once it listens, the server prints `listening on http://HOST:PORT/mcp` on stdout. Try it with
//! `grpcurl -plaintext -H "authorization: Bearer $TOKEN" HOST:PORT grpc.health.v1.Health/Check`
//! (needs server reflection or `-proto health.proto`) and any MCP client at the URL.

#[path = "common/demo_mcp.rs"]
mod demo_mcp;
#[path = "common/jwt_stack.rs"]
mod jwt_stack;

use std::{io::Write, process::ExitCode, sync::Arc, time::Duration};

use jwt_stack::StackConfig;
use mcp_session_binding::store::MemoryStore;
use tonic::{
    service::Routes,
    transport::{Server, server::TcpIncoming},
};
use tracing_subscriber::EnvFilter;

const USAGE: &str = "\
usage: tonic_server [--listen ADDR]

options:
  --listen ADDR       address to listen on (default 127.0.0.1:8080; port 0 picks a free port)
  -h, --help          this text

environment:
  MCP_JWT_AUDIENCE    required audience (default mcp-session-binding-example)
  MCP_JWT_SECRET      HS256 secret, at least 32 bytes; unset: a random one, and tokens printed
  MCP_JWT_ISSUERS     the one issuer the secret belongs to (default https://issuer.example)
  RUST_LOG            log filter, logs go to stderr (default info,rmcp=warn)";

/// `Ok(None)` asks for the usage text.
fn parse_listen(mut args: impl Iterator<Item = String>) -> Result<Option<String>, String> {
    let mut listen = "127.0.0.1:8080".to_owned();
    while let Some(arg) = args.next() {
        match arg.split_once('=') {
            Some(("--listen", value)) => listen = value.to_owned(),
            _ => match arg.as_str() {
                "--listen" => listen = args.next().ok_or("--listen needs a value")?,
                "-h" | "--help" => return Ok(None),
                _ => return Err(format!("unknown argument {arg:?}")),
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
    let listen = match parse_listen(std::env::args().skip(1)) {
        Ok(Some(listen)) => listen,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("error: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&listen).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

async fn run(listen: &str) -> Result<(), String> {
    // The HS256 development mode of `mcp_server` (no `--issuer` flags here).
    let jwt_stack::Issuers {
        trusted,
        audience,
        dev_secret,
    } = jwt_stack::issuers_from_env(&[])?;

    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("no local address: {e}"))?;
    let base_url = format!("http://{addr}");

    let store = MemoryStore::new();
    // Expired bindings are also dropped lazily; the sweeper bounds the memory of sessions nobody
    // comes back to.
    drop(store.spawn_sweeper(Duration::from_secs(60)));
    let mut config = StackConfig::new(Vec::new(), Arc::new(store));
    config.issuers = trusted;
    config.audience = audience;
    let auth = jwt_stack::auth_layer(&config, &base_url)
        .map_err(|e| format!("invalid JWT settings (MCP_JWT_*): {e}"))?;

    // gRPC: the health service (its overall status, service "", is SERVING), behind the JWT
    // layer. Its routes answer unknown gRPC methods with UNIMPLEMENTED.
    let (_health_reporter, health) = tonic_health::server::health_reporter();
    let grpc = Routes::new(health).into_axum_router().layer(auth.clone());
    // MCP: `/mcp` behind the binding layer behind the JWT layer, and the metadata document.
    let mcp = jwt_stack::router_with(&config, &base_url, demo_mcp::service(), auth);
    let app = Routes::from(mcp.merge(grpc));

    let mut stdout = std::io::stdout().lock();
    if let Some(secret) = &dev_secret {
        jwt_stack::print_tokens(&mut stdout, secret, &config, &format!("{base_url}/mcp"))
            .map_err(|e| e.to_string())?;
    }
    writeln!(stdout, "listening on {base_url}/mcp").map_err(|e| e.to_string())?;
    stdout.flush().map_err(|e| e.to_string())?;
    drop(stdout);
    tracing::info!(%addr, "tonic server ready: gRPC health and MCP at /mcp");

    // TCP_NODELAY: SSE answers are written in small pieces.
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    Server::builder()
        // MCP clients speak HTTP/1.1; tonic refuses it by default.
        .accept_http1(true)
        .add_routes(app)
        .serve_with_incoming(incoming)
        .await
        .map_err(|e| format!("server stopped: {e}"))
}
