# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Mercado Livre wire protocol: notifications, questions, post-sale messages, OAuth (no Odoo).

Inbound. Mercado Livre does not sign its notifications and they carry no content, so:

1. the controller decodes the body (:func:`.channels.decode_json_object`), calls
   :func:`parse_notification` with the app id (403 for another app's, 400 for a malformed
   one), maps ``Notification.seller_id`` to its tenant (refusing unknown sellers), stores the
   notification under ``dedupe_key`` and answers 200 at once: Mercado Livre waits 500 ms;
2. a job calls :meth:`MercadoLivreClient.fetch_events` with that seller's access token. It
   reads the resource (``GET /questions/{id}``, ``GET /messages/{id}?tag=post_sale``, and the
   pack's order when a messaging agent hides the buyer) and returns events: an
   :class:`.channels.InboundMessage` for a customer's message, a :class:`PlatformEvent` (kind
   and reason) for anything else. Unknown topics are events too, never errors.
   :func:`notification_event`, :func:`parse_question` and :func:`parse_post_sale_messages` are
   the pure parts. Message ids are strings and dedupe the hub's ingest.
3. lost notifications: :func:`missed_feeds_request` / :func:`parse_missed_feeds` (kept two
   days by Mercado Livre), fed to the same step 2 (:meth:`Notification.payload` is what a job
   is given, the same for both).

Threads (``thread_id``): ``question:<question id>`` is the public thread of one pre-sale
question (item id in the metadata); ``pack:<pack id>`` the private post-sale thread of a pack
(the order id when the order has no pack). The contact is the buyer (user id as a string).

Outbound (:meth:`MercadoLivreClient.send_reply` routes on the thread id):

- :func:`answer_request`: ``POST /answers``, public, at most 2000 characters, final (cannot be
  edited): a longer text is refused, never split. :meth:`MercadoLivreClient.answer_open_question`
  reads the question first (:func:`check_question_open`): an answered question is a permanent
  refusal, unless the answer is this very text (a retry after a lost answer: not posted twice).
- :func:`post_sale_requests`: ``POST /messages/packs/{pack}/sellers/{seller}?tag=post_sale``,
  at most 350 characters a message: longer texts are split at sentence or word boundaries. In
  MLB and MLC (since 2026-02-02) a messaging agent intermediates: ``to`` is the site's agent
  id (setting ``agent_ids``, MLB default 3037675074; MLC has no known id), elsewhere the
  buyer. A blocked conversation (:func:`check_conversation_open`) is a permanent refusal. A
  reply tried again (``resume``) sends only the parts not already among the seller's latest
  messages (:func:`already_sent`).

Reads for the Test button and the agents' tools (:func:`tool_descriptors`): ``GET /users/me``
(:func:`parse_me`), an order and its shipment (:func:`order_summary`), the open questions
(:func:`parse_unanswered_questions`).

