//! The checks behind the fuzz targets. Each function takes the raw fuzzer input, feeds it to one
//! parser that sees untrusted input, and panics when an invariant does not hold.
//!
//! `tests/fuzz_corpus.rs` in the main crate includes this file with `#[path]` and replays the
//! committed corpus (`fuzz/corpus/<target>/`) through the same functions on stable, so the file
//! uses only crates the main crate's tests can reach too.
#![allow(dead_code)]

use http::{HeaderMap, HeaderValue};
use mcp_session_binding::{
    __private::{self, Message, codec},
    Identity,
    store::Owner,
};
use serde_json::{Value, value::RawValue};

/// The binding layer's default `max_batch_answers`. (not exported)
const DEFAULT_MAX_BATCH_ANSWERS: usize = 64;
/// The binding layer's default `max_session_id_len`. (not exported)
const DEFAULT_MAX_SESSION_ID_LEN: usize = 1024;
/// The MCP protocol version header. (not exported)
const MCP_PROTOCOL_VERSION: http::HeaderName =
    http::HeaderName::from_static("mcp-protocol-version");
/// The MCP session header. (not exported)
const MCP_SESSION_ID: http::HeaderName = http::HeaderName::from_static("mcp-session-id");

/// The names of the targets, as in `fuzz/Cargo.toml` and `fuzz/corpus/`.
pub const TARGETS: &[&str] = &[
    "session_header",
    "classify",
    "codec",
    "jwt",
    "jwks",
    "discovery",
    "scan",
    "introspection",
    "dpop",
];

/// Runs the check of `target` on `data` (for the corpus replay).
pub fn run(target: &str, data: &[u8]) {
    match target {
        "session_header" => session_header(data),
        "classify" => classify(data),
        "codec" => codec(data),
        "jwt" => jwt(data),
        "jwks" => jwks(data),
        "discovery" => discovery(data),
        "scan" => scan(data),
        "introspection" => introspection(data),
        "dpop" => dpop(data),
        other => panic!("unknown fuzz target {other}"),
    }
}

/// Header values from `bytes`: none when `bytes` is empty, else the values of `bytes[1..]` split
/// at `\n` (so `[x]` is one empty value). Values `HeaderValue` refuses (CR, NUL, other controls,
/// DEL) are skipped: an HTTP server never hands them on.
fn header_values(bytes: &[u8]) -> Vec<HeaderValue> {
    match bytes.split_first() {
        None => Vec::new(),
        Some((_, rest)) => rest
            .split(|&b| b == b'\n')
            .filter_map(|v| HeaderValue::from_bytes(v).ok())
            .collect(),
    }
}

fn is_visible_ascii(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| (0x21..=0x7e).contains(b))
}

/// `Mcp-Session-Id` and `MCP-Protocol-Version` reading.
///
/// Input: one byte for the length cap (`0xFF`: the default cap, 1024), then the session header
/// values, then `0x00`, then the protocol version values (see [`header_values`]).
///
/// Invariants: an accepted id is the single value, byte for byte, 1 to cap bytes, each in
/// 0x21-0x7E; every such single value is accepted; no header is absent, several are refused.
/// A request is sessionless exactly when it has one version header of the form
/// `DDDD-DD-DD` that is at least `2026-07-28` (compared as numbers here, as bytes in the crate).
pub fn session_header(data: &[u8]) {
    let Some((&cap, rest)) = data.split_first() else {
        return;
    };
    let max_len = if cap == u8::MAX {
        DEFAULT_MAX_SESSION_ID_LEN
    } else {
        usize::from(cap)
    };
    let (ids, versions) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let (ids, versions) = (header_values(ids), header_values(versions));
    let mut headers = HeaderMap::new();
    for value in &ids {
        headers.append(MCP_SESSION_ID, value.clone());
    }
    for value in &versions {
        headers.append(MCP_PROTOCOL_VERSION, value.clone());
    }

    let read = __private::session_header(&headers, max_len);
    match (ids.as_slice(), read) {
        ([], Ok(None)) | ([_, _, ..], Err(_)) => {}
        ([only], Ok(Some(id))) => {
            let bytes = only.as_bytes();
            assert_eq!(id.as_bytes(), bytes, "the id is the header value");
            assert!(!bytes.is_empty() && bytes.len() <= max_len, "{bytes:?}");
            assert!(is_visible_ascii(bytes), "{bytes:?}");
        }
        ([only], Err(_)) => {
            let bytes = only.as_bytes();
            assert!(
                bytes.is_empty() || bytes.len() > max_len || !is_visible_ascii(bytes),
                "a valid id was refused: {bytes:?} (cap {max_len})"
            );
        }
        (ids, read) => panic!("{ids:?} read as {read:?}"),
    }

    let expected = match versions.as_slice() {
        [only] => is_sessionless_date(only.as_bytes()),
        _ => false,
    };
    assert_eq!(
        __private::is_sessionless(&headers),
        expected,
        "sessionless? {versions:?}"
    );
}

