//! The introspection answer (RFC 7662 §2.2): [`parse`] reads it, [`decide`] judges it. No I/O,
//! no clock of its own: both are plain functions, table-tested and fuzzed. Built with `jwt`
//! alone (the client that asks for answers needs `oidc`), so the fuzz target needs no HTTP
//! client.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::{JwtRejection, validate::Verified};
use crate::identity::{Claims, Identity, IdentityError};

/// Largest introspection answer read, in bytes; a longer one is a provider failure (503).
pub(crate) const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// A parsed introspection answer.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Answer {
    /// `"active": true`, with every member of the answer.
    Active(Map<String, Value>),
    /// `"active": false`, or an answer that is not a JSON object with a boolean `active`.
    Inactive,
}

/// Parses an answer body. Anything but a JSON object whose `active` is a boolean is
/// [`Answer::Inactive`] (RFC 7662 §2.2: `active` is REQUIRED); an oversized body is `None`,
/// which the caller treats as a provider failure.
pub(crate) fn parse(body: &[u8]) -> Option<Answer> {
    if body.len() > MAX_ANSWER_BYTES {
        return None;
    }
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
        return Some(Answer::Inactive);
    };
    match map.get("active") {
        Some(Value::Bool(true)) => Some(Answer::Active(map)),
        _ => Some(Answer::Inactive),
    }
}

/// What [`decide`] checks an active answer against.
#[derive(Debug)]
pub(crate) struct Expect<'a> {
    /// The issuer whose endpoint answered.
    pub(crate) issuer: &'a str,
    /// This server's audiences (resource indicators).
    pub(crate) audiences: &'a HashSet<String>,
    /// Clock-skew leeway for `exp` and `nbf`, seconds.
    pub(crate) leeway: u64,
    /// For an answer without `sub`: the member whose value becomes the subject, prefixed with
    /// its name and a colon (`client_id:abc`); `None`: such answers are refused.
    pub(crate) subject_fallback: Option<&'a str>,
}

/// Judges an answer at `now` (seconds since the epoch), in the order the JWT path checks:
/// active, `iss`, `exp`/`nbf`, `aud` (or the RFC 8707 `resource`), the identity. The scopes
/// are checked by the caller, as for JWTs.
///
/// - `active` not `true` (or a malformed answer): [`JwtRejection::Inactive`];
/// - `iss`, when present, must be the issuer exactly (absent: the issuer asked is put in);
/// - `exp` and `nbf`, when present, must be numbers and hold with the leeway;
/// - `aud` (a string or an array of strings) must name one of the audiences; without `aud`, a
///   `resource` must; with neither, [`JwtRejection::BadAudience`];
/// - `sub` must be a non-empty string; without it, the configured fallback member; never an
///   empty subject.
pub(crate) fn decide(
    answer: &Answer,
    expect: &Expect<'_>,
    now: u64,
) -> Result<Verified, JwtRejection> {
    let Answer::Active(map) = answer else {
        return Err(JwtRejection::Inactive);
    };
    let mut claims = map.clone();
    match map.get("iss") {
        None => {
            claims.insert("iss".to_owned(), Value::from(expect.issuer));
        }
        Some(Value::String(iss)) if iss == expect.issuer => {}
        Some(Value::String(_)) => return Err(JwtRejection::UntrustedIssuer),
        Some(_) => return Err(invalid("iss", "is not a string")),
    }
    match map.get("exp") {
        None => {}
        Some(exp) => {
            let exp = number(exp).ok_or_else(|| invalid("exp", "is not a number"))?;
            if exp.saturating_add(expect.leeway) <= now {
                return Err(JwtRejection::Expired);
            }
        }
    }
    match map.get("nbf") {
        None => {}
        Some(nbf) => {
            let nbf = number(nbf).ok_or_else(|| invalid("nbf", "is not a number"))?;
            if nbf > now.saturating_add(expect.leeway) {
                return Err(JwtRejection::NotYetValid);
            }
        }
    }
    let audience = map.get("aud").or_else(|| map.get("resource"));
    if !names_an_audience(audience, expect.audiences) {
        return Err(JwtRejection::BadAudience);
    }
    let sub = match (map.get("sub"), expect.subject_fallback) {
        (Some(Value::String(sub)), _) if !sub.is_empty() => sub.clone(),
        (Some(Value::String(_)), _) => return Err(invalid("sub", "is empty")),
        (Some(_), _) => return Err(invalid("sub", "is not a string")),
        (None, None) => return Err(invalid("sub", "is missing")),
        (None, Some(member)) => match map.get(member) {
            Some(Value::String(value)) if !value.is_empty() => format!("{member}:{value}"),
            _ => return Err(invalid("sub", "is missing, and so is its fallback")),
        },
    };
    claims.insert("sub".to_owned(), Value::from(sub.as_str()));
    let identity = Identity::new(expect.issuer, sub).map_err(JwtRejection::InvalidClaims)?;
    Ok(Verified {
        identity,
        claims: Claims(claims),
    })
}

