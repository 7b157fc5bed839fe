//! `loadgen --gateway`: the `gateway` example in front of a fast upstream (the example server
//! with `--allow-anonymous --without-binding`), against the same upstream reached directly, in
//! one run.
//!
//! ```text
//! cargo build --release --all-features --example mcp_server --example gateway --example loadgen
//! target/release/examples/loadgen --gateway [--rounds 5] [--seconds 3] [--warmup 0.5] [--concurrency 1,16,64]
//! target/release/examples/loadgen --gateway --instructions 2000 [--rounds 3]
//! ```
//!
//! One upstream process and one gateway process (`target/release/examples/gateway`, next to
//! this binary, `--upstream` the upstream, bindings in its `MemoryStore`), both with the same
//! HS256 secret and `RUST_LOG=warn`. Each client has one session opened directly and one opened
//! through the gateway, and calls `tools/call echo` with its own `sub` as the text, with its
//! token (the upstream checks it on direct calls; the gateway checks it, binds the session, and
//! forwards the call without `Authorization`, as MCP requires). Every answer is checked.
//!
//! The load phases alternate direct and gateway as `loadgen` alternates its two servers, and
//! print, per concurrency: requests/s, p50 and p99 of both, the throughput ratio
//! gateway/direct, the latency the gateway adds (gateway minus direct) at p50 and p99, and the
//! CPU time per request of each process (`/proc`): the upstream on direct calls, and on
//! gateway calls the gateway and the upstream behind it. All three processes share the
//! machine, so the throughput ratio also counts the gateway's CPU.
//!
//! With `--instructions N`, both processes run under callgrind: after 50 warm-up calls each
//! way, N sequential calls through the gateway (instructions of the gateway, and of the
//! upstream behind it), then N direct (instructions of the upstream), per request. The gateway's
//! share of the upstream's direct count is the figure. `LOADGEN_CALLGRIND_OUT=DIR` keeps the
//! gateway's profile of the N calls (`callgrind.gateway.*`) and the upstream's.

use super::{
    Args, Command, Error, Server, Session, Totals, median_ratio, open_session, phase,
    server_instructions, spawn_server, whoami,
};
use std::sync::Arc;

/// The upstream's flags: a fast MCP server, no binding of its own, and anonymous callers allowed
/// (the gateway does not pass the caller's token on).
const UPSTREAM_ARGS: [&str; 2] = ["--allow-anonymous", "--without-binding"];

/// `tools/call echo` of `text` (a `sub`: no character JSON would escape).
fn echo(text: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{{"name":"echo","arguments":{{"text":"{text}"}}}}}}"#
    )
}

fn sub(i: usize) -> String {
    format!(
        "user-{i:04}-{:016x}",
        0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(i as u64 + 1)
    )
}

/// The upstream ("direct") and the gateway in front of it.
async fn spawn_pair(args: &Args, callgrind: bool) -> Result<[Server; 2], Error> {
    let upstream_args: Vec<String> = UPSTREAM_ARGS.iter().map(|s| (*s).to_owned()).collect();
    let upstream = spawn_server(
        "direct",
        args.server.as_deref(),
        args.server_cpu,
        callgrind,
        &upstream_args,
    )
    .await?;
    let binary =
        std::env::current_exe()?.with_file_name(format!("gateway{}", std::env::consts::EXE_SUFFIX));
    if !binary.exists() {
        return Err(format!(
            "{} not found: build it first with `cargo build --release --all-features --example gateway`",
            binary.display()
        )
        .into());
    }
    let mut gateway = spawn_server(
        "gateway",
        Some(&binary),
        args.server_cpu,
        callgrind,
        &["--upstream".to_owned(), upstream.url.clone()],
    )
    .await?;
    gateway.upstream_pid = Some(upstream.pid);
    Ok([upstream, gateway])
}

/// A session of `sub` at `server` whose calls are `tools/call echo` of `sub`.
async fn echo_session(
    client: &reqwest::Client,
    server: &Server,
    sub: String,
) -> Result<Session, Error> {
    let mut session = open_session(client, &server.url, sub).await?;
    session.call = echo(&session.sub);
    Ok(session)
}

/// The median of `values` (the mean of the middle two for an even count).
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let k = sorted.len();
    if k == 0 {
        f64::NAN
    } else if k % 2 == 1 {
        sorted[k / 2]
    } else {
        (sorted[k / 2 - 1] + sorted[k / 2]) / 2.0
    }
}

