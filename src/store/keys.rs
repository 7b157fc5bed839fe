//! How session ids and task ids become store keys: the key formats.
//!
//! | format | derivation | who uses it |
//! | --- | --- | --- |
//! | 1 | SHA-256 of the id, first 128 bits; unkeyed | [`SessionKey::from_session_id`], stores that do not say otherwise, `RedisStore` without a [`KeySecret`] |
//! | 2 | BLAKE3 keyed with a subkey of a deployment [`KeySecret`], first 128 bits | `RedisStore` with [`RedisOptions::key_secret`](super::RedisOptions::key_secret) |
//! | 3 | SipHash-2-4-128 with random keys drawn by the process; never leaves it | [`MemoryStore`](super::MemoryStore) |
//!
//! All hide the session id: a dump of the store hands out no usable id. Formats 2 and 3 also
//! hide *which* id a key belongs to from whoever lacks the secret, even for ids of little
//! entropy (a format-1 key can be checked against guessed ids). Format 2 costs about a sixth of
//! format 1 per key, format 3 about a tenth (on CPUs without SHA extensions); format 3, a PRF
//! made for hash tables, is for keys that stay in one process, format 2 for keys that a shared
//! store keeps.
//!
//! A store says which format it writes with [`BindingStore::key_derivation`]; the layers derive
//! every key through it. A store that switches from format 1 to 2 keeps answering for the
//! sessions bound before the switch: with [`KeyDerivation::reading_format_1`], a lookup that
//! finds nothing under the format-2 key looks for the format-1 key too, so a rolling upgrade
//! logs nobody out. After one binding TTL all format-1 bindings have expired and the second
//! lookup can be turned off.
//!
//! [`BindingStore::key_derivation`]: super::BindingStore::key_derivation

use std::fmt;

use sha2::{Digest, Sha256};

use super::SessionKey;

/// BLAKE3 `derive_key` contexts: the secret's two subkeys, and the secret from key material.
const SESSION_CONTEXT: &str = "mcp-session-binding 2026-12-01 session key format 2";
const TASK_CONTEXT: &str = "mcp-session-binding 2026-12-01 task key format 2";
const MATERIAL_CONTEXT: &str = "mcp-session-binding 2026-12-01 key secret from material";

/// The prefix of a format-1 task key's hash input. It ends in a NUL byte, which no
/// `Mcp-Session-Id` (visible ASCII) can contain, so no session id and task id share a key.
const FORMAT_1_TASK_PREFIX: &[u8] = b"mcp-session-binding/task\0";

/// The least key material [`KeySecret::from_material`] takes, in bytes.
///
/// ```
/// use mcp_session_binding::store::{KeySecret, keys::MIN_SECRET_MATERIAL};
/// assert!(KeySecret::from_material(&[7; MIN_SECRET_MATERIAL]).is_ok());
/// assert!(KeySecret::from_material(&[7; MIN_SECRET_MATERIAL - 1]).is_err());
/// ```
pub const MIN_SECRET_MATERIAL: usize = 32;

/// A deployment secret that keys the store keys (format 2). Every replica that shares a store
/// must use the same one.
///
/// Its [`Debug`](fmt::Debug) form shows nothing of the secret.
///
/// ```
/// use mcp_session_binding::store::KeySecret;
///
/// // From a secret of at least 32 bytes, for example a base64 value from the environment:
/// let secret = KeySecret::from_material(b"0123456789abcdef0123456789abcdef").unwrap();
/// assert_eq!(format!("{secret:?}"), "KeySecret(..)");
/// assert!(KeySecret::from_material(b"too short").is_err());
/// // Or random (for a store no other process reads, or a test):
/// let _one_process_only = KeySecret::random();
/// ```
#[derive(Clone)]
pub struct KeySecret([u8; 32]);