There is no reply window besides the blocked conversation. Authorization: the seller allows
the app on :func:`authorization_url` (the site's host in :data:`AUTH_BASE_URLS`, PKCE from
:func:`pkce_pair`), then :meth:`MercadoLivreClient.exchange_code` gives the first tokens and
the seller's id (a refused code is a permanent error about the code). Tokens:
:func:`refresh_request` and :func:`parse_token_response` (access token 6 h; the refresh token
is single use: save the new one atomically, one refresh at a time per seller);
``invalid_grant`` raises :class:`ReauthorizationRequired`. Every failed call raises
:class:`.channels.ChannelSendError` (retryable for 408, 429, 5xx, Mercado Livre's rate-limit
error codes, timeouts and connection errors); reasons never carry tokens or secrets.
"""

import base64
import hashlib
import re
import secrets
import time
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import urlencode

import requests

from .channels import (
    AccessTokenRejected,
    ChannelSendError,
    InboundMessage,
    InboundRejected,
    PartialSendError,
    ReauthorizationRequired,
    clean_reason,
    json_or_none,
    parse_retry_after,
    send_request,
    split_text,
)

API_BASE_URL = "https://api.mercadolibre.com"
# Brazil's; each country has its own authorization host, where its sellers log in
AUTH_BASE_URL = "https://auth.mercadolivre.com.br"
AUTH_BASE_URLS = MappingProxyType(
    {
        "MLB": AUTH_BASE_URL,
        "MLA": "https://auth.mercadolibre.com.ar",
        "MLM": "https://auth.mercadolibre.com.mx",
        "MLC": "https://auth.mercadolibre.cl",
        "MCO": "https://auth.mercadolibre.com.co",
        "MLU": "https://auth.mercadolibre.com.uy",
        "MPE": "https://auth.mercadolibre.com.pe",
    }
)
# (connect, read) seconds
REQUEST_TIMEOUT = (3.05, 15)
ANSWER_MAX_LENGTH = 2000
POST_SALE_MAX_LENGTH = 350
ACCESS_TOKEN_LIFETIME = 21600
# refresh this long before the access token expires, so a job never starts with a dying token
REFRESH_MARGIN = 600
MISSED_FEEDS_PAGE = 50
PACK_MESSAGES_PAGE = 50
QUESTIONS_SEARCH_LIMIT = 50
TAG_POST_SALE = "post_sale"
# Since 2026-02-02 the post-sale messages of these sites go through a messaging agent.
MESSAGING_AGENT_SITES = frozenset({"MLB", "MLC"})
DEFAULT_AGENT_IDS = MappingProxyType({"MLB": "3037675074"})
RATE_LIMIT_ERRORS = frozenset({"too_many_requests", "local_rate_limited"})
RETRYABLE_STATUSES = frozenset({408, 429})
# fields of the token call blanked out of error reasons
FORM_SECRETS = ("client_secret", "refresh_token", "code", "code_verifier")

TOPIC_QUESTIONS = "questions"
TOPIC_MESSAGES = "messages"
# Topics a seller may subscribe to that never carry a customer's message.
OTHER_TOPICS = frozenset(
    {
        "orders_v2",
        "orders",
        "created_orders",
        "orders_feedback",
        "items",
        "items_prices",
        "pictures",
        "claims",
        "claims_actions",
        "shipments",
        "payments",
        "invoices",
        "quotations",
        "promotions",
        "public_offers",
        "public_candidates",
        "price_suggestion",
        "item_competition",
        "stock_fulfillment",
        "best_price_eligible",
        "flex",
    }
)
QUESTION_UNANSWERED = "UNANSWERED"
QUESTION_ANSWERED = "ANSWERED"
CONVERSATION_BLOCKED = "blocked"
# moderation results that keep a message from the seller
HIDDEN_MODERATIONS = frozenset({"blocked", "rejected"})

QUESTION_THREAD = "question"
PACK_THREAD = "pack"

# What a notification is, before any fetch (Notification.kind).
KIND_QUESTION = "question"
KIND_MESSAGE = "message"
# PlatformEvent kinds: nothing for the hub to answer.
EVENT_READ_RECEIPT = "read_receipt"
EVENT_OTHER_TOPIC = "other_topic"
EVENT_UNKNOWN = "unknown"
EVENT_QUESTION_ANSWERED = "question_answered"
EVENT_QUESTION_NOT_OPEN = "question_not_open"
EVENT_OWN_MESSAGE = "own_message"
EVENT_MODERATED = "moderated_message"

SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
DIGITS = re.compile(r"[0-9]{1,20}")


@dataclass(frozen=True)
class Notification:
    """A notification, checked (:func:`parse_notification`); ids are strings."""

    topic: str
    resource: str
    resource_id: str
    seller_id: str
    application_id: str
    kind: str
    actions: tuple = ()
    notification_id: str | None = None
    attempts: int | None = None
    sent: str | None = None
    received: str | None = None

    @property
    def needs_fetch(self):
        """Whether the resource must be read: a question or a new post-sale message."""
        return self.kind in (KIND_QUESTION, KIND_MESSAGE)

    @property
    def dedupe_key(self):
        """The same for every retry of one notification (``attempts`` and ``sent`` change)."""
        moment = self.received or self.sent or self.notification_id or ""
        actions = ",".join(sorted(self.actions))
        return f"{self.seller_id}:{self.topic}:{self.resource_id}:{actions}:{moment}"

    def payload(self):
        """The notification as Mercado Livre sends it (what a delivery job is given): the
        same for a notification received and one read back from ``/missed_feeds``."""
        payload = {
            "_id": self.notification_id,
            "topic": self.topic,
            "resource": self.resource,
            "user_id": self.seller_id,
            "application_id": self.application_id,
            "attempts": self.attempts,
            "sent": self.sent,
            "received": self.received,
        }
        if self.actions:
            payload["actions"] = list(self.actions)
        return {key: value for key, value in payload.items() if value is not None}


@dataclass(frozen=True)
class PlatformEvent:
    """Something Mercado Livre told us that the hub does not answer, and why."""

    kind: str
    reason: str
    thread_id: str | None = None
    resource_id: str | None = None
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ApiRequest:
    """One call to the API, built by the pure functions and run by :class:`MercadoLivreClient`."""

    method: str
    path: str
    params: dict = field(default_factory=dict)
    body: dict | None = None
    # the token call carries the client secret and the refresh token: kept out of reprs
    form: dict | None = field(default=None, repr=False)
    authorized: bool = True

    @property
    def label(self):
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class TokenSet:
    """A token answer; ``expires_at`` is a Unix time. Save both tokens together."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: float
    user_id: str | None
    scope: str | None


@dataclass(frozen=True)
class MissedFeedsPage:
    """One page of ``/missed_feeds``: the notifications, how many entries were unusable, and
    whether another page may follow (the answer has no total)."""

    notifications: list
    invalid: int
    has_more: bool


# notifications --------------------------------------------------------------------------------
def parse_notification(payload, application_id):
    """The :class:`Notification` in a decoded notification body.

    :param application_id: our app id; a notification for another app is refused
    :raise InboundRejected: 400 for a malformed notification, 403 for another app's
    """
    if not isinstance(payload, dict):
        raise InboundRejected(400, "the notification must be a JSON object")
    topic = payload.get("topic")
    if not isinstance(topic, str) or not topic:
        raise InboundRejected(400, "topic is required")
    app = _digits(payload.get("application_id"), "application_id")
    if app != str(application_id):
        raise InboundRejected(403, "the notification is for another application")
    seller_id = _digits(payload.get("user_id"), "user_id")
    resource = payload.get("resource")
    if isinstance(resource, int) and not isinstance(resource, bool):
        resource = str(resource)
    if not isinstance(resource, str) or not resource.strip("/"):
        raise InboundRejected(400, "resource is required")
    resource_id = resource.rstrip("/").rsplit("/", 1)[-1]
    if not SAFE_ID.fullmatch(resource_id) or (
        topic == TOPIC_QUESTIONS and not DIGITS.fullmatch(resource_id)
    ):
        raise InboundRejected(400, "resource does not end with a valid id")
    actions = payload.get("actions") or []
    if not isinstance(actions, list) or not all(isinstance(item, str) for item in actions):
        raise InboundRejected(400, "actions must be a list of strings")
    notification_id = payload.get("_id", payload.get("id"))
    attempts = payload.get("attempts")
    return Notification(
        topic=topic,
        resource=resource,
        resource_id=resource_id,
        seller_id=seller_id,
        application_id=app,
        kind=_notification_kind(topic, actions),
        actions=tuple(actions),
        notification_id=None if notification_id is None else str(notification_id),
        attempts=attempts if isinstance(attempts, int) else None,
        sent=_text_or_none(payload.get("sent")),
        received=_text_or_none(payload.get("received")),
    )


