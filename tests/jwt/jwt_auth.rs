#![cfg(feature = "jwt")]
//! `JwtAuthLayer` over real HTTP on loopback: an axum server whose handler echoes the `Identity`
//! it sees, driven with reqwest, with real HS256/RS256/ES256 tokens.

use crate::support;

use support::keys::{header, signing_keys};

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{Extension, Json, Router, routing::any};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{
    EncodingKey, encode, get_current_timestamp,
    jwk::{Jwk, JwkSet},
};
use mcp_session_binding::{
    Identity,
    identity::Claims,
    jwt::{
        Algorithm, JwtAuthLayer, JwtAuthLayerBuilder, JwtKey, JwtKeys, ProtectedResourceMetadata,
    },
};
use serde_json::{Value, json};

const ISS: &str = "https://auth.example.com";
const AUD: &str = "https://mcp.example.com/mcp";
const METADATA_URL: &str = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";
const SECRET: &[u8] = b"test-secret-test-secret-test-secret!";
const OTHER_SECRET: &[u8] = b"another-secret-another-secret-another";

// ---------------------------------------------------------------------------------------------
// Harness

struct Server {
    url: String,
    calls: Arc<AtomicUsize>,
    client: reqwest::Client,
    _serving: support::TestServer,
}

/// Serves `POST/GET /mcp` (echoes the identity and the `jti` claim) behind `layer`, and the
/// protected resource metadata document beside it.
async fn serve(layer: JwtAuthLayer) -> Server {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let metadata = ProtectedResourceMetadata::new(AUD, [ISS]).scopes_supported(["mcp:tools"]);
    let app = Router::new()
        .route(
            "/mcp",
            any(
                move |identity: Option<Extension<Identity>>, claims: Option<Extension<Claims>>| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    async move {
                        Json(json!({
                            "iss": identity.as_ref().map(|i| i.iss().to_owned()),
                            "sub": identity.as_ref().map(|i| i.sub().to_owned()),
                            "jti": claims.and_then(|c| c.get("jti").cloned()),
                        }))
                    }
                },
            ),
        )
        .layer(layer)
        .route_service(&metadata.well_known_path(), metadata);
    let (listener, url) = support::listen().await;
    Server {
        url,
        calls,
        client: reqwest::Client::new(),
        _serving: support::serve_on(listener, app, support::Recorded::default()),
    }
}

struct Answer {
    status: u16,
    www_authenticate: Option<String>,
    retry_after: Option<String>,
    headers: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }

    fn message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    fn challenge(&self) -> &str {
        self.www_authenticate
            .as_deref()
            .expect("WWW-Authenticate header")
    }
}

impl Server {
    async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.unwrap();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        let www_authenticate = header("www-authenticate");
        let retry_after = header("retry-after");
        let headers = format!("{:?}", response.headers());
        Answer {
            status: response.status().as_u16(),
            www_authenticate,
            retry_after,
            headers,
            body: response.text().await.unwrap(),
        }
    }

    async fn with_token(&self, token: &str) -> Answer {
        self.send(
            self.client
                .post(format!("{}/mcp", self.url))
                .bearer_auth(token)
                .body("{}"),
        )
        .await
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

fn hs256_builder() -> JwtAuthLayerBuilder {
    JwtAuthLayer::builder()
        .issuer_keys(ISS, JwtKey::hmac(SECRET).unwrap())
        .algorithms([Algorithm::HS256])
        .audiences([AUD])
        .protected_resource(&ProtectedResourceMetadata::new(AUD, [ISS]))
}

async fn hs256_server() -> Server {
    serve(hs256_builder().build().unwrap()).await
}

fn now() -> u64 {
    get_current_timestamp()
}

/// Valid claims for the test server, with `changes` merged in (a `null` removes a claim).
fn claims(changes: Value) -> Value {
    let mut claims = json!({
        "iss": ISS,
        "sub": "alice",
        "aud": AUD,
        "exp": now() + 300,
        "iat": now(),
        "jti": "jti-1",
    });
    for (name, value) in changes.as_object().unwrap() {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(name);
        } else {
            claims[name] = value.clone();
        }
    }
    claims
}

fn sign(header: &jsonwebtoken::Header, claims: &Value, key: &EncodingKey) -> String {
    encode(header, claims, key).unwrap()
}

