//! Instructions per request of `JwtAuthLayer`: an opaque token answered from a warm
//! introspection cache, against an HS256 JWT verified locally. Counted by valgrind's callgrind
//! as the difference of two runs of each kind (`FEW` and `MANY` requests, identical setup: the
//! introspection endpoint on loopback and the warming call cancel out), divided by the
//! difference of their request counts. Prints a note and exits when valgrind is not installed.
//!
//! ```text
//! cargo bench --all-features --bench introspection
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
}
