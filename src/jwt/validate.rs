//! Reading the bearer token and verifying it. No I/O: the revocation check is the service's job.

use std::{collections::HashMap, str::FromStr, sync::Arc};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use http::{HeaderMap, header};
use jsonwebtoken::{Validation, errors::ErrorKind};

use super::Algorithm;
use serde_json::{Map, Value};

use super::{JwtKey, JwtKeys, JwtRejection};
use crate::identity::{Claims, Identity, IdentityError};

/// Longest token accepted, in bytes. Real access tokens are a few KiB at most.
pub(crate) const MAX_TOKEN_LEN: usize = 16 * 1024;

/// The token from the request's single `Authorization: Bearer` header (RFC 6750 §2.1).
///
/// The query string and the body are never read (MCP: "Access tokens MUST NOT be included in the
/// URI query string").
pub(crate) fn bearer_token(headers: &HeaderMap) -> Result<&str, JwtRejection> {
    token_of(headers, "bearer")
}

/// The token from the request's single `Authorization` header of `scheme` (lowercase; compared
/// case-insensitively): a repeated header, one that is not text, or a token that is not a
/// `b64token` is malformed; no header, or another scheme, is [`JwtRejection::Missing`] (RFC 6750
/// §3.1: no error code).
pub(crate) fn token_of<'a>(headers: &'a HeaderMap, scheme: &str) -> Result<&'a str, JwtRejection> {
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
    let (named, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !named.eq_ignore_ascii_case(scheme) {
        return Err(JwtRejection::Missing);
    }
    let token = rest.trim_start_matches(' ');
    if !is_b64token(token) {
        return Err(JwtRejection::MalformedHeader);
    }
    Ok(token)
}

/// RFC 6750 §2.1: `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
pub(crate) fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// Where one trusted issuer's keys come from.
#[derive(Debug)]
pub(crate) enum KeySource {
    /// Keys given at build time.
    Static(JwtKeys),
    /// Keys fetched through discovery (feature `oidc`).
    #[cfg(feature = "oidc")]
    Remote(Arc<super::remote::RemoteKeys>),
}

/// The verification half of the configuration.
#[derive(Debug)]
pub(crate) struct Verifier {
    /// The trusted issuers, each with its own keys: a token is verified only with the keys of
    /// the issuer its `iss` names.
    pub(crate) issuers: HashMap<String, KeySource>,
    /// One `jsonwebtoken` validation per allowed algorithm (its `algorithms` holds only that one,
    /// as `jsonwebtoken` requires every listed algorithm to match the key's family).
    pub(crate) validations: Vec<(Algorithm, Validation)>,
    pub(crate) require_access_token_type: bool,
    /// Scopes the token must all grant (`scope` or `scp`); empty: no check.
    pub(crate) required_scopes: Vec<String>,
    /// The issuers trusted through introspection (feature `oidc`).
    #[cfg(feature = "oidc")]
    pub(crate) introspection: Option<Arc<super::introspect::Introspectors>>,
}

/// A verified token.
#[derive(Debug)]
pub(crate) struct Verified {
    pub(crate) identity: Identity,
    pub(crate) claims: Claims,
}

/// The outcome of [`Verifier::start`]: a verdict now, or after the issuer's keys are fetched.
pub(crate) enum Verification {
    Done(Result<Verified, JwtRejection>),
    #[cfg(feature = "oidc")]
    Pending(futures::future::BoxFuture<'static, Result<Verified, JwtRejection>>),
}

/// What the header and the unverified payload say.
struct Parsed<'a> {
    alg: Algorithm,
    validation: &'a Validation,
    kid: Option<String>,
    iss: String,
}

impl Verifier {
    /// Verifies the token: shape, `alg`, `typ`, the issuer's keys, signature, `exp`/`nbf`,
    /// `iss`, `aud`, string `iss`/`sub`, and the required scopes. When the issuer's keys must
    /// be fetched first (unknown `kid`, stale keys), the verdict comes later.
    pub(crate) fn start(self: &Arc<Self>, token: &str) -> Verification {
        // A token that is not a JWT of an issuer with keys may be for introspection (feature
        // `oidc`): JWTs verified here pay nothing for it.
        let parsed = match self.parse(token) {
            Ok(parsed) => parsed,
            Err(rejection) => return self.introspect_or(token, rejection),
        };
        let Some(source) = self.issuers.get(&parsed.iss) else {
            return self.introspect_or(token, JwtRejection::UntrustedIssuer);
        };
        match source {
            KeySource::Static(keys) => Verification::Done(self.verify_with(token, &parsed, keys)),
            #[cfg(feature = "oidc")]
            KeySource::Remote(remote) => self.start_remote(token, parsed, remote),
        }
    }

    /// The introspection of `token` when an introspected issuer takes it, else `rejection`.
    fn introspect_or(self: &Arc<Self>, token: &str, rejection: JwtRejection) -> Verification {
        #[cfg(feature = "oidc")]
        if let Some(introspection) = &self.introspection
            && let Some(verification) = introspection.route(self, token)
        {
            return verification;
        }
        #[cfg(not(feature = "oidc"))]
        let _ = token;
        Verification::Done(Err(rejection))
    }

