//! The layer with introspected issuers, against a small introspection endpoint on loopback
//! (axum) that counts its calls and can fail on demand.

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicU8, AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{Router, extract::State, http::HeaderMap, routing::post};
use http::{Request, Response, StatusCode};
use jsonwebtoken::{EncodingKey, Header, encode, get_current_timestamp};
use serde_json::json;
use tower::{Layer, ServiceExt};

use crate::{
    Identity,
    jwt::{Algorithm, Introspection, JwtAuthLayer, JwtKey, JwtRejection},
};

const AUD: &str = "https://mcp.example/mcp";

/// How the endpoint answers.
const NORMAL: u8 = 0;
const FAIL_500: u8 = 1;
const SLOW: u8 = 2;
const HUGE: u8 = 3;

#[derive(Clone, Default)]
struct Endpoint {
    calls: Arc<AtomicUsize>,
    mode: Arc<AtomicU8>,
    issuer: Arc<std::sync::OnceLock<String>>,
    /// `basic` or `post`: how the credentials must come.
    expect_post: Arc<std::sync::atomic::AtomicBool>,
}

async fn introspect(
    State(ep): State<Endpoint>,
    headers: HeaderMap,
    body: String,
) -> Response<String> {
    ep.calls.fetch_add(1, Ordering::SeqCst);
    let form: Vec<(String, String)> = body
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.replace('+', " ").replace("%3A", ":")))
        .collect();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let authorized = if ep.expect_post.load(Ordering::SeqCst) {
        field("client_id") == Some("rs")
            && field("client_secret") == Some("s%C3%A9cret")
            && !headers.contains_key("authorization")
    } else {
        // base64("rs:s%C3%A9cret")
        headers.get("authorization").and_then(|v| v.to_str().ok())
            == Some("Basic cnM6cyVDMyVBOWNyZXQ=")
    };
    if !authorized {
        return Response::builder().status(401).body(String::new()).unwrap();
    }
    match ep.mode.load(Ordering::SeqCst) {
        FAIL_500 => return Response::builder().status(500).body(String::new()).unwrap(),
        SLOW => tokio::time::sleep(Duration::from_secs(30)).await,
        HUGE => {
            return Response::new(format!(
                "{{\"active\":true,\"x\":\"{}\"}}",
                "a".repeat(10 << 20)
            ));
        }
        _ => {}
    }
    let iss = ep.issuer.get().unwrap().clone();
    let exp = get_current_timestamp() + 300;
    let answer = match field("token").unwrap_or_default() {
        "alice-token" => {
            json!({"active": true, "iss": iss, "sub": "alice", "aud": AUD, "exp": exp, "scope": "mcp", "jti": "j-alice"})
        }
        "bob-token" => {
            json!({"active": true, "sub": "bob", "aud": [AUD], "exp": exp, "scope": "mcp"})
        }
        "client-token" => {
            json!({"active": true, "client_id": "c1", "aud": AUD, "exp": exp, "scope": "mcp"})
        }
        "other-aud" => json!({"active": true, "sub": "alice", "aud": "https://other/", "exp": exp}),
        "other-iss" => {
            json!({"active": true, "iss": "https://evil.example", "sub": "alice", "aud": AUD, "exp": exp})
        }
        "no-scope" => {
            json!({"active": true, "sub": "alice", "aud": AUD, "exp": exp, "scope": "other"})
        }
        "garbage" => return Response::new("<html>".to_owned()),
        _ => json!({"active": false}),
    };
    Response::new(answer.to_string())
}

async fn start_endpoint() -> (Endpoint, String) {
    let ep = Endpoint::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    ep.issuer.set(url.clone()).unwrap();
    let app = Router::new()
        .route("/introspect", post(introspect))
        .with_state(ep.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (ep, url)
}

fn settings(url: &str) -> Introspection {
    Introspection::new("rs", "s\u{e9}cret")
        .endpoint(format!("{url}/introspect"))
        .timeout(Duration::from_millis(500))
}

type Svc = crate::jwt::JwtAuth<
    tower::util::BoxCloneService<Request<String>, Response<String>, Infallible>,
>;

fn service(layer: &JwtAuthLayer, forwarded: Arc<AtomicUsize>) -> Svc {
    let inner = tower::service_fn(move |req: Request<String>| {
        let forwarded = forwarded.clone();
        async move {
            forwarded.fetch_add(1, Ordering::SeqCst);
            let who = req.extensions().get::<Identity>().unwrap();
            Ok::<_, Infallible>(Response::new(format!("{}|{}", who.iss(), who.sub())))
        }
    });
    layer.layer(tower::util::BoxCloneService::new(inner))
}

async fn send(service: Svc, token: &str) -> (StatusCode, Option<JwtRejection>, String) {
    let request = Request::builder()
        .header("authorization", format!("Bearer {token}"))
        .body(String::new())
        .unwrap();
    let response = service.oneshot(request).await.unwrap();
    let status = response.status();
    let rejection = response.extensions().get::<JwtRejection>().cloned();
    let retry = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, rejection, retry)
}

