//! The `mcp_server` example's reload on `SIGHUP`: it reads the key secret again from the file
//! `MCP_KEY_SECRET_FILE` names, and the state keys from `MCP_STATE_KEYS_FILE`, and rotates them
//! while it serves (`RedisStore::rotate_key_secret`, `RequestStateLayer::rotate_keys`). The old
//! key secret keeps finding sessions for `--key-overlap SECS` (default a day, the binding TTL);
//! the old state keys keep opening for the state TTL. A file that cannot be read or parsed
//! leaves its keys as they are, and the log says why. Never logs a secret.
//!
//! Included with `#[path = "…/common/reload.rs"] mod reload;`, so it is not an example of its
//! own.
#![allow(dead_code)]

use std::time::Duration;

/// What a reload rotates: the Redis store (with `--redis`), the state layer (feature
/// `request-state`).
pub struct Reloadable {
    #[cfg(feature = "redis")]
    pub store: Option<mcp_session_binding::store::RedisStore>,
    #[cfg(feature = "request-state")]
    pub state: Option<mcp_session_binding::state::RequestStateLayer>,
    /// How long the key secret before a rotation still finds sessions.
    pub key_overlap: Duration,
}

/// Reads the file the environment variable `var` names, trimmed: `None` when `var` is unset.
pub fn read_file_of(var: &str) -> Option<Result<String, String>> {
    let path = std::env::var_os(var)?;
    Some(
        std::fs::read_to_string(&path)
            .map(|text| text.trim().to_owned())
            .map_err(|e| format!("{var} ({}): {e}", path.to_string_lossy())),
    )
}

impl Reloadable {
    /// Rotates whatever has a file to read.
    pub fn reload(&self) {
        #[cfg(feature = "redis")]
        if let (Some(store), Some(material)) = (&self.store, read_file_of("MCP_KEY_SECRET_FILE")) {
            use mcp_session_binding::store::KeySecret;
            match material
                .and_then(|m| KeySecret::from_material(m.as_bytes()).map_err(|e| e.to_string()))
            {
                Ok(secret) => {
                    store.rotate_key_secret(secret, self.key_overlap);
                    tracing::info!(
                        overlap_secs = self.key_overlap.as_secs(),
                        "key secret rotated: the one before still finds sessions during the overlap"
                    );
                }
                Err(error) => tracing::warn!(%error, "key secret not rotated"),
            }
        }
        #[cfg(feature = "request-state")]
        if let (Some(state), Some(list)) = (&self.state, read_file_of("MCP_STATE_KEYS_FILE")) {
            use mcp_session_binding::state::StateKeys;
            match list.and_then(|l| StateKeys::from_base64_list(&l).map_err(|e| e.to_string())) {
                Ok(keys) => {
                    state.rotate_keys(keys);
                    tracing::info!(
                        "state keys rotated: the ones before still open states for the state TTL"
                    );
                }
                Err(error) => tracing::warn!(%error, "state keys not rotated"),
            }
        }
    }

    /// Reloads on every `SIGHUP`, in a task of its own.
    pub fn spawn_on_sighup(self) -> Result<(), String> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups =
            signal(SignalKind::hangup()).map_err(|e| format!("cannot watch SIGHUP: {e}"))?;
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading the key secret and the state keys");
                self.reload();
            }
        });
        Ok(())
    }
}