fn hs256(claims: &Value) -> String {
    sign(
        &header(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET),
    )
}

/// Asserts a 401 `invalid_token` rejection that never reached the handler.
fn assert_invalid_token(server: &Server, answer: &Answer, message_part: &str) {
    assert_eq!(answer.status, 401, "body: {}", answer.body);
    let challenge = answer.challenge();
    assert!(challenge.starts_with("Bearer "), "challenge: {challenge}");
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "challenge: {challenge}"
    );
    assert!(
        challenge.contains(&format!(r#"resource_metadata="{METADATA_URL}""#)),
        "challenge: {challenge}"
    );
    let body = answer.json();
    assert_eq!(body["jsonrpc"], "2.0");
    assert!(
        body.get("id").is_none(),
        "an error that answers no request has no id"
    );
    assert_eq!(body["error"]["code"], -32000);
    assert!(
        answer.message().contains(message_part),
        "message {:?} should mention {message_part:?}",
        answer.message()
    );
    assert_eq!(server.calls(), 0, "the handler must not run");
}

// ---------------------------------------------------------------------------------------------
// Accepted tokens

#[tokio::test]
async fn valid_token_is_admitted_and_the_identity_reaches_the_handler() {
    let server = hs256_server().await;
    let answer = server.with_token(&hs256(&claims(json!({})))).await;
    assert_eq!(answer.status, 200, "body: {}", answer.body);
    assert_eq!(
        answer.json(),
        json!({"iss": ISS, "sub": "alice", "jti": "jti-1"})
    );
    assert_eq!(server.calls(), 1);
}

#[tokio::test]
async fn audience_may_be_an_array_containing_ours() {
    let server = hs256_server().await;
    let token = hs256(&claims(json!({"aud": ["https://other.example", AUD]})));
    assert_eq!(server.with_token(&token).await.status, 200);
}

#[tokio::test]
async fn rs256_and_es256_pem_keys_verify() {
    let layer = JwtAuthLayer::builder()
        .issuer_keys(
            ISS,
            vec![
                JwtKey::rsa_pem(signing_keys().rsa_a.public.as_str()).unwrap(),
                JwtKey::ec_pem(signing_keys().ec_a.public.as_str()).unwrap(),
            ],
        )
        .algorithms([Algorithm::RS256, Algorithm::ES256])
        .audiences([AUD])
        .protected_resource(&ProtectedResourceMetadata::new(AUD, [ISS]))
        .build()
        .unwrap();
    let server = serve(layer).await;

    let rs = sign(
        &header(Algorithm::RS256),
        &claims(json!({"sub": "rsa-user"})),
        &EncodingKey::from_rsa_pem(signing_keys().rsa_a.private.as_bytes()).unwrap(),
    );
    let answer = server.with_token(&rs).await;
    assert_eq!(answer.status, 200, "body: {}", answer.body);
    assert_eq!(answer.json()["sub"], "rsa-user");

    let es = sign(
        &header(Algorithm::ES256),
        &claims(json!({"sub": "ec-user"})),
        &EncodingKey::from_ec_pem(signing_keys().ec_a.private.as_bytes()).unwrap(),
    );
    let answer = server.with_token(&es).await;
    assert_eq!(answer.status, 200, "body: {}", answer.body);
    assert_eq!(answer.json()["sub"], "ec-user");
    assert_eq!(server.calls(), 2);

    // RS256 signed by a key the server does not know.
    let foreign = sign(
        &header(Algorithm::RS256),
        &claims(json!({})),
        &EncodingKey::from_rsa_pem(signing_keys().rsa_b.private.as_bytes()).unwrap(),
    );
    let answer = server.with_token(&foreign).await;
    assert_eq!(answer.status, 401);
    assert!(
        answer.message().contains("signature"),
        "{}",
        answer.message()
    );
    assert_eq!(server.calls(), 2);
}

fn jwk(private_pem: &str, kid: &str) -> Jwk {
    let key = EncodingKey::from_rsa_pem(private_pem.as_bytes()).unwrap();
    let mut jwk = Jwk::from_encoding_key(&key, jsonwebtoken::Algorithm::RS256).unwrap();
    jwk.common.key_id = Some(kid.to_owned());
    jwk
}

fn rs256_with_kid(private_pem: &str, kid: &str, claims: &Value) -> String {
    let mut header = header(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    sign(
        &header,
        claims,
        &EncodingKey::from_rsa_pem(private_pem.as_bytes()).unwrap(),
    )
}

#[tokio::test]
async fn jwk_set_with_two_keys_picks_the_key_by_kid() {
    let set = JwkSet {
        keys: vec![
            jwk(signing_keys().rsa_a.private.as_str(), "key-a"),
            jwk(signing_keys().rsa_b.private.as_str(), "key-b"),
        ],
    };
    let json = serde_json::to_string(&set).unwrap();
    assert!(!json.contains("\"d\""), "a JWK set holds public keys only");
    let keys = JwtKeys::from_jwk_set_json(&json).unwrap();
    assert_eq!(keys.len(), 2);
    let server = serve(
        JwtAuthLayer::builder()
            .issuer_keys(ISS, keys)
            .algorithms([Algorithm::RS256])
            .audiences([AUD])
            .protected_resource(&ProtectedResourceMetadata::new(AUD, [ISS]))
            .build()
            .unwrap(),
    )
    .await;

    let by_b = rs256_with_kid(
        signing_keys().rsa_b.private.as_str(),
        "key-b",
        &claims(json!({"sub": "bob"})),
    );
    let answer = server.with_token(&by_b).await;
    assert_eq!(answer.status, 200, "body: {}", answer.body);
    assert_eq!(answer.json()["sub"], "bob");

    let by_a = rs256_with_kid(
        signing_keys().rsa_a.private.as_str(),
        "key-a",
        &claims(json!({"sub": "ann"})),
    );
    let answer = server.with_token(&by_a).await;
    assert_eq!(answer.status, 200, "body: {}", answer.body);
    assert_eq!(answer.json()["sub"], "ann");
    assert_eq!(server.calls(), 2);

    // Signed by key b but naming key a: only key a is tried, and it does not verify.
    let mislabelled = rs256_with_kid(
        signing_keys().rsa_b.private.as_str(),
        "key-a",
        &claims(json!({})),
    );
    let answer = server.with_token(&mislabelled).await;
    assert_eq!(answer.status, 401);
    assert!(
        answer.message().contains("signature"),
        "{}",
        answer.message()
    );

    // A kid the server does not know.
    let unknown = rs256_with_kid(
        signing_keys().rsa_b.private.as_str(),
        "key-z",
        &claims(json!({})),
    );
    let answer = server.with_token(&unknown).await;
    assert_eq!(answer.status, 401);
    assert!(answer.message().contains("kid"), "{}", answer.message());
    assert_eq!(server.calls(), 2);
}

#[tokio::test]
async fn leeway_accepts_a_just_expired_token() {
    let just_expired = hs256(&claims(json!({"exp": now() - 10})));

    let lenient = serve(
        hs256_builder()
            .leeway(Duration::from_secs(30))
            .build()
            .unwrap(),
    )
    .await;
    assert_eq!(lenient.with_token(&just_expired).await.status, 200);

    let strict = serve(hs256_builder().leeway(Duration::ZERO).build().unwrap()).await;
    let answer = strict.with_token(&just_expired).await;
    assert_invalid_token(&strict, &answer, "expired");
}

#[tokio::test]
async fn typ_check_accepts_only_access_token_types() {
    let server = serve(
        hs256_builder()
            .require_access_token_type(true)
            .build()
            .unwrap(),
    )
    .await;
    let with_typ = |typ: Option<&str>| {
        let mut header = header(Algorithm::HS256);
        header.typ = typ.map(str::to_owned);
        sign(
            &header,
            &claims(json!({})),
            &EncodingKey::from_secret(SECRET),
        )
    };
    assert_eq!(
        server.with_token(&with_typ(Some("at+jwt"))).await.status,
        200
    );
    assert_eq!(
        server
            .with_token(&with_typ(Some("application/at+jwt")))
            .await
            .status,
        200
    );
    assert_eq!(server.calls(), 2);

    for typ in [Some("JWT"), None] {
        let answer = server.with_token(&with_typ(typ)).await;
        assert_eq!(answer.status, 401, "typ {typ:?}");
        assert!(answer.message().contains("typ"), "{}", answer.message());
    }
    assert_eq!(server.calls(), 2);

    // Without the check, a plain `JWT` typ is fine.
    let relaxed = hs256_server().await;
    assert_eq!(relaxed.with_token(&with_typ(Some("JWT"))).await.status, 200);
}

// ---------------------------------------------------------------------------------------------
// Refused tokens

/// Each row is a token the HS256 test server must refuse with 401 `invalid_token`, and a part of
/// the message that says why.
fn refused_tokens() -> Vec<(&'static str, String, &'static str)> {
    let with = |changes: Value| hs256(&claims(changes));
    let mut rows = vec![
        ("expired", with(json!({"exp": now() - 3600})), "expired"),
        (
            "not yet valid",
            with(json!({"nbf": now() + 3600})),
            "not valid yet",
        ),
        ("missing audience", with(json!({"aud": null})), "audience"),
        (
            "signed with another key",
            sign(
                &header(Algorithm::HS256),
                &claims(json!({})),
                &EncodingKey::from_secret(OTHER_SECRET),
            ),
            "signature",
        ),
        (
            // HS384 signed with the right secret, but only HS256 is allowed.
            "algorithm outside the allowlist",
            sign(
                &header(Algorithm::HS384),
                &claims(json!({})),
                &EncodingKey::from_secret(SECRET),
            ),
            "algorithm",
        ),
        (
            "untrusted issuer",
            with(json!({"iss": "https://evil.example"})),
            "issuer",
        ),
        (
            "missing sub",
            with(json!({"sub": null})),
            "claim `sub` is missing",
        ),
        // An array containing a trusted issuer passes jsonwebtoken's issuer check; the identity
        // rule (string `iss`) still refuses it.
        ("non-string iss", with(json!({"iss": [ISS]})), "iss"),
    ];
    for exp in [Value::Null, json!("tomorrow"), json!([1]), json!({"at": 1})] {
        rows.push((
            "exp not a number",
            with(json!({"exp": exp})),
            "claim `exp` is",
        ));
    }
    for aud in [
        json!("https://other.example/mcp"),
        json!(["https://other.example/mcp"]),
        json!({"aud": AUD}),
        json!([1, 2]),
    ] {
        rows.push(("wrong audience", with(json!({"aud": aud})), "audience"));
    }
    for alg in ["none", "None", "NONE"] {
        rows.push(("alg none", unsigned(alg, &claims(json!({}))), "algorithm"));
    }
    for sub in [json!(42), json!(["alice"]), json!({"id": "alice"})] {
        rows.push((
            "non-string sub",
            with(json!({"sub": sub})),
            "claim `sub` is not a string",
        ));
    }
    for garbage in ["abc", "a.b.c", "a.b.c.d.e"] {
        rows.push(("not a JWT", garbage.to_owned(), "well-formed"));
    }
    rows
}

#[tokio::test]
async fn refused_tokens_get_401_invalid_token_and_never_reach_the_handler() {
    let server = hs256_server().await;
    let rows = refused_tokens();
    assert_eq!(rows.len(), 25);
    for (case, token, message_part) in rows {
        let answer = server.with_token(&token).await;
        eprintln!("case: {case}");
        assert_invalid_token(&server, &answer, message_part);
    }
}

/// `{"alg":"none"}` + payload + empty signature, as an attacker would craft it.
fn unsigned(alg: &str, claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(json!({"alg": alg, "typ": "JWT"}).to_string());
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{payload}.")
}

/// The classic key-confusion attack: an HS256 token whose "secret" is the server's RSA public key.
#[tokio::test]
async fn rsa_public_key_is_never_used_as_an_hmac_secret() {
    let layer = JwtAuthLayer::builder()
        .issuer_keys(
            ISS,
            vec![
                JwtKey::rsa_pem(signing_keys().rsa_a.public.as_str()).unwrap(),
                JwtKey::hmac(SECRET).unwrap(),
            ],
        )
        .algorithms([Algorithm::RS256, Algorithm::HS256])
        .audiences([AUD])
        .protected_resource(&ProtectedResourceMetadata::new(AUD, [ISS]))
        .build()
        .unwrap();
    let server = serve(layer).await;
    let forged = sign(
        &header(Algorithm::HS256),
        &claims(json!({})),
        &EncodingKey::from_secret(signing_keys().rsa_a.public.as_bytes()),
    );
    let answer = server.with_token(&forged).await;
    assert_invalid_token(&server, &answer, "signature");

    // Only RS256 allowed and only the RSA key: the same forgery is refused for its algorithm.
    let rsa_only = serve(
        JwtAuthLayer::builder()
            .issuer_keys(
                ISS,
                JwtKey::rsa_pem(signing_keys().rsa_a.public.as_str()).unwrap(),
            )
            .algorithms([Algorithm::RS256])
            .audiences([AUD])
            .protected_resource(&ProtectedResourceMetadata::new(AUD, [ISS]))
            .build()
            .unwrap(),
    )
    .await;
    let answer = rsa_only.with_token(&forged).await;
    assert_invalid_token(&rsa_only, &answer, "algorithm");
}

// ---------------------------------------------------------------------------------------------
// No token, malformed header

#[tokio::test]
async fn no_token_gets_a_challenge_without_error() {
    let server = hs256_server().await;
    let answer = server
        .send(server.client.post(format!("{}/mcp", server.url)).body("{}"))
        .await;
    assert_eq!(answer.status, 401);
    assert_eq!(
        answer.challenge(),
        format!(r#"Bearer resource_metadata="{METADATA_URL}""#)
    );
    assert!(answer.message().contains("Authorization: Bearer"));
    assert_eq!(server.calls(), 0);
}

#[tokio::test]
async fn token_in_the_query_string_only_is_ignored() {
    let server = hs256_server().await;
    let token = hs256(&claims(json!({})));
    let answer = server
        .send(
            server
                .client
                .post(format!("{}/mcp?access_token={token}", server.url))
                .body("{}"),
        )
        .await;
    assert_eq!(answer.status, 401);
    let challenge = answer.challenge();
    assert!(!challenge.contains("error="), "challenge: {challenge}");
    assert!(
        challenge.contains("resource_metadata="),
        "challenge: {challenge}"
    );
    assert!(!answer.body.contains(&token));
    assert_eq!(server.calls(), 0);
}

#[tokio::test]
async fn other_scheme_counts_as_no_token() {
    let server = hs256_server().await;
    let answer = server
        .send(
            server
                .client
                .post(format!("{}/mcp", server.url))
                .basic_auth("alice", Some("pw")),
        )
        .await;
    assert_eq!(answer.status, 401);
    assert!(!answer.challenge().contains("error="));
    assert_eq!(server.calls(), 0);
}

/// Decision: a malformed `Authorization` header is a malformed request (RFC 6750 §3.1
/// `invalid_request`, 400), not an invalid token.
#[tokio::test]
async fn malformed_authorization_header_is_400_invalid_request() {
    let server = hs256_server().await;
    let token = hs256(&claims(json!({})));
    let url = format!("{}/mcp", server.url);
    let requests = [
        // Two Authorization headers.
        server
            .client
            .post(&url)
            .header("authorization", format!("Bearer {token}"))
            .header("authorization", format!("Bearer {token}")),
        // Bearer with no token.
        server.client.post(&url).header("authorization", "Bearer"),
        // A token with characters outside b64token.
        server
            .client
            .post(&url)
            .header("authorization", format!("Bearer {token} extra")),
    ];
    for request in requests {
        let answer = server.send(request).await;
        assert_eq!(answer.status, 400, "body: {}", answer.body);
        let challenge = answer.challenge();
        assert!(
            challenge.contains(r#"error="invalid_request""#),
            "challenge: {challenge}"
        );
        assert!(
            challenge.contains("resource_metadata="),
            "challenge: {challenge}"
        );
        assert!(!answer.body.contains(&token));
    }
    assert_eq!(server.calls(), 0);
}

// ---------------------------------------------------------------------------------------------
// Revocation

#[tokio::test]
async fn revoked_jti_is_refused() {
    let layer = hs256_builder()
        .revocation(|jti: String| async move { Ok::<_, Infallible>(jti == "revoked-jti") })
        .build()
        .unwrap();
    let server = serve(layer).await;

    let answer = server
        .with_token(&hs256(&claims(json!({"jti": "revoked-jti"}))))
        .await;
    assert_invalid_token(&server, &answer, "revoked");

    let answer = server
        .with_token(&hs256(&claims(json!({"jti": "fine-jti"}))))
        .await;
    assert_eq!(answer.status, 200, "body: {}", answer.body);
    assert_eq!(answer.json()["jti"], "fine-jti");
    assert_eq!(server.calls(), 1);
}

#[tokio::test]
async fn token_without_jti_is_refused_when_revocation_is_on() {
    let layer = hs256_builder()
        .revocation(|_jti: String| async { Ok::<_, Infallible>(false) })
        .build()
        .unwrap();
    let server = serve(layer).await;
    let answer = server
        .with_token(&hs256(&claims(json!({"jti": null}))))
        .await;
    assert_invalid_token(&server, &answer, "jti");
}

#[tokio::test]
async fn failing_revocation_check_fails_closed_with_503() {
    let checks = Arc::new(AtomicUsize::new(0));
    let seen = checks.clone();
    let layer = hs256_builder()
        .revocation(move |_jti: String| {
            seen.fetch_add(1, Ordering::SeqCst);
            async { Err::<bool, _>(std::io::Error::other("deny list unreachable")) }
        })
        .retry_after(Duration::from_secs(3))
        .build()
        .unwrap();
    let server = serve(layer).await;

    let token = hs256(&claims(json!({})));
    let answer = server.with_token(&token).await;
    assert_eq!(answer.status, 503, "body: {}", answer.body);
    assert_eq!(answer.retry_after.as_deref(), Some("3"));
    assert!(answer.www_authenticate.is_none());
    assert_eq!(answer.json()["error"]["code"], -32000);
    assert!(answer.message().contains("revocation"));
    assert!(!answer.body.contains(&token));
    assert_eq!(checks.load(Ordering::SeqCst), 1);
    assert_eq!(server.calls(), 0, "the inner service must never be called");
}

#[tokio::test]
async fn slow_revocation_check_fails_closed_with_503() {
    let layer = hs256_builder()
        .revocation(|_jti: String| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<_, Infallible>(false)
        })
        .revocation_timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let server = serve(layer).await;
    let answer = server.with_token(&hs256(&claims(json!({})))).await;
    assert_eq!(answer.status, 503);
    assert_eq!(answer.retry_after.as_deref(), Some("1"));
    assert_eq!(server.calls(), 0);
}

// ---------------------------------------------------------------------------------------------
// Leaks, metadata

#[tokio::test]
async fn responses_never_echo_the_token() {
    let server = serve(
        hs256_builder()
            .revocation(|jti: String| async move { Ok::<_, Infallible>(jti == "revoked") })
            .build()
            .unwrap(),
    )
    .await;
    let tokens = [
        hs256(&claims(json!({"exp": now() - 3600}))),
        hs256(&claims(json!({"aud": "https://other.example"}))),
        hs256(&claims(json!({"sub": 7}))),
        hs256(&claims(json!({"jti": "revoked"}))),
        sign(
            &header(Algorithm::HS256),
            &claims(json!({})),
            &EncodingKey::from_secret(OTHER_SECRET),
        ),
        unsigned("none", &claims(json!({}))),
    ];
    for token in &tokens {
        let answer = server.with_token(token).await;
        assert_eq!(answer.status, 401);
        for part in token.split('.').filter(|p| p.len() > 8) {
            assert!(
                !answer.body.contains(part),
                "body echoes the token: {}",
                answer.body
            );
            assert!(!answer.headers.contains(part), "headers echo the token");
        }
    }
    assert_eq!(server.calls(), 0);
}

#[tokio::test]
async fn protected_resource_metadata_is_served_and_named_in_the_challenge() {
    let metadata = ProtectedResourceMetadata::new(AUD, [ISS]);
    assert_eq!(metadata.well_known_url(), METADATA_URL);
    let layer = JwtAuthLayer::builder()
        .issuer_keys(ISS, JwtKey::hmac(SECRET).unwrap())
        .algorithms([Algorithm::HS256])
        .protected_resource(&metadata)
        .challenge_scope("mcp:tools")
        .build()
        .unwrap();
    let server = serve(layer).await;

    let answer = server
        .send(server.client.get(format!(
            "{}/.well-known/oauth-protected-resource/mcp",
            server.url
        )))
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.json(),
        json!({
            "resource": AUD,
            "authorization_servers": [ISS],
            "scopes_supported": ["mcp:tools"],
            "bearer_methods_supported": ["header"],
        })
    );

    let answer = server
        .send(server.client.post(format!("{}/mcp", server.url)))
        .await;
    assert_eq!(
        answer.challenge(),
        format!(r#"Bearer resource_metadata="{METADATA_URL}", scope="mcp:tools""#)
    );
    // `protected_resource` also set the audience.
    assert_eq!(
        server.with_token(&hs256(&claims(json!({})))).await.status,
        200
    );
}

#[tokio::test]
async fn allow_missing_token_admits_only_requests_without_authorization() {
    let server = serve(hs256_builder().allow_missing_token(true).build().unwrap()).await;
    let anonymous = server
        .send(server.client.post(format!("{}/mcp", server.url)).body("{}"))
        .await;
    assert_eq!(anonymous.status, 200, "{}", anonymous.body);
    assert_eq!(anonymous.json()["sub"], Value::Null, "no identity");
    assert_eq!(server.calls(), 1);

    // A token that is sent is still validated.
    let expired = hs256(&claims(json!({"exp": now() - 3600})));
    assert_eq!(server.with_token(&expired).await.status, 401);
    let basic = server
        .send(
            server
                .client
                .post(format!("{}/mcp", server.url))
                .header("authorization", "Basic YWxpY2U6c2VjcmV0")
                .body("{}"),
        )
        .await;
    assert_eq!(basic.status, 401);
    assert_eq!(
        server.calls(),
        1,
        "refused requests never reach the handler"
    );
    assert_eq!(
        server.with_token(&hs256(&claims(json!({})))).await.status,
        200
    );

    // Off by default.
    let strict = hs256_server().await;
    let answer = strict
        .send(strict.client.post(format!("{}/mcp", strict.url)).body("{}"))
        .await;
    assert_eq!(answer.status, 401);
}

/// Issue 12 §3: required scopes, granted by `scope` (space separated) or `scp` (array or
/// string); a token without them gets 403 `insufficient_scope` naming the required scopes.
#[tokio::test]
async fn required_scopes_are_granted_by_scope_or_scp_or_refused_with_403() {
    let server = serve(
        hs256_builder()
            .required_scopes(["mcp:tools", "files:read"])
            .build()
            .unwrap(),
    )
    .await;
    for granted in [
        json!({"scope": "openid mcp:tools files:read"}),
        json!({"scp": ["files:read", "mcp:tools"]}),
        json!({"scp": "mcp:tools files:read"}),
        json!({"scope": "mcp:tools", "scp": ["files:read"]}),
    ] {
        let answer = server.with_token(&hs256(&claims(granted.clone()))).await;
        assert_eq!(answer.status, 200, "{granted}");
    }
    let calls = server.calls();
    for lacking in [
        json!({}),
        json!({"scope": "mcp:tools"}),
        json!({"scope": "mcp:tools files:readx"}),
        json!({"scp": ["mcp:tools files:read"]}),
        json!({"scope": ["mcp:tools", "files:read"]}),
        json!({"scp": 7}),
    ] {
        let answer = server.with_token(&hs256(&claims(lacking.clone()))).await;
        assert_eq!(answer.status, 403, "{lacking}");
        assert_eq!(
            answer.challenge(),
            format!(
                r#"Bearer error="insufficient_scope", error_description="the access token lacks a required scope", scope="mcp:tools files:read", resource_metadata="{METADATA_URL}""#
            ),
            "{lacking}"
        );
        assert!(
            answer.message().starts_with("Forbidden: "),
            "{}",
            answer.body
        );
    }
    assert_eq!(
        server.calls(),
        calls,
        "refused requests never reach the handler"
    );

    // Other refusals name the required scopes in their challenge too.
    let answer = server
        .send(server.client.post(format!("{}/mcp", server.url)))
        .await;
    assert_eq!(answer.status, 401);
    assert_eq!(
        answer.challenge(),
        format!(r#"Bearer resource_metadata="{METADATA_URL}", scope="mcp:tools files:read""#)
    );
}
