//! How session ids and task ids become store keys.
//!
//! Two derivations, both 128 bits, both with a key space for sessions and one for tasks:
//!
//! - **Keyed** ([`KeyDerivation::keyed`]): BLAKE3 keyed with subkeys of a deployment
//!   [`KeySecret`], the same on every replica. What a shared store persists: `RedisStore` with
//!   `RedisOptions::key_secret`, and without one, the same derivation under a fixed public
//!   secret ([`KeyDerivation::public`]).
//! - **Local** ([`KeyDerivation::local`]): SipHash-1-3-128 with random keys drawn by the
//!   process; the keys never leave it. What [`MemoryStore`](super::MemoryStore) uses.
//!
//! Both hide the session id: a dump of the store hands out no usable id. Without the secret
//! (or the process's keys), a key cannot even be matched to a guessed id; under the public
//! secret it can, which is why a shared store wants a secret of its own. Rolling a secret out
//! and rotating it: docs/deployment.md in the repository.

use std::{
    fmt,
    sync::{Arc, PoisonError, RwLock},
    time::{Duration, Instant},
};

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
pub struct KeyDerivation(Derivation);

/// A derivation's keys: fixed (local), or a keyed ring that [`KeyDerivation::rotate`] changes
/// at run time, shared by every clone.
#[derive(Clone)]
enum Derivation {
    Fixed(Keys),
    Ring(Arc<RwLock<Ring>>),
}

/// The keys of a keyed derivation: the current ones, and the ones before the last rotation
/// while their overlap lasts.
struct Ring {
    current: Keys,
    previous: Option<(Keys, Instant)>,
}

impl Ring {
    fn previous(&self) -> Option<&Keys> {
        self.previous
            .as_ref()
            .filter(|(_, until)| Instant::now() < *until)
            .map(|(keys, _)| keys)
    }
}

impl KeyDerivation {
    /// BLAKE3 keyed with subkeys of `secret`, one for sessions and one for tasks: what a store
    /// shared by several processes persists. Every process with the same secret derives the
    /// same keys.
    #[must_use]
    pub fn keyed(secret: KeySecret) -> Self {
        Self(Derivation::Ring(Arc::new(RwLock::new(Ring {
            current: Keys::of(&secret),
            previous: None,
        }))))
    }

    /// Rotates a keyed derivation to `secret`, at run time, on this derivation and every clone
    /// of it (the store's): from now on keys are derived from `secret`, and for `overlap` the
    /// keys under the secret before are still looked up (see
    /// [`previous_session`](Self::previous_session)), so that sessions and tasks bound before
    /// keep working for that long; after it, they are not found (404, as an unknown session).
    /// Size `overlap` from how long a session may live: the binding TTL, or the
    /// [maximum age](crate::SessionBindingLayer::max_session_age). A rotation during an overlap
    /// ends the older one: only the secret just replaced stays looked up. Every replica must
    /// rotate to the same secret (the example reloads it on `SIGHUP`); a replica not yet rotated
    /// finds the sessions others bound under the new secret only once it rotates too.
    ///
    /// Returns `false`, and changes nothing, for a [`local`](Self::local) derivation (its keys
    /// are random and never leave the process: there is nothing to rotate).
    ///
    /// ```
    /// use std::time::Duration;
    /// use mcp_session_binding::store::{KeyDerivation, KeySecret};
    ///
    /// let keys = KeyDerivation::keyed(KeySecret::from_material(&[1; 32]).unwrap());
    /// let before = keys.session("s-1");
    /// let shared = keys.clone();
    /// assert!(keys.rotate(KeySecret::from_material(&[2; 32]).unwrap(), Duration::from_secs(60)));
    /// assert_ne!(shared.session("s-1"), before);
    /// assert_eq!(shared.previous_session("s-1"), Some(before));
    /// assert!(!KeyDerivation::local().rotate(KeySecret::random(), Duration::from_secs(60)));
    /// ```
    pub fn rotate(&self, secret: KeySecret, overlap: Duration) -> bool {
        let Derivation::Ring(ring) = &self.0 else {
            return false;
        };
        let mut ring = ring.write().unwrap_or_else(PoisonError::into_inner);
        // An overlap past what the clock can tell lasts a century.
        let now = Instant::now();
        let until = now
            .checked_add(overlap)
            .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 24 * 3600)));
        let old = std::mem::replace(&mut ring.current, Keys::of(&secret));
        ring.previous = until.map(|until| (old, until));
        true
    }

    /// The store key of a session id under the secret before the last
    /// [`rotate`](Self::rotate), while its overlap lasts: where the layers look a session up
    /// when its current key finds nothing. `None` otherwise.
    #[must_use]
    pub fn previous_session(&self, session_id: &str) -> Option<SessionKey> {
        self.previous_session_bytes(session_id.as_bytes())
    }

    /// [`previous_session`](Self::previous_session) of a header's bytes.
    pub(crate) fn previous_session_bytes(&self, session_id: &[u8]) -> Option<SessionKey> {
        let Derivation::Ring(ring) = &self.0 else {
            return None;
        };
        let ring = ring.read().unwrap_or_else(PoisonError::into_inner);
        ring.previous().map(|keys| keys.session(session_id))
    }

    /// The store key of a task id under the secret before the last [`rotate`](Self::rotate),
    /// while its overlap lasts; `None` otherwise.
    #[must_use]
    pub fn previous_task(&self, task_id: &str) -> Option<SessionKey> {
        let Derivation::Ring(ring) = &self.0 else {
            return None;
        };
        let ring = ring.read().unwrap_or_else(PoisonError::into_inner);
        ring.previous().map(|keys| keys.task(task_id.as_bytes()))
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

    /// SipHash-1-3-128 with random keys, one for sessions and one for tasks, for a store that
    /// lives in this process only (what [`MemoryStore`](super::MemoryStore) uses): the keys
    /// mean nothing to another process, or to this one after a restart. (SipHash-1-3 is what
    /// Rust's `HashMap` keys its table with against chosen collisions; no output of it ever
    /// leaves the process, and the ids it hashes are random.)
    ///
    /// # Panics
    ///
    /// If the operating system has no random source (never on the supported platforms).
    #[must_use]
    pub fn local() -> Self {
        let mut random = [0; 32];
        getrandom::fill(&mut random).expect("the operating system's random source failed");
        let (session, task) = random.split_at(16);
        Self(Derivation::Fixed(Keys::Local {
            session: session.try_into().expect("16 bytes"),
            task: task.try_into().expect("16 bytes"),
        }))
    }

    /// The store key of a session id.
    #[must_use]
    pub fn session(&self, session_id: &str) -> SessionKey {
        self.session_bytes(session_id.as_bytes())
    }

    /// [`session`](Self::session) of a header's bytes, known to be visible ASCII.
    pub(crate) fn session_bytes(&self, session_id: &[u8]) -> SessionKey {
        match &self.0 {
            Derivation::Fixed(keys) => keys.session(session_id),
            Derivation::Ring(ring) => ring
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .current
                .session(session_id),
        }
    }

    /// The store key of a task id: a key space apart from session keys.
    #[must_use]
    pub fn task(&self, task_id: &str) -> SessionKey {
        match &self.0 {
            Derivation::Fixed(keys) => keys.task(task_id.as_bytes()),
            Derivation::Ring(ring) => ring
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .current
                .task(task_id.as_bytes()),
        }
    }
}

