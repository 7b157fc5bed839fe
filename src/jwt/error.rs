//! Configuration errors: a key that does not load, a builder missing a required setting.

use std::fmt;

use super::Algorithm;

/// Why a key could not be loaded or a [`JwtAuthLayer`](super::JwtAuthLayer) could not be built.
///
/// These are start-up errors: the layer refuses to exist in a configuration that would accept
/// tokens it should not, or no token at all.
///
/// ```
/// use mcp_session_binding::jwt::{JwtAuthLayer, JwtConfigError, JwtKey};
///
/// // A 32-byte secret is the least HS256 accepts (RFC 7518 §3.2).
/// assert!(matches!(JwtKey::hmac(b"too short"), Err(JwtConfigError::WeakHmacSecret { len: 9 })));
///
/// // The audience is required (RFC 8707): there is no "accept any audience" mode.
/// let err = JwtAuthLayer::builder()
///     .issuer_keys("https://auth.example.com", JwtKey::hmac([7u8; 32]).unwrap())
///     .algorithms([mcp_session_binding::jwt::Algorithm::HS256])
///     .build()
///     .unwrap_err();
/// assert!(matches!(err, JwtConfigError::NoAudience));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum JwtConfigError {
    /// An issuer was given an empty set of keys.
    NoKeys,
    /// No algorithm was allowed. There is no default: name the ones your issuer signs with.
    NoAlgorithms,
    /// No trusted issuer was configured.
    NoIssuers,
    /// No audience was configured (RFC 8707: the token must be meant for this server).
    NoAudience,
    /// An allowed algorithm has no configured key that could verify it (for example `RS256`
    /// allowed, but only an HMAC secret configured).
    NoKeyForAlgorithm(Algorithm),
    /// An HMAC secret shorter than 32 bytes (RFC 7518 §3.2 requires at least the hash size).
    WeakHmacSecret {
        /// The secret's length, in bytes.
        len: usize,
    },
    /// A key (PEM or JWK) that could not be loaded; the source says why.
    InvalidKey(Box<dyn std::error::Error + Send + Sync>),
    /// A JWK that cannot verify signatures with a supported algorithm (encryption key, unknown
    /// key type or curve, unsupported `alg`).
    UnsupportedJwk(&'static str),
    /// A JWK set that is not valid JSON of the expected shape.
    InvalidJwkSet(serde_json::Error),
    /// A JWK set in which no key is usable for signature verification.
    NoUsableJwk,
    /// A value that cannot be put in the `WWW-Authenticate` challenge (it contains `"`, `\` or a
    /// control character, or is empty). Names the parameter.
    InvalidChallengeParameter(&'static str),
    /// An empty issuer or audience string.
    EmptyValue(&'static str),
    /// The same HMAC secret was given to two issuers. A secret belongs to exactly one issuer:
    /// shared, it lets each issuer mint tokens for the other's users.
    SharedHmacSecret {
        /// The issuer that was given the secret first.
        first: String,
        /// The other issuer.
        second: String,
    },
    /// An issuer listed in the protected resource metadata (`authorization_servers`) has no
    /// keys: give it some with `issuer_keys` or `issuer_discovery`.
    IssuerWithoutKeys(String),
    /// An issuer was given both static keys and discovery.
    ConflictingKeySources(String),
    /// An issuer trusted through discovery is neither `https` nor `http` on a loopback host.
    InsecureIssuer(String),
    /// The HTTPS client for discovery could not be built (no usable trust store, ...).
    HttpClient(String),
    /// Not the name of a supported signature algorithm ([`Algorithm`]'s `FromStr`).
    UnknownAlgorithm(String),
    /// Not `off`, `allowed` or `required` ([`DpopPolicy`](super::DpopPolicy)'s `FromStr`).
    UnknownDpopPolicy(String),
    /// A DPoP setting that cannot work: an HMAC algorithm allowed for proofs, no proof
    /// algorithm, an external base URL that is not an absolute `http(s)` URL, or a
    /// [`ProtectedResourceMetadata`](super::ProtectedResourceMetadata) whose DPoP algorithms
    /// are not the layer's. Says which.
    InvalidDpop(&'static str),
}

impl fmt::Display for JwtConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoKeys => f.write_str("no verification key configured"),
            Self::NoAlgorithms => f.write_str("no signature algorithm allowed"),
            Self::NoIssuers => f.write_str("no trusted issuer configured"),
            Self::NoAudience => f.write_str("no audience configured (RFC 8707 requires one)"),
            Self::NoKeyForAlgorithm(alg) => {
                write!(
                    f,
                    "algorithm {alg} is allowed but no configured key can verify it"
                )
            }
            Self::WeakHmacSecret { len } => write!(
                f,
                "HMAC secret is {len} bytes; at least 32 are required (RFC 7518 section 3.2)"
            ),
            Self::InvalidKey(err) => write!(f, "invalid key: {err}"),
            Self::UnsupportedJwk(why) => write!(f, "unsupported JWK: {why}"),
            Self::InvalidJwkSet(err) => write!(f, "invalid JWK set: {err}"),
            Self::NoUsableJwk => f.write_str("the JWK set has no key usable for verification"),
            Self::InvalidChallengeParameter(name) => write!(
                f,
                "`{name}` cannot be sent in WWW-Authenticate (empty, or contains a quote, \
                 backslash or control character)"
            ),
            Self::EmptyValue(name) => write!(f, "empty {name}"),
            Self::SharedHmacSecret { first, second } => write!(
                f,
                "the same HMAC secret is given to issuers {first:?} and {second:?}; \
                 a secret belongs to exactly one issuer"
            ),
            Self::IssuerWithoutKeys(issuer) => write!(
                f,
                "issuer {issuer:?} is listed in the resource metadata but has no keys"
            ),
            Self::ConflictingKeySources(issuer) => write!(
                f,
                "issuer {issuer:?} is given both static keys and discovery"
            ),
            Self::InsecureIssuer(issuer) => write!(
                f,
                "issuer {issuer:?} cannot be trusted through discovery: https only, or http \
                 on a loopback host"
            ),
            Self::HttpClient(why) => write!(f, "cannot build the HTTPS client: {why}"),
            Self::UnknownAlgorithm(name) => {
                write!(f, "{name:?} is not a supported JWS signature algorithm")
            }
            Self::UnknownDpopPolicy(name) => {
                write!(f, "{name:?} is not a DPoP policy (off, allowed, required)")
            }
            Self::InvalidDpop(why) => write!(f, "invalid DPoP setting: {why}"),
        }
    }
}

impl JwtConfigError {
    /// A key the JWT library could not load.
    pub(crate) fn invalid_key(err: jsonwebtoken::errors::Error) -> Self {
        Self::InvalidKey(Box::new(err))
    }
}

impl std::error::Error for JwtConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::InvalidKey(err) => Some(err.as_ref()),
            Self::InvalidJwkSet(err) => Some(err),
            _ => None,
        }
    }
}
