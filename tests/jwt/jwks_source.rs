#![cfg(feature = "oidc")]
//! Issuers trusted through discovery (issue 12 §2), against a small loopback HTTP server that
//! plays the authorization server and serves what each test tells it to: good documents, and
//! hostile ones (wrong issuer, oversize, duplicate `kid`s, slow answers, ...). It counts the
//! requests it gets. The end-to-end tests with a real OpenID provider are elsewhere.

use crate::support;

use support::{
    example_bin,
    keys::{header, signing_keys},
};

use std::{
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    extract::State,
    http::{HeaderMap, StatusCode as AxumStatus},
    response::{IntoResponse, Response as AxumResponse},
    routing::get,
};
use http::{Request, Response, StatusCode, header};
use jsonwebtoken::{EncodingKey, encode, get_current_timestamp, jwk::Jwk};
use mcp_session_binding::{
    Identity,
    jwt::{Algorithm, JwtAuthLayer, JwtAuthLayerBuilder, JwtRejection},
};
use serde_json::{Value, json};
use tower::{Layer, ServiceExt, service_fn};

const AUD: &str = "https://mcp.example.com/mcp";

/// One canned answer.
#[derive(Clone)]
struct Canned {
    status: u16,
    body: Vec<u8>,
    cache_control: Option<String>,
    delay: Duration,
    location: Option<String>,
}

impl Canned {
    fn json(value: &Value) -> Self {
        Self::raw(value.to_string().into_bytes())
    }

    fn raw(body: Vec<u8>) -> Self {
        Self {
            status: 200,
            body,
            cache_control: None,
            delay: Duration::ZERO,
            location: None,
        }
    }

    fn status(status: u16) -> Self {
        Self {
            status,
            ..Self::raw(b"{}".to_vec())
        }
    }
}

#[derive(Default)]
struct Plan {
    openid: Option<Canned>,
    oauth: Option<Canned>,
    jwks: Option<Canned>,
    openid_hits: usize,
    oauth_hits: usize,
    jwks_hits: usize,
}

/// The loopback authorization server.
#[derive(Clone)]
struct Provider {
    issuer: String,
    plan: Arc<Mutex<Plan>>,
}

async fn answer(canned: Option<Canned>) -> AxumResponse {
    let Some(canned) = canned else {
        return AxumStatus::NOT_FOUND.into_response();
    };
    tokio::time::sleep(canned.delay).await;
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
    if let Some(cc) = &canned.cache_control {
        headers.insert(header::CACHE_CONTROL, cc.parse().unwrap());
    }
    if let Some(location) = &canned.location {
        headers.insert(header::LOCATION, location.parse().unwrap());
    }
    (
        AxumStatus::from_u16(canned.status).unwrap(),
        headers,
        canned.body,
    )
        .into_response()
}

impl Provider {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let plan = Arc::new(Mutex::new(Plan::default()));
        let app = Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(|State(plan): State<Arc<Mutex<Plan>>>| async move {
                    let canned = {
                        let mut plan = plan.lock().unwrap();
                        plan.openid_hits += 1;
                        plan.openid.clone()
                    };
                    answer(canned).await
                }),
            )
            .route(
                "/.well-known/oauth-authorization-server",
                get(|State(plan): State<Arc<Mutex<Plan>>>| async move {
                    let canned = {
                        let mut plan = plan.lock().unwrap();
                        plan.oauth_hits += 1;
                        plan.oauth.clone()
                    };
                    answer(canned).await
                }),
            )
            .route(
                "/jwks",
                get(|State(plan): State<Arc<Mutex<Plan>>>| async move {
                    let canned = {
                        let mut plan = plan.lock().unwrap();
                        plan.jwks_hits += 1;
                        plan.jwks.clone()
                    };
                    answer(canned).await
                }),
            )
            .with_state(plan.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let provider = Self { issuer, plan };
        provider.set_openid(Some(Canned::json(&provider.discovery())));
        provider
    }

    fn discovery(&self) -> Value {
        json!({
            "issuer": self.issuer,
            "jwks_uri": format!("{}/jwks", self.issuer),
            "authorization_endpoint": format!("{}/auth", self.issuer),
        })
    }

    fn set_openid(&self, canned: Option<Canned>) {
        self.plan.lock().unwrap().openid = canned;
    }

    fn set_oauth(&self, canned: Option<Canned>) {
        self.plan.lock().unwrap().oauth = canned;
    }

    fn set_jwks(&self, canned: Option<Canned>) {
        self.plan.lock().unwrap().jwks = canned;
    }

    fn publish(&self, keys: Vec<Value>) {
        self.set_jwks(Some(Canned::json(&json!({ "keys": keys }))));
    }

    fn jwks_hits(&self) -> usize {
        self.plan.lock().unwrap().jwks_hits
    }

    fn builder(&self) -> JwtAuthLayerBuilder {
        JwtAuthLayer::builder()
            .issuer_discovery(self.issuer.clone())
            .audiences([AUD])
            .jwks_fetch_timeout(Duration::from_millis(500))
    }
}

