# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""A real OAuth 2.0 token endpoint on 127.0.0.1, the test double of an external provider.

It issues single-use refresh tokens (each renewal revokes the one presented and returns a new
one), counts renewals and rejects a reused refresh token with ``invalid_grant``, as strict
providers do. No Odoo import: both the Odoo tests and the plain tests use it.
"""

import base64
import contextlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote


class TokenServer:
    """Start with ``with TokenServer(...) as server:``; ``server.url`` is the token endpoint."""

    def __init__(
        self,
        client_id="client-1",
        client_secret="client-secret-1",
        refresh_token="refresh-0",
        expires_in=3600,
        delay=0.0,
        rotate=True,
    ):
        self.client_id = client_id
        self.client_secret = client_secret
        self.valid_refresh_tokens = {refresh_token}
        self.expires_in = expires_in
        self.delay = delay
        self.rotate = rotate
        self.refresh_count = 0
        self.rejected = 0
        self.requests = []
        # (status, body) or (status, body, headers) answered instead of a token
        self.response_override = None
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self):
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/token"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # the name http.server calls
                length = int(self.headers.get("Content-Length") or 0)
                form = {
                    key: values[0]
                    for key, values in parse_qs(self.rfile.read(length).decode()).items()
                }
                status, body, *headers = server.answer(form, self.headers.get("Authorization"))
                payload = body if isinstance(body, bytes) else json.dumps(body).encode()
                # the timeout tests make the client hang up before a slow answer is written
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in (headers[0] if headers else {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)

            def log_message(self, *args):
                """Silence the default stderr access log."""

        return Handler

    def answer(self, form, authorization):
        """Return ``(status, body)`` for one token request (thread-safe)."""
        self.requests.append({"form": form, "authorization": authorization})
        if self.delay:
            time.sleep(self.delay)
        if self.response_override:
            return self.response_override
        client_id, client_secret = _client_credentials(form, authorization)
        if (client_id, client_secret) != (self.client_id, self.client_secret):
            return 401, {"error": "invalid_client"}
        if form.get("grant_type") != "refresh_token":
            return 400, {"error": "unsupported_grant_type"}
        with self._lock:
            presented = form.get("refresh_token")
            if presented not in self.valid_refresh_tokens:
                self.rejected += 1
                return 400, {
                    "error": "invalid_grant",
                    "error_description": f"refresh token {presented} was already used",
                }
            self.refresh_count += 1
            number = self.refresh_count
            body = {
                "access_token": f"access-{number}",
                "token_type": "Bearer",
                "expires_in": self.expires_in,
            }
            if self.rotate:
                self.valid_refresh_tokens.discard(presented)
                body["refresh_token"] = f"refresh-{number}"
                self.valid_refresh_tokens.add(body["refresh_token"])
        return 200, body


def _client_credentials(form, authorization):
    if authorization and authorization.startswith("Basic "):
        decoded = base64.b64decode(authorization[6:]).decode()
        client_id, _sep, client_secret = decoded.partition(":")
        return unquote(client_id), unquote(client_secret)
    return form.get("client_id"), form.get("client_secret")