def _notification_kind(topic, actions):
    if topic == TOPIC_QUESTIONS:
        return KIND_QUESTION
    if topic == TOPIC_MESSAGES:
        if not actions or "created" in actions:
            return KIND_MESSAGE
        return EVENT_READ_RECEIPT if "read" in actions else EVENT_UNKNOWN
    return EVENT_OTHER_TOPIC if topic in OTHER_TOPICS else EVENT_UNKNOWN


def notification_event(notification):
    """The :class:`PlatformEvent` of a notification that needs no fetch, else None."""
    if notification.needs_fetch:
        return None
    if notification.kind == EVENT_READ_RECEIPT:
        reason = "the buyer read a post-sale message; nothing to answer"
    elif notification.kind == EVENT_OTHER_TOPIC:
        reason = f"the {notification.topic} topic carries no customer message; recorded only"
    elif notification.topic == TOPIC_MESSAGES:
        reason = f"unknown post-sale message actions {list(notification.actions)}; ignored"
    else:
        reason = f"unknown topic {notification.topic!r}; ignored"
    return PlatformEvent(
        kind=notification.kind,
        reason=reason,
        resource_id=notification.resource_id,
        metadata={"topic": notification.topic, "seller_id": notification.seller_id},
    )


def missed_feeds_request(app_id, topic=None, offset=0, limit=MISSED_FEEDS_PAGE):
    """``GET /missed_feeds``: notifications that failed every retry (kept two days). Any
    seller's access token of the app will do."""
    params = {"app_id": str(app_id), "offset": offset, "limit": limit}
    if topic:
        params["topic"] = topic
    return ApiRequest("GET", "/missed_feeds", params)


def parse_missed_feeds(payload, application_id, limit=MISSED_FEEDS_PAGE):
    """The :class:`MissedFeedsPage` of a ``/missed_feeds`` answer (``{"messages": [...]}``)."""
    entries = payload.get("messages") if isinstance(payload, dict) else None
    if not isinstance(entries, list):
        raise ChannelSendError("Mercado Livre answered /missed_feeds without a messages list.")
    notifications = []
    for entry in entries:
        try:
            notifications.append(parse_notification(entry, application_id))
        except InboundRejected:
            continue
    return MissedFeedsPage(
        notifications=notifications,
        invalid=len(entries) - len(notifications),
        has_more=len(entries) >= limit,
    )


# questions (pre-sale, public) -----------------------------------------------------------------
def question_request(question_id):
    return ApiRequest("GET", f"/questions/{_path_id(question_id, 'question id')}")


def parse_question(payload):
    """The event of a ``GET /questions/{id}`` answer: an :class:`InboundMessage` for an open
    question, a :class:`PlatformEvent` once it is answered or closed (Mercado Livre notifies
    every answer too, ours included)."""
    if not isinstance(payload, dict):
        raise ChannelSendError("Mercado Livre answered a question read without an object.")
    question_id = _response_id(payload.get("id"), "question id")
    thread = make_thread_id(QUESTION_THREAD, question_id)
    status = payload.get("status")
    if status != QUESTION_UNANSWERED:
        answered = status == QUESTION_ANSWERED
        return PlatformEvent(
            kind=EVENT_QUESTION_ANSWERED if answered else EVENT_QUESTION_NOT_OPEN,
            reason="the question is already answered"
            if answered
            else f"the question is {status or 'without status'}: it cannot be answered",
            thread_id=thread,
            resource_id=question_id,
            metadata={"status": status, "item_id": payload.get("item_id")},
        )
    asker = payload.get("from") or {}
    return InboundMessage(
        thread_id=thread,
        message_id=question_id,
        contact=_contact(_response_id(asker.get("id"), "question asker id"), asker.get("nickname")),
        text=payload.get("text") or "",
        metadata={
            "channel": "mercadolivre",
            "kind": QUESTION_THREAD,
            "public": True,
            "question_id": question_id,
            "item_id": payload.get("item_id"),
            "seller_id": _id_or_none(payload.get("seller_id")),
            "created": payload.get("date_created"),
        },
    )


def check_question_open(payload, text):
    """Whether a question (``GET /questions/{id}`` answer) may be answered with ``text``.

    :return: False when it is already answered with this very text (a try whose answer was
        lost to a timeout): nothing to post again
    :raise ChannelSendError: permanent, when it is answered otherwise or no longer open
    """
    status = payload.get("status") if isinstance(payload, dict) else None
    if status == QUESTION_UNANSWERED:
        return True
    answer = (payload.get("answer") if isinstance(payload, dict) else None) or {}
    if status == QUESTION_ANSWERED and (answer.get("text") or "").strip() == text:
        return False
    if status == QUESTION_ANSWERED:
        raise ChannelSendError(
            "This question is already answered on Mercado Livre: an answer is public and "
            "final, it cannot be changed or answered again."
        )
    raise ChannelSendError(
        f"This question is {status or 'without status'} on Mercado Livre: it can no longer "
        "be answered publicly."
    )


def answer_request(question_id, text):
    """``POST /answers``. The answer is public and final (no edit, no delete).

    :raise ChannelSendError: permanent, for an empty text or one over 2000 characters: a
        public answer is never split into several
    """
    text = (text or "").strip()
    if not text:
        raise ChannelSendError("The answer is empty.")
    if len(text) > ANSWER_MAX_LENGTH:
        raise ChannelSendError(
            f"The answer has {len(text)} characters; a Mercado Livre answer is public, "
            f"final and at most {ANSWER_MAX_LENGTH} characters: shorten it."
        )
    body = {"question_id": int(_digits_or_fail(question_id, "question id")), "text": text}
    return ApiRequest("POST", "/answers", body=body)


# post-sale messages (private, per pack) -------------------------------------------------------
def message_request(message_id):
    return ApiRequest(
        "GET", f"/messages/{_path_id(message_id, 'message id')}", {"tag": TAG_POST_SALE}
    )


