//! [`JwtAuthLayer`] and its builder.

use std::{
    collections::{HashMap, HashSet},
    fmt,
    sync::Arc,
    time::Duration,
};

use jsonwebtoken::Validation;

use super::Algorithm;
use tower::Layer;

use super::{
    JwtAuth, JwtConfigError, JwtKeys, ProtectedResourceMetadata, RevocationCheck,
    config::Config,
    reject::{Rejector, is_quotable},
    validate::{KeySource, Verifier},
};

/// Default clock-skew leeway for `exp` and `nbf`.
const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);
/// Default time the revocation check gets before the layer answers 503.
const DEFAULT_REVOCATION_TIMEOUT: Duration = Duration::from_secs(5);
/// Default `Retry-After` of a 503.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Tower layer that authenticates every request with a JWT bearer access token.
///
/// Build it with [`JwtAuthLayer::builder`]. See the [module docs](super) for what is checked and
/// how failures are answered.
///
/// ```
/// use std::time::Duration;
/// use mcp_session_binding::jwt::{Algorithm, JwtAuthLayer, JwtKey};
///
/// let layer = JwtAuthLayer::builder()
///     .issuer_keys("https://auth.example.com", JwtKey::hmac(b"0123456789abcdef0123456789abcdef")?)
///     .algorithms([Algorithm::HS256])
///     .audiences(["https://mcp.example.com/mcp"])
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
    /// Starts a builder. Issuers with their keys, algorithms and the audience are required.
    pub fn builder() -> JwtAuthLayerBuilder {
        JwtAuthLayerBuilder::default()
    }

    /// The trusted issuers, sorted, each with the key ids (`kid`) it has now (`None` for a key
    /// without one). An issuer trusted through discovery whose keys were not fetched yet has
    /// an empty list.
    ///
    /// ```
    /// use mcp_session_binding::jwt::{Algorithm, JwtAuthLayer, JwtKey};
    ///
    /// let layer = JwtAuthLayer::builder()
    ///     .issuer_keys("https://a.example", JwtKey::hmac([1u8; 32])?.with_kid("k1"))
    ///     .algorithms([Algorithm::HS256])
    ///     .audiences(["mcp"])
    ///     .build()?;
    /// assert_eq!(
    ///     layer.key_ids(),
    ///     vec![("https://a.example".to_owned(), vec![Some("k1".to_owned())])]
    /// );
    /// # Ok::<(), mcp_session_binding::jwt::JwtConfigError>(())
    /// ```
    #[must_use]
    pub fn key_ids(&self) -> Vec<(String, Vec<Option<String>>)> {
        let mut issuers: Vec<_> = self
            .config
            .verifier
            .issuers
            .iter()
            .map(|(issuer, source)| {
                let kids =
                    |keys: &JwtKeys| keys.iter().map(|k| k.kid().map(str::to_owned)).collect();
                let kids = match source {
                    KeySource::Static(keys) => kids(keys),
                    #[cfg(feature = "oidc")]
                    KeySource::Remote(remote) => {
                        remote.current().map(|k| kids(&k)).unwrap_or_default()
                    }
                };
                (issuer.clone(), kids)
            })
            .collect();
        issuers.sort();
        issuers
    }

    /// Fetches the keys of every issuer trusted through discovery now, concurrently, and waits
    /// for them (feature `oidc`). Call it at start-up to fail fast and to log the keys before
    /// serving; without it, the first request of each issuer fetches them. Needs a tokio
    /// runtime.
    ///
    /// # Errors
    ///
    /// The first issuer whose discovery document or JWK set could not be fetched or was
    /// refused, with the reason. The other issuers' keys are loaded all the same.
    #[cfg(feature = "oidc")]
    #[cfg_attr(docsrs, doc(cfg(feature = "oidc")))]
    pub async fn fetch_keys(&self) -> Result<(), super::IssuerKeysError> {
        let remotes: Vec<_> = self
            .config
            .verifier
            .issuers
            .values()
            .filter_map(|source| match source {
                KeySource::Remote(remote) => Some(remote.clone()),
                KeySource::Static(_) => None,
            })
            .collect();
        let flights: Vec<_> = remotes.iter().map(|r| r.fetch_now("start-up")).collect();
        futures::future::join_all(flights).await;
        let mut remotes = remotes;
        remotes.sort_by(|a, b| a.issuer().cmp(b.issuer()));
        for remote in remotes {
            if let Some(error) = remote.last_error() {
                return Err(super::IssuerKeysError::new(
                    remote.issuer().to_owned(),
                    error,
                ));
            }
        }
        Ok(())
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
/// Required: at least one trusted issuer **with its keys** ([`issuer_keys`](Self::issuer_keys),
/// or [`issuer_discovery`](Self::issuer_discovery) with the `oidc` feature), one algorithm and
/// one audience. A token is verified only with the keys of the issuer its `iss` names, so an
/// issuer's key can never vouch for another issuer's users. Everything else has a default:
/// leeway 60 s, no `typ` check, no scope check, no revocation check, revocation timeout 5 s,
/// `Retry-After: 1`, no `resource_metadata` (set it: MCP clients discover the authorization
/// server through it).
///
/// Migrating from the builder of 0.1 (`.key(k).issuer(i)`): write `.issuer_keys(i, k)`, once
/// per issuer, each with its own keys.
///
/// ```
/// use mcp_session_binding::jwt::{Algorithm, JwtAuthLayer, JwtKey};
///
/// let ec_public_pem = concat!(
///     "-----BEGIN PUBLIC KEY-----\n",
///     "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEKQwhGpvUjyxcx7sFx4cT7ch6zmwT\n",
///     "9zMTXQDvWn2DZGTddbV9GyY/yEz0emMXJprOa08ZL/7tdEEXnLAmwuX7RA==\n",
///     "-----END PUBLIC KEY-----\n",
/// );
/// let layer = JwtAuthLayer::builder()
///     .issuer_keys("https://auth.example.com", JwtKey::ec_pem(ec_public_pem)?.with_kid("2024-05"))
///     .issuer_keys("https://auth2.example.com", JwtKey::hmac([7u8; 32])?)
///     .algorithms([Algorithm::ES256, Algorithm::HS256])
///     .audiences(["https://mcp.example.com/mcp"])
///     .require_access_token_type(true)
///     .revocation(|jti: String| async move { Ok::<_, std::io::Error>(jti == "revoked") })
///     .build()?;
/// # let _ = layer;
/// # Ok::<(), mcp_session_binding::jwt::JwtConfigError>(())
/// ```
#[must_use]
pub struct JwtAuthLayerBuilder {
    /// Issuers in the order given, with their static keys (`None`: discovery).
    issuers: Vec<(String, Option<JwtKeys>)>,
    algorithms: Vec<Algorithm>,
    audiences: Vec<String>,
    /// Issuers a protected resource metadata document lists; each needs keys.
    listed_issuers: Vec<String>,
    leeway: Duration,
    require_access_token_type: bool,
    revocation: Option<Arc<dyn RevocationCheck>>,
    revocation_timeout: Duration,
    retry_after: Duration,
    resource_metadata: Option<String>,
    scope: Option<String>,
    required_scopes: Vec<String>,
    allow_missing_token: bool,
    jwks_refetch_interval: Duration,
    jwks_max_stale: Duration,
    jwks_fetch_timeout: Duration,
    /// Issuers trusted through introspection, in the order given.
    #[cfg(feature = "oidc")]
    introspected: Vec<(String, super::Introspection)>,
    dpop: DpopSettings,
}

/// The DPoP settings of the builder.
#[derive(Debug)]
struct DpopSettings {
    policies: Vec<(String, super::DpopPolicy)>,
    algorithms: Vec<Algorithm>,
    window: Duration,
    base_url: Option<String>,
    replay_capacity: usize,
    replay: Option<Arc<dyn super::dpop::ReplayCache>>,
    /// What the protected resource metadata document says: its algorithms and `required`.
    metadata: Option<(Vec<&'static str>, bool)>,
}

impl Default for DpopSettings {
    fn default() -> Self {
        Self {
            policies: Vec::new(),
            algorithms: Vec::new(),
            window: Duration::from_secs(300),
            base_url: None,
            replay_capacity: 1_000_000,
            replay: None,
            metadata: None,
        }
    }
}

/// The DPoP proof algorithms allowed when none are set.
const DEFAULT_DPOP_ALGORITHMS: [Algorithm; 5] = [
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
    Algorithm::RS256,
    Algorithm::PS256,
];

/// Default least time between two request-triggered key fetches of one issuer.
pub(crate) const DEFAULT_JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// Default time the last good keys of an issuer keep serving, counted from their fetch.
pub(crate) const DEFAULT_JWKS_MAX_STALE: Duration = Duration::from_secs(3600);
/// Default bound of one discovery or JWK set request, body included.
pub(crate) const DEFAULT_JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(10);

impl Default for JwtAuthLayerBuilder {
    fn default() -> Self {
        Self {
            issuers: Vec::new(),
            algorithms: Vec::new(),
            audiences: Vec::new(),
            listed_issuers: Vec::new(),
            leeway: DEFAULT_LEEWAY,
            require_access_token_type: false,
            revocation: None,
            revocation_timeout: DEFAULT_REVOCATION_TIMEOUT,
            retry_after: DEFAULT_RETRY_AFTER,
            allow_missing_token: false,
            resource_metadata: None,
            scope: None,
            required_scopes: Vec::new(),
            jwks_refetch_interval: DEFAULT_JWKS_REFETCH_INTERVAL,
            jwks_max_stale: DEFAULT_JWKS_MAX_STALE,
            jwks_fetch_timeout: DEFAULT_JWKS_FETCH_TIMEOUT,
            #[cfg(feature = "oidc")]
            introspected: Vec::new(),
            dpop: DpopSettings::default(),
        }
    }
}

impl fmt::Debug for JwtAuthLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuthLayerBuilder")
            .field("issuers", &self.issuers)
            .field("algorithms", &self.algorithms)
            .field("audiences", &self.audiences)
            .field("leeway", &self.leeway)
            .field("require_access_token_type", &self.require_access_token_type)
            .field("revocation", &self.revocation.is_some())
            .field("revocation_timeout", &self.revocation_timeout)
            .field("retry_after", &self.retry_after)
            .field("resource_metadata", &self.resource_metadata)
            .field("scope", &self.scope)
            .field("required_scopes", &self.required_scopes)
            .field("dpop", &self.dpop)
            .finish_non_exhaustive()
    }
}

