//! An MCP server on Streamable HTTP, protected by JWT bearer tokens, with every session bound to
//! the caller's `(iss, sub)`.
//!
//! ```text
//! cargo run --all-features --example mcp_server [-- --listen 127.0.0.1:8080] [--allow-anonymous]
//!                                    [--without-binding] [--without-task-checks]
//!                                    [--redis redis://127.0.0.1/]
//!                                    [--redis-cluster redis://HOST:PORT]... [--redis-ca PATH]
//!                                    [--redis-cache-ms MS] [--stream-recheck-ms MS]
//!                                    [--issuer URL]... [--jwks-refresh-min SECS]
//!                                    [--jwks-max-stale SECS] [--require-scope SCOPE]...
//!                                    [--cors-origin ORIGIN]... [--dpop off|allowed|required]
//!                                    [--metrics-listen ADDR] [--metrics-issuers]
//!                                    [--session-max-age SECONDS] [--admin-scope SCOPE]
//!                                    [--introspect URL]... [--introspect-cache-max SECS]
//! ```
//!
//! With `--introspect URL` (repeatable, and mixable with `--issuer`), the server trusts that
//! authorization server through RFC 7662 token introspection: its access tokens may be opaque,
//! and each is judged by the `introspection_endpoint` its discovery document names, with the
//! client credentials `MCP_INTROSPECTION_CLIENT_ID` and `MCP_INTROSPECTION_CLIENT_SECRET`
//! (HTTP Basic). Answers are cached for at most `--introspect-cache-max` seconds (default 60:
//! the revocation delay accepted), in Redis too with `--redis`, so replicas share them. A
//! token without `sub` (client credentials) gets the subject `client_id:<its client_id>`.
//!
//! Browser clients: `--cors-origin ORIGIN` (repeatable) lets pages of that origin call the
//! server (tower-http's `CorsLayer`, outermost: preflights need no token, every answer carries
//! the CORS headers, `Mcp-Session-Id` is exposed). A request with any other `Origin` gets 403
//! (`OriginLayer`, the MCP transport's DNS-rebinding rule); clients that send no `Origin` (SDKs,
//! curl) are not affected. See `common/browser.rs`. On a loopback address (the default), the
//! server's own origins (`http://localhost:PORT`, `http://127.0.0.1:PORT`, `http://[::1]:PORT`)
//! are allowed too, and a request whose `Host` is not one of those hosts gets 403, whatever its
//! `Origin`: a rebound name such as `evil.example.com:PORT` is refused (`OriginLayer::loopback`).
//!
//! With `--issuer URL` (repeatable), the server trusts that OpenID provider through discovery:
//! it fetches `URL/.well-known/openid-configuration` (or the RFC 8414 document), then the JWK
//! set it names, verifies each issuer's tokens with that issuer's keys only, refreshes them in
//! the background and picks up rotated keys. Before listening it prints one line per issuer,
//! `issuer <URL> keys <kid>,<kid>`. Without `--issuer` it runs the HS256 development mode below.
//!
//! The stack: `JwtAuthLayer` validates the bearer token of every request and puts the
//! caller's `Identity` in the request extensions; `SessionBindingLayer` (in-memory store, or Redis
//! with `--redis`) binds each session to that identity and checks it on every later request; the
//! rmcp `StreamableHttpService` of `common/demo_mcp.rs` serves the tools `whoami` and `echo`, the
//! resource `session://whoami` and the prompt `greet`. The RFC 9728 metadata document the 401
//! challenges point to is served at `/.well-known/oauth-protected-resource` (and at its RFC 9728
//! path, `/.well-known/oauth-protected-resource/mcp`).
//!
//! With `--redis URL`, any number of replicas can run behind one load balancer: the bindings live
//! in Redis (`RedisStore`, keys `mcpsb:<hash>`), and so does rmcp's session state
//! (`common/rmcp_redis_sessions.rs`, keys `mcpsb-session:<hash>`), so a replica that never saw a
//! session restores it for its owner, refuses it to anyone else, and a session ended on one
//! replica answers 404 on all of them. Two replicas on one Redis:
//!
//! ```text
//! export MCP_JWT_SECRET=$(head -c 32 /dev/urandom | base64)
//! cargo run --all-features --example mcp_server -- --redis redis://127.0.0.1:6379/ --listen 127.0.0.1:8081 &
//! cargo run --all-features --example mcp_server -- --redis redis://127.0.0.1:6379/ --listen 127.0.0.1:8082 &
//! ```
//!
//! A Redis that cannot be reached at start is an error (exit 2); one that goes away later makes
//! requests on existing sessions answer 503 until it is back; the sessions and bindings are kept.
//!
//! Environment: `MCP_JWT_AUDIENCE` (default `mcp-session-binding-example`), `RUST_LOG` (logs on
//! stderr, default `info`); for the HS256 development mode, `MCP_JWT_SECRET` (at least 32 bytes)
//! and `MCP_JWT_ISSUERS` (the one issuer the secret belongs to, default
//! `https://issuer.example`). Without `MCP_JWT_SECRET`, the server picks a random secret and
//! prints tokens for `alice` and `bob` and a `curl` command that initializes a session.
//!
//! With `--metrics-listen ADDR` (feature `metrics`), the crate's metrics are served in the
//! Prometheus text format at `http://ADDR/metrics` (`common/metrics_endpoint.rs`,
//! `docs/metrics.md`), and the server prints `metrics on http://HOST:PORT/metrics` first.
//! Session lifecycle: `--session-max-age SECONDS` ends every session at that age, however busy
//! (`SessionBindingLayer::max_session_age`). `--admin-scope SCOPE` (off by default) serves
//! `POST /admin/end-session` and `POST /admin/end-principal` for tokens granting SCOPE: an
//! operator ends one session, or every session and task of one `(iss, sub)`, on every replica
//! (`common/admin.rs`).
//!
//! Rotation without restart: with `MCP_KEY_SECRET_FILE` and `MCP_STATE_KEYS_FILE` (files instead
//! of the variables), `SIGHUP` reads both files again and rotates the keys while the server
//! runs (`common/reload.rs`): the old key secret keeps finding sessions for `--key-overlap SECS`,
//! the old state keys keep opening for the state TTL. rmcp's session state keys (the example's
//! Redis session store) keep the secret read at start.
//!
//! Once it listens, the server prints `listening on http://HOST:PORT/mcp` on stdout.

