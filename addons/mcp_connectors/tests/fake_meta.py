# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Meta's Graph API on 127.0.0.1 for the tests (no Odoo import; stdlib and jsonschema only).

:class:`FakeGraph` serves what the Meta channels call:

- ``POST /{version}/{account id}/messages``: WhatsApp texts and read marks, Messenger and
  Instagram texts and sender actions. It checks the token (``Authorization: Bearer`` or the
  ``access_token`` parameter, as Graph accepts both), that the account exists, and the body
  against the shapes of the fixtures in ``data/channels`` (text limits included), and answers
  like the fixtures, with fresh message ids.
- ``GET /{version}/{account id or me}?fields=...``: the node (a phone number's display number
  and verified name, a Page's or an Instagram account's name), as the *Test* buttons read it.
  ``me`` is the account of the token (:attr:`FakeGraph.me`).
- ``GET /refresh_access_token`` (graph.instagram.com): the Instagram Login token refresh.

Errors come in Graph's envelope (``{"error": {"message", "type", "code", ...}}``). A test can
queue any answer (:meth:`FakeGraph.fail_next`: 429, 5xx, rate-limit codes...), hold the next
request until the client times out (:meth:`FakeGraph.hold_next`) or revoke the token
(:meth:`FakeGraph.revoke_token`). Every request is recorded in :attr:`FakeGraph.requests`.

:func:`webhook_body` and :func:`signature_header` make a webhook delivery as Meta sends it.
"""

import hashlib
import hmac
import json
import threading
from pathlib import Path

import jsonschema

from .loopback_server import Answer, LoopbackServer

DATA = Path(__file__).resolve().parent / "data" / "channels"
ACCESS_TOKEN = "test-graph-access-token"
APP_SECRET = "test_app_secret"
GRAPH_VERSION = "v25.0"
# the fixtures' accounts: WhatsApp phone number id, Page id, Instagram professional account id
ACCOUNTS = {
    "106540352242922": "whatsapp",
    "109876543210987": "messenger",
    "17841405309211844": "instagram",
}
TOKEN_LIFETIME = 60 * 24 * 3600


def fixture(name):
    """A JSON fixture of ``data/channels``."""
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def webhook_body(payload):
    """The bytes Meta posts for ``payload``: compact JSON, non-ASCII escaped as ``\\uXXXX``."""
    return json.dumps(payload, separators=(",", ":")).encode("ascii")


def signature_header(app_secret, body):
    """The ``X-Hub-Signature-256`` value Meta sends with ``body``."""
    digest = hmac.new(app_secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def error_envelope(code, message, subcode=None, error_type="OAuthException", details=None):
    """Graph's error envelope."""
    error = {"message": message, "type": error_type, "code": code, "fbtrace_id": "FakeTrace"}
    if subcode is not None:
        error["error_subcode"] = subcode
    if details is not None:
        error["error_data"] = {"details": details}
    return {"error": error}


def _page_text_schema(limit, tags, messaging_type_required):
    schema = {
        "type": "object",
        "required": ["recipient", "message"],
        "properties": {
            "recipient": _RECIPIENT,
            "messaging_type": {"enum": ["RESPONSE", "UPDATE", "MESSAGE_TAG"]},
            "tag": {"enum": tags},
            "message": {
                "type": "object",
                "required": ["text"],
                "properties": {"text": {"type": "string", "minLength": 1, "maxLength": limit}},
                "additionalProperties": False,
            },
        },
        "additionalProperties": False,
        # a tag only goes with MESSAGE_TAG, and MESSAGE_TAG needs one
        "if": {
            "required": ["messaging_type"],
            "properties": {"messaging_type": {"const": "MESSAGE_TAG"}},
        },
        "then": {"required": ["tag"]},
        "else": {"not": {"required": ["tag"]}},
    }
    if messaging_type_required:
        schema["required"] = ["recipient", "messaging_type", "message"]
    return schema


