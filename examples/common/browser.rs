//! What browser clients need from the example servers: CORS (tower-http's `CorsLayer`, the
//! outermost layer) for the origins given with `--cors-origin`, and the crate's `OriginLayer`
//! right inside it, which answers 403 to any other `Origin` (the MCP transport's DNS-rebinding
//! rule).
//!
//! Included with `#[path = "…/common/browser.rs"] mod browser;`, so it is not an example of its
//! own.
#![allow(dead_code)]

use std::time::Duration;

use axum::Router;
use http::{HeaderName, Method, header};
use mcp_session_binding::origin::{InvalidOrigin, OriginLayer};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The request headers a browser client of an MCP server sends (besides the CORS-safelisted
/// ones).
pub const ALLOWED_HEADERS: [HeaderName; 7] = [
    header::AUTHORIZATION,
    header::CONTENT_TYPE,
    HeaderName::from_static("mcp-session-id"),
    HeaderName::from_static("mcp-protocol-version"),
    HeaderName::from_static("last-event-id"),
    HeaderName::from_static("mcp-method"),
    HeaderName::from_static("mcp-name"),
];

/// The response headers scripts may read: the session id, the auth challenge (its
/// `resource_metadata` starts the OAuth flow), and `Retry-After` of a 429 or 503.
pub const EXPOSED_HEADERS: [HeaderName; 4] = [
    HeaderName::from_static("mcp-session-id"),
    header::WWW_AUTHENTICATE,
    header::RETRY_AFTER,
    HeaderName::from_static("mcp-protocol-version"),
];

/// How long a browser may cache a preflight answer.
pub const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// The CORS layer for `origins`, matching them as `origins` does.
pub fn cors_layer(origins: &OriginLayer) -> CorsLayer {
    let origins = origins.clone();
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin, _| {
            origin.to_str().is_ok_and(|origin| origins.allows(origin))
        }))
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers(ALLOWED_HEADERS)
        .expose_headers(EXPOSED_HEADERS)
        .max_age(PREFLIGHT_MAX_AGE)
}

/// `app` behind the `Origin` check, behind CORS (outermost): preflights are answered by the
/// CORS layer and never reach the auth layer; every answer, the inner layers' refusals
/// included, carries the CORS headers when the origin is allowed; any other `Origin` gets 403.
///
/// # Errors
///
/// An origin that is not `scheme://host[:port]`.
pub fn layers(app: Router, origins: &[String]) -> Result<Router, InvalidOrigin> {
    with_origins(app, OriginLayer::allowing(origins)?)
}

/// [`layers`] for a server listening on `addr`: on a loopback address, its own loopback origins
/// (`localhost`, `127.0.0.1`, `[::1]` with its port) are allowed too, and a request whose `Host`
/// is not one of them gets 403 (`OriginLayer::loopback`: DNS rebinding protection).
///
/// # Errors
///
/// An origin that is not `scheme://host[:port]`.
pub fn layers_at(
    app: Router,
    addr: std::net::SocketAddr,
    origins: &[String],
) -> Result<Router, InvalidOrigin> {
    let layer = if addr.ip().is_loopback() {
        origins
            .iter()
            .try_fold(OriginLayer::loopback(addr.port()), |layer, origin| {
                layer.allow(origin)
            })?
    } else {
        OriginLayer::allowing(origins)?
    };
    with_origins(app, layer)
}

fn with_origins(app: Router, origins: OriginLayer) -> Result<Router, InvalidOrigin> {
    let cors = cors_layer(&origins);
    Ok(app.layer(origins).layer(cors))
}
