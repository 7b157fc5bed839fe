//! `tracing` events, all of them, with typed reason codes.
//!
//! Every event has `reason` (a stable code: a [`RejectionReason`] code, or one of `bound`, `ended`,
//! `end_failed` for a session's life), `iss` and `sub` of the caller (empty when anonymous or not
//! known yet), and `session`: the first 8 hex digits of the session's [`SessionKey`], a hash
//! (empty when the request named no usable session). The session id itself and tokens are never
//! logged.

use crate::{
    Identity, RejectionReason,
    binding::decide,
    store::{BindOutcome, Lookup, Owner, SessionKey, StoreError, StoreErrorKind},
};

fn halves(caller: Option<&Identity>) -> (&str, &str) {
    caller.map_or(("", ""), |id| (id.iss(), id.sub()))
}

fn short(key: Option<SessionKey>) -> String {
    key.map(|k| k.short()).unwrap_or_default()
}

/// A new session was bound.
pub(crate) fn bound(caller: Option<&Identity>, key: SessionKey) {
    let (iss, sub) = halves(caller);
    tracing::info!(reason = "bound", iss, sub, session = %key.short(), "session bound");
    crate::metrics::session_bound();
}

/// A task a `tools/call` created was recorded for its creator.
pub(crate) fn task_recorded(caller: Option<&Identity>, key: SessionKey) {
    let (iss, sub) = halves(caller);
    tracing::info!(reason = "task_recorded", iss, sub, task = %key.short(), "task recorded");
    crate::metrics::task_bound();
}

/// The owner deleted its session, and it was tombstoned.
pub(crate) fn owner_ended(caller: Option<&Identity>, key: SessionKey) {
    let (iss, sub) = halves(caller);
    tracing::info!(reason = "ended", iss, sub, session = %key.short(), "session deleted by its owner");
    crate::metrics::session_ended("owner");
}

/// The layer answered instead of forwarding. `key` is `None` when the request named no usable
/// session; `detail` says more where the reason alone does not.
pub(crate) fn rejected(
    reason: RejectionReason,
    caller: Option<&Identity>,
    key: Option<SessionKey>,
    detail: Option<&str>,
) {
    let (iss, sub) = halves(caller);
    let code = reason.code();
    let session = short(key);
    let detail = detail.unwrap_or_default();
    match reason {
        RejectionReason::UnknownSession
        | RejectionReason::EndedSession
        | RejectionReason::SessionMaxAge => {
            tracing::info!(reason = code, iss, sub, session, detail, "request refused");
        }
        RejectionReason::InvalidMintedSessionId => {
            tracing::error!(reason = code, iss, sub, session, detail, "request refused");
        }
        _ => tracing::warn!(reason = code, iss, sub, session, detail, "request refused"),
    }
}

/// A task refused as unknown for `reason`: logged, unless it is a corrupt record, which the
/// reading of the record logged already.
pub(crate) fn unknown_task(reason: RejectionReason, caller: Option<&Identity>, key: SessionKey) {
    if reason == RejectionReason::UnknownTask {
        rejected(reason, caller, Some(key), None);
    }
}

/// A mismatch, with the owner the caller is not.
pub(crate) fn mismatch(caller: Option<&Identity>, owner: Option<&Identity>, key: SessionKey) {
    let (iss, sub) = halves(caller);
    let (owner_iss, owner_sub) = halves(owner);
    tracing::warn!(
        reason = RejectionReason::IdentityMismatch.code(),
        iss,
        sub,
        owner_iss,
        owner_sub,
        session = %key.short(),
        "caller identity does not match session owner"
    );
}

/// A failure of the store the layer logged (and answered for, or worked around).
pub(crate) fn failed(
    reason: RejectionReason,
    caller: Option<&Identity>,
    key: SessionKey,
    error: &dyn std::fmt::Display,
    what: &'static str,
) {
    let (iss, sub) = halves(caller);
    tracing::error!(reason = reason.code(), iss, sub, session = %key.short(), %error, "{what}");
}

/// A session was ended by the layer (after a refusal).
pub(crate) fn ended(caller: Option<&Identity>, key: SessionKey, inner_status: Option<u16>) {
    let (iss, sub) = halves(caller);
    tracing::info!(reason = "ended", iss, sub, session = %key.short(), inner_status, "session ended");
    crate::metrics::session_ended("refused");
}

