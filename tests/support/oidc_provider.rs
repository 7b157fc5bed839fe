//! A real OpenID provider for tests: `oidc-provider` from npm (node-oidc-provider, OpenID
//! Certified), run by `tests/support/oidc/provider.mjs` under Node on 127.0.0.1. No mock.
//!
//! ```ignore
//! use crate::support::oidc_provider;
//!
//! let Some(provider) = oidc_provider::OidcProvider::start(RESOURCE) else { return };
//! let alice = provider.login("alice").await; // authorization code + PKCE, over HTTP
//! let next = provider.refresh(alice.refresh_token()).await;
//! ```
//!
//! The provider has two accounts (`alice`, `bob`) and one public client (code + PKCE, refresh
//! tokens rotated on every use). Access tokens are JWTs for `resource` (RFC 8707): `aud` is the
//! resource, signed RS256 with the first key of the key file this harness writes, so the
//! provider can restart on the same port and issuer URL with other keys, and a test can sign
//! with a provider's private key.
//!
//! Install the provider once with `npm ci --prefix tests/support/oidc` (`.ci/run` does).
//! [`OidcProvider::start`] returns `None` after a loud `SKIP:` line on stderr when `node` or the
//! installed package is missing, unless `CI` is set: then it panics, so CI cannot pass by
//! skipping. `NODE` names another node binary.
#![allow(dead_code)]

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::{Duration, Instant},
};

use base64::Engine as _;
use serde_json::{Value, json};
use sha2::Digest as _;

/// The public client's id and redirect URI (the script's defaults).
pub const CLIENT_ID: &str = "mcp-test-client";
pub const REDIRECT_URI: &str = "http://127.0.0.1/callback";
/// The resource server's client at an `--opaque` provider, which introspects.
pub const INTROSPECTION_CLIENT_ID: &str = "mcp-resource-server";
pub const INTROSPECTION_CLIENT_SECRET: &str = "mcp-resource-server-secret";
/// What the client asks for: an ID token, a refresh token, and the resource's scope.
pub const SCOPE: &str = "openid offline_access mcp";

/// How long node may take to print its `issuer` line.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Every HTTP request to the provider.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// One signing key of a provider: the private JWK (with `kid`, `alg`, `use`) and the same key as
/// PKCS#8 PEM (for `jsonwebtoken::EncodingKey::from_rsa_pem`).
#[derive(Clone, Debug)]
pub struct SigningKey {
    pub kid: String,
    pub alg: String,
    pub jwk: Value,
    pub pem: String,
}

/// What a token endpoint answered.
#[derive(Clone, Debug)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub id_token: Option<String>,
    pub expires_in: u64,
    pub scope: String,
}

impl Tokens {
    fn from_json(value: &Value) -> Self {
        let text = |key: &str| value[key].as_str().map(str::to_owned);
        Self {
            access_token: text("access_token")
                .unwrap_or_else(|| panic!("no access_token in {value}")),
            refresh_token: text("refresh_token"),
            id_token: text("id_token"),
            expires_in: value["expires_in"].as_u64().unwrap_or_default(),
            scope: text("scope").unwrap_or_default(),
        }
    }

    /// The refresh token (the provider issues one for `offline_access`).
    pub fn refresh_token(&self) -> &str {
        self.refresh_token
            .as_deref()
            .expect("the provider issued a refresh token")
    }
}

/// The unverified JOSE header of a compact JWT.
pub fn jwt_header(jwt: &str) -> Value {
    jwt_part(jwt, 0)
}

/// The unverified claims of a compact JWT.
pub fn jwt_claims(jwt: &str) -> Value {
    jwt_part(jwt, 1)
}