impl JwtAuthLayerBuilder {
    /// Trusts `issuer` (the token's `iss` must equal it exactly, RFC 9068 §4) and verifies its
    /// tokens with `keys`, and only its tokens: a key given here never verifies a token that
    /// names another issuer. Calling it again for the same issuer adds keys.
    ///
    /// `keys` is a [`JwtKey`](super::JwtKey), a [`JwtKeys`] (a JWK set from [`JwtKeys::from_jwk_set_json`]) or
    /// a `Vec<JwtKey>`.
    pub fn issuer_keys(mut self, issuer: impl Into<String>, keys: impl Into<JwtKeys>) -> Self {
        let issuer = issuer.into();
        let keys = keys.into();
        match self.issuers.iter_mut().find(|(i, _)| *i == issuer) {
            Some((_, Some(existing))) => existing.extend(keys),
            // Already trusted through discovery: `build` reports the conflict.
            Some((_, None)) => self.issuers.push((issuer, Some(keys))),
            None => self.issuers.push((issuer, Some(keys))),
        }
        self
    }

    /// Trusts `issuer` through RFC 7662 token introspection (feature `oidc`): its tokens, opaque
    /// or not, are judged by its introspection endpoint's answer rather than by a signature.
    /// One server can trust issuers of both kinds; see [`Introspection`](super::Introspection)
    /// for the endpoint, the credentials and the cache.
    ///
    /// An active answer must name this issuer in `iss` (or none), one of the
    /// [audiences](Self::audiences) in `aud` (or, without `aud`, in the RFC 8707 `resource`),
    /// hold its `exp` and `nbf` (with the [leeway](Self::leeway)), and a `sub` (or the
    /// configured [fallback](super::Introspection::subject_fallback)); then the
    /// [scopes](Self::required_scopes) and the [revocation check](Self::revocation) apply as
    /// for JWTs, on the answer's members. An inactive or malformed answer gets 401
    /// (`inactive`); an endpoint that fails, is slow or answers too much, 503 with
    /// `Retry-After` (`introspection_unavailable`): a token is never admitted without an
    /// answer.
    ///
    /// A token that is not a JWT goes to every introspected issuer in the order given until one
    /// says it is active; a JWT goes only to the issuer its `iss` names. `issuer` must be
    /// `https`, or `http` on a loopback host. Calls run as tokio tasks.
    #[cfg(feature = "oidc")]
    #[cfg_attr(docsrs, doc(cfg(feature = "oidc")))]
    pub fn issuer_introspection(
        mut self,
        issuer: impl Into<String>,
        introspection: super::Introspection,
    ) -> Self {
        self.introspected.push((issuer.into(), introspection));
        self
    }

