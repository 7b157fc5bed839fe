//! Why a request was refused, and the response that says so.

use std::fmt;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

use super::DpopError;
use crate::{
    identity::IdentityError,
    protocol::jsonrpc::{Refusal, code},
};

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
/// | [`RevocationUnavailable`](Self::RevocationUnavailable), [`KeysUnavailable`](Self::KeysUnavailable), [`IntrospectionUnavailable`](Self::IntrospectionUnavailable), [`DpopReplayUnavailable`](Self::DpopReplayUnavailable) | 503 (`Retry-After`) | none, no challenge |
/// | [`Dpop`](Self::Dpop) | 401 | `invalid_dpop_proof`, or `invalid_token` when the token is at fault, in the `DPoP` challenge |
/// | [`InsufficientScope`](Self::InsufficientScope) | 403 | `insufficient_scope`, with the required `scope` |
/// | every other reason | 401 | `invalid_token` |
///
/// A gRPC request (`content-type: application/grpc`, `application/grpc+proto`,
/// `application/grpc-web…`) gets a gRPC status instead, as a trailers-only response (HTTP 200, no
/// body): `grpc-status` 14 (`UNAVAILABLE`) for the 503 reasons, 7 (`PERMISSION_DENIED`) for
/// [`InsufficientScope`](Self::InsufficientScope), 16 (`UNAUTHENTICATED`) for the others;
/// `grpc-message` says why. The same headers (`WWW-Authenticate`, `Retry-After`) and the reason in
/// the extensions come with it.
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
    /// The issuer's introspection endpoint says the token is not active, or answered something
    /// that is not an RFC 7662 answer (feature `oidc`).
    Inactive,
    /// The introspection endpoint could not be asked: no answer in time, an error status, an
    /// answer over 64 KiB, too many calls in flight (feature `oidc`). Fail closed: 503 with
    /// `Retry-After`.
    IntrospectionUnavailable,
    /// A DPoP proof, or its absence, was refused (RFC 9449): see [`DpopError`]. The
    /// [`code`](Self::code) is the `DpopError`'s.
    Dpop(DpopError),
    /// The DPoP replay cache could not take the proof (the memory cache is full, or the store
    /// failed or timed out): fail closed, 503 with `Retry-After`.
    DpopReplayUnavailable,
}

impl JwtRejection {
    /// The HTTP status of the rejection response.
    ///
    /// ```
    /// use http::StatusCode;
    /// use mcp_session_binding::jwt::JwtRejection;
    /// assert_eq!(JwtRejection::Expired.status(), StatusCode::UNAUTHORIZED);
    /// assert_eq!(JwtRejection::InsufficientScope.status(), StatusCode::FORBIDDEN);
    /// assert_eq!(JwtRejection::RevocationUnavailable.status(), StatusCode::SERVICE_UNAVAILABLE);
    /// ```
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MalformedHeader => StatusCode::BAD_REQUEST,
            Self::RevocationUnavailable
            | Self::KeysUnavailable { .. }
            | Self::IntrospectionUnavailable
            | Self::DpopReplayUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::InsufficientScope => StatusCode::FORBIDDEN,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// The RFC 6750 `error` code sent in `WWW-Authenticate`: none when no token was presented.
    ///
    /// ```
    /// use mcp_session_binding::jwt::JwtRejection;
    /// assert_eq!(JwtRejection::Missing.error_code(), None); // a bare challenge
    /// assert_eq!(JwtRejection::BadSignature.error_code(), Some("invalid_token"));
    /// ```
    #[must_use]
    pub fn error_code(&self) -> Option<&'static str> {
        match self {
            Self::Missing
            | Self::RevocationUnavailable
            | Self::KeysUnavailable { .. }
            | Self::IntrospectionUnavailable
            | Self::DpopReplayUnavailable => None,
            Self::MalformedHeader => Some("invalid_request"),
            Self::Dpop(error) => Some(error.error_code()),
            Self::InsufficientScope => Some("insufficient_scope"),
            _ => Some("invalid_token"),
        }
    }

    /// A stable, snake_case reason code for logs and metrics.
    ///
    /// ```
    /// use mcp_session_binding::jwt::JwtRejection;
    /// assert_eq!(JwtRejection::Expired.code(), "expired");
    /// ```
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
            Self::Inactive => "inactive",
            Self::IntrospectionUnavailable => "introspection_unavailable",
            Self::Dpop(error) => error.code(),
            Self::DpopReplayUnavailable => "dpop_replay_unavailable",
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
            Self::Inactive => "the access token is not active",
            Self::IntrospectionUnavailable => {
                "the token introspection endpoint is unavailable; retry later"
            }
            Self::Dpop(error) => return write!(f, "{error}"),
            Self::DpopReplayUnavailable => "the DPoP replay check is unavailable; retry later",
        })
    }
}

