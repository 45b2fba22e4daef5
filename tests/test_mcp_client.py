"""The remote MCP client against real SDK servers (streamable HTTP on loopback, and stdio)."""

import importlib
import importlib.util
import json
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import ADDONS, load_services


def _load_process_helper():
    path = ADDONS / "mcp_connectors" / "tests" / "mcp_server_process.py"
    spec = importlib.util.spec_from_file_location("mcp_connectors_test_servers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_PROCESSES = _load_process_helper()
ServerProcess = _PROCESSES.McpServerProcess
SERVER_SCRIPT = _PROCESSES.DEMO_SERVER
SECRET = "Bearer s3cr3t-t0ken-value"


@pytest.fixture(scope="module")
def mc():
    load_services("mcp_connectors")
    module = importlib.import_module("mcp_connectors_services.mcp_client")
    yield module
    module.shutdown()
    assert not [t for t in threading.enumerate() if t.name == "mcp-client-loop"]


@pytest.fixture(scope="module")
def demo_server():
    server = ServerProcess("http")
    yield server
    server.stop()


@pytest.fixture
def own_server():
    server = ServerProcess("http")
    yield server
    server.stop()


@pytest.fixture
def pool(mc):
    pool = mc.McpClientPool(failure_threshold=2, cooldown=0.5, retries=1, backoff=0.05)
    yield pool
    pool.close()


def http_spec(mc, url, **kwargs):
    kwargs.setdefault("timeout", 15.0)
    return mc.ServerSpec(transport="streamable_http", url=url, **kwargs)


def test_spec_validation_and_secrets(mc):
    with pytest.raises(mc.McpConfigError, match="Unknown MCP transport"):
        mc.ServerSpec(transport="websocket", url="http://127.0.0.1/mcp")
    with pytest.raises(mc.McpConfigError, match="needs a command"):
        mc.ServerSpec(transport="stdio")
    with pytest.raises(mc.McpConfigError, match="no command"):
        mc.ServerSpec(transport="sse", url="http://127.0.0.1/sse", command=["ls"])
    with pytest.raises(mc.McpConfigError, match="http"):
        mc.ServerSpec(transport="streamable_http", url="file:///etc/passwd")
    with pytest.raises(mc.McpConfigError, match="timeout"):
        mc.ServerSpec(transport="streamable_http", url="http://127.0.0.1/mcp", timeout=0)
    spec = mc.ServerSpec(
        transport="streamable_http",
        url="https://user:pw@example.com:8443/mcp?token=abc",
        headers={"Authorization": SECRET},
    )
    assert SECRET not in repr(spec)
    assert spec.label == "https://example.com:8443/mcp"
    assert hash(spec) == hash(
        mc.ServerSpec(
            transport="streamable_http",
            url="https://user:pw@example.com:8443/mcp?token=abc",
            headers=[("Authorization", SECRET)],
        )
    )
    # A value inside another one must not leave the longer one half visible.
    nested = mc.ServerSpec(
        transport="stdio", command=["server"], env={"A_KEY": "abcd", "B_KEY": "xyz-abcd-123"}
    )
    assert nested.redact("failed with xyz-abcd-123 and abcd") == "failed with *** and ***"


def test_discovery_follows_pagination(mc, pool):
    server = ServerProcess("paged")
    try:
        tools = pool.list_tools(http_spec(mc, server.url))
    finally:
        server.stop()
    assert [tool["name"] for tool in tools] == [f"tool_{i:02d}" for i in range(25)]
    assert tools[0]["annotations"] == {
        "read_only": False,
        "destructive": True,
        "idempotent": False,
        "open_world": True,
    }


def test_discovery_maps_schema_and_annotations(mc, pool, demo_server):
    tools = {tool["name"]: tool for tool in pool.list_tools(http_spec(mc, demo_server.url))}
    assert tools["add"]["annotations"]["read_only"] is True
    assert tools["add"]["annotations"]["idempotent"] is True
    order = tools["create_order"]
    assert order["description"] == "Create an order (schema-rich tool)."
    assert order["annotations"] == {
        "read_only": False,
        "destructive": True,
        "idempotent": False,
        "open_world": True,
    }
    schema = order["input_schema"]
    assert schema["type"] == "object"
    assert schema["required"] == ["customer", "lines"]
    assert schema["properties"]["customer"]["minLength"] == 3
    assert schema["properties"]["channel"]["pattern"] == "^(whatsapp|email)$"
    json.dumps(tools)  # plain data, ready for a record


def test_call_ok_and_schema_rich_call(mc, pool, demo_server):
    spec = http_spec(mc, demo_server.url)
    result = pool.call_tool(spec, "add", {"a": 2, "b": 3})
    assert result == mc.ToolResult(
        is_error=False, content=[{"type": "text", "text": "5"}], structured_content={"result": 5}
    )
    order = pool.call_tool(
        spec, "create_order", {"customer": "ana@example.com", "lines": [{"qty": 2}]}
    )
    assert not order.is_error
    assert json.loads(order.text) == {
        "customer": "ana@example.com",
        "lines": 1,
        "channel": "whatsapp",
    }
    json.dumps(order.content)


def test_ping_measures_a_round_trip_and_fails_clearly(mc, pool, demo_server, closed_port):
    assert pool.ping(http_spec(mc, demo_server.url)) > 0
    dead = f"http://127.0.0.1:{closed_port}/mcp"
    with pytest.raises(mc.McpTransportError, match="health check"):
        pool.ping(http_spec(mc, dead, timeout=2))


def test_tool_error_is_returned_not_raised(mc, pool, demo_server):
    spec = http_spec(mc, demo_server.url)
    result = pool.call_tool(spec, "fail", {"reason": "out of stock"})
    assert result.is_error
    assert "refused: out of stock" in result.text
    # A tool error is a healthy answer: the circuit stays closed and the session stays.
    assert pool.circuit_state(spec) == "closed"
    assert pool.call_tool(spec, "add", {"a": 1, "b": 1}).structured_content == {"result": 2}


def test_persistent_session_is_reused(mc, pool, demo_server):
    spec = http_spec(mc, demo_server.url)

    def handshakes():
        seen = json.loads(pool.call_tool(spec, "counters").text)
        return seen.get("server/discover", 0) + seen.get("initialize", 0)

    before = handshakes()
    threads = [
        threading.Thread(target=pool.call_tool, args=(spec, "add", {"a": i, "b": 1}))
        for i in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for i in range(20):
        assert pool.call_tool(spec, "add", {"a": i, "b": 1}).structured_content == {"result": i + 1}
    assert handshakes() == before


def test_hanging_server_times_out(mc, pool, demo_server):
    # The tool would sleep a minute: the test finishing at all proves the bound.
    spec = http_spec(mc, demo_server.url, timeout=0.5)
    with pytest.raises(mc.McpTimeout, match=r"no answer within 0\.5s"):
        pool.call_tool(spec, "sleep", {"seconds": 60})
    # The server is fine, the next call reconnects and works.
    assert pool.call_tool(spec, "add", {"a": 1, "b": 2}).structured_content == {"result": 3}


def test_server_dying_mid_call_then_reconnect(mc, pool, own_server):
    spec = http_spec(mc, own_server.url)
    assert pool.call_tool(spec, "add", {"a": 1, "b": 2}).structured_content == {"result": 3}
    killer = threading.Timer(0.5, own_server.kill)
    killer.start()
    try:
        with pytest.raises(mc.McpTransportError, match="connection was closed"):
            pool.call_tool(spec, "blocking_sleep", {"seconds": 60})
    finally:
        killer.join()
    own_server.start()
    assert pool.call_tool(spec, "add", {"a": 2, "b": 2}).structured_content == {"result": 4}


class GarbageHandler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = b"<html>Service temporarily unavailable</html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_DELETE = do_POST

    def log_message(self, *args):
        pass


@pytest.fixture
def garbage_url():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), GarbageHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/mcp"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def test_garbage_server_gives_a_clear_error(mc, pool, garbage_url):
    spec = http_spec(mc, garbage_url, headers={"Authorization": SECRET}, timeout=5.0)
    with pytest.raises((mc.McpProtocolError, mc.McpTransportError)) as info:
        pool.list_tools(spec)
    message = str(info.value)
    assert spec.label in message
    assert "text/html" in message
    assert SECRET not in message and "s3cr3t" not in message


def test_circuit_opens_then_recovers(mc, pool, closed_port):
    # nothing listens there yet: connections are refused
    spec = http_spec(mc, f"http://127.0.0.1:{closed_port}/mcp", timeout=5.0)

    with pytest.raises(mc.McpTransportError) as refused:
        pool.call_tool(spec, "add", {"a": 1, "b": 2})
    assert not isinstance(refused.value, mc.McpCircuitOpen)
    # Connect failures are retried once, which reaches the threshold of 2.
    assert pool.circuit_state(spec) == "open"
    with pytest.raises(mc.McpCircuitOpen, match="fail fast"):
        pool.call_tool(spec, "add", {"a": 1, "b": 2})

    server = ServerProcess.__new__(ServerProcess)
    server.mode = "http"
    server.sock = socket.socket()
    server.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.sock.bind(("127.0.0.1", closed_port))
    server.sock.listen(64)
    server.start()
    try:
        while pool.circuit_state(spec) == "open":
            time.sleep(0.05)
        assert pool.circuit_state(spec) == "half_open"
        result = pool.call_tool(spec, "add", {"a": 1, "b": 2})
        assert result.structured_content == {"result": 3}
        assert pool.circuit_state(spec) == "closed"
    finally:
        server.stop()


def test_stdio_server_discovery_and_call(mc, pool):
    spec = mc.ServerSpec(
        transport="stdio",
        command=[sys.executable, str(SERVER_SCRIPT), "stdio"],
        env={"DEMO_TOKEN": "not-on-the-command-line"},
        timeout=15.0,
    )
    assert spec.label == f"stdio:{os.path.basename(sys.executable)}"
    names = {tool["name"] for tool in pool.list_tools(spec, key=(1, "stdio-demo"))}
    assert {"add", "fail", "create_order"} <= names
    result = pool.call_tool(spec, "add", {"a": 20, "b": 22}, key=(1, "stdio-demo"))
    assert result.structured_content == {"result": 42}
    assert pool.call_tool(spec, "fail", {"reason": "x"}, key=(1, "stdio-demo")).is_error


def test_fork_child_gets_its_own_loop(mc, demo_server):
    spec = http_spec(mc, demo_server.url)
    assert mc.call_tool(spec, "add", {"a": 1, "b": 1}).structured_content == {"result": 2}
    pid = os.fork()
    if pid == 0:  # the child: exit with a code, never return into pytest
        code = 1
        try:
            result = mc.call_tool(spec, "add", {"a": 40, "b": 2})
            code = 0 if result.structured_content == {"result": 42} else 2
            mc.shutdown()
        finally:
            os._exit(code)
    for _attempt in range(600):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the forked child did not finish")
    assert os.waitstatus_to_exitcode(status) == 0
    # The parent's session is untouched by the child.
    assert mc.call_tool(spec, "add", {"a": 2, "b": 2}).structured_content == {"result": 4}
