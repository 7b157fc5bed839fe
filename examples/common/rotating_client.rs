//! An rmcp Streamable HTTP client whose bearer token can be replaced while its session runs: what
//! a token refresh looks like from the server. Shared by the `demo` example and the integration
//! tests.
//!
//! Included with `#[path = "…/common/rotating_client.rs"] mod rotating_client;`, so it is not an
//! example of its own.
#![allow(dead_code)]

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use futures::stream::BoxStream;
use http::{HeaderName, HeaderValue};
use rmcp::{
    RoleClient, ServiceExt,
    model::ClientJsonRpcMessage,
    service::{ClientInitializeError, RunningService},
    transport::{
        StreamableHttpClientTransport,
        streamable_http_client::{
            SseError, StreamableHttpClient, StreamableHttpClientTransportConfig,
            StreamableHttpError, StreamableHttpPostResponse,
        },
    },
};

/// An rmcp HTTP client that sends whatever bearer token [`rotate`](Self::rotate) last set, and
/// remembers the `Mcp-Session-Id` it uses.
///
/// Clones share the token and the session id: keep one clone to rotate the token after handing
/// the other to [`connect`](Self::connect).
#[derive(Clone, Debug)]
pub struct RotatingClient {
    http: reqwest::Client,
    /// The bearer token sent with every request.
    pub token: Arc<Mutex<String>>,
    session: Arc<Mutex<Option<String>>>,
}

impl RotatingClient {
    /// A client that starts with `token`.
    pub fn new(token: String) -> Self {
        Self {
            http: reqwest::Client::new(),
            token: Arc::new(Mutex::new(token)),
            session: Arc::new(Mutex::new(None)),
        }
    }

    /// Replaces the bearer token: the next request carries the new one, in the same session.
    pub fn rotate(&self, token: String) {
        *self.token.lock().unwrap() = token;
    }

    /// The session id the server handed out at `initialize`, once connected.
    pub fn session_id(&self) -> Option<String> {
        self.session.lock().unwrap().clone()
    }

    fn current(&self) -> Option<String> {
        Some(self.token.lock().unwrap().clone())
    }

    fn remember(&self, session: Option<&str>) {
        if let Some(session) = session {
            *self.session.lock().unwrap() = Some(session.to_owned());
        }
    }

    /// Connects an rmcp client to `url` (the initialize handshake over Streamable HTTP). It
    /// does not re-initialize on its own when the server answers 404: an ended session shows as
    /// an error.
    ///
    /// # Errors
    ///
    /// When the handshake fails (refused token, server down, ...).
    pub async fn try_connect(
        self,
        url: &str,
    ) -> Result<RunningService<RoleClient, ()>, ClientInitializeError> {
        let config =
            StreamableHttpClientTransportConfig::with_uri(url).reinit_on_expired_session(false);
        let transport = StreamableHttpClientTransport::with_client(self, config);
        ().serve(transport).await
    }

    /// [`try_connect`](Self::try_connect), panicking on failure (for tests).
    pub async fn connect(self, url: &str) -> RunningService<RoleClient, ()> {
        self.try_connect(url)
            .await
            .expect("rmcp client initializes")
    }
}

impl StreamableHttpClient for RotatingClient {
    type Error = reqwest::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        _auth: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>> {
        self.remember(session_id.as_deref());
        let response = self
            .http
            .post_message(uri, message, session_id, self.current(), custom_headers)
            .await?;
        match &response {
            StreamableHttpPostResponse::Json(_, session)
            | StreamableHttpPostResponse::Sse(_, session) => self.remember(session.as_deref()),
            _ => {}
        }
        Ok(response)
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        _auth: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<(), StreamableHttpError<Self::Error>> {
        self.http
            .delete_session(uri, session_id, self.current(), custom_headers)
            .await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        _auth: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<
        BoxStream<'static, Result<sse_stream::Sse, SseError>>,
        StreamableHttpError<Self::Error>,
    > {
        self.http
            .get_stream(
                uri,
                session_id,
                last_event_id,
                self.current(),
                custom_headers,
            )
            .await
    }
}
