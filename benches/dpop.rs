//! Instructions per request of `JwtAuthLayer` with a DPoP proof (RFC 9449) against the same
//! layer with a bearer token, counted by valgrind's callgrind (repeatable on a busy machine).
//!
//! Both runs verify the same ES256 access token (bound to the proof key with `cnf.jkt`) on
//! `REQUESTS` requests, with identical setup: every proof (ES256, one `jti` each) is made before
//! the count starts, in both runs (and in a third run that sends nothing, whose total is
//! subtracted). The bearer run's layer has DPoP off and sends the token as
//! `Bearer`; the DPoP run's requires DPoP, sends `Authorization: DPoP` and the proof, and
//! remembers each proof in the in-memory replay cache. The difference of the two totals divided
//! by `REQUESTS` is what a proof costs: its parse, one signature verification, one SHA-256 of the
//! token (`ath`), one thumbprint and one cache insert. Prints a note and exits when valgrind is
//! not installed.
//!
//! With `MCP_BENCH_REDIS=redis://127.0.0.1:PORT/` (a Redis nothing else loads), a fourth run
//! remembers each proof in Redis instead (`dpop_replay_redis`: one `SET NX PX` per proof), less a
//! setup run that connects and sends nothing: the client side of the round trip, in this process
//! (the Redis server's own work is not counted).
//!
//! ```text
//! cargo bench --all-features --bench dpop
//! ```

use std::{convert::Infallible, process::Command};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use bytes::Bytes;
use futures::FutureExt;
use http::{Request, Response};
use http_body_util::Full;
use jsonwebtoken::{EncodingKey, Header, encode, get_current_timestamp};
use mcp_session_binding::jwt::{Algorithm, DpopPolicy, JwtAuthLayer};
use serde_json::json;
use sha2::{Digest, Sha256};
use tower::{Layer, Service, ServiceExt};

#[cfg(feature = "redis")]
type Redis = mcp_session_binding::store::RedisStore;
#[cfg(not(feature = "redis"))]
type Redis = ();

const REQUESTS: usize = 1_000;
const ISS: &str = "https://issuer.example";
const URL: &str = "https://mcp.example/mcp";

/// The issuer's P-256 key (signs the access token).
const ISSUER_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgzNriJeSR+2llzlyK
Qbn5pMu5ij26sEqSxYbI/YycWguhRANCAAToOSNT9fXEgfCS1rJtzpPFwnMHSx88
A0ZosWou8ZgeoEQPpUkApc45YdBCFu1DEy/3QdCm+Tlm5hQBAYSegXeQ
-----END PRIVATE KEY-----
";
const ISSUER_PUBLIC_JWK: &str = r#"{"kty":"EC","crv":"P-256","alg":"ES256","x":"6DkjU_X1xIHwktaybc6TxcJzB0sfPANGaLFqLvGYHqA","y":"RA-lSQClzjlh0EIW7UMTL_dB0Kb5OWbmFAEBhJ6Bd5A"}"#;
/// The client's P-256 key (signs the proofs), its public `jwk` and thumbprint.
const CLIENT_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgB1k2Oo+aLaOtA6+M
1xjODYBjDwbgtmtCSMYxVEdf4/yhRANCAAQvq8szfmibEAgXVVpzWex0NYueqewz
lvoyBpGWx5vZbKIpBRsS06+xXMCVRBfPyLFdWoXHQOYVGa0UJYJZCizC
-----END PRIVATE KEY-----
";
const CLIENT_X: &str = "L6vLM35omxAIF1Vac1nsdDWLnqnsM5b6MgaRlseb2Ww";
const CLIENT_Y: &str = "oikFGxLTr7FcwJVEF8_IsV1ahcdA5hUZrRQlglkKLMI";
const CLIENT_JKT: &str = "XHsdC_mUwqsMVu-cLpoyGa-mzksGjSoGj5JOEse829Y";

fn token() -> String {
    let claims = json!({
        "iss": ISS, "sub": "alice", "aud": URL, "exp": get_current_timestamp() + 3600,
        "cnf": {"jkt": CLIENT_JKT},
    });
    let key = EncodingKey::from_ec_pem(ISSUER_PEM.as_bytes()).unwrap();
    encode(&Header::new(jsonwebtoken::Algorithm::ES256), &claims, &key).unwrap()
}

