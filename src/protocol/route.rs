//! Which route a sessionless POST takes, read from its headers alone: `Mcp-Method` names the
//! method (revision 2026-07-28 servers must reject a header that does not match the body), and
//! `Mcp-Name` the task of a `tasks/*` request. One value of each is read; a repeated or malformed
//! header takes no route, or a refused one.
//!
//! Also the one pass over a request's headers that finds them, and the values of
//! `Mcp-Session-Id` and `MCP-Protocol-Version` that `headers` decides on, for requests of every
//! era.

use http::{HeaderMap, HeaderName, HeaderValue};

use super::headers::{self, MCP_METHOD, MCP_NAME, SessionHeader};

/// What the layer does with a sessionless request, by its `Mcp-Method`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Route<'a> {
    /// `tools/call`: its answer may create a task, to record.
    Create,
    /// `tasks/get`, `tasks/update`, `tasks/cancel`: the task id from `Mcp-Name`, or why it is
    /// unusable.
    Check(Result<&'a str, &'static str>),
    /// `subscriptions/listen`: task notifications on its stream are filtered.
    Listen,
}

/// One header value, if the header is present exactly once.
fn single<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a HeaderValue> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => Some(value),
        _ => None,
    }
}

/// The route of a sessionless POST, from its headers only. `None`: nothing to do.
pub(crate) fn route(headers: &HeaderMap, max_task_id_len: usize) -> Option<Route<'_>> {
    let method = Method::of(single(headers, &MCP_METHOD)?.as_bytes())?;
    Some(method.route(headers, max_task_id_len))
}

/// The `Mcp-Method`s that take a route of their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    ToolsCall,
    Listen,
    /// `tasks/get`, `tasks/update`, `tasks/cancel`.
    Task,
}

impl Method {
    fn of(method: &[u8]) -> Option<Self> {
        match method {
            b"tools/call" => Some(Self::ToolsCall),
            b"subscriptions/listen" => Some(Self::Listen),
            b"tasks/get" | b"tasks/update" | b"tasks/cancel" => Some(Self::Task),
            _ => None,
        }
    }

    /// The route of a request with this method and `headers`.
    pub(crate) fn route(self, headers: &HeaderMap, max_task_id_len: usize) -> Route<'_> {
        match self {
            Self::ToolsCall => Route::Create,
            Self::Listen => Route::Listen,
            Self::Task => Route::Check(task_name(headers, max_task_id_len)),
        }
    }
}

/// What one pass over a sessionless POST's headers found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Sessionless {
    /// `Mcp-Session-Id` is present (to remove).
    pub(crate) session_id: bool,
    /// `Last-Event-ID` is present (to remove).
    pub(crate) last_event_id: bool,
    /// The method of the single `Mcp-Method` header, when it takes a route ([`route`]'s).
    pub(crate) method: Option<Method>,
}

/// The first two values of the headers a session-era request is decided on (a second value
/// makes a header repeated), as `get_all` would give them.
#[derive(Debug, Default)]
pub(crate) struct SessionValues<'a> {
    /// `Mcp-Session-Id`.
    pub(crate) sessions: [Option<&'a HeaderValue>; 2],
    /// `MCP-Protocol-Version`.
    pub(crate) versions: [Option<&'a HeaderValue>; 2],
}

impl<'a> SessionValues<'a> {
    /// [`headers::session_header`] of these values.
    pub(crate) fn session(&self, max_len: usize) -> SessionHeader<'a> {
        headers::session_header(self.sessions.into_iter().flatten(), max_len)
    }

    /// [`headers::names_sessionless_revision`] of these values.
    pub(crate) fn sessionless(&self) -> bool {
        headers::names_sessionless_revision(self.versions.into_iter().flatten())
    }
}

/// Reads what the layer needs of a request's headers in one pass over them, comparing names,
/// instead of hashing each name to look it up: the same answers as `get_all`, `contains_key` and
/// [`route`]. It costs a few instructions a header, a small share of what parsing and storing
/// that header cost the server first.
pub(crate) fn request_headers(headers: &HeaderMap) -> (Sessionless, SessionValues<'_>) {
    let mut seen = Sessionless::default();
    let mut values = SessionValues::default();
    let mut methods = 0_usize;
    let mut method = None;
    // One item per value: a repeated header is seen as often as it is repeated.
    for (name, value) in headers {
        // Names are lowercase in a `HeaderMap` (the constants' names; a test checks them).
        let first_two = match name.as_str() {
            "mcp-method" => {
                methods += 1;
                method = Some(value);
                continue;
            }
            "last-event-id" => {
                seen.last_event_id = true;
                continue;
            }
            "mcp-session-id" => &mut values.sessions,
            "mcp-protocol-version" => &mut values.versions,
            _ => continue,
        };
        first_two[usize::from(first_two[0].is_some())].get_or_insert(value);
    }
    seen.session_id = values.sessions[0].is_some();
    if methods == 1 {
        seen.method = method.and_then(|value| Method::of(value.as_bytes()));
    }
    (seen, values)
}

