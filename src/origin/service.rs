//! [`Origin`], the service [`OriginLayer`] wraps around the inner one, and its
//! [`ResponseFuture`].

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body::Body;
use http_body_util::Full;
use pin_project_lite::pin_project;
use tower::Service;

use super::{OriginLayer, OriginRejection, canonical};
use crate::{
    ResponseBody,
    protocol::{
        early::EarlyAnswer,
        jsonrpc::{Refusal, code},
    },
};

/// Service that answers 403 to a request whose `Origin` is present and not allowed, and
/// forwards every other request untouched. Made by [`OriginLayer`].
///
/// ```
/// use http::{Request, Response, StatusCode};
/// use http_body_util::BodyExt;
/// use mcp_session_binding::origin::{Origin, OriginLayer, OriginRejection};
/// use tower::{ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mcp = service_fn(|_req: Request<String>| async {
///     Ok::<_, std::convert::Infallible>(Response::new(http_body_util::Empty::<bytes::Bytes>::new()))
/// });
/// let service = Origin::new(mcp, OriginLayer::new());
///
/// let request = Request::builder()
///     .header("origin", "https://app.example")
///     .header("origin", "https://app.example")
///     .body(String::new())?;
/// let response = service.oneshot(request).await?;
/// assert_eq!(response.status(), StatusCode::FORBIDDEN);
/// assert_eq!(response.extensions().get(), Some(&OriginRejection::Repeated));
/// let body = response.into_body().collect().await?.to_bytes();
/// let body: serde_json::Value = serde_json::from_slice(&body)?;
/// assert_eq!(body["error"]["code"], -32600);
/// assert!(body.get("id").is_none());
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Origin<S> {
    inner: S,
    layer: OriginLayer,
}

impl<S> Origin<S> {
    /// Wraps `inner`, allowing the origins `layer` allows.
    pub fn new(inner: S, layer: OriginLayer) -> Self {
        Self { inner, layer }
    }

    define_inner_service_accessors!();

    /// Why a request with these headers is refused, if it is.
    fn refusal(&self, uri: &http::Uri, headers: &http::HeaderMap) -> Option<OriginRejection> {
        self.origin_refusal(headers).or_else(|| {
            (self.layer.checks_host() && !self.layer.allows_host(host(uri, headers)))
                .then_some(OriginRejection::HostNotAllowed)
        })
    }

    /// Why a request with these `Origin` headers is refused, if it is.
    fn origin_refusal(&self, headers: &http::HeaderMap) -> Option<OriginRejection> {
        let mut values = headers.get_all(header::ORIGIN).iter();
        let value = values.next()?;
        if values.next().is_some() {
            return Some(OriginRejection::Repeated);
        }
        let Ok(origin) = value.to_str() else {
            return Some(OriginRejection::Malformed);
        };
        if origin == "null" {
            return Some(OriginRejection::NotAllowed);
        }
        match canonical(origin) {
            Err(_) => Some(OriginRejection::Malformed),
            Ok(origin) if self.layer.allowed().binary_search(&origin).is_ok() => None,
            Ok(_) => Some(OriginRejection::NotAllowed),
        }
    }
}

/// The host a request names: its one `Host` header, else (HTTP/2) its URI's authority. `None`
/// for a repeated or non-ASCII `Host`, or none at all.
fn host<'a>(uri: &'a http::Uri, headers: &'a http::HeaderMap) -> Option<&'a str> {
    let mut values = headers.get_all(header::HOST).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => value.to_str().ok(),
        (Some(_), Some(_)) => None,
        (None, _) => uri.authority().map(http::uri::Authority::as_str),
    }
}

/// The 403 answer to a refused request.
fn answer(rejection: OriginRejection) -> Response<Full<Bytes>> {
    Refusal::new(
        StatusCode::FORBIDDEN,
        code::INVALID_REQUEST,
        rejection.message(),
    )
    .response(rejection)
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for Origin<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ReqB: Body + Send + 'static,
    ReqB::Data: Send,
{
    type Response = Response<ResponseBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        let Some(rejection) = self.refusal(request.uri(), request.headers()) else {
            return ResponseFuture {
                state: State::Inner {
                    future: self.inner.call(request),
                },
            };
        };
        crate::metrics::origin_refused(rejection.code());
        tracing::debug!(
            reason = rejection.code(),
            origin = ?request.headers().get(header::ORIGIN),
            "request refused: {rejection}"
        );
        // The body is not read: drain a small one, or close the HTTP/1.1 connection after the
        // answer.
        let answer = EarlyAnswer::new(request.version(), request.into_body(), answer(rejection));
        ResponseFuture {
            state: State::Refused { answer },
        }
    }
}