/// `YYYY-MM-DD` (digits only, no range check) on or after 2026-07-28, compared as numbers.
fn is_sessionless_date(value: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(value) else {
        return false;
    };
    let parts: Vec<&str> = text.split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        return false;
    };
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    if !(digits(y, 4) && digits(m, 2) && digits(d, 2)) {
        return false;
    }
    let num = |s: &str| s.parse::<u32>().unwrap_or_default();
    (num(y), num(m), num(d)) >= (2026, 7, 28)
}

/// The POST body classifier (the JSON-RPC envelope read on the mismatch path).
///
/// Input: the body. It is classified with the default batch cap (64), with a cap of 1 and with
/// no cap.
///
/// Invariants: never panics. A JSON object (by serde_json's syntax check) is one message; a
/// JSON array is a batch exactly when it is not empty and every element alone is a valid
/// JSON-RPC message, and then the batch holds the requests among its elements, in order, as each
/// element alone is classified (the batch path and the one-pass single path agree); a batch with
/// more requests than the cap is refused whole; anything else is refused whole. A request's `id`
/// is one JSON string or number, and an answer that embeds it is valid JSON. What a message is
/// agrees with an independent reading of the object (`jsonrpc` is `"2.0"`, `tool_call` exactly
/// when `method` is `tools/call`, a request has no `result`/`error`, a no-answer message is a
/// notification or a response).
pub fn classify(data: &[u8]) {
    let unlimited = __private::classify(data, usize::MAX);
    for cap in [DEFAULT_MAX_BATCH_ANSWERS, 1] {
        let capped = __private::classify(data, cap);
        match &unlimited {
            Some((true, requests)) if requests.len() > cap => {
                assert_eq!(capped, None, "{} requests, cap {cap}", requests.len());
            }
            _ => assert_eq!(capped, unlimited, "cap {cap}"),
        }
    }

    let doc: Option<&RawValue> = serde_json::from_slice(data).ok();
    match (doc.and_then(|raw| raw.get().bytes().next()), &unlimited) {
        (Some(b'{'), Some((false, messages))) => {
            assert_eq!(messages.len(), 1);
            check_message(doc.unwrap().get(), &messages[0]);
        }
        (Some(b'{'), None) => panic!("a JSON object was not classified"),
        (Some(b'['), classified) => {
            let elements: Vec<&RawValue> = serde_json::from_slice(data).expect("an array");
            let mut expected = Some(Vec::new());
            for element in &elements {
                let text = element.get();
                let alone = if text.starts_with('{') {
                    // The element alone passes every check of a single message.
                    classify(text.as_bytes());
                    match __private::classify(text.as_bytes(), usize::MAX) {
                        Some((false, mut alone)) => alone.pop().expect("one message"),
                        other => panic!("element {text} alone: {other:?}"),
                    }
                } else {
                    Message::Invalid
                };
                match alone {
                    Message::Invalid => expected = None,
                    Message::NoAnswer => {}
                    request @ Message::Request { .. } => {
                        if let Some(requests) = &mut expected {
                            requests.push(request);
                        }
                    }
                }
            }
            if elements.is_empty() {
                expected = None;
            }
            let expected = expected.map(|requests| (true, requests));
            assert_eq!(
                classified,
                &expected,
                "batch of {} elements",
                elements.len()
            );
            for message in expected.iter().flat_map(|(_, requests)| requests) {
                check_request_id(message);
            }
        }
        (_, None) => {}
        (first, classified) => panic!("{first:?} classified as {classified:?}"),
    }
}

