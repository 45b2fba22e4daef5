# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""A custom channel's reply endpoint on 127.0.0.1, for the tests (no Odoo import).

It records every request it gets (path, headers, raw body) and answers each with the next
answer the test queued (by default 200 with a ``message_id``). Shared by the addon's Odoo
tests and the plain tier (``tests/test_channels.py``).
"""

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)

    def verified_json(self, secret, verify):
        """The body, once its signature is checked with ``verify`` (the integrator's
        ``signing.verify``, passed in: this module imports nothing of the addons)."""
        verify(
            [secret],
            self.body,
            self.headers["X-MCP-Timestamp"],
            self.headers["X-MCP-Signature"],
            time.time(),
        )
        return self.json()


@dataclass(frozen=True)
class Answer:
    status: int = 200
    payload: object = None
    headers: dict = field(default_factory=dict)
    # never answer (until the receiver stops): the sender's read timeout fires
    hold: bool = False


class ChannelReceiver:
    """Running once made (``with ChannelReceiver() as receiver:``, or ``stop()`` it when
    done); ``url`` is where to post."""

    def __init__(self, path="/replies"):
        self.requests = []
        self._answers = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_port}{path}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def answer(self, status=200, payload=None, headers=None, hold=False):
        """Queue the answer to the next request."""
        with self._lock:
            self._answers.append(Answer(status, payload, dict(headers or {}), hold))

    def stop(self):
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _next_answer(self):
        with self._lock:
            if self._answers:
                return self._answers.pop(0)
            return Answer(200, {"message_id": f"reply-{len(self.requests)}"})

    def _handler_class(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.requests.append(Received(self.path, dict(self.headers), body))
                answer = receiver._next_answer()
                if answer.hold:
                    receiver._stopping.wait()
                    return
                content = b"" if answer.payload is None else json.dumps(answer.payload).encode()
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                if content:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, *args):
                pass  # the tests read ``requests``; no access log on stderr

        return Handler
