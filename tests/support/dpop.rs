//! DPoP proofs made in Rust for the tests that need many (replicas, Redis): a P-256 key pair,
//! HS256 access tokens bound to it (`cnf.jkt`), and proofs signed with it. The end-to-end tests
//! make theirs with real client libraries (`tests/support/oidc/dpop_client.mjs`,
//! `tests/support/python/dpop_client.py`).
#![cfg(feature = "jwt")]

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{EncodingKey, Header, encode, get_current_timestamp};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// A P-256 private key (PKCS#8).
const EC_PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgB1k2Oo+aLaOtA6+M
1xjODYBjDwbgtmtCSMYxVEdf4/yhRANCAAQvq8szfmibEAgXVVpzWex0NYueqewz
lvoyBpGWx5vZbKIpBRsS06+xXMCVRBfPyLFdWoXHQOYVGa0UJYJZCizC
-----END PRIVATE KEY-----
";

/// Its public `jwk`.
pub fn jwk() -> Value {
    json!({
        "kty": "EC", "crv": "P-256",
        "x": "L6vLM35omxAIF1Vac1nsdDWLnqnsM5b6MgaRlseb2Ww",
        "y": "oikFGxLTr7FcwJVEF8_IsV1ahcdA5hUZrRQlglkKLMI",
    })
}

/// Its RFC 7638 thumbprint.
pub const JKT: &str = "XHsdC_mUwqsMVu-cLpoyGa-mzksGjSoGj5JOEse829Y";

/// An HS256 access token for `(iss, alice)` with `aud`, bound to [`JKT`].
pub fn bound_token(secret: &[u8], iss: &str, aud: &str) -> String {
    let claims = json!({
        "iss": iss, "sub": "alice", "aud": aud, "exp": get_current_timestamp() + 300,
        "cnf": { "jkt": JKT },
    });
    encode(
        &Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

/// A fresh proof (random `jti`, `iat` now) for `method` `url` and `token`.
pub fn proof(method: &str, url: &str, token: &str) -> String {
    crafted(Crafted::Good, method, url, token)
}

/// What is wrong with a [`crafted`] proof: the attacks no client library would make.
#[derive(Clone, Copy, Debug)]
pub enum Crafted {
    /// Nothing: a valid proof.
    Good,
    /// Signed with HMAC (`HS256`), the secret in a `jwk` of type `oct`.
    Hmac,
    /// `alg: none`, no signature.
    None,
    /// The `jwk` carries the private key (`d`).
    PrivateJwk,
}

/// A proof for `method` `url` and `token`, wrong in the way `kind` says.
pub fn crafted(kind: Crafted, method: &str, url: &str, token: &str) -> String {
    let mut jti = [0u8; 16];
    getrandom::fill(&mut jti).unwrap();
    let claims = json!({
        "jti": URL_SAFE_NO_PAD.encode(jti), "htm": method, "htu": url,
        "iat": get_current_timestamp(),
        "ath": URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes())),
    });
    let mut header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk()});
    let secret = [7u8; 32];
    match kind {
        Crafted::Good => {}
        Crafted::Hmac => {
            header["alg"] = "HS256".into();
            header["jwk"] = json!({"kty": "oct", "k": URL_SAFE_NO_PAD.encode(secret)});
        }
        Crafted::None => header["alg"] = "none".into(),
        Crafted::PrivateJwk => {
            header["jwk"]["d"] = "B1k2Oo-aLaOtA6-M1xjODYBjDwbgtmtCSMYxVEdf4_w".into();
        }
    }
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = match kind {
        Crafted::None => String::new(),
        Crafted::Hmac => jsonwebtoken::crypto::sign(
            message.as_bytes(),
            &EncodingKey::from_secret(&secret),
            jsonwebtoken::Algorithm::HS256,
        )
        .unwrap(),
        Crafted::Good | Crafted::PrivateJwk => jsonwebtoken::crypto::sign(
            message.as_bytes(),
            &EncodingKey::from_ec_pem(EC_PRIVATE_PEM.as_bytes()).unwrap(),
            jsonwebtoken::Algorithm::ES256,
        )
        .unwrap(),
    };
    format!("{message}.{signature}")
}
