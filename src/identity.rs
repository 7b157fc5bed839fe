//! The caller's identity, and how the layer reads it from a request.
//!
//! The binding key is the OpenID Connect pair `(iss, sub)`: "the only guaranteed unique identifier
//! for a given End-User" (OIDC Core §5.7), and the only claims that survive a token refresh
//! unchanged. The token bytes, `jti`, `exp` and `cnf` all change across a refresh and must never be
//! used as the key.
//!
//! An auth layer *outside* [`SessionBindingLayer`](crate::SessionBindingLayer) validates the
//! token and puts the identity in the request extensions; an [`IdentityExtractor`] reads it back.
//! Two adapters are ready:
//!
//! - [`FromIdentityExtension`] (the default) reads this crate's [`Identity`];
//! - [`FromClaims`] reads [`Claims`] (a JSON claims object) and takes the string `iss` and `sub`.
//!
//! A closure `Fn(&Parts) -> Result<Option<Identity>, IdentityError>` is an extractor too, for
//! another auth layer's extension type:
//!
//! ```
//! use http::request::Parts;
//! use mcp_session_binding::{Identity, IdentityExtractor};
//!
//! #[derive(Clone)]
//! struct User { tenant: String, id: String }
//!
//! let extractor = |parts: &Parts| {
//!     let user = parts.extensions.get::<User>();
//!     user.map(|u| Identity::new(u.tenant.as_str(), u.id.as_str())).transpose()
//! };
//! let mut req = http::Request::new(());
//! req.extensions_mut().insert(User { tenant: "https://acme.example".into(), id: "42".into() });
//! let (parts, ()) = req.into_parts();
//! assert_eq!(extractor.extract(&parts).unwrap().unwrap().sub(), "42");
//! ```
//!
//! # What handlers see
//!
//! Whatever extractor read it, the layer puts the [`Identity`] it compared in the request
//! extensions before it calls the inner service, so a handler (an rmcp tool reads them from the
//! `http::request::Parts` in its request context; axum handlers take `Identity` as an extractor
//! with the feature `axum`) sees exactly the identity the session is bound to. When the extractor
//! found none (an anonymous session), the layer removes any `Identity` another layer left there:
//! the handler sees none either.

use std::{fmt, sync::Arc};

use http::request::Parts;
use serde_json::{Map, Value};

/// Longest `iss` or `sub` accepted, in bytes.
///
/// OIDC caps `sub` at 255 ASCII characters; the larger cap leaves room for long issuer URLs while
/// still bounding what a binding store holds per session.
pub(crate) const MAX_CLAIM_LEN: usize = 1024;

/// A validated caller identity: the token issuer (`iss`) and subject (`sub`).
///
/// Both halves are non-empty, at most 1024 bytes and contain no NUL. Equality is
/// exact (case sensitive) and constant-time. Cloning is cheap (two reference counts).
///
/// ```
/// use mcp_session_binding::Identity;
///
/// let alice = Identity::new("https://issuer.example", "alice").unwrap();
/// assert_eq!(alice.iss(), "https://issuer.example");
/// assert_eq!(alice.sub(), "alice");
/// assert_ne!(alice, Identity::new("https://other.example", "alice").unwrap());
/// assert!(Identity::new("", "alice").is_err());
/// ```
#[derive(Clone)]
pub struct Identity {
    iss: Arc<str>,
    sub: Arc<str>,
    /// The thumbprint of the DPoP key the token was bound to, when it came with a proof.
    jkt: Option<Arc<str>>,
}

impl Identity {
    /// Builds an identity, checking both halves.
    ///
    /// # Errors
    ///
    /// [`IdentityError`] when a half is empty, too long, or contains NUL.
    ///
    /// ```
    /// use mcp_session_binding::Identity;
    ///
    /// let alice = Identity::new("https://issuer.example", "alice").unwrap();
    /// assert!(Identity::new("", "alice").is_err());
    /// assert!(Identity::new("https://issuer.example", "a\0b").is_err());
    /// # let _ = alice;
    /// ```
    pub fn new(iss: impl Into<Arc<str>>, sub: impl Into<Arc<str>>) -> Result<Self, IdentityError> {
        let iss = iss.into();
        let sub = sub.into();
        check_claim("iss", &iss)?;
        check_claim("sub", &sub)?;
        Ok(Self {
            iss,
            sub,
            jkt: None,
        })
    }