/// The inner service did not accept the `DELETE` that ends a session (`inner_status` is `None`
/// when it failed with an error). The session is tombstoned all the same; the inner service keeps
/// its state until its own idle timeout.
pub(crate) fn end_failed(caller: Option<&Identity>, key: SessionKey, inner_status: Option<u16>) {
    let (iss, sub) = halves(caller);
    let hint = match inner_status {
        Some(401 | 403) => {
            "the inner service refused the DELETE that ends the session: an auth layer inside \
             SessionBindingLayer? Put the auth layer outside it, or add credentials with \
             SessionBindingLayer::end_request_hook"
        }
        _ => {
            "the inner service did not accept the DELETE that ends the session; see \
             SessionBindingLayer::end_session_uri and end_request_hook"
        }
    };
    tracing::warn!(reason = "end_failed", iss, sub, session = %key.short(), inner_status, "{hint}");
    crate::metrics::session_ended("refused");
}

/// A session-creating request carried credentials but no identity reached the layer.
pub(crate) fn misconfigured(key: SessionKey) {
    tracing::error!(
        reason = RejectionReason::CredentialsWithoutIdentity.code(),
        iss = "",
        sub = "",
        session = %key.short(),
        "a session-creating request carries an Authorization header but no caller identity \
         reached SessionBindingLayer: the authentication layer must run before (outside) it \
         (added after it with axum's Router::layer, before it in a ServiceBuilder); refusing \
         instead of binding an anonymous session"
    );
}

/// Logs why a new session was refused ([`decide::new_owner`]'s `reason`): credentials without
/// an identity as the misconfiguration they are.
pub(crate) fn new_session_refused(reason: RejectionReason, key: SessionKey) {
    if reason == RejectionReason::CredentialsWithoutIdentity {
        misconfigured(key);
    } else {
        rejected(reason, None, Some(key), None);
    }
}

/// Logs what [`decide::session`] answered a request on a session, with why.
pub(crate) fn decision(
    decision: &decide::Session,
    found: &Result<crate::store::aged::Aged, StoreError>,
    caller: Option<&Identity>,
    key: SessionKey,
) {
    match (decision, found) {
        (
            decide::Session::Refuse {
                reason: RejectionReason::SessionMaxAge,
                ..
            },
            _,
        ) => {
            let detail = "session reached its maximum age: ended";
            let reason = RejectionReason::SessionMaxAge;
            rejected(reason, caller, Some(key), Some(detail));
        }
        (decide::Session::Refuse { .. }, Ok((Lookup::Bound(owner), _))) => {
            let owner = match owner {
                Owner::User(owner) => Some(owner),
                Owner::Anonymous => None,
            };
            mismatch(caller, owner, key);
        }
        (_, Err(error)) => {
            let (reason, what) = if error.kind() == StoreErrorKind::Corrupt {
                let what = "stored binding does not parse; failing closed";
                (RejectionReason::CorruptBinding, what)
            } else {
                let what = "binding store failed; request not forwarded";
                (RejectionReason::StoreUnavailable, what)
            };
            failed(reason, caller, key, error, what);
        }
        (decide::Session::AlreadyEnded, _) => {
            let detail = "DELETE of an ended session: answered 204";
            let reason = RejectionReason::EndedSession;
            rejected(reason, caller, Some(key), Some(detail));
        }
        (decide::Session::Answer(reason), _) => {
            rejected(*reason, caller, Some(key), None);
        }
        _ => {}
    }
}

/// Logs why a new session was not kept ([`decide::bound`]'s `reason`), by the store's answer.
pub(crate) fn bind_refused(
    reason: RejectionReason,
    caller: Option<&Identity>,
    key: SessionKey,
    outcome: &Result<BindOutcome, StoreError>,
) {
    match outcome {
        Err(error) if error.kind() == StoreErrorKind::Corrupt => {
            let what = "a new session id collides with a corrupt stored value";
            let corrupt = RejectionReason::CorruptBinding;
            failed(corrupt, caller, key, error, what);
        }
        Err(error) => {
            let what = "could not bind a new session; ending it";
            failed(reason, caller, key, error, what);
        }
        Ok(BindOutcome::AlreadyBound(_)) => {
            let what = "the inner service minted the id of a live session; it is left as it is";
            rejected(reason, caller, Some(key), Some(what));
        }
        Ok(_) => rejected(reason, caller, Some(key), None),
    }
}
