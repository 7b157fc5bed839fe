//! What the MCP Streamable HTTP transport and JSON-RPC say, in one place for both middlewares.
//!
//! - `headers`: `Mcp-Session-Id`, `MCP-Protocol-Version` and `Last-Event-ID`: names, and the
//!   rules for reading them (session-id syntax, sessionless revisions);
//! - `route`: which route a sessionless POST takes, by `Mcp-Method` and `Mcp-Name`;
//! - `envelope`: reading the JSON-RPC envelope of a refused POST body;
//! - `jsonrpc`: the JSON-RPC answers the layers make ([`Refusal`](jsonrpc::Refusal), with the
//!   layer's typed reason in the response extensions), and their error codes;
//! - `answer`: [`RejectionReason`](answer::RejectionReason), what each reason answers, and the
//!   answer to a body that could not be read;
//! - `sse`: Server-Sent Events framing: where an event ends, its data, rewriting it;
//! - `early`: answers made before the request body was read (drain it, or close the HTTP/1.1
//!   connection), and reading a refused body within bounds.

pub(crate) mod answer;
pub(crate) mod body;
pub(crate) mod early;
pub(crate) mod envelope;
pub(crate) mod headers;
pub(crate) mod jsonrpc;
pub(crate) mod route;
pub(crate) mod scan;
pub(crate) mod sse;
