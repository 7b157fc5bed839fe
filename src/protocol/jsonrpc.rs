//! The JSON-RPC 2.0 answers both middlewares make, built with serde in one place.
//!
//! An error that answers no particular request (a refused GET, an unparseable body, a failed
//! authentication) has no `id` member at all: MCP's transport calls it "an error response that
//! has no id", and it cannot be mistaken for an answer to a request whose id is `null`.
//!
//! Codes mean one thing each, across both layers:
//!
//! | code | meaning |
//! | --- | --- |
//! | `-32600` | invalid request: a refused caller (identity mismatch), a malformed or too-large request, a body not received in time, a method the revision does not have |
//! | `-32602` | invalid params: a task the caller did not create, or an unusable task request (rmcp's answer for an unknown task) |
//! | `-32603` | internal error: the layer cannot bind a new session, or is misconfigured |
//! | `-32000` | not authorized, or a dependency is unavailable (store, revocation check, keys): retry or re-authorize |
//! | `-32001` | session not found (the TypeScript SDK's convention): re-initialize |
//!
//! None of them is in `-32020..-32099`, which revision 2026-07-28 reserves for the specification.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use serde::Serialize;
use serde_json::value::RawValue;

/// The JSON-RPC error codes the layers use.
pub(crate) mod code {
    /// A refused or malformed request.
    pub(crate) const INVALID_REQUEST: i32 = -32600;
    /// Invalid params: a task the caller may not use (the same answer as an unknown task).
    pub(crate) const INVALID_PARAMS: i32 = -32602;
    /// The layer failed (binding a new session) or is misconfigured.
    pub(crate) const INTERNAL_ERROR: i32 = -32603;
    /// Not authorized, or a dependency unavailable.
    pub(crate) const SERVER_ERROR: i32 = -32000;
    /// The session is unknown, expired or ended.
    pub(crate) const SESSION_NOT_FOUND: i32 = -32001;
}

#[derive(Serialize)]
struct ErrorObject<'a> {
    code: i32,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<ErrorData<'a>>,
}

/// An error's `data`: the reason code of the layer's refusal.
#[derive(Serialize)]
struct ErrorData<'a> {
    reason: &'a str,
}

#[derive(Serialize)]
struct ErrorResponse<'a> {
    jsonrpc: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a RawValue>,
    error: ErrorObject<'a>,
}

#[derive(Serialize)]
struct TextContent<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
}

#[derive(Serialize)]
struct ToolResult<'a> {
    content: [TextContent<'a>; 1],
    #[serde(rename = "isError")]
    is_error: bool,
}

#[derive(Serialize)]
struct ResultResponse<'a> {
    jsonrpc: &'static str,
    id: &'a RawValue,
    result: ToolResult<'a>,
}

fn to_vec(value: &impl Serialize) -> Vec<u8> {
    // These types hold only strings, numbers and already-valid raw JSON: serializing them cannot
    // fail.
    serde_json::to_vec(value).unwrap_or_default()
}

/// An error answering the request with `id`.
pub(crate) fn error_for(id: &RawValue, code: i32, message: &str) -> Vec<u8> {
    to_vec(&ErrorResponse {
        jsonrpc: "2.0",
        id: Some(id),
        error: ErrorObject {
            code,
            message,
            data: None,
        },
    })
}

/// A `tools/call` result with `isError: true` and one text item, answering the request with `id`.
pub(crate) fn tool_error_for(id: &RawValue, text: &str) -> Vec<u8> {
    to_vec(&ResultResponse {
        jsonrpc: "2.0",
        id,
        result: ToolResult {
            content: [TextContent { kind: "text", text }],
            is_error: true,
        },
    })
}

/// A JSON-RPC refusal: the answer a layer gives instead of forwarding. An error (`code`,
/// `message`), or for a refused `tools/call` an `isError` result; it answers the request with
/// [`id`](Self::id), or none (no `id` member). The response carries the layer's typed reason in
/// its extensions, where outer layers (metrics, logging) read it.
#[must_use]
pub(crate) struct Refusal<'a> {
    status: StatusCode,
    code: i32,
    message: &'a str,
    id: Option<&'a RawValue>,
    reason: Option<&'a str>,
    tool_call: bool,
}

impl<'a> Refusal<'a> {
    /// An error (`code`, `message`) answered with `status`, answering no request.
    pub(crate) fn new(status: StatusCode, code: i32, message: &'a str) -> Self {
        Self {
            status,
            code,
            message,
            id: None,
            reason: None,
            tool_call: false,
        }
    }

