#![cfg(feature = "jwt")]
//! The `mcp_server` example as a user runs it: the built binary in a child process, driven over
//! loopback with real HS256 tokens minted here. And `cargo run --example demo`, as written.

use crate::support;

use support::example_bin;

use std::process::Command;

use example_bin::{Spawned, cargo, cargo_selection, example};
use http::StatusCode;
use serde_json::{Value, json};
use support::{Raw, initialize_body, tool_text};

const SECRET: &str = "example-server-test-secret-32-bytes+";
const ISSUER: &str = "https://issuer.example";
const AUDIENCE: &str = "mcp-session-binding-example";

/// An HS256 token for `(iss, sub)` and `aud`, valid 5 minutes, with a unique `jti`.
fn token(secret: &str, iss: &str, sub: &str, aud: &str) -> String {
    support::keys::hs256_token(secret, iss, sub, aud)
}

fn alice() -> String {
    token(SECRET, ISSUER, "alice", AUDIENCE)
}

/// `mcp_server` with `args`, the JWT environment cleared, then `env` set.
fn mcp_server(args: &[&str], env: &[(&str, &str)]) -> Spawned {
    let mut command = example_bin::server_command("mcp_server", None);
    command.args(args).env("RUST_LOG", "info");
    for (name, value) in env {
        command.env(name, value);
    }
    Spawned::start(&mut command)
}

async fn whoami(raw: &Raw, session: &str, token: Option<&str>) -> String {
    let answer = raw.whoami(session, token, 1).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    tool_text(&answer.json()).to_owned()
}

fn assert_is_error_result(answer: &support::Answer) {
    answer.assert_mismatch(None);
}

async fn get_json(url: &str) -> Value {
    let response = reqwest::get(url).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "GET {url}");
    assert_eq!(response.headers()["content-type"], "application/json");
    response.json().await.unwrap()
}

