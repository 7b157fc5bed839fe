//! The JWT-protected MCP server of the `mcp_server` and `demo` examples (and of the JWT
//! integration tests): [`JwtAuthLayer`] outside, [`SessionBindingLayer`] inside, the MCP service
//! innermost, and the RFC 9728 metadata document beside them. Also mints the HS256 tokens the
//! examples hand out.
//!
//! Included with `#[path = "…/common/jwt_stack.rs"] mod jwt_stack;`, so it is not an example of
//! its own.
#![allow(dead_code)]

use std::{
    convert::Infallible,
    io::Write,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{Router, extract::Request};
use jsonwebtoken::{EncodingKey, Header, encode};
use mcp_session_binding::{
    SessionBindingLayer,
    jwt::{
        Algorithm, DpopPolicy, JwtAuthLayer, JwtAuthLayerBuilder, JwtConfigError, JwtKey,
        ProtectedResourceMetadata,
    },
    store::BindingStore,
};
use serde_json::json;
use tower::Layer;

/// The issuer trusted in the HS256 development mode when `MCP_JWT_ISSUERS` is not set.
pub const DEFAULT_ISSUER: &str = "https://issuer.example";
/// The audience required when `MCP_JWT_AUDIENCE` is not set.
pub const DEFAULT_AUDIENCE: &str = "mcp-session-binding-example";
/// Lifetime of the tokens the examples mint.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// Root path of the protected resource metadata document (RFC 9728 §3).
pub const METADATA_ROOT: &str = "/.well-known/oauth-protected-resource";

/// How one trusted issuer's keys are had.
#[derive(Clone)]
pub enum IssuerKeys {
    /// An HS256 secret (at least 32 bytes) that belongs to this issuer alone.
    Hs256(Vec<u8>),
    /// OpenID Connect discovery: the issuer's published JWK set, fetched and rotated.
    Discovery,
    /// RFC 7662 introspection: the issuer's introspection endpoint judges each token (opaque
    /// access tokens).
    Introspection(Box<mcp_session_binding::jwt::Introspection>),
}

/// A trusted issuer: a token's `iss` must be one of them, and it is verified with that
/// issuer's keys only.
#[derive(Clone)]
pub struct TrustedIssuer {
    /// The issuer identifier, exactly as tokens carry it in `iss`.
    pub issuer: String,
    /// Its keys.
    pub keys: IssuerKeys,
}

impl TrustedIssuer {
    /// An issuer whose tokens are HS256-signed with `secret`.
    pub fn hs256(issuer: impl Into<String>, secret: impl Into<Vec<u8>>) -> Self {
        Self {
            issuer: issuer.into(),
            keys: IssuerKeys::Hs256(secret.into()),
        }
    }

    /// An issuer trusted through OpenID Connect discovery.
    pub fn discovery(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            keys: IssuerKeys::Discovery,
        }
    }
}

/// The binding layer of the stack.
pub type BindingLayer = SessionBindingLayer<Arc<dyn BindingStore>>;

/// How the stack is put together.
#[derive(Clone)]
pub struct StackConfig {
    /// Trusted issuers, each with its own keys.
    pub issuers: Vec<TrustedIssuer>,
    /// The audience a token's `aud` must contain.
    pub audience: String,
    /// Requests without `Authorization` pass the JWT layer with no identity, and may open
    /// anonymous sessions. A token that is present is still validated.
    pub allow_anonymous: bool,
    /// The binding store, or `None` for the stack without `SessionBindingLayer` (a baseline for
    /// benchmarks: no session is bound to anyone).
    pub binding: Option<Arc<dyn BindingStore>>,
    /// Scopes every token must grant (403 `insufficient_scope` otherwise).
    pub required_scopes: Vec<String>,
    /// Discovery issuers: least time between two request-triggered key fetches.
    pub jwks_refetch_interval: Duration,
    /// Discovery issuers: how long the last good keys serve when refreshes fail.
    pub jwks_max_stale: Duration,
    /// How often an open GET stream of a session checks its binding again
    /// (`SessionBindingLayer::stream_recheck_interval`); `None`: the layer's default.
    pub stream_recheck: Option<Duration>,
    /// DPoP (RFC 9449) for every trusted issuer; `None`: bearer tokens only.
    pub dpop: Option<StackDpop>,
}

/// The DPoP settings of the stack.
#[derive(Clone)]
pub struct StackDpop {
    /// The policy of every trusted issuer.
    pub policy: DpopPolicy,
    /// Sessions bound to `(iss, sub, jkt)` (`SessionBindingLayer::bind_to_dpop_key`).
    pub bind_to_key: bool,
    /// Adjusts the JWT layer's builder: the replay cache in Redis, a capacity.
    pub tune: Option<Arc<dyn Fn(JwtAuthLayerBuilder) -> JwtAuthLayerBuilder + Send + Sync>>,
}

