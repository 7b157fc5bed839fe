//! Reading the bearer token and verifying it. No I/O: the revocation check is the service's job.

use std::str::FromStr;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use http::{HeaderMap, header};
use jsonwebtoken::{Algorithm, Validation, errors::ErrorKind};
use serde_json::{Map, Value};

use super::{JwtKey, JwtKeys, JwtRejection};
use crate::identity::{Claims, Identity, IdentityError, identity_from_claims};

/// Longest token accepted, in bytes. Real access tokens are a few KiB at most.
const MAX_TOKEN_LEN: usize = 16 * 1024;

/// The token from the request's single `Authorization: Bearer` header (RFC 6750 §2.1).
///
/// The query string and the body are never read (MCP: "Access tokens MUST NOT be included in the
/// URI query string").
pub(crate) fn bearer_token(headers: &HeaderMap) -> Result<&str, JwtRejection> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(JwtRejection::Missing);
    };
    if values.next().is_some() {
        return Err(JwtRejection::MalformedHeader);
    }
    let value = value
        .to_str()
        .map_err(|_| JwtRejection::MalformedHeader)?
        .trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        // Another scheme: no bearer credentials at all (RFC 6750 §3.1: no error code).
        return Err(JwtRejection::Missing);
    }
    let token = rest.trim_start_matches(' ');
    if !is_b64token(token) {
        return Err(JwtRejection::MalformedHeader);
    }
    Ok(token)
}

/// RFC 6750 §2.1: `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// The verification half of the configuration.
#[derive(Debug)]
pub(crate) struct Verifier {
    pub(crate) keys: JwtKeys,
    /// One `jsonwebtoken` validation per allowed algorithm (its `algorithms` holds only that one,
    /// as `jsonwebtoken` requires every listed algorithm to match the key's family).
    pub(crate) validations: Vec<(Algorithm, Validation)>,
    pub(crate) require_access_token_type: bool,
}

/// A verified token.
#[derive(Debug)]
pub(crate) struct Verified {
    pub(crate) identity: Identity,
    pub(crate) claims: Claims,
}

impl Verifier {
    /// Verifies the token: shape, `alg`, `typ`, key choice, signature, `exp`/`nbf`, `iss`, `aud`,
    /// and string `iss`/`sub`.
    pub(crate) fn verify(&self, token: &str) -> Result<Verified, JwtRejection> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(JwtRejection::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(_payload), Some(_signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtRejection::Malformed);
        };
        let header: Map<String, Value> = URL_SAFE_NO_PAD
            .decode(header)
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or(JwtRejection::Malformed)?;

        let Some(Value::String(alg)) = header.get("alg") else {
            return Err(JwtRejection::Malformed);
        };
        // `none` (in any case) is refused before anything else; `jsonwebtoken` cannot even
        // represent it, but the reason should say what happened.
        if alg.eq_ignore_ascii_case("none") {
            return Err(JwtRejection::AlgorithmNotAllowed);
        }
        let alg = Algorithm::from_str(alg).map_err(|_| JwtRejection::AlgorithmNotAllowed)?;
        let Some((_, validation)) = self.validations.iter().find(|(a, _)| *a == alg) else {
            return Err(JwtRejection::AlgorithmNotAllowed);
        };
        // RFC 7515 §4.1.11: critical extensions we do not understand (we understand none).
        if header.contains_key("crit") {
            return Err(JwtRejection::Malformed);
        }
        if self.require_access_token_type && !is_access_token_type(header.get("typ")) {
            return Err(JwtRejection::TypeNotAllowed);
        }
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.as_str()),
            Some(_) => return Err(JwtRejection::Malformed),
        };

        let mut rejection = JwtRejection::UnknownKey;
        for key in self.keys.candidates(kid, alg) {
            match jsonwebtoken::decode::<Map<String, Value>>(token, key.decoding_key(), validation)
            {
                Ok(data) => return verified(Claims(data.claims)),
                Err(err) => match err.kind() {
                    // This key did not sign it (or cannot be used): try the next one.
                    ErrorKind::InvalidSignature
                    | ErrorKind::InvalidKeyFormat
                    | ErrorKind::InvalidRsaKey(_)
                    | ErrorKind::InvalidEcdsaKey
                    | ErrorKind::InvalidEddsaKey
                    | ErrorKind::InvalidAlgorithm => rejection = JwtRejection::BadSignature,
                    // `jsonwebtoken` cannot read the claims (an `iss`, `sub` or `aud` that is
                    // an array or object of the wrong shape fails its parse outright).
                    ErrorKind::Json(_) => return Err(explain_unreadable(token, key, alg)),
                    // The signature verified (claims are checked after it): a real verdict.
                    _ => return Err(claims_rejection(err.kind())),
                },
            }
        }
        Err(rejection)
    }
}