def pack_messages_request(pack_id, seller_id, offset=0, limit=PACK_MESSAGES_PAGE):
    """``GET`` a pack's messages and conversation status. ``mark_as_read=false``: the bridge
    reading them must not hide them from the seller's unread list."""
    path = (
        f"/messages/packs/{_path_id(pack_id, 'pack id')}/sellers/{_path_id(seller_id, 'seller id')}"
    )
    params = {"tag": TAG_POST_SALE, "mark_as_read": "false", "offset": offset, "limit": limit}
    return ApiRequest("GET", path, params)


def order_request(order_id):
    return ApiRequest("GET", f"/orders/{_path_id(order_id, 'order id')}")


def pack_request(pack_id):
    return ApiRequest("GET", f"/packs/{_path_id(pack_id, 'pack id')}")


def shipment_request(shipment_id):
    return ApiRequest("GET", f"/shipments/{_path_id(shipment_id, 'shipment id')}")


def me_request():
    """``GET /users/me``: the user the access token belongs to."""
    return ApiRequest("GET", "/users/me")


def parse_me(payload):
    """``(user id, nickname)`` of a ``GET /users/me`` answer."""
    payload = payload if isinstance(payload, dict) else {}
    return _response_id(payload.get("id"), "user id"), payload.get("nickname") or None


def unanswered_questions_request(seller_id, limit=QUESTIONS_SEARCH_LIMIT):
    """``GET /questions/search``: the seller's questions still waiting for an answer."""
    params = {
        "seller_id": _digits_or_fail(seller_id, "seller id"),
        "status": QUESTION_UNANSWERED,
        "api_version": 4,
        "limit": limit,
    }
    return ApiRequest("GET", "/questions/search", params)


def parse_unanswered_questions(payload):
    """``{"total", "questions": [{question_id, item_id, text, date_created, buyer_id}]}`` of
    a question search answer (``api_version=4``)."""
    questions = payload.get("questions") if isinstance(payload, dict) else None
    if not isinstance(questions, list):
        raise ChannelSendError("Mercado Livre answered a question search without questions.")
    open_questions = [
        {
            "question_id": _response_id(question.get("id"), "question id"),
            "item_id": question.get("item_id"),
            "text": question.get("text") or "",
            "date_created": question.get("date_created"),
            "buyer_id": _id_or_none((question.get("from") or {}).get("id")),
        }
        for question in questions
        if isinstance(question, dict) and question.get("status") == QUESTION_UNANSWERED
    ]
    total = payload.get("total")
    return {
        "total": total if isinstance(total, int) else len(open_questions),
        "questions": open_questions,
    }


def order_summary(order, shipment=None):
    """What an agent needs of an order (``GET /orders/{id}``) and of its shipment
    (``GET /shipments/{id}``, optional): no address, no payment details."""
    if not isinstance(order, dict):
        raise ChannelSendError("Mercado Livre answered an order read without an object.")
    buyer = order.get("buyer") or {}
    items = [
        {
            "item_id": (line.get("item") or {}).get("id"),
            "title": (line.get("item") or {}).get("title"),
            "quantity": line.get("quantity"),
            "unit_price": line.get("unit_price"),
        }
        for line in order.get("order_items") or []
        if isinstance(line, dict)
    ]
    shipping = None
    shipping_id = _id_or_none((order.get("shipping") or {}).get("id"))
    if shipping_id:
        shipment = shipment if isinstance(shipment, dict) else {}
        shipping = {
            "id": shipping_id,
            "status": shipment.get("status"),
            "substatus": shipment.get("substatus"),
            "tracking_number": shipment.get("tracking_number"),
        }
    return {
        "order_id": _response_id(order.get("id"), "order id"),
        "status": order.get("status"),
        "status_detail": order.get("status_detail"),
        "date_created": order.get("date_created"),
        "total_amount": order.get("total_amount"),
        "currency_id": order.get("currency_id"),
        "pack_id": _id_or_none(order.get("pack_id")),
        "buyer": {"id": _id_or_none(buyer.get("id")), "nickname": buyer.get("nickname")},
        "items": items,
        "shipping": shipping,
    }


def attachment_request(filename, site_id):
    """``GET`` a post-sale attachment (``metadata["attachments"][].filename``) with the
    seller's token: Mercado Livre gives no public URL for it."""
    return ApiRequest(
        "GET",
        f"/messages/attachments/{_path_id(filename, 'attachment', pattern=r'[A-Za-z0-9_.-]+')}",
        {"tag": TAG_POST_SALE, "site_id": site_id},
    )


def parse_buyer_id(payload):
    """The buyer's user id in an order or a pack (``buyer.id``)."""
    buyer = payload.get("buyer") if isinstance(payload, dict) else None
    return _response_id((buyer or {}).get("id"), "buyer id")


def packs_needing_buyer(payload, seller_id, agent_ids=None):
    """Pack ids whose customer messages come from a messaging agent: their buyer must be read
    from the order (:func:`order_request`) before :func:`parse_post_sale_messages`."""
    agents = _agent_user_ids(agent_ids)
    return {
        _pack_id(message)
        for message in _messages(payload)
        if _sender(message) in agents and _sender(message) != str(seller_id)
    }


def parse_post_sale_messages(payload, seller_id, agent_ids=None, buyers=None):
    """The events of a ``GET /messages/{id}`` or pack messages answer, one per message.

    :param seller_id: the seller the token belongs to; their own messages are echoes
    :param agent_ids: site → messaging agent user id (default :data:`DEFAULT_AGENT_IDS`)
    :param buyers: pack id → buyer id; required for the packs of
        :func:`packs_needing_buyer`, since the agent hides the buyer
    :raise ValueError: a message comes from an agent and its pack's buyer is not given
    """
    agents = _agent_user_ids(agent_ids)
    buyers = buyers or {}
    conversation = payload.get("conversation_status") or {}
    return [
        _post_sale_event(message, str(seller_id), agents, buyers, conversation)
        for message in _messages(payload)
    ]


