//! Checking one DPoP proof (RFC 9449 §4.3): a pure function of the header value, the request's
//! method and URL, the access token, the time and the allowed algorithms.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::DecodingKey;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::DpopError;
use crate::jwt::{Algorithm, KeyFamily};

/// Longest proof accepted, in bytes: an RSA-4096 `jwk` makes a proof of about 1.5 KiB.
pub(crate) const MAX_PROOF_LEN: usize = 8 * 1024;
/// Longest `jti` accepted, in bytes (RFC 9449 asks for 96 bits of randomness; 22 bytes).
const MAX_JTI_LEN: usize = 256;
/// Least RSA modulus accepted, in bytes (2048 bits).
const MIN_RSA_MODULUS_BYTES: usize = 256;
/// Largest RSA modulus accepted, in bytes (4096 bits): a verification's cost grows with it.
const MAX_RSA_MODULUS_BYTES: usize = 512;
/// Largest RSA public exponent accepted, in bytes (65537 is 3).
const MAX_RSA_EXPONENT_BYTES: usize = 4;
/// JWK members that only a private key has (RFC 7518 §6.2.2, §6.3.2; RFC 8037 §2; `k` of `oct`).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// What the check of a proof needs besides the proof itself.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Expected<'a> {
    /// The request method, as sent (`POST`, `GET`, …).
    pub(crate) method: &'a str,
    /// The request URL, without query or fragment, normalised with [`normalize_url`]; or, when
    /// the scheme is unknown (no external base URL configured and an origin-form request), the
    /// `http` form, with [`Expected::any_scheme`] set.
    pub(crate) url: &'a str,
    /// Whether `https` is accepted in place of the `http` of [`Expected::url`].
    pub(crate) any_scheme: bool,
    /// The access token sent in `Authorization: DPoP`.
    pub(crate) token: &'a str,
    /// Now, in seconds since the Unix epoch.
    pub(crate) now: u64,
    /// How far `iat` may be from `now`, either way, in seconds.
    pub(crate) window: u64,
    /// The algorithms a proof may be signed with (asymmetric only).
    pub(crate) algorithms: &'a [Algorithm],
}

/// A proof that passed every check of its own; the replay and key-binding checks come after.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Proof {
    /// The RFC 7638 SHA-256 thumbprint of the proof's `jwk`, base64url.
    pub(crate) jkt: String,
    /// The replay-cache key: SHA-256 of the thumbprint and the `jti`, truncated to 16 bytes.
    pub(crate) replay_key: [u8; 16],
    /// The proof's `iat`.
    pub(crate) iat: u64,
}

/// Checks one proof against the request it came with: the JWS shape, `typ`, `alg`, `jwk`, the
/// signature, `htm`, `htu`, `iat`, `jti` (present, bounded) and `ath`. Neither the replay cache
/// nor the token's `cnf.jkt` is consulted here.
pub(crate) fn check_proof(proof: &[u8], expected: &Expected<'_>) -> Result<Proof, DpopError> {
    if proof.len() > MAX_PROOF_LEN {
        return Err(DpopError::Malformed);
    }
    let proof = std::str::from_utf8(proof).map_err(|_| DpopError::Malformed)?;
    let mut parts = proof.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(DpopError::Malformed);
    };
    let header = json_object(header_b64)?;
    // `typ` first (RFC 9449 §4.3 step 4): a JWT of another kind is not a proof at all.
    match header.get("typ") {
        Some(Value::String(typ)) if typ.eq_ignore_ascii_case("dpop+jwt") => {}
        _ => return Err(DpopError::Type),
    }
    let Some(Value::String(alg)) = header.get("alg") else {
        return Err(DpopError::Malformed);
    };
    let alg: Algorithm = alg.parse().map_err(|_| DpopError::Algorithm)?;
    if alg.family() == KeyFamily::Hmac || !expected.algorithms.contains(&alg) {
        return Err(DpopError::Algorithm);
    }
    if header.contains_key("crit") {
        return Err(DpopError::Malformed);
    }
    let Some(Value::Object(jwk)) = header.get("jwk") else {
        return Err(DpopError::Key);
    };
    let (key, jkt) = public_key(jwk, alg)?;
    let message_len = header_b64.len() + 1 + payload_b64.len();
    let verified = jsonwebtoken::crypto::verify(
        signature,
        &proof.as_bytes()[..message_len],
        &key,
        alg.to_jsonwebtoken(),
    )
    .unwrap_or(false);
    if !verified {
        return Err(DpopError::Signature);
    }

    let claims = json_object(payload_b64)?;
    let string = |name: &str| match claims.get(name) {
        Some(Value::String(value)) => Ok(value.as_str()),
        _ => Err(DpopError::Malformed),
    };
    let jti = string("jti")?;
    if jti.is_empty() || jti.len() > MAX_JTI_LEN {
        return Err(DpopError::Malformed);
    }
    if string("htm")? != expected.method {
        return Err(DpopError::Method);
    }
    if !url_matches(string("htu")?, expected) {
        return Err(DpopError::Url);
    }
    let iat = match claims.get("iat") {
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
            .ok_or(DpopError::Malformed)?,
        _ => return Err(DpopError::Malformed),
    };
    if iat.abs_diff(expected.now) > expected.window {
        return Err(DpopError::Time);
    }
    let ath = string("ath").map_err(|_| DpopError::TokenHash)?;
    if ath.as_bytes() != token_hash(expected.token).as_bytes() {
        return Err(DpopError::TokenHash);
    }
    Ok(Proof {
        replay_key: replay_key(&jkt, jti),
        jkt,
        iat,
    })
}