#[path = "common/admin.rs"]
mod admin;
#[path = "common/browser.rs"]
mod browser;
#[path = "common/demo_mcp.rs"]
mod demo_mcp;
#[path = "common/jwt_stack.rs"]
mod jwt_stack;
#[cfg(feature = "redis")]
#[path = "common/key_secret.rs"]
mod key_secret;
#[cfg(feature = "metrics")]
#[path = "common/metrics_endpoint.rs"]
mod metrics_endpoint;
#[path = "common/reload.rs"]
mod reload;
#[cfg(feature = "redis")]
#[path = "common/rmcp_redis_sessions.rs"]
mod rmcp_redis_sessions;

use std::{io::Write, process::ExitCode, sync::Arc, time::Duration};

use jwt_stack::StackConfig;
use mcp_session_binding::store::{BindingStore, MemoryStore};
use tracing_subscriber::EnvFilter;

const USAGE: &str = "\
usage: mcp_server [--listen ADDR] [--allow-anonymous] [--without-binding] [--without-task-checks]
                  [--redis URL]
                  [--redis-cluster URL]... [--redis-ca PATH] [--redis-cache-ms MS]
                  [--stream-recheck-ms MS] [--issuer URL]... [--jwks-refresh-min SECS] [--jwks-max-stale SECS]
                  [--require-scope SCOPE]... [--cors-origin ORIGIN]... [--dpop POLICY] [--public-url URL]
                  [--metrics-listen ADDR] [--metrics-issuers]
                  [--session-max-age SECONDS] [--admin-scope SCOPE] [--key-overlap SECS]
                  [--introspect URL]... [--introspect-cache-max SECS]