impl std::error::Error for JwtRejection {}

/// The `grpc-status` header of a gRPC answer.
const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
/// The `grpc-message` header of a gRPC answer.
const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

/// The content type of a gRPC answer to a request with these headers, when the request is a gRPC
/// call: `content-type` is `application/grpc` (or `application/grpc+proto`, `…;params`), or the
/// gRPC-Web forms `application/grpc-web[+…]` and `application/grpc-web-text[+…]`, which take a
/// trailers-only answer in the headers too. Media types compare case-insensitively. Anything
/// else (`application/grpcx`, no `content-type`) is not gRPC.
pub(crate) fn grpc_content_type(headers: &HeaderMap) -> Option<&'static str> {
    let value = headers.get(header::CONTENT_TYPE)?.as_bytes();
    let rest = strip_prefix_ignore_case(value, b"application/grpc")?;
    let (answer, rest) = if let Some(rest) = strip_prefix_ignore_case(rest, b"-web-text") {
        ("application/grpc-web-text", rest)
    } else if let Some(rest) = strip_prefix_ignore_case(rest, b"-web") {
        ("application/grpc-web", rest)
    } else {
        ("application/grpc", rest)
    };
    matches!(rest.first(), None | Some(b'+' | b';' | b' ')).then_some(answer)
}

fn strip_prefix_ignore_case<'a>(value: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let head = value.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &value[prefix.len()..])
}

/// The gRPC status code for a rejection's HTTP status.
fn grpc_status(status: StatusCode) -> &'static str {
    match status {
        StatusCode::SERVICE_UNAVAILABLE => "14", // UNAVAILABLE
        StatusCode::FORBIDDEN => "7",            // PERMISSION_DENIED
        _ => "16",                               // UNAUTHENTICATED (401, and 400: a bad header)
    }
}