/// The base64url SHA-256 of the access token: what `ath` must be (RFC 9449 §4.2).
pub(crate) fn token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

fn replay_key(jkt: &str, jti: &str) -> [u8; 16] {
    let mut hasher = Sha256::new();
    hasher.update(jkt.as_bytes());
    hasher.update(b".");
    hasher.update(jti.as_bytes());
    let digest = hasher.finalize();
    let mut key = [0; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

fn json_object(part: &str) -> Result<Map<String, Value>, DpopError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .ok()
        .and_then(|json| serde_json::from_slice(&json).ok())
        .ok_or(DpopError::Malformed)
}

/// The verification key of a public `jwk` that fits `alg`, and its RFC 7638 thumbprint.
fn public_key(
    jwk: &Map<String, Value>,
    alg: Algorithm,
) -> Result<(DecodingKey, String), DpopError> {
    if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
        return Err(DpopError::Key);
    }
    let member = |name: &str| match jwk.get(name) {
        Some(Value::String(value)) if !value.is_empty() => Ok(value.as_str()),
        _ => Err(DpopError::Key),
    };
    let decoded_len = |value: &str| {
        URL_SAFE_NO_PAD
            .decode(value)
            .map(|bytes| bytes.len())
            .map_err(|_| DpopError::Key)
    };
    // The required members, in lexicographic order (RFC 7638 §3.2).
    let (key, canonical) = match (member("kty")?, alg.family()) {
        ("EC", KeyFamily::Ec) => {
            let (crv, x, y) = (member("crv")?, member("x")?, member("y")?);
            let (want, len) = match alg {
                Algorithm::ES256 => ("P-256", 32),
                _ => ("P-384", 48),
            };
            if crv != want || decoded_len(x)? != len || decoded_len(y)? != len {
                return Err(DpopError::Key);
            }
            let key = DecodingKey::from_ec_components(x, y).map_err(|_| DpopError::Key)?;
            (
                key,
                [("crv", crv), ("kty", "EC"), ("x", x), ("y", y)].to_vec(),
            )
        }
        ("OKP", KeyFamily::Ed) => {
            let (crv, x) = (member("crv")?, member("x")?);
            if crv != "Ed25519" || decoded_len(x)? != 32 {
                return Err(DpopError::Key);
            }
            let key = DecodingKey::from_ed_components(x).map_err(|_| DpopError::Key)?;
            (key, [("crv", crv), ("kty", "OKP"), ("x", x)].to_vec())
        }
        ("RSA", KeyFamily::Rsa) => {
            let (e, n) = (member("e")?, member("n")?);
            let modulus = decoded_len(n)?;
            if !(MIN_RSA_MODULUS_BYTES..=MAX_RSA_MODULUS_BYTES).contains(&modulus)
                || decoded_len(e)? > MAX_RSA_EXPONENT_BYTES
            {
                return Err(DpopError::Key);
            }
            let key = DecodingKey::from_rsa_components(n, e).map_err(|_| DpopError::Key)?;
            (key, [("e", e), ("kty", "RSA"), ("n", n)].to_vec())
        }
        ("EC" | "OKP" | "RSA", _) => return Err(DpopError::Algorithm),
        _ => return Err(DpopError::Key),
    };
    Ok((key, thumbprint(&canonical)))
}