/// A signing key of the provider: its private half and its public JWK.
struct SigningKey {
    alg: Algorithm,
    kid: String,
    private: EncodingKey,
    public: Value,
}

fn rsa(pem: &str, kid: &str) -> SigningKey {
    signing(
        EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
        Algorithm::RS256,
        kid,
    )
}

fn signing(private: EncodingKey, alg: Algorithm, kid: &str) -> SigningKey {
    let mut jwk = Jwk::from_encoding_key(&private, alg.as_str().parse().unwrap()).unwrap();
    jwk.common.key_id = Some(kid.to_owned());
    SigningKey {
        alg,
        kid: kid.to_owned(),
        private,
        public: serde_json::to_value(&jwk).unwrap(),
    }
}

fn token_for(issuer: &str, key: &SigningKey) -> String {
    token_with(issuer, key, key.alg, Some(&key.kid))
}

fn token_with(issuer: &str, key: &SigningKey, alg: Algorithm, kid: Option<&str>) -> String {
    let mut header = header(alg);
    header.kid = kid.map(str::to_owned);
    let claims = json!({
        "iss": issuer, "sub": "alice", "aud": AUD,
        "exp": get_current_timestamp() + 300,
    });
    encode(&header, &claims, &key.private).unwrap()
}

struct Answer {
    status: StatusCode,
    rejection: Option<JwtRejection>,
    retry_after: Option<String>,
}

async fn send(layer: &JwtAuthLayer, token: &str) -> Answer {
    let service = layer.layer(service_fn(|req: Request<String>| async move {
        assert!(req.extensions().get::<Identity>().is_some());
        Ok::<_, Infallible>(Response::new(()))
    }));
    let request = Request::builder()
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(String::new())
        .unwrap();
    let response = service.oneshot(request).await.unwrap();
    Answer {
        status: response.status(),
        rejection: response.extensions().get::<JwtRejection>().cloned(),
        retry_after: response
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_owned()),
    }
}

#[tokio::test]
async fn discovery_then_jwks_verifies_the_issuers_tokens() {
    let provider = Provider::start().await;
    let a = rsa(signing_keys().rsa_a.private.as_str(), "a");
    provider.publish(vec![a.public.clone()]);
    let layer = provider.builder().build().unwrap();
    layer.fetch_keys().await.unwrap();
    assert_eq!(
        layer.key_ids(),
        vec![(provider.issuer.clone(), vec![Some("a".to_owned())])]
    );
    assert_eq!(
        send(&layer, &token_for(&provider.issuer, &a)).await.status,
        200
    );
    // Another issuer's `iss` with this provider's key: not trusted.
    let answer = send(&layer, &token_for("http://127.0.0.1:1", &a)).await;
    assert_eq!(answer.rejection, Some(JwtRejection::UntrustedIssuer));
}

#[tokio::test]
async fn the_first_request_fetches_the_keys_when_nobody_did() {
    let provider = Provider::start().await;
    let a = rsa(signing_keys().rsa_a.private.as_str(), "a");
    provider.publish(vec![a.public.clone()]);
    let layer = provider.builder().build().unwrap();
    assert_eq!(
        send(&layer, &token_for(&provider.issuer, &a)).await.status,
        200
    );
    assert_eq!(provider.jwks_hits(), 1);
}

#[tokio::test]
async fn rfc8414_metadata_is_the_fallback() {
    let provider = Provider::start().await;
    let a = rsa(signing_keys().rsa_a.private.as_str(), "a");
    provider.publish(vec![a.public.clone()]);
    provider.set_openid(None); // 404
    provider.set_oauth(Some(Canned::json(&provider.discovery())));
    let layer = provider.builder().build().unwrap();
    layer.fetch_keys().await.unwrap();
    assert_eq!(
        send(&layer, &token_for(&provider.issuer, &a)).await.status,
        200
    );
}

