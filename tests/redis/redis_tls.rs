#![cfg(all(feature = "redis-tls", feature = "jwt"))]
//! `RedisStore` over TLS (`rediss://`), against a TLS-only `redis-server` whose certificate a
//! CA made by the harness (`openssl`) issued; and the example server's `--redis rediss://…
//! --redis-ca PATH`. Skipped with a `SKIP:` line without `redis-server` or `openssl`, fatal
//! under `CI`/`REQUIRE_REDIS`.

use crate::support;

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use http::StatusCode;
use mcp_session_binding::store::{
    BindingStore, KeyDerivation, Lookup, Owner, RedisOptions, RedisStore, SessionKey, StoreErrorKind,
    conformance,
};
use support::{Raw, example_bin::Spawned, redis_server::RedisServer, tool_text};

/// The key of session id `id` under a store without a key secret.
fn key_of(id: &str) -> SessionKey {
    KeyDerivation::public().session(id)
}

const SECRET: &str = "redis-tls-test-secret-32-bytes-long!!";
/// The bound on connecting in these tests.
const TIMEOUT: Duration = Duration::from_secs(2);

fn options_trusting(path: &std::path::Path) -> RedisOptions {
    RedisOptions::new()
        .timeout(TIMEOUT)
        .ca_pem(std::fs::read(path).expect("the CA file"))
}

#[tokio::test]
async fn the_store_works_over_tls_with_the_harness_ca() {
    let Some(server) = RedisServer::start_tls() else {
        return;
    };
    assert!(server.url().starts_with("rediss://"));
    let store = RedisStore::connect_with(&server.url(), options_trusting(&server.ca_file()))
        .await
        .expect("rediss:// with the CA");
    conformance::run_all(&store).await;
    support::assert_binds_anonymous(&store, "over-tls", Duration::from_secs(60), 10).await;
}

/// Every way of getting TLS wrong fails at connect, within the timeout, with a message that
/// says what is wrong.
#[tokio::test]
async fn wrong_tls_settings_fail_at_connect_with_a_clear_error() {
    let Some(server) = RedisServer::start_tls() else {
        return;
    };
    let plain = server.url().replacen("rediss://", "redis://", 1);
    let cases: [(&str, String, RedisOptions, &str); 5] = [
        (
            "plain redis:// against the TLS port",
            plain.clone(),
            RedisOptions::new().timeout(TIMEOUT),
            "rediss://",
        ),
        (
            "a CA that did not issue the server's certificate",
            server.url(),
            options_trusting(&server.other_ca_file()),
            "certificate",
        ),
        (
            "the system roots (the harness CA is not among them)",
            server.url(),
            RedisOptions::new().timeout(TIMEOUT),
            "certificate",
        ),
        (
            "a CA with a redis:// URL",
            plain,
            options_trusting(&server.ca_file()),
            "not rediss://",
        ),
        (
            "a CA file that holds no certificate",
            server.url(),
            RedisOptions::new().timeout(TIMEOUT).ca_pem("not a PEM"),
            "holds no certificate",
        ),
    ];
    for (what, url, options, expected) in cases {
        let started = Instant::now();
        let err = RedisStore::connect_with(&url, options)
            .await
            .expect_err(what);
        let took = started.elapsed();
        let message = err.to_string();
        eprintln!("{what}: {message} ({took:?})");
        assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{what}");
        assert!(
            took <= TIMEOUT + Duration::from_millis(500),
            "{what}: {took:?}"
        );
        assert!(message.contains(expected), "{what}: {message}");
        assert!(!message.contains(SECRET), "{what}: {message}");
    }
}

fn server_command(redis: &[&str]) -> Command {
    let mut command = support::example_bin::server_command("mcp_server", Some(SECRET));
    command.args(redis);
    command
}

/// The example server with `--redis rediss://… --redis-ca PATH` serves sessions whose binding
/// and rmcp state are in the TLS Redis; with `redis://` on the same port it exits at start with
/// status 2 and the hint.
#[tokio::test]
async fn the_example_server_takes_rediss_and_a_ca_file() {
    let Some(server) = RedisServer::start_tls() else {
        return;
    };
    let ca = server.ca_file();
    let url = server.url();
    let running = Spawned::start(&mut server_command(&[
        "--redis",
        &url,
        "--redis-ca",
        ca.to_str().unwrap(),
    ]));
    let raw = Raw::at(running.url.clone());
    let token = jwt_token("alice");
    let session = raw.open_session(Some(&token)).await;
    let answer = raw.whoami(&session, Some(&token), 3).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(tool_text(&answer.json()), "https://issuer.example alice");
    let store = RedisStore::connect_with(&url, options_trusting(&ca))
        .await
        .unwrap();
    assert!(matches!(
        store.lookup(key_of(&session), None).await.unwrap(),
        Lookup::Bound(Owner::User(_))
    ));
    drop(running);

    let plain = url.replacen("rediss://", "redis://", 1);
    let started = Instant::now();
    let output = server_command(&["--redis", &plain])
        .stdin(Stdio::null())
        .output()
        .expect("the example runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("redis:// on the TLS port: {stderr}");
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("rediss://"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// An HS256 token of the example server's development mode for `sub`.
fn jwt_token(sub: &str) -> String {
    use support::jwt_stack;
    jwt_stack::TokenMinter::new(SECRET.as_bytes(), jwt_stack::DEFAULT_AUDIENCE)
        .token(jwt_stack::DEFAULT_ISSUER, sub)
}
