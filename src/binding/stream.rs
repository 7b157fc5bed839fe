//! A session's SSE answers on their way out: GET streams checked again while they stream, so
//! that a session ended anywhere (a tombstone written by another replica, an expired binding)
//! stops streaming here too; and, with [`bind_event_ids`], every answer's `id` fields tagged
//! with their session (see `event_ids`).
//!
//! The layer checks a session's binding once per request. A GET's SSE stream (the standalone
//! stream, or a resumed one) outlives that check, so when a GET of a bound session is answered
//! with `text/event-stream`, its body is watched: every
//! [`stream_recheck_interval`](crate::SessionBindingLayer::stream_recheck_interval) it looks the
//! session up again and ends the body (a clean end of stream) unless the session is still bound
//! to the caller. Other requests pay nothing for it; a stream costs one timer and one lookup per
//! interval.
//!
//! POST answers streamed as SSE are not watched: they end with their request's answer, and
//! watching them would cost every POST of a session (rmcp streams nearly all of its answers) a
//! header lookup, an allocation and a timer.
//!
//! [`bind_event_ids`]: crate::SessionBindingLayer::bind_event_ids

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use futures::{FutureExt, future::BoxFuture};
use http::{HeaderMap, Method, Response, header};
use http_body::{Body, Frame};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use crate::{
    Identity, ResponseBody,
    binding::config::Config,
    binding::decide,
    binding::event_ids::{EventIdKey, IdTagger},
    binding::future::{AfterResponse, Then},
    store::{BindingStore, SessionKey, StoreError, aged},
};

/// The shortest interval between two rechecks of a stream: shorter settings count as this.
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// Looks a session up for a stream, whatever the store's type; `aged`: with the bind time.
trait Lookups: Send + Sync {
    fn lookup(
        &self,
        key: SessionKey,
        slide: Option<Duration>,
        aged: bool,
    ) -> BoxFuture<'static, Result<aged::Aged, StoreError>>;
}

impl<St: BindingStore + Clone> Lookups for St {
    fn lookup(
        &self,
        key: SessionKey,
        slide: Option<Duration>,
        aged: bool,
    ) -> BoxFuture<'static, Result<aged::Aged, StoreError>> {
        let store = self.clone();
        async move { aged::lookup(&store, key, slide, aged).await }.boxed()
    }
}

/// The work after a request of a bound session (not a `DELETE`): watch its answer if it is a
/// GET's SSE stream, tag its event ids if it is any SSE stream and event ids are bound. `None`
/// when there is nothing to do, as for every POST with event ids unbound: that test is inlined
/// into the matching path, the rest is not.
#[inline]
pub(crate) fn after<St, B, E>(
    store: &St,
    config: &Config,
    method: &Method,
    key: SessionKey,
    caller: Option<Identity>,
) -> Option<Box<dyn AfterResponse<B, E>>>
where
    St: BindingStore + Clone,
    B: Send + 'static,
    E: Send + 'static,
{
    if config.event_ids.is_none() && method != Method::GET {
        return None;
    }
    session_after(store, config, method == Method::GET, key, caller)
}

/// The rest of [`after`], out of line: `get` says whether the request is a GET.
#[inline(never)]
fn session_after<St: BindingStore + Clone, B: Send + 'static, E: Send + 'static>(
    store: &St,
    config: &Config,
    get: bool,
    key: SessionKey,
    caller: Option<Identity>,
) -> Option<Box<dyn AfterResponse<B, E>>> {
    let watch = if get && !config.stream_recheck_interval.is_zero() {
        Some(Watch {
            interval: config.stream_recheck_interval.max(MIN_INTERVAL),
            slide: config.sliding.then_some(config.binding_ttl),
            policy: config.policy(),
            key,
            caller,
            store: Box::new(store.clone()),
        })
    } else {
        None
    };
    if watch.is_none() && config.event_ids.is_none() {
        return None;
    }
    Some(Box::new(SessionAfter {
        watch,
        ids: config.event_ids.clone(),
        key,
    }))
}