    /// The issuer (`iss`).
    ///
    /// ```
    /// use mcp_session_binding::Identity;
    ///
    /// let alice = Identity::new("https://issuer.example", "alice").unwrap();
    /// assert_eq!(alice.iss(), "https://issuer.example");
    /// ```
    #[must_use]
    pub fn iss(&self) -> &str {
        &self.iss
    }

    /// The subject (`sub`).
    ///
    /// ```
    /// use mcp_session_binding::Identity;
    ///
    /// let alice = Identity::new("https://issuer.example", "alice").unwrap();
    /// assert_eq!(alice.sub(), "alice");
    /// ```
    #[must_use]
    pub fn sub(&self) -> &str {
        &self.sub
    }

    /// Both halves, shared: lets a store keep one copy of the strings for all sessions of a user.
    #[cfg_attr(not(feature = "memory"), allow(dead_code))]
    pub(crate) fn shared_parts(&self) -> (&Arc<str>, &Arc<str>) {
        (&self.iss, &self.sub)
    }

    /// Rebuilds an identity from shared strings already checked by [`Identity::new`].
    #[cfg_attr(not(feature = "memory"), allow(dead_code))]
    pub(crate) fn from_shared(iss: Arc<str>, sub: Arc<str>) -> Self {
        Self {
            iss,
            sub,
            jkt: None,
        }
    }

    /// The RFC 7638 SHA-256 thumbprint (base64url) of the DPoP key the caller proved it holds
    /// (RFC 9449), when the [`JwtAuthLayer`](crate::jwt::JwtAuthLayer) admitted the request with
    /// a DPoP proof; `None` for a bearer token. Not part of equality: two identities with the
    /// same `(iss, sub)` are equal whatever their keys (see
    /// [`SessionBindingLayer::bind_to_dpop_key`](crate::SessionBindingLayer::bind_to_dpop_key)
    /// to bind sessions to the key too).
    ///
    /// ```
    /// let alice = mcp_session_binding::Identity::new("https://issuer.example", "alice").unwrap();
    /// assert_eq!(alice.jkt(), None);
    /// ```
    #[must_use]
    pub fn jkt(&self) -> Option<&str> {
        self.jkt.as_deref()
    }

    /// The same identity, bound to the DPoP key with this thumbprint.
    #[cfg_attr(not(feature = "jwt"), allow(dead_code))]
    pub(crate) fn with_jkt(mut self, jkt: Arc<str>) -> Self {
        self.jkt = Some(jkt);
        self
    }

    /// The identity sessions are bound to when they are bound to the DPoP key too: the issuer
    /// with `U+0001`, `dpop:` and the thumbprint appended (no trusted issuer URL contains
    /// `U+0001`), so that `(iss, sub, jkt)` is one owner. Without a key, the identity itself.
    pub(crate) fn with_key_in_issuer(&self) -> Self {
        match &self.jkt {
            None => self.clone(),
            Some(jkt) => Self {
                iss: format!("{}\u{1}dpop:{jkt}", self.iss).into(),
                sub: self.sub.clone(),
                jkt: Some(jkt.clone()),
            },
        }
    }

    /// Whether both halves are the very same strings as `other`'s (a clone of it): cheaper than
    /// comparing them, and never true for two identities that differ.
    fn is_clone_of(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.iss, &other.iss) && Arc::ptr_eq(&self.sub, &other.sub)
    }
}

/// Makes the request extensions hold exactly the identity the binding layer compared: `caller`
/// when there is one (unless the extensions already hold that very value: nothing is allocated
/// then), and no [`Identity`] at all when the extractor found none, so a handler never sees an
/// identity the binding did not use. With the default [`FromIdentityExtension`], `caller` is
/// what the extensions hold (or there is none): nothing to do, and nothing is looked up.
pub(crate) fn expose<I: IdentityExtractor>(
    extractor: &I,
    extensions: &mut http::Extensions,
    caller: Option<&Identity>,
) {
    if (extractor as &dyn std::any::Any).is::<FromIdentityExtension>() {
        return;
    }
    match caller {
        Some(caller) => {
            if !extensions
                .get::<Identity>()
                .is_some_and(|present| present.is_clone_of(caller))
            {
                extensions.insert(caller.clone());
            }
        }
        None => {
            extensions.remove::<Identity>();
        }
    }
}

