//! Mismatch path: how fast the layer reads the JSON-RPC envelope of a refused POST body, in bytes
//! per second, on 1 KiB and 1 MiB `tools/call` bodies.
//!
//! Measures the crate's envelope parser directly, through the hidden, non-API hook
//! `mcp_session_binding::__private::classify_len` (the same function the mismatch answer uses).
//! The `overhead` bench measures the whole mismatch path through the service as well.
//!
//! ```text
//! cargo bench --all-features --bench envelope -- --warm-up-time 1 --measurement-time 3
//! ```

#[path = "common/mod.rs"]
mod common;

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mcp_session_binding::__private::classify_len;

fn envelope(c: &mut Criterion) {
    let mut group = c.benchmark_group("envelope");
    group.sample_size(30);
    for (name, len) in [("1KiB", common::KIB), ("1MiB", common::MIB)] {
        for (shape, body) in [
            ("text", common::tool_call_text(len)),
            ("structured", common::tool_call_structured(len)),
        ] {
            assert_eq!(classify_len(&body), 1, "{shape} body must classify");
            group.throughput(Throughput::Bytes(body.len() as u64));
            group.bench_function(format!("tools_call_{shape}/{name}"), |b| {
                b.iter(|| classify_len(black_box(&body)));
            });
        }
    }
    group.finish();
}

criterion_group!(benches, envelope);
criterion_main!(benches);
