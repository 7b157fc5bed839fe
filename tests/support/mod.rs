//! Shared harness for the integration tests: the demo rmcp server behind a test auth layer and
//! `SessionBindingLayer`, on a loopback port; raw HTTP helpers; an rmcp client whose bearer token
//! can be rotated mid-session.
//!
//! Each test binary declares it once (`tests/<area>/main.rs`: `#[path = "../support/mod.rs"] mod
//! support;`, `tests/refusal_memory.rs`: `mod support;`); its modules reach it as
//! `crate::support`.
#![allow(dead_code)]

#[path = "../../examples/common/demo_mcp.rs"]
pub mod demo_mcp;
#[cfg(feature = "jwt")]
pub mod dpop;
pub mod dpop_client;
pub mod example_bin;
pub mod external;
#[cfg(feature = "memory")]
pub mod fault_store;
#[cfg(feature = "oidc")]
#[path = "../../examples/common/jwt_stack.rs"]
pub mod jwt_stack;
pub mod keys;
pub mod logs;
pub mod modern;
#[cfg(feature = "oidc")]
pub mod oidc_provider;
pub mod prometheus;
pub mod python_upstream;
#[cfg(feature = "metrics")]
pub mod recorder;
pub mod redis_server;
#[cfg(feature = "redis")]
#[path = "../../examples/common/rmcp_redis_sessions.rs"]
pub mod rmcp_redis_sessions;
#[path = "../../examples/common/rotating_client.rs"]
mod rotating_client;
pub mod tcp_proxy;

/// An rmcp client whose bearer token can be rotated mid-session (shared with the `demo` example).
#[allow(unused_imports)]
pub use rotating_client::RotatingClient;

/// The text of the binding layer's refusal of a caller who is not the session's owner.
pub const MISMATCH_MESSAGE: &str = "Unauthorized: caller identity does not match session owner";
use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{Router, extract::Request, middleware::Next, response::IntoResponse};
use http::StatusCode;
use mcp_session_binding::{
    Identity, SessionBindingLayer, identity::IdentityExtractor, store::BindingStore,
};
use serde_json::{Value, json};

pub const ISS_A: &str = "https://issuer-a.example";
pub const ISS_B: &str = "https://issuer-b.example";

/// Test tokens are `<a|b>:<sub>:<nonce>`: issuer A or B, any subject, and a nonce that stands in
/// for the fresh bytes of a refreshed token. `bad:*` tokens are refused with 401.
pub fn token(iss: &str, sub: &str, nonce: u32) -> String {
    let iss = if iss == ISS_A { "a" } else { "b" };
    format!("{iss}:{sub}:{nonce}")
}

fn identity_of(token: &str) -> Option<Identity> {
    let mut parts = token.splitn(3, ':');
    let iss = match parts.next()? {
        "a" => ISS_A,
        "b" => ISS_B,
        _ => return None,
    };
    let sub = parts.next()?;
    parts.next()?;
    Identity::new(iss, sub).ok()
}

/// The test auth layer (for `axum::middleware::from_fn`): a valid bearer token puts its Identity in the extensions; no
/// Authorization header passes with no identity; anything else is 401.
pub async fn auth(mut request: Request, next: Next) -> axum::response::Response {
    if request.headers().contains_key(http::header::AUTHORIZATION) {
        let identity = bearer(request.headers()).and_then(identity_of);
        match identity {
            Some(identity) => {
                request.extensions_mut().insert(identity);
            }
            None => return (StatusCode::UNAUTHORIZED, "bad token").into_response(),
        }
    }
    next.run(request).await
}

/// Binds the fresh session id `id` to the anonymous owner in `store` (`Created`, with `ttl` and
/// `limit`), then looks it up (`Bound` to the anonymous owner).
pub async fn assert_binds_anonymous(
    store: &dyn BindingStore,
    id: &str,
    ttl: std::time::Duration,
    limit: usize,
) {
    use mcp_session_binding::store::{BindOutcome, Lookup, Owner, Record};
    let key = store.key_derivation().session(id);
    assert_eq!(
        store
            .bind(Record::new(key, &Owner::Anonymous, ttl), limit)
            .await
            .unwrap(),
        BindOutcome::Created
    );
    assert_eq!(
        store.lookup(key, None).await.unwrap(),
        Lookup::Bound(Owner::Anonymous)
    );
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// What reached the MCP service: (HTTP method, session header).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub method: http::Method,
    pub session: Option<String>,
    /// The `Last-Event-ID` header, when the request had one.
    pub last_event_id: Option<String>,
}