/// `loadgen --gateway`.
pub(crate) async fn run(args: &Args, client: &reqwest::Client) -> Result<(), Error> {
    if let Some(requests) = args.instructions {
        return instructions(args, client, requests).await;
    }
    let max_clients = *args.concurrency.iter().max().unwrap_or(&1);
    let mut servers = spawn_pair(args, false).await?;
    for server in &mut servers {
        for i in 0..max_clients {
            let session = echo_session(client, server, sub(i)).await?;
            server.sessions.push(Arc::new(session));
        }
    }
    println!(
        "loadgen --gateway: {} rounds x {:?} per phase (+{:?} warm-up), concurrency {:?}, tools/call echo",
        args.rounds, args.window, args.warmup, args.concurrency
    );
    println!(
        "upstream (direct) {UPSTREAM_ARGS:?} pid {} at {}, gateway pid {} at {}",
        servers[0].pid, servers[0].url, servers[1].pid, servers[1].url
    );
    let mut totals: Vec<[Totals; 2]> = args
        .concurrency
        .iter()
        .map(|_| [Totals::default(), Totals::default()])
        .collect();
    for round in 0..args.rounds {
        for (c, &clients) in args.concurrency.iter().enumerate() {
            let order = if (round + c) % 2 == 0 { [0, 1] } else { [1, 0] };
            for which in order {
                let measured =
                    phase(client, &servers[which], clients, args.warmup, args.window).await?;
                let n = measured.requests.max(1) as f64;
                eprintln!(
                    "round {} concurrency {clients:>3} {:<7}: {:>8.0} req/s, CPU {:>6.1} + {:>6.1} µs/req",
                    round + 1,
                    servers[which].name,
                    measured.requests as f64 / measured.elapsed.as_secs_f64(),
                    measured.server_cpu.as_secs_f64() * 1e6 / n,
                    measured.upstream_cpu.as_secs_f64() * 1e6 / n,
                );
                totals[c][which].add(measured);
            }
        }
    }

    println!();
    println!(
        "| clients | direct req/s | gateway req/s | ratio | direct p50 µs | gateway p50 µs | added p50 µs | direct p99 µs | gateway p99 µs | added p99 µs | CPU µs/req: upstream direct | gateway | upstream behind it |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (c, &clients) in args.concurrency.iter().enumerate() {
        let [direct, gateway] = &mut totals[c];
        let (d_rps, g_rps) = (direct.rps(), gateway.rps());
        let (d50, g50) = (direct.percentile_us(50.0), gateway.percentile_us(50.0));
        let (d99, g99) = (direct.percentile_us(99.0), gateway.percentile_us(99.0));
        let per_request = |t: &Totals, cpu: std::time::Duration| {
            cpu.as_secs_f64() * 1e6 / t.requests.max(1) as f64
        };
        println!(
            "| {clients} | {d_rps:.0} | {g_rps:.0} | {:.3} | {d50:.0} | {g50:.0} | {:.0} | {d99:.0} | {g99:.0} | {:.0} | {:.1} | {:.1} | {:.1} |",
            g_rps / d_rps,
            g50 - d50,
            g99 - d99,
            per_request(direct, direct.server_cpu),
            per_request(gateway, gateway.server_cpu),
            per_request(gateway, gateway.upstream_cpu),
        );
    }
    println!();
    println!("Per round (direct and gateway back to back), medians over the rounds:");
    for (c, &clients) in args.concurrency.iter().enumerate() {
        let [direct, gateway] = &totals[c];
        let (rps, rps_rounds) = median_ratio(&direct.per_round_rps, &gateway.per_round_rps);
        let added = |d: &[f64], g: &[f64]| {
            let diffs: Vec<f64> = d.iter().zip(g).map(|(d, g)| g - d).collect();
            median(&diffs)
        };
        println!("  {clients:>3} clients: throughput gateway/direct median {rps:.3}, {rps_rounds}");
        println!(
            "  {clients:>3} clients: added latency median p50 {:.0} µs, p99 {:.0} µs (direct p50 {:.0} µs, p99 {:.0} µs)",
            added(&direct.per_round_p50, &gateway.per_round_p50),
            added(&direct.per_round_p99, &gateway.per_round_p99),
            median(&direct.per_round_p50),
            median(&direct.per_round_p99),
        );
    }
    for server in &mut servers {
        server.child.kill().await?;
    }
    Ok(())
}

/// Keeps the profile of the counts since the last zeroing, with `LOADGEN_CALLGRIND_OUT`.
async fn dump(pid: u32) -> Result<(), Error> {
    if std::env::var_os("LOADGEN_CALLGRIND_OUT").is_some() {
        Command::new("callgrind_control")
            .arg("--dump")
            .arg(pid.to_string())
            .output()
            .await?;
    }
    Ok(())
}

/// `loadgen --gateway --instructions N`.
async fn instructions(args: &Args, client: &reqwest::Client, requests: usize) -> Result<(), Error> {
    println!(
        "instructions per tools/call echo (callgrind, {requests} sequential requests each way after 50 warm-up, {} rounds):",
        args.rounds
    );
    let (mut direct, mut gateway, mut behind) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=args.rounds.max(1) {
        let mut servers = spawn_pair(args, true).await?;
        let [upstream, proxy] = &servers;
        let through = echo_session(client, proxy, sub(0)).await?;
        let straight = echo_session(client, upstream, sub(1)).await?;
        for _ in 0..50 {
            whoami(client, &proxy.url, &through).await?;
            whoami(client, &upstream.url, &straight).await?;
        }
        server_instructions(proxy.pid, true).await?;
        server_instructions(upstream.pid, true).await?;
        for _ in 0..requests {
            whoami(client, &proxy.url, &through).await?;
        }
        let g = server_instructions(proxy.pid, false).await? as f64 / requests as f64;
        let b = server_instructions(upstream.pid, false).await? as f64 / requests as f64;
        dump(proxy.pid).await?;
        server_instructions(upstream.pid, true).await?;
        for _ in 0..requests {
            whoami(client, &upstream.url, &straight).await?;
        }
        let d = server_instructions(upstream.pid, false).await? as f64 / requests as f64;
        dump(upstream.pid).await?;
        println!(
            "  round {round}: upstream direct {d:.0}; through the gateway: gateway {g:.0} ({:.3} of the upstream's direct count), upstream behind it {b:.0}",
            g / d
        );
        direct.push(d);
        gateway.push(g);
        behind.push(b);
        for server in &mut servers {
            server.child.kill().await?;
        }
    }
    let ratios: Vec<f64> = gateway.iter().zip(&direct).map(|(g, d)| g / d).collect();
    println!(
        "  median: upstream direct {:.0}, gateway {:.0}, upstream behind the gateway {:.0}; gateway/upstream {:.3}",
        median(&direct),
        median(&gateway),
        median(&behind),
        median(&ratios),
    );
    Ok(())
}
