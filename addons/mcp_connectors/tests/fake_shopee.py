# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""A fake Shopee Open Platform (v2) on 127.0.0.1, for the tests (no Odoo import).

It speaks the calls the Shopee channel makes: ``POST /api/v2/sellerchat/send_message`` and the
reads ``GET /api/v2/sellerchat/get_message``, ``/api/v2/sellerchat/get_unread_conversation_count``
and ``/api/v2/shop/get_shop_info`` (shop APIs), and ``POST /api/v2/auth/token/get`` /
``/api/v2/auth/access_token/get`` (public APIs).
Like Shopee it checks the common query parameters (partner id, a timestamp younger than 5
minutes, the HMAC ``sign``), the access token of the shop, and the body shape (JSON schemas
taken from the fixtures in ``data/channels``), and it answers errors as HTTP 200 with a
non-empty ``error``. Authorization codes and refresh tokens are single use; a refresh returns
a new pair. Every request is recorded (:attr:`FakeShopee.requests`); the next answers can be
forced (:meth:`FakeShopee.fail_next`: 429, 5xx, any error envelope, or no answer at all).
Refreshes can be held at a gate (:meth:`FakeShopee.hold_refreshes`) so that a test decides
when the first one finishes, whatever the other workers do meanwhile.

It also plays the authorization page (``GET /api/v2/shop/auth_partner``, signed as a public
API): the seller of ``consenting_shop`` authorizes the app at once, and the browser is
redirected to ``redirect`` with a single-use ``code`` and the ``shop_id`` added to its query.

