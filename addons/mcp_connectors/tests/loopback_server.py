# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""What the tests' fakes of outside services share (no Odoo import): an HTTP server on
127.0.0.1, the requests it received, and the JSON answers it sends.

A fake subclasses :class:`LoopbackServer`, calls :meth:`LoopbackServer._serve_on_loopback` at
the end of its ``__init__`` and answers each :class:`Received` request in :meth:`_respond`
with an :class:`Answer`.
"""

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    query: dict
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)

    def form(self):
        return {key: values[0] for key, values in parse_qs(self.body.decode()).items()}


@dataclass(frozen=True)
class Answer:
    status: int = 200
    payload: object = None
    headers: dict = field(default_factory=dict)
    # never answer (until the fake stops): the client's read timeout fires
    hold: bool = False


class LoopbackServer:
    """Running once made (``with Fake() as fake:``, or ``stop()`` it); ``url`` is where to
    send requests."""

    def _serve_on_loopback(self, path=""):
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

    def stop(self):
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _parse_query(self, query):
        """The query string as the fake reads it (lists of values by default)."""
        return parse_qs(query, keep_blank_values=True)

    def _respond(self, received):
        """The :class:`Answer` to a request (recording it is the fake's)."""
        raise NotImplementedError

    def _serve(self, handler, method):
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        received = Received(
            method,
            parts.path,
            self._parse_query(parts.query),
            dict(handler.headers),
            handler.rfile.read(length) if length else b"",
        )
        answer = self._respond(received)
        if answer.hold:
            self._stopping.wait()
            return
        content = b"" if answer.payload is None else json.dumps(answer.payload).encode()
        handler.send_response(answer.status)
        for name, value in answer.headers.items():
            handler.send_header(name, value)
        if content:
            handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(content)))
        handler.end_headers()
        handler.wfile.write(content)

    def _handler_class(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                fake._serve(self, "GET")

            def do_POST(self):
                fake._serve(self, "POST")

            def log_message(self, *args):
                pass  # the tests read the recorded requests; no access log on stderr

        return Handler
