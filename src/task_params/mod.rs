//! Task ids carried in request bodies, bound to their creator: [`TaskParamsLayer`].
//!
//! [`SessionBindingLayer`](crate::SessionBindingLayer) binds tasks of revision 2026-07-28 from
//! headers alone (`Mcp-Method`, `Mcp-Name`). Two places carry task ids only in the request body;
//! this companion layer, placed *inside* the binding layer, reads them:
//!
//! - **`subscriptions/listen`** (revision 2026-07-28, on by default,
//!   [`check_listen`](TaskParamsLayer::check_listen)): every id in
//!   `params.notifications.taskIds` must name a task the caller created (recorded by the binding
//!   layer). Otherwise the answer is JSON-RPC `-32602` `unknown task: <id>` with the request's
//!   `id`, the binding layer's answer for an unknown task, and nothing is forwarded. Only the
//!   bodies of requests whose `Mcp-Method` header is `subscriptions/listen` are read: other
//!   requests pass untouched, at no cost.
//! - **Session-era tasks** (on by default, [`legacy_tasks`](TaskParamsLayer::legacy_tasks)):
//!   rmcp serves the tasks extension inside 2025-11-25 sessions too, where no `Mcp-Method` or
//!   `Mcp-Name` header is validated, so the body is what counts. The answer to every session-era
//!   `tools/call` is scanned for the task it creates (`result.taskId` with
//!   `resultType: "task"`, or 2025-11-25's `result.task.taskId`; JSON, or an event of an SSE
//!   stream), recorded for the caller with the task's TTL before the answer leaves the layer;
//!   `tasks/get`, `tasks/update`, `tasks/cancel` and 2025-11-25's `tasks/result` are checked by
//!   `params.taskId` (a task the caller did not create, an unknown one and an expired record all
//!   get the same `-32602` answer, nothing forwarded); `tasks/list` is refused (see below).
//!
//! Bodies are read as the server reads them: keys and strings after JSON unescaping (a body
//! with a backslash anywhere is always parsed), SSE events framed by CRLF, LF or CR.
//!
//! # Session-era tasks cost a body read on every session-era POST
//!
//! Session-era requests have no `Mcp-Method` header, so the layer reads the body of **every**
//! POST that does not name revision 2026-07-28 or later (up to
//! [`max_body_bytes`](TaskParamsLayer::max_body_bytes), within
//! [`body_timeout`](TaskParamsLayer::body_timeout)) and forwards it as a new body, so the
//! request body type must be buildable from [`Bytes`](bytes::Bytes) (axum's `Body` is). A body
//! that names neither `tasks/` nor `tools/call` in any spelling is not parsed. A body the layer
//! cannot read as JSON-RPC (not JSON, a repeated envelope or task key) gets 400 and is not
//! forwarded. Turn it off only for a server that serves no tasks in sessions.
//!
//! # Why `tasks/list` is refused
//!
//! The 2025-11-25 `tasks/list` must return only the caller's tasks. The layer cannot know whose
//! tasks the server lists; filtering the answer would need a store lookup per listed task, and
//! pagination cursors would skip or repeat tasks. So it answers JSON-RPC `-32600` with the
//! request's `id` (`tasks/list is not available: …`) and forwards nothing; clients poll their own tasks with
//! `tasks/get`. A server behind the layer should not declare the `tasks.list` capability.
//!
//! # Batches
//!
//! Revision 2025-11-25 has no JSON-RPC batches. A batch (read element by element, never held in
//! memory as a whole) that carries any legacy task request (`tasks/get|result|cancel|list`, or a
//! `tools/call` with `params.task`) is refused whole: 400, JSON-RPC `-32600` without `id`. Other
//! batches pass.

mod body;
mod config;
mod layer;
mod read;
mod service;

pub use layer::{TaskParams, TaskParamsLayer};
