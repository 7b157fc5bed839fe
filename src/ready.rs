//! tower's `poll_ready` contract, for middleware that calls its inner service later than `call`,
//! or not at all.
//!
//! `poll_ready` readies one instance of the inner service. When the inner call moves into a
//! future (a store lookup or a revocation check comes first), that future must get the ready
//! instance, and the middleware keeps a fresh clone for the next request, which it will poll
//! ready first (tower's "Be careful when cloning inner services" in the `Service` docs). When a
//! request is refused before the inner call, both middlewares drop the ready instance, so what it
//! reserved in `poll_ready` (a concurrency permit, a connection) is released at once.

/// Takes the instance `poll_ready` made ready, leaving a clone in its place.
pub(crate) fn take_ready<S: Clone>(inner: &mut S) -> S {
    let clone = inner.clone();
    std::mem::replace(inner, clone)
}
