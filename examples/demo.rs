//! The story this crate exists for, played in one process with real JWTs, the rmcp client and
//! server over loopback:
//!
//! 1. alice initializes an MCP session and calls a tool;
//! 2. her access token is refreshed (new bytes, same `iss` and `sub`) and the same session goes
//!    on: binding to the identity, not to the token bytes, is what makes this work;
//! 3. mallory, who has a valid token of her own, opens her own session;
//! 4. mallory presents alice's session id and gets the MCP `isError` answer, and the session is
//!    ended;
//! 5. alice gets 404 for that session id, as the MCP spec says for an ended session;
//! 6. alice re-initializes and works again.
//!
//! ```text
//! cargo run --all-features --example demo
//! ```
//!
//! It prints a transcript on stdout and exits with a non-zero status if any step does not behave
//! as described. Logging is off, to keep the transcript readable:
//! `RUST_LOG=mcp_session_binding=info` shows the layer's own events on stderr.

#[path = "common/demo_mcp.rs"]
mod demo_mcp;
#[path = "common/jwt_stack.rs"]
mod jwt_stack;
#[path = "common/rotating_client.rs"]
mod rotating_client;

use std::{process::ExitCode, sync::Arc, time::Duration};

use http::StatusCode;
use jwt_stack::{DEFAULT_AUDIENCE, DEFAULT_ISSUER, StackConfig, TokenMinter};
use mcp_session_binding::store::MemoryStore;
use rmcp::{RoleClient, model::CallToolRequestParams, service::RunningService};
use rotating_client::RotatingClient;
use serde_json::{Value, json};
use tracing_subscriber::EnvFilter;

/// The binding layer's answer to a caller who is not the session's owner. (not exported)
const MISMATCH_MESSAGE: &str = "Unauthorized: caller identity does not match session owner";

/// What a failed step says.
type Step = Result<(), String>;

/// A connected rmcp client.
type Client = RunningService<RoleClient, ()>;