impl KeySecret {
    /// A secret derived from `material` (BLAKE3 `derive_key`): any bytes, at least
    /// [`MIN_SECRET_MATERIAL`] of them, with as much entropy as you can give (32 random bytes
    /// are enough, for example `openssl rand -base64 32`, used as text or decoded).
    ///
    /// # Errors
    ///
    /// [`ShortSecret`] when `material` has fewer than [`MIN_SECRET_MATERIAL`] bytes.
    ///
    /// ```
    /// use mcp_session_binding::store::{KeySecret, KeyDerivation};
    ///
    /// let a = KeySecret::from_material(&[7; 32]).unwrap();
    /// let b = KeySecret::from_material(&[7; 32]).unwrap();
    /// // The same material gives the same keys on every replica.
    /// assert_eq!(KeyDerivation::keyed(a).session("s-1"), KeyDerivation::keyed(b).session("s-1"));
    /// ```
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
    ///
    /// ```
    /// use mcp_session_binding::store::{KeyDerivation, KeySecret};
    ///
    /// let one = KeyDerivation::keyed(KeySecret::random());
    /// let other = KeyDerivation::keyed(KeySecret::random());
    /// assert_ne!(one.session("s-1"), other.session("s-1"));
    /// ```
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

/// [`KeySecret::from_material`] was given fewer than [`MIN_SECRET_MATERIAL`] bytes.
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
enum Format {
    Sha256,
    Keyed { session: [u8; 32], task: [u8; 32] },
    Local { session: [u8; 16], task: [u8; 16] },
}

/// How a store's keys are derived: the key format, and whether lookups also try format 1.
///
/// ```
/// use mcp_session_binding::store::{KeyDerivation, KeySecret, SessionKey};
///
/// let keyed = KeyDerivation::keyed(KeySecret::from_material(&[1; 32]).unwrap());
/// assert_eq!(keyed.format(), 2);
/// assert_ne!(keyed.session("s-1"), keyed.task("s-1")); // key spaces of their own
///
/// let plain = KeyDerivation::sha256();
/// assert_eq!(plain.format(), 1);
/// assert_eq!(plain.session("s-1"), SessionKey::from_session_id("s-1"));
/// ```
#[derive(Clone)]
pub struct KeyDerivation {
    format: Format,
    reading_format_1: bool,
}

/// Format 1 without fallback: what stores that do not choose derive with.
pub(crate) static SHA256: KeyDerivation = KeyDerivation::sha256();

impl KeyDerivation {
    /// Format 1: SHA-256 of the id, unkeyed. The default of [`BindingStore`](super::BindingStore)
    /// implementations that do not choose, and of `RedisStore` without a [`KeySecret`].
    ///
    /// ```
    /// use mcp_session_binding::store::{KeyDerivation, SessionKey};
    ///
    /// let keys = KeyDerivation::sha256();
    /// assert_eq!(keys.task("t-1"), SessionKey::from_task_id("t-1"));
    /// ```
    #[must_use]
    pub const fn sha256() -> Self {
        Self {
            format: Format::Sha256,
            reading_format_1: false,
        }
    }

    /// Format 2: BLAKE3 keyed with subkeys of `secret`, one for sessions and one for tasks.
    ///
    /// ```
    /// use mcp_session_binding::store::{KeyDerivation, KeySecret, SessionKey};
    ///
    /// let keys = KeyDerivation::keyed(KeySecret::from_material(&[2; 32]).unwrap());
    /// assert_ne!(keys.session("s-1"), SessionKey::from_session_id("s-1"));
    /// assert_eq!(keys.session("s-1"), keys.session("s-1"));
    /// ```
    #[must_use]
    pub fn keyed(secret: KeySecret) -> Self {
        Self {
            format: Format::Keyed {
                session: blake3::derive_key(SESSION_CONTEXT, &secret.0),
                task: blake3::derive_key(TASK_CONTEXT, &secret.0),
            },
            reading_format_1: false,
        }
    }

    /// Format 3: SipHash-2-4-128 with random keys, one for sessions and one for tasks. For a
    /// store that lives in this process only (what [`MemoryStore`](super::MemoryStore) uses):
    /// the keys mean nothing to another process, or to this one after a restart.
    ///
    /// ```
    /// use mcp_session_binding::store::KeyDerivation;
    ///
    /// let keys = KeyDerivation::local();
    /// assert_eq!(keys.format(), 3);
    /// assert_eq!(keys.session("s-1"), keys.session("s-1"));
    /// assert_ne!(keys.session("s-1"), KeyDerivation::local().session("s-1"));
    /// ```
    #[must_use]
    pub fn local() -> Self {
        let mut random = [0; 32];
        getrandom::fill(&mut random).expect("the operating system's random source failed");
        let (session, task) = random.split_at(16);
        Self {
            format: Format::Local {
                session: session.try_into().expect("16 bytes"),
                task: task.try_into().expect("16 bytes"),
            },
            reading_format_1: false,
        }
    }

    /// With `true`, a session not found under its key is also looked for under its format-1
    /// key: the migration of a shared store from format 1 to format 2, without logging anyone
    /// out. Costs a second lookup (and SHA-256) for unknown session ids only; turn it off once
    /// one binding TTL has passed since the switch. Without effect on format 1.
    ///
    /// ```
    /// use mcp_session_binding::store::{KeyDerivation, KeySecret, SessionKey};
    ///
    /// let keys = KeyDerivation::keyed(KeySecret::from_material(&[3; 32]).unwrap())
    ///     .reading_format_1(true);
    /// assert_eq!(keys.format_1_session("s-1"), Some(SessionKey::from_session_id("s-1")));
    /// assert_eq!(KeyDerivation::sha256().reading_format_1(true).format_1_session("s-1"), None);
    /// ```
    #[must_use]
    pub fn reading_format_1(mut self, yes: bool) -> Self {
        self.reading_format_1 = yes;
        self
    }

