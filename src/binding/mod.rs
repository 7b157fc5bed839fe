//! The session-binding middleware: [`SessionBindingLayer`] and the [`SessionBinding`] service it
//! makes.
//!
//! One role per file:
//!
//! - `layer`: [`SessionBindingLayer`], its settings and defaults, and the [`SessionBinding`]
//!   type;
//! - `service`: what [`SessionBinding`] does with a request: reads the session header and the
//!   caller, picks the path, carries out the decision (forwards or refuses);
//! - `decide`: the binding decision, as plain functions;
//! - `plumbing`: what carries a request from one step to the next (the service handed to a
//!   future, the request waiting for the store, the work after an answer);
//! - `future`: [`ResponseFuture`], the inner call unboxed on the matching path;
//! - `body`: a session's SSE answer as a watched [`ResponseBody`](crate::ResponseBody);
//! - `event_ids`: SSE event ids tagged with their session, `Last-Event-ID` checked against it;
//! - `stream`: a session's GET streams, checked again while they stream, so that a session
//!   ended anywhere stops streaming;
//! - `session`: binding the session a response creates;
//! - `end`: ending a session (tombstone and the inner `DELETE`, on a task the client cannot
//!   cancel);
//! - `tasks`: tasks (revision 2026-07-28) bound to the principal that created them: recorded
//!   from `tools/call` answers, checked on `tasks/*`, filtered on `subscriptions/listen`;
//! - `reject`: [`RejectionReason`] and the answers the layer makes;
//! - `trace`: every log event, with its reason code.

mod body;
pub(crate) mod config;
pub(crate) mod decide;
pub(crate) mod end;
pub(crate) mod event_ids;
pub(crate) mod future;
pub(crate) mod layer;
pub(crate) mod plumbing;
mod refuse;
pub(crate) mod reject;
mod revoke;
mod service;
pub(crate) mod session;
pub(crate) mod stream;
pub(crate) mod tasks;

pub(crate) mod trace;

pub use config::MismatchAnswer;
pub use future::ResponseFuture;
pub use layer::{SessionBinding, SessionBindingLayer};
pub use reject::RejectionReason;