#[tokio::test]
async fn answers_decide_and_are_cached() {
    let (ep, url) = start_endpoint().await;
    let layer = JwtAuthLayer::builder()
        .issuer_introspection(&url, settings(&url).subject_fallback("client_id"))
        .audiences([AUD])
        .required_scopes(["mcp"])
        .build()
        .unwrap();
    let forwarded = Arc::new(AtomicUsize::new(0));
    let svc = service(&layer, forwarded.clone());
    assert_eq!(send(svc.clone(), "alice-token").await.0, StatusCode::OK);
    assert_eq!(send(svc.clone(), "bob-token").await.0, StatusCode::OK);
    assert_eq!(send(svc.clone(), "client-token").await.0, StatusCode::OK);
    for (token, status, rejection) in [
        ("unknown", StatusCode::UNAUTHORIZED, JwtRejection::Inactive),
        ("garbage", StatusCode::UNAUTHORIZED, JwtRejection::Inactive),
        (
            "other-aud",
            StatusCode::UNAUTHORIZED,
            JwtRejection::BadAudience,
        ),
        (
            "other-iss",
            StatusCode::UNAUTHORIZED,
            JwtRejection::UntrustedIssuer,
        ),
        (
            "no-scope",
            StatusCode::FORBIDDEN,
            JwtRejection::InsufficientScope,
        ),
    ] {
        let (got, why, _) = send(svc.clone(), token).await;
        assert_eq!((got, why), (status, Some(rejection)), "{token}");
    }
    assert_eq!(forwarded.load(Ordering::SeqCst), 3);
    let calls = ep.calls.load(Ordering::SeqCst);
    assert_eq!(calls, 8);
    // Every answer, active or not, is served from the cache the second time.
    for token in [
        "alice-token",
        "bob-token",
        "client-token",
        "unknown",
        "garbage",
        "other-aud",
    ] {
        send(svc.clone(), token).await;
    }
    assert_eq!(ep.calls.load(Ordering::SeqCst), calls);
}

#[tokio::test]
async fn the_identity_is_the_answers_and_the_fallback_is_prefixed() {
    let (_ep, url) = start_endpoint().await;
    let layer = JwtAuthLayer::builder()
        .issuer_introspection(&url, settings(&url).subject_fallback("client_id"))
        .audiences([AUD])
        .build()
        .unwrap();
    let inner = tower::service_fn(|req: Request<String>| async move {
        let who = req.extensions().get::<Identity>().unwrap();
        Ok::<_, Infallible>(Response::new(who.sub().to_owned()))
    });
    let svc = layer.layer(inner);
    for (token, sub) in [("alice-token", "alice"), ("client-token", "client_id:c1")] {
        let request = Request::builder()
            .header("authorization", format!("Bearer {token}"))
            .body(String::new())
            .unwrap();
        let response = svc.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        use http_body_util::BodyExt;
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, sub.as_bytes());
    }
    // Without the fallback, a token without `sub` is refused.
    let layer = JwtAuthLayer::builder()
        .issuer_introspection(&url, settings(&url))
        .audiences([AUD])
        .build()
        .unwrap();
    let (status, why, _) = send(service(&layer, Arc::default()), "client-token").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(why.unwrap().code(), "invalid_claims");
}

#[tokio::test]
async fn client_secret_post_sends_the_credentials_in_the_form() {
    let (ep, url) = start_endpoint().await;
    ep.expect_post.store(true, Ordering::SeqCst);
    let basic = JwtAuthLayer::builder()
        .issuer_introspection(&url, settings(&url))
        .audiences([AUD])
        .build()
        .unwrap();
    // The endpoint refuses Basic now: fail closed.
    assert_eq!(
        send(service(&basic, Arc::default()), "alice-token").await.1,
        Some(JwtRejection::IntrospectionUnavailable)
    );
    let post = JwtAuthLayer::builder()
        .issuer_introspection(&url, settings(&url).client_secret_post())
        .audiences([AUD])
        .build()
        .unwrap();
    assert_eq!(
        send(service(&post, Arc::default()), "alice-token").await.0,
        StatusCode::OK
    );
}

