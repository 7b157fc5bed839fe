//! Event ids of a bound session's SSE answers, tagged as they pass so that a later
//! `Last-Event-ID` can be checked against its session.

use std::{collections::VecDeque, fmt, sync::Arc};

use bytes::Bytes;
use http_body::Frame;

use crate::store::SessionKey;

use super::*;

/// Longest event id value the tagger holds to tag, in bytes; a longer one passes untagged (and
/// cannot be resumed from).
pub(crate) const MAX_EVENT_ID_LEN: usize = 1024;

/// Where the tagger is in the current line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Line {
    /// At the start of a line (after the byte order mark, at the stream's start).
    Start,
    /// Held `i`.
    I,
    /// Held `id`.
    Id,
    /// Held `id:` and the value so far.
    Value,
    /// In a line that is not an `id` field, or is passed untagged.
    Other,
}

pub(super) const BOM: &[u8; 3] = b"\xEF\xBB\xBF";

impl fmt::Debug for EventIdKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EventIdKey(..)")
    }
}

/// Tags the `id` fields of one SSE stream, as its chunks pass: everything else passes as it
/// came (slices of the chunks, no copy); only `id` lines are held, up to
/// [`MAX_EVENT_ID_LEN`].
pub(crate) struct IdTagger {
    key: Arc<EventIdKey>,
    session: SessionKey,
    line: Line,
    /// Bytes of the byte order mark seen at the stream's start; `None` once past it.
    bom: Option<usize>,
    held: Vec<u8>,
    /// What goes out next, in order.
    pub(crate) out: VecDeque<Frame<Bytes>>,
}

impl fmt::Debug for IdTagger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdTagger")
            .field("line", &self.line)
            .field("held", &self.held.len())
            .finish_non_exhaustive()
    }
}

impl IdTagger {
    pub(crate) fn new(key: Arc<EventIdKey>, session: SessionKey) -> Self {
        Self {
            key,
            session,
            line: Line::Start,
            bom: Some(0),
            held: Vec::new(),
            out: VecDeque::new(),
        }
    }

    fn emit(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            self.out.push_back(Frame::data(bytes));
        }
    }

    /// Sends what is held as it came (a line that turned out not to be a tagged `id`).
    fn release(&mut self) {
        let held = std::mem::take(&mut self.held);
        self.emit(Bytes::from(held));
    }

    /// The `id` line held is complete: sends it with its value tagged (an empty value, which
    /// resets the client's last event id, and one with a NUL, which clients ignore, untagged).
    fn seal_line(&mut self) {
        let raw = &self.held[3..];
        let value = raw.strip_prefix(b" ").unwrap_or(raw);
        if !value.is_empty() && value.len() <= MAX_EVENT_ID_LEN && !value.contains(&0) {
            let suffix = self.key.suffix(self.session, value);
            self.held.extend_from_slice(&suffix);
        }
        self.release();
    }

    /// Takes the next chunk of the stream.
    pub(crate) fn push(&mut self, data: Bytes) {
        // Start of the run of `data` that passes as it came, if one is open: not while a line
        // is held.
        let holding = matches!(self.line, Line::I | Line::Id | Line::Value);
        let mut run = (!holding).then_some(0);
        let mut i = 0;
        while i < data.len() {
            let byte = data[i];
            if let Some(seen) = self.bom {
                if self.line == Line::Start && byte == BOM[seen] {
                    // Part of the byte order mark: passes, and the first line starts after it.
                    self.bom = (seen + 1 < BOM.len()).then_some(seen + 1);
                    i += 1;
                    continue;
                }
                self.bom = None;
                if seen > 0 {
                    // A broken mark: the first line is not a field a client reads as `id`.
                    self.line = Line::Other;
                }
            }
            let end_of_line = byte == b'\n' || byte == b'\r';
            match self.line {
                Line::Other => {
                    // Skip to the end of the line.
                    match memchr::memchr2(b'\n', b'\r', &data[i..]) {
                        Some(at) => {
                            i += at + 1;
                            self.line = Line::Start;
                        }
                        None => i = data.len(),
                    }
                    continue;
                }
                Line::Value => {
                    let end = memchr::memchr2(b'\n', b'\r', &data[i..]).map(|at| i + at);
                    let value = &data[i..end.unwrap_or(data.len())];
                    // `id:`, a space, the value.
                    if self.held.len() + value.len() > 4 + MAX_EVENT_ID_LEN {
                        // Too long to hold: passes untagged, so it can never be resumed from.
                        self.release();
                        run = Some(i);
                        self.line = Line::Other;
                        continue;
                    }
                    self.held.extend_from_slice(value);
                    let Some(end) = end else {
                        break;
                    };
                    self.seal_line();
                    // The line's end passes with what follows.
                    run = Some(end);
                    i = end + 1;
                    self.line = Line::Start;
                    continue;
                }
                Line::Start if byte == b'i' => {
                    if let Some(start) = run.take() {
                        self.emit(data.slice(start..i));
                    }
                    self.held.reserve(64);
                    self.held.push(byte);
                    self.line = Line::I;
                }
                Line::Start => {
                    self.line = if end_of_line {
                        Line::Start
                    } else {
                        Line::Other
                    };
                }
                Line::I if byte == b'd' => {
                    self.held.push(byte);
                    self.line = Line::Id;
                }
                Line::Id if byte == b':' => {
                    self.held.push(byte);
                    self.line = Line::Value;
                }
                // `id` alone on its line: an empty id, passed untagged.
                Line::I | Line::Id => {
                    self.release();
                    run = Some(i);
                    self.line = if end_of_line {
                        Line::Start
                    } else {
                        Line::Other
                    };
                }
            }
            i += 1;
        }
        if let Some(start) = run {
            self.emit(data.slice(start..));
        }
    }

    /// A frame that is not data (trailers): what is held goes first, untagged.
    pub(crate) fn push_other(&mut self, frame: Frame<Bytes>) {
        self.release();
        self.line = Line::Other;
        self.out.push_back(frame);
    }

    /// The stream ended: an unfinished line (which a client discards) goes as it came.
    pub(crate) fn finish(&mut self) {
        self.release();
    }
}
