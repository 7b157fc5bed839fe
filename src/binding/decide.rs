//! The binding decision, as plain functions: which caller may use which session or task, what a
//! refusal is, what a store error means, and what happens to an ended or unknown session.
//!
//! No I/O, no async, no store or service types: the inputs are what the request carried and
//! what the store answered, the outputs say what to do. [`SessionBinding`](crate::SessionBinding)
//! and the task checks carry the answers out; every path that can let a request through or
//! refuse it on a binding asks here. The table test below goes through every combination, and
//! `cargo mutants` over this file finds no mutant it misses.

use std::time::{Duration, SystemTime};

use crate::{
    Identity, MismatchAnswer, RejectionReason,
    store::{BindOutcome, Lookup, Owner, StoreErrorKind},
};

/// The settings a decision depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Policy {
    /// Sessions may be created and used without an identity.
    pub(crate) allow_anonymous: bool,
    /// How a refused caller is answered.
    pub(crate) mismatch_answer: MismatchAnswer,
    /// A refused caller's session is ended.
    pub(crate) end_on_mismatch: bool,
    /// Sessions end at this age, whatever their activity.
    pub(crate) max_age: Option<Duration>,
}

/// Whether a session bound at `bound_at` has reached `policy`'s maximum age at `now`. A binding
/// of unknown time (written before the store recorded times) never has; one bound in the future
/// of `now` (clocks apart) has age zero.
pub(crate) fn too_old(bound_at: Option<SystemTime>, now: SystemTime, policy: &Policy) -> bool {
    match (bound_at, policy.max_age) {
        (Some(bound_at), Some(max_age)) => {
            now.duration_since(bound_at).is_ok_and(|age| age >= max_age)
        }
        _ => false,
    }
}

/// The kind of a request that names a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A POST: JSON-RPC messages, answered one by one when refused.
    Post,
    /// A `DELETE`: ends the session.
    Delete,
    /// Anything else (a GET stream).
    Other,
}

impl Kind {
    pub(crate) fn of(method: &http::Method) -> Self {
        match *method {
            http::Method::POST => Self::Post,
            http::Method::DELETE => Self::Delete,
            _ => Self::Other,
        }
    }
}

/// How a refused caller is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// One MCP answer per request in the body, with its `id` (a POST).
    PerRequest,
    /// One answer without `id` (403).
    Plain,
    /// 404, as for an unknown session, at once.
    NotFound,
}

/// What to do with a request that names a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Session {
    /// Forward it. `tombstone_on_success`: an owner's `DELETE`, whose success ends the binding.
    Forward { tombstone_on_success: bool },
    /// Answer `reason` without forwarding; the session and its binding stay as they are.
    Answer(RejectionReason),
    /// 204 without forwarding: a `DELETE` of a session that is already over.
    AlreadyEnded,
    /// Refuse the caller for `reason`, answering as `answer`; `end`: end the session first.
    Refuse {
        reason: RejectionReason,
        answer: Answer,
        end: bool,
    },
}

/// Whether `caller` may use a session `owner` holds.
pub(crate) fn owns(owner: &Owner, caller: Option<&Identity>, policy: &Policy) -> bool {
    match (owner, caller) {
        (Owner::User(owner), Some(caller)) => owner == caller,
        (Owner::Anonymous, None) => policy.allow_anonymous,
        _ => false,
    }
}

