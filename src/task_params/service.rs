//! What [`TaskParams`] does with a request: which requests it reads, and the checks on what
//! their bodies name. The type and its constructor are in `layer`, the reading of bodies in
//! `body` and `read`.

use std::task::{Context, Poll};

use bytes::Bytes;
use futures::future::FutureExt;
use http::{Method, Request, Response, request::Parts};
use tower::Service;

use super::{
    TaskParams,
    body::{RequestBody, TaskBody},
    config::Settings,
    read::{Plan, legacy_plan, listen_plan},
};
use crate::{
    Identity, ResponseBody, ResponseFuture,
    binding::{
        decide, plumbing,
        reject::{self, RejectionReason},
        tasks::{self, Mode},
        trace,
    },
    protocol::{
        headers,
        jsonrpc::code,
        route::{self, Route},
    },
    store::BindingStore,
};

/// Which body the layer reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Read {
    /// A sessionless `subscriptions/listen`.
    Listen,
    /// A session-era POST (legacy tasks on).
    Legacy,
}

impl Read {
    /// What to do with a request of this kind whose body is `bytes`.
    fn plan(self, bytes: &[u8], settings: &Settings) -> Plan {
        match self {
            Read::Listen => listen_plan(bytes, settings),
            Read::Legacy => legacy_plan(bytes, settings.config.max_task_id_len),
        }
    }
}

impl<S, St, B, RB> Service<Request<B>> for TaskParams<S, St>
where
    S: Service<Request<B>, Response = Response<RB>, Future: Send, Error: Send>,
    S: Clone + Send + 'static,
    St: BindingStore + Clone,
    B: TaskBody,
    RB: Send + 'static,
{
    type Response = Response<ResponseBody<RB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, RB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let settings = &self.settings;
        let read = if request.method() != Method::POST {
            None
        } else if headers::is_sessionless(request.headers()) {
            let max = settings.config.max_task_id_len;
            (settings.listen && route::route(request.headers(), max) == Some(Route::Listen))
                .then_some(Read::Listen)
        } else {
            settings.legacy.then_some(Read::Legacy)
        };
        let Some(read) = read else {
            return ResponseFuture::inner(self.inner.call(request), None);
        };
        let (parts, body) = request.into_parts();
        let cap = settings.config.max_body_bytes;
        match RequestBody::take(body, cap, |bytes| read.plan(bytes, settings)) {
            // The common case, a small body there whole, to forward: forwarded to the service
            // polled ready, unboxed.
            RequestBody::Forward(bytes, capture) => self.forward(parts, bytes, capture),
            body => ResponseFuture::boxed(self.take().handle(read, parts, body).boxed()),
        }
    }
}

impl<S, St: BindingStore + Clone> TaskParams<S, St> {
    /// Carries out the plan for a request whose body is read or still to read, on the service
    /// polled ready.
    async fn handle<B: TaskBody, RB: Send + 'static>(
        mut self,
        read: Read,
        parts: Parts,
        body: RequestBody<B>,
    ) -> Result<Response<ResponseBody<RB>>, S::Error>
    where
        S: Service<Request<B>, Response = Response<RB>, Error: Send + 'static>,
    {
        let settings = self.settings.clone();
        let config = &settings.config;
        let caller = parts.extensions.get::<Identity>().cloned();
        let caller = caller.as_ref();
        let (bytes, plan) = match body.read(&parts, config, caller).await {
            Ok(read) => read,
            Err(answer) => return Ok(answer.map(ResponseBody::answer)),
        };
        let answer = match plan.unwrap_or_else(|| read.plan(&bytes, &settings)) {
            Plan::Forward { capture } => return self.forward(parts, bytes, capture).await,
            Plan::Check(task_ids) => {
                // A legacy check slides the record, as the binding layer's `tasks/*` check does.
                let slide = (read == Read::Legacy).then_some(config.task_ttl);
                match tasks::owns_all(&self.store, caller, &task_ids, slide).await {
                    Ok(()) => return self.forward(parts, bytes, false).await,
                    Err((task_id, key, decide::Task::Unknown(reason))) => {
                        trace::unknown_task(reason, caller, key);
                        let message = format!("unknown task: {task_id}");
                        tasks::answer_for(&bytes, config, reason, code::INVALID_PARAMS, &message)
                    }
                    Err(_) => reject::plain(RejectionReason::StoreUnavailable, None),
                }
            }
            Plan::Refuse {
                reason,
                code,
                message,
            } => {
                trace::rejected(reason, caller, None, Some(&message));
                tasks::answer_for(&bytes, config, reason, code, &message)
            }
            Plan::Unreadable => {
                let (reason, why) = (RejectionReason::BodyUnreadable, UNREADABLE);
                trace::rejected(reason, caller, None, Some(why));
                reject::plain(reason, Some(why))
            }
        };
        Ok(answer.map(ResponseBody::answer))
    }

    /// Forwards a request whose body was read to the inner service; with `capture`, its answer
    /// is scanned for the task it creates, recorded for the caller.
    #[inline]
    fn forward<B: From<Bytes>, RB: Send + 'static>(
        &mut self,
        parts: Parts,
        bytes: Bytes,
        capture: bool,
    ) -> ResponseFuture<S::Future, RB>
    where
        S: Service<Request<B>, Response = Response<RB>, Error: Send + 'static>,
    {
        let after = capture.then(|| {
            let caller = parts.extensions.get::<Identity>().cloned();
            let (store, config) = (self.store.clone(), self.settings.config.clone());
            plumbing::capture(store, config, caller, Mode::Create)
        });
        let request = Request::from_parts(parts, B::from(bytes));
        ResponseFuture::inner(self.inner.call(request), after)
    }
}

const UNREADABLE: &str = "the body is not a JSON-RPC message the layer can read";
