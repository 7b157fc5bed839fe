//! The call to an introspection endpoint (RFC 7662 §2.1): a form POST with the client's
//! credentials, bounded in time and answer size, and the discovery of the endpoint.

use std::{sync::Mutex, time::Duration};

use base64::{Engine, engine::general_purpose::STANDARD};
use http::{StatusCode, header};
use serde_json::Value;

use crate::jwt::introspected::{Answer, MAX_ANSWER_BYTES, parse};
use crate::jwt::{
    jwks::{MAX_DOCUMENT_BYTES, is_fetchable_url},
    remote::error_chain as chain,
};

/// How the client authenticates to the introspection endpoint (RFC 6749 §2.3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ClientAuth {
    /// `client_secret_basic`: HTTP Basic with the form-encoded id and secret.
    Basic,
    /// `client_secret_post`: `client_id` and `client_secret` in the form.
    Post,
}

/// Why a call gave no answer to decide on. Every one of them fails closed (503).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CallError {
    /// No answer within the timeout.
    Timeout,
    /// The answer is over the size bound.
    TooLarge,
    /// A status other than 200.
    Status(u16),
    /// Connection, TLS, or discovery failure; says which.
    Failed(String),
    /// Too many calls in flight already.
    Busy,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Timeout => f.write_str("no complete answer in time"),
            Self::TooLarge => write!(f, "answer larger than {MAX_ANSWER_BYTES} bytes"),
            Self::Status(status) => write!(f, "HTTP {status}"),
            Self::Failed(why) => f.write_str(why),
            Self::Busy => f.write_str("too many introspection calls in flight"),
        }
    }
}

/// One issuer's introspection endpoint and credentials.
pub(crate) struct Client {
    pub(crate) issuer: String,
    http: reqwest::Client,
    /// Configured, or found by discovery (then kept).
    endpoint: Mutex<Option<String>>,
    client_id: String,
    client_secret: String,
    auth: ClientAuth,
    timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("issuer", &self.issuer)
            .field("endpoint", &self.endpoint)
            .field("client_id", &self.client_id)
            .field("auth", &self.auth)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub(crate) fn new(
        issuer: String,
        http: reqwest::Client,
        endpoint: Option<String>,
        (client_id, client_secret): (String, String),
        auth: ClientAuth,
        timeout: Duration,
    ) -> Self {
        Self {
            issuer,
            http,
            endpoint: Mutex::new(endpoint),
            client_id,
            client_secret,
            auth,
            timeout,
        }
    }

    /// Introspects `token`: the whole exchange (discovery included) within the timeout.
    pub(crate) async fn introspect(&self, token: &str) -> Result<Answer, CallError> {
        tokio::time::timeout(self.timeout, self.exchange(token))
            .await
            .map_err(|_| CallError::Timeout)?
    }

    async fn exchange(&self, token: &str) -> Result<Answer, CallError> {
        let endpoint = self.endpoint().await?;
        let mut form = format!("token={}&token_type_hint=access_token", form_encode(token));
        let mut request = self
            .http
            .post(&endpoint)
            .header(header::ACCEPT, "application/json")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        match self.auth {
            ClientAuth::Basic => {
                let pair = format!(
                    "{}:{}",
                    form_encode(&self.client_id),
                    form_encode(&self.client_secret)
                );
                request = request.header(
                    header::AUTHORIZATION,
                    format!("Basic {}", STANDARD.encode(pair)),
                );
            }
            ClientAuth::Post => {
                form.push_str("&client_id=");
                form.push_str(&form_encode(&self.client_id));
                form.push_str("&client_secret=");
                form.push_str(&form_encode(&self.client_secret));
            }
        }
        let mut response = request
            .body(form)
            .send()
            .await
            .map_err(|e| CallError::Failed(format!("{endpoint}: {}", chain(&e))))?;
        if response.status() != StatusCode::OK {
            return Err(CallError::Status(response.status().as_u16()));
        }
        let body = read_bounded(&mut response, MAX_ANSWER_BYTES).await?;
        parse(&body).ok_or(CallError::TooLarge)
    }

