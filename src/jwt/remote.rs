//! Keys of an issuer trusted by URL (feature `oidc`): OpenID Connect discovery, then its JWK set,
//! cached, refreshed in the background, refetched (rate limited, single flight) on an unknown
//! `kid`, and kept for a bounded time when the provider is unreachable.

use std::{
    fmt,
    sync::{
        Arc, Mutex, PoisonError, RwLock, Weak,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use futures::{
    FutureExt,
    future::{BoxFuture, Shared},
};
use http::{HeaderMap, StatusCode, header};

use super::{
    JwtKeys,
    jwks::{
        Discovery, KeySourceError, MAX_DOCUMENT_BYTES, is_fetchable_url, parse_discovery,
        parse_jwks,
    },
};

/// Shortest background refresh period, whatever `Cache-Control` says.
pub(crate) const MIN_REFRESH: Duration = Duration::from_secs(5 * 60);
/// Longest background refresh period, whatever `Cache-Control` says.
pub(crate) const MAX_REFRESH: Duration = Duration::from_secs(24 * 3600);

/// Settings shared by every issuer trusted by URL.
#[derive(Clone, Debug)]
pub(crate) struct RemoteOptions {
    /// Least time between two fetches triggered by requests (unknown `kid`, stale keys).
    pub(crate) refetch_interval: Duration,
    /// How long the last good keys serve, counted from their fetch; older keys need a
    /// successful refresh before they verify anything.
    pub(crate) max_stale: Duration,
    /// Bound of each HTTP request, body included.
    pub(crate) fetch_timeout: Duration,
}

/// A fetch in flight: every request that needs it awaits the same one.
type Flight = Shared<BoxFuture<'static, ()>>;

#[derive(Default)]
struct FlightState {
    in_flight: Option<Flight>,
    last_start: Option<Instant>,
    deferred: bool,
}

#[derive(Default)]
struct KeyState {
    keys: Option<Arc<JwtKeys>>,
    fetched_at: Option<Instant>,
    jwks_uri: Option<String>,
    /// When the background task refreshes next.
    next_refresh: Option<Instant>,
    last_error: Option<KeySourceError>,
}

/// The keys of one issuer trusted through discovery.
pub(crate) struct RemoteKeys {
    issuer: String,
    client: reqwest::Client,
    options: RemoteOptions,
    state: RwLock<KeyState>,
    flight: Mutex<FlightState>,
    background: AtomicBool,
}

impl fmt::Debug for RemoteKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("RemoteKeys")
            .field("issuer", &self.issuer)
            .field("keys", &state.keys)
            .field("jwks_uri", &state.jwks_uri)
            .finish_non_exhaustive()
    }
}

/// What a request may do with the issuer's keys right now.
pub(crate) enum Usable {
    /// Keys younger than the staleness bound.
    Keys(Arc<JwtKeys>),
    /// No keys, or too old: a fetch must succeed first.
    Stale,
}

impl RemoteKeys {
    pub(crate) fn new(issuer: String, client: reqwest::Client, options: RemoteOptions) -> Self {
        Self {
            issuer,
            client,
            options,
            state: RwLock::default(),
            flight: Mutex::default(),
            background: AtomicBool::new(false),
        }
    }

    pub(crate) fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The keys, if younger than the staleness bound.
    pub(crate) fn usable(&self) -> Usable {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        match (&state.keys, state.fetched_at) {
            (Some(keys), Some(at)) if at.elapsed() <= self.options.max_stale => {
                Usable::Keys(keys.clone())
            }
            _ => Usable::Stale,
        }
    }

    /// The current keys, however old (for reporting).
    pub(crate) fn current(&self) -> Option<Arc<JwtKeys>> {
        self.state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys
            .clone()
    }

    /// The last fetch error, if the last fetch failed.
    pub(crate) fn last_error(&self) -> Option<KeySourceError> {
        self.state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .last_error
            .clone()
    }

