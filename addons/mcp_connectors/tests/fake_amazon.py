# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""A fake Amazon for the tests (no Odoo import): SP-API Messaging and the LWA token endpoint
on 127.0.0.1, and a builder of relayed buyer e-mails.

:class:`FakeAmazon` answers ``GET /messaging/v1/orders/{id}`` (HAL actions),
``GET /messaging/v1/orders/{id}/attributes``, ``POST /messaging/v1/orders/{id}/messages/{type}``
(201, empty body), ``GET /sellers/v1/marketplaceParticipations`` (the seller takes part in
Amazon.com.br) and ``POST /auth/o2/token`` (form, ``grant_type=refresh_token``). Like
Amazon it checks the ``x-amz-access-token`` header (403 ``Unauthorized`` when expired or
unknown), exactly one ``marketplaceIds``, the body against the message type's schema (from
the Messaging API model, stricter in requiring ``text`` for text-only types), that the type is
among the order's actions, and the LWA client credentials and refresh token (400
``invalid_grant`` once revoked). Requests are recorded; :meth:`FakeAmazon.fail_next` forces
429, 5xx, any error, or no answer at all. Refusing a type the order does not allow with 400
``InvalidInput`` is representative: Amazon does not document that answer.

:func:`buyer_email` builds a relayed buyer message as the seller's mailbox receives it. No
verified sample of the relay exists: the layout (markers, order line, footer) follows
third-party descriptions and is representative only.
"""

import json
import re
import secrets
import threading
import time
import uuid
from email.message import EmailMessage
from pathlib import Path

import jsonschema

from .loopback_server import Answer, LoopbackServer

DATA = Path(__file__).resolve().parent / "data" / "channels"
ORDER_ID = "123-1234567-1234567"
MARKETPLACE_ID = "A2Q3Y263D00KWC"
CLIENT_ID = "amzn1.application-oa2-client.example"
CLIENT_SECRET = "amzn1.oa2-cs.v1.example-client-secret"
TOKEN_PATH = "/auth/o2/token"
PARTICIPATIONS_PATH = "/sellers/v1/marketplaceParticipations"
# The Sellers API answer for a seller of Amazon.com.br (shape of getMarketplaceParticipations).
PARTICIPATIONS = {
    "payload": [
        {
            "marketplace": {
                "id": "A2Q3Y263D00KWC",
                "countryCode": "BR",
                "name": "Amazon.com.br",
                "defaultCurrencyCode": "BRL",
                "defaultLanguageCode": "pt_BR",
                "domainName": "www.amazon.com.br",
            },
            "participation": {"isParticipating": True, "hasSuspendedListings": False},
        }
    ]
}
ACCESS_TOKEN_LIFETIME = 3600
ORDER_PATH = re.compile(r"^/messaging/v1/orders/(?P<order>[^/]+)(?P<rest>/.*)?$")

ATTACHMENTS_SCHEMA = {
    "type": "array",
    "maxItems": 5,
    "items": {
        "type": "object",
        "required": ["uploadDestinationId", "fileName"],
        "properties": {
            "uploadDestinationId": {"type": "string"},
            "fileName": {"type": "string", "minLength": 1},
        },
    },
}


def _text_schema(limit, attachments=False):
    schema = {
        "type": "object",
        "properties": {"text": {"type": "string", "minLength": 1, "maxLength": limit}},
    }
    if attachments:
        schema["properties"]["attachments"] = ATTACHMENTS_SCHEMA
    else:
        schema["required"] = ["text"]
    return schema


def _attachments_schema(required):
    schema = {"type": "object", "properties": {"attachments": ATTACHMENTS_SCHEMA}}
    if required:
        schema["required"] = ["attachments"]
    return schema


MESSAGE_SCHEMAS = {
    "confirmCustomizationDetails": _text_schema(800, attachments=True),
    "confirmDeliveryDetails": _text_schema(2000),
    "legalDisclosure": _attachments_schema(required=False),
    "confirmOrderDetails": _text_schema(2000),
    "confirmServiceDetails": _text_schema(2000),
    "warranty": _attachments_schema(required=True),
    "digitalAccessKey": _text_schema(400, attachments=True),
    "unexpectedProblem": _text_schema(2000),
    "invoice": _attachments_schema(required=True),
}


def load_fixture(name):
    return json.loads((DATA / name).read_text(encoding="utf-8"))


class AmazonError(Exception):
    def __init__(self, status, code, message, details=""):
        super().__init__(message)
        self.status = status
        self.payload = {"errors": [{"code": code, "message": message, "details": details}]}


class FakeAmazon(LoopbackServer):
    """Running once made (``with FakeAmazon() as amazon:``, or ``stop()`` it); ``url`` is the
    SP-API host, ``token_url`` the LWA endpoint. One order, :data:`ORDER_ID`, allows the
    fixture's actions; :meth:`add_order` adds others."""

    def __init__(self, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, clock=time.time):
        self.client_id = client_id
        self.client_secret = client_secret
        self.clock = clock
        self.requests = []
        self.messages = []
        self.orders = {}
        self._answers = []
        self._access_tokens = {}
        self._refresh_tokens = set()
        self._lock = threading.Lock()
        actions = load_fixture("amazon_messaging_get_actions_response.json")["_links"]["actions"]
        locale = load_fixture("amazon_messaging_get_attributes_response.json")["buyer"]["locale"]
        self.add_order(ORDER_ID, [action["name"] for action in actions], locale)
        self._serve_on_loopback()
        self.token_url = self.url + TOKEN_PATH

    # test set-up ------------------------------------------------------------------------------
    def add_order(self, order_id, actions, locale="pt-BR"):
        with self._lock:
            self.orders[order_id] = {"actions": list(actions), "locale": locale}

    def grant(self):
        """A refresh token of a seller who authorized the app."""
        token = "Atzr|" + secrets.token_urlsafe(24)
        with self._lock:
            self._refresh_tokens.add(token)
        return token

    def access_token(self):
        """A valid access token, as a refresh would give."""
        with self._lock:
            return self._issue_access_token()

    def expire(self, access_token):
        with self._lock:
            self._access_tokens.pop(access_token, None)

    def revoke(self, refresh_token):
        """The seller removes the app (or a year passed): LWA answers ``invalid_grant``."""
        with self._lock:
            self._refresh_tokens.discard(refresh_token)

    def fail_next(self, status=500, payload=None, headers=None, hold=False, errors=None):
        """Answer the next request with ``status`` and ``payload`` (or an ``errors`` list)."""
        if payload is None and errors is not None:
            payload = {"errors": errors}
        with self._lock:
            self._answers.append(Answer(status, payload, dict(headers or {}), hold))

    # protocol ---------------------------------------------------------------------------------
    def _issue_access_token(self):
        token = "Atza|" + secrets.token_urlsafe(24)
        self._access_tokens[token] = self.clock() + ACCESS_TOKEN_LIFETIME
        return token

    def _answer(self, received):
        if received.path == TOKEN_PATH and received.method == "POST":
            with self._lock:
                return self._token(received)
        match = ORDER_PATH.match(received.path)
        try:
            if received.path == PARTICIPATIONS_PATH and received.method == "GET":
                with self._lock:
                    self._check_token(received)
                return Answer(200, PARTICIPATIONS, self._headers())
            if match is None:
                raise AmazonError(404, "NotFound", "The resource specified does not exist.")
            with self._lock:
                self._check_access(received)
                return self._order_call(received, match["order"], match["rest"] or "")
        except AmazonError as error:
            return Answer(error.status, error.payload, self._headers())

    def _headers(self):
        return {"x-amzn-RequestId": str(uuid.uuid4()), "x-amzn-RateLimit-Limit": "1.0"}

    def _check_access(self, received):
        self._check_token(received)
        if len(received.query.get("marketplaceIds", [])) != 1:
            raise AmazonError(400, "InvalidInput", "Invalid Input", "marketplaceIds")

    def _check_token(self, received):
        expires_at = self._access_tokens.get(received.headers.get("x-amz-access-token"))
        if expires_at is None or expires_at < self.clock():
            raise AmazonError(
                403,
                "Unauthorized",
                "Access to requested resource is denied.",
                "The access token you provided has expired.",
            )

    def _order_call(self, received, order_id, rest):
        order = self.orders.get(order_id)
        if order is None:
            raise AmazonError(404, "NotFound", "The resource specified does not exist.")
        if received.method == "GET" and rest == "":
            return Answer(200, self._actions(order_id, order, received), self._headers())
        if received.method == "GET" and rest == "/attributes":
            return Answer(200, {"buyer": {"locale": order["locale"]}}, self._headers())
        message_type = rest.removeprefix("/messages/")
        if received.method != "POST" or message_type not in MESSAGE_SCHEMAS:
            raise AmazonError(404, "NotFound", "The resource specified does not exist.")
        body = self._checked_body(received, MESSAGE_SCHEMAS[message_type])
        if message_type not in order["actions"]:
            raise AmazonError(400, "InvalidInput", "Invalid Input", "message type not available")
        self.messages.append({"order_id": order_id, "type": message_type, "body": body})
        return Answer(201, None, self._headers())

    def _actions(self, order_id, order, received):
        query = f"marketplaceIds={received.query['marketplaceIds'][0]}"
        base = f"/messaging/v1/orders/{order_id}"
        actions = [
            {"href": f"{base}/messages/{name}?{query}", "name": name} for name in order["actions"]
        ]
        return {"_links": {"actions": actions, "self": {"href": f"{base}?{query}"}}}

    def _checked_body(self, received, schema):
        if "application/json" not in received.headers.get("Content-Type", ""):
            raise AmazonError(
                415, "InvalidInput", "The request payload is in an unsupported format."
            )
        try:
            body = received.json()
            jsonschema.validate(body, schema)
        except (ValueError, jsonschema.ValidationError):
            raise AmazonError(400, "InvalidInput", "Invalid Input") from None
        return body

    def _token(self, received):
        form = received.form()
        if (
            form.get("client_id") != self.client_id
            or form.get("client_secret") != self.client_secret
        ):
            return Answer(
                401,
                {"error": "invalid_client", "error_description": "Client authentication failed"},
            )
        if form.get("grant_type") != "refresh_token":
            return Answer(400, {"error": "unsupported_grant_type", "error_description": "grant"})
        if form.get("refresh_token") not in self._refresh_tokens:
            return Answer(
                400,
                {
                    "error": "invalid_grant",
                    "error_description": "The request has an invalid grant parameter : "
                    "refresh_token",
                },
            )
        answer = load_fixture("amazon_lwa_token_response.json")
        answer.update(
            access_token=self._issue_access_token(),
            refresh_token=form["refresh_token"],
            expires_in=ACCESS_TOKEN_LIFETIME,
        )
        return Answer(200, answer)

    def _next_answer(self, received):
        with self._lock:
            forced = self._answers.pop(0) if self._answers else None
        return forced or self._answer(received)

    def _respond(self, received):
        with self._lock:
            self.requests.append(received)
        return self._next_answer(received)


