#![cfg(feature = "oidc")]
//! Against a real OpenID provider: `oidc-provider` from npm under Node, started by
//! `support/oidc_provider.rs` on loopback, with real logins (authorization code + PKCE) and real
//! `refresh_token` grants. Without node or the installed package, each test prints a `SKIP:`
//! line and passes, unless `CI` is set.

use crate::support;

use support::example_bin;
use support::oidc_provider;

use std::{
    process::Command,
    time::{Duration, Instant},
};

use example_bin::{Spawned, example};
use http::StatusCode;
use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode, get_current_timestamp,
    jwk::JwkSet,
};
use oidc_provider::{OidcProvider, SigningKey, jwt_claims, jwt_header};
use serde_json::{Value, json};
use support::{Answer, Raw, initialize_body, tool_text};


/// The MCP resource the access tokens are for (RFC 8707): their `aud`.
const RESOURCE: &str = "https://mcp.test/mcp";

/// Verifies `jwt` with the provider's published keys, as a resource server would.
async fn verify(provider: &OidcProvider, jwt: &str) -> Value {
    let jwks: JwkSet = serde_json::from_value(provider.jwks().await).expect("a JWKS");
    let kid = jwt_header(jwt)["kid"].as_str().expect("kid").to_owned();
    let jwk = jwks
        .find(&kid)
        .unwrap_or_else(|| panic!("kid {kid} is not published"));
    let mut validation = Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[RESOURCE]);
    validation.set_issuer(&[provider.issuer()]);
    decode::<Value>(jwt, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
        .unwrap_or_else(|e| panic!("the token does not verify: {e}"))
        .claims
}

/// The harness alone: real logins and refresh grants give RS256 JWT access tokens for the
/// resource, verifiable with the published keys; refresh tokens rotate; a restart with a new
/// key keeps the issuer URL and publishes only the new key.
#[tokio::test]
async fn the_provider_issues_real_tokens_for_the_resource() {
    let Some(mut provider) = OidcProvider::start(RESOURCE) else {
        return;
    };
    assert!(
        provider.issuer().starts_with("http://127.0.0.1:"),
        "{}",
        provider.issuer()
    );

    let alice = provider.login("alice").await;
    let header = jwt_header(&alice.access_token);
    assert_eq!(header["alg"], "RS256", "{header}");
    assert_eq!(header["typ"], "at+jwt", "{header}");
    assert_eq!(
        header["kid"],
        provider.signing_key().kid.as_str(),
        "{header}"
    );
    let claims = verify(&provider, &alice.access_token).await;
    assert_eq!(claims["iss"], provider.issuer());
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["aud"], RESOURCE);
    assert_eq!(claims["scope"], "mcp");
    assert!(alice.id_token.is_some(), "an ID token too");

    // Refresh grants: new bytes, same iss/sub/aud; the refresh token rotates.
    let mut current = alice.clone();
    for _ in 0..3 {
        let next = provider.refresh(current.refresh_token()).await;
        assert_ne!(next.access_token, current.access_token);
        assert_ne!(next.refresh_token(), current.refresh_token());
        let claims = verify(&provider, &next.access_token).await;
        assert_eq!(
            (&claims["iss"], &claims["sub"], &claims["aud"]),
            (
                &Value::from(provider.issuer()),
                &Value::from("alice"),
                &Value::from(RESOURCE)
            )
        );
        current = next;
    }
    // A used refresh token is refused, and its reuse revokes the grant (the newest token too).
    let reuse = provider.try_refresh(alice.refresh_token()).await;
    assert!(reuse.is_err(), "a rotated refresh token was accepted again");
    let after = provider.try_refresh(current.refresh_token()).await;
    assert!(
        after.is_err(),
        "refresh token reuse did not revoke the grant"
    );

    let bob = provider.login("bob").await;
    assert_eq!(jwt_claims(&bob.access_token)["sub"], "bob");
    assert!(
        provider.try_login("mallory").await.is_err(),
        "an unknown account logs in"
    );

    // Restart with a new key, on the same issuer URL: only the new key is published and signs.
    let (issuer, old_kid) = (
        provider.issuer().to_owned(),
        provider.signing_key().kid.clone(),
    );
    let new = provider.rotate_key();
    assert_ne!(new.kid, old_kid);
    assert_eq!(provider.issuer(), issuer);
    let kids: Vec<Value> = provider.jwks().await["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].clone())
        .collect();
    assert_eq!(kids, [Value::from(new.kid.as_str())]);
    let again = provider.login("alice").await;
    assert_eq!(jwt_header(&again.access_token)["kid"], new.kid.as_str());
    assert_eq!(verify(&provider, &again.access_token).await["iss"], issuer);
}

