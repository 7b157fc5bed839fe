//! Runs the crate's examples as child processes: builds them once per test binary (with the
//! features and profile this test was built with, so the nested cargo shares the build cache),
//! starts a server example and waits for its `listening on http://…/mcp` line, kills it on drop.
//!
//! Reached as `support::example_bin`.
#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader, Read},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, OnceLock, mpsc},
    time::{Duration, Instant},
};

/// Cargo arguments selecting this test's features and profile.
pub fn cargo_selection() -> Vec<String> {
    let features: Vec<&str> = [
        ("memory", cfg!(feature = "memory")),
        ("jwt", cfg!(feature = "jwt")),
        ("oidc", cfg!(feature = "oidc")),
        ("redis", cfg!(feature = "redis")),
        ("redis-tls", cfg!(feature = "redis-tls")),
        ("axum", cfg!(feature = "axum")),
        ("request-state", cfg!(feature = "request-state")),
        ("metrics", cfg!(feature = "metrics")),
        ("conformance", cfg!(feature = "conformance")),
    ]
    .into_iter()
    .filter_map(|(name, on)| on.then_some(name))
    .collect();
    let mut args = vec!["--no-default-features".to_owned()];
    if !features.is_empty() {
        args.push(format!("--features={}", features.join(",")));
    }
    if !cfg!(debug_assertions) {
        args.push("--release".to_owned());
    }
    args
}

/// A `cargo` command in this package's directory.
pub fn cargo() -> Command {
    let mut command = Command::new(env!("CARGO"));
    command.current_dir(env!("CARGO_MANIFEST_DIR"));
    command
}

/// The path of the built example `name`, building every example first (once per test binary).
pub fn example(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        super::external::run(
            cargo()
                .args(["build", "--quiet", "--examples"])
                .args(cargo_selection()),
        );
    });
    // This test runs from <target>/<profile>/deps/; examples are in <target>/<profile>/examples/.
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test executable in <profile>/deps");
    profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

/// The server example `name` on a free loopback port, logging at `warn`, trusting HS256 tokens
/// signed with `jwt_secret` (none when `None`), and none of the other JWT settings of this
/// process's environment (`MCP_JWT_ISSUERS`, `MCP_JWT_AUDIENCE`).
pub fn server_command(name: &str, jwt_secret: Option<&str>) -> Command {
    let mut command = Command::new(example(name));
    command
        .args(["--listen", "127.0.0.1:0"])
        .env_remove("MCP_JWT_SECRET")
        .env_remove("MCP_JWT_ISSUERS")
        .env_remove("MCP_JWT_AUDIENCE")
        .env("RUST_LOG", "warn");
    if let Some(secret) = jwt_secret {
        command.env("MCP_JWT_SECRET", secret);
    }
    command
}

/// A running example server, killed on drop.
pub struct Spawned {
    child: Child,
    /// The URL of its MCP endpoint, from its `listening on` line.
    pub url: String,
    /// What it printed on stdout before the `listening on` line.
    pub banner: Vec<String>,
    stderr: Arc<Mutex<String>>,
}

impl Spawned {
    /// Starts `command` and waits (at most 60 s) for its `listening on <url>` line.
    pub fn start(command: &mut Command) -> Self {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the example starts");
        let stderr = collect(child.stderr.take().expect("piped stderr"));
        let (lines_tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });

        let deadline = Instant::now() + Duration::from_secs(60);
        let mut banner = Vec::new();
        loop {
            match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => match line.strip_prefix("listening on ") {
                    Some(url) => {
                        return Self {
                            child,
                            url: url.to_owned(),
                            banner,
                            stderr,
                        };
                    }
                    None => banner.push(line),
                },
                Err(_) => {
                    let _ = child.kill();
                    let status = child.wait();
                    std::thread::sleep(Duration::from_millis(100));
                    panic!(
                        "no `listening on` line (exit: {status:?})\nstdout: {banner:#?}\nstderr:\n{}",
                        stderr.lock().unwrap()
                    );
                }
            }
        }
    }

    /// `http://host:port`, the URL without `/mcp`.
    pub fn base_url(&self) -> &str {
        self.url.strip_suffix("/mcp").expect("URL ends with /mcp")
    }

    /// Its process id (to send it a signal).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads `stream` to the end in a thread, into the returned buffer.
fn collect(stream: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let buffer = Arc::new(Mutex::new(String::new()));
    super::external::collect_into(stream, buffer.clone());
    buffer
}
