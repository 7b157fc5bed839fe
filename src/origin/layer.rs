//! [`OriginLayer`]: which origins may call.

use std::sync::Arc;

use tower::Layer;

use super::{InvalidOrigin, Origin, canonical};

/// The host names of [`OriginLayer::loopback`].
const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

/// Tower layer that answers 403 to a request whose `Origin` header is present and not allowed
/// (the MCP transport's DNS-rebinding rule); requests without `Origin` pass. See the
/// [module docs](super).
///
/// ```
/// use mcp_session_binding::origin::OriginLayer;
///
/// let layer = OriginLayer::new()
///     .allow("https://app.example")?
///     .allow("http://localhost:5173")?;
/// assert!(layer.allows("https://APP.example:443"));
/// assert!(!layer.allows("https://evil.example"));
/// # Ok::<(), mcp_session_binding::origin::InvalidOrigin>(())
/// ```
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct OriginLayer {
    /// Canonical forms (see `canonical`), sorted and without duplicates.
    allowed: Arc<[String]>,
    /// The `Host` values a request may carry, as canonical `http://host[:port]` forms (sorted,
    /// without duplicates); empty: `Host` is not checked.
    hosts: Arc<[String]>,
}

impl OriginLayer {
    /// A layer that allows no origin: only requests without an `Origin` header pass (what a
    /// server with no browser clients wants).
    ///
    /// ```
    /// use mcp_session_binding::origin::OriginLayer;
    ///
    /// assert!(!OriginLayer::new().allows("http://127.0.0.1:8080"));
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// A layer for a server listening on a loopback address at `port`: it allows the origins
    /// `http://localhost:PORT`, `http://127.0.0.1:PORT` and `http://[::1]:PORT` (the server's own
    /// pages), and it also checks the `Host` header (or, without one, the request URI's
    /// authority, as HTTP/2 carries it): a request whose host is not one of `localhost`,
    /// `127.0.0.1` or `[::1]` with that port gets 403 ([`OriginRejection::HostNotAllowed`]),
    /// and so does a request that names no host. That is what stops DNS rebinding of a local
    /// server: a page of `http://evil.example.com:PORT` whose name was rebound to 127.0.0.1
    /// sends `Host: evil.example.com:PORT`, with or without an `Origin`. It is what the MCP
    /// conformance suite's `dns-rebinding-protection` scenario checks.
    ///
    /// More origins can be allowed with [`allow`](Self::allow); the `Host` check stays the
    /// loopback one. A server reached through a proxy or under a DNS name wants
    /// [`new`](Self::new) and [`allow`](Self::allow) instead.
    ///
    /// [`OriginRejection::HostNotAllowed`]: super::OriginRejection::HostNotAllowed
    ///
    /// ```
    /// use mcp_session_binding::origin::OriginLayer;
    ///
    /// let layer = OriginLayer::loopback(8080);
    /// assert!(layer.allows("http://localhost:8080"));
    /// assert!(layer.allows("http://[::1]:8080"));
    /// assert!(!layer.allows("http://127.0.0.1:8081"));
    /// assert!(!layer.allows("http://evil.example.com:8080"));
    /// ```
    pub fn loopback(port: u16) -> Self {
        let mut forms: Vec<String> = LOOPBACK_HOSTS
            .iter()
            .filter_map(|name| canonical(&format!("http://{name}:{port}")).ok())
            .collect();
        forms.sort();
        forms.dedup();
        let forms: Arc<[String]> = forms.into();
        Self {
            allowed: forms.clone(),
            hosts: forms,
        }
    }

    /// Also allows `origin`, written `scheme://host[:port]` as browsers send it (no path, not
    /// even `/`). Scheme and host are compared case-insensitively, and a default port (80 for
    /// `http`, 443 for `https`) may be written or not.
    ///
    /// # Errors
    ///
    /// When `origin` is not `scheme://host[:port]`; `null` (the opaque origin of sandboxed
    /// frames and `file:` pages) cannot be allowed.
    ///
    /// ```
    /// use mcp_session_binding::origin::OriginLayer;
    ///
    /// assert!(OriginLayer::new().allow("null").is_err());
    /// assert!(OriginLayer::new().allow("https://app.example/").is_err());
    /// ```
    pub fn allow(self, origin: impl AsRef<str>) -> Result<Self, InvalidOrigin> {
        let origin = origin.as_ref();
        let canonical = canonical(origin).map_err(|why| InvalidOrigin {
            origin: origin.to_owned(),
            why,
        })?;
        let mut allowed = self.allowed.to_vec();
        if let Err(at) = allowed.binary_search(&canonical) {
            allowed.insert(at, canonical);
        }
        Ok(Self {
            allowed: allowed.into(),
            hosts: self.hosts,
        })
    }

    /// A layer allowing each of `origins` (see [`allow`](Self::allow)).
    ///
    /// # Errors
    ///
    /// The first origin that is not `scheme://host[:port]`.
    ///
    /// ```
    /// use mcp_session_binding::origin::OriginLayer;
    ///
    /// let flags = vec!["http://127.0.0.1:3000".to_owned(), "https://app.example".to_owned()];
    /// let layer = OriginLayer::allowing(&flags)?;
    /// assert!(layer.allows("http://127.0.0.1:3000"));
    /// # Ok::<(), mcp_session_binding::origin::InvalidOrigin>(())
    /// ```
    pub fn allowing<I>(origins: I) -> Result<Self, InvalidOrigin>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        origins
            .into_iter()
            .try_fold(Self::new(), |layer, origin| layer.allow(origin))
    }

    /// Whether a request with this `Origin` value would be forwarded.
    ///
    /// ```
    /// use mcp_session_binding::origin::OriginLayer;
    ///
    /// let layer = OriginLayer::new().allow("http://[::1]:8080")?;
    /// assert!(layer.allows("http://[::1]:8080"));
    /// assert!(!layer.allows("null"));
    /// # Ok::<(), mcp_session_binding::origin::InvalidOrigin>(())
    /// ```
    pub fn allows(&self, origin: &str) -> bool {
        canonical(origin).is_ok_and(|origin| self.allowed.binary_search(&origin).is_ok())
    }

    pub(crate) fn allowed(&self) -> &Arc<[String]> {
        &self.allowed
    }

    /// Whether a request naming `host` (a `Host` value, `host[:port]`) passes the `Host` check:
    /// always when the layer checks no host.
    pub(crate) fn allows_host(&self, host: Option<&str>) -> bool {
        if self.hosts.is_empty() {
            return true;
        }
        host.and_then(|host| canonical(&format!("http://{host}")).ok())
            .is_some_and(|host| self.hosts.binary_search(&host).is_ok())
    }

    /// Whether the layer checks `Host`.
    pub(crate) fn checks_host(&self) -> bool {
        !self.hosts.is_empty()
    }
}

impl<S> Layer<S> for OriginLayer {
    type Service = Origin<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Origin::new(inner, self.clone())
    }
}
