//! Why a request was refused, and the response that says so.

use std::fmt;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::{identity::IdentityError, protocol::jsonrpc};

/// Why [`JwtAuth`](super::JwtAuth) refused a request.
///
/// The rejection response carries it in its extensions, so an outer layer (metrics, logging) can
/// read the reason without parsing the body:
///
/// ```
/// use mcp_session_binding::jwt::JwtRejection;
///
/// # let response = http::Response::builder().extension(JwtRejection::Expired).body(()).unwrap();
/// if let Some(reason) = response.extensions().get::<JwtRejection>() {
///     assert_eq!(reason.code(), "expired");
///     assert_eq!(reason.status(), http::StatusCode::UNAUTHORIZED);
///     assert_eq!(reason.error_code(), Some("invalid_token"));
/// }
/// assert_eq!(JwtRejection::Missing.error_code(), None); // no token, no `error=` (RFC 6750 §3.1)
/// ```
///
/// | reason | status | `error=` |
/// | --- | --- | --- |
/// | [`Missing`](Self::Missing) | 401 | none |
/// | [`MalformedHeader`](Self::MalformedHeader) | 400 | `invalid_request` |
/// | [`RevocationUnavailable`](Self::RevocationUnavailable), [`KeysUnavailable`](Self::KeysUnavailable) | 503 (`Retry-After`) | none, no challenge |
/// | [`InsufficientScope`](Self::InsufficientScope) | 403 | `insufficient_scope`, with the required `scope` |
/// | every other reason | 401 | `invalid_token` |
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JwtRejection {
    /// No bearer token: no `Authorization` header, or one with another scheme (`Basic`, ...).
    /// A token in the query string (`?access_token=`) is never read, so it counts as none.
    Missing,
    /// An `Authorization: Bearer` header that is not well formed: repeated, empty token, a token
    /// with characters outside RFC 6750's `b64token`, or a value that is not visible ASCII.
    MalformedHeader,
    /// The token is not a well-formed signed JWT (not three base64url parts, a header that is not
    /// JSON, a JWE, an unsupported `crit` header, a payload that is not a JSON object).
    Malformed,
    /// The header's `alg` is `none` or not in the allowlist.
    AlgorithmNotAllowed,
    /// The header's `typ` is not `at+jwt` (only when the `typ` check is on).
    TypeNotAllowed,
    /// No configured key matches the token's `kid` and algorithm.
    UnknownKey,
    /// The signature does not verify with any candidate key.
    BadSignature,
    /// `exp` is in the past (beyond the leeway).
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    NotYetValid,
    /// `aud` is missing or names none of this server's audiences.
    BadAudience,
    /// `iss` is not a trusted issuer.
    UntrustedIssuer,
    /// A claim is missing or has the wrong type: `iss` or `sub` not a string, `exp` missing or
    /// not a number, `jti` missing while a revocation check is configured.
    InvalidClaims(IdentityError),
    /// The revocation check says the token is revoked.
    Revoked,
    /// The revocation check failed or timed out; the request was not let through.
    RevocationUnavailable,
    /// The token is valid but lacks a required scope (`scope` or `scp` claim).
    InsufficientScope,
    /// The keys of the token's issuer could not be fetched, and the last good ones are older
    /// than the staleness bound (or there never were any): fail closed.
    KeysUnavailable {
        /// Seconds until the next fetch may be tried, sent as `Retry-After`.
        retry_after: u64,
    },
}

impl JwtRejection {
    /// The HTTP status of the rejection response.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MalformedHeader => StatusCode::BAD_REQUEST,
            Self::RevocationUnavailable | Self::KeysUnavailable { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::InsufficientScope => StatusCode::FORBIDDEN,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// The RFC 6750 `error` code sent in `WWW-Authenticate`: none when no token was presented.
    #[must_use]
    pub fn error_code(&self) -> Option<&'static str> {
        match self {
            Self::Missing | Self::RevocationUnavailable | Self::KeysUnavailable { .. } => None,
            Self::MalformedHeader => Some("invalid_request"),
            Self::InsufficientScope => Some("insufficient_scope"),
            _ => Some("invalid_token"),
        }
    }

