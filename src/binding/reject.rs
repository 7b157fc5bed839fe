//! The answers the binding layer gives instead of forwarding: the mismatch answer in kind, the
//! 204 to a repeated `DELETE`, the 429 at the session limit. The reasons and the answer for each
//! are the protocol's ([`crate::protocol::answer`]), shared with the other layers.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

use serde_json::value::RawValue;

pub use crate::protocol::answer::RejectionReason;
pub(crate) use crate::protocol::answer::{MISMATCH_MESSAGE, plain};

use crate::binding::config::Config;
use crate::protocol::{
    answer, early,
    envelope::{Classified, Message},
    jsonrpc::{self, Refusal, code},
};

/// The answer to a `DELETE` of a session that was already ended: 204, no body; the reason
/// ([`RejectionReason::EndedSession`]) in the extensions, like every answer the layer makes.
pub(crate) fn already_ended() -> Response<Full<Bytes>> {
    crate::metrics::refused(RejectionReason::EndedSession);
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
fn entry(id: &str, tool_call: bool) -> Vec<u8> {
    // The classifier only hands out ids that parsed as a JSON string or number.
    let id = serde_json::from_str::<&RawValue>(id).ok();
    Refusal::new(StatusCode::OK, code::INVALID_REQUEST, MISMATCH_MESSAGE)
        .id(id)
        .tool_call(tool_call)
        .body()
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
        Message::Request { id, tool_call } => Some(entry(id, *tool_call)),
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
    jsonrpc::answer(StatusCode::OK, body, reason)
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
    let (cap, timeout) = (config.max_body_bytes, config.refused_body_timeout);
    let read = early::read_bounded(body, &parts.headers, cap, timeout).await;
    read.map_err(|failed| body_not_read(parts, failed))
}

/// The answer to a request whose body could not be read (see [`answer::body_not_read`]).
pub(crate) fn body_not_read(
    parts: &http::request::Parts,
    failed: early::ReadError,
) -> Response<Full<Bytes>> {
    answer::body_not_read(parts.version, failed)
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
}