#[tokio::test]
async fn mcp_server_binds_sessions_behind_the_jwt_layer() {
    let server = mcp_server(&[], &[("MCP_JWT_SECRET", SECRET)]);
    assert!(
        server.banner.is_empty(),
        "with a secret, no tokens are printed: {:?}",
        server.banner
    );
    assert!(
        server.url.starts_with("http://127.0.0.1:"),
        "{}",
        server.url
    );
    let raw = Raw::at(server.url.clone());

    let session = raw.open_session(Some(&alice())).await;
    assert_eq!(
        whoami(&raw, &session, Some(&alice())).await,
        format!("{ISSUER} alice")
    );
    // The binding is on: bob's valid token does not open alice's session.
    let bob = token(SECRET, ISSUER, "bob", AUDIENCE);
    assert_is_error_result(&raw.whoami(&session, Some(&bob), 2).await);
    assert_eq!(
        raw.whoami(&session, Some(&alice()), 3).await.status,
        StatusCode::NOT_FOUND
    );

    // A token signed with another secret: 401, and the challenge names the metadata.
    let forged = token(
        "another-secret-another-secret-another",
        ISSUER,
        "alice",
        AUDIENCE,
    );
    let answer = raw.post(None, Some(&forged), &initialize_body()).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{answer:?}");
    let challenge = answer.headers["www-authenticate"].to_str().unwrap();
    let metadata_url = format!(
        "{}/.well-known/oauth-protected-resource/mcp",
        server.base_url()
    );
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
    assert!(
        challenge.contains(&format!(r#"resource_metadata="{metadata_url}""#)),
        "{challenge}"
    );

    // No token and no anonymous mode: 401 too.
    let answer = raw.post(None, None, &initialize_body()).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{answer:?}");
    assert!(answer.headers.contains_key("www-authenticate"));

    // The RFC 9728 document, at the URL the challenge names and at the root path.
    let metadata = get_json(&metadata_url).await;
    assert_eq!(metadata["resource"], json!(server.url));
    assert_eq!(metadata["authorization_servers"], json!([ISSUER]));
    assert_eq!(metadata["bearer_methods_supported"], json!(["header"]));
    let root = get_json(&format!(
        "{}/.well-known/oauth-protected-resource",
        server.base_url()
    ))
    .await;
    assert_eq!(root, metadata);
}

#[tokio::test]
async fn mcp_server_reads_issuers_and_audience_from_the_environment() {
    let server = mcp_server(
        &[],
        &[
            ("MCP_JWT_SECRET", SECRET),
            ("MCP_JWT_ISSUERS", " https://b.example "),
            ("MCP_JWT_AUDIENCE", "custom-audience"),
        ],
    );
    let raw = Raw::at(server.url.clone());
    let carol = token(SECRET, "https://b.example", "carol", "custom-audience");
    let session = raw.open_session(Some(&carol)).await;
    assert_eq!(
        whoami(&raw, &session, Some(&carol)).await,
        "https://b.example carol"
    );

    for (iss, aud) in [
        (ISSUER, "custom-audience"),     // no longer trusted
        ("https://b.example", AUDIENCE), // the default audience is not accepted
    ] {
        let refused = token(SECRET, iss, "carol", aud);
        let answer = raw.post(None, Some(&refused), &initialize_body()).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{iss} {aud}");
    }
    let metadata = get_json(&format!(
        "{}/.well-known/oauth-protected-resource",
        server.base_url()
    ))
    .await;
    assert_eq!(
        metadata["authorization_servers"],
        json!(["https://b.example"])
    );

    // An HS256 secret belongs to one issuer: several issuers are refused (issue 12).
    let output = Command::new(example("mcp_server"))
        .args(["--listen", "127.0.0.1:0"])
        .env("MCP_JWT_SECRET", SECRET)
        .env("MCP_JWT_ISSUERS", "https://a.example,https://b.example")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("exactly one issuer"));
}

/// Splits a shell command line made of plain words and single-quoted words.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut rest = line.trim();
    while !rest.is_empty() {
        if let Some(quoted) = rest.strip_prefix('\'') {
            let end = quoted.find('\'').expect("closing quote");
            words.push(quoted[..end].to_owned());
            rest = quoted[end + 1..].trim_start();
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            words.push(rest[..end].to_owned());
            rest = rest[end..].trim_start();
        }
    }
    words
}

#[tokio::test]
async fn mcp_server_without_a_secret_prints_tokens_that_work() {
    let server = mcp_server(&[], &[]);
    let printed = |user: &str| {
        server
            .banner
            .iter()
            .find_map(|line| {
                let mut words = line.split_whitespace();
                (words.next() == Some(user)).then(|| words.next().unwrap().to_owned())
            })
            .unwrap_or_else(|| panic!("no token for {user} in {:#?}", server.banner))
    };
    let (alice, bob) = (printed("alice"), printed("bob"));
    let raw = Raw::at(server.url.clone());

    let session = raw.open_session(Some(&alice)).await;
    assert_eq!(
        whoami(&raw, &session, Some(&alice)).await,
        format!("{ISSUER} alice")
    );
    let session = raw.open_session(Some(&bob)).await;
    assert_eq!(
        whoami(&raw, &session, Some(&bob)).await,
        format!("{ISSUER} bob")
    );
    // Signed with the random secret, not with some fixed one.
    let guessed = token(SECRET, ISSUER, "alice", AUDIENCE);
    let answer = raw.post(None, Some(&guessed), &initialize_body()).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);

    // The curl line, replayed word for word.
    let curl = server
        .banner
        .iter()
        .find(|line| line.trim_start().starts_with("curl "))
        .unwrap_or_else(|| panic!("no curl line in {:#?}", server.banner));
    let words = shell_words(curl);
    assert_eq!(words[..3], ["curl", "-i", server.url.as_str()], "{curl}");
    let mut request = reqwest::Client::new().post(&server.url);
    let mut rest = words[3..].iter();
    let mut sent_token = None;
    while let Some(flag) = rest.next() {
        let value = rest.next().expect("a value after each flag");
        match flag.as_str() {
            "-H" => {
                let (name, value) = value.split_once(": ").expect("Name: value");
                if let Some(token) = value.strip_prefix("Bearer ") {
                    sent_token = Some(token.to_owned());
                }
                request = request.header(name, value);
            }
            "-d" => request = request.body(value.clone()),
            _ => panic!("unexpected curl flag {flag} in {curl}"),
        }
    }
    assert_eq!(sent_token, Some(alice), "the curl line uses alice's token");
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().contains_key("mcp-session-id"));
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains(r#""protocolVersion""#)
    );
}