fn proofs(token: &str) -> Vec<String> {
    let key = EncodingKey::from_ec_pem(CLIENT_PEM.as_bytes()).unwrap();
    let header = json!({
        "typ": "dpop+jwt", "alg": "ES256",
        "jwk": {"kty": "EC", "crv": "P-256", "x": CLIENT_X, "y": CLIENT_Y},
    });
    let header = URL_SAFE_NO_PAD.encode(header.to_string());
    let ath = URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()));
    (0..REQUESTS)
        .map(|i| {
            let claims = json!({
                "jti": format!("bench-{i:08}"), "htm": "POST", "htu": URL,
                "iat": get_current_timestamp(), "ath": ath,
            });
            let message = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
            let signature = jsonwebtoken::crypto::sign(
                message.as_bytes(),
                &key,
                jsonwebtoken::Algorithm::ES256,
            )
            .unwrap();
            format!("{message}.{signature}")
        })
        .collect()
}

/// One run: `sent` requests (none: the setup alone), with DPoP or bearer tokens; with `redis`,
/// the replay cache is there.
fn run(dpop: bool, sent: usize) {
    run_with(dpop, sent, None);
}

#[cfg(feature = "redis")]
fn run_redis(sent: usize) {
    let url = std::env::var("MCP_BENCH_REDIS").expect("MCP_BENCH_REDIS");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = runtime
        .block_on(mcp_session_binding::store::RedisStore::connect(&url))
        .unwrap();
    run_with(true, sent, Some((&runtime, store)));
}

fn run_with(dpop: bool, sent: usize, redis: Option<(&tokio::runtime::Runtime, Redis)>) {
    let token = token();
    let proofs = proofs(&token);
    let mut builder = JwtAuthLayer::builder()
        .issuer_keys(
            ISS,
            mcp_session_binding::jwt::JwtKeys::from_jwk_set_json(&format!(
                r#"{{"keys":[{ISSUER_PUBLIC_JWK}]}}"#
            ))
            .unwrap(),
        )
        .algorithms([Algorithm::ES256])
        .audiences([URL]);
    if dpop {
        builder = builder.dpop(ISS, DpopPolicy::Required);
    }
    #[cfg(feature = "redis")]
    if let Some((_, store)) = &redis {
        builder = builder.dpop_replay_redis(store);
    }
    let mut service =
        builder
            .build()
            .unwrap()
            .layer(tower::service_fn(|_req: Request<Full<Bytes>>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
            }));
    let mut ok = 0;
    for proof in proofs.into_iter().take(sent) {
        let mut request = Request::post(URL);
        request = if dpop {
            request
                .header("authorization", format!("DPoP {token}"))
                .header("dpop", proof)
        } else {
            request.header("authorization", format!("Bearer {token}"))
        };
        let request = request.body(Full::new(Bytes::new())).unwrap();
        let call = service
            .ready()
            .now_or_never()
            .unwrap()
            .unwrap()
            .call(request);
        let response = match &redis {
            Some((runtime, _)) => runtime.block_on(call),
            None => call.now_or_never().expect("answers without waiting"),
        }
        .unwrap();
        ok += usize::from(response.status().is_success());
    }
    assert_eq!(ok, sent);
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
        Some("setup") => return run(false, 0),
        Some("bearer") => return run(false, REQUESTS),
        Some("dpop") => return run(true, REQUESTS),
        #[cfg(feature = "redis")]
        Some("redis-setup") => return run_redis(0),
        #[cfg(feature = "redis")]
        Some("redis") => return run_redis(REQUESTS),
        _ => {}
    }
    let (Some(setup), Some(bearer), Some(dpop)) = (count("setup"), count("bearer"), count("dpop"))
    else {
        println!("dpop: valgrind (callgrind) not found, nothing measured");
        return;
    };
    let per = |total: u64| (total as f64 - setup as f64) / REQUESTS as f64;
    println!(
        "dpop: JWT layer instructions per request, setup ({setup}) subtracted: bearer {:.0}, DPoP {:.0}; a proof adds {:.0} ({REQUESTS} requests, ES256 token and proof, memory replay cache)",
        per(bearer),
        per(dpop),
        per(dpop) - per(bearer)
    );
    if std::env::var_os("MCP_BENCH_REDIS").is_some()
        && let (Some(setup), Some(redis)) = (count("redis-setup"), count("redis"))
    {
        let redis = (redis as f64 - setup as f64) / REQUESTS as f64;
        println!(
            "dpop: with the replay cache in Redis, DPoP {redis:.0} per request (this process: one SET NX PX each), {:.0} more than in memory",
            redis - per(dpop)
        );
    }
}