// ---------------------------------------------------------------------------------------------
// End to end: `mcp_server --issuer <provider>` in a child process, driven over loopback.
// ---------------------------------------------------------------------------------------------

/// `mcp_server` trusting `providers` by discovery, audience [`RESOURCE`], with `extra` flags.
fn mcp_server(providers: &[&OidcProvider], extra: &[&str]) -> Spawned {
    let mut command = Command::new(example("mcp_server"));
    command.args(["--listen", "127.0.0.1:0"]);
    for provider in providers {
        command.args(["--issuer", provider.issuer()]);
    }
    command
        .args(extra)
        .env_remove("MCP_JWT_SECRET")
        .env_remove("MCP_JWT_ISSUERS")
        .env("MCP_JWT_AUDIENCE", RESOURCE)
        .env("RUST_LOG", "info");
    let server = Spawned::start(&mut command);
    // It names each issuer and the key ids it loaded before it listens.
    for provider in providers {
        let line = format!(
            "issuer {} keys {}",
            provider.issuer(),
            provider
                .keys()
                .iter()
                .map(|k| k.kid.as_str())
                .collect::<Vec<_>>()
                .join(",")
        );
        assert!(
            server.banner.contains(&line),
            "no {line:?} in {:#?}",
            server.banner
        );
    }
    server
}

/// `whoami` on `session` with `token`: the answer must be a successful tool result naming
/// `(iss, sub)`.
async fn assert_whoami(raw: &Raw, session: &str, token: &str, iss: &str, sub: &str) {
    let answer = raw.whoami(session, Some(token), 1).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let message = answer.json();
    assert_ne!(message["result"]["isError"], json!(true), "{message}");
    assert_eq!(tool_text(&message), format!("{iss} {sub}"), "{message}");
}

/// 401 with an `invalid_token` challenge.
fn assert_invalid_token(answer: &Answer, what: &str) {
    assert_eq!(
        answer.status,
        StatusCode::UNAUTHORIZED,
        "{what}: {answer:?}"
    );
    let challenge = answer.headers["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{what}: {challenge}"
    );
}

/// An access token like the provider's, but made here: signed with `key` (whose `kid` goes in
/// the header), claiming `iss` and `sub`.
fn hand_made_token(key: &SigningKey, iss: &str, sub: &str) -> String {
    let now = get_current_timestamp();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(key.kid.clone());
    header.typ = Some("at+jwt".to_owned());
    let claims = json!({
        "iss": iss, "sub": sub, "aud": RESOURCE, "scope": "mcp",
        "client_id": oidc_provider::CLIENT_ID,
        "iat": now, "exp": now + 300, "jti": format!("hand-made-{now}-{sub}"),
    });
    let key = EncodingKey::from_rsa_pem(key.pem.as_bytes()).expect("the provider's PEM key");
    encode(&header, &claims, &key).unwrap()
}

