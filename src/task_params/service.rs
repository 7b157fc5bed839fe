//! [`TaskParams`], the service [`TaskParamsLayer`](super::TaskParamsLayer) makes: which requests
//! it reads, what it reads in them, and the checks.

use std::{
    fmt,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::{Buf, Bytes};
use futures::future::FutureExt;
use http::{Method, Request, Response};
use tower::Service;

use super::{
    config::Settings,
    read::{Plan, legacy_plan, listen_plan},
};
use crate::{
    Identity, ResponseBody, ResponseFuture,
    binding::{
        decide,
        future::AfterResponse,
        reject::{self, RejectionReason},
        tasks::{self, Capture, Mode},
        trace,
    },
    protocol::{
        early::{self, Taken},
        headers,
        jsonrpc::code,
        route::{self, Route},
    },
    store::{BindingStore, SessionKey},
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The service [`TaskParamsLayer`](super::TaskParamsLayer) makes.
///
/// ```
/// # #[cfg(feature = "memory")] {
/// use mcp_session_binding::{store::MemoryStore, task_params::{TaskParams, TaskParamsLayer}};
/// use tower::Layer;
///
/// let mcp = tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Empty::<bytes::Bytes>::new()))
/// });
/// let service: TaskParams<_, MemoryStore> = TaskParamsLayer::new(MemoryStore::new()).layer(mcp);
/// # let _ = service;
/// # }
/// ```
#[derive(Clone)]
pub struct TaskParams<S, St> {
    inner: S,
    store: St,
    settings: Arc<Settings>,
}

impl<S, St> TaskParams<S, St> {
    pub(super) fn new(inner: S, store: St, settings: Arc<Settings>) -> Self {
        Self {
            inner,
            store,
            settings,
        }
    }
}

impl<S: fmt::Debug, St> fmt::Debug for TaskParams<S, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskParams")
            .field("inner", &self.inner)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Which body the layer reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Read {
    /// A sessionless `subscriptions/listen`.
    Listen,
    /// A session-era POST (legacy tasks on).
    Legacy,
}

impl<S, St, B, RB> Service<Request<B>> for TaskParams<S, St>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    St: BindingStore + Clone,
    B: http_body::Body + From<Bytes> + Unpin + Send + 'static,
    B::Data: Buf + Send,
    B::Error: Into<BoxError>,
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
        let (parts, mut body) = request.into_parts();
        let config = &settings.config;
        let body = match early::take_now(&mut body, config.max_body_bytes) {
            // The common case, a small body there whole: decided at once, and a request to
            // forward is forwarded to the service polled ready, unboxed.
            Taken::Whole(Ok(bytes)) => {
                let plan = match read {
                    Read::Listen => listen_plan(&bytes, settings),
                    Read::Legacy => legacy_plan(&bytes, config.max_task_id_len),
                };
                if let Plan::Forward { capture } = plan {
                    let after = capture.then(|| {
                        let capture = Capture {
                            store: self.store.clone(),
                            config: config.clone(),
                            caller: parts.extensions.get::<Identity>().cloned(),
                            mode: Mode::Create,
                        };
                        capture.scan() as Box<dyn AfterResponse<RB, S::Error>>
                    });
                    let request = Request::from_parts(parts, B::from(bytes));
                    return ResponseFuture::inner(self.inner.call(request), after);
                }
                RequestBody::Read(Ok(bytes), plan)
            }
            Taken::Whole(Err(error)) => RequestBody::Read(Err(error), Plan::Unreadable),
            Taken::Started(started) => RequestBody::Rest(body, started),
        };
        let ready = crate::ready::take_ready(&mut self.inner);
        let (store, settings) = (self.store.clone(), self.settings.clone());
        ResponseFuture::boxed(handle(ready, store, settings, read, parts, body).boxed())
    }
}

/// A request body, read or still to read.
enum RequestBody<B> {
    /// Read (or failed), and planned.
    Read(Result<Bytes, early::ReadError>, Plan),
    /// Its start; the rest is still to come.
    Rest(B, bytes::BytesMut),
}

