//! End-to-end cost of `SessionBindingLayer`: the example server (`examples/mcp_server.rs`) with
//! and without the layer, under the same loopback load, in one run.
//!
//! ```text
//! cargo build --release --all-features --example mcp_server --example loadgen
//! target/release/examples/loadgen [--rounds 5] [--seconds 3] [--warmup 0.5] [--concurrency 1,16,64]
//!                                 [--server PATH] [--server-cpu N]
//! target/release/examples/loadgen --instructions 2000 [--rounds 5] [--server PATH]
//! target/release/examples/loadgen --redis redis://127.0.0.1:6379/ [--redis-cache-ms MS] [--concurrency 16,64] …
//! target/release/examples/loadgen --gateway [--instructions N] …
//! ```
//!
//! With `--gateway`, it compares the `gateway` example in front of the example server with that
//! server reached directly (see `common/loadgen_gateway.rs`).
//!
//! With `--redis URL`, the two servers both have the layer: one keeps its bindings in a
//! `MemoryStore` (`memory`, the baseline), the other in the Redis at `URL` (`redis`, with
//! `--redis URL`, so rmcp's session state is there too, and `MCP_KEY_SECRET` set, so its keys
//! are keyed BLAKE3 rather than SHA-256); the ratios are redis/memory. Use a
//! local `redis-server` that nothing else loads. `--instructions N --redis URL` counts the
//! server instructions per request of the two. `--redis-cache-ms MS` gives the Redis server the
//! same flag (the store's client-side cache).
//!
//! On a 2-core machine, `taskset -c 0 target/release/examples/loadgen --server-cpu 1` gives the
//! load generator one core and the server the other (`taskset`), which steadies the figures.
//!
//! It spawns `target/release/examples/mcp_server` (next to its own binary) twice, with
//! `--without-binding` (bare: the task layer keeps its checks) and without it (layer), both on
//! `127.0.0.1:0`, with the same HS256
//! secret and `RUST_LOG=warn`. Each server gets one established session per client (initialize,
//! then notifications/initialized; one user per client, tokens minted here with `iss`, `sub`,
//! `aud`, `exp`). Then, for several rounds, and for each concurrency, it runs the bare and the
//! layered server one after the other (the order alternates each round, so machine drift
//! cancels out): each client sends `tools/call whoami` on its session in a loop and reads the whole
//! answer; after a warm-up, requests completed in the window are counted and their latencies
//! kept. It prints, per concurrency: requests/s, p50 and p99 for both, the ratios layer/bare, and
//! the server's CPU time per request (from `/proc`), which does not depend on which side (client
//! or server) is the bottleneck on a shared machine.
//!
//! Wall-clock figures on a shared 2-core machine move with whatever else runs. `--instructions N`
//! measures what does not: it runs each server under valgrind's callgrind, sends N sequential
//! `tools/call whoami` on one session (after 50 warm-up calls), and reads how many instructions the
//! server executed (all threads, `callgrind_control`), per request, on three servers: without
//! either layer's work (`--without-binding --without-task-checks`), with the task layer's checks
//! (`--without-binding`), and with both; it prints the binding layer's ratio and both layers'.
//!
//! Every answer is checked (HTTP 200 and the caller's own `sub` in the result): a failed request
//! stops the run. Requests go to loopback only, and the run is bounded in time.

#[path = "common/loadgen_gateway.rs"]
mod gateway;

use std::{
    process::Stdio,
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

const SECRET: &str = "loadgen-secret-0123456789abcdef0123456789abcdef";
/// `MCP_KEY_SECRET` of the servers.
const KEY_SECRET: &str = "loadgen-key-secret-0123456789abcdef";
const ISSUER: &str = "https://issuer.example";
const AUDIENCE: &str = "mcp-session-binding-example";
const PROTOCOL: &str = "2025-11-25";
const ACCEPT: &str = "application/json, text/event-stream";

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"loadgen","version":"0"}}}"#;
const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
const WHOAMI: &str =
    r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"whoami","arguments":{}}}"#;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The command line.
struct Args {
    rounds: usize,
    window: Duration,
    warmup: Duration,
    concurrency: Vec<usize>,
    /// The server binary; default: `mcp_server` next to this binary.
    server: Option<std::path::PathBuf>,
    /// Pin the servers to this CPU (with `taskset`).
    server_cpu: Option<usize>,
    /// Instead of the load: count the server's instructions over this many requests (callgrind).
    instructions: Option<usize>,
    /// Compare the layer on `MemoryStore` with the layer on the Redis at this URL.
    redis: Option<String>,
    /// `--redis-cache-ms`, passed on to the Redis server.
    redis_cache_ms: Option<u64>,
    /// Compare the upstream reached directly with the `gateway` example in front of it.
    gateway: bool,
}

