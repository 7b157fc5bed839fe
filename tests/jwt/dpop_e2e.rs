#![cfg(feature = "oidc")]
//! DPoP (RFC 9449) with real parts: `oidc-provider` (npm) with its `dPoP` feature issues
//! DPoP-bound JWT access tokens (`cnf.jkt`) through the code flow with PKCE and refresh grants;
//! proofs are made by npm `dpop` and by Python `joserfc`; two `mcp_server --issuer URL --dpop
//! required --redis URL` replicas share one Redis (bindings and the replay cache). Then the
//! attacks, each refused. Without node, the packages or redis-server, the test prints `SKIP:`
//! and passes, unless `CI` is set.

use crate::support;

use std::process::Command;

use http::StatusCode;
use serde_json::{Value, json};
use support::{
    Answer, PROTOCOL, dpop::Crafted, dpop_client::DpopClient, example_bin::Spawned,
    example_bin::example, initialize_body, oidc_provider::OidcProvider, oidc_provider::jwt_claims,
    redis_server::RedisServer, tool_call, tool_text,
};

const RESOURCE: &str = "https://mcp.test/mcp";

/// `mcp_server` trusting `provider`, DPoP required, bindings and proofs in `redis`.
/// The URL clients reach both replicas at: a load balancer in front, which keeps the `Host`.
const PUBLIC_URL: &str = "http://mcp.example:8080";

fn replica(provider: &OidcProvider, redis: &RedisServer) -> Spawned {
    let mut command = Command::new(example("mcp_server"));
    command
        .args(["--listen", "127.0.0.1:0", "--issuer", provider.issuer()])
        .args(["--dpop", "required", "--redis", &redis.url()])
        .args(["--public-url", PUBLIC_URL])
        .env_remove("MCP_JWT_SECRET")
        .env_remove("MCP_JWT_ISSUERS")
        .env("MCP_JWT_AUDIENCE", RESOURCE)
        .env("RUST_LOG", "warn");
    Spawned::start(&mut command)
}

/// One request to a replica at `url`, as a client that reached `htu` (the load balancer keeps
/// the `Host`).
struct Call<'a> {
    url: &'a str,
    htu: &'a str,
    method: reqwest::Method,
    session: Option<&'a str>,
    authorization: String,
    proofs: Vec<String>,
    body: Option<Value>,
}

impl<'a> Call<'a> {
    fn post(url: &'a str, htu: &'a str, token: &str, proof: String, body: Value) -> Self {
        Self {
            url,
            htu,
            method: reqwest::Method::POST,
            session: None,
            authorization: format!("DPoP {token}"),
            proofs: vec![proof],
            body: Some(body),
        }
    }

    fn session(mut self, session: &'a str) -> Self {
        self.session = Some(session);
        self
    }

    async fn send(self) -> Answer {
        let host = reqwest::Url::parse(self.htu).unwrap();
        let host = format!("{}:{}", host.host_str().unwrap(), host.port().unwrap());
        let is_get = self.method == reqwest::Method::GET;
        let mut request = reqwest::Client::new()
            .request(self.method, self.url)
            .header("host", host)
            .header("accept", "application/json, text/event-stream")
            .header("authorization", self.authorization);
        for proof in self.proofs {
            request = request.header("dpop", proof);
        }
        if let Some(session) = self.session {
            request = request
                .header("mcp-session-id", session)
                .header("mcp-protocol-version", PROTOCOL);
        }
        if let Some(body) = self.body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let headers = response.headers().clone();
        // A GET stream stays open: its status and headers are enough.
        let text = if is_get {
            String::new()
        } else {
            response.text().await.unwrap_or_default()
        };
        Answer {
            status,
            headers,
            text,
        }
    }
}

