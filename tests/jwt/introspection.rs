//! Opaque access tokens through RFC 7662 introspection, end to end: `mcp_server --introspect`
//! against the real `oidc-provider` (`provider.mjs --opaque`: opaque tokens, introspection and
//! revocation on), a tiny broken provider on loopback for the failures, and a real
//! `redis-server` shared by two replicas.

use crate::support;

use std::{
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicU8, Ordering},
    },
    time::{Duration, Instant},
};

use http::StatusCode;
use serde_json::json;
use support::{
    Raw,
    example_bin::{Spawned, example},
    initialize_body,
    oidc_provider::{INTROSPECTION_CLIENT_ID, INTROSPECTION_CLIENT_SECRET, OidcProvider},
    redis_server::RedisServer,
    tool_text,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The MCP resource the access tokens are for (RFC 8707).
const RESOURCE: &str = "https://mcp.test/mcp";

/// `mcp_server` introspecting at `introspect`, trusting JWTs of `jwt_issuers`, with `extra`.
fn mcp_server(introspect: &[&str], jwt_issuers: &[&str], extra: &[&str]) -> Spawned {
    let mut command = Command::new(example("mcp_server"));
    command.args(["--listen", "127.0.0.1:0"]);
    for issuer in introspect {
        command.args(["--introspect", issuer]);
    }
    for issuer in jwt_issuers {
        command.args(["--issuer", issuer]);
    }
    command
        .args(extra)
        .env_remove("MCP_JWT_SECRET")
        .env_remove("MCP_JWT_ISSUERS")
        .env("MCP_JWT_AUDIENCE", RESOURCE)
        .env("MCP_INTROSPECTION_CLIENT_ID", INTROSPECTION_CLIENT_ID)
        .env(
            "MCP_INTROSPECTION_CLIENT_SECRET",
            INTROSPECTION_CLIENT_SECRET,
        )
        .env("RUST_LOG", "info");
    Spawned::start(&mut command)
}

async fn assert_whoami(raw: &Raw, session: &str, token: &str, iss: &str, sub: &str) {
    let answer = raw.whoami(session, Some(token), 1).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let message = answer.json();
    assert_eq!(tool_text(&message), format!("{iss} {sub}"), "{message}");
}

/// Code + PKCE, tool calls, a GET stream, refresh keeping the session, another user's opaque
/// token refused on alice's session, and a revoked token refused within the cache maximum
/// (measured).
#[tokio::test]
async fn opaque_tokens_drive_bound_sessions_and_revocation_lands_within_the_maximum() {
    let Some(provider) = OidcProvider::start_opaque(RESOURCE) else {
        return;
    };
    let server = mcp_server(&[provider.issuer()], &[], &["--introspect-cache-max", "2"]);
    let raw = Raw::at(server.url.clone());
    let issuer = provider.issuer();

    let mut alice = provider.login("alice").await;
    assert_eq!(
        alice.access_token.matches('.').count(),
        0,
        "an opaque token: {}",
        alice.access_token
    );
    let session = raw.open_session(Some(&alice.access_token)).await;
    assert_whoami(&raw, &session, &alice.access_token, issuer, "alice").await;
    assert_eq!(
        raw.get_stream_status(&session, Some(&alice.access_token))
            .await,
        StatusCode::OK
    );
    // Refresh: a new opaque token, the same (iss, sub): the session goes on.
    for _ in 0..2 {
        let next = provider.refresh(alice.refresh_token()).await;
        assert_ne!(next.access_token, alice.access_token);
        alice = next;
        assert_whoami(&raw, &session, &alice.access_token, issuer, "alice").await;
    }
    // bob's real opaque token on alice's session: the mismatch answer.
    let bob = provider.login("bob").await;
    let bobs = raw.open_session(Some(&bob.access_token)).await;
    assert_whoami(&raw, &bobs, &bob.access_token, issuer, "bob").await;
    raw.whoami(&session, Some(&bob.access_token), 2)
        .await
        .assert_mismatch(None);

    // Revocation at the provider lands within the cache maximum (2 s).
    let mut revocable = provider.login("alice").await.access_token;
    let fresh = raw.open_session(Some(&revocable)).await;
    assert_whoami(&raw, &fresh, &revocable, issuer, "alice").await;
    provider.revoke(&revocable).await;
    let revoked_at = Instant::now();
    let refused_after = loop {
        let answer = raw.whoami(&fresh, Some(&revocable), 3).await;
        if answer.status == StatusCode::UNAUTHORIZED {
            let challenge = answer.headers["www-authenticate"].to_str().unwrap();
            assert!(
                challenge.contains(r#"error="invalid_token""#),
                "{challenge}"
            );
            break revoked_at.elapsed();
        }
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        assert!(
            revoked_at.elapsed() < Duration::from_secs(4),
            "a revoked token still works after {:?}",
            revoked_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!("introspection: revoked token refused after {refused_after:?} (cache max 2 s)");
    assert!(
        refused_after <= Duration::from_millis(2_500),
        "{refused_after:?}"
    );
    revocable.clear();
}

/// A broken provider on loopback: discovery answers, the introspection endpoint is `mode`.
async fn broken_provider(mode: Arc<AtomicU8>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let base = issuer.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mode = mode.clone();
            let base = base.clone();
            tokio::spawn(async move {
                let mut buf = vec![0; 8192];
                let n = socket.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]);
                let (status, body) = if head.starts_with("GET /.well-known/openid-configuration") {
                    let doc = json!({"issuer": base, "introspection_endpoint": format!("{base}/introspect")});
                    ("200 OK", doc.to_string())
                } else {
                    match mode.load(Ordering::SeqCst) {
                        0 => ("500 Internal Server Error", String::new()),
                        1 => {
                            tokio::time::sleep(Duration::from_secs(60)).await;
                            return;
                        }
                        _ => (
                            "200 OK",
                            format!(
                                r#"{{"active":true,"sub":"x","aud":"{RESOURCE}","pad":"{}"}}"#,
                                "a".repeat(10 << 20)
                            ),
                        ),
                    }
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(body.as_bytes()).await;
            });
        }
    });
    issuer
}

