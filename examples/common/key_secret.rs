//! `MCP_KEY_SECRET`: the secret that keys the bindings' Redis keys, shared by the examples that
//! keep bindings in Redis.

use mcp_session_binding::store::{KeySecret, RedisOptions};

/// Redis options with the key secret of `MCP_KEY_SECRET` (at least 32 bytes of text, the same on
/// every replica). Unset: format-1 keys (unkeyed SHA-256), and the log says how to key them.
pub fn redis_options() -> Result<RedisOptions, String> {
    let options = RedisOptions::new();
    match std::env::var("MCP_KEY_SECRET") {
        Ok(material) => {
            let secret = KeySecret::from_material(material.as_bytes())
                .map_err(|e| format!("MCP_KEY_SECRET: {e}"))?;
            tracing::info!("binding keys in Redis are keyed with MCP_KEY_SECRET (format 2)");
            Ok(options.key_secret(secret))
        }
        Err(_) => {
            tracing::info!(
                "MCP_KEY_SECRET is not set: binding keys in Redis are unkeyed SHA-256 (format 1); \
                 set it (32 bytes or more, the same on every replica) for keyed keys"
            );
            Ok(options)
        }
    }
}