fn jwt_part(jwt: &str, index: usize) -> Value {
    let part = jwt
        .split('.')
        .nth(index)
        .unwrap_or_else(|| panic!("not a compact JWT: {jwt}"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap_or_else(|e| panic!("JWT part {index} is not base64url ({e}): {jwt}"));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("JWT part {index} not JSON: {e}"))
}

/// A running `oidc-provider` on `http://127.0.0.1:PORT`, killed on drop.
#[derive(Debug)]
pub struct OidcProvider {
    node: PathBuf,
    dir: PathBuf,
    port: u16,
    issuer: String,
    resource: String,
    keys: Vec<SigningKey>,
    process: Option<Process>,
    http: reqwest::Client,
    /// Opaque access tokens, with introspection and revocation (`provider.mjs --opaque`).
    opaque: bool,
    /// `--dpop`: the provider's `dPoP` feature is on.
    dpop: bool,
    /// Makes the `DPoP` proof of each token request, when set.
    token_proof: TokenProof,
}

/// Makes a DPoP proof for a URL.
type MakeProof = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// Makes the DPoP proof of a token request, given the token endpoint's URL.
#[derive(Clone, Default)]
pub struct TokenProof(Arc<Mutex<Option<MakeProof>>>);

impl std::fmt::Debug for TokenProof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenProof")
    }
}

#[derive(Debug)]
struct Process {
    child: Child,
    /// Held open: the script exits when its stdin closes, so a killed test leaves no provider.
    _stdin: ChildStdin,
    output: Arc<Mutex<String>>,
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn script_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/oidc")
}

/// `node`, if it runs, and the installed package; otherwise why not.
fn find_node() -> Result<PathBuf, String> {
    let node = std::env::var_os("NODE").map_or_else(|| PathBuf::from("node"), PathBuf::from);
    match Command::new(&node).arg("--version").output() {
        Ok(output) if output.status.success() => {}
        Ok(output) => return Err(format!("`{} --version` failed: {output:?}", node.display())),
        Err(e) => return Err(format!("node not found ({}: {e})", node.display())),
    }
    let package = script_dir().join("node_modules/oidc-provider/package.json");
    if !package.is_file() {
        return Err(format!(
            "{} is missing: run `npm ci --prefix tests/support/oidc`",
            package.display()
        ));
    }
    Ok(node)
}

impl OidcProvider {
    /// Starts a provider on a free loopback port whose access tokens are for `resource` (an
    /// absolute URI: the `aud` of the tokens), signing with one fresh RS256 key.
    ///
    /// `None` (after a `SKIP:` line) when node or the installed package is missing and `CI` is
    /// not set.
    ///
    /// # Panics
    ///
    /// When node or the package is missing and `CI` is set, or when the provider does not start.
    pub fn start(resource: &str) -> Option<Self> {
        Self::start_with(resource, false)
    }

    /// [`start`](Self::start) with the provider's `dPoP` feature on: a token request with a
    /// proof ([`use_dpop_proofs`](Self::use_dpop_proofs)) gets a DPoP-bound access token
    /// (`cnf.jkt`).
    pub fn start_with_dpop(resource: &str) -> Option<Self> {
        Self::start_with(resource, true)
    }

    /// From now on, token requests (logins, refreshes) carry the proof `make(token_url)`.
    pub fn use_dpop_proofs(&self, make: impl Fn(&str) -> String + Send + Sync + 'static) {
        *self.token_proof.0.lock().unwrap() = Some(Arc::new(make));
    }

    fn start_with(resource: &str, dpop: bool) -> Option<Self> {
        let mut provider = Self::unstarted(resource, dpop, false)?;
        provider.spawn(true).unwrap_or_else(|e| panic!("{e}"));
        Some(provider)
    }

    /// The handle of a provider not started yet.
    fn unstarted(resource: &str, dpop: bool, opaque: bool) -> Option<Self> {
        let node = match find_node() {
            Ok(node) => node,
            Err(why) => {
                super::external::skip(&format!("the OpenID provider: {why}"), &[]);
                return None;
            }
        };
        let dir = super::external::unique_dir("mcpsb-oidc");
        let provider = Self {
            node,
            dir,
            port: 0,
            issuer: String::new(),
            resource: resource.to_owned(),
            keys: Vec::new(),
            process: None,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                // No kept-alive connections: after a restart they would lead to the dead process.
                .pool_max_idle_per_host(0)
                .timeout(HTTP_TIMEOUT)
                .build()
                .expect("an HTTP client"),
            opaque,
            dpop,
            token_proof: TokenProof::default(),
        };
        Some(provider)
    }

