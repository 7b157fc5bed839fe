//! The HS256 development settings of the example servers, from the environment:
//! `MCP_JWT_SECRET` (at least 32 bytes; unset: the caller picks a random one),
//! `MCP_JWT_ISSUERS` (the one issuer the secret belongs to, default `https://issuer.example`) and
//! `MCP_JWT_AUDIENCE` (default `mcp-session-binding-example`).
//!
//! Included with `#[path = "…/common/hs256_env.rs"] mod hs256_env;` next to `jwt_stack`, so it
//! is not an example of its own.
#![allow(dead_code)]

use super::jwt_stack::{DEFAULT_AUDIENCE, DEFAULT_ISSUER};

/// The JWT settings from the environment.
pub struct JwtSettings {
    /// `None` when `MCP_JWT_SECRET` is unset.
    pub secret: Option<Vec<u8>>,
    /// The trusted issuers: exactly one.
    pub issuers: Vec<String>,
    /// The audience tokens must carry.
    pub audience: String,
}

impl JwtSettings {
    /// Reads `MCP_JWT_SECRET`, `MCP_JWT_ISSUERS` and `MCP_JWT_AUDIENCE`.
    ///
    /// # Errors
    ///
    /// A secret that is not UTF-8, or an issuer list that names no issuer or more than one (one
    /// HS256 secret for several issuers would let each mint tokens for the others' users).
    pub fn from_env() -> Result<Self, String> {
        let secret = match std::env::var("MCP_JWT_SECRET") {
            Ok(secret) => Some(secret.into_bytes()),
            Err(std::env::VarError::NotPresent) => None,
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err("MCP_JWT_SECRET is not valid UTF-8".to_owned());
            }
        };
        let issuers = match std::env::var("MCP_JWT_ISSUERS") {
            Ok(list) => {
                let issuers: Vec<String> = list
                    .split(',')
                    .map(str::trim)
                    .filter(|issuer| !issuer.is_empty())
                    .map(str::to_owned)
                    .collect();
                if issuers.is_empty() {
                    return Err("MCP_JWT_ISSUERS names no issuer".to_owned());
                }
                issuers
            }
            Err(_) => vec![DEFAULT_ISSUER.to_owned()],
        };
        if issuers.len() > 1 {
            return Err(format!(
                "MCP_JWT_ISSUERS names {} issuers, but an HS256 secret belongs to exactly one \
                 issuer",
                issuers.len()
            ));
        }
        let audience =
            std::env::var("MCP_JWT_AUDIENCE").unwrap_or_else(|_| DEFAULT_AUDIENCE.to_owned());
        Ok(Self {
            secret,
            issuers,
            audience,
        })
    }
}
