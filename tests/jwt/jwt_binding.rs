#![cfg(feature = "jwt")]
//! `JwtAuthLayer` + `SessionBindingLayer` + the rmcp demo server, in process on loopback, with
//! real HS256 tokens: the seed scenario (a refreshed token keeps its session) and the refusals,
//! driven by the rmcp client and by raw HTTP.

use crate::support::MISMATCH_MESSAGE;
use crate::support;

use support::jwt_stack;

use std::{collections::HashSet, sync::Arc};

use http::StatusCode;
use jwt_stack::{DEFAULT_AUDIENCE, StackConfig, TokenMinter, TrustedIssuer};
use mcp_session_binding::store::MemoryStore;
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};
use support::{
    Answer, Raw, Recorded, RotatingClient, TestServer, demo_mcp, initialize_body, tool_text,
};


/// Each issuer has its own HS256 secret: a key belongs to one issuer.
const SECRET_1: &[u8] = b"jwt-binding-test-secret-of-32+-bytes";
const SECRET_2: &[u8] = b"jwt-binding-second-issuer-secret-32b";
const ISS_1: &str = "https://issuer-one.example";
const ISS_2: &str = "https://issuer-two.example";

/// The stack on 127.0.0.1:0, trusting two issuers; aborted on drop.
struct Server {
    url: String,
    raw: Raw,
    _serving: TestServer,
}

async fn serve(allow_anonymous: bool) -> Server {
    let (listener, base_url) = support::listen().await;
    let config = StackConfig {
        issuers: vec![
            TrustedIssuer::hs256(ISS_1, SECRET_1),
            TrustedIssuer::hs256(ISS_2, SECRET_2),
        ],
        allow_anonymous,
        ..StackConfig::new(SECRET_1, Arc::new(MemoryStore::new()))
    };
    let app = jwt_stack::router(&config, &base_url, demo_mcp::service()).unwrap();
    let serving = support::serve_on(listener, app, Recorded::default());
    Server {
        raw: Raw::at(serving.url.clone()),
        url: serving.url.clone(),
        _serving: serving,
    }
}

/// A fresh token (new `jti` and `iat`: new bytes) for `(iss, sub)`.
fn token(iss: &str, sub: &str) -> String {
    let secret = if iss == ISS_2 { SECRET_2 } else { SECRET_1 };
    TokenMinter::new(secret, DEFAULT_AUDIENCE).token(iss, sub)
}

fn alice() -> String {
    token(ISS_1, "alice")
}

/// Asserts that `answer` is the mismatch `isError` tool result for request `id`.
fn assert_is_error_result(answer: &Answer, id: u64) {
    answer.assert_mismatch(Some(id));
}

/// Asserts that the owner gets 404 for `session`: it was ended.
async fn assert_ended_for_owner(server: &Server, session: &str, owner: &str) {
    let answer = server.raw.whoami(session, Some(owner), 99).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{answer:?}");
}

async fn whoami_text(server: &Server, session: &str, token: Option<&str>) -> String {
    let answer = server.raw.whoami(session, token, 1).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    tool_text(&answer.json()).to_owned()
}

/// The seed bug: a session bound to the token bytes dies on the first refresh. Bound to
/// `(iss, sub)`, it survives every one.
#[tokio::test]
async fn a_hundred_token_refreshes_keep_the_session() {
    let server = serve(false).await;
    let first = alice();
    let client = RotatingClient::new(first.clone());
    let running = client.clone().connect(&server.url).await;
    let session = client.session_id().expect("a session id");
    let mut tokens = HashSet::from([first]);

    for refresh in 1..=100 {
        let refreshed = alice();
        assert!(
            tokens.insert(refreshed.clone()),
            "refresh {refresh} gave new bytes"
        );
        client.rotate(refreshed);
        let result = running
            .call_tool(CallToolRequestParams::new("whoami"))
            .await
            .unwrap_or_else(|e| panic!("call after refresh {refresh} failed: {e}"));
        assert_ne!(result.is_error, Some(true), "refresh {refresh}: {result:?}");
        let text = result.content[0].as_text().unwrap().text.clone();
        assert_eq!(text, format!("{ISS_1} alice"), "refresh {refresh}");
        assert_eq!(
            client.session_id().as_deref(),
            Some(session.as_str()),
            "refresh {refresh} stayed in the session"
        );
    }
    running.cancel().await.unwrap();
}

#[tokio::test]
async fn another_sub_gets_is_error_and_the_session_ends_for_its_owner() {
    let server = serve(false).await;
    let session = server.raw.open_session(Some(&alice())).await;
    assert_eq!(
        whoami_text(&server, &session, Some(&alice())).await,
        format!("{ISS_1} alice")
    );

    let bob = token(ISS_1, "bob");
    assert_is_error_result(&server.raw.whoami(&session, Some(&bob), 7).await, 7);
    assert_ended_for_owner(&server, &session, &alice()).await;

    // Bob's token itself is fine: the refusal was about the session, not the token.
    let own = server.raw.open_session(Some(&bob)).await;
    assert_eq!(
        whoami_text(&server, &own, Some(&bob)).await,
        format!("{ISS_1} bob")
    );
}