impl Seen {
    /// What `request` shows of itself.
    pub fn of<B>(request: &http::Request<B>) -> Self {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Self {
            method: request.method().clone(),
            session: header("mcp-session-id"),
            last_event_id: header("last-event-id"),
        }
    }
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub url: String,
    /// Every request that reached the inner MCP service, in order.
    pub seen: Arc<Mutex<Vec<Seen>>>,
    handle: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

impl TestServer {
    /// Requests that reached the inner service carrying `session`.
    pub fn forwarded_with(&self, session: &str) -> Vec<http::Method> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.session.as_deref() == Some(session))
            .map(|s| s.method.clone())
            .collect()
    }

    /// How many `DELETE`s carrying `session` reached the inner service (the layer ends a
    /// session with one).
    pub fn deletes_forwarded(&self, session: &str) -> usize {
        let deletes = self.forwarded_with(session);
        deletes
            .iter()
            .filter(|m| **m == http::Method::DELETE)
            .count()
    }

    pub fn forwarded_count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

/// Every request that reached the inner MCP service, in order.
pub type Recorded = Arc<Mutex<Vec<Seen>>>;

/// A service behind a request recorder.
pub type RecordedService<S, F> = tower::util::MapRequest<S, F>;

/// The demo MCP service behind a request recorder.
pub type RecordedMcp<F> = RecordedService<demo_mcp::Service, F>;

/// `service` behind a recorder of every request that reaches it.
pub fn recorded<S>(
    service: S,
) -> (
    RecordedService<S, impl Fn(Request) -> Request + Clone>,
    Recorded,
) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let service = tower::util::MapRequest::new(service, move |request: Request| {
        record.lock().unwrap().push(Seen::of(&request));
        request
    });
    (service, seen)
}

/// A scripted inner MCP service: `answer` serves every `POST /mcp`, behind a recorder of each.
pub fn scripted<F, Fut>(answer: F) -> (Router, Recorded)
where
    F: Fn(Request) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = axum::response::Response> + Send + 'static,
{
    let seen = Recorded::default();
    let record = seen.clone();
    let handler = move |request: Request| {
        record.lock().unwrap().push(Seen::of(&request));
        answer(request)
    };
    (
        Router::new().route("/mcp", axum::routing::post(handler)),
        seen,
    )
}

/// The value of header `name` as text, or empty when it is absent or not text.
pub fn header_text(headers: &http::HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The demo MCP service behind a recorder of every request that reaches it.
pub fn recorded_mcp() -> (RecordedMcp<impl Fn(Request) -> Request + Clone>, Recorded) {
    recorded(demo_mcp::service())
}

/// Starts the demo server behind the test auth layer and `layer`, on 127.0.0.1:0.
pub async fn serve<St, I>(layer: SessionBindingLayer<St, I>) -> TestServer
where
    St: BindingStore + Clone,
    I: IdentityExtractor,
{
    let (mcp, seen) = recorded_mcp();
    let app = Router::new()
        .nest_service("/mcp", mcp)
        .layer(layer)
        .layer(axum::middleware::from_fn(auth));
    serve_router(app, seen).await
}

pub async fn serve_router(app: Router, seen: Recorded) -> TestServer {
    let (listener, _) = listen().await;
    serve_on(listener, app, seen)
}

/// A listener on 127.0.0.1:0 and its base URL (`http://127.0.0.1:PORT`), for apps that must know
/// their own URL before they are built.
pub async fn listen() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    (listener, base_url)
}

/// Serves `app` on `listener` until the returned server is dropped; `seen` is what its recorder
/// records (see [`recorded`]), or empty.
pub fn serve_on(listener: tokio::net::TcpListener, app: Router, seen: Recorded) -> TestServer {
    let addr = listener.local_addr().unwrap();
    // Without TCP_NODELAY, each SSE answer waits for the client's delayed ACK (~40 ms).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let handle = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    TestServer {
        addr,
        url: format!("http://{addr}/mcp"),
        seen,
        handle,
    }
}

/// A raw HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub text: String,
}

