//! The examples, built and run as child processes (the MCP server, its logs, the gateway in
//! front of the official MCP Python SDK, a page in headless Chromium, tonic, API keys, its
//! metrics scraped by Prometheus). One test
//! binary; each module is compiled with the features its example needs.

#[path = "../support/mod.rs"]
mod support;

#[cfg(all(feature = "jwt", feature = "oidc", feature = "redis"))]
mod browser;
mod example_api_keys;
#[cfg(all(feature = "jwt", feature = "oidc", feature = "redis"))]
mod example_logs;
#[cfg(all(feature = "jwt", feature = "oidc", feature = "redis"))]
mod example_server;
#[cfg(all(feature = "jwt", feature = "oidc", feature = "redis"))]
mod gateway;
// `oidc` brings `jwt`.
#[cfg(all(feature = "oidc", feature = "redis", feature = "metrics"))]
mod metrics;
#[cfg(feature = "jwt")]
mod tonic_server;