impl Args {
    fn parse() -> Result<Self, Error> {
        let mut args = Self {
            rounds: 5,
            window: Duration::from_secs(3),
            warmup: Duration::from_millis(500),
            concurrency: vec![1, 16, 64],
            server: None,
            server_cpu: None,
            instructions: None,
            redis: None,
            redis_cache_ms: None,
            gateway: false,
        };
        let mut argv = std::env::args().skip(1);
        while let Some(flag) = argv.next() {
            let mut value = || argv.next().ok_or_else(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--rounds" => args.rounds = value()?.parse()?,
                "--seconds" => args.window = Duration::from_secs_f64(value()?.parse()?),
                "--warmup" => args.warmup = Duration::from_secs_f64(value()?.parse()?),
                "--concurrency" => {
                    args.concurrency = value()?
                        .split(',')
                        .map(str::parse)
                        .collect::<Result<_, _>>()?;
                }
                "--server" => args.server = Some(value()?.into()),
                "--server-cpu" => args.server_cpu = Some(value()?.parse()?),
                "--instructions" => args.instructions = Some(value()?.parse()?),
                "--redis" => args.redis = Some(value()?),
                "--redis-cache-ms" => args.redis_cache_ms = Some(value()?.parse()?),
                "--gateway" => args.gateway = true,
                // `cargo bench`-style invocations pass this; nothing to do.
                "--bench" => {}
                other => return Err(format!("unknown argument {other}").into()),
            }
        }
        if args.rounds == 0 || args.concurrency.is_empty() || args.concurrency.contains(&0) {
            return Err("rounds and concurrency must be positive".into());
        }
        Ok(args)
    }

    /// The two servers compared: (name, extra server arguments); the first is the baseline.
    fn servers(&self) -> [(&'static str, Vec<String>); 2] {
        match &self.redis {
            None => [
                ("bare", vec!["--without-binding".to_owned()]),
                ("layer", Vec::new()),
            ],
            Some(url) => {
                let mut redis = vec!["--redis".to_owned(), url.clone()];
                if let Some(ms) = self.redis_cache_ms {
                    redis.extend(["--redis-cache-ms".to_owned(), ms.to_string()]);
                }
                [("memory", Vec::new()), ("redis", redis)]
            }
        }
    }
}

/// One server process.
struct Server {
    name: &'static str,
    child: Child,
    pid: u32,
    url: String,
    /// One established session per client: (bearer token, session id, sub).
    sessions: Vec<Arc<Session>>,
    /// `--gateway`: the upstream behind this server, whose CPU time is read as well.
    upstream_pid: Option<u32>,
}

struct Session {
    token: String,
    id: String,
    sub: String,
    /// The request body sent on each call (`tools/call whoami` unless changed).
    call: String,
}

/// An access token for `sub`. Every token of a run has the same `iat` and `exp` (the run's
/// start), so the two servers compared get byte-identical tokens for the same `sub`, and their
/// JWT layers do the same work: minted when each session opens, they would differ in the
/// seconds the first server's round took.
fn token(sub: &str) -> String {
    static START: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    #[derive(serde::Serialize)]
    struct Claims<'a> {
        iss: &'a str,
        sub: &'a str,
        aud: &'a str,
        iat: u64,
        exp: u64,
    }
    let now = *START.get_or_init(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    });
    let claims = Claims {
        iss: ISSUER,
        sub,
        aud: AUDIENCE,
        iat: now,
        exp: now + 3600,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("HS256 signing")
}

