//! A gateway: JWT authentication and session binding in front of any MCP server on Streamable
//! HTTP, whatever language it is written in.
//!
//! ```text
//! cargo run --all-features --example gateway -- --upstream http://127.0.0.1:8000/mcp
//!                                [--listen 127.0.0.1:8080] [--allow-anonymous] [--without-binding]
//!                                [--redis redis://127.0.0.1/] [--issuer URL]...
//!                                [--jwks-refresh-min SECS] [--jwks-max-stale SECS]
//!                                [--require-scope SCOPE]... [--cors-origin ORIGIN]...
//!                                [--upstream-timeout SECS]
//! ```
//!
//! It serves `/mcp` with the stack of the `mcp_server` example (`common/jwt_stack.rs`:
//! `JwtAuthLayer`, then `SessionBindingLayer`; `common/browser.rs`: CORS and the `Origin`
//! check with `--cors-origin`), and instead of an MCP service of its own, a reverse proxy to
//! `--upstream`:
//!
//! - Bodies stream both ways as they come: a request body is sent upstream while it arrives,
//!   and an SSE answer reaches the client event by event (nothing is buffered).
//! - Hop-by-hop headers (`Connection`, `Keep-Alive`, `TE`, `Trailer`, `Transfer-Encoding`,
//!   `Upgrade`, `HTTP2-Settings`, `Proxy-*`) are dropped both ways; `Host` is the upstream's.
//!   Every other header passes exactly as the layers saw it, among them `Mcp-Session-Id`,
//!   `MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name` and `Last-Event-ID`. The caller's
//!   `Authorization` does not: the token was issued for the gateway, and MCP forbids passing it
//!   on to another server.
//! - `Connection` may name only those hop-by-hop headers, or headers the message does not
//!   have. A request whose `Connection` names any other header it carries (`Connection:
//!   mcp-name`, say) is refused with 400 and a JSON-RPC error, and nothing is forwarded:
//!   dropping that header would send the upstream another request than the one the layers
//!   checked (another task in `Mcp-Name`, no `Mcp-Session-Id`). An upstream response that does
//!   the same gets the client a 502.
//! - Connections to the upstream are HTTP/1.1, kept alive and pooled (no DNS lookup or TLS
//!   handshake per request); an https upstream is checked against the platform's roots.
//! - When the upstream cannot be reached, fails, or sends no response head within
//!   `--upstream-timeout` (30 s), the client gets 502 with a JSON-RPC error. Redirects are not
//!   followed.
//! - A refused caller's session ends upstream too: the binding layer's `DELETE` goes through
//!   the proxy, so the upstream answers 404 for that session from then on.
//!
//! The flags and environment variables are those of `mcp_server` (`--help`), plus `--upstream
//! URL` (required) and `--upstream-timeout SECS`. With `--redis URL`, the bindings live in
//! Redis: several gateways in front of one upstream share them. Once it listens, the gateway
//! prints `listening on http://HOST:PORT/mcp` on stdout.

#[path = "common/browser.rs"]
mod browser;
#[path = "common/jwt_stack.rs"]
mod jwt_stack;
#[cfg(feature = "redis")]
#[path = "common/key_secret.rs"]
mod key_secret;

