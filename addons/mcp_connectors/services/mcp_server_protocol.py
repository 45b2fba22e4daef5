"""Protocol core of Odoo's ``/mcp`` endpoint: MCP over streamable HTTP, stateless, JSON responses.

Plain Python, no Odoo import: the Odoo controller hands each HTTP request to
:meth:`MCPServerProtocol.handle` together with a :class:`MCPServerBackend` that knows the MCP
client records and the tools, and sends back the :class:`Response` it gets.

What is spoken (handshake era, protocol versions 2025-06-18 and 2025-11-25):

- ``POST`` only. Every message is answered on its own request ("JSON response" mode): no SSE
  stream, no ``Mcp-Session-Id``, so any Odoo worker can answer any request. ``GET`` (the
  server-to-client stream) and ``DELETE`` (session end) get 405, as the transport allows.
- ``initialize`` (version negotiation), ``ping``, ``tools/list`` (cursor pagination) and
  ``tools/call``. Notifications (``notifications/initialized`` and any other) get 202.
- ``server/discover`` (the first request of 2026-07-28 clients) is answered "method not found",
  so those clients fall back to ``initialize``; every other method too.
- Tool failures and arguments that break the tool's input schema are tool results with
  ``isError`` (the model reads them and can correct itself); an unknown tool or malformed
  ``tools/call`` params are JSON-RPC errors -32602, as the specification shows.
- JSON-RPC batches are refused: MCP 2025-06-18 removed them.
"""

import base64
import binascii
import json
import logging
import re
from abc import ABC, abstractmethod
from functools import lru_cache
from typing import NamedTuple

_logger = logging.getLogger(__name__)

SUPPORTED_PROTOCOL_VERSIONS = ("2025-06-18", "2025-11-25")
LATEST_PROTOCOL_VERSION = SUPPORTED_PROTOCOL_VERSIONS[-1]
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_PAGE_SIZE = 50

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

# The tool keys MCP defines; anything else a backend keeps on its tool dicts stays private.
TOOL_FIELDS = (
    "name",
    "title",
    "description",
    "inputSchema",
    "outputSchema",
    "annotations",
    "_meta",
)
# One answer for a missing, wrong, expired or revoked key: the reply must not tell them apart.
UNAUTHORIZED_MESSAGE = "Unauthorized: send a valid MCP client key as 'Authorization: Bearer <key>'."
MAX_REPORTED_ARGUMENT_ERRORS = 10
_BEARER = re.compile(r"Bearer[ \t]+(\S+)[ \t]*", re.IGNORECASE)
_JSON_TYPES = {"application/json", "application/*", "*/*"}


class Unauthorized(Exception):
    """Raised by :meth:`MCPServerBackend.authenticate` for a key that must not get in."""


class RateLimited(Exception):
    """Raised by :meth:`MCPServerBackend.authenticate` when the client spent its budget."""

    def __init__(self, retry_after):
        super().__init__(f"Rate limit reached, retry after {retry_after} s")
        self.retry_after = max(1, int(retry_after))


class ToolFailed(Exception):
    """Raised by :meth:`MCPServerBackend.call_tool`; its message is shown to the model."""


class MCPServerBackend(ABC):
    """What the protocol needs from the Odoo side.

    ``client`` is whatever :meth:`authenticate` returns (the MCP client record); the protocol
    only passes it back. Each call may raise; unexpected exceptions are logged and answered
    with a generic error, so no internal detail reaches the remote client.
    """

    @abstractmethod
    def authenticate(self, token):
        """Return the client that owns the bearer ``token``.

        Raise :class:`Unauthorized` when the key is unknown, expired or revoked (the reply is
        the same 401 in every case) and :class:`RateLimited` when the client is over its rate.
        """

    @abstractmethod
    def list_tools(self, client):
        """Return the tools ``client`` may use, in a stable order, as MCP tool dicts.

        Each dict has ``name``, ``description`` and ``inputSchema`` (a JSON Schema with
        ``"type": "object"``), optionally ``title``, ``outputSchema``, ``annotations``.
        """

    def get_tool(self, client, name):
        """Return the tool dict called ``name`` that ``client`` may use, or ``None``.

        Backends with many tools override this with a direct lookup.
        """
        return next((tool for tool in self.list_tools(client) if tool["name"] == name), None)

    @abstractmethod
    def call_tool(self, client, name, arguments):
        """Run tool ``name`` with ``arguments`` (already valid against its input schema).

        Return a JSON-serialisable value (a dict becomes the structured content as it is).
        Raise :class:`ToolFailed` with a message for the model when the tool cannot do what
        was asked. The call must be atomic: a failure is answered as a result, so nothing it
        wrote may survive it.
        """


class Response(NamedTuple):
    """An HTTP answer: status code, header list, body bytes (empty for 202 and 204)."""

    status: int
    headers: list
    body: bytes