fn check_request_id(message: &Message<'_>) {
    let Message::Request { id, .. } = message else {
        panic!("{message:?} in a batch is not a request");
    };
    let first = id.bytes().next().unwrap_or_default();
    assert!(
        first == b'"' || first == b'-' || first.is_ascii_digit(),
        "id {id}"
    );
    let raw: &RawValue = serde_json::from_str(id).expect("the id is one JSON value");
    assert_eq!(raw.get(), *id, "the id has no surrounding space");
    let answer = format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":1}}}}"#);
    assert!(
        serde_json::from_str::<&RawValue>(&answer).is_ok(),
        "an answer with id {id} is not JSON"
    );
}

fn check_message(text: &str, message: &Message<'_>) {
    // Absent and `null` are the same to the envelope (serde's `Option`).
    let object: Option<serde_json::Map<String, Value>> = serde_json::from_str(text).ok();
    let field = |name: &str| {
        object
            .as_ref()
            .and_then(|o| o.get(name))
            .filter(|v| !v.is_null())
    };
    match message {
        Message::Request { id, tool_call } => {
            check_request_id(message);
            // Value cannot read every valid JSON text (numbers out of f64 range, deep nesting):
            // compare only when it can.
            if object.is_some() {
                assert_eq!(field("jsonrpc"), Some(&Value::from("2.0")), "{text}");
                let method = field("method").and_then(Value::as_str).expect("a method");
                assert_eq!(*tool_call, method == "tools/call", "{text}");
                assert!(
                    field("result").is_none() && field("error").is_none(),
                    "{text}"
                );
                if let Ok(id) = serde_json::from_str::<Value>(id) {
                    assert_eq!(field("id"), Some(&id), "{text}");
                }
            }
        }
        Message::NoAnswer => {
            if object.is_some() {
                assert_eq!(field("jsonrpc"), Some(&Value::from("2.0")), "{text}");
                let notification = field("method").is_some_and(Value::is_string)
                    && field("id").is_none()
                    && field("result").is_none()
                    && field("error").is_none();
                let response = field("method").is_none()
                    && field("id").is_some()
                    && (field("result").is_some() || field("error").is_some());
                assert!(notification || response, "{text}");
            }
        }
        Message::Invalid => {}
    }
}

/// The binding codec (the value a store keeps for a session).
///
/// Input: a stored value; also read as `iss`, `0xFF`, `sub` (lossy UTF-8).
///
/// Invariants: decoding accepts exactly what encoding produces (a value that decodes re-encodes
/// to the same bytes, with its bind time when it has one); `decode` and `decode_bytes` agree; `decode(encode(owner)) == owner` for
/// every identity [`Identity::new`] accepts.
pub fn codec(data: &[u8]) {
    match codec::decode_bytes_with_time(data) {
        Ok((codec::Stored::Bound(owner), at)) => {
            let encoded = match at {
                Some(ms) => codec::encode_bound_at(&owner, ms),
                None => codec::encode_owner(&owner),
            };
            assert_eq!(encoded.as_bytes(), data, "not canonical");
        }
        Ok((codec::Stored::Ended, at)) => {
            assert_eq!(at, None, "a bind time on a tombstone");
            assert_eq!(codec::encode_ended().as_bytes(), data);
        }
        Err(_) => {}
    }
    assert_eq!(
        codec::decode_bytes(data),
        codec::decode_bytes_with_time(data).map(|(stored, _)| stored)
    );
    if let Ok(text) = std::str::from_utf8(data) {
        assert_eq!(codec::decode(text), codec::decode_bytes(data));
    }

    let (iss, sub) = match data.iter().position(|&b| b == 0xff) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let (iss, sub) = (String::from_utf8_lossy(iss), String::from_utf8_lossy(sub));
    if let Ok(identity) = Identity::new(&*iss, &*sub) {
        let owner = Owner::User(identity);
        let text = codec::encode_owner(&owner);
        assert_eq!(
            codec::decode(&text),
            Ok(codec::Stored::Bound(owner)),
            "{text}"
        );
    }
    assert_eq!(
        codec::decode(&codec::encode_owner(&Owner::Anonymous)),
        Ok(codec::Stored::Bound(Owner::Anonymous))
    );
}

