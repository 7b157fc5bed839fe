//! The answers the layer gives instead of forwarding, and why.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

use crate::classify::{Classified, Message};

/// The text of every mismatch answer.
pub const MISMATCH_MESSAGE: &str = "Unauthorized: caller identity does not match session owner";

/// Why the layer answered a request itself. Put in the response extensions of every answer it
/// makes, so outer layers (metrics, logging) can see it.
///
/// ```
/// use mcp_session_binding::RejectionReason;
///
/// assert_eq!(RejectionReason::IdentityMismatch.code(), "mismatch");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectionReason {
    /// The caller is not the session owner (another identity, or anonymous vs. identified).
    IdentityMismatch,
    /// The stored binding does not parse; treated as a mismatch (fail closed).
    CorruptBinding,
    /// The session has no binding (unknown or expired): 404.
    UnknownSession,
    /// The session was ended: 404.
    EndedSession,
    /// `Mcp-Session-Id` is empty, repeated, too long or has a byte outside 0x21–0x7E: 400.
    MalformedSessionId,
    /// The body is over the cap on a path that reads it: 413.
    BodyTooLarge,
    /// The body could not be read: 400.
    BodyUnreadable,
    /// The binding store failed: 503, the session is kept.
    StoreUnavailable,
    /// A request created a session but carries no identity (and anonymous sessions are off): 401.
    MissingIdentity,
    /// The request carries an identity that is unusable (a claim missing or not a string): 401.
    InvalidIdentity,
    /// The inner service minted a session id that is already bound or ended: 500.
    BindConflict,
    /// The inner service minted a session id that is not a valid header value: 500.
    InvalidMintedSessionId,
    /// The caller already holds its limit of live sessions (per identity, or the shared
    /// anonymous budget): 429 with `Retry-After`; the new inner session is ended.
    TooManySessions,
}

impl RejectionReason {
    /// The stable reason code, as used in log events.
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Self::IdentityMismatch => "mismatch",
            Self::CorruptBinding => "corrupt_binding",
            Self::UnknownSession => "unknown_session",
            Self::EndedSession => "ended_session",
            Self::MalformedSessionId => "malformed_session_id",
            Self::BodyTooLarge => "body_too_large",
            Self::BodyUnreadable => "body_unreadable",
            Self::StoreUnavailable => "store_error",
            Self::MissingIdentity => "missing_identity",
            Self::InvalidIdentity => "invalid_identity",
            Self::BindConflict => "bind_conflict",
            Self::InvalidMintedSessionId => "invalid_minted_session_id",
            Self::TooManySessions => "too_many_sessions",
        }
    }
}

impl std::fmt::Display for RejectionReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// JSON-RPC error codes. Standard codes where one fits; -32001 for "session not found" (the
/// TypeScript SDK's convention); never one of the -32020..-32099 codes 2026-07-28 reserves.
mod code {
    pub(super) const INVALID_REQUEST: i32 = -32600;
    pub(super) const INTERNAL_ERROR: i32 = -32603;
    pub(super) const SERVER_ERROR: i32 = -32000;
    pub(super) const SESSION_NOT_FOUND: i32 = -32001;
}

/// Seconds a client should wait after a 503.
const RETRY_AFTER_SECS: &str = "1";

fn json_escape(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned())
}

fn error_object(code: i32, message: &str) -> String {
    format!(r#"{{"code":{code},"message":{}}}"#, json_escape(message))
}

/// A JSON-RPC error without `id` (the transport's "error response that has no id").
fn error_without_id(code: i32, message: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","error":{}}}"#,
        error_object(code, message)
    )
}

pub(crate) fn json(
    status: StatusCode,
    body: String,
    reason: RejectionReason,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response.extensions_mut().insert(reason);
    response
}

