//! Memory per binding in `MemoryStore`, counted by a global allocator (`stats_alloc`).
//!
//! ```text
//! cargo run --release --all-features --example memory_per_binding [-- SESSIONS [PER_USER]]
//! ```
//!
//! Binds `SESSIONS` sessions (default 1,000,000) with 36-character UUID-like session ids, for
//! users with a realistic issuer (`https://login.example.com/tenant-1234/v2.0`) and 24-character
//! subjects, in two shapes:
//!
//! - `PER_USER` (default 10) sessions per user (100,000 users for a million sessions): a user
//!   keeps a few clients (IDE, desktop app, CLI) and reconnects over the binding TTL;
//! - 1 session per user: the worst case for the per-user interning.
//!
//! Each bind gets a fresh `Identity` (new strings), as an auth layer builds one per request: the
//! store keeps what it interns. The figure is the heap the store holds once the binds are done
//! (bytes requested from the allocator, after the session ids and identities of the loop were
//! freed), divided by the number of bindings. Allocator bookkeeping (malloc headers, ~8-16 bytes
//! per allocation) comes on top; the store makes one allocation per user plus its tables.
//!
//! The tables grow by doubling, so the figure depends on where `SESSIONS` falls between two
//! sizes: a million entries sits just past a doubling (a table about half full), close to the
//! worst case.

use std::{alloc::System, time::Duration};

use futures::FutureExt;
use mcp_session_binding::{
    Identity,
    store::{BindOutcome, BindingStore, MemoryStore, Owner, Record},
};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const ISS: &str = "https://login.example.com/tenant-1234/v2.0";
const TTL: Duration = Duration::from_secs(8 * 3600);

/// A small deterministic generator (SplitMix64) for the ids.
struct Ids(u64);

impl Ids {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// `xxxxxxxx-xxxx-4xxx-axxx-xxxxxxxxxxxx`: 36 characters, like a v4 UUID.
    fn session_id(&mut self) -> String {
        let (a, b) = (self.next(), self.next());
        format!(
            "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            b >> 52,
            b & 0xffff_ffff_ffff
        )
    }
}

/// A 24-character subject, like an Okta or Entra object id.
fn sub(user: usize) -> String {
    format!("00u{user:015}x7b4e2h")
}

/// Binds `sessions` sessions for `users` users; returns the bytes the store holds per binding.
fn bytes_per_binding(sessions: usize, users: usize) -> f64 {
    let mut ids = Ids(0x5eed ^ users as u64);
    let region = Region::new(GLOBAL);
    let store = MemoryStore::new();
    for i in 0..sessions {
        let session_id = ids.session_id();
        debug_assert_eq!(session_id.len(), 36);
        let key = store.key_derivation().session(&session_id);
        let owner = Owner::User(Identity::new(ISS, sub(i % users)).expect("valid identity"));
        let outcome = store
            .bind(Record::new(key, &owner, TTL), usize::MAX)
            .now_or_never()
            .expect("MemoryStore answers at once")
            .expect("unbounded store");
        assert_eq!(outcome, BindOutcome::Created);
    }
    let stats = region.change();
    assert_eq!(store.len(), sessions);
    // `stats_alloc` already counts a realloc's growth in `bytes_allocated` (and a shrink in
    // `bytes_deallocated`).
    let held = stats.bytes_allocated as f64 - stats.bytes_deallocated as f64;
    drop(store);
    held / sessions as f64
}

fn main() {
    let sessions: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("SESSIONS is a number"))
        .unwrap_or(1_000_000);
    let per_user: usize = std::env::args()
        .nth(2)
        .map_or(10, |n| n.parse().expect("PER_USER"));
    let users = (sessions / per_user).max(1);
    let shared = bytes_per_binding(sessions, users);
    println!("{sessions} bindings, {users} users x {per_user} sessions each:");
    println!("bytes per binding: {shared:.0}");
    let single = bytes_per_binding(sessions, sessions);
    println!("{sessions} bindings, 1 session per user:");
    println!("bytes per binding: {single:.0}");
}