/// The JWT layer's reading of the `Authorization` header, the token's header and its claims.
///
/// Input: a mode byte, then
/// - even mode: `Authorization` header values (split at `\n`), sent as they are;
/// - odd mode: a token header (JSON text), `0x00`, claims (JSON text): the target signs
///   `base64url(header).base64url(claims)` with an HS256 secret and sends `Bearer <token>`, so
///   the claims checks behind the signature are reached. Bit 1 of the mode picks the secret:
///   issuer A's (`0`) or issuer B's (`1`).
///
/// The layer trusts issuer A (an HS256 secret with kid `k1`, and an RS256 key with kid `r1`) and
/// issuer B (another HS256 secret, without kid), one audience, leeway 0 s.
///
/// Invariants: never panics; the answer is ready at once (no I/O without a revocation check or
/// discovery); a refusal is 400 or 401 and never echoes a JWS-shaped token; raw header values
/// are never accepted (nobody can sign without a secret); **a token is accepted only for the
/// issuer whose key signed it** (keys belong to issuers: a token signed with A's secret that
/// claims B is refused, and the other way round); an accepted signed token has, by an
/// independent reading of its JSON, `alg` HS256, no `crit`, a string `kid` if any (`k1` for
/// issuer A), a string `sub` equal to the identity handed on, an `aud` naming the audience, a
/// numeric `exp` not in the past and no `nbf` in the future; `Identity::try_from(&Claims)` agrees with
/// the claims.
#[cfg(feature = "jwt")]
pub fn jwt(data: &[u8]) {
    jwt_impl::check(data);
}

/// Without the `jwt` feature there is nothing to check.
#[cfg(not(feature = "jwt"))]
pub fn jwt(_data: &[u8]) {}

#[cfg(feature = "jwt")]
mod jwt_impl {
    use std::{
        convert::Infallible,
        future::Future,
        pin::pin,
        sync::OnceLock,
        task::{Context, Poll, Waker},
        time::{Duration, SystemTime, UNIX_EPOCH},
    };

    use http::{HeaderValue, Request, Response, StatusCode, header::AUTHORIZATION};
    use http_body::Body;
    use mcp_session_binding::{
        Identity,
        identity::Claims,
        jwt::{Algorithm, JwtAuthLayer, JwtKey, JwtRejection},
    };
    use serde_json::{Map, Value};
    use tower::{Layer, Service, service_fn};

    pub const SECRET_A: &[u8] = b"fuzz-target-hs256-secret-32-bytes-long";
    pub const SECRET_B: &[u8] = b"another-hs256-secret-for-issuer-b-32b";
    pub const ISSUERS: [&str; 2] = ["https://issuer-a.example", "https://issuer-b.example"];
    pub const AUDIENCE: &str = "https://mcp.example/mcp";

