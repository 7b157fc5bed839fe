//! SSE event ids bound to their session ([`SessionBindingLayer::bind_event_ids`]): each `id:`
//! field of a session's SSE answers leaves the layer tagged with a MAC of (session key, event
//! id), and a `Last-Event-ID` on a request of a session is checked against that session and
//! stripped of its tag before it is forwarded. A resumption can then only name events of its own
//! session, whatever the event store behind the server.
//!
//! The tagged id is `<id>~<tag>`: `tag` is 32 lowercase hex digits, the first 128 bits of
//! BLAKE3 keyed with a subkey of the deployment's [`KeySecret`] over the session's store key and
//! the id. Whoever lacks the secret cannot make a tag, so bob cannot turn alice's event id into
//! one his session accepts.
//!
//! SSE lines end at CRLF, LF or CR, and a stream may start with a byte order mark; the tagger
//! reads `id` fields in every framing, across chunk boundaries, as a client's parser does.
//!
//! [`SessionBindingLayer::bind_event_ids`]: crate::SessionBindingLayer::bind_event_ids
//! [`KeySecret`]: crate::store::KeySecret

use http::{HeaderMap, HeaderValue};

use crate::{
    protocol::headers::LAST_EVENT_ID,
    store::{KeyDerivation, KeySecret, SessionKey},
};

mod tag;

pub(crate) use tag::IdTagger;

/// Between the event id and its tag.
const SEPARATOR: u8 = b'~';
/// Hex digits of a tag.
const TAG_HEX: usize = 32;

/// The MAC key for event ids, derived from the deployment's secret.
pub(crate) struct EventIdKey {
    key: [u8; 32],
}

impl EventIdKey {
    pub(crate) fn new(secret: KeySecret) -> Self {
        // Two outputs of the secret's keyed PRF (format-2 key derivation), over inputs that
        // start with a NUL byte, which no session id (visible ASCII) holds: a subkey of its own,
        // unrelated to any store key.
        let prf = KeyDerivation::keyed(secret);
        let mut key = [0; 32];
        key[..16].copy_from_slice(
            prf.session_bytes(b"\0mcp-session-binding event id mac key 1")
                .as_bytes(),
        );
        key[16..].copy_from_slice(
            prf.session_bytes(b"\0mcp-session-binding event id mac key 2")
                .as_bytes(),
        );
        Self { key }
    }

    /// The tag of `id` on `session`.
    fn tag(&self, session: SessionKey, id: &[u8]) -> [u8; 16] {
        let mut hasher = blake3::Hasher::new_keyed(&self.key);
        hasher.update(session.as_bytes());
        hasher.update(id);
        let mut tag = [0; 16];
        tag.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
        tag
    }

    /// What follows `id` in its sealed form `<id>~<32 hex digits>`.
    fn suffix(&self, session: SessionKey, id: &[u8]) -> [u8; TAG_HEX + 1] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut suffix = [SEPARATOR; TAG_HEX + 1];
        for (pair, byte) in suffix[1..].chunks_exact_mut(2).zip(self.tag(session, id)) {
            pair[0] = HEX[usize::from(byte >> 4)];
            pair[1] = HEX[usize::from(byte & 15)];
        }
        suffix
    }

    /// The event id inside `sealed` when it ends with the suffix `session` gives it (in
    /// constant time), else `None`.
    fn open<'a>(&self, session: SessionKey, sealed: &'a [u8]) -> Option<&'a [u8]> {
        let split = sealed.len().checked_sub(TAG_HEX + 1)?;
        let (id, suffix) = sealed.split_at(split);
        constant_time_eq::constant_time_eq(suffix, &self.suffix(session, id)).then_some(id)
    }
}

