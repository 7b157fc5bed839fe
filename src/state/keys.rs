//! [`StateKeys`]: the key ring, and the sealed envelope it makes and opens.

use std::{fmt, time::SystemTime};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chacha20poly1305::{
    XChaCha20Poly1305, XNonce,
    aead::{Aead, AeadCore, KeyInit, OsRng, Payload},
};
use serde::{Deserialize, Serialize};

/// Prefix of every sealed state: the envelope's format and version.
const PREFIX: &str = "mcpsb1.";
/// Associated data of every envelope: no other use of the same key opens it.
const AAD: &[u8] = b"mcp-session-binding/request-state/v1";
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// The keys that seal and open `requestState`: the first seals, every one opens.
///
/// Rotation: add the new key *after* the current one on every replica, deploy; move it first,
/// deploy (it now seals, the old one still opens states in flight); drop the old key once the
/// [state TTL](crate::state::RequestStateLayer::ttl) has passed. Every replica must hold the
/// same keys.
///
/// ```
/// use mcp_session_binding::state::StateKeys;
///
/// let keys = StateKeys::from_base64_list(
///     "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=,ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=",
/// ).unwrap();
/// assert_eq!(keys.len(), 2);
/// assert!(StateKeys::from_base64_list("c2hvcnQ=").is_err());
/// ```
#[derive(Clone)]
pub struct StateKeys {
    ciphers: Vec<XChaCha20Poly1305>,
}

impl fmt::Debug for StateKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateKeys")
            .field("keys", &self.ciphers.len())
            .finish()
    }
}

/// A key list that does not parse: not base64, not 32 bytes, or empty.
///
/// ```
/// use mcp_session_binding::state::StateKeys;
///
/// let error = StateKeys::from_base64_list("").unwrap_err();
/// assert!(error.to_string().contains("no key"));
/// ```
#[derive(Debug)]
pub struct StateKeyError(&'static str);

impl fmt::Display for StateKeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for StateKeyError {}

impl StateKeys {
    /// A ring of one 32-byte key, which seals and opens.
    ///
    /// ```
    /// use mcp_session_binding::state::StateKeys;
    ///
    /// let keys = StateKeys::new([7; 32]).with_key([8; 32]);
    /// assert_eq!(keys.len(), 2);
    /// ```
    #[must_use]
    pub fn new(key: [u8; 32]) -> Self {
        Self {
            ciphers: vec![XChaCha20Poly1305::new(&key.into())],
        }
    }

    /// Adds a key that only opens (an older key, during a rotation).
    ///
    /// ```
    /// use mcp_session_binding::state::StateKeys;
    ///
    /// // During a rotation: the new key seals, the old one still opens.
    /// let keys = StateKeys::random().with_key([3u8; 32]);
    /// assert_eq!(keys.len(), 2);
    /// ```
    #[must_use]
    pub fn with_key(mut self, key: [u8; 32]) -> Self {
        self.ciphers.push(XChaCha20Poly1305::new(&key.into()));
        self
    }

    /// A ring of one random key: states sealed by this process open only in this process.
    ///
    /// ```
    /// use mcp_session_binding::state::StateKeys;
    ///
    /// assert_eq!(StateKeys::random().len(), 1);
    /// ```
    #[must_use]
    pub fn random() -> Self {
        let key = XChaCha20Poly1305::generate_key(&mut OsRng);
        Self {
            ciphers: vec![XChaCha20Poly1305::new(&key)],
        }
    }

    /// Keys from comma-separated base64 (standard or URL-safe, padded or not), each 32 bytes;
    /// the first seals.
    ///
    /// # Errors
    ///
    /// [`StateKeyError`] when the list is empty or a key is not base64 of 32 bytes.
    ///
    /// ```
    /// use mcp_session_binding::state::StateKeys;
    ///
    /// let new = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
    /// let old = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI";
    /// assert_eq!(StateKeys::from_base64_list(&format!("{new},{old}")).unwrap().len(), 2);
    /// assert!(StateKeys::from_base64_list("").is_err());
    /// assert!(StateKeys::from_base64_list("c2hvcnQ=").is_err()); // not 32 bytes
    /// ```
    pub fn from_base64_list(list: &str) -> Result<Self, StateKeyError> {
        let mut ciphers = Vec::new();
        for text in list.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let normalized: String = text
                .trim_end_matches('=')
                .chars()
                .map(|c| match c {
                    '+' => '-',
                    '/' => '_',
                    c => c,
                })
                .collect();
            let bytes = URL_SAFE_NO_PAD
                .decode(normalized)
                .map_err(|_| StateKeyError("a state key is not base64"))?;
            let key: [u8; 32] = bytes
                .try_into()
                .map_err(|_| StateKeyError("a state key is not 32 bytes"))?;
            ciphers.push(XChaCha20Poly1305::new(&key.into()));
        }
        if ciphers.is_empty() {
            return Err(StateKeyError("no key in the state key list"));
        }
        Ok(Self { ciphers })
    }

    /// How many keys the ring holds.
    ///
    /// ```
    /// use mcp_session_binding::state::StateKeys;
    /// assert_eq!(StateKeys::random().len(), 1);
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.ciphers.len()
    }

    /// Whether the ring is empty (never, for a ring built by this type's constructors).
    ///
    /// ```
    /// use mcp_session_binding::state::StateKeys;
    /// assert!(!StateKeys::random().is_empty());
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.ciphers.is_empty()
    }

    /// Seals `claims` with the first key.
    pub(crate) fn seal(&self, claims: &Claims<'_>) -> Option<String> {
        let cipher = self.ciphers.first()?;
        let plaintext = serde_json::to_vec(claims).ok()?;
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: &plaintext,
                    aad: AAD,
                },
            )
            .ok()?;
        let mut raw = Vec::with_capacity(NONCE_LEN + sealed.len());
        raw.extend_from_slice(&nonce);
        raw.extend_from_slice(&sealed);
        Some(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(raw)))
    }

    /// Opens a sealed state with any key of the ring: its claims, or `None` (not ours,
    /// tampered, not base64, too short).
    pub(crate) fn open(&self, sealed: &str) -> Option<OwnedClaims> {
        let body = sealed.strip_prefix(PREFIX)?;
        let raw = URL_SAFE_NO_PAD.decode(body).ok()?;
        if raw.len() < NONCE_LEN + TAG_LEN {
            return None;
        }
        let (nonce, ciphertext) = raw.split_at(NONCE_LEN);
        let nonce = XNonce::from_slice(nonce);
        let plaintext = self.ciphers.iter().find_map(|cipher| {
            cipher
                .decrypt(
                    nonce,
                    Payload {
                        msg: ciphertext,
                        aad: AAD,
                    },
                )
                .ok()
        })?;
        serde_json::from_slice(&plaintext).ok()
    }
}