/// The answer for `reason` when no request `id` is involved.
pub(crate) fn plain(reason: RejectionReason, detail: Option<&str>) -> Response<Full<Bytes>> {
    use RejectionReason as R;
    let (status, code, message) = match reason {
        R::IdentityMismatch | R::CorruptBinding => (
            StatusCode::FORBIDDEN,
            code::INVALID_REQUEST,
            MISMATCH_MESSAGE,
        ),
        R::UnknownSession | R::EndedSession => (
            StatusCode::NOT_FOUND,
            code::SESSION_NOT_FOUND,
            "Session not found",
        ),
        R::MalformedSessionId => (
            StatusCode::BAD_REQUEST,
            code::INVALID_REQUEST,
            "Bad Request: malformed Mcp-Session-Id header",
        ),
        R::BodyTooLarge => (
            StatusCode::PAYLOAD_TOO_LARGE,
            code::INVALID_REQUEST,
            "Request body too large",
        ),
        R::BodyUnreadable => (
            StatusCode::BAD_REQUEST,
            code::INVALID_REQUEST,
            "Request body could not be read",
        ),
        R::StoreUnavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            code::SERVER_ERROR,
            "Session binding store unavailable; retry later",
        ),
        R::MissingIdentity => (
            StatusCode::UNAUTHORIZED,
            code::SERVER_ERROR,
            "Unauthorized: no caller identity on a session-creating request; an authentication \
             layer must run before SessionBindingLayer and put the identity in the request \
             extensions",
        ),
        R::InvalidIdentity => (
            StatusCode::UNAUTHORIZED,
            code::SERVER_ERROR,
            "Unauthorized: the caller identity is invalid",
        ),
        R::TooManySessions => (
            StatusCode::TOO_MANY_REQUESTS,
            code::SERVER_ERROR,
            "Too many sessions: this caller already holds its limit of live sessions; end one \
             (DELETE) or retry after the Retry-After delay",
        ),
        R::BindConflict | R::InvalidMintedSessionId => (
            StatusCode::INTERNAL_SERVER_ERROR,
            code::INTERNAL_ERROR,
            "Internal error: the new session could not be bound",
        ),
    };
    let message = match detail {
        Some(detail) => format!("{message}: {detail}"),
        None => message.to_owned(),
    };
    let mut response = json(status, error_without_id(code, &message), reason);
    if reason == R::StoreUnavailable {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_SECS),
        );
    }
    response
}

/// The 429 for a caller at its session limit, with `Retry-After` in whole seconds (rounded up,
/// at least 1).
pub(crate) fn too_many_sessions(retry_after: std::time::Duration) -> Response<Full<Bytes>> {
    let mut response = plain(RejectionReason::TooManySessions, None);
    let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    response
}

/// The answer to one refused JSON-RPC request: an `isError` result for `tools/call`, an error
/// with the request's `id` otherwise. `id` is the request's raw JSON id text.
fn answer(id: &str, tool_call: bool) -> String {
    if tool_call {
        format!(
            r#"{{"jsonrpc":"2.0","id":{id},"result":{{"content":[{{"type":"text","text":{}}}],"isError":true}}}}"#,
            json_escape(MISMATCH_MESSAGE)
        )
    } else {
        format!(
            r#"{{"jsonrpc":"2.0","id":{id},"error":{}}}"#,
            error_object(code::INVALID_REQUEST, MISMATCH_MESSAGE)
        )
    }
}