/// RFC 7638: base64url SHA-256 of the required members as compact JSON, in this order.
fn thumbprint(members: &[(&str, &str)]) -> String {
    let mut json = String::with_capacity(160);
    json.push('{');
    for (i, (name, value)) in members.iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        // Names are fixed ASCII; values are escaped as JSON strings.
        json.push('"');
        json.push_str(name);
        json.push_str("\":");
        json.push_str(&Value::from(*value).to_string());
    }
    json.push('}');
    URL_SAFE_NO_PAD.encode(Sha256::digest(json.as_bytes()))
}

/// Whether the proof's `htu` names the request's URL (RFC 9449 §4.3 step 9): query and fragment
/// ignored, scheme and host case-insensitive, default port and empty path normalised
/// (RFC 3986 §6.2.2, §6.2.3).
fn url_matches(htu: &str, expected: &Expected<'_>) -> bool {
    let Some(htu) = normalize_url(htu) else {
        return false;
    };
    if htu == expected.url {
        return true;
    }
    expected.any_scheme
        && htu
            .strip_prefix("https://")
            .zip(expected.url.strip_prefix("http://"))
            .is_some_and(|(a, b)| {
                // The default port of each scheme was removed: an explicit port must agree.
                a == b
            })
}

/// `scheme://host[:port]/path`, lower-case scheme and host, without a default port, query or
/// fragment, `/` for an empty path, percent-encodings in upper case with unreserved characters
/// decoded. `None` for anything that is not an absolute `http(s)` URL.
pub(crate) fn normalize_url(url: &str) -> Option<String> {
    let url = url.split(['#', '?']).next().unwrap_or_default();
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => ":80",
        "https" => ":443",
        _ => return None,
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let mut authority = authority.to_ascii_lowercase();
    if authority.ends_with(default_port) {
        authority.truncate(authority.len() - default_port.len());
    }
    let mut out = String::with_capacity(url.len() + 1);
    out.push_str(&scheme);
    out.push_str("://");
    out.push_str(&authority);
    if path.is_empty() {
        out.push('/');
    }
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        if byte == b'%' {
            let hex = path.get(i + 1..i + 3)?;
            let value = u8::from_str_radix(hex, 16).ok()?;
            if value.is_ascii_alphanumeric() || b"-._~".contains(&value) {
                out.push(char::from(value));
            } else {
                out.push('%');
                out.push_str(&hex.to_ascii_uppercase());
            }
            i += 3;
        } else {
            out.push(char::from(byte));
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use jsonwebtoken::EncodingKey;

    /// A P-256 key pair (PKCS#8 private key, and its public `jwk`).
    pub(crate) const EC_PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgB1k2Oo+aLaOtA6+M
1xjODYBjDwbgtmtCSMYxVEdf4/yhRANCAAQvq8szfmibEAgXVVpzWex0NYueqewz
lvoyBpGWx5vZbKIpBRsS06+xXMCVRBfPyLFdWoXHQOYVGa0UJYJZCizC
-----END PRIVATE KEY-----
";
    /// Another P-256 key.
    const OTHER_EC_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgzNriJeSR+2llzlyK
Qbn5pMu5ij26sEqSxYbI/YycWguhRANCAAToOSNT9fXEgfCS1rJtzpPFwnMHSx88
A0ZosWou8ZgeoEQPpUkApc45YdBCFu1DEy/3QdCm+Tlm5hQBAYSegXeQ
-----END PRIVATE KEY-----
";
    pub(crate) fn ec_jwk() -> Value {
        serde_json::json!({
            "kty": "EC", "crv": "P-256",
            "x": "L6vLM35omxAIF1Vac1nsdDWLnqnsM5b6MgaRlseb2Ww",
            "y": "oikFGxLTr7FcwJVEF8_IsV1ahcdA5hUZrRQlglkKLMI",
        })
    }
    /// An Ed25519 key pair (PKCS#8 private key, and its public `jwk`).
    pub(crate) const ED_PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIMT58eMPWG8vy5BVUlITqtGddqrYVO/WtwPDAdXY1oOR
-----END PRIVATE KEY-----
";
    pub(crate) fn ed_jwk() -> Value {
        serde_json::json!({
            "kty": "OKP", "crv": "Ed25519", "x": "XWquZju-cwt0NvFw4jnBVSSPxSX4xGIV5HAkkVyZIkY",
        })
    }

    /// The RFC 7638 thumbprint of [`ec_jwk`].
    /// The RFC 7638 thumbprint of [`ed_jwk`].
    pub(crate) const ED_JKT: &str = "2qKahdPxl_btp4I4kEUEV0n_RRYrh9UvrR1fdpFtyeI";
    pub(crate) const EC_JKT: &str = "XHsdC_mUwqsMVu-cLpoyGa-mzksGjSoGj5JOEse829Y";
    pub(crate) const URL: &str = "https://mcp.example/mcp";
    pub(crate) const TOKEN: &str = "eyJhbGciOiJFUzI1NiJ9.e30.c2ln";
    pub(crate) const NOW: u64 = 1_700_000_000;

    /// A proof signed with `key` over this header and these claims.
    pub(crate) fn sign(header: Value, claims: Value, key: &EncodingKey) -> String {
        let alg: jsonwebtoken::Algorithm = header["alg"]
            .as_str()
            .and_then(|a| a.parse().ok())
            .unwrap_or(jsonwebtoken::Algorithm::ES256);
        sign_as(header, claims, key, alg)
    }

    /// A proof signed with `alg`, whatever the header says.
    fn sign_as(
        header: Value,
        claims: Value,
        key: &EncodingKey,
        alg: jsonwebtoken::Algorithm,
    ) -> String {
        let header_b64 = URL_SAFE_NO_PAD.encode(header.to_string());
        let claims_b64 = URL_SAFE_NO_PAD.encode(claims.to_string());
        let message = format!("{header_b64}.{claims_b64}");
        let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).unwrap();
        format!("{message}.{signature}")
    }

    pub(crate) fn ec_key() -> EncodingKey {
        EncodingKey::from_ec_pem(EC_PRIVATE_PEM.as_bytes()).unwrap()
    }

    pub(crate) fn header() -> Value {
        serde_json::json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": ec_jwk()})
    }

    pub(crate) fn claims() -> Value {
        serde_json::json!({
            "jti": "e1j3V_bKic8-LAEB", "htm": "POST", "htu": URL, "iat": NOW,
            "ath": token_hash(TOKEN),
        })
    }

    fn expected() -> Expected<'static> {
        Expected {
            method: "POST",
            url: URL,
            any_scheme: false,
            token: TOKEN,
            now: NOW,
            window: 300,
            algorithms: &[Algorithm::ES256, Algorithm::EdDSA, Algorithm::PS256],
        }
    }

    /// A PS256 header with this RSA `jwk` (the proof is signed with ES256: the key is refused
    /// before the signature is checked).
    fn rsa_header(n: &str, e: &str) -> Value {
        serde_json::json!({"typ": "dpop+jwt", "alg": "PS256", "jwk": {"kty": "RSA", "n": n, "e": e}})
    }

    fn check(proof: &str) -> Result<Proof, DpopError> {
        check_proof(proof.as_bytes(), &expected())
    }

    fn with(mut value: Value, name: &str, member: Value) -> Value {
        if member.is_null() {
            value.as_object_mut().unwrap().remove(name);
        } else {
            value[name] = member;
        }
        value
    }

    #[test]
    fn a_good_proof_passes_with_its_thumbprint() {
        let proof = check(&sign(header(), claims(), &ec_key())).unwrap();
        // RFC 7638 over {"crv","kty","x","y"}, computed independently with node's crypto.
        assert_eq!(proof.jkt, EC_JKT);
        assert_eq!(proof.iat, NOW);
        let ed = EncodingKey::from_ed_pem(ED_PRIVATE_PEM.as_bytes()).unwrap();
        let header = serde_json::json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": ed_jwk()});
        assert!(check(&sign(header, claims(), &ed)).is_ok());
    }

    /// Each row breaks one check; the row fails if that check is removed.
    #[test]
    fn each_check_refuses_its_own_fault() {
        let key = ec_key();
        let hmac = EncodingKey::from_secret(&[7; 32]);
        let mut private_jwk = ec_jwk();
        private_jwk["d"] = "evZzL1gdAFr88hb2OF_2NxApJCzGCEDdfSp6VQO30hw".into();
        let other_curve = with(ec_jwk(), "crv", "P-384".into());
        let good = sign(header(), claims(), &key);
        let (message, _) = good.rsplit_once('.').unwrap();
        let other_signature = sign(header(), with(claims(), "jti", "x".into()), &key);
        let forged = format!("{message}.{}", other_signature.rsplit_once('.').unwrap().1);
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(with(header(), "alg", "none".into()).to_string()),
            URL_SAFE_NO_PAD.encode(claims().to_string())
        );
        let rows: Vec<(&str, String, DpopError)> = vec![
            ("not a JWS", "abc.def".into(), DpopError::Malformed),
            ("too long", "a".repeat(64 * 1024), DpopError::Malformed),
            (
                "typ missing",
                sign(with(header(), "typ", Value::Null), claims(), &key),
                DpopError::Type,
            ),
            (
                "typ JWT",
                sign(with(header(), "typ", "JWT".into()), claims(), &key),
                DpopError::Type,
            ),
            ("alg none", none, DpopError::Algorithm),
            (
                "alg HS256",
                sign(with(header(), "alg", "HS256".into()), claims(), &hmac),
                DpopError::Algorithm,
            ),
            (
                "alg not allowed",
                sign_as(
                    with(header(), "alg", "ES384".into()),
                    claims(),
                    &key,
                    jsonwebtoken::Algorithm::ES256,
                ),
                DpopError::Algorithm,
            ),
            (
                "no jwk",
                sign(with(header(), "jwk", Value::Null), claims(), &key),
                DpopError::Key,
            ),
            (
                "private jwk",
                sign(with(header(), "jwk", private_jwk), claims(), &key),
                DpopError::Key,
            ),
            (
                "symmetric jwk",
                sign(
                    with(
                        header(),
                        "jwk",
                        serde_json::json!({"kty": "oct", "k": "AAAA"}),
                    ),
                    claims(),
                    &key,
                ),
                DpopError::Key,
            ),
            (
                "curve does not fit alg",
                sign(with(header(), "jwk", other_curve), claims(), &key),
                DpopError::Key,
            ),
            (
                "RSA jwk with ES256",
                sign(
                    with(
                        header(),
                        "jwk",
                        serde_json::json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"}),
                    ),
                    claims(),
                    &key,
                ),
                DpopError::Algorithm,
            ),
            (
                "RSA modulus under 2048 bits",
                sign_as(
                    rsa_header(&URL_SAFE_NO_PAD.encode([0xff; 255]), "AQAB"),
                    claims(),
                    &key,
                    jsonwebtoken::Algorithm::ES256,
                ),
                DpopError::Key,
            ),
            (
                "RSA modulus over 4096 bits",
                sign_as(
                    rsa_header(&URL_SAFE_NO_PAD.encode([0xff; 513]), "AQAB"),
                    claims(),
                    &key,
                    jsonwebtoken::Algorithm::ES256,
                ),
                DpopError::Key,
            ),
            (
                "RSA exponent over 32 bits",
                sign_as(
                    rsa_header(
                        &URL_SAFE_NO_PAD.encode([0xff; 256]),
                        &URL_SAFE_NO_PAD.encode([1; 5]),
                    ),
                    claims(),
                    &key,
                    jsonwebtoken::Algorithm::ES256,
                ),
                DpopError::Key,
            ),
            ("signature of other claims", forged, DpopError::Signature),
            (
                "signed by another key",
                sign(
                    header(),
                    claims(),
                    &EncodingKey::from_ec_pem(OTHER_EC_PEM.as_bytes()).unwrap(),
                ),
                DpopError::Signature,
            ),
            (
                "no jti",
                sign(header(), with(claims(), "jti", Value::Null), &key),
                DpopError::Malformed,
            ),
            (
                "htm GET",
                sign(header(), with(claims(), "htm", "GET".into()), &key),
                DpopError::Method,
            ),
            (
                "htm lower case",
                sign(header(), with(claims(), "htm", "post".into()), &key),
                DpopError::Method,
            ),
            (
                "htu other path",
                sign(
                    header(),
                    with(claims(), "htu", "https://mcp.example/other".into()),
                    &key,
                ),
                DpopError::Url,
            ),
            (
                "htu other host",
                sign(
                    header(),
                    with(claims(), "htu", "https://evil.example/mcp".into()),
                    &key,
                ),
                DpopError::Url,
            ),
            (
                "htu http",
                sign(
                    header(),
                    with(claims(), "htu", "http://mcp.example/mcp".into()),
                    &key,
                ),
                DpopError::Url,
            ),
            (
                "iat stale",
                sign(header(), with(claims(), "iat", (NOW - 301).into()), &key),
                DpopError::Time,
            ),
            (
                "iat future",
                sign(header(), with(claims(), "iat", (NOW + 301).into()), &key),
                DpopError::Time,
            ),
            (
                "iat a string",
                sign(header(), with(claims(), "iat", "1700000000".into()), &key),
                DpopError::Malformed,
            ),
            (
                "ath of another token",
                sign(
                    header(),
                    with(claims(), "ath", token_hash("other").into()),
                    &key,
                ),
                DpopError::TokenHash,
            ),
            (
                "no ath",
                sign(header(), with(claims(), "ath", Value::Null), &key),
                DpopError::TokenHash,
            ),
        ];
        for (name, proof, error) in rows {
            assert_eq!(check(&proof), Err(error), "{name}");
        }
    }

    #[test]
    fn htu_is_compared_after_normalisation() {
        let key = ec_key();
        for htu in [
            "https://mcp.example/mcp",
            "HTTPS://MCP.example/mcp",
            "https://mcp.example:443/mcp",
            "https://mcp.example/mcp?x=1",
            "https://mcp.example/mcp#frag",
            "https://mcp.example/%6Dcp",
        ] {
            let proof = sign(header(), with(claims(), "htu", htu.into()), &key);
            assert!(check(&proof).is_ok(), "{htu}");
        }
        let proof = sign(
            header(),
            with(claims(), "htu", "https://mcp.example/MCP".into()),
            &key,
        );
        assert_eq!(check(&proof), Err(DpopError::Url));
        // An unknown scheme accepts `https` for the `http` URL, and nothing else.
        let loose = Expected {
            url: "http://mcp.example/mcp",
            any_scheme: true,
            ..expected()
        };
        let proof = sign(header(), claims(), &key);
        assert!(check_proof(proof.as_bytes(), &loose).is_ok());
        let proof = sign(
            header(),
            with(claims(), "htu", "https://mcp.example:8443/mcp".into()),
            &key,
        );
        assert_eq!(check_proof(proof.as_bytes(), &loose), Err(DpopError::Url));
        assert_eq!(
            normalize_url("https://a.example"),
            Some("https://a.example/".into())
        );
        assert_eq!(normalize_url("ftp://a.example/"), None);
        assert_eq!(normalize_url("https://u@a.example/"), None);
        assert_eq!(normalize_url("https://a.example/%zz"), None);
    }

    #[test]
    fn the_replay_key_depends_on_key_and_jti() {
        let key = ec_key();
        let a = check(&sign(header(), claims(), &key)).unwrap();
        let b = check(&sign(header(), with(claims(), "jti", "other".into()), &key)).unwrap();
        assert_ne!(a.replay_key, b.replay_key);
        assert_eq!(a.replay_key, replay_key(&a.jkt, "e1j3V_bKic8-LAEB"));
    }
}
