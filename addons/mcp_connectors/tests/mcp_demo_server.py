"""Real MCP servers for the client tests, built with the ``mcp`` SDK.

``python mcp_demo_server.py http <fd>`` serves streamable HTTP on an inherited listening socket,
``python mcp_demo_server.py stdio`` serves stdio, ``python mcp_demo_server.py paged <fd>`` serves a
low-level server whose ``tools/list`` has several pages.
"""

import socket
import sys
import time
from collections import Counter
from typing import Annotated

import anyio
import uvicorn
from mcp.server import MCPServer, Server
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, ListToolsResult, TextContent, Tool, ToolAnnotations
from pydantic import Field

PAGED_TOOL_COUNT = 25
PAGE_SIZE = 10

# Requests seen per method: the tests read the handshakes to prove session reuse.
METHODS = Counter()


async def count_methods(ctx, call_next):
    METHODS[ctx.method] += 1
    return await call_next(ctx)


def build_demo_server():
    server = MCPServer("demo", version="1.0", middleware=[count_methods])

    @server.tool(annotations=ToolAnnotations(readOnlyHint=True, idempotentHint=True))
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    @server.tool()
    def fail(reason: str) -> str:
        """Always fail with the given reason."""
        raise ToolError(f"refused: {reason}")

    @server.tool(
        annotations=ToolAnnotations(
            destructiveHint=True, idempotentHint=False, openWorldHint=True, readOnlyHint=False
        )
    )
    def create_order(
        customer: Annotated[str, Field(description="Customer e-mail", min_length=3)],
        lines: list[dict[str, int]],
        channel: Annotated[str, Field(pattern="^(whatsapp|email)$")] = "whatsapp",
    ) -> dict:
        """Create an order (schema-rich tool)."""
        return {"customer": customer, "lines": len(lines), "channel": channel}

    @server.tool()
    async def sleep(seconds: float) -> str:
        """Sleep, then answer (a hanging server when the client timeout is shorter)."""
        await anyio.sleep(seconds)
        return "awake"

    @server.tool()
    def blocking_sleep(seconds: float) -> str:
        """Sleep in a worker thread (lets the test kill the process mid-call)."""
        time.sleep(seconds)
        return "awake"

    @server.tool()
    def counters() -> dict:
        """Requests seen per method since start."""
        return dict(METHODS)

    return server


def build_paged_server():
    tools = [
        Tool(name=f"tool_{i:02d}", description=f"Tool {i}", input_schema={"type": "object"})
        for i in range(PAGED_TOOL_COUNT)
    ]

    async def on_list_tools(ctx, params):
        start = int(params.cursor) if params and params.cursor else 0
        end = start + PAGE_SIZE
        next_cursor = str(end) if end < len(tools) else None
        return ListToolsResult(tools=tools[start:end], next_cursor=next_cursor)

    async def on_call_tool(ctx, params):
        return CallToolResult(content=[TextContent(type="text", text=params.name)])

    return Server("paged", version="1.0", on_list_tools=on_list_tools, on_call_tool=on_call_tool)


def serve_http(server, fd):
    # uvicorn's fd= option takes the socket for a Unix one, and asyncio then leaves Nagle on
    config = uvicorn.Config(server.streamable_http_app(), log_level="warning")
    uvicorn.Server(config).run(sockets=[socket.socket(fileno=fd)])


def main():
    mode = sys.argv[1]
    if mode == "stdio":
        build_demo_server().run("stdio")
    elif mode == "http":
        serve_http(build_demo_server(), int(sys.argv[2]))
    elif mode == "paged":
        serve_http(build_paged_server(), int(sys.argv[2]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
