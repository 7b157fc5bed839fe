//! The answers the MCP-level layers make instead of forwarding: [`RejectionReason`], what each
//! reason answers ([`plain`]), and the answer to a body that could not be read.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, Version, header};
use http_body_util::Full;

use super::{
    early::{self, ReadError},
    jsonrpc::{Refusal, code},
};

/// The text of every mismatch answer.
pub(crate) const MISMATCH_MESSAGE: &str =
    "Unauthorized: caller identity does not match session owner";

/// Why [`SessionBindingLayer`](crate::SessionBindingLayer),
/// [`TaskParamsLayer`](crate::task_params::TaskParamsLayer) or `RequestStateLayer` (feature
/// `request-state`) answered a request itself. Put in the response extensions of every answer
/// they make, so outer layers (metrics, logging) can see it.
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
    /// `RequestStateLayer` (feature `request-state`): a `requestState` that does not open for
    /// this caller and request (tampered, expired, another caller, method, target or
    /// arguments), or a body that names one but cannot be checked (a batch, not JSON-RPC):
    /// JSON-RPC `-32602` `Invalid or expired requestState` with the request's `id`; not
    /// forwarded.
    InvalidRequestState,
    /// With [`max_session_age`](crate::SessionBindingLayer::max_session_age): the session
    /// reached its maximum age. It is ended (tombstone, inner session deleted) and answered 404
    /// as an ended session is, whoever asks.
    SessionMaxAge,
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
            Self::InvalidRequestState => "invalid_request_state",
            Self::SessionMaxAge => "session_max_age",
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

impl RejectionReason {
    /// What an answer for this reason says: its HTTP status, JSON-RPC error code and message.
    fn wire(self) -> (StatusCode, i32, &'static str) {
        use RejectionReason as R;
        match self {
            R::IdentityMismatch | R::CorruptBinding => (
                StatusCode::FORBIDDEN,
                code::INVALID_REQUEST,
                MISMATCH_MESSAGE,
            ),
            R::UnknownSession | R::EndedSession | R::SessionMaxAge => (
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
            R::InvalidRequestState => (
                StatusCode::OK,
                code::INVALID_PARAMS,
                "Invalid or expired requestState",
            ),
            R::CredentialsWithoutIdentity => (
                StatusCode::INTERNAL_SERVER_ERROR,
                code::INTERNAL_ERROR,
                "Internal error: the request carries credentials but no caller identity reached \
                 SessionBindingLayer; the authentication layer must run before it",
            ),
        }
    }

    /// The refusal for this reason, answering no request: its status, code and message (see
    /// [`plain`]), before an `id` or `data` is added.
    pub(crate) fn refusal(self) -> Refusal<'static> {
        let (status, code, message) = self.wire();
        Refusal::new(status, code, message)
    }
}

/// The answer for `reason` when no request `id` is involved: its message, then `detail` when
/// given; `Retry-After` on a 503 of the store, `Allow: POST` on a 405.
pub(crate) fn plain(reason: RejectionReason, detail: Option<&str>) -> Response<Full<Bytes>> {
    let mut response = match detail {
        Some(detail) => {
            let (status, code, message) = reason.wire();
            let message = format!("{message}: {detail}");
            Refusal::new(status, code, &message).response(reason)
        }
        None => reason.refusal().response(reason),
    };
    match reason {
        RejectionReason::StoreUnavailable => {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        RejectionReason::SessionlessMethod => {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
        }
        _ => {}
    }
    response
}

/// The answer to a request whose body could not be read: 413, 408 or 400 with its reason, and
/// `Connection: close` on HTTP/1.1 (the rest of the body is still on the connection).
pub(crate) fn body_not_read(version: Version, failed: ReadError) -> Response<Full<Bytes>> {
    let reason = match failed {
        ReadError::TooLarge => RejectionReason::BodyTooLarge,
        ReadError::TimedOut => RejectionReason::BodyTimeout,
        ReadError::Unreadable => RejectionReason::BodyUnreadable,
    };
    let mut answer = plain(reason, None);
    early::close(version, &mut answer);
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn unread_bodies_get_their_reason_and_close_http1() {
        for (failed, status, reason) in [
            (
                ReadError::TooLarge,
                StatusCode::PAYLOAD_TOO_LARGE,
                RejectionReason::BodyTooLarge,
            ),
            (
                ReadError::TimedOut,
                StatusCode::REQUEST_TIMEOUT,
                RejectionReason::BodyTimeout,
            ),
            (
                ReadError::Unreadable,
                StatusCode::BAD_REQUEST,
                RejectionReason::BodyUnreadable,
            ),
        ] {
            let response = body_not_read(Version::HTTP_11, failed);
            assert_eq!(response.status(), status);
            assert_eq!(response.extensions().get(), Some(&reason));
            assert_eq!(response.headers()[header::CONNECTION], "close");
        }
        let response = body_not_read(Version::HTTP_2, ReadError::TooLarge);
        assert!(response.headers().get(header::CONNECTION).is_none());
    }
}
