//! Open SSE streams of a session, checked again while they stream: a session ended anywhere (a
//! tombstone written by another replica, an expired binding) stops streaming here too.
//!
//! The layer checks a session's binding once per request. A GET's SSE stream (the standalone
//! stream, or a resumed one) outlives that check, so when a GET of a bound session is answered
//! with `text/event-stream`, its body is wrapped in a [`StreamWatch`]: every
//! [`stream_recheck_interval`](crate::SessionBindingLayer::stream_recheck_interval) it looks the
//! session up again and ends the body (a clean end of stream) unless the session is still bound
//! to the caller. Other requests pay nothing; a stream costs one timer and one lookup per
//! interval.
//!
//! POST answers streamed as SSE are not watched: they end with their request's answer, and
//! watching them would cost every POST of a session (rmcp streams nearly all of its answers) a
//! header lookup, an allocation and a timer.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use futures::{FutureExt, future::BoxFuture};
use http::{HeaderMap, Response, header};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use crate::{
    Identity, ResponseBody,
    binding::future::{AfterResponse, Then},
    binding::layer::Config,
    store::{BindingStore, Lookup, Owner, SessionKey, StoreError},
};

/// The shortest interval between two rechecks of a stream: shorter settings count as this.
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// Looks a session up for a stream, whatever the store's type.
trait Lookups: Send + Sync {
    fn lookup(
        &self,
        key: SessionKey,
        slide: Option<Duration>,
    ) -> BoxFuture<'static, Result<Lookup, StoreError>>;
}

impl<St: BindingStore + Clone> Lookups for St {
    fn lookup(
        &self,
        key: SessionKey,
        slide: Option<Duration>,
    ) -> BoxFuture<'static, Result<Lookup, StoreError>> {
        let store = self.clone();
        async move { store.lookup(key, slide).await }.boxed()
    }
}

/// The work after a GET of a bound session: watch its answer if it is an SSE stream. `None`
/// with rechecking off.
pub(crate) fn watch<St, B, E>(
    store: &St,
    config: &Config,
    key: SessionKey,
    caller: Option<Identity>,
) -> Option<Box<dyn AfterResponse<B, E>>>
where
    St: BindingStore + Clone,
    B: Send + 'static,
    E: Send + 'static,
{
    if config.stream_recheck_interval.is_zero() {
        return None;
    }
    Some(Box::new(Watch {
        interval: config.stream_recheck_interval.max(MIN_INTERVAL),
        slide: config.sliding.then_some(config.binding_ttl),
        allow_anonymous: config.allow_anonymous,
        key,
        caller,
        store: Box::new(store.clone()),
    }))
}

/// What a stream's rechecks need.
struct Watch {
    interval: Duration,
    /// The slide of a request's lookup: an open stream keeps its binding alive, as requests do.
    slide: Option<Duration>,
    allow_anonymous: bool,
    key: SessionKey,
    caller: Option<Identity>,
    store: Box<dyn Lookups>,
}

impl<B: Send + 'static, E: Send + 'static> AfterResponse<B, E> for Watch {
    fn applies_to(&self, response: &Response<B>) -> bool {
        response.status().is_success() && is_event_stream(response.headers())
    }

    fn run(self: Box<Self>, response: Response<B>) -> Then<B, E> {
        if !AfterResponse::<B, E>::applies_to(&*self, &response) {
            return Then::Now(Ok(response.map(ResponseBody::inner)));
        }
        let (mut parts, body) = response.into_parts();
        // The body may end early: no length may be promised.
        parts.headers.remove(header::CONTENT_LENGTH);
        let watch = Box::pin(StreamWatch {
            sleep: None,
            lookup: None,
            ended: false,
            watch: *self,
        });
        Then::Now(Ok(Response::from_parts(
            parts,
            ResponseBody::watched(body, watch),
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
    /// The watch over one open stream: a timer, and the lookup in flight.
    pub(crate) struct StreamWatch {
        // Made at the first poll, on the runtime that serves the body.
        #[pin]
        sleep: Option<Sleep>,
        lookup: Option<BoxFuture<'static, Result<Lookup, StoreError>>>,
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
    pub(crate) fn poll_ended(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
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
            *this.lookup = Some(watch.store.lookup(watch.key, watch.slide));
        }
    }

    pub(crate) fn ended(&self) -> bool {
        self.ended
    }
}

impl Watch {
    fn verdict(&self, found: Result<Lookup, StoreError>) -> Verdict {
        match found {
            Ok(Lookup::Bound(owner)) => {
                let anonymous_ok = self.allow_anonymous || owner != Owner::Anonymous;
                if owner.admits(self.caller.as_ref()) && anonymous_ok {
                    Verdict::Keep
                } else {
                    Verdict::End("bound to someone else")
                }
            }
            Ok(Lookup::Ended) => Verdict::End("session ended"),
            Ok(Lookup::Missing) => Verdict::End("binding missing or expired"),
            // Fail closed on an error that is not transient (a stored value that does not
            // parse), as a request would.
            Err(error) if !error.is_transient() => Verdict::End("store error, not transient"),
            Err(error) => {
                self.unavailable(&error);
                Verdict::Keep
            }
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
