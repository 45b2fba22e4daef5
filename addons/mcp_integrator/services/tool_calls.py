"""Retry policy and error classes for tool calls made through the integrator.

Plain Python: the Odoo model ``mcp.integrator`` routes ``call_tool`` to a provider and runs
the provider call through :func:`call_with_retry`. Providers signal what went wrong by raising
one of the error classes below; anything else they raise is classified here once, so the
caller only ever sees :class:`ToolError` subclasses.
"""

import functools
import json
import random
import re
import time
from dataclasses import dataclass

from .keys import IDENTIFIER


class ToolError(Exception):
    """A tool call failed. ``attempts`` is how many times the call was tried."""

    retryable = False

    def __init__(self, message, *, attempts=0):
        super().__init__(message)
        self.attempts = attempts


class TransientToolError(ToolError):
    """A failure worth retrying: timeout, connection reset, 429/5xx from the remote side."""

    retryable = True


class PermanentToolError(ToolError):
    """A failure that will not go away by retrying: bad arguments, 4xx, a broken result."""


class ToolUnavailable(ToolError):
    """The remote service is down or did not answer in time.

    Not retried by :func:`call_with_retry`: the provider already repeated what was safe to
    repeat (a call that may have reached the server is sent twice only for read-only or
    idempotent tools). A queued job may try again later.
    """


def is_error_result(result):
    """Whether ``result`` is an MCP tool result that reports a failure (``isError``)."""
    return isinstance(result, dict) and result.get("isError") is True


class ToolNotFound(PermanentToolError):
    """No provider offers the tool for this tenant."""


class ToolRefused(PermanentToolError):
    """The call is not allowed (tenant inactive or of another company, tool not allowed)."""


def classify(exc):
    """Return ``exc`` as a :class:`ToolError`: timeouts and connection errors are transient,
    any other unexpected exception is permanent (retrying a bug does not fix it)."""
    if isinstance(exc, ToolError):
        return exc
    message = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, (TimeoutError, ConnectionError)):
        return TransientToolError(message)
    return PermanentToolError(message)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded attempts with exponential backoff and jitter.

    The delay before retry ``n`` (1-based) is ``min(max_delay, base_delay * 2 ** (n - 1))``,
    of which the ``jitter`` fraction is randomised, so that workers retrying the same remote
    service do not hammer it in lockstep.
    """

    max_attempts: int = 3
    base_delay: float = 0.2
    max_delay: float = 2.0
    jitter: float = 0.5

    def __post_init__(self):
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("delays must not be negative")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be between 0 and 1")

    def delay(self, retry_number, rand=random.random):
        """Seconds to wait before retry ``retry_number`` (1 for the first retry)."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (retry_number - 1))
        return ceiling * (1 - self.jitter) + ceiling * self.jitter * rand()


DEFAULT_POLICY = RetryPolicy()


def call_with_retry(func, policy=DEFAULT_POLICY, *, sleep=time.sleep, rand=random.random):
    """Call ``func()`` until it succeeds, retrying transient failures within ``policy``.

    Returns ``(result, attempts)``. Raises a :class:`ToolError` (with ``attempts`` set) when a
    permanent failure occurs or when the transient ones outlast the allowed attempts.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            return func(), attempt
        except Exception as exc:  # classified below, then re-raised as a ToolError
            error = classify(exc)
            error.attempts = attempt
            if not error.retryable or attempt >= policy.max_attempts:
                if error is exc:
                    raise
                raise error from exc
        sleep(policy.delay(attempt, rand))


# One encoder for the process: json.dumps with options builds a new encoder on every call.
_STRICT_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def arguments_json(arguments):
    """The arguments as canonical JSON (sorted keys, no spaces): equal arguments, equal text.

    Strict: raises TypeError or ValueError for anything JSON cannot carry. The integrator makes
    it once per call, to check the arguments and to key their cached result.
    """
    return _STRICT_CANONICAL.encode(arguments)


def cache_resource(tool, arguments_text):
    """``(resource_type, resource_id)`` under which a tool result is cached.

    ``arguments_text`` is :func:`arguments_json` of the arguments. The resource type is the
    tool name, so that ``invalidate(tenant, "tools", <tool>)`` drops its results; a name that
    is not a valid key identifier is lower-cased with the other characters turned into ``_``.
    The resource id holds the exact name and the arguments (the key helper hashes it), so two
    tools whose names normalise alike never share a result. The arguments come last, after a
    newline that their JSON text cannot contain, so no two (tool, arguments) pairs share an id.
    """
    return _resource_type(tool), f"{tool}\n{arguments_text}"


@functools.lru_cache(maxsize=1024)
def _resource_type(tool):
    # kept per process: a cached tool result should not pay for a regex
    valid = tool if IDENTIFIER.fullmatch(tool) else re.sub(r"[^a-z0-9_.-]", "_", tool.lower())
    return valid[:64]
