"""An MCP server on Streamable HTTP written with the official Python SDK (MCPServer, the SDK's
FastMCP), the upstream that tests/examples/gateway.rs puts the gateway example in front of.

    python3 upstream.py [--port 0]

It listens on 127.0.0.1 (port 0: a free one) and prints `listening on http://127.0.0.1:PORT/mcp`
once it accepts connections. Tools:

- `echo(text)`: returns `text`;
- `whoami()`: the session id the upstream sees (proves which session a call landed in);
- `stream(key, steps)`: sends `steps` progress and log notifications, then waits (at most 30 s)
  until `release(key)` is called, then returns `released <key>`: a client that sees the first
  notification before it calls `release` proves the answer flowed event by event;
- `release(key)`: lets `stream(key, …)` finish.
"""

import argparse
import socket
import sys

import anyio
import uvicorn
from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("python-upstream")
releases: dict[str, anyio.Event] = {}


def release_event(key: str) -> anyio.Event:
    if key not in releases:
        releases[key] = anyio.Event()
    return releases[key]


@server.tool()
def echo(text: str) -> str:
    """Returns its text argument."""
    return text


@server.tool()
async def whoami(ctx: Context) -> str:
    """The session id of the HTTP request, as the upstream saw it."""
    request = ctx.request_context.request
    return request.headers.get("mcp-session-id", "none") if request is not None else "none"


@server.tool()
async def stream(key: str, steps: int, ctx: Context) -> str:
    """Notifications first, then the result once release(key) is called."""
    event = release_event(key)
    for step in range(steps):
        await ctx.report_progress(step + 1, steps, f"step {step + 1}")
        await ctx.info(f"step {step + 1} of {steps}")
    with anyio.fail_after(30):
        await event.wait()
    releases.pop(key, None)
    return f"released {key}"


@server.tool()
async def release(key: str) -> str:
    """Lets stream(key, ...) finish."""
    release_event(key).set()
    return f"release {key}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    port = sock.getsockname()[1]
    app = server.streamable_http_app(host="127.0.0.1")
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    uv = uvicorn.Server(config)

    async def serve() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(uv.serve, [sock])
            while not uv.started:
                await anyio.sleep(0.02)
            print(f"listening on http://127.0.0.1:{port}/mcp", flush=True)

    anyio.run(serve)
    sys.exit(0)


if __name__ == "__main__":
    main()