/// Every hostile answer is a clear error and fails closed (503 with `Retry-After`, as there are
/// no last good keys), never a panic.
#[tokio::test]
async fn hostile_documents_fail_closed() {
    let a = rsa(signing_keys().rsa_a.private.as_str(), "a");
    let enc = {
        let mut key = a.public.clone();
        key["use"] = json!("enc");
        key
    };
    let many: Vec<Value> = (0..101)
        .map(|i| {
            let mut key = a.public.clone();
            key["kid"] = json!(format!("k{i}"));
            key
        })
        .collect();
    type Setup = Box<dyn Fn(&Provider)>;
    // Each case by what its error says (the reasons are not a public type).
    type Case = (&'static str, Setup, fn(&str) -> bool);
    let cases: Vec<Case> = vec![
        (
            "wrong issuer",
            Box::new(|p: &Provider| {
                let mut doc = p.discovery();
                doc["issuer"] = json!(format!("{}/", p.issuer));
                p.set_openid(Some(Canned::json(&doc)));
            }),
            |e| e.contains("discovery document names issuer"),
        ),
        (
            "discovery not JSON",
            Box::new(|p: &Provider| p.set_openid(Some(Canned::raw(b"<html>".to_vec())))),
            |e| e.contains("malformed document"),
        ),
        (
            "no jwks_uri",
            Box::new(|p: &Provider| {
                p.set_openid(Some(Canned::json(&json!({"issuer": p.issuer}))));
            }),
            |e| e.contains("malformed document"),
        ),
        (
            "jwks_uri over plain http to another host",
            Box::new(|p: &Provider| {
                let mut doc = p.discovery();
                doc["jwks_uri"] = json!("http://keys.example.com/jwks");
                p.set_openid(Some(Canned::json(&doc)));
            }),
            |e| e.contains("refusing to fetch"),
        ),
        (
            "oversize discovery document",
            Box::new(|p: &Provider| {
                let mut doc = p.discovery();
                doc["padding"] = json!("x".repeat(300 * 1024));
                p.set_openid(Some(Canned::json(&doc)));
            }),
            |e| e.contains("answer larger than"),
        ),
        (
            "discovery answers 500",
            Box::new(|p: &Provider| p.set_openid(Some(Canned::status(500)))),
            |e| e.contains("fetch failed"),
        ),
        (
            "discovery redirects",
            Box::new(|p: &Provider| {
                p.set_openid(Some(Canned {
                    location: Some("https://elsewhere.example/".into()),
                    ..Canned::status(302)
                }));
            }),
            |e| e.contains("fetch failed"),
        ),
        (
            "slow discovery",
            Box::new(|p: &Provider| {
                p.set_openid(Some(Canned {
                    delay: Duration::from_secs(3),
                    ..Canned::json(&p.discovery())
                }));
            }),
            |e| e.contains("fetch failed") && e.contains("within"),
        ),
        (
            "JWKS not JSON",
            Box::new(|p: &Provider| p.set_jwks(Some(Canned::raw(b"{\"keys\":".to_vec())))),
            |e| e.contains("malformed document"),
        ),
        (
            "oversize JWKS",
            Box::new(|p: &Provider| p.set_jwks(Some(Canned::raw(vec![b' '; 257 * 1024])))),
            |e| e.contains("answer larger than"),
        ),
        (
            "too many keys",
            Box::new(move |p: &Provider| p.publish(many.clone())),
            |e| e.contains("JWK set has 101 keys"),
        ),
        (
            "duplicate kid",
            Box::new({
                let key = a.public.clone();
                move |p: &Provider| p.publish(vec![key.clone(), key.clone()])
            }),
            |e| e.contains(r#"two keys with kid "a""#),
        ),
        (
            "only an encryption key",
            Box::new(move |p: &Provider| p.publish(vec![enc.clone()])),
            |e| e.contains("no key usable for verification"),
        ),
        (
            "only a symmetric key",
            Box::new(|p: &Provider| {
                p.publish(vec![json!({"kty": "oct", "kid": "a", "k": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"})]);
            }),
            |e| e.contains("no key usable for verification"),
        ),
        (
            "slow JWKS",
            Box::new({
                let key = a.public.clone();
                move |p: &Provider| {
                    p.set_jwks(Some(Canned {
                        delay: Duration::from_secs(3),
                        ..Canned::json(&json!({ "keys": [key.clone()] }))
                    }));
                }
            }),
            |e| e.contains("fetch failed") && e.contains("within"),
        ),
    ];
    for (name, setup, expected) in cases {
        let provider = Provider::start().await;
        provider.publish(vec![a.public.clone()]);
        setup(&provider);
        let layer = provider.builder().build().unwrap();
        let err = layer.fetch_keys().await.unwrap_err();
        assert_eq!(err.issuer(), provider.issuer, "{name}");
        assert!(expected(&err.to_string()), "{name}: {err}");
        let answer = send(&layer, &token_for(&provider.issuer, &a)).await;
        assert_eq!(answer.status, 503, "{name}");
        assert!(
            matches!(answer.rejection, Some(JwtRejection::KeysUnavailable { .. })),
            "{name}"
        );
        let retry: u64 = answer.retry_after.expect("Retry-After").parse().unwrap();
        assert!((1..=30).contains(&retry), "{name}: {retry}");
    }
}

/// Many concurrent requests with a new `kid` share one JWK set fetch, and all succeed.
#[tokio::test]
async fn an_unknown_kid_refetches_once_for_many_concurrent_requests() {
    let provider = Provider::start().await;
    let (a, b) = (
        rsa(signing_keys().rsa_a.private.as_str(), "a"),
        rsa(signing_keys().rsa_b.private.as_str(), "b"),
    );
    provider.publish(vec![a.public.clone()]);
    let layer = provider
        .builder()
        .jwks_refetch_interval(Duration::from_secs(3))
        .build()
        .unwrap();
    layer.fetch_keys().await.unwrap();
    assert_eq!(provider.jwks_hits(), 1);
    tokio::time::sleep(Duration::from_millis(3100)).await;

    // Rotation: the provider publishes b; tokens signed with b arrive all at once.
    provider.publish(vec![a.public.clone(), b.public.clone()]);
    let token = token_for(&provider.issuer, &b);
    let requests: Vec<_> = (0..64)
        .map(|_| {
            let (layer, token) = (layer.clone(), token.clone());
            tokio::spawn(async move { send(&layer, &token).await.status })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.unwrap(), 200);
    }
    assert_eq!(provider.jwks_hits(), 2, "one shared refetch");

    // Unknown kids within the interval do not refetch (no stampede), whatever their number:
    // at most the one refetch scheduled for the end of the interval.
    let stranger = rsa(signing_keys().rsa_b.private.as_str(), "nobody");
    let (before, start) = (provider.jwks_hits(), std::time::Instant::now());
    for _ in 0..20 {
        let answer = send(&layer, &token_for(&provider.issuer, &stranger)).await;
        assert_eq!(answer.status, 401);
        assert_eq!(answer.rejection, Some(JwtRejection::UnknownKey));
    }
    // One refetch per started interval (the first may start one, the end of an interval one
    // more), however slow this machine is.
    let intervals = start.elapsed().as_secs() / 3 + 1;
    let refetches = provider.jwks_hits() - before;
    assert!(
        refetches as u64 <= intervals + 1,
        "{refetches} refetches in {intervals} intervals"
    );
}

/// A key first presented while refetches are rate limited is accepted once the interval ends
/// (without anyone restarting anything); a key the provider dropped stops verifying after the
/// refresh.
#[tokio::test]
async fn rotation_picks_up_new_kids_within_the_interval_and_drops_removed_ones() {
    let provider = Provider::start().await;
    let (a, b) = (
        rsa(signing_keys().rsa_a.private.as_str(), "a"),
        rsa(signing_keys().rsa_b.private.as_str(), "b"),
    );
    provider.publish(vec![a.public.clone()]);
    let interval = Duration::from_secs(1);
    let layer = provider
        .builder()
        .jwks_refetch_interval(interval)
        .build()
        .unwrap();
    layer.fetch_keys().await.unwrap();

    // Right after the fetch: rate limited, so b is unknown for now...
    provider.publish(vec![b.public.clone()]);
    let token_b = token_for(&provider.issuer, &b);
    let first = send(&layer, &token_b).await;
    assert_eq!(first.rejection, Some(JwtRejection::UnknownKey));
    // ...and accepted once the interval is over (a refetch was scheduled for then).
    let mut accepted = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if send(&layer, &token_b).await.status == 200 {
            accepted = true;
            break;
        }
    }
    assert!(accepted, "b never accepted");
    // a was removed from the set: it no longer verifies.
    let answer = send(&layer, &token_for(&provider.issuer, &a)).await;
    assert_eq!(answer.status, 401);
    assert_eq!(
        layer.key_ids(),
        vec![(provider.issuer.clone(), vec![Some("b".to_owned())])]
    );
}

/// Provider unreachable: the last good keys serve within the staleness bound, then 503 with
/// `Retry-After`; once it is back, a refresh restores service. A hostile answer on refresh
/// keeps the last good keys too.
#[tokio::test]
async fn last_good_keys_serve_for_a_bounded_time_then_fail_closed() {
    let provider = Provider::start().await;
    let a = rsa(signing_keys().rsa_a.private.as_str(), "a");
    provider.publish(vec![a.public.clone()]);
    let layer = provider
        .builder()
        .jwks_refetch_interval(Duration::from_millis(200))
        .jwks_max_stale(Duration::from_millis(1500))
        .build()
        .unwrap();
    layer.fetch_keys().await.unwrap();
    let token = token_for(&provider.issuer, &a);

    // A refresh (triggered by an unknown kid) meets a hostile set: the good keys stay.
    tokio::time::sleep(Duration::from_millis(300)).await;
    provider.publish(vec![a.public.clone(), a.public.clone()]);
    let stranger = rsa(signing_keys().rsa_b.private.as_str(), "nobody");
    assert_eq!(
        send(&layer, &token_for(&provider.issuer, &stranger))
            .await
            .status,
        401
    );
    assert_eq!(send(&layer, &token).await.status, 200);

    // The provider goes down. Within the bound, the keys still serve.
    provider.set_openid(Some(Canned::status(503)));
    provider.set_jwks(Some(Canned::status(503)));
    assert_eq!(send(&layer, &token).await.status, 200);
    tokio::time::sleep(Duration::from_millis(1700)).await;
    let answer = send(&layer, &token).await;
    assert_eq!(answer.status, 503);
    assert!(matches!(
        answer.rejection,
        Some(JwtRejection::KeysUnavailable { .. })
    ));
    assert!(answer.retry_after.is_some());

    // Back up: after the refetch interval, a request refreshes and is served.
    provider.set_openid(Some(Canned::json(&provider.discovery())));
    provider.publish(vec![a.public.clone()]);
    let mut served = false;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if send(&layer, &token).await.status == 200 {
            served = true;
            break;
        }
    }
    assert!(served);
}

/// The token's `alg` must agree with the published key: its `kty`, `crv` and `alg`.
#[tokio::test]
async fn the_tokens_alg_must_match_the_published_key() {
    let provider = Provider::start().await;
    let rs = rsa(signing_keys().rsa_a.private.as_str(), "rs");
    let ec = signing(
        EncodingKey::from_ec_pem(signing_keys().ec_a.private.as_bytes()).unwrap(),
        Algorithm::ES256,
        "ec",
    );
    let ed = signing(
        EncodingKey::from_ed_pem(signing_keys().ed.private.as_bytes()).unwrap(),
        Algorithm::EdDSA,
        "ed",
    );
    let ps = {
        let mut key = signing(
            EncodingKey::from_rsa_pem(signing_keys().rsa_b.private.as_bytes()).unwrap(),
            Algorithm::PS256,
            "ps",
        );
        key.public["alg"] = json!("PS256");
        key
    };
    provider.publish(vec![
        rs.public.clone(),
        ec.public.clone(),
        ed.public.clone(),
        ps.public.clone(),
    ]);
    let layer = provider.builder().build().unwrap();
    layer.fetch_keys().await.unwrap();
    let iss = provider.issuer.clone();
    for key in [&rs, &ec, &ed, &ps] {
        assert_eq!(
            send(&layer, &token_for(&iss, key)).await.status,
            200,
            "{}",
            key.kid
        );
    }
    // The right key, the wrong algorithm for it.
    for (key, alg) in [(&rs, Algorithm::PS256), (&ps, Algorithm::RS256)] {
        let answer = send(&layer, &token_with(&iss, key, alg, Some(&key.kid))).await;
        assert_eq!(answer.status, 401, "{} as {alg:?}", key.kid);
    }
    // Key confusion: HS256 "signed" with the RSA public key's JWK text.
    let confused = SigningKey {
        alg: Algorithm::HS256,
        kid: "rs".into(),
        private: EncodingKey::from_secret(rs.public.to_string().as_bytes()),
        public: Value::Null,
    };
    let answer = send(&layer, &token_for(&iss, &confused)).await;
    assert_eq!(answer.status, 401);
    assert_eq!(answer.rejection, Some(JwtRejection::AlgorithmNotAllowed));
}

#[tokio::test]
async fn cache_control_and_logs_do_not_break_a_plain_fetch() {
    let provider = Provider::start().await;
    let a = rsa(signing_keys().rsa_a.private.as_str(), "a");
    provider.set_jwks(Some(Canned {
        cache_control: Some("public, max-age=86400000".into()),
        ..Canned::json(&json!({ "keys": [a.public] }))
    }));
    let layer = provider.builder().build().unwrap();
    layer.fetch_keys().await.unwrap();
    assert_eq!(
        send(&layer, &token_for(&provider.issuer, &a)).await.status,
        200
    );
}

/// `mcp_server --issuer URL`: prints `issuer <URL> keys <kids>` before `listening on`, lists the
/// issuer in its metadata, admits the issuer's tokens (with the required scope) and binds
/// sessions to them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_trusts_an_issuer_by_url() {
    let provider = Provider::start().await;
    let (a, b) = (
        rsa(signing_keys().rsa_a.private.as_str(), "a"),
        rsa(signing_keys().rsa_b.private.as_str(), "b"),
    );
    provider.publish(vec![a.public.clone(), b.public.clone()]);
    let issuer = provider.issuer.clone();
    let server = tokio::task::spawn_blocking(move || {
        let mut command = std::process::Command::new(example_bin::example("mcp_server"));
        command
            .args(["--listen", "127.0.0.1:0", "--issuer", &issuer])
            .args(["--jwks-refresh-min", "1", "--jwks-max-stale", "60"])
            .args(["--require-scope", "mcp:tools"])
            .env_remove("MCP_JWT_SECRET")
            .env_remove("MCP_JWT_ISSUERS")
            .env("MCP_JWT_AUDIENCE", AUD)
            .env("RUST_LOG", "info");
        example_bin::Spawned::start(&mut command)
    })
    .await
    .unwrap();
    assert_eq!(
        server.banner,
        vec![format!("issuer {} keys a,b", provider.issuer)],
        "{}",
        server.stderr()
    );
    let metadata: Value = reqwest::get(format!(
        "{}/.well-known/oauth-protected-resource",
        server.base_url()
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(metadata["authorization_servers"], json!([provider.issuer]));

    let token = |key: &SigningKey, scope: &str| {
        let mut header = header(key.alg);
        header.kid = Some(key.kid.clone());
        let claims = json!({
            "iss": provider.issuer, "sub": "alice", "aud": AUD, "scope": scope,
            "exp": get_current_timestamp() + 300,
        });
        encode(&header, &claims, &key.private).unwrap()
    };
    let raw = support::Raw::at(server.url.clone());
    let session = raw.open_session(Some(&token(&a, "openid mcp:tools"))).await;
    let answer = raw.whoami(&session, Some(&token(&b, "mcp:tools")), 2).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let answer = raw
        .post(
            None,
            Some(&token(&a, "openid")),
            &support::initialize_body(),
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{answer:?}");
}

/// Each fetch of an issuer's keys, and each discovery, is counted by outcome (feature
/// `metrics`): a first fetch that loads the keys, a malformed JWK set, then the same keys again
/// (after a failure the JWK set's URL is discovered again).
#[cfg(feature = "metrics")]
#[tokio::test]
async fn key_refreshes_and_discoveries_are_counted_by_outcome() {
    let recorded = support::recorder::Recorded::default();
    let _recording = metrics::set_default_local_recorder(&recorded);
    let provider = Provider::start().await;
    let a = rsa(signing_keys().rsa_a.private.as_str(), "a");
    provider.publish(vec![a.public.clone()]);
    let layer = provider.builder().build().unwrap();
    layer.fetch_keys().await.unwrap();
    provider.set_jwks(Some(Canned::raw(b"not json".to_vec())));
    assert!(layer.fetch_keys().await.is_err());
    provider.publish(vec![a.public.clone()]);
    layer.fetch_keys().await.unwrap();
    let jwks = "mcp_session_binding_jwks_refreshes_total";
    let expected = std::collections::BTreeMap::from([
        (format!("{jwks}{{outcome=updated}}"), 1),
        (format!("{jwks}{{outcome=malformed}}"), 1),
        (format!("{jwks}{{outcome=unchanged}}"), 1),
        (
            "mcp_session_binding_oidc_discoveries_total{outcome=ok}".to_owned(),
            2,
        ),
    ]);
    assert_eq!(recorded.counts(), expected);
}