async fn spawn_server(
    name: &'static str,
    binary: Option<&std::path::Path>,
    cpu: Option<usize>,
    callgrind: bool,
    extra: &[String],
) -> Result<Server, Error> {
    let path = match binary {
        Some(path) => path.to_owned(),
        None => std::env::current_exe()?
            .with_file_name(format!("mcp_server{}", std::env::consts::EXE_SUFFIX)),
    };
    if !path.exists() {
        return Err(format!(
            "{} not found: build it first with `cargo build --release --all-features --example mcp_server`",
            path.display()
        )
        .into());
    }
    let mut command = match (cpu, callgrind) {
        (_, true) => {
            let mut valgrind = Command::new("valgrind");
            // LOADGEN_CALLGRIND_OUT=DIR keeps the profiles (for callgrind_annotate).
            let out = std::env::var("LOADGEN_CALLGRIND_OUT").map_or_else(
                |_| "/dev/null".to_owned(),
                |dir| format!("{dir}/callgrind.{name}"),
            );
            valgrind
                .args(["--tool=callgrind", "--dump-instr=no"])
                .arg(format!("--callgrind-out-file={out}"))
                .arg(&path);
            valgrind
        }
        (Some(cpu), false) => {
            let mut taskset = Command::new("taskset");
            taskset.args(["-c", &cpu.to_string()]).arg(&path);
            taskset
        }
        (None, false) => Command::new(&path),
    };
    command
        .args(["--listen", "127.0.0.1:0"])
        .env("MCP_JWT_SECRET", SECRET)
        // Keyed Redis keys (BLAKE3), as a deployment with a key secret has: only `--redis` reads it.
        .env("MCP_KEY_SECRET", KEY_SECRET)
        .env_remove("MCP_JWT_ISSUERS")
        .env_remove("MCP_JWT_AUDIENCE")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    command.args(extra);
    let mut child = command.spawn()?;
    let pid = child.id().ok_or("server exited at once")?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let url = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(url) = line.strip_prefix("listening on ") {
                return Ok::<_, std::io::Error>(Some(url.trim().to_owned()));
            }
        }
        Ok(None)
    })
    .await??
    .ok_or("the server exited before listening")?;
    // Keep draining stdout so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Server {
        name,
        child,
        pid,
        url,
        sessions: Vec::new(),
        upstream_pid: None,
    })
}

async fn open_session(client: &reqwest::Client, url: &str, sub: String) -> Result<Session, Error> {
    let token = token(&sub);
    let response = client
        .post(url)
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .header("accept", ACCEPT)
        .body(INITIALIZE)
        .send()
        .await?;
    if response.status() != reqwest::StatusCode::OK {
        return Err(format!("initialize: {}", response.status()).into());
    }
    let id = response
        .headers()
        .get("mcp-session-id")
        .ok_or("initialize: no Mcp-Session-Id")?
        .to_str()?
        .to_owned();
    response.bytes().await?;
    let response = client
        .post(url)
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .header("accept", ACCEPT)
        .header("mcp-protocol-version", PROTOCOL)
        .header("mcp-session-id", &id)
        .body(INITIALIZED)
        .send()
        .await?;
    if response.status() != reqwest::StatusCode::ACCEPTED {
        return Err(format!("notifications/initialized: {}", response.status()).into());
    }
    response.bytes().await?;
    Ok(Session {
        token,
        id,
        sub,
        call: WHOAMI.to_owned(),
    })
}

/// One call (`tools/call whoami` unless the session says otherwise); checks that the answer
/// names the session's `sub`.
async fn whoami(client: &reqwest::Client, url: &str, session: &Session) -> Result<(), Error> {
    let response = client
        .post(url)
        .bearer_auth(&session.token)
        .header("content-type", "application/json")
        .header("accept", ACCEPT)
        .header("mcp-protocol-version", PROTOCOL)
        .header("mcp-session-id", &session.id)
        .body(session.call.clone())
        .send()
        .await?;
    let status = response.status();
    let body = response.bytes().await?;
    let text = String::from_utf8_lossy(&body);
    if status != reqwest::StatusCode::OK || !text.contains(session.sub.as_str()) {
        return Err(format!("tools/call: {status}: {text}").into());
    }
    Ok(())
}

/// Server CPU time so far (user + system), from `/proc/PID/stat`.
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // Linux reports in USER_HZ, 100 on every architecture Rust targets.
    Some(Duration::from_millis(ticks * 10))
}

/// What one phase (one server, one concurrency, one round) measured.
#[derive(Default)]
struct Phase {
    requests: u64,
    elapsed: Duration,
    latencies_ns: Vec<u64>,
    server_cpu: Duration,
    /// `--gateway`: the upstream's CPU time behind the gateway.
    upstream_cpu: Duration,
}