    /// Seconds until a request may trigger the next fetch (at least 1).
    pub(crate) fn retry_after(&self) -> u64 {
        let flight = self.flight.lock().unwrap_or_else(PoisonError::into_inner);
        let wait = flight.last_start.map_or(Duration::ZERO, |start| {
            self.options
                .refetch_interval
                .saturating_sub(start.elapsed())
        });
        wait.as_secs_f64().ceil().max(1.0) as u64
    }

    /// Starts a fetch for a request (unknown `kid`, stale keys), or joins the one in flight.
    /// `None` when the issuer was fetched less than the refetch interval ago: then a fetch is
    /// scheduled for the end of the interval, so a new key is picked up within it.
    pub(crate) fn refetch(self: &Arc<Self>, reason: &'static str) -> Option<Flight> {
        let mut flight = self.flight.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(in_flight) = &flight.in_flight {
            return Some(in_flight.clone());
        }
        if let Some(start) = flight.last_start {
            let since = start.elapsed();
            if since < self.options.refetch_interval {
                if !flight.deferred {
                    flight.deferred = true;
                    let wait = self.options.refetch_interval - since;
                    let this = Arc::downgrade(self);
                    tokio::spawn(async move {
                        tokio::time::sleep(wait).await;
                        if let Some(this) = this.upgrade() {
                            this.flight
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .deferred = false;
                            if let Some(flight) = this.refetch("deferred refetch") {
                                flight.await;
                            }
                        }
                    });
                }
                tracing::debug!(
                    issuer = %self.issuer,
                    reason,
                    "key refetch rate limited"
                );
                return None;
            }
        }
        Some(self.start(&mut flight, reason))
    }

    /// Fetches now, or joins the fetch in flight, ignoring the rate limit (start-up, background
    /// refresh).
    pub(crate) fn fetch_now(self: &Arc<Self>, reason: &'static str) -> Flight {
        let mut flight = self.flight.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(in_flight) = &flight.in_flight {
            return in_flight.clone();
        }
        self.start(&mut flight, reason)
    }

    fn start(self: &Arc<Self>, flight: &mut FlightState, reason: &'static str) -> Flight {
        flight.last_start = Some(Instant::now());
        self.ensure_background();
        let this = self.clone();
        // A task of its own: a request that gives up waiting does not cancel the fetch.
        let task = tokio::spawn(async move {
            tracing::debug!(issuer = %this.issuer, reason, "fetching keys");
            this.fetch_and_install().await;
            this.flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .in_flight = None;
        });
        let shared = async move {
            let _ = task.await;
        }
        .boxed()
        .shared();
        flight.in_flight = Some(shared.clone());
        shared
    }

