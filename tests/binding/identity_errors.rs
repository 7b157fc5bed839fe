//! An identity that is present but unusable is refused with 401 before anything is written or
//! forwarded, on session-creating and session requests alike.

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use mcp_session_binding::{
    RejectionReason, SessionBindingLayer,
    identity::{Claims, FromClaims},
    store::MemoryStore,
};
use serde_json::json;
use tower::{ServiceBuilder, ServiceExt};

#[tokio::test]
async fn unusable_claims_are_401_and_nothing_is_written_or_forwarded() {
    let calls = Arc::new(AtomicUsize::new(0));
    let store = MemoryStore::new();
    let inner = {
        let calls = calls.clone();
        tower::service_fn(move |_req: Request<Full<Bytes>>| {
            calls.fetch_add(1, Ordering::SeqCst);
            async {
                Ok::<_, Infallible>(
                    Response::builder()
                        .header("mcp-session-id", "minted-by-inner")
                        .body(Full::new(Bytes::from_static(b"{}")))
                        .unwrap(),
                )
            }
        })
    };
    let service = ServiceBuilder::new()
        .layer(SessionBindingLayer::with_store(store.clone()).identity(FromClaims))
        .service(inner);

    for (claims, session) in [
        (json!({"iss": "https://i.example"}), None),
        (json!({"iss": "https://i.example", "sub": 7}), None),
        (json!({"iss": ["x"], "sub": "alice"}), Some("some-session")),
        (
            json!({"iss": "https://i.example", "sub": "a\u{0}b"}),
            Some("some-session"),
        ),
    ] {
        let mut builder = Request::post("/mcp");
        if let Some(session) = session {
            builder = builder.header("mcp-session-id", session);
        }
        let mut request = builder.body(Full::default()).unwrap();
        request
            .extensions_mut()
            .insert(Claims::from_value(claims.clone()).unwrap());
        let response = service.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{claims}");
        assert_eq!(
            response.extensions().get::<RejectionReason>(),
            Some(&RejectionReason::InvalidIdentity)
        );
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(
            body["error"]["message"].as_str().unwrap().contains("claim"),
            "{body}"
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0, "nothing forwarded");
    assert!(store.is_empty(), "nothing written");

    // Valid claims create and bind a session.
    let mut request = Request::post("/mcp").body(Full::default()).unwrap();
    request
        .extensions_mut()
        .insert(Claims::from_value(json!({"iss": "https://i.example", "sub": "alice"})).unwrap());
    let response = service.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(store.len(), 1);
}