    /// Trusts `issuer` through OpenID Connect discovery (feature `oidc`): its keys come from
    /// the JWK set named by `{issuer}/.well-known/openid-configuration` (or, failing that, the
    /// RFC 8414 `/.well-known/oauth-authorization-server` document), whose `issuer` must equal
    /// `issuer` exactly.
    ///
    /// The keys are fetched on first use (or with [`JwtAuthLayer::fetch_keys`]), refreshed in
    /// the background as the JWK set's `Cache-Control: max-age` says (clamped to 5 min..24 h),
    /// and refetched when a token names an unknown `kid`, at most once per
    /// [`jwks_refetch_interval`](Self::jwks_refetch_interval) per issuer, one fetch shared by
    /// all waiting requests. When the provider cannot be reached, the last good keys serve for
    /// [`jwks_max_stale`](Self::jwks_max_stale); after that its tokens get 503 with
    /// `Retry-After`. `issuer` must be `https`, or `http` on a loopback host (development).
    ///
    /// Published keys are used for signatures only: `use` other than `sig`, symmetric keys,
    /// RSA keys under 2048 bits and unknown key types are ignored; a set with duplicate `kid`s,
    /// over 100 keys or over 256 KiB is refused as a whole (the last good keys stay).
    ///
    /// When no algorithm is set, RS256/384/512, PS256/384/512, ES256/384 and EdDSA are allowed.
    /// A token's `alg` must match its key's type, curve and `alg`.
    ///
    /// Fetches run as tokio tasks: the service must run on a tokio runtime (axum and
    /// hyper-util servers do). Logs (`tracing`) name the issuer and its key ids when they are
    /// loaded or change, and every failed fetch with its reason.
    #[cfg(feature = "oidc")]
    #[cfg_attr(docsrs, doc(cfg(feature = "oidc")))]
    pub fn issuer_discovery(mut self, issuer: impl Into<String>) -> Self {
        self.issuers.push((issuer.into(), None));
        self
    }