/// The task id a `tasks/*` request names in `Mcp-Name`.
fn task_name(headers: &HeaderMap, max_len: usize) -> Result<&str, &'static str> {
    let mut values = headers.get_all(MCP_NAME).iter();
    let value = match (values.next(), values.next()) {
        (None, _) => return Err("the Mcp-Name header (the task id) is required"),
        (Some(_), Some(_)) => return Err("the Mcp-Name header is repeated"),
        (Some(value), None) => value,
    };
    let bytes = value.as_bytes();
    if bytes.is_empty() {
        return Err("the Mcp-Name header is empty");
    }
    if bytes.len() > max_len {
        return Err("the task id is too long");
    }
    if !bytes.iter().all(|b| (0x20..=0x7e).contains(b)) {
        return Err("the Mcp-Name header has a byte outside 0x20-0x7E");
    }
    value
        .to_str()
        .map_err(|_| "the Mcp-Name header is not text")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn routes_come_from_mcp_method() {
        let route_of = |pairs: &[(&str, &str)]| {
            route(&headers(pairs), 8).map(|r| match r {
                Route::Check(r) => format!("check {r:?}"),
                other => format!("{other:?}"),
            })
        };
        assert_eq!(route_of(&[("mcp-method", "tools/call")]).unwrap(), "Create");
        assert_eq!(
            route_of(&[("mcp-method", "subscriptions/listen")]).unwrap(),
            "Listen"
        );
        assert_eq!(route_of(&[("mcp-method", "tools/list")]), None);
        assert_eq!(route_of(&[]), None);
        assert_eq!(
            route_of(&[("mcp-method", "tools/call"), ("mcp-method", "tools/call")]),
            None
        );
        assert_eq!(
            route_of(&[("mcp-method", "tasks/get"), ("mcp-name", "abc")]).unwrap(),
            r#"check Ok("abc")"#
        );
        for (name, why) in [
            (None, "the Mcp-Name header (the task id) is required"),
            (Some("123456789"), "the task id is too long"),
            (Some(""), "the Mcp-Name header is empty"),
        ] {
            let mut pairs = vec![("mcp-method", "tasks/cancel")];
            if let Some(name) = name {
                pairs.push(("mcp-name", name));
            }
            assert_eq!(
                route_of(&pairs).unwrap(),
                format!("check Err({why:?})"),
                "{name:?}"
            );
        }
    }

    #[test]
    fn one_pass_over_the_headers_agrees_with_lookups() {
        use crate::protocol::headers::{LAST_EVENT_ID, MCP_PROTOCOL_VERSION, MCP_SESSION_ID};
        // The names the pass compares are the constants' names.
        assert_eq!(MCP_METHOD.as_str(), "mcp-method");
        assert_eq!(MCP_PROTOCOL_VERSION.as_str(), "mcp-protocol-version");
        assert_eq!(LAST_EVENT_ID.as_str(), "last-event-id");
        assert_eq!(MCP_SESSION_ID.as_str(), "mcp-session-id");
        let cases: &[&[(&str, &str)]] = &[
            &[],
            &[("mcp-method", "tools/call")],
            &[("Mcp-Method", "tools/call"), ("MCP-SESSION-ID", "s")],
            &[("mcp-method", "tools/call"), ("mcp-method", "tools/call")],
            &[("mcp-method", "tools/list"), ("last-event-id", "7")],
            &[
                ("mcp-method", "subscriptions/listen"),
                ("content-length", "2"),
            ],
            &[
                ("mcp-method", "tasks/get"),
                ("mcp-name", "t"),
                ("authorization", "x"),
            ],
            &[("mcp-method", "tasks/cancel")],
            &[("mcp-method", "TOOLS/CALL"), ("mcp-session-id", "a")],
            &[
                ("mcp-session-id", "a"),
                ("mcp-session-id", "b"),
                ("last-event-id", "1"),
            ],
            &[
                ("mcp-protocol-version", "2025-11-25"),
                ("host", "h"),
                ("mcp-session-id", "a"),
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-session-id", "b"),
                ("mcp-session-id", "c"),
                ("mcp-protocol-versions", "x"),
                ("content-length", "1"),
            ],
            &[
                ("authorization", "x"),
                ("mcp-protocol-version", "2026-07-28"),
            ],
            &[
                ("x-mcp-method", "tools/call"),
                ("mcp-methods", "tools/call"),
            ],
        ];
        for pairs in cases {
            let map = headers(pairs);
            let (seen, values) = request_headers(&map);
            let first_two = |name: HeaderName| {
                let mut all = map.get_all(name).iter();
                [all.next(), all.next()]
            };
            assert_eq!(values.sessions, first_two(MCP_SESSION_ID), "{pairs:?}");
            assert_eq!(
                values.versions,
                first_two(MCP_PROTOCOL_VERSION),
                "{pairs:?}"
            );
            assert_eq!(
                seen.session_id,
                map.contains_key(MCP_SESSION_ID),
                "{pairs:?}"
            );
            assert_eq!(
                seen.last_event_id,
                map.contains_key(LAST_EVENT_ID),
                "{pairs:?}"
            );
            assert_eq!(
                seen.method.map(|m| m.route(&map, 8)),
                route(&map, 8),
                "{pairs:?}"
            );
        }
        let seen = |pairs| request_headers(&headers(pairs)).0;
        assert_eq!(
            seen(&[("mcp-method", "tools/call")]).method,
            Some(Method::ToolsCall)
        );
        assert_eq!(
            seen(&[("mcp-method", "tools/call"), ("mcp-method", "tools/call")]).method,
            None
        );
        assert!(seen(&[("mcp-session-id", "a"), ("mcp-session-id", "b")]).session_id);
    }
}
