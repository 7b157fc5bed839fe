//! MRTR `requestState` (revision 2026-07-28) sealed to the caller: [`RequestStateLayer`].
//!
//! A server that answers `input_required` hands the client a `requestState` to echo on its
//! retry. The specification says servers MUST treat it as attacker-controlled and SHOULD bind it
//! to the authenticated principal, the request and an expiry. This layer does it for any server:
//! it seals the state in every `input_required` answer into an XChaCha20-Poly1305 envelope
//! (RustCrypto `chacha20poly1305`) binding the caller's `(iss, sub)`, the method, the target, a
//! digest of the arguments and an expiry, and opens it on the retry, forwarding the server's own
//! state. The server never sees a state it did not write for this caller and this request.
//!
//! - `keys`: [`StateKeys`], the key ring (the first key seals, every key opens), and the
//!   envelope;
//! - `layer`: [`RequestStateLayer`] and the [`RequestState`] service;
//! - `future`: its [`ResponseFuture`].
//!
//! Keys: every replica must hold the same ring. See [`StateKeys`] for rotation.

mod future;
mod keys;
mod layer;
mod ring;

pub use future::ResponseFuture;
pub use keys::{StateKeyError, StateKeys};
pub use layer::{RequestState, RequestStateLayer};