    /// Least time between two key fetches of one issuer triggered by requests (an unknown
    /// `kid`, stale keys); default 30 s. A token signed with a new key is accepted at most this
    /// long after it is first presented, and tokens with made-up `kid`s cannot make the layer
    /// fetch more often than this. Feature `oidc`.
    #[cfg(feature = "oidc")]
    #[cfg_attr(docsrs, doc(cfg(feature = "oidc")))]
    pub fn jwks_refetch_interval(mut self, interval: Duration) -> Self {
        self.jwks_refetch_interval = interval;
        self
    }

    /// How long an issuer's last good keys keep verifying tokens, counted from their last
    /// successful fetch (default 1 h: a provider outage that short goes unnoticed, while a key
    /// the provider withdrew stops verifying within the hour). Older keys are used only after a
    /// fetch succeeds; when it fails, the issuer's tokens get 503 with `Retry-After`. Feature
    /// `oidc`.
    #[cfg(feature = "oidc")]
    #[cfg_attr(docsrs, doc(cfg(feature = "oidc")))]
    pub fn jwks_max_stale(mut self, max_stale: Duration) -> Self {
        self.jwks_max_stale = max_stale;
        self
    }

    /// Bound of each discovery or JWK set request, connection and body included (default 10 s:
    /// requests that wait for a fetch wait at most this long). Feature `oidc`.
    #[cfg(feature = "oidc")]
    #[cfg_attr(docsrs, doc(cfg(feature = "oidc")))]
    pub fn jwks_fetch_timeout(mut self, timeout: Duration) -> Self {
        self.jwks_fetch_timeout = timeout;
        self
    }