/// A non-negative whole number of seconds (a fraction is cut off, as `jsonwebtoken` does).
fn number(value: &Value) -> Option<u64> {
    value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0)
            .map(|f| f as u64)
    })
}

fn names_an_audience(value: Option<&Value>, audiences: &HashSet<String>) -> bool {
    match value {
        Some(Value::String(aud)) => audiences.contains(aud),
        Some(Value::Array(items)) => items
            .iter()
            .any(|item| item.as_str().is_some_and(|aud| audiences.contains(aud))),
        _ => false,
    }
}

fn invalid(claim: &'static str, problem: &'static str) -> JwtRejection {
    JwtRejection::InvalidClaims(IdentityError::invalid(claim, problem))
}

/// Until when an answer may be served from the cache, seconds since the epoch: the earlier of
/// the token's `exp` and `now + max` for an active answer, `now + negative` otherwise.
pub(crate) fn cache_until(answer: &Answer, now: u64, max: u64, negative: u64) -> u64 {
    match answer {
        Answer::Active(map) => {
            let limit = now.saturating_add(max);
            map.get("exp")
                .and_then(number)
                .map_or(limit, |exp| exp.min(limit))
        }
        Answer::Inactive => now.saturating_add(negative),
    }
}

/// Not API: the answer parser, for the fuzz target.
pub(crate) fn fuzz_answer(bytes: &[u8]) -> Result<String, String> {
    let audiences: HashSet<String> = ["https://mcp.example/mcp".to_owned()].into();
    let expect = Expect {
        issuer: "https://as.example",
        audiences: &audiences,
        leeway: 60,
        subject_fallback: Some("client_id"),
    };
    let Some(answer) = parse(bytes) else {
        return Err("too large".to_owned());
    };
    let _ = cache_until(&answer, 1_000_000, 60, 10);
    decide(&answer, &expect, 1_000_000)
        .map(|verified| verified.identity.sub().to_owned())
        .map_err(|rejection| rejection.code().to_owned())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const NOW: u64 = 1_000_000;
    const ISS: &str = "https://as.example";

    fn audiences() -> HashSet<String> {
        ["https://mcp.example/mcp".to_owned()].into()
    }

    fn active(extra: Value) -> Answer {
        let mut map = json!({
            "active": true, "iss": ISS, "sub": "alice", "aud": "https://mcp.example/mcp",
            "exp": NOW + 300, "client_id": "c1", "scope": "mcp",
        })
        .as_object()
        .unwrap()
        .clone();
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                map.remove(k);
            } else {
                map.insert(k.clone(), v.clone());
            }
        }
        Answer::Active(map)
    }

    #[test]
    fn parse_reads_only_objects_with_a_boolean_active() {
        assert!(matches!(
            parse(br#"{"active":true,"sub":"a"}"#),
            Some(Answer::Active(_))
        ));
        for inactive in [
            &br#"{"active":false}"#[..],
            br#"{"active":"true"}"#,
            br#"{"active":1}"#,
            br#"{}"#,
            br#"[{"active":true}]"#,
            b"true",
            b"",
            b"{\"active\":true",
            b"\xff\xfe",
        ] {
            assert_eq!(parse(inactive), Some(Answer::Inactive), "{inactive:?}");
        }
        let huge = vec![b' '; MAX_ANSWER_BYTES + 1];
        assert_eq!(parse(&huge), None);
    }

    /// A name, an answer, what it is checked against, the subject's (iss, sub) or the rejection.
    type Case<'a> = (
        &'a str,
        Answer,
        &'a Expect<'a>,
        Result<(&'a str, &'a str), JwtRejection>,
    );

    #[test]
    fn decide_table() {
        let auds = audiences();
        let expect = Expect {
            issuer: ISS,
            audiences: &auds,
            leeway: 60,
            subject_fallback: None,
        };
        let fallback = Expect {
            subject_fallback: Some("client_id"),
            ..Expect {
                issuer: ISS,
                audiences: &auds,
                leeway: 60,
                subject_fallback: None,
            }
        };
        let claims_err = |claim: &'static str, problem: &'static str| {
            Err(JwtRejection::InvalidClaims(IdentityError::invalid(
                claim, problem,
            )))
        };
        let cases: Vec<Case<'_>> = vec![
            ("valid", active(json!({})), &expect, Ok((ISS, "alice"))),
            (
                "inactive",
                Answer::Inactive,
                &expect,
                Err(JwtRejection::Inactive),
            ),
            (
                "no iss: the issuer asked",
                active(json!({"iss": null})),
                &expect,
                Ok((ISS, "alice")),
            ),
            (
                "other iss",
                active(json!({"iss": "https://evil.example"})),
                &expect,
                Err(JwtRejection::UntrustedIssuer),
            ),
            (
                "iss not a string",
                active(json!({"iss": 1})),
                &expect,
                claims_err("iss", "is not a string"),
            ),
            (
                "expired",
                active(json!({"exp": NOW - 61})),
                &expect,
                Err(JwtRejection::Expired),
            ),
            (
                "expired within leeway",
                active(json!({"exp": NOW - 59})),
                &expect,
                Ok((ISS, "alice")),
            ),
            (
                "exp not a number",
                active(json!({"exp": "soon"})),
                &expect,
                claims_err("exp", "is not a number"),
            ),
            (
                "exp negative",
                active(json!({"exp": -5})),
                &expect,
                claims_err("exp", "is not a number"),
            ),
            (
                "no exp",
                active(json!({"exp": null})),
                &expect,
                Ok((ISS, "alice")),
            ),
            (
                "nbf future",
                active(json!({"nbf": NOW + 61})),
                &expect,
                Err(JwtRejection::NotYetValid),
            ),
            (
                "nbf within leeway",
                active(json!({"nbf": NOW + 59})),
                &expect,
                Ok((ISS, "alice")),
            ),
            (
                "nbf not a number",
                active(json!({"nbf": true})),
                &expect,
                claims_err("nbf", "is not a number"),
            ),
            (
                "other aud",
                active(json!({"aud": "https://other/mcp"})),
                &expect,
                Err(JwtRejection::BadAudience),
            ),
            (
                "aud array",
                active(json!({"aud": ["x", "https://mcp.example/mcp"]})),
                &expect,
                Ok((ISS, "alice")),
            ),
            (
                "aud array without",
                active(json!({"aud": ["x", 1]})),
                &expect,
                Err(JwtRejection::BadAudience),
            ),
            (
                "aud object",
                active(json!({"aud": {"a": 1}})),
                &expect,
                Err(JwtRejection::BadAudience),
            ),
            (
                "no aud, resource",
                active(json!({"aud": null, "resource": "https://mcp.example/mcp"})),
                &expect,
                Ok((ISS, "alice")),
            ),
            (
                "no aud, other resource",
                active(json!({"aud": null, "resource": "https://x/"})),
                &expect,
                Err(JwtRejection::BadAudience),
            ),
            (
                "no aud nor resource",
                active(json!({"aud": null})),
                &expect,
                Err(JwtRejection::BadAudience),
            ),
            (
                "sub empty",
                active(json!({"sub": ""})),
                &fallback,
                claims_err("sub", "is empty"),
            ),
            (
                "sub not a string",
                active(json!({"sub": 7})),
                &expect,
                claims_err("sub", "is not a string"),
            ),
            (
                "no sub, no fallback",
                active(json!({"sub": null})),
                &expect,
                claims_err("sub", "is missing"),
            ),
            (
                "no sub, client_id",
                active(json!({"sub": null})),
                &fallback,
                Ok((ISS, "client_id:c1")),
            ),
            (
                "no sub, empty client_id",
                active(json!({"sub": null, "client_id": ""})),
                &fallback,
                claims_err("sub", "is missing, and so is its fallback"),
            ),
            (
                "no sub, no client_id",
                active(json!({"sub": null, "client_id": null})),
                &fallback,
                claims_err("sub", "is missing, and so is its fallback"),
            ),
            (
                "sub with NUL",
                active(json!({"sub": "a\u{0}b"})),
                &expect,
                Err(JwtRejection::InvalidClaims(
                    Identity::new(ISS, "a\0b").unwrap_err(),
                )),
            ),
        ];
        for (name, answer, expect, want) in cases {
            let got = decide(&answer, expect, NOW);
            match (got, want) {
                (Ok(verified), Ok((iss, sub))) => {
                    assert_eq!(verified.identity.iss(), iss, "{name}");
                    assert_eq!(verified.identity.sub(), sub, "{name}");
                    assert_eq!(
                        verified.claims.get("iss"),
                        Some(&Value::from(iss)),
                        "{name}"
                    );
                    assert_eq!(
                        verified.claims.get("sub"),
                        Some(&Value::from(sub)),
                        "{name}"
                    );
                }
                (Err(got), Err(want)) => assert_eq!(got, want, "{name}"),
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn cache_until_is_the_earlier_of_exp_and_the_maximum() {
        assert_eq!(cache_until(&active(json!({})), NOW, 60, 10), NOW + 60);
        assert_eq!(
            cache_until(&active(json!({"exp": NOW + 5})), NOW, 60, 10),
            NOW + 5
        );
        assert_eq!(
            cache_until(&active(json!({"exp": null})), NOW, 60, 10),
            NOW + 60
        );
        assert_eq!(
            cache_until(&active(json!({"exp": "x"})), NOW, 60, 10),
            NOW + 60
        );
        assert_eq!(cache_until(&Answer::Inactive, NOW, 60, 10), NOW + 10);
    }
}