    /// One background task per issuer: refreshes when `Cache-Control` says (clamped), retries
    /// a failed fetch after the refetch interval. Ends when the layer is dropped.
    fn ensure_background(self: &Arc<Self>) {
        if self.background.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let wait = {
                    let Some(this) = weak.upgrade() else { return };
                    let state = this.state.read().unwrap_or_else(PoisonError::into_inner);
                    state
                        .next_refresh
                        .map_or(this.options.refetch_interval, |at| {
                            at.saturating_duration_since(Instant::now())
                        })
                        .max(Duration::from_secs(1))
                };
                tokio::time::sleep(wait).await;
                let Some(this) = weak.upgrade() else { return };
                let due = {
                    let state = this.state.read().unwrap_or_else(PoisonError::into_inner);
                    state.next_refresh.is_none_or(|at| at <= Instant::now())
                };
                if due {
                    let flight = this.fetch_now("scheduled refresh");
                    drop(this);
                    flight.await;
                }
            }
        });
    }

    async fn fetch_and_install(&self) {
        let result = self.fetch().await;
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok((keys, jwks_uri, max_age)) => {
                let old: Vec<String> = state.keys.as_deref().map(kids).unwrap_or_default();
                let new = kids(&keys);
                crate::metrics::jwks_refreshed(&self.issuer, Ok(old != new));
                if old != new {
                    let added: Vec<&String> = new.iter().filter(|k| !old.contains(k)).collect();
                    let removed: Vec<&String> = old.iter().filter(|k| !new.contains(k)).collect();
                    tracing::info!(
                        issuer = %self.issuer,
                        kids = ?new,
                        ?added,
                        ?removed,
                        refresh_in_secs = max_age.as_secs(),
                        "issuer signing keys loaded"
                    );
                } else {
                    tracing::debug!(issuer = %self.issuer, kids = ?new, "issuer signing keys unchanged");
                }
                state.keys = Some(Arc::new(keys));
                state.fetched_at = Some(Instant::now());
                state.jwks_uri = Some(jwks_uri);
                state.next_refresh = Some(Instant::now() + max_age);
                state.last_error = None;
            }
            Err(err) => {
                crate::metrics::jwks_refreshed(&self.issuer, Err(&err));
                // Rediscover next time: the JWK set may have moved.
                state.jwks_uri = None;
                state.next_refresh = Some(Instant::now() + self.options.refetch_interval);
                let age = state.fetched_at.map(|at| at.elapsed().as_secs());
                match age {
                    Some(age) if age <= self.options.max_stale.as_secs() => tracing::error!(
                        issuer = %self.issuer,
                        error = %err,
                        keys_age_secs = age,
                        max_stale_secs = self.options.max_stale.as_secs(),
                        "cannot refresh issuer signing keys; the last good keys keep serving"
                    ),
                    _ => tracing::error!(
                        issuer = %self.issuer,
                        error = %err,
                        keys_age_secs = age,
                        "cannot fetch issuer signing keys; its tokens are refused (503)"
                    ),
                }
                state.last_error = Some(err);
            }
        }
    }

    /// Discovery (when the JWK set's URL is not known yet), then the JWK set.
    async fn fetch(&self) -> Result<(JwtKeys, String, Duration), KeySourceError> {
        let known = self
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .jwks_uri
            .clone();
        let jwks_uri = match known {
            Some(uri) => uri,
            None => crate::metrics::discovered(&self.issuer, self.discover().await)?.jwks_uri,
        };
        let (status, headers, body) = self.get(&jwks_uri).await?;
        if !status.is_success() {
            return Err(KeySourceError::Fetch(format!("{jwks_uri}: HTTP {status}")));
        }
        let keys = parse_jwks(&body)?;
        Ok((keys, jwks_uri, refresh_period(&headers)))
    }

    async fn discover(&self) -> Result<Discovery, KeySourceError> {
        let base = self.issuer.trim_end_matches('/');
        let oidc = format!("{base}/.well-known/openid-configuration");
        let (status, _, body) = self.get(&oidc).await?;
        if status.is_success() {
            return parse_discovery(&body, &self.issuer);
        }
        if !status.is_client_error() {
            return Err(KeySourceError::Fetch(format!("{oidc}: HTTP {status}")));
        }
        // RFC 8414 §3.1: the well-known segment goes between the host and the path.
        let rfc8414 = rfc8414_url(&self.issuer);
        let (status, _, body) = self.get(&rfc8414).await?;
        if !status.is_success() {
            return Err(KeySourceError::Fetch(format!(
                "{oidc} and {rfc8414}: HTTP {status}"
            )));
        }
        parse_discovery(&body, &self.issuer)
    }

    /// GET with the timeout on the whole exchange and the size cap on the body.
    async fn get(&self, url: &str) -> Result<(StatusCode, HeaderMap, Vec<u8>), KeySourceError> {
        if !is_fetchable_url(url) {
            return Err(KeySourceError::InsecureUrl(url.chars().take(200).collect()));
        }
        let exchange = async {
            let mut response = self
                .client
                .get(url)
                .header(header::ACCEPT, "application/json")
                .send()
                .await
                .map_err(|e| self.fetch_error(url, &e))?;
            let body = read_bounded(&mut response, MAX_DOCUMENT_BYTES)
                .await
                .map_err(|failed| match failed {
                    Some(err) => self.fetch_error(url, &err),
                    None => KeySourceError::TooLarge,
                })?;
            Ok((response.status(), response.headers().clone(), body))
        };
        tokio::time::timeout(self.options.fetch_timeout, exchange)
            .await
            .map_err(|_| self.timed_out(url))?
    }

    fn timed_out(&self, url: &str) -> KeySourceError {
        KeySourceError::Fetch(format!(
            "{url}: no complete answer within {:?}",
            self.options.fetch_timeout
        ))
    }

    fn fetch_error(&self, url: &str, err: &reqwest::Error) -> KeySourceError {
        if err.is_timeout() {
            self.timed_out(url)
        } else {
            KeySourceError::Fetch(format!("{url}: {}", error_chain(err)))
        }
    }
}

