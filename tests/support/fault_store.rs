//! One fault-injecting binding store for every test: it wraps a real store (a `MemoryStore` by
//! default, or a `RedisStore`) and, as a test switches it, fails `bind` and `lookup` (and their
//! task-record twins `bind_task` and `task_owner`) as an
//! unavailable or corrupt store would, reports every new id as already bound, or delays `end` (the
//! tombstone write) as a remote store can. It never answers synchronously (`lookup_now`), so it
//! also drives the layer's asynchronous path.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU8, AtomicU64, Ordering},
    },
    time::Duration,
};

use futures::FutureExt;
use mcp_session_binding::store::{
    BindOutcome, BindingStore, KeyDerivation, Lookup, MemoryStore, Owner, Record, SessionKey,
    StoreError, StoreFuture,
};

/// What `bind` and `lookup` do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Fault {
    /// Pass through to the inner store.
    None = 0,
    /// Fail as an unreachable store: the layer answers 503.
    Unavailable = 1,
    /// Fail as a store holding a value that does not parse: the layer fails closed.
    Corrupt = 2,
    /// `bind` reports every id as already bound (a minted id that collides).
    Taken = 3,
}

#[derive(Clone, Default)]
pub struct FaultStore<St = MemoryStore> {
    pub inner: St,
    fault: Arc<AtomicU8>,
    end_delay_ms: Arc<AtomicU64>,
}

impl<St> FaultStore<St> {
    pub fn new(inner: St) -> Self {
        Self {
            inner,
            fault: Arc::default(),
            end_delay_ms: Arc::default(),
        }
    }

    /// Switches the fault (every clone sees it).
    pub fn set(&self, fault: Fault) {
        self.fault.store(fault as u8, Ordering::SeqCst);
    }

    /// Delays every `end` by `delay`.
    pub fn slow_end(self, delay: Duration) -> Self {
        self.end_delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
        self
    }

    fn fault(&self) -> Fault {
        match self.fault.load(Ordering::SeqCst) {
            1 => Fault::Unavailable,
            2 => Fault::Corrupt,
            3 => Fault::Taken,
            _ => Fault::None,
        }
    }

    fn error(&self) -> Option<StoreError> {
        match self.fault() {
            Fault::Unavailable => Some(StoreError::unavailable(std::io::Error::other(
                "connection refused",
            ))),
            Fault::Corrupt => Some(StoreError::corrupt("stored value is not mcpsb1")),
            Fault::None | Fault::Taken => None,
        }
    }
}

impl<St: BindingStore> BindingStore for FaultStore<St> {
    fn bind<'a>(&'a self, record: Record<'a>, limit: usize) -> StoreFuture<'a, BindOutcome> {
        if self.fault() == Fault::Taken {
            return futures::future::ready(Ok(BindOutcome::AlreadyBound(Owner::Anonymous))).boxed();
        }
        match self.error() {
            Some(error) => futures::future::ready(Err(error)).boxed(),
            None => self.inner.bind(record, limit),
        }
    }

    fn lookup(&self, key: SessionKey, slide: Option<Duration>) -> StoreFuture<'_, Lookup> {
        match self.error() {
            Some(error) => futures::future::ready(Err(error)).boxed(),
            None => self.inner.lookup(key, slide),
        }
    }

    fn lookup_with_age(
        &self,
        key: SessionKey,
        slide: Option<Duration>,
    ) -> StoreFuture<'_, (Lookup, Option<std::time::SystemTime>)> {
        match self.error() {
            Some(error) => futures::future::ready(Err(error)).boxed(),
            None => self.inner.lookup_with_age(key, slide),
        }
    }

    fn end_owner<'a>(
        &'a self,
        owner: &'a Owner,
        ttl: Duration,
    ) -> StoreFuture<'a, mcp_session_binding::store::Revoked> {
        match self.error() {
            Some(error) => futures::future::ready(Err(error)).boxed(),
            None => self.inner.end_owner(owner, ttl),
        }
    }

    fn end(&self, key: SessionKey, ttl: Duration) -> StoreFuture<'_, ()> {
        let delay = Duration::from_millis(self.end_delay_ms.load(Ordering::SeqCst));
        async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            self.inner.end(key, ttl).await
        }
        .boxed()
    }

    fn bind_task<'a>(&'a self, record: Record<'a>) -> StoreFuture<'a, BindOutcome> {
        if self.fault() == Fault::Taken {
            return futures::future::ready(Ok(BindOutcome::AlreadyBound(Owner::Anonymous))).boxed();
        }
        match self.error() {
            Some(error) => futures::future::ready(Err(error)).boxed(),
            None => self.inner.bind_task(record),
        }
    }

    fn task_owner(
        &self,
        key: SessionKey,
        slide: Option<Duration>,
    ) -> StoreFuture<'_, Option<Owner>> {
        match self.error() {
            Some(error) => futures::future::ready(Err(error)).boxed(),
            None => self.inner.task_owner(key, slide),
        }
    }

    fn key_derivation(&self) -> &KeyDerivation {
        self.inner.key_derivation()
    }
}