impl Keys {
    fn of(secret: &KeySecret) -> Self {
        Self::Keyed {
            session: blake3::derive_key(SESSION_CONTEXT, &secret.0),
            task: blake3::derive_key(TASK_CONTEXT, &secret.0),
        }
    }

    fn session(&self, id: &[u8]) -> SessionKey {
        match self {
            Self::Keyed { session, .. } => keyed(session, id),
            Self::Local { session, .. } => local(session, id),
        }
    }

    fn task(&self, id: &[u8]) -> SessionKey {
        match self {
            Self::Keyed { task, .. } => keyed(task, id),
            Self::Local { task, .. } => local(task, id),
        }
    }
}

impl fmt::Debug for KeyDerivation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            Derivation::Ring(_) => "KeyDerivation::Keyed(..)",
            Derivation::Fixed(_) => "KeyDerivation::Local(..)",
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
    use siphasher::sip128::{Hasher128, SipHasher13};
    use std::hash::Hasher;
    let mut hasher = SipHasher13::new_with_key(key);
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
    fn a_rotation_keeps_the_old_keys_for_its_overlap_only() {
        let (one, two, three) = (
            KeySecret::from_material(&[1; 32]).unwrap(),
            KeySecret::from_material(&[2; 32]).unwrap(),
            KeySecret::from_material(&[3; 32]).unwrap(),
        );
        let keys = KeyDerivation::keyed(one.clone());
        let under = |secret: &KeySecret| KeyDerivation::keyed(secret.clone());
        assert_eq!(keys.previous_session("s"), None);
        assert!(keys.rotate(two.clone(), Duration::from_secs(60)));
        assert_eq!(keys.session("s"), under(&two).session("s"));
        assert_eq!(keys.task("t"), under(&two).task("t"));
        assert_eq!(keys.previous_session("s"), Some(under(&one).session("s")));
        assert_eq!(keys.previous_task("t"), Some(under(&one).task("t")));
        // A second rotation: only the secret just replaced is looked up.
        assert!(keys.rotate(three.clone(), Duration::from_secs(60)));
        assert_eq!(keys.session("s"), under(&three).session("s"));
        assert_eq!(keys.previous_session("s"), Some(under(&two).session("s")));
        // No overlap: the old keys are gone at once.
        assert!(keys.rotate(one.clone(), Duration::ZERO));
        assert_eq!(keys.previous_session("s"), None);
        assert_eq!(keys.previous_task("t"), None);
        // An overlap too long for the clock: a century.
        assert!(keys.rotate(two, Duration::MAX));
        assert_eq!(keys.previous_session("s"), Some(under(&one).session("s")));
        // Local keys do not rotate.
        let local = KeyDerivation::local();
        let before = local.session("s");
        assert!(!local.rotate(three, Duration::from_secs(60)));
        assert_eq!(local.session("s"), before);
        assert_eq!(local.previous_session("s"), None);
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