use std::{
    convert::Infallible,
    io::Write,
    process::ExitCode,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use axum::{body::Body, extract::Request, response::Response};
use futures::future::BoxFuture;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use jwt_stack::StackConfig;
use mcp_session_binding::store::{BindingStore, MemoryStore};
use tracing_subscriber::EnvFilter;

const USAGE: &str = "\
usage: gateway --upstream URL [--listen ADDR] [--allow-anonymous] [--without-binding]
               [--redis URL] [--issuer URL]... [--jwks-refresh-min SECS]
               [--jwks-max-stale SECS] [--require-scope SCOPE]... [--cors-origin ORIGIN]...
               [--upstream-timeout SECS]

options:
  --upstream URL      the MCP endpoint to protect (http or https), e.g.
                      http://127.0.0.1:8000/mcp (required)
  --upstream-timeout SECS
                      longest wait for the upstream's response head; then 502 (default 30)
  --listen ADDR       address to listen on (default 127.0.0.1:8080; port 0 picks a free port)
  --allow-anonymous   requests without a token may open anonymous sessions
  --without-binding   the same gateway without SessionBindingLayer (a baseline)
  --redis URL         keep the bindings in Redis (redis://HOST:PORT[/DB]), shared by every
                      gateway in front of the upstream (feature `redis`)
  --issuer URL        trust this OpenID provider through discovery (repeatable); without
                      it: the HS256 development mode (MCP_JWT_SECRET)
  --jwks-refresh-min SECS, --jwks-max-stale SECS, --require-scope SCOPE
                      as for mcp_server
  --cors-origin ORIGIN
                      let browser pages of ORIGIN call the gateway (CORS; repeatable);
                      requests with any other Origin get 403
  -h, --help          this text

environment: MCP_JWT_AUDIENCE, MCP_JWT_SECRET, MCP_JWT_ISSUERS, MCP_KEY_SECRET, RUST_LOG, as for
mcp_server";

/// The command line.
#[derive(Debug)]
struct Args {
    upstream: reqwest::Url,
    upstream_timeout: Duration,
    listen: String,
    allow_anonymous: bool,
    without_binding: bool,
    redis: Option<String>,
    issuers: Vec<String>,
    jwks_refresh_min: Duration,
    jwks_max_stale: Duration,
    required_scopes: Vec<String>,
    cors_origins: Vec<String>,
}

fn seconds(flag: &str, value: &str) -> Result<Duration, String> {
    match value.parse::<u64>() {
        Ok(secs) if secs > 0 => Ok(Duration::from_secs(secs)),
        _ => Err(format!(
            "{flag} needs a positive whole number of seconds, not {value:?}"
        )),
    }
}

fn upstream_url(value: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(value).map_err(|e| format!("--upstream {value:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!("--upstream {value:?}: not an http or https URL"));
    }
    if url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "--upstream {value:?}: no user info or fragment, please"
        ));
    }
    Ok(url)
}

impl Args {
    /// Parses `--flag value` and `--flag=value`. `Ok(None)` asks for the usage text.
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Option<Self>, String> {
        let mut upstream = None;
        let mut parsed = Self {
            upstream: reqwest::Url::parse("http://unset.invalid/").expect("a valid URL"),
            upstream_timeout: Duration::from_secs(30),
            listen: "127.0.0.1:8080".to_owned(),
            allow_anonymous: false,
            without_binding: false,
            redis: None,
            issuers: Vec::new(),
            jwks_refresh_min: Duration::from_secs(30),
            jwks_max_stale: Duration::from_secs(3600),
            required_scopes: Vec::new(),
            cors_origins: Vec::new(),
        };
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
                "--upstream" => upstream = Some(upstream_url(&value()?)?),
                "--upstream-timeout" => parsed.upstream_timeout = seconds(&flag, &value()?)?,
                "--listen" => parsed.listen = value()?,
                "--redis" => parsed.redis = Some(value()?),
                "--issuer" => parsed.issuers.push(value()?),
                "--jwks-refresh-min" => parsed.jwks_refresh_min = seconds(&flag, &value()?)?,
                "--jwks-max-stale" => parsed.jwks_max_stale = seconds(&flag, &value()?)?,
                "--require-scope" => parsed.required_scopes.push(value()?),
                "--cors-origin" => parsed.cors_origins.push(value()?),
                "--allow-anonymous" | "--without-binding" if inline.is_some() => {
                    return Err(format!("{flag} takes no value"));
                }
                "--allow-anonymous" => parsed.allow_anonymous = true,
                "--without-binding" => parsed.without_binding = true,
                "-h" | "--help" => return Ok(None),
                _ => return Err(format!("unknown argument {flag:?}")),
            }
        }
        parsed.upstream = upstream.ok_or("--upstream URL is required")?;
        if parsed.without_binding && parsed.redis.is_some() {
            return Err("--redis and --without-binding exclude each other".to_owned());
        }
        Ok(Some(parsed))
    }
}

/// Where the bindings live, or `None` with `--without-binding`.
async fn binding_store(args: &Args) -> Result<Option<Arc<dyn BindingStore>>, String> {
    if args.without_binding {
        return Ok(None);
    }
    let Some(url) = &args.redis else {
        let store = MemoryStore::new();
        drop(store.spawn_sweeper(Duration::from_secs(60)));
        return Ok(Some(Arc::new(store)));
    };
    #[cfg(feature = "redis")]
    {
        let options = key_secret::redis_options()?;
        let store = mcp_session_binding::store::RedisStore::connect_with(url, options)
            .await
            .map_err(|e| format!("cannot use Redis: {e}"))?;
        Ok(Some(Arc::new(store)))
    }
    #[cfg(not(feature = "redis"))]
    {
        let _ = url;
        Err("--redis needs the redis feature".to_owned())
    }
}