/// Polls `probe` every 100 ms until it is true, at most `bound`. Whether it became true.
async fn eventually<F, Fut>(bound: Duration, mut probe: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + bound;
    loop {
        if probe().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The seed scenario with a real provider: alice logs in (code flow + PKCE) and initializes;
/// real refresh grants give new token bytes with the same (iss, sub), and each drives the
/// session; bob's real token on alice's session gets the mismatch answer and ends the session.
#[tokio::test]
async fn refreshed_tokens_keep_the_session_and_another_user_ends_it() {
    let Some(provider) = OidcProvider::start(RESOURCE) else {
        return;
    };
    let server = mcp_server(&[&provider], &[]);
    let raw = Raw::at(server.url.clone());
    let issuer = provider.issuer();

    let mut tokens = provider.login("alice").await;
    let session = raw.open_session(Some(&tokens.access_token)).await;
    assert_whoami(&raw, &session, &tokens.access_token, issuer, "alice").await;
    let mut seen = vec![tokens.access_token.clone()];
    for _ in 0..3 {
        tokens = provider.refresh(tokens.refresh_token()).await;
        assert!(!seen.contains(&tokens.access_token), "new token bytes");
        let claims = jwt_claims(&tokens.access_token);
        assert_eq!(
            (claims["iss"].as_str(), claims["sub"].as_str()),
            (Some(issuer), Some("alice"))
        );
        assert_whoami(&raw, &session, &tokens.access_token, issuer, "alice").await;
        seen.push(tokens.access_token.clone());
    }
    // An earlier token of the same login still drives the session (same iss/sub, not expired).
    assert_whoami(&raw, &session, &seen[0], issuer, "alice").await;

    let bob = provider.login("bob").await;
    let answer = raw.whoami(&session, Some(&bob.access_token), 2).await;
    answer.assert_mismatch(None);
    let answer = raw.whoami(&session, Some(&tokens.access_token), 3).await;
    assert_eq!(
        answer.status,
        StatusCode::NOT_FOUND,
        "the session is ended: {answer:?}"
    );

    // bob's own session works with his token.
    let bobs = raw.open_session(Some(&bob.access_token)).await;
    assert_whoami(&raw, &bobs, &bob.access_token, issuer, "bob").await;
}

/// Key rotation: the provider restarts with a new signing key (the old one no longer
/// published). A token signed with the new key is accepted without restarting the server; a
/// token signed with the dropped key is refused after that refresh.
#[tokio::test]
async fn a_rotated_key_is_picked_up_and_a_dropped_one_refused() {
    let Some(mut provider) = OidcProvider::start(RESOURCE) else {
        return;
    };
    let old = provider.login("alice").await;
    let server = mcp_server(&[&provider], &["--jwks-refresh-min", "1"]);
    let raw = Raw::at(server.url.clone());
    let issuer = provider.issuer().to_owned();
    let session = raw.open_session(Some(&old.access_token)).await;
    assert_whoami(&raw, &session, &old.access_token, &issuer, "alice").await;

    let new_key = provider.rotate_key();
    let new = provider.login("alice").await;
    assert_eq!(jwt_header(&new.access_token)["kid"], new_key.kid.as_str());
    // The unknown kid makes the server refetch (at most once a second): accepted soon.
    let accepted = eventually(Duration::from_secs(15), || async {
        raw.whoami(&session, Some(&new.access_token), 4)
            .await
            .status
            == StatusCode::OK
    })
    .await;
    assert!(
        accepted,
        "a token signed with the new key was not accepted\nserver:\n{}",
        server.stderr()
    );
    assert_whoami(&raw, &session, &new.access_token, &issuer, "alice").await;
    // The dropped key no longer verifies anything, though the token has not expired.
    let answer = raw.whoami(&session, Some(&old.access_token), 5).await;
    assert_invalid_token(&answer, "a token signed with the dropped key");
    let answer = raw
        .post(None, Some(&old.access_token), &initialize_body())
        .await;
    assert_invalid_token(&answer, "a new session with the dropped key");
    // The session is still alice's.
    assert_whoami(&raw, &session, &new.access_token, &issuer, "alice").await;
}

/// Cross-issuer forgery with two real providers: a token signed with B's key (B's kid) that
/// claims iss = A and sub = alice is refused, as is one that names A's kid but is signed by B;
/// the same token signed with A's key, and both providers' real tokens, are accepted.
#[tokio::test]
async fn a_key_of_one_issuer_cannot_sign_for_another() {
    let Some(a) = OidcProvider::start(RESOURCE) else {
        return;
    };
    let Some(b) = OidcProvider::start(RESOURCE) else {
        return;
    };
    let server = mcp_server(&[&a, &b], &[]);
    let raw = Raw::at(server.url.clone());

    let alice_at_a = a.login("alice").await.access_token;
    let alice_at_b = b.login("alice").await.access_token;
    let session = raw.open_session(Some(&alice_at_a)).await;
    assert_whoami(&raw, &session, &alice_at_a, a.issuer(), "alice").await;
    let at_b = raw.open_session(Some(&alice_at_b)).await;
    assert_whoami(&raw, &at_b, &alice_at_b, b.issuer(), "alice").await;

    // The control: made here, signed with A's own key, it is accepted.
    let genuine = hand_made_token(a.signing_key(), a.issuer(), "alice");
    assert_whoami(&raw, &session, &genuine, a.issuer(), "alice").await;

    let forged = hand_made_token(b.signing_key(), a.issuer(), "alice");
    let answer = raw.whoami(&session, Some(&forged), 6).await;
    assert_invalid_token(&answer, "B's key claiming A on A's session");
    let answer = raw.post(None, Some(&forged), &initialize_body()).await;
    assert_invalid_token(&answer, "B's key claiming A, new session");
    let mut mislabelled = b.signing_key().clone();
    mislabelled.kid = a.signing_key().kid.clone();
    let forged = hand_made_token(&mislabelled, a.issuer(), "alice");
    let answer = raw.whoami(&session, Some(&forged), 7).await;
    assert_invalid_token(&answer, "B's key under A's kid");

    // Still alice's session at A; alice at B is someone else.
    assert_whoami(&raw, &session, &alice_at_a, a.issuer(), "alice").await;
    let answer = raw.whoami(&session, Some(&alice_at_b), 8).await;
    assert_eq!(
        answer.json()["result"]["isError"],
        json!(true),
        "{answer:?}"
    );
}

/// Provider down: keys fetched at start keep serving within `--jwks-max-stale`; after it,
/// requests are refused with 503 and `Retry-After`; once the provider is back, they pass again.
#[tokio::test]
async fn cached_keys_serve_for_a_bounded_time_when_the_provider_is_down() {
    const MAX_STALE: Duration = Duration::from_secs(3);
    let Some(mut provider) = OidcProvider::start(RESOURCE) else {
        return;
    };
    let alice = provider.login("alice").await.access_token;
    // The server fetches the keys after this instant.
    let started = Instant::now();
    let server = mcp_server(
        &[&provider],
        &["--jwks-max-stale", "3", "--jwks-refresh-min", "1"],
    );
    let raw = Raw::at(server.url.clone());
    let issuer = provider.issuer().to_owned();
    let session = raw.open_session(Some(&alice)).await;

    provider.stop();
    let answer = raw.whoami(&session, Some(&alice), 9).await;
    if answer.status != StatusCode::OK {
        // Only a server that took longer than the bound to get here may refuse.
        assert!(
            started.elapsed() >= MAX_STALE,
            "refused within the staleness bound: {answer:?}"
        );
    }

    let mut refused = None;
    let deadline = Instant::now() + MAX_STALE + Duration::from_secs(10);
    while Instant::now() < deadline {
        let answer = raw.whoami(&session, Some(&alice), 10).await;
        if answer.status != StatusCode::OK {
            refused = Some(answer);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refused = refused.unwrap_or_else(|| {
        panic!(
            "stale keys still serve after the bound\nserver:\n{}",
            server.stderr()
        )
    });
    assert!(started.elapsed() >= MAX_STALE, "refused before the bound");
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{refused:?}"
    );
    let retry_after: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in seconds");
    assert!(retry_after >= 1, "{retry_after}");

    // Back on the same port and keys: the session is served again once the keys are refetched.
    let keys = provider.keys().to_vec();
    provider.restart_with_keys(keys);
    let served = eventually(Duration::from_secs(10), || async {
        raw.whoami(&session, Some(&alice), 11).await.status == StatusCode::OK
    })
    .await;
    assert!(served, "not served again\nserver:\n{}", server.stderr());
    assert_whoami(&raw, &session, &alice, &issuer, "alice").await;
}
