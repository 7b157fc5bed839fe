//! A session's SSE answer as a watched [`ResponseBody`]: checked again while it streams, its
//! event ids tagged.

use std::{pin::Pin, task::Context};

use bytes::Bytes;
use http_body::Body;

use super::stream::SessionStream;
use crate::protocol::body::{NextFrame, ResponseBody, Watch};

impl<B> ResponseBody<B> {
    /// An SSE answer of a bound session: watched (ended early once the session is no longer
    /// bound to its caller), its event ids tagged, or both.
    pub(crate) fn session(body: B, stream: Pin<Box<SessionStream>>) -> Self {
        Self::watched(body, stream)
    }
}

impl<B> Watch<B> for SessionStream {
    fn poll_frame(self: Pin<&mut Self>, body: Pin<&mut B>, cx: &mut Context<'_>) -> NextFrame<B>
    where
        B: Body<Data = Bytes>,
    {
        SessionStream::poll_frame(self, body, cx)
    }

    fn is_end_stream(&self, body: &B) -> bool
    where
        B: Body,
    {
        SessionStream::is_end_stream(self, body)
    }
}