    #[cfg(feature = "oidc")]
    fn start_remote(
        self: &Arc<Self>,
        token: &str,
        parsed: Parsed<'_>,
        remote: &Arc<super::remote::RemoteKeys>,
    ) -> Verification {
        use super::remote::Usable;
        let flight = match remote.usable() {
            Usable::Keys(keys) => {
                let unknown_kid = parsed
                    .kid
                    .as_deref()
                    .is_some_and(|kid| !keys.iter().any(|k| k.kid() == Some(kid)));
                if !unknown_kid {
                    return Verification::Done(self.verify_with(token, &parsed, &keys));
                }
                match remote.refetch("unknown kid") {
                    Some(flight) => flight,
                    None => return Verification::Done(Err(JwtRejection::UnknownKey)),
                }
            }
            Usable::Stale => match remote.refetch("keys missing or stale") {
                Some(flight) => flight,
                None => {
                    return Verification::Done(Err(JwtRejection::KeysUnavailable {
                        retry_after: remote.retry_after(),
                    }));
                }
            },
        };
        let token = token.to_owned();
        let remote = remote.clone();
        let verifier = self.clone();
        Verification::Pending(Box::pin(async move {
            flight.await;
            let parsed = verifier.parse(&token)?;
            match remote.usable() {
                Usable::Keys(keys) => verifier.verify_with(&token, &parsed, &keys),
                Usable::Stale => Err(JwtRejection::KeysUnavailable {
                    retry_after: remote.retry_after(),
                }),
            }
        }))
    }

    /// The header checks, and the `iss` of the (not yet verified) payload, which picks the keys.
    fn parse(&self, token: &str) -> Result<Parsed<'_>, JwtRejection> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(JwtRejection::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(_signature), None) =
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
            Some(Value::String(kid)) => Some(kid.clone()),
            Some(_) => return Err(JwtRejection::Malformed),
        };
        /// Only `iss`: the rest is read after the signature is verified.
        #[derive(serde::Deserialize)]
        struct Unverified {
            iss: Option<Value>,
        }
        let unverified: Unverified = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or(JwtRejection::Malformed)?;
        let Some(Value::String(iss)) = unverified.iss else {
            return Err(invalid("iss", "is missing or not a string"));
        };
        Ok(Parsed {
            alg,
            validation,
            kid,
            iss,
        })
    }

    /// Verifies with `keys` (the keys of the token's issuer), then checks the scopes.
    fn verify_with(
        &self,
        token: &str,
        parsed: &Parsed<'_>,
        keys: &JwtKeys,
    ) -> Result<Verified, JwtRejection> {
        let mut rejection = JwtRejection::UnknownKey;
        for key in keys.candidates(parsed.kid.as_deref(), parsed.alg) {
            match jsonwebtoken::decode::<Map<String, Value>>(
                token,
                key.decoding_key(),
                parsed.validation,
            ) {
                Ok(data) => {
                    let verified = verified(Claims(data.claims))?;
                    if verified.identity.iss() != parsed.iss {
                        // Cannot happen: the signed payload is the one `iss` was read from.
                        return Err(JwtRejection::UntrustedIssuer);
                    }
                    self.check_scopes(&verified.claims)?;
                    return Ok(verified);
                }
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
                    ErrorKind::Json(_) => return Err(explain_unreadable(token, key, parsed.alg)),
                    // The signature verified (claims are checked after it): a real verdict.
                    _ => return Err(claims_rejection(err.kind())),
                },
            }
        }
        Err(rejection)
    }

    /// Every required scope is granted by `scope` (space separated, RFC 8693 §4.2 / RFC 9068)
    /// or `scp` (an array of strings, or a space-separated string).
    pub(crate) fn check_scopes(&self, claims: &Claims) -> Result<(), JwtRejection> {
        if self.required_scopes.is_empty() {
            return Ok(());
        }
        let mut granted: Vec<&str> = Vec::new();
        // `scope` is a space-separated string (RFC 9068 §2.2.3); `scp` (Entra, Okta) an array
        // of strings or a space-separated string. Anything else grants nothing.
        if let Some(Value::String(list)) = claims.get("scope") {
            granted.extend(list.split(' '));
        }
        match claims.get("scp") {
            Some(Value::String(list)) => granted.extend(list.split(' ')),
            Some(Value::Array(items)) => granted.extend(items.iter().filter_map(Value::as_str)),
            _ => {}
        }
        if self
            .required_scopes
            .iter()
            .all(|scope| granted.contains(&scope.as_str()))
        {
            Ok(())
        } else {
            Err(JwtRejection::InsufficientScope)
        }
    }
}

/// Names the problem of a token whose claims `jsonwebtoken` could not parse. Always a rejection;
/// the signature decides only how precise the reason is.
fn explain_unreadable(token: &str, key: &JwtKey, alg: Algorithm) -> JwtRejection {
    let Some((message, signature)) = token.rsplit_once('.') else {
        return JwtRejection::Malformed;
    };
    let authentic = jsonwebtoken::crypto::verify(
        signature,
        message.as_bytes(),
        key.decoding_key(),
        alg.to_jsonwebtoken(),
    )
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
    if let Err(err) = Identity::try_from(&claims) {
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
    let identity = Identity::try_from(&claims).map_err(JwtRejection::InvalidClaims)?;
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
