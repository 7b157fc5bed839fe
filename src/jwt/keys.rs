//! Verification keys: HMAC secrets, RSA/EC/Ed25519 public keys (PEM), JWKs and JWK sets.

use std::fmt;

use jsonwebtoken::{
    DecodingKey,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyOperations, PublicKeyUse},
};

use super::{Algorithm, JwtConfigError, KeyFamily};

/// Shortest HMAC secret accepted, in bytes (RFC 7518 §3.2: at least the size of the hash).
const MIN_HMAC_SECRET_LEN: usize = 32;

/// One verification key, with an optional key id (`kid`) and an optional pinned algorithm.
///
/// A key only ever verifies algorithms of its own family (an RSA public key is never used as an
/// HMAC secret), and, when pinned, only its one algorithm. Keys loaded from a JWK are pinned to
/// the JWK's `alg` (or, for EC keys, to the algorithm of their curve); EC PEM keys are pinned by
/// curve too (P-256 to `ES256`, P-384 to `ES384`).
///
/// ```
/// use mcp_session_binding::jwt::{Algorithm, JwtKey};
///
/// let key = JwtKey::hmac(b"0123456789abcdef0123456789abcdef").unwrap().with_kid("2024-05");
/// assert_eq!(key.kid(), Some("2024-05"));
/// assert!(key.can_verify(Algorithm::HS512));
/// assert!(!key.can_verify(Algorithm::RS256));
/// assert!(!key.with_algorithm(Algorithm::HS256).can_verify(Algorithm::HS512));
/// ```
#[derive(Clone)]
pub struct JwtKey {
    kid: Option<String>,
    key: DecodingKey,
    algorithm: Option<Algorithm>,
}

impl JwtKey {
    /// An HMAC secret, for `HS256`, `HS384` and `HS512`.
    ///
    /// # Errors
    ///
    /// [`JwtConfigError::WeakHmacSecret`] when the secret is shorter than 32 bytes.
    ///
    /// ```
    /// use mcp_session_binding::jwt::{Algorithm, JwtConfigError, JwtKey};
    ///
    /// let key = JwtKey::hmac(b"0123456789abcdef0123456789abcdef").unwrap();
    /// assert!(key.can_verify(Algorithm::HS256));
    /// assert!(matches!(JwtKey::hmac(b"short"), Err(JwtConfigError::WeakHmacSecret { len: 5 })));
    /// ```
    pub fn hmac(secret: impl AsRef<[u8]>) -> Result<Self, JwtConfigError> {
        let secret = secret.as_ref();
        if secret.len() < MIN_HMAC_SECRET_LEN {
            return Err(JwtConfigError::WeakHmacSecret { len: secret.len() });
        }
        Ok(Self::from_decoding_key(DecodingKey::from_secret(secret)))
    }

    /// An RSA public key in PEM (`BEGIN PUBLIC KEY` or `BEGIN RSA PUBLIC KEY`), for `RS*` and
    /// `PS*`.
    ///
    /// # Errors
    ///
    /// [`JwtConfigError::InvalidKey`] when the PEM does not hold an RSA public key.
    ///
    /// ```
    /// use mcp_session_binding::jwt::{Algorithm, JwtKey};
    ///
    /// let pem = concat!(
    ///     "-----BEGIN PUBLIC KEY-----\n",
    ///     "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEApS8iNJ8GRnfm8/wD0m2P\n",
    ///     "82el6BHSsedPeltAiuNYhPb/sHQKa4Ebjiq2pWM1vNWf4ZMRRBU1xtlrbEQUp0WO\n",
    ///     "CFiPfo+DYS/a877Y6a7H+uEapu2qNBQhjETE8Vf/OizZ0rXO5M0gcwrATMsgqY7X\n",
    ///     "5PQu/7scgdGHnUo9E4irBXrEODnYaH9de17/8uvu2RC/pWVsTLQLpo3fd2sDmFz/\n",
    ///     "5Qza0sNowcjOilMbS0yExqaR6pdryXiZpY32KWZtxbNOoj+I19TvY8g9ljAyRR3b\n",
    ///     "tcJva7HiyT1brvoVy+AV1FRYH6jKXQP72gHfziyGqsbGvW8SbrPzbt0L81GQoixZ\n",
    ///     "CwIDAQAB\n",
    ///     "-----END PUBLIC KEY-----\n",
    /// );
    /// let key = JwtKey::rsa_pem(pem).unwrap();
    /// assert!(key.can_verify(Algorithm::RS256) && key.can_verify(Algorithm::PS512));
    /// assert!(JwtKey::rsa_pem("not a key").is_err());
    /// ```
    pub fn rsa_pem(pem: impl AsRef<[u8]>) -> Result<Self, JwtConfigError> {
        DecodingKey::from_rsa_pem(pem.as_ref())
            .map(Self::from_decoding_key)
            .map_err(JwtConfigError::invalid_key)
    }

