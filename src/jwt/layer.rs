//! [`JwtAuthLayer`] and its builder.

use std::{collections::HashSet, fmt, sync::Arc, time::Duration};

use jsonwebtoken::{Algorithm, Validation};
use tower::Layer;

use super::{
    JwtAuth, JwtConfigError, JwtKey, JwtKeys, ProtectedResourceMetadata, RevocationCheck,
    reject::{Rejector, is_quotable},
    validate::Verifier,
};

/// Default clock-skew leeway for `exp` and `nbf`.
const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);
/// Default time the revocation check gets before the layer answers 503.
const DEFAULT_REVOCATION_TIMEOUT: Duration = Duration::from_secs(5);
/// Default `Retry-After` of a 503.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Everything a [`JwtAuth`] service needs, shared by all its clones.
pub(crate) struct Config {
    pub(crate) verifier: Verifier,
    pub(crate) rejector: Rejector,
    pub(crate) revocation: Option<Arc<dyn RevocationCheck>>,
    pub(crate) revocation_timeout: Duration,
    pub(crate) allow_missing_token: bool,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("verifier", &self.verifier)
            .field("rejector", &self.rejector)
            .field("revocation", &self.revocation.is_some())
            .field("revocation_timeout", &self.revocation_timeout)
            .field("allow_missing_token", &self.allow_missing_token)
            .finish()
    }
}

/// Tower layer that authenticates every request with a JWT bearer access token.
///
/// Build it with [`JwtAuthLayer::builder`]. See the [module docs](super) for what is checked and
/// how failures are answered.
///
/// ```
/// use std::time::Duration;
/// use mcp_session_binding::jwt::{JwtAuthLayer, JwtKey, jsonwebtoken::Algorithm};
///
/// let layer = JwtAuthLayer::builder()
///     .key(JwtKey::hmac(b"0123456789abcdef0123456789abcdef")?)
///     .algorithm(Algorithm::HS256)
///     .issuer("https://auth.example.com")
///     .audience("https://mcp.example.com/mcp")
///     .resource_metadata("https://mcp.example.com/.well-known/oauth-protected-resource/mcp")
///     .leeway(Duration::from_secs(30))
///     .build()?;
/// # let _ = layer;
/// # Ok::<(), mcp_session_binding::jwt::JwtConfigError>(())
/// ```
#[derive(Clone)]
pub struct JwtAuthLayer {
    config: Arc<Config>,
}

impl JwtAuthLayer {
    /// Starts a builder. Keys, algorithms, issuers and the audience are required.
    pub fn builder() -> JwtAuthLayerBuilder {
        JwtAuthLayerBuilder::default()
    }
}

impl<S> Layer<S> for JwtAuthLayer {
    type Service = JwtAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        JwtAuth::from_config(inner, self.config.clone())
    }
}

impl fmt::Debug for JwtAuthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuthLayer")
            .field("config", &self.config)
            .finish()
    }
}

/// Builder of [`JwtAuthLayer`].
///
/// Required: at least one key, one algorithm, one trusted issuer and one audience. Everything
/// else has a default: leeway 60 s, no `typ` check, no revocation check, revocation timeout
/// 5 s, `Retry-After: 1`, no `resource_metadata` (set it: MCP clients discover the authorization
/// server through it).
///
/// ```
/// use mcp_session_binding::jwt::{JwtAuthLayer, JwtKey, jsonwebtoken::Algorithm};
///
/// let ec_public_pem = concat!(
///     "-----BEGIN PUBLIC KEY-----\n",
///     "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEKQwhGpvUjyxcx7sFx4cT7ch6zmwT\n",
///     "9zMTXQDvWn2DZGTddbV9GyY/yEz0emMXJprOa08ZL/7tdEEXnLAmwuX7RA==\n",
///     "-----END PUBLIC KEY-----\n",
/// );
/// let layer = JwtAuthLayer::builder()
///     .key(JwtKey::ec_pem(ec_public_pem)?.with_kid("2024-05"))
///     .algorithms([Algorithm::ES256])
///     .issuers(["https://auth.example.com", "https://auth2.example.com"])
///     .audience("https://mcp.example.com/mcp")
///     .require_access_token_type(true)
///     .revocation(|jti: String| async move { Ok::<_, std::io::Error>(jti == "revoked") })
///     .build()?;
/// # let _ = layer;
/// # Ok::<(), mcp_session_binding::jwt::JwtConfigError>(())
/// ```
#[must_use]
pub struct JwtAuthLayerBuilder {
    keys: JwtKeys,
    algorithms: Vec<Algorithm>,
    issuers: Vec<String>,
    audiences: Vec<String>,
    leeway: Duration,
    require_access_token_type: bool,
    revocation: Option<Arc<dyn RevocationCheck>>,
    revocation_timeout: Duration,
    retry_after: Duration,
    resource_metadata: Option<String>,
    scope: Option<String>,
    allow_missing_token: bool,
}