    fn layer() -> &'static JwtAuthLayer {
        static LAYER: OnceLock<JwtAuthLayer> = OnceLock::new();
        LAYER.get_or_init(|| {
            let rsa = include_str!("../../tests/keys/rsa_a_public.pem");
            JwtAuthLayer::builder()
                .issuer_keys(
                    ISSUERS[0],
                    vec![
                        JwtKey::hmac(SECRET_A).unwrap().with_kid("k1"),
                        JwtKey::rsa_pem(rsa).unwrap().with_kid("r1"),
                    ],
                )
                .issuer_keys(ISSUERS[1], JwtKey::hmac(SECRET_B).unwrap())
                .algorithms([Algorithm::HS256, Algorithm::RS256])
                .audiences([AUDIENCE])
                .leeway(Duration::ZERO)
                .build()
                .expect("a valid layer")
        })
    }

    /// base64url without padding (RFC 7515 §2).
    pub fn b64url(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            }
        }
        out
    }

    /// An HS256 token over exactly these header and claims bytes, signed with `secret`.
    pub fn sign(secret: &[u8], header: &[u8], claims: &[u8]) -> String {
        let input = format!("{}.{}", b64url(header), b64url(claims));
        let key = jsonwebtoken::EncodingKey::from_secret(secret);
        let signature =
            jsonwebtoken::crypto::sign(input.as_bytes(), &key, jsonwebtoken::Algorithm::HS256)
                .expect("HS256 signs");
        format!("{input}.{signature}")
    }

    fn ready<F: Future>(future: F) -> F::Output {
        let mut cx = Context::from_waker(Waker::noop());
        match pin!(future).poll(&mut cx) {
            Poll::Ready(output) => output,
            Poll::Pending => panic!("pending without any I/O"),
        }
    }

    pub fn check(data: &[u8]) {
        let Some((&mode, rest)) = data.split_first() else {
            return;
        };
        let mut request = Request::new(String::new());
        let mut sent = Vec::new();
        let signed = if mode & 1 == 1 {
            let (header, claims) = match rest.iter().position(|&b| b == 0) {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &[][..]),
            };
            let signer = usize::from(mode >> 1 & 1);
            let token = sign([SECRET_A, SECRET_B][signer], header, claims);
            let value = HeaderValue::try_from(format!("Bearer {token}")).expect("b64 is visible");
            sent.push(token.into_bytes());
            request.headers_mut().append(AUTHORIZATION, value);
            Some((signer, header, claims))
        } else {
            for value in rest.split(|&b| b == b'\n') {
                if let Ok(value) = HeaderValue::from_bytes(value) {
                    sent.push(value.as_bytes().to_vec());
                    request.headers_mut().append(AUTHORIZATION, value);
                }
            }
            None
        };

        let mut service = layer().layer(service_fn(|request: Request<String>| {
            let mut response = Response::new(String::new());
            if let Some(identity) = request.extensions().get::<Identity>() {
                response.extensions_mut().insert(identity.clone());
            }
            if let Some(claims) = request.extensions().get::<Claims>() {
                response.extensions_mut().insert(claims.clone());
            }
            std::future::ready(Ok::<_, Infallible>(response))
        }));
        let response = ready(service.call(request)).unwrap_or_else(|e| match e {});
        let (parts, body) = response.into_parts();
        let rejected = parts.extensions.get::<JwtRejection>().is_some();
        let body = read_body(body);

        if rejected {
            assert!(
                matches!(
                    parts.status,
                    StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED
                ),
                "{}",
                parts.status
            );
            assert!(parts.extensions.get::<Identity>().is_none());
            // Never echo the token. Only tokens shaped like a JWS (two dots, 32 bytes or more) are
            // looked for: a shorter or other value can occur in the answer's fixed text.
            let mut answer = body;
            for (name, value) in &parts.headers {
                answer.extend_from_slice(name.as_str().as_bytes());
                answer.extend_from_slice(value.as_bytes());
            }
            for token in &sent {
                let token = token.strip_prefix(b"Bearer ").unwrap_or(token);
                let dots = token.iter().filter(|&&b| b == b'.').count();
                if token.len() >= 32 && dots == 2 {
                    assert!(
                        !answer.windows(token.len()).any(|w| w == token),
                        "the answer echoes the token"
                    );
                }
            }
        } else {
            let identity = parts.extensions.get::<Identity>().expect("an identity");
            let claims = parts.extensions.get::<Claims>().expect("claims");
            let (signer, header, claims_json) = signed.expect("only a signed token is accepted");
            accepted(signer, header, claims_json, identity, claims);
        }

        if let Some((_, _, claims)) = signed
            && let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(claims)
        {
            let string = |name: &str| map.get(name).and_then(Value::as_str);
            match Identity::try_from(&Claims(map.clone())) {
                Ok(identity) => {
                    assert_eq!(Some(identity.iss()), string("iss"));
                    assert_eq!(Some(identity.sub()), string("sub"));
                }
                Err(_) => {
                    let ok = |s: Option<&str>| {
                        s.is_some_and(|s| !s.is_empty() && s.len() <= 1024 && !s.contains('\0'))
                    };
                    assert!(!(ok(string("iss")) && ok(string("sub"))), "{map:?}");
                }
            }
        }
    }

    fn read_body(body: impl Body<Data = bytes::Bytes>) -> Vec<u8> {
        use bytes::Buf;
        let mut body = pin!(body);
        let mut out = Vec::new();
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..16 {
            match body.as_mut().poll_frame(&mut cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(mut data) = frame.into_data() {
                        while data.has_remaining() {
                            let chunk = data.chunk();
                            out.extend_from_slice(chunk);
                            let n = chunk.len();
                            data.advance(n);
                        }
                    }
                }
                Poll::Ready(None) => return out,
                Poll::Ready(Some(Err(_))) => panic!("body error"),
                Poll::Pending => panic!("body pending without any I/O"),
            }
        }
        panic!("more than 16 body frames")
    }

    fn accepted(
        signer: usize,
        header: &[u8],
        claims_json: &[u8],
        identity: &Identity,
        claims: &Claims,
    ) {
        let header: Map<String, Value> =
            serde_json::from_slice(header).expect("an accepted header is a JSON object");
        assert_eq!(header.get("alg"), Some(&Value::from("HS256")));
        assert!(!header.contains_key("crit"));
        assert!(matches!(header.get("kid"), None | Some(Value::String(_))));
        if signer == 0 {
            // Issuer A's secret has kid `k1`; issuer B's has none (any kid falls back to it).
            assert!(
                header.get("kid").is_none_or(|kid| kid == "k1"),
                "{header:?}"
            );
        }

        let map: Map<String, Value> =
            serde_json::from_slice(claims_json).expect("accepted claims are a JSON object");
        assert_eq!(&claims.0, &map, "the claims handed on are the token's");
        let iss = map.get("iss").and_then(Value::as_str).expect("string iss");
        let sub = map.get("sub").and_then(Value::as_str).expect("string sub");
        assert_eq!(
            iss, ISSUERS[signer],
            "a token signed with {}'s key accepted for {iss:?}",
            ISSUERS[signer]
        );
        assert_eq!((identity.iss(), identity.sub()), (iss, sub));
        let aud_ok = match map.get("aud") {
            Some(Value::String(aud)) => aud == AUDIENCE,
            Some(Value::Array(auds)) => auds.iter().any(|aud| aud == AUDIENCE),
            _ => false,
        };
        assert!(aud_ok, "aud {:?}", map.get("aud"));
        // A minute of slack for the clock moving on during a run.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let exp = map.get("exp").and_then(Value::as_f64).expect("numeric exp");
        assert!(exp >= now - 60.0, "expired exp {exp} accepted");
        if let Some(nbf) = map.get("nbf") {
            let nbf = nbf.as_f64().expect("numeric nbf");
            assert!(nbf <= now + 60.0, "future nbf {nbf} accepted");
        }
    }
}