/// Headers that belong to one connection, never forwarded (RFC 9110 §7.6.1; `HTTP2-Settings`:
/// RFC 9113 §3.1 of the h2c upgrade, which `Connection` names).
const NOT_FORWARDED: [HeaderName; 10] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    HeaderName::from_static("http2-settings"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// The first header that `Connection` names and `headers` carry, other than the hop-by-hop
/// ones always dropped: a message the gateway cannot forward as it is, because RFC 9110 §7.6.1
/// would have it drop that header. `None`: dropping [`NOT_FORWARDED`] changes nothing else.
///
/// Only present headers count (`Connection: close` names none). Names are compared as header
/// names (case-insensitive, whitespace around them ignored); a value that is not a token list
/// names nothing the gateway would drop. Bounded by the size of the `Connection` values.
fn named_end_to_end(headers: &HeaderMap) -> Option<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::try_from(name.trim()).ok())
        .find(|name| headers.contains_key(name) && !NOT_FORWARDED.contains(name))
}

/// Drops the hop-by-hop headers from `headers`. The caller has checked [`named_end_to_end`]:
/// the headers `Connection` names are then absent or among these.
fn drop_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none: one pass over the names costs less than ten removals.
    if headers.keys().any(|name| NOT_FORWARDED.contains(name)) {
        for name in &NOT_FORWARDED {
            headers.remove(name);
        }
    }
}

/// The client to the upstream: pooled keep-alive connections (no DNS lookup or TLS handshake
/// per request), HTTP/1.1, no redirects followed, `TCP_NODELAY`.
type Client = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Body,
>;

/// A reverse proxy to one MCP endpoint, as a tower service (what `SessionBindingLayer` wraps).
/// Cloned on every request (axum clones the route's service stack): one reference count.
#[derive(Clone)]
struct Proxy(Arc<Upstream>);

/// The upstream endpoint and the client to it.
struct Upstream {
    client: Client,
    /// The upstream endpoint, parsed once.
    upstream: Uri,
    /// Its `Host` header (`host[:port]`, without a default port), made once.
    host: HeaderValue,
    head_timeout: Duration,
}

impl Upstream {
    fn new(upstream: &reqwest::Url, head_timeout: Duration) -> Result<Self, String> {
        let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(5)));
        let tls = if upstream.scheme() == "https" {
            // The platform's roots (what reqwest with rustls trusts).
            <rustls::ClientConfig as rustls_platform_verifier::ConfigVerifierExt>::with_platform_verifier()
                .map_err(|e| format!("cannot set up TLS: {e}"))?
        } else {
            // Never used (the upstream is plain HTTP): no system roots to load.
            rustls::ClientConfig::builder()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth()
        };
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_timer(TokioTimer::new())
            .build(connector);
        let host = match (upstream.host_str(), upstream.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            (None, _) => return Err(format!("--upstream {upstream}: no host")),
        };
        let host =
            HeaderValue::try_from(host).map_err(|e| format!("--upstream {upstream}: {e}"))?;
        let upstream =
            Uri::try_from(upstream.as_str()).map_err(|e| format!("--upstream {upstream}: {e}"))?;
        Ok(Self {
            client,
            upstream,
            host,
            head_timeout,
        })
    }

    /// The upstream endpoint with the query of `uri`.
    fn target(&self, uri: &Uri) -> Result<Uri, http::Error> {
        let Some(query) = uri.query() else {
            return Ok(self.upstream.clone());
        };
        let path = self.upstream.path();
        Uri::builder()
            .scheme(self.upstream.scheme_str().unwrap_or("http"))
            .authority(self.upstream.authority().map_or("", |a| a.as_str()))
            .path_and_query(format!("{path}?{query}"))
            .build()
    }

    async fn forward(&self, request: Request) -> Response {
        let (mut parts, body) = request.into_parts();
        // Mounted at /mcp: only /mcp itself (and its query) maps to the upstream endpoint.
        if !matches!(parts.uri.path(), "" | "/") {
            return error(StatusCode::NOT_FOUND, "Not found");
        }
        let Ok(url) = self.target(&parts.uri) else {
            return error(StatusCode::BAD_REQUEST, "Bad request: invalid query");
        };
        // The layers have decided on these headers: the upstream gets them all, or nothing.
        if let Some(name) = named_end_to_end(&parts.headers) {
            tracing::warn!(
                reason = "connection_names_end_to_end",
                header = %name,
                "request refused: Connection names an end-to-end header"
            );
            let message = format!(
                "Bad request: Connection names the {name} header, which the gateway forwards \
                 unchanged or not at all"
            );
            return error(StatusCode::BAD_REQUEST, &message);
        }
        drop_hop_by_hop(&mut parts.headers);
        parts.headers.insert(header::HOST, self.host.clone());
        parts.headers.remove(header::AUTHORIZATION);
        parts.uri = url;
        parts.version = http::Version::HTTP_11;
        // The body streams as it arrives: nothing is buffered here.
        let upstream = self.client.request(Request::from_parts(parts, body));
        let response = match tokio::time::timeout(self.head_timeout, upstream).await {
            Ok(Ok(response)) => response,
            Ok(Err(err)) => {
                tracing::warn!(
                    reason = "upstream_error",
                    error = causes(&err),
                    "upstream request failed"
                );
                return error(StatusCode::BAD_GATEWAY, "Bad gateway: upstream unavailable");
            }
            Err(_) => {
                tracing::warn!(
                    reason = "upstream_timeout",
                    timeout = ?self.head_timeout,
                    "upstream sent no response head in time"
                );
                return error(StatusCode::BAD_GATEWAY, "Bad gateway: upstream timed out");
            }
        };
        let (mut parts, body) = response.into_parts();
        // The layers read the answer after this (the binding layer binds its Mcp-Session-Id):
        // dropping an end-to-end header here would hand the client a session, or an answer,
        // other than the one the upstream meant. Dropping `body` closes that connection.
        if let Some(name) = named_end_to_end(&parts.headers) {
            tracing::warn!(
                reason = "upstream_connection_names_end_to_end",
                header = %name,
                "upstream answer refused: Connection names an end-to-end header"
            );
            return error(
                StatusCode::BAD_GATEWAY,
                "Bad gateway: the upstream's answer cannot be forwarded",
            );
        }
        drop_hop_by_hop(&mut parts.headers);
        // Frame by frame: an SSE event reaches the client when the upstream sends it.
        Response::from_parts(parts, Body::new(body))
    }
}

