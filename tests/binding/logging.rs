//! Log events: stable reason codes with `iss`, `sub` and a hashed session id; never a token, never
//! the session id itself.

use crate::support;

use futures::future::BoxFuture;
use mcp_session_binding::{
    SessionBindingLayer,
    store::{
        BindOutcome, BindingStore, KeyDerivation, KeySecret, Lookup, MemoryStore, Owner,
        SessionKey, StoreError,
    },
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

/// A `MemoryStore` whose key derivation a test switches from format 1 (SHA-256) to format 2
/// (keyed, still reading format 1), as a deployment that gets a key secret does.
#[derive(Clone)]
struct Switching {
    inner: MemoryStore,
    keyed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    format_1: std::sync::Arc<KeyDerivation>,
    format_2: std::sync::Arc<KeyDerivation>,
}

impl BindingStore for Switching {
    fn bind<'a>(
        &'a self,
        key: SessionKey,
        owner: &'a Owner,
        ttl: std::time::Duration,
        limit: usize,
    ) -> BoxFuture<'a, Result<BindOutcome, StoreError>> {
        self.inner.bind(key, owner, ttl, limit)
    }

    fn lookup(
        &self,
        key: SessionKey,
        slide: Option<std::time::Duration>,
    ) -> BoxFuture<'_, Result<Lookup, StoreError>> {
        self.inner.lookup(key, slide)
    }

    fn end(
        &self,
        key: SessionKey,
        ttl: std::time::Duration,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.inner.end(key, ttl)
    }

    fn key_derivation(&self) -> &KeyDerivation {
        if self.keyed.load(std::sync::atomic::Ordering::SeqCst) {
            &self.format_2
        } else {
            &self.format_1
        }
    }
}

/// A session bound under its format-1 key and refused after the switch to keyed keys: the
/// events name the key that was found and tombstoned, not the keyed one.
#[tokio::test(flavor = "current_thread")]
async fn a_session_found_under_its_format_1_key_is_logged_under_it() {
    let captured = Captured::default();
    let _guard = captured.install();
    let store = Switching {
        inner: MemoryStore::new(),
        keyed: Default::default(),
        format_1: std::sync::Arc::new(KeyDerivation::sha256()),
        format_2: std::sync::Arc::new(
            KeyDerivation::keyed(KeySecret::from_material(&[7; 32]).unwrap())
                .reading_format_1(true),
        ),
    };
    let server = serve(SessionBindingLayer::with_store(store.clone())).await;
    let raw = Raw::new(&server);
    let session = raw.open_session(Some(&token(ISS_A, "alice", 1))).await;
    store.keyed.store(true, std::sync::atomic::Ordering::SeqCst);
    raw.whoami(&session, Some(&token(ISS_A, "mallory", 1)), 1)
        .await;

    let format_1 = store.format_1.session(&session).short();
    let format_2 = store.format_2.session(&session).short();
    assert_ne!(format_1, format_2);
    let events = events(&captured);
    for reason in ["mismatch", "ended"] {
        let line = events
            .iter()
            .find(|line| line.contains(&format!("reason=\"{reason}\"")))
            .unwrap_or_else(|| panic!("no {reason} event in {events:#?}"));
        assert!(line.contains(&format_1), "{line}");
        assert!(!line.contains(&format_2), "{line}");
    }
}
