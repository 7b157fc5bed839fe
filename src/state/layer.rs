//! [`RequestStateLayer`] and the [`RequestState`] service it makes.

use std::{
    fmt,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::{Buf, Bytes};
use http::{HeaderValue, Method, Request, Response, header};
use http_body::Body;
use http_body_util::Full;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tower::{Layer, Service};

use super::{
    ResponseFuture,
    keys::{Claims, StateKeys, now_secs},
    ring::KeyRing,
};
use crate::{
    Identity, ResponseBody,
    identity::{FromIdentityExtension, IdentityExtractor},
    protocol::{
        answer::{self, RejectionReason},
        early,
        headers::{self, MCP_METHOD},
        scan::{self, Inspect, Scan, Verdict},
    },
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long a sealed `requestState` opens: 5 minutes.
pub(crate) const DEFAULT_STATE_TTL: Duration = Duration::from_secs(300);
/// Longest `requestState` a request may carry, in bytes: 64 KiB.
pub(crate) const DEFAULT_MAX_STATE_BYTES: usize = 64 * 1024;

/// Longest request body the layer reads: 4 MiB, rmcp's own request body cap.
const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// How long the layer waits for a body it reads before answering 408.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// The methods whose results may be `input_required` (MRTR, revision 2026-07-28).
const MRTR_METHODS: [&[u8]; 3] = [b"tools/call", b"prompts/get", b"resources/read"];

/// What a [`RequestState`] service needs: set on the layer, shared by the services it makes.
#[derive(Clone, Debug)]
struct StateConfig {
    /// Shared by the layer, its clones and every service they made: a rotation reaches all.
    keys: Arc<KeyRing>,
    ttl: Duration,
    max_state_bytes: usize,
    max_body_bytes: usize,
    body_timeout: Duration,
}

/// Seals MRTR `requestState` (revision 2026-07-28) to the caller, and opens it on the retry.
///
/// Which requests it reads: a sessionless `tools/call`, `prompts/get` or `resources/read`
/// (decided from the `MCP-Protocol-Version` and `Mcp-Method` headers, which the server checks
/// against the body), and **every** session-era POST, because rmcp hands a `requestState` to its
/// handlers inside 2025-11-25 sessions too and no header names their method. Other requests pass
/// untouched.
///
/// - **answer:** an `input_required` result with a `requestState` (JSON, or an event of an SSE
///   stream; other events pass unchanged) gets the state replaced by an envelope sealed with
///   XChaCha20-Poly1305 that binds the caller's `(iss, sub)` (or "anonymous"), the method, the
///   target (`params.name` / `params.uri`), a SHA-256 digest of `params.arguments`, and an
///   expiry ([`ttl`](Self::ttl));
/// - **retry:** a request with `params.requestState`, in any JSON spelling of the key, has it
///   opened and checked, and is forwarded with the server's original state. Anything else (not a
///   string, over [`max_state_bytes`](Self::max_state_bytes), not an envelope of these keys,
///   tampered, expired, another caller, method, target or arguments, a batch) gets JSON-RPC
///   `-32602` `Invalid or expired requestState` (the Python and TypeScript SDKs' wording) with
///   the request's `id`, and nothing is forwarded. A body that may name `requestState` is
///   forwarded as the layer re-serialized it (one spelling of each key); a body without a
///   backslash and without the name is forwarded as it came, unparsed.
///
/// Every answer the layer makes itself carries its [`RejectionReason`] in the response
/// extensions: `InvalidRequestState` for a refused state, `BodyTooLarge`, `BodyTimeout` or
/// `BodyUnreadable` for a body it could not read.
///
/// The bodies it reads are read whole (up to [`max_body_bytes`](Self::max_body_bytes): over it,
/// 413) and forwarded as a new body, so the request body type must be buildable from [`Bytes`]
/// (axum's `Body` is). Put the layer inside the auth layer (it reads the [`Identity`] from the
/// request extensions, like [`SessionBindingLayer`](crate::SessionBindingLayer)).
///
/// ```
/// use mcp_session_binding::state::{RequestStateLayer, StateKeys};
///
/// let layer = RequestStateLayer::new(StateKeys::random())
///     .ttl(std::time::Duration::from_secs(120));
/// # let _ = layer;
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct RequestStateLayer<I = FromIdentityExtension> {
    config: StateConfig,
    identity: I,
}

impl RequestStateLayer {
    /// A layer sealing with the first key of `keys`, reading this crate's [`Identity`].
    pub fn new(keys: StateKeys) -> Self {
        Self {
            config: StateConfig {
                keys: Arc::new(KeyRing::new(keys)),
                ttl: DEFAULT_STATE_TTL,
                max_state_bytes: DEFAULT_MAX_STATE_BYTES,
                max_body_bytes: DEFAULT_MAX_BODY_BYTES,
                body_timeout: BODY_TIMEOUT,
            },
            identity: FromIdentityExtension,
        }
    }
}

impl<I> RequestStateLayer<I> {
    /// How long a sealed state opens (default 5 minutes: a user answering an elicitation takes
    /// seconds to minutes, and a leaked state is useless sooner).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.config.ttl = ttl;
        self
    }

    /// Longest `requestState` a request may carry (default 64 KiB, a roomy bound for state a
    /// server hands out; longer ones are refused before any decryption).
    pub fn max_state_bytes(mut self, bytes: usize) -> Self {
        self.config.max_state_bytes = bytes;
        self
    }

    /// Cap on the request bodies (and answer events) the layer reads (default 4 MiB). Over it:
    /// 413, not forwarded; an answer event over it passes unsealed (its state then never opens).
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.config.max_body_bytes = bytes;
        self
    }

    /// Replaces the keys while the server runs, on this layer, its clones and every service
    /// they made: `keys` seal from now on (their first key) and open; the keys before keep
    /// opening for the state [`ttl`](Self::ttl), the longest a state they sealed can still be
    /// valid, so no state in flight is refused. A second rotation within that time keeps every
    /// earlier ring's overlap. Every replica must rotate to the same keys (the example reloads
    /// `MCP_STATE_KEYS` on `SIGHUP`); until it has, a state sealed by a rotated replica does
    /// not open on one that has not.
    ///
    /// ```
    /// use mcp_session_binding::state::{RequestStateLayer, StateKeys};
    ///
    /// let layer = RequestStateLayer::new(StateKeys::new([1; 32]));
    /// let serving = layer.clone(); // the one inside the running stack
    /// layer.rotate_keys(StateKeys::new([2; 32]));
    /// # let _ = serving;
    /// ```
    pub fn rotate_keys(&self, keys: StateKeys) {
        self.config.keys.rotate(keys, self.config.ttl);
    }

    /// Reads the identity with another extractor.
    pub fn identity<I2: IdentityExtractor>(self, identity: I2) -> RequestStateLayer<I2> {
        RequestStateLayer {
            config: self.config,
            identity,
        }
    }
}

