//! The `mcp_server` example's admin endpoint, off by default (`--admin-scope SCOPE`): an
//! operator holding a token with that scope ends one session, or every session and task of one
//! principal, on every replica that shares the store.
//!
//! ```text
//! POST /admin/end-session    {"session": "<Mcp-Session-Id>"}  → 200 {"ended": 1}
//! POST /admin/end-principal  {"iss": "<issuer>", "sub": "<subject>"}
//!                                                             → 200 {"sessions": N, "tasks": M}
//! ```
//!
//! Each route runs behind a JWT layer of its own that requires the admin scope (403
//! `insufficient_scope` without it, 401 without a valid token); the MCP endpoint's tokens do
//! not need that scope, and do not carry it. A bad body gets 400, a store that fails 503.
//!
//! Included with `#[path = "…/common/admin.rs"] mod admin;`, so it is not an example of its own.
#![allow(dead_code)]

use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::post,
};
use mcp_session_binding::{Identity, jwt::JwtAuthLayer};
use serde::Deserialize;
use serde_json::json;

use crate::jwt_stack::BindingLayer;

/// The admin routes on `layer` (the binding layer of `/mcp`), behind `auth`, which must require
/// the admin scope.
pub fn router(layer: BindingLayer, auth: JwtAuthLayer) -> Router {
    Router::new()
        .route("/admin/end-session", post(end_session))
        .route("/admin/end-principal", post(end_principal))
        .with_state(layer)
        .layer(auth)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OneSession {
    session: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Principal {
    iss: String,
    sub: String,
}

async fn end_session(
    State(layer): State<BindingLayer>,
    body: Result<Json<OneSession>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(OneSession { session })) = body else {
        return bad_request("expected {\"session\": \"<Mcp-Session-Id>\"}");
    };
    match layer.end_session(&session).await {
        Ok(()) => Json(json!({"ended": 1})).into_response(),
        Err(error) => unavailable(&error),
    }
}

async fn end_principal(
    State(layer): State<BindingLayer>,
    body: Result<Json<Principal>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Some(identity) = body
        .ok()
        .and_then(|Json(Principal { iss, sub })| Identity::new(iss, sub).ok())
    else {
        return bad_request("expected {\"iss\": \"<issuer>\", \"sub\": \"<subject>\"}");
    };
    match layer.end_sessions_of(&identity).await {
        Ok(revoked) => {
            Json(json!({"sessions": revoked.sessions, "tasks": revoked.tasks})).into_response()
        }
        Err(error) => unavailable(&error),
    }
}

fn bad_request(expected: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": expected}))).into_response()
}

fn unavailable(error: &mcp_session_binding::store::StoreError) -> Response {
    tracing::warn!(%error, "admin: the binding store failed");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"error": "binding store unavailable; retry"})),
    )
        .into_response()
}