#[tokio::test]
async fn the_same_sub_from_a_second_trusted_issuer_is_another_user() {
    let server = serve(false).await;
    let session = server.raw.open_session(Some(&alice())).await;
    let other_alice = token(ISS_2, "alice");

    assert_is_error_result(&server.raw.whoami(&session, Some(&other_alice), 3).await, 3);
    assert_ended_for_owner(&server, &session, &alice()).await;

    // The second issuer is trusted: its alice has sessions of her own.
    let own = server.raw.open_session(Some(&other_alice)).await;
    assert_eq!(
        whoami_text(&server, &own, Some(&other_alice)).await,
        format!("{ISS_2} alice")
    );
}

/// The forgery of issue 12: issuer 2's key signs a token that claims issuer 1's alice. It must
/// not verify, so it never reaches alice's session.
#[tokio::test]
async fn a_token_signed_by_one_issuers_key_for_another_issuer_is_refused() {
    let server = serve(false).await;
    let session = server.raw.open_session(Some(&alice())).await;
    for (claimed, secret) in [(ISS_1, SECRET_2), (ISS_2, SECRET_1)] {
        let forged = TokenMinter::new(secret, DEFAULT_AUDIENCE).token(claimed, "alice");
        let answer = server.raw.whoami(&session, Some(&forged), 4).await;
        assert_eq!(
            answer.status,
            StatusCode::UNAUTHORIZED,
            "{claimed}: {answer:?}"
        );
        let answer = server
            .raw
            .post(None, Some(&forged), &initialize_body())
            .await;
        assert_eq!(
            answer.status,
            StatusCode::UNAUTHORIZED,
            "{claimed}: {answer:?}"
        );
    }
    // alice's session is untouched.
    assert_eq!(
        whoami_text(&server, &session, Some(&alice())).await,
        format!("{ISS_1} alice")
    );
}

#[tokio::test]
async fn other_requests_by_another_identity_get_a_json_rpc_error_with_their_id() {
    let server = serve(false).await;
    let bob = token(ISS_1, "bob");
    for (id, method, params) in [
        (11, "resources/read", json!({"uri": demo_mcp::WHOAMI_URI})),
        (
            12,
            "prompts/get",
            json!({"name": "greet", "arguments": {"name": "Ada"}}),
        ),
        (13, "tools/list", json!({})),
    ] {
        let session = server.raw.open_session(Some(&alice())).await;
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        // The owner's request works ...
        let answer = server.raw.post(Some(&session), Some(&alice()), &body).await;
        assert_eq!(answer.status, StatusCode::OK, "{method}: {answer:?}");
        assert!(
            answer.json().get("result").is_some(),
            "{method}: {answer:?}"
        );
        // ... the same request by bob is refused with its id, and ends the session.
        let answer = server.raw.post(Some(&session), Some(&bob), &body).await;
        assert_eq!(answer.status, StatusCode::OK, "{method}: {answer:?}");
        let message = answer.json();
        assert_eq!(message["id"], json!(id), "{method}: {message}");
        assert_eq!(
            message["error"]["message"],
            json!(MISMATCH_MESSAGE),
            "{method}: {message}"
        );
        assert!(message.get("result").is_none(), "{method}: {message}");
        assert_ended_for_owner(&server, &session, &alice()).await;
    }
}

#[tokio::test]
async fn an_anonymous_session_refuses_a_token() {
    let server = serve(true).await;
    let session = server.raw.open_session(None).await;
    assert_eq!(whoami_text(&server, &session, None).await, "anonymous");

    assert_is_error_result(&server.raw.whoami(&session, Some(&alice()), 5).await, 5);
    let answer = server.raw.whoami(&session, None, 6).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{answer:?}");
}

#[tokio::test]
async fn a_bound_session_refuses_an_anonymous_caller() {
    let server = serve(true).await;
    let session = server.raw.open_session(Some(&alice())).await;
    assert_eq!(
        whoami_text(&server, &session, Some(&alice())).await,
        format!("{ISS_1} alice")
    );

    assert_is_error_result(&server.raw.whoami(&session, None, 4).await, 4);
    assert_ended_for_owner(&server, &session, &alice()).await;
}

#[tokio::test]
async fn anonymous_mode_still_refuses_an_invalid_token() {
    let server = serve(true).await;
    let forged = TokenMinter::new(b"some-other-secret-of-at-least-32-bytes", DEFAULT_AUDIENCE)
        .token(ISS_1, "alice");
    let answer = server
        .raw
        .post(None, Some(&forged), &initialize_body())
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{answer:?}");
    assert!(answer.headers.get("mcp-session-id").is_none());
    let challenge = answer.headers["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("invalid_token"), "{challenge}");
}

#[tokio::test]
async fn without_anonymous_mode_a_tokenless_request_gets_the_jwt_challenge() {
    let server = serve(false).await;
    let answer = server.raw.post(None, None, &initialize_body()).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{answer:?}");
    let challenge = answer.headers["www-authenticate"].to_str().unwrap();
    let metadata_url = server
        .url
        .replace("/mcp", "/.well-known/oauth-protected-resource/mcp");
    assert!(
        challenge.contains(&format!("resource_metadata=\"{metadata_url}\"")),
        "{challenge}"
    );
    let metadata: Value = reqwest::get(&metadata_url)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["resource"], json!(server.url));
    assert_eq!(metadata["authorization_servers"], json!([ISS_1, ISS_2]));
}