/// A DPoP client's session on the replica at `url`: initialize, `notifications/initialized`.
async fn open_session(url: &str, htu: &str, token: &str, client: &DpopClient, key: &str) -> String {
    let proof = client.proof(key, "POST", htu, Some(token));
    let answer = Call::post(url, htu, token, proof, initialize_body())
        .send()
        .await;
    assert_eq!(answer.status, StatusCode::OK, "initialize: {answer:?}");
    let session = answer.session_id();
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let proof = client.proof(key, "POST", htu, Some(token));
    let answer = Call::post(url, htu, token, proof, note)
        .session(&session)
        .send()
        .await;
    assert_eq!(
        answer.status,
        StatusCode::ACCEPTED,
        "initialized: {answer:?}"
    );
    session
}

fn whoami() -> Value {
    tool_call(7, "whoami", json!({}))
}

/// The `WWW-Authenticate` challenges of a refusal, joined.
fn challenge(answer: &Answer) -> String {
    answer
        .headers
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap_or_default())
        .collect::<Vec<_>>()
        .join(" | ")
}

#[tokio::test]
async fn dpop_with_a_real_provider_real_clients_and_two_replicas() {
    let Some(provider) = OidcProvider::start_with_dpop(RESOURCE) else {
        return;
    };
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (Some(node), Some(python)) = (DpopClient::node(), DpopClient::python()) else {
        return;
    };
    let (a, b) = (replica(&provider, &redis), replica(&provider, &redis));
    // The URL clients reach; both replicas see its `Host`.
    let htu = format!("{PUBLIC_URL}/mcp");
    let issuer = provider.issuer();

    // The metadata says DPoP is required, and with which algorithms.
    let metadata: Value = reqwest::get(format!(
        "{}/.well-known/oauth-protected-resource/mcp",
        a.base_url()
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        metadata["dpop_bound_access_tokens_required"], true,
        "{metadata}"
    );
    // Behind the load balancer, the resource is the public URL, not the replica's own address.
    assert_eq!(metadata["resource"], json!(htu), "{metadata}");
    assert_eq!(
        metadata["dpop_signing_alg_values_supported"],
        json!(["ES256", "EdDSA", "RS256", "PS256"])
    );

    // Code flow with PKCE and DPoP: the provider binds the token to the npm client's key.
    let node_proofs = std::sync::Arc::new(node);
    {
        let node = node_proofs.clone();
        provider.use_dpop_proofs(move |token_url| node.proof("alice", "POST", token_url, None));
    }
    let node = &*node_proofs;
    let alice = provider.login("alice").await;
    let jkt = jwt_claims(&alice.access_token)["cnf"]["jkt"]
        .as_str()
        .expect("a DPoP-bound token has cnf.jkt")
        .to_owned();

    // Tool calls and a GET stream, on both replicas.
    let session = open_session(&a.url, &htu, &alice.access_token, node, "alice").await;
    let call =
        |url, token: &str, proof| Call::post(url, &htu, token, proof, whoami()).session(&session);
    let proof = node.proof("alice", "POST", &htu, Some(&alice.access_token));
    let answer = call(&a.url, &alice.access_token, proof.clone())
        .send()
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(tool_text(&answer.json()), format!("{issuer} alice"));
    let used_proof = proof;
    let stream = Call {
        method: reqwest::Method::GET,
        body: None,
        ..call(
            &b.url,
            &alice.access_token,
            node.proof("alice", "GET", &htu, Some(&alice.access_token)),
        )
    }
    .send()
    .await;
    assert_eq!(stream.status, StatusCode::OK, "GET stream: {stream:?}");

    // Refresh with DPoP: a new token bound to the same key keeps the session, on replica B.
    let refreshed = provider.refresh(alice.refresh_token()).await;
    assert_ne!(refreshed.access_token, alice.access_token);
    assert_eq!(
        jwt_claims(&refreshed.access_token)["cnf"]["jkt"],
        jkt.as_str()
    );
    let proof = node.proof("alice", "POST", &htu, Some(&refreshed.access_token));
    let answer = call(&b.url, &refreshed.access_token, proof).send().await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(tool_text(&answer.json()), format!("{issuer} alice"));

    // A second, independent implementation: bob's login and session with joserfc proofs.
    let python = std::sync::Arc::new(python);
    {
        let python = python.clone();
        provider.use_dpop_proofs(move |token_url| python.proof("bob", "POST", token_url, None));
    }
    let bob = provider.login("bob").await;
    let bobs = open_session(&b.url, &htu, &bob.access_token, &python, "bob").await;
    let proof = python.proof("bob", "POST", &htu, Some(&bob.access_token));
    let answer = Call::post(&a.url, &htu, &bob.access_token, proof, whoami())
        .session(&bobs)
        .send()
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(tool_text(&answer.json()), format!("{issuer} bob"));

    // The attacks: each refused with 401 and a DPoP challenge, and never forwarded.
    let token = refreshed.access_token.as_str();
    let fresh = |htm: &str, url: &str| node.proof("alice", htm, url, Some(token));
    let other_url = htu.replace("/mcp", "/other");
    let mut two = call(&a.url, token, fresh("POST", &htu));
    two.proofs.push(fresh("POST", &htu));
    let mut downgrade = call(&a.url, token, fresh("POST", &htu));
    downgrade.authorization = format!("Bearer {token}");
    downgrade.proofs.clear();
    let crafted = |kind| support::dpop::crafted(kind, "POST", &htu, token);
    let attacks: Vec<(&str, Call<'_>, &str)> = vec![
        (
            "replayed proof, same replica",
            call(&a.url, &alice.access_token, used_proof.clone()),
            "invalid_dpop_proof",
        ),
        (
            "replayed proof, other replica",
            call(&b.url, &alice.access_token, used_proof.clone()),
            "invalid_dpop_proof",
        ),
        (
            "proof for GET",
            call(&a.url, token, fresh("GET", &htu)),
            "invalid_dpop_proof",
        ),
        (
            "proof for another URL",
            call(&a.url, token, fresh("POST", &other_url)),
            "invalid_dpop_proof",
        ),
        (
            "stale iat (-10 min)",
            call(
                &a.url,
                token,
                node.proof_at("alice", "POST", &htu, Some(token), -600),
            ),
            "invalid_dpop_proof",
        ),
        (
            "future iat (+10 min)",
            call(
                &a.url,
                token,
                node.proof_at("alice", "POST", &htu, Some(token), 600),
            ),
            "invalid_dpop_proof",
        ),
        (
            "wrong ath (bob's token)",
            call(
                &a.url,
                token,
                node.proof("alice", "POST", &htu, Some(&bob.access_token)),
            ),
            "invalid_dpop_proof",
        ),
        (
            "stolen token, thief's own key",
            call(
                &a.url,
                token,
                node.proof("thief", "POST", &htu, Some(token)),
            ),
            "invalid_token",
        ),
        (
            "HMAC-signed proof",
            call(&a.url, token, crafted(Crafted::Hmac)),
            "invalid_dpop_proof",
        ),
        (
            "alg none",
            call(&a.url, token, crafted(Crafted::None)),
            "invalid_dpop_proof",
        ),
        (
            "jwk with private members",
            call(&a.url, token, crafted(Crafted::PrivateJwk)),
            "invalid_dpop_proof",
        ),
        ("two DPoP headers", two, "invalid_dpop_proof"),
        ("bearer downgrade", downgrade, "invalid_token"),
        (
            "64 KiB proof",
            call(&a.url, token, format!("{}.e30.c2ln", "a".repeat(64 * 1024))),
            "invalid_dpop_proof",
        ),
    ];
    let mut table = String::new();
    for (name, attack, error) in attacks {
        let answer = attack.send().await;
        let challenge = challenge(&answer);
        table.push_str(&format!("{name}: {} {challenge}\n", answer.status));
        assert_eq!(
            answer.status,
            StatusCode::UNAUTHORIZED,
            "{name}: {answer:?}"
        );
        assert!(
            challenge.contains(&format!(r#"DPoP error="{error}""#)),
            "{name}: {challenge}"
        );
        assert!(
            challenge.contains(r#"algs="ES256 EdDSA RS256 PS256""#),
            "{name}: {challenge}"
        );
    }
    eprintln!("attack table:\n{table}");

    // The session is intact: the owner's fresh proof still works.
    let answer = call(&a.url, token, fresh("POST", &htu)).send().await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
}
