"""The protocol core of Odoo's ``/mcp`` endpoint, directly and through the official SDK client.

The backend below stands in for the Odoo layer (client records, tools); the protocol module
itself is the real one.
"""

import importlib
import json
import threading
from http import HTTPStatus

import pytest
from conftest import load_services
from werkzeug.serving import make_server
from werkzeug.wrappers import Request

GOOD_KEY = "good-key"
ADD_SCHEMA = {
    "type": "object",
    "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
    "required": ["a", "b"],
    "additionalProperties": False,
}
ORDER_SCHEMA = {
    "type": "object",
    "properties": {
        "sku": {"type": "string", "minLength": 3, "maxLength": 8},
        "quantity": {"type": "integer", "minimum": 1, "maximum": 99},
        "unit": {"enum": ["un", "kg"]},
        "price": {"type": ["number", "null"]},
        "gift": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 2},
    },
    "required": ["sku", "quantity"],
    "additionalProperties": False,
}
JSON_HEADERS = {
    "Authorization": f"Bearer {GOOD_KEY}",
    "Content-Type": "application/json",
    "Accept": "application/json, text/event-stream",
}


@pytest.fixture(scope="module")
def mod():
    load_services("mcp_connectors")
    return importlib.import_module("mcp_connectors_services.mcp_server_protocol")


@pytest.fixture(scope="module")
def backend(mod):
    class ShopBackend(mod.MCPServerBackend):
        """Stands in for the Odoo layer: one valid key, a few tools."""

        def __init__(self):
            self.tools = [
                {"name": "add", "description": "Add two integers.", "inputSchema": ADD_SCHEMA},
                {"name": "order", "description": "Draft an order.", "inputSchema": ORDER_SCHEMA},
                {"name": "echo", "description": "Echo a text.", "private_field": "hidden"},
                {"name": "fail", "description": "Always refuses."},
                {"name": "crash", "description": "Hits a bug."},
                {"name": "broken_schema", "inputSchema": {"type": "object", "minProperties": "x"}},
            ]

        def authenticate(self, token):
            if token == "busy-key":
                raise mod.RateLimited(30)
            if token != GOOD_KEY:
                raise mod.Unauthorized()
            return "alice"

        def list_tools(self, client):
            assert client == "alice"
            return self.tools

        def call_tool(self, client, name, arguments):
            assert client == "alice"
            if name == "add":
                return {"sum": arguments["a"] + arguments["b"]}
            if name == "order":
                return {"draft": True, **arguments}
            if name == "echo":
                return arguments.get("text", "")
            if name == "fail":
                raise mod.ToolFailed("The stock service is unavailable, try again later.")
            raise RuntimeError("database password is hunter2")

    return ShopBackend()


@pytest.fixture(scope="module")
def protocol(mod):
    return mod.MCPServerProtocol("odoo-test", "1.0", page_size=2)


def post(protocol, backend, message, headers=None, method="POST"):
    """Send one message; return (status, header dict, decoded JSON or None)."""
    body = message if isinstance(message, bytes) else json.dumps(message).encode()
    status, response_headers, raw = protocol.handle(
        body, headers or JSON_HEADERS, backend, http_method=method
    )
    return status, dict(response_headers), json.loads(raw) if raw else None


def rpc(method, params=None, request_id=1):
    message = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = params
    return message


def call(protocol, backend, name, arguments):
    status, _headers, payload = post(
        protocol, backend, rpc("tools/call", {"name": name, "arguments": arguments})
    )
    assert status == 200
    return payload["result"]


# --- handshake ------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["2025-06-18", "2025-11-25"])
def test_initialize_echoes_a_supported_version(protocol, backend, version):
    params = {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "t"}}
    status, headers, payload = post(protocol, backend, rpc("initialize", params))
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert "Mcp-Session-Id" not in headers
    assert payload == {
        "jsonrpc": "2.0",
        "id": 1,
        "result": {
            "protocolVersion": version,
            "capabilities": {"tools": {"listChanged": False}},
            "serverInfo": {"name": "odoo-test", "version": "1.0"},
        },
    }