/// Names the problem of a token whose claims `jsonwebtoken` could not parse. Always a rejection;
/// the signature decides only how precise the reason is.
fn explain_unreadable(token: &str, key: &JwtKey, alg: Algorithm) -> JwtRejection {
    let Some((message, signature)) = token.rsplit_once('.') else {
        return JwtRejection::Malformed;
    };
    let authentic =
        jsonwebtoken::crypto::verify(signature, message.as_bytes(), key.decoding_key(), alg)
            .unwrap_or(false);
    if !authentic {
        return JwtRejection::Malformed;
    }
    let claims: Option<Map<String, Value>> = message
        .split_once('.')
        .and_then(|(_, payload)| URL_SAFE_NO_PAD.decode(payload).ok())
        .and_then(|json| serde_json::from_slice(&json).ok());
    let Some(claims) = claims.map(Claims) else {
        return JwtRejection::Malformed;
    };
    // The claims `jsonwebtoken` parses are `iss`, `sub`, `aud`, `exp` and `nbf`.
    if let Err(err) = identity_from_claims(&claims) {
        return JwtRejection::InvalidClaims(err);
    }
    for name in ["exp", "nbf"] {
        if claims.get(name).is_some_and(|value| !value.is_number()) {
            return invalid(name, "is not a number");
        }
    }
    match claims.get("aud") {
        Some(Value::String(_)) => JwtRejection::Malformed,
        Some(Value::Array(auds)) if auds.iter().all(Value::is_string) => JwtRejection::Malformed,
        _ => JwtRejection::BadAudience,
    }
}

fn verified(claims: Claims) -> Result<Verified, JwtRejection> {
    let identity = identity_from_claims(&claims).map_err(JwtRejection::InvalidClaims)?;
    Ok(Verified { identity, claims })
}

/// RFC 9068 §4: `typ` is `at+jwt` or `application/at+jwt` (media types compare case-insensitively).
fn is_access_token_type(typ: Option<&Value>) -> bool {
    let Some(Value::String(typ)) = typ else {
        return false;
    };
    let typ = typ.to_ascii_lowercase();
    typ == "at+jwt" || typ == "application/at+jwt"
}

fn claims_rejection(kind: &ErrorKind) -> JwtRejection {
    match kind {
        ErrorKind::ExpiredSignature => JwtRejection::Expired,
        ErrorKind::ImmatureSignature => JwtRejection::NotYetValid,
        ErrorKind::InvalidAudience => JwtRejection::BadAudience,
        ErrorKind::InvalidIssuer => JwtRejection::UntrustedIssuer,
        // `jsonwebtoken` reports a claim of the wrong type as missing.
        ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
            "aud" => JwtRejection::BadAudience,
            "iss" => invalid("iss", "is missing or not a string"),
            "exp" => invalid("exp", "is missing or not a number"),
            "nbf" => invalid("nbf", "is missing or not a number"),
            _ => JwtRejection::Malformed,
        },
        ErrorKind::InvalidClaimFormat(claim) => match claim.as_str() {
            "exp" => invalid("exp", "is not a number"),
            "nbf" => invalid("nbf", "is not a number"),
            _ => JwtRejection::Malformed,
        },
        _ => JwtRejection::Malformed,
    }
}

fn invalid(claim: &'static str, problem: &'static str) -> JwtRejection {
    JwtRejection::InvalidClaims(IdentityError::invalid(claim, problem))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(header::AUTHORIZATION, v.parse().unwrap());
        }
        map
    }

    #[test]
    fn bearer_token_parsing() {
        assert_eq!(
            bearer_token(&headers(&["Bearer abc.def.ghi"])),
            Ok("abc.def.ghi")
        );
        assert_eq!(
            bearer_token(&headers(&["bearer  a-b_c~+/=="])),
            Ok("a-b_c~+/==")
        );
        assert_eq!(bearer_token(&headers(&[])), Err(JwtRejection::Missing));
        assert_eq!(
            bearer_token(&headers(&["Basic dXNlcjpwdw=="])),
            Err(JwtRejection::Missing)
        );
        assert_eq!(
            bearer_token(&headers(&["Bearerabc"])),
            Err(JwtRejection::Missing)
        );
        for bad in [
            &["Bearer"][..],
            &["Bearer "],
            &["Bearer a b"],
            &["Bearer ==="],
            &["Bearer a\"b"],
        ] {
            assert_eq!(
                bearer_token(&headers(bad)),
                Err(JwtRejection::MalformedHeader),
                "{bad:?}"
            );
        }
        assert_eq!(
            bearer_token(&headers(&["Bearer a", "Bearer b"])),
            Err(JwtRejection::MalformedHeader)
        );
    }

    #[test]
    fn typ_check_accepts_both_spellings() {
        for ok in [
            "at+jwt",
            "application/at+jwt",
            "AT+JWT",
            "Application/At+Jwt",
        ] {
            assert!(is_access_token_type(Some(&Value::from(ok))), "{ok}");
        }
        for bad in [Value::from("JWT"), Value::from(1), Value::Null] {
            assert!(!is_access_token_type(Some(&bad)));
        }
        assert!(!is_access_token_type(None));
    }
}