def _post_sale_event(message, seller_id, agents, buyers, conversation):
    message_id = _response_id(message.get("id"), "message id")
    pack_id = _pack_id(message)
    thread = make_thread_id(PACK_THREAD, pack_id)
    sender = _sender(message)
    if sender == seller_id:
        return PlatformEvent(
            EVENT_OWN_MESSAGE,
            "the seller's own message (ours or sent on Mercado Livre)",
            thread,
            message_id,
        )
    moderation = (message.get("message_moderation") or {}).get("status")
    if moderation in HIDDEN_MODERATIONS or message.get("status") == CONVERSATION_BLOCKED:
        return PlatformEvent(
            EVENT_MODERATED,
            f"Mercado Livre withheld this message (moderation {moderation})",
            thread,
            message_id,
        )
    via_agent = sender in agents
    buyer_id = buyers.get(pack_id) or (None if via_agent else sender)
    if buyer_id is None:
        raise ValueError(f"the buyer of pack {pack_id} is needed: a messaging agent hides it")
    name = None if via_agent else (message.get("from") or {}).get("name")
    return InboundMessage(
        thread_id=thread,
        message_id=message_id,
        contact=_contact(str(buyer_id), name),
        text=message.get("text") or "",
        metadata={
            "channel": "mercadolivre",
            "kind": PACK_THREAD,
            "public": False,
            "pack_id": pack_id,
            "seller_id": seller_id,
            "buyer_id": str(buyer_id),
            "site_id": message.get("site_id"),
            "sender_id": sender,
            "via_messaging_agent": via_agent,
            "created": (message.get("message_date") or {}).get("created"),
            "conversation_status": conversation.get("status"),
            "attachments": _attachments(message.get("message_attachments")),
        },
    )


def check_conversation_open(payload):
    """Refuse to write into a blocked post-sale conversation (pack messages answer).

    :raise ChannelSendError: permanent, naming Mercado Livre's reason (``substatus``)
    """
    conversation = payload.get("conversation_status") if isinstance(payload, dict) else None
    if (conversation or {}).get("status") == CONVERSATION_BLOCKED:
        why = conversation.get("substatus") or "no reason given"
        raise ChannelSendError(
            f"Mercado Livre blocked this post-sale conversation ({why}): no message can be "
            "sent to the buyer."
        )


def post_sale_recipient(site_id, buyer_id=None, agent_ids=None):
    """``to.user_id`` of a post-sale message: the site's messaging agent in MLB and MLC,
    the buyer elsewhere.

    :raise ChannelSendError: permanent, when the id needed is unknown
    """
    if site_id in MESSAGING_AGENT_SITES:
        agent = (DEFAULT_AGENT_IDS if agent_ids is None else agent_ids).get(site_id)
        if not agent:
            raise ChannelSendError(
                f"No messaging agent id is set for {site_id}: its post-sale messages go to "
                "Mercado Livre's agent, not to the buyer."
            )
        return int(_digits_or_fail(agent, "messaging agent id"))
    if not buyer_id:
        raise ChannelSendError("The buyer id is needed to send a post-sale message.")
    return int(_digits_or_fail(buyer_id, "buyer id"))


def post_sale_requests(
    pack_id, seller_id, text, site_id, buyer_id=None, agent_ids=None, max_length=None
):
    """The ``POST`` of each part of a post-sale reply (split at sentence or word boundaries).

    :param max_length: the pack's ``seller_max_message_length``, else 350
    """
    recipient = post_sale_recipient(site_id, buyer_id, agent_ids)
    limit = max_length if isinstance(max_length, int) and max_length > 0 else POST_SALE_MAX_LENGTH
    parts = split_text(text or "", limit)
    if not parts:
        raise ChannelSendError("The message is empty.")
    path = (
        f"/messages/packs/{_path_id(pack_id, 'pack id')}/sellers/{_path_id(seller_id, 'seller id')}"
    )
    sender = int(_digits_or_fail(seller_id, "seller id"))
    return [
        ApiRequest(
            "POST",
            path,
            {"tag": TAG_POST_SALE},
            body={"from": {"user_id": sender}, "to": {"user_id": recipient}, "text": part},
        )
        for part in parts
    ]


def already_sent(payload, seller_id, texts):
    """The ids of the leading parts ``texts`` of a reply that are already the seller's latest
    messages in a pack's messages answer, oldest first (empty when none is).

    A reply tried again after a failure (a part refused, or sent but its answer lost to a
    timeout) continues after them: Mercado Livre's own record of the conversation says what
    went out, so the buyer gets each part once.
    """
    own = [
        message
        for message in sorted(_messages(payload), key=_created)
        if _sender(message) == str(seller_id)
    ]
    for count in range(min(len(texts), len(own)), 0, -1):
        latest = own[-count:]
        if [message.get("text") for message in latest] == list(texts[:count]):
            return [str(message.get("id")) for message in latest]
    return []


def pack_site_id(payload):
    """The site (``MLB``...) of a pack's messages, or None when it has none."""
    for message in _messages(payload):
        if message.get("site_id"):
            return message["site_id"]
    return None


# threads --------------------------------------------------------------------------------------
def make_thread_id(kind, resource_id):
    return f"{kind}:{resource_id}"


def parse_thread_id(thread_id):
    """``(kind, id)`` of a thread id made here; ValueError for any other."""
    kind, _, resource_id = (thread_id or "").partition(":")
    if kind not in (QUESTION_THREAD, PACK_THREAD) or not DIGITS.fullmatch(resource_id):
        raise ValueError("not a Mercado Livre thread id")
    return kind, resource_id


# OAuth ----------------------------------------------------------------------------------------
def authorization_url(client_id, redirect_uri, state=None, code_challenge=None, auth_base=None):
    """Where the seller authorizes the app (with PKCE when ``code_challenge`` is given)."""
    params = {"response_type": "code", "client_id": str(client_id), "redirect_uri": redirect_uri}
    if state:
        params["state"] = state
    if code_challenge:
        params["code_challenge"] = code_challenge
        params["code_challenge_method"] = "S256"
    return f"{(auth_base or AUTH_BASE_URL).rstrip('/')}/authorization?{urlencode(params)}"


