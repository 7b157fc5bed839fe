//! tower's `poll_ready` contract: the service that was polled ready is the one that is called.
//!
//! `tower_test`'s mock panics when a clone that was not polled ready is called, so each test
//! fails if the layer ever forwards to the wrong clone.

use crate::support;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use mcp_session_binding::{
    Identity, SessionBindingLayer,
    store::{BindingStore, MemoryStore},
};
use support::fault_store::FaultStore;
use tower::Layer;
use tower_test::mock;

type Req = Request<Full<Bytes>>;
type Res = Response<Full<Bytes>>;

const SESSION: &str = "5d2c1f0e-aaaa-4bbb-8ccc-0123456789ab";

fn alice() -> Identity {
    Identity::new("https://issuer.example", "alice").unwrap()
}

fn request(session: Option<&str>) -> Req {
    let mut builder = Request::post("/mcp");
    if let Some(session) = session {
        builder = builder.header("mcp-session-id", session);
    }
    let mut request = builder.body(Full::default()).unwrap();
    request.extensions_mut().insert(alice());
    request
}

async fn binds_then_forwards_to_the_ready_service<St: BindingStore + Clone>(store: St) {
    let (service, mut handle) = mock::pair::<Req, Res>();
    let mut service = mock::Spawn::new(SessionBindingLayer::with_store(store).layer(service));

    // initialize: forwarded to the ready service, then bound from the response.
    handle.allow(1);
    assert!(service.poll_ready().is_ready());
    let pending = tokio::spawn(service.call(request(None)));
    let (seen, reply) = handle.next_request().await.expect("initialize forwarded");
    assert!(seen.headers().get("mcp-session-id").is_none());
    reply.send_response(
        Response::builder()
            .header("mcp-session-id", SESSION)
            .body(Full::default())
            .unwrap(),
    );
    let response = pending.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // A request of the bound session: forwarded to the service polled ready.
    handle.allow(1);
    assert!(service.poll_ready().is_ready());
    let pending = tokio::spawn(service.call(request(Some(SESSION))));
    let (seen, reply) = handle
        .next_request()
        .await
        .expect("session request forwarded");
    assert_eq!(seen.headers()["mcp-session-id"], SESSION);
    reply.send_response(Response::new(Full::default()));
    assert_eq!(pending.await.unwrap().unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn synchronous_store_path_calls_the_ready_service() {
    binds_then_forwards_to_the_ready_service(MemoryStore::new()).await;
}

#[tokio::test]
async fn asynchronous_store_path_calls_the_ready_service() {
    // The shared fault store never answers synchronously: the asynchronous path.
    binds_then_forwards_to_the_ready_service(FaultStore::<MemoryStore>::default()).await;
}

#[tokio::test]
async fn readiness_is_the_inner_services() {
    let (service, mut handle) = mock::pair::<Req, Res>();
    let mut service = mock::Spawn::new(SessionBindingLayer::new().layer(service));
    handle.allow(0);
    assert!(service.poll_ready().is_pending());
    handle.allow(1);
    assert!(service.poll_ready().is_ready());
}