options:
  --listen ADDR       address to listen on (default 127.0.0.1:8080; port 0 picks a free port)
  --allow-anonymous   requests without a token may open anonymous sessions (a token that is
                      sent is still validated)
  --without-binding   the same stack without SessionBindingLayer (a baseline for benchmarks;
                      the task layer keeps its checks, on a store of its own)
  --without-task-checks
                      the task layer checks nothing (with --without-binding: a baseline
                      without either layer's work)
  --redis URL         keep the bindings and rmcp's session state in Redis
                      (redis://HOST:PORT[/DB]), so that replicas sharing it serve
                      every session; give them the same MCP_JWT_SECRET (feature `redis`);
                      rediss://HOST:PORT for TLS (feature `redis-tls`)
  --redis-cluster URL the same on a Redis Cluster: URL is one seed node (repeatable); the
                      bindings share one hash tag, rmcp's session state spreads over the slots
  --redis-ca PATH     with rediss://: trust only the CA certificates in this PEM file
                      (default: the system's roots)
  --redis-cache-ms MS with --redis: keep bindings in this process too (Redis client-side
                      caching, invalidated by Redis), so most requests cost no round trip;
                      a session ended on another replica is refused here within one
                      invalidation, and never more than MS milliseconds later
  --stream-recheck-ms MS
                      how often an open GET stream checks its session again, and ends
                      once the session was ended on any replica (default 5000; 0: never)
  --introspect URL    trust this authorization server through token introspection (RFC
                      7662; repeatable, mixable with --issuer): opaque access tokens, judged
                      by its discovered introspection_endpoint with the client credentials
                      MCP_INTROSPECTION_CLIENT_ID and MCP_INTROSPECTION_CLIENT_SECRET
  --introspect-cache-max SECS
                      how long an introspection answer is cached at most (default 60): the
                      revocation delay accepted
  --issuer URL        trust this OpenID provider through discovery (repeatable): its keys
                      come from URL/.well-known/openid-configuration and its jwks_uri;
                      https only, or http on a loopback host. Prints
                      `issuer URL keys KID,KID` per issuer before listening. Without it:
                      the HS256 development mode (MCP_JWT_SECRET)
  --jwks-refresh-min SECS
                      least time between two key refetches of one issuer triggered by an
                      unknown kid or stale keys (default 30)
  --jwks-max-stale SECS
                      how long the last good keys of an issuer keep serving when refreshes
                      fail, counted from the last successful fetch; then its tokens get 503
                      with Retry-After (default 3600)
  --require-scope SCOPE
                      tokens must grant SCOPE in `scope` or `scp` (repeatable); otherwise
                      403 insufficient_scope
  --cors-origin ORIGIN
                      let browser pages of ORIGIN (scheme://host[:port]) call the server
                      (CORS; repeatable); requests with any other Origin get 403.
                      On a loopback address the server's own origins are allowed too,
                      and any Host but localhost, 127.0.0.1 or [::1] with its port gets 403
  --metrics-listen ADDR
                      serve the layers' metrics in the Prometheus text format at
                      http://ADDR/metrics (feature `metrics`; see docs/metrics.md)
  --metrics-issuers   label accepted tokens and key refreshes with their issuer
  --dpop POLICY       DPoP (RFC 9449) for the trusted issuers: off (default: bearer tokens),
                      allowed (DPoP-bound tokens need a proof, plain ones may be bearer)
                      or required (every request needs a DPoP-bound token and a proof);
                      with --redis, proofs are remembered in Redis, so a proof replayed on
                      another replica is refused
  --public-url URL    the URL clients reach this server at, behind a proxy or load balancer
                      (scheme://host[:port][/prefix]): DPoP proofs name it (htu), the
                      metadata names it, and its origin is allowed instead of the loopback ones
  --session-max-age SECONDS
                      end every session at this age, however busy (404, the MCP
                      session deleted); default: sessions live while they are used
  --admin-scope SCOPE serve POST /admin/end-session {\"session\": ID} and
                      POST /admin/end-principal {\"iss\": ISS, \"sub\": SUB} to tokens
                      granting SCOPE: end one session, or every session and task of
                      one principal, on every replica (default: no admin endpoint)
  --key-overlap SECS  after SIGHUP rotated the key secret (MCP_KEY_SECRET_FILE), how long
                      the one before still finds sessions (default 86400, the binding TTL)
  -h, --help          this text

environment:
  MCP_JWT_AUDIENCE    required audience (default mcp-session-binding-example)
  MCP_JWT_SECRET      HS256 development mode: the secret, at least 32 bytes; unset: a random
                      one, and tokens printed
  MCP_JWT_ISSUERS     HS256 development mode: the one issuer the secret belongs to (default
                      https://issuer.example)
  MCP_KEY_SECRET      with --redis: keys the Redis keys of the bindings and of rmcp's
                      session state (at least 32 bytes, the same on every replica);
                      unset: keys under a public secret
  MCP_KEY_SECRET_FILE instead of MCP_KEY_SECRET: a file holding it; SIGHUP reads it
                      again and rotates the secret (the old one works for --key-overlap)
  MCP_STATE_KEYS_FILE instead of MCP_STATE_KEYS: a file holding them; SIGHUP reads it again
                      and rotates the keys (the old ones open for the state TTL)
  MCP_STATE_KEYS      keys that seal MRTR requestState (feature `request-state`):
                      comma-separated base64, 32 bytes each, the first seals; unset: a
                      random key per process (replicas need the same keys)
  RUST_LOG            log filter, logs go to stderr (default info,rmcp=warn)";

/// The command line.
#[derive(Debug)]
struct Args {
    listen: String,
    allow_anonymous: bool,
    without_binding: bool,
    without_task_checks: bool,
    redis: Option<String>,
    redis_cluster: Vec<String>,
    redis_ca: Option<String>,
    redis_cache: Option<Duration>,
    stream_recheck: Option<Duration>,
    issuers: Vec<String>,
    introspect: Vec<String>,
    introspect_cache_max: Duration,
    jwks_refresh_min: Duration,
    jwks_max_stale: Duration,
    required_scopes: Vec<String>,
    cors_origins: Vec<String>,
    metrics_listen: Option<String>,
    metrics_issuers: bool,
    dpop: mcp_session_binding::jwt::DpopPolicy,
    public_url: Option<String>,
    session_max_age: Option<Duration>,
    admin_scope: Option<String>,
    key_overlap: Duration,
}

impl Default for Args {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".to_owned(),
            allow_anonymous: false,
            without_binding: false,
            without_task_checks: false,
            redis: None,
            redis_cluster: Vec::new(),
            redis_ca: None,
            redis_cache: None,
            stream_recheck: None,
            issuers: Vec::new(),
            introspect: Vec::new(),
            introspect_cache_max: Duration::from_secs(60),
            jwks_refresh_min: Duration::from_secs(30),
            jwks_max_stale: Duration::from_secs(3600),
            required_scopes: Vec::new(),
            cors_origins: Vec::new(),
            metrics_listen: None,
            metrics_issuers: false,
            dpop: mcp_session_binding::jwt::DpopPolicy::Off,
            public_url: None,
            session_max_age: None,
            admin_scope: None,
            key_overlap: Duration::from_secs(24 * 3600),
        }
    }
}

fn seconds(flag: &str, value: &str) -> Result<Duration, String> {
    value
        .parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|_| format!("{flag} needs a whole number of seconds, not {value:?}"))
}

impl Args {
    /// Parses `--flag value` and `--flag=value`. `Ok(None)` asks for the usage text.
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Option<Self>, String> {
        let mut parsed = Self::default();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => {
                    (flag.to_owned(), Some(value.to_owned()))
                }
                _ => (arg, None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .ok_or_else(|| format!("{flag} needs a value"))
            };
            match flag.as_str() {
                "--listen" => parsed.listen = value()?,
                "--redis" => parsed.redis = Some(value()?),
                "--redis-cluster" => parsed.redis_cluster.push(value()?),
                "--redis-ca" => parsed.redis_ca = Some(value()?),
                "--redis-cache-ms" => {
                    let ms = value()?;
                    let ms: u64 = ms.parse().ok().filter(|ms| *ms > 0).ok_or_else(|| {
                        format!("--redis-cache-ms {ms:?}: not a positive number of milliseconds")
                    })?;
                    parsed.redis_cache = Some(Duration::from_millis(ms));
                }
                "--stream-recheck-ms" => {
                    let ms = value()?;
                    let ms: u64 = ms.parse().map_err(|_| {
                        format!("--stream-recheck-ms {ms:?}: not a number of milliseconds")
                    })?;
                    parsed.stream_recheck = Some(Duration::from_millis(ms));
                }
                "--issuer" => parsed.issuers.push(value()?),
                "--introspect" => parsed.introspect.push(value()?),
                "--introspect-cache-max" => {
                    parsed.introspect_cache_max = seconds(&flag, &value()?)?;
                }
                "--jwks-refresh-min" => parsed.jwks_refresh_min = seconds(&flag, &value()?)?,
                "--jwks-max-stale" => parsed.jwks_max_stale = seconds(&flag, &value()?)?,
                "--require-scope" => parsed.required_scopes.push(value()?),
                "--cors-origin" => parsed.cors_origins.push(value()?),
                "--metrics-listen" => parsed.metrics_listen = Some(value()?),
                "--dpop" => {
                    parsed.dpop = value()?.parse().map_err(|e| format!("--dpop: {e}"))?;
                }
                "--public-url" => parsed.public_url = Some(value()?),
                "--session-max-age" => {
                    let max_age = seconds(&flag, &value()?)?;
                    if max_age.is_zero() {
                        return Err("--session-max-age must be at least 1 second".to_owned());
                    }
                    parsed.session_max_age = Some(max_age);
                }
                "--admin-scope" => parsed.admin_scope = Some(value()?),
                "--key-overlap" => parsed.key_overlap = seconds(&flag, &value()?)?,
                "--allow-anonymous"
                | "--without-binding"
                | "--without-task-checks"
                | "--metrics-issuers"
                    if inline.is_some() =>
                {
                    return Err(format!("{flag} takes no value"));
                }
                "--allow-anonymous" => parsed.allow_anonymous = true,
                "--without-binding" => parsed.without_binding = true,
                "--without-task-checks" => parsed.without_task_checks = true,
                "--metrics-issuers" => parsed.metrics_issuers = true,
                "-h" | "--help" => return Ok(None),
                _ => return Err(format!("unknown argument {flag:?}")),
            }
        }
        let cluster = !parsed.redis_cluster.is_empty();
        if parsed.without_binding && (parsed.redis.is_some() || cluster) {
            return Err("--redis and --redis-cluster exclude --without-binding".to_owned());
        }
        if parsed.redis.is_some() && cluster {
            return Err("--redis and --redis-cluster exclude each other".to_owned());
        }
        if parsed.redis_ca.is_some() && parsed.redis.is_none() && !cluster {
            return Err("--redis-ca needs --redis or --redis-cluster".to_owned());
        }
        if parsed.without_binding
            && (parsed.session_max_age.is_some() || parsed.admin_scope.is_some())
        {
            return Err(
                "--session-max-age and --admin-scope need the binding layer (not --without-binding)"
                    .to_owned(),
            );
        }
        if parsed.redis_cache.is_some() && parsed.redis.is_none() {
            return Err("--redis-cache-ms needs --redis (one Redis endpoint)".to_owned());
        }
        Ok(Some(parsed))
    }
}

/// The issuers of `--introspect`, with the client credentials from the environment; with
/// Redis, their answers are shared there.
fn introspected(
    args: &Args,
    redis: Option<&Redis>,
) -> Result<Vec<jwt_stack::TrustedIssuer>, String> {
    if args.introspect.is_empty() {
        return Ok(Vec::new());
    }
    let var = |name: &str| {
        std::env::var(name).map_err(|_| format!("--introspect needs {name} in the environment"))
    };
    let id = var("MCP_INTROSPECTION_CLIENT_ID")?;
    let secret = var("MCP_INTROSPECTION_CLIENT_SECRET")?;
    #[allow(unused_mut)]
    let mut settings = mcp_session_binding::jwt::Introspection::new(id, secret)
        .cache_max(args.introspect_cache_max)
        .subject_fallback("client_id");
    #[cfg(feature = "redis")]
    if let Some(redis) = redis {
        settings = settings.redis(redis.connection());
    }
    #[cfg(not(feature = "redis"))]
    let _ = redis;
    Ok(args
        .introspect
        .iter()
        .map(|issuer| jwt_stack::TrustedIssuer {
            issuer: issuer.clone(),
            keys: jwt_stack::IssuerKeys::Introspection(Box::new(settings.clone())),
        })
        .collect())
}

/// Where the bindings live, or `None` with `--without-binding`.
async fn binding_store(
    args: &Args,
    redis: Option<&Redis>,
) -> Result<Option<Arc<dyn BindingStore>>, String> {
    if args.without_binding {
        return Ok(None);
    }
    match redis {
        Some(redis) => Ok(Some(Arc::new(redis.clone()))),
        None => {
            let store = MemoryStore::new();
            // Expired bindings are also dropped lazily; the sweeper bounds the memory of
            // sessions nobody comes back to. It stops when the store is dropped.
            drop(store.spawn_sweeper(Duration::from_secs(60)));
            Ok(Some(Arc::new(store)))
        }
    }
}

/// The Redis of `--redis`: the bindings' store, whose connection rmcp's session state shares.
#[cfg(feature = "redis")]
type Redis = mcp_session_binding::store::RedisStore;
#[cfg(not(feature = "redis"))]
type Redis = MemoryStore;

/// Connects to the Redis of `--redis` (`None` without it).
#[cfg(feature = "redis")]
async fn redis(args: &Args) -> Result<Option<Redis>, String> {
    use mcp_session_binding::store::RedisStore;
    if args.redis.is_none() && args.redis_cluster.is_empty() {
        return Ok(None);
    }
    #[allow(unused_mut)]
    let mut options = key_secret::redis_options()?;
    if let Some(path) = &args.redis_ca {
        #[cfg(feature = "redis-tls")]
        {
            let pem =
                std::fs::read(path).map_err(|e| format!("cannot read --redis-ca {path}: {e}"))?;
            options = options.ca_pem(pem);
        }
        #[cfg(not(feature = "redis-tls"))]
        return Err(format!("--redis-ca {path} needs the redis-tls feature"));
    }
    if let Some(max_staleness) = args.redis_cache {
        options = options.client_side_cache(max_staleness);
    }
    let store = match &args.redis {
        Some(url) => RedisStore::connect_with(url, options).await,
        None => RedisStore::connect_cluster(&args.redis_cluster, options).await,
    }
    .map_err(|e| format!("cannot use Redis: {e}"))?;
    tracing::info!("bindings and MCP session state are kept in Redis");
    Ok(Some(store))
}

#[cfg(not(feature = "redis"))]
async fn redis(args: &Args) -> Result<Option<Redis>, String> {
    if args.redis.is_some() || !args.redis_cluster.is_empty() {
        return Err("--redis and --redis-cluster need the redis feature".to_owned());
    }
    Ok(None)
}

/// The demo MCP service of `common/demo_mcp.rs`.
type DemoService = rmcp::transport::streamable_http_server::StreamableHttpService<
    demo_mcp::DemoMcp,
    rmcp::transport::streamable_http_server::session::local::LocalSessionManager,
>;

/// The MCP service; with `--redis`, rmcp keeps its session state in Redis too, so that another
/// replica can restore a session it does not hold.
/// With `MCP_KEY_SECRET`, rmcp's session state keys are keyed (BLAKE3, a subkey of the secret of
/// their own); without, keyed with the public secret, as the bindings' keys are then.
#[cfg(feature = "redis")]
fn mcp_service(redis: Option<&Redis>, public_host: Option<String>) -> Result<DemoService, String> {
    let Some(store) = redis else {
        return Ok(demo_mcp::service_for(None, public_host));
    };
    let mut sessions = rmcp_redis_sessions::RedisSessionStore::sharing(store);
    match key_secret::rmcp_sessions_key()? {
        Some(key) => {
            sessions = sessions.keyed(key);
            tracing::info!(
                "MCP session state keys in Redis are keyed with MCP_KEY_SECRET (BLAKE3 under a \
                 subkey of their own)"
            );
        }
        None => tracing::info!(
            "MCP_KEY_SECRET is not set: MCP session state keys in Redis are keyed with a public secret; \
             set it (32 bytes or more, the same on every replica) for keyed keys"
        ),
    }
    Ok(demo_mcp::service_for(Some(Arc::new(sessions)), public_host))
}

#[cfg(not(feature = "redis"))]
fn mcp_service(_redis: Option<&Redis>, public_host: Option<String>) -> Result<DemoService, String> {
    Ok(demo_mcp::service_for(None, public_host))
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,rmcp=warn".into()),
        )
        .init();

    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("error: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    // First: the recorder is in place before any layer records.
    let metrics = match &args.metrics_listen {
        Some(addr) => Some(serve_metrics(addr, args.metrics_issuers).await?),
        None => None,
    };
    let discovery = !args.issuers.is_empty();
    let jwt_stack::Issuers {
        mut trusted,
        audience,
        dev_secret,
    } = if !discovery && !args.introspect.is_empty() {
        // Introspected issuers only: no HS256 development mode.
        jwt_stack::Issuers {
            trusted: Vec::new(),
            audience: std::env::var("MCP_JWT_AUDIENCE")
                .unwrap_or_else(|_| jwt_stack::DEFAULT_AUDIENCE.to_owned()),
            dev_secret: None,
        }
    } else {
        jwt_stack::issuers_from_env(&args.issuers)?
    };
    let redis = redis(&args).await?;
    trusted.extend(introspected(&args, redis.as_ref())?);
    #[allow(unused_mut)]
    let mut reloadable = reload::Reloadable {
        #[cfg(feature = "redis")]
        store: redis.clone(),
        #[cfg(feature = "request-state")]
        state: None,
        key_overlap: args.key_overlap,
    };
    let binding = binding_store(&args, redis.as_ref()).await?;
    let public_host = match &args.public_url {
        Some(url) => Some(
            origin_of(url)?
                .split_once("://")
                .map_or_else(String::new, |(_, host)| host.to_owned()),
        ),
        None => None,
    };
    let mcp = mcp_service(redis.as_ref(), public_host)?;
    // MRTR requestState sealed to the caller (revision 2026-07-28), inside the binding layer.
    #[cfg(feature = "request-state")]
    let mcp = {
        let state = state_layer()?;
        reloadable.state = Some(state.clone());
        tower::Layer::layer(&state, mcp)
    };
    reloadable.spawn_on_sighup()?;
    // Task ids in request bodies (`subscriptions/listen`, and every task request of a
    // 2025-11-25 session, where rmcp serves tasks too) bound to their creator: inside the
    // binding layer, on its store; without it (a baseline), on a store of its own.
    let tasks_store: Arc<dyn BindingStore> = match &binding {
        Some(store) => store.clone(),
        None => Arc::new(MemoryStore::new()),
    };
    let checks = !args.without_task_checks;
    let task_params = mcp_session_binding::task_params::TaskParamsLayer::new(tasks_store)
        .check_listen(checks)
        .legacy_tasks(checks);
    let mcp = tower::Layer::layer(&task_params, mcp);

    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("no local address: {e}"))?;
    let url = format!("http://{addr}/mcp");
    // The origin clients reach (behind a proxy, `--public-url`): the metadata names its `/mcp` as
    // the resource, and the 401 challenges point to its metadata document.
    let base_url = match &args.public_url {
        Some(public) => public.trim_end_matches('/').to_owned(),
        None => format!("http://{addr}"),
    };

    let config = StackConfig {
        issuers: trusted,
        audience,
        allow_anonymous: args.allow_anonymous,
        binding,
        required_scopes: args.required_scopes.clone(),
        jwks_refetch_interval: args.jwks_refresh_min,
        jwks_max_stale: args.jwks_max_stale,
        stream_recheck: args.stream_recheck,
        dpop: dpop(&args, redis.as_ref()),
    };
    let auth = jwt_stack::auth_layer(&config, &base_url).map_err(|e| {
        if discovery {
            format!("invalid JWT settings: {e}")
        } else {
            format!("invalid JWT settings (MCP_JWT_*): {e}")
        }
    })?;
    if discovery {
        // Fail fast, and know the keys before serving.
        auth.fetch_keys()
            .await
            .map_err(|e| format!("cannot load the signing keys of {e}"))?;
    }
    let key_ids = auth.key_ids();
    let mut binding_layer = None;
    let app = jwt_stack::router_with_binding(&config, &base_url, mcp, auth, |mut binding| {
        if let Some(max_age) = args.session_max_age {
            binding = binding.max_session_age(max_age);
        }
        binding_layer = Some(binding.clone());
        binding
    });
    let app = match (&args.admin_scope, binding_layer) {
        (Some(scope), Some(binding)) => {
            let admin_config = StackConfig {
                required_scopes: vec![scope.clone()],
                allow_anonymous: false,
                ..config.clone()
            };
            let admin_auth = jwt_stack::auth_layer(&admin_config, &base_url)
                .map_err(|e| format!("invalid JWT settings for --admin-scope: {e}"))?;
            tracing::info!("admin endpoint on: POST /admin/end-session, /admin/end-principal");
            app.merge(admin::router(binding, admin_auth))
        }
        _ => app,
    };
    let app = match &args.public_url {
        // Behind a proxy: the Host is the proxy's, so the loopback Host check does not apply.
        Some(url) => {
            let mut origins = args.cors_origins.clone();
            origins.push(origin_of(url)?);
            browser::layers(app, &origins)
        }
        None => browser::layers_at(app, addr, &args.cors_origins),
    }
    .map_err(|e| format!("--cors-origin: {e}"))?;
    tracing::info!(
        issuers = ?config.issuer_names(),
        audience = %config.audience,
        binding = config.binding.is_some(),
        allow_anonymous = config.allow_anonymous,
        "MCP server ready"
    );

    let mut stdout = std::io::stdout().lock();
    if let Some(secret) = &dev_secret {
        jwt_stack::print_tokens(&mut stdout, secret, &config, &url).map_err(|e| e.to_string())?;
    }
    if discovery {
        // One line per issuer, in the order given: `issuer <URL> keys <kid>,<kid>`.
        for issuer in &args.issuers {
            let kids = key_ids
                .iter()
                .find(|(i, _)| i == issuer)
                .map(|(_, kids)| {
                    kids.iter()
                        .map(|kid| kid.as_deref().unwrap_or("-"))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            writeln!(stdout, "issuer {issuer} keys {kids}").map_err(|e| e.to_string())?;
        }
    }
    if let Some(addr) = metrics {
        writeln!(stdout, "metrics on http://{addr}/metrics").map_err(|e| e.to_string())?;
    }
    writeln!(stdout, "listening on {url}").map_err(|e| e.to_string())?;
    stdout.flush().map_err(|e| e.to_string())?;
    drop(stdout);

    // TCP_NODELAY: SSE answers are written in small pieces; without it each one waits ~40 ms for
    // the client's delayed ACK.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .await
        .map_err(|e| format!("server stopped: {e}"))
}

/// `--metrics-listen`: the Prometheus endpoint; the address it listens on.
#[cfg(feature = "metrics")]
async fn serve_metrics(addr: &str, issuers: bool) -> Result<std::net::SocketAddr, String> {
    metrics_endpoint::serve(addr, issuers).await
}

#[cfg(not(feature = "metrics"))]
async fn serve_metrics(_addr: &str, _issuers: bool) -> Result<std::net::SocketAddr, String> {
    Err("--metrics-listen needs the metrics feature".to_owned())
}

/// The DPoP settings of `--dpop`: with Redis, proofs are remembered there.
fn dpop(args: &Args, redis: Option<&Redis>) -> Option<jwt_stack::StackDpop> {
    use mcp_session_binding::jwt::DpopPolicy;
    if args.dpop == DpopPolicy::Off {
        return None;
    }
    let mut dpop = jwt_stack::StackDpop::new(args.dpop);
    let public_url = args.public_url.clone();
    #[cfg(feature = "redis")]
    let store = redis.cloned();
    #[cfg(not(feature = "redis"))]
    let _ = redis;
    dpop.tune = Some(Arc::new(move |mut auth| {
        if let Some(url) = &public_url {
            auth = auth.dpop_base_url(url.clone());
        }
        #[cfg(feature = "redis")]
        if let Some(store) = &store {
            auth = auth.dpop_replay_redis(store);
        }
        auth
    }));
    Some(dpop)
}

/// The origin (`scheme://host[:port]`) of `--public-url`.
fn origin_of(url: &str) -> Result<String, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("--public-url {url}: not scheme://host[:port][/path]"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Err(format!("--public-url {url}: no host"));
    }
    Ok(format!("{scheme}://{authority}"))
}

/// The `requestState` sealing layer: keys from `MCP_STATE_KEYS` (comma-separated base64, 32
/// bytes each; the first seals, all open), else one random key for this process.
#[cfg(feature = "request-state")]
fn state_layer() -> Result<mcp_session_binding::state::RequestStateLayer, String> {
    use mcp_session_binding::state::{RequestStateLayer, StateKeys};
    let list = match reload::read_file_of("MCP_STATE_KEYS_FILE") {
        Some(list) => Some(list?),
        None => std::env::var("MCP_STATE_KEYS").ok(),
    };
    let keys = match list {
        Some(list) => {
            StateKeys::from_base64_list(&list).map_err(|e| format!("MCP_STATE_KEYS: {e}"))?
        }
        None => {
            tracing::warn!(
                "MCP_STATE_KEYS is not set: requestState is sealed with a random key of this \
                 process; replicas need MCP_STATE_KEYS, with the same keys on each"
            );
            StateKeys::random()
        }
    };
    Ok(RequestStateLayer::new(keys))
}
