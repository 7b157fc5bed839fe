//! The persisted encoding of a binding or task record's owner, and of a tombstone: versioned
//! text, strictly parsed.
//!
//! ```text
//! mcpsb1:anon                          an anonymous owner
//! mcpsb1:user:<n>:<iss><sub>           a user; <n> = byte length of iss, decimal, no leading zero
//! mcpsb1:ended                         a tombstone
//! mcpsb1:at:<ms>:<owner encoding>      a binding made at <ms> (milliseconds since the Unix
//!                                      epoch, decimal, no leading zero): what stores write
//! ```
//!
//! The length prefix makes every `(iss, sub)` pair encode to a different string: `iss` may contain
//! `:` (it is a URL) and no separator could be trusted. Decoding accepts exactly what encoding
//! produces; anything else (another version, the token hash an older scheme stored, trailing
//! bytes, an empty half, NUL) is a [`CodecError`], which stores report as
//! [`StoreErrorKind::Corrupt`](super::StoreErrorKind::Corrupt).

use std::fmt;

use super::Owner;
use crate::Identity;

const PREFIX: &str = "mcpsb1:";
const ANON: &str = "mcpsb1:anon";
const ENDED: &str = "mcpsb1:ended";
const USER: &str = "mcpsb1:user:";
const AT: &str = "mcpsb1:at:";

/// A decoded stored value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stored {
    /// A live binding.
    Bound(Owner),
    /// A tombstone.
    Ended,
}

/// Why a stored value does not decode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodecError {
    /// Not this encoding at all: another version, or a legacy value such as a token hash.
    UnknownFormat,
    /// This encoding's prefix, but not a value encoding could have produced.
    Malformed(&'static str),
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownFormat => {
                f.write_str("stored value is not a mcpsb1 binding (legacy or foreign format)")
            }
            Self::Malformed(why) => write!(f, "malformed mcpsb1 binding: {why}"),
        }
    }
}

impl std::error::Error for CodecError {}

/// Encodes an owner.
#[must_use]
pub fn encode_owner(owner: &Owner) -> String {
    match owner {
        Owner::Anonymous => ANON.to_owned(),
        Owner::User(id) => {
            let (iss, sub) = (id.iss(), id.sub());
            format!("{USER}{}:{iss}{sub}", iss.len())
        }
    }
}

/// The encoding of a tombstone.
#[must_use]
pub fn encode_ended() -> &'static str {
    ENDED
}

/// Decodes a stored value, strictly.
///
/// # Errors
///
/// [`CodecError`] for anything [`encode_owner`] or [`encode_ended`] could not have produced,
/// with or without the bind time stores write before an owner (`mcpsb1:at:<ms>:`).
pub fn decode(value: &str) -> Result<Stored, CodecError> {
    decode_with_time(value).map(|(stored, _)| stored)
}

/// [`decode`] of a value without a bind time.
fn decode_plain(value: &str) -> Result<Stored, CodecError> {
    if !value.starts_with(PREFIX) {
        return Err(CodecError::UnknownFormat);
    }
    if value == ANON {
        return Ok(Stored::Bound(Owner::Anonymous));
    }
    if value == ENDED {
        return Ok(Stored::Ended);
    }
    let rest = value
        .strip_prefix(USER)
        .ok_or(CodecError::Malformed("unknown kind"))?;
    let (len, pair) = rest
        .split_once(':')
        .ok_or(CodecError::Malformed("missing length"))?;
    if len.is_empty()
        || len.len() > 5
        || !len.bytes().all(|b| b.is_ascii_digit())
        || (len.starts_with('0'))
    {
        return Err(CodecError::Malformed("bad length"));
    }
    let len: usize = len
        .parse()
        .map_err(|_| CodecError::Malformed("bad length"))?;
    if len >= pair.len() || !pair.is_char_boundary(len) {
        return Err(CodecError::Malformed("length out of range"));
    }
    let (iss, sub) = pair.split_at(len);
    Identity::new(iss, sub)
        .map(|id| Stored::Bound(Owner::User(id)))
        .map_err(|_| CodecError::Malformed("invalid identity"))
}

/// The encoding of a binding of `owner` made at `bound_at_ms` (milliseconds since the Unix
/// epoch). The Redis store writes it in its bind script, with Redis' clock; this is for the tests
/// and the fuzz target.
#[must_use]
pub fn encode_bound_at(owner: &Owner, bound_at_ms: u64) -> String {
    format!("{AT}{bound_at_ms}:{}", encode_owner(owner))
}

/// Decodes a stored value, strictly, with the time its binding was made when the value says
/// it (`None` for a value written without it, and for a tombstone).
///
/// # Errors
///
/// As [`decode`]; a time prefix on a tombstone, or a prefix that is not decimal milliseconds,
/// is malformed.
pub fn decode_with_time(value: &str) -> Result<(Stored, Option<u64>), CodecError> {
    let Some(rest) = value.strip_prefix(AT) else {
        return decode_plain(value).map(|stored| (stored, None));
    };
    let (ms, owner) = rest
        .split_once(':')
        .ok_or(CodecError::Malformed("missing bind time"))?;
    if ms.is_empty()
        || ms.len() > 19
        || !ms.bytes().all(|b| b.is_ascii_digit())
        || (ms.len() > 1 && ms.starts_with('0'))
    {
        return Err(CodecError::Malformed("bad bind time"));
    }
    let ms: u64 = ms
        .parse()
        .map_err(|_| CodecError::Malformed("bad bind time"))?;
    match decode_plain(owner)? {
        Stored::Bound(owner) => Ok((Stored::Bound(owner), Some(ms))),
        Stored::Ended => Err(CodecError::Malformed("bind time on a tombstone")),
    }
}

