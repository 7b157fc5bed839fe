//! DPoP (RFC 9449): access tokens bound to a key the client holds, with a fresh signed proof on
//! every request. Configured per issuer with
//! [`JwtAuthLayerBuilder::dpop`](super::JwtAuthLayerBuilder::dpop).
//!
//! For a request with `Authorization: DPoP <token>` and one `DPoP` header, after the token
//! itself is verified, the layer checks (RFC 9449 §4.3, §7.1):
//!
//! 1. the proof is one well-formed JWS, at most 8 KiB, with `typ: dpop+jwt`;
//! 2. `alg` is in the DPoP allowlist ([`dpop_algorithms`](super::JwtAuthLayerBuilder::dpop_algorithms)),
//!    never `none` nor HMAC;
//! 3. `jwk` is a public key (no private member) of the type and curve `alg` needs (RSA at least
//!    2048 bits), and the signature verifies with it;
//! 4. `htm` is the request method, `htu` the request URL without query and fragment, after
//!    normalisation (scheme and host case, default port, percent-encodings);
//! 5. `iat` is within the window of now, either way (±5 min by default);
//! 6. `jti` is present, at most 256 bytes, and not seen within the window (the replay cache);
//! 7. `ath` is the base64url SHA-256 of the access token;
//! 8. the token's `cnf.jkt` is the RFC 7638 thumbprint of the proof's `jwk`.
//!
//! And, for an issuer with DPoP [`Allowed`](DpopPolicy::Allowed) or
//! [`Required`](DpopPolicy::Required), the downgrades are refused: a token with `cnf.jkt` sent
//! as `Bearer`, a `DPoP` header with `Authorization: Bearer`, and (when required) any bearer
//! token. The replay cache is checked last, so a refused proof costs no cache entry (and no
//! Redis round trip).
//!
//! Server nonces (`DPoP-Nonce`, RFC 9449 §8) are not issued.

mod proof;
mod replay;

use std::{collections::HashMap, fmt, str::FromStr, sync::Arc, time::Duration};

use http::{HeaderMap, Request, header};

use super::{Algorithm, JwtConfigError, JwtRejection, validate::Verified};

#[cfg(feature = "redis")]
pub(crate) use replay::RedisReplayCache;
pub(crate) use replay::{MemoryReplayCache, Remembered, ReplayCache};

/// Whether an issuer's tokens are DPoP-bound: set per issuer with
/// [`JwtAuthLayerBuilder::dpop`](super::JwtAuthLayerBuilder::dpop).
///
/// ```
/// use mcp_session_binding::jwt::DpopPolicy;
///
/// assert_eq!("required".parse::<DpopPolicy>().unwrap(), DpopPolicy::Required);
/// assert_eq!(DpopPolicy::default(), DpopPolicy::Off);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DpopPolicy {
    /// Bearer tokens only, as without DPoP: `Authorization: DPoP` counts as no token, and a
    /// token with `cnf.jkt` is accepted as a bearer token (RFC 9449 §7.2: a resource unaware of
    /// DPoP).
    #[default]
    Off,
    /// Both: a DPoP-bound token (`cnf.jkt`) must come with a valid proof, a plain token may
    /// come as `Bearer`.
    Allowed,
    /// DPoP only: every token must be DPoP-bound and come with a valid proof.
    Required,
}

impl FromStr for DpopPolicy {
    type Err = JwtConfigError;

    /// `off`, `allowed` or `required`.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "off" => Ok(Self::Off),
            "allowed" => Ok(Self::Allowed),
            "required" => Ok(Self::Required),
            _ => Err(JwtConfigError::UnknownDpopPolicy(name.to_owned())),
        }
    }
}

/// Why a DPoP request (or a bearer request to a DPoP issuer) was refused: the reason of
/// [`JwtRejection::Dpop`]. Each has a stable [`code`](Self::code).
///
/// ```
/// use mcp_session_binding::jwt::{DpopError, JwtRejection};
///
/// let rejection = JwtRejection::Dpop(DpopError::Replayed);
/// assert_eq!(rejection.code(), "dpop_replayed");
/// assert_eq!(rejection.error_code(), Some("invalid_dpop_proof"));
/// assert_eq!(JwtRejection::Dpop(DpopError::KeyMismatch).error_code(), Some("invalid_token"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DpopError {
    /// `Authorization: DPoP` without a `DPoP` header.
    Missing,
    /// More than one `DPoP` header.
    Multiple,
    /// Not a well-formed JWS of at most 8 KiB with JSON header and claims, or a claim (`jti`,
    /// `htm`, `htu`, `iat`) missing or of the wrong type.
    Malformed,
    /// `typ` is not `dpop+jwt`.
    Type,
    /// `alg` is `none`, HMAC, not in the allowlist, or not the algorithm of the `jwk`.
    Algorithm,
    /// `jwk` is missing, not a public key (it has private members), or of an unsupported type,
    /// curve or size.
    Key,
    /// The signature does not verify with the `jwk`.
    Signature,
    /// `htm` is not the request method.
    Method,
    /// `htu` is not the request URL.
    Url,
    /// `iat` is outside the window around now.
    Time,
    /// `ath` is missing or not the hash of the access token.
    TokenHash,
    /// The proof's `jti` was seen within the window: a replay.
    Replayed,
    /// The token's `cnf.jkt` is missing or not the thumbprint of the proof's key.
    KeyMismatch,
    /// The token's issuer does not accept DPoP ([`DpopPolicy::Off`]).
    NotAccepted,
    /// A bearer token for an issuer that requires DPoP.
    Required,
    /// A downgrade: a DPoP-bound token (`cnf.jkt`) or a `DPoP` header with
    /// `Authorization: Bearer`.
    Downgrade,
}