# relayed e-mails --------------------------------------------------------------------------------
RELAY_MARKERS = {
    "en": ("------------- Begin message -------------", "------------- End message -------------"),
    "pt": (
        "------------- Mensagem: -------------",
        "------------- Encerrar mensagem -------------",
    ),
    "es": ("------------- Mensaje: -------------", "------------- Finalizar mensaje -------------"),
}
RELAY_FOOTER = (
    "For Your Information: To help arbitrate disputes and preserve trust and safety, we retain "
    "all messages buyers and sellers send through Amazon for two years."
)


def buyer_email(
    text,
    alias="k3x9z2mq7w1b8rt@marketplace.amazon.com.br",
    name="Maria Silva",
    subject=None,
    order_id=ORDER_ID,
    markers="pt",
    html=False,
    message_id="<relay-1@marketplace.amazon.com.br>",
    to="atendimento@loja.example.test",
    attachments=(),
    headers=None,
):
    """The RFC 822 bytes of a relayed buyer message (representative layout).

    :param markers: ``en``, ``pt``, ``es`` (the relay's text around the message) or None
    :param html: send the body as HTML only, as some relays and clients do
    :param attachments: ``(filename, mimetype, bytes)`` tuples
    """
    mail = EmailMessage()
    mail["From"] = f'"{name}" <{alias}>' if name else alias
    mail["To"] = to
    mail["Subject"] = subject if subject is not None else f"Pergunta sobre o pedido ({order_id})"
    mail["Date"] = "Thu, 01 Jan 2026 10:00:00 -0300"
    if message_id:
        mail["Message-ID"] = message_id
    for header, value in (headers or {}).items():
        mail[header] = value
    body = text
    if markers:
        start, end = RELAY_MARKERS[markers]
        order_lines = f"# {order_id}:\n1 / Produto de teste | SKU1 [ASIN: B0TESTASIN]\n\n"
        body = (
            f"Você recebeu uma mensagem.\n\n{order_lines if order_id else ''}{start}\n\n"
            f"{text}\n\n{end}\n\n{RELAY_FOOTER}\n[commMgrTok:A1B2C3D4E5F6G7]\n"
        )
    if html:
        paragraphs = "".join(f"<p>{line}</p>" for line in body.split("\n"))
        mail.set_content(f"<html><body>{paragraphs}</body></html>", subtype="html")
    else:
        mail.set_content(body)
    for filename, mimetype, data in attachments:
        maintype, _slash, subtype = mimetype.partition("/")
        mail.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return mail.as_bytes()
