# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""A custom channel's reply endpoint on 127.0.0.1, for the tests (no Odoo import).

It records every request it gets (path, headers, raw body) and answers each with the next
answer the test queued (by default 200 with a ``message_id``). Shared by the addon's Odoo
tests and the plain tier (``tests/test_channels.py``).
"""

import threading
import time

from .loopback_server import Answer, LoopbackServer, Received


class SignedReply(Received):
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


class ChannelReceiver(LoopbackServer):
    """Running once made (``with ChannelReceiver() as receiver:``, or ``stop()`` it when
    done); ``url`` is where to post."""

    def __init__(self, path="/replies"):
        self.requests = []
        self._answers = []
        self._lock = threading.Lock()
        self._serve_on_loopback(path)

    def answer(self, status=200, payload=None, headers=None, hold=False):
        """Queue the answer to the next request."""
        with self._lock:
            self._answers.append(Answer(status, payload, dict(headers or {}), hold))

    def _respond(self, received):
        with self._lock:
            self.requests.append(SignedReply(**vars(received)))
            if self._answers:
                return self._answers.pop(0)
            return Answer(200, {"message_id": f"reply-{len(self.requests)}"})
