//! Programs the tests start that the machine may lack (chromium, python with the MCP SDK):
//! finding them, and the loud `SKIP` (or, with `CI` set, the failure) when they are missing.
//!
//! Reached as `support::external`.
#![allow(dead_code)]

use std::{io::Write, path::PathBuf};

/// Reports a missing program: panics when `CI` is set, else prints a `SKIP:` line straight to
/// the process's stderr (the test harness hides `eprintln!` of passing tests) and returns.
pub fn missing(what: &str, install: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{what} is missing and CI is set: {install}");
    }
    let _ = writeln!(
        std::io::stderr(),
        "SKIP: {what} is missing; test skipped ({install}; set CI to make this fatal)"
    );
}

/// `name` on `PATH`, or `None`.
pub fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
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
