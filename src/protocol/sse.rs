//! Server-Sent Events framing, read as a client's SSE parser reads it (the WHATWG event-stream
//! rules): a line ends at CRLF, LF or CR; a blank line ends an event; the stream may start with a
//! byte order mark; a field is the text before the first colon (the whole line when there is
//! none), its value the rest less one leading space.

/// The UTF-8 byte order mark a stream may start with (its parser skips it).
pub(crate) const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The end of the first SSE event in `buf` (past its blank line), if it is complete.
///
/// A CR at the end of `buf` counts as a line end. If an LF follows it later, a client reads the
/// pair as one line end; here that LF then starts the next piece, where it is a blank line: an
/// empty event, passed on as it came, so both read the same events.
pub(crate) fn event_end(buf: &[u8]) -> Option<usize> {
    let mut line_start = 0;
    let mut at = 0;
    while let Some(found) = memchr::memchr2(b'\r', b'\n', &buf[at..]) {
        let end_of_line = at + found;
        let next = if buf[end_of_line] == b'\r' && buf.get(end_of_line + 1) == Some(&b'\n') {
            end_of_line + 2
        } else {
            end_of_line + 1
        };
        if end_of_line == line_start {
            return Some(next);
        }
        line_start = next;
        at = next;
    }
    None
}

/// Whether `frame`, with nothing before it held back, is whole events: it ends with a blank line
/// (two line ends in a row, in any of the three spellings).
pub(crate) fn ends_an_event(frame: &[u8]) -> bool {
    strip_line_end(frame).and_then(strip_line_end).is_some()
}

/// `bytes` less one line end (CRLF, LF or CR) at its end.
fn strip_line_end(bytes: &[u8]) -> Option<&[u8]> {
    // Byte comparisons rather than `strip_suffix`, which calls `memcmp`.
    match bytes.split_last()? {
        (b'\n', rest) => match rest.split_last() {
            Some((b'\r', before)) => Some(before),
            _ => Some(rest),
        },
        (b'\r', rest) => Some(rest),
        _ => None,
    }
}

/// The lines of an event, without their line ends.
fn lines(event: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = event;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        match memchr::memchr2(b'\r', b'\n', rest) {
            Some(i) => {
                let line = &rest[..i];
                let skip = if rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                rest = &rest[i + skip..];
                Some(line)
            }
            None => {
                let line = rest;
                rest = &[];
                Some(line)
            }
        }
    })
}

/// A line's field name and value.
fn field(line: &[u8]) -> (&[u8], &[u8]) {
    match memchr::memchr(b':', line) {
        Some(i) => {
            let value = &line[i + 1..];
            (&line[..i], value.strip_prefix(b" ").unwrap_or(value))
        }
        None => (line, &[]),
    }
}

/// The data of an SSE event (the JSON of an MCP message): its `data` fields, joined by LF. An
/// event starting a stream may start with a [`BOM`]: strip it first.
pub(crate) fn data(event: &[u8]) -> Vec<u8> {
    let mut data = Vec::new();
    let mut first = true;
    for line in lines(event) {
        let (name, value) = field(line);
        if name == b"data" {
            if !first {
                data.push(b'\n');
            }
            first = false;
            data.extend_from_slice(value);
        }
    }
    data
}

/// An SSE event carrying `json` as its data, with the other fields (`id`, `event`, `retry`,
/// comments) of `original` kept as they were, lines ended by LF.
pub(crate) fn with_data(original: &[u8], json: &[u8]) -> Vec<u8> {
    let mut event = Vec::with_capacity(original.len() + json.len());
    let mut wrote_data = false;
    for line in lines(original) {
        if line.is_empty() {
            continue;
        }
        if field(line).0 == b"data" {
            if !wrote_data {
                event.extend_from_slice(b"data: ");
                event.extend_from_slice(json);
                event.push(b'\n');
                wrote_data = true;
            }
            continue;
        }
        event.extend_from_slice(line);
        event.push(b'\n');
    }
    if !wrote_data {
        event.extend_from_slice(b"data: ");
        event.extend_from_slice(json);
        event.push(b'\n');
    }
    event.push(b'\n');
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_end_at_a_blank_line_in_every_framing() {
        assert_eq!(event_end(b"data: x\n\ndata: y"), Some(9));
        assert_eq!(event_end(b"data: x\r\n\r\n"), Some(11));
        assert_eq!(event_end(b"data: x\r\rdata: y"), Some(9));
        assert_eq!(event_end(b"data: x\r\n\n"), Some(10));
        assert_eq!(event_end(b"data: x\n\r\n"), Some(10));
        assert_eq!(event_end(b"data: x\r\n"), None);
        assert_eq!(event_end(b"data: x\r"), None);
        assert_eq!(event_end(b"data: x\n"), None);
        assert_eq!(event_end(b"\n"), Some(1));
        assert_eq!(event_end(b""), None);
    }

    #[test]
    fn whole_frames_end_with_a_blank_line() {
        for whole in [
            &b"data: x\n\n"[..],
            b"data: x\r\r",
            b"data: x\r\n\r\n",
            b"a\n\r\n",
            b"a\r\n\n",
        ] {
            assert!(ends_an_event(whole), "{whole:?}");
            assert_eq!(event_end(whole), Some(whole.len()), "{whole:?}");
        }
        for part in [&b"data: x\n"[..], b"data: x\r\n", b"data: x", b"data: x\r"] {
            assert!(!ends_an_event(part), "{part:?}");
        }
        // Every frame of up to four bytes from the line-end bytes and one other: as two
        // `strip_suffix` in a row read it (CRLF, else LF, else CR).
        fn strip(bytes: &[u8]) -> Option<&[u8]> {
            bytes
                .strip_suffix(b"\r\n")
                .or_else(|| bytes.strip_suffix(b"\n"))
                .or_else(|| bytes.strip_suffix(b"\r"))
        }
        let mut frames = vec![Vec::new()];
        for len in 1..=4 {
            for mut n in 0..3_u32.pow(len) {
                let mut frame = Vec::new();
                for _ in 0..len {
                    frame.push([b'\r', b'\n', b'x'][(n % 3) as usize]);
                    n /= 3;
                }
                frames.push(frame);
            }
        }
        for frame in frames {
            let expected = strip(&frame).and_then(strip).is_some();
            assert_eq!(ends_an_event(&frame), expected, "{frame:?}");
        }
    }

    #[test]
    fn data_is_read_as_a_client_reads_it() {
        assert_eq!(data(b"id: 1\ndata: {\"a\":\ndata: 1}\n\n"), b"{\"a\":\n1}");
        assert_eq!(data(b"data:{}\r\r"), b"{}");
        assert_eq!(data(b"data:  {}\r\n\r\n"), b" {}");
        assert_eq!(data(b"event: m\rdata: {\rdata: }\r\r"), b"{\n}");
        // A field without a colon has an empty value; other fields are not data.
        assert_eq!(data(b"data\ndata: 1\n\n"), b"\n1");
        assert_eq!(data(b"datas: 1\n: comment\n\n"), b"");
        assert_eq!(
            with_data(b"id: 3\ndata: {\ndata: }\n\n", b"{}"),
            b"id: 3\ndata: {}\n\n"
        );
        assert_eq!(
            with_data(b"id: 3\rdata: {\r\r", b"{}"),
            b"id: 3\ndata: {}\n\n"
        );
    }
}