impl DpopError {
    /// A stable, snake_case reason code for logs and metrics (what
    /// [`JwtRejection::code`] returns).
    ///
    /// ```
    /// assert_eq!(mcp_session_binding::jwt::DpopError::Url.code(), "dpop_url");
    /// ```
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Self::Missing => "dpop_missing",
            Self::Multiple => "dpop_multiple",
            Self::Malformed => "dpop_malformed",
            Self::Type => "dpop_type",
            Self::Algorithm => "dpop_algorithm",
            Self::Key => "dpop_key",
            Self::Signature => "dpop_signature",
            Self::Method => "dpop_method",
            Self::Url => "dpop_url",
            Self::Time => "dpop_iat",
            Self::TokenHash => "dpop_ath",
            Self::Replayed => "dpop_replayed",
            Self::KeyMismatch => "dpop_key_mismatch",
            Self::NotAccepted => "dpop_not_accepted",
            Self::Required => "dpop_required",
            Self::Downgrade => "dpop_downgrade",
        }
    }

    /// The `error` of the `WWW-Authenticate: DPoP` challenge: `invalid_token` when the token
    /// is at fault (bound to another key, or not usable this way), `invalid_dpop_proof` when
    /// the proof is.
    pub(crate) fn error_code(self) -> &'static str {
        match self {
            Self::KeyMismatch | Self::NotAccepted | Self::Required | Self::Downgrade => {
                "invalid_token"
            }
            _ => "invalid_dpop_proof",
        }
    }
}

impl fmt::Display for DpopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Missing => "no DPoP proof; send one `DPoP` header",
            Self::Multiple => "more than one DPoP proof",
            Self::Malformed => "the DPoP proof is not a well-formed proof JWT",
            Self::Type => "the DPoP proof's `typ` is not `dpop+jwt`",
            Self::Algorithm => "the DPoP proof's signature algorithm is not accepted",
            Self::Key => "the DPoP proof's `jwk` is not an acceptable public key",
            Self::Signature => "the DPoP proof's signature does not verify",
            Self::Method => "the DPoP proof is for another HTTP method",
            Self::Url => "the DPoP proof is for another URL",
            Self::Time => "the DPoP proof's `iat` is too old or in the future",
            Self::TokenHash => "the DPoP proof is for another access token (`ath`)",
            Self::Replayed => "the DPoP proof was already used",
            Self::KeyMismatch => "the access token is not bound to the DPoP proof's key",
            Self::NotAccepted => "the access token's issuer does not use DPoP",
            Self::Required => "the access token's issuer requires DPoP",
            Self::Downgrade => "a DPoP-bound token or proof was sent with the Bearer scheme",
        })
    }
}

/// The `Authorization` scheme a token came with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scheme {
    Bearer,
    Dpop,
}

/// Whether the request's `Authorization` header uses the `DPoP` scheme.
pub(crate) fn uses_dpop_scheme(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.as_bytes().get(..5))
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case(b"dpop "))
}

/// The DPoP half of the configuration.
pub(crate) struct Dpop {
    /// The issuers whose policy is not [`DpopPolicy::Off`].
    pub(crate) policies: HashMap<String, DpopPolicy>,
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) window: Duration,
    /// The external base URL (`scheme://host[:port][/prefix]`, normalised, no trailing `/`).
    pub(crate) base_url: Option<String>,
    pub(crate) replay: Arc<dyn ReplayCache>,
}

impl fmt::Debug for Dpop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dpop")
            .field("policies", &self.policies)
            .field("algorithms", &self.algorithms)
            .field("window", &self.window)
            .field("base_url", &self.base_url)
            .field("replay", &self.replay)
            .finish()
    }
}

/// What the DPoP checks decided for a verified token.
pub(crate) enum Outcome {
    /// A bearer request that DPoP does not concern.
    Bearer,
    /// A valid proof, remembered: the key's thumbprint.
    Bound(Arc<str>),
    /// A valid proof, whose replay check answers later (Redis).
    Pending(
        Arc<str>,
        futures::future::BoxFuture<'static, Result<bool, tower::BoxError>>,
    ),
}

impl Dpop {
    /// The token and its scheme: `Authorization: Bearer <token>` or `Authorization: DPoP
    /// <token>` (RFC 9449 §7.1), with the rules of
    /// [`bearer_token`](super::validate::bearer_token) for the header and the token.
    pub(crate) fn token(headers: &HeaderMap) -> Result<(Scheme, &str), JwtRejection> {
        if uses_dpop_scheme(headers) {
            return super::validate::token_of(headers, "dpop").map(|token| (Scheme::Dpop, token));
        }
        super::validate::bearer_token(headers).map(|token| (Scheme::Bearer, token))
    }

