//! Lookups with or without the bind time, for the layer: the bind time is read only when a
//! maximum session age is set ([`BindingStore::lookup_with_age`]).

use std::time::{Duration, SystemTime};

use super::{BindingStore, Lookup, SessionKey, StoreError};

/// A lookup's answer, with the bind time when it was asked for and known.
pub(crate) type Aged = (Lookup, Option<SystemTime>);

/// [`BindingStore::lookup_now`], or with `aged` [`BindingStore::lookup_with_age_now`].
pub(crate) fn lookup_now<St: BindingStore + ?Sized>(
    store: &St,
    key: SessionKey,
    slide: Option<Duration>,
    aged: bool,
) -> Option<Result<Aged, StoreError>> {
    if aged {
        store.lookup_with_age_now(key, slide)
    } else {
        let found = store.lookup_now(key, slide)?;
        Some(found.map(|found| (found, None)))
    }
}

/// [`BindingStore::lookup`], or with `aged` [`BindingStore::lookup_with_age`].
pub(crate) async fn lookup<St: BindingStore + ?Sized>(
    store: &St,
    key: SessionKey,
    slide: Option<Duration>,
    aged: bool,
) -> Result<Aged, StoreError> {
    if aged {
        store.lookup_with_age(key, slide).await
    } else {
        store.lookup(key, slide).await.map(|found| (found, None))
    }
}

/// [`lookup`] of `key`, and when that finds nothing, of `previous` (the key under the key
/// secret before a rotation, during its overlap): the key whose answer counts, and the answer.
pub(crate) async fn lookup_either<St: BindingStore + ?Sized>(
    store: &St,
    key: SessionKey,
    previous: Option<SessionKey>,
    slide: Option<Duration>,
    aged: bool,
) -> (SessionKey, Result<Aged, StoreError>) {
    let found = lookup(store, key, slide, aged).await;
    if let (Ok((Lookup::Missing, _)), Some(old)) = (&found, previous) {
        let before = lookup(store, old, slide, aged).await;
        if !matches!(before, Ok((Lookup::Missing, _))) {
            return (old, before);
        }
    }
    (key, found)
}
