//! `--metrics-listen ADDR`: the crate's metrics (feature `metrics`) in the Prometheus text format
//! at `http://ADDR/metrics`, with `metrics-exporter-prometheus`. Durations are histograms with
//! buckets (`_bucket` series), not summaries. See `docs/metrics.md`.

use std::{net::SocketAddr, time::Duration};

use axum::{Router, routing::get};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

/// Bucket bounds of the duration histograms, in seconds: from 10 µs (a memory store call) to
/// 2.5 s (a Redis call about to time out).
const SECONDS_BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Installs the Prometheus recorder for this process and serves it at `addr`; returns the address
/// it listens on (port 0 picks one). `issuers`: label the issuer where the crate allows it.
pub async fn serve(addr: &str, issuers: bool) -> Result<SocketAddr, String> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), SECONDS_BUCKETS)
        .map_err(|e| format!("--metrics-listen: {e}"))?
        .install_recorder()
        .map_err(|e| format!("--metrics-listen: {e}"))?;
    mcp_session_binding::metrics::issuer_labels(issuers);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("no local address: {e}"))?;
    // The recorder keeps histogram samples until they are drained: drain them now and then even
    // when nothing scrapes.
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let handle = handle.clone();
            async move {
                (
                    [(
                        http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    handle.render(),
                )
            }
        }),
    );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics endpoint stopped");
        }
    });
    Ok(local)
}
