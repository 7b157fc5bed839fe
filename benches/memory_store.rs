//! `MemoryStore` bind and lookup, on one thread and on two threads sharing the store.
//!
//! - `lookup`: `lookup_now` with sliding expiry on (what the layer does on every request), over
//!   100,000 bound sessions of 10,000 users, each thread walking its own keys.
//! - `bind`: binds of fresh keys into a store that starts empty for each sample (growth included),
//!   10 sessions per user, no session limit. Each bind also runs one step of the store's
//!   reclaimer (here it finds only live entries, so it passes over 4 of them).
//!
//! Keys are computed before timing: these figures are the store alone, not the hash of the
//! session id (which the layer adds once per request, see the `overhead` bench).
//!
//! ```text
//! cargo bench --all-features --bench memory_store -- --warm-up-time 1 --measurement-time 3
//! ```

#[path = "common/mod.rs"]
mod common;

use std::{
    hint::black_box,
    sync::Barrier,
    time::{Duration, Instant},
};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mcp_session_binding::{
    Identity,
    store::{BindingStore, KeyDerivation, MemoryStore, Owner, Record, SessionKey},
};

const TTL: Duration = Duration::from_secs(3600);
const SESSIONS: usize = 100_000;
const SESSIONS_PER_USER: usize = 10;

fn session_id(i: usize) -> String {
    format!(
        "{:08x}-0b7d-4e8a-9c55-{:012x}",
        i as u32,
        i as u64 * 2_654_435_761
    )
}

fn key(i: usize) -> SessionKey {
    static KEYS: std::sync::LazyLock<KeyDerivation> =
        std::sync::LazyLock::new(KeyDerivation::local);
    KEYS.session(&session_id(i))
}

fn users(n: usize) -> Vec<Owner> {
    (0..n)
        .map(|u| Owner::User(Identity::new(common::ISS, format!("00u{u:021}")).unwrap()))
        .collect()
}

/// Runs `work(thread, iters)` on `threads` threads at once; returns the wall time.
fn on_threads(threads: usize, iters: u64, work: &(dyn Fn(usize, u64) + Sync)) -> Duration {
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    work(t, iters);
                    barrier.wait();
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        barrier.wait();
        let elapsed = start.elapsed();
        for handle in handles {
            handle.join().unwrap();
        }
        elapsed
    })
}

fn lookup(c: &mut Criterion) {
    let store = MemoryStore::new();
    let owners = users(SESSIONS / SESSIONS_PER_USER);
    let keys: Vec<SessionKey> = (0..SESSIONS).map(key).collect();
    for (i, key) in keys.iter().enumerate() {
        let owner = &owners[i / SESSIONS_PER_USER];
        futures::executor::block_on(store.bind(Record::new(*key, owner, TTL), usize::MAX)).unwrap();
    }
    let mut group = c.benchmark_group("memory_store/lookup");
    group.sample_size(30);
    for threads in [1, 2] {
        // One iteration is one lookup on each thread.
        group.throughput(Throughput::Elements(threads as u64));
        group.bench_function(format!("{threads}_thread"), |b| {
            b.iter_custom(|iters| {
                on_threads(threads, iters, &|t, iters| {
                    let mut i = t * (SESSIONS / 2);
                    for _ in 0..iters {
                        i = (i + 1) % SESSIONS;
                        black_box(store.lookup_now(keys[i], Some(TTL)));
                    }
                })
            });
        });
    }
    group.finish();
}

fn bind(c: &mut Criterion) {
    let owners = users(SESSIONS / SESSIONS_PER_USER);
    let mut group = c.benchmark_group("memory_store/bind");
    group.sample_size(20);
    for threads in [1, 2] {
        group.throughput(Throughput::Elements(threads as u64));
        group.bench_function(format!("{threads}_thread"), |b| {
            b.iter_custom(|iters| {
                let per_thread = usize::try_from(iters).unwrap();
                let keys: Vec<SessionKey> = (0..per_thread * threads).map(key).collect();
                let store = MemoryStore::new();
                let elapsed = on_threads(threads, iters, &|t, _| {
                    for i in t * per_thread..(t + 1) * per_thread {
                        let owner = &owners[(i / SESSIONS_PER_USER) % owners.len()];
                        let bound = futures::executor::block_on(
                            store.bind(Record::new(keys[i], owner, TTL), usize::MAX),
                        );
                        black_box(bound.unwrap());
                    }
                });
                drop(store);
                elapsed
            });
        });
    }
    group.finish();
}

criterion_group!(benches, lookup, bind);
criterion_main!(benches);
