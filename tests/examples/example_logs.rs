#![cfg(feature = "jwt")]
//! The `mcp_server` example at its default log level (`RUST_LOG` unset) logs no session id and no
//! token.
//!
//! rmcp logs every new session id at `info` (`create new session session_id=…`) and names it in
//! the `streamable_http_session{id=…}` span around its session's events; the example's default
//! filter (`info,rmcp=warn`) keeps both out. The layer itself logs only a hash prefix of the id.
//!
//! What is checked, precisely: the example runs without `MCP_JWT_SECRET`, so it prints tokens for
//! alice and bob on stdout *on purpose*, in its banner (every stdout line up to and including
//! `listening on URL`). The test uses those tokens to open sessions, call a tool, open a GET
//! stream, be refused on another user's session (which the layer then ends), delete a session,
//! and send a token with a forged signature. Then it stops the server and checks that **all of
//! stderr** (from the start of the process) and **stdout after the banner** contain no 16-byte
//! window of any session id it was given and of any token it sent (the tokens, the forged one
//! too). A window rather than the whole value, so that a truncated id or token counts as a leak.
//! As a control, stderr must hold the layer's own events (`session bound` at `info`, the mismatch
//! at `warn`), so an empty or unread stderr cannot pass.

use crate::support;

use support::example_bin;

use std::{
    io::{BufRead, BufReader, Read},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use http::StatusCode;
use support::Raw;

/// The example server with both its outputs captured whole.
struct Server {
    child: Child,
    url: String,
    banner: Vec<String>,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

impl Server {
    /// Starts `mcp_server` with `RUST_LOG` and the JWT settings unset; waits (at most 60 s) for
    /// its `listening on` line.
    fn start() -> Self {
        let mut child = Command::new(example_bin::example("mcp_server"))
            .args(["--listen", "127.0.0.1:0"])
            .env_remove("RUST_LOG")
            .env_remove("MCP_JWT_SECRET")
            .env_remove("MCP_JWT_ISSUERS")
            .env_remove("MCP_JWT_AUDIENCE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the example starts");

        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().expect("piped stderr");
        let sink = stderr.clone();
        let err_reader = std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n @ 1..) = err.read(&mut chunk) {
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        });

        let stdout = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        let sink = stdout.clone();
        let out_reader = std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });

        let deadline = Instant::now() + Duration::from_secs(60);
        let mut banner = Vec::new();
        let url = loop {
            match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    let url = line.strip_prefix("listening on ").map(str::to_owned);
                    banner.push(line);
                    if let Some(url) = url {
                        break url;
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "no `listening on` line\nstdout: {banner:#?}\nstderr:\n{}",
                        stderr.lock().unwrap()
                    );
                }
            }
        };
        Self {
            child,
            url,
            banner,
            stdout,
            stderr,
            readers: vec![err_reader, out_reader],
        }
    }

    /// The token the banner prints for `user`.
    fn printed_token(&self, user: &str) -> String {
        self.banner
            .iter()
            .find_map(|line| {
                let mut words = line.split_whitespace();
                (words.next() == Some(user)).then(|| words.next().map(str::to_owned))?
            })
            .unwrap_or_else(|| panic!("no token for {user} in {:#?}", self.banner))
    }

    /// Waits (at most 10 s) until stderr contains every one of `needles`.
    fn wait_for_stderr(&self, needles: &[&str]) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let stderr = self.stderr.lock().unwrap().clone();
            if needles.iter().all(|n| stderr.contains(n)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "stderr never showed all of {needles:?}:\n{stderr}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server and returns (stderr, stdout after the banner), read to the end.
    fn stop(mut self) -> (String, String) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for reader in self.readers.drain(..) {
            reader.join().expect("reader thread");
        }
        let stdout = self.stdout.lock().unwrap();
        assert_eq!(stdout[..self.banner.len()], self.banner[..]);
        let after = stdout[self.banner.len()..].join("\n");
        (self.stderr.lock().unwrap().clone(), after)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The 16-byte windows of `secret` (the whole of it when shorter) that occur in `text`.
fn leaks<'a>(secret: &'a str, text: &str) -> Vec<&'a str> {
    const WINDOW: usize = 16;
    if secret.len() <= WINDOW {
        return if text.contains(secret) {
            vec![secret]
        } else {
            vec![]
        };
    }
    (0..=secret.len() - WINDOW)
        .filter_map(|i| secret.get(i..i + WINDOW))
        .filter(|window| text.contains(window))
        .collect()
}

#[tokio::test]
async fn default_log_level_shows_no_session_id_and_no_token() {
    let server = Server::start();
    let (alice, bob) = (server.printed_token("alice"), server.printed_token("bob"));
    // Same header and claims as alice's, another signature: refused with 401.
    let (signed, _) = alice.rsplit_once('.').expect("a JWS");
    let forged = format!("{signed}.{}", "A".repeat(43));
    let raw = Raw::at(server.url.clone());

    let sessions = tokio::time::timeout(Duration::from_secs(60), async {
        let alices = raw.open_session(Some(&alice)).await;
        let answer = raw.whoami(&alices, Some(&alice), 1).await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        assert!(support::tool_text(&answer.json()).ends_with(" alice"));
        assert_eq!(
            raw.get_stream_status(&alices, Some(&alice)).await,
            StatusCode::OK
        );
        // bob on alice's session: refused, and the session is ended.
        let answer = raw.whoami(&alices, Some(&bob), 2).await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        assert_eq!(answer.json()["result"]["isError"], true, "{answer:?}");

        let bobs = raw.open_session(Some(&bob)).await;
        let answer = raw.whoami(&bobs, Some(&bob), 3).await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        let answer = raw.whoami(&bobs, Some(&forged), 4).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{answer:?}");
        let answer = raw.delete(&bobs, Some(&bob)).await;
        assert!(answer.status.is_success(), "{answer:?}");
        vec![alices, bobs]
    })
    .await
    .expect("the exchange finishes within 60 s");

    // The layer's own events for the ending and the owner's DELETE, then a moment for rmcp's
    // session workers to wind down and log whatever they log.
    server.wait_for_stderr(&["session ended", "session deleted by its owner"]);
    std::thread::sleep(Duration::from_millis(300));
    let (stderr, stdout) = server.stop();

    for needle in [
        "session bound",
        "caller identity does not match session owner",
    ] {
        assert!(
            stderr.contains(needle),
            "stderr lacks the layer's `{needle}` event (default level not info?):\n{stderr}"
        );
    }
    let secrets = sessions.iter().map(|s| ("session id", s.as_str())).chain([
        ("alice's token", alice.as_str()),
        ("bob's token", bob.as_str()),
        ("forged token", forged.as_str()),
    ]);
    for (what, secret) in secrets {
        for (stream, text) in [("stderr", &stderr), ("stdout after the banner", &stdout)] {
            if let Some(window) = leaks(secret, text).first() {
                panic!("{stream} shows part of a {what} ({window:?} of {secret}):\n{text}");
            }
        }
    }
}
