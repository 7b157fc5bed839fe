//! Parsing what an authorization server publishes: its discovery document and its JWK set.
//!
//! No I/O here, so the parsers can be fuzzed (`__private::parse_jwks`,
//! `__private::parse_discovery`). Everything is bounded: documents over `MAX_DOCUMENT_BYTES`,
//! sets over `MAX_JWKS_KEYS` keys, duplicate `kid`s are refused as a whole, never truncated.

use std::fmt;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use serde_json::{Map, Value};

use super::{JwtConfigError, JwtKey, JwtKeys};

/// Largest discovery document or JWK set accepted, in bytes.
pub(crate) const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
/// Most keys accepted in one published JWK set.
pub(crate) const MAX_JWKS_KEYS: usize = 100;
/// Smallest RSA modulus accepted from a published JWK set, in bits.
const MIN_RSA_BITS: usize = 2048;

/// Why a published discovery document or JWK set was refused. The last good keys (if any) keep
/// serving; the error is logged with the issuer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum KeySourceError {
    /// The answer is larger than 256 KiB.
    TooLarge,
    /// The answer is not JSON of the expected shape; says what is wrong.
    Malformed(String),
    /// The discovery document's `issuer` is not the configured issuer, exactly.
    WrongIssuer {
        /// The configured issuer.
        expected: String,
        /// The document's `issuer`.
        found: String,
    },
    /// A URL that may not be fetched: not `https`, and not `http` to a loopback host.
    InsecureUrl(String),
    /// The JWK set has more than 100 keys.
    TooManyKeys(usize),
    /// Two usable keys of the JWK set share a `kid`.
    DuplicateKid(String),
    /// The JWK set has no key usable for signature verification.
    NoUsableKey,
    /// The HTTP request failed: connection, TLS, timeout or a non-2xx status.
    #[cfg_attr(not(feature = "oidc"), allow(dead_code))]
    Fetch(String),
}

impl fmt::Display for KeySourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge => write!(f, "answer larger than {MAX_DOCUMENT_BYTES} bytes"),
            Self::Malformed(why) => write!(f, "malformed document: {why}"),
            Self::WrongIssuer { expected, found } => write!(
                f,
                "discovery document names issuer {found:?}, expected exactly {expected:?}"
            ),
            Self::InsecureUrl(url) => write!(
                f,
                "refusing to fetch {url:?}: only https, or http to a loopback host"
            ),
            Self::TooManyKeys(n) => {
                write!(f, "JWK set has {n} keys, more than {MAX_JWKS_KEYS}")
            }
            Self::DuplicateKid(kid) => write!(f, "JWK set has two keys with kid {kid:?}"),
            Self::NoUsableKey => f.write_str("JWK set has no key usable for verification"),
            Self::Fetch(why) => write!(f, "fetch failed: {why}"),
        }
    }
}

impl std::error::Error for KeySourceError {}

/// An issuer whose keys could not be fetched or were refused, and why
/// ([`JwtAuthLayer::fetch_keys`](super::JwtAuthLayer::fetch_keys)). The message names the issuer
/// and the reason (an HTTP failure or timeout, a document over 256 KiB or malformed, a discovery
/// `issuer` that differs, an insecure URL, a JWK set with over 100 keys, duplicate `kid`s or no
/// usable key).
#[cfg(feature = "oidc")]
#[cfg_attr(docsrs, doc(cfg(feature = "oidc")))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuerKeysError {
    issuer: String,
    error: KeySourceError,
}

#[cfg(feature = "oidc")]
impl IssuerKeysError {
    pub(crate) fn new(issuer: String, error: KeySourceError) -> Self {
        Self { issuer, error }
    }

    /// The issuer whose keys are missing.
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.issuer
    }
}

#[cfg(feature = "oidc")]
impl fmt::Display for IssuerKeysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "issuer {:?}: {}", self.issuer, self.error)
    }
}

#[cfg(feature = "oidc")]
impl std::error::Error for IssuerKeysError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// What the verifier needs from a discovery document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Discovery {
    pub(crate) jwks_uri: String,
}

/// Parses an OpenID Provider configuration (OIDC Discovery §3) or an RFC 8414 authorization
/// server metadata document. Its `issuer` must equal `expected_issuer` exactly; its `jwks_uri`
/// must be a URL that may be fetched (see [`is_fetchable_url`]).
pub(crate) fn parse_discovery(
    bytes: &[u8],
    expected_issuer: &str,
) -> Result<Discovery, KeySourceError> {
    let doc = parse_object(bytes)?;
    let issuer = match doc.get("issuer") {
        Some(Value::String(issuer)) => issuer,
        Some(_) => return Err(malformed("`issuer` is not a string")),
        None => return Err(malformed("no `issuer`")),
    };
    if issuer != expected_issuer {
        return Err(KeySourceError::WrongIssuer {
            expected: expected_issuer.to_owned(),
            found: issuer.chars().take(200).collect(),
        });
    }
    let jwks_uri = match doc.get("jwks_uri") {
        Some(Value::String(uri)) => uri,
        Some(_) => return Err(malformed("`jwks_uri` is not a string")),
        None => return Err(malformed("no `jwks_uri`")),
    };
    if !is_fetchable_url(jwks_uri) {
        return Err(KeySourceError::InsecureUrl(
            jwks_uri.chars().take(200).collect(),
        ));
    }
    Ok(Discovery {
        jwks_uri: jwks_uri.clone(),
    })
}

