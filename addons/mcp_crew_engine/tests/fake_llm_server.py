"""An OpenAI-compatible chat-completions server on 127.0.0.1, the test double of an LLM provider.

litellm's ``openai/<model>`` provider with ``api_base=server.api_base`` talks to it over real
HTTP (``POST /v1/chat/completions``). Each request is answered by the next scripted
:class:`Reply` in the queue, or, when the queue is empty, by ``responder(body)`` when one is
given; with neither, the server answers 500 so that an unscripted call fails loudly.
Replies can be answers, tool calls (well-formed or not), error statuses with ``Retry-After``,
slow answers and bodies without ``usage``. Every request is recorded in ``server.requests``.

No project import: it stands for the provider only, at the HTTP edge.
"""

import contextlib
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHAT_PATH = "/v1/chat/completions"


@dataclass
class Reply:
    """One scripted HTTP answer: ``body`` is a dict sent as JSON, or raw bytes sent as is."""

    status: int = 200
    body: object = None
    headers: dict = field(default_factory=dict)
    #: seconds the server waits before answering (a slow provider)
    delay: float = 0.0


def _usage(prompt_tokens, completion_tokens):
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _completion(message, finish_reason, usage, model):
    body = {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
    }
    if usage is not None:
        body["usage"] = usage
    return body


def answer(content, *, prompt_tokens=100, completion_tokens=20, usage=True, model="fake-model"):
    """A final text answer. ``usage=False`` leaves ``usage`` out, as some providers do."""
    message = {"role": "assistant", "content": content}
    tokens = _usage(prompt_tokens, completion_tokens) if usage else None
    return Reply(body=_completion(message, "stop", tokens, model))


def tool_calls(*calls, content=None, prompt_tokens=100, completion_tokens=20, model="fake-model"):
    """An answer asking for tools. Each call is ``(name, arguments)``: a dict of arguments is
    sent as JSON text, a string is sent verbatim (so ``"{not json"`` makes invalid arguments).
    """
    message = {
        "role": "assistant",
        "content": content,
        "tool_calls": [
            {
                "id": f"call_fake_{index}",
                "type": "function",
                "function": {
                    "name": name,
                    "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
                },
            }
            for index, (name, arguments) in enumerate(calls)
        ],
    }
    tokens = _usage(prompt_tokens, completion_tokens)
    return Reply(body=_completion(message, "tool_calls", tokens, model))


def error(status, message="scripted failure", *, retry_after=None):
    """An OpenAI-style error answer; ``retry_after`` (seconds) adds a ``Retry-After`` header."""
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    kind = "rate_limit_error" if status == 429 else "server_error"
    body = {"error": {"message": message, "type": kind, "code": str(status)}}
    return Reply(status=status, body=body, headers=headers)


def slow(reply, seconds):
    """``reply`` sent after ``seconds``."""
    reply.delay = seconds
    return reply


class FakeLLMServer:
    """Start with ``with FakeLLMServer(replies) as server:``; point litellm at ``server.api_base``.

    ``replies`` is the initial queue (more can be added with :meth:`script`); ``responder``
    answers requests once the queue is empty, as a function of the request body.
    """

    def __init__(self, replies=(), responder=None):
        self.replies = deque(replies)
        self.responder = responder
        #: one dict per request: path, authorization header, parsed JSON body (or None)
        self.requests = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def api_base(self):
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def script(self, *replies):
        """Queue more replies, answered in order."""
        with self._lock:
            self.replies.extend(replies)

    def reset(self, replies=(), responder=None):
        """Forget the recorded requests and script a new conversation."""
        with self._lock:
            self.requests.clear()
            self.replies = deque(replies)
            self.responder = responder

    @property
    def chat_requests(self):
        """The parsed bodies of the chat-completion requests received, in order."""
        return [request["body"] for request in self.requests if request["path"] == CHAT_PATH]

    def _next_reply(self, path, body):
        with self._lock:
            if path != CHAT_PATH:
                return error(404, f"no route {path}")
            if body is None:
                return error(400, "the request body is not JSON")
            if self.replies:
                return self.replies.popleft()
            responder = self.responder
        if responder is None:
            return error(500, "the fake LLM server has no scripted reply left")
        try:
            return responder(body)
        except Exception as exc:  # noqa: BLE001 - a broken script answers 500, loudly
            return error(500, f"the responder failed: {type(exc).__name__}: {exc}")

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real providers answer
            # headers and body leave in two writes: without this, Nagle's algorithm holds the
            # body until the client's delayed ACK, 40 ms per request on a kept-alive connection
            disable_nagle_algorithm = True

            def do_POST(self):  # the name http.server calls
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                with server._lock:
                    server.requests.append(
                        {
                            "path": self.path,
                            "authorization": self.headers.get("Authorization"),
                            "body": body,
                        }
                    )
                reply = server._next_reply(self.path, body)
                if reply.delay:
                    time.sleep(reply.delay)
                payload = (
                    reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                )
                # a client that timed out has hung up before a slow answer is written
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)

            def log_message(self, *args):
                """Silence the default stderr access log."""

        return Handler