/// Down, slow, 500, 10 MB: 503 with `Retry-After`, and no session is made (nothing forwarded).
#[tokio::test]
async fn a_broken_provider_fails_closed() {
    let mode = Arc::new(AtomicU8::new(0));
    let broken = broken_provider(mode.clone()).await;
    // Nothing listens at the other issuer.
    let down = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    for (what, issuer, m) in [
        ("500", broken.as_str(), 0),
        ("slow", broken.as_str(), 1),
        ("10 MB", broken.as_str(), 2),
        ("down", down.as_str(), 0),
    ] {
        mode.store(m, Ordering::SeqCst);
        let server = mcp_server(&[issuer], &[], &[]);
        let raw = Raw::at(server.url.clone());
        let started = Instant::now();
        let answer = raw
            .post(None, Some("an-opaque-token"), &initialize_body())
            .await;
        assert_eq!(
            answer.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{what}: {answer:?}"
        );
        assert!(answer.headers.contains_key("retry-after"), "{what}");
        assert!(
            !answer.headers.contains_key("mcp-session-id"),
            "{what}: forwarded"
        );
        assert!(
            started.elapsed() < Duration::from_secs(7),
            "{what}: {:?}",
            started.elapsed()
        );
    }
}

/// One JWT issuer and one introspected issuer in one server.
#[tokio::test]
async fn mixed_trust_jwt_and_introspection() {
    let Some(jwt) = OidcProvider::start(RESOURCE) else {
        return;
    };
    let Some(opaque) = OidcProvider::start_opaque(RESOURCE) else {
        return;
    };
    let server = mcp_server(&[opaque.issuer()], &[jwt.issuer()], &[]);
    let raw = Raw::at(server.url.clone());
    let by_jwt = jwt.login("alice").await.access_token;
    let by_opaque = opaque.login("alice").await.access_token;
    let one = raw.open_session(Some(&by_jwt)).await;
    assert_whoami(&raw, &one, &by_jwt, jwt.issuer(), "alice").await;
    let two = raw.open_session(Some(&by_opaque)).await;
    assert_whoami(&raw, &two, &by_opaque, opaque.issuer(), "alice").await;
    // alice at one issuer is not alice at the other.
    raw.whoami(&one, Some(&by_opaque), 2)
        .await
        .assert_mismatch(None);
    // One call for the opaque token (cached after it); the JWT was never sent out.
    assert_eq!(opaque.introspections().await, 1);
}

/// Two replicas on one Redis share the answers: the provider is asked once for a token both
/// replicas see.
#[tokio::test]
async fn replicas_share_answers_through_redis() {
    let Some(provider) = OidcProvider::start_opaque(RESOURCE) else {
        return;
    };
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let url = redis.url();
    let a = mcp_server(&[provider.issuer()], &[], &["--redis", &url]);
    let b = mcp_server(&[provider.issuer()], &[], &["--redis", &url]);
    let alice = provider.login("alice").await.access_token;
    let before = provider.introspections().await;
    let session = Raw::at(a.url.clone()).open_session(Some(&alice)).await;
    assert_eq!(provider.introspections().await, before + 1);
    // The other replica restores the session and finds the answer in Redis.
    assert_whoami(
        &Raw::at(b.url.clone()),
        &session,
        &alice,
        provider.issuer(),
        "alice",
    )
    .await;
    assert_eq!(
        provider.introspections().await,
        before + 1,
        "replica b asked the provider"
    );
    for id in 0..20 {
        for server in [&a, &b] {
            let answer = Raw::at(server.url.clone())
                .whoami(&session, Some(&alice), id)
                .await;
            assert_eq!(answer.status, StatusCode::OK);
        }
    }
    assert_eq!(provider.introspections().await, before + 1);
}

/// `--introspect` without the client credentials in the environment: exit 2, a clear error.
#[test]
fn introspect_needs_the_client_credentials() {
    let output = Command::new(example("mcp_server"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--introspect",
            "https://as.example",
        ])
        .env_remove("MCP_INTROSPECTION_CLIENT_ID")
        .env_remove("MCP_INTROSPECTION_CLIENT_SECRET")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--introspect needs MCP_INTROSPECTION_CLIENT_ID"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
}