    /// [`start`](Self::start), but the access tokens for `resource` are opaque, and the
    /// provider introspects (for the client [`INTROSPECTION_CLIENT_ID`]) and revokes them.
    pub fn start_opaque(resource: &str) -> Option<Self> {
        let mut provider = Self::unstarted(resource, false, true)?;
        provider.spawn(true).unwrap_or_else(|e| panic!("{e}"));
        Some(provider)
    }

    /// `http://127.0.0.1:PORT`: the issuer (`iss` of its tokens), the same across restarts.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The resource its access tokens are for (their `aud`).
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The key that signs now.
    pub fn signing_key(&self) -> &SigningKey {
        &self.keys[0]
    }

    /// Every key it publishes (the first signs).
    pub fn keys(&self) -> &[SigningKey] {
        &self.keys
    }

    /// What the provider wrote on stdout and stderr so far (this run).
    pub fn output(&self) -> String {
        self.process
            .as_ref()
            .map(|p| p.output.lock().unwrap().clone())
            .unwrap_or_default()
    }

    /// Whether the provider process is running (as far as this handle knows).
    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    /// A fresh RS256 key, made by node (`provider.mjs keygen`).
    pub fn new_key(&self) -> SigningKey {
        let output = super::external::run(
            Command::new(&self.node)
                .arg(script_dir().join("provider.mjs"))
                .args(["keygen", "RS256"]),
        );
        signing_key(&serde_json::from_slice(&output).expect("keygen prints JSON"))
    }