/// Parses a JWK set published at a `jwks_uri`, for signature verification only:
///
/// - keys with `use` other than `sig`, or `key_ops` without `verify`, are skipped;
/// - symmetric (`oct`) keys are skipped: a published key is public, never an HMAC secret;
/// - keys of unknown types or curves, and RSA keys under 2048 bits, are skipped;
/// - more than [`MAX_JWKS_KEYS`] keys, two usable keys with one `kid`, or no usable key at all
///   refuse the whole set.
pub(crate) fn parse_jwks(bytes: &[u8]) -> Result<JwtKeys, KeySourceError> {
    let doc = parse_object(bytes)?;
    let Some(Value::Array(entries)) = doc.get("keys") else {
        return Err(malformed("no `keys` array"));
    };
    if entries.len() > MAX_JWKS_KEYS {
        return Err(KeySourceError::TooManyKeys(entries.len()));
    }
    let mut keys = JwtKeys::new();
    for (index, entry) in entries.iter().enumerate() {
        let Some(key) = published_key(index, entry) else {
            continue;
        };
        if let Some(kid) = key.kid()
            && keys.iter().any(|k| k.kid() == Some(kid))
        {
            return Err(KeySourceError::DuplicateKid(
                kid.chars().take(200).collect(),
            ));
        }
        keys.push(key);
    }
    if keys.is_empty() {
        return Err(KeySourceError::NoUsableKey);
    }
    Ok(keys)
}

/// One published key, or `None` (logged) when it is not usable for verification here.
fn published_key(index: usize, entry: &Value) -> Option<JwtKey> {
    let skip = |why: &str| {
        tracing::debug!(index, why, "skipping published JWK");
        None
    };
    if !entry.is_object() {
        return skip("not a JSON object");
    }
    let jwk: Jwk = match serde_json::from_value(entry.clone()) {
        Ok(jwk) => jwk,
        Err(_) => return skip("unknown key type or malformed key"),
    };
    match &jwk.algorithm {
        AlgorithmParameters::OctetKey(_) => return skip("symmetric key in a published set"),
        AlgorithmParameters::RSA(rsa) => {
            let bits = URL_SAFE_NO_PAD
                .decode(rsa.n.trim_end_matches('='))
                .map(|n| {
                    let n = n.iter().skip_while(|&&b| b == 0).count();
                    n * 8
                })
                .unwrap_or(0);
            if bits < MIN_RSA_BITS {
                return skip("RSA modulus under 2048 bits or not base64url");
            }
        }
        _ => {}
    }
    match JwtKey::from_jwk(&jwk) {
        Ok(key) => Some(key),
        Err(JwtConfigError::UnsupportedJwk(why)) => skip(why),
        Err(_) => skip("key material does not load"),
    }
}

fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, KeySourceError> {
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(KeySourceError::TooLarge);
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(malformed("not a JSON object")),
        Err(err) => Err(KeySourceError::Malformed(format!("not JSON: {err}"))),
    }
}

fn malformed(why: &str) -> KeySourceError {
    KeySourceError::Malformed(why.to_owned())
}

/// Whether `url` may be fetched: `https://`, or `http://` to a loopback host (`localhost`,
/// `127.0.0.0/8`, `[::1]`) for development and tests. URLs with user info are refused.
pub(crate) fn is_fetchable_url(url: &str) -> bool {
    let (https, rest) = if let Some(rest) = strip_prefix_ci(url, "https://") {
        (true, rest)
    } else if let Some(rest) = strip_prefix_ci(url, "http://") {
        (false, rest)
    } else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty()
        || authority.contains('@')
        || url.bytes().any(|b| b.is_ascii_control() || b == b' ')
    {
        return false;
    }
    https || is_loopback_authority(authority)
}

fn strip_prefix_ci<'a>(value: &'a str, prefix: &str) -> Option<&'a str> {
    let head = value.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &value[prefix.len()..])
}

/// `host[:port]` names a loopback host.
fn is_loopback_authority(authority: &str) -> bool {
    let host = if let Some(bracketed) = authority.strip_prefix('[') {
        match bracketed.split_once(']') {
            Some((host, rest)) if rest.is_empty() || is_port(rest) => host,
            _ => return false,
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) if is_port(port) => host,
            Some(_) => return false,
            None => authority,
        }
    };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => false,
    }
}

