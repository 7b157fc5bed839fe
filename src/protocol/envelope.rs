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
    /// A batch whose every element is a JSON-RPC message, with at most the configured number of
    /// requests: the requests in it, in order (notifications and responses get no answer).
    Batch(Vec<Message<'a>>),
    /// Not JSON-RPC, or a batch that cannot be answered entry by entry (empty, an element that is
    /// not a JSON-RPC message, more requests than the cap): one error without `id`.
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

/// Reads a batch element by element, keeping only its requests, and stops at the first element
/// that is not a JSON-RPC message or at request `max + 1`: a refused 4 MiB batch of tiny elements
/// never becomes millions of entries in memory.
struct Batch<'a> {
    requests: Vec<Message<'a>>,
}

struct BatchSeed {
    max: usize,
}

impl<'de> serde::de::DeserializeSeed<'de> for BatchSeed {
    type Value = Batch<'de>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for BatchSeed {
    type Value = Batch<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON-RPC batch")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        use serde::de::Error;
        let mut requests = Vec::new();
        let mut elements = 0usize;
        while let Some(raw) = seq.next_element::<&'de RawValue>()? {
            elements += 1;
            match message(raw.get()) {
                Message::Invalid => return Err(A::Error::custom("not a JSON-RPC message")),
                Message::NoAnswer => {}
                request @ Message::Request { .. } => {
                    if requests.len() == self.max {
                        return Err(A::Error::custom("too many requests"));
                    }
                    requests.push(request);
                }
            }
        }
        if elements == 0 {
            return Err(A::Error::custom("empty batch"));
        }
        Ok(Batch { requests })
    }
}

/// Classifies a POST body; a batch may hold at most `max_batch` requests.
pub(crate) fn classify(body: &[u8], max_batch: usize) -> Classified<'_> {
    let Ok(text) = std::str::from_utf8(body) else {
        return Classified::Invalid;
    };
    let first = text.trim_start().as_bytes().first().copied();
    match first {
        Some(b'[') => {
            use serde::de::DeserializeSeed;
            let mut de = serde_json::Deserializer::from_str(text);
            let seed = BatchSeed { max: max_batch };
            match seed
                .deserialize(&mut de)
                .and_then(|batch| de.end().map(|()| batch))
            {
                Ok(batch) => Classified::Batch(batch.requests),
                Err(_) => Classified::Invalid,
            }
        }
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

/// How many requests `classify` finds in `body` (a single message counts 1; 0 when the body is
/// invalid). Not API: exported through `__private` for the crate's benchmarks only.
pub fn classify_len(body: &[u8]) -> usize {
    match classify(body, usize::MAX) {
        Classified::Single(_) => 1,
        Classified::Batch(messages) => messages.len(),
        Classified::Invalid => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single(body: &str) -> Message<'_> {
        match classify(body.as_bytes(), 64) {
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
            assert_eq!(
                classify(body.as_bytes(), 64),
                Classified::Invalid,
                "{body:?}"
            );
        }
        assert_eq!(classify(b"{\"a\":\"\xff\"}", 64), Classified::Invalid);
    }

    #[test]
    fn batches_keep_their_requests() {
        let body = r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call"},
                       {"jsonrpc":"2.0","method":"notifications/progress"},
                       {"jsonrpc":"2.0","id":"b","method":"tools/list"}]"#;
        assert_eq!(
            classify(body.as_bytes(), 64),
            Classified::Batch(vec![
                Message::Request {
                    id: "1",
                    tool_call: true
                },
                Message::Request {
                    id: "\"b\"",
                    tool_call: false
                },
            ])
        );
        let notes = r#"[{"jsonrpc":"2.0","method":"notifications/progress"}]"#;
        assert_eq!(classify(notes.as_bytes(), 64), Classified::Batch(vec![]));
    }

    #[test]
    fn batches_with_an_invalid_element_or_too_many_requests_are_invalid() {
        let with_junk = r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call"},7]"#;
        assert_eq!(classify(with_junk.as_bytes(), 64), Classified::Invalid);
        assert_eq!(classify(b"[1,1,1,1]", 64), Classified::Invalid);
        let request = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
        let batch = |n: usize| format!("[{}]", vec![request; n].join(","));
        assert!(matches!(classify(batch(3).as_bytes(), 3), Classified::Batch(r) if r.len() == 3));
        assert_eq!(classify(batch(4).as_bytes(), 3), Classified::Invalid);
        // Trailing text after the array is not JSON.
        assert_eq!(
            classify(format!("{} x", batch(1)).as_bytes(), 3),
            Classified::Invalid
        );
    }
}