    /// A stable, snake_case reason code for logs and metrics.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::MalformedHeader => "malformed_header",
            Self::Malformed => "malformed_token",
            Self::AlgorithmNotAllowed => "algorithm_not_allowed",
            Self::TypeNotAllowed => "type_not_allowed",
            Self::UnknownKey => "unknown_key",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::BadAudience => "bad_audience",
            Self::UntrustedIssuer => "untrusted_issuer",
            Self::InvalidClaims(_) => "invalid_claims",
            Self::Revoked => "revoked",
            Self::RevocationUnavailable => "revocation_unavailable",
            Self::InsufficientScope => "insufficient_scope",
            Self::KeysUnavailable { .. } => "keys_unavailable",
        }
    }
}

impl fmt::Display for JwtRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Missing => "no bearer access token; send `Authorization: Bearer <token>`",
            Self::MalformedHeader => "malformed `Authorization: Bearer` header",
            Self::Malformed => "the access token is not a well-formed signed JWT",
            Self::AlgorithmNotAllowed => "the token's signature algorithm is not accepted",
            Self::TypeNotAllowed => "the token is not a JWT access token (`typ` must be `at+jwt`)",
            Self::UnknownKey => "no key of this server matches the token's `kid` and algorithm",
            Self::BadSignature => "the token's signature does not verify",
            Self::Expired => "the access token has expired",
            Self::NotYetValid => "the access token is not valid yet",
            Self::BadAudience => "the access token was not issued for this server (audience)",
            Self::UntrustedIssuer => "the access token's issuer is not trusted",
            Self::InvalidClaims(err) => return write!(f, "invalid token claims: {err}"),
            Self::Revoked => "the access token has been revoked",
            Self::RevocationUnavailable => "the token revocation check is unavailable; retry later",
            Self::InsufficientScope => "the access token lacks a required scope",
            Self::KeysUnavailable { .. } => {
                "the issuer's signing keys are unavailable; retry later"
            }
        })
    }
}

impl std::error::Error for JwtRejection {}

/// Builds rejection responses: the `WWW-Authenticate` challenge and the JSON-RPC error body.
#[derive(Clone, Debug)]
pub(crate) struct Rejector {
    /// Pre-formatted `resource_metadata="…"` and `scope="…"` parameters.
    challenge_params: Vec<String>,
    /// The parameters of the `insufficient_scope` challenge: `scope="<required scopes>"` and
    /// `resource_metadata="…"`.
    scope_challenge_params: Vec<String>,
    retry_after: HeaderValue,
}