    /// An EC public key in PEM (`BEGIN PUBLIC KEY`), pinned by its curve: P-256 to `ES256`,
    /// P-384 to `ES384`.
    ///
    /// # Errors
    ///
    /// [`JwtConfigError::InvalidKey`] when the PEM does not hold a P-256 or P-384 public key.
    ///
    /// ```
    /// use mcp_session_binding::jwt::{Algorithm, JwtKey};
    ///
    /// let pem = concat!(
    ///     "-----BEGIN PUBLIC KEY-----\n",
    ///     "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE4Cgs6djN7vM56WD5JVyOJeRGE6jg\n",
    ///     "PazgJjpDFgLiSV2VqRkKvw/krNLOBB7HKXaqJi74fLiD3qefE79/1N2+jA==\n",
    ///     "-----END PUBLIC KEY-----\n",
    /// );
    /// let key = JwtKey::ec_pem(pem).unwrap();
    /// assert_eq!(key.algorithm(), Some(Algorithm::ES256)); // a P-256 key
    /// assert!(!key.can_verify(Algorithm::ES384));
    /// ```
    pub fn ec_pem(pem: impl AsRef<[u8]>) -> Result<Self, JwtConfigError> {
        let key = DecodingKey::from_ec_pem(pem.as_ref()).map_err(JwtConfigError::invalid_key)?;
        // An uncompressed SEC1 point: 0x04, then x and y.
        let algorithm = match key.try_get_as_bytes().map(<[u8]>::len) {
            Ok(65) => Algorithm::ES256,
            Ok(97) => Algorithm::ES384,
            _ => {
                return Err(JwtConfigError::invalid_key(
                    jsonwebtoken::errors::Error::from(
                        jsonwebtoken::errors::ErrorKind::InvalidEcdsaKey,
                    ),
                ));
            }
        };
        Ok(Self::from_decoding_key(key).with_algorithm(algorithm))
    }

    /// An Ed25519 public key in PEM, for `EdDSA`.
    ///
    /// # Errors
    ///
    /// [`JwtConfigError::InvalidKey`] when the PEM does not hold an Ed25519 public key.
    ///
    /// ```
    /// use mcp_session_binding::jwt::{Algorithm, JwtKey};
    ///
    /// let pem = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAreSUF/+DLbAtZQSipBcAUoJE8yjnYMxpZyXJqVqbnTw=\n-----END PUBLIC KEY-----\n";
    /// let key = JwtKey::ed_pem(pem).unwrap().with_kid("ed-1");
    /// assert_eq!(key.algorithm(), Some(Algorithm::EdDSA));
    /// assert_eq!(key.kid(), Some("ed-1"));
    /// ```
    pub fn ed_pem(pem: impl AsRef<[u8]>) -> Result<Self, JwtConfigError> {
        DecodingKey::from_ed_pem(pem.as_ref())
            .map(|key| Self::from_decoding_key(key).with_algorithm(Algorithm::EdDSA))
            .map_err(JwtConfigError::invalid_key)
    }

