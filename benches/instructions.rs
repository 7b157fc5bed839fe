//! Instructions per request added by `SessionBindingLayer` on the matching path, counted by
//! valgrind's callgrind: repeatable on a busy machine, where wall-clock nanoseconds are not.
//!
//! Runs itself twice under callgrind, calling the same inner service (the `overhead` bench's
//! `service_fn`) `REQUESTS` times bare and `REQUESTS` times behind the layer, with identical setup;
//! the difference of the two totals divided by `REQUESTS` is the layer's cost. Prints a note and
//! exits when valgrind is not installed.
//!
//! ```text
//! cargo bench --all-features --bench instructions
//! ```

#[path = "common/mod.rs"]
mod common;

use std::process::Command;

use bytes::Bytes;
use common::{answer, bound_store, call_now, owner, post};
use http::Request;
use http_body_util::Full;
use mcp_session_binding::SessionBindingLayer;
use tower::Layer;

const REQUESTS: usize = 20_000;

/// A sessionless (revision 2026-07-28) `tools/call`: no session id, `Mcp-Method` and `Mcp-Name`.
fn modern(body: &Bytes, caller: &mcp_session_binding::Identity) -> Request<Full<Bytes>> {
    let mut request = post(body, caller);
    let headers = request.headers_mut();
    headers.remove("mcp-session-id");
    headers.insert(
        "mcp-protocol-version",
        http::HeaderValue::from_static("2026-07-28"),
    );
    headers.insert("mcp-method", http::HeaderValue::from_static("tools/call"));
    headers.insert("mcp-name", http::HeaderValue::from_static("echo"));
    request
}

/// The inner service for sessionless runs: `answer`, labelled JSON (the layer scans JSON and
/// SSE answers of `tools/call` for a task).
async fn answer_json(
    request: Request<Full<Bytes>>,
) -> Result<http::Response<Full<Bytes>>, std::convert::Infallible> {
    let mut response = answer(request).await?;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// Reads a response body to its end (the scan runs as the body is read).
fn drain<B: http_body::Body>(response: http::Response<B>) -> bool {
    use futures::FutureExt;
    use http_body_util::BodyExt;
    let ok = response.status().is_success();
    ok && response
        .into_body()
        .collect()
        .now_or_never()
        .is_some_and(|r| r.is_ok())
}

/// One sessionless run: `REQUESTS` `tools/call`s without a task, bare or behind the layer, each
/// answer read to its end.
fn run_modern(layered: bool) {
    let caller = owner();
    let body = Bytes::from(common::tool_call_text(common::KIB));
    let requests: Vec<Request<Full<Bytes>>> =
        (0..REQUESTS).map(|_| modern(&body, &caller)).collect();
    let mut ok = 0;
    if layered {
        let mut service =
            SessionBindingLayer::with_store(bound_store()).layer(tower::service_fn(answer_json));
        for request in requests {
            ok += usize::from(drain(call_now(&mut service, request)));
        }
    } else {
        let _store = bound_store();
        let mut service = tower::service_fn(answer_json);
        for request in requests {
            ok += usize::from(drain(call_now(&mut service, request)));
        }
    }
    assert_eq!(ok, REQUESTS);
}

/// The answer of an rmcp server to a session-era `tools/call`: SSE, a priming event and the
/// result, in two frames.
async fn answer_sse(
    request: Request<Full<Bytes>>,
) -> Result<http::Response<SseBody>, std::convert::Infallible> {
    let _ = answer(request).await?;
    let frames: [&'static [u8]; 2] = [
        b"data: \nid: 0/0\nretry: 3000\n\n",
        b"data: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"https://issuer.example user-0000\"}],\"isError\":false}}\nid: 1/0\n\n",
    ];
    let frames = frames.map(|f| Ok(http_body::Frame::data(Bytes::from_static(f))));
    let mut response = http::Response::new(http_body_util::StreamBody::new(futures::stream::iter(
        frames,
    )));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/event-stream"),
    );
    Ok(response)
}

type SseBody = http_body_util::StreamBody<
    futures::stream::Iter<
        std::array::IntoIter<Result<http_body::Frame<Bytes>, std::convert::Infallible>, 2>,
    >,
>;

/// What a session-era run puts in front of the inner service.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stack {
    /// The task layer checking nothing.
    None,
    /// The task layer's checks (legacy tasks on), without the binding layer.
    Tasks,
    /// The binding layer and the task layer's checks, on one store.
    Both,
}