def pkce_pair():
    """``(code_verifier, code_challenge)`` for one authorization (S256)."""
    verifier = secrets.token_urlsafe(64)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def code_request(client_id, client_secret, code, redirect_uri, code_verifier=None):
    """``POST /oauth/token`` exchanging the authorization code (single use)."""
    form = {
        "grant_type": "authorization_code",
        "client_id": str(client_id),
        "client_secret": client_secret,
        "code": code,
        "redirect_uri": redirect_uri,
    }
    if code_verifier:
        form["code_verifier"] = code_verifier
    return ApiRequest("POST", "/oauth/token", form=form, authorized=False)


def refresh_request(client_id, client_secret, refresh_token):
    """``POST /oauth/token`` with the (single-use) refresh token."""
    form = {
        "grant_type": "refresh_token",
        "client_id": str(client_id),
        "client_secret": client_secret,
        "refresh_token": refresh_token,
    }
    return ApiRequest("POST", "/oauth/token", form=form, authorized=False)


def parse_token_response(payload, now=None):
    """The :class:`TokenSet` of a token answer; ``expires_at`` = now + ``expires_in``.

    :raise ChannelSendError: permanent, when a token is missing (no refresh token means the
        app lacks the ``offline_access`` scope)
    """
    payload = payload if isinstance(payload, dict) else {}
    access_token = payload.get("access_token")
    refresh_token = payload.get("refresh_token")
    if not isinstance(access_token, str) or not access_token:
        raise ChannelSendError("Mercado Livre's token answer has no access token.")
    if not isinstance(refresh_token, str) or not refresh_token:
        raise ChannelSendError(
            "Mercado Livre's token answer has no refresh token: the app needs the "
            "offline_access scope."
        )
    lifetime = payload.get("expires_in")
    if not isinstance(lifetime, int) or isinstance(lifetime, bool) or lifetime <= 0:
        lifetime = ACCESS_TOKEN_LIFETIME
    now = time.time() if now is None else now
    return TokenSet(
        access_token=access_token,
        refresh_token=refresh_token,
        expires_at=now + lifetime,
        user_id=_id_or_none(payload.get("user_id")),
        scope=payload.get("scope"),
    )


def needs_refresh(expires_at, now=None, margin=REFRESH_MARGIN):
    """Whether an access token expiring at ``expires_at`` should be refreshed now."""
    now = time.time() if now is None else now
    return expires_at is None or now >= expires_at - margin


# answers of the API -----------------------------------------------------------------------------
def api_error(status, headers, payload, label, hide=(), retry_statuses=(), bearer=True):
    """The :class:`ChannelSendError` for a non-2xx answer of ``label`` (``"GET /path"``).

    :param hide: secrets to blank out of Mercado Livre's error text
    :param retry_statuses: more statuses to treat as retryable for this call
    :param bearer: whether the call carried an access token (a 401 then means "refresh it")
    """
    payload = payload if isinstance(payload, dict) else {}
    code = payload.get("error") if isinstance(payload.get("error"), str) else None
    detail = clean_reason(
        payload.get("message") or payload.get("error_description") or code or "", hide
    )
    reason = f"Mercado Livre answered HTTP {status} to {label}"
    reason += f": {detail}." if detail else "."
    if code == "invalid_grant":
        return ReauthorizationRequired(
            "Mercado Livre refused the refresh token (invalid_grant: expired, revoked or "
            "already used): the seller must authorize the app again.",
            status=status,
        )
    if status == 401 and bearer:
        return AccessTokenRejected(
            reason + " Refresh the access token.", retryable=True, status=status
        )
    retryable = (
        status in RETRYABLE_STATUSES
        or status >= 500
        or code in RATE_LIMIT_ERRORS
        or status in retry_statuses
    )
    retry_after = parse_retry_after((headers or {}).get("Retry-After")) if retryable else None
    return ChannelSendError(reason, retryable=retryable, retry_after=retry_after, status=status)


def sent_message_id(payload):
    """Mercado Livre's id of a message just sent (the message object, or its envelope)."""
    if isinstance(payload, dict):
        if payload.get("id") is not None:
            return str(payload["id"])
        messages = payload.get("messages")
        if isinstance(messages, list) and messages and isinstance(messages[0], dict):
            return _id_or_none(messages[0].get("id"))
    return None


