//! Reading the JSON-RPC envelope of a POST body, on the mismatch path only.
//!
//! The matching path never parses a body. When a caller is refused, the layer reads the body (up
//! to the cap) to answer in kind: an `isError` result for `tools/call`, a JSON-RPC error with the
//! request's `id` for other requests, one answer per request for a batch.
//!
//! Parsing is strict: a body that is not JSON, a message with a repeated envelope key (two
//! `method`s, two `id`s), an `id` that is not a string or number, or a missing `"jsonrpc": "2.0"`
//! makes the whole message invalid. An invalid message gets the generic 403 answer, so no key
//! trick can steer which answer a refused caller receives. `params` and `result` are skipped, not
//! built.

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

/// One JSON-RPC message, as far as the mismatch answer cares.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Message<'a> {
    /// A request: answered with its `id`. `tool_call` is `method == "tools/call"`.
    Request { id: &'a str, tool_call: bool },
    /// A notification or a response: no answer of its own.
    NoAnswer,
    /// Not a JSON-RPC message.
    Invalid,
}

/// A POST body.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Classified<'a> {
    Single(Message<'a>),
    Batch(Vec<Message<'a>>),
    Invalid,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    jsonrpc: Option<&'a str>,
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    method: Option<std::borrow::Cow<'a, str>>,
    // Never read: declared so that a repeated `params` key is an error too, like the others.
    #[allow(dead_code)]
    params: Option<IgnoredAny>,
    result: Option<IgnoredAny>,
    error: Option<IgnoredAny>,
}

impl<'a> Envelope<'a> {
    fn message(self) -> Message<'a> {
        if self.jsonrpc != Some("2.0") {
            return Message::Invalid;
        }
        let id = self.id.map(RawValue::get);
        let id_ok = id.is_none_or(|id| {
            let first = id.as_bytes().first().copied().unwrap_or_default();
            first == b'"' || first == b'-' || first.is_ascii_digit()
        });
        if !id_ok {
            return Message::Invalid;
        }
        match (
            self.method,
            id,
            self.result.is_some() || self.error.is_some(),
        ) {
            (Some(method), Some(id), false) => Message::Request {
                id,
                tool_call: method == "tools/call",
            },
            (Some(_), None, false) => Message::NoAnswer,
            (None, Some(_), true) => Message::NoAnswer,
            _ => Message::Invalid,
        }
    }
}

fn message(raw: &str) -> Message<'_> {
    match serde_json::from_str::<Envelope<'_>>(raw) {
        Ok(envelope) => envelope.message(),
        Err(_) => Message::Invalid,
    }
}

/// Classifies a POST body.
pub(crate) fn classify(body: &[u8]) -> Classified<'_> {
    let Ok(text) = std::str::from_utf8(body) else {
        return Classified::Invalid;
    };
    let first = text.trim_start().as_bytes().first().copied();
    match first {
        Some(b'[') => match serde_json::from_str::<Vec<&RawValue>>(text) {
            Ok(items) if !items.is_empty() => {
                Classified::Batch(items.into_iter().map(|raw| message(raw.get())).collect())
            }
            _ => Classified::Invalid,
        },
        // One pass: the envelope parse validates the whole text (values it skips included, and
        // nothing but whitespace after the object), so when it succeeds the text is one JSON
        // object and its message is this envelope's. Only a failed parse needs the second look,
        // to tell an invalid message (`Single(Invalid)`) from text that is not JSON (`Invalid`).
        Some(b'{') => match serde_json::from_str::<Envelope<'_>>(text) {
            Ok(envelope) => Classified::Single(envelope.message()),
            Err(_) => match serde_json::from_str::<&RawValue>(text) {
                Ok(raw) => Classified::Single(message(raw.get())),
                Err(_) => Classified::Invalid,
            },
        },
        _ => Classified::Invalid,
    }
}

/// How many messages [`classify`] finds in `body` (0 when the body is invalid). Not API: exported
/// through `__private` for the crate's benchmarks only.
pub fn classify_len(body: &[u8]) -> usize {
    match classify(body) {
        Classified::Single(_) => 1,
        Classified::Batch(messages) => messages.len(),
        Classified::Invalid => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single(body: &str) -> Message<'_> {
        match classify(body.as_bytes()) {
            Classified::Single(m) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn requests_keep_their_id_text() {
        assert_eq!(
            single(r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"x"}}"#),
            Message::Request {
                id: "7",
                tool_call: true
            }
        );
        assert_eq!(
            single(r#"{"jsonrpc":"2.0","id":"a\"b","method":"resources/read"}"#),
            Message::Request {
                id: r#""a\"b""#,
                tool_call: false
            }
        );
        assert_eq!(
            single(r#" {"method":"tools\/call","id":-1,"jsonrpc":"2.0"}"#),
            Message::Request {
                id: "-1",
                tool_call: true
            }
        );
    }

    #[test]
    fn notifications_and_responses_get_no_answer() {
        assert_eq!(
            single(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
            Message::NoAnswer
        );
        assert_eq!(
            single(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#),
            Message::NoAnswer
        );
        assert_eq!(
            single(r#"{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"x"}}"#),
            Message::NoAnswer
        );
    }

    #[test]
    fn malformed_and_ambiguous_messages_are_invalid() {
        for body in [
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","method":"tools/call"}"#,
            r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"tools/call"}"#,
            r#"{"jsonrpc":"2.0","jsonrpc":"2.0","id":1,"method":"tools/call"}"#,
            r#"{"id":1,"method":"tools/call"}"#,
            r#"{"jsonrpc":"1.0","id":1,"method":"tools/call"}"#,
            r#"{"jsonrpc":"2.0","id":{"a":1},"method":"tools/call"}"#,
            r#"{"jsonrpc":"2.0","id":true,"method":"tools/call"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":5}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"x","result":{}}"#,
            r#"{"jsonrpc":"2.0"}"#,
        ] {
            assert_eq!(single(body), Message::Invalid, "{body}");
        }
        // A null id is no request id: nothing to answer with.
        assert_eq!(
            single(r#"{"jsonrpc":"2.0","id":null,"method":"tools/call"}"#),
            Message::NoAnswer
        );
        for body in [
            "",
            "null",
            "{",
            "[]",
            "[",
            "\"x\"",
            "{} {}",
            "\u{feff}{}",
            "{\"jsonrpc\":\"2.0\"} x",
        ] {
            assert_eq!(classify(body.as_bytes()), Classified::Invalid, "{body:?}");
        }
        assert_eq!(classify(b"{\"a\":\"\xff\"}"), Classified::Invalid);
    }

    #[test]
    fn batches_classify_each_element() {
        let body = r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call"},
                       {"jsonrpc":"2.0","method":"notifications/progress"},
                       {"jsonrpc":"2.0","id":"b","method":"tools/list"},
                       7]"#;
        assert_eq!(
            classify(body.as_bytes()),
            Classified::Batch(vec![
                Message::Request {
                    id: "1",
                    tool_call: true
                },
                Message::NoAnswer,
                Message::Request {
                    id: "\"b\"",
                    tool_call: false
                },
                Message::Invalid,
            ])
        );
    }
}