    /// The endpoint: configured, or the discovery document's `introspection_endpoint`.
    async fn endpoint(&self) -> Result<String, CallError> {
        if let Some(endpoint) = self
            .endpoint
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
        {
            return Ok(endpoint);
        }
        let base = self.issuer.trim_end_matches('/');
        let mut last = String::new();
        for url in [
            format!("{base}/.well-known/openid-configuration"),
            crate::jwt::remote::rfc8414_url(&self.issuer),
        ] {
            let mut response = match self.http.get(&url).send().await {
                Ok(response) => response,
                Err(e) => {
                    last = format!("{url}: {}", chain(&e));
                    continue;
                }
            };
            if !response.status().is_success() {
                last = format!("{url}: HTTP {}", response.status());
                continue;
            }
            let body = read_bounded(&mut response, MAX_DOCUMENT_BYTES).await?;
            let endpoint = parse_discovered_endpoint(&body, &self.issuer)
                .map_err(|why| CallError::Failed(format!("{url}: {why}")))?;
            *self
                .endpoint
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(endpoint.clone());
            return Ok(endpoint);
        }
        Err(CallError::Failed(format!("discovery failed: {last}")))
    }
}

/// The `introspection_endpoint` of a discovery document (OpenID or RFC 8414) whose `issuer` is
/// `issuer` exactly; it must be https, or http to a loopback host.
pub(crate) fn parse_discovered_endpoint(body: &[u8], issuer: &str) -> Result<String, String> {
    let Ok(Value::Object(doc)) = serde_json::from_slice::<Value>(body) else {
        return Err("not a JSON object".to_owned());
    };
    if doc.get("issuer").and_then(Value::as_str) != Some(issuer) {
        return Err("`issuer` is not the configured issuer".to_owned());
    }
    match doc.get("introspection_endpoint").and_then(Value::as_str) {
        Some(url) if is_fetchable_url(url) => Ok(url.to_owned()),
        Some(_) => Err("`introspection_endpoint` is not https (or http to loopback)".to_owned()),
        None => Err("no `introspection_endpoint`".to_owned()),
    }
}

async fn read_bounded(response: &mut reqwest::Response, max: usize) -> Result<Vec<u8>, CallError> {
    crate::jwt::remote::read_bounded(response, max)
        .await
        .map_err(|failed| match failed {
            Some(err) => CallError::Failed(chain(&err)),
            None => CallError::TooLarge,
        })
}

/// `application/x-www-form-urlencoded` (WHATWG URL §5.2): alphanumerics and `*-._` kept, space
/// as `+`, every other byte `%XX`.
pub(crate) fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(char::from(byte));
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding() {
        assert_eq!(form_encode("a b+c/=~é"), "a+b%2Bc%2F%3D%7E%C3%A9");
        assert_eq!(form_encode("Az09*-._"), "Az09*-._");
    }

    #[test]
    fn discovered_endpoint_needs_the_exact_issuer_and_a_safe_url() {
        let doc = |iss: &str, ep: &str| {
            format!(r#"{{"issuer":"{iss}","introspection_endpoint":"{ep}"}}"#).into_bytes()
        };
        let iss = "https://as.example";
        assert_eq!(
            parse_discovered_endpoint(&doc(iss, "https://as.example/introspect"), iss),
            Ok("https://as.example/introspect".to_owned())
        );
        assert!(parse_discovered_endpoint(&doc("https://x", "https://as.example/i"), iss).is_err());
        assert!(parse_discovered_endpoint(&doc(iss, "http://as.example/i"), iss).is_err());
        assert!(parse_discovered_endpoint(br#"{"issuer":"https://as.example"}"#, iss).is_err());
        assert!(parse_discovered_endpoint(b"[]", iss).is_err());
    }
}