fn check_claim(name: &'static str, value: &str) -> Result<(), IdentityError> {
    if value.is_empty() {
        return Err(IdentityError::invalid(name, "is empty"));
    }
    if value.len() > MAX_CLAIM_LEN {
        return Err(IdentityError::invalid(name, "is too long"));
    }
    if value.as_bytes().contains(&0) {
        return Err(IdentityError::invalid(name, "contains NUL"));
    }
    Ok(())
}

/// Constant-time byte comparison (the length is not secret).
fn ct_eq(a: &str, b: &str) -> bool {
    constant_time_eq::constant_time_eq(a.as_bytes(), b.as_bytes())
}

impl PartialEq for Identity {
    fn eq(&self, other: &Self) -> bool {
        // `&` rather than `&&`: both halves are always compared.
        ct_eq(&self.iss, &other.iss) & ct_eq(&self.sub, &other.sub)
    }
}

impl Eq for Identity {}

impl std::hash::Hash for Identity {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.iss.hash(state);
        self.sub.hash(state);
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("iss", &&*self.iss)
            .field("sub", &&*self.sub)
            .finish()
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.iss, self.sub)
    }
}

/// Why an identity could not be read: a claim that is missing, not a string, empty, too long or
/// contains NUL.
///
/// The layer answers such a request with 401 before it writes anything.
///
/// ```
/// use mcp_session_binding::{Identity, identity::Claims};
///
/// let claims = Claims::from_value(serde_json::json!({"iss": "https://i.example", "sub": 42})).unwrap();
/// let err = Identity::try_from(&claims).unwrap_err();
/// assert_eq!(err.to_string(), "claim `sub` is not a string");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityError {
    claim: &'static str,
    problem: &'static str,
}

impl IdentityError {
    /// An error about `claim` (for example `"sub"`), with a short reason (for example
    /// `"is missing"`). For extractors written outside this crate.
    ///
    /// ```
    /// use mcp_session_binding::identity::IdentityError;
    ///
    /// let error = IdentityError::invalid("sub", "is missing");
    /// assert_eq!(error.claim(), "sub");
    /// ```
    #[must_use]
    pub fn invalid(claim: &'static str, problem: &'static str) -> Self {
        Self { claim, problem }
    }

    /// The claim at fault.
    ///
    /// ```
    /// use mcp_session_binding::identity::IdentityError;
    ///
    /// assert_eq!(IdentityError::invalid("iss", "is not a string").claim(), "iss");
    /// ```
    #[must_use]
    pub fn claim(&self) -> &'static str {
        self.claim
    }
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "claim `{}` {}", self.claim, self.problem)
    }
}

impl std::error::Error for IdentityError {}

/// Reads the caller's identity from the request head.
///
/// Return `Ok(None)` when the request carries no identity (no auth layer ran, or it let an
/// anonymous request through), and `Err` when it carries one that is unusable.
///
/// ```
/// use mcp_session_binding::{Identity, IdentityExtractor, identity::IdentityError};
/// use http::request::Parts;
///
/// // A closure is an extractor: here, the identity comes from a trusted gateway header.
/// let from_gateway = |parts: &Parts| -> Result<Option<Identity>, IdentityError> {
///     match parts.headers.get("x-gateway-user").and_then(|v| v.to_str().ok()) {
///         Some(user) => Identity::new("https://gateway.internal", user).map(Some),
///         None => Ok(None),
///     }
/// };
/// let (parts, ()) = http::Request::builder()
///     .header("x-gateway-user", "alice")
///     .body(())
///     .unwrap()
///     .into_parts();
/// assert_eq!(from_gateway.extract(&parts).unwrap().unwrap().sub(), "alice");
/// ```
pub trait IdentityExtractor: Clone + Send + Sync + 'static {
    /// Reads the identity.
    ///
    /// # Errors
    ///
    /// [`IdentityError`] when an identity is present but unusable.
    fn extract(&self, parts: &Parts) -> Result<Option<Identity>, IdentityError>;
}