/// What a session's SSE answer needs.
struct SessionAfter {
    watch: Option<Watch>,
    ids: Option<Arc<EventIdKey>>,
    key: SessionKey,
}

/// What a stream's rechecks need.
struct Watch {
    interval: Duration,
    /// The slide of a request's lookup: an open stream keeps its binding alive, as requests do.
    slide: Option<Duration>,
    policy: decide::Policy,
    key: SessionKey,
    caller: Option<Identity>,
    store: Box<dyn Lookups>,
}

impl<B: Send + 'static, E: Send + 'static> AfterResponse<B, E> for SessionAfter {
    fn applies_to(&self, response: &Response<B>) -> bool {
        response.status().is_success() && is_event_stream(response.headers())
    }

    fn run(self: Box<Self>, response: Response<B>) -> Then<B, E> {
        if !AfterResponse::<B, E>::applies_to(&*self, &response) {
            return Then::Now(Ok(response.map(ResponseBody::inner)));
        }
        let (mut parts, body) = response.into_parts();
        // The body may end early or grow: no length may be promised.
        parts.headers.remove(header::CONTENT_LENGTH);
        let SessionAfter { watch, ids, key } = *self;
        let stream = Box::pin(SessionStream {
            watch: watch.map(|watch| StreamWatch {
                sleep: None,
                lookup: None,
                ended: false,
                watch,
            }),
            tagger: ids.map(|ids| IdTagger::new(ids, key)),
            done: false,
        });
        Then::Now(Ok(Response::from_parts(
            parts,
            ResponseBody::session(body, stream),
        )))
    }
}

/// Whether the answer is an SSE stream (`Content-Type: text/event-stream`, any case, any
/// parameters).
fn is_event_stream(headers: &HeaderMap) -> bool {
    const SSE: &[u8] = b"text/event-stream";
    headers.get(header::CONTENT_TYPE).is_some_and(|value| {
        let value = value.as_bytes();
        value.len() >= SSE.len() && value[..SSE.len()].eq_ignore_ascii_case(SSE)
    })
}

pin_project! {
    /// A session's SSE answer on its way out: watched, tagged, or both.
    pub(crate) struct SessionStream {
        #[pin]
        watch: Option<StreamWatch>,
        tagger: Option<IdTagger>,
        // The inner body ended (with a tagger: once its held bytes are out).
        done: bool,
    }
}

impl fmt::Debug for SessionStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionStream")
            .field("watch", &self.watch)
            .field("tagger", &self.tagger)
            .finish_non_exhaustive()
    }
}

impl SessionStream {
    /// Polls the stream over the inner `body`.
    pub(crate) fn poll_frame<B>(
        self: Pin<&mut Self>,
        mut body: Pin<&mut B>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>>
    where
        B: Body<Data = Bytes>,
    {
        let mut this = self.project();
        loop {
            // The watch first: a stream that always has a frame ready is checked too.
            if let Some(watch) = this.watch.as_mut().as_pin_mut()
                && watch.poll_ended(cx).is_ready()
            {
                return Poll::Ready(None);
            }
            if let Some(tagger) = this.tagger.as_mut()
                && let Some(frame) = tagger.out.pop_front()
            {
                return Poll::Ready(Some(Ok(frame)));
            }
            if *this.done {
                return Poll::Ready(None);
            }
            let Some(tagger) = this.tagger.as_mut() else {
                return body.as_mut().poll_frame(cx);
            };
            match std::task::ready!(body.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => tagger.push(data),
                    Err(frame) => tagger.push_other(frame),
                },
                Some(Err(error)) => return Poll::Ready(Some(Err(error))),
                None => {
                    tagger.finish();
                    *this.done = true;
                }
            }
        }
    }

