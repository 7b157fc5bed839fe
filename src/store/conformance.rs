//! The conformance suite for [`BindingStore`] implementations (feature `conformance`): see
//! [`run_all`].

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use super::{BindOutcome, BindingStore, Lookup, Owner, Record, Revoked, SessionKey};
use crate::Identity;

const LONG: Duration = Duration::from_secs(300);
/// Short enough to wait out, long enough not to expire between two calls on a busy machine.
const SHORT: Duration = Duration::from_millis(600);
/// The limit the checks that are not about limits pass.
const NO_LIMIT: usize = usize::MAX;

/// Checks that `store` has the semantics every [`BindingStore`] must have (see the
/// [store module](super)): insert-if-absent binds, tombstones, expiry and sliding expiry, the
/// per-owner limit and its anonymous budget, the bound on tombstones, task records apart from
/// bindings, and stable key derivation.
///
/// The checks use fresh random ids and fresh users, so they can run against a store that holds
/// other data (a shared Redis, say); only the anonymous budget's check needs that nothing else
/// binds or ends anonymous sessions while it runs. They sleep to observe expiry: the suite
/// takes about five seconds.
///
/// # Panics
///
/// On the first rule the store breaks, with a message that names it.
///
/// ```
/// # #[cfg(feature = "memory")]
/// #[tokio::test]
/// async fn my_store_conforms() {
///     # let my_store = mcp_session_binding::store::MemoryStore::new();
///     mcp_session_binding::store::conformance::run_all(&my_store).await;
/// }
/// ```
pub async fn run_all<S: BindingStore>(store: &S) {
    bind_is_insert_if_absent(store).await;
    anonymous_and_users_are_distinct(store).await;
    end_is_a_tombstone_and_idempotent(store).await;
    bindings_expire(store).await;
    tombstones_expire(store).await;
    sliding_expiry_keeps_active_sessions(store).await;
    concurrent_binds_have_one_winner(store).await;
    limit_counts_live_bindings_per_owner(store).await;
    ending_a_binding_frees_its_slot(store).await;
    expiry_frees_a_slot_and_sliding_keeps_it(store).await;
    concurrent_binds_never_exceed_the_limit(store).await;
    anonymous_budget_is_separate(store).await;
    tombstones_of_one_owner_are_bounded(store).await;
    tasks_are_insert_if_absent_and_apart_from_sessions(store).await;
    tasks_never_count_against_the_limit(store).await;
    task_records_expire_and_slide(store).await;
    bindings_remember_when_they_were_made(store).await;
    ending_one_owner_ends_all_its_sessions_and_tasks(store).await;
    key_derivation_is_stable(store);
}

/// The store derives one key per id, the same on every call, and session and task ids apart:
/// the layers derive a key when they bind and again on every check.
fn key_derivation_is_stable<S: BindingStore>(store: &S) {
    let id = "3f2a9c1e-0b7d-4e8a-9c55-2d1f6b8e7a40";
    let keys = store.key_derivation();
    assert_eq!(keys.session(id), store.key_derivation().session(id));
    assert_eq!(keys.task(id), store.key_derivation().task(id));
    assert_ne!(keys.session(id), keys.session("another id"));
    assert_ne!(
        keys.session(id),
        keys.task(id),
        "session and task keys share a space"
    );
}

/// An id no other check or run uses.
fn fresh_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("conformance-{nanos}-{n}-{}", std::process::id())
}

/// A session key no other check or run uses.
fn fresh_key<S: BindingStore>(store: &S) -> SessionKey {
    store.key_derivation().session(&fresh_id())
}

/// A task key no other check or run uses.
fn fresh_task<S: BindingStore>(store: &S) -> SessionKey {
    store.key_derivation().task(&fresh_id())
}

fn user(sub: &str) -> Owner {
    Owner::User(Identity::new("https://issuer.example", sub).expect("valid identity"))
}

/// A user no other check or run uses.
fn fresh_user() -> Owner {
    user(&format!("user-{}", fresh_id()))
}

