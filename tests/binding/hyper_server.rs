//! The layer in a plain hyper server (no axum): hyper's `Incoming` body mapped to a `BoxBody`,
//! a tower auth step, `SessionBindingLayer`, and the rmcp service.

use crate::support::MISMATCH_MESSAGE;
use crate::support;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, combinators::BoxBody};
use hyper::body::Incoming;
use hyper_util::{rt::TokioIo, server::conn::auto, service::TowerToHyperService};
use mcp_session_binding::{Identity, SessionBindingLayer};
use serde_json::json;
use support::*;
use tower::ServiceBuilder;


type Body = BoxBody<Bytes, hyper::Error>;

/// The auth step: `Authorization: Bearer <sub>` becomes an identity of one issuer.
fn authenticate(mut request: Request<Body>) -> Request<Body> {
    let sub = support::bearer(request.headers()).map(str::to_owned);
    if let Some(sub) = sub {
        let identity = Identity::new("https://hyper.example", sub).unwrap();
        request.extensions_mut().insert(identity);
    }
    request
}

#[tokio::test]
async fn binds_and_refuses_behind_a_plain_hyper_server() {
    let service = ServiceBuilder::new()
        .map_request(|request: Request<Incoming>| request.map(|body| body.boxed()))
        .map_request(authenticate)
        .layer(SessionBindingLayer::new())
        .service(demo_mcp::service());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });

    let raw = Raw::at(&url);
    let session = raw.open_session(Some("alice")).await;
    let answer = raw.whoami(&session, Some("alice"), 1).await;
    assert_eq!(tool_text(&answer.json()), "https://hyper.example alice");

    let answer = raw.whoami(&session, Some("bob"), 2).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["id"], json!(2));
    assert_eq!(tool_text(&answer.json()), MISMATCH_MESSAGE);
    assert_eq!(
        raw.whoami(&session, Some("alice"), 3).await.status,
        StatusCode::NOT_FOUND
    );
}