    /// A JSON Web Key. Takes its `kid`, and pins the algorithm to its `alg` (or to its curve).
    ///
    /// # Errors
    ///
    /// [`JwtConfigError::UnsupportedJwk`] for a key meant for encryption, of an unknown type or
    /// curve, or with an `alg` that is not a supported signature algorithm;
    /// [`JwtConfigError::InvalidKey`] for key material that does not decode;
    /// [`JwtConfigError::WeakHmacSecret`] for an `oct` key shorter than 32 bytes.
    pub(crate) fn from_jwk(jwk: &Jwk) -> Result<Self, JwtConfigError> {
        if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
            return Err(JwtConfigError::UnsupportedJwk("`use` is not `sig`"));
        }
        if let Some(ops) = &jwk.common.key_operations
            && !ops.contains(&KeyOperations::Verify)
        {
            return Err(JwtConfigError::UnsupportedJwk("`key_ops` lacks `verify`"));
        }
        let pinned = match jwk.common.key_algorithm {
            Some(alg) => Some(
                jsonwebtoken::Algorithm::try_from(alg)
                    .ok()
                    .and_then(Algorithm::from_jsonwebtoken)
                    .ok_or(JwtConfigError::UnsupportedJwk(
                        "`alg` is not a JWS algorithm",
                    ))?,
            ),
            None => None,
        };
        let by_curve = match &jwk.algorithm {
            AlgorithmParameters::EllipticCurve(params) => Some(match params.curve {
                EllipticCurve::P256 => Algorithm::ES256,
                EllipticCurve::P384 => Algorithm::ES384,
                _ => return Err(JwtConfigError::UnsupportedJwk("unsupported EC curve")),
            }),
            AlgorithmParameters::OctetKeyPair(params) => match params.curve {
                EllipticCurve::Ed25519 => Some(Algorithm::EdDSA),
                _ => return Err(JwtConfigError::UnsupportedJwk("unsupported OKP curve")),
            },
            AlgorithmParameters::RSA(_) | AlgorithmParameters::OctetKey(_) => None,
            _ => return Err(JwtConfigError::UnsupportedJwk("unsupported key type")),
        };
        let key = DecodingKey::from_jwk(jwk).map_err(JwtConfigError::invalid_key)?;
        if key.family() == jsonwebtoken::AlgorithmFamily::Hmac {
            let len = key.try_get_as_bytes().map_or(0, <[u8]>::len);
            if len < MIN_HMAC_SECRET_LEN {
                return Err(JwtConfigError::WeakHmacSecret { len });
            }
        }
        if let Some(alg) = pinned
            && alg.family() != KeyFamily::of(key.family())
        {
            return Err(JwtConfigError::UnsupportedJwk(
                "`alg` does not match the key type",
            ));
        }
        Ok(Self {
            kid: jwk.common.key_id.clone(),
            key,
            algorithm: pinned.or(by_curve),
        })
    }

    /// Wraps a key the JWT library loaded. No strength check is made here.
    fn from_decoding_key(key: DecodingKey) -> Self {
        Self {
            kid: None,
            key,
            algorithm: None,
        }
    }

    /// Sets the key id. A token whose header names a `kid` is verified only with the keys that
    /// carry that `kid` (see [`JwtKeys`] for the exact rule).
    ///
    /// ```
    /// use mcp_session_binding::jwt::{JwtKey, JwtKeys};
    /// let key = JwtKey::hmac([7u8; 32]).unwrap().with_kid("2024-05");
    /// assert_eq!(key.kid(), Some("2024-05"));
    /// ```
    #[must_use]
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// Pins the key to one algorithm: tokens signed with another algorithm of the same family
    /// are not verified with it.
    ///
    /// ```
    /// use mcp_session_binding::jwt::{Algorithm, JwtKey};
    /// let key = JwtKey::hmac([7u8; 32]).unwrap().with_algorithm(Algorithm::HS512);
    /// assert!(key.can_verify(Algorithm::HS512));
    /// assert!(!key.can_verify(Algorithm::HS256));
    /// ```
    #[must_use]
    pub fn with_algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = Some(algorithm);
        self
    }

    /// The key id, if any.
    ///
    /// ```
    /// use mcp_session_binding::jwt::{JwtKey, JwtKeys};
    /// assert_eq!(JwtKey::hmac([7u8; 32]).unwrap().kid(), None);
    /// ```
    #[must_use]
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The pinned algorithm, if any.
    ///
    /// ```
    /// use mcp_session_binding::jwt::{Algorithm, JwtKey};
    /// assert_eq!(JwtKey::hmac([7u8; 32]).unwrap().algorithm(), None); // any HS* algorithm
    /// assert_eq!(JwtKey::hmac([7u8; 32]).unwrap().with_algorithm(Algorithm::HS384).algorithm(), Some(Algorithm::HS384));
    /// ```
    #[must_use]
    pub fn algorithm(&self) -> Option<Algorithm> {
        self.algorithm
    }

    /// The key's algorithm family.
    pub(crate) fn family(&self) -> KeyFamily {
        KeyFamily::of(self.key.family())
    }

    /// Whether this key may verify a token signed with `algorithm`: same family, and the pinned
    /// algorithm if there is one.
    ///
    /// ```
    /// use mcp_session_binding::jwt::{Algorithm, JwtKey};
    /// let key = JwtKey::hmac([7u8; 32]).unwrap();
    /// assert!(key.can_verify(Algorithm::HS256));
    /// assert!(!key.can_verify(Algorithm::RS256)); // never an HMAC secret for an RSA signature
    /// ```
    #[must_use]
    pub fn can_verify(&self, algorithm: Algorithm) -> bool {
        self.family() == algorithm.family() && self.algorithm.is_none_or(|a| a == algorithm)
    }

    pub(crate) fn decoding_key(&self) -> &DecodingKey {
        &self.key
    }
}

