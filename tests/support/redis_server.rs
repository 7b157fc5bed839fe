//! A real `redis-server` for tests: no mock, no system service.
//!
//! Use it from any test module (`support` is declared once, in each binary's `main.rs`):
//!
//! ```ignore
//! use crate::support::redis_server;
//!
//! let Some(server) = redis_server::RedisServer::start() else { return };
//! let url = server.url();
//! ```
//!
//! [`RedisServer::start`] returns `None` (after printing a `SKIP:` line) when `redis-server` is
//! not installed, unless `CI` or `REQUIRE_REDIS` is set: then it panics, so a CI run can never
//! pass by skipping. Set `REDIS_SERVER` to the path of the binary to use another one.
#![allow(dead_code)]

use std::{
    io::{Read, Write},
    net::{Shutdown, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use super::external;

/// How long a fresh server may take to answer `PING`.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A `redis-server` child process on `127.0.0.1`, with its own temporary directory, killed on
/// drop.
#[derive(Debug)]
pub(crate) struct RedisServer {
    binary: PathBuf,
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// Set for a TLS-only server ([`start_tls`](Self::start_tls)).
    tls: bool,
    /// Extra `redis-server` arguments (cluster mode).
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers `PING`.
    ///
    /// `None` when `redis-server` is missing (and neither `CI` nor `REQUIRE_REDIS` is set).
    ///
    /// # Panics
    ///
    /// When the binary is missing and `CI` or `REQUIRE_REDIS` is set, or when the server does
    /// not come up.
    pub(crate) fn start() -> Option<Self> {
        Self::start_with(false, &[])
    }

    /// Starts a TLS-only server (no plain port) on a free port, with a certificate for
    /// `127.0.0.1` and `localhost` issued by a fresh CA that `openssl` makes in the server's
    /// directory ([`ca_file`](Self::ca_file)); clients need no certificate. Waits until the port
    /// accepts connections.
    ///
    /// `None` when `redis-server` or `openssl` is missing (and neither `CI` nor `REQUIRE_REDIS`
    /// is set).
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start), and when `openssl` fails.
    pub(crate) fn start_tls() -> Option<Self> {
        if external::on_path("openssl").is_none() {
            return skip("openssl not found (Debian: apt-get install -y openssl)");
        }
        Self::start_with(true, &[])
    }

    /// Starts a server with extra arguments (such as `--cluster-enabled yes`).
    pub(crate) fn start_with_args(args: &[&str]) -> Option<Self> {
        Self::start_with(false, args)
    }

    fn start_with(tls: bool, extra: &[&str]) -> Option<Self> {
        let Some(binary) = find_binary() else {
            return skip(
                "redis-server not found (Debian: apt-get install -y redis-server, or set \
                 REDIS_SERVER to its path)",
            );
        };
        let dir = external::unique_dir("mcpsb-redis");
        if tls {
            make_certificates(&dir);
        }
        // A port another process takes between the probe and the spawn makes the server exit;
        // try a few.
        let mut last_error = String::new();
        for _ in 0..5 {
            let mut server = Self {
                binary: binary.clone(),
                port: free_port(),
                dir: dir.clone(),
                child: None,
                tls,
                extra: extra.iter().map(|&arg| arg.to_owned()).collect(),
            };
            match server.spawn() {
                Ok(()) => return Some(server),
                Err(err) => last_error = err,
            }
        }
        panic!("redis-server did not start: {last_error}");
    }

    /// `redis://127.0.0.1:PORT/`, or `rediss://…` for a TLS server.
    pub(crate) fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}/", self.port)
    }

    /// The CA that issued a TLS server's certificate (PEM).
    pub(crate) fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A CA that issued nothing this server presents (PEM): a client trusting only it must
    /// refuse the server.
    pub(crate) fn other_ca_file(&self) -> PathBuf {
        self.dir.join("other-ca.pem")
    }

    /// The port the server listens on (kept across [`stop`](Self::stop) and
    /// [`restart`](Self::restart)).
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The server's working directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the server process is running (as far as this handle knows).
    pub(crate) fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server and waits for it to exit. The port and directory are kept. Idempotent.
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (`SIGSTOP`): connections stay open and the kernel still accepts
    /// bytes, but nothing answers, as with a hung server.
    ///
    /// # Panics
    ///
    /// When the server is not running or the signal cannot be sent.
    pub(crate) fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a [`pause`](Self::pause)d server (`SIGCONT`); it answers what queued up meanwhile.
    ///
    /// # Panics
    ///
    /// When the server is not running or the signal cannot be sent.
    pub(crate) fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("redis-server is running").id();
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {pid}: {status}");
    }

    /// Stops the server (if running) and starts a fresh one on the same port, with no data
    /// (the harness disables persistence). Waits until it answers `PING`.
    ///
    /// # Panics
    ///
    /// When the server does not come back on its port.
    pub(crate) fn restart(&mut self) {
        self.stop();
        // The old socket may linger for a moment; retry for a while.
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.spawn() {
                Ok(()) => return,
                Err(err) if Instant::now() >= deadline => {
                    panic!("redis-server did not restart on port {}: {err}", self.port)
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Sends one command over a new connection and returns its reply as text (bulk strings as
    /// their content, nil as empty, arrays one element a line). For test plumbing (`FLUSHALL`, `CONFIG RESETSTAT`,
    /// `INFO commandstats`); tests of a store should use the store's own client.
    ///
    /// # Panics
    ///
    /// When the server cannot be reached.
    pub(crate) fn command(&self, args: &[&str]) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to redis");
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream.write_all(request.as_bytes()).expect("send to redis");
        read_reply(&mut stream)
    }

    /// Calls per command since start or the last `CONFIG RESETSTAT`, from `INFO commandstats`,
    /// keyed by lowercase command name (`"set"`, `"get"`, `"evalsha"`, `"pexpire"`, …).
    /// Commands run inside a script count too.
    pub(crate) fn command_calls(&self) -> std::collections::BTreeMap<String, u64> {
        self.command(&["INFO", "commandstats"])
            .lines()
            .filter_map(|line| {
                let (name, stats) = line.strip_prefix("cmdstat_")?.split_once(':')?;
                let calls = stats
                    .split(',')
                    .find_map(|kv| kv.strip_prefix("calls="))?
                    .parse()
                    .ok()?;
                Some((name.to_owned(), calls))
            })
            .collect()
    }

    /// Resets the server's statistics (`CONFIG RESETSTAT`); the next
    /// [`command_calls`](Self::command_calls) counts from here (the reset itself is not counted).
    pub(crate) fn reset_stats(&self) {
        self.command(&["CONFIG", "RESETSTAT"]);
    }

    fn spawn(&mut self) -> Result<(), String> {
        let port = self.port.to_string();
        let mut command = Command::new(&self.binary);
        if self.tls {
            command.args(["--port", "0", "--tls-port", &port]);
            for (flag, file) in [
                ("--tls-cert-file", "server.pem"),
                ("--tls-key-file", "server.key"),
                ("--tls-ca-cert-file", "ca.pem"),
            ] {
                command.arg(flag).arg(self.dir.join(file));
            }
            command.args(["--tls-auth-clients", "no"]);
        } else {
            command.args(["--port", &port]);
        }
        let mut child = command
            .args(&self.extra)
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args([
                "--daemonize",
                "no",
                "--protected-mode",
                "yes",
                "--loglevel",
                "warning",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|err| format!("spawn {}: {err}", self.binary.display()))?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("redis-server on port {port} exited: {status}"));
            }
            let up = if self.tls {
                TcpStream::connect_timeout(
                    &([127, 0, 0, 1], self.port).into(),
                    Duration::from_millis(200),
                )
                .is_ok()
            } else {
                ping(self.port)
            };
            if up {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("redis-server on port {port} did not answer PING"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // SIGKILL ends a paused (SIGSTOPped) server too.
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `None` after a loud `SKIP:` line, or a panic under `CI` / `REQUIRE_REDIS`.
fn skip<T>(what: &str) -> Option<T> {
    external::skip(what, &["REQUIRE_REDIS"]);
    None
}

/// A CA (`ca.pem`), a server certificate for `127.0.0.1` and `localhost` that it issued
/// (`server.pem`, `server.key`), and an unrelated CA (`other-ca.pem`), in `dir`; P-256 keys,
/// valid one day.
fn make_certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        external::run(Command::new("openssl").args(args).current_dir(dir));
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    for (name, subject) in [
        ("ca", "/CN=mcpsb test CA"),
        ("other-ca", "/CN=mcpsb other CA"),
    ] {
        let (key, cert) = (format!("{name}.key"), format!("{name}.pem"));
        let mut args = vec!["req", "-x509"];
        args.extend(ec);
        args.extend([
            "-keyout",
            &key,
            "-out",
            &cert,
            "-days",
            "1",
            "-subj",
            subject,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(&args);
    }
    let mut args = vec!["req"];
    args.extend(ec);
    args.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    openssl(&args);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
    )
    .expect("write server.ext");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "1",
        "-extfile",
        "server.ext",
    ]);
}

fn find_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("REDIS_SERVER") {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    external::on_path("redis-server")
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

fn ping(port: u16) -> bool {
    let Ok(mut stream) =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
    else {
        return false;
    };
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .ok();
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0; 7];
    let ok = stream.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n";
    let _ = stream.shutdown(Shutdown::Both);
    ok
}

/// Reads one RESP2 reply and renders it as text (bulk strings as their content, arrays as
/// lines).
fn read_reply(stream: &mut TcpStream) -> String {
    let line = read_line(stream);
    let (kind, rest) = line.split_at(1);
    match kind {
        "+" | ":" => rest.to_owned(),
        "-" => panic!("redis error: {rest}"),
        "$" => {
            let len: i64 = rest.parse().expect("bulk length");
            if len < 0 {
                return String::new();
            }
            let mut body = vec![0; usize::try_from(len).expect("length") + 2];
            stream.read_exact(&mut body).expect("read bulk");
            body.truncate(body.len() - 2);
            String::from_utf8_lossy(&body).into_owned()
        }
        "*" => {
            let n: i64 = rest.parse().expect("array length");
            (0..n.max(0))
                .map(|_| read_reply(stream))
                .collect::<Vec<_>>()
                .join("\n")
        }
        other => panic!("unexpected redis reply type {other:?}"),
    }
}

fn read_line(stream: &mut TcpStream) -> String {
    let mut line = Vec::new();
    let mut byte = [0; 1];
    loop {
        stream.read_exact(&mut byte).expect("read from redis");
        if byte[0] == b'\n' {
            break;
        }
        line.push(byte[0]);
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    String::from_utf8_lossy(&line).into_owned()
}

/// How long a fresh cluster may take to reach `cluster_state:ok`, and a failover to finish.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(30);

/// A Redis Cluster on loopback: 3 masters and 3 replicas (`redis-server --cluster-enabled yes`,
/// joined by `redis-cli --cluster create … --cluster-replicas 1`), node timeout 1 s so that a
/// failover takes seconds. Killed on drop.
#[derive(Debug)]
pub(crate) struct RedisCluster {
    pub(crate) nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts the six nodes, creates the cluster and waits (at most 30 s) until every node reports
    /// `cluster_state:ok` and knows all six, and every replica is in sync with its master.
    ///
    /// `None` when `redis-server` or `redis-cli` is missing (and neither `CI` nor
    /// `REQUIRE_REDIS` is set).
    ///
    /// # Panics
    ///
    /// When a node does not start or the cluster does not form in time.
    pub(crate) fn start() -> Option<Self> {
        if external::on_path("redis-cli").is_none() {
            return skip("redis-cli not found (Debian: apt-get install -y redis-tools)");
        }
        // `redis-cli --cluster create` waits for the nodes to join with no bound of its own: a
        // node that dies meanwhile (its port, or its bus port 10000 above, taken by another
        // process) would hang the test. Bounded, and started again on fresh ports.
        let mut failed = String::new();
        for _ in 0..3 {
            match Self::try_start()? {
                Ok(cluster) => return Some(cluster),
                Err(why) => failed = why,
            }
        }
        panic!("the cluster did not form: {failed}");
    }

    /// One attempt of [`start`](Self::start): `Err` when `redis-cli --cluster create` fails or
    /// does not finish within [`CLUSTER_TIMEOUT`] (the nodes are killed on drop).
    fn try_start() -> Option<Result<Self, String>> {
        let args = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "1000",
            // Replicas sync at once (the default waits 5 s for more replicas), so a master can
            // be failed over as soon as the cluster is up.
            "--repl-diskless-sync-delay",
            "0",
        ];
        let mut nodes = Vec::with_capacity(6);
        for _ in 0..6 {
            nodes.push(RedisServer::start_with_args(&args)?);
        }
        let addresses: Vec<String> = nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port()))
            .collect();
        let created = Command::new("timeout")
            .arg(CLUSTER_TIMEOUT.as_secs().to_string())
            .args(["redis-cli", "--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("timeout and redis-cli start");
        if !created.status.success() {
            return Some(Err(format!(
                "redis-cli --cluster create {}: {}{}",
                created.status,
                String::from_utf8_lossy(&created.stdout),
                String::from_utf8_lossy(&created.stderr)
            )));
        }
        let cluster = Self { nodes };
        cluster.wait_until("every node sees a healthy cluster", |cluster| {
            cluster.nodes.iter().all(|node| {
                node.command(&["CLUSTER", "INFO"])
                    .lines()
                    .any(|line| line.trim() == "cluster_state:ok")
                    && node.command(&["CLUSTER", "NODES"]).lines().count() == 6
                    && (node.command(&["ROLE"]).lines().next() == Some("master")
                        || node
                            .command(&["INFO", "replication"])
                            .lines()
                            .any(|line| line.trim() == "master_link_status:up"))
            })
        });
        Some(Ok(cluster))
    }

    /// The seed URLs, one per node.
    pub(crate) fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The running node that is the master of `key`'s slot, as seen by the first running node.
    ///
    /// # Panics
    ///
    /// When no running node knows a master for the slot.
    pub(crate) fn master_of(&self, key: &str) -> &RedisServer {
        self.try_master_of(key)
            .unwrap_or_else(|| panic!("no live master for {key:?}"))
    }

    fn try_master_of(&self, key: &str) -> Option<&RedisServer> {
        let node = self.nodes.iter().find(|node| node.is_running())?;
        let slot: u16 = node
            .command(&["CLUSTER", "KEYSLOT", key])
            .parse()
            .expect("a slot");
        let nodes = node.command(&["CLUSTER", "NODES"]);
        let port = nodes.lines().find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let flags = fields.get(2)?;
            if !flags.contains("master") || flags.contains("fail") {
                return None;
            }
            let owns = fields.iter().skip(8).any(|range| {
                let (from, to) = range.split_once('-').unwrap_or((range, range));
                matches!((from.parse::<u16>(), to.parse::<u16>()), (Ok(a), Ok(b)) if (a..=b).contains(&slot))
            });
            owns.then(|| fields[1].split(['@', ',']).next()?.rsplit(':').next()?.parse::<u16>().ok())?
        })?;
        self.nodes
            .iter()
            .find(|node| node.port() == port && node.is_running())
    }

    /// `GET key` on the master of its slot, `""` for a missing key.
    pub(crate) fn get(&self, key: &str) -> String {
        self.master_of(key).command(&["GET", key])
    }

    /// Kills the master of `key`'s slot and waits (at most 30 s) until a replica took its
    /// place and every surviving node reports `cluster_state:ok`. The port of the killed node.
    pub(crate) fn fail_over(&mut self, key: &str) -> u16 {
        let port = self.master_of(key).port();
        let node = self
            .nodes
            .iter_mut()
            .find(|node| node.port() == port)
            .expect("the master");
        node.stop();
        self.wait_until("a replica replaced the killed master", |cluster| {
            cluster
                .try_master_of(key)
                .is_some_and(|master| master.port() != port)
                && cluster.nodes.iter().filter(|n| n.is_running()).all(|n| {
                    n.command(&["CLUSTER", "INFO"])
                        .lines()
                        .any(|line| line.trim() == "cluster_state:ok")
                })
        });
        port
    }

    /// Resets the statistics of every running node.
    pub(crate) fn reset_stats(&self) {
        for node in self.nodes.iter().filter(|node| node.is_running()) {
            node.reset_stats();
        }
    }

    /// Calls per command over every running master (see [`RedisServer::command_calls`]);
    /// replicas are left out, as they run the writes their master replicates, and so are the
    /// cluster client's own `CLUSTER …` commands and the replicas' `REPLCONF ACK`s.
    pub(crate) fn command_calls(&self) -> std::collections::BTreeMap<String, u64> {
        let mut calls = std::collections::BTreeMap::new();
        let masters = self.nodes.iter().filter(|node| {
            node.is_running() && node.command(&["ROLE"]).lines().next() == Some("master")
        });
        for node in masters {
            for (name, n) in node.command_calls() {
                if !name.starts_with("cluster") && name != "role" && name != "replconf" {
                    *calls.entry(name).or_insert(0) += n;
                }
            }
        }
        calls
    }

    fn wait_until(&self, what: &str, done: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + CLUSTER_TIMEOUT;
        while !done(self) {
            if Instant::now() >= deadline {
                let views: Vec<String> = self
                    .nodes
                    .iter()
                    .filter(|node| node.is_running())
                    .map(|node| {
                        let nodes = node.command(&["CLUSTER", "NODES"]);
                        format!("node {}:\n{nodes}", node.port())
                    })
                    .collect();
                panic!(
                    "{what}: not within {CLUSTER_TIMEOUT:?}\n{}",
                    views.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