struct Demo {
    url: String,
    minter: TokenMinter,
    http: reqwest::Client,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "off".into()))
        .init();

    match tokio::time::timeout(Duration::from_secs(60), run()).await {
        Ok(Ok(())) => {
            println!("\nEvery step behaved as described.");
            ExitCode::SUCCESS
        }
        Ok(Err(message)) => {
            println!("\nFAILED: {message}");
            ExitCode::FAILURE
        }
        Err(_) => {
            println!("\nFAILED: the demo did not finish within 60 s");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Step {
    // The server: the same stack as the `mcp_server` example, in this process.
    let secret = jwt_stack::random_secret();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot listen: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let base_url = format!("http://{addr}");
    let config = StackConfig::new(secret.clone(), Arc::new(MemoryStore::new()));
    let app = jwt_stack::router(&config, &base_url, demo_mcp::service())
        .map_err(|e| format!("JWT layer: {e}"))?;
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let demo = Demo {
        url: format!("{base_url}/mcp"),
        minter: TokenMinter::new(&secret, DEFAULT_AUDIENCE),
        http: reqwest::Client::new(),
    };
    println!("mcp-session-binding demo");
    println!(
        "server: JwtAuthLayer (HS256, iss {DEFAULT_ISSUER}, aud {DEFAULT_AUDIENCE}) \
         → SessionBindingLayer → rmcp demo server"
    );
    println!("        at {}\n", demo.url);

    let result = demo.story().await;
    server.abort();
    result
}

impl Demo {
    async fn story(&self) -> Step {
        // 1. alice initializes and calls a tool.
        let alice_token = self.minter.token(DEFAULT_ISSUER, "alice");
        println!(
            "1. alice initializes a session (token {}) and calls `whoami`",
            tail(&alice_token)
        );
        let alice = RotatingClient::new(alice_token.clone());
        let alice_running = alice
            .clone()
            .try_connect(&self.url)
            .await
            .map_err(|e| format!("alice cannot initialize: {e}"))?;
        let session = alice
            .session_id()
            .ok_or("the server handed out no session id")?;
        let who = call_text(&alice_running, "whoami", json!({})).await?;
        expect_eq(&who, &format!("{DEFAULT_ISSUER} alice"))?;
        ok(&format!("session {}, whoami → {who:?}", head(&session)));

        // 2. alice's token is refreshed: new bytes, same iss and sub.
        let refreshed = self.minter.token(DEFAULT_ISSUER, "alice");
        if refreshed == alice_token {
            return Err("the refreshed token has the same bytes".to_owned());
        }
        println!(
            "2. alice's token is refreshed: new bytes (token {}), same iss and sub",
            tail(&refreshed)
        );
        alice.rotate(refreshed.clone());
        let echoed = call_text(&alice_running, "echo", json!({"text": "still here"})).await?;
        expect_eq(&echoed, "still here")?;
        let same = alice.session_id().as_deref() == Some(session.as_str());
        if !same {
            return Err("the client moved to another session".to_owned());
        }
        ok(&format!(
            "same session {}, echo → {echoed:?}",
            head(&session)
        ));

        // 3. mallory has a valid token of her own.
        let mallory_token = self.minter.token(DEFAULT_ISSUER, "mallory");
        println!("3. mallory, with a valid token of her own, opens her own session");
        let mallory = RotatingClient::new(mallory_token.clone())
            .try_connect(&self.url)
            .await
            .map_err(|e| format!("mallory cannot initialize: {e}"))?;
        let who = call_text(&mallory, "whoami", json!({})).await?;
        expect_eq(&who, &format!("{DEFAULT_ISSUER} mallory"))?;
        ok(&format!("whoami → {who:?}"));
        let _ = mallory.cancel().await;

        // 4. mallory presents alice's session id.
        println!(
            "4. mallory sends `tools/call whoami` with alice's session id {}",
            head(&session)
        );
        let call = json!({
            "jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": "whoami", "arguments": {}}
        });
        let (status, body) = self.post(&session, &mallory_token, &call).await?;
        let answer: Value = serde_json::from_str(&body)
            .map_err(|e| format!("mallory's answer is not JSON ({e}): {body}"))?;
        let text = answer["result"]["content"][0]["text"].as_str();
        if status != StatusCode::OK
            || answer["id"] != json!(7)
            || answer["result"]["isError"] != json!(true)
            || text != Some(MISMATCH_MESSAGE)
        {
            return Err(format!(
                "mallory should get an isError result, got {status}: {body}"
            ));
        }
        ok(&format!("HTTP {status}, isError: {MISMATCH_MESSAGE:?}"));
        println!("   the layer ended the session: the id mallory holds is now worthless");

        // 5. alice's session is over.
        println!("5. alice comes back to session {}", head(&session));
        let (status, _) = self.post(&session, &refreshed, &call).await?;
        if status != StatusCode::NOT_FOUND {
            return Err(format!("alice should get 404, got {status}"));
        }
        ok("raw HTTP: 404 Not Found (the MCP answer for an ended session)");
        match alice_running
            .call_tool(CallToolRequestParams::new("whoami"))
            .await
        {
            Ok(result) => {
                return Err(format!(
                    "alice's rmcp client still reached the ended session: {result:?}"
                ));
            }
            Err(error) => {
                let error = error.to_string();
                // rmcp wraps the cause in transport details: keep the cause.
                let cause = error.rsplit(" error: ").next().unwrap_or(&error);
                ok(&format!("her rmcp client's next call fails too: {cause}"));
            }
        }
        let _ = alice_running.cancel().await;

        // 6. alice re-initializes.
        println!("6. alice re-initializes");
        let alice = RotatingClient::new(self.minter.token(DEFAULT_ISSUER, "alice"));
        let alice_running = alice
            .clone()
            .try_connect(&self.url)
            .await
            .map_err(|e| format!("alice cannot re-initialize: {e}"))?;
        let new_session = alice
            .session_id()
            .ok_or("the server handed out no session id")?;
        if new_session == session {
            return Err("the new session has the old id".to_owned());
        }
        let who = call_text(&alice_running, "whoami", json!({})).await?;
        expect_eq(&who, &format!("{DEFAULT_ISSUER} alice"))?;
        ok(&format!(
            "new session {}, whoami → {who:?}",
            head(&new_session)
        ));
        let _ = alice_running.cancel().await;
        Ok(())
    }

    /// A raw `POST` of one JSON-RPC message in `session`: (status, body).
    async fn post(
        &self,
        session: &str,
        token: &str,
        body: &Value,
    ) -> Result<(StatusCode, String), String> {
        let response = self
            .http
            .post(&self.url)
            .bearer_auth(token)
            .header("mcp-session-id", session)
            .header("mcp-protocol-version", "2025-11-25")
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| format!("POST failed: {e}"))?;
        let status = StatusCode::from_u16(response.status().as_u16()).map_err(|e| e.to_string())?;
        let text = response.text().await.map_err(|e| e.to_string())?;
        Ok((status, text))
    }
}

/// Calls a tool and returns its text, failing on an error or an `isError` result.
async fn call_text(
    client: &Client,
    tool: &'static str,
    arguments: Value,
) -> Result<String, String> {
    let mut request = CallToolRequestParams::new(tool);
    if let Value::Object(arguments) = arguments
        && !arguments.is_empty()
    {
        request = request.with_arguments(arguments);
    }
    let result = client
        .call_tool(request)
        .await
        .map_err(|e| format!("`{tool}` failed: {e}"))?;
    let text = result
        .content
        .first()
        .and_then(|content| content.as_text())
        .map(|text| text.text.clone())
        .ok_or_else(|| format!("`{tool}` answered no text: {result:?}"))?;
    if result.is_error == Some(true) {
        return Err(format!("`{tool}` answered an error: {text}"));
    }
    Ok(text)
}

fn expect_eq(got: &str, want: &str) -> Step {
    if got == want {
        Ok(())
    } else {
        Err(format!("expected {want:?}, got {got:?}"))
    }
}

fn ok(what: &str) {
    println!("   ok: {what}");
}

/// The first characters of a session id.
fn head(id: &str) -> String {
    format!("{}…", id.chars().take(8).collect::<String>())
}

/// The last characters of a token (its signature differs between any two tokens).
fn tail(token: &str) -> String {
    let skip = token.chars().count().saturating_sub(8);
    format!("…{}", token.chars().skip(skip).collect::<String>())
}
