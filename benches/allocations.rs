//! Heap allocations per request, with and without `SessionBindingLayer`, counted by a global
//! allocator (`stats_alloc`). Not timed: it prints counts.
//!
//! - `service_fn`: the same inner service as the `overhead` bench (drains the body, answers a
//!   fixed JSON body), called by the session's owner; `MemoryStore` answers through `lookup_now`.
//! - `rmcp`: rmcp's `StreamableHttpService` answering `tools/call whoami` on an established
//!   session (single-threaded runtime, so every allocation counted serves the request).
//!
//! Requests are built before counting starts and responses are dropped while counting (their
//! frees are the inner service's business either way). Exits non-zero when the layer allocates
//! on the matching path with `service_fn`.
//!
//! ```text
//! cargo bench --all-features --bench allocations
//! ```

#[path = "common/mod.rs"]
mod common;

use std::alloc::System;

use bytes::Bytes;
use common::{WHOAMI, answer, bound_store, call_now, demo_mcp, open_session, owner, post};
use http::Request;
use http_body_util::{BodyExt, Full};
use mcp_session_binding::{SessionBindingLayer, store::MemoryStore};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, Stats, StatsAlloc};
use tower::{Layer, ServiceExt};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const REQUESTS: usize = 10_000;

fn per_request(stats: Stats, requests: usize) -> (f64, f64) {
    let count = stats.allocations + stats.reallocations;
    (
        count as f64 / requests as f64,
        stats.bytes_allocated as f64 / requests as f64,
    )
}

fn report(what: &str, bare: (f64, f64), layer: (f64, f64)) {
    println!(
        "{what:<28} bare: {:>7.2} allocations {:>9.1} bytes | layer: {:>7.2} allocations {:>9.1} bytes | layer adds {:+.2} allocations per request",
        bare.0,
        bare.1,
        layer.0,
        layer.1,
        layer.0 - bare.0
    );
}

fn service_fn_counts(len: usize) -> ((f64, f64), (f64, f64)) {
    let caller = owner();
    let body = Bytes::from(common::tool_call_text(len));
    let mut bare = tower::service_fn(answer::<Full<Bytes>>);
    let mut layered = SessionBindingLayer::new()
        .store(bound_store())
        .layer(tower::service_fn(answer::<Full<Bytes>>));
    // Warm up both (lazy one-time allocations, thread-locals).
    for _ in 0..100 {
        drop(call_now(&mut bare, post(&body, &caller)));
        drop(call_now(&mut layered, post(&body, &caller)));
    }
    let requests: Vec<Request<Full<Bytes>>> = (0..REQUESTS).map(|_| post(&body, &caller)).collect();
    let region = Region::new(GLOBAL);
    for request in requests {
        drop(call_now(&mut bare, request));
    }
    let bare_stats = per_request(region.change(), REQUESTS);
    let requests: Vec<Request<Full<Bytes>>> = (0..REQUESTS).map(|_| post(&body, &caller)).collect();
    let region = Region::new(GLOBAL);
    for request in requests {
        let response = call_now(&mut layered, request);
        assert!(response.status().is_success());
        drop(response);
    }
    let layer_stats = per_request(region.change(), REQUESTS);
    (bare_stats, layer_stats)
}

fn rmcp_counts() -> ((f64, f64), (f64, f64)) {
    const CALLS: usize = 2_000;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let caller = owner();
    let bare: common::Rmcp = demo_mcp::service();
    let layered = SessionBindingLayer::new()
        .store(MemoryStore::new())
        .layer(demo_mcp::service());
    runtime.block_on(async {
        let bare_session = open_session(&bare, &caller).await;
        let layered_session = open_session(&layered, &caller).await;
        let request = |session: &str| {
            let mut request = Request::post("/mcp")
                .header(http::header::HOST, "127.0.0.1")
                .header(http::header::CONTENT_TYPE, "application/json")
                .header(http::header::ACCEPT, "application/json, text/event-stream")
                .header("mcp-protocol-version", "2025-11-25")
                .header("mcp-session-id", session)
                .body(Full::new(Bytes::from_static(WHOAMI.as_bytes())))
                .unwrap();
            request.extensions_mut().insert(caller.clone());
            request
        };
        for _ in 0..100 {
            let r = bare.clone().oneshot(request(&bare_session)).await.unwrap();
            r.into_body().collect().await.unwrap();
            let r = layered
                .clone()
                .oneshot(request(&layered_session))
                .await
                .unwrap();
            r.into_body().collect().await.unwrap();
        }
        let requests: Vec<_> = (0..CALLS).map(|_| request(&bare_session)).collect();
        let region = Region::new(GLOBAL);
        for request in requests {
            let r = bare.clone().oneshot(request).await.unwrap();
            r.into_body().collect().await.unwrap();
        }
        let bare_stats = per_request(region.change(), CALLS);
        let requests: Vec<_> = (0..CALLS).map(|_| request(&layered_session)).collect();
        let region = Region::new(GLOBAL);
        for request in requests {
            let r = layered.clone().oneshot(request).await.unwrap();
            r.into_body().collect().await.unwrap();
        }
        let layer_stats = per_request(region.change(), CALLS);
        (bare_stats, layer_stats)
    })
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this too, which is fine: it is
    // quick and checks the same property.
    let mut failed = false;
    for (name, len) in [("1KiB", common::KIB), ("1MiB", common::MIB)] {
        let (bare, layer) = service_fn_counts(len);
        report(&format!("service_fn, {name} body"), bare, layer);
        if layer.0 > bare.0 {
            eprintln!("the layer allocates on the matching path ({name})");
            failed = true;
        }
    }
    let (bare, layer) = rmcp_counts();
    report("rmcp tools/call whoami", bare, layer);
    if failed {
        std::process::exit(1);
    }
}
