//! How session ids and task ids become store keys.
//!
//! Two derivations, both 128 bits, both with a key space for sessions and one for tasks:
//!
//! - **Keyed** ([`KeyDerivation::keyed`]): BLAKE3 keyed with subkeys of a deployment
//!   [`KeySecret`], the same on every replica. What a shared store persists: `RedisStore` with
//!   `RedisOptions::key_secret`, and without one, the same derivation under a fixed public
//!   secret ([`KeyDerivation::public`]).
//! - **Local** ([`KeyDerivation::local`]): SipHash-2-4-128 with random keys drawn by the
//!   process; the keys never leave it. What [`MemoryStore`](super::MemoryStore) uses.
//!
//! Both hide the session id: a dump of the store hands out no usable id. Without the secret
//! (or the process's keys), a key cannot even be matched to a guessed id; under the public
//! secret it can, which is why a shared store wants a secret of its own. Rolling a secret out
//! and rotating it: docs/deployment.md in the repository.

use std::fmt;

/// BLAKE3 `derive_key` contexts: the secret's two subkeys, and the secret from key material.
/// They are part of the derivation (changing one changes every key), so they keep the name the
/// keyed format had when it was the second of three.
const SESSION_CONTEXT: &str = "mcp-session-binding 2026-12-01 session key format 2";
const TASK_CONTEXT: &str = "mcp-session-binding 2026-12-01 task key format 2";
const MATERIAL_CONTEXT: &str = "mcp-session-binding 2026-12-01 key secret from material";
/// The material of the public secret ([`KeyDerivation::public`]).
const PUBLIC_MATERIAL: &[u8] = b"mcp-session-binding public key secret: not a secret at all";

/// The least key material [`KeySecret::from_material`] takes, in bytes.
const MIN_SECRET_MATERIAL: usize = 32;

use super::SessionKey;

/// A deployment secret that keys the store keys. Every replica that shares a store must use
/// the same one. Its [`Debug`](fmt::Debug) form shows nothing of the secret.
///
/// ```
/// use mcp_session_binding::store::KeySecret;
///
/// // From a secret of at least 32 bytes, for example a base64 value from the environment:
/// let secret = KeySecret::from_material(b"0123456789abcdef0123456789abcdef").unwrap();
/// assert_eq!(format!("{secret:?}"), "KeySecret(..)");
/// assert!(KeySecret::from_material(b"too short").is_err());
/// ```
#[derive(Clone)]
pub struct KeySecret([u8; 32]);

impl KeySecret {
    /// A secret derived from `material` (BLAKE3 `derive_key`): any bytes, at least 32 of them,
    /// with as much entropy as you can give (32 random bytes are enough, for example
    /// `openssl rand -base64 32`, used as text or decoded). The same material gives the same
    /// keys on every replica.
    ///
    /// # Errors
    ///
    /// [`ShortSecret`] when `material` has fewer than 32 bytes.
    pub fn from_material(material: &[u8]) -> Result<Self, ShortSecret> {
        if material.len() < MIN_SECRET_MATERIAL {
            return Err(ShortSecret {
                len: material.len(),
            });
        }
        Ok(Self(blake3::derive_key(MATERIAL_CONTEXT, material)))
    }

    /// A random secret from the operating system: for a store only this process reads (a
    /// [`KeyDerivation::local`] is cheaper there), or tests. Wrong for a shared store, where
    /// every replica must derive the same keys.
    ///
    /// # Panics
    ///
    /// If the operating system has no random source (never on the supported platforms).
    #[must_use]
    pub fn random() -> Self {
        let mut secret = [0; 32];
        getrandom::fill(&mut secret).expect("the operating system's random source failed");
        Self(secret)
    }
}

impl fmt::Debug for KeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeySecret(..)")
    }
}

/// [`KeySecret::from_material`] was given fewer than 32 bytes.
///
/// ```
/// use mcp_session_binding::store::KeySecret;
///
/// let err = KeySecret::from_material(b"short").unwrap_err();
/// assert_eq!(err.to_string(), "a key secret needs at least 32 bytes of material, got 5");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShortSecret {
    len: usize,
}

impl fmt::Display for ShortSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a key secret needs at least {MIN_SECRET_MATERIAL} bytes of material, got {}",
            self.len
        )
    }
}

impl std::error::Error for ShortSecret {}

#[derive(Clone)]
enum Keys {
    Keyed { session: [u8; 32], task: [u8; 32] },
    Local { session: [u8; 16], task: [u8; 16] },
}

/// How a store's keys are derived from session and task ids (see
/// [`BindingStore::key_derivation`](super::BindingStore::key_derivation)): keyed by a
/// [`KeySecret`] for a store that several processes share, or local to this process. Session
/// and task ids have key spaces of their own.
///
/// ```
/// use mcp_session_binding::store::{KeyDerivation, KeySecret};
///
/// let keys = KeyDerivation::keyed(KeySecret::from_material(&[1; 32]).unwrap());
/// assert_eq!(keys.session("s-1"), keys.session("s-1"));
/// assert_ne!(keys.session("s-1"), keys.task("s-1"));
/// ```
#[derive(Clone)]
pub struct KeyDerivation(Keys);