/// The decision on a request of kind `kind` by `caller`, on a session the store found as
/// `found`; `too_old`: a binding found has reached the maximum age ([`too_old`]), and is ended
/// whoever asks, answered 404 as an ended session is.
pub(crate) fn session(
    found: Result<&Lookup, StoreErrorKind>,
    caller: Option<&Identity>,
    kind: Kind,
    policy: &Policy,
    too_old: bool,
) -> Session {
    let reason = match found {
        Ok(Lookup::Bound(_)) if too_old => {
            return Session::Refuse {
                reason: RejectionReason::SessionMaxAge,
                answer: Answer::Plain,
                end: true,
            };
        }
        Ok(Lookup::Bound(owner)) if owns(owner, caller, policy) => {
            return Session::Forward {
                tombstone_on_success: kind == Kind::Delete,
            };
        }
        Ok(Lookup::Bound(_)) => RejectionReason::IdentityMismatch,
        Err(StoreErrorKind::Corrupt) => RejectionReason::CorruptBinding,
        Ok(Lookup::Missing) => return Session::Answer(RejectionReason::UnknownSession),
        // A `DELETE` of a session the layer already ended answers 204, so client shutdown code
        // (the TypeScript SDK's `terminateSession()` throws on 404) works after a refused
        // hijack, whoever asks: a tombstone has no owner. Not with `MismatchAnswer::NotFound`,
        // where 204 after a 404 would tell a thief the id it was refused on had been live.
        Ok(Lookup::Ended)
            if kind == Kind::Delete && policy.mismatch_answer == MismatchAnswer::Mcp =>
        {
            return Session::AlreadyEnded;
        }
        Ok(Lookup::Ended) => return Session::Answer(RejectionReason::EndedSession),
        Err(_) => return Session::Answer(RejectionReason::StoreUnavailable),
    };
    let answer = match (policy.mismatch_answer, kind) {
        (MismatchAnswer::NotFound, _) => Answer::NotFound,
        (MismatchAnswer::Mcp, Kind::Post) => Answer::PerRequest,
        (MismatchAnswer::Mcp, _) => Answer::Plain,
    };
    Session::Refuse {
        reason,
        answer,
        end: policy.end_on_mismatch,
    }
}

/// Whether an open stream of a session (a GET's SSE answer) may go on, when the session's
/// binding is read again: while `caller` still owns the session and it is not `too_old`. `Err` says why it ends. A store
/// that does not answer keeps the stream (the next recheck tries again); any other store error
/// ends it, failing closed as a request would.
pub(crate) fn stream(
    found: Result<&Lookup, StoreErrorKind>,
    caller: Option<&Identity>,
    policy: &Policy,
    too_old: bool,
) -> Result<(), &'static str> {
    match found {
        Ok(Lookup::Bound(_)) if too_old => Err("session past its maximum age"),
        Ok(Lookup::Bound(owner)) if owns(owner, caller, policy) => Ok(()),
        Ok(Lookup::Bound(_)) => Err("bound to someone else"),
        Ok(Lookup::Ended) => Err("session ended"),
        Ok(Lookup::Missing) => Err("binding missing or expired"),
        Err(StoreErrorKind::Unavailable) => Ok(()),
        Err(_) => Err("store error, not transient"),
    }
}

/// Who a session created for `caller` is bound to, or why it is refused (and ended):
/// `credentials` says whether the request carried an `Authorization` header.
///
/// Credentials without an identity mean the auth layer is misplaced (inside this layer) or does
/// not insert the identity: binding would make the session anonymous, open to anyone. That is
/// refused even with anonymous sessions allowed.
pub(crate) fn new_owner(
    caller: Option<&Identity>,
    credentials: bool,
    policy: &Policy,
) -> Result<Owner, RejectionReason> {
    match caller {
        Some(identity) => Ok(Owner::User(identity.clone())),
        None if credentials => Err(RejectionReason::CredentialsWithoutIdentity),
        None if policy.allow_anonymous => Ok(Owner::Anonymous),
        None => Err(RejectionReason::MissingIdentity),
    }
}

/// What to do after binding a new session, from the store's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bound {
    /// Bound: the response leaves with its session id.
    Keep,
    /// Refused for `reason`, the id withheld. `end`: end the inner session; `tombstone`: also
    /// leave a tombstone on the id; `retry_after`: a 429 with this `Retry-After`.
    Refuse {
        reason: RejectionReason,
        end: bool,
        tombstone: bool,
        retry_after: Option<Duration>,
    },
}

