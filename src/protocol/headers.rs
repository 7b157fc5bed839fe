//! Reading the `Mcp-Session-Id` and `MCP-Protocol-Version` headers.

use http::{HeaderMap, HeaderName, HeaderValue};

/// The session header (`Mcp-Session-Id`; header names are case-insensitive).
pub(crate) const MCP_SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");

/// The protocol version header (`MCP-Protocol-Version`).
pub(crate) const MCP_PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");

/// `Mcp-Method`: the request's JSON-RPC method, mirrored in a header (revision 2026-07-28).
pub(crate) const MCP_METHOD: HeaderName = HeaderName::from_static("mcp-method");
/// `Mcp-Name`: `params.name`, `params.uri`, or for `tasks/*` the `params.taskId`.
pub(crate) const MCP_NAME: HeaderName = HeaderName::from_static("mcp-name");

/// `Last-Event-ID`: SSE resumption, which sessionless revisions removed.
pub(crate) const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");

/// The first protocol revision without sessions (SEP-2567).
pub(crate) const FIRST_SESSIONLESS_REVISION: &str = "2026-07-28";

/// What a request or response says about its session.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SessionHeader<'a> {
    Absent,
    Present(&'a HeaderValue),
    Malformed(&'static str),
}

/// Reads the session header from its `values` (`get_all(MCP_SESSION_ID)`, or a pass over the
/// headers that finds the first two): one value, 1 to `max_len` bytes, each in 0x21–0x7E.
pub(crate) fn session_header<'a>(
    mut values: impl Iterator<Item = &'a HeaderValue>,
    max_len: usize,
) -> SessionHeader<'a> {
    let Some(value) = values.next() else {
        return SessionHeader::Absent;
    };
    if values.next().is_some() {
        return SessionHeader::Malformed("Mcp-Session-Id header is repeated");
    }
    let bytes = value.as_bytes();
    if bytes.is_empty() {
        return SessionHeader::Malformed("Mcp-Session-Id header is empty");
    }
    if bytes.len() > max_len {
        return SessionHeader::Malformed("Mcp-Session-Id header is too long");
    }
    // A fold rather than `all`: no early exit, so the check runs on many bytes at a time.
    if !bytes
        .iter()
        .fold(true, |ok, b| ok & (0x21..=0x7e).contains(b))
    {
        return SessionHeader::Malformed("Mcp-Session-Id header has a byte outside 0x21-0x7E");
    }
    SessionHeader::Present(value)
}

/// The session id text of a header [`session_header`] accepted (visible ASCII, so UTF-8).
pub(crate) fn as_str(value: &HeaderValue) -> &str {
    // `from_utf8` checks ASCII a word at a time; `HeaderValue::to_str` a byte at a time.
    std::str::from_utf8(value.as_bytes()).unwrap_or_default()
}

/// Removes `MCP-Protocol-Version` from a request that does not name a sessionless revision.
///
/// The layers decide which requests carry task ids or `requestState` from that header, as
/// revision 2026-07-28 lets them: its servers must reject a header that does not match the body.
/// But rmcp also serves a request the 2026-07-28 way (without its session) when the body's
/// `_meta` names a protocol version and client capabilities, whatever older revision the header
/// names, so such a request would pass unchecked. Without the header, rmcp refuses every request
/// whose `_meta` names a version (header mismatch) and serves the others as before: on a
/// session-era request the header is only validated (the session keeps the version it
/// negotiated; `initialize` carries its own), and clients of 2025-03-26 never sent it.
///
/// Returns whether the request is sessionless ([`is_sessionless`]), from the same single look
/// at the header.
#[cfg_attr(not(feature = "request-state"), allow(dead_code))] // the state layer's
pub(crate) fn remove_session_era_version(headers: &mut HeaderMap) -> bool {
    // Not the entry API: it reserves room for an insertion first, which can grow the map.
    let mut values = headers.get_all(MCP_PROTOCOL_VERSION).iter().peekable();
    if values.peek().is_none() {
        return false; // nothing to remove: no second lookup
    }
    let sessionless = names_sessionless_revision(values);
    if !sessionless {
        headers.remove(MCP_PROTOCOL_VERSION);
    }
    sessionless
}

/// Whether the request names a sessionless protocol revision (2026-07-28 or later) in a single,
/// well-formed `MCP-Protocol-Version` header. Anything ambiguous counts as a session-era request,
/// which is the checked path.
pub(crate) fn is_sessionless(headers: &HeaderMap) -> bool {
    names_sessionless_revision(headers.get_all(MCP_PROTOCOL_VERSION).iter())
}

