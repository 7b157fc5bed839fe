//! The answers the layer gives instead of forwarding, and why.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

use serde_json::value::RawValue;

use crate::binding::config::Config;
use crate::protocol::early;
use crate::protocol::{
    envelope::{Classified, Message},
    jsonrpc::{self, code},
};

/// The text of every mismatch answer.
pub(crate) const MISMATCH_MESSAGE: &str =
    "Unauthorized: caller identity does not match session owner";

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
    /// The session was ended: 404; a `DELETE` of it gets 204 (it is already gone), unless the
    /// mismatch answer is [`MismatchAnswer::NotFound`](crate::MismatchAnswer::NotFound).
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
    /// The inner service minted a session id that is already bound or ended: 500. A bound
    /// one is left as it is (it is not the caller's to end).
    BindConflict,
    /// The inner service minted a session id that is not a valid header value: 500.
    InvalidMintedSessionId,
    /// The caller already holds its limit of live sessions (per identity, or the shared
    /// anonymous budget): 429 with `Retry-After`; the new inner session is ended.
    TooManySessions,
    /// The body of a refused request did not arrive within the time limit: 408.
    BodyTimeout,
    /// A `GET` or `DELETE` naming a sessionless protocol revision (2026-07-28 or later), which has
    /// no GET stream and no `DELETE`: 405 with `Allow: POST`.
    SessionlessMethod,
    /// A request created a session and carries an `Authorization` header, but no identity reached
    /// the layer: the auth layer runs after it, or does not put the identity in the extensions.
    /// 500; the new session is ended.
    CredentialsWithoutIdentity,
    /// A `tasks/get`, `tasks/update` or `tasks/cancel` on a task the caller did not create (or
    /// that is unknown, or whose record expired): JSON-RPC `-32602` `unknown task: <id>` with the
    /// request's `id`, as for a task that does not exist; not forwarded.
    UnknownTask,
    /// A `tasks/*` request whose task id is unusable (no `Mcp-Name`, repeated, empty, over the
    /// length cap): JSON-RPC `-32602` with the request's `id`; not forwarded.
    InvalidTaskRequest,
    /// A new task could not be recorded for its creator (store error, id already recorded): its
    /// id is withheld and the answer is a JSON-RPC error, so no one can use the task.
    TaskNotRecorded,
    /// With [`bind_event_ids`](crate::SessionBindingLayer::bind_event_ids): a `Last-Event-ID`
    /// that was not issued on the request's session (no tag, another session's, repeated): 400,
    /// not forwarded.
    ForeignEventId,
}

impl RejectionReason {
    /// The stable reason code, as used in log events.
    ///
    /// ```
    /// use mcp_session_binding::RejectionReason;
    /// assert_eq!(RejectionReason::IdentityMismatch.code(), "mismatch");
    /// assert_eq!(RejectionReason::UnknownSession.code(), "unknown_session");
    /// ```
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
            Self::StoreUnavailable => "store_unavailable",
            Self::MissingIdentity => "missing_identity",
            Self::InvalidIdentity => "invalid_identity",
            Self::BindConflict => "bind_conflict",
            Self::InvalidMintedSessionId => "invalid_minted_session_id",
            Self::TooManySessions => "too_many_sessions",
            Self::BodyTimeout => "body_timeout",
            Self::SessionlessMethod => "sessionless_method",
            Self::CredentialsWithoutIdentity => "credentials_without_identity",
            Self::UnknownTask => "unknown_task",
            Self::InvalidTaskRequest => "invalid_task_request",
            Self::TaskNotRecorded => "task_not_recorded",
            Self::ForeignEventId => "foreign_event_id",
        }
    }
}

impl std::fmt::Display for RejectionReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// Seconds a client should wait after a 503.
const RETRY_AFTER_SECS: &str = "1";