    /// Kills the provider and waits for it to exit; the port, issuer and keys are kept.
    /// Idempotent. Its grants, codes and refresh tokens are lost (in memory).
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.child.kill();
            let _ = process.child.wait();
        }
    }

    /// Restarts the provider on the same port (same issuer URL) publishing `keys` only, the
    /// first of which signs from now on.
    ///
    /// # Panics
    ///
    /// When `keys` is empty or the provider does not come back on its port.
    pub fn restart_with_keys(&mut self, keys: Vec<SigningKey>) {
        assert!(!keys.is_empty(), "a provider needs a signing key");
        self.restart(keys, false);
    }

    /// Restarts on the same port and issuer with one new signing key; the old keys are dropped
    /// (no longer published). Returns the new key.
    pub fn rotate_key(&mut self) -> SigningKey {
        self.restart(Vec::new(), true);
        self.keys[0].clone()
    }

    fn restart(&mut self, keys: Vec<SigningKey>, new_key: bool) {
        self.stop();
        self.keys = keys;
        // The old socket may linger for a moment; retry for a while.
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.spawn(new_key) {
                Ok(()) => return,
                Err(err) if Instant::now() >= deadline => {
                    panic!("oidc-provider did not restart on port {}: {err}", self.port)
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Starts node (port 0 the first time, then the same port) and waits for its `issuer` line.
    /// With `new_key`, node makes a fresh key that signs, in front of `self.keys`.
    fn spawn(&mut self, new_key: bool) -> Result<(), String> {
        let keys_file = self.dir.join("keys.json");
        let jwks = json!({"keys": self.keys.iter().map(|k| &k.jwk).collect::<Vec<_>>()});
        std::fs::write(&keys_file, jwks.to_string()).expect("write the key file");
        let new_key_file = self.dir.join("new-key.json");
        let _ = std::fs::remove_file(&new_key_file);
        let mut command = Command::new(&self.node);
        command
            .current_dir(script_dir())
            .arg("provider.mjs")
            .arg("serve")
            .args(["--port", &self.port.to_string()])
            .arg("--keys")
            .arg(&keys_file);
        if new_key {
            command.arg("--new-key").arg(&new_key_file);
        }
        if self.opaque {
            command.arg("--opaque");
        }
        if self.dpop {
            command.arg("--dpop");
        }
        let mut child = command
            .args(["--resource", &self.resource])
            .args(["--client-id", CLIENT_ID, "--redirect-uri", REDIRECT_URI])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start node: {e}"))?;
        let stdin = child.stdin.take().expect("piped stdin");
        let output = Arc::new(Mutex::new(String::new()));
        super::external::collect_into(child.stderr.take().expect("piped stderr"), output.clone());
        let stdout = child.stdout.take().expect("piped stdout");
        let (lines_tx, lines) = mpsc::channel();
        {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    output.lock().unwrap().push_str(&format!("{line}\n"));
                    // The receiver is gone once the issuer line was read; keep draining.
                    let _ = lines_tx.send(line);
                }
            });
        }
        let deadline = Instant::now() + START_TIMEOUT;
        let issuer = loop {
            match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    if let Some(issuer) = line.strip_prefix("issuer ") {
                        break issuer.to_owned();
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let status = child.wait();
                    std::thread::sleep(Duration::from_millis(50));
                    return Err(format!(
                        "oidc-provider printed no `issuer` line (exit: {status:?}):\n{}",
                        output.lock().unwrap()
                    ));
                }
            }
        };
        let port = issuer
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in issuer {issuer}"));
        assert!(
            self.port == 0 || self.port == port,
            "restarted on port {port}, not {}",
            self.port
        );
        self.port = port;
        self.issuer = issuer;
        if new_key {
            let written = std::fs::read(&new_key_file).expect("the provider wrote its new key");
            let key = signing_key(&serde_json::from_slice(&written).expect("a JSON key"));
            self.keys.insert(0, key);
        }
        self.process = Some(Process {
            child,
            _stdin: stdin,
            output,
        });
        Ok(())
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// The provider's JWKS (public keys), as served at its `jwks_uri`.
    pub async fn jwks(&self) -> Value {
        let discovery: Value = self
            .http
            .get(self.url("/.well-known/openid-configuration"))
            .send()
            .await
            .expect("discovery answers")
            .json()
            .await
            .expect("discovery is JSON");
        let jwks_uri = discovery["jwks_uri"].as_str().expect("jwks_uri");
        self.http
            .get(jwks_uri)
            .send()
            .await
            .expect("JWKS answers")
            .json()
            .await
            .expect("JWKS is JSON")
    }

    /// Logs `user` in with the authorization code flow and PKCE, the way a browser would (the
    /// redirects and cookies followed by hand), and redeems the code for tokens for the
    /// resource.
    ///
    /// # Panics
    ///
    /// When any step does not answer as the flow expects (an unknown user, say).
    pub async fn login(&self, user: &str) -> Tokens {
        self.try_login(user)
            .await
            .unwrap_or_else(|e| panic!("login of {user} failed: {e}\nprovider:\n{}", self.output()))
    }

    /// [`login`](Self::login), with the failure as an error.
    pub async fn try_login(&self, user: &str) -> Result<Tokens, String> {
        let verifier = random_token(32);
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(verifier.as_bytes()));
        let state = random_token(16);
        let mut jar = CookieJar::default();

        let authorize = reqwest::Url::parse_with_params(
            &self.url("/auth"),
            [
                ("client_id", CLIENT_ID),
                ("response_type", "code"),
                ("redirect_uri", REDIRECT_URI),
                ("scope", SCOPE),
                // offline_access (a refresh token) needs an explicit consent prompt.
                ("prompt", "consent"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
                ("resource", &self.resource),
                ("state", &state),
            ],
        )
        .expect("authorization URL");
        let mut next = self.redirect(&mut jar, self.http.get(authorize)).await?;
        // Interactions (login, then consent) until the provider redirects to the client.
        for _ in 0..6 {
            if next.starts_with(REDIRECT_URI) {
                break;
            }
            let interaction = self.send(&mut jar, self.http.get(&next)).await?;
            let prompt: Value = serde_json::from_str(&interaction.1).map_err(|e| {
                format!("interaction at {next} is not JSON ({e}): {}", interaction.1)
            })?;
            let step = match prompt["prompt"].as_str() {
                Some("login") => self
                    .http
                    .post(format!("{next}/login"))
                    .header(http::header::CONTENT_TYPE, FORM)
                    .body(form_body(&[("login", user)])),
                Some("consent") => self.http.post(format!("{next}/confirm")),
                _ => return Err(format!("unexpected interaction: {prompt}")),
            };
            let resume = self.redirect(&mut jar, step).await?;
            next = self.redirect(&mut jar, self.http.get(resume)).await?;
        }
        let callback = reqwest::Url::parse(&next).map_err(|e| format!("{next}: {e}"))?;
        if !next.starts_with(REDIRECT_URI) {
            return Err(format!("no redirect to the client, ended at {next}"));
        }
        let params: BTreeMap<String, String> = callback.query_pairs().into_owned().collect();
        if let Some(error) = params.get("error") {
            return Err(format!("authorization error {error}: {params:?}"));
        }
        if params.get("state") != Some(&state) {
            return Err(format!("state mismatch: {params:?}"));
        }
        if params.get("iss").map(String::as_str) != Some(self.issuer.as_str()) {
            return Err(format!("iss (RFC 9207) mismatch: {params:?}"));
        }
        let code = params.get("code").ok_or("no code")?;
        self.token(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT_URI),
            ("client_id", CLIENT_ID),
            ("code_verifier", &verifier),
            ("resource", &self.resource),
        ])
        .await
    }

    /// A `refresh_token` grant for the resource. The provider rotates refresh tokens: the
    /// answer carries a new one, and `refresh_token` cannot be used again.
    ///
    /// # Panics
    ///
    /// When the grant is refused.
    pub async fn refresh(&self, refresh_token: &str) -> Tokens {
        self.try_refresh(refresh_token)
            .await
            .unwrap_or_else(|e| panic!("refresh grant failed: {e}\nprovider:\n{}", self.output()))
    }

    /// [`refresh`](Self::refresh), with the refusal as an error.
    pub async fn try_refresh(&self, refresh_token: &str) -> Result<Tokens, String> {
        self.token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", CLIENT_ID),
            ("resource", &self.resource),
        ])
        .await
    }

    /// Revokes `token` at the revocation endpoint (RFC 7009), as the public client that holds it
    /// (`--opaque` providers).
    pub async fn revoke(&self, token: &str) {
        let response = self
            .http
            .post(self.url("/token/revocation"))
            .header(http::header::CONTENT_TYPE, FORM)
            .body(form_body(&[
                ("token", token),
                ("token_type_hint", "access_token"),
                ("client_id", CLIENT_ID),
            ]))
            .send()
            .await
            .expect("the revocation endpoint answers");
        assert_eq!(response.status(), 200, "revocation: {response:?}");
    }

    /// The introspection requests the provider got so far (`--opaque` providers).
    pub async fn introspections(&self) -> u64 {
        let count: Value = self
            .http
            .get(self.url("/test/introspections"))
            .send()
            .await
            .expect("the provider answers")
            .json()
            .await
            .expect("JSON");
        count["count"].as_u64().expect("a count")
    }

    async fn token(&self, form: &[(&str, &str)]) -> Result<Tokens, String> {
        let url = self.url("/token");
        let mut request = self.http.post(&url);
        let make_proof = self.token_proof.0.lock().unwrap().clone();
        if let Some(make_proof) = make_proof {
            request = request.header("dpop", make_proof(&url));
        }
        let response = request
            .header(http::header::CONTENT_TYPE, FORM)
            .body(form_body(form))
            .send()
            .await
            .map_err(|e| format!("token endpoint: {e}"))?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .map_err(|e| format!("token answer not JSON: {e}"))?;
        if !status.is_success() {
            return Err(format!("token endpoint answered {status}: {body}"));
        }
        Ok(Tokens::from_json(&body))
    }

    /// Sends `request` with the jar's cookies, stores the cookies set; (status, body, Location).
    async fn send(
        &self,
        jar: &mut CookieJar,
        request: reqwest::RequestBuilder,
    ) -> Result<(reqwest::StatusCode, String, Option<String>), String> {
        let request = request.build().map_err(|e| e.to_string())?;
        let url = request.url().clone();
        let mut request = request;
        if let Some(cookie) = jar.header_for(url.path()) {
            request
                .headers_mut()
                .insert(http::header::COOKIE, cookie.parse().expect("cookie header"));
        }
        let response = self
            .http
            .execute(request)
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        for value in response.headers().get_all(http::header::SET_COOKIE) {
            jar.store(value.to_str().unwrap_or_default());
        }
        let status = response.status();
        let location = response
            .headers()
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(|location| {
                url.join(location)
                    .map_or_else(|_| location.to_owned(), |u| u.to_string())
            });
        let body = response.text().await.unwrap_or_default();
        Ok((status, body, location))
    }

    /// Sends `request` and expects a redirect; returns its absolute target.
    async fn redirect(
        &self,
        jar: &mut CookieJar,
        request: reqwest::RequestBuilder,
    ) -> Result<String, String> {
        let (status, body, location) = self.send(jar, request).await?;
        match location {
            Some(location) if status.is_redirection() => Ok(location),
            _ => Err(format!("expected a redirect, got {status}: {body}")),
        }
    }
}