    /// Answers the request with `id` (`None`: no `id` member).
    pub(crate) fn id(mut self, id: Option<&'a RawValue>) -> Self {
        self.id = id;
        self
    }

    /// Says the refusal's reason code in the error's `data` member, as `{"reason": code}`.
    #[cfg(any(test, feature = "request-state"))]
    pub(crate) fn data_reason(mut self, code: &'a str) -> Self {
        self.reason = Some(code);
        self
    }

    /// Answers a `tools/call` (when `tool_call`): with an `id`, the answer is a result with
    /// `isError: true` and the message as its one text item, rather than an error.
    pub(crate) fn tool_call(mut self, tool_call: bool) -> Self {
        self.tool_call = tool_call;
        self
    }

    /// The JSON-RPC message alone (one entry of a batch answer).
    pub(crate) fn body(&self) -> Vec<u8> {
        match self.id {
            Some(id) if self.tool_call => tool_error_for(id, self.message),
            id => to_vec(&ErrorResponse {
                jsonrpc: "2.0",
                id,
                error: ErrorObject {
                    code: self.code,
                    message: self.message,
                    data: self.reason.map(|reason| ErrorData { reason }),
                },
            }),
        }
    }

    /// The response, with `reason` in its extensions.
    pub(crate) fn response<R>(self, reason: R) -> Response<Full<Bytes>>
    where
        R: Clone + Send + Sync + 'static,
    {
        answer(self.status, self.body(), reason)
    }
}

/// A JSON answer a layer made: `body` with `status`, `reason` in the response extensions.
pub(crate) fn answer<R>(status: StatusCode, body: Vec<u8>, reason: R) -> Response<Full<Bytes>>
where
    R: Clone + Send + Sync + 'static,
{
    crate::metrics::answered(&reason);
    let mut response = response(status, body);
    response.extensions_mut().insert(reason);
    response
}

/// A JSON answer with `status`.
pub(crate) fn response(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn parse(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn errors_without_id_have_no_id_member() {
        assert_eq!(
            parse(
                &Refusal::new(
                    StatusCode::NOT_FOUND,
                    code::SESSION_NOT_FOUND,
                    "Session \"x\" not found"
                )
                .body()
            ),
            json!({"jsonrpc": "2.0", "error": {"code": -32001, "message": "Session \"x\" not found"}})
        );
    }

    #[test]
    fn answers_carry_the_request_id_as_it_was_written() {
        let id: &RawValue = serde_json::from_str(r#""a\"b""#).unwrap();
        assert_eq!(
            parse(&error_for(id, code::INVALID_REQUEST, "no")),
            json!({"jsonrpc": "2.0", "id": "a\"b", "error": {"code": -32600, "message": "no"}})
        );
        let id: &RawValue = serde_json::from_str("7").unwrap();
        assert_eq!(
            parse(&tool_error_for(id, "no")),
            json!({"jsonrpc": "2.0", "id": 7, "result": {"content": [{"type": "text", "text": "no"}], "isError": true}})
        );
    }

    #[test]
    fn refusals_carry_their_reason_and_the_shape_asked_for() {
        #[derive(Clone, Debug, PartialEq)]
        struct Reason(u8);
        let id: &RawValue = serde_json::from_str("7").unwrap();
        let refusal = || Refusal::new(StatusCode::CONFLICT, code::INVALID_PARAMS, "no");
        let cases = [
            (
                refusal(),
                json!({"jsonrpc": "2.0", "error": {"code": -32602, "message": "no"}}),
            ),
            (
                refusal().id(Some(id)).data_reason("r"),
                json!({"jsonrpc": "2.0", "id": 7, "error": {"code": -32602, "message": "no", "data": {"reason": "r"}}}),
            ),
            (
                refusal().id(Some(id)).tool_call(true),
                json!({"jsonrpc": "2.0", "id": 7, "result": {"content": [{"type": "text", "text": "no"}], "isError": true}}),
            ),
            // Without an id, a refused `tools/call` gets the error: there is no result to answer.
            (
                refusal().tool_call(true),
                json!({"jsonrpc": "2.0", "error": {"code": -32602, "message": "no"}}),
            ),
        ];
        for (refusal, expected) in cases {
            assert_eq!(parse(&refusal.body()), expected);
            let response = refusal.response(Reason(3));
            assert_eq!(response.status(), StatusCode::CONFLICT);
            assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
            assert_eq!(response.extensions().get(), Some(&Reason(3)));
        }
    }
}
