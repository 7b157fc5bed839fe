//! One scanner for the answers the layers inspect: a JSON answer whole, or an SSE stream event by
//! event, each handed to an [`Inspect`] that passes, drops or rewrites it, or holds it until a
//! future decides.
//!
//! SSE is framed as a client frames it ([`sse`]): lines end at CRLF, LF or CR, and the stream may
//! start with a byte order mark. An inspector sees JSON as the client's parser will read it, after
//! unescaping, because it parses with serde; [`may_name`] is the only pre-filter, and it skips a
//! message only when no spelling of the member can be in it.

use std::{
    collections::VecDeque,
    fmt,
    pin::Pin,
    task::{Context, Poll, ready},
};

use bytes::{Bytes, BytesMut};
use futures::future::{BoxFuture, FutureExt};
use http::{HeaderMap, header};
use http_body::{Body, Frame};

use super::sse;

/// A name the scanners look for in JSON text (a member name or a string), and the byte of it
/// they search for: one that JSON-RPC messages seldom hold (a slash, a capital).
#[derive(Debug)]
pub(crate) struct Name {
    text: &'static [u8],
    anchor: usize,
}

impl Name {
    /// `text`, searched for by its byte at `anchor`.
    pub(crate) const fn new(text: &'static [u8], anchor: usize) -> Self {
        assert!(anchor < text.len());
        Self { text, anchor }
    }

    /// The byte searched for.
    #[inline]
    fn anchor(&self) -> u8 {
        self.text[self.anchor]
    }

    /// Whether `bytes` hold the name where `bytes[at]` is its anchor.
    fn is_at(&self, bytes: &[u8], at: usize) -> bool {
        at >= self.anchor && bytes[at - self.anchor..].starts_with(self.text)
    }
}

/// Whether JSON text `bytes` may hold `name` in some spelling. JSON can spell a character other
/// than as itself only with a backslash escape, so a text with no backslash holds `name` only
/// where its bytes appear as they are.
#[inline] // into callers with a constant name
pub(crate) fn may_name(bytes: &[u8], name: &Name) -> bool {
    // `named` for one name, as its own loop: called for every SSE event an inspector sees.
    let anchor = name.anchor();
    let mut from = 0;
    while let Some(offset) = find2(b'\\', anchor, &bytes[from..]) {
        let at = from + offset;
        if bytes[at] == b'\\' || name.is_at(bytes, at) {
            return true;
        }
        from = at + 1;
    }
    false
}

/// Which of `names` (all with the same anchor byte, at most 32) JSON text `bytes` may hold in some
/// spelling, as bits (bit `i` for `names[i]`), in one pass; every bit when it has a backslash.
#[inline] // into callers with constant names: their comparisons need no call to `memcmp`
pub(crate) fn named(bytes: &[u8], names: &[Name]) -> u32 {
    let Some(first) = names.first() else {
        return 0;
    };
    debug_assert!(names.len() <= 32 && names.iter().all(|n| n.anchor() == first.anchor()));
    let all = u32::MAX >> (32 - names.len());
    let anchor = first.anchor();
    let mut found = 0;
    // One search call per hit rather than an iterator: most texts have none or one, and the
    // iterator's set-up costs more than the search of a short text.
    let mut from = 0;
    while let Some(offset) = find2(b'\\', anchor, &bytes[from..]) {
        let at = from + offset;
        if bytes[at] == b'\\' {
            return all;
        }
        for (i, name) in names.iter().enumerate() {
            if name.is_at(bytes, at) {
                found |= 1 << i;
            }
        }
        from = at + 1;
    }
    found
}

/// The first position of `a` or `b` in `bytes`, as `memchr::memchr2` finds it: on x86-64 with
/// AVX2 by its searcher directly, without the call through a function pointer that picks one
/// (the set-up costs more than the search of the short texts scanned here).
#[inline]
fn find2(a: u8, b: u8, bytes: &[u8]) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    if let Some(two) = memchr::arch::x86_64::avx2::memchr::Two::new(a, b) {
        return two.find(bytes);
    }
    memchr::memchr2(a, b, bytes)
}