@pytest.mark.parametrize("version", ["2024-11-05", "2026-07-28", "next-year"])
def test_initialize_answers_the_latest_for_other_versions(mod, protocol, backend, version):
    _status, _headers, payload = post(
        protocol, backend, rpc("initialize", {"protocolVersion": version})
    )
    assert payload["result"]["protocolVersion"] == mod.LATEST_PROTOCOL_VERSION == "2025-11-25"


def test_initialize_without_version_is_invalid_params(protocol, backend):
    _status, _headers, payload = post(protocol, backend, rpc("initialize", {}))
    assert payload["error"]["code"] == -32602


def test_instructions_and_title_are_announced(mod, backend):
    protocol = mod.MCPServerProtocol("odoo", "2", title="Odoo", instructions="Be brief.")
    _status, _headers, payload = post(
        protocol, backend, rpc("initialize", {"protocolVersion": "2025-11-25"})
    )
    assert payload["result"]["instructions"] == "Be brief."
    assert payload["result"]["serverInfo"] == {"name": "odoo", "version": "2", "title": "Odoo"}


@pytest.mark.parametrize("method", ["notifications/initialized", "notifications/cancelled"])
def test_notifications_get_202_without_body(protocol, backend, method):
    assert protocol.handle(
        json.dumps({"jsonrpc": "2.0", "method": method}).encode(), JSON_HEADERS, backend
    ) == (202, [], b"")


def test_a_client_response_is_accepted(protocol, backend):
    message = {"jsonrpc": "2.0", "id": 7, "result": {}}
    assert post(protocol, backend, message)[0] == 202


def test_ping(protocol, backend):
    assert post(protocol, backend, rpc("ping", request_id="p-1"))[2] == {
        "jsonrpc": "2.0",
        "id": "p-1",
        "result": {},
    }


def test_server_discover_is_method_not_found(protocol, backend):
    headers = {**JSON_HEADERS, "MCP-Protocol-Version": "2026-07-28"}
    status, _headers, payload = post(protocol, backend, rpc("server/discover", {}), headers)
    assert status == 200
    assert payload["error"] == {
        "code": -32601,
        "message": "Method not found",
        "data": "server/discover",
    }


@pytest.mark.parametrize("method", ["resources/list", "prompts/get", "nope"])
def test_unknown_method(protocol, backend, method):
    _status, _headers, payload = post(protocol, backend, rpc(method, request_id=9))
    assert payload["id"] == 9
    assert payload["error"]["code"] == -32601
    assert payload["error"]["data"] == method


# --- tools ----------------------------------------------------------------------------------


def test_tools_list_paginates_with_an_opaque_cursor(protocol, backend):
    names, cursor, pages = [], None, 0
    while True:
        params = {"cursor": cursor} if cursor else {}
        _status, _headers, payload = post(protocol, backend, rpc("tools/list", params))
        result = payload["result"]
        names += [tool["name"] for tool in result["tools"]]
        pages += 1
        cursor = result.get("nextCursor")
        if cursor is None:
            break
        assert not cursor.isdigit()
    assert names == [tool["name"] for tool in backend.tools]
    assert pages == 3


def test_tools_list_publishes_only_mcp_fields(protocol, backend):
    _status, _headers, payload = post(protocol, backend, rpc("tools/list"))
    add, _order = payload["result"]["tools"]
    assert add == {"name": "add", "description": "Add two integers.", "inputSchema": ADD_SCHEMA}
    _status, _headers, payload = post(
        protocol, backend, rpc("tools/list", {"cursor": payload["result"]["nextCursor"]})
    )
    echo = payload["result"]["tools"][0]
    assert echo == {
        "name": "echo",
        "description": "Echo a text.",
        "inputSchema": {"type": "object"},
    }


@pytest.mark.parametrize("cursor", ["garbage!", "eyJvZmZzZXQiOiAtMX0=", 5])
def test_tools_list_bad_cursor(protocol, backend, cursor):
    _status, _headers, payload = post(protocol, backend, rpc("tools/list", {"cursor": cursor}))
    assert payload["error"] == {"code": -32602, "message": "Invalid cursor"}


def test_tools_call_success(protocol, backend):
    assert call(protocol, backend, "add", {"a": 2, "b": 3}) == {
        "content": [{"type": "text", "text": '{"sum": 5}'}],
        "structuredContent": {"sum": 5},
        "isError": False,
    }