_RECIPIENT = {
    "type": "object",
    "required": ["id"],
    "properties": {"id": {"type": "string", "minLength": 1}},
    "additionalProperties": False,
}
SENDER_ACTION = {
    "type": "object",
    "required": ["recipient", "sender_action"],
    "properties": {
        "recipient": _RECIPIENT,
        "sender_action": {"enum": ["mark_seen", "typing_on", "typing_off"]},
    },
    "additionalProperties": False,
}
WHATSAPP_TEXT = {
    "type": "object",
    "required": ["messaging_product", "type", "text"],
    "properties": {
        "messaging_product": {"const": "whatsapp"},
        "recipient_type": {"const": "individual"},
        "to": {"type": "string", "pattern": "^[0-9]{6,20}$"},
        "recipient": {"type": "string", "pattern": "^[A-Z]{2}\\.[A-Za-z0-9.]{1,140}$"},
        "context": {
            "type": "object",
            "required": ["message_id"],
            "properties": {"message_id": {"type": "string", "minLength": 1}},
            "additionalProperties": False,
        },
        "type": {"const": "text"},
        "text": {
            "type": "object",
            "required": ["body"],
            "properties": {
                "body": {"type": "string", "minLength": 1, "maxLength": 4096},
                "preview_url": {"type": "boolean"},
            },
            "additionalProperties": False,
        },
    },
    "oneOf": [{"required": ["to"]}, {"required": ["recipient"]}],
    "additionalProperties": False,
}
WHATSAPP_TEMPLATE = {
    "type": "object",
    "required": ["messaging_product", "type", "template"],
    "properties": {
        "messaging_product": {"const": "whatsapp"},
        "recipient_type": {"const": "individual"},
        "to": WHATSAPP_TEXT["properties"]["to"],
        "recipient": WHATSAPP_TEXT["properties"]["recipient"],
        "type": {"const": "template"},
        "template": {
            "type": "object",
            "required": ["name", "language"],
            "properties": {
                "name": {"type": "string", "pattern": "^[a-z0-9_]{1,512}$"},
                "language": {
                    "type": "object",
                    "required": ["code"],
                    "properties": {"code": {"type": "string", "minLength": 2}},
                    "additionalProperties": False,
                },
                "components": {"type": "array"},
            },
            "additionalProperties": False,
        },
    },
    "oneOf": [{"required": ["to"]}, {"required": ["recipient"]}],
    "additionalProperties": False,
}
WHATSAPP_READ = {
    "type": "object",
    "required": ["messaging_product", "status", "message_id"],
    "properties": {
        "messaging_product": {"const": "whatsapp"},
        "status": {"const": "read"},
        "message_id": {"type": "string", "minLength": 1},
    },
    "additionalProperties": False,
}
MESSENGER_TEXT = _page_text_schema(
    2000, ["HUMAN_AGENT", "ACCOUNT_UPDATE", "CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE"], True
)
INSTAGRAM_TEXT = _page_text_schema(1000, ["HUMAN_AGENT"], False)


def body_schema(platform, body):
    """The schema a ``/messages`` body of ``platform`` must match."""
    if platform == "whatsapp":
        if "status" in body:
            return WHATSAPP_READ
        return WHATSAPP_TEMPLATE if body.get("type") == "template" else WHATSAPP_TEXT
    if "sender_action" in body:
        return SENDER_ACTION
    return MESSENGER_TEXT if platform == "messenger" else INSTAGRAM_TEXT