impl fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key material.
        f.debug_struct("JwtKey")
            .field("kid", &self.kid)
            .field("family", &self.key.family())
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// A set of verification keys.
///
/// Key choice for a token signed with algorithm `alg`:
///
/// - only keys that [can verify](JwtKey::can_verify) `alg` are candidates;
/// - a token whose header has a `kid` is verified with the candidates carrying that `kid`. If no
///   configured key (of any family) carries that `kid`, the candidates without a `kid` are tried
///   instead, so a single key configured without a `kid` keeps working with an issuer that sets
///   one. A key whose `kid` differs is never tried;
/// - a token without a `kid` is verified with every candidate, in order.
///
/// Keys named in the token itself (`jwk`, `jku`, `x5u`, `x5c` header parameters) are never used.
///
/// ```
/// use mcp_session_binding::jwt::JwtKeys;
///
/// let jwks = r#"{"keys": [
///     {"kty": "oct", "kid": "a", "alg": "HS256", "k": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"},
///     {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"}
/// ]}"#;
/// let keys = JwtKeys::from_jwk_set_json(jwks).unwrap();
/// assert_eq!(keys.len(), 1); // the encryption key is skipped
/// assert_eq!(keys.iter().next().unwrap().kid(), Some("a"));
/// ```
#[derive(Clone, Debug, Default)]
pub struct JwtKeys {
    keys: Vec<JwtKey>,
}

impl JwtKeys {
    /// An empty set.
    ///
    /// ```
    /// use mcp_session_binding::jwt::{JwtKey, JwtKeys};
    /// let keys = JwtKeys::new().with_key(JwtKey::hmac([7u8; 32]).unwrap());
    /// assert_eq!(keys.len(), 1);
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a key.
    ///
    /// ```
    /// use mcp_session_binding::jwt::{JwtKey, JwtKeys};
    /// let keys = JwtKeys::new()
    ///     .with_key(JwtKey::hmac([7u8; 32]).unwrap().with_kid("old"))
    ///     .with_key(JwtKey::hmac([8u8; 32]).unwrap().with_kid("new"));
    /// assert_eq!(keys.iter().filter_map(JwtKey::kid).collect::<Vec<_>>(), ["old", "new"]);
    /// ```
    #[must_use]
    pub fn with_key(mut self, key: JwtKey) -> Self {
        self.keys.push(key);
        self
    }