def test_tools_call_non_object_result_is_wrapped(protocol, backend):
    result = call(protocol, backend, "echo", {"text": "olá"})
    assert result["content"] == [{"type": "text", "text": "olá"}]
    assert result["structuredContent"] == {"result": "olá"}


def test_tools_call_without_arguments(protocol, backend):
    _status, _headers, payload = post(protocol, backend, rpc("tools/call", {"name": "echo"}))
    assert payload["result"]["isError"] is False


def test_tool_failure_is_an_error_result(protocol, backend):
    assert call(protocol, backend, "fail", {}) == {
        "content": [{"type": "text", "text": "The stock service is unavailable, try again later."}],
        "isError": True,
    }


def test_unexpected_tool_exception_reveals_nothing(protocol, backend, caplog):
    result = call(protocol, backend, "crash", {})
    assert result["isError"] is True
    assert result["content"][0]["text"] == "Tool 'crash' failed with an internal error."
    assert "hunter2" in caplog.text  # the server log keeps the cause, the client never sees it


def test_tool_with_an_invalid_schema_is_refused(protocol, backend, caplog):
    result = call(protocol, backend, "broken_schema", {})
    assert result["isError"] is True
    assert "misconfigured" in result["content"][0]["text"]
    assert "invalid input schema" in caplog.text


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"a": 1}, ["'b' is a required property"]),
        ({"a": 1, "b": "2"}, ["b: '2' is not of type 'integer'"]),
        ({"a": 1, "b": 2, "c": 3}, ["Additional properties are not allowed ('c' was unexpected)"]),
        ({"a": True, "b": 1.5}, ["a: True is not of type 'integer'", "b: 1.5 is not of type"]),
    ],
)
def test_bad_arguments_are_an_error_result_naming_the_field(protocol, backend, arguments, expected):
    result = call(protocol, backend, "add", arguments)
    assert result["isError"] is True
    text = result["content"][0]["text"]
    assert text.startswith("Invalid arguments for tool 'add': ")
    for fragment in expected:
        assert fragment in text


def test_validate_arguments_covers_the_tool_schema_subset(mod):
    valid = {"sku": "A-1", "quantity": 2, "unit": "kg", "price": None, "gift": False, "tags": ["x"]}
    assert mod.validate_arguments(ORDER_SCHEMA, valid) == []
    problems = mod.validate_arguments(
        ORDER_SCHEMA,
        {
            "sku": "AB",
            "quantity": 100,
            "unit": "lb",
            "price": "1",
            "gift": 1,
            "tags": [1, "a", "b"],
        },
    )
    assert problems == [
        "gift: 1 is not of type 'boolean'",
        "price: '1' is not of type 'number', 'null'",
        "quantity: 100 is greater than the maximum of 99",
        "sku: 'AB' is too short",
        "tags: [1, 'a', 'b'] is too long",
        "tags.0: 1 is not of type 'string'",
        "unit: 'lb' is not one of ['un', 'kg']",
    ]
    assert mod.validate_arguments(ORDER_SCHEMA, {"sku": "ABCDEFGHIJ", "quantity": 0, "tags": []})[
        :3
    ] == [
        "quantity: 0 is less than the minimum of 1",
        "sku: 'ABCDEFGHIJ' is too long",
        "tags: [] should be non-empty",
    ]


def test_validate_arguments_clips_long_values(mod):
    (problem,) = mod.validate_arguments(ORDER_SCHEMA["properties"]["sku"], "x" * 10_000)
    assert len(problem) <= 200


def test_validate_arguments_rejects_an_invalid_schema(mod):
    with pytest.raises(ValueError, match="invalid input schema"):
        mod.validate_arguments({"type": "no-such-type"}, {})


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"arguments": {}}, "tools/call needs a tool name"),
        ({"name": "add", "arguments": [1, 2]}, "tools/call arguments must be an object"),
        ({"name": "nope", "arguments": {}}, "Unknown tool: nope"),
    ],
)
def test_structurally_invalid_tool_calls_are_invalid_params(protocol, backend, params, message):
    _status, _headers, payload = post(protocol, backend, rpc("tools/call", params))
    assert payload["error"] == {"code": -32602, "message": message}