impl Default for JwtAuthLayerBuilder {
    fn default() -> Self {
        Self {
            keys: JwtKeys::new(),
            algorithms: Vec::new(),
            issuers: Vec::new(),
            audiences: Vec::new(),
            leeway: DEFAULT_LEEWAY,
            require_access_token_type: false,
            revocation: None,
            revocation_timeout: DEFAULT_REVOCATION_TIMEOUT,
            retry_after: DEFAULT_RETRY_AFTER,
            allow_missing_token: false,
            resource_metadata: None,
            scope: None,
        }
    }
}

impl fmt::Debug for JwtAuthLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuthLayerBuilder")
            .field("keys", &self.keys)
            .field("algorithms", &self.algorithms)
            .field("issuers", &self.issuers)
            .field("audiences", &self.audiences)
            .field("leeway", &self.leeway)
            .field("require_access_token_type", &self.require_access_token_type)
            .field("revocation", &self.revocation.is_some())
            .field("revocation_timeout", &self.revocation_timeout)
            .field("retry_after", &self.retry_after)
            .field("resource_metadata", &self.resource_metadata)
            .field("scope", &self.scope)
            .finish()
    }
}

impl JwtAuthLayerBuilder {
    /// Adds a verification key.
    pub fn key(mut self, key: JwtKey) -> Self {
        self.keys.push(key);
        self
    }

    /// Adds verification keys (for example a JWK set loaded with
    /// [`JwtKeys::from_jwk_set_json`]).
    pub fn keys(mut self, keys: impl IntoIterator<Item = JwtKey>) -> Self {
        self.keys.extend(keys);
        self
    }

    /// Allows a signature algorithm. `none` cannot be allowed.
    pub fn algorithm(mut self, algorithm: Algorithm) -> Self {
        if !self.algorithms.contains(&algorithm) {
            self.algorithms.push(algorithm);
        }
        self
    }

    /// Allows several signature algorithms.
    pub fn algorithms(self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        algorithms.into_iter().fold(self, Self::algorithm)
    }

