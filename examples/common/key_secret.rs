//! `MCP_KEY_SECRET`: the secret that keys the examples' Redis keys (the bindings', and rmcp's
//! session state in `common/rmcp_redis_sessions.rs`), shared by the examples that keep them in
//! Redis.
#![allow(dead_code)]

use mcp_session_binding::store::{KeySecret, RedisOptions};

/// BLAKE3 `derive_key` context of the key that keys rmcp's session state keys: a subkey of
/// `MCP_KEY_SECRET` for that purpose alone, independent of the bindings' keys (which
/// `KeySecret::from_material` derives under contexts of its own).
const RMCP_SESSIONS_CONTEXT: &str =
    "mcp-session-binding examples 2026-12-05 rmcp session state key";

/// `MCP_KEY_SECRET`'s bytes (or, with `MCP_KEY_SECRET_FILE`, the trimmed content of that
/// file, which `SIGHUP` reads again), or `None` when neither is set.
fn material() -> Result<Option<Vec<u8>>, String> {
    if let Some(path) = std::env::var_os("MCP_KEY_SECRET_FILE") {
        return std::fs::read_to_string(&path)
            .map(|text| Some(text.trim().as_bytes().to_vec()))
            .map_err(|e| format!("MCP_KEY_SECRET_FILE ({}): {e}", path.to_string_lossy()));
    }
    match std::env::var("MCP_KEY_SECRET") {
        Ok(material) => Ok(Some(material.into_bytes())),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err("MCP_KEY_SECRET is not valid UTF-8".to_owned())
        }
    }
}

/// Redis options with the key secret of `MCP_KEY_SECRET` (at least 32 bytes of text, the same on
/// every replica). Unset: keys under the crate's public secret, and the log says how to key
/// them.
pub fn redis_options() -> Result<RedisOptions, String> {
    let options = RedisOptions::new();
    match material()? {
        Some(material) => {
            let secret =
                KeySecret::from_material(&material).map_err(|e| format!("MCP_KEY_SECRET: {e}"))?;
            tracing::info!("binding keys in Redis are keyed with MCP_KEY_SECRET");
            Ok(options.key_secret(secret))
        }
        None => {
            tracing::info!(
                "MCP_KEY_SECRET is not set: binding keys in Redis are keyed with a public secret; \
                 set it (32 bytes or more, the same on every replica) for keyed keys"
            );
            Ok(options)
        }
    }
}

/// The BLAKE3 key for rmcp's session state keys in Redis, derived from `MCP_KEY_SECRET` (at
/// least 32 bytes, as for [`redis_options`]); `None` when it is unset.
pub fn rmcp_sessions_key() -> Result<Option<[u8; 32]>, String> {
    let Some(material) = material()? else {
        return Ok(None);
    };
    // The same check (and message) as the bindings' secret.
    KeySecret::from_material(&material).map_err(|e| format!("MCP_KEY_SECRET: {e}"))?;
    Ok(Some(blake3::derive_key(RMCP_SESSIONS_CONTEXT, &material)))
}