impl KeyDerivation {
    /// BLAKE3 keyed with subkeys of `secret`, one for sessions and one for tasks: what a store
    /// shared by several processes persists. Every process with the same secret derives the
    /// same keys.
    #[must_use]
    pub fn keyed(secret: KeySecret) -> Self {
        Self(Keys::Keyed {
            session: blake3::derive_key(SESSION_CONTEXT, &secret.0),
            task: blake3::derive_key(TASK_CONTEXT, &secret.0),
        })
    }

    /// [`keyed`](Self::keyed) with a fixed secret that this crate publishes: what `RedisStore`
    /// uses without a [`KeySecret`]. Its keys still hide the ids, but anyone can match a key to
    /// a guessed id: give a shared store a secret of its own.
    #[must_use]
    pub fn public() -> Self {
        Self::keyed(KeySecret(blake3::derive_key(
            MATERIAL_CONTEXT,
            PUBLIC_MATERIAL,
        )))
    }

    /// SipHash-2-4-128 with random keys, one for sessions and one for tasks, for a store that
    /// lives in this process only (what [`MemoryStore`](super::MemoryStore) uses): the keys
    /// mean nothing to another process, or to this one after a restart.
    ///
    /// # Panics
    ///
    /// If the operating system has no random source (never on the supported platforms).
    #[must_use]
    pub fn local() -> Self {
        let mut random = [0; 32];
        getrandom::fill(&mut random).expect("the operating system's random source failed");
        let (session, task) = random.split_at(16);
        Self(Keys::Local {
            session: session.try_into().expect("16 bytes"),
            task: task.try_into().expect("16 bytes"),
        })
    }

    /// The store key of a session id.
    #[must_use]
    pub fn session(&self, session_id: &str) -> SessionKey {
        self.session_bytes(session_id.as_bytes())
    }

    /// [`session`](Self::session) of a header's bytes, known to be visible ASCII.
    pub(crate) fn session_bytes(&self, session_id: &[u8]) -> SessionKey {
        match &self.0 {
            Keys::Keyed { session, .. } => keyed(session, session_id),
            Keys::Local { session, .. } => local(session, session_id),
        }
    }

    /// The store key of a task id: a key space apart from session keys.
    #[must_use]
    pub fn task(&self, task_id: &str) -> SessionKey {
        match &self.0 {
            Keys::Keyed { task, .. } => keyed(task, task_id.as_bytes()),
            Keys::Local { task, .. } => local(task, task_id.as_bytes()),
        }
    }
}

impl fmt::Debug for KeyDerivation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            Keys::Keyed { .. } => "KeyDerivation::Keyed(..)",
            Keys::Local { .. } => "KeyDerivation::Local(..)",
        })
    }
}

fn keyed(key: &[u8; 32], id: &[u8]) -> SessionKey {
    let hash = blake3::keyed_hash(key, id);
    let mut out = [0; 16];
    out.copy_from_slice(&hash.as_bytes()[..16]);
    SessionKey(out)
}

fn local(key: &[u8; 16], id: &[u8]) -> SessionKey {
    use siphasher::sip128::{Hasher128, SipHasher24};
    use std::hash::Hasher;
    let mut hasher = SipHasher24::new_with_key(key);
    hasher.write(id);
    SessionKey(hasher.finish128().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_derivation_is_pinned() {
        // Keys a shared store without a secret holds must be found after an upgrade.
        let key = KeyDerivation::public().session("3f2a9c1e-0b7d-4e8a-9c55-2d1f6b8e7a40");
        assert_eq!(key.to_hex(), PINNED_PUBLIC_SESSION_KEY);
    }

    const PINNED_PUBLIC_SESSION_KEY: &str = "f6961469679b220dea09fbe1dd14db4e";

    #[test]
    fn the_secret_decides_the_keys() {
        let a = KeyDerivation::keyed(KeySecret::from_material(&[1; 32]).unwrap());
        let a2 = KeyDerivation::keyed(KeySecret::from_material(&[1; 32]).unwrap());
        let b = KeyDerivation::keyed(KeySecret::from_material(&[2; 32]).unwrap());
        assert_eq!(a.session("s"), a2.session("s"));
        assert_ne!(a.session("s"), b.session("s"));
        assert_ne!(a.session("s"), a.task("s"));
        assert_ne!(a.session("s"), KeyDerivation::public().session("s"));
        assert_ne!(
            KeyDerivation::keyed(KeySecret::random()).session("s"),
            KeyDerivation::keyed(KeySecret::random()).session("s")
        );
        let local = KeyDerivation::local();
        assert_eq!(local.session("s"), local.session("s"));
        assert_ne!(local.session("s"), local.task("s"));
        assert_ne!(local.session("s"), KeyDerivation::local().session("s"));
        assert_eq!(local.session("s"), local.session_bytes(b"s"));
    }

    #[test]
    fn short_material_is_refused() {
        assert_eq!(
            KeySecret::from_material(&[0; 31]).unwrap_err(),
            ShortSecret { len: 31 }
        );
        assert!(KeySecret::from_material(&[0; 32]).is_ok());
    }
}
