//! Handlers see the identity the binding compared: a real rmcp tool (`whoami`, which reads the
//! `Identity` from the HTTP request parts rmcp hands it) behind custom extractors, and axum
//! handlers taking `Identity` / `Option<Identity>` as extractors (feature `axum`).

use crate::support;

use axum::{
    Router,
    extract::{Request, State},
    middleware::{Next, from_fn_with_state},
    response::Response,
    routing::get,
};
use http::StatusCode;
use mcp_session_binding::{
    Identity, SessionBindingLayer,
    identity::{Claims, FromClaims, IdentityError},
    store::MemoryStore,
};
use serde_json::json;
use support::{ISS_A, Raw, recorded_mcp, serve_router, tool_text};
use tower::Layer;

/// What a test auth layer puts in the extensions for a `Bearer <sub>` token.
#[derive(Clone, Copy)]
enum Puts {
    /// A JSON claims object only (`iss` ISS_A, `sub` the token): no `Identity`.
    ClaimsOnly,
    /// An application user type, and a stale `Identity` for someone else (`mallory`), as a
    /// second auth layer might leave it.
    UserAndStaleIdentity,
}

#[derive(Clone)]
struct User {
    id: String,
}

/// A test auth layer (with `from_fn_with_state`): `Bearer <sub>` puts what `puts` says; no
/// header puts nothing.
async fn auth(State(puts): State<Puts>, mut request: Request, next: Next) -> Response {
    let sub = support::bearer(request.headers()).map(str::to_owned);
    if let Some(sub) = sub {
        let extensions = request.extensions_mut();
        match puts {
            Puts::ClaimsOnly => {
                let claims = Claims::from_value(json!({"iss": ISS_A, "sub": sub})).unwrap();
                extensions.insert(claims);
            }
            Puts::UserAndStaleIdentity => {
                extensions.insert(User { id: sub });
                extensions.insert(Identity::new(ISS_A, "mallory").unwrap());
            }
        }
    }
    next.run(request).await
}

/// The demo rmcp server behind `binding` behind the test auth layer.
async fn serve<I: mcp_session_binding::IdentityExtractor>(
    binding: SessionBindingLayer<MemoryStore, I>,
    puts: Puts,
) -> support::TestServer {
    let (mcp, seen) = recorded_mcp();
    let app = Router::new()
        .nest_service("/mcp", binding.layer(mcp))
        .layer(from_fn_with_state(puts, auth));
    serve_router(app, seen).await
}

#[tokio::test]
async fn rmcp_tool_behind_from_claims_sees_the_bound_identity() {
    let server = serve(
        SessionBindingLayer::with_store(MemoryStore::new()).identity(FromClaims),
        Puts::ClaimsOnly,
    )
    .await;
    let raw = Raw::new(&server);
    let session = raw.open_session(Some("alice")).await;
    let answer = raw.whoami(&session, Some("alice"), 1).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    // Before: "anonymous" (the tool saw Claims, not the Identity the binding compared).
    assert_eq!(tool_text(&answer.json()), format!("{ISS_A} alice"));
    // And the binding is the one compared: another subject is refused.
    let answer = raw.whoami(&session, Some("bob"), 2).await;
    assert_eq!(
        answer.json()["result"]["isError"],
        json!(true),
        "{answer:?}"
    );
}

#[tokio::test]
async fn rmcp_tool_sees_what_a_map_extension_produced_not_a_stale_identity() {
    // A closure mapping another auth layer's extension type.
    let map = |parts: &http::request::Parts| {
        let user = parts.extensions.get::<User>();
        user.map(|user| Identity::new(ISS_A, user.id.as_str()))
            .transpose()
    };
    let server = serve(
        SessionBindingLayer::with_store(MemoryStore::new()).identity(map),
        Puts::UserAndStaleIdentity,
    )
    .await;
    let raw = Raw::new(&server);
    let session = raw.open_session(Some("alice")).await;
    let answer = raw.whoami(&session, Some("alice"), 1).await;
    assert_eq!(tool_text(&answer.json()), format!("{ISS_A} alice"));
}

#[tokio::test]
async fn rmcp_tool_on_an_anonymous_session_sees_no_identity_the_binding_did_not_use() {
    // A closure extractor that reads a header only; the auth layer's stale Identity is not what
    // the binding compared, so the tool must not see it.
    let from_header = |parts: &http::request::Parts| -> Result<Option<Identity>, IdentityError> {
        match parts.headers.get("x-user").and_then(|v| v.to_str().ok()) {
            Some(user) => Identity::new(ISS_A, user).map(Some),
            None => Ok(None),
        }
    };
    let server = serve(
        SessionBindingLayer::with_store(MemoryStore::new())
            .identity(from_header)
            .allow_anonymous(true),
        Puts::UserAndStaleIdentity,
    )
    .await;
    let raw = Raw::new(&server);
    // Anonymous for the binding (no x-user): the stale `mallory` must not reach the tool. No
    // bearer token either: the binding refuses a session created with credentials but no
    // identity.
    let session = raw.open_session(None).await;
    let answer = raw.whoami(&session, None, 1).await;
    assert_eq!(tool_text(&answer.json()), "anonymous", "{answer:?}");
    // A closure-made identity reaches the tool.
    let answer = Raw::send(
        raw.request(reqwest::Method::POST, None, None)
            .header("x-user", "carol")
            .body(support::initialize_body().to_string()),
    )
    .await;
    let session = answer.session_id();
    let call = support::tool_call(2, "whoami", json!({}));
    let answer = Raw::send(
        raw.request(reqwest::Method::POST, Some(&session), None)
            .header("x-user", "carol")
            .body(call.to_string()),
    )
    .await;
    assert_eq!(tool_text(&answer.json()), format!("{ISS_A} carol"));
}

async fn me(identity: Identity) -> String {
    identity.to_string()
}

async fn maybe(identity: Option<Identity>) -> String {
    identity.map_or_else(|| "anonymous".to_owned(), |i| i.to_string())
}

#[tokio::test]
async fn axum_handlers_extract_the_identity_or_answer_401() {
    let app = Router::new()
        .route("/me", get(me))
        .route("/maybe", get(maybe))
        .layer(SessionBindingLayer::with_store(MemoryStore::new()).identity(FromClaims))
        .layer(from_fn_with_state(Puts::ClaimsOnly, auth));
    let server = serve_router(app, Default::default()).await;
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let get = |path: &str, token: Option<&str>| {
        let mut request = http.get(format!("{base}{path}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };

    // Claims only: the identity FromClaims produced reaches the handler.
    let response = get("/me", Some("alice")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), format!("{ISS_A} alice"));
    let response = get("/maybe", Some("alice")).await.unwrap();
    assert_eq!(response.text().await.unwrap(), format!("{ISS_A} alice"));

    // No identity: `Identity` rejects with 401 and a clear body, `Option<Identity>` is `None`.
    let response = get("/me", None).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], json!(-32000));
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no caller identity"),
        "{body}"
    );
    assert!(body.get("id").is_none());
    let response = get("/maybe", None).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "anonymous");
}