    /// Trusts an issuer: the token's `iss` must equal one of them exactly (RFC 9068 §4).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers.push(issuer.into());
        self
    }

    /// Trusts several issuers.
    pub fn issuers<I>(self, issuers: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        issuers.into_iter().fold(self, Self::issuer)
    }

    /// Accepts an audience: the token's `aud` (a string or an array) must contain one of them
    /// exactly. Use this server's canonical resource URI (RFC 8707; MCP: without a trailing
    /// slash).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Accepts several audiences.
    pub fn audiences<I>(self, audiences: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        audiences.into_iter().fold(self, Self::audience)
    }

    /// Takes the `resource_metadata` URL, the audience and the trusted issuers from a protected
    /// resource metadata document: its [well-known URL](ProtectedResourceMetadata::well_known_url),
    /// its `resource` and its `authorization_servers` (RFC 9728 §2: these are issuer
    /// identifiers).
    pub fn protected_resource(mut self, metadata: &ProtectedResourceMetadata) -> Self {
        self.resource_metadata = Some(metadata.well_known_url());
        self = self.audience(metadata.resource());
        self.issuers(metadata.authorization_servers().iter().cloned())
    }

    /// Lets a request **without** an `Authorization` header through with no identity (default
    /// `false`: 401). For anonymous sessions with
    /// [`SessionBindingLayer::allow_anonymous`](crate::SessionBindingLayer::allow_anonymous): a
    /// token that is sent is still validated (401 when invalid), and a malformed header is still
    /// 400.
    ///
    /// ```
    /// use mcp_session_binding::jwt::{JwtAuthLayer, JwtKey, jsonwebtoken::Algorithm};
    ///
    /// let layer = JwtAuthLayer::builder()
    ///     .key(JwtKey::hmac(b"0123456789abcdef0123456789abcdef").unwrap())
    ///     .algorithm(Algorithm::HS256)
    ///     .issuer("https://auth.example.com")
    ///     .audience("https://mcp.example.com/mcp")
    ///     .allow_missing_token(true)
    ///     .build()
    ///     .unwrap();
    /// # let _ = layer;
    /// ```
    pub fn allow_missing_token(mut self, allow: bool) -> Self {
        self.allow_missing_token = allow;
        self
    }

    /// Clock-skew leeway for `exp` and `nbf`, whole seconds (default 60 s). RFC 9068 advises "no
    /// more than a few minutes".
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Requires the header `typ` to be `at+jwt` or `application/at+jwt` (RFC 9068 §4), so that an
    /// ID token or another JWT from the same issuer is not accepted as an access token. Off by
    /// default, as not every authorization server sets it.
    pub fn require_access_token_type(mut self, require: bool) -> Self {
        self.require_access_token_type = require;
        self
    }

    /// Checks every token's `jti` against a revocation check, which fails closed: see
    /// [`RevocationCheck`]. A closure `Fn(String) -> impl Future<Output = Result<bool, E>>` works.
    ///
    /// The check's timeout uses the tokio timer: the service must run on a tokio runtime with
    /// time enabled (axum and hyper-util servers do).
    pub fn revocation(mut self, check: impl RevocationCheck) -> Self {
        self.revocation = Some(Arc::new(check));
        self
    }

    /// Like [`revocation`](Self::revocation), with a check already behind an `Arc`.
    pub fn revocation_shared(mut self, check: Arc<dyn RevocationCheck>) -> Self {
        self.revocation = Some(check);
        self
    }

    /// How long the revocation check may take before the layer answers 503 (default 5 s).
    pub fn revocation_timeout(mut self, timeout: Duration) -> Self {
        self.revocation_timeout = timeout;
        self
    }

    /// `Retry-After` of the 503 sent when the revocation check fails, whole seconds (default 1).
    pub fn retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// URL of this server's protected resource metadata, sent as `resource_metadata` in every
    /// `WWW-Authenticate` challenge (RFC 9728 §5.1). MCP clients use it to find the
    /// authorization server.
    pub fn resource_metadata(mut self, url: impl Into<String>) -> Self {
        self.resource_metadata = Some(url.into());
        self
    }

    /// Scopes to name in the challenge's `scope` parameter (space separated), which MCP
    /// (2025-11-25) says servers SHOULD send. The layer does not check scopes.
    pub fn challenge_scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// Builds the layer.
    ///
    /// # Errors
    ///
    /// [`JwtConfigError`] when a required setting is missing, an allowed algorithm has no key,
    /// an issuer or audience is empty, or `resource_metadata`/`scope` cannot be quoted.
    pub fn build(self) -> Result<JwtAuthLayer, JwtConfigError> {
        if self.keys.is_empty() {
            return Err(JwtConfigError::NoKeys);
        }
        if self.algorithms.is_empty() {
            return Err(JwtConfigError::NoAlgorithms);
        }
        if let Some(&alg) = self
            .algorithms
            .iter()
            .find(|&&alg| !self.keys.iter().any(|key| key.can_verify(alg)))
        {
            return Err(JwtConfigError::NoKeyForAlgorithm(alg));
        }
        if self.issuers.is_empty() {
            return Err(JwtConfigError::NoIssuers);
        }
        if self.issuers.iter().any(String::is_empty) {
            return Err(JwtConfigError::EmptyValue("issuer"));
        }
        if self.audiences.is_empty() {
            return Err(JwtConfigError::NoAudience);
        }
        if self.audiences.iter().any(String::is_empty) {
            return Err(JwtConfigError::EmptyValue("audience"));
        }
        if let Some(url) = &self.resource_metadata
            && !is_quotable(url)
        {
            return Err(JwtConfigError::InvalidChallengeParameter(
                "resource_metadata",
            ));
        }
        if let Some(scope) = &self.scope
            && !is_quotable(scope)
        {
            return Err(JwtConfigError::InvalidChallengeParameter("scope"));
        }

        let issuers: HashSet<String> = self.issuers.into_iter().collect();
        let audiences: HashSet<String> = self.audiences.into_iter().collect();
        let validations = self
            .algorithms
            .iter()
            .map(|&alg| {
                let mut validation = Validation::new(alg);
                validation.leeway = self.leeway.as_secs();
                validation.validate_exp = true;
                validation.validate_nbf = true;
                validation.validate_aud = true;
                validation.set_required_spec_claims(&["exp", "iss", "aud"]);
                validation.iss = Some(issuers.clone());
                validation.aud = Some(audiences.clone());
                (alg, validation)
            })
            .collect();

        let config = Config {
            verifier: Verifier {
                keys: self.keys,
                validations,
                require_access_token_type: self.require_access_token_type,
            },
            rejector: Rejector::new(
                self.resource_metadata.as_deref(),
                self.scope.as_deref(),
                self.retry_after.as_secs(),
            ),
            revocation: self.revocation,
            revocation_timeout: self.revocation_timeout,
            allow_missing_token: self.allow_missing_token,
        };
        Ok(JwtAuthLayer {
            config: Arc::new(config),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> JwtAuthLayerBuilder {
        JwtAuthLayer::builder()
            .key(JwtKey::hmac([1u8; 32]).unwrap())
            .algorithm(Algorithm::HS256)
            .issuer("https://i.example")
            .audience("https://mcp.example/mcp")
    }

    #[test]
    fn required_settings_are_enforced() {
        assert!(base().build().is_ok());
        assert!(matches!(
            JwtAuthLayer::builder().build(),
            Err(JwtConfigError::NoKeys)
        ));
        assert!(matches!(
            base().algorithm(Algorithm::RS256).build(),
            Err(JwtConfigError::NoKeyForAlgorithm(Algorithm::RS256))
        ));
        assert!(matches!(
            base().issuer("").build(),
            Err(JwtConfigError::EmptyValue("issuer"))
        ));
        assert!(matches!(
            base().resource_metadata("https://x/\"").build(),
            Err(JwtConfigError::InvalidChallengeParameter(
                "resource_metadata"
            ))
        ));
    }

    #[test]
    fn protected_resource_sets_audience_issuers_and_metadata_url() {
        let metadata = ProtectedResourceMetadata::new(
            "https://mcp.example.com/mcp",
            ["https://auth.example.com"],
        );
        let layer = JwtAuthLayer::builder()
            .key(JwtKey::hmac([1u8; 32]).unwrap())
            .algorithm(Algorithm::HS256)
            .protected_resource(&metadata)
            .build()
            .unwrap();
        let (_, validation) = &layer.config.verifier.validations[0];
        assert!(
            validation
                .aud
                .as_ref()
                .unwrap()
                .contains("https://mcp.example.com/mcp")
        );
        assert!(
            validation
                .iss
                .as_ref()
                .unwrap()
                .contains("https://auth.example.com")
        );
    }
}