/// The decision on a new session, from what binding it returned.
pub(crate) fn bound(outcome: Result<&BindOutcome, StoreErrorKind>) -> Bound {
    let (reason, end, tombstone, retry_after) = match outcome {
        Ok(BindOutcome::Created) => return Bound::Keep,
        // Nothing was written: the inner session is ended and no id leaves.
        Ok(BindOutcome::LimitReached { retry_after }) => (
            RejectionReason::TooManySessions,
            true,
            false,
            Some(*retry_after),
        ),
        // The inner service handed out an id that is someone's live session (a fixation in the
        // server underneath). It is not the caller's to end: no tombstone, no `DELETE`.
        Ok(BindOutcome::AlreadyBound(_)) => (RejectionReason::BindConflict, false, false, None),
        // An ended id minted again: nobody's session; the tombstone stays as it is.
        Ok(BindOutcome::AlreadyEnded) => (RejectionReason::BindConflict, true, false, None),
        // A new id that collides with a corrupt stored value: ended, and tombstoned over.
        Err(StoreErrorKind::Corrupt) => (RejectionReason::BindConflict, true, true, None),
        Err(_) => (RejectionReason::StoreUnavailable, true, false, None),
    };
    Bound::Refuse {
        reason,
        end,
        tombstone,
        retry_after,
    }
}

/// What to do with a request about a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Task {
    /// The caller created it: forward.
    Forward,
    /// Answer as for an unknown task, for `reason` (someone else's, unknown, expired, or a
    /// corrupt record: they look alike to the caller).
    Unknown(RejectionReason),
    /// The store failed: 503, nothing forwarded.
    Unavailable,
}

/// The decision on a task `caller` names, whose record the store found as `found` (`None`:
/// no record). Tasks are their creator's, anonymous ones included: the anonymous policy is
/// applied when the session that creates them is.
pub(crate) fn task(
    found: Result<Option<&Owner>, StoreErrorKind>,
    caller: Option<&Identity>,
) -> Task {
    match found {
        Ok(Some(owner)) if owner.admits(caller) => Task::Forward,
        Ok(_) => Task::Unknown(RejectionReason::UnknownTask),
        Err(StoreErrorKind::Corrupt) => Task::Unknown(RejectionReason::CorruptBinding),
        Err(_) => Task::Unavailable,
    }
}