impl<S, I: Clone> Layer<S> for RequestStateLayer<I> {
    type Service = RequestState<S, I>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestState {
            inner,
            identity: self.identity.clone(),
            config: Arc::new(self.config.clone()),
        }
    }
}

/// The service [`RequestStateLayer`] makes.
///
/// ```
/// use mcp_session_binding::state::{RequestStateLayer, StateKeys};
/// use tower::Layer;
///
/// let mcp = tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Empty::<bytes::Bytes>::new()))
/// });
/// let service = RequestStateLayer::new(StateKeys::random()).layer(mcp);
/// # let _ = service;
/// ```
#[derive(Clone)]
pub struct RequestState<S, I = FromIdentityExtension> {
    inner: S,
    identity: I,
    config: Arc<StateConfig>,
}

impl<S, I> RequestState<S, I> {
    define_inner_service_accessors!();
}

impl<S: fmt::Debug, I> fmt::Debug for RequestState<S, I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestState")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S, I, B, RB> Service<Request<B>> for RequestState<S, I>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send,
    I: IdentityExtractor,
    B: Body + From<Bytes> + Send + 'static,
    B::Data: Buf + Send,
    B::Error: Into<BoxError>,
    RB: Send + 'static,
{
    type Response = Response<ResponseBody<RB>>;
    type Error = S::Error;
    type Future = ResponseFuture<RB, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let mut ready = crate::ready::take_ready(&mut self.inner);
        let (mut parts, body) = request.into_parts();
        let read = parts.method == Method::POST && {
            // rmcp serves a request the 2026-07-28 way when its `_meta` says so, whatever the
            // header: without a sessionless header, it refuses such a request instead.
            if headers::remove_session_era_version(&mut parts.headers) {
                // Sessionless: the server refuses a body whose method differs from `Mcp-Method`,
                // so only the methods that take a `requestState` are read.
                parts
                    .headers
                    .get(MCP_METHOD)
                    .is_some_and(|m| MRTR_METHODS.contains(&m.as_bytes()))
            } else {
                // Session era: no header names the method, and rmcp hands a `requestState` to
                // the handler there too. Every body is read.
                true
            }
        };
        if !read {
            let future = ready.call(Request::from_parts(parts, body));
            return ResponseFuture::new(async move { Ok(future.await?.map(ResponseBody::inner)) });
        }
        // An identity that is present but unusable counts as none: it opens only anonymous states.
        let caller = self.identity.extract(&parts).ok().flatten();
        let config = self.config.clone();
        ResponseFuture::new(async move {
            let (cap, timeout) = (config.max_body_bytes, config.body_timeout);
            let bytes = match early::read_bounded(body, &parts.headers, cap, timeout).await {
                Ok(bytes) => bytes,
                Err(failed) => {
                    let answer = answer::body_not_read(parts.version, failed);
                    return Ok(answer.map(ResponseBody::answer));
                }
            };
            let forward = match open_request(&bytes, caller.as_ref(), &config) {
                Ok(Some(rewritten)) => {
                    parts
                        .headers
                        .insert(header::CONTENT_LENGTH, HeaderValue::from(rewritten.len()));
                    rewritten
                }
                Ok(None) => bytes.clone(),
                Err(id) => return Ok(refuse(id.as_ref()).map(ResponseBody::answer)),
            };
            // Only the answers of the methods that may ask for input can carry a state to seal.
            let seal = may_name_an_mrtr_method(&bytes);
            let response = ready
                .call(Request::from_parts(parts, B::from(forward)))
                .await?;
            let framing = scan::framing(response.headers())
                .filter(|_| seal && response.status().is_success());
            let Some(framing) = framing else {
                return Ok(response.map(ResponseBody::inner));
            };
            let (mut parts, body) = response.into_parts();
            parts.headers.remove(header::CONTENT_LENGTH);
            let seal = Seal {
                request: bytes,
                caller,
                config: config.clone(),
                done: false,
            };
            let scan = Box::new(Scan::new(framing, config.max_body_bytes, seal));
            Ok(Response::from_parts(
                parts,
                ResponseBody::scanned(body, scan),
            ))
        })
    }
}

