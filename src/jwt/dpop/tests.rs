//! The DPoP checks through the layer (`oneshot`): each test fails when its check is removed.

use std::convert::Infallible;

use http::{Request, Response, StatusCode, header};
use jsonwebtoken::{EncodingKey, Header, encode, get_current_timestamp};
use serde_json::json;
use tower::{Layer, ServiceExt, service_fn};

use super::proof_tests::{EC_JKT, ED_PRIVATE_PEM, ec_key, ed_jwk, header as proof_header, sign};
use super::{DpopError, DpopPolicy, proof::token_hash};
use crate::{
    Identity,
    jwt::{Algorithm, JwtAuthLayer, JwtAuthLayerBuilder, JwtKey, JwtRejection},
};

const ISS: &str = "https://i.example";
const OTHER_ISS: &str = "https://j.example";
const SECRET: [u8; 32] = [1; 32];
const OTHER_SECRET: [u8; 32] = [2; 32];
const URL: &str = "https://mcp.example/mcp";

fn token_of(iss: &str, jkt: Option<&str>) -> String {
    let mut claims = json!({
        "iss": iss, "sub": "alice", "aud": URL, "exp": get_current_timestamp() + 300,
    });
    if let Some(jkt) = jkt {
        claims["cnf"] = json!({ "jkt": jkt });
    }
    let secret = if iss == ISS { &SECRET } else { &OTHER_SECRET };
    encode(
        &Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

fn token() -> String {
    token_of(ISS, Some(EC_JKT))
}

fn proof_for(method: &str, url: &str, token: &str, jti: &str) -> String {
    let claims = json!({
        "jti": jti, "htm": method, "htu": url, "iat": get_current_timestamp(),
        "ath": token_hash(token),
    });
    sign(proof_header(), claims, &ec_key())
}

fn proof(token: &str, jti: &str) -> String {
    proof_for("POST", URL, token, jti)
}

fn builder(policy: DpopPolicy) -> JwtAuthLayerBuilder {
    JwtAuthLayer::builder()
        .issuer_keys(ISS, JwtKey::hmac(SECRET).unwrap())
        .algorithms([Algorithm::HS256])
        .audiences([URL])
        .dpop(ISS, policy)
}

fn dpop_request(token: &str, proofs: &[&str]) -> Request<String> {
    let mut request = Request::post(URL)
        .header(header::AUTHORIZATION, format!("DPoP {token}"))
        .body(String::new())
        .unwrap();
    for proof in proofs {
        request.headers_mut().append("dpop", proof.parse().unwrap());
    }
    request
}

fn bearer_request(token: &str) -> Request<String> {
    Request::post(URL)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(String::new())
        .unwrap()
}

/// The answer, and the `jkt` the inner service saw (empty: no key; `None`: not reached).
async fn send(layer: &JwtAuthLayer, request: Request<String>) -> (Response<()>, Option<String>) {
    let service = layer.layer(service_fn(|req: Request<String>| async move {
        let jkt = req
            .extensions()
            .get::<Identity>()
            .unwrap()
            .jkt()
            .unwrap_or("");
        Ok::<_, Infallible>(Response::new(jkt.to_owned()))
    }));
    let response = service.oneshot(request).await.unwrap();
    let reached = response.extensions().get::<JwtRejection>().is_none();
    let (parts, body) = response.into_parts();
    let body = http_body_util::BodyExt::collect(body)
        .await
        .ok()
        .map(|b| String::from_utf8(b.to_bytes().to_vec()).unwrap());
    (Response::from_parts(parts, ()), body.filter(|_| reached))
}

fn rejection(response: &Response<()>) -> Option<JwtRejection> {
    response.extensions().get::<JwtRejection>().cloned()
}

fn challenges(response: &Response<()>) -> Vec<String> {
    response
        .headers()
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_valid_proof_is_admitted_and_the_identity_carries_the_key() {
    let layer = builder(DpopPolicy::Required).build().unwrap();
    let token = token();
    let (response, jkt) = send(&layer, dpop_request(&token, &[&proof(&token, "a")])).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(jkt.as_deref(), Some(EC_JKT));
}

#[tokio::test]
async fn a_replayed_proof_is_refused() {
    let layer = builder(DpopPolicy::Required).build().unwrap();
    let token = token();
    let proof = proof(&token, "once");
    let (first, _) = send(&layer, dpop_request(&token, &[&proof])).await;
    assert_eq!(first.status(), StatusCode::OK);
    let (again, reached) = send(&layer, dpop_request(&token, &[&proof])).await;
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(reached, None);
    assert_eq!(
        rejection(&again),
        Some(JwtRejection::Dpop(DpopError::Replayed))
    );
    assert_eq!(
        challenges(&again),
        [
            r#"DPoP error="invalid_dpop_proof", error_description="the DPoP proof was already used", algs="ES256 ES384 EdDSA RS256 PS256""#
        ]
    );
}

#[tokio::test]
async fn a_token_bound_to_another_key_is_refused() {
    let layer = builder(DpopPolicy::Required).build().unwrap();
    // The thief's own key signs the proof; the token is bound to the owner's.
    let token = token();
    let claims = json!({
        "jti": "t", "htm": "POST", "htu": URL, "iat": get_current_timestamp(),
        "ath": token_hash(&token),
    });
    let thief = EncodingKey::from_ed_pem(ED_PRIVATE_PEM.as_bytes()).unwrap();
    let header = json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": ed_jwk()});
    let proof = sign(header, claims, &thief);
    let (response, _) = send(&layer, dpop_request(&token, &[&proof])).await;
    assert_eq!(
        rejection(&response),
        Some(JwtRejection::Dpop(DpopError::KeyMismatch))
    );
    assert!(challenges(&response)[0].starts_with(r#"DPoP error="invalid_token""#));
    // A token with no `cnf` at all is not DPoP-bound.
    let unbound = token_of(ISS, None);
    let (response, _) = send(
        &layer,
        dpop_request(&unbound, &[&proof_for("POST", URL, &unbound, "u")]),
    )
    .await;
    assert_eq!(
        rejection(&response),
        Some(JwtRejection::Dpop(DpopError::KeyMismatch))
    );
}

#[tokio::test]
async fn the_proof_must_name_this_request_and_token() {
    let layer = builder(DpopPolicy::Required).build().unwrap();
    let token = token();
    for (proof, error) in [
        (proof_for("GET", URL, &token, "m"), DpopError::Method),
        (
            proof_for("POST", "https://mcp.example/other", &token, "u"),
            DpopError::Url,
        ),
        (
            proof_for("POST", URL, "another-token", "h"),
            DpopError::TokenHash,
        ),
    ] {
        let (response, _) = send(&layer, dpop_request(&token, &[&proof])).await;
        assert_eq!(rejection(&response), Some(JwtRejection::Dpop(error)));
    }
}

#[tokio::test]
async fn one_proof_header_exactly() {
    let layer = builder(DpopPolicy::Required).build().unwrap();
    let token = token();
    let (a, b) = (proof(&token, "a"), proof(&token, "b"));
    let (response, _) = send(&layer, dpop_request(&token, &[&a, &b])).await;
    assert_eq!(
        rejection(&response),
        Some(JwtRejection::Dpop(DpopError::Multiple))
    );
    let (response, _) = send(&layer, dpop_request(&token, &[])).await;
    assert_eq!(
        rejection(&response),
        Some(JwtRejection::Dpop(DpopError::Missing))
    );
    let huge = "a".repeat(64 * 1024);
    let (response, _) = send(&layer, dpop_request(&token, &[&huge])).await;
    assert_eq!(
        rejection(&response),
        Some(JwtRejection::Dpop(DpopError::Malformed))
    );
}

#[tokio::test]
async fn downgrades_are_refused() {
    let allowed = builder(DpopPolicy::Allowed).build().unwrap();
    let bound = token();
    // A DPoP-bound token as a bearer token.
    let (response, _) = send(&allowed, bearer_request(&bound)).await;
    assert_eq!(
        rejection(&response),
        Some(JwtRejection::Dpop(DpopError::Downgrade))
    );
    // A proof with `Authorization: Bearer`.
    let plain = token_of(ISS, None);
    let mut request = bearer_request(&plain);
    request
        .headers_mut()
        .insert("dpop", proof(&plain, "p").parse().unwrap());
    let (response, _) = send(&allowed, request).await;
    assert_eq!(
        rejection(&response),
        Some(JwtRejection::Dpop(DpopError::Downgrade))
    );
    // A plain bearer token is fine when DPoP is only allowed...
    let (response, jkt) = send(&allowed, bearer_request(&plain)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(jkt.as_deref(), Some(""));
    // ...and refused when it is required.
    let required = builder(DpopPolicy::Required).build().unwrap();
    let (response, _) = send(&required, bearer_request(&plain)).await;
    assert_eq!(
        rejection(&response),
        Some(JwtRejection::Dpop(DpopError::Required))
    );
    assert_eq!(
        challenges(&response).len(),
        1,
        "bearer is not accepted: DPoP only"
    );
}

#[tokio::test]
async fn both_challenges_when_bearer_is_accepted_too() {
    let layer = builder(DpopPolicy::Allowed).build().unwrap();
    let (response, _) = send(&layer, Request::new(String::new())).await;
    assert_eq!(
        challenges(&response),
        ["Bearer", r#"DPoP algs="ES256 ES384 EdDSA RS256 PS256""#]
    );
    // An invalid token sent with the DPoP scheme: the error is on the DPoP challenge.
    let (response, _) = send(&layer, dpop_request("not-a-jwt", &[])).await;
    let sent = challenges(&response);
    assert_eq!(sent[0], "Bearer");
    assert!(
        sent[1].starts_with(r#"DPoP error="invalid_token""#),
        "{sent:?}"
    );
    // With the Bearer scheme: on the Bearer challenge.
    let (response, _) = send(&layer, bearer_request("not-a-jwt")).await;
    let sent = challenges(&response);
    assert!(
        sent[0].starts_with(r#"Bearer error="invalid_token""#),
        "{sent:?}"
    );
    assert_eq!(sent[1], r#"DPoP algs="ES256 ES384 EdDSA RS256 PS256""#);
}

#[tokio::test]
async fn the_policy_is_per_issuer() {
    let layer = builder(DpopPolicy::Required)
        .issuer_keys(OTHER_ISS, JwtKey::hmac(OTHER_SECRET).unwrap())
        .build()
        .unwrap();
    // The other issuer is off: bearer tokens, bound or not, as without DPoP...
    let other = token_of(OTHER_ISS, Some(EC_JKT));
    let (response, _) = send(&layer, bearer_request(&other)).await;
    assert_eq!(response.status(), StatusCode::OK);
    // ...and no DPoP.
    let (response, _) = send(&layer, dpop_request(&other, &[&proof(&other, "o")])).await;
    assert_eq!(
        rejection(&response),
        Some(JwtRejection::Dpop(DpopError::NotAccepted))
    );
}

#[tokio::test]
async fn without_dpop_the_dpop_scheme_is_no_token() {
    let layer = JwtAuthLayer::builder()
        .issuer_keys(ISS, JwtKey::hmac(SECRET).unwrap())
        .algorithms([Algorithm::HS256])
        .audiences([URL])
        .build()
        .unwrap();
    let token = token();
    let (response, _) = send(&layer, dpop_request(&token, &[&proof(&token, "x")])).await;
    assert_eq!(rejection(&response), Some(JwtRejection::Missing));
    assert_eq!(challenges(&response), ["Bearer"]);
}

#[tokio::test]
async fn a_full_replay_cache_refuses_and_a_refused_proof_takes_no_room() {
    let layer = builder(DpopPolicy::Required)
        .dpop_replay_capacity(1)
        .build()
        .unwrap();
    let token = token();
    // Refused before the cache: takes no room.
    let (response, _) = send(
        &layer,
        dpop_request(&token, &[&proof_for("GET", URL, &token, "g")]),
    )
    .await;
    assert_eq!(
        rejection(&response),
        Some(JwtRejection::Dpop(DpopError::Method))
    );
    let (response, _) = send(&layer, dpop_request(&token, &[&proof(&token, "1")])).await;
    assert_eq!(response.status(), StatusCode::OK);
    let (response, _) = send(&layer, dpop_request(&token, &[&proof(&token, "2")])).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        rejection(&response),
        Some(JwtRejection::DpopReplayUnavailable)
    );
    assert_eq!(response.headers()[header::RETRY_AFTER], "1");
}

#[tokio::test]
async fn htu_is_the_request_url_or_the_configured_base() {
    let token = token();
    // Origin-form request (HTTP/1.1): scheme unknown, `Host` and path.
    let layer = builder(DpopPolicy::Required).build().unwrap();
    let mut request = dpop_request(&token, &[&proof(&token, "h")]);
    *request.uri_mut() = "/mcp?x=1".parse().unwrap();
    request
        .headers_mut()
        .insert(header::HOST, "MCP.example".parse().unwrap());
    let (response, _) = send(&layer, request).await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut request = dpop_request(&token, &[&proof(&token, "h2")]);
    *request.uri_mut() = "/mcp".parse().unwrap();
    request
        .headers_mut()
        .insert(header::HOST, "evil.example".parse().unwrap());
    let (response, _) = send(&layer, request).await;
    assert_eq!(
        rejection(&response),
        Some(JwtRejection::Dpop(DpopError::Url))
    );
    // Behind a proxy: the configured base URL, whatever the request says.
    let layer = builder(DpopPolicy::Required)
        .dpop_base_url("https://mcp.example")
        .build()
        .unwrap();
    let mut request = dpop_request(&token, &[&proof(&token, "b")]);
    *request.uri_mut() = "http://10.0.0.7:8080/mcp".parse().unwrap();
    let (response, _) = send(&layer, request).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[test]
fn settings_that_cannot_work_are_refused() {
    use crate::jwt::{JwtConfigError, ProtectedResourceMetadata};
    assert!(matches!(
        builder(DpopPolicy::Required)
            .dpop_algorithms([Algorithm::HS256])
            .build(),
        Err(JwtConfigError::InvalidDpop(_))
    ));
    assert!(matches!(
        builder(DpopPolicy::Required)
            .dpop_base_url("mcp.example")
            .build(),
        Err(JwtConfigError::InvalidDpop(_))
    ));
    assert!(matches!(
        builder(DpopPolicy::Required)
            .dpop("https://x.example", DpopPolicy::Allowed)
            .build(),
        Err(JwtConfigError::IssuerWithoutKeys(_))
    ));
    let metadata = |algs: &[Algorithm], required| {
        ProtectedResourceMetadata::new(URL, [ISS]).dpop(algs.iter().copied(), required)
    };
    let es256 = || builder(DpopPolicy::Required).dpop_algorithms([Algorithm::ES256]);
    assert!(
        es256()
            .protected_resource(&metadata(&[Algorithm::ES256], true))
            .build()
            .is_ok()
    );
    assert!(matches!(
        es256()
            .protected_resource(&metadata(&[Algorithm::ES256, Algorithm::EdDSA], true))
            .build(),
        Err(JwtConfigError::InvalidDpop(_))
    ));
    assert!(matches!(
        builder(DpopPolicy::Allowed)
            .dpop_algorithms([Algorithm::ES256])
            .protected_resource(&metadata(&[Algorithm::ES256], true))
            .build(),
        Err(JwtConfigError::InvalidDpop(_))
    ));
    assert_eq!(
        "allowed".parse::<DpopPolicy>().unwrap(),
        DpopPolicy::Allowed
    );
    assert!("on".parse::<DpopPolicy>().is_err());
}

/// With `bind_to_dpop_key`, a session created with one key is refused with another key of the
/// same user; without it (the default), the same user's other key is accepted.
#[cfg(feature = "memory")]
#[tokio::test]
async fn sessions_can_be_bound_to_the_key() {
    use crate::SessionBindingLayer;

    let thief_token = token_of(ISS, Some(super::proof_tests::ED_JKT));
    let ed_proof = |token: &str, jti: &str| {
        let claims = json!({
            "jti": jti, "htm": "POST", "htu": URL, "iat": get_current_timestamp(),
            "ath": token_hash(token),
        });
        let key = EncodingKey::from_ed_pem(ED_PRIVATE_PEM.as_bytes()).unwrap();
        sign(
            json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": ed_jwk()}),
            claims,
            &key,
        )
    };
    for (bind, second_device) in [(true, StatusCode::FORBIDDEN), (false, StatusCode::OK)] {
        let auth = builder(DpopPolicy::Required).build().unwrap();
        let binding = SessionBindingLayer::new().bind_to_dpop_key(bind);
        let service = auth.layer(binding.layer(service_fn(|req: Request<String>| async move {
            let mut response = Response::new(String::new());
            if !req.headers().contains_key("mcp-session-id") {
                response
                    .headers_mut()
                    .insert("mcp-session-id", "session-1".parse().unwrap());
            }
            Ok::<_, Infallible>(response)
        })));
        let token = token();
        let created = service
            .clone()
            .oneshot(dpop_request(&token, &[&proof(&token, "c")]))
            .await
            .unwrap();
        assert_eq!(created.status(), StatusCode::OK);
        assert_eq!(created.headers()["mcp-session-id"], "session-1");
        let with_session = |token: &str, proof: &str| {
            let mut request = dpop_request(token, &[proof]);
            request
                .headers_mut()
                .insert("mcp-session-id", "session-1".parse().unwrap());
            request
        };
        let same_key = service
            .clone()
            .oneshot(with_session(&token, &proof(&token, "d")))
            .await
            .unwrap();
        assert_eq!(same_key.status(), StatusCode::OK, "bind {bind}");
        let other_key = service
            .oneshot(with_session(&thief_token, &ed_proof(&thief_token, "e")))
            .await
            .unwrap();
        assert_eq!(other_key.status(), second_device, "bind {bind}");
    }
}