impl tower::Service<Request> for Proxy {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let upstream = Arc::clone(&self.0);
        Box::pin(async move { Ok(upstream.forward(request).await) })
    }
}

/// `err` and its sources, `: `-separated (the client's errors name only their kind: "client
/// error (Connect)").
fn causes(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A JSON-RPC error without `id` (code -32000), with `status`.
fn error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "error": {"code": -32000, "message": message},
    });
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
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
    let jwt_stack::Issuers {
        trusted,
        audience,
        dev_secret,
    } = jwt_stack::issuers_from_env(&args.issuers)?;
    let binding = binding_store(&args).await?;
    let proxy = Proxy(Arc::new(Upstream::new(
        &args.upstream,
        args.upstream_timeout,
    )?));

    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("no local address: {e}"))?;
    let base_url = format!("http://{addr}");
    let url = format!("{base_url}/mcp");

    let config = StackConfig {
        issuers: trusted,
        audience,
        allow_anonymous: args.allow_anonymous,
        binding,
        required_scopes: args.required_scopes.clone(),
        jwks_refetch_interval: args.jwks_refresh_min,
        jwks_max_stale: args.jwks_max_stale,
        stream_recheck: None,
        dpop: None,
    };
    let auth = jwt_stack::auth_layer(&config, &base_url)
        .map_err(|e| format!("invalid JWT settings: {e}"))?;
    if !args.issuers.is_empty() {
        auth.fetch_keys()
            .await
            .map_err(|e| format!("cannot load the signing keys of {e}"))?;
    }
    // The binding layer ends a refused caller's session with a DELETE to its inner service:
    // here the proxy, so the session ends upstream too.
    let app = jwt_stack::router_with(&config, &base_url, proxy, auth);
    let app =
        browser::layers(app, &args.cors_origins).map_err(|e| format!("--cors-origin: {e}"))?;
    tracing::info!(
        upstream = %args.upstream,
        binding = config.binding.is_some(),
        allow_anonymous = config.allow_anonymous,
        "gateway ready"
    );

    let mut stdout = std::io::stdout().lock();
    if let Some(secret) = &dev_secret {
        jwt_stack::print_tokens(&mut stdout, secret, &config, &url).map_err(|e| e.to_string())?;
    }
    writeln!(stdout, "listening on {url}").map_err(|e| e.to_string())?;
    stdout.flush().map_err(|e| e.to_string())?;
    drop(stdout);

    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .await
        .map_err(|e| format!("gateway stopped: {e}"))
}
