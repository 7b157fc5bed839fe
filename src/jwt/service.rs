//! [`JwtAuth`], the service the layer wraps around the inner one.

use std::{
    fmt,
    sync::Arc,
    task::{Context, Poll},
};

use http::{Request, Response};
use tower::Service;

use super::{
    ResponseFuture,
    admit::{Admission, admit},
    config::Config,
    validate::{Verification, bearer_token},
};
use crate::ready::take_ready;

/// Service that authenticates every request with a JWT bearer access token, then calls the
/// inner service with [`Identity`](crate::Identity) and [`Claims`](crate::identity::Claims) in
/// the request extensions. Made by [`JwtAuthLayer`](super::JwtAuthLayer).
///
/// A refused request gets a response (401, 400 or 503) and never reaches the inner service; the
/// inner service's error type passes through unchanged.
///
/// ```
/// use http::{Request, Response, StatusCode};
/// use mcp_session_binding::{Identity, jwt::{Algorithm, JwtAuthLayer, JwtKey}};
/// use tower::{Layer, ServiceExt, service_fn};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let secret = b"0123456789abcdef0123456789abcdef";
/// let layer = JwtAuthLayer::builder()
///     .issuer_keys("https://auth.example.com", JwtKey::hmac(secret)?)
///     .algorithms([Algorithm::HS256])
///     .audiences(["https://mcp.example.com/mcp"])
///     .build()?;
/// let service = layer.layer(service_fn(|req: Request<String>| async move {
///     let identity = req.extensions().get::<Identity>().unwrap();
///     Ok::<_, std::convert::Infallible>(Response::new(identity.sub().to_owned()))
/// }));
///
/// let claims = serde_json::json!({
///     "iss": "https://auth.example.com",
///     "sub": "alice",
///     "aud": "https://mcp.example.com/mcp",
///     "exp": jsonwebtoken::get_current_timestamp() + 300,
/// });
/// let token = jsonwebtoken::encode(
///     &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
///     &claims,
///     &jsonwebtoken::EncodingKey::from_secret(secret),
/// )?;
///
/// let request = Request::builder()
///     .header("authorization", format!("Bearer {token}"))
///     .body(String::new())?;
/// let response = service.clone().oneshot(request).await?;
/// assert_eq!(response.status(), StatusCode::OK);
///
/// let response = service.oneshot(Request::new(String::new())).await?;
/// assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub struct JwtAuth<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> JwtAuth<S> {
    pub(crate) fn from_config(inner: S, config: Arc<Config>) -> Self {
        Self { inner, config }
    }

    define_inner_service_accessors!();
}