def test_params_must_be_an_object(protocol, backend):
    _status, _headers, payload = post(protocol, backend, rpc("tools/list", [1]))
    assert payload["error"]["code"] == -32602


def test_backend_failure_while_listing_is_an_internal_error(mod, protocol, caplog):
    class BrokenBackend(mod.MCPServerBackend):
        def authenticate(self, token):
            return "alice"

        def list_tools(self, client):
            raise RuntimeError("connection to the database lost")

        def call_tool(self, client, name, arguments):
            raise AssertionError("never called")

    status, _headers, payload = post(protocol, BrokenBackend(), rpc("tools/list"))
    assert status == 200
    assert payload["error"] == {"code": -32603, "message": "Internal error"}
    assert "connection to the database lost" in caplog.text


# --- JSON-RPC envelope ----------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"{not json", b"", b"\xff\xfe\x00", b"[" * 100_000])
def test_bad_json_is_a_parse_error(protocol, backend, body):
    status, _headers, payload = post(protocol, backend, body)
    assert status == 400
    assert payload["id"] is None
    assert payload["error"]["code"] == -32700


def test_batches_are_refused(protocol, backend):
    status, _headers, payload = post(protocol, backend, [rpc("ping"), rpc("ping", request_id=2)])
    assert status == 400
    assert payload["error"]["code"] == -32600
    assert "Batch requests are not supported" in payload["error"]["message"]


@pytest.mark.parametrize(
    ("message", "expected_id"),
    [
        ("ping", None),
        ({"id": 1, "method": "ping"}, 1),
        ({"jsonrpc": "1.0", "id": 1, "method": "ping"}, 1),
        ({"jsonrpc": "2.0", "id": None, "method": "ping"}, None),
        ({"jsonrpc": "2.0", "id": True, "method": "ping"}, None),
        ({"jsonrpc": "2.0", "id": 1.5, "method": "ping"}, None),
        ({"jsonrpc": "2.0", "id": 3, "method": 42}, 3),
        ({"jsonrpc": "2.0", "id": 4}, 4),
    ],
)
def test_invalid_requests(protocol, backend, message, expected_id):
    status, _headers, payload = post(protocol, backend, message)
    assert status == 400
    assert payload["id"] == expected_id
    assert payload["error"]["code"] == -32600


# --- HTTP transport rules -------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "DELETE", "PUT"])
def test_other_http_methods_get_405(protocol, backend, method):
    status, headers, payload = post(protocol, backend, b"", method=method)
    assert status == 405
    assert headers["Allow"] == "POST"
    assert "POST" in payload["error"]["message"]


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_wrong_content_type_gets_415(protocol, backend, content_type):
    headers = {k: v for k, v in JSON_HEADERS.items() if k != "Content-Type"}
    if content_type:
        headers["Content-Type"] = content_type
    status, _headers, payload = post(protocol, backend, rpc("ping"), headers)
    assert status == 415
    assert "Content-Type must be application/json" in payload["error"]["message"]


def test_content_type_parameters_are_fine(protocol, backend):
    headers = {**JSON_HEADERS, "Content-Type": "Application/JSON; charset=utf-8"}
    assert post(protocol, backend, rpc("ping"), headers)[0] == 200


@pytest.mark.parametrize("accept", ["text/event-stream", "text/html", "application/json;q=0"])
def test_accept_without_json_gets_406(protocol, backend, accept):
    status, _headers, payload = post(
        protocol, backend, rpc("ping"), {**JSON_HEADERS, "Accept": accept}
    )
    assert status == 406
    assert "application/json" in payload["error"]["message"]


@pytest.mark.parametrize("accept", ["application/json", "*/*", "application/*;q=0.5", ""])
def test_accept_allowing_json(protocol, backend, accept):
    assert post(protocol, backend, rpc("ping"), {**JSON_HEADERS, "Accept": accept})[0] == 200


def test_headers_are_case_insensitive(protocol, backend):
    headers = {key.upper(): value for key, value in JSON_HEADERS.items()}
    assert post(protocol, backend, rpc("ping"), headers)[0] == 200


