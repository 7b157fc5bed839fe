//! The RFC 9728 protected resource metadata document, which serves itself.

use std::{
    convert::Infallible,
    future::{Ready, ready},
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use serde::Serialize;
use tower::Service;

/// Path prefix of the metadata document (RFC 9728 §3).
const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// An OAuth 2.0 Protected Resource Metadata document (RFC 9728 §2), which MCP servers must
/// publish so that clients find their authorization server.
///
/// `bearer_methods_supported` is always `["header"]`: [`JwtAuth`](super::JwtAuth) reads the
/// token from the `Authorization` header only.
///
/// ```
/// use mcp_session_binding::jwt::ProtectedResourceMetadata;
///
/// let metadata = ProtectedResourceMetadata::new(
///     "https://mcp.example.com/mcp",
///     ["https://auth.example.com"],
/// )
/// .scopes_supported(["mcp:tools"]);
/// assert_eq!(metadata.well_known_path(), "/.well-known/oauth-protected-resource/mcp");
/// assert_eq!(
///     metadata.well_known_url(),
///     "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
/// );
/// assert_eq!(
///     metadata.to_json(),
///     serde_json::json!({
///         "resource": "https://mcp.example.com/mcp",
///         "authorization_servers": ["https://auth.example.com"],
///         "scopes_supported": ["mcp:tools"],
///         "bearer_methods_supported": ["header"],
///     })
/// );
/// ```
///
/// The document is a tower service: `GET` and `HEAD` get it, anything else 405. Serve it from
/// axum at the RFC 9728 path derived from the resource (add the root path
/// `/.well-known/oauth-protected-resource` too if older clients need it):
///
/// ```
/// use mcp_session_binding::jwt::ProtectedResourceMetadata;
/// use tower::ServiceExt;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let metadata = ProtectedResourceMetadata::new("https://mcp.example.com/mcp", ["https://auth.example.com"]);
/// let app: axum::Router = axum::Router::new()
///     .route_service(&metadata.well_known_path(), metadata.clone());
///
/// let response = metadata.clone().oneshot(http::Request::new(())).await.unwrap();
/// assert_eq!(response.status(), http::StatusCode::OK);
/// let post = http::Request::post("/").body(()).unwrap();
/// assert_eq!(metadata.oneshot(post).await.unwrap().status(), http::StatusCode::METHOD_NOT_ALLOWED);
/// # let _ = app;
/// # });
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProtectedResourceMetadata {
    resource: String,
    authorization_servers: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scopes_supported: Option<Vec<String>>,
    bearer_methods_supported: [&'static str; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_documentation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dpop_signing_alg_values_supported: Option<Vec<&'static str>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    dpop_bound_access_tokens_required: bool,
}

impl ProtectedResourceMetadata {
    /// A document for `resource` (this server's canonical URI, the tokens' audience), trusting
    /// the given authorization servers (their issuer identifiers).
    ///
    /// ```
    /// use mcp_session_binding::jwt::ProtectedResourceMetadata;
    ///
    /// let metadata = ProtectedResourceMetadata::new("https://mcp.example.com/mcp", ["https://auth.example.com"]);
    /// assert_eq!(metadata.to_json()["authorization_servers"][0], "https://auth.example.com");
    /// ```
    pub fn new<I>(resource: impl Into<String>, authorization_servers: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        Self {
            resource: resource.into(),
            authorization_servers: authorization_servers.into_iter().map(Into::into).collect(),
            scopes_supported: None,
            bearer_methods_supported: ["header"],
            resource_name: None,
            resource_documentation: None,
            dpop_signing_alg_values_supported: None,
            dpop_bound_access_tokens_required: false,
        }
    }

    /// Says that this resource accepts DPoP proofs (RFC 9449 §5.1) signed with `algorithms`
    /// (`dpop_signing_alg_values_supported`), and whether it requires DPoP-bound tokens
    /// (`dpop_bound_access_tokens_required`, sent only when `true`). Give the layer the same
    /// document with [`protected_resource`](super::JwtAuthLayerBuilder::protected_resource):
    /// its build fails when the algorithms are not exactly the layer's DPoP algorithms, or
    /// when `required` is set but some issuer does not require DPoP.
    ///
    /// ```
    /// use mcp_session_binding::jwt::{Algorithm, ProtectedResourceMetadata};
    ///
    /// let metadata = ProtectedResourceMetadata::new("https://mcp.example.com/mcp", ["https://auth.example.com"])
    ///     .dpop([Algorithm::ES256], true);
    /// assert_eq!(metadata.to_json()["dpop_signing_alg_values_supported"][0], "ES256");
    /// assert_eq!(metadata.to_json()["dpop_bound_access_tokens_required"], true);
    /// ```
    #[must_use]
    pub fn dpop(
        mut self,
        algorithms: impl IntoIterator<Item = super::Algorithm>,
        required: bool,
    ) -> Self {
        self.dpop_signing_alg_values_supported = Some(
            algorithms
                .into_iter()
                .map(super::Algorithm::as_str)
                .collect(),
        );
        self.dpop_bound_access_tokens_required = required;
        self
    }

    /// The DPoP algorithms and `required` flag set with [`dpop`](Self::dpop).
    pub(crate) fn dpop_settings(&self) -> Option<(&[&'static str], bool)> {
        self.dpop_signing_alg_values_supported
            .as_deref()
            .map(|algs| (algs, self.dpop_bound_access_tokens_required))
    }

    /// Sets `scopes_supported`.
    ///
    /// ```
    /// use mcp_session_binding::jwt::ProtectedResourceMetadata;
    ///
    /// let metadata = ProtectedResourceMetadata::new("https://mcp.example.com/mcp", ["https://auth.example.com"])
    ///     .scopes_supported(["mcp:tools", "mcp:resources"]);;
    /// assert_eq!(metadata.to_json()["scopes_supported"][0], "mcp:tools");
    /// ```
    #[must_use]
    pub fn scopes_supported<I>(mut self, scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.scopes_supported = Some(scopes.into_iter().map(Into::into).collect());
        self
    }

    /// Sets `resource_name`, a human-readable name.
    ///
    /// ```
    /// use mcp_session_binding::jwt::ProtectedResourceMetadata;
    ///
    /// let metadata = ProtectedResourceMetadata::new("https://mcp.example.com/mcp", ["https://auth.example.com"])
    ///     .resource_name("Example MCP server");;
    /// assert_eq!(metadata.to_json()["resource_name"], "Example MCP server");
    /// ```
    #[must_use]
    pub fn resource_name(mut self, name: impl Into<String>) -> Self {
        self.resource_name = Some(name.into());
        self
    }

    /// Sets `resource_documentation`, a URL of human-readable documentation.
    ///
    /// ```
    /// use mcp_session_binding::jwt::ProtectedResourceMetadata;
    ///
    /// let metadata = ProtectedResourceMetadata::new("https://mcp.example.com/mcp", ["https://auth.example.com"])
    ///     .resource_documentation("https://mcp.example.com/docs");;
    /// assert_eq!(metadata.to_json()["resource_documentation"], "https://mcp.example.com/docs");
    /// ```
    #[must_use]
    pub fn resource_documentation(mut self, url: impl Into<String>) -> Self {
        self.resource_documentation = Some(url.into());
        self
    }

    /// The `resource` identifier.
    ///
    /// ```
    /// use mcp_session_binding::jwt::ProtectedResourceMetadata;
    ///
    /// let metadata = ProtectedResourceMetadata::new("https://mcp.example.com/mcp", ["https://auth.example.com"]);
    /// assert_eq!(metadata.resource(), "https://mcp.example.com/mcp");
    /// ```
    #[must_use]
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The `authorization_servers`.
    ///
    /// ```
    /// use mcp_session_binding::jwt::ProtectedResourceMetadata;
    ///
    /// let metadata = ProtectedResourceMetadata::new("https://mcp.example.com/mcp", ["https://auth.example.com"]);
    /// assert_eq!(metadata.authorization_servers(), ["https://auth.example.com"]);
    /// ```
    #[must_use]
    pub fn authorization_servers(&self) -> &[String] {
        &self.authorization_servers
    }

    /// Path at which RFC 9728 §3.1 places this document: `/.well-known/oauth-protected-resource`
    /// followed by the resource's path (`https://h/mcp` gives
    /// `/.well-known/oauth-protected-resource/mcp`; a resource without a path gives the bare
    /// prefix). The query, if any, is dropped.
    ///
    /// ```
    /// use mcp_session_binding::jwt::ProtectedResourceMetadata;
    ///
    /// let metadata = ProtectedResourceMetadata::new("https://mcp.example.com/mcp", ["https://auth.example.com"]);
    /// assert_eq!(metadata.well_known_path(), "/.well-known/oauth-protected-resource/mcp");
    /// ```
    #[must_use]
    pub fn well_known_path(&self) -> String {
        let (_, path) = split_origin(&self.resource);
        if path.is_empty() || path == "/" {
            WELL_KNOWN.to_owned()
        } else {
            format!("{WELL_KNOWN}{path}")
        }
    }

    /// Absolute URL of this document (the resource's origin and [`well_known_path`]): the value
    /// to send as `resource_metadata` in `WWW-Authenticate`.
    ///
    /// [`well_known_path`]: Self::well_known_path
    ///
    /// ```
    /// use mcp_session_binding::jwt::ProtectedResourceMetadata;
    ///
    /// let metadata = ProtectedResourceMetadata::new("https://mcp.example.com/mcp", ["https://auth.example.com"]);
    /// assert_eq!(metadata.well_known_url(), "https://mcp.example.com/.well-known/oauth-protected-resource/mcp");
    /// ```
    #[must_use]
    pub fn well_known_url(&self) -> String {
        let (origin, _) = split_origin(&self.resource);
        format!("{origin}{}", self.well_known_path())
    }

    /// The document as JSON.
    ///
    /// ```
    /// use mcp_session_binding::jwt::ProtectedResourceMetadata;
    ///
    /// let metadata = ProtectedResourceMetadata::new("https://mcp.example.com/mcp", ["https://auth.example.com"]);
    /// assert_eq!(metadata.to_json()["resource"], "https://mcp.example.com/mcp");
    /// ```
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// Splits `scheme://authority/path?query` into (`scheme://authority`, `/path`).
fn split_origin(uri: &str) -> (&str, &str) {
    let without_fragment = uri.split('#').next().unwrap_or(uri);
    let without_query = without_fragment
        .split('?')
        .next()
        .unwrap_or(without_fragment);
    match without_query.find("://") {
        Some(scheme_end) => {
            let after = scheme_end + 3;
            match without_query[after..].find('/') {
                Some(slash) => without_query.split_at(after + slash),
                None => (without_query, ""),
            }
        }
        None => ("", without_query),
    }
}

fn json_response(body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Serves the document: `GET` and `HEAD` get it (`200`, `application/json`), anything else
/// `405` with `Allow: GET, HEAD`. Mount it with axum's `route_service` at
/// [`well_known_path`](Self::well_known_path).
impl<B> Service<Request<B>> for ProtectedResourceMetadata {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let method = request.method();
        if method == Method::GET || method == Method::HEAD {
            return ready(Ok(json_response(Bytes::from(self.to_json().to_string()))));
        }
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(resource: &str) -> ProtectedResourceMetadata {
        ProtectedResourceMetadata::new(resource, ["https://as.example"])
    }

    #[test]
    fn well_known_location_follows_rfc_9728() {
        let cases = [
            (
                "https://h.example",
                "https://h.example/.well-known/oauth-protected-resource",
            ),
            (
                "https://h.example/",
                "https://h.example/.well-known/oauth-protected-resource",
            ),
            (
                "https://h.example:8443/mcp",
                "https://h.example:8443/.well-known/oauth-protected-resource/mcp",
            ),
            (
                "https://h.example/a/b?x=1",
                "https://h.example/.well-known/oauth-protected-resource/a/b",
            ),
        ];
        for (resource, url) in cases {
            assert_eq!(meta(resource).well_known_url(), url, "{resource}");
        }
    }

    #[test]
    fn optional_fields_are_omitted() {
        let json = meta("https://h.example/mcp")
            .resource_name("Demo")
            .to_json();
        assert_eq!(json["resource_name"], "Demo");
        assert!(json.get("scopes_supported").is_none());
        assert!(json.get("resource_documentation").is_none());
        assert_eq!(
            json["bearer_methods_supported"],
            serde_json::json!(["header"])
        );
    }
}