pin_project! {
    /// Response future of [`Origin`]: the inner service's future `F`, or the layer's 403.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use mcp_session_binding::origin::{OriginLayer, ResponseFuture};
    /// use tower::{Layer, Service, ServiceExt};
    ///
    /// let mut service = OriginLayer::new().layer(tower::service_fn(|_: http::Request<String>| async {
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    /// }));
    /// let request = http::Request::builder().header("origin", "https://evil.example").body(String::new()).unwrap();
    /// let future: ResponseFuture<_> = service.ready().await.unwrap().call(request);
    /// assert_eq!(future.await.unwrap().status(), http::StatusCode::FORBIDDEN);
    /// # });
    /// ```
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Inner { #[pin] future: F },
        Refused { answer: EarlyAnswer },
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Inner { future } => {
                let response = ready!(future.poll(cx))?;
                Poll::Ready(Ok(response.map(ResponseBody::inner)))
            }
            StateProj::Refused { answer } => {
                let response = ready!(Pin::new(answer).poll(cx));
                Poll::Ready(Ok(response.map(ResponseBody::answer)))
            }
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Inner { .. } => "inner",
            State::Refused { .. } => "refused",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Empty};
    use std::convert::Infallible;
    use tower::{Layer, ServiceExt, service_fn};

    fn service() -> Origin<
        impl Service<
            Request<Full<Bytes>>,
            Response = Response<Full<Bytes>>,
            Error = Infallible,
            Future = impl Send,
        > + Clone,
    > {
        let layer = OriginLayer::new()
            .allow("http://127.0.0.1:3000")
            .unwrap()
            .allow("https://app.example")
            .unwrap();
        layer.layer(service_fn(|_req: Request<Full<Bytes>>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"inner"))))
        }))
    }

    async fn call(origins: &[&[u8]]) -> (StatusCode, Option<OriginRejection>, Bytes) {
        let mut request = Request::new(Full::new(Bytes::new()));
        for origin in origins {
            request.headers_mut().append(
                header::ORIGIN,
                http::HeaderValue::from_bytes(origin).unwrap(),
            );
        }
        let response = service().oneshot(request).await.unwrap();
        let status = response.status();
        let rejection = response.extensions().get::<OriginRejection>().copied();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, rejection, body)
    }

    #[tokio::test]
    async fn absent_or_allowed_origins_pass() {
        for origins in [
            &[][..],
            &[&b"http://127.0.0.1:3000"[..]],
            &[b"https://APP.example:443"],
        ] {
            let (status, rejection, body) = call(origins).await;
            assert_eq!((status, rejection), (StatusCode::OK, None), "{origins:?}");
            assert_eq!(body, "inner");
        }
    }

    #[tokio::test]
    async fn other_origins_get_403_with_a_json_rpc_error_without_id() {
        let cases: [(&[&[u8]], OriginRejection); 9] = [
            (&[b"http://127.0.0.1:3001"], OriginRejection::NotAllowed),
            (&[b"http://localhost:3000"], OriginRejection::NotAllowed),
            (&[b"https://127.0.0.1:3000"], OriginRejection::NotAllowed),
            (&[b"null"], OriginRejection::NotAllowed),
            (&[b""], OriginRejection::Malformed),
            (&[b"https://app.example/"], OriginRejection::Malformed),
            (&[b"https://app.example\xff"], OriginRejection::Malformed),
            (
                &[b"https://app.example", b"https://app.example"],
                OriginRejection::Repeated,
            ),
            (
                &[b"https://app.example", b"http://evil.example"],
                OriginRejection::Repeated,
            ),
        ];
        for (origins, expected) in cases {
            let (status, rejection, body) = call(origins).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{origins:?}");
            assert_eq!(rejection, Some(expected), "{origins:?}");
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(
                body,
                serde_json::json!({"jsonrpc": "2.0", "error": {"code": -32600, "message": expected.message()}})
            );
        }
        let long = format!(
            "https://{}.example",
            "a".repeat(super::super::MAX_ORIGIN_LEN)
        );
        let (status, rejection, _) = call(&[long.as_bytes()]).await;
        assert_eq!(
            (status, rejection),
            (StatusCode::FORBIDDEN, Some(OriginRejection::Malformed))
        );
    }

    /// `OriginLayer::loopback(8080)`: each (Host values, URI, Origin) and what it gets.
    #[tokio::test]
    async fn loopback_checks_host_and_origin() {
        use OriginRejection::{HostNotAllowed, NotAllowed};
        let pass = None;
        /// (Host values, URI, Origin, refusal).
        type Case<'a> = (
            &'a [&'a str],
            &'a str,
            Option<&'a str>,
            Option<OriginRejection>,
        );
        let cases: [Case<'_>; 22] = [
            // The server's own hosts, with or without its own origins.
            (&["127.0.0.1:8080"], "/mcp", None, pass),
            (&["localhost:8080"], "/mcp", None, pass),
            (&["LOCALHOST:8080"], "/mcp", None, pass),
            (&["[::1]:8080"], "/mcp", None, pass),
            (
                &["127.0.0.1:8080"],
                "/mcp",
                Some("http://127.0.0.1:8080"),
                pass,
            ),
            (
                &["localhost:8080"],
                "/mcp",
                Some("http://localhost:8080"),
                pass,
            ),
            (&["[::1]:8080"], "/mcp", Some("http://[::1]:8080"), pass),
            (
                &["127.0.0.1:8080"],
                "/mcp",
                Some("http://localhost:8080"),
                pass,
            ),
            // HTTP/2: no Host, the authority of the URI.
            (&[], "http://127.0.0.1:8080/mcp", None, pass),
            // A rebound name, with the right port, with or without its Origin.
            (
                &["evil.example.com:8080"],
                "/mcp",
                None,
                Some(HostNotAllowed),
            ),
            (
                &["evil.example.com:8080"],
                "/mcp",
                Some("http://evil.example.com:8080"),
                Some(NotAllowed),
            ),
            (
                &["127.0.0.1:8080"],
                "/mcp",
                Some("http://evil.example.com:8080"),
                Some(NotAllowed),
            ),
            (
                &[],
                "http://evil.example.com:8080/mcp",
                None,
                Some(HostNotAllowed),
            ),
            // Another port, another scheme, no port, no host, a repeated or odd host.
            (&["127.0.0.1:8081"], "/mcp", None, Some(HostNotAllowed)),
            (&["127.0.0.1"], "/mcp", None, Some(HostNotAllowed)),
            (
                &["127.0.0.1:8080"],
                "/mcp",
                Some("https://127.0.0.1:8080"),
                Some(NotAllowed),
            ),
            (
                &["127.0.0.1:8080"],
                "/mcp",
                Some("http://127.0.0.1:8081"),
                Some(NotAllowed),
            ),
            (&[], "/mcp", None, Some(HostNotAllowed)),
            (
                &["127.0.0.1:8080", "127.0.0.1:8080"],
                "/mcp",
                None,
                Some(HostNotAllowed),
            ),
            (&["user@127.0.0.1:8080"], "/mcp", None, Some(HostNotAllowed)),
            (&["127.0.0.2:8080"], "/mcp", None, Some(HostNotAllowed)),
            (&["127.0.0.1:8080"], "/mcp", Some("null"), Some(NotAllowed)),
        ];
        for (hosts, uri, origin, expected) in cases {
            let mut request = Request::builder().uri(uri);
            for host in hosts {
                request = request.header(header::HOST, *host);
            }
            if let Some(origin) = origin {
                request = request.header(header::ORIGIN, origin);
            }
            let service =
                OriginLayer::loopback(8080).layer(service_fn(|_req: Request<Full<Bytes>>| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"inner"))))
                }));
            let response = service
                .oneshot(request.body(Full::new(Bytes::new())).unwrap())
                .await
                .unwrap();
            let what = format!("{hosts:?} {uri} {origin:?}");
            let rejection = response.extensions().get::<OriginRejection>().copied();
            assert_eq!(rejection, expected, "{what}");
            let status = if expected.is_some() {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::OK
            };
            assert_eq!(response.status(), status, "{what}");
        }
        // Without `loopback`, Host is not checked.
        let (status, _, _) = call(&[]).await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn a_refused_request_never_reaches_the_inner_service() {
        let reached = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = reached.clone();
        let service = OriginLayer::new().layer(service_fn(move |_req: Request<Empty<Bytes>>| {
            seen.store(true, std::sync::atomic::Ordering::SeqCst);
            async { Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new())) }
        }));
        let request = Request::builder()
            .header("origin", "http://127.0.0.1:8080")
            .body(Empty::new())
            .unwrap();
        let response = service.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        assert!(!reached.load(std::sync::atomic::Ordering::SeqCst));
    }
}
