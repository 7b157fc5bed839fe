//! Instructions per request of `JwtAuthLayer`: an opaque token answered from a warm
//! introspection cache, against an HS256 JWT verified locally. Counted by valgrind's callgrind
//! as the difference of two runs of each kind (`FEW` and `MANY` requests, identical setup: the
//! introspection endpoint on loopback and the warming call cancel out), divided by the
//! difference of their request counts. Prints a note and exits when valgrind is not installed.
//!
//! With `MCP_BENCH_REDIS=redis://HOST:PORT/` (feature `redis`), it also times requests per
//! second with the answer in Redis and no memory cache in front (`cache_capacity(0)`: every
//! request reads Redis) against the warm memory cache, 64 concurrent callers.
//!
//! ```text
//! cargo bench --all-features --bench introspection
//! MCP_BENCH_REDIS=redis://127.0.0.1:6390/ cargo bench --all-features --bench introspection
//! ```

use std::{convert::Infallible, process::Command, time::Duration};

use futures::FutureExt;
use http::{Request, Response};
use jsonwebtoken::{EncodingKey, Header, encode, get_current_timestamp};
use mcp_session_binding::jwt::{Algorithm, Introspection, JwtAuthLayer, JwtKey};
use tower::{Layer, Service, ServiceExt};

const FEW: usize = 2_000;
const MANY: usize = 12_000;
const AUD: &str = "https://mcp.example/mcp";
const SECRET: [u8; 32] = [7; 32];
const OPAQUE: &str = "0pAqUeT0kEn-abcdefghijklmnopqrstuvwxyz012345";

async fn inner(_request: Request<String>) -> Result<Response<String>, Infallible> {
    Ok(Response::new(String::new()))
}

/// `requests` requests of `kind` (`jwt-only`, `jwt` or `introspection`, the cache warmed first).
fn run(kind: &str, requests: usize) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let answer = serde_json::json!({
            "active": true, "iss": issuer, "sub": "alice", "aud": AUD,
            "exp": get_current_timestamp() + 600, "scope": "mcp",
        })
        .to_string();
        let app = axum::Router::new().route(
            "/introspect",
            axum::routing::post(move || std::future::ready(answer.clone())),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        let mut builder = JwtAuthLayer::builder()
            .issuer_keys("https://jwt.example", JwtKey::hmac(SECRET).unwrap())
            .algorithms([Algorithm::HS256]);
        // `jwt-only`: no introspected issuer (the layer as before); `jwt`: a JWT in a layer that
        // also introspects (mixed trust).
        if kind != "jwt-only" {
            builder = builder.issuer_introspection(
                &issuer,
                Introspection::new("rs", "secret").endpoint(format!("{issuer}/introspect")),
            );
        }
        let layer = builder.audiences([AUD]).build().unwrap();
        let jwt = encode(
            &Header::new(jsonwebtoken::Algorithm::HS256),
            &serde_json::json!({
                "iss": "https://jwt.example", "sub": "alice", "aud": AUD,
                "exp": get_current_timestamp() + 600, "scope": "mcp",
            }),
            &EncodingKey::from_secret(&SECRET),
        )
        .unwrap();
        let token = if kind == "introspection" {
            OPAQUE
        } else {
            jwt.as_str()
        };
        let request = || {
            Request::builder()
                .header("authorization", format!("Bearer {token}"))
                .body(String::new())
                .unwrap()
        };
        let mut service = layer.layer(tower::service_fn(inner));
        // Warm: the one introspection call (the JWT path has nothing to warm).
        let warm = tokio::time::timeout(
            Duration::from_secs(5),
            service.ready().await.unwrap().call(request()),
        );
        assert!(warm.await.unwrap().unwrap().status().is_success());
        let mut ok = 0;
        for _ in 0..requests {
            let response = service
                .ready()
                .now_or_never()
                .unwrap()
                .unwrap()
                .call(request())
                .now_or_never()
                .expect("answered from the cache, without waiting")
                .unwrap();
            ok += usize::from(response.status().is_success());
        }
        assert_eq!(ok, requests);
    });
}

