//! tonic: the `tonic_server` example as a user runs it (one port: the gRPC health service over
//! h2c and MCP over HTTP/1.1, behind the JWT layer, the MCP path behind the binding layer),
//! driven by a tonic health client and the rmcp client; and tonic servers built here, for what
//! the example cannot show (the 503 path of the JWT layer, the binding layer over gRPC routes).

use crate::support::MISMATCH_MESSAGE;
use crate::support;

use axum::Router;
use http::StatusCode;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode, get_current_timestamp};
use mcp_session_binding::{
    SessionBindingLayer,
    jwt::{JwtAuthLayer, JwtKey},
    store::MemoryStore,
};
use rmcp::model::CallToolRequestParams;
use serde_json::json;
use support::{ISS_A, Raw, RotatingClient, example_bin::Spawned, recorded_mcp, tool_text};
use tonic::{
    Code, Request, Status,
    service::Routes,
    transport::{Channel, Server, server::TcpIncoming},
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};


const SECRET: &str = "tonic-server-test-secret-32-bytes-long";
const ISSUER: &str = "https://issuer.example";
const AUDIENCE: &str = "mcp-session-binding-example";

/// An HS256 token for `sub`, valid 5 minutes, with a unique `jti`.
fn token_signed(secret: &str, sub: &str) -> String {
    support::keys::hs256_token(secret, ISSUER, sub, AUDIENCE)
}

fn token(sub: &str) -> String {
    token_signed(SECRET, sub)
}

fn tonic_server() -> Spawned {
    let mut command = support::example_bin::server_command("tonic_server", Some(SECRET));
    command.env("RUST_LOG", "info");
    Spawned::start(&mut command)
}

/// An h2c channel to `base_url` (`http://host:port`).
async fn channel(base_url: &str) -> Channel {
    Channel::from_shared(base_url.to_owned())
        .unwrap()
        .connect()
        .await
        .expect("h2c connection")
}

/// `grpc.health.v1.Health/Check` for the whole server (service ""), with `token` if any.
async fn health_check(channel: Channel, token: Option<String>) -> Result<ServingStatus, Status> {
    let mut client = HealthClient::with_interceptor(channel, move |mut request: Request<()>| {
        if let Some(token) = &token {
            let value = format!("Bearer {token}").parse().unwrap();
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    });
    let response = client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await?;
    Ok(response.into_inner().status())
}

#[tokio::test]
async fn one_port_serves_grpc_health_and_bound_mcp_sessions() {
    let server = tonic_server();
    assert!(
        server.url.starts_with("http://127.0.0.1:") && server.url.ends_with("/mcp"),
        "{}",
        server.url
    );
    assert!(server.banner.is_empty(), "{:?}", server.banner);

    // gRPC over h2c: SERVING with a token.
    let grpc = channel(server.base_url()).await;
    let status = health_check(grpc.clone(), Some(token("alice"))).await;
    assert_eq!(status.unwrap(), ServingStatus::Serving);

    // Without a token, or with a forged one: an UNAUTHENTICATED status, not a protocol error.
    let refused = health_check(grpc.clone(), None).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    assert!(
        refused.message().contains("no bearer access token"),
        "{refused:?}"
    );
    let forged = token_signed("another-secret-another-secret-another", "alice");
    let refused = health_check(grpc.clone(), Some(forged)).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    assert!(refused.message().contains("signature"), "{refused:?}");

    // MCP over HTTP/1.1 on the same port: the rmcp client's session is bound to alice.
    let client = RotatingClient::new(token("alice"));
    let running = client.clone().connect(&server.url).await;
    let result = running
        .call_tool(CallToolRequestParams::new("whoami"))
        .await
        .unwrap();
    let text = result.content[0].as_text().unwrap().text.clone();
    assert_eq!(text, format!("{ISSUER} alice"));
    // A refreshed token (new bytes, same user) keeps the session.
    client.rotate(token("alice"));
    let result = running
        .call_tool(CallToolRequestParams::new("whoami"))
        .await
        .unwrap();
    assert_ne!(result.is_error, Some(true));
    let session = client.session_id().expect("the client holds a session");

    // A thief with bob's valid token is refused, and the session ends.
    let raw = Raw::at(server.url.clone());
    let answer = raw.whoami(&session, Some(&token("bob")), 7).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(answer.json()["result"]["isError"], json!(true));
    assert_eq!(tool_text(&answer.json()), MISMATCH_MESSAGE);
    let answer = raw.whoami(&session, Some(&token("alice")), 8).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{answer:?}");
    // The owner's shutdown DELETE still succeeds (idempotent on an ended session).
    let answer = raw.delete(&session, Some(&token("alice"))).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{answer:?}");
    drop(running);

    // gRPC still serves after all that, on the same connection.
    let status = health_check(grpc, Some(token("bob"))).await;
    assert_eq!(status.unwrap(), ServingStatus::Serving);
    let log = server.stderr();
    assert!(
        log.contains("caller identity does not match session owner"),
        "{log}"
    );
}

/// Serves `app` with tonic (HTTP/1.1 and h2c) on a loopback port; returns `http://host:port`.
async fn serve_with_tonic(app: Router) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let server = Server::builder()
        .accept_http1(true)
        .add_routes(Routes::from(app))
        .serve_with_incoming(incoming);
    let handle = tokio::spawn(async move { server.await.unwrap() });
    (base_url, handle)
}