impl Answer {
    /// The JSON body, or the first JSON-RPC message of an SSE body.
    pub fn json(&self) -> Value {
        let is_sse = self
            .headers
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        if is_sse {
            for line in self.text.lines() {
                if let Some(data) = line.strip_prefix("data:")
                    && let Ok(value) = serde_json::from_str::<Value>(data.trim())
                {
                    return value;
                }
            }
            panic!("no JSON-RPC message in SSE body: {:?}", self.text);
        }
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }

    /// Asserts this is the binding layer's mismatch answer to a `tools/call`: 200, an `isError`
    /// tool result whose text is `MISMATCH_MESSAGE`, for request `id` when given.
    pub fn assert_mismatch(&self, id: Option<u64>) {
        assert_eq!(self.status, StatusCode::OK, "{self:?}");
        let message = self.json();
        if let Some(id) = id {
            assert_eq!(message["id"], json!(id), "{message}");
        }
        assert_eq!(message["result"]["isError"], json!(true), "{message}");
        assert_eq!(tool_text(&message), MISMATCH_MESSAGE, "{message}");
    }

    pub fn session_id(&self) -> String {
        self.headers
            .get("mcp-session-id")
            .expect("response has Mcp-Session-Id")
            .to_str()
            .unwrap()
            .to_owned()
    }
}

/// A raw HTTP client for the attacks.
#[derive(Clone)]
pub struct Raw {
    pub http: reqwest::Client,
    pub url: String,
}

pub const PROTOCOL: &str = "2025-11-25";

pub fn initialize_body() -> Value {
    json!({
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL,
            "capabilities": {},
            "clientInfo": {"name": "raw-test", "version": "0"}
        }
    })
}

pub fn tool_call(id: u64, name: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": arguments}})
}

impl Raw {
    pub fn new(server: &TestServer) -> Self {
        Self::at(server.url.clone())
    }

    /// A raw client for the MCP endpoint at `url` (a server in another process, say).
    pub fn at(url: impl Into<String>) -> Self {
        Self {
            http: reqwest::Client::new(),
            url: url.into(),
        }
    }

    pub fn request(
        &self,
        method: reqwest::Method,
        session: Option<&str>,
        token: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let mut builder = self
            .http
            .request(method, &self.url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json");
        if let Some(session) = session {
            builder = builder
                .header("mcp-session-id", session)
                .header("mcp-protocol-version", PROTOCOL);
        }
        if let Some(token) = token {
            builder = builder.bearer_auth(token);
        }
        builder
    }

    pub async fn send(builder: reqwest::RequestBuilder) -> Answer {
        let response = builder.send().await.expect("request sent");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        Answer {
            status,
            headers,
            text,
        }
    }

    pub async fn post(&self, session: Option<&str>, token: Option<&str>, body: &Value) -> Answer {
        Self::send(
            self.request(reqwest::Method::POST, session, token)
                .body(body.to_string()),
        )
        .await
    }

    pub async fn post_bytes(
        &self,
        session: Option<&str>,
        token: Option<&str>,
        body: Vec<u8>,
    ) -> Answer {
        Self::send(
            self.request(reqwest::Method::POST, session, token)
                .body(body),
        )
        .await
    }

    /// Initializes a session (initialize + notifications/initialized) and returns its id.
    pub async fn open_session(&self, token: Option<&str>) -> String {
        let answer = self.post(None, token, &initialize_body()).await;
        assert_eq!(answer.status, StatusCode::OK, "initialize: {answer:?}");
        let session = answer.session_id();
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let answer = self.post(Some(&session), token, &note).await;
        assert_eq!(
            answer.status,
            StatusCode::ACCEPTED,
            "initialized: {answer:?}"
        );
        session
    }

    /// Calls `whoami` and returns the text it answered.
    pub async fn whoami(&self, session: &str, token: Option<&str>, id: u64) -> Answer {
        self.post(Some(session), token, &tool_call(id, "whoami", json!({})))
            .await
    }

    pub async fn get_stream_status(&self, session: &str, token: Option<&str>) -> StatusCode {
        let response = self
            .request(reqwest::Method::GET, Some(session), token)
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        response.status()
    }

    pub async fn delete(&self, session: &str, token: Option<&str>) -> Answer {
        Self::send(self.request(reqwest::Method::DELETE, Some(session), token)).await
    }
}

/// The text of the first content item of a tool result.
pub fn tool_text(message: &Value) -> &str {
    message["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no tool text in {message}"))
}