@pytest.mark.parametrize("version", ["2025-06-18", "2025-11-25"])
def test_supported_protocol_version_header(protocol, backend, version):
    headers = {**JSON_HEADERS, "MCP-Protocol-Version": version}
    assert post(protocol, backend, rpc("tools/list"), headers)[0] == 200


@pytest.mark.parametrize("message", [rpc("tools/list"), {"jsonrpc": "2.0", "method": "n/x"}])
def test_unsupported_protocol_version_header_gets_400(protocol, backend, message):
    headers = {**JSON_HEADERS, "MCP-Protocol-Version": "2024-11-05"}
    status, _headers, payload = post(protocol, backend, message, headers)
    assert status == 400
    assert payload["error"]["code"] == -32600
    assert "Unsupported MCP-Protocol-Version '2024-11-05'" in payload["error"]["message"]


def test_initialize_ignores_the_protocol_version_header(protocol, backend):
    headers = {**JSON_HEADERS, "MCP-Protocol-Version": "2026-07-28"}
    params = {"protocolVersion": "2025-06-18"}
    assert post(protocol, backend, rpc("initialize", params), headers)[0] == 200


@pytest.mark.parametrize(
    "authorization", [None, "", "Bearer", "Basic Zm9vOmJhcg==", "Bearer wrong"]
)
def test_missing_or_wrong_key_gets_the_same_401(mod, protocol, backend, authorization):
    headers = {k: v for k, v in JSON_HEADERS.items() if k != "Authorization"}
    if authorization is not None:
        headers["Authorization"] = authorization
    status, response_headers, payload = post(protocol, backend, rpc("ping"), headers)
    assert status == 401
    assert response_headers["WWW-Authenticate"] == 'Bearer realm="mcp"'
    assert payload["error"]["message"] == mod.UNAUTHORIZED_MESSAGE


def test_bearer_scheme_is_case_insensitive(protocol, backend):
    headers = {**JSON_HEADERS, "Authorization": f"bearer {GOOD_KEY}"}
    assert post(protocol, backend, rpc("ping"), headers)[0] == 200


def test_rate_limited_key_gets_429(protocol, backend):
    headers = {**JSON_HEADERS, "Authorization": "Bearer busy-key"}
    status, response_headers, _payload = post(protocol, backend, rpc("ping"), headers)
    assert status == 429
    assert response_headers["Retry-After"] == "30"


def test_authentication_crash_is_a_500_without_detail(mod, protocol, caplog):
    class BrokenAuth(mod.MCPServerBackend):
        def authenticate(self, token):
            raise RuntimeError("key table missing")

        def list_tools(self, client):
            return []

        def call_tool(self, client, name, arguments):
            return None

    status, _headers, payload = post(protocol, BrokenAuth(), rpc("ping"))
    assert status == 500
    assert payload["error"]["message"] == "Internal error"
    assert "key table missing" in caplog.text


def test_body_over_the_limit_gets_413(mod, backend):
    protocol = mod.MCPServerProtocol("odoo", "1", max_body_bytes=100)
    message = rpc("tools/call", {"name": "echo", "arguments": {"text": "x" * 100}})
    status, _headers, payload = post(protocol, backend, message)
    assert status == 413
    assert "100 bytes" in payload["error"]["message"]
    assert mod.MCPServerProtocol("odoo", "1").max_body_bytes == mod.DEFAULT_MAX_BODY_BYTES


def test_foreign_origin_gets_403(mod, backend):
    protocol = mod.MCPServerProtocol("odoo", "1", allowed_origins=["https://erp.example.com"])
    headers = {**JSON_HEADERS, "Origin": "https://evil.example.net"}
    assert post(protocol, backend, rpc("ping"), headers)[0] == 403
    headers["Origin"] = "https://erp.example.com"
    assert post(protocol, backend, rpc("ping"), headers)[0] == 200


def test_page_size_must_be_positive(mod):
    with pytest.raises(ValueError, match="page_size"):
        mod.MCPServerProtocol("odoo", "1", page_size=0)


# --- end to end with the official SDK client ------------------------------------------------


