//! Revocation by `jti`: an async check that fails closed.

use std::{future::Future, sync::Arc};

use futures::future::BoxFuture;
use tower::BoxError;

use crate::identity::Claims;

/// What a [`RevocationCheck`] answers: `Ok(true)` when the token is revoked, an error when the
/// check could not tell.
pub(crate) type RevocationFuture = BoxFuture<'static, Result<bool, BoxError>>;

/// Asks whether a validated token has been revoked, by its `jti`.
///
/// The check runs after the signature and every claim are verified, so it only ever sees tokens
/// the issuer really minted. The layer answers:
///
/// - `Ok(false)`: not revoked, the request goes on;
/// - `Ok(true)`: revoked, 401 `invalid_token`;
/// - `Err(_)` or no answer within the [timeout](super::JwtAuthLayerBuilder::revocation_timeout):
///   **503 with `Retry-After`**, and a `warn` log with the error. The request is never let
///   through on a failed check (fail closed).
///
/// When a check is configured, a token without a string `jti` is refused (401): it could never
/// be revoked.
///
/// A closure `Fn(String) -> impl Future<Output = Result<bool, E>>` is a check, and so is an
/// `Arc` of one (to share it); implement the trait yourself to see the whole claims set (a `jti`
/// is unique per issuer, so a shared deny list may want to key on `iss` too).
///
/// ```
/// use std::{collections::HashSet, sync::Arc};
/// use futures::future::BoxFuture;
/// use mcp_session_binding::{identity::Claims, jwt::RevocationCheck};
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
///     fn is_revoked(&self, jti: &str, claims: &Claims) -> BoxFuture<'static, Result<bool, tower::BoxError>> {
///         let key = format!("{}|{jti}", claims.get("iss").and_then(|v| v.as_str()).unwrap_or(""));
///         // A real check would ask a shared store, and return its errors.
///         Box::pin(async move { Ok(key == "https://auth.example.com|jti-1") })
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
    fn is_revoked(&self, jti: &str, claims: &Claims) -> BoxFuture<'static, Result<bool, BoxError>>;
}

impl<F, Fut, E> RevocationCheck for F
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<bool, E>> + Send + 'static,
    E: Into<BoxError>,
{
    fn is_revoked(&self, jti: &str, _claims: &Claims) -> RevocationFuture {
        let fut = self(jti.to_owned());
        Box::pin(async move { fut.await.map_err(Into::into) })
    }
}

impl<C: RevocationCheck + ?Sized> RevocationCheck for Arc<C> {
    fn is_revoked(&self, jti: &str, claims: &Claims) -> RevocationFuture {
        (**self).is_revoked(jti, claims)
    }
}