#[tokio::test]
async fn allow_anonymous_accepts_a_tokenless_initialize() {
    let server = mcp_server(
        &["--allow-anonymous", "--listen=127.0.0.1:0"],
        &[("MCP_JWT_SECRET", SECRET)],
    );
    let raw = Raw::at(server.url.clone());
    let session = raw.open_session(None).await;
    assert_eq!(whoami(&raw, &session, None).await, "anonymous");
    // Anonymous sessions are bound too: a token does not take one over.
    assert_is_error_result(&raw.whoami(&session, Some(&alice()), 2).await);
    // And identified sessions work as before.
    let session = raw.open_session(Some(&alice())).await;
    assert_eq!(
        whoami(&raw, &session, Some(&alice())).await,
        format!("{ISSUER} alice")
    );
}

#[tokio::test]
async fn without_binding_is_the_same_stack_minus_the_binding() {
    let server = mcp_server(&["--without-binding"], &[("MCP_JWT_SECRET", SECRET)]);
    let raw = Raw::at(server.url.clone());
    let session = raw.open_session(Some(&alice())).await;
    // No binding: bob's valid token drives alice's session (the baseline the layer fixes).
    let bob = token(SECRET, ISSUER, "bob", AUDIENCE);
    assert_eq!(
        whoami(&raw, &session, Some(&bob)).await,
        format!("{ISSUER} bob")
    );
    // The JWT layer is still there.
    let answer = raw.post(None, None, &initialize_body()).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
}

#[test]
fn bad_arguments_exit_with_status_2_and_the_usage() {
    for args in [
        &["--bogus"][..],
        &["--listen"],
        &["--allow-anonymous=yes"],
        &["--without-task-checks=yes"],
        &["--without-binding", "--redis", "redis://127.0.0.1/"],
        &["--redis-cache-ms", "500"],
        &[
            "--redis-cluster",
            "redis://127.0.0.1:1/",
            "--redis-cache-ms",
            "500",
        ],
        &["--redis", "redis://127.0.0.1:1/", "--redis-cache-ms", "0"],
        &["--dpop", "on"],
        &[
            "--redis",
            "redis://127.0.0.1:1/",
            "--redis-cache-ms",
            "soon",
        ],
    ] {
        let output = Command::new(example("mcp_server"))
            .args(args)
            .env("MCP_JWT_SECRET", SECRET)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        assert!(stderr.contains("usage: mcp_server"), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?}");
    }
    let output = Command::new(example("mcp_server"))
        .args(["--listen", "127.0.0.1:0"])
        .env("MCP_JWT_SECRET", "too short")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("at least 32"));
}

/// `cargo run --all-features --example demo`, the command the README gives, succeeds and tells the story.
#[test]
fn the_demo_command_succeeds() {
    let output = cargo()
        .args(["run", "--quiet", "--example", "demo"])
        .args(cargo_selection())
        .env_remove("RUST_LOG")
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "demo failed ({:?}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in [
        "same session",
        "isError: \"Unauthorized: caller identity does not match session owner\"",
        "404 Not Found",
        "new session",
        "Every step behaved as described.",
    ] {
        assert!(stdout.contains(expected), "{expected:?} missing:\n{stdout}");
    }
}