/// A published JWK set (`__private::parse_jwks`).
///
/// Input: the document.
///
/// Invariants: never panics; an accepted set is a JSON object of at most 256 KiB whose `keys`
/// array holds at most 100 entries, and yields between 1 and that many usable keys.
#[cfg(feature = "jwt")]
pub fn jwks(data: &[u8]) {
    let Ok(usable) = __private::parse_jwks(data) else {
        return;
    };
    assert!(data.len() <= 256 * 1024, "{} bytes accepted", data.len());
    let doc: serde_json::Map<String, Value> =
        serde_json::from_slice(data).expect("an accepted set is a JSON object");
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .expect("a `keys` array");
    assert!(keys.len() <= 100, "{} keys accepted", keys.len());
    assert!(
        (1..=keys.len()).contains(&usable),
        "{usable} usable keys of {}",
        keys.len()
    );
}

/// A discovery document (`__private::parse_discovery`).
///
/// Input: the configured issuer, `0x00`, the document (without `0x00`: the issuer is
/// `https://issuer.example` and the whole input is the document).
///
/// Invariants: never panics; an accepted document is a JSON object of at most 256 KiB whose
/// `issuer` equals the configured issuer exactly and whose `jwks_uri` is the URL returned; that
/// URL is `https`, or `http` whose host, as the HTTP client's URL parser (`url`, which reqwest uses) reads
/// it, is a loopback host without user info: the loopback exception cannot be steered to another
/// host.
#[cfg(feature = "jwt")]
pub fn discovery(data: &[u8]) {
    let (issuer, doc) = match data.iter().position(|&b| b == 0) {
        Some(i) => (String::from_utf8_lossy(&data[..i]), &data[i + 1..]),
        None => ("https://issuer.example".into(), data),
    };
    let Ok(jwks_uri) = __private::parse_discovery(doc, &issuer) else {
        return;
    };
    assert!(doc.len() <= 256 * 1024, "{} bytes accepted", doc.len());
    let map: serde_json::Map<String, Value> =
        serde_json::from_slice(doc).expect("an accepted document is a JSON object");
    assert_eq!(map.get("issuer").and_then(Value::as_str), Some(&*issuer));
    assert_eq!(
        map.get("jwks_uri").and_then(Value::as_str),
        Some(&*jwks_uri)
    );
    let lower = jwks_uri.to_ascii_lowercase();
    if lower.starts_with("https://") {
        return;
    }
    assert!(lower.starts_with("http://"), "{jwks_uri}");
    let Ok(url) = url::Url::parse(&jwks_uri) else {
        return; // the fetch fails before anything is sent
    };
    // `host_str`: a domain (lowercased), an IPv4 address, or an IPv6 address in brackets.
    let host = url.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    assert!(loopback, "http URL {jwks_uri} reaches host {host:?}");
    assert!(
        url.username().is_empty() && url.password().is_none(),
        "{jwks_uri}"
    );
}

