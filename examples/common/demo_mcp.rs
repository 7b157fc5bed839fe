//! The MCP server the examples and the integration tests share: one resource, one prompt, two
//! tools, each answering with the identity the auth layer put on the request.
//!
//! Included with `#[path = "…/common/demo_mcp.rs"] mod demo_mcp;`, so it is not an example of its
//! own.
#![allow(dead_code)]

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use mcp_session_binding::Identity;
use rmcp::{
    ErrorData as McpError, RoleServer, ServerHandler,
    handler::server::{
        router::{prompt::PromptRouter, tool::ToolRouter},
        tool::{InputResponses, RequestState},
        wrapper::Parameters,
    },
    model::{
        CallToolResponse, CallToolResult, CancelTaskParams, ContentBlock, CreateTaskResult,
        ElicitRequest, ElicitRequestParams, GetTaskParams, GetTaskResult, InputRequest,
        InputRequests, InputRequiredResult, ListResourcesResult, PaginatedRequestParams,
        PromptMessage, ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult,
        Resource, ResourceContents, Role, ServerCapabilities, ServerConfig, UpdateTaskParams,
    },
    prompt, prompt_handler, prompt_router, schemars,
    service::RequestContext,
    task_manager::{TaskExit, TaskManager, TaskOptions},
    tool, tool_handler, tool_router,
    transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService,
        session::{local::LocalSessionManager, store::SessionStore},
    },
};

/// The URI of the resource that tells the caller who they are.
pub const WHOAMI_URI: &str = "session://whoami";

/// Arguments of the `echo` tool.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct EchoArgs {
    /// The text to send back.
    pub text: String,
}

/// Arguments of the `greet` prompt.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct GreetArgs {
    /// Who to greet.
    pub name: String,
}

/// Arguments of the `slow_echo` tool.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct SlowEchoArgs {
    /// The text to send back.
    pub text: String,
    /// How long the task runs, in milliseconds.
    pub ms: u64,
}

/// The demo MCP server.
#[derive(Clone)]
pub struct DemoMcp {
    tool_router: ToolRouter<Self>,
    prompt_router: PromptRouter<Self>,
    /// The tasks `slow_echo` runs. Shared by every instance in the process (rmcp makes one per
    /// request on the sessionless path), standing in for a task backend every replica reaches.
    tasks: TaskManager,
}

impl Default for DemoMcp {
    fn default() -> Self {
        static TASKS: OnceLock<TaskManager> = OnceLock::new();
        Self {
            tool_router: Self::tool_router(),
            prompt_router: Self::prompt_router(),
            tasks: TASKS.get_or_init(TaskManager::new).clone(),
        }
    }
}

/// `<iss> <sub>` of the identity on the HTTP request, or `anonymous`.
fn caller(context: &RequestContext<RoleServer>) -> String {
    context
        .extensions
        .get::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Identity>())
        .map_or_else(|| "anonymous".to_owned(), ToString::to_string)
}

#[tool_router]
impl DemoMcp {
    /// The caller's identity, as `<iss> <sub>`.
    #[tool(description = "Returns the caller's identity as `<iss> <sub>`")]
    fn whoami(&self, context: RequestContext<RoleServer>) -> String {
        caller(&context)
    }

    /// Sends the text back.
    #[tool(description = "Returns its text argument")]
    fn echo(&self, Parameters(EchoArgs { text }): Parameters<EchoArgs>) -> String {
        text
    }

    /// Sends the text back after `ms` milliseconds. Runs as a task (tasks extension, revision
    /// 2026-07-28) when the client declared the extension, else answers when done.
    #[tool(description = "Returns its text argument after `ms` milliseconds; runs as a task")]
    async fn slow_echo(
        &self,
        Parameters(SlowEchoArgs { text, ms }): Parameters<SlowEchoArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let wait = Duration::from_millis(ms.min(60_000));
        let as_task = context
            .client_capabilities()
            .is_some_and(|caps| caps.supports_tasks());
        if !as_task {
            tokio::time::sleep(wait).await;
            return Ok(CallToolResult::success(vec![ContentBlock::text(text)]).into());
        }
        let options = TaskOptions::new().with_poll_interval_ms(50);
        let task = self.tasks.spawn(options, move |task| {
            Box::pin(async move {
                tokio::select! {
                    () = task.cancelled() => Err(TaskExit::Cancelled),
                    () = tokio::time::sleep(wait) => {
                        Ok(CallToolResult::success(vec![ContentBlock::text(text)]))
                    }
                }
            })
        });
        Ok(CallToolResponse::Task(CreateTaskResult::new(task)))
    }