impl<F> IdentityExtractor for F
where
    F: Fn(&Parts) -> Result<Option<Identity>, IdentityError> + Clone + Send + Sync + 'static,
{
    fn extract(&self, parts: &Parts) -> Result<Option<Identity>, IdentityError> {
        self(parts)
    }
}

/// Reads this crate's [`Identity`] from the request extensions. The default extractor.
///
/// ```
/// use mcp_session_binding::{Identity, IdentityExtractor, identity::FromIdentityExtension};
///
/// let mut req = http::Request::new(());
/// req.extensions_mut().insert(Identity::new("https://i.example", "alice").unwrap());
/// let (parts, ()) = req.into_parts();
/// assert_eq!(FromIdentityExtension.extract(&parts).unwrap().unwrap().sub(), "alice");
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct FromIdentityExtension;

impl IdentityExtractor for FromIdentityExtension {
    fn extract(&self, parts: &Parts) -> Result<Option<Identity>, IdentityError> {
        Ok(parts.extensions.get::<Identity>().cloned())
    }
}

/// A decoded claims object (the JWT payload), as an auth layer puts it in the request extensions.
///
/// ```
/// use mcp_session_binding::identity::Claims;
///
/// let claims = Claims::from_value(serde_json::json!({"iss": "https://i.example", "sub": "alice"})).unwrap();
/// assert_eq!(claims.get("sub").and_then(|v| v.as_str()), Some("alice"));
/// assert!(Claims::from_value(serde_json::json!("not an object")).is_none());
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Claims(pub Map<String, Value>);

impl Claims {
    /// Wraps a JSON value, which must be an object.
    ///
    /// ```
    /// use mcp_session_binding::identity::Claims;
    ///
    /// assert!(Claims::from_value(serde_json::json!({"sub": "alice"})).is_some());
    /// assert!(Claims::from_value(serde_json::json!([1])).is_none());
    /// ```
    #[must_use]
    pub fn from_value(value: Value) -> Option<Self> {
        match value {
            Value::Object(map) => Some(Self(map)),
            _ => None,
        }
    }

    /// One claim.
    ///
    /// ```
    /// use mcp_session_binding::identity::Claims;
    ///
    /// let claims = Claims::from_value(serde_json::json!({"sub": "alice"})).unwrap();
    /// assert_eq!(claims.get("sub"), Some(&serde_json::json!("alice")));
    /// ```
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }
}

/// Takes `iss` and `sub` from a claims object. Both must be strings, and pass
/// [`Identity::new`]'s checks; otherwise the [`IdentityError`] names the claim.
///
/// ```
/// use mcp_session_binding::{Identity, identity::Claims};
///
/// let claims = Claims::from_value(serde_json::json!({"iss": "https://i.example", "sub": "alice"})).unwrap();
/// assert_eq!(Identity::try_from(&claims).unwrap().sub(), "alice");
/// let no_iss = Claims::from_value(serde_json::json!({"sub": "alice"})).unwrap();
/// assert_eq!(Identity::try_from(&no_iss).unwrap_err().to_string(), "claim `iss` is missing");
/// ```
impl TryFrom<&Claims> for Identity {
    type Error = IdentityError;

    fn try_from(claims: &Claims) -> Result<Self, IdentityError> {
        let string_claim = |name: &'static str| match claims.get(name) {
            None => Err(IdentityError::invalid(name, "is missing")),
            Some(Value::String(s)) => Ok(s.as_str()),
            Some(_) => Err(IdentityError::invalid(name, "is not a string")),
        };
        Identity::new(string_claim("iss")?, string_claim("sub")?)
    }
}

/// Reads [`Claims`] from the request extensions and takes the identity from them.
///
/// ```
/// use mcp_session_binding::{IdentityExtractor, identity::{Claims, FromClaims}};
///
/// let mut req = http::Request::new(());
/// req.extensions_mut().insert(
///     Claims::from_value(serde_json::json!({"iss": "https://i.example", "sub": null})).unwrap(),
/// );
/// let (parts, ()) = req.into_parts();
/// assert!(FromClaims.extract(&parts).is_err());
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct FromClaims;