/// One session-era run as `loadgen --instructions` makes it: `REQUESTS` `tools/call whoami` on
/// the caller's session, answered in SSE, each answer read to its end, through `stack`. Each has
/// the state layer inside (feature `request-state`), as the example server has.
fn run_session_tasks(stack: Stack) {
    use mcp_session_binding::task_params::TaskParamsLayer;
    let caller = owner();
    let body = Bytes::from_static(
        br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"whoami","arguments":{}}}"#,
    );
    let requests: Vec<Request<Full<Bytes>>> = (0..REQUESTS).map(|_| post(&body, &caller)).collect();
    let store = bound_store();
    let tasks = TaskParamsLayer::new(store.clone()).legacy_tasks(stack != Stack::None);
    // The example server's stack inside the binding layer: the task layer, the state layer.
    #[cfg(feature = "request-state")]
    let inner = tasks.layer(
        mcp_session_binding::state::RequestStateLayer::new(
            mcp_session_binding::state::StateKeys::random(),
        )
        .layer(tower::service_fn(answer_sse)),
    );
    #[cfg(not(feature = "request-state"))]
    let inner = tasks.layer(tower::service_fn(answer_sse));
    let mut ok = 0;
    if stack == Stack::Both {
        let mut service = SessionBindingLayer::with_store(store).layer(inner);
        for request in requests {
            ok += usize::from(drain(call_now(&mut service, request)));
        }
    } else {
        let mut service = inner;
        for request in requests {
            ok += usize::from(drain(call_now(&mut service, request)));
        }
    }
    assert_eq!(ok, REQUESTS);
}

/// One run: `REQUESTS` calls, bare or behind the layer.
fn run(layered: bool) {
    let caller = owner();
    let body = Bytes::from(common::tool_call_text(common::KIB));
    let requests: Vec<Request<Full<Bytes>>> = (0..REQUESTS).map(|_| post(&body, &caller)).collect();
    let mut ok = 0;
    if layered {
        let mut service = SessionBindingLayer::with_store(bound_store())
            .layer(tower::service_fn(answer::<Full<Bytes>>));
        for request in requests {
            ok += usize::from(call_now(&mut service, request).status().is_success());
        }
    } else {
        // The same store, built and unused, so that setup is identical.
        let _store = bound_store();
        let mut service = tower::service_fn(answer::<Full<Bytes>>);
        for request in requests {
            ok += usize::from(call_now(&mut service, request).status().is_success());
        }
    }
    assert_eq!(ok, REQUESTS);
}

/// Total instructions of this binary running `mode` under callgrind.
fn count(mode: &str) -> Option<u64> {
    let exe = std::env::current_exe().ok()?;
    let output = Command::new("valgrind")
        .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
        .arg(exe)
        .arg(mode)
        .output()
        .ok()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    stderr.lines().find_map(|line| {
        let (_, collected) = line.split_once("Collected :")?;
        collected.trim().parse().ok()
    })
}

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("bare") => return run(false),
        Some("layer") => return run(true),
        Some("modern-bare") => return run_modern(false),
        Some("modern-layer") => return run_modern(true),
        Some("tasks-none") => return run_session_tasks(Stack::None),
        Some("tasks-checks") => return run_session_tasks(Stack::Tasks),
        Some("tasks-layer") => return run_session_tasks(Stack::Both),
        _ => {}
    }
    let (Some(bare), Some(layer)) = (count("bare"), count("layer")) else {
        println!("instructions: valgrind (callgrind) not found, nothing measured");
        return;
    };
    let added = (layer as f64 - bare as f64) / REQUESTS as f64;
    println!(
        "instructions: bare run {bare}, layer run {layer}: the layer adds {added:.0} instructions per request ({REQUESTS} requests, 1 KiB body, matching identity)"
    );
    if let (Some(none), Some(checks), Some(both)) = (
        count("tasks-none"),
        count("tasks-checks"),
        count("tasks-layer"),
    ) {
        let per = |a: u64, b: u64| (a as f64 - b as f64) / REQUESTS as f64;
        println!(
            "instructions: session-era tools/call, SSE answer, state layer inside: the task layer's checks (legacy tasks) add {:.0} instructions per request, the binding layer {:.0} more: {:.0} together (runs: {none}, {checks}, {both})",
            per(checks, none),
            per(both, checks),
            per(both, none),
        );
    }
    let (Some(bare), Some(layer)) = (count("modern-bare"), count("modern-layer")) else {
        return;
    };
    let added = (layer as f64 - bare as f64) / REQUESTS as f64;
    println!(
        "instructions: sessionless tools/call (2026-07-28, no task): bare run {bare}, layer run {layer}: the layer adds {added:.0} instructions per request (answer scanned for a task)"
    );
}