    /// Adds a key.
    ///
    /// ```
    /// use mcp_session_binding::jwt::{JwtKey, JwtKeys};
    /// let mut keys = JwtKeys::new();
    /// keys.push(JwtKey::hmac([7u8; 32]).unwrap());
    /// assert!(!keys.is_empty());
    /// ```
    pub fn push(&mut self, key: JwtKey) {
        self.keys.push(key);
    }

    /// Loads a parsed JWK set (see [`JwtKeys::from_jwk_set_json`]).
    fn from_jwk_set(set: &JwkSet) -> Result<Self, JwtConfigError> {
        let mut keys = Vec::with_capacity(set.keys.len());
        for jwk in &set.keys {
            match JwtKey::from_jwk(jwk) {
                Ok(key) => keys.push(key),
                Err(JwtConfigError::UnsupportedJwk(why)) => {
                    tracing::debug!(kid = ?jwk.common.key_id, why, "skipping JWK");
                }
                Err(err) => return Err(err),
            }
        }
        if keys.is_empty() {
            return Err(JwtConfigError::NoUsableJwk);
        }
        Ok(Self { keys })
    }

    /// Parses and loads a JWK set document (`{"keys": [...]}`), as served at an authorization
    /// server's `jwks_uri`. Each key takes its `kid` and is pinned to its `alg` (or to its
    /// curve). Keys that cannot verify signatures (encryption keys, unknown key types or curves,
    /// non-JWS `alg`) are skipped; keys of a supported type whose material does not load are an
    /// error.
    ///
    /// # Errors
    ///
    /// [`JwtConfigError::InvalidJwkSet`] for JSON that is not a JWK set,
    /// [`JwtConfigError::InvalidKey`] or [`JwtConfigError::WeakHmacSecret`] for a broken key,
    /// [`JwtConfigError::NoUsableJwk`] when no key is left.
    ///
    /// ```
    /// use mcp_session_binding::jwt::{Algorithm, JwtKeys};
    ///
    /// let json = r#"{"keys": [
    ///     {"kty": "oct", "kid": "k1", "alg": "HS256", "k": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"},
    ///     {"kty": "RSA", "use": "enc", "kid": "e1", "n": "AQAB", "e": "AQAB"}
    /// ]}"#;
    /// let keys = JwtKeys::from_jwk_set_json(json).unwrap(); // the encryption key is skipped
    /// assert_eq!(keys.len(), 1);
    /// let key = keys.iter().next().unwrap();
    /// assert_eq!((key.kid(), key.algorithm()), (Some("k1"), Some(Algorithm::HS256)));
    /// assert!(JwtKeys::from_jwk_set_json("{}").is_err());
    /// ```
    pub fn from_jwk_set_json(json: &str) -> Result<Self, JwtConfigError> {
        let set: JwkSet = serde_json::from_str(json).map_err(JwtConfigError::InvalidJwkSet)?;
        Self::from_jwk_set(&set)
    }

    /// Number of keys.
    ///
    /// ```
    /// use mcp_session_binding::jwt::{JwtKey, JwtKeys};
    /// assert_eq!(JwtKeys::new().len(), 0);
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set is empty.
    ///
    /// ```
    /// use mcp_session_binding::jwt::{JwtKey, JwtKeys};
    /// assert!(JwtKeys::new().is_empty());
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys, in order.
    ///
    /// ```
    /// use mcp_session_binding::jwt::{JwtKey, JwtKeys};
    /// let keys = JwtKeys::new().with_key(JwtKey::hmac([7u8; 32]).unwrap().with_kid("a"));
    /// assert_eq!(keys.iter().next().and_then(JwtKey::kid), Some("a"));
    /// ```
    pub fn iter(&self) -> std::slice::Iter<'_, JwtKey> {
        self.keys.iter()
    }

    /// Keys to try, in order, for a token signed with `algorithm` and naming `kid`.
    pub(crate) fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
        algorithm: Algorithm,
    ) -> impl Iterator<Item = &'a JwtKey> + 'a {
        let kid_known = kid.is_some_and(|kid| self.keys.iter().any(|k| k.kid() == Some(kid)));
        self.keys.iter().filter(move |key| {
            key.can_verify(algorithm)
                && match kid {
                    None => true,
                    Some(_) if kid_known => key.kid() == kid,
                    Some(_) => key.kid().is_none(),
                }
        })
    }
}

