//! Answers made before the request body was read, and reading a refused body within bounds.
//!
//! An HTTP/1.1 server that answers before the request body arrived, then finds the body unread,
//! closes the connection. A pooled client that already sent its next request on that connection
//! gets "connection closed without a response". So every early answer either drains a small body
//! first (at most [`DRAIN_MAX_BYTES`] within [`DRAIN_TIMEOUT`]) or, when the body is larger or
//! slower than that, says `Connection: close` so no client reuses the connection. HTTP/2 resets
//! the stream instead and needs neither.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use bytes::{Buf, Bytes, BytesMut};
use futures::future::BoxFuture;
use http::{HeaderMap, HeaderValue, Response, Version, header};
use http_body::Body;
use http_body_util::{BodyExt, Full};

/// The most an early answer drains of a request body to keep the connection usable.
pub(crate) const DRAIN_MAX_BYTES: usize = 64 * 1024;
/// The longest an early answer waits to drain a request body.
pub(crate) const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

/// Whether an answer to a request with this version and body must deal with the unread body.
pub(crate) fn needs_care<B: Body>(version: Version, body: &B) -> bool {
    version < Version::HTTP_2 && !body.is_end_stream()
}

/// Reads and drops up to [`DRAIN_MAX_BYTES`] of `body` within [`DRAIN_TIMEOUT`]. Whether the body
/// ended.
async fn drain<B: Body>(body: B) -> bool {
    let read = async {
        let mut body = std::pin::pin!(body);
        let mut seen = 0usize;
        loop {
            match body.frame().await {
                None => return true,
                Some(Err(_)) => return false,
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        seen = seen.saturating_add(data.remaining());
                        if seen > DRAIN_MAX_BYTES {
                            return false;
                        }
                    }
                }
            }
        }
    };
    tokio::time::timeout(DRAIN_TIMEOUT, read)
        .await
        .unwrap_or(false)
}

/// Says `Connection: close` on an HTTP/1 answer whose request body was not fully read.
pub(crate) fn close<B>(version: Version, response: &mut Response<B>) {
    if version < Version::HTTP_2 {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
}

/// An answer made before the request body was read: drains a small body, or closes the
/// connection after the answer. [`EarlyAnswer`] is the same as a nameable future.
pub(crate) async fn answer<B: Body, R>(
    version: Version,
    body: B,
    mut response: Response<R>,
) -> Response<R> {
    if needs_care(version, &body) && !drain(body).await {
        close(version, &mut response);
    }
    response
}

/// A layer's own answer made before the request body was read, as a future of a nameable type
/// for a layer's response future: ready at once when the body needs no care (HTTP/2, or a body
/// already at its end), else [`answer`] (drain a small body, or `Connection: close`), boxed.
#[must_use = "futures do nothing unless polled"]
pub(crate) struct EarlyAnswer {
    state: EarlyState,
}

enum EarlyState {
    /// Boxed: inline, it would make every response future of the crate, moved at each layer of
    /// a stack, a response's size larger; the layer's own answers are the rare path.
    Ready(Option<Box<Response<Full<Bytes>>>>),
    Draining(BoxFuture<'static, Response<Full<Bytes>>>),
}

impl EarlyAnswer {
    /// Answers a request of `version` whose `body` was not read with `response`.
    pub(crate) fn new<B>(version: Version, body: B, response: Response<Full<Bytes>>) -> Self
    where
        B: Body + Send + 'static,
        B::Data: Send,
    {
        let state = if needs_care(version, &body) {
            EarlyState::Draining(Box::pin(answer(version, body, response)))
        } else {
            EarlyState::Ready(Some(Box::new(response)))
        };
        Self { state }
    }
}

impl Future for EarlyAnswer {
    type Output = Response<Full<Bytes>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            EarlyState::Ready(response) => Poll::Ready(
                *response
                    .take()
                    .expect("EarlyAnswer polled after completion"),
            ),
            EarlyState::Draining(future) => future.as_mut().poll(cx),
        }
    }
}

/// The `Content-Length` a request declares, if it declares one that parses.
pub(crate) fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// Why a refused body could not be read whole.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// Over the cap (declared or read).
    TooLarge,
    /// The body failed (the client reset the stream, a decoding error).
    Unreadable,
    /// Not complete within the time limit.
    TimedOut,
}

/// A body as far as it is there without waiting.
pub(crate) enum Taken {
    /// All of it (one data frame, then its end: what hyper hands on for a small request), or why
    /// it cannot be read.
    Whole(Result<Bytes, ReadError>),
    /// Its start; the rest is still to come (see [`read_rest`]).
    Started(BytesMut),
}

/// Takes what of `body` is there now, without waiting and without a timer: for `Bytes` data, a
/// whole body is taken without a copy. At most `cap` bytes.
#[inline]
pub(crate) fn take_now<B>(body: &mut B, cap: usize) -> Taken
where
    B: Body + Unpin,
    B::Data: Buf,
{
    let mut started = BytesMut::new();
    if body.is_end_stream() {
        return Taken::Whole(Ok(Bytes::new()));
    }
    let waker = futures::task::noop_waker_ref();
    let mut cx = std::task::Context::from_waker(waker);
    // Polled with a no-op waker: if it is not ready, the read goes on later with the task's own.
    match std::pin::Pin::new(&mut *body).poll_frame(&mut cx) {
        std::task::Poll::Pending => Taken::Started(started),
        std::task::Poll::Ready(None) => Taken::Whole(Ok(Bytes::new())),
        std::task::Poll::Ready(Some(Err(_))) => Taken::Whole(Err(ReadError::Unreadable)),
        std::task::Poll::Ready(Some(Ok(frame))) => {
            let Ok(mut data) = frame.into_data() else {
                return Taken::Started(started);
            };
            let len = data.remaining();
            if len > cap {
                return Taken::Whole(Err(ReadError::TooLarge));
            }
            let data = data.copy_to_bytes(len);
            if body.is_end_stream() {
                return Taken::Whole(Ok(data));
            }
            started.extend_from_slice(&data);
            Taken::Started(started)
        }
    }
}