/// Total instructions of this binary running `kind` with `requests` under callgrind.
fn count(kind: &str, requests: usize) -> Option<u64> {
    let exe = std::env::current_exe().ok()?;
    let output = Command::new("valgrind")
        .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
        .arg(exe)
        .arg(kind)
        .arg(requests.to_string())
        .output()
        .ok()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    stderr.lines().find_map(|line| {
        let (_, collected) = line.split_once("Collected :")?;
        collected.trim().parse().ok()
    })
}

/// Requests per second through the layer, 64 concurrent callers (one token each, warmed) for
/// `seconds`, memory cache (`redis` false) or Redis alone.
#[cfg(feature = "redis")]
fn rate(redis_url: &str, redis: bool, seconds: u64) -> f64 {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let redis_url = redis_url.to_owned();
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let answer = serde_json::json!({
            "active": true, "iss": issuer, "sub": "alice", "aud": AUD,
            "exp": get_current_timestamp() + 600,
        })
        .to_string();
        let app = axum::Router::new().route(
            "/introspect",
            axum::routing::post(move || std::future::ready(answer.clone())),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        let store = mcp_session_binding::store::RedisStore::connect(&redis_url)
            .await
            .expect("MCP_BENCH_REDIS answers");
        let mut settings = Introspection::new("rs", "secret")
            .endpoint(format!("{issuer}/introspect"))
            .redis(store.connection());
        if redis {
            settings = settings.cache_capacity(0);
        }
        let layer = JwtAuthLayer::builder()
            .issuer_introspection(&issuer, settings)
            .audiences([AUD])
            .build()
            .unwrap();
        let service = layer.layer(tower::service_fn(inner));
        // One token per caller: each request reads its own answer (no shared flight).
        let request = move |caller: usize| {
            Request::builder()
                .header(
                    "authorization",
                    format!("Bearer {OPAQUE}-{}-{caller}", u8::from(redis)),
                )
                .body(String::new())
                .unwrap()
        };
        for caller in 0..64 {
            let response = service.clone().oneshot(request(caller)).await.unwrap();
            assert!(response.status().is_success());
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(seconds);
        let callers: Vec<_> = (0..64)
            .map(|caller| {
                let service = service.clone();
                tokio::spawn(async move {
                    let mut done = 0u64;
                    while std::time::Instant::now() < deadline {
                        let response = service.clone().oneshot(request(caller)).await.unwrap();
                        assert!(response.status().is_success());
                        done += 1;
                    }
                    done
                })
            })
            .collect();
        let mut total = 0;
        for caller in callers {
            total += caller.await.unwrap();
        }
        total as f64 / seconds as f64
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let (Some(kind), Some(requests)) = (args.get(1), args.get(2))
        && let Ok(requests) = requests.parse()
    {
        return run(kind, requests);
    }
    for kind in ["jwt-only", "jwt", "introspection"] {
        let (Some(few), Some(many)) = (count(kind, FEW), count(kind, MANY)) else {
            println!("instructions: valgrind (callgrind) not found, nothing measured");
            return;
        };
        let per_request = (many as f64 - few as f64) / (MANY - FEW) as f64;
        println!(
            "instructions: {kind}: {per_request:.0} per request through JwtAuthLayer ({FEW} and {MANY} requests: {few}, {many})"
        );
    }
    #[cfg(feature = "redis")]
    if let Ok(url) = std::env::var("MCP_BENCH_REDIS") {
        let memory = rate(&url, false, 3);
        let redis = rate(&url, true, 3);
        println!(
            "requests/s, 64 callers: warm memory cache {memory:.0}, Redis only {redis:.0} (ratio {:.2})",
            redis / memory
        );
    }
}