impl FromIterator<JwtKey> for JwtKeys {
    fn from_iter<I: IntoIterator<Item = JwtKey>>(iter: I) -> Self {
        Self {
            keys: iter.into_iter().collect(),
        }
    }
}

impl Extend<JwtKey> for JwtKeys {
    fn extend<I: IntoIterator<Item = JwtKey>>(&mut self, iter: I) {
        self.keys.extend(iter);
    }
}

impl<'a> IntoIterator for &'a JwtKeys {
    type Item = &'a JwtKey;
    type IntoIter = std::slice::Iter<'a, JwtKey>;

    fn into_iter(self) -> Self::IntoIter {
        self.keys.iter()
    }
}

impl IntoIterator for JwtKeys {
    type Item = JwtKey;
    type IntoIter = std::vec::IntoIter<JwtKey>;

    fn into_iter(self) -> Self::IntoIter {
        self.keys.into_iter()
    }
}

impl From<Vec<JwtKey>> for JwtKeys {
    fn from(keys: Vec<JwtKey>) -> Self {
        Self { keys }
    }
}

impl From<JwtKey> for JwtKeys {
    fn from(key: JwtKey) -> Self {
        Self { keys: vec![key] }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(byte: u8) -> JwtKey {
        JwtKey::hmac([byte; 32]).unwrap()
    }

    #[test]
    fn kid_selects_matching_keys_and_falls_back_to_kidless_ones() {
        let keys: JwtKeys = [secret(1).with_kid("a"), secret(2).with_kid("b"), secret(3)]
            .into_iter()
            .collect();
        let kids = |kid| {
            keys.candidates(kid, Algorithm::HS256)
                .map(|k| k.kid().map(str::to_owned))
                .collect::<Vec<_>>()
        };
        assert_eq!(kids(Some("b")), vec![Some("b".to_owned())]);
        assert_eq!(kids(Some("zzz")), vec![None]);
        assert_eq!(kids(None).len(), 3);
        assert_eq!(keys.candidates(None, Algorithm::RS256).count(), 0);
    }

    #[test]
    fn a_known_kid_of_another_family_does_not_fall_back() {
        let rsa = JwtKey::rsa_pem(include_str!("../../tests/keys/rsa_a_public.pem")).unwrap();
        let keys = JwtKeys::from(rsa.with_kid("a")).with_key(secret(2));
        // The token names the RSA key but claims HMAC: no fallback to the kid-less secret.
        assert_eq!(keys.candidates(Some("a"), Algorithm::HS256).count(), 0);
        assert_eq!(keys.candidates(Some("a"), Algorithm::RS256).count(), 1);
        assert_eq!(keys.candidates(Some("other"), Algorithm::HS256).count(), 1);
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(matches!(
            JwtKey::hmac([0u8; 31]),
            Err(JwtConfigError::WeakHmacSecret { len: 31 })
        ));
        let short_oct = r#"{"keys":[{"kty":"oct","k":"c2hvcnQ"}]}"#;
        assert!(matches!(
            JwtKeys::from_jwk_set_json(short_oct),
            Err(JwtConfigError::WeakHmacSecret { len: 5 })
        ));
    }

    #[test]
    fn jwk_alg_must_match_key_type() {
        let jwks = r#"{"keys":[{"kty":"oct","alg":"RS256","k":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"}]}"#;
        assert!(matches!(
            JwtKeys::from_jwk_set_json(jwks),
            Err(JwtConfigError::NoUsableJwk)
        ));
        assert!(matches!(
            JwtKeys::from_jwk_set_json("{}"),
            Err(JwtConfigError::InvalidJwkSet(_))
        ));
    }
}