impl StackDpop {
    /// `policy` for every issuer, sessions bound to `(iss, sub)`, the in-memory replay cache.
    pub fn new(policy: DpopPolicy) -> Self {
        Self {
            policy,
            bind_to_key: false,
            tune: None,
        }
    }
}

/// The algorithms DPoP proofs may be signed with: in the layer and in the metadata document.
pub const DPOP_ALGORITHMS: [Algorithm; 4] = [
    Algorithm::ES256,
    Algorithm::EdDSA,
    Algorithm::RS256,
    Algorithm::PS256,
];

impl StackConfig {
    /// The default issuer, signing HS256 with `secret`, and audience; bindings in `store`; no
    /// anonymous sessions.
    pub fn new(secret: impl Into<Vec<u8>>, store: Arc<dyn BindingStore>) -> Self {
        Self {
            issuers: vec![TrustedIssuer::hs256(DEFAULT_ISSUER, secret)],
            audience: DEFAULT_AUDIENCE.to_owned(),
            allow_anonymous: false,
            binding: Some(store),
            required_scopes: Vec::new(),
            jwks_refetch_interval: Duration::from_secs(30),
            jwks_max_stale: Duration::from_secs(3600),
            stream_recheck: None,
            dpop: None,
        }
    }

    /// The trusted issuer identifiers, in order.
    pub fn issuer_names(&self) -> Vec<String> {
        self.issuers.iter().map(|i| i.issuer.clone()).collect()
    }
}

/// The metadata document of the MCP endpoint at `{base_url}/mcp`: its `authorization_servers`
/// are the trusted issuers.
pub fn metadata(config: &StackConfig, base_url: &str) -> ProtectedResourceMetadata {
    let mut metadata =
        ProtectedResourceMetadata::new(format!("{base_url}/mcp"), config.issuer_names())
            .resource_name("mcp-session-binding example");
    if !config.required_scopes.is_empty() {
        metadata = metadata.scopes_supported(config.required_scopes.clone());
    }
    if let Some(dpop) = config.dpop.as_ref().filter(|d| d.policy != DpopPolicy::Off) {
        metadata = metadata.dpop(DPOP_ALGORITHMS, dpop.policy == DpopPolicy::Required);
    }
    metadata
}

/// The JWT layer: each issuer verified with its own keys only.
///
/// # Errors
///
/// When the layer cannot be built (secret shorter than 32 bytes or shared by two issuers, empty
/// issuer or audience, an insecure discovery issuer).
pub fn auth_layer(config: &StackConfig, base_url: &str) -> Result<JwtAuthLayer, JwtConfigError> {
    let metadata = metadata(config, base_url);
    let mut auth = JwtAuthLayer::builder();
    let mut hs256 = false;
    for trusted in &config.issuers {
        auth = match &trusted.keys {
            IssuerKeys::Hs256(secret) => {
                hs256 = true;
                auth.issuer_keys(trusted.issuer.clone(), JwtKey::hmac(secret)?)
            }
            IssuerKeys::Discovery => auth.issuer_discovery(trusted.issuer.clone()),
            IssuerKeys::Introspection(settings) => {
                auth.issuer_introspection(trusted.issuer.clone(), (**settings).clone())
            }
        };
    }
    if hs256 {
        auth = auth.algorithms([Algorithm::HS256]);
    }
    if config
        .issuers
        .iter()
        .any(|i| matches!(i.keys, IssuerKeys::Discovery))
    {
        auth = auth.algorithms(Algorithm::ASYMMETRIC);
    }
    if let Some(dpop) = &config.dpop {
        for trusted in &config.issuers {
            auth = auth.dpop(trusted.issuer.clone(), dpop.policy);
        }
        // `htu` names the URL each request was sent to (its `Host`): replicas behind one load
        // balancer that keeps `Host` see the same URL.
        auth = auth.dpop_algorithms(DPOP_ALGORITHMS);
        if let Some(tune) = &dpop.tune {
            auth = tune(auth);
        }
    }
    auth.audiences([config.audience.clone()])
        .protected_resource(&metadata)
        .required_scopes(config.required_scopes.iter().cloned())
        .jwks_refetch_interval(config.jwks_refetch_interval)
        .jwks_max_stale(config.jwks_max_stale)
        // Anonymous mode: no Authorization header → no identity (a sent token is still checked).
        .allow_missing_token(config.allow_anonymous)
        .build()
}

