//! What carries a request of [`SessionBinding`](crate::SessionBinding) from one step to the next:
//! the bounds of its request bodies, a request waiting for the store's answer, and the work
//! after a response. None of it decides anything: `service` picks the path, `decide` the answer,
//! `session` what happens to a new session.

use std::{marker::PhantomData, sync::Arc, time::Duration};

use bytes::Buf;
use futures::future::FutureExt;
use http::{Response, request::Parts};
use http_body::Body;

use crate::{
    Identity, ResponseBody,
    binding::config::{Config, InnerHead},
    binding::end::{self, Inner},
    binding::future::{AfterResponse, Then},
    binding::session,
    store::{BindingStore, SessionKey, StoreError, aged},
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

/// A request that names a session, waiting for the store's answer.
pub(crate) struct Checked<S, St, ReqBody> {
    /// The service polled ready: the one to forward to, or to send the `DELETE` that ends the
    /// session.
    pub(crate) ready: S,
    pub(crate) store: St,
    pub(crate) config: Arc<Config>,
    pub(crate) caller: Option<Identity>,
    pub(crate) key: SessionKey,
    pub(crate) parts: Parts,
    pub(crate) body: ReqBody,
}

impl<S, St: BindingStore, ReqBody> Checked<S, St, ReqBody> {
    /// The session's binding, looked up under its key and, during a key rotation's overlap,
    /// under its key before the rotation (`previous`): a session bound under the old secret is
    /// served and ended under its old key, which becomes [`key`](Self::key).
    pub(crate) async fn lookup_either(
        &mut self,
        previous: Option<SessionKey>,
        slide: Option<Duration>,
        aged: bool,
    ) -> Result<aged::Aged, StoreError> {
        let (key, found) = aged::lookup_either(&self.store, self.key, previous, slide, aged).await;
        self.key = key;
        found
    }
}

/// Work to do once the inner service has answered.
pub(crate) struct After<S, St, ReqBody> {
    inner: S,
    store: St,
    config: Arc<Config>,
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
    pub(crate) fn new(
        inner: S,
        store: St,
        config: Arc<Config>,
        caller: Option<Identity>,
        kind: AfterKind,
    ) -> Self {
        Self {
            inner,
            store,
            config,
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
            inner,
            store,
            config,
            caller,
            kind,
            request: _,
        } = *self;
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