    /// Sends the text back once the user confirms (MRTR, revision 2026-07-28): the first call
    /// answers `input_required` with an elicitation and a `requestState`; the retry with that
    /// state and an accepting answer returns the text. The state is plain here: the
    /// `RequestStateLayer` in front seals it to the caller, the tool and these arguments.
    #[tool(description = "Returns its text argument after the user confirms (multi round-trip)")]
    async fn confirm_echo(
        &self,
        Parameters(EchoArgs { text }): Parameters<EchoArgs>,
        RequestState(state): RequestState,
        InputResponses(responses): InputResponses,
    ) -> Result<CallToolResponse, McpError> {
        let Some(state) = state else {
            let mut requests = InputRequests::new();
            let schema = serde_json::from_value(serde_json::json!({
                "type": "object",
                "properties": {"ok": {"type": "boolean"}},
            }))
            .map_err(|e| McpError::internal_error(e.to_string(), None))?;
            let ask = ElicitRequestParams::FormElicitationParams {
                meta: None,
                message: format!("Echo {text:?}?"),
                requested_schema: schema,
            };
            requests.insert(
                "confirm".to_owned(),
                InputRequest::Elicitation(ElicitRequest::new(ask)),
            );
            let state = format!("confirm:{text}");
            return Ok(InputRequiredResult::new(Some(requests), Some(state)).into());
        };
        if state != format!("confirm:{text}") {
            return Err(McpError::invalid_params(
                "requestState does not match",
                None,
            ));
        }
        let accepted = responses
            .as_ref()
            .and_then(|r| r.get("confirm"))
            .is_some_and(|answer| answer["action"] == "accept");
        if !accepted {
            return Err(McpError::invalid_params("not confirmed", None));
        }
        Ok(CallToolResult::success(vec![ContentBlock::text(text)]).into())
    }
}

#[prompt_router]
impl DemoMcp {
    /// A one-message greeting.
    #[prompt(description = "A greeting for `name`")]
    fn greet(&self, Parameters(GreetArgs { name }): Parameters<GreetArgs>) -> Vec<PromptMessage> {
        vec![PromptMessage::new_text(
            Role::User,
            format!("Hello, {name}!"),
        )]
    }
}

#[tool_handler(router = self.tool_router)]
#[prompt_handler(router = self.prompt_router)]
impl ServerHandler for DemoMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .enable_prompts()
                .enable_tasks()
                .build(),
        )
        .with_instructions("Demo server for mcp-session-binding")
    }

    async fn get_task(
        &self,
        request: GetTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, McpError> {
        Ok(GetTaskResult::new(self.tasks.get_task(&request.task_id)?))
    }

    async fn update_task(
        &self,
        request: UpdateTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.tasks
            .update_task(&request.task_id, request.input_responses)
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.tasks.cancel_task(&request.task_id)
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        Ok(ListResourcesResult::with_all_items(vec![Resource::new(
            WHOAMI_URI, "whoami",
        )]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        if request.uri != WHOAMI_URI {
            return Err(McpError::resource_not_found("no such resource", None));
        }
        Ok(
            ReadResourceResult::new(vec![ResourceContents::text(caller(&context), WHOAMI_URI)])
                .into(),
        )
    }
}

/// The rmcp Streamable HTTP service for [`DemoMcp`], with in-memory sessions.
/// The demo server's rmcp service type.
pub type Service = StreamableHttpService<DemoMcp, LocalSessionManager>;

pub fn service() -> StreamableHttpService<DemoMcp, LocalSessionManager> {
    service_with(config())
}

/// The same service, with each session's `initialize` parameters also kept in `sessions` (when
/// given), so that a replica that does not hold a session restores it (rmcp's cross-instance
/// restore), and `public_host` (`host[:port]`) allowed as `Host` besides the loopback names rmcp
/// allows by default (a server behind a proxy).
pub fn service_for(
    sessions: Option<Arc<dyn SessionStore>>,
    public_host: Option<String>,
) -> StreamableHttpService<DemoMcp, LocalSessionManager> {
    let mut config = config();
    config.session_store = sessions;
    config.allowed_hosts.extend(public_host);
    service_with(config)
}

fn config() -> StreamableHttpServerConfig {
    StreamableHttpServerConfig::default().with_sse_keep_alive(Some(Duration::from_secs(15)))
}

fn service_with(
    config: StreamableHttpServerConfig,
) -> StreamableHttpService<DemoMcp, LocalSessionManager> {
    StreamableHttpService::new(|| Ok(DemoMcp::default()), Default::default(), config)
}
