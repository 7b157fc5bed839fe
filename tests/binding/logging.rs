//! Log events: stable reason codes with `iss`, `sub` and a hashed session id; never a token, never
//! the session id itself.

use crate::support;

use mcp_session_binding::{
    SessionBindingLayer,
    store::{BindingStore, MemoryStore},
};
use support::{logs::Captured, *};

/// Lines of the events with a `reason` field.
fn events(captured: &Captured) -> Vec<String> {
    captured.lines_with("reason=")
}

// The server runs on the test's own thread (current-thread runtime), so the thread-local
// subscriber sees its events.
#[tokio::test(flavor = "current_thread")]
async fn events_carry_reason_identity_and_hashed_session_only() {
    let captured = Captured::default();
    let _guard = captured.install();

    let store = MemoryStore::new();
    let server = serve(SessionBindingLayer::with_store(store.clone())).await;
    let raw = Raw::new(&server);
    let alice = token(ISS_A, "alice", 1);
    let mallory = token(ISS_A, "mallory", 1);
    let session = raw.open_session(Some(&alice)).await;
    raw.whoami(&session, Some(&mallory), 1).await;
    raw.whoami(&session, Some(&alice), 2).await;
    raw.whoami("never-issued-session", Some(&alice), 3).await;

    let events = events(&captured);
    let short = store.key_derivation().session(&session).short();
    let find = |reason: &str| {
        events
            .iter()
            .find(|line| line.contains(&format!("reason=\"{reason}\"")))
            .unwrap_or_else(|| panic!("no {reason} event in {events:#?}"))
            .clone()
    };
    let bound = find("bound");
    assert!(
        bound.contains("sub=\"alice\"") && bound.contains(ISS_A),
        "{bound}"
    );
    assert!(bound.contains(&short), "{bound}");
    let mismatch = find("mismatch");
    assert!(mismatch.contains("sub=\"mallory\"") && mismatch.contains("owner_sub=\"alice\""));
    assert!(mismatch.contains(&short));
    let ended = find("ended");
    assert!(ended.contains(&short), "{ended}");
    let ended_session = find("ended_session");
    assert!(ended_session.contains("sub=\"alice\""), "{ended_session}");
    find("unknown_session");

    for line in &events {
        assert!(!line.contains(&session), "session id logged: {line}");
        assert!(
            !line.contains(&alice) && !line.contains(&mallory),
            "token logged: {line}"
        );
        assert!(
            !line.contains("never-issued-session"),
            "session id logged: {line}"
        );
    }
}