/// Checks the request's `Last-Event-ID` against `session` and replaces it with the event id it
/// seals. `Err` with why when it is not `session`'s (no tag, another session's tag, repeated):
/// the request must not be forwarded.
pub(crate) fn open_last_event_id(
    headers: &mut HeaderMap,
    key: &EventIdKey,
    session: SessionKey,
) -> Result<(), &'static str> {
    let mut values = headers.get_all(LAST_EVENT_ID).iter();
    let Some(sealed) = values.next() else {
        return Ok(());
    };
    if values.next().is_some() {
        return Err("repeated Last-Event-ID");
    }
    let id = key
        .open(session, sealed.as_bytes())
        .ok_or("Last-Event-ID was not issued on this session")?;
    let id = HeaderValue::from_bytes(id).map_err(|_| "Last-Event-ID is not a header value")?;
    headers.insert(LAST_EVENT_ID, id);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::tag::{BOM, MAX_EVENT_ID_LEN};
    use super::*;
    use bytes::Bytes;
    use std::sync::Arc;

    fn key() -> Arc<EventIdKey> {
        Arc::new(EventIdKey::new(KeySecret::from_material(&[9; 32]).unwrap()))
    }

    fn session(n: u8) -> SessionKey {
        SessionKey::from_session_id(&format!("session-{n}"))
    }

    /// The tagged stream, fed in chunks of the given sizes (the last one takes the rest).
    fn tag_in_chunks(input: &[u8], sizes: &[usize]) -> Vec<u8> {
        let mut tagger = IdTagger::new(key(), session(1));
        let mut rest = input;
        for &size in sizes {
            let size = size.min(rest.len());
            tagger.push(Bytes::copy_from_slice(&rest[..size]));
            rest = &rest[size..];
        }
        tagger.push(Bytes::copy_from_slice(rest));
        tagger.finish();
        tagger
            .out
            .into_iter()
            .flat_map(|frame| frame.into_data().unwrap().to_vec())
            .collect()
    }

    /// The last event ids a client (WHATWG parser: CRLF, LF or CR, a leading BOM, one space
    /// after the colon removed) sets, one per dispatched or not dispatched `id` field, in order.
    fn client_ids(stream: &[u8]) -> Vec<Vec<u8>> {
        let stream = stream.strip_prefix(BOM.as_slice()).unwrap_or(stream);
        let mut ids = Vec::new();
        let mut lines = Vec::new();
        let mut line = Vec::new();
        let mut i = 0;
        // An unfinished last line is discarded: only terminated lines are pushed.
        while i < stream.len() {
            match stream[i] {
                b'\r' => {
                    lines.push(std::mem::take(&mut line));
                    if stream.get(i + 1) == Some(&b'\n') {
                        i += 1;
                    }
                }
                b'\n' => lines.push(std::mem::take(&mut line)),
                byte => line.push(byte),
            }
            i += 1;
        }
        for line in lines {
            let (name, value) = match line.iter().position(|&b| b == b':') {
                Some(colon) => {
                    let value = &line[colon + 1..];
                    (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
                }
                None => (&line[..], &b""[..]),
            };
            if name == b"id" && !value.contains(&0) {
                ids.push(value.to_vec());
            }
        }
        ids
    }

    /// Every framing a client accepts, with the ids it should see.
    fn framings() -> Vec<(Vec<u8>, Vec<&'static str>)> {
        let mut cases = Vec::new();
        for eol in ["\n", "\r\n", "\r"] {
            for bom in ["", "\u{FEFF}"] {
                let text = format!(
                    "{bom}id: 1{eol}data: {{\"a\":1}}{eol}{eol}id:2/3{eol}event: message{eol}data: x{eol}{eol}\
                     id{eol}{eol}id: {eol}{eol}idx: 4{eol}: id: 5{eol}data: id: 6{eol}{eol}id:  7 {eol}{eol}"
                );
                cases.push((text.into_bytes(), vec!["1", "2/3", "", "", " 7 "]));
            }
        }
        cases
    }

    #[test]
    fn every_framing_is_tagged_as_a_client_reads_it() {
        let key = key();
        for (input, expected) in framings() {
            let output = tag_in_chunks(&input, &[]);
            let ids = client_ids(&output);
            assert_eq!(
                ids.len(),
                expected.len(),
                "{:?}",
                String::from_utf8_lossy(&output)
            );
            for (id, want) in ids.iter().zip(&expected) {
                if want.is_empty() {
                    assert!(id.is_empty(), "an empty id stays empty");
                    continue;
                }
                let opened = key.open(session(1), id).expect("a tag of this session");
                assert_eq!(opened, want.as_bytes());
                assert_eq!(key.open(session(2), id), None, "not another session's");
            }
            // Nothing else changed: without the tags, the output is the input.
            let mut stripped = output.clone();
            while let Some(at) = stripped.iter().position(|&b| b == SEPARATOR) {
                stripped.drain(at..at + 1 + TAG_HEX);
            }
            assert_eq!(stripped, input);
        }
    }

    #[test]
    fn any_split_of_the_stream_tags_the_same() {
        for (input, _) in framings() {
            let whole = tag_in_chunks(&input, &[]);
            for first in 0..=input.len() {
                assert_eq!(tag_in_chunks(&input, &[first]), whole, "split at {first}");
            }
            let ones = vec![1; input.len()];
            assert_eq!(tag_in_chunks(&input, &ones), whole, "byte by byte");
        }
    }

    /// Random streams over the bytes that matter to the framing, cut at random places: the
    /// ids a client reads from the output are the ids it reads from the input, each tagged
    /// (unless empty or with a NUL), and nothing else changes.
    #[test]
    fn random_streams_keep_every_client_id_and_tag_it() {
        const ALPHABET: &[u8] = b"id: \r\n\0x\xEF\xBB\xBF";
        let key = key();
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = move |bound: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            usize::try_from(state % bound as u64).unwrap()
        };
        for _ in 0..3000 {
            let len = next(40);
            let mut input: Vec<u8> = (0..len).map(|_| ALPHABET[next(ALPHABET.len())]).collect();
            if next(4) == 0 {
                input.splice(0..0, BOM.iter().copied());
            }
            let cuts: Vec<usize> = (0..next(6)).map(|_| next(8)).collect();
            let output = tag_in_chunks(&input, &cuts);
            assert_eq!(output, tag_in_chunks(&input, &[]), "{input:?} cut {cuts:?}");
            let before = client_ids(&input);
            let after = client_ids(&output);
            assert_eq!(before.len(), after.len(), "{input:?}");
            for (id, tagged) in before.iter().zip(&after) {
                if id.is_empty() {
                    assert!(tagged.is_empty());
                } else {
                    assert_eq!(key.open(session(1), tagged), Some(&id[..]), "{input:?}");
                }
            }
        }
    }

    #[test]
    fn a_broken_bom_or_an_overlong_id_passes_untagged() {
        let input = b"\xEF\xBBid: 1\n\n".to_vec();
        assert_eq!(tag_in_chunks(&input, &[1]), input);
        let long = format!(
            "id: {}\n\ndata: after\n\n",
            "x".repeat(MAX_EVENT_ID_LEN + 1)
        );
        assert_eq!(tag_in_chunks(long.as_bytes(), &[7]), long.as_bytes());
        let fits = format!("id: {}\n\n", "x".repeat(MAX_EVENT_ID_LEN));
        assert_ne!(tag_in_chunks(fits.as_bytes(), &[]), fits.as_bytes());
    }

    #[test]
    fn last_event_id_is_opened_for_its_own_session_only() {
        let key = key();
        let mut sealed = b"17".to_vec();
        sealed.extend_from_slice(&key.suffix(session(1), b"17"));
        let headers = |value: &[u8]| {
            let mut headers = HeaderMap::new();
            headers.insert(LAST_EVENT_ID, HeaderValue::from_bytes(value).unwrap());
            headers
        };
        let mut mine = headers(&sealed);
        assert_eq!(open_last_event_id(&mut mine, &key, session(1)), Ok(()));
        assert_eq!(mine[LAST_EVENT_ID], "17");
        assert!(open_last_event_id(&mut headers(&sealed), &key, session(2)).is_err());
        assert!(open_last_event_id(&mut headers(b"17"), &key, session(1)).is_err());
        let mut upper = sealed.clone();
        upper.make_ascii_uppercase();
        assert!(open_last_event_id(&mut headers(&upper), &key, session(1)).is_err());
        let mut twice = headers(&sealed);
        twice.append(LAST_EVENT_ID, HeaderValue::from_bytes(&sealed).unwrap());
        assert!(open_last_event_id(&mut twice, &key, session(1)).is_err());
        let mut none = HeaderMap::new();
        assert_eq!(open_last_event_id(&mut none, &key, session(1)), Ok(()));
        assert!(!none.contains_key(LAST_EVENT_ID));
    }
}