/// Binds a fresh key to `owner`.
async fn bind_fresh<S: BindingStore>(
    store: &S,
    owner: &Owner,
    ttl: Duration,
    limit: usize,
) -> BindOutcome {
    let key = fresh_key(store);
    store
        .bind(Record::new(key, owner, ttl), limit)
        .await
        .expect("bind")
}

/// Records a fresh task of `owner`.
async fn record_fresh<S: BindingStore>(store: &S, owner: &Owner, ttl: Duration) -> BindOutcome {
    let key = fresh_task(store);
    store
        .bind_task(Record::new(key, owner, ttl))
        .await
        .expect("bind_task")
}

fn is_limit(outcome: &BindOutcome) -> bool {
    matches!(outcome, BindOutcome::LimitReached { .. })
}

/// `bind` creates once, then reports the existing owner and never overwrites it.
async fn bind_is_insert_if_absent<S: BindingStore>(store: &S) {
    let key = fresh_key(store);
    let (alice, bob) = (user("alice"), user("bob"));
    assert_eq!(
        store.lookup(key, None).await.expect("lookup"),
        Lookup::Missing,
        "a fresh key is missing"
    );
    assert_eq!(
        store
            .bind(Record::new(key, &alice, LONG), NO_LIMIT)
            .await
            .expect("bind"),
        BindOutcome::Created
    );
    assert_eq!(
        store
            .bind(Record::new(key, &bob, LONG), NO_LIMIT)
            .await
            .expect("bind"),
        BindOutcome::AlreadyBound(alice.clone()),
        "a second bind must report the first owner"
    );
    assert_eq!(
        store
            .bind(Record::new(key, &alice, LONG), NO_LIMIT)
            .await
            .expect("bind"),
        BindOutcome::AlreadyBound(alice.clone()),
        "a second bind by the same owner is not a create"
    );
    assert_eq!(
        store.lookup(key, None).await.expect("lookup"),
        Lookup::Bound(alice),
        "never overwritten"
    );
    let other = fresh_key(store);
    assert_eq!(
        store.lookup(other, None).await.expect("lookup"),
        Lookup::Missing,
        "keys are independent"
    );
}

/// The anonymous marker round-trips and differs from every user; `iss` is part of the owner.
async fn anonymous_and_users_are_distinct<S: BindingStore>(store: &S) {
    let anon = fresh_key(store);
    assert_eq!(
        store
            .bind(Record::new(anon, &Owner::Anonymous, LONG), NO_LIMIT)
            .await
            .expect("bind"),
        BindOutcome::Created
    );
    assert_eq!(
        store.lookup(anon, None).await.expect("lookup"),
        Lookup::Bound(Owner::Anonymous)
    );

    let key = fresh_key(store);
    let other_issuer = Owner::User(Identity::new("https://other.example", "alice").expect("valid"));
    store
        .bind(Record::new(key, &other_issuer, LONG), NO_LIMIT)
        .await
        .expect("bind");
    let found = store.lookup(key, None).await.expect("lookup");
    assert_eq!(
        found,
        Lookup::Bound(other_issuer),
        "iss must survive the round trip"
    );
    assert_ne!(found, Lookup::Bound(user("alice")));
}

/// `end` leaves a tombstone, is idempotent, and a tombstoned key cannot be bound again.
async fn end_is_a_tombstone_and_idempotent<S: BindingStore>(store: &S) {
    let key = fresh_key(store);
    store
        .bind(Record::new(key, &user("alice"), LONG), NO_LIMIT)
        .await
        .expect("bind");
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
        store
            .bind(Record::new(key, &user("mallory"), LONG), NO_LIMIT)
            .await
            .expect("bind"),
        BindOutcome::AlreadyEnded,
        "an ended session is never re-bound"
    );
    assert_eq!(
        store.lookup(key, Some(LONG)).await.expect("lookup"),
        Lookup::Ended,
        "sliding does not revive"
    );

    let never_bound = fresh_key(store);
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
async fn bindings_expire<S: BindingStore>(store: &S) {
    let key = fresh_key(store);
    store
        .bind(Record::new(key, &user("alice"), SHORT), NO_LIMIT)
        .await
        .expect("bind");
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
        store
            .bind(Record::new(key, &user("bob"), LONG), NO_LIMIT)
            .await
            .expect("bind"),
        BindOutcome::Created
    );
}