@pytest.fixture(scope="module")
def server(protocol, backend):
    """A WSGI app around ``handle`` on a loopback port; records (method, MCP-Protocol-Version)."""
    received = []

    @Request.application
    def app(request):
        from werkzeug.wrappers import Response as WsgiResponse

        body = request.stream.read(protocol.max_body_bytes + 1)
        if body:
            received.append(
                (json.loads(body).get("method"), request.headers.get("MCP-Protocol-Version"))
            )
        answer = protocol.handle(body, request.headers, backend, http_method=request.method)
        return WsgiResponse(
            answer.body,
            status=f"{answer.status} {HTTPStatus(answer.status).phrase}",
            headers=answer.headers,
        )

    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}/mcp", received
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def run_client(url, mode, scenario, key=GOOD_KEY):
    """Connect the SDK client in ``mode`` with ``key`` and return ``await scenario(client)``."""
    import anyio
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async def main():
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(10)) as http:
            transport = streamable_http_client(url, http_client=http)
            async with Client(transport, mode=mode) as client:
                return await scenario(client)

    return anyio.run(main)


async def exercise(client):
    """List all tools page by page and call the interesting ones."""
    names, cursor = [], None
    while True:
        page = await client.list_tools(cursor=cursor)
        names += [tool.name for tool in page.tools]
        cursor = page.next_cursor
        if cursor is None:
            break
    return {
        "version": client.protocol_version,
        "server": client.server_info.name,
        "names": names,
        "add": await client.call_tool("add", {"a": 20, "b": 22}),
        "fail": await client.call_tool("fail", {}),
        "bad": await client.call_tool("add", {"a": 1, "b": "two", "c": 3}),
        "ping": await client.session.send_ping(),
    }


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_sdk_client_end_to_end(server, backend, mode):
    url, received = server
    received.clear()
    outcome = run_client(url, mode, exercise)

    methods = [method for method, _version in received]
    if mode == "auto":
        # The 2026-era probe is answered -32601 and the client falls back to the handshake.
        assert received[0] == ("server/discover", "2026-07-28")
        methods.pop(0)
    assert methods[:2] == ["initialize", "notifications/initialized"]
    assert {"tools/list", "tools/call", "ping"} <= set(methods)
    # After the handshake every message carries the negotiated version, which passes the check.
    assert {version for method, version in received if method != "server/discover"} <= {
        None,
        "2025-11-25",
    }
    assert ("tools/call", "2025-11-25") in received
    assert outcome["version"] == "2025-11-25"
    assert outcome["server"] == "odoo-test"
    assert outcome["names"] == [tool["name"] for tool in backend.tools]

    add = outcome["add"]
    assert add.is_error is False
    assert add.structured_content == {"sum": 42}
    assert json.loads(add.content[0].text) == {"sum": 42}

    fail = outcome["fail"]
    assert fail.is_error is True
    assert fail.content[0].text == "The stock service is unavailable, try again later."

    bad = outcome["bad"]
    assert bad.is_error is True
    assert "b: 'two' is not of type 'integer'" in bad.content[0].text
    assert "'c' was unexpected" in bad.content[0].text


def test_sdk_client_unknown_tool_is_a_protocol_error(server):
    from mcp import MCPError

    async def scenario(client):
        with pytest.raises(MCPError) as caught:
            await client.call_tool("nope", {})
        return caught.value.code

    assert run_client(server[0], "auto", scenario) == -32602


def test_sdk_client_with_a_wrong_key_cannot_connect(server):
    from mcp import MCPError

    async def scenario(client):
        raise AssertionError("connected with a wrong key")

    # Both the discover probe and the fallback initialize get 401; anyio groups the error.
    with pytest.raises(Exception) as caught:
        run_client(server[0], "auto", scenario, key="wrong")
    assert caught.group_contains(MCPError, match="Unauthorized")


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        (None, "JSON object"),
        ([], "JSON object"),
        ({"type": "array"}, '"type" must be "object"'),
        ({"type": "object", "properties": {"q": {"type": "nonsense"}}}, "invalid input schema"),
    ],
)
def test_check_input_schema_names_the_problem(mod, schema, problem):
    assert problem in mod.check_input_schema(schema)


def test_check_input_schema_accepts_an_object_schema(mod):
    assert (
        mod.check_input_schema({"type": "object", "properties": {"q": {"type": "string"}}}) is None
    )
