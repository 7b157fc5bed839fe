//! A `DELETE` of a session the layer already ended answers 204, idempotently and without
//! forwarding, so client shutdown code (the TypeScript SDK's `terminateSession()` throws on 404)
//! keeps working after a refused hijack. Raw HTTP against the demo rmcp server.

use crate::support;

use http::StatusCode;
use mcp_session_binding::{MismatchAnswer, RejectionReason, SessionBindingLayer};
use serde_json::json;
use support::*;

fn alice(nonce: u32) -> String {
    token(ISS_A, "alice", nonce)
}

fn bob() -> String {
    token(ISS_A, "bob", 1)
}

#[tokio::test]
async fn delete_after_a_refused_hijack_is_204_for_everyone_and_not_forwarded() {
    let server = serve(SessionBindingLayer::new()).await;
    let raw = Raw::new(&server);
    let session = raw.open_session(Some(&alice(1))).await;

    // The hijack: refused, and the session is ended (one DELETE to the inner service).
    let answer = raw.whoami(&session, Some(&bob()), 1).await;
    assert_eq!(
        answer.json()["result"]["isError"],
        json!(true),
        "{answer:?}"
    );
    assert_eq!(server.deletes_forwarded(&session), 1);

    // The owner's shutdown: 204, twice; the thief and an anonymous caller get the same.
    for token in [Some(alice(2)), Some(alice(3)), Some(bob()), None] {
        let answer = raw.delete(&session, token.as_deref()).await;
        assert_eq!(
            answer.status,
            StatusCode::NO_CONTENT,
            "{token:?}: {answer:?}"
        );
        assert_eq!(answer.text, "");
    }
    assert_eq!(
        server.deletes_forwarded(&session),
        1,
        "no DELETE of an ended session is forwarded"
    );

    // Everything else on the ended session is still 404.
    assert_eq!(
        raw.whoami(&session, Some(&alice(4)), 2).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        raw.get_stream_status(&session, Some(&alice(4))).await,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn delete_after_the_owners_delete_is_204_again() {
    let server = serve(SessionBindingLayer::new()).await;
    let raw = Raw::new(&server);
    let session = raw.open_session(Some(&alice(1))).await;
    let first = raw.delete(&session, Some(&alice(2))).await;
    assert!(first.status.is_success(), "{first:?}");
    let again = raw.delete(&session, Some(&alice(3))).await;
    assert_eq!(again.status, StatusCode::NO_CONTENT, "{again:?}");
    assert_eq!(server.deletes_forwarded(&session), 1);
}

#[tokio::test]
async fn delete_of_an_unknown_session_is_still_404() {
    let server = serve(SessionBindingLayer::new()).await;
    let raw = Raw::new(&server);
    let answer = raw
        .delete("3f2a9c1e-0b7d-4e8a-9c55-2d1f6b8e7a40", Some(&alice(1)))
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{answer:?}");
    assert_eq!(server.forwarded_count(), 0);
}

#[tokio::test]
async fn with_the_not_found_answer_an_ended_session_stays_404_no_oracle() {
    let server = serve(SessionBindingLayer::new().mismatch_answer(MismatchAnswer::NotFound)).await;
    let raw = Raw::new(&server);
    let session = raw.open_session(Some(&alice(1))).await;
    // The thief gets the unknown-session answer, and the session is ended.
    let answer = raw.delete(&session, Some(&bob())).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    // Asking again must not reveal that the id was live.
    for token in [bob(), alice(2)] {
        let answer = raw.delete(&session, Some(&token)).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{answer:?}");
    }
}

#[tokio::test]
async fn the_204_carries_its_reason_in_the_extensions() {
    use bytes::Bytes;
    use http::Request;
    use http_body_util::Full;
    use mcp_session_binding::store::{BindingStore, MemoryStore};
    use std::time::Duration;
    use tower::{Layer, ServiceExt};

    let store = MemoryStore::new();
    let id = "ended-session-1";
    store
        .end(store.key_derivation().session(id), Duration::from_secs(60))
        .await
        .unwrap();
    let inner = tower::service_fn(|_: Request<Full<Bytes>>| async {
        panic!("nothing is forwarded");
        #[allow(unreachable_code)]
        Ok::<_, std::convert::Infallible>(http::Response::new(Full::<Bytes>::default()))
    });
    let service = SessionBindingLayer::with_store(store).layer(inner);
    let request = Request::delete("/mcp")
        .header("mcp-session-id", id)
        .body(Full::default())
        .unwrap();
    let response = service.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        response.extensions().get::<RejectionReason>(),
        Some(&RejectionReason::EndedSession)
    );
}