/// A hundred concurrent requests with one new token make one call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_call_per_new_token_however_many_wait() {
    let (ep, url) = start_endpoint().await;
    let layer = JwtAuthLayer::builder()
        .issuer_introspection(&url, settings(&url))
        .audiences([AUD])
        .build()
        .unwrap();
    let svc = service(&layer, Arc::default());
    let requests: Vec<_> = (0..100)
        .map(|_| {
            let svc = svc.clone();
            tokio::spawn(async move { send(svc.clone(), "alice-token").await.0 })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(ep.calls.load(Ordering::SeqCst), 1);
    // The same for an inactive token.
    let requests: Vec<_> = (0..100)
        .map(|_| {
            let svc = svc.clone();
            tokio::spawn(async move { send(svc.clone(), "junk").await.0 })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.unwrap(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(ep.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn provider_failures_fail_closed_with_retry_after_and_nothing_forwarded() {
    let (ep, url) = start_endpoint().await;
    let layer = JwtAuthLayer::builder()
        .issuer_introspection(&url, settings(&url).timeout(Duration::from_millis(300)))
        .audiences([AUD])
        .retry_after(Duration::from_secs(3))
        .build()
        .unwrap();
    let forwarded = Arc::new(AtomicUsize::new(0));
    let svc = service(&layer, forwarded.clone());
    for (mode, token) in [(FAIL_500, "t1"), (SLOW, "t2"), (HUGE, "t3")] {
        ep.mode.store(mode, Ordering::SeqCst);
        let started = std::time::Instant::now();
        let (status, why, retry) = send(svc.clone(), token).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "mode {mode}");
        assert_eq!(why, Some(JwtRejection::IntrospectionUnavailable));
        assert_eq!(retry, "3");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "bounded in time"
        );
    }
    // Down: nothing listens.
    let down = JwtAuthLayer::builder()
        .issuer_introspection("http://127.0.0.1:9", settings("http://127.0.0.1:9"))
        .audiences([AUD])
        .build()
        .unwrap();
    let (status, ..) = send(service(&down, forwarded.clone()), "t4").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    // Failures are not cached: the endpoint back, the token is asked about again.
    ep.mode.store(NORMAL, Ordering::SeqCst);
    assert_eq!(send(svc.clone(), "alice-token").await.0, StatusCode::OK);
    assert_eq!(forwarded.load(Ordering::SeqCst), 1);
}

/// During an outage a cached active answer serves until its own cache deadline, never longer.
#[tokio::test]
async fn a_cached_answer_outlives_an_outage_only_up_to_its_deadline() {
    let (ep, url) = start_endpoint().await;
    let layer = JwtAuthLayer::builder()
        .issuer_introspection(&url, settings(&url).cache_max(Duration::from_secs(1)))
        .audiences([AUD])
        .build()
        .unwrap();
    let svc = service(&layer, Arc::default());
    assert_eq!(send(svc.clone(), "alice-token").await.0, StatusCode::OK);
    ep.mode.store(FAIL_500, Ordering::SeqCst);
    assert_eq!(
        send(svc.clone(), "alice-token").await.0,
        StatusCode::OK,
        "cached"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        send(svc.clone(), "alice-token").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(ep.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn the_concurrency_bound_refuses_the_call_over_it() {
    let (ep, url) = start_endpoint().await;
    ep.mode.store(SLOW, Ordering::SeqCst);
    let layer = JwtAuthLayer::builder()
        .issuer_introspection(&url, settings(&url).max_concurrency(1))
        .audiences([AUD])
        .build()
        .unwrap();
    let svc = service(&layer, Arc::default());
    let first = tokio::spawn({
        let svc = svc.clone();
        async move { send(svc.clone(), "a").await.1 }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    assert_eq!(
        send(svc.clone(), "b").await.1,
        Some(JwtRejection::IntrospectionUnavailable)
    );
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "refused at once"
    );
    assert_eq!(
        first.await.unwrap(),
        Some(JwtRejection::IntrospectionUnavailable)
    );
    assert_eq!(ep.calls.load(Ordering::SeqCst), 1);
}

/// One server, both kinds of issuer: a JWT of the JWT issuer is verified locally (no call), an
/// opaque token is introspected, a JWT of an unknown issuer is never sent out.
#[tokio::test]
async fn mixed_trust() {
    let (ep, url) = start_endpoint().await;
    let secret = [9u8; 32];
    let layer = JwtAuthLayer::builder()
        .issuer_keys("https://jwt.example", JwtKey::hmac(secret).unwrap())
        .algorithms([Algorithm::HS256])
        .issuer_introspection(&url, settings(&url))
        .audiences([AUD])
        .build()
        .unwrap();
    let svc = service(&layer, Arc::default());
    let jwt = |iss: &str| {
        encode(
            &Header::new(jsonwebtoken::Algorithm::HS256),
            &json!({"iss": iss, "sub": "carol", "aud": AUD, "exp": get_current_timestamp() + 60}),
            &EncodingKey::from_secret(&secret),
        )
        .unwrap()
    };
    assert_eq!(
        send(svc.clone(), &jwt("https://jwt.example")).await.0,
        StatusCode::OK
    );
    assert_eq!(ep.calls.load(Ordering::SeqCst), 0);
    assert_eq!(send(svc.clone(), "alice-token").await.0, StatusCode::OK);
    assert_eq!(ep.calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        send(svc.clone(), &jwt("https://unknown.example")).await.1,
        Some(JwtRejection::UntrustedIssuer)
    );
    // A JWT naming the introspected issuer goes to its endpoint (which knows it not).
    assert_eq!(
        send(svc.clone(), &jwt(&url)).await.1,
        Some(JwtRejection::Inactive)
    );
    assert_eq!(ep.calls.load(Ordering::SeqCst), 2);
}

#[test]
fn builder_rules() {
    let build = |issuer: &str, intro: Introspection| {
        JwtAuthLayer::builder()
            .issuer_introspection(issuer, intro)
            .audiences([AUD])
            .build()
    };
    assert!(build("https://as.example", Introspection::new("a", "b")).is_ok());
    assert!(matches!(
        build("http://as.example", Introspection::new("a", "b")),
        Err(crate::jwt::JwtConfigError::InsecureIssuer(_))
    ));
    assert!(matches!(
        build(
            "https://as.example",
            Introspection::new("a", "b").endpoint("http://x.example/i")
        ),
        Err(crate::jwt::JwtConfigError::InsecureIssuer(_))
    ));
    assert!(matches!(
        JwtAuthLayer::builder()
            .issuer_introspection("https://as.example", Introspection::new("a", "b"))
            .issuer_keys("https://as.example", JwtKey::hmac([1u8; 32]).unwrap())
            .algorithms([Algorithm::HS256])
            .audiences([AUD])
            .build(),
        Err(crate::jwt::JwtConfigError::ConflictingKeySources(_))
    ));
    // A metadata document may list an introspected issuer.
    let metadata = crate::jwt::ProtectedResourceMetadata::new(AUD, ["https://as.example"]);
    assert!(
        JwtAuthLayer::builder()
            .issuer_introspection("https://as.example", Introspection::new("a", "b"))
            .protected_resource(&metadata)
            .build()
            .is_ok()
    );
}

/// The revocation check sees the answer's `jti`, as it sees a JWT's; a check that fails is 503.
#[tokio::test]
async fn the_revocation_check_applies_to_introspected_tokens() {
    let (_ep, url) = start_endpoint().await;
    let layer = |fail: bool| {
        JwtAuthLayer::builder()
            .issuer_introspection(&url, settings(&url))
            .audiences([AUD])
            .revocation(move |jti: String| async move {
                if fail {
                    Err("deny list down")
                } else {
                    Ok(jti == "j-alice")
                }
            })
            .build()
            .unwrap()
    };
    let svc = service(&layer(false), Arc::default());
    assert_eq!(
        send(svc.clone(), "alice-token").await.1,
        Some(JwtRejection::Revoked)
    );
    // bob's answer has no `jti`: it could never be revoked, so it is refused.
    assert_eq!(
        send(svc, "bob-token").await.1.map(|r| r.code()),
        Some("invalid_claims")
    );
    let (status, why, _) = send(service(&layer(true), Arc::default()), "alice-token").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(why, Some(JwtRejection::RevocationUnavailable));
}