fn is_port(rest: &str) -> bool {
    rest.strip_prefix(':')
        .unwrap_or(rest)
        .bytes()
        .all(|b| b.is_ascii_digit())
        && rest.len() <= 6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetchable_urls() {
        for ok in [
            "https://auth.example.com/.well-known/jwks.json",
            "HTTPS://auth.example.com",
            "http://127.0.0.1:8080/jwks",
            "http://127.1.2.3/jwks",
            "http://localhost:3000",
            "http://[::1]:9000/x",
            "http://[::1]",
        ] {
            assert!(is_fetchable_url(ok), "{ok}");
        }
        for bad in [
            "http://auth.example.com/jwks",
            "http://127.0.0.1.evil.example/jwks",
            "http://localhost.evil.example/",
            "http://user@127.0.0.1/",
            "http://evil.example@127.0.0.1/",
            "http://[::2]/",
            "http://[::1]x/",
            "ftp://127.0.0.1/",
            "file:///etc/passwd",
            "https://",
            "https://a b/",
            "",
        ] {
            assert!(!is_fetchable_url(bad), "{bad}");
        }
    }

    #[test]
    fn discovery_requires_the_exact_issuer_and_a_fetchable_jwks_uri() {
        let doc = br#"{"issuer":"https://a.example","jwks_uri":"https://a.example/jwks"}"#;
        assert_eq!(
            parse_discovery(doc, "https://a.example").unwrap().jwks_uri,
            "https://a.example/jwks"
        );
        assert!(matches!(
            parse_discovery(doc, "https://a.example/"),
            Err(KeySourceError::WrongIssuer { .. })
        ));
        let doc = br#"{"issuer":"https://a.example","jwks_uri":"http://a.example/jwks"}"#;
        assert!(matches!(
            parse_discovery(doc, "https://a.example"),
            Err(KeySourceError::InsecureUrl(_))
        ));
        for bad in [
            &b"[]"[..],
            b"{",
            b"{\"issuer\":1}",
            b"{\"issuer\":\"https://a.example\"}",
        ] {
            assert!(matches!(
                parse_discovery(bad, "https://a.example"),
                Err(KeySourceError::Malformed(_))
            ));
        }
        let huge = vec![b' '; MAX_DOCUMENT_BYTES + 1];
        assert_eq!(parse_discovery(&huge, "x"), Err(KeySourceError::TooLarge));
    }

    #[test]
    fn published_sets_skip_symmetric_and_encryption_keys() {
        let jwks = br#"{"keys":[
            {"kty":"oct","kid":"h","k":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"},
            {"kty":"EC","kid":"e","use":"enc","crv":"P-256","x":"KQwhGpvUjyxcx7sFx4cT7ch6zmwT9zMTXQDvWn2DZGQ","y":"3XW1fRsmP8hM9HpjFyaazmtPGS_-7XRBF5ywJsLl-0Q"},
            {"kty":"EC","kid":"s","crv":"P-256","x":"KQwhGpvUjyxcx7sFx4cT7ch6zmwT9zMTXQDvWn2DZGQ","y":"3XW1fRsmP8hM9HpjFyaazmtPGS_-7XRBF5ywJsLl-0Q"},
            {"kty":"RSA","kid":"small","n":"AQAB","e":"AQAB"},
            {"kty":"XYZ","kid":"x"},
            7
        ]}"#;
        let keys = parse_jwks(jwks).unwrap();
        let kids: Vec<_> = keys.iter().map(|k| k.kid()).collect();
        assert_eq!(kids, [Some("s")]);
    }

    #[test]
    fn published_sets_refuse_duplicates_and_too_many_keys() {
        let key = r#"{"kty":"EC","kid":"s","crv":"P-256","x":"KQwhGpvUjyxcx7sFx4cT7ch6zmwT9zMTXQDvWn2DZGQ","y":"3XW1fRsmP8hM9HpjFyaazmtPGS_-7XRBF5ywJsLl-0Q"}"#;
        let dup = format!(r#"{{"keys":[{key},{key}]}}"#);
        assert_eq!(
            parse_jwks(dup.as_bytes()).unwrap_err(),
            KeySourceError::DuplicateKid("s".into())
        );
        let many = format!(r#"{{"keys":[{}]}}"#, vec!["{}"; 101].join(","));
        assert_eq!(
            parse_jwks(many.as_bytes()).unwrap_err(),
            KeySourceError::TooManyKeys(101)
        );
        assert_eq!(
            parse_jwks(br#"{"keys":[]}"#).unwrap_err(),
            KeySourceError::NoUsableKey
        );
        assert!(matches!(
            parse_jwks(br#"{"keys":{}}"#),
            Err(KeySourceError::Malformed(_))
        ));
    }
}