/// The application: `mcp` at `/mcp` behind `SessionBindingLayer` (when configured) behind
/// `JwtAuthLayer`, and the metadata document at `/.well-known/oauth-protected-resource` and at
/// its RFC 9728 path `/.well-known/oauth-protected-resource/mcp` (the one the 401 challenges
/// name), outside the auth layer.
///
/// `base_url` is this server's origin as clients reach it (`http://127.0.0.1:8080`).
///
/// # Errors
///
/// When the JWT layer cannot be built (see [`auth_layer`]).
pub fn router<S, B>(config: &StackConfig, base_url: &str, mcp: S) -> Result<Router, JwtConfigError>
where
    S: tower::Service<Request, Response = http::Response<B>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let auth = auth_layer(config, base_url)?;
    Ok(router_with(config, base_url, mcp, auth))
}

/// [`router`] with a JWT layer built (and perhaps given its keys) beforehand.
pub fn router_with<S, B>(config: &StackConfig, base_url: &str, mcp: S, auth: JwtAuthLayer) -> Router
where
    S: tower::Service<Request, Response = http::Response<B>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    router_with_binding(config, base_url, mcp, auth, |binding| binding)
}

/// [`router_with`], with `binding` finishing the binding layer's settings (when there is one).
pub fn router_with_binding<S, B>(
    config: &StackConfig,
    base_url: &str,
    mcp: S,
    auth: JwtAuthLayer,
    binding: impl FnOnce(BindingLayer) -> BindingLayer,
) -> Router
where
    S: tower::Service<Request, Response = http::Response<B>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let finish = binding;
    let metadata = metadata(config, base_url);
    // The binding layer wraps the MCP service itself (cheaper than `Router::layer`, which boxes and
    // clones the route on every request); it runs after the auth layer and reads the Identity the
    // auth layer inserted.
    let app = match &config.binding {
        Some(store) => {
            let mut binding = SessionBindingLayer::with_store(store.clone())
                .allow_anonymous(config.allow_anonymous)
                .bind_to_dpop_key(config.dpop.as_ref().is_some_and(|d| d.bind_to_key));
            if let Some(interval) = config.stream_recheck {
                binding = binding.stream_recheck_interval(interval);
            }
            // The DELETE that ends a refused caller's session goes to this server's own origin,
            // the Host its clients use (and rmcp accepts): on several replicas, a replica that
            // has not created a session itself can still end one.
            if let Ok(origin) = http::Uri::try_from(base_url) {
                binding = binding.end_session_uri(origin);
            }
            Router::new().nest_service("/mcp", finish(binding).layer(mcp))
        }
        None => Router::new().nest_service("/mcp", mcp),
    };
    // Outer layer: runs first.
    let app = app.layer(auth);
    // Added after the layers, so outside them: the metadata is public.
    app.route_service(METADATA_ROOT, metadata.clone())
        .route_service(&metadata.well_known_path(), metadata)
}

/// Mints HS256 access tokens for the examples and tests: what an authorization server would
/// issue.
#[derive(Clone)]
pub struct TokenMinter {
    key: EncodingKey,
    audience: String,
}

impl TokenMinter {
    /// Signs with `secret` for `audience`.
    pub fn new(secret: &[u8], audience: impl Into<String>) -> Self {
        Self {
            key: EncodingKey::from_secret(secret),
            audience: audience.into(),
        }
    }

    /// A token for `(iss, sub)`, valid for [`TOKEN_LIFETIME`]. Every call gives new bytes (a
    /// fresh random `jti`, the current `iat`), like a refreshed token: same user, new token.
    pub fn token(&self, iss: &str, sub: &str) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs();
        let claims = json!({
            "iss": iss,
            "sub": sub,
            "aud": self.audience,
            "iat": now,
            "exp": now + TOKEN_LIFETIME.as_secs(),
            "jti": hex(&random_bytes::<16>()),
        });
        encode(
            &Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &self.key,
        )
        .expect("HS256 signing")
    }
}