/// `requestState`, in some spelling.
const REQUEST_STATE: scan::Name = scan::Name::new(b"requestState", 7);

/// Whether a request body may name one of the [`MRTR_METHODS`], in some spelling.
fn may_name_an_mrtr_method(bytes: &[u8]) -> bool {
    const METHODS: [scan::Name; 3] = [
        scan::Name::new(b"tools/call", 5),
        scan::Name::new(b"prompts/get", 7),
        scan::Name::new(b"resources/read", 9),
    ];
    scan::named(bytes, &METHODS) != 0
}

/// The JSON-RPC `-32602` refusal of a `requestState`
/// ([`RejectionReason::InvalidRequestState`]), with the request's `id` when it has a usable one,
/// and the reason's code as `data.reason`.
fn refuse(id: Option<&Value>) -> Response<Full<Bytes>> {
    let reason = RejectionReason::InvalidRequestState;
    let id = id
        .filter(|id| id.is_string() || id.is_number())
        .and_then(|id| serde_json::value::to_raw_value(id).ok());
    reason
        .refusal()
        .id(id.as_deref())
        .data_reason(reason.code())
        .response(reason)
}

/// The target of an MRTR request: `params.uri` for `resources/read`, else `params.name`.
fn target<'a>(method: &str, params: &'a Value) -> &'a str {
    let key = if method == "resources/read" {
        "uri"
    } else {
        "name"
    };
    params.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// SHA-256 of the arguments' JSON (`null` when absent), hex.
