//! A conformance suite for [`BindingStore`] implementations.
//!
//! Every check panics with a message naming the broken rule. Run them all from a test of your
//! store:
//!
//! ```
//! # #[cfg(feature = "memory")]
//! #[tokio::test]
//! async fn my_store_conforms() {
//!     mcp_session_binding::store::conformance::run_all(&mcp_session_binding::store::MemoryStore::new()).await;
//! }
//! ```
//!
//! The checks use fresh random session ids, so they can run against a store that holds other
//! data (a shared Redis, say). They sleep for a few hundred milliseconds to observe expiry; the
//! whole suite takes about three seconds.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use super::{BindOutcome, BindingStore, Lookup, Owner, SessionKey};
use crate::Identity;

const LONG: Duration = Duration::from_secs(300);
/// Short enough to wait out, long enough not to expire between two calls on a busy machine.
const SHORT: Duration = Duration::from_millis(600);

/// Runs every check.
pub async fn run_all<S: BindingStore>(store: &S) {
    bind_is_insert_if_absent(store).await;
    anonymous_and_users_are_distinct(store).await;
    end_is_a_tombstone_and_idempotent(store).await;
    bindings_expire(store).await;
    tombstones_expire(store).await;
    sliding_expiry_keeps_active_sessions(store).await;
    concurrent_binds_have_one_winner(store).await;
}

/// A session key no other check or run uses.
#[must_use]
pub fn fresh_key() -> SessionKey {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    SessionKey::from_session_id(&format!("conformance-{nanos}-{n}-{}", std::process::id()))
}

fn user(sub: &str) -> Owner {
    Owner::User(Identity::new("https://issuer.example", sub).expect("valid identity"))
}

/// `bind` creates once, then reports the existing owner and never overwrites it.
pub async fn bind_is_insert_if_absent<S: BindingStore>(store: &S) {
    let key = fresh_key();
    let (alice, bob) = (user("alice"), user("bob"));
    assert_eq!(
        store.lookup(key, None).await.expect("lookup"),
        Lookup::Missing,
        "a fresh key is missing"
    );
    assert_eq!(
        store.bind(key, &alice, LONG).await.expect("bind"),
        BindOutcome::Created
    );
    assert_eq!(
        store.bind(key, &bob, LONG).await.expect("bind"),
        BindOutcome::AlreadyBound(alice.clone()),
        "a second bind must report the first owner"
    );
    assert_eq!(
        store.bind(key, &alice, LONG).await.expect("bind"),
        BindOutcome::AlreadyBound(alice.clone()),
        "a second bind by the same owner is not a create"
    );
    assert_eq!(
        store.lookup(key, None).await.expect("lookup"),
        Lookup::Bound(alice),
        "never overwritten"
    );
    let other = fresh_key();
    assert_eq!(
        store.lookup(other, None).await.expect("lookup"),
        Lookup::Missing,
        "keys are independent"
    );
}

/// The anonymous marker round-trips and differs from every user; `iss` is part of the owner.
pub async fn anonymous_and_users_are_distinct<S: BindingStore>(store: &S) {
    let anon = fresh_key();
    assert_eq!(
        store
            .bind(anon, &Owner::Anonymous, LONG)
            .await
            .expect("bind"),
        BindOutcome::Created
    );
    assert_eq!(
        store.lookup(anon, None).await.expect("lookup"),
        Lookup::Bound(Owner::Anonymous)
    );

    let key = fresh_key();
    let other_issuer = Owner::User(Identity::new("https://other.example", "alice").expect("valid"));
    store.bind(key, &other_issuer, LONG).await.expect("bind");
    let found = store.lookup(key, None).await.expect("lookup");
    assert_eq!(
        found,
        Lookup::Bound(other_issuer),
        "iss must survive the round trip"
    );
    assert_ne!(found, Lookup::Bound(user("alice")));
}