    /// Whether nothing more will come (`false` when unsure).
    pub(crate) fn is_end_stream<B: Body>(&self, body: &B) -> bool {
        if self.watch.as_ref().is_some_and(StreamWatch::ended) {
            return true;
        }
        match &self.tagger {
            Some(tagger) => self.done && tagger.out.is_empty(),
            None => body.is_end_stream(),
        }
    }
}

pin_project! {
    /// The watch over one open stream: a timer, and the lookup in flight.
    struct StreamWatch {
        // Made at the first poll, on the runtime that serves the body.
        #[pin]
        sleep: Option<Sleep>,
        lookup: Option<BoxFuture<'static, Result<aged::Aged, StoreError>>>,
        ended: bool,
        watch: Watch,
    }
}

impl fmt::Debug for StreamWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamWatch")
            .field("session", &self.watch.key)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

/// What a recheck found.
enum Verdict {
    Keep,
    End(&'static str),
}

impl StreamWatch {
    /// Ready once the stream must end (and from then on); pending while it may go on. Starts a
    /// lookup every interval; a lookup still unanswered when the next one is due is dropped (a
    /// store that does not answer within an interval counts as unavailable).
    fn poll_ended(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        if *this.ended {
            return Poll::Ready(());
        }
        let interval = this.watch.interval;
        if this.sleep.is_none() {
            let first = Instant::now() + interval;
            this.sleep.set(Some(tokio::time::sleep_until(first)));
        }
        loop {
            if let Some(lookup) = this.lookup
                && let Poll::Ready(found) = lookup.poll_unpin(cx)
            {
                *this.lookup = None;
                if let Verdict::End(why) = this.watch.verdict(found) {
                    *this.ended = true;
                    this.watch.ended(why);
                    return Poll::Ready(());
                }
            }
            let mut sleep = this.sleep.as_mut().as_pin_mut().expect("made above");
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if this.lookup.take().is_some() {
                this.watch
                    .unavailable(&"no answer within stream_recheck_interval");
            }
            sleep.reset(Instant::now() + interval);
            let watch = &this.watch;
            let aged = watch.policy.max_age.is_some();
            *this.lookup = Some(watch.store.lookup(watch.key, watch.slide, aged));
        }
    }

    fn ended(&self) -> bool {
        self.ended
    }
}

impl Watch {
    fn verdict(&self, found: Result<aged::Aged, StoreError>) -> Verdict {
        let too_old = found.as_ref().is_ok_and(|(_, bound_at)| {
            self.policy.max_age.is_some()
                && decide::too_old(*bound_at, SystemTime::now(), &self.policy)
        });
        let found = found.map(|(found, _)| found);
        let kind = found.as_ref().map_err(StoreError::kind);
        match decide::stream(kind, self.caller.as_ref(), &self.policy, too_old) {
            Ok(()) => {
                if let Err(error) = &found {
                    self.unavailable(error);
                }
                Verdict::Keep
            }
            Err(why) => Verdict::End(why),
        }
    }

    /// Logs the end of the stream.
    fn ended(&self, why: &'static str) {
        let (iss, sub) = self
            .caller
            .as_ref()
            .map_or(("", ""), |id| (id.iss(), id.sub()));
        tracing::info!(
            reason = "stream_ended",
            iss,
            sub,
            session = %self.key.short(),
            detail = why,
            "open stream ended: the session is no longer bound to its caller"
        );
    }

    /// The store could not answer: the stream goes on (its caller was checked when it opened),
    /// and the next interval checks again.
    fn unavailable(&self, error: &dyn fmt::Display) {
        let (iss, sub) = self
            .caller
            .as_ref()
            .map_or(("", ""), |id| (id.iss(), id.sub()));
        tracing::warn!(
            reason = "store_unavailable",
            iss,
            sub,
            session = %self.key.short(),
            %error,
            "could not recheck an open stream's session; the stream goes on, checked again next interval"
        );
    }
}
