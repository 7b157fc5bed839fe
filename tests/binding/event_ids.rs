//! SSE event ids bound to their session (`SessionBindingLayer::bind_event_ids`): the demo rmcp
//! server with an event store whose ids are global, not per session (rmcp's
//! `LocalSessionManager::with_event_store` resumes from the id alone), behind the test auth
//! layer and `SessionBindingLayer` on loopback. Without the option, bob resumes alice's stream
//! on his own session; with it, he cannot, and alice still resumes hers.

use crate::support;

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::Router;
use http::StatusCode;
use mcp_session_binding::{SessionBindingLayer, store::KeySecret};
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService,
    session::{
        EventId, EventStore, EventStoreError, EventStream, ServerSseMessage,
        local::LocalSessionManager,
    },
};
use serde_json::json;
use support::*;

/// An event store as a deployment might write one: ids `e1`, `e2`, … unique across all
/// streams of all sessions, and a replay that finds the stream from the id alone.
#[derive(Default)]
struct GlobalEvents {
    events: Mutex<Vec<(String, EventId, ServerSseMessage)>>,
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl EventStore for GlobalEvents {
    fn store_event<'a, 'b, 'c, 'async_trait>(
        &'a self,
        stream_id: &'b str,
        event: &'c ServerSseMessage,
    ) -> Boxed<'async_trait, Result<EventId, EventStoreError>>
    where
        'a: 'async_trait,
        'b: 'async_trait,
        'c: 'async_trait,
        Self: 'async_trait,
    {
        let mut events = self.events.lock().unwrap();
        let id = format!("e{}", events.len() + 1);
        let mut stored = event.clone();
        stored.event_id = Some(id.clone());
        events.push((stream_id.to_owned(), id.clone(), stored));
        Box::pin(async move { Ok(id) })
    }

    fn replay_events_after<'a, 'b, 'async_trait>(
        &'a self,
        last_event_id: &'b str,
    ) -> Boxed<'async_trait, Result<EventStream, EventStoreError>>
    where
        'a: 'async_trait,
        'b: 'async_trait,
        Self: 'async_trait,
    {
        let events = self.events.lock().unwrap();
        let found = events.iter().position(|(_, id, _)| id == last_event_id);
        let replay: Vec<ServerSseMessage> = match found {
            Some(at) => {
                let stream = events[at].0.clone();
                events[at + 1..]
                    .iter()
                    .filter(|(s, _, _)| *s == stream)
                    .map(|(_, _, event)| event.clone())
                    .collect()
            }
            None => Vec::new(),
        };
        let stream: EventStream = Box::pin(futures::stream::iter(replay));
        Box::pin(async move { Ok(stream) })
    }
}

/// The demo server with the global event store, behind `layer`.
async fn serve_with_events(
    layer: SessionBindingLayer<impl mcp_session_binding::store::BindingStore + Clone>,
) -> TestServer {
    let sessions =
        LocalSessionManager::default().with_event_store(Arc::new(GlobalEvents::default()));
    let config =
        StreamableHttpServerConfig::default().with_sse_keep_alive(Some(Duration::from_secs(15)));
    let service = StreamableHttpService::new(
        || Ok(demo_mcp::DemoMcp::default()),
        Arc::new(sessions),
        config,
    );
    let (mcp, seen) = recorded(service);
    let app = Router::new()
        .nest_service("/mcp", mcp)
        .layer(layer)
        .layer(axum::middleware::from_fn(auth));
    serve_router(app, seen).await
}

fn alice(nonce: u32) -> String {
    token(ISS_A, "alice", nonce)
}

fn bob(nonce: u32) -> String {
    token(ISS_A, "bob", nonce)
}

/// The `id` fields of an SSE body, in order.
fn event_ids(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("id:"))
        .map(|id| id.strip_prefix(' ').unwrap_or(id).to_owned())
        .collect()
}

/// alice calls `whoami` on her session, answered as an SSE stream: the ids of its events.
async fn alice_calls_whoami(raw: &Raw, session: &str) -> Vec<String> {
    let answer = raw.whoami(session, Some(&alice(2)), 7).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert!(answer.text.contains("alice"), "{answer:?}");
    let ids = event_ids(&answer.text);
    assert!(ids.len() >= 2, "a priming event and the answer: {answer:?}");
    ids
}