    /// The format keys are written in: 1, 2 or 3.
    ///
    /// ```
    /// use mcp_session_binding::store::KeyDerivation;
    /// assert_eq!(KeyDerivation::sha256().format(), 1);
    /// ```
    #[must_use]
    pub fn format(&self) -> u8 {
        match self.format {
            Format::Sha256 => 1,
            Format::Keyed { .. } => 2,
            Format::Local { .. } => 3,
        }
    }

    /// The store key of a session id.
    ///
    /// ```
    /// use mcp_session_binding::store::{KeyDerivation, KeySecret};
    ///
    /// let keys = KeyDerivation::keyed(KeySecret::random());
    /// assert_ne!(keys.session("s-1"), keys.session("s-2"));
    /// ```
    #[must_use]
    pub fn session(&self, session_id: &str) -> SessionKey {
        self.session_bytes(session_id.as_bytes())
    }

    /// [`session`](Self::session) of a header's bytes, known to be visible ASCII.
    pub(crate) fn session_bytes(&self, session_id: &[u8]) -> SessionKey {
        match &self.format {
            Format::Sha256 => sha256(b"", session_id),
            Format::Keyed { session, .. } => keyed(session, session_id),
            Format::Local { session, .. } => local(session, session_id),
        }
    }

    /// The store key of a task id: a key space apart from session keys.
    ///
    /// ```
    /// use mcp_session_binding::store::{KeyDerivation, KeySecret};
    ///
    /// let keys = KeyDerivation::keyed(KeySecret::random());
    /// assert_ne!(keys.task("786512e2"), keys.session("786512e2"));
    /// ```
    #[must_use]
    pub fn task(&self, task_id: &str) -> SessionKey {
        match &self.format {
            Format::Sha256 => SessionKey::from_task_id(task_id),
            Format::Keyed { task, .. } => keyed(task, task_id.as_bytes()),
            Format::Local { task, .. } => local(task, task_id.as_bytes()),
        }
    }

    /// The format-1 key to try when `session_id` is not found under [`session`](Self::session):
    /// `Some` only for format 2 [reading format 1](Self::reading_format_1).
    ///
    /// ```
    /// use mcp_session_binding::store::{KeyDerivation, KeySecret};
    ///
    /// assert_eq!(KeyDerivation::keyed(KeySecret::random()).format_1_session("s-1"), None);
    /// ```
    #[must_use]
    pub fn format_1_session(&self, session_id: &str) -> Option<SessionKey> {
        match self.format {
            Format::Keyed { .. } if self.reading_format_1 => {
                Some(SessionKey::from_session_id(session_id))
            }
            _ => None,
        }
    }
}

impl Default for KeyDerivation {
    /// Format 1 ([`sha256`](Self::sha256)).
    ///
    /// ```
    /// use mcp_session_binding::store::KeyDerivation;
    /// assert_eq!(KeyDerivation::default().format(), 1);
    /// ```
    fn default() -> Self {
        Self::sha256()
    }
}

impl fmt::Debug for KeyDerivation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyDerivation")
            .field("format", &self.format())
            .field("reading_format_1", &self.reading_format_1)
            .finish()
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

/// Format 1: the first 128 bits of SHA-256 over `prefix` then `id`.
pub(super) fn sha256(prefix: &[u8], id: &[u8]) -> SessionKey {
    let digest = Sha256::new()
        .chain_update(prefix)
        .chain_update(id)
        .finalize();
    let mut out = [0; 16];
    out.copy_from_slice(&digest[..16]);
    SessionKey(out)
}

/// Format 1 of a task id.
pub(super) fn sha256_task(task_id: &str) -> SessionKey {
    sha256(FORMAT_1_TASK_PREFIX, task_id.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_1_is_unchanged() {
        // Keys written before format 2 existed must still be found: pin the derivation.
        let key = KeyDerivation::sha256().session("3f2a9c1e-0b7d-4e8a-9c55-2d1f6b8e7a40");
        assert_eq!(key.to_hex(), "eab7c22024797e268ace1552ed05cea0");
    }

    #[test]
    fn the_secret_decides_the_format_2_keys() {
        let a = KeyDerivation::keyed(KeySecret::from_material(&[1; 32]).unwrap());
        let a2 = KeyDerivation::keyed(KeySecret::from_material(&[1; 32]).unwrap());
        let b = KeyDerivation::keyed(KeySecret::from_material(&[2; 32]).unwrap());
        assert_eq!(a.session("s"), a2.session("s"));
        assert_ne!(a.session("s"), b.session("s"));
        assert_ne!(a.session("s"), a.task("s"));
        assert_ne!(a.session("s"), KeyDerivation::sha256().session("s"));
        assert_ne!(a.task("s"), KeyDerivation::sha256().task("s"));
        let local = KeyDerivation::local();
        assert_ne!(local.session("s"), local.task("s"));
        assert_ne!(local.session("s"), a.session("s"));
        assert_eq!(local.format_1_session("s"), None);
        assert_eq!(a.format_1_session("s"), None);
        assert_eq!(
            a.clone().reading_format_1(true).format_1_session("s"),
            Some(SessionKey::from_session_id("s"))
        );
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