/// `end` leaves a tombstone, is idempotent, and a tombstoned key cannot be bound again.
pub async fn end_is_a_tombstone_and_idempotent<S: BindingStore>(store: &S) {
    let key = fresh_key();
    store.bind(key, &user("alice"), LONG).await.expect("bind");
    store.end(key, LONG).await.expect("end");
    assert_eq!(
        store.lookup(key, None).await.expect("lookup"),
        Lookup::Ended
    );
    store.end(key, LONG).await.expect("a second end succeeds");
    assert_eq!(
        store.lookup(key, None).await.expect("lookup"),
        Lookup::Ended
    );
    assert_eq!(
        store.bind(key, &user("mallory"), LONG).await.expect("bind"),
        BindOutcome::AlreadyEnded,
        "an ended session is never re-bound"
    );
    assert_eq!(
        store.lookup(key, Some(LONG)).await.expect("lookup"),
        Lookup::Ended,
        "sliding does not revive"
    );

    let never_bound = fresh_key();
    store
        .end(never_bound, LONG)
        .await
        .expect("end of an unknown key succeeds");
    assert_eq!(
        store.lookup(never_bound, None).await.expect("lookup"),
        Lookup::Ended
    );
}

/// A binding is missing after its TTL, and the key can then be bound afresh.
pub async fn bindings_expire<S: BindingStore>(store: &S) {
    let key = fresh_key();
    store.bind(key, &user("alice"), SHORT).await.expect("bind");
    assert_eq!(
        store.lookup(key, None).await.expect("lookup"),
        Lookup::Bound(user("alice"))
    );
    tokio::time::sleep(SHORT * 2).await;
    assert_eq!(
        store.lookup(key, None).await.expect("lookup"),
        Lookup::Missing,
        "expired binding"
    );
    assert_eq!(
        store.bind(key, &user("bob"), LONG).await.expect("bind"),
        BindOutcome::Created
    );
}

/// A tombstone is missing after its own TTL.
pub async fn tombstones_expire<S: BindingStore>(store: &S) {
    let key = fresh_key();
    store.bind(key, &user("alice"), LONG).await.expect("bind");
    store.end(key, SHORT).await.expect("end");
    assert_eq!(
        store.lookup(key, None).await.expect("lookup"),
        Lookup::Ended
    );
    tokio::time::sleep(SHORT * 2).await;
    assert_eq!(
        store.lookup(key, None).await.expect("lookup"),
        Lookup::Missing,
        "expired tombstone"
    );
}

/// Lookups with `slide` keep a binding alive past its first TTL; without, it expires.
pub async fn sliding_expiry_keeps_active_sessions<S: BindingStore>(store: &S) {
    let (active, idle) = (fresh_key(), fresh_key());
    store
        .bind(active, &user("alice"), SHORT)
        .await
        .expect("bind");
    store.bind(idle, &user("alice"), SHORT).await.expect("bind");
    let step = SHORT / 4;
    for _ in 0..12 {
        tokio::time::sleep(step).await;
        assert_eq!(
            store.lookup(active, Some(SHORT)).await.expect("lookup"),
            Lookup::Bound(user("alice")),
            "an active session must stay bound"
        );
    }
    assert_eq!(
        store.lookup(idle, None).await.expect("lookup"),
        Lookup::Missing,
        "an idle one expires"
    );
}

/// Many concurrent binds of one key: exactly one creates, all others see the winner.
pub async fn concurrent_binds_have_one_winner<S: BindingStore>(store: &S) {
    for _ in 0..20 {
        let key = fresh_key();
        let owners: Vec<Owner> = (0..16).map(|i| user(&format!("user-{i}"))).collect();
        let outcomes =
            futures::future::join_all(owners.iter().map(|owner| store.bind(key, owner, LONG)))
                .await;
        let outcomes: Vec<BindOutcome> = outcomes.into_iter().map(|r| r.expect("bind")).collect();
        let winners: Vec<usize> = (0..owners.len())
            .filter(|&i| outcomes[i] == BindOutcome::Created)
            .collect();
        assert_eq!(winners.len(), 1, "exactly one bind wins: {outcomes:?}");
        let winner = owners[winners[0]].clone();
        for outcome in outcomes.iter().filter(|o| **o != BindOutcome::Created) {
            assert_eq!(*outcome, BindOutcome::AlreadyBound(winner.clone()));
        }
        assert_eq!(
            store.lookup(key, None).await.expect("lookup"),
            Lookup::Bound(winner)
        );
    }
}
