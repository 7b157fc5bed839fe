//! Request bodies and identities shared by the benchmarks (included with `#[path]`).
#![allow(dead_code)]

#[path = "../../examples/common/demo_mcp.rs"]
pub mod demo_mcp;

use std::{convert::Infallible, hint::black_box, time::Duration};

use bytes::{Buf, Bytes};
use futures::FutureExt;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use mcp_session_binding::{
    Identity,
    store::{BindingStore, MemoryStore, Owner, Record},
};
use tower::{Service, ServiceExt};

/// A realistic issuer (Entra-style tenant URL).
pub const ISS: &str = "https://login.example.com/tenant-1234/v2.0";
/// A realistic 24-character subject.
pub const SUB: &str = "00u1a2b3c4d5e6f7g8h9i0j1";
/// Another user of the same issuer.
pub const OTHER_SUB: &str = "00u9z8y7x6w5v4u3t2s1r0q9";
/// A UUID-like session id.
pub const SESSION: &str = "3f2a9c1e-0b7d-4e8a-9c55-2d1f6b8e7a40";

pub const KIB: usize = 1024;
pub const MIB: usize = 1024 * 1024;

/// A `tools/call` of exactly `len` bytes whose argument is one long text (prose with escaped
/// newlines and quotes, as a file's contents would be).
pub fn tool_call_text(len: usize) -> Vec<u8> {
    let head = br#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"echo","arguments":{"text":""#;
    let tail = br#""}}}"#;
    let line =
        br#"The quick brown fox jumps over the lazy dog; \"quoted\" text, numbers 0123456789.\n"#;
    let mut body = head.to_vec();
    while body.len() + tail.len() < len {
        let room = len - tail.len() - body.len();
        if room >= line.len() {
            body.extend_from_slice(line);
        } else {
            body.extend(std::iter::repeat_n(b'x', room));
        }
    }
    body.extend_from_slice(tail);
    assert_eq!(body.len(), len);
    body
}

/// A `tools/call` of about `len` bytes (padded to exactly `len`) whose argument is an array of
/// small objects: many tokens, numbers and short strings, the slow case for a JSON parser.
pub fn tool_call_structured(len: usize) -> Vec<u8> {
    let head = br#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"ingest","arguments":{"rows":["#;
    let tail = br#"]}}}"#;
    let mut body = head.to_vec();
    let mut i = 0u64;
    loop {
        let row = format!(
            r#"{}{{"id":{i},"score":{}.{:03},"tag":"row-{i:06}","ok":{}}}"#,
            if i == 0 { "" } else { "," },
            i * 7 % 1000,
            i % 1000,
            i.is_multiple_of(2)
        );
        if body.len() + row.len() + tail.len() > len {
            break;
        }
        body.extend_from_slice(row.as_bytes());
        i += 1;
    }
    // Pad with whitespace (valid JSON) to the exact length.
    let pad = len - body.len() - tail.len();
    body.extend(std::iter::repeat_n(b' ', pad));
    body.extend_from_slice(tail);
    assert_eq!(body.len(), len);
    body
}

pub const ANSWER: &[u8] =
    br#"{"jsonrpc":"2.0","id":42,"result":{"content":[{"type":"text","text":"ok"}],"isError":false}}"#;

/// The inner service: reads the whole request body (as any MCP server must), answers a fixed body.
pub async fn answer<B>(request: Request<B>) -> Result<Response<Full<Bytes>>, Infallible>
where
    B: Body,
    B::Data: Buf,
{
    let mut body = std::pin::pin!(request.into_body());
    let mut read = 0;
    while let Some(Ok(frame)) = body.frame().await {
        if let Some(data) = frame.data_ref() {
            read += data.remaining();
        }
    }
    black_box(read);
    Ok(Response::new(Full::new(Bytes::from_static(ANSWER))))
}

pub fn owner() -> Identity {
    Identity::new(ISS, SUB).unwrap()
}

/// A POST on the session, as hyper would hand it over, with the caller's identity in the
/// extensions (as the auth layer leaves it).
pub fn post(body: &Bytes, caller: &Identity) -> Request<Full<Bytes>> {
    let mut request = Request::post("/mcp")
        .header(http::header::HOST, "127.0.0.1")
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json, text/event-stream")
        .header(http::header::CONTENT_LENGTH, body.len())
        .header("mcp-protocol-version", "2025-11-25")
        .header("mcp-session-id", HeaderValue::from_str(SESSION).unwrap())
        .body(Full::new(body.clone()))
        .unwrap();
    request.extensions_mut().insert(caller.clone());
    request
}

pub fn bound_store() -> MemoryStore {
    let store = MemoryStore::new();
    store
        .bind(
            Record::new(
                store.key_derivation().session(SESSION),
                &Owner::User(owner()),
                Duration::from_secs(3600),
            ),
            usize::MAX,
        )
        .now_or_never()
        .unwrap()
        .unwrap();
    store
}

/// One request through `service`, which answers without waiting.
pub fn call_now<S, B>(service: &mut S, request: Request<Full<Bytes>>) -> Response<B>
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>, Error = Infallible>,
{
    service
        .ready()
        .now_or_never()
        .unwrap()
        .unwrap()
        .call(request)
        .now_or_never()
        .expect("answers without waiting")
        .unwrap()
}

pub type Rmcp = rmcp::transport::streamable_http_server::StreamableHttpService<
    demo_mcp::DemoMcp,
    rmcp::transport::streamable_http_server::session::local::LocalSessionManager,
>;

/// Sends `body` (no session yet when `session` is `None`) and reads the whole answer.
pub async fn rmcp_call<S, B>(
    service: &S,
    body: &'static str,
    session: Option<&str>,
    caller: &Identity,
) -> Response<Bytes>
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>, Error = Infallible> + Clone,
    B: Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let mut builder = Request::post("/mcp")
        .header(http::header::HOST, "127.0.0.1")
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25");
    if let Some(session) = session {
        builder = builder.header("mcp-session-id", session);
    }
    let mut request = builder
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap();
    request.extensions_mut().insert(caller.clone());
    let response = service.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    Response::from_parts(parts, bytes)
}

pub const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"0"}}}"#;
pub const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
pub const WHOAMI: &str =
    r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"whoami","arguments":{}}}"#;

/// Opens a session on `service` (initialize, then notifications/initialized); returns its id.
pub async fn open_session<S, B>(service: &S, caller: &Identity) -> String
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>, Error = Infallible> + Clone,
    B: Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let init = rmcp_call(service, INITIALIZE, None, caller).await;
    assert_eq!(init.status(), StatusCode::OK, "{:?}", init.body());
    let session = init.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let ack = rmcp_call(service, INITIALIZED, Some(&session), caller).await;
    assert_eq!(ack.status(), StatusCode::ACCEPTED, "{:?}", ack.body());
    let probe = rmcp_call(service, WHOAMI, Some(&session), caller).await;
    let text = std::str::from_utf8(probe.body()).unwrap();
    assert!(text.contains(SUB), "whoami answers the caller: {text}");
    session
}