/// What a sealed state binds, as written.
#[derive(Serialize)]
pub(crate) struct Claims<'a> {
    /// The caller's issuer and subject; `None` for an anonymous caller.
    pub(crate) p: Option<(&'a str, &'a str)>,
    /// The method (`tools/call`, `prompts/get`, `resources/read`).
    pub(crate) m: &'a str,
    /// The target: `params.name`, or `params.uri`.
    pub(crate) t: &'a str,
    /// SHA-256 of the arguments' JSON, hex.
    pub(crate) a: &'a str,
    /// Expiry, seconds since the Unix epoch.
    pub(crate) exp: u64,
    /// The state the server wrote.
    pub(crate) s: &'a str,
}

/// What a sealed state binds, as read.
#[derive(Deserialize)]
pub(crate) struct OwnedClaims {
    pub(crate) p: Option<(String, String)>,
    pub(crate) m: String,
    pub(crate) t: String,
    pub(crate) a: String,
    pub(crate) exp: u64,
    pub(crate) s: String,
}

/// Seconds since the Unix epoch, now.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(s: &str) -> Claims<'_> {
        Claims {
            p: Some(("https://i.example", "alice")),
            m: "tools/call",
            t: "confirm_echo",
            a: "00",
            exp: 10,
            s,
        }
    }

    #[test]
    fn sealed_states_open_with_any_key_of_the_ring_and_nothing_else() {
        let old = StateKeys::new([1; 32]);
        let new = StateKeys::new([2; 32]).with_key([1; 32]);
        let sealed = old.seal(&claims("inner")).unwrap();
        assert!(sealed.starts_with(PREFIX));
        assert_eq!(new.open(&sealed).unwrap().s, "inner");
        assert!(StateKeys::new([3; 32]).open(&sealed).is_none());
        let resealed = new.seal(&claims("inner")).unwrap();
        assert!(old.open(&resealed).is_none());
        // Tampering anywhere fails.
        let mut bytes = sealed.clone().into_bytes();
        let last = bytes.len() - 3;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        assert!(old.open(&String::from_utf8(bytes).unwrap()).is_none());
        for junk in ["", "mcpsb1.", "mcpsb1.!!!", "mcpsb1.AAAA", "other.xyz"] {
            assert!(old.open(junk).is_none(), "{junk}");
        }
    }
}