    /// Allows these signature algorithms; call it again to allow more. `none` cannot be allowed.
    ///
    /// Required with static keys: each allowed algorithm needs a key that can verify it, or
    /// [`build`](Self::build) fails (a typo would otherwise refuse every token). With discovery
    /// only, the default is every asymmetric algorithm ([`Algorithm::ASYMMETRIC`]): an issuer's
    /// published keys are asymmetric, and each token's `alg` must still match its key.
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        for algorithm in algorithms {
            if !self.algorithms.contains(&algorithm) {
                self.algorithms.push(algorithm);
            }
        }
        self
    }

    /// Accepts these audiences (required; call it again to accept more): the token's `aud` (a
    /// string or an array) must contain one of them exactly. Use this server's canonical
    /// resource URI (RFC 8707; MCP: without a trailing slash).
    /// [`protected_resource`](Self::protected_resource) adds the document's `resource`.
    ///
    /// ```
    /// use mcp_session_binding::jwt::{Algorithm, JwtAuthLayer, JwtConfigError, JwtKey};
    ///
    /// let builder = || {
    ///     JwtAuthLayer::builder()
    ///         .issuer_keys("https://auth.example.com", JwtKey::hmac([7u8; 32]).unwrap())
    ///         .algorithms([Algorithm::HS256])
    /// };
    /// assert!(matches!(builder().build(), Err(JwtConfigError::NoAudience)));
    /// assert!(builder().audiences(["https://mcp.example.com/mcp"]).build().is_ok());
    /// ```
    pub fn audiences<I>(mut self, audiences: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.audiences.extend(audiences.into_iter().map(Into::into));
        self
    }

    /// Names this server's protected resource metadata document (RFC 9728), which MCP clients
    /// read to find the authorization server. Without it, challenges carry no
    /// `resource_metadata` and clients cannot discover where to get a token.
    ///
    /// From the document, the layer takes:
    ///
    /// - its [well-known URL](ProtectedResourceMetadata::well_known_url), sent as
    ///   `resource_metadata` in every `WWW-Authenticate` challenge (RFC 9728 §5.1);
    /// - its `resource`, accepted as an audience (see [`audiences`](Self::audiences));
    /// - its `authorization_servers` (issuer identifiers, RFC 9728 §2), each of which must be
    ///   given keys with [`issuer_keys`](Self::issuer_keys) or
    ///   [`issuer_discovery`](Self::issuer_discovery), or [`build`](Self::build) fails.
    ///
    /// Serve the same document beside the MCP endpoint: it is a tower service.
    pub fn protected_resource(mut self, metadata: &ProtectedResourceMetadata) -> Self {
        self.resource_metadata = Some(metadata.well_known_url());
        self.dpop.metadata = metadata
            .dpop_settings()
            .map(|(algs, required)| (algs.to_vec(), required));
        self.listed_issuers
            .extend(metadata.authorization_servers().iter().cloned());
        self.audiences([metadata.resource()])
    }

    /// Lets a request **without** an `Authorization` header through with no identity (default
    /// `false`: 401). For anonymous sessions with
    /// [`SessionBindingLayer::allow_anonymous`](crate::SessionBindingLayer::allow_anonymous): a
    /// token that is sent is still validated (401 when invalid), and a malformed header is still
    /// 400.
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

    /// Requires these scopes (call it again to require more; all are needed): a verified token
    /// must grant each in `scope` (space separated) or `scp` (an array, or a space-separated
    /// string), or it gets **403** with
    /// `WWW-Authenticate: Bearer error="insufficient_scope", scope="<required scopes>", …`
    /// (MCP step-up authorization). None by default: the layer authenticates, and the MCP
    /// server decides what each caller may do. A scope may not contain a space or a `"`.
    pub fn required_scopes<I>(mut self, scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        for scope in scopes {
            let scope = scope.into();
            if !self.required_scopes.contains(&scope) {
                self.required_scopes.push(scope);
            }
        }
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

    /// How long the revocation check may take before the layer answers 503 (default 5 s: the
    /// request waits for the check, so a stuck deny list must not hold it for long).
    pub fn revocation_timeout(mut self, timeout: Duration) -> Self {
        self.revocation_timeout = timeout;
        self
    }

    /// `Retry-After` of the 503 sent when the revocation check fails, whole seconds (default 1:
    /// a failed check is usually transient).
    pub fn retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// Scopes to name in the challenge's `scope` parameter (space separated), which MCP
    /// (2025-11-25) says servers SHOULD send. Checks nothing; see
    /// [`required_scopes`](Self::required_scopes) for that (whose scopes are named by default).
    pub fn challenge_scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// Sets DPoP (RFC 9449) for `issuer`'s tokens: [`DpopPolicy::Off`](super::DpopPolicy::Off)
    /// (the default: bearer tokens only), [`Allowed`](super::DpopPolicy::Allowed) (a token with
    /// `cnf.jkt` needs a proof, others may come as `Bearer`) or
    /// [`Required`](super::DpopPolicy::Required) (every token needs a proof). For
    /// `Authorization: DPoP`, after the token is verified, the one `DPoP` proof must have
    /// `typ: dpop+jwt`, an allowed asymmetric `alg`, a public `jwk` whose signature verifies,
    /// `htm` and `htu` of this request, `iat` within the window, `ath` of the token, the
    /// token's `cnf.jkt` as its key's thumbprint, and a `jti` not seen within the window (each
    /// failure is a [`DpopError`](super::DpopError); `docs/dpop.md` has the table). `issuer`
    /// must be trusted (given keys or discovery), or [`build`](Self::build) fails.
    ///
    /// Refusals are 401 with `WWW-Authenticate: DPoP error="invalid_dpop_proof"` (or
    /// `invalid_token`), `algs="…"`, preceded by a `Bearer` challenge when some issuer accepts
    /// bearer tokens; a replay cache that cannot answer gets 503 with `Retry-After`.
    ///
    /// ```
    /// use mcp_session_binding::jwt::{Algorithm, DpopPolicy, JwtAuthLayer, JwtKey};
    ///
    /// let layer = JwtAuthLayer::builder()
    ///     .issuer_keys("https://auth.example.com", JwtKey::hmac([7u8; 32])?)
    ///     .algorithms([Algorithm::HS256])
    ///     .audiences(["https://mcp.example.com/mcp"])
    ///     .dpop("https://auth.example.com", DpopPolicy::Required)
    ///     .dpop_base_url("https://mcp.example.com")
    ///     .build()?;
    /// # let _ = layer;
    /// # Ok::<(), mcp_session_binding::jwt::JwtConfigError>(())
    /// ```
    pub fn dpop(mut self, issuer: impl Into<String>, policy: super::DpopPolicy) -> Self {
        let issuer = issuer.into();
        self.dpop.policies.retain(|(i, _)| *i != issuer);
        self.dpop.policies.push((issuer, policy));
        self
    }

    /// The algorithms a DPoP proof may be signed with (call it again to allow more; asymmetric
    /// only, `build` refuses HMAC). Default: ES256, ES384, EdDSA, RS256 and PS256. They are
    /// sent in the challenge's `algs`, and a [`ProtectedResourceMetadata::dpop`] document must
    /// list exactly them.
    pub fn dpop_algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        for algorithm in algorithms {
            if !self.dpop.algorithms.contains(&algorithm) {
                self.dpop.algorithms.push(algorithm);
            }
        }
        self
    }

    /// How far a proof's `iat` may be from now, either way (default 5 min); the replay cache
    /// remembers each proof until its `iat` leaves the window. Whole seconds.
    pub fn dpop_iat_window(mut self, window: Duration) -> Self {
        self.dpop.window = window;
        self
    }

    /// The external base URL of this server (`https://mcp.example.com`, or with a path prefix
    /// that a proxy strips), which a proof's `htu` must start with, followed by the request
    /// path. Without it (the default), `htu` must name the URL the request was sent to: its
    /// scheme (either `http` or `https` when the request does not carry one, as HTTP/1.1
    /// requests do not), its `Host` and its path. Set it behind a proxy or TLS terminator.
    pub fn dpop_base_url(mut self, url: impl Into<String>) -> Self {
        self.dpop.base_url = Some(url.into());
        self
    }

    /// How many proofs the in-memory replay cache remembers at once (default 1,000,000, about
    /// 70 MB at most; see `docs/performance.md`). When it is full, new proofs are refused with
    /// 503 rather than older ones forgotten. Ignored with
    /// [`dpop_replay_redis`](Self::dpop_replay_redis).
    pub fn dpop_replay_capacity(mut self, capacity: usize) -> Self {
        self.dpop.replay_capacity = capacity;
        self
    }

    /// Remembers proofs in the Redis of `store` (feature `redis`), so that a proof accepted by
    /// one replica is refused by every other: one `SET key 1 NX PX <ttl>` per accepted proof,
    /// under the store's prefix and timeout (none for a refused proof). The keys expire with
    /// the `iat` window. A failed or timed-out `SET` gets 503 with `Retry-After`.
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub fn dpop_replay_redis(mut self, store: &crate::store::RedisStore) -> Self {
        self.dpop.replay = Some(Arc::new(super::dpop::RedisReplayCache::new(store)));
        self
    }

    /// The DPoP half of the configuration, checked; `None` when no issuer uses DPoP.
    fn build_dpop(
        dpop: DpopSettings,
        issuers: &[(String, Option<JwtKeys>)],
    ) -> Result<Option<(super::dpop::Dpop, Vec<Algorithm>, bool)>, JwtConfigError> {
        use super::DpopPolicy;
        let policies: HashMap<String, DpopPolicy> = dpop
            .policies
            .into_iter()
            .filter(|(_, policy)| *policy != DpopPolicy::Off)
            .collect();
        if let Some(issuer) = policies
            .keys()
            .find(|i| !issuers.iter().any(|(t, _)| t == *i))
        {
            return Err(JwtConfigError::IssuerWithoutKeys(issuer.clone()));
        }
        let required = |issuer: &str| policies.get(issuer) == Some(&DpopPolicy::Required);
        let bearer = issuers.iter().any(|(issuer, _)| !required(issuer));
        if policies.is_empty() {
            if dpop.metadata.is_some() {
                return Err(JwtConfigError::InvalidDpop(
                    "the resource metadata lists DPoP algorithms but no issuer uses DPoP",
                ));
            }
            return Ok(None);
        }
        let algorithms = if dpop.algorithms.is_empty() {
            DEFAULT_DPOP_ALGORITHMS.to_vec()
        } else {
            dpop.algorithms
        };
        if algorithms
            .iter()
            .any(|alg| alg.family() == super::KeyFamily::Hmac)
        {
            return Err(JwtConfigError::InvalidDpop(
                "HMAC cannot sign DPoP proofs (RFC 9449 §4.2)",
            ));
        }
        if let Some((listed, metadata_required)) = &dpop.metadata {
            let ours: Vec<&str> = algorithms.iter().map(|alg| alg.as_str()).collect();
            if *listed != ours {
                return Err(JwtConfigError::InvalidDpop(
                    "the resource metadata's dpop_signing_alg_values_supported are not the layer's DPoP algorithms",
                ));
            }
            if *metadata_required && bearer {
                return Err(JwtConfigError::InvalidDpop(
                    "the resource metadata says DPoP is required but an issuer accepts bearer tokens",
                ));
            }
        }
        let base_url = match dpop.base_url {
            None => None,
            Some(url) => Some(super::dpop::normalize_base_url(&url).ok_or(
                JwtConfigError::InvalidDpop("the external base URL is not an absolute http(s) URL"),
            )?),
        };
        let replay = dpop
            .replay
            .unwrap_or_else(|| Arc::new(super::dpop::MemoryReplayCache::new(dpop.replay_capacity)));
        let config = super::dpop::Dpop {
            policies,
            algorithms: algorithms.clone(),
            window: dpop.window,
            base_url,
            replay,
        };
        Ok(Some((config, algorithms, bearer)))
    }

    /// Builds the layer.
    ///
    /// # Errors
    ///
    /// [`JwtConfigError`] when a required setting is missing, an issuer has no keys, one HMAC
    /// secret is given to two issuers, an allowed algorithm has no key, an issuer or audience
    /// is empty, or `resource_metadata`/`scope` cannot be quoted.
    ///
    /// ```
    /// use mcp_session_binding::jwt::{Algorithm, JwtAuthLayer, JwtConfigError, JwtKey};
    ///
    /// let builder = || {
    ///     JwtAuthLayer::builder()
    ///         .issuer_keys("https://auth.example.com", JwtKey::hmac([7u8; 32]).unwrap())
    ///         .audiences(["https://mcp.example.com/mcp"])
    /// };
    /// // No algorithm allowed: refused at start-up, not at the first request.
    /// assert!(matches!(builder().build(), Err(JwtConfigError::NoAlgorithms)));
    /// assert!(builder().algorithms([Algorithm::HS256]).build().is_ok());
    /// ```
    pub fn build(self) -> Result<JwtAuthLayer, JwtConfigError> {
        #[cfg(feature = "oidc")]
        let introspected: Vec<&str> = self.introspected.iter().map(|(i, _)| i.as_str()).collect();
        #[cfg(not(feature = "oidc"))]
        let introspected: Vec<&str> = Vec::new();
        if self.issuers.is_empty() && introspected.is_empty() {
            return Err(JwtConfigError::NoIssuers);
        }
        let mut seen: HashSet<&str> = HashSet::new();
        for issuer in &introspected {
            if issuer.is_empty() {
                return Err(JwtConfigError::EmptyValue("issuer"));
            }
            if !seen.insert(issuer) {
                return Err(JwtConfigError::ConflictingKeySources((*issuer).to_owned()));
            }
        }
        for (issuer, keys) in &self.issuers {
            if issuer.is_empty() {
                return Err(JwtConfigError::EmptyValue("issuer"));
            }
            if !seen.insert(issuer) {
                // Only a static + discovery pair can repeat (static keys are merged).
                return Err(JwtConfigError::ConflictingKeySources(issuer.clone()));
            }
            if keys.as_ref().is_some_and(JwtKeys::is_empty) {
                return Err(JwtConfigError::NoKeys);
            }
            #[cfg(feature = "oidc")]
            if keys.is_none() && !super::jwks::is_fetchable_url(issuer) {
                return Err(JwtConfigError::InsecureIssuer(issuer.clone()));
            }
        }
        if let Some(listed) = self
            .listed_issuers
            .iter()
            .find(|listed| !seen.contains(listed.as_str()))
        {
            return Err(JwtConfigError::IssuerWithoutKeys(listed.clone()));
        }
        check_hmac_secrets_are_not_shared(&self.issuers)?;
        let any_discovery = self.issuers.iter().any(|(_, keys)| keys.is_none());
        let mut algorithms = self.algorithms.clone();
        if algorithms.is_empty() {
            if !any_discovery && !self.issuers.is_empty() {
                return Err(JwtConfigError::NoAlgorithms);
            }
            algorithms = Algorithm::ASYMMETRIC.to_vec();
        }
        // With only static keys, every allowed algorithm must have a key (a typo would
        // otherwise refuse every token); discovery keys are not known yet.
        if !any_discovery
            && !self.issuers.is_empty()
            && let Some(&alg) = algorithms.iter().find(|&&alg| {
                !self
                    .issuers
                    .iter()
                    .flat_map(|(_, keys)| keys.iter().flatten())
                    .any(|key| key.can_verify(alg))
            })
        {
            return Err(JwtConfigError::NoKeyForAlgorithm(alg));
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
        if self
            .required_scopes
            .iter()
            .any(|scope| !is_quotable(scope) || scope.contains(' '))
        {
            return Err(JwtConfigError::InvalidChallengeParameter("scope"));
        }
        let required_scope =
            (!self.required_scopes.is_empty()).then(|| self.required_scopes.join(" "));
        let dpop = Self::build_dpop(self.dpop, &self.issuers)?;

        let issuer_set: HashSet<String> = self.issuers.iter().map(|(i, _)| i.clone()).collect();
        let audiences: HashSet<String> = self.audiences.into_iter().collect();
        #[cfg(feature = "oidc")]
        let introspection = if self.introspected.is_empty() {
            None
        } else {
            Some(Arc::new(super::introspect::Introspectors::build(
                self.introspected,
                audiences.clone(),
                self.leeway,
            )?))
        };
        let validations = algorithms
            .iter()
            .map(|&alg| {
                let mut validation = Validation::new(alg.to_jsonwebtoken());
                validation.leeway = self.leeway.as_secs();
                validation.validate_exp = true;
                validation.validate_nbf = true;
                validation.validate_aud = true;
                validation.set_required_spec_claims(&["exp", "iss", "aud"]);
                validation.iss = Some(issuer_set.clone());
                validation.aud = Some(audiences.clone());
                (alg, validation)
            })
            .collect();

        #[cfg(feature = "oidc")]
        let client = if any_discovery {
            Some(
                super::remote::http_client(self.jwks_fetch_timeout)
                    .map_err(JwtConfigError::HttpClient)?,
            )
        } else {
            None
        };
        let mut issuers = HashMap::with_capacity(self.issuers.len());
        for (issuer, keys) in self.issuers {
            let source = match keys {
                Some(keys) => KeySource::Static(keys),
                #[cfg(feature = "oidc")]
                None => KeySource::Remote(Arc::new(super::remote::RemoteKeys::new(
                    issuer.clone(),
                    client.clone().expect("built when an issuer uses discovery"),
                    super::remote::RemoteOptions {
                        refetch_interval: self.jwks_refetch_interval,
                        max_stale: self.jwks_max_stale,
                        fetch_timeout: self.jwks_fetch_timeout,
                    },
                ))),
                #[cfg(not(feature = "oidc"))]
                None => unreachable!("discovery needs the oidc feature"),
            };
            issuers.insert(issuer, source);
        }
        #[cfg(not(feature = "oidc"))]
        let _ = (
            self.jwks_refetch_interval,
            self.jwks_max_stale,
            self.jwks_fetch_timeout,
        );

        let mut rejector = Rejector::with_required_scope(
            self.resource_metadata.as_deref(),
            self.scope.as_deref(),
            required_scope.as_deref(),
            self.retry_after.as_secs(),
        );
        let dpop = dpop.map(|(dpop, algorithms, bearer)| {
            rejector = rejector.clone().with_dpop(&algorithms, bearer);
            dpop
        });
        let config = Config {
            verifier: Arc::new(Verifier {
                issuers,
                validations,
                require_access_token_type: self.require_access_token_type,
                required_scopes: self.required_scopes,
                #[cfg(feature = "oidc")]
                introspection,
            }),
            rejector,
            revocation: self.revocation,
            revocation_timeout: self.revocation_timeout,
            allow_missing_token: self.allow_missing_token,
            dpop,
        };
        Ok(JwtAuthLayer {
            config: Arc::new(config),
        })
    }
}