/// `grpc-message` encoding (gRPC over HTTP/2, "Responses"): bytes outside visible ASCII and `%`
/// become `%XX`.
fn grpc_percent_encode(message: &str) -> String {
    let mut encoded = String::with_capacity(message.len());
    for byte in message.bytes() {
        if (0x20..0x7f).contains(&byte) && byte != b'%' {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// The message of a rejection, as the answers say it.
fn message(rejection: &JwtRejection) -> String {
    let prefix = match rejection.status() {
        StatusCode::SERVICE_UNAVAILABLE => "Service unavailable",
        StatusCode::FORBIDDEN => "Forbidden",
        _ => "Unauthorized",
    };
    format!("{prefix}: {rejection}")
}

/// Builds rejection responses: the `WWW-Authenticate` challenge and the JSON-RPC error body.
#[derive(Clone, Debug)]
pub(crate) struct Rejector {
    /// Pre-formatted `resource_metadata="…"` and `scope="…"` parameters.
    challenge_params: Vec<String>,
    /// The parameters of the `insufficient_scope` challenge: `scope="<required scopes>"` and
    /// `resource_metadata="…"`.
    scope_challenge_params: Vec<String>,
    retry_after: HeaderValue,
    /// With DPoP on for some issuer: the `DPoP` challenge's `algs="…"`, and whether the `Bearer`
    /// challenge is sent too (some issuer accepts bearer tokens).
    dpop: Option<(String, bool)>,
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

    /// `resource_metadata` and `scope` must already satisfy [`is_quotable`]; `required_scope`
    /// (space separated, quotable) is named in the `insufficient_scope` challenge, and in the
    /// others when `scope` is `None`.
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
            dpop: None,
        }
    }

    /// Challenges with `DPoP algs="…"` (RFC 9449 §7.1), and with `Bearer` too when `bearer`.
    pub(crate) fn with_dpop(mut self, algorithms: &[super::Algorithm], bearer: bool) -> Self {
        let algs: Vec<&str> = algorithms.iter().map(|alg| alg.as_str()).collect();
        self.dpop = Some((format!("algs=\"{}\"", algs.join(" ")), bearer));
        self
    }

    fn challenge(&self, rejection: &JwtRejection) -> HeaderValue {
        self.challenge_of("Bearer", rejection, true, None)
    }

    /// One challenge of `scheme`: the error parameters when `with_error`, then the extra ones.
    fn challenge_of(
        &self,
        scheme: &'static str,
        rejection: &JwtRejection,
        with_error: bool,
        algs: Option<&str>,
    ) -> HeaderValue {
        let mut params = Vec::with_capacity(self.challenge_params.len() + 3);
        if let Some(error) = rejection.error_code().filter(|_| with_error) {
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
        params.extend(algs.map(str::to_owned));
        let value = if params.is_empty() {
            scheme.to_owned()
        } else {
            format!("{scheme} {}", params.join(", "))
        };
        // Every part is visible ASCII (checked at build time, filtered above).
        HeaderValue::try_from(value).unwrap_or_else(|_| HeaderValue::from_static(scheme))
    }

    /// The `WWW-Authenticate` values of a rejection: `Bearer` alone without DPoP; with DPoP,
    /// `Bearer` (when bearer tokens are accepted) and `DPoP algs="…"`, the error parameters on
    /// the challenge of the scheme at fault (the request's, or `DPoP` for a DPoP reason).
    fn challenges(&self, rejection: &JwtRejection, used_dpop: bool, headers: &mut HeaderMap) {
        let Some((algs, bearer)) = &self.dpop else {
            headers.insert(header::WWW_AUTHENTICATE, self.challenge(rejection));
            return;
        };
        let dpop_error = used_dpop || !*bearer || matches!(rejection, JwtRejection::Dpop(_));
        if *bearer {
            headers.append(
                header::WWW_AUTHENTICATE,
                self.challenge_of("Bearer", rejection, !dpop_error, None),
            );
        }
        headers.append(
            header::WWW_AUTHENTICATE,
            self.challenge_of("DPoP", rejection, dpop_error, Some(algs)),
        );
    }

    /// The response for `rejection` of a request with `request_headers`: a gRPC status for a
    /// gRPC request (see [`grpc_content_type`]), the HTTP answer with a JSON-RPC body otherwise.
    pub(crate) fn response_to(
        &self,
        rejection: JwtRejection,
        request_headers: &HeaderMap,
    ) -> Response<Full<Bytes>> {
        crate::metrics::auth_rejected(&rejection);
        let used_dpop = super::dpop::uses_dpop_scheme(request_headers);
        match grpc_content_type(request_headers) {
            Some(content_type) => self.grpc_response(rejection, content_type, used_dpop),
            None => self.response_for(rejection, used_dpop),
        }
    }

    /// The response for `rejection`, with the reason in its extensions.
    #[cfg(test)]
    pub(crate) fn response(&self, rejection: JwtRejection) -> Response<Full<Bytes>> {
        self.response_for(rejection, false)
    }

    /// The response for `rejection` of a request that used the `DPoP` scheme or not.
    fn response_for(&self, rejection: JwtRejection, used_dpop: bool) -> Response<Full<Bytes>> {
        let message = message(&rejection);
        // One code for "not authorized, or a dependency unavailable" in both layers; no `id`.
        let refusal = Refusal::new(rejection.status(), code::SERVER_ERROR, &message);
        let mut response = refusal.response(rejection.clone());
        self.challenge_headers(&rejection, response.headers_mut(), used_dpop);
        response
    }

    /// The gRPC answer for `rejection`: a trailers-only response (HTTP 200, no body, the status
    /// in the headers), which gRPC clients read as a call status rather than a protocol error.
    /// `grpc-status` is 16 (`UNAUTHENTICATED`) for a missing or invalid token, 7
    /// (`PERMISSION_DENIED`) for a missing scope, 14 (`UNAVAILABLE`) when the keys or the
    /// revocation check are unavailable; `grpc-message` is the reason, percent-encoded as the
    /// gRPC spec says. `WWW-Authenticate` and `Retry-After` are kept for clients that read them.
    fn grpc_response(
        &self,
        rejection: JwtRejection,
        content_type: &'static str,
        used_dpop: bool,
    ) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::default());
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(
            GRPC_STATUS,
            HeaderValue::from_static(grpc_status(rejection.status())),
        );
        // Percent-encoded: visible ASCII only, a valid header value.
        if let Ok(value) = HeaderValue::try_from(grpc_percent_encode(&message(&rejection))) {
            headers.insert(GRPC_MESSAGE, value);
        }
        self.challenge_headers(&rejection, headers, used_dpop);
        response.extensions_mut().insert(rejection);
        response
    }

    /// The headers every rejection carries: `Cache-Control`, and `Retry-After` or the
    /// `WWW-Authenticate` challenge.
    fn challenge_headers(
        &self,
        rejection: &JwtRejection,
        headers: &mut HeaderMap,
        used_dpop: bool,
    ) {
        let status = rejection.status();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let JwtRejection::KeysUnavailable { retry_after } = *rejection {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after.max(1)));
        } else if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, self.retry_after.clone());
        } else {
            self.challenges(rejection, used_dpop, headers);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;
    use http_body::Body;
    use http_body_util::BodyExt;

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
        assert_eq!(
            response.extensions().get(),
            Some(&JwtRejection::RevocationUnavailable)
        );
        let body = response.into_body().collect().now_or_never().unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body.unwrap().to_bytes()).unwrap();
        assert_eq!(body["error"]["code"], code::SERVER_ERROR);
        assert!(body.get("id").is_none());
    }

    fn headers(content_type: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, content_type.parse().unwrap());
        headers
    }

    #[test]
    fn grpc_requests_are_known_by_their_content_type() {
        for (content_type, answer) in [
            ("application/grpc", Some("application/grpc")),
            ("application/grpc+proto", Some("application/grpc")),
            ("Application/GRPC;charset=utf-8", Some("application/grpc")),
            ("application/grpc-web", Some("application/grpc-web")),
            ("application/grpc-web+proto", Some("application/grpc-web")),
            (
                "application/grpc-web-text",
                Some("application/grpc-web-text"),
            ),
            ("application/grpcx", None),
            ("application/grpc-webby", None),
            ("application/json", None),
            ("application/grp", None),
            ("", None),
        ] {
            assert_eq!(
                grpc_content_type(&headers(content_type)),
                answer,
                "{content_type:?}"
            );
        }
        assert_eq!(grpc_content_type(&HeaderMap::new()), None);
    }

    #[test]
    fn grpc_rejections_are_trailers_only_statuses() {
        let rejector = Rejector::new(Some("https://m/x"), None, 3);
        let grpc = headers("application/grpc");
        for (rejection, status) in [
            (JwtRejection::Missing, "16"),
            (JwtRejection::Expired, "16"),
            (JwtRejection::MalformedHeader, "16"),
            (JwtRejection::InsufficientScope, "7"),
            (JwtRejection::RevocationUnavailable, "14"),
            (JwtRejection::KeysUnavailable { retry_after: 9 }, "14"),
        ] {
            let response = rejector.response_to(rejection.clone(), &grpc);
            assert_eq!(response.status(), StatusCode::OK, "{rejection:?}");
            assert!(response.body().is_end_stream(), "trailers-only: no body");
            let headers = response.headers();
            assert_eq!(headers[header::CONTENT_TYPE], "application/grpc");
            assert_eq!(headers["grpc-status"], status, "{rejection:?}");
            let message = headers["grpc-message"].to_str().unwrap();
            assert!(message.starts_with(match status {
                "14" => "Service unavailable: ",
                "7" => "Forbidden: ",
                _ => "Unauthorized: ",
            }));
            assert_eq!(
                response.extensions().get::<JwtRejection>(),
                Some(&rejection)
            );
        }
        // The same rejection of a non-gRPC request is the HTTP answer.
        let response = rejector.response_to(JwtRejection::Missing, &headers("application/json"));
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(!response.headers().contains_key("grpc-status"));
    }

    #[test]
    fn grpc_message_is_percent_encoded() {
        assert_eq!(grpc_percent_encode("a b%c"), "a b%25c");
        assert_eq!(grpc_percent_encode("é\\n"), "%C3%A9\\n");
        assert_eq!(grpc_percent_encode("x\ny"), "x%0Ay");
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