fn json(status: StatusCode, body: Vec<u8>, reason: RejectionReason) -> Response<Full<Bytes>> {
    let mut response = jsonrpc::response(status, body);
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
        R::BodyTimeout => (
            StatusCode::REQUEST_TIMEOUT,
            code::INVALID_REQUEST,
            "Request body not received in time",
        ),
        R::SessionlessMethod => (
            StatusCode::METHOD_NOT_ALLOWED,
            code::INVALID_REQUEST,
            "Method not allowed: this protocol revision has no GET stream and no DELETE",
        ),
        R::UnknownTask | R::InvalidTaskRequest => (
            StatusCode::BAD_REQUEST,
            code::INVALID_PARAMS,
            "Invalid params: unknown task",
        ),
        R::TaskNotRecorded => (
            StatusCode::SERVICE_UNAVAILABLE,
            code::SERVER_ERROR,
            "The task could not be recorded for its creator; retry",
        ),
        R::ForeignEventId => (
            StatusCode::BAD_REQUEST,
            code::INVALID_REQUEST,
            "Bad Request: Last-Event-ID was not issued on this session",
        ),
        R::CredentialsWithoutIdentity => (
            StatusCode::INTERNAL_SERVER_ERROR,
            code::INTERNAL_ERROR,
            "Internal error: the request carries credentials but no caller identity reached \
             SessionBindingLayer; the authentication layer must run before it",
        ),
    };
    let message = match detail {
        Some(detail) => format!("{message}: {detail}"),
        None => message.to_owned(),
    };
    let mut response = json(status, jsonrpc::error(code, &message), reason);
    match reason {
        R::StoreUnavailable => {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        R::SessionlessMethod => {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
        }
        _ => {}
    }
    response
}

/// The answer to a `DELETE` of a session that was already ended: 204, no body; the reason
/// ([`RejectionReason::EndedSession`]) in the extensions, like every answer the layer makes.
pub(crate) fn already_ended() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::default());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
        .extensions_mut()
        .insert(RejectionReason::EndedSession);
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
fn answer(id: &str, tool_call: bool) -> Vec<u8> {
    // The classifier only hands out ids that parsed as a JSON string or number.
    let Ok(id) = serde_json::from_str::<&RawValue>(id) else {
        return jsonrpc::error(code::INVALID_REQUEST, MISMATCH_MESSAGE);
    };
    if tool_call {
        jsonrpc::tool_error_for(id, MISMATCH_MESSAGE)
    } else {
        jsonrpc::error_for(id, code::INVALID_REQUEST, MISMATCH_MESSAGE)
    }
}

/// Bytes an answer entry takes besides its `id`: the `isError` result (the longer of the two
/// shapes), and a separating comma.
const ENTRY_OVERHEAD: usize = 160;

/// The mismatch answer for a POST body, at most `max_bytes` long: an answer that would be larger
/// (many requests, a huge `id`) is the answer without `id` instead.
pub(crate) fn mismatch(
    body: &Classified<'_>,
    reason: RejectionReason,
    max_bytes: usize,
) -> Response<Full<Bytes>> {
    let requests: &[Message<'_>] = match body {
        Classified::Single(message @ Message::Request { .. }) => std::slice::from_ref(message),
        Classified::Batch(requests) if !requests.is_empty() => requests,
        _ => return plain(reason, None),
    };
    let size = requests.iter().fold(2usize, |size, m| match m {
        Message::Request { id, .. } => size.saturating_add(id.len() + ENTRY_OVERHEAD),
        _ => size,
    });
    if size > max_bytes {
        return plain(reason, None);
    }
    let mut answers = requests.iter().filter_map(|m| match m {
        Message::Request { id, tool_call } => Some(answer(id, *tool_call)),
        _ => None,
    });
    let body = match body {
        Classified::Batch(_) => {
            let mut joined = Vec::with_capacity(size);
            joined.push(b'[');
            for (i, answer) in answers.enumerate() {
                if i > 0 {
                    joined.push(b',');
                }
                joined.extend_from_slice(&answer);
            }
            joined.push(b']');
            joined
        }
        _ => answers.next().unwrap_or_default(),
    };
    json(StatusCode::OK, body, reason)
}

