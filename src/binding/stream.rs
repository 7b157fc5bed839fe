//! Open SSE streams of a session, checked again while they stream: a session ended anywhere (a
//! tombstone written by another replica, an expired binding) stops streaming here too.
//!
//! The layer checks a session's binding once per request. A stream (a GET's standalone SSE
//! stream, a long POST answer) outlives that check, so when a request of a bound session is
//! answered with `text/event-stream`, its body is wrapped in a [`StreamWatch`]: every
//! [`stream_recheck_interval`](crate::SessionBindingLayer::stream_recheck_interval) it looks the
//! session up again and ends the body (a clean end of stream) unless the session is still bound
//! to the caller. Nothing runs for answers that are not SSE, and a stream costs one timer and one
//! lookup per interval.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use futures::{FutureExt, future::BoxFuture};
use http::{HeaderMap, Response, header};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use crate::{
    Identity, ResponseBody,
    store::{BindingStore, Lookup, Owner, SessionKey, StoreError},
};

/// The shortest interval between two rechecks of a stream: shorter settings count as this.
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// Looks a session up for a stream, whatever the store's type.
pub(crate) trait Lookups: Send + Sync {
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

/// What every watched stream of one layer shares: the store, and how to check.
pub(crate) struct Recheck<L: ?Sized = dyn Lookups> {
    interval: Duration,
    /// The slide of a request's lookup: an open stream keeps its binding alive, as requests do.
    slide: Option<Duration>,
    allow_anonymous: bool,
    store: L,
}

impl<St: BindingStore + Clone> Recheck<St> {
    /// `None` when rechecking is off (`interval` zero).
    pub(crate) fn new(store: St, config: &super::layer::Config) -> Option<Arc<Recheck>> {
        if config.stream_recheck_interval.is_zero() {
            return None;
        }
        Some(Arc::new(Self {
            interval: config.stream_recheck_interval.max(MIN_INTERVAL),
            slide: config.sliding.then_some(config.binding_ttl),
            allow_anonymous: config.allow_anonymous,
            store,
        }))
    }
}

impl fmt::Debug for Recheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recheck")
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

/// A request of a bound session on its way to the inner service: what its answer needs to be
/// watched, if it is a stream. Moved, never cloned, until then.
pub(crate) struct Watch {
    pub(crate) recheck: Arc<Recheck>,
    pub(crate) key: SessionKey,
    pub(crate) caller: Option<Identity>,
}

impl Watch {
    /// The answer, its body watched when it is an SSE stream.
    pub(crate) fn apply<B>(self, response: Response<B>) -> Response<ResponseBody<B>> {
        if !is_event_stream(response.headers()) {
            return response.map(ResponseBody::inner);
        }
        let (mut parts, body) = response.into_parts();
        // The body may end early: no length may be promised.
        parts.headers.remove(header::CONTENT_LENGTH);
        let watch = Box::pin(StreamWatch {
            sleep: None,
            lookup: None,
            ended: false,
            watch: self,
        });
        Response::from_parts(parts, ResponseBody::watched(body, watch))
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
        let interval = this.watch.recheck.interval;
        if this.sleep.is_none() {
            let first = Instant::now() + interval;
            this.sleep.set(Some(tokio::time::sleep_until(first)));
        }
        loop {
            if let Some(lookup) = this.lookup {
                if let Poll::Ready(found) = lookup.poll_unpin(cx) {
                    *this.lookup = None;
                    if let Verdict::End(why) = this.watch.verdict(found) {
                        *this.ended = true;
                        let caller = this.watch.caller.as_ref();
                        let (iss, sub) = caller.map_or(("", ""), |id| (id.iss(), id.sub()));
                        tracing::info!(
                            reason = "stream_ended",
                            iss,
                            sub,
                            session = %this.watch.key.short(),
                            detail = why,
                            "open stream ended: the session is no longer bound to its caller"
                        );
                        return Poll::Ready(());
                    }
                }
            }
            let mut sleep = this.sleep.as_mut().as_pin_mut().expect("made above");
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if this.lookup.take().is_some() {
                this.watch.unavailable(&"no answer within stream_recheck_interval");
            }
            sleep.reset(Instant::now() + interval);
            let recheck = &this.watch.recheck;
            *this.lookup = Some(recheck.store.lookup(this.watch.key, recheck.slide));
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
                let anonymous_ok = self.recheck.allow_anonymous || owner != Owner::Anonymous;
                if owner.admits(self.caller.as_ref()) && anonymous_ok {
                    Verdict::Keep
                } else {
                    Verdict::End("bound to someone else")
                }
            }
            Ok(Lookup::Ended) => Verdict::End("session ended"),
            Ok(Lookup::Missing) => Verdict::End("binding missing or expired"),
            // Fail closed on a stored value that does not parse, as a request would.
            Err(error) if !error.is_transient() => Verdict::End("stored binding does not parse"),
            Err(error) => {
                self.unavailable(&error);
                Verdict::Keep
            }
        }
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