/// A random HS256 secret from the operating system's CSPRNG.
pub fn random_secret() -> Vec<u8> {
    random_bytes::<32>().to_vec()
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the OS random number generator");
    bytes
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The trusted issuers and audience of a server run, from its `--issuer` flags and the
/// environment.
pub struct Issuers {
    /// Trusted issuers, each with its own keys.
    pub trusted: Vec<TrustedIssuer>,
    /// The audience a token's `aud` must contain (`MCP_JWT_AUDIENCE`).
    pub audience: String,
    /// In the HS256 development mode without `MCP_JWT_SECRET`: the random secret picked for
    /// this run (tokens are printed with [`print_tokens`]).
    pub dev_secret: Option<Vec<u8>>,
}

/// With `--issuer URL` flags (`discovery_issuers`): those OpenID providers, trusted through
/// discovery. Without: the HS256 development mode, `MCP_JWT_SECRET` (or a random secret) for
/// the one issuer `MCP_JWT_ISSUERS` names.
///
/// # Errors
///
/// When the environment is not usable (see `JwtSettings`).
pub fn issuers_from_env(discovery_issuers: &[String]) -> Result<Issuers, String> {
    let (trusted, audience, dev_secret) = if !discovery_issuers.is_empty() {
        for name in ["MCP_JWT_SECRET", "MCP_JWT_ISSUERS"] {
            if std::env::var_os(name).is_some() {
                tracing::warn!("{name} is ignored: --issuer trusts OpenID providers instead");
            }
        }
        let audience =
            std::env::var("MCP_JWT_AUDIENCE").unwrap_or_else(|_| DEFAULT_AUDIENCE.to_owned());
        let trusted = discovery_issuers
            .iter()
            .map(|issuer| TrustedIssuer::discovery(issuer.clone()))
            .collect();
        (trusted, audience, None)
    } else {
        let JwtSettings {
            secret,
            issuers,
            audience,
        } = JwtSettings::from_env()?;
        let generated = secret.is_none();
        let secret = secret.unwrap_or_else(random_secret);
        let trusted = vec![TrustedIssuer::hs256(issuers[0].clone(), secret.clone())];
        (trusted, audience, generated.then_some(secret))
    };
    Ok(Issuers {
        trusted,
        audience,
        dev_secret,
    })
}

/// The JWT settings from the environment.
struct JwtSettings {
    /// `None` when `MCP_JWT_SECRET` is unset.
    secret: Option<Vec<u8>>,
    issuers: Vec<String>,
    audience: String,
}

impl JwtSettings {
    fn from_env() -> Result<Self, String> {
        let secret = match std::env::var("MCP_JWT_SECRET") {
            Ok(secret) => Some(secret.into_bytes()),
            Err(std::env::VarError::NotPresent) => None,
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err("MCP_JWT_SECRET is not valid UTF-8".to_owned());
            }
        };
        let issuers = match std::env::var("MCP_JWT_ISSUERS") {
            Ok(list) => {
                let issuers: Vec<String> = list
                    .split(',')
                    .map(str::trim)
                    .filter(|issuer| !issuer.is_empty())
                    .map(str::to_owned)
                    .collect();
                if issuers.is_empty() {
                    return Err("MCP_JWT_ISSUERS names no issuer".to_owned());
                }
                issuers
            }
            Err(_) => vec![DEFAULT_ISSUER.to_owned()],
        };
        if issuers.len() > 1 {
            // One secret for several issuers would let each mint tokens for the others' users.
            return Err(format!(
                "MCP_JWT_ISSUERS names {} issuers, but an HS256 secret belongs to exactly one \
                 issuer; trust several OpenID providers with --issuer URL instead",
                issuers.len()
            ));
        }
        let audience =
            std::env::var("MCP_JWT_AUDIENCE").unwrap_or_else(|_| DEFAULT_AUDIENCE.to_owned());
        Ok(Self {
            secret,
            issuers,
            audience,
        })
    }
}

/// Without `MCP_JWT_SECRET`: tokens for alice and bob, and a `curl` command to start with.
pub fn print_tokens(
    out: &mut impl Write,
    secret: &[u8],
    config: &StackConfig,
    url: &str,
) -> std::io::Result<()> {
    let minter = TokenMinter::new(secret, config.audience.clone());
    let issuer = &config.issuers[0].issuer;
    let alice = minter.token(issuer, "alice");
    let bob = minter.token(issuer, "bob");
    let initialize = serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "curl", "version": "0"}
        }
    });
    writeln!(
        out,
        "MCP_JWT_SECRET is not set: this run signs with a random secret. Tokens (iss {issuer}, \
         aud {}, valid 1 hour):",
        config.audience
    )?;
    writeln!(out, "  alice  {alice}")?;
    writeln!(out, "  bob    {bob}")?;
    writeln!(out, "Initialize a session as alice:")?;
    writeln!(
        out,
        "  curl -i {url} -H 'Authorization: Bearer {alice}' -H 'Content-Type: application/json' \
         -H 'Accept: application/json, text/event-stream' -d '{initialize}'"
    )
}
