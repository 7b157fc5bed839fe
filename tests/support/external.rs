//! Programs the tests start that the machine may lack (redis-server, node, chromium, python with
//! the MCP SDK): finding them, and the loud `SKIP` (or, with `CI` set, the failure) when they
//! are missing.
//!
//! Reached as `support::external`.
#![allow(dead_code)]

use std::{
    fs::OpenOptions,
    io::{Read, Write},
    path::PathBuf,
    process::{Command, Stdio},
    sync::{Arc, Mutex},
};

/// Skips the calling test for want of `what` (what is missing, and how to install it): panics
/// when `CI` or one of `fatal` (variable names) is set, so a CI run never passes by skipping;
/// else prints a `SKIP:` line straight to the process's stderr (the test harness hides
/// `eprintln!` of passing tests) and, when `MCP_SKIP_LOG` names a file, appends the test binary,
/// the test and `what` to it, tab-separated (`.ci/run` counts the skipped tests from it).
pub fn skip(what: &str, fatal: &[&str]) {
    let fatal: Vec<&str> = std::iter::once("CI").chain(fatal.iter().copied()).collect();
    if let Some(set) = fatal.iter().find(|var| std::env::var_os(var).is_some()) {
        panic!("{what}, and {set} is set");
    }
    let _ = writeln!(
        std::io::stderr(),
        "SKIP: {what}; test skipped (set {} to make this fatal)",
        fatal.join(" or ")
    );
    if let Some(log) = std::env::var_os("MCP_SKIP_LOG") {
        let exe = std::env::current_exe().unwrap_or_default();
        let exe = exe.file_name().unwrap_or_default().to_string_lossy();
        // `<target>-<hash>`: the hash says nothing to a reader.
        let binary = exe.rsplit_once('-').map_or(&*exe, |(name, _)| name);
        let test = std::thread::current().name().unwrap_or("?").to_owned();
        if let Ok(mut file) = OpenOptions::new().create(true).append(true).open(log) {
            let _ = writeln!(file, "{binary}\t{test}\t{what}");
        }
    }
}

/// Reports a missing program ([`skip`] with `CI` alone fatal).
pub fn missing(what: &str, install: &str) {
    skip(&format!("{what} is missing ({install})"), &[]);
}

/// Runs `command` to its end with no stdin and returns its stdout; panics with what it printed
/// when it cannot start or fails.
pub fn run(command: &mut Command) -> Vec<u8> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{command:?} cannot start: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// Appends what `stream` gives (a child's stdout or stderr) to `sink`, in a thread, until it
/// ends.
pub fn collect_into(mut stream: impl Read + Send + 'static, sink: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n @ 1..) = stream.read(&mut chunk) {
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
    });
}

/// `name` on `PATH` or in the usual directories (`/usr/bin`, `/usr/local/bin`, `/usr/sbin`), or
/// `None`.
pub fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([
            "/usr/bin".into(),
            "/usr/local/bin".into(),
            "/usr/sbin".into(),
        ])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// A fresh directory under the system temp directory, unique to this process and call.
pub fn unique_dir(prefix: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("{prefix}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a temp directory");
    dir
}
