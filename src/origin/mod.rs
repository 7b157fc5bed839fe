//! The `Origin` check the MCP transport requires against DNS rebinding: [`OriginLayer`].
//!
//! The Streamable HTTP transport says servers "MUST validate the `Origin` header on all incoming
//! connections to prevent DNS rebinding attacks", and (2025-11-25 and later) "If the `Origin`
//! header is present and invalid, servers MUST respond with HTTP 403 Forbidden". A web page on
//! any site can make a browser send requests to a server on `localhost` or on a private network
//! by rebinding its own host name to that address; the browser then sends the page's `Origin`.
//! Non-browser clients (SDKs, curl) send no `Origin`.
//!
//! [`OriginLayer`] answers, before anything else runs:
//!
//! | `Origin` header | answer |
//! | --- | --- |
//! | absent | forwarded untouched |
//! | one value, equal to an allowed origin (scheme and host compared case-insensitively, a default port may be written or not) | forwarded untouched |
//! | one value, any other origin, or `null` | 403 with a JSON-RPC error without `id` ([`OriginRejection::NotAllowed`]) |
//! | not a `scheme://host[:port]` origin, or over 2048 bytes | 403 ([`OriginRejection::Malformed`]) |
//! | repeated | 403 ([`OriginRejection::Repeated`]) |
//!
//! [`OriginLayer::loopback`] also checks the `Host` header, for a server on a loopback address:
//! a host other than `localhost`, `127.0.0.1` or `[::1]` with the server's port, or none, gets
//! 403 ([`OriginRejection::HostNotAllowed`]) whatever the `Origin`.
//!
//! Every answer it makes carries its [`OriginRejection`] in the response extensions, and a
//! `tracing` event with a stable reason code (`origin_not_allowed`, `origin_malformed`,
//! `origin_repeated`, `host_not_allowed`). The request body is not read: a small one is drained so that an HTTP/1.1
//! connection stays usable, a larger or slower one gets `Connection: close`.
//!
//! # Layer order
//!
//! The check runs first, before authentication, so a page on a foreign origin learns nothing
//! (not even whether its token is valid). Browser clients on allowed origins also need CORS
//! (tower-http's `CorsLayer`) *outside* this layer, so that every answer, the refusals of the
//! inner layers included, carries the CORS headers and CORS preflights (`OPTIONS`) never reach
//! the auth layer:
//!
//! ```text
//! client ──► CorsLayer (answers preflights, adds CORS headers to every answer)
//!        ──► OriginLayer (403 for a foreign Origin)
//!        ──► auth layer ──► SessionBindingLayer ──► MCP service
//! ```
//!
//! The `mcp_server` example does exactly this with `--cors-origin ORIGIN`.
//!
//! ```
//! use http::{Request, Response, StatusCode};
//! use mcp_session_binding::origin::OriginLayer;
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mcp = service_fn(|_req: Request<String>| async {
//!     Ok::<_, std::convert::Infallible>(Response::new(http_body_util::Full::new(bytes::Bytes::from("ok"))))
//! });
//! let service = OriginLayer::new().allow("https://app.example")?.layer(mcp);
//!
//! // No Origin (an SDK, curl): forwarded.
//! let response = service.clone().oneshot(Request::new(String::new())).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//!
//! // A page of the allowed origin: forwarded.
//! let request = Request::builder().header("origin", "https://app.example").body(String::new())?;
//! assert_eq!(service.clone().oneshot(request).await?.status(), StatusCode::OK);
//!
//! // Any other page: 403.
//! let request = Request::builder().header("origin", "http://rebound.example").body(String::new())?;
//! assert_eq!(service.oneshot(request).await?.status(), StatusCode::FORBIDDEN);
//! # Ok(())
//! # }
//! ```

mod layer;
mod service;

use std::fmt;

pub use layer::OriginLayer;
pub use service::{Origin, ResponseFuture};

/// The longest `Origin` header value the layer reads; longer ones are malformed.
pub(crate) const MAX_ORIGIN_LEN: usize = 2048;

/// Why [`OriginLayer`] answered a request itself (always 403). Put in the response extensions
/// of every answer it makes.
///
/// ```
/// use mcp_session_binding::origin::OriginRejection;
///
/// assert_eq!(OriginRejection::NotAllowed.code(), "origin_not_allowed");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OriginRejection {
    /// The `Origin` is a well-formed origin (or `null`) that is not allowed.
    NotAllowed,
    /// The `Origin` header is not a `scheme://host[:port]` origin, or is too long.
    Malformed,
    /// The request carries more than one `Origin` header.
    Repeated,
    /// The layer checks `Host` ([`OriginLayer::loopback`]) and the request's host is not one it
    /// allows, is repeated, or is missing.
    HostNotAllowed,
}

impl OriginRejection {
    /// A stable code for logs and metrics.
    ///
    /// ```
    /// use mcp_session_binding::origin::OriginRejection;
    ///
    /// assert_eq!(OriginRejection::Repeated.code(), "origin_repeated");
    /// ```
    pub fn code(self) -> &'static str {
        match self {
            Self::NotAllowed => "origin_not_allowed",
            Self::Malformed => "origin_malformed",
            Self::Repeated => "origin_repeated",
            Self::HostNotAllowed => "host_not_allowed",
        }
    }

    /// The message of the JSON-RPC error in the 403 body.
    fn message(self) -> &'static str {
        match self {
            Self::NotAllowed => "Forbidden: Origin not allowed",
            Self::Malformed => "Forbidden: malformed Origin header",
            Self::Repeated => "Forbidden: repeated Origin header",
            Self::HostNotAllowed => "Forbidden: Host not allowed",
        }
    }
}

