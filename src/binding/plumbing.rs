//! What carries a request of [`SessionBinding`] from one step to the next:
//! the bounds of its request bodies, a request waiting for the store's answer, and the work
//! after a response. None of it decides anything: `service` picks the path, `decide` the answer,
//! `session` what happens to a new session.

use std::{marker::PhantomData, sync::Arc};

use bytes::Buf;
use futures::future::FutureExt;
use http::{Response, request::Parts};
use http_body::Body;

use crate::{
    Identity, ResponseBody, SessionBinding,
    binding::config::{Config, InnerHead},
    binding::end::{self, Inner},
    binding::future::{AfterResponse, Then},
    binding::session,
    binding::tasks::{Capture, Mode},
    store::{BindingStore, Lookup, SessionKey, StoreError, aged},
};

/// The request bodies the binding service takes: `Default` so that it can send the inner service
/// the `DELETE` that ends a session.
pub(crate) trait RequestBody:
    Body<Data: Buf + Send, Error: Into<tower::BoxError>> + Default + Send + 'static
{
}

impl<T> RequestBody for T where
    T: Body<Data: Buf + Send, Error: Into<tower::BoxError>> + Default + Send + 'static
{
}

/// The binding service as work in a future carries it: with the inner service it was handed
/// (the instance polled ready, or a clone), without an identity extractor.
pub(crate) type Carried<S, St> = SessionBinding<S, St, ()>;

/// A request that names a session, waiting for the store's answer.
pub(crate) struct Checked<S, St, ReqBody> {
    /// Its inner service is the one polled ready: the one to forward to, or to send the
    /// `DELETE` that ends the session.
    pub(crate) binding: Carried<S, St>,
    pub(crate) caller: Option<Identity>,
    pub(crate) key: SessionKey,
    pub(crate) parts: Parts,
    pub(crate) body: ReqBody,
}

impl<S, St: BindingStore, ReqBody> Checked<S, St, ReqBody> {
    /// The session's binding (read as [`SessionBinding::lookup_now`] reads it), looked up
    /// under its key and, during a key rotation's overlap,
    /// under its key before the rotation (`previous`): a session bound under the old secret is
    /// served and ended under its old key, which becomes [`key`](Self::key).
    pub(crate) async fn lookup_either(
        &mut self,
        previous: Option<SessionKey>,
    ) -> Result<aged::Aged, StoreError> {
        let config = &self.binding.config;
        let slide = config.slide(self.caller.as_ref());
        let aged = config.max_session_age.is_some();
        let store = &self.binding.store;
        let (key, found) = aged::lookup_either(store, self.key, previous, slide, aged).await;
        self.key = key;
        found
    }
}

impl<S: Clone, St: BindingStore + Clone, I> SessionBinding<S, St, I> {
    /// The binding of the session `key` as the store has it at once, read as `caller`'s
    /// request reads it (sliding, with its age when sessions have a maximum age). `None` when
    /// the store must be waited for, or asked again under the key before a rotation
    /// (`previous`), during its overlap.
    pub(crate) fn lookup_now(
        &self,
        key: SessionKey,
        previous: Option<SessionKey>,
        caller: Option<&Identity>,
    ) -> Option<Result<aged::Aged, StoreError>> {
        let slide = self.config.slide(caller);
        let aged = self.config.max_session_age.is_some();
        match aged::lookup_now(&self.store, key, slide, aged) {
            Some(Ok((Lookup::Missing, _))) if previous.is_some() => None,
            found => found,
        }
    }

    /// This service with `inner` as its inner service, for work in a future.
    pub(crate) fn carry(&self, inner: S) -> Carried<S, St> {
        SessionBinding {
            inner,
            store: self.store.clone(),
            identity: (),
            config: self.config.clone(),
        }
    }

    /// This service with the instance polled ready, for a future that calls it; a clone stays
    /// for the next request.
    pub(crate) fn take(&mut self) -> Carried<S, St> {
        let ready = self.take_ready();
        self.carry(ready)
    }

    /// The request naming the session `key`, with the service polled ready, to carry through
    /// the store's answer.
    pub(crate) fn checked<B>(
        &mut self,
        caller: Option<Identity>,
        key: SessionKey,
        parts: Parts,
        body: B,
    ) -> Checked<S, St, B> {
        Checked {
            binding: self.take(),
            caller,
            key,
            parts,
            body,
        }
    }
}

/// The work after a task route's answer: [`Capture`] reads it for `caller`, in `mode`.
pub(crate) fn capture<St, RB, E>(
    store: St,
    config: Arc<Config>,
    caller: Option<Identity>,
    mode: Mode,
) -> Box<dyn AfterResponse<RB, E>>
where
    St: BindingStore + Clone,
    RB: Send + 'static,
    E: Send + 'static,
{
    let capture = Capture {
        store,
        config,
        caller,
        mode,
    };
    capture.scan()
}

/// Work to do once the inner service has answered.
pub(crate) struct After<S, St, ReqBody> {
    binding: Carried<S, St>,
    caller: Option<Identity>,
    kind: AfterKind,
    request: PhantomData<fn(ReqBody)>,
}

pub(crate) enum AfterKind {
    /// A request without a session: bind the session its response creates. `credentials`: the
    /// request carried an `Authorization` header.
    BindNew { head: InnerHead, credentials: bool },
    /// The owner's `DELETE`: tombstone the session once the inner service agreed.
    EndOnSuccess(SessionKey),
}

impl<S, St, ReqBody> After<S, St, ReqBody> {
    pub(crate) fn new(binding: Carried<S, St>, caller: Option<Identity>, kind: AfterKind) -> Self {
        Self {
            binding,
            caller,
            kind,
            request: PhantomData,
        }
    }
}

impl<S, St, ReqBody, ResBody> AfterResponse<ResBody, S::Error> for After<S, St, ReqBody>
where
    S: Inner<ReqBody, ResBody>,
    St: BindingStore + Clone,
    ReqBody: Default + Send + 'static,
    ResBody: Send + 'static,
{
    fn applies_to(&self, response: &Response<ResBody>) -> bool {
        session::needs_work(&self.kind, response)
    }

    fn run(self: Box<Self>, response: Response<ResBody>) -> Then<ResBody, S::Error> {
        if !self.applies_to(&response) {
            return Then::Now(Ok(response.map(ResponseBody::inner)));
        }
        let After {
            binding,
            caller,
            kind,
            request: _,
        } = *self;
        let SessionBinding {
            inner,
            store,
            config,
            ..
        } = binding;
        let work = async move {
            match kind {
                AfterKind::EndOnSuccess(key) => {
                    end::tombstone_deleted(store, &config, caller, key).await;
                    Ok(response.map(ResponseBody::inner))
                }
                AfterKind::BindNew { head, credentials } => {
                    let answer = session::bind_new(
                        inner,
                        store,
                        config,
                        caller,
                        head,
                        credentials,
                        response,
                    );
                    Ok(answer.await)
                }
            }
        }
        .boxed();
        Then::Later(work)
    }
}
