//! The signature algorithms the layer can allow, as this crate's own types, so the public API
//! does not change with the major version of the JWT library underneath.

use std::{fmt, str::FromStr};

use super::JwtConfigError;

/// A JWS signature algorithm (RFC 7518 §3, RFC 8037). `none` is not one of them, so it can
/// never be allowed.
///
/// ```
/// use mcp_session_binding::jwt::Algorithm;
///
/// let alg: Algorithm = "ES256".parse().unwrap();
/// assert_eq!(alg, Algorithm::ES256);
/// assert_eq!(alg.to_string(), "ES256");
/// assert!("none".parse::<Algorithm>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[allow(clippy::upper_case_acronyms)]
pub enum Algorithm {
    /// HMAC with SHA-256.
    HS256,
    /// HMAC with SHA-384.
    HS384,
    /// HMAC with SHA-512.
    HS512,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA with P-256 and SHA-256.
    ES256,
    /// ECDSA with P-384 and SHA-384.
    ES384,
    /// EdDSA with Ed25519.
    EdDSA,
}

/// The kind of key an [`Algorithm`] needs; a key verifies only algorithms of its own family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum KeyFamily {
    /// A shared secret (`HS*`).
    Hmac,
    /// An RSA public key (`RS*`, `PS*`).
    Rsa,
    /// An elliptic-curve public key (`ES*`).
    Ec,
    /// An Edwards-curve public key (`EdDSA`).
    Ed,
}

/// Every algorithm, in the order of [`Algorithm`]'s variants.
const ALL: [(Algorithm, &str); 12] = [
    (Algorithm::HS256, "HS256"),
    (Algorithm::HS384, "HS384"),
    (Algorithm::HS512, "HS512"),
    (Algorithm::RS256, "RS256"),
    (Algorithm::RS384, "RS384"),
    (Algorithm::RS512, "RS512"),
    (Algorithm::PS256, "PS256"),
    (Algorithm::PS384, "PS384"),
    (Algorithm::PS512, "PS512"),
    (Algorithm::ES256, "ES256"),
    (Algorithm::ES384, "ES384"),
    (Algorithm::EdDSA, "EdDSA"),
];

impl Algorithm {
    /// Every public-key algorithm: what an OpenID provider may sign access tokens with, and the
    /// default allowlist when every issuer is trusted through discovery.
    ///
    /// ```
    /// use mcp_session_binding::jwt::Algorithm;
    /// assert!(!Algorithm::ASYMMETRIC.contains(&Algorithm::HS256));
    /// ```
    pub const ASYMMETRIC: [Algorithm; 9] = [
        Self::RS256,
        Self::RS384,
        Self::RS512,
        Self::PS256,
        Self::PS384,
        Self::PS512,
        Self::ES256,
        Self::ES384,
        Self::EdDSA,
    ];

    /// The algorithm's name as it appears in a token's `alg` header.
    ///
    /// ```
    /// assert_eq!(mcp_session_binding::jwt::Algorithm::EdDSA.as_str(), "EdDSA");
    /// ```
    #[must_use]
    pub fn as_str(self) -> &'static str {
        ALL.iter()
            .find(|(alg, _)| *alg == self)
            .map_or("", |(_, name)| name)
    }

    /// The kind of key that verifies it.
    pub(crate) fn family(self) -> KeyFamily {
        match self {
            Self::HS256 | Self::HS384 | Self::HS512 => KeyFamily::Hmac,
            Self::RS256 | Self::RS384 | Self::RS512 | Self::PS256 | Self::PS384 | Self::PS512 => {
                KeyFamily::Rsa
            }
            Self::ES256 | Self::ES384 => KeyFamily::Ec,
            Self::EdDSA => KeyFamily::Ed,
        }
    }

    /// The same algorithm in the JWT library's terms.
    pub(crate) fn to_jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        use jsonwebtoken::Algorithm as J;
        match self {
            Self::HS256 => J::HS256,
            Self::HS384 => J::HS384,
            Self::HS512 => J::HS512,
            Self::RS256 => J::RS256,
            Self::RS384 => J::RS384,
            Self::RS512 => J::RS512,
            Self::PS256 => J::PS256,
            Self::PS384 => J::PS384,
            Self::PS512 => J::PS512,
            Self::ES256 => J::ES256,
            Self::ES384 => J::ES384,
            Self::EdDSA => J::EdDSA,
        }
    }
}

impl Algorithm {
    /// An algorithm of the JWT library's, if it is one of ours.
    pub(crate) fn from_jsonwebtoken(alg: jsonwebtoken::Algorithm) -> Option<Self> {
        ALL.iter()
            .map(|(ours, _)| *ours)
            .find(|ours| ours.to_jsonwebtoken() == alg)
    }
}

impl KeyFamily {
    /// The family of a key the JWT library loaded.
    pub(crate) fn of(family: jsonwebtoken::AlgorithmFamily) -> Self {
        match family {
            jsonwebtoken::AlgorithmFamily::Hmac => Self::Hmac,
            jsonwebtoken::AlgorithmFamily::Rsa => Self::Rsa,
            jsonwebtoken::AlgorithmFamily::Ec => Self::Ec,
            jsonwebtoken::AlgorithmFamily::Ed => Self::Ed,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses an `alg` name (case-sensitive, as in RFC 7515), for an allowlist read from
/// configuration. An unknown name, `none` included, is [`JwtConfigError::UnknownAlgorithm`].
impl FromStr for Algorithm {
    type Err = JwtConfigError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        ALL.iter()
            .find(|(_, n)| *n == name)
            .map(|(alg, _)| *alg)
            .ok_or_else(|| JwtConfigError::UnknownAlgorithm(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_the_jwt_library() {
        for (alg, name) in ALL {
            assert_eq!(alg.as_str(), name);
            assert_eq!(name.parse::<Algorithm>().unwrap(), alg);
            let theirs = alg.to_jsonwebtoken();
            assert_eq!(name.parse::<jsonwebtoken::Algorithm>().unwrap(), theirs);
            assert_eq!(KeyFamily::of(theirs.family()), alg.family());
        }
    }
}