use support::redis_server;

/// Two `mcp_server` replicas sharing `redis`, trusting tokens signed with `SECRET`, with `env`.
#[cfg(feature = "redis")]
fn redis_replicas(redis: &redis_server::RedisServer, env: &[(&str, &str)]) -> [Spawned; 2] {
    let env = [&[("MCP_JWT_SECRET", SECRET)], env].concat();
    let replica = || mcp_server(&["--redis", &redis.url()], &env);
    [replica(), replica()]
}

/// Two replicas sharing one Redis: a stolen session id refused on one ends the session on both.
#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_flag_shares_bindings_between_replicas() {
    let Some(redis) = redis_server::RedisServer::start() else {
        return;
    };
    let [a, b] = redis_replicas(&redis, &[]);
    let (raw_a, raw_b) = (Raw::at(a.url.clone()), Raw::at(b.url.clone()));

    let session = raw_a.open_session(Some(&alice())).await;
    assert_eq!(
        whoami(&raw_a, &session, Some(&alice())).await,
        format!("{ISSUER} alice")
    );
    // Replica B has never seen the session, but the binding in Redis tells it whose it is.
    let bob = token(SECRET, ISSUER, "bob", AUDIENCE);
    assert_is_error_result(&raw_b.whoami(&session, Some(&bob), 2).await);
    // B ended it in Redis: A, which holds the live session, now answers 404 too.
    let answer = raw_a.whoami(&session, Some(&alice()), 3).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{answer:?}");
}

#[cfg(feature = "redis")]
#[test]
fn redis_flag_with_an_unreachable_redis_is_an_error() {
    let output = Command::new(example("mcp_server"))
        .args(["--listen", "127.0.0.1:0", "--redis", "redis://127.0.0.1:1/"])
        .env("MCP_JWT_SECRET", SECRET)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("error: cannot use Redis"), "{stderr}");
    assert!(output.stdout.is_empty(), "never says it is listening");
}

/// With `MCP_KEY_SECRET`, rmcp's session state in Redis is keyed too: after a session is created
/// on one replica and restored on another, no Redis key holds its key under the public secret
/// (which a dump could be checked against guessed ids with), and the log says the keys are
/// keyed. Ending the session removes its state.
#[cfg(feature = "redis")]
#[tokio::test]
async fn key_secret_keys_the_rmcp_session_state_in_redis() {
    use mcp_session_binding::store::KeyDerivation;

    let Some(redis) = redis_server::RedisServer::start() else {
        return;
    };
    let [a, b] = redis_replicas(
        &redis,
        &[("MCP_KEY_SECRET", "example-server-key-secret-32-bytes!!")],
    );
    let (raw_a, raw_b) = (Raw::at(a.url.clone()), Raw::at(b.url.clone()));
    let session = raw_a.open_session(Some(&alice())).await;
    // B never saw the session: it restores it from the keyed state.
    assert_eq!(
        whoami(&raw_b, &session, Some(&alice())).await,
        format!("{ISSUER} alice")
    );

    let unkeyed = KeyDerivation::public().session(&session).to_hex();
    let keys = redis.command(&["KEYS", "*"]);
    let states: Vec<&str> = keys
        .lines()
        .filter(|key| key.starts_with("mcpsb-session:"))
        .collect();
    assert_eq!(states.len(), 1, "one session state: {keys}");
    for key in keys.lines() {
        assert!(
            !key.contains(&unkeyed),
            "{key} holds the unkeyed key of the session id"
        );
    }
    for replica in [&a, &b] {
        let log = replica.stderr();
        assert!(
            log.contains("MCP session state keys in Redis are keyed with MCP_KEY_SECRET"),
            "{log}"
        );
    }

    let answer = raw_a.delete(&session, Some(&alice())).await;
    assert!(answer.status.is_success(), "{answer:?}");
    assert_eq!(redis.command(&["EXISTS", states[0]]), "0", "state deleted");
}