/// Without the `jwt` feature there is nothing to check.
#[cfg(not(feature = "jwt"))]
pub fn jwks(_data: &[u8]) {}

/// Without the `jwt` feature there is nothing to check.
#[cfg(not(feature = "jwt"))]
pub fn discovery(_data: &[u8]) {}

/// An RFC 7662 introspection answer (`__private::parse_introspection`), judged for the issuer
/// `https://as.example`, the audience `https://mcp.example/mcp`, the subject fallback
/// `client_id`, at the time 1 000 000.
///
/// Invariants: never panics; an admitted answer is a JSON object of at most 64 KiB whose
/// `active` is `true`, whose `iss` (if any) is the issuer, whose `aud` (or, without it,
/// `resource`) names the audience, and whose subject is its non-empty `sub`, or
/// `client_id:<client_id>` when `sub` is absent: never empty.
#[cfg(feature = "jwt")]
pub fn introspection(data: &[u8]) {
    let Ok(sub) = __private::parse_introspection(data) else {
        return;
    };
    assert!(data.len() <= 64 * 1024, "{} bytes admitted", data.len());
    assert!(!sub.is_empty(), "an empty subject");
    let map: serde_json::Map<String, Value> =
        serde_json::from_slice(data).expect("an admitted answer is a JSON object");
    assert_eq!(map.get("active"), Some(&Value::Bool(true)));
    if let Some(iss) = map.get("iss") {
        assert_eq!(iss.as_str(), Some("https://as.example"));
    }
    let audience = map.get("aud").or_else(|| map.get("resource"));
    let names = |v: &Value| v.as_str() == Some("https://mcp.example/mcp");
    assert!(
        audience.is_some_and(|a| names(a) || a.as_array().is_some_and(|a| a.iter().any(names))),
        "audience {audience:?}"
    );
    match map.get("sub") {
        Some(Value::String(s)) => assert_eq!(s, &sub),
        None => assert_eq!(
            format!("client_id:{}", map["client_id"].as_str().unwrap()),
            sub
        ),
        Some(other) => panic!("admitted with sub {other}"),
    }
}

/// Without the `jwt` feature there is nothing to check.
#[cfg(not(feature = "jwt"))]
pub fn introspection(_data: &[u8]) {}

