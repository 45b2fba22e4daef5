"""Remote MCP client for Odoo's synchronous code (plain Python, no Odoo import).

The ``mcp`` SDK is async only. Each process runs one event-loop thread (a "portal"), created
lazily on first use and again after a fork, and keeps one client session per server open in it:
a warm call costs ~2 ms against ~30 ms when every call connects. ``mcp`` is imported on first
use only, so importing this module stays cheap.
"""

import atexit
import concurrent.futures
import logging
import os
import random
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

_logger = logging.getLogger(__name__)

TRANSPORTS = ("streamable_http", "sse", "stdio")
MODES = ("auto", "legacy")
# Guards against a server whose cursors never end.
MAX_TOOL_PAGES = 100
# Extra wait on the calling thread beyond the server timeout before giving up on the loop.
_GRACE_SECONDS = 5.0
_CLOSE_WAIT_SECONDS = 5.0


class McpClientError(Exception):
    """Base of every error this client raises."""


class McpConfigError(McpClientError, ValueError):
    """The server specification is invalid."""


class McpTransportError(McpClientError):
    """The server could not be reached or the connection broke.

    ``delivered`` is False when the request certainly did not reach the server (connect failed,
    session gone), so sending it again is safe whatever the tool does.
    """

    def __init__(self, message, delivered=True):
        super().__init__(message)
        self.delivered = delivered


class McpCircuitOpen(McpTransportError):
    """Too many consecutive failures: calls fail fast until ``retry_at`` (``time.monotonic``)."""

    def __init__(self, message, retry_at):
        super().__init__(message, delivered=False)
        self.retry_at = retry_at


class McpTimeout(McpClientError):
    """The server did not answer within the server's timeout."""


class McpProtocolError(McpClientError):
    """The server answered with a JSON-RPC error or with something that is not MCP."""

    def __init__(self, message, code=None):
        super().__init__(message)
        self.code = code


def _frozen_pairs(value, what):
    if value is None:
        return ()
    items = value.items() if isinstance(value, Mapping) else value
    pairs = tuple((str(k), str(v)) for k, v in items)
    if any(not k for k, _v in pairs):
        raise McpConfigError(f"Empty {what} name.")
    return tuple(sorted(pairs))


@dataclass(frozen=True)
class ServerSpec:
    """How to reach one MCP server. Hashable: the session pool keys on it.

    ``headers`` (e.g. Authorization, built by the caller from a credential) and ``env`` may hold
    secrets: they are kept out of ``repr`` and out of every error message.
    ``command`` is the argv of an admin-configured stdio server (executable first); it is
    executed directly, never through a shell.
    """

    transport: str
    url: str = ""
    command: tuple = ()
    env: tuple = field(default=(), repr=False)
    headers: tuple = field(default=(), repr=False)
    timeout: float = 30.0
    mode: str = "auto"

    def __post_init__(self):
        object.__setattr__(self, "command", tuple(str(part) for part in self.command or ()))
        object.__setattr__(self, "env", _frozen_pairs(self.env, "environment variable"))
        object.__setattr__(self, "headers", _frozen_pairs(self.headers, "header"))
        self.validate()

    def validate(self):
        if self.transport not in TRANSPORTS:
            raise McpConfigError(
                f"Unknown MCP transport {self.transport!r}; "
                f"expected one of {', '.join(TRANSPORTS)}."
            )
        if self.mode not in MODES:
            raise McpConfigError(f"Unknown MCP connect mode {self.mode!r}.")
        if not isinstance(self.timeout, int | float) or not 0 < self.timeout <= 3600:
            raise McpConfigError("The MCP server timeout must be between 0 and 3600 seconds.")
        if self.transport == "stdio":
            if not self.command or not self.command[0]:
                raise McpConfigError("A stdio MCP server needs a command (a list of arguments).")
            if self.url or self.headers:
                raise McpConfigError("A stdio MCP server takes no URL or HTTP headers.")
            return
        if self.command or self.env:
            raise McpConfigError("An HTTP MCP server takes no command or environment.")
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise McpConfigError("The MCP server URL must be an http:// or https:// URL.")

    @property
    def label(self):
        """Names the server in messages: no credentials, query string or arguments."""
        if self.transport == "stdio":
            return f"stdio:{os.path.basename(self.command[0])}"
        parts = urlsplit(self.url)
        host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        return f"{parts.scheme}://{host}{parts.path}"

    def redact(self, text):
        """``text`` with every header and environment value masked."""
        # Longest first: a value containing another one is masked whole.
        values = sorted({value for _name, value in self.headers + self.env}, key=len, reverse=True)
        for value in values:
            if len(value) >= 4:
                text = text.replace(value, "***")
        return text