The answers for a used or unknown refresh token (``error_auth``) and for a bad sign
(``error_sign``) are representative: the exact Shopee texts are not documented.
"""

import hashlib
import hmac
import json
import secrets
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import jsonschema

from .loopback_server import Answer, LoopbackServer

DATA = Path(__file__).resolve().parent / "data" / "channels"
SEND_MESSAGE_PATH = "/api/v2/sellerchat/send_message"
TOKEN_GET_PATH = "/api/v2/auth/token/get"
TOKEN_REFRESH_PATH = "/api/v2/auth/access_token/get"
GET_MESSAGE_PATH = "/api/v2/sellerchat/get_message"
UNREAD_COUNT_PATH = "/api/v2/sellerchat/get_unread_conversation_count"
SHOP_INFO_PATH = "/api/v2/shop/get_shop_info"
AUTH_PARTNER_PATH = "/api/v2/shop/auth_partner"
TIMESTAMP_VALIDITY = 300
ACCESS_TOKEN_LIFETIME = 14400
PARTNER_ID = 2001887
PARTNER_KEY = "test_partner_key"
SHOP_ID = 947042923

SEND_MESSAGE_SCHEMA = {
    "type": "object",
    "required": ["to_id", "message_type", "content"],
    "additionalProperties": False,
    "properties": {
        "to_id": {"type": "integer", "minimum": 1},
        "message_type": {"enum": ["text", "sticker", "image", "item", "order"]},
        "content": {"type": "object"},
        "business_type": {"type": "integer"},
        "conversation_id": {"type": ["integer", "string"]},
    },
    "if": {"properties": {"message_type": {"const": "text"}}},
    "then": {
        "properties": {
            "content": {
                "required": ["text"],
                "properties": {"text": {"type": "string", "minLength": 1}},
            }
        }
    },
}
TOKEN_GET_SCHEMA = {
    "type": "object",
    "required": ["code", "shop_id", "partner_id"],
    "properties": {
        "code": {"type": "string", "minLength": 1},
        "shop_id": {"type": "integer"},
        "partner_id": {"type": "integer"},
    },
}
TOKEN_REFRESH_SCHEMA = {
    "type": "object",
    "required": ["refresh_token", "shop_id", "partner_id"],
    "properties": {
        "refresh_token": {"type": "string", "minLength": 1},
        "shop_id": {"type": "integer"},
        "partner_id": {"type": "integer"},
    },
}


def load_fixture(name):
    return json.loads((DATA / name).read_text(encoding="utf-8"))


class ShopeeError(Exception):
    """An error answer of the fake: HTTP 200 with ``error`` and ``message``."""

    def __init__(self, error, message):
        super().__init__(message)
        self.error = error
        self.message = message


class FakeShopee(LoopbackServer):
    """Running once made (``with FakeShopee() as shopee:``, or ``stop()`` it); ``url`` is
    the host to give the client.

    :param clock: the fake's time, to check timestamps and token expiry
    """

    def __init__(self, partner_id=PARTNER_ID, partner_key=PARTNER_KEY, clock=time.time):
        self.partner_id = partner_id
        self.partner_key = partner_key
        self.clock = clock
        self.requests = []
        self.messages = []
        # conversation id -> its messages, oldest first, as get_message gives them
        self.conversations = {}
        self.shop_name = "Loja Teste"
        self.unread_count = 0
        self.refreshes = 0
        self._refresh_gate = None
        self._answers = []
        self._codes = {}
        # whose seller authorizes the app on the authorization page
        self.consenting_shop = SHOP_ID
        self._access_tokens = {}
        self._refresh_tokens = {}
        self._lock = threading.Lock()
        self._serve_on_loopback()

    # test set-up ------------------------------------------------------------------------------
    def authorize(self, shop_id=SHOP_ID):
        """A new authorization code for ``shop_id``, as the seller's consent gives."""
        code = secrets.token_hex(16)
        with self._lock:
            self._codes[code] = int(shop_id)
        return code

    def issue_tokens(self, shop_id=SHOP_ID):
        """A valid ``(access_token, refresh_token)`` pair for ``shop_id``."""
        with self._lock:
            return self._issue(int(shop_id))

    def expire_access_token(self, access_token):
        with self._lock:
            self._access_tokens.pop(access_token, None)

    def revoke(self, shop_id=SHOP_ID):
        """The seller cancels the authorization: every token of the shop stops working."""
        with self._lock:
            for tokens in (self._access_tokens, self._refresh_tokens):
                for token in [key for key, value in tokens.items() if value[0] == int(shop_id)]:
                    del tokens[token]

    def hold_refreshes(self):
        """Refreshes wait until :meth:`release_refreshes` (each still refused or answered
        as usual then)."""
        self._refresh_gate = threading.Event()

    def release_refreshes(self):
        self._refresh_gate.set()

    def add_message(self, conversation_id, message_id, text, from_id, from_shop_id=0):
        """A message of a conversation, as get_message lists it (``from_shop_id`` is the
        shop's id when the shop sent it, else 0)."""
        self.conversations.setdefault(str(conversation_id), []).append(
            {
                "message_id": str(message_id),
                "conversation_id": str(conversation_id),
                "from_id": int(from_id),
                "from_shop_id": int(from_shop_id),
                "message_type": "text",
                "content": {"text": text},
                "created_timestamp": int(self.clock()),
            }
        )

    def fail_next(
        self, status=200, error=None, message="", headers=None, payload=None, hold=False, after=0
    ):
        """Answer a request with ``status`` and an error envelope (or ``payload``): the next
        one, or the one after ``after`` requests answered normally."""
        if payload is None and error:
            payload = {"request_id": uuid.uuid4().hex, "error": error, "message": message}
        with self._lock:
            self._answers += [None] * after
            self._answers.append(Answer(status, payload, dict(headers or {}), hold))

    # protocol ---------------------------------------------------------------------------------
    def _issue(self, shop_id):
        access_token, refresh_token = secrets.token_hex(16), secrets.token_hex(16)
        expires_at = self.clock() + ACCESS_TOKEN_LIFETIME
        self._access_tokens[access_token] = (shop_id, expires_at)
        self._refresh_tokens[refresh_token] = (shop_id, None)
        return access_token, refresh_token

    def _authorization_page(self, received):
        """The seller authorizes the app: 302 to ``redirect`` with the code and the shop."""
        try:
            with self._lock:
                self._check_sign(received, shop_api=False)
        except ShopeeError as error:
            return Answer(200, {"error": error.error, "message": error.message})
        redirect = received.query.get("redirect") or ""
        back = urlencode(
            {"code": self.authorize(self.consenting_shop), "shop_id": self.consenting_shop}
        )
        separator = "&" if "?" in redirect else "?"
        return Answer(302, None, {"Location": f"{redirect}{separator}{back}"})

    def _answer(self, received):
        if (received.method, received.path) == ("GET", AUTH_PARTNER_PATH):
            return self._authorization_page(received)
        routes = {
            ("POST", SEND_MESSAGE_PATH): (True, SEND_MESSAGE_SCHEMA, self._send_message),
            ("POST", TOKEN_GET_PATH): (False, TOKEN_GET_SCHEMA, self._token_get),
            ("POST", TOKEN_REFRESH_PATH): (False, TOKEN_REFRESH_SCHEMA, self._token_refresh),
            ("GET", GET_MESSAGE_PATH): (True, None, self._get_message),
            ("GET", UNREAD_COUNT_PATH): (True, None, self._unread_count),
            ("GET", SHOP_INFO_PATH): (True, None, self._shop_info),
        }
        route = routes.get((received.method, received.path))
        if route is None:
            return Answer(404, {"error": "error_not_found", "message": "Wrong path."})
        shop_api, schema, handle = route
        if received.path == TOKEN_REFRESH_PATH and self._refresh_gate is not None:
            self._refresh_gate.wait(timeout=30)
        try:
            body = self._checked_body(received, schema) if schema else received.query
            with self._lock:
                self._check_sign(received, shop_api)
                result = handle(body)
        except ShopeeError as error:
            result = {"error": error.error, "message": error.message}
        return Answer(200, {"request_id": uuid.uuid4().hex, "error": "", "message": "", **result})

    def _check_sign(self, received, shop_api):
        query = received.query
        if query.get("partner_id") != str(self.partner_id):
            raise ShopeeError("error_param", "Invalid partner_id.")
        timestamp = query.get("timestamp", "")
        if not timestamp.isdigit() or abs(self.clock() - int(timestamp)) > TIMESTAMP_VALIDITY:
            raise ShopeeError("error_param", "Invalid timestamp.")
        base = f"{self.partner_id}{received.path}{timestamp}"
        if shop_api:
            base += f"{query.get('access_token', '')}{query.get('shop_id', '')}"
        expected = hmac.new(self.partner_key.encode(), base.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(query.get("sign", "").encode(), expected.encode()):
            raise ShopeeError("error_sign", "Wrong sign.")
        if shop_api:
            entry = self._access_tokens.get(query.get("access_token"))
            if entry is None or str(entry[0]) != query.get("shop_id") or entry[1] < self.clock():
                raise ShopeeError("invalid_acceess_token", "Invalid access_token.")

    def _checked_body(self, received, schema):
        if "application/json" not in received.headers.get("Content-Type", ""):
            raise ShopeeError("error_param", "Content-Type must be application/json.")
        try:
            body = received.json()
            jsonschema.validate(body, schema)
        except ValueError:
            raise ShopeeError("error_param", "Body is not JSON.") from None
        except jsonschema.ValidationError as error:
            where = "/".join(str(part) for part in error.absolute_path) or "body"
            raise ShopeeError("error_param", f"Invalid {where}.") from None
        if "partner_id" in body and body["partner_id"] != self.partner_id:
            raise ShopeeError("error_param", "Invalid partner_id.")
        return body

    def _send_message(self, body):
        self.messages.append(body)
        response = dict(load_fixture("shopee_send_message_response.json")["response"])
        response.update(
            to_id=body["to_id"],
            message_id=str(2302749000000000000 + len(self.messages)),
            message_type=body["message_type"],
            content=body["content"],
            created_timestamp=int(self.clock()),
        )
        return {"response": response}

    def _get_message(self, query):
        messages = self.conversations.get(query.get("conversation_id"), [])
        page_size = int(query.get("page_size") or 25)
        if not 1 <= page_size <= 60:
            raise ShopeeError("error_param", "Invalid page_size.")
        page = list(reversed(messages))[:page_size]
        return {
            "response": {
                "messages": page,
                "page_result": {"page_size": len(page), "next_offset": "", "prev_offset": ""},
            }
        }

    def _unread_count(self, _query):
        return {"response": {"total_unread_count": self.unread_count}}

    def _shop_info(self, _query):
        return {
            "shop_name": self.shop_name,
            "region": "BR",
            "status": "NORMAL",
            "is_cb": False,
            "auth_time": int(self.clock()) - 86400,
            "expire_time": int(self.clock()) + 364 * 86400,
        }

    def _token_get(self, body):
        if self._codes.pop(body["code"], None) != body["shop_id"]:
            raise ShopeeError("error_auth", "Invalid code.")
        return self._token_answer(body["shop_id"])

    def _token_refresh(self, body):
        self.refreshes += 1
        entry = self._refresh_tokens.pop(body["refresh_token"], None)
        if entry is None or entry[0] != body["shop_id"]:
            raise ShopeeError("error_auth", "Invalid refresh_token.")
        return self._token_answer(body["shop_id"])

    def _token_answer(self, shop_id):
        access_token, refresh_token = self._issue(shop_id)
        answer = load_fixture("shopee_auth_token_response.json")
        answer.update(
            access_token=access_token,
            refresh_token=refresh_token,
            expire_in=ACCESS_TOKEN_LIFETIME,
            partner_id=self.partner_id,
            shop_id=shop_id,
        )
        for envelope_key in ("request_id", "error", "message"):
            answer.pop(envelope_key)
        return answer

    def _next_answer(self, received):
        with self._lock:
            forced = self._answers.pop(0) if self._answers else None
        return forced or self._answer(received)

    def _parse_query(self, query):
        return dict(parse_qsl(query, keep_blank_values=True))

    def _respond(self, received):
        with self._lock:
            self.requests.append(received)
        return self._next_answer(received)