const FORM: &str = "application/x-www-form-urlencoded";

/// `pairs` as an `application/x-www-form-urlencoded` body.
fn form_body(pairs: &[(&str, &str)]) -> String {
    reqwest::Url::parse_with_params("http://form.invalid/", pairs)
        .expect("form pairs")
        .query()
        .unwrap_or_default()
        .to_owned()
}

/// A key as `provider.mjs` writes it: `{"jwk": …, "pem": …}`.
fn signing_key(value: &Value) -> SigningKey {
    SigningKey {
        kid: value["jwk"]["kid"].as_str().expect("kid").to_owned(),
        alg: value["jwk"]["alg"].as_str().expect("alg").to_owned(),
        jwk: value["jwk"].clone(),
        pem: value["pem"].as_str().expect("pem").to_owned(),
    }
}

/// `bytes` random bytes, base64url.
fn random_token(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).expect("the OS random number generator");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buffer)
}

/// Just enough of a cookie jar for one host: cookies keyed by (path, name), sent to requests
/// under their path; a cookie set empty or expired is dropped.
#[derive(Default, Debug)]
struct CookieJar {
    cookies: BTreeMap<(String, String), String>,
}

impl CookieJar {
    fn store(&mut self, set_cookie: &str) {
        let mut parts = set_cookie.split(';').map(str::trim);
        let Some((name, value)) = parts.next().and_then(|pair| pair.split_once('=')) else {
            return;
        };
        let mut path = "/".to_owned();
        let mut expired = value.is_empty();
        for attribute in parts {
            let (key, val) = attribute.split_once('=').unwrap_or((attribute, ""));
            match key.to_ascii_lowercase().as_str() {
                "path" => path = val.to_owned(),
                "max-age" => expired |= val.starts_with('-') || val == "0",
                "expires" => expired |= val.contains("1970"),
                _ => {}
            }
        }
        let key = (path, name.to_owned());
        if expired {
            self.cookies.remove(&key);
        } else {
            self.cookies.insert(key, value.to_owned());
        }
    }

    fn header_for(&self, request_path: &str) -> Option<String> {
        let pairs: Vec<String> = self
            .cookies
            .iter()
            .filter(|((path, _), _)| {
                request_path == path
                    || request_path.starts_with(&format!("{}/", path.trim_end_matches('/')))
            })
            .map(|((_, name), value)| format!("{name}={value}"))
            .collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }
}