/// The answer scanner's reading of SSE and its JSON pre-filter.
///
/// Input: one byte `n`, then `n % 4` cut positions (one byte each, taken modulo the length), then
/// an SSE stream (to which `\n\n` is added, so its last event is complete).
///
/// Invariants: the scan passes on every byte as it came, in order, however the stream is cut
/// into frames; the data of the events it hands its inspector are the data an SSE client
/// dispatches (WHATWG event-stream rules, written out plainly in [`sse_reference`]); and when the
/// stream, read as JSON, has a member or string `taskId`, `requestState` or `tasks/` anywhere, the
/// pre-filter lets it through to be parsed.
pub fn scan(data: &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let cuts = usize::from(n % 4).min(rest.len());
    let (cuts, stream) = rest.split_at(cuts);
    let mut stream = stream.to_vec();
    stream.extend_from_slice(b"\n\n");
    let mut at: Vec<usize> = cuts
        .iter()
        .map(|&c| usize::from(c) % stream.len())
        .collect();
    at.sort_unstable();
    at.dedup();
    let mut frames: Vec<&[u8]> = Vec::new();
    let mut from = 0;
    for cut in at.into_iter().chain([stream.len()]) {
        if cut > from {
            frames.push(&stream[from..cut]);
            from = cut;
        }
    }
    let (out, seen) = __private::sse_scan(&frames);
    assert_eq!(out, stream, "the scan changed the stream");
    let seen: Vec<Vec<u8>> = seen.into_iter().filter(|d| !d.is_empty()).collect();
    let dispatched: Vec<Vec<u8>> = sse_reference(&stream)
        .into_iter()
        .filter(|d| !d.is_empty())
        .collect();
    assert_eq!(seen, dispatched, "the scan read other events than a client");

    if let Ok(value) = serde_json::from_slice::<Value>(&stream[..stream.len() - 2]) {
        for (name, anchor) in [("taskId", 4), ("requestState", 7), ("tasks/", 5)] {
            if names(&value, name) {
                assert!(
                    __private::may_name(&stream, name, anchor),
                    "the pre-filter skipped a body that names {name}"
                );
            }
        }
    }
}

/// Whether `value` has a member or a string `name`, at any depth.
fn names(value: &Value, name: &str) -> bool {
    match value {
        Value::String(s) => s == name,
        Value::Array(items) => items.iter().any(|v| names(v, name)),
        Value::Object(map) => map.iter().any(|(k, v)| k == name || names(v, name)),
        _ => false,
    }
}

/// The data of the events an SSE client dispatches from `stream`, by the WHATWG rules, byte by
/// byte: a leading BOM is skipped; a line ends at CR LF, LF or CR; an empty line dispatches the
/// data buffer (when it is not empty, less its last LF); a `data` field (the text before the
/// first colon, or the whole line) appends its value (less one leading space) and an LF.
pub fn sse_reference(stream: &[u8]) -> Vec<Vec<u8>> {
    let stream = stream.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(stream);
    let mut events = Vec::new();
    let mut data: Option<Vec<u8>> = None;
    let mut line = Vec::new();
    let mut i = 0;
    while i < stream.len() {
        let b = stream[i];
        i += 1;
        if b != b'\r' && b != b'\n' {
            line.push(b);
            continue;
        }
        if b == b'\r' && stream.get(i) == Some(&b'\n') {
            i += 1;
        }
        if line.is_empty() {
            if let Some(mut buffer) = data.take() {
                buffer.pop();
                events.push(buffer);
            }
            continue;
        }
        let (field, value) = match line.iter().position(|&c| c == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (&line[..], &[][..]),
        };
        if field == b"data" {
            let buffer = data.get_or_insert_with(Vec::new);
            buffer.extend_from_slice(value);
            buffer.push(b'\n');
        }
        line.clear();
    }
    events
}

/// A DPoP proof (`__private::check_dpop_proof`, RFC 9449): the input is the proof, checked for
/// `POST https://mcp.example/mcp` with the token `fuzz-token` at a fixed time. Never panics; an
/// accepted proof is at most 8 KiB, a compact JWS of three parts whose header says
/// `typ: dpop+jwt`, and its thumbprint is 43 base64url characters (SHA-256).
#[cfg(feature = "jwt")]
pub fn dpop(data: &[u8]) {
    let Ok(jkt) = __private::check_dpop_proof(data, "fuzz-token", 1_700_000_000) else {
        return;
    };
    assert!(data.len() <= 8 * 1024, "{} bytes accepted", data.len());
    let text = std::str::from_utf8(data).expect("an accepted proof is UTF-8");
    assert_eq!(text.split('.').count(), 3, "three parts");
    assert_eq!(jkt.len(), 43, "{jkt}");
    assert!(
        jkt.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{jkt}"
    );
}

/// Without the `jwt` feature there is nothing to check.
#[cfg(not(feature = "jwt"))]
pub fn dpop(_data: &[u8]) {}
