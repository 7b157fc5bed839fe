//! Introspection answers shared by replicas in Redis (features `oidc` and `redis`): keyed by
//! the keyed hash of the token, sealed (XChaCha20-Poly1305) with a key derived from the
//! client secret, so a dump of Redis holds neither a token nor a subject in clear. A Redis
//! that fails is skipped (the endpoint is asked), never trusted.

use std::{fmt, time::Duration};

use chacha20poly1305::{
    XChaCha20Poly1305, XNonce,
    aead::{Aead, AeadCore, KeyInit, OsRng, Payload},
};
use redis::AsyncCommands;

use super::cache::TokenKey;
use crate::{
    jwt::introspected::{Answer, parse},
    store::RedisConnection,
};

const NONCE_LEN: usize = 24;
/// Bound of one Redis operation.
const TIMEOUT: Duration = Duration::from_millis(500);

/// A Redis connection and the key prefix; the seal key is set when the layer is built.
#[derive(Clone)]
pub(crate) struct SharedCache {
    conn: RedisConnection,
    prefix: String,
    cipher: Option<XChaCha20Poly1305>,
    aad: Vec<u8>,
}

impl fmt::Debug for SharedCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedCache")
            .field("conn", &self.conn)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl SharedCache {
    pub(crate) fn new(conn: RedisConnection, prefix: String) -> Self {
        Self {
            conn,
            prefix,
            cipher: None,
            aad: Vec::new(),
        }
    }

    /// Seals with `key`; `issuer` is bound as associated data.
    pub(crate) fn with_key(mut self, key: [u8; 32], issuer: &str) -> Self {
        self.cipher = Some(XChaCha20Poly1305::new(&key.into()));
        self.aad = issuer.as_bytes().to_vec();
        self
    }

    fn redis_key(&self, key: &TokenKey) -> String {
        let mut out = self.prefix.clone();
        for byte in key {
            out.push_str(&format!("{byte:02x}"));
        }
        out
    }

    /// The shared answer and its deadline (seconds since the epoch), if there is one that
    /// opens and is not past its deadline at `now`.
    pub(crate) async fn get(&self, key: &TokenKey, now: u64) -> Option<(Answer, u64)> {
        let cipher = self.cipher.as_ref()?;
        let mut conn = self.conn.clone();
        let raw: Option<Vec<u8>> =
            match tokio::time::timeout(TIMEOUT, conn.get(self.redis_key(key))).await {
                Ok(Ok(raw)) => raw,
                Ok(Err(err)) => {
                    tracing::warn!(error = %err, "introspection cache in Redis unavailable");
                    return None;
                }
                Err(_) => {
                    tracing::warn!("introspection cache in Redis timed out");
                    return None;
                }
            };
        let raw = raw?;
        if raw.len() < NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let plain = cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &self.aad,
                },
            )
            .ok()?;
        let (until, json) = plain.split_at_checked(8)?;
        let until = u64::from_be_bytes(until.try_into().ok()?);
        if until <= now {
            return None;
        }
        Some((parse(json)?, until))
    }

    /// Shares `answer` until `until` (seconds since the epoch; nothing when not after `now`).
    /// The deadline is sealed with it: `until`, 8 bytes big-endian, then the answer's JSON.
    pub(crate) async fn put(&self, key: &TokenKey, answer: &Answer, until: u64, now: u64) {
        let Some(cipher) = &self.cipher else { return };
        let ttl_secs = until.saturating_sub(now);
        if ttl_secs == 0 {
            return;
        }
        let mut plain = until.to_be_bytes().to_vec();
        match answer {
            Answer::Active(map) => {
                plain.extend_from_slice(&serde_json::to_vec(map).unwrap_or_default());
            }
            Answer::Inactive => plain.extend_from_slice(br#"{"active":false}"#),
        }
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let Ok(sealed) = cipher.encrypt(
            &nonce,
            Payload {
                msg: &plain,
                aad: &self.aad,
            },
        ) else {
            return;
        };
        let mut raw = nonce.to_vec();
        raw.extend_from_slice(&sealed);
        let mut conn = self.conn.clone();
        let set = conn.set_ex::<_, _, ()>(self.redis_key(key), raw, ttl_secs);
        match tokio::time::timeout(TIMEOUT, set).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "cannot share an introspection answer in Redis")
            }
            Err(_) => tracing::warn!("sharing an introspection answer in Redis timed out"),
        }
    }
}