#[tokio::test]
async fn grpc_gets_unavailable_when_the_revocation_check_fails() {
    let auth = JwtAuthLayer::builder()
        .issuer_keys(ISSUER, JwtKey::hmac(SECRET.as_bytes()).unwrap())
        .algorithms([mcp_session_binding::jwt::Algorithm::HS256])
        .audiences([AUDIENCE])
        .revocation(|jti: String| async move {
            match jti.as_str() {
                "t-revoked" => Ok(true),
                _ => Err("revocation store down"),
            }
        })
        .build()
        .unwrap();
    let (_reporter, health) = tonic_health::server::health_reporter();
    let app = Routes::new(health).into_axum_router().layer(auth);
    let (base_url, server) = serve_with_tonic(app).await;
    let grpc = channel(&base_url).await;

    let refused = health_check(grpc.clone(), Some(token("alice")))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(refused.message().starts_with("Service unavailable"));

    let now = get_current_timestamp();
    let claims = json!({"iss": ISSUER, "sub": "alice", "aud": AUDIENCE, "exp": now + 300, "jti": "t-revoked"});
    let revoked = encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let refused = health_check(grpc, Some(revoked)).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    assert!(refused.message().contains("revoked"), "{refused:?}");
    server.abort();
}

#[tokio::test]
async fn binding_layer_over_grpc_routes_passes_them_and_still_checks_sessions() {
    // The binding layer over everything, gRPC included (a user who stacks it on the whole tonic
    // server): gRPC calls name no session and pass untouched; a request that names a session
    // is checked whatever its content type.
    let (_reporter, health) = tonic_health::server::health_reporter();
    let (mcp, seen) = recorded_mcp();
    let app = Router::new()
        .nest_service("/mcp", mcp)
        .merge(Routes::new(health).into_axum_router())
        .layer(SessionBindingLayer::with_store(MemoryStore::new()))
        .layer(axum::middleware::from_fn(support::auth));
    let (base_url, server) = serve_with_tonic(app).await;

    // The test auth layer lets a request without a token through without identity: the health
    // check passes the binding layer with none, and with one.
    let grpc = channel(&base_url).await;
    assert_eq!(
        health_check(grpc.clone(), None).await.unwrap(),
        ServingStatus::Serving
    );
    let alice = support::token(ISS_A, "alice", 1);
    assert_eq!(
        health_check(grpc, Some(alice.clone())).await.unwrap(),
        ServingStatus::Serving
    );

    // A thief dressing a GET on alice's session up as gRPC is refused, and the session ends.
    let raw = Raw::at(format!("{base_url}/mcp"));
    let session = raw.open_session(Some(&alice)).await;
    let bob = support::token(ISS_A, "bob", 1);
    let answer = Raw::send(
        raw.http
            .get(&raw.url)
            .bearer_auth(&bob)
            .header("mcp-session-id", &session)
            .header("mcp-protocol-version", support::PROTOCOL)
            .header("content-type", "application/grpc")
            .header("accept", "text/event-stream"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{answer:?}");
    let get_forwarded = seen
        .lock()
        .unwrap()
        .iter()
        .any(|s| s.method == http::Method::GET);
    assert!(
        !get_forwarded,
        "the thief's GET never reached the MCP service"
    );
    let answer = raw.whoami(&session, Some(&alice), 2).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{answer:?}");
    server.abort();
}