/// A GET on `session` by `token` resuming after `last_event_id`.
async fn resume(raw: &Raw, session: &str, token: &str, last_event_id: &str) -> Answer {
    Raw::send(
        raw.request(reqwest::Method::GET, Some(session), Some(token))
            .header("accept", "text/event-stream")
            .header("last-event-id", last_event_id),
    )
    .await
}

/// What the layer protects against, shown without it: bob names alice's event id on his own
/// session, and rmcp replays her answer to him. (If this stops holding, rmcp scopes its
/// resumption by session and the option is defence in depth only.)
#[tokio::test]
async fn without_the_option_bob_resumes_alices_stream_on_his_session() {
    let server = serve_with_events(SessionBindingLayer::new()).await;
    let raw = Raw::new(&server);
    let alices = raw.open_session(Some(&alice(1))).await;
    let ids = alice_calls_whoami(&raw, &alices).await;
    let bobs = raw.open_session(Some(&bob(1))).await;
    let stolen = resume(&raw, &bobs, &bob(2), &ids[0]).await;
    assert_eq!(stolen.status, StatusCode::OK, "{stolen:?}");
    assert!(
        stolen.text.contains("alice"),
        "rmcp did not replay alice's answer: {stolen:?}"
    );
}

#[tokio::test]
async fn with_bound_event_ids_bob_cannot_resume_alices_stream_and_alice_can() {
    let secret = KeySecret::from_material(b"event id test secret, 32 bytes ok").unwrap();
    let server = serve_with_events(SessionBindingLayer::new().bind_event_ids(secret)).await;
    let raw = Raw::new(&server);
    let alices = raw.open_session(Some(&alice(1))).await;
    let ids = alice_calls_whoami(&raw, &alices).await;
    for id in &ids {
        let (event, tag) = id
            .split_once('~')
            .unwrap_or_else(|| panic!("untagged id {id}"));
        assert!(event.starts_with('e') && tag.len() == 32, "{id}");
    }
    let bobs = raw.open_session(Some(&bob(1))).await;
    let forwarded = server.forwarded_count();

    // alice's tagged id, her bare id, and a made-up tag: all refused on bob's session.
    let (bare, _) = ids[0].split_once('~').unwrap();
    let forged = format!("{bare}~{}", "0".repeat(32));
    for last_event_id in [ids[0].as_str(), bare, forged.as_str()] {
        let answer = resume(&raw, &bobs, &bob(2), last_event_id).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{last_event_id}: {answer:?}"
        );
        assert!(!answer.text.contains("alice"), "{answer:?}");
        assert_eq!(
            answer.json()["error"]["message"],
            json!("Bad Request: Last-Event-ID was not issued on this session")
        );
    }
    assert_eq!(
        server.forwarded_count(),
        forwarded,
        "a refused resumption was forwarded"
    );

    // alice resumes her own stream: the id reaches rmcp without its tag, and she gets her
    // answer again, its id tagged.
    let answer = resume(&raw, &alices, &alice(3), &ids[0]).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert!(answer.text.contains("alice"), "{answer:?}");
    let seen = server.seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(seen.last_event_id.as_deref(), Some(bare));
    assert_eq!(event_ids(&answer.text), ids[1..]);
}

/// With the option, a request without a session has its `Last-Event-ID` removed (no id is any
/// use without a session); on sessionless revisions (2026-07-28) the layer removes it anyway.
#[tokio::test]
async fn with_bound_event_ids_a_request_without_session_loses_last_event_id() {
    let secret = KeySecret::random();
    let server = serve_with_events(SessionBindingLayer::new().bind_event_ids(secret)).await;
    let raw = Raw::new(&server);
    for version in [None, Some("2026-07-28")] {
        let mut request = raw
            .request(reqwest::Method::POST, None, Some(&alice(1)))
            .header("last-event-id", "e1")
            .body(initialize_body().to_string());
        if let Some(version) = version {
            request = request.header("mcp-protocol-version", version);
        }
        Raw::send(request).await;
        let seen = server.seen.lock().unwrap().last().cloned().unwrap();
        assert_eq!(
            seen.last_event_id, None,
            "{version:?}: Last-Event-ID reached rmcp"
        );
    }
}
