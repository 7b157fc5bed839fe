//! A Prometheus server (Debian's `prometheus`) in a child process, scraping given targets every
//! second, and queries of its HTTP API (`/api/v1/query`). Killed, and its data removed, on drop.
//!
//! Reached as `support::prometheus`.
#![allow(dead_code)]

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use super::external;

/// A running Prometheus.
#[derive(Debug)]
pub struct Prometheus {
    child: Child,
    dir: PathBuf,
    /// `http://127.0.0.1:PORT`, its HTTP API.
    pub url: String,
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` (`host:port`, their `/metrics`) every second, and
    /// waits until it is ready. `None` (a loud skip, or a failure under `CI`) when `prometheus`
    /// is missing.
    pub fn start(targets: &[&str]) -> Option<Self> {
        let Some(binary) = external::on_path("prometheus") else {
            external::missing("prometheus", "Debian: apt-get install -y prometheus");
            return None;
        };
        let port = free_port();
        let dir = std::env::temp_dir().join(format!(
            "mcp-session-binding-prometheus-{}-{port}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: mcp\n    static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        );
        let config_file = dir.join("prometheus.yml");
        std::fs::write(&config_file, config).expect("write prometheus.yml");
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus starts");
        let prometheus = Self {
            child,
            dir,
            url: format!("http://127.0.0.1:{port}"),
        };
        prometheus.wait_ready();
        Some(prometheus)
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let ready = format!("{}/-/ready", self.url);
        while Instant::now() < deadline {
            if get_status(&ready).is_ok_and(|status| status == 200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("prometheus at {} not ready within 30 s", self.url);
    }

    /// The value of the instant query `query`: `None` when it has no series, the sum over its
    /// series otherwise.
    pub async fn value(&self, query: &str) -> Option<f64> {
        let url = format!("{}/api/v1/query?query={}", self.url, percent_encode(query));
        let answer: Value = reqwest::Client::new()
            .get(url)
            .send()
            .await
            .expect("query Prometheus")
            .json()
            .await
            .expect("a JSON answer");
        assert_eq!(answer["status"], "success", "{query}: {answer}");
        let series = answer["data"]["result"].as_array().expect("a vector");
        if series.is_empty() {
            return None;
        }
        let sum = series
            .iter()
            .map(|s| {
                s["value"][1]
                    .as_str()
                    .and_then(|v| v.parse::<f64>().ok())
                    .expect("a sample value")
            })
            .sum();
        Some(sum)
    }

    /// Waits (at most `within`) until `query` has the value `expected`; the last value seen.
    pub async fn wait_for(&self, query: &str, expected: f64, within: Duration) -> Option<f64> {
        let deadline = Instant::now() + within;
        loop {
            let value = self.value(query).await;
            if value == Some(expected) || Instant::now() >= deadline {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `text` for a URL query: every byte but the unreserved ones as `%XX`.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The status of a GET of `http://HOST:PORT/PATH`, over a plain TCP stream (Prometheus starts
/// before any runtime is needed).
fn get_status(url: &str) -> std::io::Result<u16> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut stream = std::net::TcpStream::connect(host)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(
        stream,
        "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head)?;
    Ok(std::str::from_utf8(&head[9..12])
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0))
}