impl<S: Clone> Clone for JwtAuth<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            config: self.config.clone(),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for JwtAuth<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuth")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish()
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for JwtAuth<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone,
    ReqB: http_body::Body + Send + 'static,
    ReqB::Data: Send,
{
    type Response = Response<crate::ResponseBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqB>) -> Self::Future {
        let config = &self.config;
        if config.allow_missing_token
            && !request.headers().contains_key(http::header::AUTHORIZATION)
        {
            tracing::trace!("no Authorization header; forwarded without identity");
            return ResponseFuture::inner(self.inner.call(request));
        }
        let token = match &config.dpop {
            None => bearer_token(request.headers()),
            Some(_) => super::dpop::Dpop::token(request.headers()).map(|(_, token)| token),
        };
        let verified = match token {
            Err(rejection) => Err(rejection),
            Ok(token) => match config.verifier.start(token) {
                Verification::Done(verified) => verified,
                #[cfg(feature = "oidc")]
                Verification::Pending(verifying) => {
                    // The issuer's keys are being fetched: the verdict, and the inner call,
                    // come later in the future. Hand it the instance `poll_ready` made ready.
                    let ready = take_ready(&mut self.inner);
                    return ResponseFuture::verifying(verifying, ready, request, config.clone());
                }
            },
        };
        match admit(config, verified, &mut request) {
            Admission::Rejected(response) => {
                // Refused before the inner call: release what `poll_ready` reserved.
                drop(take_ready(&mut self.inner));
                ResponseFuture::rejected(response, request)
            }
            Admission::Forward => ResponseFuture::inner(self.inner.call(request)),
            Admission::Check(check) => {
                // The inner call happens later, in the future: hand it the instance that
                // `poll_ready` made ready, and keep a fresh clone here (tower's contract).
                let ready = take_ready(&mut self.inner);
                ResponseFuture::revocation(check, ready, request, self.config.clone())
            }
            Admission::Replay(check, revocation) => {
                // As for the revocation check: the ready instance goes to the future.
                let ready = take_ready(&mut self.inner);
                ResponseFuture::replay(check, revocation, ready, request, self.config.clone())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{convert::Infallible, time::Duration};

    use http::StatusCode;
    use jsonwebtoken::{EncodingKey, Header, encode, get_current_timestamp};
    use tower::{Layer, ServiceExt};
    use tower_test::mock;

    use super::*;
    use crate::{
        Identity,
        jwt::{Algorithm, JwtAuthLayer, JwtKey, JwtRejection},
    };

    const SECRET: &[u8; 32] = b"0123456789abcdef0123456789abcdef";

    fn token(jti: &str) -> String {
        let claims = serde_json::json!({
            "iss": "https://i.example", "sub": "alice", "aud": "https://mcp.example/mcp",
            "exp": get_current_timestamp() + 300, "jti": jti,
        });
        encode(
            &Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap()
    }

    fn builder() -> crate::jwt::JwtAuthLayerBuilder {
        JwtAuthLayer::builder()
            .issuer_keys("https://i.example", JwtKey::hmac(SECRET).unwrap())
            .algorithms([Algorithm::HS256])
            .audiences(["https://mcp.example/mcp"])
    }

    fn request(token: &str) -> Request<String> {
        Request::builder()
            .header("authorization", format!("Bearer {token}"))
            .body(String::new())
            .unwrap()
    }

    /// tower-test's mock panics when a clone that was not made ready is called: the revocation
    /// path must hand the future the instance `poll_ready` was called on.
    #[tokio::test]
    async fn revocation_path_calls_the_ready_inner_instance() {
        let layer = builder()
            .revocation(|_jti: String| async {
                tokio::time::sleep(Duration::from_millis(5)).await;
                Ok::<_, Infallible>(false)
            })
            .build()
            .unwrap();
        let (mock, mut handle) = mock::pair::<Request<String>, Response<()>>();
        let mut service = layer.layer(mock);

        handle.allow(1);
        service.ready().await.unwrap();
        // The service keeps a fresh, not-yet-ready clone; the future holds the ready one.
        let future = service.call(request(&token("j1")));

        let respond = tokio::spawn(async move {
            let (req, send) = handle.next_request().await.unwrap();
            assert_eq!(req.extensions().get::<Identity>().unwrap().sub(), "alice");
            send.send_response(Response::new(()));
            handle
        });
        let response = future.await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let _handle = respond.await.unwrap();
    }

    #[tokio::test]
    async fn direct_path_calls_the_ready_inner() {
        let (mock, mut handle) = mock::pair::<Request<String>, Response<()>>();
        let mut service = builder().build().unwrap().layer(mock);
        handle.allow(1);
        service.ready().await.unwrap();
        let future = service.call(request(&token("j1")));
        let (req, send) = handle.next_request().await.unwrap();
        assert!(req.extensions().get::<Identity>().is_some());
        send.send_response(Response::new(()));
        assert_eq!(future.await.unwrap().status(), StatusCode::OK);
    }

    /// A refused request releases what the inner service reserved in `poll_ready`: here the one
    /// permit of a concurrency limit, which another connection's clone then gets.
    #[tokio::test]
    async fn a_refusal_releases_the_ready_inner_instance() {
        let inner = tower::limit::ConcurrencyLimit::new(
            tower::service_fn(|_req: Request<String>| async {
                Ok::<_, Infallible>(Response::new(()))
            }),
            1,
        );
        let mut first = builder().build().unwrap().layer(inner);
        let mut second = first.clone();
        first.ready().await.unwrap();
        let refused = first.call(request("not-a-jwt")).await.unwrap();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        tokio::time::timeout(Duration::from_secs(5), second.ready())
            .await
            .expect("the refused request's permit was released")
            .unwrap();
    }

    #[tokio::test]
    async fn rejected_requests_never_reach_the_inner_service() {
        let (mock, mut handle) = mock::pair::<Request<String>, Response<()>>();
        let mut service = builder()
            .revocation(|_jti: String| async { Err::<bool, _>("store down") })
            .build()
            .unwrap()
            .layer(mock);
        handle.allow(2);
        let response = service
            .ready()
            .await
            .unwrap()
            .call(request("not-a-jwt"))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let response = service
            .ready()
            .await
            .unwrap()
            .call(request(&token("j")))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.extensions().get::<JwtRejection>(),
            Some(&JwtRejection::RevocationUnavailable)
        );
        // Nothing was sent to the inner service.
        drop(service);
        assert!(handle.next_request().await.is_none());
    }

    #[tokio::test]
    async fn slow_revocation_check_times_out_closed() {
        let (mock, _handle) = mock::pair::<Request<String>, Response<()>>();
        let service = builder()
            .revocation(|_jti: String| async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok::<_, Infallible>(false)
            })
            .revocation_timeout(Duration::from_millis(20))
            .build()
            .unwrap()
            .layer(mock);
        let response = service.oneshot(request(&token("j"))).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()["retry-after"], "1");
    }
}