impl IdentityExtractor for FromClaims {
    fn extract(&self, parts: &Parts) -> Result<Option<Identity>, IdentityError> {
        parts
            .extensions
            .get::<Claims>()
            .map(Identity::try_from)
            .transpose()
    }
}

/// Handlers read the caller's [`Identity`] as an axum extractor (feature `axum`).
///
/// Behind [`SessionBindingLayer`](crate::SessionBindingLayer) it is the identity the binding
/// compared, whichever [`IdentityExtractor`] read it (the layer puts it in the request
/// extensions); without the binding layer, the one the auth layer inserted. A request without
/// one is answered with [`MissingIdentity`]: 401. Take `Option<Identity>` where anonymous
/// callers are welcome (`None` for them, never a rejection).
///
/// ```
/// use axum::{Router, routing::get};
/// use mcp_session_binding::Identity;
///
/// async fn me(identity: Identity) -> String {
///     format!("hello {} from {}", identity.sub(), identity.iss())
/// }
///
/// async fn maybe(identity: Option<Identity>) -> String {
///     identity.map_or_else(|| "anonymous".to_owned(), |i| i.sub().to_owned())
/// }
///
/// let app: Router = Router::new().route("/me", get(me)).route("/maybe", get(maybe));
/// # let _ = app;
/// ```
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl<S: Send + Sync> axum_core::extract::FromRequestParts<S> for Identity {
    type Rejection = MissingIdentity;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Identity>()
            .cloned()
            .ok_or(MissingIdentity)
    }
}

/// `Option<Identity>` as an axum extractor (feature `axum`): `None` for a request without an
/// identity (an anonymous session, a route without auth). It never rejects.
///
/// ```
/// use mcp_session_binding::Identity;
///
/// async fn handler(identity: Option<Identity>) -> &'static str {
///     if identity.is_some() { "signed in" } else { "anonymous" }
/// }
/// let app: axum::Router = axum::Router::new().route("/", axum::routing::get(handler));
/// # let _ = app;
/// ```
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl<S: Send + Sync> axum_core::extract::OptionalFromRequestParts<S> for Identity {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Identity>().cloned())
    }
}

/// The rejection of the [`Identity`] axum extractor (feature `axum`): the request carries no
/// identity, because no auth layer ran on this route or it let an anonymous request through.
///
/// As a response it is `401 Unauthorized` with `WWW-Authenticate: Bearer` and a JSON-RPC error
/// body (code `-32000`, no `id`), like the crate's other refusals.
///
/// ```
/// use axum_core::response::IntoResponse;
/// use mcp_session_binding::identity::MissingIdentity;
///
/// let response = MissingIdentity.into_response();
/// assert_eq!(response.status(), http::StatusCode::UNAUTHORIZED);
/// assert_eq!(response.headers()["www-authenticate"], "Bearer");
/// ```
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MissingIdentity;

#[cfg(feature = "axum")]
impl fmt::Display for MissingIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "Unauthorized: no caller identity on this request; an authentication layer must run \
             before this handler and put the identity in the request extensions",
        )
    }
}

#[cfg(feature = "axum")]
impl std::error::Error for MissingIdentity {}