/// Whether a declared length is over the cap.
fn over(declared: Option<u64>, cap: usize) -> bool {
    declared.is_some_and(|len| len > cap as u64)
}

/// Reads the body of a request with `headers`: at most `cap` bytes (a declared `Content-Length`
/// over it is refused before reading), within `timeout`. Holds at most `cap` bytes. A body that
/// is there whole already is taken without a timer (see [`take_now`]).
pub(crate) async fn read_bounded<B: Body<Data: Buf>>(
    body: B,
    headers: &HeaderMap,
    cap: usize,
    timeout: Duration,
) -> Result<Bytes, ReadError> {
    let declared = declared_length(headers);
    if over(declared, cap) {
        return Err(ReadError::TooLarge);
    }
    let mut body = std::pin::pin!(body);
    let started = match take_now(&mut body, cap) {
        Taken::Whole(read) => return read,
        Taken::Started(started) => started,
    };
    read_rest(body, started, declared, cap, timeout).await
}

/// Reads the rest of a body whose start is `started`, within the bounds of [`read_bounded`].
pub(crate) async fn read_rest<B>(
    body: B,
    mut collected: BytesMut,
    declared: Option<u64>,
    cap: usize,
    timeout: Duration,
) -> Result<Bytes, ReadError>
where
    B: Body,
    B::Data: Buf,
{
    if over(declared, cap) {
        return Err(ReadError::TooLarge);
    }
    let read = async {
        let mut body = std::pin::pin!(body);
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else {
                return Err(ReadError::Unreadable);
            };
            if let Ok(mut data) = frame.into_data() {
                let len = data.remaining();
                if collected.len().saturating_add(len) > cap {
                    return Err(ReadError::TooLarge);
                }
                // One allocation when the declared length is honest; never past the cap.
                let hint = declared
                    .map_or(len, |d| d as usize)
                    .max(collected.len() + len);
                collected.reserve(hint.min(cap).saturating_sub(collected.len()));
                while data.has_remaining() {
                    let chunk = data.chunk();
                    collected.extend_from_slice(chunk);
                    let n = chunk.len();
                    data.advance(n);
                }
            }
        }
        Ok(collected.freeze())
    };
    tokio::time::timeout(timeout, read)
        .await
        .unwrap_or(Err(ReadError::TimedOut))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::StreamBody;

    #[tokio::test]
    async fn small_bodies_are_drained_and_keep_the_connection() {
        let response = answer(
            Version::HTTP_11,
            Full::new(Bytes::from_static(b"{}")),
            Response::new(()),
        )
        .await;
        assert!(response.headers().get(header::CONNECTION).is_none());
    }

    #[tokio::test]
    async fn large_or_stalled_bodies_close_http1_but_not_http2() {
        let big = Full::new(Bytes::from(vec![b'x'; DRAIN_MAX_BYTES + 1]));
        let response = answer(Version::HTTP_11, big, Response::new(())).await;
        assert_eq!(response.headers()[header::CONNECTION], "close");

        tokio::time::pause();
        let stalled = StreamBody::new(futures::stream::pending::<
            Result<http_body::Frame<Bytes>, std::convert::Infallible>,
        >());
        let response = answer(Version::HTTP_11, stalled, Response::new(())).await;
        assert_eq!(response.headers()[header::CONNECTION], "close");

        let big = Full::new(Bytes::from(vec![b'x'; DRAIN_MAX_BYTES + 1]));
        let response = answer(Version::HTTP_2, big, Response::new(())).await;
        assert!(response.headers().get(header::CONNECTION).is_none());
    }

    #[tokio::test]
    async fn early_answers_wait_only_for_an_http1_body_still_to_come() {
        let response = || Response::new(Full::new(Bytes::from_static(b"{}")));
        let big = || Full::new(Bytes::from(vec![b'x'; DRAIN_MAX_BYTES + 1]));
        for (version, body, waits) in [
            (Version::HTTP_2, big(), false),
            (Version::HTTP_11, Full::new(Bytes::new()), false),
            (Version::HTTP_11, big(), true),
        ] {
            let answer = EarlyAnswer::new(version, body, response());
            let waited = matches!(answer.state, EarlyState::Draining(_));
            assert_eq!(waited, waits, "{version:?}");
            let answer = answer.await;
            assert_eq!(answer.headers().contains_key(header::CONNECTION), waits);
        }
    }

    #[tokio::test]
    async fn bounded_reads_stop_at_the_cap_and_the_deadline() {
        let body = || Full::new(Bytes::from_static(b"0123456789"));
        let declaring = |len: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_LENGTH, len.parse().unwrap());
            headers
        };
        let none = HeaderMap::new();
        let timeout = Duration::from_secs(1);
        assert_eq!(
            read_bounded(body(), &declaring("10"), 10, timeout)
                .await
                .unwrap(),
            "0123456789"
        );
        assert_eq!(
            read_bounded(body(), &none, 9, timeout).await,
            Err(ReadError::TooLarge)
        );
        assert_eq!(
            read_bounded(body(), &declaring("11"), 10, timeout).await,
            Err(ReadError::TooLarge)
        );
        tokio::time::pause();
        let stalled = StreamBody::new(futures::stream::pending::<
            Result<http_body::Frame<Bytes>, std::convert::Infallible>,
        >());
        assert_eq!(
            read_bounded(stalled, &none, 10, timeout).await,
            Err(ReadError::TimedOut)
        );
    }
}