/// Whether a task `caller` just created counts as theirs, from what recording it returned: a
/// task recorded for someone else, or not recorded, is withheld.
pub(crate) fn task_recorded(
    outcome: Result<&BindOutcome, StoreErrorKind>,
    caller: Option<&Identity>,
) -> bool {
    match outcome {
        Ok(BindOutcome::Created) => true,
        Ok(BindOutcome::AlreadyBound(owner)) => owner.admits(caller),
        Ok(_) | Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    //! Every combination of request kind, caller, stored state and policy, against the behaviour
    //! table of the crate docs, spelled out case by case rather than computed as above.

    use super::*;
    use RejectionReason as R;

    fn id(iss: &str, sub: &str) -> Identity {
        Identity::new(iss, sub).unwrap()
    }

    /// alice, bob (same issuer), alice at another issuer, and no identity.
    fn callers() -> [Option<Identity>; 4] {
        [
            Some(id("https://a.example", "alice")),
            Some(id("https://a.example", "bob")),
            Some(id("https://b.example", "alice")),
            None,
        ]
    }

    fn policies() -> Vec<Policy> {
        let mut all = Vec::new();
        for allow_anonymous in [false, true] {
            for mismatch_answer in [MismatchAnswer::Mcp, MismatchAnswer::NotFound] {
                for end_on_mismatch in [false, true] {
                    all.push(Policy {
                        allow_anonymous,
                        mismatch_answer,
                        end_on_mismatch,
                        max_age: None,
                    });
                }
            }
        }
        all
    }

    /// What the store can answer about a session.
    #[derive(Clone, Copy, Debug)]
    enum Stored {
        Alice,
        Anonymous,
        Missing,
        Ended,
        Corrupt,
        Down,
        Full,
    }

    const STORED: [Stored; 7] = [
        Stored::Alice,
        Stored::Anonymous,
        Stored::Missing,
        Stored::Ended,
        Stored::Corrupt,
        Stored::Down,
        Stored::Full,
    ];

    fn found(stored: Stored, alice: &Identity) -> Result<Lookup, StoreErrorKind> {
        match stored {
            Stored::Alice => Ok(Lookup::Bound(Owner::User(alice.clone()))),
            Stored::Anonymous => Ok(Lookup::Bound(Owner::Anonymous)),
            Stored::Missing => Ok(Lookup::Missing),
            Stored::Ended => Ok(Lookup::Ended),
            Stored::Corrupt => Err(StoreErrorKind::Corrupt),
            Stored::Down => Err(StoreErrorKind::Unavailable),
            Stored::Full => Err(StoreErrorKind::CapacityExceeded),
        }
    }

    #[test]
    fn every_session_request_is_decided_as_the_behaviour_table_says() {
        let [alice, ..] = callers();
        let alice = alice.unwrap();
        let mut cases = 0;
        for stored in STORED {
            for caller in callers() {
                for kind in [Kind::Post, Kind::Delete, Kind::Other] {
                    for policy in policies() {
                        let refuse = |reason| Session::Refuse {
                            reason,
                            answer: match (policy.mismatch_answer, kind) {
                                (MismatchAnswer::NotFound, _) => Answer::NotFound,
                                (MismatchAnswer::Mcp, Kind::Post) => Answer::PerRequest,
                                (MismatchAnswer::Mcp, Kind::Delete | Kind::Other) => Answer::Plain,
                            },
                            end: policy.end_on_mismatch,
                        };
                        let forward = Session::Forward {
                            tombstone_on_success: kind == Kind::Delete,
                        };
                        let expected = match stored {
                            Stored::Alice if caller.as_ref() == Some(&alice) => forward,
                            Stored::Alice => refuse(R::IdentityMismatch),
                            Stored::Anonymous if caller.is_none() && policy.allow_anonymous => {
                                forward
                            }
                            Stored::Anonymous => refuse(R::IdentityMismatch),
                            Stored::Corrupt => refuse(R::CorruptBinding),
                            Stored::Missing => Session::Answer(R::UnknownSession),
                            Stored::Ended
                                if kind == Kind::Delete
                                    && policy.mismatch_answer == MismatchAnswer::Mcp =>
                            {
                                Session::AlreadyEnded
                            }
                            Stored::Ended => Session::Answer(R::EndedSession),
                            Stored::Down | Stored::Full => Session::Answer(R::StoreUnavailable),
                        };
                        let found = found(stored, &alice);
                        let got = session(
                            found.as_ref().map_err(|k| *k),
                            caller.as_ref(),
                            kind,
                            &policy,
                            false,
                        );
                        assert_eq!(got, expected, "{stored:?} {caller:?} {kind:?} {policy:?}");
                        // Past its maximum age, a binding is ended whoever asks, with a plain
                        // 404; nothing else changes.
                        let expected = match stored {
                            Stored::Alice | Stored::Anonymous => Session::Refuse {
                                reason: R::SessionMaxAge,
                                answer: Answer::Plain,
                                end: true,
                            },
                            _ => expected,
                        };
                        let got = session(
                            found.as_ref().map_err(|k| *k),
                            caller.as_ref(),
                            kind,
                            &policy,
                            true,
                        );
                        assert_eq!(got, expected, "too old: {stored:?} {caller:?} {kind:?}");
                        cases += 1;
                    }
                }
            }
        }
        assert_eq!(cases, 7 * 4 * 3 * 8);
    }

    #[test]
    fn open_streams_go_on_while_their_caller_owns_the_session() {
        let [alice, ..] = callers();
        let alice = alice.unwrap();
        for stored in STORED {
            for caller in callers() {
                for policy in policies() {
                    let expected = match stored {
                        Stored::Alice if caller.as_ref() == Some(&alice) => Ok(()),
                        Stored::Anonymous if caller.is_none() && policy.allow_anonymous => Ok(()),
                        Stored::Alice | Stored::Anonymous => Err("bound to someone else"),
                        Stored::Ended => Err("session ended"),
                        Stored::Missing => Err("binding missing or expired"),
                        Stored::Down => Ok(()),
                        Stored::Corrupt | Stored::Full => Err("store error, not transient"),
                    };
                    let found = found(stored, &alice);
                    let found = found.as_ref().map_err(|k| *k);
                    let got = stream(found, caller.as_ref(), &policy, false);
                    assert_eq!(got, expected, "{stored:?} {caller:?} {policy:?}");
                    let expected = match stored {
                        Stored::Alice | Stored::Anonymous => Err("session past its maximum age"),
                        _ => expected,
                    };
                    let got = stream(found, caller.as_ref(), &policy, true);
                    assert_eq!(got, expected, "too old: {stored:?} {caller:?} {policy:?}");
                }
            }
        }
    }

    #[test]
    fn a_session_is_too_old_from_its_maximum_age_on() {
        let bound = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let max = Duration::from_secs(60);
        let policy = |max_age| Policy {
            allow_anonymous: false,
            mismatch_answer: MismatchAnswer::Mcp,
            end_on_mismatch: true,
            max_age,
        };
        let at = |secs: u64, millis: u64| {
            SystemTime::UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis)
        };
        let table = [
            // (bound at, now, max age, too old)
            (Some(bound), at(1_059, 999), Some(max), false),
            (Some(bound), at(1_060, 0), Some(max), true),
            (Some(bound), at(1_060, 1), Some(max), true),
            (Some(bound), at(5_000, 0), Some(max), true),
            (Some(bound), at(1_000, 0), Some(Duration::ZERO), true),
            // Bound in this clock's future: age zero.
            (Some(bound), at(999, 0), Some(max), false),
            (Some(bound), at(999, 0), Some(Duration::ZERO), false),
            // No maximum age, or no bind time: never too old.
            (Some(bound), at(5_000, 0), None, false),
            (None, at(5_000, 0), Some(max), false),
            (None, at(5_000, 0), None, false),
        ];
        for (bound_at, now, max_age, expected) in table {
            assert_eq!(
                too_old(bound_at, now, &policy(max_age)),
                expected,
                "{bound_at:?} {now:?} {max_age:?}"
            );
        }
    }

    #[test]
    fn ownership_is_the_whole_identity_and_anonymous_only_when_allowed() {
        let [alice, bob, other_issuer, anonymous] = callers();
        let owner = Owner::User(alice.clone().unwrap());
        for policy in policies() {
            assert!(owns(&owner, alice.as_ref(), &policy));
            assert!(!owns(&owner, bob.as_ref(), &policy));
            assert!(!owns(&owner, other_issuer.as_ref(), &policy));
            assert!(!owns(&owner, anonymous.as_ref(), &policy));
            assert_eq!(
                owns(&Owner::Anonymous, None, &policy),
                policy.allow_anonymous
            );
            assert!(!owns(&Owner::Anonymous, alice.as_ref(), &policy));
        }
    }

    #[test]
    fn request_kinds_come_from_the_method() {
        use http::Method;
        assert_eq!(Kind::of(&Method::POST), Kind::Post);
        assert_eq!(Kind::of(&Method::DELETE), Kind::Delete);
        for other in [Method::GET, Method::PUT, Method::PATCH, Method::OPTIONS] {
            assert_eq!(Kind::of(&other), Kind::Other);
        }
    }

    #[test]
    fn new_sessions_are_bound_to_the_caller_or_refused() {
        let [alice, ..] = callers();
        for policy in policies() {
            for credentials in [false, true] {
                let user = new_owner(alice.as_ref(), credentials, &policy);
                assert_eq!(user, Ok(Owner::User(alice.clone().unwrap())));
                let expected = match (credentials, policy.allow_anonymous) {
                    (true, _) => Err(R::CredentialsWithoutIdentity),
                    (false, true) => Ok(Owner::Anonymous),
                    (false, false) => Err(R::MissingIdentity),
                };
                assert_eq!(
                    new_owner(None, credentials, &policy),
                    expected,
                    "{policy:?}"
                );
            }
        }
    }

    #[test]
    fn every_bind_outcome_has_its_answer() {
        let alice = Owner::User(id("https://a.example", "alice"));
        let wait = Duration::from_secs(7);
        let refuse = |reason, end, tombstone, retry_after| Bound::Refuse {
            reason,
            end,
            tombstone,
            retry_after,
        };
        let table = [
            (Ok(BindOutcome::Created), Bound::Keep),
            (
                Ok(BindOutcome::LimitReached { retry_after: wait }),
                refuse(R::TooManySessions, true, false, Some(wait)),
            ),
            (
                Ok(BindOutcome::AlreadyBound(alice)),
                refuse(R::BindConflict, false, false, None),
            ),
            (
                Ok(BindOutcome::AlreadyBound(Owner::Anonymous)),
                refuse(R::BindConflict, false, false, None),
            ),
            (
                Ok(BindOutcome::AlreadyEnded),
                refuse(R::BindConflict, true, false, None),
            ),
            (
                Err(StoreErrorKind::Corrupt),
                refuse(R::BindConflict, true, true, None),
            ),
            (
                Err(StoreErrorKind::Unavailable),
                refuse(R::StoreUnavailable, true, false, None),
            ),
            (
                Err(StoreErrorKind::CapacityExceeded),
                refuse(R::StoreUnavailable, true, false, None),
            ),
        ];
        for (outcome, expected) in table {
            assert_eq!(
                bound(outcome.as_ref().map_err(|k| *k)),
                expected,
                "{outcome:?}"
            );
        }
    }

    #[test]
    fn tasks_are_their_creators_only() {
        let callers = callers();
        for (i, creator) in callers.iter().enumerate() {
            let owner = match creator {
                Some(identity) => Owner::User(identity.clone()),
                None => Owner::Anonymous,
            };
            for (j, caller) in callers.iter().enumerate() {
                let expected = if i == j {
                    Task::Forward
                } else {
                    Task::Unknown(R::UnknownTask)
                };
                assert_eq!(task(Ok(Some(&owner)), caller.as_ref()), expected);
                let recorded = BindOutcome::AlreadyBound(owner.clone());
                assert_eq!(task_recorded(Ok(&recorded), caller.as_ref()), i == j);
            }
        }
        for caller in callers {
            let caller = caller.as_ref();
            assert_eq!(task(Ok(None), caller), Task::Unknown(R::UnknownTask));
            assert_eq!(
                task(Err(StoreErrorKind::Corrupt), caller),
                Task::Unknown(R::CorruptBinding)
            );
            for down in [
                StoreErrorKind::Unavailable,
                StoreErrorKind::CapacityExceeded,
            ] {
                assert_eq!(task(Err(down), caller), Task::Unavailable);
                assert!(!task_recorded(Err(down), caller));
            }
            assert!(task_recorded(Ok(&BindOutcome::Created), caller));
            assert!(!task_recorded(Ok(&BindOutcome::AlreadyEnded), caller));
            let full = BindOutcome::LimitReached {
                retry_after: Duration::from_secs(1),
            };
            assert!(!task_recorded(Ok(&full), caller));
            assert!(!task_recorded(Err(StoreErrorKind::Corrupt), caller));
        }
    }
}