#[cfg(feature = "axum")]
impl axum_core::response::IntoResponse for MissingIdentity {
    fn into_response(self) -> axum_core::response::Response {
        use crate::{RejectionReason, protocol::jsonrpc};
        let message = self.to_string();
        let refusal = jsonrpc::Refusal::new(
            http::StatusCode::UNAUTHORIZED,
            jsonrpc::code::SERVER_ERROR,
            &message,
        );
        let mut response = refusal
            .response(RejectionReason::MissingIdentity)
            .map(axum_core::body::Body::new);
        response.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer"),
        );
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parts_with<T: Clone + Send + Sync + 'static>(ext: T) -> Parts {
        let mut req = http::Request::new(());
        req.extensions_mut().insert(ext);
        req.into_parts().0
    }

    #[test]
    fn identity_rejects_empty_nul_and_oversized_halves() {
        assert_eq!(
            Identity::new("", "a").unwrap_err(),
            IdentityError::invalid("iss", "is empty")
        );
        assert_eq!(
            Identity::new("i", "").unwrap_err(),
            IdentityError::invalid("sub", "is empty")
        );
        assert_eq!(
            Identity::new("i", "a\0b").unwrap_err(),
            IdentityError::invalid("sub", "contains NUL")
        );
        assert!(Identity::new("i", "x".repeat(MAX_CLAIM_LEN)).is_ok());
        assert_eq!(
            Identity::new("x".repeat(MAX_CLAIM_LEN + 1), "a").unwrap_err(),
            IdentityError::invalid("iss", "is too long")
        );
    }

    #[test]
    fn equality_is_exact_and_covers_both_halves() {
        let a = Identity::new("https://i", "alice").unwrap();
        assert_eq!(a, Identity::new("https://i", "alice").unwrap());
        assert_ne!(a, Identity::new("https://i", "Alice").unwrap());
        assert_ne!(a, Identity::new("https://j", "alice").unwrap());
        assert_ne!(a, Identity::new("https://i", "alice ").unwrap());
    }

    #[test]
    fn claims_need_string_iss_and_sub() {
        let cases = [
            (json!({"sub": "a"}), "claim `iss` is missing"),
            (json!({"iss": "i"}), "claim `sub` is missing"),
            (json!({"iss": 1, "sub": "a"}), "claim `iss` is not a string"),
            (
                json!({"iss": "i", "sub": ["a"]}),
                "claim `sub` is not a string",
            ),
            (
                json!({"iss": "i", "sub": null}),
                "claim `sub` is not a string",
            ),
            (json!({"iss": "i", "sub": ""}), "claim `sub` is empty"),
        ];
        for (value, message) in cases {
            let claims = Claims::from_value(value).unwrap();
            assert_eq!(
                Identity::try_from(&claims).unwrap_err().to_string(),
                message
            );
            assert!(FromClaims.extract(&parts_with(claims)).is_err());
        }
    }

    #[test]
    fn expose_leaves_exactly_the_compared_identity() {
        let alice = Identity::new("i", "alice").unwrap();
        let bob = Identity::new("i", "bob").unwrap();
        // An extractor of another extension (here: `FromClaims`).
        let expose =
            |extensions: &mut http::Extensions, caller| expose(&FromClaims, extensions, caller);
        // The same value (the default extractor's clone): kept as it is.
        let mut extensions = http::Extensions::new();
        extensions.insert(alice.clone());
        expose(&mut extensions, Some(&alice));
        assert!(extensions.get::<Identity>().unwrap().is_clone_of(&alice));
        // An equal identity built elsewhere: replaced by the compared one.
        let equal = Identity::new("i", "alice").unwrap();
        expose(&mut extensions, Some(&equal));
        assert!(extensions.get::<Identity>().unwrap().is_clone_of(&equal));
        // Another identity: replaced.
        expose(&mut extensions, Some(&bob));
        assert_eq!(extensions.get::<Identity>(), Some(&bob));
        // None compared: none left.
        expose(&mut extensions, None);
        assert_eq!(extensions.get::<Identity>(), None);
        // Missing: inserted.
        expose(&mut extensions, Some(&alice));
        assert_eq!(extensions.get::<Identity>(), Some(&alice));
        // The default extractor compared what the extensions hold: they are left as they are.
        for present in [None, Some(alice.clone())] {
            let mut extensions = http::Extensions::new();
            if let Some(present) = &present {
                extensions.insert(present.clone());
            }
            let parts = {
                let mut request = http::Request::new(());
                *request.extensions_mut() = extensions.clone();
                request.into_parts().0
            };
            let caller = FromIdentityExtension.extract(&parts).unwrap();
            super::expose(&FromIdentityExtension, &mut extensions, caller.as_ref());
            assert_eq!(extensions.get::<Identity>(), present.as_ref());
        }
    }

    #[test]
    fn extractors_read_their_extension_or_report_none() {
        let empty = http::Request::new(()).into_parts().0;
        assert_eq!(FromIdentityExtension.extract(&empty).unwrap(), None);
        assert_eq!(FromClaims.extract(&empty).unwrap(), None);
        let alice = Identity::new("i", "alice").unwrap();
        assert_eq!(
            FromIdentityExtension
                .extract(&parts_with(alice.clone()))
                .unwrap(),
            Some(alice)
        );
    }
}