async fn handle<S, St, B, RB>(
    mut ready: S,
    store: St,
    settings: Arc<Settings>,
    read: Read,
    parts: http::request::Parts,
    body: RequestBody<B>,
) -> Result<Response<ResponseBody<RB>>, S::Error>
where
    S: Service<Request<B>, Response = Response<RB>> + Send,
    S::Future: Send,
    St: BindingStore + Clone,
    B: http_body::Body + From<Bytes> + Send,
    B::Data: Buf + Send,
    RB: Send + 'static,
    S::Error: Send + 'static,
{
    let config = &settings.config;
    let caller = parts.extensions.get::<Identity>().cloned();
    let (read_body, plan) = match body {
        RequestBody::Read(read_body, plan) => (read_body, Some(plan)),
        RequestBody::Rest(body, started) => {
            let declared = early::declared_length(&parts.headers);
            let cap = config.max_body_bytes;
            let timeout = config.refused_body_timeout;
            (
                early::read_rest(body, started, declared, cap, timeout).await,
                None,
            )
        }
    };
    let bytes = match read_body {
        Ok(bytes) => bytes,
        Err(failed) => {
            let answer = reject::body_not_read(&parts, failed);
            trace_answer(&answer, caller.as_ref(), None, "task request body not read");
            return Ok(answer.map(ResponseBody::answer));
        }
    };
    let plan = plan.unwrap_or_else(|| match read {
        Read::Listen => listen_plan(&bytes, &settings),
        Read::Legacy => legacy_plan(&bytes, config.max_task_id_len),
    });
    let capture = match plan {
        Plan::Forward { capture } => capture,
        Plan::Check(task_ids) => {
            // A legacy check slides the record, as the binding layer's `tasks/*` check does.
            let slide = (read == Read::Legacy).then_some(config.task_ttl);
            match check(&store, caller.as_ref(), &task_ids, slide).await {
                Ok(()) => false,
                Err(Refused::Task(task_id)) => {
                    let reason = RejectionReason::UnknownTask;
                    let key = store.key_derivation().task(&task_id);
                    trace::rejected(reason, caller.as_ref(), Some(key), None);
                    let message = format!("unknown task: {task_id}");
                    let answer =
                        tasks::answer_for(&bytes, config, reason, code::INVALID_PARAMS, &message);
                    return Ok(answer.map(ResponseBody::answer));
                }
                Err(Refused::Store) => {
                    let answer = reject::plain(RejectionReason::StoreUnavailable, None);
                    return Ok(answer.map(ResponseBody::answer));
                }
            }
        }
        Plan::Refuse {
            reason,
            code,
            message,
        } => {
            trace::rejected(reason, caller.as_ref(), None, Some(&message));
            let answer = tasks::answer_for(&bytes, config, reason, code, &message);
            return Ok(answer.map(ResponseBody::answer));
        }
        Plan::Unreadable => {
            let why = "the body is not a JSON-RPC message the layer can read";
            let answer = reject::plain(RejectionReason::BodyUnreadable, Some(why));
            trace_answer(&answer, caller.as_ref(), None, why);
            return Ok(answer.map(ResponseBody::answer));
        }
    };
    let response = ready
        .call(Request::from_parts(parts, B::from(bytes)))
        .await?;
    if !capture {
        return Ok(response.map(ResponseBody::inner));
    }
    let capture = Capture {
        store,
        config: settings.config.clone(),
        caller,
        mode: Mode::Create,
    };
    AfterResponse::<RB, S::Error>::run(capture.scan(), response)
        .finish()
        .await
}

/// Logs an answer the layer made, with the reason it carries.
fn trace_answer<T>(
    answer: &Response<T>,
    caller: Option<&Identity>,
    key: Option<SessionKey>,
    why: &str,
) {
    if let Some(reason) = answer.extensions().get::<RejectionReason>() {
        trace::rejected(*reason, caller, key, Some(why));
    }
}

/// Why a check refused.
enum Refused {
    /// This task is not the caller's (or unknown, expired, or its record corrupt).
    Task(String),
    /// The store failed.
    Store,
}

/// Whether the caller created every task in `task_ids`.
async fn check<St: BindingStore>(
    store: &St,
    caller: Option<&Identity>,
    task_ids: &[String],
    slide: Option<Duration>,
) -> Result<(), Refused> {
    for task_id in task_ids {
        match tasks::ownership(store, caller, task_id, slide).await.1 {
            decide::Task::Forward => {}
            decide::Task::Unknown(_) => return Err(Refused::Task(task_id.clone())),
            decide::Task::Unavailable => return Err(Refused::Store),
        }
    }
    Ok(())
}
