//! Signing keys for the JWT tests, made fresh by `openssl genpkey` once per test binary, so the
//! repository and the published package carry no private key.
//!
//! Reached as `support::keys`.
#![allow(dead_code)]

use std::{process::Command, sync::OnceLock};

/// A key pair as PEM text (PKCS#8 private key, SPKI public key).
#[derive(Debug, Clone)]
pub struct Pem {
    pub private: String,
    pub public: String,
}

/// The test keys: two RSA 2048 keys, two EC P-256 keys and one Ed25519 key, all different.
#[derive(Debug)]
pub struct Keys {
    pub rsa_a: Pem,
    pub rsa_b: Pem,
    pub ec_a: Pem,
    pub ec_b: Pem,
    pub ed: Pem,
}

/// The keys of this test binary, generated on first use.
pub fn signing_keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let rsa = ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"];
        let ec = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"];
        Keys {
            rsa_a: generate(&rsa),
            rsa_b: generate(&rsa),
            ec_a: generate(&ec),
            ec_b: generate(&ec),
            ed: generate(&["-algorithm", "ED25519"]),
        }
    })
}

fn generate(algorithm: &[&str]) -> Pem {
    let private = openssl(Command::new("openssl").arg("genpkey").args(algorithm), None);
    let public = openssl(
        Command::new("openssl").args(["pkey", "-pubout"]),
        Some(&private),
    );
    Pem { private, public }
}

/// Runs an openssl command, feeding `input` on stdin, and returns its stdout.
fn openssl(command: &mut Command, input: Option<&str>) -> String {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the JWT tests need the `openssl` command (Debian package `openssl`)");
    let mut stdin = child.stdin.take().expect("piped stdin");
    if let Some(input) = input {
        stdin.write_all(input.as_bytes()).expect("write to openssl");
    }
    drop(stdin);
    let output = child.wait_with_output().expect("openssl runs");
    assert!(
        output.status.success(),
        "openssl failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("PEM is ASCII")
}

/// An HS256 token signed with `secret` for `(iss, sub)` and `aud`, valid 5 minutes, with a
/// `jti` unique in this process.
#[cfg(feature = "jwt")]
pub fn hs256_token(secret: &str, iss: &str, sub: &str, aud: &str) -> String {
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode, get_current_timestamp};
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let jti = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let now = get_current_timestamp();
    let claims = serde_json::json!({
        "iss": iss, "sub": sub, "aud": aud, "iat": now, "exp": now + 300,
        "jti": format!("t-{jti}"),
    });
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// A JWT header for `alg`, the crate's algorithm in the signing library's terms.
#[cfg(feature = "jwt")]
pub fn header(alg: mcp_session_binding::jwt::Algorithm) -> jsonwebtoken::Header {
    jsonwebtoken::Header::new(alg.as_str().parse().expect("the same algorithm names"))
}