/// `decode_with_time` of raw bytes (not UTF-8 is corrupt too).
///
/// # Errors
///
/// As `decode_with_time`, plus [`CodecError::Malformed`] for bytes that are not UTF-8.
pub fn decode_bytes_with_time(value: &[u8]) -> Result<(Stored, Option<u64>), CodecError> {
    std::str::from_utf8(value)
        .map_err(|_| CodecError::Malformed("not UTF-8"))
        .and_then(decode_with_time)
}

/// Decodes a stored value that may be raw bytes (not UTF-8 is corrupt too).
///
/// # Errors
///
/// As [`decode`], plus [`CodecError::Malformed`] for bytes that are not UTF-8.
pub fn decode_bytes(value: &[u8]) -> Result<Stored, CodecError> {
    decode_bytes_with_time(value).map(|(stored, _)| stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(iss: &str, sub: &str) -> Owner {
        Owner::User(Identity::new(iss, sub).unwrap())
    }

    #[test]
    fn the_encoding_is_pinned() {
        let alice = user("https://i.example", "alice");
        assert_eq!(
            encode_owner(&alice),
            "mcpsb1:user:17:https://i.examplealice"
        );
        assert_eq!(encode_owner(&Owner::Anonymous), "mcpsb1:anon");
        assert_eq!(encode_ended(), "mcpsb1:ended");
    }

    #[test]
    fn round_trips() {
        for owner in [
            Owner::Anonymous,
            user("https://i.example", "alice"),
            user("a:b", "c"),
            user("a", "b:c"),
            user("ü", "ß"),
            user("x", "1:2:3"),
        ] {
            assert_eq!(decode(&encode_owner(&owner)).unwrap(), Stored::Bound(owner));
        }
        assert_eq!(decode(encode_ended()).unwrap(), Stored::Ended);
    }

    #[test]
    fn pairs_that_join_to_the_same_text_encode_differently() {
        assert_ne!(
            encode_owner(&user("a:b", "c")),
            encode_owner(&user("a", "b:c"))
        );
        assert_ne!(
            encode_owner(&user("ab", "c")),
            encode_owner(&user("a", "bc"))
        );
    }

    #[test]
    fn rejects_legacy_and_foreign_values() {
        for value in [
            "",
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "mcpsb0:anon",
            "MCPSB1:anon",
            "https://i.example|alice",
        ] {
            assert_eq!(decode(value), Err(CodecError::UnknownFormat), "{value:?}");
        }
    }

    #[test]
    fn rejects_malformed_values() {
        for value in [
            "mcpsb1:",
            "mcpsb1:anon ",
            "mcpsb1:anonx",
            "mcpsb1:ended\n",
            "mcpsb1:user",
            "mcpsb1:user:",
            "mcpsb1:user:abc",
            "mcpsb1:user::ab",
            "mcpsb1:user:01:ab",
            "mcpsb1:user:+1:ab",
            "mcpsb1:user:-1:ab",
            "mcpsb1:user:2:ab",
            "mcpsb1:user:3:ab",
            "mcpsb1:user:99999999999999999999:ab",
            "mcpsb1:user:0:ab",
            "mcpsb1:user:1:a\0",
            "mcpsb1:user:1:üb",
        ] {
            assert!(
                matches!(decode(value), Err(CodecError::Malformed(_))),
                "{value:?} -> {:?}",
                decode(value)
            );
        }
        assert!(decode_bytes(b"mcpsb1:user:1:a\xff").is_err());
    }

    #[test]
    fn bind_times_round_trip_and_are_strict() {
        let alice = user("https://i.example", "alice");
        let value = encode_bound_at(&alice, 1_733_450_000_123);
        assert_eq!(
            value,
            "mcpsb1:at:1733450000123:mcpsb1:user:17:https://i.examplealice"
        );
        assert_eq!(
            decode_with_time(&value),
            Ok((Stored::Bound(alice.clone()), Some(1_733_450_000_123)))
        );
        assert_eq!(decode(&value), Ok(Stored::Bound(alice.clone())));
        assert_eq!(
            decode_with_time(&encode_bound_at(&Owner::Anonymous, 0)),
            Ok((Stored::Bound(Owner::Anonymous), Some(0)))
        );
        assert_eq!(
            decode_with_time(&encode_owner(&alice)),
            Ok((Stored::Bound(alice), None))
        );
        assert_eq!(decode_with_time(encode_ended()), Ok((Stored::Ended, None)));
        for value in [
            "mcpsb1:at:",
            "mcpsb1:at:1",
            "mcpsb1:at::mcpsb1:anon",
            "mcpsb1:at:01:mcpsb1:anon",
            "mcpsb1:at:+1:mcpsb1:anon",
            "mcpsb1:at:1x:mcpsb1:anon",
            "mcpsb1:at:99999999999999999999:mcpsb1:anon",
            "mcpsb1:at:1:mcpsb1:ended",
            "mcpsb1:at:1:mcpsb1:at:1:mcpsb1:anon",
            "mcpsb1:at:1:anon",
        ] {
            assert!(decode_with_time(value).is_err(), "{value:?}");
        }
    }
}