/// How an answer is framed, from its `Content-Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// `application/json`: one message, the whole body.
    Json,
    /// `text/event-stream`: a message per event.
    Sse,
}

/// The framing of a body with these headers, if it is one the layers read.
pub(crate) fn framing(headers: &HeaderMap) -> Option<Framing> {
    framing_of(headers.get(header::CONTENT_TYPE)?.as_bytes())
}

/// What a scan needs of an answer's headers, in one look: its framing (as [`framing`] reads it)
/// and whether they declare a `Content-Length` (which a scan that may rewrite the answer removes).
pub(crate) fn framing_and_length(headers: &HeaderMap) -> (Option<Framing>, bool) {
    // Answers have a few headers: one walk through them costs less than two hashed lookups.
    if headers.keys_len() > 8 {
        return (
            framing(headers),
            headers.contains_key(header::CONTENT_LENGTH),
        );
    }
    let (mut content_type, mut length) = (None, false);
    for (name, value) in headers {
        if *name == header::CONTENT_TYPE {
            // The first value, as `HeaderMap::get` gives it.
            content_type = content_type.or(Some(value));
        } else if *name == header::CONTENT_LENGTH {
            length = true;
        }
    }
    (content_type.and_then(|v| framing_of(v.as_bytes())), length)
}

/// The framing a `Content-Type` value names, if it is one the layers read.
fn framing_of(content_type: &[u8]) -> Option<Framing> {
    let starts = |prefix: &[u8]| {
        content_type.len() >= prefix.len()
            && content_type[..prefix.len()].eq_ignore_ascii_case(prefix)
    };
    // The lower-case spelling every server sends first (a plain comparison), then any other.
    if content_type.starts_with(b"text/event-stream") || starts(b"text/event-stream") {
        Some(Framing::Sse)
    } else if starts(b"application/json") {
        Some(Framing::Json)
    } else {
        None
    }
}

/// What an [`Inspect`] decides about one message.
pub(crate) enum Verdict {
    /// Pass it on as it came.
    Pass,
    /// Drop it (an SSE event; a JSON answer is never dropped).
    Drop,
    /// Pass this JSON instead (in an SSE event, with the event's other fields kept).
    #[cfg_attr(not(feature = "request-state"), allow(dead_code))] // the state layer's
    Replace(Vec<u8>),
    /// Wait for `decision`: `true` passes the message, `false` passes `instead` (JSON, framed
    /// like the message) or nothing.
    Wait {
        decision: BoxFuture<'static, bool>,
        instead: Option<Vec<u8>>,
    },
}

/// What a scanned answer is inspected for.
pub(crate) trait Inspect: Send {
    /// Whether the message whose raw bytes (an SSE event with its fields, or the JSON body) are
    /// `raw` may need [`inspect`](Self::inspect); `false` passes it unparsed. It must be `true`
    /// whenever some spelling of what the inspector reads can be in `raw` (see [`may_name`]).
    fn concerns(&self, raw: &[u8]) -> bool;

    /// Decides about one message, `json` being its JSON text (an SSE event's data).
    fn inspect(&mut self, json: &[u8]) -> Verdict;

    /// Whether every message after the last one inspected passes unscanned (the final answer was
    /// seen).
    fn done(&self) -> bool;

    /// Whether a message that outgrows the scan's cap ends the stream (fail closed) rather than
    /// passing, with the rest, unscanned.
    fn ends_when_too_large(&self) -> bool;
}

/// An inspected answer's body state: bytes pass on message by message, a message that concerns
/// the inspector waits for its verdict.
///
/// `I` is last, so a box of a `Scan<T>` coerces to a box of `Scan<dyn Inspect>`.
pub(crate) struct Scan<I: ?Sized> {
    framing: Framing,
    /// Most bytes held while looking for the end of a message.
    cap: usize,
    /// What is held back; `None` until a frame cannot pass on as it came (boxed: most answers
    /// never need it, and the scan is then small to make and move).
    held: Option<Box<Held>>,
    /// Everything from here on passes unscanned.
    passthrough: bool,
    /// The stream was ended by the scan (a message too large for an inspector that fails
    /// closed): nothing more goes out.
    closed: bool,
    inner_done: bool,
    /// Nothing has been handled yet: the next SSE event may start with a byte order mark.
    at_start: bool,
    inspector: I,
}

