#![cfg(feature = "jwt")]
//! Keys belong to issuers (issue 12 §1): with two trusted issuers, a token signed with one
//! issuer's key that claims the other issuer is refused with 401 `invalid_token`, for every
//! pairing of RSA, EC and HMAC keys, with and without `kid`s.

use crate::support;

use support::keys::{header, signing_keys};

use std::convert::Infallible;

use http::{Request, Response, StatusCode, header};
use jsonwebtoken::{EncodingKey, encode, get_current_timestamp};
use mcp_session_binding::{
    Identity,
    jwt::{Algorithm, JwtAuthLayer, JwtKey, JwtRejection},
};
use serde_json::json;
use tower::{Layer, ServiceExt, service_fn};

const ISS_A: &str = "https://issuer-a.example";
const ISS_B: &str = "https://issuer-b.example";
const AUD: &str = "https://mcp.example.com/mcp";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Rsa,
    Ec,
    Hmac,
}

/// One issuer's key pair: what the layer is given, and what the issuer signs with.
struct IssuerKey {
    alg: Algorithm,
    verify: JwtKey,
    sign: EncodingKey,
    kid: Option<String>,
}

/// Issuer `which` (0 = A, 1 = B) with a key of `kind`; different material for A and B.
fn issuer_key(kind: Kind, which: usize, with_kid: bool) -> IssuerKey {
    let (alg, verify, sign) = match (kind, which) {
        (Kind::Rsa, 0) => (
            Algorithm::RS256,
            JwtKey::rsa_pem(&signing_keys().rsa_a.public).unwrap(),
            EncodingKey::from_rsa_pem(signing_keys().rsa_a.private.as_bytes()).unwrap(),
        ),
        (Kind::Rsa, _) => (
            Algorithm::RS256,
            JwtKey::rsa_pem(&signing_keys().rsa_b.public).unwrap(),
            EncodingKey::from_rsa_pem(signing_keys().rsa_b.private.as_bytes()).unwrap(),
        ),
        (Kind::Ec, 0) => (
            Algorithm::ES256,
            JwtKey::ec_pem(&signing_keys().ec_a.public).unwrap(),
            EncodingKey::from_ec_pem(signing_keys().ec_a.private.as_bytes()).unwrap(),
        ),
        (Kind::Ec, _) => (
            Algorithm::ES256,
            JwtKey::ec_pem(&signing_keys().ec_b.public).unwrap(),
            EncodingKey::from_ec_pem(signing_keys().ec_b.private.as_bytes()).unwrap(),
        ),
        (Kind::Hmac, n) => {
            let secret = [b'a' + n as u8; 32];
            (
                Algorithm::HS256,
                JwtKey::hmac(secret).unwrap(),
                EncodingKey::from_secret(&secret),
            )
        }
    };
    let kid = with_kid.then(|| format!("{kind:?}-{which}").to_lowercase());
    let verify = match &kid {
        Some(kid) => verify.with_kid(kid.clone()),
        None => verify,
    };
    IssuerKey {
        alg,
        verify,
        sign,
        kid,
    }
}

fn token(key: &IssuerKey, iss: &str) -> String {
    let mut header = header(key.alg);
    header.kid = key.kid.clone();
    let claims = json!({
        "iss": iss, "sub": "alice", "aud": AUD,
        "exp": get_current_timestamp() + 300,
    });
    encode(&header, &claims, &key.sign).unwrap()
}

/// Status, `WWW-Authenticate` and rejection of `token`, through the layer around a handler that
/// answers with the caller's identity.
async fn send(layer: &JwtAuthLayer, token: &str) -> (StatusCode, String, Option<JwtRejection>) {
    let service = layer.layer(service_fn(|req: Request<String>| async move {
        let who = req.extensions().get::<Identity>().unwrap();
        Ok::<_, Infallible>(Response::new(format!("{} {}", who.iss(), who.sub())))
    }));
    let request = Request::builder()
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(String::new())
        .unwrap();
    let response = service.oneshot(request).await.unwrap();
    let challenge = response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let rejection = response.extensions().get::<JwtRejection>().cloned();
    (response.status(), challenge, rejection)
}

#[tokio::test]
async fn a_key_of_one_issuer_never_verifies_a_token_claiming_another() {
    let kinds = [Kind::Rsa, Kind::Ec, Kind::Hmac];
    let mut cases = 0;
    for kind_a in kinds {
        for kind_b in kinds {
            for with_kid in [true, false] {
                let a = issuer_key(kind_a, 0, with_kid);
                let b = issuer_key(kind_b, 1, with_kid);
                let layer = JwtAuthLayer::builder()
                    .issuer_keys(ISS_A, a.verify.clone())
                    .issuer_keys(ISS_B, b.verify.clone())
                    .algorithms([a.alg, b.alg])
                    .audiences([AUD])
                    .build()
                    .unwrap();
                let case = format!("A {kind_a:?}, B {kind_b:?}, kids {with_kid}");

                // Each issuer's own tokens work.
                for (key, iss) in [(&a, ISS_A), (&b, ISS_B)] {
                    let (status, _, _) = send(&layer, &token(key, iss)).await;
                    assert_eq!(status, StatusCode::OK, "{case}: own token of {iss}");
                }
                // The forgeries: signed by one issuer's key, claiming the other issuer.
                for (key, claimed) in [(&b, ISS_A), (&a, ISS_B)] {
                    let (status, challenge, rejection) = send(&layer, &token(key, claimed)).await;
                    assert_eq!(status, StatusCode::UNAUTHORIZED, "{case}: claims {claimed}");
                    assert!(
                        challenge.starts_with(r#"Bearer error="invalid_token""#),
                        "{case}: {challenge}"
                    );
                    assert!(
                        matches!(
                            rejection,
                            Some(
                                JwtRejection::BadSignature
                                    | JwtRejection::UnknownKey
                                    | JwtRejection::AlgorithmNotAllowed
                            )
                        ),
                        "{case}: {rejection:?}"
                    );
                    cases += 1;
                }
            }
        }
    }
    assert_eq!(cases, 3 * 3 * 2 * 2);
}

/// The example's old configuration: one HMAC secret for every trusted issuer. It is now refused
/// at build time.
#[test]
fn one_hmac_secret_cannot_serve_two_issuers() {
    let secret = [b'x'; 32];
    let err = JwtAuthLayer::builder()
        .issuer_keys(ISS_A, JwtKey::hmac(secret).unwrap())
        .issuer_keys(ISS_B, JwtKey::hmac(secret).unwrap())
        .algorithms([Algorithm::HS256])
        .audiences([AUD])
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("exactly one issuer"), "{err}");
}

/// Tokens naming an issuer that is not trusted are refused before any key is tried.
#[tokio::test]
async fn an_untrusted_issuer_gets_invalid_token() {
    let a = issuer_key(Kind::Hmac, 0, false);
    let layer = JwtAuthLayer::builder()
        .issuer_keys(ISS_A, a.verify.clone())
        .algorithms([Algorithm::HS256])
        .audiences([AUD])
        .build()
        .unwrap();
    let (status, _, rejection) = send(&layer, &token(&a, "https://evil.example")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(rejection, Some(JwtRejection::UntrustedIssuer));
}
