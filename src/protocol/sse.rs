//! Server-Sent Events framing, as far as the layers read it: where an event ends, and its data.

/// The end of the first SSE event in `buf` (past its blank line), if it is complete.
pub(crate) fn event_end(buf: &[u8]) -> Option<usize> {
    use memchr::memmem::Finder;
    use std::sync::LazyLock;
    static LF: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\n\n"));
    static CRLF: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\r\n\r\n"));
    let lf = LF.find(buf).map(|i| i + 2);
    let crlf = CRLF.find(buf).map(|i| i + 4);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The JSON of an SSE event: its `data:` lines, joined.
pub(crate) fn data(event: &[u8]) -> Vec<u8> {
    let mut data = Vec::new();
    for line in event.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(rest) = line.strip_prefix(b"data:") {
            let rest = rest.strip_prefix(b" ").unwrap_or(rest);
            if !data.is_empty() {
                data.push(b'\n');
            }
            data.extend_from_slice(rest);
        }
    }
    data
}

#[cfg(feature = "request-state")]
/// An SSE event carrying `json` as its data, with the other fields (`id:`, `event:`, `retry:`)
/// of `original` kept as they were.
pub(crate) fn with_data(original: &[u8], json: &[u8]) -> Vec<u8> {
    let mut event = Vec::with_capacity(original.len() + json.len());
    let mut wrote_data = false;
    for line in original.split(|b| *b == b'\n') {
        let bare = line.strip_suffix(b"\r").unwrap_or(line);
        if bare.is_empty() {
            continue;
        }
        if bare.starts_with(b"data:") {
            if !wrote_data {
                event.extend_from_slice(b"data: ");
                event.extend_from_slice(json);
                event.push(b'\n');
                wrote_data = true;
            }
            continue;
        }
        event.extend_from_slice(bare);
        event.push(b'\n');
    }
    event.push(b'\n');
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_join_and_rewrite() {
        assert_eq!(event_end(b"data: x\n\ndata: y"), Some(9));
        assert_eq!(event_end(b"data: x\r\n\r\n"), Some(11));
        assert_eq!(event_end(b"data: x\n"), None);
        assert_eq!(data(b"id: 1\ndata: {\"a\":\ndata: 1}\n\n"), b"{\"a\":\n1}");
        #[cfg(feature = "request-state")]
        assert_eq!(
            with_data(b"id: 3\ndata: {\ndata: }\n\n", b"{}"),
            b"id: 3\ndata: {}\n\n"
        );
    }
}