/// The bytes and messages a [`Scan`] holds back.
#[derive(Default)]
struct Held {
    /// The start of a message whose end has not come yet.
    buf: BytesMut,
    /// What goes out next, in order.
    out: VecDeque<Frame<Bytes>>,
    /// The message waiting for a verdict.
    pending: Option<Pending>,
}

/// A message waiting for its verdict.
struct Pending {
    decision: BoxFuture<'static, bool>,
    message: Bytes,
    instead: Option<Bytes>,
}

impl<I: ?Sized> fmt::Debug for Scan<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scan")
            .field("framing", &self.framing)
            .field("buffered", &self.held.as_ref().map_or(0, |h| h.buf.len()))
            .field("passthrough", &self.passthrough)
            .finish_non_exhaustive()
    }
}

impl<I> Scan<I> {
    /// A scan of a body framed as `framing`, holding at most `cap` bytes of one message.
    pub(crate) fn new(framing: Framing, cap: usize, inspector: I) -> Self {
        Self {
            framing,
            cap,
            held: None,
            passthrough: false,
            closed: false,
            inner_done: false,
            at_start: true,
            inspector,
        }
    }

    /// The inspector.
    pub(crate) fn inspector(&self) -> &I {
        &self.inspector
    }

    /// Sets the framing (when it is known only once the answer came).
    pub(crate) fn set_framing(&mut self, framing: Framing) {
        self.framing = framing;
    }
}

impl<I: Inspect + ?Sized> Scan<I> {
    fn held(&mut self) -> &mut Held {
        self.held.get_or_insert_with(Box::default)
    }

    /// The message as it goes out: SSE events as they came, JSON as the whole body.
    fn handle(&mut self, message: Bytes) {
        let at_start = std::mem::replace(&mut self.at_start, false);
        if !self.inspector.concerns(&message) {
            self.held().out.push_back(Frame::data(message));
            return;
        }
        let (raw, json) = match self.framing {
            Framing::Sse => {
                let raw = match message.strip_prefix(sse::BOM) {
                    Some(rest) if at_start => rest,
                    _ => &message[..],
                };
                (raw, sse::data(raw))
            }
            Framing::Json => (&message[..], message.to_vec()),
        };
        let framing = self.framing;
        let frame = |json: Vec<u8>| match framing {
            Framing::Sse => Bytes::from(sse::with_data(raw, &json)),
            Framing::Json => Bytes::from(json),
        };
        let verdict = self.inspector.inspect(&json);
        let out = match verdict {
            Verdict::Pass => Some(message.clone()),
            Verdict::Drop => None,
            Verdict::Replace(json) => Some(frame(json)),
            Verdict::Wait { decision, instead } => {
                let instead = instead.map(frame);
                self.held().pending = Some(Pending {
                    decision,
                    message,
                    instead,
                });
                return;
            }
        };
        if let Some(out) = out {
            self.held().out.push_back(Frame::data(out));
        }
    }

    /// Whether `data`, a frame that came with nothing held, can pass on as it came: whole messages
    /// that do not concern the inspector.
    #[inline(always)]
    fn passes_whole<B: Body>(&self, data: &Bytes, body: &Pin<&mut B>) -> bool {
        let whole = match self.framing {
            Framing::Sse => sse::ends_an_event(data),
            Framing::Json => body.is_end_stream(),
        };
        whole && !self.inspector.concerns(data)
    }

    /// Handles every complete message held (or the whole JSON body once it ended).
    fn drain(&mut self) {
        loop {
            let Some(held) = &mut self.held else {
                return;
            };
            if held.pending.is_some() || held.buf.is_empty() || self.closed {
                return;
            }
            if self.passthrough {
                let rest = held.buf.split().freeze();
                held.out.push_back(Frame::data(rest));
                return;
            }
            let end = match self.framing {
                Framing::Sse => sse::event_end(&held.buf),
                Framing::Json => None,
            };
            match end {
                Some(end) => {
                    let message = held.buf.split_to(end).freeze();
                    self.handle(message);
                    self.passthrough |= self.inspector.done();
                }
                None if self.inner_done => {
                    let rest = held.buf.split().freeze();
                    self.handle(rest);
                    self.passthrough |= self.inspector.done();
                }
                None if held.buf.len() > self.cap => {
                    if self.inspector.ends_when_too_large() {
                        held.buf.clear();
                        self.closed = true;
                    } else {
                        self.passthrough = true;
                    }
                }
                None => return,
            }
        }
    }