class MercadoLivreClient:
    """Runs :class:`ApiRequest` s against the API (``base_url`` configurable for tests).

    No retry inside: every failure is a :class:`.channels.ChannelSendError` saying whether the
    job may retry. Tokens are passed per call and never kept.
    """

    def __init__(self, base_url=API_BASE_URL, timeout=REQUEST_TIMEOUT, session=None):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._http = session or requests

    def call(self, request, access_token=None, retry_statuses=()):
        """The JSON answer of ``request`` (None when it has no JSON body)."""
        headers = {"Accept": "application/json"}
        form = request.form or {}
        hide = tuple(form[name] for name in FORM_SECRETS if form.get(name))
        if request.authorized:
            headers["Authorization"] = f"Bearer {access_token}"
            hide += (access_token,)
        response = send_request(
            self._http,
            request.method,
            self.base_url + request.path,
            f"Mercado Livre ({request.label})",
            params=request.params or None,
            json=request.body,
            data=request.form,
            headers=headers,
            timeout=self.timeout,
        )
        payload = json_or_none(response)
        if 200 <= response.status_code < 300:
            return payload
        raise api_error(
            response.status_code,
            response.headers,
            payload,
            request.label,
            hide,
            retry_statuses,
            bearer=request.authorized,
        )

    # inbound
    def fetch_events(self, notification, access_token, agent_ids=None, buyers=None):
        """The events of a notification (see the module doc); ``buyers`` (pack id → buyer
        id, e.g. cached from earlier events' metadata) saves order reads."""
        event = notification_event(notification)
        if event is not None:
            return [event]
        if notification.kind == KIND_QUESTION:
            payload = self.call(question_request(notification.resource_id), access_token)
            return [parse_question(payload)]
        # "could not be retrieved from storage" right after the notification: read it later
        payload = self.call(
            message_request(notification.resource_id), access_token, retry_statuses=(404,)
        )
        return self._post_sale_events(
            payload, notification.seller_id, access_token, agent_ids, buyers
        )

    def fetch_pack_events(self, pack_id, seller_id, access_token, agent_ids=None, buyers=None):
        """The events of every message of a pack (e.g. to recover a thread)."""
        events = []
        offset = 0
        while True:
            request = pack_messages_request(pack_id, seller_id, offset=offset)
            payload = self.call(request, access_token)
            events += self._post_sale_events(payload, seller_id, access_token, agent_ids, buyers)
            page = _messages(payload)
            total = ((payload or {}).get("paging") or {}).get("total") or 0
            offset += len(page)
            if not page or offset >= total:
                return events

    def _post_sale_events(self, payload, seller_id, access_token, agent_ids, buyers):
        if not isinstance(payload, dict):
            raise ChannelSendError("Mercado Livre answered a message read without an object.")
        known = dict(buyers or {})
        for pack_id in packs_needing_buyer(payload, seller_id, agent_ids) - set(known):
            known[pack_id] = self.fetch_buyer_id(pack_id, access_token)
        return parse_post_sale_messages(payload, seller_id, agent_ids, known)

    def fetch_buyer_id(self, pack_id, access_token):
        """The buyer of a pack: its order when the pack id is an order id, else the pack."""
        try:
            return parse_buyer_id(self.call(order_request(pack_id), access_token))
        except ChannelSendError as error:
            if error.status != 404:
                raise
        return parse_buyer_id(self.call(pack_request(pack_id), access_token))

    def missed_feeds(self, access_token, app_id, topic=None, offset=0, limit=MISSED_FEEDS_PAGE):
        payload = self.call(missed_feeds_request(app_id, topic, offset, limit), access_token)
        return parse_missed_feeds(payload, app_id, limit)

    # reads for the Test button and the agents' tools
    def me(self, access_token):
        """``(user id, nickname)`` of the token's user."""
        return parse_me(self.call(me_request(), access_token))

    def order(self, order_id, access_token):
        """:func:`order_summary` of an order of the token's seller, with its shipment's
        status when it has one."""
        order = self.call(order_request(order_id), access_token)
        shipping_id = _id_or_none(((order or {}).get("shipping") or {}).get("id"))
        shipment = self.call(shipment_request(shipping_id), access_token) if shipping_id else None
        return order_summary(order, shipment)

    def unanswered_questions(self, seller_id, access_token, limit=QUESTIONS_SEARCH_LIMIT):
        request = unanswered_questions_request(seller_id, limit)
        return parse_unanswered_questions(self.call(request, access_token))

    # outbound
    def send_reply(self, thread_id, text, access_token, seller_id, **options):
        """Send ``text`` into a thread of :func:`parse_thread_id`; Mercado Livre's ids.

        ``options`` go to :meth:`send_post_sale` (``site_id``, ``buyer_id``, ``agent_ids``,
        ``skip``); a question's answer needs none and ignores them.
        """
        kind, resource_id = parse_thread_id(thread_id)
        if kind == QUESTION_THREAD:
            return [self.answer_question(resource_id, text, access_token)]
        return self.send_post_sale(resource_id, seller_id, text, access_token, **options)

    def answer_question(self, question_id, text, access_token):
        """Answer a question (public, final); the question id. A timeout may still have
        published the answer: re-read the question before answering again."""
        payload = self.call(answer_request(question_id, text), access_token)
        return sent_message_id(payload) or str(question_id)

    def answer_open_question(self, question_id, text, access_token):
        """Answer a question after reading it (:func:`check_question_open`): an answer
        already published with this text (a retry) is not posted twice; the question id."""
        request = answer_request(question_id, text)  # an unfit text fails before any call
        question = self.call(question_request(question_id), access_token)
        if not check_question_open(question, request.body["text"]):
            return str(question_id)
        return sent_message_id(self.call(request, access_token)) or str(question_id)

    def send_post_sale(
        self,
        pack_id,
        seller_id,
        text,
        access_token,
        site_id=None,
        buyer_id=None,
        agent_ids=None,
        skip=0,
        resume=False,
    ):
        """Send a post-sale reply, split as needed; the ids of the parts sent.

        Reads the conversation first: refused when blocked, and its site and length limit
        apply. ``skip``: parts already sent (see :class:`~.channels.PartialSendError`);
        ``resume``: a retry, which reads the conversation's latest messages and sends only the
        parts not found there (:func:`already_sent`).
        """
        status = self.call(pack_messages_request(pack_id, seller_id, limit=1), access_token)
        check_conversation_open(status)
        site_id = site_id or pack_site_id(status)
        if not site_id:
            raise ChannelSendError("The site of this pack is unknown: pass site_id.")
        if site_id not in MESSAGING_AGENT_SITES and not buyer_id:
            buyer_id = self.fetch_buyer_id(pack_id, access_token)
        parts = post_sale_requests(
            pack_id,
            seller_id,
            text,
            site_id,
            buyer_id,
            agent_ids,
            max_length=(status or {}).get("seller_max_message_length"),
        )
        done = []
        if resume:
            latest = self._latest_pack_messages(pack_id, seller_id, status, access_token)
            done = already_sent(latest, seller_id, [part.body["text"] for part in parts])
        return done + self.send_all(parts, access_token, skip=max(skip, len(done)))

    def _latest_pack_messages(self, pack_id, seller_id, status, access_token):
        """The answer holding a pack's latest page of messages (``status``: a first read)."""
        total = ((status or {}).get("paging") or {}).get("total") or 0
        if total <= len(_messages(status)):
            return status
        offset = max(0, total - PACK_MESSAGES_PAGE)
        request = pack_messages_request(pack_id, seller_id, offset=offset)
        return self.call(request, access_token)

    def send_all(self, parts, access_token, skip=0):
        """POST each request in order after the first ``skip``; the ids of those sent."""
        sent_ids = []
        for index, request in enumerate(parts):
            if index < skip:
                continue
            try:
                sent_ids.append(sent_message_id(self.call(request, access_token)))
            except ChannelSendError as error:
                if index:
                    raise PartialSendError(error, sent_ids, parts_sent=index) from None
                raise
        return sent_ids

    # tokens
    def refresh(self, client_id, client_secret, refresh_token, now=None):
        """New tokens for a refresh token, which is spent from now on.

        A timeout may have spent it too: retry once with the same token; an
        :class:`ReauthorizationRequired` then means the seller must authorize again.
        """
        payload = self.call(refresh_request(client_id, client_secret, refresh_token))
        return parse_token_response(payload, now)

    def exchange_code(self, client_id, client_secret, code, redirect_uri, code_verifier=None):
        """The seller's first :class:`TokenSet` (``user_id`` = the seller who authorized).

        :raise ChannelSendError: permanent when Mercado Livre refuses the code
        """
        request = code_request(client_id, client_secret, code, redirect_uri, code_verifier)
        try:
            payload = self.call(request)
        except ReauthorizationRequired as error:
            # invalid_grant here is about the code, not a refresh token
            raise ChannelSendError(
                "Mercado Livre refused the authorization code (invalid_grant): it expired, was "
                "already used, or was issued for another redirect URI or PKCE verifier.",
                status=error.status,
            ) from None
        return parse_token_response(payload)


