//! What happens to a request once its token is verified or refused: [`admit`], shared by the
//! service (a verdict at once) and its response future (a verdict after the keys were fetched).

use http::{Request, Response};

use super::{
    JwtRejection, config::Config, dpop::Outcome, revocation::RevocationFuture, validate::Verified,
};
use crate::identity::IdentityError;

/// What happens to a request once its token is verified (or refused).
pub(crate) enum Admission {
    /// Refused: this response.
    Rejected(Response<http_body_util::Full<bytes::Bytes>>),
    /// Admitted: identity and claims are in the request extensions.
    Forward,
    /// Admitted if this revocation check says the token is not revoked.
    Check(RevocationFuture),
    /// Admitted if the DPoP replay store says the proof is fresh (`Ok(true)`), and then the
    /// revocation check, if any, says the token is not revoked.
    Replay(ReplayFuture, Option<RevocationFuture>),
}

/// The answer of a DPoP replay store: `Ok(true)` when the proof is fresh.
pub(crate) type ReplayFuture = futures::future::BoxFuture<'static, Result<bool, tower::BoxError>>;

/// The step after verification, shared by the immediate and the deferred (keys being fetched)
/// paths: the `jti` rule, the identity in the extensions, the revocation check to run.
pub(crate) fn admit<B>(
    config: &Config,
    verified: Result<Verified, JwtRejection>,
    request: &mut Request<B>,
) -> Admission {
    let verified = verified.and_then(|mut verified| {
        // DPoP (RFC 9449): the proof, the key binding, the downgrades, the replay cache last.
        let replay = match &config.dpop {
            None => None,
            Some(dpop) => match dpop.check(request, &verified, super::dpop::now())? {
                Outcome::Bearer => None,
                Outcome::Bound(jkt) => {
                    verified.identity = verified.identity.with_jkt(jkt);
                    None
                }
                Outcome::Pending(jkt, replay) => {
                    verified.identity = verified.identity.with_jkt(jkt);
                    Some(replay)
                }
            },
        };
        // With a revocation check, a token must name its `jti`: one without could never
        // be revoked.
        let jti = match &config.revocation {
            None => None,
            Some(_) => match verified.claims.get("jti") {
                Some(serde_json::Value::String(jti)) => Some(jti.clone()),
                Some(_) => return Err(invalid_jti("is not a string")),
                None => return Err(invalid_jti("is missing")),
            },
        };
        Ok((verified, jti, replay))
    });
    let (verified, jti, replay) = match verified {
        Ok(ok) => ok,
        Err(rejection) => {
            if let JwtRejection::KeysUnavailable { .. } = rejection {
                tracing::warn!(
                    reason = rejection.code(),
                    "bearer token refused: {rejection}"
                );
            } else {
                tracing::debug!(reason = rejection.code(), "bearer token rejected");
            }
            let response = config.rejector.response_to(rejection, request.headers());
            return Admission::Rejected(response);
        }
    };
    tracing::trace!(
        iss = verified.identity.iss(),
        sub = verified.identity.sub(),
        "bearer token verified"
    );
    let check = match (&config.revocation, jti) {
        (Some(revocation), Some(jti)) => Some(revocation.is_revoked(&jti, &verified.claims)),
        _ => None,
    };
    let extensions = request.extensions_mut();
    extensions.insert(verified.identity);
    extensions.insert(verified.claims);
    match (check, replay) {
        (None, None) => {
            crate::metrics::auth_accepted(extensions);
            Admission::Forward
        }
        (Some(check), None) => Admission::Check(check),
        (check, Some(replay)) => Admission::Replay(replay, check),
    }
}

fn invalid_jti(problem: &'static str) -> JwtRejection {
    JwtRejection::InvalidClaims(IdentityError::invalid("jti", problem))
}
