//! Metrics of the layers and the stores, through the [`metrics`](https://docs.rs/metrics) crate
//! facade (feature `metrics`).
//!
//! Install any `metrics` recorder (for Prometheus, `metrics-exporter-prometheus`, with
//! histograms as buckets) and the layers count their decisions by reason, and time the store
//! calls. Without a recorder nothing is recorded; without the feature the hooks are empty
//! functions. `docs/metrics.md` lists every metric, its labels and their cardinality.
//!
//! Every name starts with `mcp_session_binding_`, then the part that records it (`decisions`,
//! `sessions`, `tasks`, `auth`, `origin`, `store`, `jwks`, `oidc`), then what it counts; counters
//! end in `_total`, durations in `_seconds` (histograms). These are the OpenTelemetry names
//! (`mcp_session_binding.store.operation.duration`, unit `s`) as the OpenTelemetry-to-Prometheus
//! translation spells them. Labels come from small fixed sets (reason codes, outcomes, operation
//! names); none names a subject, a session id or a token. The issuer is a label only after
//! [`issuer_labels`]`(true)`.

use std::any::Any;
#[cfg(feature = "metrics")]
use std::sync::atomic::{AtomicBool, Ordering};
#[cfg(any(feature = "memory", feature = "redis"))]
use std::time::Instant;

#[cfg(feature = "metrics")]
use ::metrics::counter;

use crate::RejectionReason;
#[cfg(any(feature = "memory", feature = "redis"))]
use crate::store::StoreError;

/// Whether the issuer is a label (see [`issuer_labels`]).
#[cfg(feature = "metrics")]
static ISSUER_LABELS: AtomicBool = AtomicBool::new(false);

/// Adds the issuer as an `issuer` label to the metrics where it is known and trusted: accepted
/// tokens of the JWT layer (`mcp_session_binding_auth_results_total{outcome="accepted"}`), and
/// the JWKS and discovery refreshes of issuers trusted by URL. Off by default.
///
/// The issuer of a **refused** token is never a label: it is the unverified claim of whoever
/// sent the token, and would let anyone add series. With this on, the labelled series grow with
/// the number of issuers the JWT layer trusts (one series per issuer and outcome); with a
/// custom auth layer, the issuers it puts in the `Identity` are not labelled.
///
/// The setting is process-wide, as the `metrics` recorder is: set it once, at startup.
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub fn issuer_labels(enabled: bool) {
    ISSUER_LABELS.store(enabled, Ordering::Relaxed);
}

/// The issuer, when issuers are labels.
#[cfg(all(feature = "metrics", feature = "jwt"))]
fn issuer(iss: &str) -> Option<String> {
    ISSUER_LABELS
        .load(Ordering::Relaxed)
        .then(|| iss.to_owned())
}

// All recording goes through the crate-private functions below, one per event, so that each
// layer has one-line hooks.

// ---- SessionBindingLayer (and the crate's other MCP-level layers) ----

/// An owner's request on its session (or the creator's on its task) was forwarded: the hot
/// path, a key with static labels.
#[inline]
pub(crate) fn forwarded() {
    #[cfg(feature = "metrics")]
    counter!("mcp_session_binding_decisions_total", "outcome" => "forwarded", "reason" => "owner")
        .increment(1);
}

/// A `tasks/*` request of the task's creator was forwarded.
pub(crate) fn task_forwarded() {
    #[cfg(feature = "metrics")]
    counter!("mcp_session_binding_decisions_total", "outcome" => "forwarded", "reason" => "task_owner")
        .increment(1);
}

/// A new session was bound to its caller.
pub(crate) fn session_bound() {
    #[cfg(feature = "metrics")]
    {
        counter!("mcp_session_binding_decisions_total", "outcome" => "bound", "reason" => "new_session")
            .increment(1);
        counter!("mcp_session_binding_sessions_bound_total").increment(1);
    }
}

/// A session was ended: `"owner"` (its owner's `DELETE`) or `"refused"` (by the layer, after
/// a refusal).
pub(crate) fn session_ended(by: &'static str) {
    sessions_ended(by, 1);
}

