//! The `api_keys` example (the binding layer behind a hand-written API-key auth layer) as a user
//! runs it: the built binary in a child process, driven over loopback.

use crate::support::MISMATCH_MESSAGE;
use crate::support;

use support::example_bin;

use std::process::Command;

use example_bin::{Spawned, example};
use http::StatusCode;
use serde_json::json;
use support::{Raw, initialize_body, tool_text};


#[tokio::test]
async fn api_keys_example_binds_sessions_to_the_key_owner() {
    let server = Spawned::start(
        Command::new(example("api_keys"))
            .args(["--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "info"),
    );
    let raw = Raw::at(server.url.clone());

    let session = raw.open_session(Some("key-alice")).await;
    let answer = raw.whoami(&session, Some("key-alice"), 1).await;
    assert_eq!(tool_text(&answer.json()), "https://keys.example alice");

    // bob's key is valid, but not for alice's session: isError, and the session is over.
    let answer = raw.whoami(&session, Some("key-bob"), 2).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let message = answer.json();
    assert_eq!(message["id"], json!(2));
    assert_eq!(message["result"]["isError"], json!(true), "{message}");
    assert_eq!(tool_text(&message), MISMATCH_MESSAGE);
    let answer = raw.whoami(&session, Some("key-alice"), 3).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{answer:?}");

    // bob in his own session.
    let session = raw.open_session(Some("key-bob")).await;
    let answer = raw.whoami(&session, Some("key-bob"), 4).await;
    assert_eq!(tool_text(&answer.json()), "https://keys.example bob");

    // No key, an unknown key, a prefix of a key: 401 with a challenge, no session.
    for key in [None, Some("key-mallory"), Some("key-alic")] {
        let answer = raw.post(None, key, &initialize_body()).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{key:?}");
        assert_eq!(answer.headers["www-authenticate"], "Bearer");
        assert!(answer.headers.get("mcp-session-id").is_none());
    }
}