class FakeGraph(LoopbackServer):
    """Running once made (``with FakeGraph() as graph:``, or ``stop()`` it); ``url`` is the base
    URL to give the client (it adds the version)."""

    def __init__(self, access_token=ACCESS_TOKEN, accounts=None, version=GRAPH_VERSION, me=None):
        self.version = version
        self.accounts = dict(ACCOUNTS if accounts is None else accounts)
        #: the account ``me`` stands for (a Page token's Page, an Instagram user token's account)
        self.me = me
        self.requests = []
        self.sent = []  # (account id, body) of every accepted /messages call
        self._tokens = {access_token}
        self._revoked = False
        self._answers = []
        self._counter = 0
        self._lock = threading.Lock()
        self._serve_on_loopback()

    # what a test injects ----------------------------------------------------------------------
    def fail_next(
        self,
        status=400,
        code=None,
        message="Fake error",
        subcode=None,
        headers=None,
        details=None,
        payload=None,
        after=0,
    ):
        """Answer a request with ``status`` and Graph's error envelope (or ``payload``): the
        next one, or the one after ``after`` requests served normally."""
        if payload is None and code is not None:
            payload = error_envelope(code, message, subcode, details=details)
        with self._lock:
            self._answers.extend([None] * after)
            self._answers.append(Answer(status, payload, dict(headers or {})))

    def hold_next(self):
        """Leave the next request unanswered: the client times out."""
        with self._lock:
            self._answers.append(Answer(hold=True))

    def revoke_token(self):
        """From now on every token is refused as revoked (code 190)."""
        self._revoked = True

    def sent_bodies(self, account_id=None):
        return [body for account, body in self.sent if account_id in (None, account)]

    # how Graph answers ------------------------------------------------------------------------
    def _respond(self, received):
        method, path, query = received.method, received.path, received.query
        headers, body = received.headers, received.body
        with self._lock:
            self.requests.append(received)
            queued = self._answers.pop(0) if self._answers else None
        if queued is not None:
            return queued
        refused = self._check_token(headers, query)
        if refused:
            return refused
        parts = path.strip("/").split("/")
        if method == "GET" and parts == ["refresh_access_token"]:
            return self._refresh(query)
        if parts[0] == self.version and len(parts) >= 2:
            account_id = self.me if parts[1] == "me" and self.me else parts[1]
            if method == "GET" and len(parts) == 2:
                return self._node(account_id)
            if method == "POST" and len(parts) == 3 and parts[2] == "messages":
                return self._messages(account_id, headers, body)
        return Answer(400, error_envelope(2500, "Unknown path components: " + path))

    def _check_token(self, headers, query):
        authorization = headers.get("Authorization") or ""
        token = authorization[7:] if authorization.startswith("Bearer ") else None
        token = token or (query.get("access_token") or [None])[0]
        if not token:
            return Answer(
                400, error_envelope(104, "An access token is required to request this resource.")
            )
        if self._revoked:
            message = "Error validating access token: The session has been invalidated."
            return Answer(400, error_envelope(190, message, subcode=460))
        if token not in self._tokens:
            return Answer(
                400, error_envelope(190, "Invalid OAuth access token - Cannot parse access token")
            )
        return None

    def _refresh(self, query):
        if query.get("grant_type") != ["ig_refresh_token"]:
            return Answer(
                400, error_envelope(100, "Unsupported grant type", error_type="IGApiException")
            )
        token = self._next_id("IGAAfake")
        self._tokens.add(token)  # the old token stays valid until it expires
        return Answer(
            200, {"access_token": token, "token_type": "bearer", "expires_in": TOKEN_LIFETIME}
        )

    def _node(self, account_id):
        platform = self.accounts.get(account_id)
        if platform is None:
            return _unknown_object("get", account_id)
        if platform == "whatsapp":
            return Answer(
                200,
                {
                    "id": account_id,
                    "display_phone_number": "+55 11 99999-0000",
                    "verified_name": "Loja Exemplo",
                },
            )
        return Answer(200, {"id": account_id, "name": "Loja Exemplo", "username": "lojaexemplo"})

    def _messages(self, account_id, headers, raw):
        platform = self.accounts.get(account_id)
        if platform is None:
            return _unknown_object("post", account_id)
        if not (headers.get("Content-Type") or "").startswith("application/json"):
            return Answer(400, error_envelope(100, "(#100) The request body must be JSON"))
        try:
            body = json.loads(raw)
        except ValueError:
            return Answer(400, error_envelope(100, "(#100) Invalid JSON"))
        if not isinstance(body, dict):
            return Answer(400, error_envelope(100, "(#100) Invalid JSON"))
        try:
            jsonschema.validate(body, body_schema(platform, body))
        except jsonschema.ValidationError as exc:
            return Answer(
                400, error_envelope(100, "(#100) Invalid parameter", details=exc.message[:300])
            )
        with self._lock:
            self.sent.append((account_id, body))
        return Answer(200, self._sent_answer(platform, body))

    def _sent_answer(self, platform, body):
        if platform == "whatsapp":
            if "status" in body:
                return {"success": True}
            address = body.get("to") or body.get("recipient")
            contact = {"input": address, "wa_id" if "to" in body else "user_id": address}
            return {
                "messaging_product": "whatsapp",
                "contacts": [contact],
                "messages": [{"id": self._next_id("wamid.FAKE")}],
            }
        if "sender_action" in body:
            return {"recipient_id": body["recipient"]["id"]}
        return {"recipient_id": body["recipient"]["id"], "message_id": self._next_id("m_FAKE")}

    def _next_id(self, prefix):
        with self._lock:
            self._counter += 1
            return f"{prefix}{self._counter:06d}"


def _unknown_object(method, account_id):
    message = (
        f"Unsupported {method} request. Object with ID '{account_id}' does not exist, cannot be "
        "loaded due to missing permissions, or does not support this operation."
    )
    return Answer(400, error_envelope(100, message, subcode=33, error_type="GraphMethodException"))
