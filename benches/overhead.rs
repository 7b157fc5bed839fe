//! Hot-path overhead of `SessionBindingLayer`: the same inner service called with and without the
//! layer, by the session's owner (an `Identity` in the request extensions, the session bound in a
//! `MemoryStore`).
//!
//! - `hot_path/{bare,layer}/{1KiB,1MiB}`: a `tower::service_fn` that drains the request body and
//!   answers a fixed JSON body. The layer's cost per request, without any server around it.
//! - `rmcp/{bare,layer}/tools_call_whoami`: rmcp's `StreamableHttpService` (the demo server of
//!   the examples) answering `tools/call whoami` on an established session, response body read to
//!   the end. The layer's cost next to a real MCP server, without HTTP.
//! - `hot_path/session_key_sha256`: the store key of a session id (SHA-256), the largest item of
//!   the matching path on CPUs without SHA extensions.
//! - `mismatch/{1KiB,1MiB}`: the refusal path through the service (another user's `tools/call`,
//!   the body read and its envelope parsed, answered with an `isError` result). The session is
//!   kept (`end_session_on_mismatch(false)`) so every iteration takes the same path.
//!
//! ```text
//! cargo bench --all-features --bench overhead -- --warm-up-time 1 --measurement-time 3
//! ```

#[path = "common/mod.rs"]
mod common;

use bytes::Bytes;
use common::{
    WHOAMI, answer, bound_store, call_now, demo_mcp, open_session, owner, post, rmcp_call,
};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use http::StatusCode;
use http_body_util::Full;
use mcp_session_binding::{
    Identity, SessionBindingLayer,
    store::{KeyDerivation, MemoryStore},
};
use tower::Layer;

fn hot_path(c: &mut Criterion) {
    let caller = owner();
    let mut group = c.benchmark_group("hot_path");
    group.sample_size(50);
    for (name, len) in [("1KiB", common::KIB), ("1MiB", common::MIB)] {
        let body = Bytes::from(common::tool_call_text(len));
        group.throughput(Throughput::Elements(1));

        let mut bare = tower::service_fn(answer::<Full<Bytes>>);
        assert_eq!(
            call_now(&mut bare, post(&body, &caller)).status(),
            StatusCode::OK
        );
        group.bench_function(format!("bare/{name}"), |b| {
            b.iter_batched(
                || post(&body, &caller),
                |request| call_now(&mut bare, request),
                BatchSize::SmallInput,
            );
        });

        let mut layered = SessionBindingLayer::new()
            .store(bound_store())
            .layer(tower::service_fn(answer::<Full<Bytes>>));
        assert_eq!(
            call_now(&mut layered, post(&body, &caller)).status(),
            StatusCode::OK
        );
        group.bench_function(format!("layer/{name}"), |b| {
            b.iter_batched(
                || post(&body, &caller),
                |request| call_now(&mut layered, request),
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

fn mismatch(c: &mut Criterion) {
    let intruder = Identity::new(common::ISS, common::OTHER_SUB).unwrap();
    let mut group = c.benchmark_group("mismatch");
    group.sample_size(30);
    for (name, len) in [("1KiB", common::KIB), ("1MiB", common::MIB)] {
        let body = Bytes::from(common::tool_call_text(len));
        let mut layered = SessionBindingLayer::new()
            .store(bound_store())
            .end_session_on_mismatch(false)
            .layer(tower::service_fn(answer::<Full<Bytes>>));
        let refused = call_now(&mut layered, post(&body, &intruder));
        assert_eq!(
            refused.status(),
            StatusCode::OK,
            "tools/call mismatch is an isError result"
        );
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_function(name, |b| {
            b.iter_batched(
                || post(&body, &intruder),
                |request| call_now(&mut layered, request),
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

fn rmcp(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let caller = owner();
    let bare: common::Rmcp = demo_mcp::service();
    let layered = SessionBindingLayer::new()
        .store(MemoryStore::new())
        .layer(demo_mcp::service());
    let bare_session = runtime.block_on(open_session(&bare, &caller));
    let layered_session = runtime.block_on(open_session(&layered, &caller));

    let mut group = c.benchmark_group("rmcp");
    group.sample_size(30);
    group.throughput(Throughput::Elements(1));
    group.bench_function("bare/tools_call_whoami", |b| {
        b.to_async(&runtime)
            .iter(|| rmcp_call(&bare, WHOAMI, Some(&bare_session), &caller));
    });
    group.bench_function("layer/tools_call_whoami", |b| {
        b.to_async(&runtime)
            .iter(|| rmcp_call(&layered, WHOAMI, Some(&layered_session), &caller));
    });
    group.finish();
}

/// The largest single item of the matching path: the store key of the session id, keyed BLAKE3
/// (`RedisStore`) or SipHash-2-4-128 (`MemoryStore`).
fn session_key(c: &mut Criterion) {
    let mut group = c.benchmark_group("hot_path");
    group.sample_size(50);
    let keyed = KeyDerivation::public();
    group.bench_function("session_key_keyed", |b| {
        b.iter(|| keyed.session(std::hint::black_box(common::SESSION)));
    });
    let local = KeyDerivation::local();
    group.bench_function("session_key_local", |b| {
        b.iter(|| local.session(std::hint::black_box(common::SESSION)));
    });
    group.finish();
}

criterion_group!(benches, hot_path, session_key, mismatch, rmcp);
criterion_main!(benches);