impl fmt::Display for OriginRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// An origin given to [`OriginLayer::allow`] that is not `scheme://host[:port]`.
///
/// ```
/// use mcp_session_binding::origin::OriginLayer;
///
/// let err = OriginLayer::new().allow("https://app.example/path").unwrap_err();
/// assert!(err.to_string().contains("https://app.example/path"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidOrigin {
    origin: String,
    why: &'static str,
}

impl fmt::Display for InvalidOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid origin {:?}: {} (expected scheme://host[:port])",
            self.origin, self.why
        )
    }
}

impl std::error::Error for InvalidOrigin {}

/// The origin in the form the layer compares: lowercase scheme and host, the port only when it
/// is not the scheme's default. `Err(why)` for anything that is not `scheme://host[:port]`
/// (`null` included: an opaque origin cannot be allowed).
pub(crate) fn canonical(origin: &str) -> Result<String, &'static str> {
    if origin.len() > MAX_ORIGIN_LEN {
        return Err("too long");
    }
    let (scheme, authority) = origin.split_once("://").ok_or("no scheme")?;
    if scheme.is_empty()
        || !scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
    {
        return Err("bad scheme");
    }
    if authority.is_empty() {
        return Err("no host");
    }
    // An origin is exactly scheme://host[:port]: no user info, path, query or fragment.
    if authority
        .bytes()
        .any(|b| matches!(b, b'/' | b'?' | b'#' | b'@' | b'\\') || !b.is_ascii_graphic())
    {
        return Err("not just scheme://host[:port]");
    }
    let authority: http::uri::Authority = authority.parse().map_err(|_| "bad host or port")?;
    let host = authority.host();
    if host.is_empty() {
        return Err("no host");
    }
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    };
    // What follows the host: nothing, or `:` and a port that fits in 16 bits.
    let port = match authority.as_str().strip_prefix(host).ok_or("bad host")? {
        "" => None,
        rest => {
            let digits = rest.strip_prefix(':').ok_or("bad port")?;
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err("bad port");
            }
            Some(digits.parse::<u16>().map_err(|_| "bad port")?)
        }
    };
    let mut canonical = format!("{scheme}://{}", host.to_ascii_lowercase());
    if let Some(port) = port.filter(|port| Some(*port) != default_port) {
        canonical.push(':');
        canonical.push_str(&port.to_string());
    }
    Ok(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms() {
        assert_eq!(
            canonical("https://App.Example").unwrap(),
            "https://app.example"
        );
        assert_eq!(
            canonical("https://app.example:443").unwrap(),
            "https://app.example"
        );
        assert_eq!(
            canonical("HTTP://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(canonical("http://[::1]:80").unwrap(), "http://[::1]");
        assert_eq!(
            canonical("chrome-extension://abcdef").unwrap(),
            "chrome-extension://abcdef"
        );
    }

    #[test]
    fn malformed_origins() {
        for origin in [
            "",
            "null",
            "app.example",
            "https://",
            "https://app.example/",
            "https://app.example/path",
            "https://app.example?q",
            "https://app.example#f",
            "https://user@app.example",
            "https://app.example:",
            "https://app.example:99999",
            "https://app.example:x",
            "https://app example",
            "1http://app.example",
            "ht tp://app.example",
            "https://app.example\\x",
            "https://:80",
        ] {
            assert!(canonical(origin).is_err(), "{origin:?} accepted");
        }
        let long = format!("https://{}.example", "a".repeat(MAX_ORIGIN_LEN));
        assert_eq!(canonical(&long), Err("too long"));
    }
}
