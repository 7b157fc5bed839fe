//! Revocation by `jti`: an async check that fails closed.

use std::{fmt, future::Future, pin::Pin, time::Duration};

use crate::identity::Claims;

/// The future a [`RevocationCheck`] returns: `Ok(true)` when the token is revoked.
///
/// ```
/// use mcp_session_binding::{identity::Claims, jwt::{RevocationCheck, RevocationFuture}};
///
/// // A check that looks the `jti` up in a fixed deny list and never fails.
/// struct DenyList(Vec<String>);
/// impl RevocationCheck for DenyList {
///     fn is_revoked(&self, jti: &str, _claims: &Claims) -> RevocationFuture {
///         let revoked = self.0.iter().any(|denied| denied == jti);
///         Box::pin(async move { Ok(revoked) })
///     }
/// }
/// # let _ = DenyList(vec!["jti-leaked".to_owned()]);
/// ```
pub type RevocationFuture =
    Pin<Box<dyn Future<Output = Result<bool, RevocationError>> + Send + 'static>>;

/// Asks whether a validated token has been revoked, by its `jti`.
///
/// The check runs after the signature and every claim are verified, so it only ever sees tokens
/// the issuer really minted. The layer answers:
///
/// - `Ok(false)`: not revoked, the request goes on;
/// - `Ok(true)`: revoked, 401 `invalid_token`;
/// - `Err(_)` or no answer within the timeout: **503 with `Retry-After`**. The request is never
///   let through on a failed check (fail closed).
///
/// When a check is configured, a token without a string `jti` is refused (401): it could never
/// be revoked.
///
/// A closure `Fn(String) -> impl Future<Output = Result<bool, E>>` is a check; implement the
/// trait yourself to see the whole claims set (a `jti` is unique per issuer, so a shared deny
/// list may want to key on `iss` too).
///
/// ```
/// use std::{collections::HashSet, sync::Arc};
/// use mcp_session_binding::{identity::Claims, jwt::{RevocationCheck, RevocationError, RevocationFuture}};
///
/// // A closure: here an in-memory deny list.
/// let revoked: Arc<HashSet<String>> = Arc::new(["jti-1".to_owned()].into());
/// let by_closure = move |jti: String| {
///     let revoked = revoked.clone();
///     async move { Ok::<_, std::convert::Infallible>(revoked.contains(&jti)) }
/// };
///
/// // Or the trait, keyed by (iss, jti).
/// struct PerIssuer;
/// impl RevocationCheck for PerIssuer {
///     fn is_revoked(&self, jti: &str, claims: &Claims) -> RevocationFuture {
///         let key = format!("{}|{jti}", claims.get("iss").and_then(|v| v.as_str()).unwrap_or(""));
///         // A real check would ask a shared store, and map its errors with RevocationError::new.
///         Box::pin(async move { Ok::<_, RevocationError>(key == "https://auth.example.com|jti-1") })
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let claims = Claims::default();
/// assert!(by_closure.is_revoked("jti-1", &claims).await.unwrap());
/// assert!(!by_closure.is_revoked("jti-2", &claims).await.unwrap());
/// assert!(!PerIssuer.is_revoked("jti-1", &claims).await.unwrap());
/// # });
/// ```
pub trait RevocationCheck: Send + Sync + 'static {
    /// Whether the token with this `jti` (and these verified claims) is revoked.
    ///
    /// The future must not borrow `self`, `jti` or `claims`: clone what it needs.
    fn is_revoked(&self, jti: &str, claims: &Claims) -> RevocationFuture;
}

impl<F, Fut, E> RevocationCheck for F
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<bool, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn is_revoked(&self, jti: &str, _claims: &Claims) -> RevocationFuture {
        let fut = self(jti.to_owned());
        Box::pin(async move { fut.await.map_err(RevocationError::new) })
    }
}

/// The revocation check could not answer (store down, timeout). The layer answers 503.
///
/// ```
/// use mcp_session_binding::jwt::RevocationError;
///
/// let err = RevocationError::new("redis: connection refused");
/// assert_eq!(err.to_string(), "revocation check failed: redis: connection refused");
/// ```
#[derive(Debug)]
pub struct RevocationError {
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl RevocationError {
    /// Wraps the underlying error.
    ///
    /// ```
    /// use mcp_session_binding::jwt::RevocationError;
    ///
    /// let err = RevocationError::new(std::io::Error::from(std::io::ErrorKind::TimedOut));
    /// assert!(std::error::Error::source(&err).is_some());
    /// ```
    pub fn new(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            source: source.into(),
        }
    }

    pub(crate) fn timed_out(after: Duration) -> Self {
        Self::new(format!("no answer within {after:?}"))
    }
}

impl fmt::Display for RevocationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "revocation check failed: {}", self.source)
    }
}

impl std::error::Error for RevocationError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}
