//! A `metrics` recorder for tests: the counters each key reached, by `name{label=value,…}`
//! (labels sorted). Install it on the test's thread with `metrics::set_default_local_recorder`
//! (a `current_thread` runtime keeps every task on that thread).
//!
//! Reached as `support::recorder`.
#![allow(dead_code)]

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};

/// The counters recorded so far.
#[derive(Debug, Default)]
pub struct Recorded {
    counters: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
}

impl Recorded {
    /// Every counter that moved, with its value.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.counters
            .lock()
            .unwrap()
            .iter()
            .map(|(key, value)| (key.clone(), value.load(Ordering::Relaxed)))
            .filter(|(_, value)| *value > 0)
            .collect()
    }
}

fn render(key: &Key) -> String {
    let mut labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    labels.sort();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

impl Recorder for Recorded {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let mut counters = self.counters.lock().unwrap();
        Counter::from_arc(counters.entry(render(key)).or_default().clone())
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}