# tools for the agents -------------------------------------------------------------------------
TOOL_GET_ORDER = "mercadolivre_get_order"
TOOL_UNANSWERED_QUESTIONS = "mercadolivre_unanswered_questions"
# they read the seller's account on Mercado Livre: read-only, but the world they read changes
_READ_ONLY = {"read_only": True, "destructive": False, "idempotent": True, "open_world": True}


def tool_descriptors():
    """The MCP definitions of the channel's tools (the seller is the channel's, never an
    argument)."""
    return [
        {
            "name": TOOL_GET_ORDER,
            "description": (
                "A Mercado Livre order of this seller: status, items, buyer nickname and "
                "shipping status. The order id is the number shown in the sale (also the pack "
                "id of a post-sale conversation without cart)."
            ),
            "input_schema": {
                "type": "object",
                "properties": {
                    "order_id": {"type": "string", "pattern": "^[0-9]{1,20}$"},
                },
                "required": ["order_id"],
                "additionalProperties": False,
            },
            "annotations": dict(_READ_ONLY),
        },
        {
            "name": TOOL_UNANSWERED_QUESTIONS,
            "description": (
                "The pre-sale questions of this seller still waiting for an answer on Mercado "
                "Livre: id, listing (item id), text, date and asker."
            ),
            "input_schema": {
                "type": "object",
                "properties": {
                    "limit": {"type": "integer", "minimum": 1, "maximum": QUESTIONS_SEARCH_LIMIT},
                },
                "additionalProperties": False,
            },
            "annotations": dict(_READ_ONLY),
        },
    ]


# helpers --------------------------------------------------------------------------------------
def _messages(payload):
    messages = payload.get("messages") if isinstance(payload, dict) else None
    if not isinstance(messages, list):
        raise ChannelSendError("Mercado Livre answered a message read without a messages list.")
    return [message for message in messages if isinstance(message, dict)]


def _pack_id(message):
    for resource in message.get("message_resources") or []:
        if isinstance(resource, dict) and resource.get("name") == "packs":
            return _response_id(resource.get("id"), "pack id")
    raise ChannelSendError("A Mercado Livre message names no pack.")


def _created(message):
    return (message.get("message_date") or {}).get("created") or ""


def _sender(message):
    return _id_or_none((message.get("from") or {}).get("user_id"))


def _agent_user_ids(agent_ids):
    return {
        str(value) for value in (DEFAULT_AGENT_IDS if agent_ids is None else agent_ids).values()
    }


def _attachments(value):
    """Attachment files named for a later authorized download (:func:`attachment_request`)."""
    return [
        {
            "filename": item.get("filename"),
            "name": item.get("original_filename"),
            "mimetype": item.get("type"),
            "size": item.get("size"),
        }
        for item in value or []
        if isinstance(item, dict) and item.get("filename")
    ]


def _contact(contact_id, name=None):
    return {"id": contact_id, "name": name or None, "phone": None, "email": None}


def _digits(value, name):
    """A numeric id of an inbound notification, as a string; 400 otherwise."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not DIGITS.fullmatch(value):
        raise InboundRejected(400, f"{name} must be a numeric id")
    return value


def _digits_or_fail(value, name):
    value = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(value, str) or not DIGITS.fullmatch(value):
        raise ChannelSendError(f"The {name} must be numeric.")
    return value


def _path_id(value, name, pattern=None):
    """An id safe to put in a URL path (no slash, no dot-dot)."""
    value = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    valid = isinstance(value, str) and re.fullmatch(pattern or SAFE_ID.pattern, value)
    if not valid or ".." in value:
        raise ChannelSendError(f"The {name} is not a valid Mercado Livre id.")
    return value


def _response_id(value, name):
    identifier = _id_or_none(value)
    if identifier is None:
        raise ChannelSendError(f"Mercado Livre answered without a {name}.")
    return identifier


def _id_or_none(value):
    if isinstance(value, bool) or value in (None, ""):
        return None
    return str(value) if isinstance(value, (int, str)) else None


def _text_or_none(value):
    return value if isinstance(value, str) and value else None
