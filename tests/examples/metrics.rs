//! The `mcp_server` example's metrics as an operator sees them: Debian's Prometheus scrapes its
//! `--metrics-listen` endpoint every second while owners, a thief, bad tokens, a foreign `Origin`
//! and a stopped Redis go through it; then Prometheus' HTTP API must give each counter its value.

use std::time::Duration;

use http::StatusCode;
use serde_json::json;

use crate::support::{
    self, Raw,
    example_bin::{self, Spawned},
    prometheus::Prometheus,
    redis_server::RedisServer,
};

const SECRET: &str = "metrics-test-secret-0123456789abcdef";
const ISSUER: &str = "https://issuer.example";
const AUDIENCE: &str = "mcp-session-binding-example";

fn token(sub: &str) -> String {
    support::keys::hs256_token(SECRET, ISSUER, sub, AUDIENCE)
}

/// A token signed with `secret`, with `aud` and `exp` seconds from now (negative: past).
fn token_with(secret: &str, aud: &str, exp: i64) -> String {
    let now = jsonwebtoken::get_current_timestamp() as i64;
    let claims = json!({"iss": ISSUER, "sub": "mallory", "aud": aud, "iat": now, "exp": now + exp});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn prometheus_scrapes_every_decision_by_reason() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let mut command = example_bin::server_command("mcp_server", Some(SECRET));
    command.args(["--redis", &redis.url(), "--metrics-listen", "127.0.0.1:0"]);
    let server = Spawned::start(&mut command);
    let metrics = server
        .banner
        .iter()
        .find_map(|line| line.strip_prefix("metrics on http://"))
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("no `metrics on` line: {:?}", server.banner))
        .to_owned();
    let Some(prometheus) = Prometheus::start(&[&metrics]) else {
        return;
    };
    let raw = Raw::at(server.url.clone());
    let (alice, bob) = (token("alice"), token("bob"));

    // Owners: two sessions bound; alice's initialized notification and two calls, bob's
    // notification, forwarded.
    let session = raw.open_session(Some(&alice)).await;
    for id in [1, 2] {
        assert_eq!(raw.whoami(&session, Some(&alice), id).await.status, 200);
    }
    let bobs = raw.open_session(Some(&bob)).await;
    // A thief: bob on alice's session. Refused, and the session is ended; alice then finds it
    // ended.
    raw.whoami(&session, Some(&bob), 3)
        .await
        .assert_mismatch(Some(3));
    let answer = raw.whoami(&session, Some(&alice), 4).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{answer:?}");
    // Bad tokens, each refused by the JWT layer for its reason.
    for (token, status) in [
        (None, 401),
        (Some("not-a-jwt".to_owned()), 401),
        (
            Some(token_with(
                "another-secret-0123456789abcdefghij",
                AUDIENCE,
                300,
            )),
            401,
        ),
        (Some(token_with(SECRET, AUDIENCE, -3600)), 401),
        (
            Some(token_with(SECRET, "https://elsewhere.example", 300)),
            401,
        ),
    ] {
        let answer = raw.whoami(&bobs, token.as_deref(), 5).await;
        assert_eq!(answer.status, status, "{answer:?}");
    }
    // A page of a foreign origin.
    let request = raw
        .request(reqwest::Method::POST, Some(&bobs), Some(&bob))
        .header("origin", "https://evil.example")
        .json(&support::tool_call(6, "whoami", json!({})));
    let answer = Raw::send(request).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{answer:?}");
    // Redis stops: bob's next call cannot be checked.
    redis.stop();
    let answer = raw.whoami(&bobs, Some(&bob), 7).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{answer:?}");

    let decisions = |outcome: &str, reason: &str| {
        format!(r#"mcp_session_binding_decisions_total{{outcome="{outcome}",reason="{reason}"}}"#)
    };
    let auth = |outcome: &str, reason: &str| {
        format!(
            r#"mcp_session_binding_auth_results_total{{outcome="{outcome}",reason="{reason}"}}"#
        )
    };
    let redis_calls = |operation: &str, outcome: &str| {
        format!(
            r#"mcp_session_binding_store_operation_duration_seconds_count{{store="redis",operation="{operation}",outcome="{outcome}"}}"#
        )
    };
    let expected: Vec<(String, f64)> = vec![
        (decisions("bound", "new_session"), 2.0),
        (decisions("forwarded", "owner"), 4.0),
        (decisions("refused", "mismatch"), 1.0),
        (decisions("refused", "ended_session"), 1.0),
        (decisions("refused", "store_unavailable"), 1.0),
        ("mcp_session_binding_sessions_bound_total".to_owned(), 2.0),
        (
            r#"mcp_session_binding_sessions_ended_total{reason="refused"}"#.to_owned(),
            1.0,
        ),
        // alice: initialize, notification, 2 calls, the call after the theft; bob: initialize,
        // notification, the theft, the call after Redis stopped.
        (auth("accepted", "valid"), 9.0),
        (auth("rejected", "missing"), 1.0),
        (auth("rejected", "malformed_token"), 1.0),
        (auth("rejected", "bad_signature"), 1.0),
        (auth("rejected", "expired"), 1.0),
        (auth("rejected", "bad_audience"), 1.0),
        (
            r#"mcp_session_binding_origin_refusals_total{reason="origin_not_allowed"}"#.to_owned(),
            1.0,
        ),
        (redis_calls("bind", "ok"), 2.0),
        (redis_calls("end", "ok"), 1.0),
        // The notifications, alice's 2 calls, the theft, alice after it.
        (redis_calls("lookup", "ok"), 6.0),
        (redis_calls("lookup", "error"), 1.0),
        (
            r#"mcp_session_binding_store_errors_total{store="redis",operation="lookup",kind="unavailable"}"#
                .to_owned(),
            1.0,
        ),
        // Latencies are histograms with buckets: the `+Inf` bucket holds every bind.
        (
            r#"mcp_session_binding_store_operation_duration_seconds_bucket{store="redis",operation="bind",le="+Inf"}"#
                .to_owned(),
            2.0,
        ),
    ];
    let mut wrong = Vec::new();
    for (query, value) in &expected {
        let seen = prometheus
            .wait_for(query, *value, Duration::from_secs(15))
            .await;
        if seen != Some(*value) {
            wrong.push(format!("{query}: {seen:?}, expected {value}"));
        }
    }
    // The histogram has real buckets, not a summary's quantiles.
    let buckets = prometheus
        .value(r#"count(mcp_session_binding_store_operation_duration_seconds_bucket{store="redis",operation="bind"})"#)
        .await;
    assert!(buckets.is_some_and(|n| n > 5.0), "buckets: {buckets:?}");
    // No label names a subject, a session or a token.
    let labels = prometheus
        .value(r#"count({__name__=~"mcp_session_binding_.+", sub=~".+"}) or count({__name__=~"mcp_session_binding_.+", session=~".+"})"#)
        .await;
    assert_eq!(labels, None, "a series labelled by subject or session");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