/// Whether these `MCP-Protocol-Version` values are one well-formed revision of 2026-07-28 or
/// later.
pub(crate) fn names_sessionless_revision<'a>(
    mut values: impl Iterator<Item = &'a HeaderValue>,
) -> bool {
    let (Some(value), None) = (values.next(), values.next()) else {
        return false;
    };
    let v = value.as_bytes();
    // The comparison first: it settles every session-era revision ("2025-…") at once.
    v.len() == 10
        && v >= FIRST_SESSIONLESS_REVISION.as_bytes()
        && v.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            _ => b.is_ascii_digit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: &HeaderName, values: &[&[u8]]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(name, HeaderValue::from_bytes(v).unwrap());
        }
        map
    }

    #[test]
    fn ids_of_exactly_the_limit_are_accepted_and_their_text_is_kept() {
        let map = headers(&MCP_SESSION_ID, &[b"abcd"]);
        let SessionHeader::Present(value) = session_header(map.get_all(MCP_SESSION_ID).iter(), 4)
        else {
            panic!("an id of max_len bytes is accepted");
        };
        assert_eq!(as_str(value), "abcd");
        assert!(matches!(
            session_header(map.get_all(MCP_SESSION_ID).iter(), 3),
            SessionHeader::Malformed("Mcp-Session-Id header is too long")
        ));
    }

    #[test]
    fn session_era_versions_are_removed_and_sessionless_ones_kept() {
        let mut none = HeaderMap::new();
        assert!(!remove_session_era_version(&mut none));
        for (version, sessionless) in [
            (&b"2025-11-25"[..], false),
            (b"2025-03-26", false),
            (b"not a date", false),
            (b"2026-07-28", true),
        ] {
            let mut map = headers(&MCP_PROTOCOL_VERSION, &[version]);
            assert_eq!(remove_session_era_version(&mut map), sessionless);
            assert_eq!(map.contains_key(MCP_PROTOCOL_VERSION), sessionless);
            assert_eq!(is_sessionless(&map), sessionless);
        }
        // Ambiguous (repeated) is the checked, session-era path: removed.
        let mut twice = headers(&MCP_PROTOCOL_VERSION, &[b"2026-07-28", b"2026-07-28"]);
        assert!(!remove_session_era_version(&mut twice));
        assert!(!twice.contains_key(MCP_PROTOCOL_VERSION));
    }

    #[test]
    fn accepts_visible_ascii() {
        let map = headers(&MCP_SESSION_ID, &[b"3f2a9c1e-0b7d-4e8a-9c55-2d1f6b8e7a40"]);
        assert!(matches!(
            session_header(map.get_all(MCP_SESSION_ID).iter(), 1024),
            SessionHeader::Present(_)
        ));
        let map = headers(&MCP_SESSION_ID, &[b"!~"]);
        assert!(matches!(
            session_header(map.get_all(MCP_SESSION_ID).iter(), 1024),
            SessionHeader::Present(_)
        ));
    }

    #[test]
    fn rejects_malformed_values() {
        assert_eq!(
            session_header(HeaderMap::new().get_all(MCP_SESSION_ID).iter(), 1024),
            SessionHeader::Absent
        );
        for bad in [&b""[..], b"a b", b"caf\xc3\xa9", b"tab\there"] {
            let map = headers(&MCP_SESSION_ID, &[bad]);
            assert!(
                matches!(
                    session_header(map.get_all(MCP_SESSION_ID).iter(), 1024),
                    SessionHeader::Malformed(_)
                ),
                "{bad:?}"
            );
        }
        let long = vec![b'a'; 1025];
        let map = headers(&MCP_SESSION_ID, &[&long]);
        assert!(matches!(
            session_header(map.get_all(MCP_SESSION_ID).iter(), 1024),
            SessionHeader::Malformed(_)
        ));
        let map = headers(&MCP_SESSION_ID, &[b"same", b"same"]);
        assert_eq!(
            session_header(map.get_all(MCP_SESSION_ID).iter(), 1024),
            SessionHeader::Malformed("Mcp-Session-Id header is repeated")
        );
    }

    #[test]
    fn sessionless_needs_one_well_formed_recent_version() {
        let yes = |v: &[&[u8]]| is_sessionless(&headers(&MCP_PROTOCOL_VERSION, v));
        assert!(yes(&[b"2026-07-28"]));
        assert!(yes(&[b"2027-01-01"]));
        assert!(!yes(&[b"2025-11-25"]));
        assert!(!yes(&[b"2025-03-26"]));
        assert!(!yes(&[]));
        assert!(!yes(&[b"9999"]));
        assert!(!yes(&[b"2026-07-28 "]));
        assert!(!yes(&[b"2026-07-28", b"2026-07-28"]));
        assert!(!yes(&[b"2026-07-28", b"2025-06-18"]));
    }
}