/// A tombstone is missing after its own TTL.
async fn tombstones_expire<S: BindingStore>(store: &S) {
    let key = fresh_key(store);
    store
        .bind(Record::new(key, &user("alice"), LONG), NO_LIMIT)
        .await
        .expect("bind");
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
async fn sliding_expiry_keeps_active_sessions<S: BindingStore>(store: &S) {
    let (active, idle) = (fresh_key(store), fresh_key(store));
    store
        .bind(Record::new(active, &user("alice"), SHORT), NO_LIMIT)
        .await
        .expect("bind");
    store
        .bind(Record::new(idle, &user("alice"), SHORT), NO_LIMIT)
        .await
        .expect("bind");
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
async fn concurrent_binds_have_one_winner<S: BindingStore>(store: &S) {
    for _ in 0..20 {
        let key = fresh_key(store);
        let owners: Vec<Owner> = (0..16).map(|i| user(&format!("user-{i}"))).collect();
        let outcomes = futures::future::join_all(
            owners
                .iter()
                .map(|owner| store.bind(Record::new(key, owner, LONG), NO_LIMIT)),
        )
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

/// `bind` creates at most `limit` live bindings per owner; over it nothing is written and the
/// outcome says how long until the oldest expires. Other owners are not affected, and a key that
/// is already bound reports its owner whatever the count.
async fn limit_counts_live_bindings_per_owner<S: BindingStore>(store: &S) {
    let (alice, bob) = (fresh_user(), fresh_user());
    let keys: Vec<SessionKey> = (0..3).map(|_| fresh_key(store)).collect();
    for key in &keys {
        assert_eq!(
            store
                .bind(Record::new(*key, &alice, LONG), 3)
                .await
                .expect("bind"),
            BindOutcome::Created,
            "under the limit"
        );
    }
    let over = fresh_key(store);
    let outcome = store
        .bind(Record::new(over, &alice, LONG), 3)
        .await
        .expect("bind");
    let BindOutcome::LimitReached { retry_after } = outcome else {
        panic!("a fourth live binding with limit 3 must be refused: {outcome:?}");
    };
    assert!(
        retry_after > Duration::ZERO && retry_after <= LONG,
        "retry_after is the time until the oldest binding expires: {retry_after:?}"
    );
    assert_eq!(
        store.lookup(over, None).await.expect("lookup"),
        Lookup::Missing,
        "a refused bind writes nothing"
    );
    assert_eq!(
        store
            .bind(Record::new(keys[0], &alice, LONG), 3)
            .await
            .expect("bind"),
        BindOutcome::AlreadyBound(alice.clone()),
        "an existing key is reported, not counted"
    );
    assert_eq!(
        store
            .bind(Record::new(over, &bob, LONG), 3)
            .await
            .expect("bind"),
        BindOutcome::Created,
        "another owner has its own count"
    );
    assert!(
        is_limit(&bind_fresh(store, &alice, LONG, 0).await),
        "limit 0 refuses"
    );
    assert!(
        is_limit(&bind_fresh(store, &bob, LONG, 1).await),
        "bob holds one"
    );
}

/// Ending a binding (the owner's `DELETE`, or a refusal) frees its slot at once; ending it twice
/// frees nothing more.
async fn ending_a_binding_frees_its_slot<S: BindingStore>(store: &S) {
    let alice = fresh_user();
    let (a, b) = (fresh_key(store), fresh_key(store));
    store
        .bind(Record::new(a, &alice, LONG), 2)
        .await
        .expect("bind");
    store
        .bind(Record::new(b, &alice, LONG), 2)
        .await
        .expect("bind");
    assert!(is_limit(&bind_fresh(store, &alice, LONG, 2).await));
    store.end(a, LONG).await.expect("end");
    store.end(a, LONG).await.expect("a second end");
    let c = fresh_key(store);
    assert_eq!(
        store
            .bind(Record::new(c, &alice, LONG), 2)
            .await
            .expect("bind"),
        BindOutcome::Created,
        "the ended binding's slot is free"
    );
    assert!(
        is_limit(&bind_fresh(store, &alice, LONG, 2).await),
        "and only that one"
    );
    // Ending a key that was never bound frees nothing.
    store.end(fresh_key(store), LONG).await.expect("end");
    assert!(is_limit(&bind_fresh(store, &alice, LONG, 2).await));
}

/// An expired binding frees its slot; a binding kept alive by sliding lookups keeps it, past its
/// first TTL.
async fn expiry_frees_a_slot_and_sliding_keeps_it<S: BindingStore>(store: &S) {
    let (alice, bob) = (fresh_user(), fresh_user());
    bind_fresh(store, &alice, SHORT, 1).await;
    let active = fresh_key(store);
    store
        .bind(Record::new(active, &bob, SHORT), 1)
        .await
        .expect("bind");
    let outcome = bind_fresh(store, &alice, SHORT, 1).await;
    let BindOutcome::LimitReached { retry_after } = outcome else {
        panic!("alice holds her one binding: {outcome:?}");
    };
    assert!(retry_after <= SHORT, "{retry_after:?}");
    let step = SHORT / 4;
    for _ in 0..12 {
        tokio::time::sleep(step).await;
        assert_eq!(
            store.lookup(active, Some(SHORT)).await.expect("lookup"),
            Lookup::Bound(bob.clone())
        );
    }
    assert_eq!(
        bind_fresh(store, &alice, SHORT, 1).await,
        BindOutcome::Created,
        "an expired binding frees its slot"
    );
    assert!(
        is_limit(&bind_fresh(store, &bob, SHORT, 1).await),
        "a binding kept alive by sliding still counts after its first TTL"
    );
}

/// Many concurrent binds of one owner: exactly `limit` succeed.
async fn concurrent_binds_never_exceed_the_limit<S: BindingStore>(store: &S) {
    for _ in 0..5 {
        let alice = fresh_user();
        let keys: Vec<SessionKey> = (0..16).map(|_| fresh_key(store)).collect();
        let outcomes = futures::future::join_all(
            keys.iter()
                .map(|key| store.bind(Record::new(*key, &alice, LONG), 5)),
        )
        .await;
        let created = outcomes
            .into_iter()
            .map(|r| r.expect("bind"))
            .filter(|o| *o == BindOutcome::Created)
            .count();
        assert_eq!(created, 5, "exactly the limit of concurrent binds succeed");
    }
}

/// All anonymous sessions share one budget, separate from every user's: at the anonymous limit,
/// users still bind; ending an anonymous binding frees an anonymous slot.
async fn anonymous_budget_is_separate<S: BindingStore>(store: &S) {
    // How many live anonymous bindings the store already holds: the first limit that admits one
    // more is that count plus one.
    let first = fresh_key(store);
    let mut held = None;
    for limit in 1..=1000 {
        match store
            .bind(Record::new(first, &Owner::Anonymous, LONG), limit)
            .await
            .expect("bind")
        {
            BindOutcome::Created => {
                held = Some(limit);
                break;
            }
            outcome => assert!(is_limit(&outcome), "{outcome:?}"),
        }
    }
    let held = held.expect("the store holds fewer than 1000 live anonymous bindings");
    let second = fresh_key(store);
    assert_eq!(
        store
            .bind(Record::new(second, &Owner::Anonymous, LONG), held + 1)
            .await
            .expect("bind"),
        BindOutcome::Created
    );
    assert!(
        is_limit(&bind_fresh(store, &Owner::Anonymous, LONG, held + 1).await),
        "the anonymous budget is spent"
    );
    assert_eq!(
        bind_fresh(store, &fresh_user(), LONG, 1).await,
        BindOutcome::Created,
        "a spent anonymous budget never locks out a user"
    );
    store.end(first, LONG).await.expect("end");
    assert_eq!(
        bind_fresh(store, &Owner::Anonymous, LONG, held + 1).await,
        BindOutcome::Created,
        "ending an anonymous binding frees an anonymous slot"
    );
    store.end(second, LONG).await.expect("end");
}

/// An owner's tombstones are bounded by its limit: many sessions bound and ended by one owner
/// leave at most twice the limit of tombstones (when it ends `limit` sessions at once, after
/// many), the newest `limit` of them at least; every one of those sessions stays ended or
/// unknown (never bound again by itself), and neither the owner's live bindings nor other
/// owners' tombstones are touched.
async fn tombstones_of_one_owner_are_bounded<S: BindingStore>(store: &S) {
    const LIMIT: usize = 3;
    let (alice, bob) = (fresh_user(), fresh_user());
    let bobs = fresh_key(store);
    store
        .bind(Record::new(bobs, &bob, LONG), LIMIT)
        .await
        .expect("bind");
    store.end(bobs, LONG).await.expect("end");
    let held = fresh_key(store);
    assert_eq!(
        store
            .bind(Record::new(held, &alice, LONG), LIMIT)
            .await
            .expect("bind"),
        BindOutcome::Created
    );
    let mut ended = Vec::new();
    // One at a time, far past the limit: each bind is under it, as the ends free the slots.
    for _ in 0..10 * LIMIT {
        let key = fresh_key(store);
        assert_eq!(
            store
                .bind(Record::new(key, &alice, LONG), LIMIT)
                .await
                .expect("bind"),
            BindOutcome::Created,
            "ending frees the slot"
        );
        store.end(key, LONG).await.expect("end");
        ended.push(key);
    }
    // Then every slot at once, and all of them ended: the most there can be.
    let mut last: Vec<SessionKey> = (1..LIMIT).map(|_| fresh_key(store)).collect();
    for key in &last {
        assert_eq!(
            store
                .bind(Record::new(*key, &alice, LONG), LIMIT)
                .await
                .expect("bind"),
            BindOutcome::Created
        );
    }
    assert_eq!(
        store.lookup(held, None).await.expect("lookup"),
        Lookup::Bound(alice.clone()),
        "a live binding is never evicted"
    );
    for key in &ended[ended.len() - LIMIT..] {
        assert_eq!(
            store.lookup(*key, None).await.expect("lookup"),
            Lookup::Ended,
            "binds evict the oldest tombstones, and keep the newest `limit`"
        );
    }
    last.push(held);
    for key in &last {
        store.end(*key, LONG).await.expect("end");
    }
    ended.extend(&last);
    let mut tombstones = 0;
    for key in &ended {
        match store.lookup(*key, None).await.expect("lookup") {
            Lookup::Ended => tombstones += 1,
            Lookup::Missing => {}
            found @ Lookup::Bound(_) => panic!("an ended session is bound: {found:?}"),
        }
    }
    assert!(
        tombstones <= 2 * LIMIT,
        "{tombstones} tombstones of {} ended sessions: at most twice the limit of {LIMIT}",
        ended.len()
    );
    for key in &ended[ended.len() - LIMIT..] {
        assert_eq!(
            store.lookup(*key, None).await.expect("lookup"),
            Lookup::Ended,
            "the newest `limit` tombstones are kept"
        );
    }
    assert_eq!(
        store.lookup(bobs, None).await.expect("lookup"),
        Lookup::Ended,
        "another owner's tombstones are its own"
    );
}

/// `bind_task` records once, then reports the recorded owner and never overwrites it; task
/// records and session bindings never see each other.
async fn tasks_are_insert_if_absent_and_apart_from_sessions<S: BindingStore>(store: &S) {
    let (alice, bob) = (fresh_user(), fresh_user());
    let task = fresh_task(store);
    assert_eq!(
        store.task_owner(task, None).await.expect("task_owner"),
        None,
        "a fresh task is unknown"
    );
    assert_eq!(
        store
            .bind_task(Record::new(task, &alice, LONG))
            .await
            .expect("bind_task"),
        BindOutcome::Created
    );
    assert_eq!(
        store
            .bind_task(Record::new(task, &bob, LONG))
            .await
            .expect("bind_task"),
        BindOutcome::AlreadyBound(alice.clone()),
        "a second record of a task reports the first owner"
    );
    assert_eq!(
        store
            .bind_task(Record::new(task, &alice, LONG))
            .await
            .expect("bind_task"),
        BindOutcome::AlreadyBound(alice.clone()),
        "a second record by the same owner is not a create"
    );
    assert_eq!(
        store
            .task_owner(task, Some(LONG))
            .await
            .expect("task_owner"),
        Some(alice.clone()),
        "never overwritten"
    );
    let anonymous = fresh_task(store);
    store
        .bind_task(Record::new(anonymous, &Owner::Anonymous, LONG))
        .await
        .expect("bind_task");
    assert_eq!(
        store.task_owner(anonymous, None).await.expect("task_owner"),
        Some(Owner::Anonymous)
    );
    assert_eq!(
        store.lookup(task, None).await.expect("lookup"),
        Lookup::Missing,
        "a task record is not a session binding"
    );
    let session = fresh_key(store);
    store
        .bind(Record::new(session, &alice, LONG), NO_LIMIT)
        .await
        .expect("bind");
    assert_eq!(
        store.task_owner(session, None).await.expect("task_owner"),
        None,
        "a session binding is not a task record"
    );
}

/// Task records count towards no limit: an owner at its limit of sessions still records tasks,
/// and an owner with many tasks still binds up to its limit of sessions.
async fn tasks_never_count_against_the_limit<S: BindingStore>(store: &S) {
    let alice = fresh_user();
    for _ in 0..5 {
        assert_eq!(
            record_fresh(store, &alice, LONG).await,
            BindOutcome::Created,
            "tasks have no limit"
        );
    }
    for _ in 0..2 {
        assert_eq!(
            bind_fresh(store, &alice, LONG, 2).await,
            BindOutcome::Created,
            "tasks take no session slot"
        );
    }
    assert!(
        is_limit(&bind_fresh(store, &alice, LONG, 2).await),
        "the sessions alone reach the limit"
    );
    assert_eq!(
        record_fresh(store, &alice, LONG).await,
        BindOutcome::Created,
        "an owner at its session limit still records tasks"
    );
}

/// A task record is unknown after its TTL (and can then be recorded afresh); `task_owner` with
/// `slide` keeps it alive past its first TTL.
async fn task_records_expire_and_slide<S: BindingStore>(store: &S) {
    let (alice, bob) = (fresh_user(), fresh_user());
    let (active, idle) = (fresh_task(store), fresh_task(store));
    store
        .bind_task(Record::new(active, &alice, SHORT))
        .await
        .expect("bind_task");
    store
        .bind_task(Record::new(idle, &alice, SHORT))
        .await
        .expect("bind_task");
    let step = SHORT / 4;
    for _ in 0..12 {
        tokio::time::sleep(step).await;
        assert_eq!(
            store
                .task_owner(active, Some(SHORT))
                .await
                .expect("task_owner"),
            Some(alice.clone()),
            "a task checked with a slide stays recorded"
        );
    }
    assert_eq!(
        store.task_owner(idle, None).await.expect("task_owner"),
        None,
        "an expired task record"
    );
    assert_eq!(
        store
            .bind_task(Record::new(idle, &bob, LONG))
            .await
            .expect("bind_task"),
        BindOutcome::Created,
        "an expired task record is replaced"
    );
}

/// [`lookup_with_age`](BindingStore::lookup_with_age) reports when a binding was made, and a
/// slide leaves that time as it is; a tombstone, a missing key and a task key report none.
async fn bindings_remember_when_they_were_made<S: BindingStore>(store: &S) {
    // The store's clock may be another machine's (Redis): a generous window.
    const SKEW: Duration = Duration::from_secs(5);
    let key = fresh_key(store);
    let before = SystemTime::now();
    store
        .bind(Record::new(key, &user("alice"), SHORT), NO_LIMIT)
        .await
        .expect("bind");
    let after = SystemTime::now();
    let (found, bound_at) = store.lookup_with_age(key, None).await.expect("lookup");
    assert_eq!(found, Lookup::Bound(user("alice")));
    let bound_at = bound_at.expect("a binding reports when it was made");
    assert!(
        bound_at + SKEW >= before && bound_at <= after + SKEW,
        "bound at {bound_at:?}, between {before:?} and {after:?}"
    );
    // Slid past its first TTL, still the same bind time.
    for _ in 0..3 {
        tokio::time::sleep(SHORT / 3).await;
        let (found, again) = store
            .lookup_with_age(key, Some(SHORT))
            .await
            .expect("lookup");
        assert_eq!(found, Lookup::Bound(user("alice")));
        assert_eq!(again, Some(bound_at), "a slide keeps the bind time");
    }
    if let Some(now) = store.lookup_with_age_now(key, None) {
        assert_eq!(
            now.expect("lookup"),
            (Lookup::Bound(user("alice")), Some(bound_at))
        );
    }
    store.end(key, LONG).await.expect("end");
    assert_eq!(
        store.lookup_with_age(key, None).await.expect("lookup"),
        (Lookup::Ended, None)
    );
    assert_eq!(
        store
            .lookup_with_age(fresh_key(store), None)
            .await
            .expect("lookup"),
        (Lookup::Missing, None)
    );
}

/// [`end_owner`](BindingStore::end_owner) ends every live session of one owner (each reads as
/// [`Lookup::Ended`], and frees its slot) and removes every task record of it, and touches no
/// other owner's; ending an owner with nothing is a no-op.
async fn ending_one_owner_ends_all_its_sessions_and_tasks<S: BindingStore>(store: &S) {
    let (alice, bob) = (fresh_user(), fresh_user());
    let mut sessions = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let key = fresh_key(store);
        store
            .bind(Record::new(key, &alice, LONG), 10)
            .await
            .expect("bind");
        sessions.push(key);
        let task = fresh_task(store);
        store
            .bind_task(Record::new(task, &alice, LONG))
            .await
            .expect("bind_task");
        tasks.push(task);
    }
    // One of them already ended by its owner.
    store.end(sessions[0], LONG).await.expect("end");
    let (bobs, bobs_task) = (fresh_key(store), fresh_task(store));
    store
        .bind(Record::new(bobs, &bob, LONG), 10)
        .await
        .expect("bind");
    store
        .bind_task(Record::new(bobs_task, &bob, LONG))
        .await
        .expect("bind_task");
    let anonymous = fresh_key(store);
    store
        .bind(Record::new(anonymous, &Owner::Anonymous, LONG), NO_LIMIT)
        .await
        .expect("bind");

    let ended = store.end_owner(&alice, LONG).await.expect("end_owner");
    assert_eq!(
        ended,
        Revoked {
            sessions: 4,
            tasks: 5
        },
        "the live sessions and the tasks"
    );
    for key in &sessions {
        assert_eq!(
            store.lookup(*key, None).await.expect("lookup"),
            Lookup::Ended
        );
    }
    for task in &tasks {
        assert_eq!(store.task_owner(*task, None).await.expect("task"), None);
    }
    assert_eq!(
        store.lookup(bobs, None).await.expect("lookup"),
        Lookup::Bound(bob.clone()),
        "another owner keeps its sessions"
    );
    assert_eq!(
        store.task_owner(bobs_task, None).await.expect("task"),
        Some(bob.clone()),
        "and its tasks"
    );
    assert_eq!(
        store.lookup(anonymous, None).await.expect("lookup"),
        Lookup::Bound(Owner::Anonymous)
    );
    // The slots are free again.
    for _ in 0..10 {
        assert_eq!(
            bind_fresh(store, &alice, LONG, 10).await,
            BindOutcome::Created,
            "ended sessions free their slots"
        );
    }
    assert_eq!(
        store
            .end_owner(&fresh_user(), LONG)
            .await
            .expect("end_owner"),
        Revoked::default(),
        "an owner with nothing"
    );
}