    /// The DPoP checks of a request whose token verified: the downgrade rules, the proof, the
    /// key binding, and last the replay cache.
    pub(crate) fn check<B>(
        &self,
        request: &Request<B>,
        verified: &Verified,
        now: u64,
    ) -> Result<Outcome, JwtRejection> {
        let headers = request.headers();
        let policy = self
            .policies
            .get(verified.identity.iss())
            .copied()
            .unwrap_or_default();
        let (scheme, token) = Self::token(headers)?;
        let cnf_jkt = verified
            .claims
            .get("cnf")
            .and_then(|cnf| cnf.get("jkt"))
            .and_then(serde_json::Value::as_str);
        let mut proofs = headers.get_all("dpop").iter();
        let refuse = |error| Err(JwtRejection::Dpop(error));
        match (scheme, policy) {
            (Scheme::Bearer, DpopPolicy::Off) => return Ok(Outcome::Bearer),
            (Scheme::Bearer, DpopPolicy::Required) => return refuse(DpopError::Required),
            (Scheme::Bearer, _) if cnf_jkt.is_some() || proofs.next().is_some() => {
                return refuse(DpopError::Downgrade);
            }
            (Scheme::Bearer, _) => return Ok(Outcome::Bearer),
            (Scheme::Dpop, DpopPolicy::Off) => return refuse(DpopError::NotAccepted),
            (Scheme::Dpop, _) => {}
        }
        let Some(proof) = proofs.next() else {
            return refuse(DpopError::Missing);
        };
        if proofs.next().is_some() {
            return refuse(DpopError::Multiple);
        }
        let (url, any_scheme) = self
            .expected_url(request)
            .ok_or(JwtRejection::Dpop(DpopError::Url))?;
        let window = self.window.as_secs();
        let checked = proof::check_proof(
            proof.as_bytes(),
            &proof::Expected {
                method: request.method().as_str(),
                url: &url,
                any_scheme,
                token,
                now,
                window,
                algorithms: &self.algorithms,
            },
        )
        .map_err(JwtRejection::Dpop)?;
        if cnf_jkt != Some(checked.jkt.as_str()) {
            return refuse(DpopError::KeyMismatch);
        }
        // Remembered until `iat` leaves the window, and at least a second.
        let ttl = Duration::from_secs((checked.iat + window + 1).saturating_sub(now).max(1));
        let jkt: Arc<str> = checked.jkt.into();
        match self.replay.remember(checked.replay_key, ttl) {
            Remembered::Fresh => Ok(Outcome::Bound(jkt)),
            Remembered::Replayed => refuse(DpopError::Replayed),
            Remembered::Full => {
                tracing::warn!(
                    reason = "dpop_replay_unavailable",
                    "DPoP proof refused: the replay cache is full"
                );
                Err(JwtRejection::DpopReplayUnavailable)
            }
            Remembered::Later(future) => Ok(Outcome::Pending(jkt, future)),
        }
    }

    /// The URL a proof's `htu` must name: the external base URL and the request path, or the
    /// request's own scheme, `Host` and path (both schemes when the request does not say).
    fn expected_url<B>(&self, request: &Request<B>) -> Option<(String, bool)> {
        let path = request.uri().path();
        if let Some(base) = &self.base_url {
            return Some((proof::normalize_url(&format!("{base}{path}"))?, false));
        }
        let uri = request.uri();
        let authority = match uri.authority() {
            Some(authority) => authority.as_str(),
            None => request.headers().get(header::HOST)?.to_str().ok()?,
        };
        let (scheme, any_scheme) = match uri.scheme_str() {
            Some(scheme) => (scheme, false),
            None => ("http", true),
        };
        Some((
            proof::normalize_url(&format!("{scheme}://{authority}{path}"))?,
            any_scheme,
        ))
    }
}

/// Normalises a configured external base URL: `None` when it is not an absolute `http(s)` URL.
pub(crate) fn normalize_base_url(url: &str) -> Option<String> {
    if url.contains(['?', '#']) {
        return None;
    }
    let normalized = proof::normalize_url(url)?;
    Some(normalized.trim_end_matches('/').to_owned())
}

/// Seconds since the Unix epoch.
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The proof parser with fixed expectations, for the fuzz target.
pub(crate) fn fuzz_check_proof(proof: &[u8], token: &str, now: u64) -> Result<String, DpopError> {
    proof::check_proof(
        proof,
        &proof::Expected {
            method: "POST",
            url: "https://mcp.example/mcp",
            any_scheme: true,
            token,
            now,
            window: 300,
            algorithms: &Algorithm::ASYMMETRIC,
        },
    )
    .map(|proof| proof.jkt)
}

#[cfg(test)]
pub(crate) use proof::tests as proof_tests;
#[cfg(test)]
mod tests;