/// Whether `value` fits in an RFC 7235 quoted-string without escaping.
pub(crate) fn is_quotable(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

impl Rejector {
    /// `resource_metadata` and `scope` must already satisfy [`is_quotable`].
    #[cfg(test)]
    pub(crate) fn new(
        resource_metadata: Option<&str>,
        scope: Option<&str>,
        retry_after_secs: u64,
    ) -> Self {
        Self::with_required_scope(resource_metadata, scope, None, retry_after_secs)
    }

    /// Like [`new`](Self::new); `required_scope` (space separated, quotable) is named in the
    /// `insufficient_scope` challenge, and in the others when `scope` is `None`.
    pub(crate) fn with_required_scope(
        resource_metadata: Option<&str>,
        scope: Option<&str>,
        required_scope: Option<&str>,
        retry_after_secs: u64,
    ) -> Self {
        let metadata: Vec<String> = resource_metadata
            .map(|url| format!("resource_metadata=\"{url}\""))
            .into_iter()
            .collect();
        let mut challenge_params = metadata.clone();
        if let Some(scope) = scope.or(required_scope) {
            challenge_params.push(format!("scope=\"{scope}\""));
        }
        // `error="insufficient_scope", scope="…", resource_metadata="…"`, as MCP shows it.
        let mut scope_challenge_params: Vec<String> = required_scope
            .or(scope)
            .map(|scope| format!("scope=\"{scope}\""))
            .into_iter()
            .collect();
        scope_challenge_params.extend(metadata);
        Self {
            challenge_params,
            scope_challenge_params,
            retry_after: HeaderValue::from(retry_after_secs),
        }
    }

    fn challenge(&self, rejection: &JwtRejection) -> HeaderValue {
        let mut params = Vec::with_capacity(self.challenge_params.len() + 2);
        if let Some(error) = rejection.error_code() {
            params.push(format!("error=\"{error}\""));
            let description: String = rejection
                .to_string()
                .chars()
                .filter(|c| is_quotable(c.encode_utf8(&mut [0; 4])))
                .collect();
            params.push(format!("error_description=\"{description}\""));
        }
        let extra = if *rejection == JwtRejection::InsufficientScope {
            &self.scope_challenge_params
        } else {
            &self.challenge_params
        };
        params.extend(extra.iter().cloned());
        let value = if params.is_empty() {
            "Bearer".to_owned()
        } else {
            format!("Bearer {}", params.join(", "))
        };
        // Every part is visible ASCII (checked at build time, filtered above).
        HeaderValue::try_from(value).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
    }

    /// The response for `rejection`, with the reason in its extensions.
    pub(crate) fn response(&self, rejection: JwtRejection) -> Response<Bytes> {
        let status = rejection.status();
        let prefix = match status {
            StatusCode::SERVICE_UNAVAILABLE => "Service unavailable",
            StatusCode::FORBIDDEN => "Forbidden",
            _ => "Unauthorized",
        };
        // One code for "not authorized, or a dependency unavailable" in both layers; no `id`.
        let message = format!("{prefix}: {rejection}");
        let body = jsonrpc::error(jsonrpc::code::SERVER_ERROR, &message);
        let mut response = Response::new(Bytes::from(body));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let JwtRejection::KeysUnavailable { retry_after } = rejection {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after.max(1)));
        } else if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, self.retry_after.clone());
        } else {
            headers.insert(header::WWW_AUTHENTICATE, self.challenge(&rejection));
        }
        response.extensions_mut().insert(rejection);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn www_authenticate(rejector: &Rejector, rejection: JwtRejection) -> String {
        let response = rejector.response(rejection);
        response.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn challenge_has_error_only_when_a_token_was_presented() {
        let rejector = Rejector::new(Some("https://mcp.example/.well-known/x"), None, 1);
        assert_eq!(
            www_authenticate(&rejector, JwtRejection::Missing),
            r#"Bearer resource_metadata="https://mcp.example/.well-known/x""#
        );
        assert_eq!(
            www_authenticate(&rejector, JwtRejection::Expired),
            r#"Bearer error="invalid_token", error_description="the access token has expired", resource_metadata="https://mcp.example/.well-known/x""#
        );
        assert!(
            www_authenticate(&rejector, JwtRejection::MalformedHeader)
                .starts_with(r#"Bearer error="invalid_request""#)
        );
        assert_eq!(
            www_authenticate(&Rejector::new(None, None, 1), JwtRejection::Missing),
            "Bearer"
        );
    }

    #[test]
    fn unavailable_is_503_with_retry_after_and_no_challenge() {
        let response = Rejector::new(Some("https://m/x"), Some("mcp"), 7)
            .response(JwtRejection::RevocationUnavailable);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
        assert!(!response.headers().contains_key(header::WWW_AUTHENTICATE));
        let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(body["error"]["code"], jsonrpc::code::SERVER_ERROR);
        assert!(body.get("id").is_none());
    }

    #[test]
    fn description_is_quotable() {
        let rejector = Rejector::new(None, Some("files:read"), 1);
        let value = www_authenticate(
            &rejector,
            JwtRejection::InvalidClaims(IdentityError::invalid("sub", "is not a string")),
        );
        assert_eq!(
            value,
            r#"Bearer error="invalid_token", error_description="invalid token claims: claim `sub` is not a string", scope="files:read""#
        );
    }
}