/// The mismatch answer for a POST body.
pub(crate) fn mismatch(body: &Classified<'_>, reason: RejectionReason) -> Response<Full<Bytes>> {
    match body {
        Classified::Single(Message::Request { id, tool_call }) => {
            json(StatusCode::OK, answer(id, *tool_call), reason)
        }
        Classified::Batch(messages) => {
            let answers: Vec<String> = messages
                .iter()
                .filter_map(|m| match m {
                    Message::Request { id, tool_call } => Some(answer(id, *tool_call)),
                    Message::NoAnswer => None,
                    Message::Invalid => Some(format!(
                        r#"{{"jsonrpc":"2.0","id":null,"error":{}}}"#,
                        error_object(code::INVALID_REQUEST, MISMATCH_MESSAGE)
                    )),
                })
                .collect();
            if answers.is_empty() {
                plain(reason, None)
            } else {
                json(StatusCode::OK, format!("[{}]", answers.join(",")), reason)
            }
        }
        Classified::Single(_) | Classified::Invalid => plain(reason, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::classify;
    use http_body_util::BodyExt;
    use serde_json::{Value, json};

    async fn body_json(response: Response<Full<Bytes>>) -> (StatusCode, Value) {
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn tool_call_mismatch_is_an_is_error_result_with_the_id() {
        let body = classify(br#"{"jsonrpc":"2.0","id":"x-1","method":"tools/call","params":{}}"#);
        let (status, value) = body_json(mismatch(&body, RejectionReason::IdentityMismatch)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            value,
            json!({"jsonrpc":"2.0","id":"x-1","result":{"content":[{"type":"text","text":MISMATCH_MESSAGE}],"isError":true}})
        );
    }

    #[tokio::test]
    async fn other_requests_get_a_json_rpc_error_with_the_id() {
        let body = classify(br#"{"jsonrpc":"2.0","id":3,"method":"prompts/get"}"#);
        let (status, value) = body_json(mismatch(&body, RejectionReason::IdentityMismatch)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(value["id"], json!(3));
        assert_eq!(value["error"]["message"], json!(MISMATCH_MESSAGE));
    }

    #[tokio::test]
    async fn notifications_and_invalid_bodies_get_403_without_id() {
        for body in [
            &br#"{"jsonrpc":"2.0","method":"notifications/cancelled"}"#[..],
            b"nope",
        ] {
            let (status, value) =
                body_json(mismatch(&classify(body), RejectionReason::IdentityMismatch)).await;
            assert_eq!(status, StatusCode::FORBIDDEN);
            assert!(value.get("id").is_none());
            assert_eq!(value["error"]["message"], json!(MISMATCH_MESSAGE));
        }
    }

    #[tokio::test]
    async fn batches_get_one_answer_per_request() {
        let body = classify(
            br#"[{"jsonrpc":"2.0","id":1,"method":"tools/call"},{"jsonrpc":"2.0","method":"notifications/progress"},{"jsonrpc":"2.0","id":2,"method":"tools/list"}]"#,
        );
        let (status, value) = body_json(mismatch(&body, RejectionReason::IdentityMismatch)).await;
        assert_eq!(status, StatusCode::OK);
        let answers = value.as_array().unwrap();
        assert_eq!(answers.len(), 2);
        assert_eq!(answers[0]["id"], json!(1));
        assert_eq!(answers[0]["result"]["isError"], json!(true));
        assert_eq!(answers[1]["id"], json!(2));
        assert!(answers[1]["error"].is_object());
        let only_notes = classify(br#"[{"jsonrpc":"2.0","method":"notifications/progress"}]"#);
        assert_eq!(
            mismatch(&only_notes, RejectionReason::IdentityMismatch).status(),
            StatusCode::FORBIDDEN
        );
    }

    #[test]
    fn too_many_sessions_is_429_with_retry_after_in_whole_seconds() {
        for (wait, header) in [(1, "1"), (1_000, "1"), (1_001, "2"), (86_400_000, "86400")] {
            let response = too_many_sessions(std::time::Duration::from_millis(wait));
            assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(response.headers()[header::RETRY_AFTER], header);
            assert_eq!(
                response.extensions().get::<RejectionReason>(),
                Some(&RejectionReason::TooManySessions)
            );
        }
        assert_eq!(RejectionReason::TooManySessions.code(), "too_many_sessions");
    }

    #[test]
    fn store_errors_carry_retry_after() {
        let response = plain(RejectionReason::StoreUnavailable, None);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        assert_eq!(
            response.extensions().get::<RejectionReason>(),
            Some(&RejectionReason::StoreUnavailable)
        );
    }
}
