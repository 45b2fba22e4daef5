# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Odoo's ``/mcp`` endpoint: MCP over streamable HTTP for outside clients, stateless.

The protocol is ``services/mcp_server_protocol.py``; this controller reads the request, hands
it over with a backend made of the ``mcp.client.key`` records, writes one ``mcp.request`` audit
row per request (authenticated or not; never the key) and sends the answer back.

Databases: the route has ``auth="none"`` (the client key authenticates, not a session), so
Odoo must find the database from the request alone:

- a server with one database (or whose ``db_name`` / ``dbfilter`` leaves one) uses it;
- with several, either make ``dbfilter`` pick one from the host name (``dbfilter = ^%d$``
  serves ``https://acme.example.com/mcp`` from the database ``acme``), or have the client send
  the header ``X-Odoo-Database: <database>``, which Odoo 19 honours on any request (when
  ``db_name`` / ``dbfilter`` let that database through);
- otherwise Odoo does not know the route and answers 404.

Browser-based clients send ``Origin``; only the origins listed (comma-separated) in the system
parameter ``mcp_connectors.mcp_allowed_origins`` are let in (DNS-rebinding protection).
"""

import json
import time
import uuid

from odoo import http, release
from odoo.http import request

from odoo.addons.mcp_integrator.models.mcp_integrator import McpToolError, McpToolRefused

from ..models.mcp_client_key import MCP_SERVER_MODULE
from ..services.mcp_server_protocol import (
    MCPServerBackend,
    MCPServerProtocol,
    ToolFailed,
    Unauthorized,
)

REQUEST_OPERATION = "mcp.request"
ALLOWED_ORIGINS_PARAM = "mcp_connectors.mcp_allowed_origins"
REFUSED_STATUSES = frozenset({401, 403, 429})
DISCOVER = "server/discover"


class McpClientBackend(MCPServerBackend):
    """The protocol's view of the ``mcp.client.key`` records, for one request.

    It remembers the key that authenticated and why something was refused, for the audit row.
    """

    def __init__(self, env, correlation_id):
        self.env = env
        self.correlation_id = correlation_id
        self.key = None
        self.refusal = None
        self._tools = None

    def authenticate(self, token):
        try:
            key = self.env["mcp.client.key"]._mcp_authenticate(token)
        except Unauthorized as exc:
            self.refusal = str(exc)
            raise
        self.key = key
        key._mcp_check_rate()
        key._mcp_record_use()
        return key

    def _tools_by_name(self, key):
        if self._tools is None:
            self._tools = {tool.name: tool for tool in key._mcp_tools()}
        return self._tools

    def list_tools(self, client):
        return [tool._mcp_descriptor() for tool in self._tools_by_name(client).values()]

    def get_tool(self, client, name):
        tool = self._tools_by_name(client).get(name)
        if tool is None:
            self.refusal = f"tool {name!r} is not on the key's allow-list, or not usable now"
            return None
        return tool._mcp_descriptor()

    def call_tool(self, client, name, arguments):
        tool = self._tools_by_name(client)[name]
        refusal = client._mcp_call_refusal(tool, arguments)
        if refusal:
            self.refusal = refusal
            raise ToolFailed(refusal)
        try:
            result = client._mcp_run_tool(tool, arguments, self.correlation_id)
        except McpToolRefused as exc:
            self.refusal = str(exc)
            raise ToolFailed(str(exc)) from None
        except McpToolError as exc:
            raise ToolFailed(str(exc)) from None
        return _tool_value(result)


def _tool_value(result):
    """What ``/mcp`` answers for an integrator result.

    A remote tool's result is an MCP result already: its failure becomes ours (ToolFailed with
    its text), its structured content or text is the value; other results are the value.
    """
    if not (isinstance(result, dict) and isinstance(result.get("content"), list)):
        return result
    text = "\n".join(
        item["text"]
        for item in result["content"]
        if isinstance(item, dict) and isinstance(item.get("text"), str)
    )
    if result.get("isError"):
        raise ToolFailed(text or "The tool reported an error.")
    structured = result.get("structuredContent")
    return structured if isinstance(structured, dict) else text


class McpEndpoint(http.Controller):
    @http.route(
        "/mcp",
        type="http",
        auth="none",
        csrf=False,
        methods=["POST", "GET", "DELETE"],
        save_session=False,
        # auth="none" routes default to a read-only cursor; tools write, and a write on a
        # read-only cursor makes Odoo replay the whole request, remote tool calls included
        readonly=False,
    )
    def mcp(self):
        started = time.perf_counter()
        env = request.env
        correlation_id = uuid.uuid4().hex
        origins = env["ir.config_parameter"].sudo().get_param(ALLOWED_ORIGINS_PARAM) or ""
        protocol = MCPServerProtocol(
            "odoo",
            release.version,
            title="Odoo",
            allowed_origins=[origin.strip() for origin in origins.split(",") if origin.strip()],
        )
        backend = McpClientBackend(env, correlation_id)
        httprequest = request.httprequest
        body = _request_body(protocol.max_body_bytes)
        answer = protocol.handle(body, httprequest.headers, backend, http_method=httprequest.method)
        _audit(backend, body, answer, started, correlation_id)
        return request.make_response(answer.body, headers=answer.headers, status=answer.status)


def _request_body(limit):
    """The body (kept: Odoo replays a request whose transaction failed to serialise).

    A body announced over ``limit`` is not read: a stand-in one byte over it goes to the
    protocol, which answers 413 (after authentication, and audited). A chunked body has no
    announced length; Odoo bounds it (128 MiB) and the protocol refuses it once read.
    """
    length = request.httprequest.content_length
    if length is not None and length > limit:
        return bytes(limit + 1)
    return request.httprequest.get_data(cache=True)


def _json_object(raw):
    try:
        value = json.loads(raw) if raw else {}
    except (ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def _audit(backend, body, answer, started, correlation_id):
    """One ``mcp.request`` row: method, tool, outcome, key prefix; never the key."""
    message = _json_object(body)
    method = message.get("method") if isinstance(message.get("method"), str) else None
    params = message.get("params") if isinstance(message.get("params"), dict) else {}
    tool = params.get("name") if method == "tools/call" else None
    status, error = _outcome(method, answer, backend)
    key = backend.key
    arguments = {
        "http_status": answer.status,
        "method": method,
        "key_prefix": key.key_prefix if key else None,
        "remote_addr": request.httprequest.remote_addr,
    }
    if tool is not None:
        arguments.update(tool=tool, arguments=params.get("arguments"))
    audit_log = backend.env["mcp.audit.log"]
    if key:
        audit_log = audit_log.with_user(key.user_id)
    audit_log._log(
        REQUEST_OPERATION,
        f"{method} {tool}" if tool else method or request.httprequest.method,
        status=status,
        tenant=key.tenant_id if key else None,
        module=MCP_SERVER_MODULE,
        duration_ms=(time.perf_counter() - started) * 1000,
        error=error,
        arguments=arguments,
        correlation_id=correlation_id,
    )


def _outcome(method, answer, backend):
    """``(audit status, error)`` of a request from its answer."""
    payload = _json_object(answer.body)
    rpc_error = payload.get("error") if isinstance(payload.get("error"), dict) else None
    result = payload.get("result") if isinstance(payload.get("result"), dict) else {}
    if backend.refusal or answer.status in REFUSED_STATUSES:
        return "refused", backend.refusal or (rpc_error or {}).get("message")
    if method == DISCOVER and answer.status == 200:
        return "ok", None  # the 2026 clients' probe: "not found" is the designed answer
    if rpc_error:
        return "error", rpc_error.get("message")
    if result.get("isError"):
        return "error", " ".join(item.get("text", "") for item in result.get("content", []))
    if answer.status >= 400:
        return "error", f"HTTP {answer.status}"
    return "ok", None