/// Reads the body of a request the layer refuses, within the layer's bounds (size cap, time
/// limit), to answer it in kind. A body that cannot be read to its end gets its answer instead
/// (413, 408 or 400, with `Connection: close`: the connection cannot carry another request).
pub(crate) async fn read_refused<B>(
    parts: &http::request::Parts,
    body: B,
    config: &Config,
) -> Result<Bytes, Response<Full<Bytes>>>
where
    B: http_body::Body,
    B::Data: bytes::Buf,
{
    let read = early::read_bounded(
        body,
        early::declared_length(&parts.headers),
        config.max_body_bytes,
        config.refused_body_timeout,
    )
    .await;
    read.map_err(|failed| body_not_read(parts, failed))
}

/// The answer to a request whose body could not be read (413, 408 or 400, with its reason), with
/// `Connection: close` on HTTP/1.1.
pub(crate) fn body_not_read(
    parts: &http::request::Parts,
    failed: early::ReadError,
) -> Response<Full<Bytes>> {
    let reason = match failed {
        early::ReadError::TooLarge => RejectionReason::BodyTooLarge,
        early::ReadError::TimedOut => RejectionReason::BodyTimeout,
        early::ReadError::Unreadable => RejectionReason::BodyUnreadable,
    };
    let mut answer = plain(reason, None);
    early::close(parts.version, &mut answer);
    answer
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::envelope;
    fn classify(body: &[u8]) -> envelope::Classified<'_> {
        envelope::classify(body, 64)
    }
    use http_body::Body;
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
        let (status, value) =
            body_json(mismatch(&body, RejectionReason::IdentityMismatch, 65536)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            value,
            json!({"jsonrpc":"2.0","id":"x-1","result":{"content":[{"type":"text","text":MISMATCH_MESSAGE}],"isError":true}})
        );
    }

    #[tokio::test]
    async fn other_requests_get_a_json_rpc_error_with_the_id() {
        let body = classify(br#"{"jsonrpc":"2.0","id":3,"method":"prompts/get"}"#);
        let (status, value) =
            body_json(mismatch(&body, RejectionReason::IdentityMismatch, 65536)).await;
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
            let (status, value) = body_json(mismatch(
                &classify(body),
                RejectionReason::IdentityMismatch,
                65536,
            ))
            .await;
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
        let (status, value) =
            body_json(mismatch(&body, RejectionReason::IdentityMismatch, 65536)).await;
        assert_eq!(status, StatusCode::OK);
        let answers = value.as_array().unwrap();
        assert_eq!(answers.len(), 2);
        assert_eq!(answers[0]["id"], json!(1));
        assert_eq!(answers[0]["result"]["isError"], json!(true));
        assert_eq!(answers[1]["id"], json!(2));
        assert!(answers[1]["error"].is_object());
        let only_notes = classify(br#"[{"jsonrpc":"2.0","method":"notifications/progress"}]"#);
        assert_eq!(
            mismatch(&only_notes, RejectionReason::IdentityMismatch, 65536).status(),
            StatusCode::FORBIDDEN
        );
    }

    #[tokio::test]
    async fn answers_over_the_size_bound_lose_their_ids() {
        let id = "x".repeat(1000);
        let single = format!(r#"{{"jsonrpc":"2.0","id":"{id}","method":"tools/call"}}"#);
        let within = mismatch(
            &classify(single.as_bytes()),
            RejectionReason::IdentityMismatch,
            2000,
        );
        assert_eq!(within.status(), StatusCode::OK);
        let (status, value) = body_json(mismatch(
            &classify(single.as_bytes()),
            RejectionReason::IdentityMismatch,
            1000,
        ))
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(value.get("id").is_none());

        let request = r#"{"jsonrpc":"2.0","id":12345,"method":"tools/call"}"#;
        let batch = format!("[{}]", vec![request; 64].join(","));
        let response = mismatch(
            &classify(batch.as_bytes()),
            RejectionReason::IdentityMismatch,
            65536,
        );
        let size = response.body().size_hint().exact().unwrap();
        assert!(size <= 65536 && size > 64 * 100, "{size}");
        let (status, value) = body_json(mismatch(
            &classify(batch.as_bytes()),
            RejectionReason::IdentityMismatch,
            4096,
        ))
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(value.get("id").is_none());
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
