//! Log lines written while a test runs on a current-thread runtime, through a thread-local
//! `tracing` subscriber.
//!
//! Reached as `support::logs`.
#![allow(dead_code)]

use std::{
    io::Write,
    sync::{Arc, Mutex},
};

/// What the subscriber of [`Captured::install`] wrote, at `info` and above.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Captures this thread's events until the guard drops. The server under test must run on
    /// the same thread (`#[tokio::test(flavor = "current_thread")]`).
    pub fn install(&self) -> tracing::subscriber::DefaultGuard {
        // A second dispatcher, alive for the whole process, so that this subscriber is never the
        // only one: with a single live dispatcher, tracing-core computes the interest of a
        // callsite first reached on another thread (another test of this binary) from that
        // thread's default alone, caches `never`, and this thread then misses the event.
        static SECOND: std::sync::OnceLock<tracing::Dispatch> = std::sync::OnceLock::new();
        SECOND.get_or_init(|| tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default()));
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    /// The captured lines that contain `needle`.
    pub fn lines_with(&self, needle: &str) -> Vec<String> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect()
    }
}
