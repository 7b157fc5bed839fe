//! The request bodies [`TaskParams`](super::TaskParams) reads: taken at once when they are there
//! whole, else read within the body cap and time limit. What the layer does with a body is
//! `service`'s; a body that cannot be read is answered (413, 408 or 400) and never forwarded.

use bytes::{Buf, Bytes, BytesMut};
use http::{Response, request::Parts};
use http_body::Body;
use http_body_util::Full;

use super::read::Plan;
use crate::{
    Identity,
    binding::{config::Config, reject, reject::RejectionReason, trace},
    protocol::early::{self, Taken},
};

/// The request bodies the layer reads: forwarded as a new body built from the bytes read.
pub(crate) trait TaskBody:
    Body<Data: Buf + Send, Error: Into<tower::BoxError>> + From<Bytes> + Unpin + Send + 'static
{
}

impl<T> TaskBody for T where
    T: Body<Data: Buf + Send, Error: Into<tower::BoxError>> + From<Bytes> + Unpin + Send + 'static
{
}

/// A request body, read or still to read.
pub(super) enum RequestBody<B> {
    /// Read, and planned to be forwarded (the common case: nothing else to hold or drop);
    /// `true`: its answer is scanned for a task.
    Forward(Bytes, bool),
    /// Read (or failed), and planned.
    Read(Result<Bytes, early::ReadError>, Plan),
    /// Its start; the rest is still to come.
    Rest(B, BytesMut),
}

impl<B: Body<Data: Buf> + Unpin> RequestBody<B> {
    /// What of `body` is there now, without waiting (up to `cap` bytes); planned by `plan` when
    /// it is there whole.
    #[inline]
    pub(super) fn take(mut body: B, cap: usize, plan: impl FnOnce(&[u8]) -> Plan) -> Self {
        match early::take_now(&mut body, cap) {
            Taken::Whole(Ok(bytes)) => match plan(&bytes) {
                Plan::Forward { capture } => Self::Forward(bytes, capture),
                plan => Self::Read(Ok(bytes), plan),
            },
            Taken::Whole(Err(error)) => Self::Read(Err(error), Plan::Unreadable),
            Taken::Started(started) => Self::Rest(body, started),
        }
    }

    /// The whole body, with its plan when it was made already; else the answer, logged.
    pub(super) async fn read(
        self,
        parts: &Parts,
        config: &Config,
        caller: Option<&Identity>,
    ) -> Result<(Bytes, Option<Plan>), Response<Full<Bytes>>> {
        let (read, plan) = match self {
            Self::Forward(bytes, capture) => (Ok(bytes), Some(Plan::Forward { capture })),
            Self::Read(read, plan) => (read, Some(plan)),
            Self::Rest(body, started) => {
                let declared = early::declared_length(&parts.headers);
                let (cap, timeout) = (config.max_body_bytes, config.refused_body_timeout);
                let read = early::read_rest(body, started, declared, cap, timeout).await;
                (read, None)
            }
        };
        read.map(|bytes| (bytes, plan)).map_err(|failed| {
            let answer = reject::body_not_read(parts, failed);
            if let Some(reason) = answer.extensions().get::<RejectionReason>() {
                trace::rejected(*reason, caller, None, Some("task request body not read"));
            }
            answer
        })
    }
}