fn kids(keys: &JwtKeys) -> Vec<String> {
    keys.iter()
        .map(|k| k.kid().unwrap_or("-").to_owned())
        .collect()
}

/// The body of `response`, at most `max` bytes: `Err(None)` when it is longer (by its
/// `Content-Length`, or as it arrives), `Err(Some(_))` when reading failed.
pub(crate) async fn read_bounded(
    response: &mut reqwest::Response,
    max: usize,
) -> Result<Vec<u8>, Option<reqwest::Error>> {
    if response
        .content_length()
        .is_some_and(|len| len > max as u64)
    {
        return Err(None);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(Some)? {
        if body.len() + chunk.len() > max {
            return Err(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// An error and its sources, one after the other.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(err) = source {
        text.push_str(": ");
        text.push_str(&err.to_string());
        source = err.source();
    }
    text
}

/// `Cache-Control: max-age`, clamped to [`MIN_REFRESH`]..[`MAX_REFRESH`]; the minimum when
/// absent or `no-cache`/`no-store`.
pub(crate) fn refresh_period(headers: &HeaderMap) -> Duration {
    let mut max_age = None;
    for value in headers.get_all(header::CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',') {
            let directive = directive.trim();
            let (name, arg) = directive.split_once('=').unwrap_or((directive, ""));
            let name = name.trim().to_ascii_lowercase();
            if name == "no-store" || name == "no-cache" {
                return MIN_REFRESH;
            }
            if name == "max-age"
                && let Ok(secs) = arg.trim().trim_matches('"').parse::<u64>()
            {
                max_age = Some(Duration::from_secs(secs));
            }
        }
    }
    max_age.map_or(MIN_REFRESH, |age| age.clamp(MIN_REFRESH, MAX_REFRESH))
}

/// `https://host/path` → `https://host/.well-known/oauth-authorization-server/path`.
pub(crate) fn rfc8414_url(issuer: &str) -> String {
    let (scheme, rest) = issuer.split_once("://").unwrap_or(("https", issuer));
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    format!("{scheme}://{authority}/.well-known/oauth-authorization-server{path}")
}

/// The HTTPS client: reqwest on rustls with the platform's trust store, no proxy, no redirects,
/// bounded connect and total time.
pub(crate) fn http_client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(timeout)
        .timeout(timeout)
        .user_agent(concat!("mcp-session-binding/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| error_chain(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_is_clamped() {
        let period = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CACHE_CONTROL, value.parse().unwrap());
            refresh_period(&headers)
        };
        assert_eq!(refresh_period(&HeaderMap::new()), MIN_REFRESH);
        assert_eq!(period("public, max-age=3600"), Duration::from_secs(3600));
        assert_eq!(period("max-age=10"), MIN_REFRESH);
        assert_eq!(period("max-age=9999999"), MAX_REFRESH);
        assert_eq!(period("no-store"), MIN_REFRESH);
        assert_eq!(period("max-age=abc"), MIN_REFRESH);
    }

    #[test]
    fn rfc8414_inserts_the_well_known_segment() {
        assert_eq!(
            rfc8414_url("https://a.example"),
            "https://a.example/.well-known/oauth-authorization-server"
        );
        assert_eq!(
            rfc8414_url("https://a.example/tenant/1"),
            "https://a.example/.well-known/oauth-authorization-server/tenant/1"
        );
    }
}