    fn holds_nothing(&self) -> bool {
        self.held.as_ref().is_none_or(|held| held.buf.is_empty())
    }

    /// Polls the scan over `body`.
    pub(crate) fn poll_frame<B>(
        &mut self,
        mut body: Pin<&mut B>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>>
    where
        B: Body<Data = Bytes>,
    {
        // The common case, nothing held back, kept apart from the loop of `poll_held` (larger to
        // set up): a frame that passes on as it came goes out at once.
        if self.held.is_none() && !self.closed && !self.inner_done {
            match ready!(body.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if self.passthrough => {
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    Ok(data) if self.passes_whole(&data, &body) => {
                        self.at_start = false;
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    Ok(data) => self.hold_data(&data),
                    Err(frame) => self.hold_trailers(frame),
                },
                Some(Err(error)) => return Poll::Ready(Some(Err(error))),
                None => {
                    // Nothing held: nothing more to send.
                    self.inner_done = true;
                    return Poll::Ready(None);
                }
            }
        }
        self.poll_held(body, cx)
    }

    /// A data frame that cannot pass on as it came: held, and every message it completes handled.
    fn hold_data(&mut self, data: &Bytes) {
        self.held().buf.extend_from_slice(data);
        self.drain();
    }

    /// Trailers: whatever is held goes first, unscanned, and the rest passes unscanned.
    fn hold_trailers(&mut self, frame: Frame<Bytes>) {
        self.passthrough = true;
        let held = self.held();
        if !held.buf.is_empty() {
            let rest = held.buf.split().freeze();
            held.out.push_back(Frame::data(rest));
        }
        held.out.push_back(frame);
    }

    /// [`poll_frame`](Self::poll_frame) once something is held back (or the body ended).
    #[inline(never)]
    fn poll_held<B>(
        &mut self,
        mut body: Pin<&mut B>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>>
    where
        B: Body<Data = Bytes>,
    {
        loop {
            if let Some(held) = &mut self.held {
                if let Some(frame) = held.out.pop_front() {
                    return Poll::Ready(Some(Ok(frame)));
                }
                if let Some(pending) = &mut held.pending {
                    let yes = ready!(pending.decision.poll_unpin(cx));
                    let pending = held.pending.take().expect("pending message");
                    let send = if yes {
                        Some(pending.message)
                    } else {
                        pending.instead
                    };
                    if let Some(send) = send {
                        held.out.push_back(Frame::data(send));
                    }
                    self.passthrough |= self.inspector.done();
                    self.drain();
                    continue;
                }
            }
            if self.closed {
                return Poll::Ready(None);
            }
            if self.inner_done {
                if self.holds_nothing() {
                    return Poll::Ready(None);
                }
                self.drain();
                continue;
            }
            match ready!(body.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if self.passthrough && self.holds_nothing() => {
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    Ok(data) if self.holds_nothing() && self.passes_whole(&data, &body) => {
                        self.at_start = false;
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    Ok(data) => self.hold_data(&data),
                    Err(frame) => self.hold_trailers(frame),
                },
                Some(Err(error)) => return Poll::Ready(Some(Err(error))),
                None => self.inner_done = true,
            }
        }
    }

    /// Whether nothing more will come.
    pub(crate) fn is_end_stream(&self) -> bool {
        let held_nothing = self.held.as_ref().is_none_or(|held| {
            held.buf.is_empty() && held.out.is_empty() && held.pending.is_none()
        });
        (self.inner_done || self.closed) && held_nothing
    }
}

/// The scan of an SSE body arriving as `frames`, passing every event: what went out, and the data
/// of each event inspected (for the fuzz target; every frame is ready, so it polls without a
/// runtime).
pub(crate) fn events_of(frames: &[&[u8]]) -> (Vec<u8>, Vec<Vec<u8>>) {
    /// Every event's data, each passed on.
    struct Collect(Vec<Vec<u8>>);

    impl Inspect for Collect {
        fn concerns(&self, _: &[u8]) -> bool {
            true
        }
        fn inspect(&mut self, json: &[u8]) -> Verdict {
            self.0.push(json.to_vec());
            Verdict::Pass
        }
        fn done(&self) -> bool {
            false
        }
        fn ends_when_too_large(&self) -> bool {
            true
        }
    }

    let mut frames: VecDeque<Bytes> = frames.iter().map(|f| Bytes::copy_from_slice(f)).collect();
    let mut body = http_body_util::StreamBody::new(futures::stream::poll_fn(move |_| {
        Poll::Ready(
            frames
                .pop_front()
                .map(|f| Ok::<_, std::convert::Infallible>(Frame::data(f))),
        )
    }));
    let mut scan = Scan::new(Framing::Sse, usize::MAX, Collect(Vec::new()));
    let mut cx = Context::from_waker(futures::task::noop_waker_ref());
    let mut out = Vec::new();
    while let Poll::Ready(Some(Ok(frame))) = scan.poll_frame(Pin::new(&mut body), &mut cx) {
        if let Ok(data) = frame.into_data() {
            out.extend_from_slice(&data);
        }
    }
    (out, scan.inspector.0)
}

/// Runs `scan` over a body of `frames`; what comes out.
#[cfg(test)]
pub(crate) async fn run<I: Inspect>(scan: Scan<I>, frames: &[&[u8]]) -> Vec<u8> {
    use http_body_util::{BodyExt, StreamBody};

    pin_project_lite::pin_project! {
        struct Scanned<B, I> { #[pin] body: B, scan: Scan<I> }
    }

    impl<B: Body<Data = Bytes>, I: Inspect> Body for Scanned<B, I> {
        type Data = Bytes;
        type Error = B::Error;
        fn poll_frame(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
            let this = self.project();
            this.scan.poll_frame(this.body, cx)
        }
    }

    let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = frames
        .iter()
        .map(|f| Ok(Frame::data(Bytes::copy_from_slice(f))))
        .collect();
    let body = StreamBody::new(futures::stream::iter(frames));
    let body = Scanned { body, scan };
    body.collect().await.unwrap().to_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drops every event that names `secret`; records the messages it saw.
    struct DropSecret {
        seen: Vec<String>,
    }

    const SECRET: Name = Name::new(b"secret", 0);

    impl Inspect for DropSecret {
        fn concerns(&self, raw: &[u8]) -> bool {
            may_name(raw, &SECRET)
        }
        fn inspect(&mut self, json: &[u8]) -> Verdict {
            let value: serde_json::Value = match serde_json::from_slice(json) {
                Ok(value) => value,
                Err(_) => return Verdict::Drop,
            };
            self.seen.push(value.to_string());
            if value.get("secret").is_some() {
                Verdict::Drop
            } else {
                Verdict::Pass
            }
        }
        fn done(&self) -> bool {
            false
        }
        fn ends_when_too_large(&self) -> bool {
            true
        }
    }

    async fn scan(frames: &[&[u8]], cap: usize) -> Vec<u8> {
        let scan = Scan::new(Framing::Sse, cap, DropSecret { seen: Vec::new() });
        run(scan, frames).await
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn events_are_dropped_in_every_framing_and_spelling() {
        let keep = b"data: {\"ok\":1}";
        for end in [&b"\n"[..], b"\r\n", b"\r"] {
            let event = |data: &[u8]| [data, end, end].concat();
            for secret in [
                &br#"data: {"secret":1}"#[..],
                br#"data: {"s\u0065cret":1}"#,
                b"data:{\"secret\"\ndata::1}",
            ] {
                let secret = if end == b"\n" {
                    secret.to_vec()
                } else {
                    // The multi-line event in this framing.
                    secret.split(|b| *b == b'\n').collect::<Vec<_>>().join(end)
                };
                for bom in [&b""[..], sse::BOM] {
                    let stream = [bom, &event(&secret), &event(keep)].concat();
                    // Whole, and split at every byte.
                    let mut splits = vec![vec![&stream[..]]];
                    for i in 1..stream.len() {
                        splits.push(vec![&stream[..i], &stream[i..]]);
                    }
                    for frames in splits {
                        let out = block_on(scan(&frames, 1 << 16));
                        let text = String::from_utf8_lossy(&out);
                        assert!(!text.contains("ecret"), "{frames:?} -> {text:?}");
                        assert!(text.contains("{\"ok\":1}"), "{frames:?} -> {text:?}");
                    }
                }
            }
        }
    }

    /// Hands every event's data to a list, passing each on.
    struct Collect(std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>);

    impl Inspect for Collect {
        fn concerns(&self, _: &[u8]) -> bool {
            true
        }
        fn inspect(&mut self, json: &[u8]) -> Verdict {
            self.0.lock().unwrap().push(json.to_vec());
            Verdict::Pass
        }
        fn done(&self) -> bool {
            false
        }
        fn ends_when_too_large(&self) -> bool {
            true
        }
    }

    /// Random streams of valid SSE lines, each ended by CRLF, LF or CR, cut into random frames:
    /// the scan sees the events, with the data, that an SSE client (`sse-stream`, which rmcp's
    /// client uses) sees, and passes every byte on as it came.
    #[test]
    fn events_split_as_an_sse_client_splits_them() {
        use futures::StreamExt;
        // (`sse-stream` refuses a line without a colon, and a repeated `id`, `event` or `retry`
        // in one event: those come once, at the start of the stream, where no line end before
        // them can join two events into one.)
        let lines: [&[u8]; 5] = [
            b"data: {\"a\":1}",
            b"data:{\"b\":2}",
            b"data:",
            b"data:  x",
            b": a comment",
        ];

        let ends: [&[u8]; 3] = [b"\n", b"\r\n", b"\r"];
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for _ in 0..300 {
            let mut stream = Vec::new();
            for first in [&b"id: 7"[..], b"event: message", b"retry: 5"] {
                stream.extend_from_slice(first);
                stream.extend_from_slice(ends[next(ends.len())]);
            }
            for _ in 0..next(12) + 1 {
                for _ in 0..next(4) {
                    stream.extend_from_slice(lines[next(lines.len())]);
                    stream.extend_from_slice(ends[next(ends.len())]);
                }
                stream.extend_from_slice(ends[next(ends.len())]);
            }
            stream.extend_from_slice(b"\n\n");
            let mut cuts: Vec<usize> = (0..next(6)).map(|_| next(stream.len())).collect();
            cuts.sort_unstable();
            cuts.dedup();
            let mut frames: Vec<&[u8]> = Vec::new();
            let mut from = 0;
            for cut in cuts.into_iter().chain([stream.len()]) {
                if cut > from {
                    frames.push(&stream[from..cut]);
                    from = cut;
                }
            }
            let seen = std::sync::Arc::default();
            let scan = Scan::new(Framing::Sse, 1 << 16, Collect(std::sync::Arc::clone(&seen)));
            let out = block_on(run(scan, &frames));
            assert_eq!(out, stream, "passed on as it came");
            let ours: Vec<String> = seen
                .lock()
                .unwrap()
                .iter()
                .filter(|data: &&Vec<u8>| !data.is_empty())
                .map(|data| String::from_utf8(data.clone()).unwrap())
                .collect();
            let chunks: Vec<Result<Bytes, std::convert::Infallible>> = frames
                .iter()
                .map(|f| Ok(Bytes::copy_from_slice(f)))
                .collect();
            let client: Vec<String> = block_on(
                sse_stream::SseStream::from_bytes_stream(futures::stream::iter(chunks))
                    .map(|event| event.unwrap().data.unwrap_or_default())
                    .filter(|data| futures::future::ready(!data.is_empty()))
                    .collect(),
            );
            assert_eq!(ours, client, "{:?}", String::from_utf8_lossy(&stream));
        }
    }

    #[test]
    fn a_message_too_large_ends_a_stream_that_fails_closed() {
        let big = format!("data: {{\"pad\":\"{}\",\"secret\":1}}\n\n", "x".repeat(100));
        let out = block_on(scan(&[big.as_bytes()], 64));
        assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
    }

    #[test]
    fn may_name_sees_every_spelling() {
        let name = Name::new(b"taskId", 4);
        assert!(may_name(br#"{"taskId":1}"#, &name));
        assert!(may_name(br#"{"task\u0049d":1}"#, &name));
        assert!(may_name(br#"{"x":"\n"}"#, &name));
        assert!(!may_name(br#"{"taskid":1}"#, &name));
        assert!(!may_name(br#"{"Id":1,"taskI":2}"#, &name));
        assert!(!may_name(b"", &name));
        let methods = [Name::new(b"tasks/", 5), Name::new(b"tools/call", 5)];
        assert_eq!(named(br#"{"method":"tools/call"}"#, &methods), 0b10);
        assert_eq!(
            named(br#"{"method":"tasks/get","x":"tools/call"}"#, &methods),
            0b11
        );
        assert_eq!(named(br#"{"method":"/tasks","x":"tools/"}"#, &methods), 0);
        assert_eq!(named(br#"{"method":"tasks\/get"}"#, &methods), 0b11);
        assert_eq!(named(br#"/"#, &methods), 0);
        // `may_name` answers as `named` does for the one name, on every text of up to five
        // bytes from the name's own bytes, a backslash and one other.
        let alphabet = *b"taskId\\x";
        let mut texts = vec![Vec::new()];
        for len in 1..=5 {
            for mut n in 0..alphabet.len().pow(len) {
                let mut text = Vec::new();
                for _ in 0..len {
                    text.push(alphabet[n % alphabet.len()]);
                    n /= alphabet.len();
                }
                texts.push(text);
            }
        }
        texts.extend([
            b"taskId".to_vec(),
            b"xtaskIdx".to_vec(),
            b"IdtaskI".to_vec(),
        ]);
        for text in texts {
            let one = std::slice::from_ref(&name);
            assert_eq!(may_name(&text, &name), named(&text, one) != 0, "{text:?}");
        }
    }

    #[test]
    fn find2_finds_the_first_of_two_bytes_in_texts_of_every_length() {
        for len in 0..100 {
            let mut text = vec![b'x'; len];
            assert_eq!(find2(b'\\', b'I', &text), None);
            for first in 0..len {
                for (at, byte) in [(first, b'\\'), (first, b'I')] {
                    text[at] = byte;
                    if at + 1 < len {
                        text[len - 1] = b'I';
                    }
                    let naive = text.iter().position(|&c| c == b'\\' || c == b'I');
                    assert_eq!(find2(b'\\', b'I', &text), naive, "{len} {at}");
                    text.fill(b'x');
                }
            }
        }
    }

    #[test]
    fn one_look_at_the_headers_reads_them_as_two_lookups_do() {
        use http::{HeaderValue, header::HeaderName};
        let (json, sse) = ("application/json", "Text/Event-Stream; charset=utf-8");
        let cases: [&[(&str, &str)]; 7] = [
            &[],
            &[("content-type", json)],
            &[("content-length", "12"), ("content-type", sse)],
            &[("content-type", "text/plain"), ("content-type", json)],
            &[("cache-control", "no-cache"), ("content-length", "1")],
            &[("x-a", "1"), ("content-type", sse), ("content-type", json)],
            &[("content-type", "text/html")],
        ];
        for case in cases {
            for padding in [0, 8] {
                let mut headers = HeaderMap::new();
                for i in 0..padding {
                    let name = HeaderName::try_from(format!("x-pad-{i}")).unwrap();
                    headers.insert(name, HeaderValue::from_static("1"));
                }
                for (name, value) in case {
                    let value = HeaderValue::from_static(value);
                    headers.append(HeaderName::from_static(name), value);
                }
                let expected = (
                    framing(&headers),
                    headers.contains_key(header::CONTENT_LENGTH),
                );
                assert_eq!(framing_and_length(&headers), expected, "{headers:?}");
            }
        }
    }
}