async fn phase(
    client: &reqwest::Client,
    server: &Server,
    clients: usize,
    warmup: Duration,
    window: Duration,
) -> Result<Phase, Error> {
    let start = Instant::now();
    let measure_from = start + warmup;
    let measure_until = measure_from + window;
    let cpu_before = Arc::new(tokio::sync::OnceCell::new());
    let mut tasks = tokio::task::JoinSet::new();
    for session in server.sessions.iter().take(clients) {
        let session = Arc::clone(session);
        let client = client.clone();
        let url = server.url.clone();
        let pids = (server.pid, server.upstream_pid);
        let cpu_before = cpu_before.clone();
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let sent = Instant::now();
                if sent >= measure_until {
                    break;
                }
                if sent >= measure_from {
                    cpu_before
                        .get_or_init(
                            || async move { (cpu_time(pids.0), pids.1.and_then(cpu_time)) },
                        )
                        .await;
                }
                whoami(&client, &url, &session).await?;
                let done = Instant::now();
                // Counted when sent and answered inside the window.
                if sent >= measure_from && done <= measure_until {
                    latencies.push(u64::try_from((done - sent).as_nanos()).unwrap_or(u64::MAX));
                }
            }
            Ok::<_, Error>(latencies)
        });
    }
    let mut result = Phase::default();
    while let Some(joined) = tasks.join_next().await {
        result.latencies_ns.extend(joined??);
    }
    let cpu_after = cpu_time(server.pid);
    let upstream_after = server.upstream_pid.and_then(cpu_time);
    result.requests = result.latencies_ns.len() as u64;
    result.elapsed = window;
    if let (Some((Some(before), _)), Some(after)) = (cpu_before.get(), cpu_after) {
        // The CPU reading closes after the last request of the window: the tail requests
        // (sent before the end, answered after it) add a little to both servers alike.
        result.server_cpu = after.saturating_sub(*before);
    }
    if let (Some((_, Some(before))), Some(after)) = (cpu_before.get(), upstream_after) {
        result.upstream_cpu = after.saturating_sub(*before);
    }
    Ok(result)
}

/// The `p`th percentile (nearest rank) of latencies in nanoseconds, in microseconds.
fn percentile_us(latencies_ns: &mut [u64], p: f64) -> f64 {
    latencies_ns.sort_unstable();
    let n = latencies_ns.len();
    if n == 0 {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    latencies_ns[rank.clamp(1, n) - 1] as f64 / 1000.0
}

/// The ratios `layer[i] / bare[i]` of the rounds: their median, and as text their geometric
/// mean with a 95% interval (mean of the logs ± 2 standard errors), then each ratio.
fn median_ratio(bare: &[f64], layer: &[f64]) -> (f64, String) {
    let mut ratios: Vec<f64> = bare.iter().zip(layer).map(|(b, l)| l / b).collect();
    let shown: Vec<String> = ratios.iter().map(|r| format!("{r:.3}")).collect();
    let logs: Vec<f64> = ratios.iter().map(|r| r.ln()).collect();
    let n = logs.len() as f64;
    let mean = logs.iter().sum::<f64>() / n;
    let spread = if logs.len() > 1 {
        let variance = logs.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / (n - 1.0);
        2.0 * (variance / n).sqrt()
    } else {
        f64::NAN
    };
    ratios.sort_by(f64::total_cmp);
    let k = ratios.len();
    let median = if k % 2 == 1 {
        ratios[k / 2]
    } else {
        (ratios[k / 2 - 1] + ratios[k / 2]) / 2.0
    };
    let text = format!(
        "geometric mean {:.3}, 95% interval {:.3}-{:.3}; rounds: {}",
        mean.exp(),
        (mean - spread).exp(),
        (mean + spread).exp(),
        shown.join(" ")
    );
    (median, text)
}

/// All phases of one server at one concurrency, over the rounds.
#[derive(Default)]
struct Totals {
    requests: u64,
    elapsed: Duration,
    latencies_ns: Vec<u64>,
    server_cpu: Duration,
    upstream_cpu: Duration,
    per_round_rps: Vec<f64>,
    per_round_p50: Vec<f64>,
    per_round_p99: Vec<f64>,
}

impl Totals {
    fn add(&mut self, mut phase: Phase) {
        self.per_round_rps
            .push(phase.requests as f64 / phase.elapsed.as_secs_f64());
        self.per_round_p50
            .push(percentile_us(&mut phase.latencies_ns, 50.0));
        self.per_round_p99
            .push(percentile_us(&mut phase.latencies_ns, 99.0));
        self.requests += phase.requests;
        self.elapsed += phase.elapsed;
        self.latencies_ns.extend(phase.latencies_ns);
        self.server_cpu += phase.server_cpu;
        self.upstream_cpu += phase.upstream_cpu;
    }

    fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile_us(&mut self, p: f64) -> f64 {
        percentile_us(&mut self.latencies_ns, p)
    }

    fn cpu_us_per_request(&self) -> f64 {
        self.server_cpu.as_secs_f64() * 1e6 / self.requests.max(1) as f64
    }
}

/// Instructions the server executes (all threads), from `callgrind_control`.
async fn server_instructions(pid: u32, zero: bool) -> Result<u64, Error> {
    let mut command = Command::new("callgrind_control");
    if zero {
        command.arg("--zero");
    } else {
        command.args(["-e", "Ir"]);
    }
    let output = command.arg(pid.to_string()).output().await?;
    if !output.status.success() {
        return Err(format!("callgrind_control failed: {output:?}").into());
    }
    // `-e Ir` prints one `Th N  COUNT` line per thread.
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(text
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next()? == "Th").then_some(())?;
            words.next()?;
            words.next()?.replace(',', "").parse::<u64>().ok()
        })
        .sum())
}

