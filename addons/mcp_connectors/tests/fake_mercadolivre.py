# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""A fake Mercado Livre API on 127.0.0.1 for the tests (no Odoo import; stdlib + jsonschema).

It serves the calls the channel module makes, checked the way Mercado Livre checks them:
``Authorization: Bearer`` with a live access token of the seller in the path (401 / 403),
no token in the query, ``tag=post_sale`` on messages, bodies against schemas taken from the
fixtures in ``data/channels/``, 2000 characters an answer, 350 a post-sale message, ``to`` =
the messaging agent in MLB/MLC and the buyer elsewhere, blocked conversations refused, and
single-use refresh tokens (reuse → ``invalid_grant``). It records every request and can be
told to answer the next one(s) with an error, a ``Retry-After`` or no answer at all.

It also plays the authorization page (``GET /authorization``): the seller ``consenting_seller``
allows the app at once, and the browser is redirected to the ``redirect_uri`` with a
single-use code and the ``state``; the code is bound to that redirect URI and to the PKCE
challenge, which the token call must match with its ``code_verifier`` (S256).

Its starting data are the fixtures: seller 123456789 (MLB), question 5036111111 from buyer
987654321, pack 2000000089077943 (an order without pack, so its id is the order id) with the
buyer's message sent through agent 3037675074.
"""

import base64
import copy
import hashlib
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlencode

import jsonschema

from .loopback_server import Answer, LoopbackServer

DATA = Path(__file__).resolve().parent / "data" / "channels"
AGENT_SITES = ("MLB", "MLC")
USER_ID = {
    "type": "object",
    "required": ["user_id"],
    "properties": {"user_id": {"type": "integer"}},
}
# Shapes of mercadolivre_answer_request.json and mercadolivre_send_post_sale_message_*.json.
ANSWER_SCHEMA = {
    "type": "object",
    "required": ["question_id", "text"],
    "additionalProperties": False,
    "properties": {
        "question_id": {"type": "integer"},
        "text": {"type": "string", "minLength": 1, "maxLength": 2000},
    },
}
POST_SALE_SCHEMA = {
    "type": "object",
    "required": ["from", "to", "text"],
    "properties": {
        "from": USER_ID,
        "to": USER_ID,
        "text": {"type": "string", "minLength": 1, "maxLength": 350},
        "attachments": {"type": "array", "items": {"type": "string"}},
    },
}


def fixture(name):
    return json.loads((DATA / name).read_text(encoding="utf-8"))


@dataclass
class Injected:
    status: int
    payload: object = None
    headers: dict = field(default_factory=dict)
    path: str | None = None
    # never answer (until the fake stops): the client's read timeout fires
    hold: bool = False
    # matching requests still served normally before this answer applies
    after: int = 0


class FakeMercadoLivre(LoopbackServer):
    """Running once made (``with FakeMercadoLivre() as fake:`` or ``stop()``); ``url`` is
    the API base URL. State is plain attributes the tests may read and change."""

    def __init__(self, app_id="2069392825111111", client_secret="fake-client-secret"):
        token = fixture("mercadolivre_oauth_token_response.json")
        question = fixture("mercadolivre_question_get_response.json")
        pack = fixture("mercadolivre_pack_messages_response.json")
        self.app_id = str(app_id)
        self.client_secret = client_secret
        self.seller_id = str(token["user_id"])
        self.access_token = token["access_token"]
        self.refresh_token = token["refresh_token"]
        self.agent_ids = {"MLB": "3037675074"}
        self.max_message_length = pack["seller_max_message_length"]
        # access token → seller; refresh token → seller (a refresh token works once)
        self.access_tokens = {self.access_token: self.seller_id}
        self.refresh_tokens = {self.refresh_token: self.seller_id}
        # authorization code → (seller, redirect_uri, PKCE challenge); a code works once
        self.codes = {}
        # who logs in and allows the app on the authorization page
        self.consenting_seller = self.seller_id
        self.questions = {str(question["id"]): question}
        self.messages = {}
        self.packs = {}
        self.orders = {}
        self.missed = []
        self.shipments = {}
        self.nicknames = {self.seller_id: "LOJA_TESTE", buyer_id_of(question): "COMPRADOR_TESTE"}
        self.requests = []
        self._injected = []
        self._lock = threading.Lock()
        buyer = str(question["from"]["id"])
        pack_id = pack["messages"][0]["message_resources"][0]["id"]
        self.add_pack(pack_id, buyer, "MLB", order_ids=[pack_id])
        for message in pack["messages"]:
            self.add_message(pack_id, message)
        self._serve_on_loopback()

    # data -------------------------------------------------------------------------------------
    def add_pack(self, pack_id, buyer_id, site_id, order_ids=None, blocked=None):
        """A pack; ``order_ids == [pack_id]`` makes it an order without pack (read through
        ``/orders``), several order ids a cart (read through ``/packs``)."""
        self.packs[str(pack_id)] = {
            "buyer_id": str(buyer_id),
            "site_id": site_id,
            "order_ids": [str(order) for order in order_ids or [pack_id]],
            "message_ids": [],
            "status": "blocked" if blocked else "active",
            "substatus": blocked,
        }
        for order_id in self.packs[str(pack_id)]["order_ids"]:
            cart = order_id != str(pack_id)
            self.orders[order_id] = {
                "id": int(order_id),
                "status": "paid",
                "status_detail": None,
                "date_created": "2026-02-05T19:58:00.000-03:00",
                "total_amount": 129.9,
                "currency_id": "BRL",
                "pack_id": int(pack_id) if cart else None,
                "buyer": {"id": int(buyer_id), "nickname": self.nicknames.get(str(buyer_id))},
                "seller": {"id": int(self.seller_id)},
                "order_items": [
                    {
                        "item": {"id": "MLB3486661111", "title": "Fone de ouvido sem fio"},
                        "quantity": 1,
                        "unit_price": 129.9,
                    }
                ],
                "shipping": {"id": None},
            }

    def add_shipment(self, order_id, status, substatus=None, tracking_number=None):
        """The order's shipment (read through ``/shipments/{id}``); its id."""
        shipment_id = str(4_000_000_000 + len(self.shipments))
        self.shipments[shipment_id] = {
            "id": int(shipment_id),
            "status": status,
            "substatus": substatus,
            "tracking_number": tracking_number,
            "seller_id": int(self.seller_id),
        }
        self.orders[str(order_id)]["shipping"] = {"id": int(shipment_id)}
        return shipment_id

    def add_question(self, text, buyer_id=None, status="UNANSWERED"):
        """A question to the seller on the fixture's listing; its id."""
        question = copy.deepcopy(self.questions[next(iter(self.questions))])
        question.update(id=5_036_000_000 + len(self.questions), text=text, status=status)
        question.pop("answer", None)
        if buyer_id:
            question["from"] = {"id": int(buyer_id)}
        self.questions[str(question["id"])] = question
        return str(question["id"])

    def add_message(self, pack_id, message):
        self.messages[str(message["id"])] = message
        self.packs[str(pack_id)]["message_ids"].append(str(message["id"]))

    def buyer_message(self, pack_id, text, via_agent=None):
        """Store a buyer's message in a pack (sent through the site's agent in MLB/MLC
        unless ``via_agent`` says otherwise); its id."""
        pack = self.packs[str(pack_id)]
        if via_agent is None:
            via_agent = pack["site_id"] in AGENT_SITES
        sender = self.agent_ids[pack["site_id"]] if via_agent else pack["buyer_id"]
        message = self._message(pack_id, int(sender), int(self.seller_id), text)
        self.add_message(pack_id, message)
        return message["id"]

    def notification(self, topic, resource, **changes):
        body = {
            "_id": str(uuid.uuid4()),
            "resource": resource,
            "user_id": int(self.seller_id),
            "topic": topic,
            "application_id": int(self.app_id),
            "attempts": 1,
            "sent": "2026-03-01T12:00:00.100Z",
            "received": "2026-03-01T12:00:00.000Z",
        }
        body.update(changes)
        return body

    def issue_code(self, redirect_uri, seller_id=None, code_challenge=None):
        code = f"TG-{uuid.uuid4().hex}-{seller_id or self.seller_id}"
        self.codes[code] = (str(seller_id or self.seller_id), redirect_uri, code_challenge)
        return code

    # faults -----------------------------------------------------------------------------------
    def inject(self, status, payload=None, headers=None, path=None, hold=False, after=0):
        """Answer one request (whose path starts with ``path``, if given) with ``status`` and
        ``payload``, or never (``hold``), once ``after`` matching ones were served normally."""
        with self._lock:
            self._injected.append(Injected(status, payload, dict(headers or {}), path, hold, after))

    def revoke(self, seller_id=None):
        """The seller removed the app: every token of theirs stops working."""
        seller = str(seller_id or self.seller_id)
        for tokens in (self.access_tokens, self.refresh_tokens):
            for token in [key for key, owner in tokens.items() if owner == seller]:
                del tokens[token]

    def requests_to(self, method, path_start):
        return [r for r in self.requests if r.method == method and r.path.startswith(path_start)]

    # routing ----------------------------------------------------------------------------------
    def _route(self, method, path, query, headers, body):
        if method == "POST" and path == "/oauth/token":
            return self._token(headers, body)
        if method == "GET" and path == "/authorization":
            return self._authorization_page(query)
        if "access_token" in query:
            return _error(400, "bad_request", "access_token is not accepted in the query")
        seller = self.access_tokens.get(_bearer(headers))
        if seller is None:
            return _error(401, "unauthorized", "invalid access token")
        for pattern, handler in self._routes(method):
            match = re.fullmatch(pattern, path)
            if match:
                return handler(seller, query, body, *match.groups())
        return _error(404, "not_found", f"{method} {path} not found")

    def _routes(self, method):
        if method == "GET":
            return (
                (r"/users/me", self._get_me),
                (r"/questions/search", self._search_questions),
                (r"/questions/(\d+)", self._get_question),
                (r"/shipments/(\d+)", self._get_shipment),
                (r"/messages/packs/(\d+)/sellers/(\d+)", self._get_pack_messages),
                (r"/messages/([A-Za-z0-9_-]+)", self._get_message),
                (r"/orders/(\d+)", self._get_order),
                (r"/packs/(\d+)", self._get_pack),
                (r"/missed_feeds", self._get_missed_feeds),
            )
        return (
            (r"/answers", self._post_answer),
            (r"/messages/packs/(\d+)/sellers/(\d+)", self._post_message),
        )

    def _get_me(self, seller, query, body):
        return 200, {"id": int(seller), "nickname": self.nicknames.get(seller), "site_id": "MLB"}

    def _search_questions(self, seller, query, body):
        if query.get("seller_id") != seller or query.get("api_version") != "4":
            return _error(400, "bad_request", "seller_id of the token and api_version=4 needed")
        found = [
            question
            for question in self.questions.values()
            if str(question["seller_id"]) == seller
            and query.get("status") in (None, question["status"])
        ]
        limit = int(query.get("limit", 50))
        return 200, {"total": len(found), "limit": limit, "questions": found[:limit]}

    def _get_shipment(self, seller, query, body, shipment_id):
        shipment = self.shipments.get(shipment_id)
        if shipment is None or str(shipment["seller_id"]) != seller:
            return _error(404, "not_found", "Shipment not found")
        return 200, shipment

    def _get_question(self, seller, query, body, question_id):
        question = self.questions.get(question_id)
        if question is None or str(question["seller_id"]) != seller:
            return _error(404, "not_found", f"Question {question_id} not found")
        return 200, question

    def _get_message(self, seller, query, body, message_id):
        if query.get("tag") != "post_sale":
            return _error(400, "bad_request", "tag is required")
        message = self.messages.get(message_id)
        if message is None:
            return _error(
                404, "not_found", f"The message with id: {message_id} could not be retrieved"
            )
        return 200, {"paging": None, "conversation_status": None, "messages": [message]}

    def _get_pack_messages(self, seller, query, body, pack_id, seller_id):
        problem = self._pack_problem(seller, query, pack_id, seller_id)
        if problem:
            return problem
        pack = self.packs[pack_id]
        offset = int(query.get("offset", 0))
        limit = int(query.get("limit", 10))
        messages = [self.messages[key] for key in pack["message_ids"]]
        return 200, {
            "paging": {"limit": limit, "offset": offset, "total": len(messages)},
            "conversation_status": {
                "path": f"/packs/{pack_id}/sellers/{seller_id}",
                "status": pack["status"],
                "substatus": pack["substatus"],
                "status_date": "2026-02-05T20:01:46.000Z",
                "status_update_allowed": False,
                "claim_ids": None,
                "shipping_id": None,
            },
            "messages": messages[offset : offset + limit],
            "seller_max_message_length": self.max_message_length,
        }

    def _get_order(self, seller, query, body, order_id):
        order = self.orders.get(order_id)
        if order is None or str(order["seller"]["id"]) != seller:
            return _error(404, "not_found", "Order not found")
        return 200, order

    def _get_pack(self, seller, query, body, pack_id):
        pack = self.packs.get(pack_id)
        if pack is None or pack["order_ids"] == [pack_id]:
            return _error(404, "not_found", "Resource not found")
        orders = [{"id": int(order)} for order in pack["order_ids"]]
        return 200, {"id": int(pack_id), "buyer": {"id": int(pack["buyer_id"])}, "orders": orders}

    def _get_missed_feeds(self, seller, query, body):
        if query.get("app_id") != self.app_id:
            return _error(403, "forbidden", "app_id does not match the token")
        entries = [n for n in self.missed if query.get("topic") in (None, n.get("topic"))]
        offset = int(query.get("offset", 0))
        limit = int(query.get("limit", 10))
        return 200, {"messages": entries[offset : offset + limit]}

    def _post_answer(self, seller, query, body, *groups):
        payload, problem = _json_body(body, ANSWER_SCHEMA)
        if problem:
            return problem
        question = self.questions.get(str(payload["question_id"]))
        if question is None or str(question["seller_id"]) != seller:
            return _error(404, "not_found", "Question not found")
        if question["status"] != "UNANSWERED":
            return _error(400, "bad_request", "The question is not unanswered")
        question["status"] = "ANSWERED"
        question["answer"] = {
            "text": payload["text"],
            "status": "ACTIVE",
            "date_created": "2026-03-01T12:00:05.000-04:00",
        }
        return 200, copy.deepcopy(question)

    def _post_message(self, seller, query, body, pack_id, seller_id):
        problem = self._pack_problem(seller, query, pack_id, seller_id)
        if problem:
            return problem
        payload, problem = _json_body(body, POST_SALE_SCHEMA)
        if problem:
            return problem
        pack = self.packs[pack_id]
        if pack["status"] == "blocked":
            return _error(403, "forbidden", f"The conversation is blocked ({pack['substatus']})")
        if str(payload["from"]["user_id"]) != seller_id:
            return _error(400, "bad_request", "from.user_id must be the seller")
        if pack["site_id"] in AGENT_SITES:
            expected = self.agent_ids.get(pack["site_id"])
        else:
            expected = pack["buyer_id"]
        if str(payload["to"]["user_id"]) != expected:
            return _error(400, "bad_request", "to.user_id is not the recipient of this pack")
        message = self._message(
            pack_id, payload["from"]["user_id"], payload["to"]["user_id"], payload["text"]
        )
        self.add_message(pack_id, message)
        return 201, message

    def _pack_problem(self, seller, query, pack_id, seller_id):
        if query.get("tag") != "post_sale":
            return _error(400, "bad_request", "tag is required")
        if seller_id != seller:
            return _error(403, "forbidden", f"User access token invalid for resource {pack_id}")
        if pack_id not in self.packs:
            return _error(404, "not_found", "Order do not exists")
        return None

    def _message(self, pack_id, sender, recipient, text):
        pack = self.packs[str(pack_id)]
        # one second apart, in the order they were written
        moment = f"2026-03-01T12:{len(self.messages) // 60:02d}:{len(self.messages) % 60:02d}.000Z"
        return {
            "id": uuid.uuid4().hex,
            "site_id": pack["site_id"],
            "client_id": int(self.app_id),
            "from": {"user_id": sender},
            "to": {"user_id": recipient},
            "status": "available",
            "text": text,
            "message_date": dict.fromkeys(("received", "available", "created"), moment),
            "message_moderation": {"status": "clean", "reason": None, "source": "online"},
            "message_attachments": None,
            "message_resources": [
                {"id": str(pack_id), "name": "packs"},
                {"id": self.seller_id, "name": "sellers"},
            ],
        }

    # OAuth ------------------------------------------------------------------------------------
    def _authorization_page(self, query):
        """The seller allows the app: 302 to the redirect URI with the code and the state."""
        if query.get("response_type") != "code" or query.get("client_id") != self.app_id:
            return _error(400, "invalid_request", "response_type=code and our client_id needed")
        challenge = query.get("code_challenge")
        if challenge and query.get("code_challenge_method") != "S256":
            return _error(400, "invalid_request", "code_challenge_method must be S256")
        redirect_uri = query.get("redirect_uri") or ""
        code = self.issue_code(redirect_uri, self.consenting_seller, challenge)
        back = {"code": code, **({"state": query["state"]} if "state" in query else {})}
        return 302, None, {"Location": f"{redirect_uri}?{urlencode(back)}"}

    def _token(self, headers, body):
        if not headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            return _error(400, "invalid_request", "form-urlencoded body expected")
        form = {key: values[0] for key, values in parse_qs(body.decode()).items()}
        if form.get("client_id") != self.app_id or form.get("client_secret") != self.client_secret:
            return _error(401, "invalid_client", "invalid client_id or client_secret")
        grant = form.get("grant_type")
        if grant == "refresh_token":
            seller = self.refresh_tokens.pop(form.get("refresh_token"), None)
        elif grant == "authorization_code":
            seller, redirect_uri, challenge = self.codes.pop(form.get("code"), (None, None, None))
            if form.get("redirect_uri") != redirect_uri or not _pkce_matches(
                challenge, form.get("code_verifier")
            ):
                seller = None
        else:
            return _error(400, "unsupported_grant_type", "unsupported grant_type")
        if seller is None:
            return 400, fixture("mercadolivre_oauth_error_invalid_grant.json")
        return 200, self._new_tokens(seller)

    def _new_tokens(self, seller):
        answer = fixture("mercadolivre_oauth_token_response.json")
        answer["access_token"] = f"APP_USR-{self.app_id}-{uuid.uuid4().hex}-{seller}"
        answer["refresh_token"] = f"TG-{uuid.uuid4().hex}-{seller}"
        answer["user_id"] = int(seller)
        self.access_tokens[answer["access_token"]] = seller
        self.refresh_tokens[answer["refresh_token"]] = seller
        return answer

    # HTTP -------------------------------------------------------------------------------------
    def _next_injected(self, path):
        with self._lock:
            for index, injected in enumerate(self._injected):
                if injected.path is None or path.startswith(injected.path):
                    if injected.after:
                        injected.after -= 1
                        return None
                    return self._injected.pop(index)
        return None

    def _parse_query(self, query):
        return {key: values[0] for key, values in parse_qs(query).items()}

    def _respond(self, received):
        with self._lock:
            self.requests.append(received)
        injected = self._next_injected(received.path)
        if injected:
            return Answer(injected.status, injected.payload, injected.headers, injected.hold)
        with self._lock:
            status, payload, *headers = self._route(
                received.method, received.path, received.query, received.headers, received.body
            )
        return Answer(status, payload, *headers)


def buyer_id_of(question):
    return str(question["from"]["id"])


def _pkce_matches(challenge, verifier):
    """A code issued with a challenge needs the verifier whose S256 digest it is."""
    if challenge is None:
        return True
    if not verifier:
        return False
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii") == challenge


def _bearer(headers):
    value = headers.get("Authorization") or ""
    return value[len("Bearer ") :] if value.startswith("Bearer ") else None


def _json_body(body, schema):
    try:
        payload = json.loads(body)
        jsonschema.validate(payload, schema)
    except ValueError:
        return None, _error(400, "bad_request", "the body is not JSON")
    except jsonschema.ValidationError as error:
        return None, _error(400, "bad_request", f"invalid body: {error.message}")
    return payload, None


def _error(status, error, message):
    """Mercado Livre's error envelope."""
    return status, {"message": message, "error": error, "status": status, "cause": []}