/// `count` sessions were ended at once: `"revoked"` (by the operator, `end_session` and
/// `end_sessions_of`), or as [`session_ended`].
pub(crate) fn sessions_ended(by: &'static str, count: u64) {
    #[cfg(feature = "metrics")]
    counter!("mcp_session_binding_sessions_ended_total", "reason" => by).increment(count);
    #[cfg(not(feature = "metrics"))]
    let _ = (by, count);
}

/// A task a `tools/call` created was recorded for its creator.
pub(crate) fn task_bound() {
    #[cfg(feature = "metrics")]
    counter!("mcp_session_binding_tasks_bound_total").increment(1);
}

/// A layer answered in place of the server, for `reason`: the answer builder calls this for every
/// answer it makes. Counts a [`RejectionReason`] as a refused decision; other reasons (the JWT
/// and Origin layers count theirs where they decide) are not counted here.
#[inline]
pub(crate) fn answered<R: Any>(reason: &R) {
    if let Some(reason) = (reason as &dyn Any).downcast_ref::<RejectionReason>() {
        refused(*reason);
    }
}

/// A refusal, for `reason`.
pub(crate) fn refused(reason: RejectionReason) {
    #[cfg(feature = "metrics")]
    counter!(
        "mcp_session_binding_decisions_total",
        "outcome" => "refused",
        "reason" => reason.code()
    )
    .increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = reason;
}

// ---- JwtAuthLayer ----

/// The JWT layer refused a token (or its absence), for `rejection`.
#[cfg(feature = "jwt")]
pub(crate) fn auth_rejected(rejection: &crate::jwt::JwtRejection) {
    #[cfg(feature = "metrics")]
    counter!(
        "mcp_session_binding_auth_results_total",
        "outcome" => "rejected",
        "reason" => rejection.code()
    )
    .increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = rejection;
}