/// An HS256 token of `sub` granting `scope`.
fn token_with_scope(sub: &str, scope: &str) -> String {
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode, get_current_timestamp};
    let now = get_current_timestamp();
    let claims = json!({
        "iss": ISSUER, "sub": sub, "aud": AUDIENCE, "iat": now, "exp": now + 300,
        "scope": scope,
    });
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// `POST url` with `token` and a JSON body: (status, JSON answer or null).
async fn admin_post(url: &str, token: Option<&str>, body: &Value) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new().post(url).json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// `--admin-scope`: with a token granting the scope, an operator ends every session of alice's
/// on both replicas sharing Redis (opened on either), and then one session of bob's by id;
/// without the scope 403, without a token 401, a bad body 400. Without the flag there is no
/// admin endpoint.
#[cfg(feature = "redis")]
#[tokio::test]
async fn the_admin_endpoint_ends_sessions_on_every_replica() {
    let Some(redis) = redis_server::RedisServer::start() else {
        return;
    };
    let env = [("MCP_JWT_SECRET", SECRET)];
    let replica = || {
        mcp_server(
            &["--redis", &redis.url(), "--admin-scope", "sessions:admin"],
            &env,
        )
    };
    let (a, b) = (replica(), replica());
    let (raw_a, raw_b) = (Raw::at(a.url.clone()), Raw::at(b.url.clone()));
    let bob = token(SECRET, ISSUER, "bob", AUDIENCE);
    let alices = [
        raw_a.open_session(Some(&alice())).await,
        raw_b.open_session(Some(&alice())).await,
    ];
    let bobs = [
        raw_a.open_session(Some(&bob)).await,
        raw_b.open_session(Some(&bob)).await,
    ];
    let end_principal = format!("{}/admin/end-principal", a.base_url());
    let alice_body = json!({"iss": ISSUER, "sub": "alice"});

    // Refused: no token, a token without the scope (alice's own), a bad body.
    let (status, _) = admin_post(&end_principal, None, &alice_body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = admin_post(&end_principal, Some(&alice()), &alice_body).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let admin = token_with_scope("operator", "sessions:admin");
    let (status, _) = admin_post(&end_principal, Some(&admin), &json!({"sub": "alice"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    for session in &alices {
        assert_eq!(
            whoami(&raw_a, session, Some(&alice())).await,
            format!("{ISSUER} alice")
        );
    }

    let (status, answer) = admin_post(&end_principal, Some(&admin), &alice_body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer, json!({"sessions": 2, "tasks": 0}));
    for raw in [&raw_a, &raw_b] {
        for session in &alices {
            let answer = raw.whoami(session, Some(&alice()), 5).await;
            assert_eq!(answer.status, StatusCode::NOT_FOUND, "{answer:?}");
        }
        for session in &bobs {
            assert_eq!(
                whoami(raw, session, Some(&bob)).await,
                format!("{ISSUER} bob")
            );
        }
    }

    // One session by id, on replica B's endpoint.
    let end_session = format!("{}/admin/end-session", b.base_url());
    let (status, answer) =
        admin_post(&end_session, Some(&admin), &json!({"session": bobs[0]})).await;
    assert_eq!((status, answer), (StatusCode::OK, json!({"ended": 1})));
    let answer = raw_a.whoami(&bobs[0], Some(&bob), 6).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{answer:?}");
    assert_eq!(
        whoami(&raw_a, &bobs[1], Some(&bob)).await,
        format!("{ISSUER} bob")
    );

    // Off by default.
    let plain = mcp_server(&[], &env);
    let (status, _) = admin_post(
        &format!("{}/admin/end-principal", plain.base_url()),
        Some(&admin),
        &alice_body,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// `--session-max-age 1`: a session in use answers 404 once it is a second old.
#[tokio::test]
async fn session_max_age_ends_a_busy_session() {
    let server = mcp_server(&["--session-max-age", "1"], &[("MCP_JWT_SECRET", SECRET)]);
    let raw = Raw::at(server.url.clone());
    let session = raw.open_session(Some(&alice())).await;
    assert_eq!(
        whoami(&raw, &session, Some(&alice())).await,
        format!("{ISSUER} alice")
    );
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let answer = raw.whoami(&session, Some(&alice()), 2).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{answer:?}");
    let fresh = raw.open_session(Some(&alice())).await;
    assert_eq!(
        whoami(&raw, &fresh, Some(&alice())).await,
        format!("{ISSUER} alice")
    );
}

/// `SIGHUP` rotates the key secret read from `MCP_KEY_SECRET_FILE` (and the state keys of
/// `MCP_STATE_KEYS_FILE`) while the server runs: a session bound before keeps working for
/// `--key-overlap`, new sessions are keyed with the new secret, and after the overlap the old
/// session answers 404.
#[cfg(feature = "redis")]
#[tokio::test]
async fn sighup_rotates_the_key_secret_with_an_overlap() {
    use mcp_session_binding::store::{KeyDerivation, KeySecret};
    let Some(redis) = redis_server::RedisServer::start() else {
        return;
    };
    let dir = redis.dir().to_owned();
    let (secret_file, state_file) = (dir.join("key-secret"), dir.join("state-keys"));
    let (one, two) = (
        "first key secret, at least 32 bytes long",
        "second key secret, at least 32 bytes long",
    );
    std::fs::write(&secret_file, format!("{one}\n")).unwrap();
    std::fs::write(&state_file, "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=").unwrap();
    let server = mcp_server(
        &["--redis", &redis.url(), "--key-overlap", "3"],
        &[
            ("MCP_JWT_SECRET", SECRET),
            ("MCP_KEY_SECRET_FILE", secret_file.to_str().unwrap()),
            ("MCP_STATE_KEYS_FILE", state_file.to_str().unwrap()),
        ],
    );
    let raw = Raw::at(server.url.clone());
    let binding = |secret: &str, session: &str| {
        let keys = KeyDerivation::keyed(KeySecret::from_material(secret.as_bytes()).unwrap());
        redis.command(&["GET", &format!("mcpsb:{}", keys.session(session).to_hex())])
    };
    let old = raw.open_session(Some(&alice())).await;
    assert!(
        !binding(one, &old).is_empty(),
        "keyed with the file's secret"
    );

    std::fs::write(&secret_file, two).unwrap();
    std::fs::write(&state_file, "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI").unwrap();
    let status = Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    // Both rotations are logged, the state keys' second (with the feature).
    let logged = |log: &str| {
        log.contains("key secret rotated")
            && (!cfg!(feature = "request-state") || log.contains("state keys rotated"))
    };
    while !logged(&server.stderr()) {
        assert!(
            std::time::Instant::now() < deadline,
            "no rotation logged: {}",
            server.stderr()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let rotated = std::time::Instant::now();
    assert!(!server.stderr().contains(one) && !server.stderr().contains(two));

    // The overlap: the old session still works; a new one is keyed with the new secret.
    assert_eq!(
        whoami(&raw, &old, Some(&alice())).await,
        format!("{ISSUER} alice")
    );
    let new = raw.open_session(Some(&alice())).await;
    assert!(binding(one, &new).is_empty());
    assert!(!binding(two, &new).is_empty(), "keyed with the new secret");

    // After it: the old session is unknown, the new one works.
    tokio::time::sleep(std::time::Duration::from_millis(3_200).saturating_sub(rotated.elapsed()))
        .await;
    let answer = raw.whoami(&old, Some(&alice()), 7).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{answer:?}");
    assert_eq!(
        whoami(&raw, &new, Some(&alice())).await,
        format!("{ISSUER} alice")
    );
}