/// An HMAC secret belongs to exactly one issuer: the same secret under two issuers would let
/// either mint tokens for the other's users.
fn check_hmac_secrets_are_not_shared(
    issuers: &[(String, Option<JwtKeys>)],
) -> Result<(), JwtConfigError> {
    let mut owners: Vec<(&[u8], &str)> = Vec::new();
    for (issuer, keys) in issuers {
        for key in keys.iter().flatten() {
            if key.family() != super::KeyFamily::Hmac {
                continue;
            }
            let Ok(secret) = key.decoding_key().try_get_as_bytes() else {
                continue;
            };
            if let Some((_, owner)) = owners.iter().find(|(s, owner)| {
                *owner != issuer && constant_time_eq::constant_time_eq(secret, s)
            }) {
                return Err(JwtConfigError::SharedHmacSecret {
                    first: (*owner).to_owned(),
                    second: issuer.clone(),
                });
            }
            owners.push((secret, issuer));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::JwtKey;

    fn base() -> JwtAuthLayerBuilder {
        JwtAuthLayer::builder()
            .issuer_keys("https://i.example", JwtKey::hmac([1u8; 32]).unwrap())
            .algorithms([Algorithm::HS256])
            .audiences(["https://mcp.example/mcp"])
    }

    #[test]
    fn required_settings_are_enforced() {
        assert!(base().build().is_ok());
        assert!(matches!(
            JwtAuthLayer::builder().build(),
            Err(JwtConfigError::NoIssuers)
        ));
        assert!(matches!(
            base().algorithms([Algorithm::RS256]).build(),
            Err(JwtConfigError::NoKeyForAlgorithm(Algorithm::RS256))
        ));
        assert!(matches!(
            base()
                .issuer_keys("", JwtKey::hmac([3u8; 32]).unwrap())
                .build(),
            Err(JwtConfigError::EmptyValue("issuer"))
        ));
        assert!(matches!(
            base()
                .issuer_keys("https://j.example", JwtKeys::new())
                .build(),
            Err(JwtConfigError::NoKeys)
        ));
        assert!(matches!(
            base()
                .protected_resource(&ProtectedResourceMetadata::new(
                    "https://x/\"",
                    ["https://i.example"]
                ))
                .build(),
            Err(JwtConfigError::InvalidChallengeParameter(
                "resource_metadata"
            ))
        ));
        assert!(matches!(
            base().required_scopes(["a b"]).build(),
            Err(JwtConfigError::InvalidChallengeParameter("scope"))
        ));
    }

    #[test]
    fn an_hmac_secret_belongs_to_one_issuer() {
        let err = base()
            .issuer_keys("https://j.example", JwtKey::hmac([1u8; 32]).unwrap())
            .build()
            .unwrap_err();
        assert!(
            matches!(&err, JwtConfigError::SharedHmacSecret { first, second }
                if first == "https://i.example" && second == "https://j.example"),
            "{err:?}"
        );
        // Adding a second secret to the same issuer is fine.
        assert!(
            base()
                .issuer_keys("https://i.example", JwtKey::hmac([2u8; 32]).unwrap())
                .build()
                .is_ok()
        );
    }

    #[test]
    fn protected_resource_sets_audience_and_metadata_url_and_needs_keys_for_its_issuers() {
        let metadata = ProtectedResourceMetadata::new(
            "https://mcp.example.com/mcp",
            ["https://auth.example.com"],
        );
        let builder = || {
            JwtAuthLayer::builder()
                .algorithms([Algorithm::HS256])
                .protected_resource(&metadata)
        };
        assert!(matches!(
            builder()
                .issuer_keys("https://other.example", JwtKey::hmac([1u8; 32]).unwrap())
                .build(),
            Err(JwtConfigError::IssuerWithoutKeys(i)) if i == "https://auth.example.com"
        ));
        let layer = builder()
            .issuer_keys("https://auth.example.com", JwtKey::hmac([1u8; 32]).unwrap())
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
    }

    #[cfg(feature = "oidc")]
    #[test]
    fn discovery_issuers_must_be_https_or_loopback() {
        let builder = |issuer: &str| {
            JwtAuthLayer::builder()
                .issuer_discovery(issuer)
                .audiences(["mcp"])
                .build()
        };
        assert!(builder("https://auth.example.com").is_ok());
        assert!(builder("http://127.0.0.1:8080").is_ok());
        assert!(matches!(
            builder("http://auth.example.com"),
            Err(JwtConfigError::InsecureIssuer(_))
        ));
        assert!(matches!(
            JwtAuthLayer::builder()
                .issuer_discovery("https://a.example")
                .issuer_keys("https://a.example", JwtKey::hmac([1u8; 32]).unwrap())
                .audiences(["mcp"])
                .build(),
            Err(JwtConfigError::ConflictingKeySources(_))
        ));
    }
}