/// The JWT layer admitted a request: its token verified (and passed the revocation check, when
/// there is one). `extensions`: the request's, with the caller's identity.
#[cfg(feature = "jwt")]
pub(crate) fn auth_accepted(extensions: &http::Extensions) {
    #[cfg(feature = "metrics")]
    {
        let issuer = extensions
            .get::<crate::Identity>()
            .and_then(|identity| issuer(identity.iss()));
        match issuer {
            None => counter!(
                "mcp_session_binding_auth_results_total",
                "outcome" => "accepted",
                "reason" => "valid"
            ),
            Some(issuer) => counter!(
                "mcp_session_binding_auth_results_total",
                "outcome" => "accepted",
                "reason" => "valid",
                "issuer" => issuer
            ),
        }
        .increment(1);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = extensions;
}

/// A JWKS refresh of an issuer trusted by URL: `outcome` is `updated` (the key ids changed),
/// `unchanged`, or why it failed.
#[cfg(feature = "oidc")]
pub(crate) fn jwks_refreshed(iss: &str, outcome: Result<bool, &crate::jwt::KeySourceError>) {
    #[cfg(feature = "metrics")]
    {
        let outcome = match outcome {
            Ok(true) => "updated",
            Ok(false) => "unchanged",
            Err(error) => key_source_error(error),
        };
        match issuer(iss) {
            None => counter!("mcp_session_binding_jwks_refreshes_total", "outcome" => outcome),
            Some(issuer) => counter!(
                "mcp_session_binding_jwks_refreshes_total",
                "outcome" => outcome,
                "issuer" => issuer
            ),
        }
        .increment(1);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (iss, outcome);
}

/// An OpenID discovery of issuer `iss` (before a JWKS fetch whose URL is not known yet): passes
/// `result` through.
#[cfg(feature = "oidc")]
pub(crate) fn discovered<T>(
    iss: &str,
    result: Result<T, crate::jwt::KeySourceError>,
) -> Result<T, crate::jwt::KeySourceError> {
    #[cfg(feature = "metrics")]
    {
        let outcome = match &result {
            Ok(_) => "ok",
            Err(error) => key_source_error(error),
        };
        match issuer(iss) {
            None => counter!("mcp_session_binding_oidc_discoveries_total", "outcome" => outcome),
            Some(issuer) => counter!(
                "mcp_session_binding_oidc_discoveries_total",
                "outcome" => outcome,
                "issuer" => issuer
            ),
        }
        .increment(1);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = iss;
    result
}

/// The outcome label of a failed fetch.
#[cfg(all(feature = "metrics", feature = "oidc"))]
fn key_source_error(error: &crate::jwt::KeySourceError) -> &'static str {
    use crate::jwt::KeySourceError as E;
    match error {
        E::TooLarge => "too_large",
        E::Malformed(_) => "malformed",
        E::WrongIssuer { .. } => "wrong_issuer",
        E::InsecureUrl(_) => "insecure_url",
        E::TooManyKeys(_) => "too_many_keys",
        E::DuplicateKid(_) => "duplicate_kid",
        E::NoUsableKey => "no_usable_key",
        E::Fetch(_) => "fetch_failed",
    }
}

// ---- OriginLayer ----

/// The Origin layer refused a request; `code`: its [`OriginRejection`] code.
///
/// [`OriginRejection`]: crate::origin::OriginRejection
pub(crate) fn origin_refused(code: &'static str) {
    #[cfg(feature = "metrics")]
    counter!("mcp_session_binding_origin_refusals_total", "reason" => code).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = code;
}

// ---- Stores ----

/// An operation of the memory store, for its labels.
#[cfg(feature = "memory")]
#[derive(Clone, Copy, Debug)]
pub(crate) enum MemoryOp {
    Lookup,
    End,
    TaskOwner,
}

/// Runs `call`, an operation of the memory store that cannot fail, and times it. `call` is given
/// the time it started when it was read (so that the store need not read the clock again).
#[cfg(feature = "memory")]
#[inline]
pub(crate) fn memory<T>(op: MemoryOp, call: impl FnOnce(Option<Instant>) -> T) -> T {
    #[cfg(feature = "metrics")]
    {
        // Static keys: the lookup is on every checked request.
        macro_rules! duration {
            ($op:literal) => {
                ::metrics::histogram!(
                    "mcp_session_binding_store_operation_duration_seconds",
                    "store" => "memory",
                    "operation" => $op,
                    "outcome" => "ok"
                )
            };
        }
        // The handle first, so that the duration is the call's alone; it is read only when a
        // recorder records it (no second clock read without one).
        let histogram = match op {
            MemoryOp::Lookup => duration!("lookup"),
            MemoryOp::End => duration!("end"),
            MemoryOp::TaskOwner => duration!("task_owner"),
        };
        let started = Instant::now();
        let answer = call(Some(started));
        histogram.record(Since(started));
        answer
    }
    #[cfg(not(feature = "metrics"))]
    {
        let _ = op;
        call(None)
    }
}

/// The seconds since an instant, read when a histogram records them.
#[cfg(all(feature = "metrics", feature = "memory"))]
struct Since(Instant);

#[cfg(all(feature = "metrics", feature = "memory"))]
impl ::metrics::IntoF64 for Since {
    fn into_f64(self) -> f64 {
        self.0.elapsed().as_secs_f64()
    }
}

/// When a store operation started, if anything will read it.
#[cfg(any(feature = "memory", feature = "redis"))]
pub(crate) fn started() -> Option<Instant> {
    #[cfg(feature = "metrics")]
    return Some(Instant::now());
    #[cfg(not(feature = "metrics"))]
    None
}

/// A store operation `what` of `store` that started at `started` has ended with `result`
/// (passed through): its duration, and its error by kind.
#[cfg(any(feature = "memory", feature = "redis"))]
pub(crate) fn store_call<T>(
    store: &'static str,
    what: &'static str,
    started: Option<Instant>,
    result: Result<T, StoreError>,
) -> Result<T, StoreError> {
    #[cfg(feature = "metrics")]
    if let Some(started) = started {
        let seconds = started.elapsed().as_secs_f64();
        // The Redis store names its round trips by what they do.
        let operation = match what {
            "record task" => "bind_task",
            what => what,
        };
        let outcome = if result.is_ok() { "ok" } else { "error" };
        ::metrics::histogram!(
            "mcp_session_binding_store_operation_duration_seconds",
            "store" => store,
            "operation" => operation,
            "outcome" => outcome
        )
        .record(seconds);
        if let Err(error) = &result {
            let kind = match error.kind() {
                crate::store::StoreErrorKind::Unavailable => "unavailable",
                crate::store::StoreErrorKind::Corrupt => "corrupt",
                crate::store::StoreErrorKind::CapacityExceeded => "capacity_exceeded",
            };
            counter!(
                "mcp_session_binding_store_errors_total",
                "store" => store,
                "operation" => operation,
                "kind" => kind
            )
            .increment(1);
        }
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (store, what, started);
    result
}

/// A lookup of the Redis store's client-side cache: `hit` when it answered.
#[cfg(feature = "redis")]
pub(crate) fn cache_lookup(hit: bool) {
    #[cfg(feature = "metrics")]
    if hit {
        counter!("mcp_session_binding_store_cache_lookups_total", "result" => "hit").increment(1);
    } else {
        counter!("mcp_session_binding_store_cache_lookups_total", "result" => "miss").increment(1);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = hit;
}

/// The client-side cache applied an invalidation message from Redis (a flush is one).
#[cfg(feature = "redis")]
pub(crate) fn cache_invalidated() {
    #[cfg(feature = "metrics")]
    counter!("mcp_session_binding_store_cache_invalidations_total").increment(1);
}

#[cfg(all(test, feature = "metrics", feature = "memory"))]
mod tests {
    use std::{
        collections::BTreeMap,
        sync::{Arc, Mutex, atomic::AtomicU64},
    };

    use ::metrics::{
        Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString,
        Unit,
    };
    use bytes::Bytes;
    use http::{Request, Response, StatusCode};
    use http_body_util::Full;
    use tower::{Layer, ServiceExt};

    use super::*;
    use crate::{Identity, SessionBindingLayer, store::BindingStore};

    /// Counts and histogram samples by `name{label=value,…}`, labels sorted.
    #[derive(Default)]
    struct Recorded {
        counters: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
        histograms: Mutex<BTreeMap<String, Arc<Samples>>>,
    }

    #[derive(Default)]
    struct Samples(Mutex<Vec<f64>>);

    impl HistogramFn for Samples {
        fn record(&self, value: f64) {
            self.0.lock().unwrap().push(value);
        }
    }

    fn render(key: &Key) -> String {
        let mut labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        format!("{}{{{}}}", key.name(), labels.join(","))
    }

    impl Recorder for Recorded {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            let mut counters = self.counters.lock().unwrap();
            Counter::from_arc(counters.entry(render(key)).or_default().clone())
        }
        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::noop()
        }
        fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
            let mut histograms = self.histograms.lock().unwrap();
            Histogram::from_arc(histograms.entry(render(key)).or_default().clone())
        }
    }

    impl Recorded {
        /// Every counter that moved, with its value.
        fn counts(&self) -> BTreeMap<String, u64> {
            self.counters
                .lock()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.load(std::sync::atomic::Ordering::Relaxed)))
                .filter(|(_, v)| *v > 0)
                .collect()
        }

        fn samples(&self, key: &str) -> usize {
            self.histograms
                .lock()
                .unwrap()
                .get(key)
                .map_or(0, |s| s.0.lock().unwrap().len())
        }
    }

    fn decision(outcome: &str, reason: &str) -> String {
        format!("mcp_session_binding_decisions_total{{outcome={outcome},reason={reason}}}")
    }

    #[test]
    fn answers_are_counted_once_by_their_reason_code() {
        use RejectionReason as R;
        for reason in [
            R::IdentityMismatch,
            R::UnknownSession,
            R::StoreUnavailable,
            R::TooManySessions,
            R::InvalidRequestState,
        ] {
            let recorded = Recorded::default();
            ::metrics::with_local_recorder(&recorded, || {
                let _ = crate::protocol::answer::plain(reason, None);
            });
            let expected = BTreeMap::from([(decision("refused", reason.code()), 1)]);
            assert_eq!(recorded.counts(), expected, "{reason:?}");
        }
        // The Origin layer counts its refusals itself: its answers are not decisions.
        let recorded = Recorded::default();
        ::metrics::with_local_recorder(&recorded, || {
            answered(&crate::origin::OriginRejection::NotAllowed);
            answered(&7_u8);
        });
        assert_eq!(recorded.counts(), BTreeMap::new());
    }

    fn request(session: Option<&str>, sub: &str) -> Request<Full<Bytes>> {
        let mut request = Request::post("/mcp");
        if let Some(session) = session {
            request = request.header("mcp-session-id", session);
        }
        let mut request = request.body(Full::default()).unwrap();
        let identity = Identity::new("https://i.example", sub).unwrap();
        request.extensions_mut().insert(identity);
        request
    }

    #[test]
    fn the_binding_layer_counts_one_decision_per_request() {
        let recorded = Recorded::default();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let statuses = ::metrics::with_local_recorder(&recorded, || {
            runtime.block_on(async {
                // The inner service: a session created by a request without one.
                let mcp = tower::service_fn(|request: Request<Full<Bytes>>| async move {
                    let mut response = Response::new(Full::<Bytes>::default());
                    if !request.headers().contains_key("mcp-session-id") {
                        response
                            .headers_mut()
                            .insert("mcp-session-id", "s-1".parse().unwrap());
                    }
                    Ok::<_, std::convert::Infallible>(response)
                });
                let service = SessionBindingLayer::new().layer(mcp);
                let mut statuses = Vec::new();
                for (session, sub) in [
                    (None, "alice"),
                    (Some("s-1"), "alice"),
                    (Some("s-1"), "alice"),
                    (Some("unknown"), "alice"),
                    (Some("s-1"), "bob"),
                ] {
                    let answer = service
                        .clone()
                        .oneshot(request(session, sub))
                        .await
                        .unwrap();
                    statuses.push(answer.status());
                }
                // The session ends on a task of its own.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                statuses
            })
        });
        assert_eq!(
            statuses,
            [200, 200, 200, 404, 403].map(|s| StatusCode::from_u16(s).unwrap())
        );
        let expected = BTreeMap::from([
            (decision("bound", "new_session"), 1),
            (decision("forwarded", "owner"), 2),
            (decision("refused", "mismatch"), 1),
            (decision("refused", "unknown_session"), 1),
            ("mcp_session_binding_sessions_bound_total{}".to_owned(), 1),
            (
                "mcp_session_binding_sessions_ended_total{reason=refused}".to_owned(),
                1,
            ),
        ]);
        assert_eq!(recorded.counts(), expected);
    }

    #[test]
    fn store_calls_are_timed_and_errors_counted_by_kind() {
        let recorded = Recorded::default();
        ::metrics::with_local_recorder(&recorded, || {
            let store = crate::store::MemoryStore::new();
            let key = store.key_derivation().session("s");
            for _ in 0..3 {
                let _ = store.lookup_now(key, None);
            }
            let failed: Result<(), StoreError> = Err(StoreError::unavailable("down"));
            let _ = store_call("redis", "record task", started(), failed);
        });
        let duration = "mcp_session_binding_store_operation_duration_seconds";
        assert_eq!(
            recorded.samples(&format!(
                "{duration}{{operation=lookup,outcome=ok,store=memory}}"
            )),
            3
        );
        assert_eq!(
            recorded.samples(&format!(
                "{duration}{{operation=bind_task,outcome=error,store=redis}}"
            )),
            1
        );
        let expected = BTreeMap::from([(
            "mcp_session_binding_store_errors_total{kind=unavailable,operation=bind_task,store=redis}"
                .to_owned(),
            1,
        )]);
        assert_eq!(recorded.counts(), expected);
    }

    #[cfg(feature = "jwt")]
    #[test]
    fn the_issuer_is_a_label_only_when_allowed() {
        let recorded = Recorded::default();
        let mut extensions = http::Extensions::new();
        extensions.insert(Identity::new("https://i.example", "alice").unwrap());
        ::metrics::with_local_recorder(&recorded, || {
            auth_accepted(&extensions);
            issuer_labels(true);
            auth_accepted(&extensions);
            issuer_labels(false);
            auth_rejected(&crate::jwt::JwtRejection::Expired);
        });
        let auth = "mcp_session_binding_auth_results_total";
        let expected = BTreeMap::from([
            (format!("{auth}{{outcome=accepted,reason=valid}}"), 1),
            (
                format!("{auth}{{issuer=https://i.example,outcome=accepted,reason=valid}}"),
                1,
            ),
            (format!("{auth}{{outcome=rejected,reason=expired}}"), 1),
        ]);
        assert_eq!(recorded.counts(), expected);
    }
}
