//! [`KeyRing`]: the [`StateKeys`] a [`RequestStateLayer`](super::RequestStateLayer) seals and
//! opens with, which [`rotate_keys`](super::RequestStateLayer::rotate_keys) replaces while the
//! server runs; the keys replaced keep opening for the state TTL.

use std::{
    sync::{PoisonError, RwLock},
    time::{Duration, Instant},
};

use super::keys::{Claims, OwnedClaims, StateKeys};

/// The current keys, and those replaced by a rotation until no state they sealed can still be
/// valid.
#[derive(Debug)]
pub(crate) struct KeyRing {
    inner: RwLock<Inner>,
}

#[derive(Debug)]
struct Inner {
    current: StateKeys,
    /// Keys replaced, each with the instant after which it opens nothing.
    retired: Vec<(StateKeys, Instant)>,
}

impl KeyRing {
    pub(crate) fn new(keys: StateKeys) -> Self {
        Self {
            inner: RwLock::new(Inner {
                current: keys,
                retired: Vec::new(),
            }),
        }
    }

    /// Seals with the first current key.
    pub(crate) fn seal(&self, claims: &Claims<'_>) -> Option<String> {
        self.read().current.seal(claims)
    }

    /// Opens with any current key, or a retired one within its overlap.
    pub(crate) fn open(&self, sealed: &str) -> Option<OwnedClaims> {
        let inner = self.read();
        inner.current.open(sealed).or_else(|| {
            let now = Instant::now();
            inner
                .retired
                .iter()
                .filter(|(_, until)| now < *until)
                .find_map(|(keys, _)| keys.open(sealed))
        })
    }

    /// `keys` seal from now on; the keys before keep opening for `overlap`.
    pub(crate) fn rotate(&self, keys: StateKeys, overlap: Duration) {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        inner.retired.retain(|(_, until)| now < *until);
        let old = std::mem::replace(&mut inner.current, keys);
        if let Some(until) = now.checked_add(overlap) {
            inner.retired.push((old, until));
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims<'static> {
        Claims {
            p: Some(("https://issuer.example", "alice")),
            m: "tools/call",
            t: "book",
            a: "digest",
            exp: u64::MAX,
            s: "server state",
        }
    }

    #[test]
    fn old_keys_open_during_their_overlap_and_new_ones_seal() {
        let ring = KeyRing::new(StateKeys::new([1; 32]));
        let old = ring.seal(&claims()).unwrap();
        ring.rotate(StateKeys::new([2; 32]), Duration::from_secs(60));
        assert_eq!(ring.open(&old).unwrap().s, "server state", "in the overlap");
        let new = ring.seal(&claims()).unwrap();
        assert!(
            KeyRing::new(StateKeys::new([2; 32])).open(&new).is_some(),
            "the new key seals"
        );
        assert!(KeyRing::new(StateKeys::new([1; 32])).open(&new).is_none());
        // A second rotation keeps the first ring's overlap, and adds its own.
        ring.rotate(StateKeys::new([3; 32]), Duration::from_secs(60));
        assert!(ring.open(&old).is_some());
        assert!(ring.open(&new).is_some());
        // An overlap of zero: the keys before open nothing; older overlaps still run.
        ring.rotate(StateKeys::new([4; 32]), Duration::ZERO);
        let third = KeyRing::new(StateKeys::new([3; 32]));
        let sealed_by_third = third.seal(&claims()).unwrap();
        assert!(ring.open(&sealed_by_third).is_none(), "no overlap");
        assert!(ring.open(&old).is_some());
    }

    #[test]
    fn an_expired_overlap_opens_nothing() {
        let ring = KeyRing::new(StateKeys::new([1; 32]));
        let old = ring.seal(&claims()).unwrap();
        ring.rotate(StateKeys::new([2; 32]), Duration::from_millis(50));
        assert!(ring.open(&old).is_some());
        std::thread::sleep(Duration::from_millis(80));
        assert!(ring.open(&old).is_none(), "the overlap is over");
    }
}