/// `--instructions N`: each server under callgrind, one session, N sequential `tools/call
/// whoami` after a warm-up; instructions the server executed per request. `--rounds` rounds,
/// the servers alternating; the median ratio is the figure (the server's threads make each count
/// move by a few hundred instructions per request).
///
/// Against the in-memory store, three servers: without either layer's work (`none`: no binding
/// layer, the task layer checking nothing), the task layer's checks alone (`tasks`, the
/// `--without-binding` baseline of the other modes), and the whole stack (`layer`). The ratios:
/// `SessionBindingLayer` alone (`layer` / `tasks`), and both layers (`layer` / `none`).
async fn instructions(args: &Args, client: &reqwest::Client, requests: usize) -> Result<(), Error> {
    println!(
        "server instructions per tools/call whoami (callgrind, {requests} sequential requests after 50 warm-up, {} rounds):",
        args.rounds
    );
    let mut servers = args.servers().to_vec();
    if args.redis.is_none() {
        let none = ["--without-binding", "--without-task-checks"].map(str::to_owned);
        servers.insert(0, ("none", none.to_vec()));
        servers[1].0 = "tasks";
    }
    let last = servers.len() - 1;
    // (numerator, denominator) server indexes of each ratio printed.
    let pairs: Vec<(usize, usize)> = (0..last).rev().map(|base| (last, base)).collect();
    let mut ratios = vec![Vec::new(); pairs.len()];
    for round in 1..=args.rounds.max(1) {
        let mut per_request = vec![0.0; servers.len()];
        for (which, (name, extra)) in servers.iter().enumerate() {
            let mut server = spawn_server(name, args.server.as_deref(), None, true, extra).await?;
            let session = open_session(client, &server.url, "user-0000".to_owned()).await?;
            for _ in 0..50 {
                whoami(client, &server.url, &session).await?;
            }
            server_instructions(server.pid, true).await?;
            for _ in 0..requests {
                whoami(client, &server.url, &session).await?;
            }
            let total = server_instructions(server.pid, false).await?;
            if std::env::var_os("LOADGEN_CALLGRIND_OUT").is_some() {
                Command::new("callgrind_control")
                    .arg("--dump")
                    .arg(server.pid.to_string())
                    .output()
                    .await?;
            }
            per_request[which] = total as f64 / requests as f64;
            server.child.kill().await?;
        }
        let counts: Vec<String> = servers
            .iter()
            .zip(&per_request)
            .map(|((name, _), count)| format!("{name} {count:.0}"))
            .collect();
        let mut line = format!(
            "  round {round}: {} instructions per request",
            counts.join(", ")
        );
        for (i, &(top, base)) in pairs.iter().enumerate() {
            let ratio = per_request[top] / per_request[base];
            let added = per_request[top] - per_request[base];
            line += &format!(
                "; {} adds {added:.0} to {} (ratio {ratio:.4})",
                servers[top].0, servers[base].0
            );
            ratios[i].push(ratio);
        }
        println!("{line}");
    }
    for (mut ratios, &(top, base)) in ratios.into_iter().zip(&pairs) {
        ratios.sort_by(f64::total_cmp);
        println!(
            "  median ratio {} / {}: {:.4} (range {:.4}-{:.4})",
            servers[top].0,
            servers[base].0,
            ratios[ratios.len() / 2],
            ratios[0],
            ratios[ratios.len() - 1]
        );
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Error> {
    let args = Args::parse()?;
    let max_clients = *args.concurrency.iter().max().unwrap_or(&1);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(max_clients * 2)
        .timeout(Duration::from_secs(120))
        .build()?;
    if args.gateway {
        return gateway::run(&args, &client).await;
    }
    if let Some(requests) = args.instructions {
        return instructions(&args, &client, requests).await;
    }

    let [(base_name, base_args), (other_name, other_args)] = args.servers();
    let mut servers = [
        spawn_server(
            base_name,
            args.server.as_deref(),
            args.server_cpu,
            false,
            &base_args,
        )
        .await?,
        spawn_server(
            other_name,
            args.server.as_deref(),
            args.server_cpu,
            false,
            &other_args,
        )
        .await?,
    ];
    for server in &mut servers {
        for i in 0..max_clients {
            let sub = format!(
                "user-{i:04}-{:016x}",
                0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(i as u64 + 1)
            );
            server
                .sessions
                .push(Arc::new(open_session(&client, &server.url, sub).await?));
        }
    }
    println!(
        "loadgen: {} rounds x {:?} per phase (+{:?} warm-up), concurrency {:?}, tools/call whoami",
        args.rounds, args.window, args.warmup, args.concurrency
    );
    println!(
        "servers: {} {:?} pid {} at {}, {} {:?} pid {} at {}",
        base_name,
        base_args,
        servers[0].pid,
        servers[0].url,
        other_name,
        other_args,
        servers[1].pid,
        servers[1].url
    );

    let mut totals: Vec<[Totals; 2]> = args
        .concurrency
        .iter()
        .map(|_| [Totals::default(), Totals::default()])
        .collect();
    for round in 0..args.rounds {
        for (c, &clients) in args.concurrency.iter().enumerate() {
            // Alternate which server goes first, so drift hits both alike.
            let order = if (round + c) % 2 == 0 { [0, 1] } else { [1, 0] };
            for which in order {
                let measured =
                    phase(&client, &servers[which], clients, args.warmup, args.window).await?;
                eprintln!(
                    "round {} concurrency {clients:>3} {:<5}: {:>8.0} req/s, server CPU {:>6.1} µs/req",
                    round + 1,
                    servers[which].name,
                    measured.requests as f64 / measured.elapsed.as_secs_f64(),
                    measured.server_cpu.as_secs_f64() * 1e6 / measured.requests.max(1) as f64
                );
                totals[c][which].add(measured);
            }
        }
    }

    println!();
    let (b, l) = (base_name, other_name);
    println!(
        "| clients | {b} req/s | {l} req/s | ratio | {b} p50 µs | {l} p50 µs | ratio | {b} p99 µs | {l} p99 µs | ratio | server CPU µs/req {b} | {l} | ratio |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (c, &clients) in args.concurrency.iter().enumerate() {
        let [bare, layer] = &mut totals[c];
        let (b_rps, l_rps) = (bare.rps(), layer.rps());
        let (b50, l50) = (bare.percentile_us(50.0), layer.percentile_us(50.0));
        let (b99, l99) = (bare.percentile_us(99.0), layer.percentile_us(99.0));
        let (bcpu, lcpu) = (bare.cpu_us_per_request(), layer.cpu_us_per_request());
        println!(
            "| {clients} | {b_rps:.0} | {l_rps:.0} | {:.3} | {b50:.0} | {l50:.0} | {:.3} | {b99:.0} | {l99:.0} | {:.3} | {bcpu:.1} | {lcpu:.1} | {:.3} |",
            l_rps / b_rps,
            l50 / b50,
            l99 / b99,
            lcpu / bcpu
        );
    }
    if let Some(c) = args.concurrency.iter().position(|&clients| clients == 1) {
        let p50 = totals[c][0].percentile_us(50.0);
        if p50 > 30_000.0 {
            println!(
                "\nwarning: p50 {p50:.0} µs at 1 client: the server's answers wait for delayed ACKs \
                 (Nagle; the server does not set TCP_NODELAY), so these figures measure that \
                 stall, not the servers"
            );
        }
    }
    println!();
    println!("Per round (each round runs both servers back to back), {l}/{b}:");
    for (c, &clients) in args.concurrency.iter().enumerate() {
        let [bare, layer] = &totals[c];
        let (rps, rps_rounds) = median_ratio(&bare.per_round_rps, &layer.per_round_rps);
        let (p99, p99_rounds) = median_ratio(&bare.per_round_p99, &layer.per_round_p99);
        println!("  {clients:>3} clients: throughput median {rps:.3}, {rps_rounds}");
        println!("  {clients:>3} clients: p99        median {p99:.3}, {p99_rounds}");
    }

    for server in &mut servers {
        server.child.kill().await?;
    }
    Ok(())
}