@dataclass(frozen=True)
class ToolResult:
    """A ``tools/call`` outcome. ``is_error`` means the tool itself reported a failure."""

    is_error: bool
    content: list
    structured_content: dict | None = None

    @property
    def text(self):
        """The text parts of ``content`` joined, as a model would read them."""
        return "\n".join(part["text"] for part in self.content if part.get("type") == "text")


class _Portal:
    """One event-loop thread per process, (re)created lazily, so it survives a fork.

    Built from a plain thread rather than ``start_blocking_portal()``: that context manager's
    finaliser waits for its loop, which a forked child would do forever.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._pid = None
        self._portal = None
        self._thread = None

    def get(self):
        with self._lock:
            if self._pid != os.getpid():
                # After a fork the parent's loop thread does not exist here: forget it.
                self._portal, self._thread = self._start()
                self._pid = os.getpid()
            return self._portal

    @staticmethod
    def _start():
        import anyio
        from anyio.from_thread import BlockingPortal

        started = concurrent.futures.Future()

        async def serve():
            async with BlockingPortal() as portal:
                started.set_result(portal)
                await portal.sleep_until_stopped()

        def run():
            try:
                anyio.run(serve, backend="asyncio")
            except BaseException as exc:
                if not started.done():
                    started.set_exception(exc)
                raise

        thread = threading.Thread(target=run, name="mcp-client-loop", daemon=True)
        thread.start()
        return started.result(), thread

    def stop(self):
        with self._lock:
            if self._pid == os.getpid():
                self._portal.call(self._portal.stop, True)
                self._thread.join(_CLOSE_WAIT_SECONDS)
            self._pid = self._portal = self._thread = None


_PORTAL = _Portal()


class _Session:
    """One open ``mcp.Client``, held by a task on the portal loop until ``close``."""

    def __init__(self, spec, portal):
        self.spec = spec
        self.portal = portal
        self.client = None
        self._stop = None
        self._holder = None

    def open(self):
        ready = concurrent.futures.Future()
        self._holder = self.portal.start_task_soon(self._hold, ready)
        try:
            self.client, self._stop = ready.result(timeout=self.spec.timeout + _GRACE_SECONDS)
        except concurrent.futures.TimeoutError:
            self._holder.cancel()
            raise TimeoutError(f"connecting took longer than {self.spec.timeout:g}s") from None

    async def _hold(self, ready):
        import anyio

        try:
            async with self._client() as client:
                stop = anyio.Event()
                ready.set_result((client, stop))
                await stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            # Otherwise the connection broke after it was opened: the calls report that.

    def _client(self):
        import httpx2
        from mcp import Client, StdioServerParameters, stdio_client
        from mcp.client.sse import sse_client
        from mcp.client.streamable_http import streamable_http_client
        from mcp.types import Implementation

        spec = self.spec
        if spec.transport == "stdio":
            params = StdioServerParameters(
                command=spec.command[0], args=list(spec.command[1:]), env=dict(spec.env)
            )
            # The server's stderr goes to the process's real stderr (its diagnostics).
            target = stdio_client(params, errlog=sys.__stderr__)
        elif spec.transport == "sse":
            target = sse_client(spec.url, headers=dict(spec.headers), timeout=spec.timeout)
        else:
            http = httpx2.AsyncClient(headers=dict(spec.headers), timeout=spec.timeout)
            target = _owning_http_client(streamable_http_client(spec.url, http_client=http), http)
        return Client(
            target,
            mode=spec.mode,
            read_timeout_seconds=spec.timeout,
            cache=None,
            client_info=Implementation(name="odoo-mcp-connectors", version="1.0"),
        )

    def run(self, make_coroutine):
        """Run ``make_coroutine(client)`` on the loop, bounded by the server timeout."""

        async def bounded():
            import anyio

            with anyio.fail_after(self.spec.timeout):
                return await make_coroutine(self.client)

        future = self.portal.start_task_soon(bounded)
        try:
            return future.result(timeout=self.spec.timeout + _GRACE_SECONDS)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError from None

    @property
    def alive(self):
        return self._holder is not None and not self._holder.done()

    def close(self):
        if self._stop is None:
            if self._holder is not None:
                self._holder.cancel()
            return
        try:
            self.portal.call(self._stop.set)
            self._holder.result(timeout=_CLOSE_WAIT_SECONDS)
        except Exception as exc:  # noqa: BLE001 - closing a broken session never hides the error
            _logger.debug("Closing the MCP session to %s: %s", self.spec.label, type(exc).__name__)


def _owning_http_client(transport, http):
    """The streamable HTTP transport, closing our ``httpx2`` client with it (the SDK does not)."""
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def owned():
        async with http, transport as streams:
            yield streams

    return owned()


@dataclass
class _Circuit:
    failures: int = 0
    open_until: float = 0.0
    trial_running: bool = False


class McpClientPool:
    """Persistent sessions and circuits per server, shared by all threads of a process.

    ``key`` (e.g. ``(account_id, server_code)``) names a server; a new ``ServerSpec`` under the
    same key (new URL, rotated token) replaces its session.
    """

    def __init__(self, failure_threshold=5, cooldown=30.0, retries=2, backoff=0.2):
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self.retries = retries
        self.backoff = backoff
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._sessions = {}
        self._session_locks = {}
        self._circuits = {}

    # -- public API ---------------------------------------------------------------------------

    def list_tools(self, spec, key=None):
        """Every tool of the server (all pages) as plain dicts. Read-only, so retried."""

        async def fetch(client):
            return await client.list_tools(cursor=cursor, cache_mode="bypass")

        tools, seen = [], set()
        cursor = None
        for _page in range(MAX_TOOL_PAGES):
            page = self._request(spec, key, fetch, "tools/list", retry=True)
            tools.extend(_tool_dict(tool) for tool in page.tools)
            cursor = page.next_cursor
            if not cursor:
                return tools
            if cursor in seen:
                raise McpProtocolError(f"MCP server {spec.label} repeated a tools/list cursor.")
            seen.add(cursor)
        raise McpProtocolError(
            f"MCP server {spec.label} returned more than {MAX_TOOL_PAGES} pages of tools."
        )

    def ping(self, spec, key=None):
        """Round trip in ms of one ``tools/list`` page, connecting first when needed.

        Not the MCP ``ping`` request: servers of the 2026-07-28 era answer it "method not
        found", while every MCP server lists its tools.
        """

        async def ping(client):
            return await client.list_tools(cache_mode="bypass")

        started = time.perf_counter()
        self._request(spec, key, ping, "health check", retry=True)
        return (time.perf_counter() - started) * 1000

    def call_tool(self, spec, name, arguments=None, key=None, retry=False):
        """Call a tool. A failure the tool reports comes back as ``ToolResult(is_error=True)``.

        ``retry=True`` only for tools the caller knows are read-only or idempotent: a call whose
        request may have reached the server is otherwise never sent twice.
        """

        async def call(client):
            return await client.call_tool(name, arguments or {})

        result = self._request(spec, key, call, f"tools/call {name!r}", retry=retry)
        return ToolResult(
            is_error=bool(result.is_error),
            content=[
                part.model_dump(by_alias=True, mode="json", exclude_none=True)
                for part in result.content
            ],
            structured_content=result.structured_content,
        )

    def circuit_state(self, spec, key=None):
        """``"closed"``, ``"open"`` or ``"half_open"`` (cooldown over, next call is the trial)."""
        circuit = self._circuits.get(self._key(spec, key))
        if circuit is None or circuit.failures < self.failure_threshold:
            return "closed"
        return "open" if time.monotonic() < circuit.open_until else "half_open"

    def close(self):
        """Close every session (at exit, or when the configuration changes)."""
        with self._lock:
            sessions = list(self._sessions.values()) if self._pid == os.getpid() else []
            self._sessions.clear()
        for session in sessions:
            session.close()

    # -- internals ----------------------------------------------------------------------------

    @staticmethod
    def _key(spec, key):
        return spec if key is None else key

    def _check_fork(self):
        # Sessions and circuits of the parent belong to its loop thread: start afresh.
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._sessions = {}
            self._session_locks = {}
            self._circuits = {}

    def _request(self, spec, key, make_coroutine, what, retry):
        if not isinstance(spec, ServerSpec):
            raise McpConfigError("spec must be a ServerSpec.")
        key = self._key(spec, key)
        attempt = 0
        while True:
            self._enter_circuit(spec, key)
            try:
                try:
                    session = self._session(spec, key)
                except Exception as exc:  # noqa: BLE001 - every failure is translated
                    raise _undelivered(_translate(exc, spec, what)) from None
                result = session.run(make_coroutine)
            except Exception as exc:  # noqa: BLE001 - every failure is translated
                error = _translate(exc, spec, what)
                failed = _counts_as_failure(error)
                if failed:
                    self._drop_session(key, spec)
                self._record(key, failed)
                # An undelivered request is always safe to repeat, a sent one only when the
                # caller says the tool is read-only or idempotent.
                repeatable = retry or getattr(error, "delivered", True) is False
                if (
                    attempt >= self.retries
                    or not repeatable
                    or not isinstance(error, McpTransportError | McpTimeout)
                    or self.circuit_state(spec, key) != "closed"
                ):
                    raise error from None
                attempt += 1
                delay = self.backoff * 2 ** (attempt - 1)
                time.sleep(delay * random.uniform(0.5, 1.0))
                continue
            self._record(key, False)
            return result

    def _session(self, spec, key):
        with self._lock:
            self._check_fork()
            lock = self._session_locks.setdefault(key, threading.Lock())
        with lock:  # one connect per server, the other threads wait for it
            session = self._sessions.get(key)
            if session is not None and session.spec == spec and session.alive:
                return session
            if session is not None:
                self._drop_session(key, session.spec)
            session = _Session(spec, _PORTAL.get())
            session.open()
            self._sessions[key] = session
            return session

    def _drop_session(self, key, spec):
        with self._lock:
            session = self._sessions.get(key)
            if session is None or session.spec != spec:
                return
            del self._sessions[key]
        session.close()

    def _enter_circuit(self, spec, key):
        with self._lock:
            self._check_fork()
            circuit = self._circuits.get(key)
            if circuit is None or circuit.failures < self.failure_threshold:
                return
            now = time.monotonic()
            if now < circuit.open_until or circuit.trial_running:
                retry_at = max(circuit.open_until, now)
                raise McpCircuitOpen(
                    f"MCP server {spec.label} is unavailable after {circuit.failures} consecutive "
                    f"failures; calls fail fast for {retry_at - now:.1f}s more.",
                    retry_at,
                )
            circuit.trial_running = True

    def _record(self, key, failed):
        with self._lock:
            circuit = self._circuits.setdefault(key, _Circuit())
            circuit.trial_running = False
            if not failed:
                circuit.failures = 0
                return
            circuit.failures += 1
            if circuit.failures >= self.failure_threshold:
                circuit.open_until = time.monotonic() + self.cooldown


def _counts_as_failure(error):
    """A caller's mistake (unknown method, bad params) says nothing about the server's health."""
    from mcp.types import INVALID_PARAMS, METHOD_NOT_FOUND

    if isinstance(error, McpProtocolError):
        return error.code not in (INVALID_PARAMS, METHOD_NOT_FOUND)
    return True


def _undelivered(error):
    if isinstance(error, McpTransportError):
        error.delivered = False
    return error


def _translate(exc, spec, what):
    """Map an SDK / transport exception to ours, with a message free of secrets."""
    import httpx2
    from mcp import MCPError
    from mcp.types import CONNECTION_CLOSED, INVALID_REQUEST, REQUEST_TIMEOUT
    from pydantic import ValidationError

    if isinstance(exc, McpClientError):
        return exc
    # Task groups wrap a single failure in an exception group.
    while len(getattr(exc, "exceptions", ())) == 1:
        exc = exc.exceptions[0]
    prefix = f"MCP server {spec.label}, {what}:"
    detail = spec.redact(str(exc)) or type(exc).__name__
    if isinstance(exc, TimeoutError):
        return McpTimeout(f"{prefix} no answer within {spec.timeout:g}s.")
    if isinstance(exc, MCPError):
        if exc.code == REQUEST_TIMEOUT:
            return McpTimeout(f"{prefix} no answer within {spec.timeout:g}s.")
        if exc.code == CONNECTION_CLOSED:
            return McpTransportError(f"{prefix} the connection was closed ({detail}).")
        if exc.code == INVALID_REQUEST and "Session terminated" in str(exc):
            # The server forgot the session (it restarted): the request was not processed.
            return McpTransportError(f"{prefix} the server ended the session.", delivered=False)
        return McpProtocolError(f"{prefix} error {exc.code}: {detail}", code=exc.code)
    if isinstance(exc, httpx2.TimeoutException):
        return McpTimeout(f"{prefix} no answer within {spec.timeout:g}s.")
    if isinstance(exc, httpx2.HTTPError | OSError | EOFError):
        return McpTransportError(f"{prefix} {type(exc).__name__}: {detail}")
    if isinstance(exc, ValidationError):
        return McpProtocolError(
            f"{prefix} the answer is not valid MCP ({exc.error_count()} errors)."
        )
    return McpProtocolError(f"{prefix} {type(exc).__name__}: {detail}")


def _tool_dict(tool):
    annotations = tool.annotations
    return {
        "name": tool.name,
        "description": tool.description or "",
        "input_schema": tool.input_schema,
        "annotations": {
            "read_only": bool(annotations and annotations.read_only_hint),
            # The spec's defaults: a tool is destructive and open-world unless it says otherwise.
            "destructive": _hint(annotations, "destructive_hint", True),
            "idempotent": _hint(annotations, "idempotent_hint", False),
            "open_world": _hint(annotations, "open_world_hint", True),
        },
    }


def _hint(annotations, name, default):
    value = getattr(annotations, name, None) if annotations is not None else None
    return default if value is None else bool(value)


_POOL = McpClientPool()


def shared_pool():
    """The process-wide pool used by the module-level functions."""
    return _POOL


def list_tools(spec, key=None):
    return _POOL.list_tools(spec, key=key)


def call_tool(spec, name, arguments=None, key=None, retry=False):
    return _POOL.call_tool(spec, name, arguments, key=key, retry=retry)


def ping(spec, key=None):
    return _POOL.ping(spec, key=key)


def shutdown():
    """Close the shared pool's sessions and stop the loop thread (at process exit)."""
    _POOL.close()
    _PORTAL.stop()


atexit.register(shutdown)