class _ProtocolError(Exception):
    """A JSON-RPC error answer, raised inside the handler and turned into a :class:`Response`."""

    def __init__(self, code, message, *, data=None, status=200, request_id=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data
        self.status = status
        self.request_id = request_id


class MCPServerProtocol:
    """Stateless MCP server: one :meth:`handle` call per HTTP request, safe to share.

    ``allowed_origins`` lists the browser origins that may call (the transport requires
    servers to check ``Origin`` against DNS rebinding); requests without ``Origin`` (every
    non-browser client) are not affected.
    """

    def __init__(
        self,
        name,
        version,
        *,
        title=None,
        instructions=None,
        max_body_bytes=DEFAULT_MAX_BODY_BYTES,
        page_size=DEFAULT_PAGE_SIZE,
        allowed_origins=(),
    ):
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self.server_info = {"name": name, "version": version}
        if title:
            self.server_info["title"] = title
        self.instructions = instructions
        self.max_body_bytes = max_body_bytes
        self.page_size = page_size
        self.allowed_origins = frozenset(allowed_origins)
        self._methods = {
            "initialize": self._initialize,
            "ping": self._ping,
            "tools/list": self._list_tools,
            "tools/call": self._call_tool,
        }

    def handle(self, body, headers, backend, http_method="POST"):
        """Answer one HTTP request to the MCP endpoint.

        ``body`` is the raw request body (the caller reads at most ``max_body_bytes + 1``
        bytes of it), ``headers`` any mapping of header names to values, ``backend`` a
        :class:`MCPServerBackend`. Returns a :class:`Response`.
        """
        headers = {key.lower(): value for key, value in headers.items()}
        try:
            client = self._check_http(body, headers, backend, http_method)
            message = _parse(body)
            return self._answer(message, headers, client, backend)
        except _ProtocolError as error:
            return _error_response(error)
        except _HttpRefusal as refusal:
            return refusal.response

    def _check_http(self, body, headers, backend, http_method):
        """Refuse what the transport does not allow; return the authenticated client."""
        if http_method != "POST":
            raise _HttpRefusal(
                405,
                f"{http_method} is not supported: this stateless server offers no stream "
                "and no session, send each message with POST.",
                [("Allow", "POST")],
            )
        origin = headers.get("origin")
        if origin and origin not in self.allowed_origins:
            raise _HttpRefusal(403, f"Origin {_clip(origin)!r} is not allowed.")
        client = _authenticate(headers, backend)
        if len(body) > self.max_body_bytes:
            raise _HttpRefusal(413, f"The request body exceeds {self.max_body_bytes} bytes.")
        content_type = _media_type(headers.get("content-type", ""))
        if content_type != "application/json":
            raise _HttpRefusal(
                415, f"Content-Type must be application/json, not {content_type or 'missing'!r}."
            )
        if not _accepts_json(headers.get("accept", "")):
            raise _HttpRefusal(406, "The Accept header must allow application/json.")
        return client

    def _answer(self, message, headers, client, backend):
        request_id = _check_envelope(message)
        method = message.get("method")
        if method is None:
            # A client's answer to a server request; this server sends none, so nothing waits.
            return Response(202, [], b"")
        is_request = "id" in message
        if method == "server/discover" and is_request:
            # 2026-07-28 clients probe with it and fall back to initialize on this error.
            raise _ProtocolError(
                METHOD_NOT_FOUND, "Method not found", data=method, request_id=request_id
            )
        if method != "initialize":
            _check_protocol_version(headers, request_id)
        if not is_request:
            return Response(202, [], b"")
        handler = self._methods.get(method)
        if handler is None:
            raise _ProtocolError(
                METHOD_NOT_FOUND, "Method not found", data=method, request_id=request_id
            )
        params = message.get("params", {})
        if not isinstance(params, dict):
            raise _ProtocolError(INVALID_PARAMS, "params must be an object", request_id=request_id)
        try:
            result = handler(params, client, backend)
        except _ProtocolError as error:
            error.request_id = request_id
            raise
        except Exception:
            _logger.exception("MCP %s failed", method)
            raise _ProtocolError(INTERNAL_ERROR, "Internal error", request_id=request_id) from None
        return _json_response(200, {"jsonrpc": "2.0", "id": request_id, "result": result})

    def _initialize(self, params, client, backend):
        requested = params.get("protocolVersion")
        if not isinstance(requested, str):
            raise _ProtocolError(INVALID_PARAMS, "initialize needs a protocolVersion string")
        version = requested if requested in SUPPORTED_PROTOCOL_VERSIONS else LATEST_PROTOCOL_VERSION
        result = {
            "protocolVersion": version,
            "capabilities": {"tools": {"listChanged": False}},
            "serverInfo": dict(self.server_info),
        }
        if self.instructions:
            result["instructions"] = self.instructions
        return result

    def _ping(self, params, client, backend):
        return {}

    def _list_tools(self, params, client, backend):
        offset = _decode_cursor(params.get("cursor"))
        tools = backend.list_tools(client)
        page = tools[offset : offset + self.page_size]
        result = {"tools": [_public_tool(tool) for tool in page]}
        if offset + self.page_size < len(tools):
            result["nextCursor"] = _encode_cursor(offset + self.page_size)
        return result

    def _call_tool(self, params, client, backend):
        name = params.get("name")
        if not isinstance(name, str) or not name:
            raise _ProtocolError(INVALID_PARAMS, "tools/call needs a tool name")
        arguments = params.get("arguments")
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            raise _ProtocolError(INVALID_PARAMS, "tools/call arguments must be an object")
        tool = backend.get_tool(client, name)
        if tool is None:
            raise _ProtocolError(INVALID_PARAMS, f"Unknown tool: {_clip(name)}")
        try:
            problems = validate_arguments(tool.get("inputSchema") or {"type": "object"}, arguments)
        except ValueError as exc:
            _logger.warning("MCP tool %s: %s", name, exc)
            return _tool_error(f"Tool {name!r} is misconfigured and cannot be called.")
        if problems:
            return _tool_error(f"Invalid arguments for tool {name!r}: " + "; ".join(problems))
        try:
            value = backend.call_tool(client, name, arguments)
            return _tool_result(value)
        except ToolFailed as exc:
            return _tool_error(str(exc) or f"Tool {name!r} failed.")
        except Exception:
            _logger.exception("MCP tool %s failed", name)
            return _tool_error(f"Tool {name!r} failed with an internal error.")


class _HttpRefusal(Exception):
    """A transport-level refusal (4xx before any JSON-RPC processing)."""

    def __init__(self, status, reason, extra_headers=()):
        super().__init__(reason)
        body = {"jsonrpc": "2.0", "id": None, "error": {"code": INVALID_REQUEST, "message": reason}}
        self.response = _json_response(status, body, extra_headers)


def validate_arguments(schema, arguments):
    """Check ``arguments`` against the tool's input ``schema``; return the problems found.

    Each problem is one sentence naming the field (``quantity: -1 is less than the minimum
    of 1``), at most :data:`MAX_REPORTED_ARGUMENT_ERRORS` of them, in a stable order. An
    empty list means the arguments are valid. Raises ``ValueError`` when the schema itself is
    not a valid JSON Schema. Schemas without ``$schema`` are read as draft 2020-12, the MCP
    default.
    """
    return argument_errors(validator_for(schema), arguments)


def validator_for(schema):
    """The JSON Schema validator of ``schema`` (kept per schema text). Raises ``ValueError``
    when the schema itself is invalid. A caller that validates many calls against one tool
    keeps it, and skips serialising the schema on every call."""
    return _validator(json.dumps(schema, sort_keys=True))


def argument_errors(validator, arguments):
    """The problems :func:`validate_arguments` reports, with a validator already built."""
    problems = []
    for error in sorted(validator.iter_errors(arguments), key=_error_sort_key):
        path = ".".join(str(part) for part in error.absolute_path)
        message = _clip(error.message)
        problems.append(f"{path}: {message}" if path else message)
        if len(problems) == MAX_REPORTED_ARGUMENT_ERRORS:
            break
    return problems


def check_input_schema(schema):
    """Why ``schema`` cannot be a tool's input schema (a sentence), or None when it can.

    MCP requires a JSON Schema object whose ``type`` is ``"object"``.
    """
    if not isinstance(schema, dict):
        return "it must be a JSON object"
    if schema.get("type") != "object":
        return 'its "type" must be "object"'
    try:
        _validator(json.dumps(schema, sort_keys=True))
    except ValueError as exc:
        return str(exc)
    return None


@lru_cache(maxsize=256)
def _validator(schema_json):
    # jsonschema comes with the mcp SDK; imported on first use to keep addon import light.
    from jsonschema import SchemaError, validators

    schema = json.loads(schema_json)
    validator_class = validators.validator_for(schema, default=validators.Draft202012Validator)
    try:
        validator_class.check_schema(schema)
    except SchemaError as exc:
        raise ValueError(f"invalid input schema: {exc.message}") from None
    return validator_class(schema)


def _error_sort_key(error):
    return [str(part) for part in error.absolute_path], error.message


def _authenticate(headers, backend):
    match = _BEARER.fullmatch(headers.get("authorization", ""))
    client = None
    if match:
        try:
            client = backend.authenticate(match.group(1))
        except Unauthorized:
            client = None
        except RateLimited as exc:
            raise _HttpRefusal(429, str(exc), [("Retry-After", str(exc.retry_after))]) from None
        except Exception:
            _logger.exception("MCP client authentication failed")
            raise _HttpRefusal(500, "Internal error") from None
    if client is None:
        raise _HttpRefusal(401, UNAUTHORIZED_MESSAGE, [("WWW-Authenticate", 'Bearer realm="mcp"')])
    return client


def _parse(body):
    try:
        message = json.loads(body)
    except (ValueError, RecursionError):
        # ValueError covers bad JSON and bad UTF-8; RecursionError absurdly deep nesting.
        raise _ProtocolError(PARSE_ERROR, "Parse error: the body is not JSON", status=400) from None
    if isinstance(message, list):
        raise _ProtocolError(
            INVALID_REQUEST,
            "Batch requests are not supported (MCP 2025-06-18 removed JSON-RPC batching): "
            "send one message per request.",
            status=400,
        )
    return message


def _check_envelope(message):
    """Check the JSON-RPC 2.0 shape of ``message``; return its id (``None`` for notifications)."""
    if not isinstance(message, dict):
        raise _ProtocolError(INVALID_REQUEST, "Invalid Request: not a JSON object", status=400)
    request_id = message.get("id")
    if "id" in message and (isinstance(request_id, bool) or not isinstance(request_id, (str, int))):
        raise _ProtocolError(
            INVALID_REQUEST, "Invalid Request: id must be a string or an integer", status=400
        )
    if message.get("jsonrpc") != "2.0":
        raise _ProtocolError(
            INVALID_REQUEST,
            'Invalid Request: jsonrpc must be "2.0"',
            status=400,
            request_id=request_id,
        )
    method = message.get("method")
    if "method" in message and (not isinstance(method, str) or not method):
        raise _ProtocolError(
            INVALID_REQUEST,
            "Invalid Request: method must be a non-empty string",
            status=400,
            request_id=request_id,
        )
    if method is None and not ("id" in message and ("result" in message or "error" in message)):
        raise _ProtocolError(
            INVALID_REQUEST,
            "Invalid Request: neither a request, a notification nor a response",
            status=400,
            request_id=request_id,
        )
    return request_id


def _check_protocol_version(headers, request_id):
    # Without the header the client predates it; the transport says to assume a version then.
    version = headers.get("mcp-protocol-version")
    if version is not None and version not in SUPPORTED_PROTOCOL_VERSIONS:
        raise _ProtocolError(
            INVALID_REQUEST,
            f"Unsupported MCP-Protocol-Version {_clip(version)!r}; supported: "
            + ", ".join(SUPPORTED_PROTOCOL_VERSIONS),
            status=400,
            request_id=request_id,
        )


def _media_type(value):
    return value.split(";", 1)[0].strip().lower()


def _accepts_json(accept):
    """True when the Accept header allows application/json (a missing header allows all)."""
    if not accept.strip():
        return True
    for media_range in accept.split(","):
        media_type, *parameters = (part.strip() for part in media_range.split(";"))
        if media_type.lower() not in _JSON_TYPES:
            continue
        quality = next((p[2:].strip() for p in parameters if p.lower().startswith("q=")), "1")
        try:
            if float(quality) > 0:
                return True
        except ValueError:
            continue
    return False


def _encode_cursor(offset):
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def _decode_cursor(cursor):
    if cursor is None:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))["offset"]
    except (AttributeError, UnicodeError, binascii.Error, ValueError, TypeError, KeyError):
        offset = None
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise _ProtocolError(INVALID_PARAMS, "Invalid cursor")
    return offset


def _public_tool(tool):
    public = {key: tool[key] for key in TOOL_FIELDS if key in tool}
    public.setdefault("inputSchema", {"type": "object"})
    return public


def _tool_result(value):
    """The MCP result of a successful call: the value as JSON text plus structured content."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    structured = value if isinstance(value, dict) else {"result": value}
    return {
        "content": [{"type": "text", "text": text}],
        "structuredContent": structured,
        "isError": False,
    }


def _tool_error(message):
    return {"content": [{"type": "text", "text": message}], "isError": True}


def _clip(text, limit=200):
    text = str(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _json_response(status, payload, extra_headers=()):
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(status, [("Content-Type", "application/json"), *extra_headers], body)


def _error_response(error):
    rpc_error = {"code": error.code, "message": error.message}
    if error.data is not None:
        rpc_error["data"] = error.data
    payload = {"jsonrpc": "2.0", "id": error.request_id, "error": rpc_error}
    return _json_response(error.status, payload)


__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "LATEST_PROTOCOL_VERSION",
    "SUPPORTED_PROTOCOL_VERSIONS",
    "MCPServerBackend",
    "MCPServerProtocol",
    "RateLimited",
    "Response",
    "ToolFailed",
    "Unauthorized",
    "validate_arguments",
]