fn digest(params: &Value) -> String {
    let arguments = params.get("arguments").unwrap_or(&Value::Null);
    let hash = Sha256::digest(serde_json::to_vec(arguments).unwrap_or_default());
    hash.iter().fold(String::with_capacity(64), |mut s, b| {
        use fmt::Write;
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Opens the `requestState` of a request body: `Ok(None)` when it cannot have one,
/// `Ok(Some(body))` to forward instead, `Err(id)` when it must be refused (answered with the
/// request's `id`, when it has one).
///
/// A body that may name `requestState` in some spelling is parsed (keys and strings unescaped)
/// and forwarded as this parse re-serialized it, with the server's own state put back: one
/// spelling of each key, so the server cannot read a state this check did not see.
fn open_request(
    bytes: &[u8],
    caller: Option<&Identity>,
    config: &StateConfig,
) -> Result<Option<Bytes>, Option<Value>> {
    if !scan::may_name(bytes, &REQUEST_STATE) {
        return Ok(None);
    }
    // The body may name a requestState: it must parse as one JSON-RPC message, or it is refused
    // (a body the server would read differently from this parser is never forwarded).
    let Ok(mut message) = serde_json::from_slice::<Value>(bytes) else {
        return Err(None);
    };
    let Some(object) = message.as_object_mut() else {
        // A batch (or not JSON-RPC): its states are not opened one by one.
        return Err(None);
    };
    let id = object.get("id").cloned();
    let method = object
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if let Some(params) = object.get_mut("params").and_then(Value::as_object_mut)
        && let Some(state) = params.get("requestState")
    {
        let refused = || Err(id.clone());
        let Some(state) = state.as_str() else {
            return refused();
        };
        if state.len() > config.max_state_bytes {
            return refused();
        }
        let Some(claims) = config.keys.open(state) else {
            return refused();
        };
        let params_value = Value::Object(params.clone());
        let principal = caller.map(|c| (c.iss().to_owned(), c.sub().to_owned()));
        let valid = claims.exp >= now_secs()
            && claims.p == principal
            && claims.m == method
            && claims.t == target(&method, &params_value)
            && claims.a == digest(&params_value);
        if !valid {
            return refused();
        }
        params.insert("requestState".to_owned(), Value::String(claims.s));
    }
    // A `Value` always serializes.
    serde_json::to_vec(&message)
        .map(|body| Some(Bytes::from(body)))
        .map_err(|_| None)
}

/// What sealing an answer's state needs: the request it answers, and the caller.
struct Seal {
    request: Bytes,
    caller: Option<Identity>,
    config: Arc<StateConfig>,
    /// The state was sealed: the final answer went out.
    done: bool,
}

impl Seal {
    /// The answer `data` with its `input_required` state sealed; `None` when it has none.
    fn seal(&self, data: &[u8]) -> Option<Vec<u8>> {
        let mut message = serde_json::from_slice::<Value>(data).ok()?;
        let result = message.get_mut("result")?.as_object_mut()?;
        if result.get("resultType").and_then(Value::as_str) != Some("input_required") {
            return None;
        }
        let state = result.get("requestState")?.as_str()?.to_owned();
        let request = serde_json::from_slice::<Value>(&self.request).ok();
        let method = request
            .as_ref()
            .and_then(|r| r.get("method"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let params = request
            .as_ref()
            .and_then(|r| r.get("params"))
            .cloned()
            .unwrap_or(Value::Null);
        let exp = now_secs().saturating_add(self.config.ttl.as_secs());
        let digest = digest(&params);
        let claims = Claims {
            p: self.caller.as_ref().map(|c| (c.iss(), c.sub())),
            m: method,
            t: target(method, &params),
            a: &digest,
            exp,
            s: &state,
        };
        match self.config.keys.seal(&claims) {
            Some(sealed) => {
                result.insert("requestState".to_owned(), Value::String(sealed));
            }
            // Never hand out an unsealed state: without one, the retry cannot carry it.
            None => {
                result.remove("requestState");
            }
        }
        serde_json::to_vec(&message).ok()
    }
}

impl Inspect for Seal {
    fn concerns(&self, raw: &[u8]) -> bool {
        scan::may_name(raw, &REQUEST_STATE)
    }

    fn inspect(&mut self, json: &[u8]) -> Verdict {
        match self.seal(json) {
            Some(sealed) => {
                self.done = true;
                Verdict::Replace(sealed)
            }
            None => Verdict::Pass,
        }
    }

    fn done(&self) -> bool {
        self.done
    }

    fn ends_when_too_large(&self) -> bool {
        // Unsealed, a state never opens: the retry is refused.
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> StateConfig {
        StateConfig {
            keys: Arc::new(KeyRing::new(StateKeys::new([9; 32]))),
            ttl: DEFAULT_STATE_TTL,
            max_state_bytes: 1024,
            max_body_bytes: 1 << 20,
            body_timeout: Duration::from_secs(1),
        }
    }

    fn call(state: &str, args: Value) -> Vec<u8> {
        serde_json::to_vec(
            &serde_json::json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "confirm_echo", "arguments": args, "requestState": state}}),
        )
        .unwrap()
    }

    #[test]
    fn states_open_only_for_their_caller_target_and_arguments() {
        let config = Arc::new(config());
        let alice = Identity::new("https://i.example", "alice").unwrap();
        let bob = Identity::new("https://i.example", "bob").unwrap();
        let request = call("", serde_json::json!({"text": "hi"}));
        let seal = Seal {
            request: Bytes::from(request),
            caller: Some(alice.clone()),
            config: config.clone(),
            done: false,
        };
        let answer = br#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"input_required","requestState":"inner"}}"#;
        let sealed: Value = serde_json::from_slice(&seal.seal(answer).unwrap()).unwrap();
        let state = sealed["result"]["requestState"].as_str().unwrap();
        assert_ne!(state, "inner");

        let retry = call(state, serde_json::json!({"text": "hi"}));
        let opened = open_request(&retry, Some(&alice), &config)
            .unwrap()
            .unwrap();
        let opened: Value = serde_json::from_slice(&opened).unwrap();
        assert_eq!(opened["params"]["requestState"], "inner");

        assert!(open_request(&retry, Some(&bob), &config).is_err());
        assert!(open_request(&retry, None, &config).is_err());
        let other_args = call(state, serde_json::json!({"text": "bye"}));
        assert!(open_request(&other_args, Some(&alice), &config).is_err());
        for bad in [
            serde_json::json!(5),
            serde_json::json!("x".repeat(1025)),
            serde_json::json!("not base64 !"),
        ] {
            let body = serde_json::to_vec(&serde_json::json!({"jsonrpc": "2.0", "id": 3,
                "method": "tools/call", "params": {"name": "confirm_echo", "requestState": bad}}))
            .unwrap();
            assert!(open_request(&body, Some(&alice), &config).is_err());
        }
        assert!(open_request(b"{\"requestState\"", Some(&alice), &config).is_err());
        // Every spelling of the key serde reads, and batches, are checked (or refused).
        for forged in [
            &br#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"confirm_echo","request\u0053tate":"forged"}}"#[..],
            br#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"confirm_echo","\u0072equestState":"forged"}}"#,
            br#"[{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"confirm_echo","requestState":"forged"}}]"#,
        ] {
            assert!(
                open_request(forged, Some(&alice), &config).is_err(),
                "{}",
                String::from_utf8_lossy(forged)
            );
        }
        // A state opened from an escaped key is forwarded under one plain key.
        let escaped = String::from_utf8(retry.clone())
            .unwrap()
            .replace("\"requestState\"", "\"request\\u0053tate\"");
        let opened = open_request(escaped.as_bytes(), Some(&alice), &config)
            .unwrap()
            .unwrap();
        let opened: Value = serde_json::from_slice(&opened).unwrap();
        assert_eq!(opened["params"]["requestState"], "inner");
        assert!(
            open_request(&call_without_state(), Some(&alice), &config)
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn refusals_carry_their_reason_and_the_id_when_usable() {
        use http_body_util::BodyExt;
        for (id, expected) in [
            (Some(serde_json::json!(7)), Some(serde_json::json!(7))),
            (Some(serde_json::json!("a")), Some(serde_json::json!("a"))),
            (Some(serde_json::json!(null)), None),
            (Some(serde_json::json!({"x": 1})), None),
            (None, None),
        ] {
            let response = refuse(id.as_ref());
            assert_eq!(response.status(), http::StatusCode::OK);
            assert_eq!(
                response.extensions().get(),
                Some(&RejectionReason::InvalidRequestState)
            );
            let body = response.into_body().collect().await.unwrap().to_bytes();
            let body: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body.get("id"), expected.as_ref(), "{id:?}");
            assert_eq!(
                body["error"],
                serde_json::json!({"code": -32602, "message": "Invalid or expired requestState",
                    "data": {"reason": "invalid_request_state"}})
            );
        }
    }

    fn call_without_state() -> Vec<u8> {
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#.to_vec()
    }
}
