# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Wire logic of the channel connectors, plain Python (no Odoo import).

The custom "signed webhook" channel speaks JSON both ways, signed like Chatwoot signs its
webhooks: ``X-MCP-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>``,
``X-MCP-Timestamp`` (Unix seconds) and ``X-MCP-Delivery`` (a UUID per delivery).

- Inbound (the outside app posts a customer's message to ``/mcp/channel/<token>``):
  :func:`check_envelope`, :func:`decode_json_object` and :func:`parse_message` turn the raw
  request into an :class:`InboundMessage` or raise :class:`InboundRejected` with the HTTP
  status and a reason safe to answer.
- Outbound (a reply of an agent or of the AI goes back to the app): :func:`reply_body` builds
  the body, :func:`post_signed` signs and posts it and turns the answer into a result or a
  :class:`ChannelSendError` saying whether the delivery may be retried.

The signing function is passed in (the integrator's ``signing.sign``): this package is loaded
without Odoo, so it does not import the integrator's.
"""

import base64
import binascii
import email.utils
import json
import math
import re
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests

MAX_INBOUND_BYTES = 1024 * 1024
# Meta batches up to 1000 updates in a POST of up to 3 MB.
MAX_PLATFORM_BYTES = 3 * 1024 * 1024
MAX_URL_LENGTH = 2048
MAX_ID_LENGTH = 255
MAX_REASON_LENGTH = 200
# (connect, read) seconds: a reply URL that does not answer must not hold the bridge's job
SEND_TIMEOUT = (3.05, 10)
SIGNATURE_HEADER = "X-MCP-Signature"
TIMESTAMP_HEADER = "X-MCP-Timestamp"
DELIVERY_HEADER = "X-MCP-Delivery"
JSON_MEDIA_TYPE = "application/json"
CONTACT_FIELDS = ("name", "phone", "email")
ATTACHMENT_SOURCES = ("url", "data")
URL_SCHEMES = ("http", "https")
# Statuses after which the same delivery may succeed later: rate limited, request timeout,
# and every server error.
RETRYABLE_STATUSES = frozenset({408, 429})
# What check_reply_url finds wrong with a reply URL.
REPLY_URL_MISSING = "missing"
REPLY_URL_TOO_LONG = "too_long"
REPLY_URL_NOT_WEB = "not_web"


class ChannelSendError(Exception):
    """A reply could not be delivered to the channel.

    :ivar reason: short text safe to log, store and show (never a secret)
    :ivar retryable: whether sending the same reply again later may work (rate limit, server
        error, timeout, connection error); a permanent failure (another 4xx) is not retried
    :ivar retry_after: seconds the channel asked to wait (``Retry-After``), or None
    :ivar status: the HTTP status the channel answered, when it answered
    """

    def __init__(self, reason, retryable=False, retry_after=None, status=None):
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status


class PartialSendError(ChannelSendError):
    """A reply split in parts failed after some of them went out. The hub remembers
    ``sent_ids`` and gives the next try the number of parts to skip
    (``metadata["parts_sent"]``): no part reaches the customer twice.

    :ivar sent_ids: the platform's ids of the parts this try sent
    :ivar parts_sent: the parts of the reply sent in all, earlier tries included
    :ivar unsent: what is left to send (the platform's request bodies), when known
    """

    def __init__(self, cause, sent_ids, parts_sent=None, unsent=()):
        parts_sent = len(sent_ids) if parts_sent is None else parts_sent
        super().__init__(
            f"{cause.reason} ({parts_sent} part(s) of the reply were already sent.)",
            # a token refused mid-reply is renewed by the next try, which sends the rest
            retryable=cause.retryable or isinstance(cause, AccessTokenRejected),
            retry_after=cause.retry_after,
            status=cause.status,
        )
        self.sent_ids = list(sent_ids)
        self.parts_sent = parts_sent
        self.unsent = list(unsent)


class ReauthorizationRequired(ChannelSendError):
    """The platform refused the authorization for good (``invalid_grant``, a revoked token, a
    lapsed yearly authorization): the seller or page owner must authorize the app again.
    Permanent."""


class AccessTokenRejected(ChannelSendError):
    """The platform refused the access token (expired early or invalid): refresh it, then
    send the same request again once."""


@dataclass(frozen=True)
class SkippedEvent:
    """What a platform sent that is not a customer's message to answer.

    :ivar kind: what it is (``echo``, ``bounce``, ``order_status``, ``unknown``...)
    :ivar reason: why it is not answered, safe to log
    :ivar metadata: the ids it carries (shop id, message id, sender...)
    """

    kind: str
    reason: str
    metadata: dict = field(default_factory=dict)


class InboundRejected(Exception):
    """An inbound request refused: ``status`` is the HTTP status to answer, ``reason`` a short
    text safe to answer and log (it never quotes the body)."""

    def __init__(self, status, reason):
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class InboundMessage:
    """A customer's message as the hub takes it (``mcp.integrator.ingest``)."""

    thread_id: str
    message_id: str
    contact: dict
    text: str
    attachments: list = field(default_factory=list)
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True)
class InboundRequest:
    """What a platform sent to a channel's inbound URL, as the platform code needs it.

    :ivar method: ``GET`` (handshakes) or ``POST``
    :ivar body: the raw bytes, exactly as received (signatures are over them)
    :ivar headers: the request's headers (a case-insensitive mapping)
    :ivar args: the query string's parameters (first value of each)
    """

    method: str
    body: bytes
    headers: object
    args: dict


@dataclass(frozen=True)
class InboundAnswer:
    """What the inbound URL answers: a platform waits for its status within its deadline."""

    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain"

    @classmethod
    def json(cls, value, status=200):
        return cls(status, json.dumps(value).encode(), JSON_MEDIA_TYPE)

    @classmethod
    def refused(cls, rejected):
        """The answer to an :class:`InboundRejected`."""
        return cls.json({"error": rejected.reason}, rejected.status)


# inbound --------------------------------------------------------------------------------------
def check_envelope(length, content_type):
    """Refuse a body of ``length`` bytes over the limit (413) or not declared JSON (415)."""
    if length is not None and length > MAX_INBOUND_BYTES:
        raise InboundRejected(413, f"the body is larger than {MAX_INBOUND_BYTES} bytes")
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != JSON_MEDIA_TYPE:
        raise InboundRejected(415, f"the content type must be {JSON_MEDIA_TYPE}")


def decode_json_object(raw):
    """The JSON object in the UTF-8 bytes ``raw``; 400 for anything else."""
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InboundRejected(400, "the body is not valid JSON") from None
    if not isinstance(value, dict):
        raise InboundRejected(400, "the body must be a JSON object")
    return value


def _refuse_constant(name):
    raise ValueError(f"{name} is not JSON")


def parse_message(payload):
    """The :class:`InboundMessage` in the decoded ``payload``; 400 with the field at fault.

    Fields: ``thread_id`` and ``message_id`` (string or integer, required), ``contact``
    (object with ``id``, and optionally ``name``, ``phone``, ``email``), ``text`` (string,
    may be empty when there are attachments), ``attachments`` (list of objects with ``name``,
    ``mimetype`` and either ``url`` or base64 ``data``), ``metadata`` (object). Other keys are
    ignored.
    """
    text = payload.get("text")
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise InboundRejected(400, "text must be a string")
    attachments = _attachments(payload.get("attachments"))
    if not text.strip() and not attachments:
        raise InboundRejected(400, "the message has neither text nor attachments")
    metadata = payload.get("metadata")
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise InboundRejected(400, "metadata must be an object")
    return InboundMessage(
        thread_id=_identifier(payload.get("thread_id"), "thread_id"),
        message_id=_identifier(payload.get("message_id"), "message_id"),
        contact=_contact(payload.get("contact")),
        text=text,
        attachments=attachments,
        metadata=metadata,
    )


def _identifier(value, name):
    """A required id as a string; integers are accepted (booleans are not integers here)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise InboundRejected(400, f"{name} is required (a string or an integer)")
    if len(value) > MAX_ID_LENGTH:
        raise InboundRejected(400, f"{name} is longer than {MAX_ID_LENGTH} characters")
    return value


def _contact(value):
    if not isinstance(value, dict):
        raise InboundRejected(400, "contact is required (an object with an id)")
    contact = {"id": _identifier(value.get("id"), "contact.id")}
    for name in CONTACT_FIELDS:
        item = value.get(name)
        if item is not None and not isinstance(item, str):
            raise InboundRejected(400, f"contact.{name} must be a string")
        contact[name] = item or None
    return contact


def _attachments(value):
    if value is None:
        return []
    if not isinstance(value, list):
        raise InboundRejected(400, "attachments must be a list")
    return [_attachment(item, index) for index, item in enumerate(value)]


def _attachment(item, index):
    where = f"attachments[{index}]"
    if not isinstance(item, dict):
        raise InboundRejected(400, f"{where} must be an object")
    attachment = {}
    for name in ("name", "mimetype"):
        value = item.get(name)
        if value is not None and not isinstance(value, str):
            raise InboundRejected(400, f"{where}.{name} must be a string")
        attachment[name] = value or None
    sources = [name for name in ATTACHMENT_SOURCES if item.get(name) is not None]
    if len(sources) != 1:
        raise InboundRejected(400, f"{where} needs either url or data")
    source = sources[0]
    value = item[source]
    if source == "url":
        if not isinstance(value, str) or not _is_web_url(value):
            raise InboundRejected(400, f"{where}.url must be an http or https URL")
    elif not isinstance(value, str) or not _is_base64(value):
        raise InboundRejected(400, f"{where}.data must be base64")
    attachment[source] = value
    return attachment


def _is_base64(value):
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


# outbound -------------------------------------------------------------------------------------
def check_reply_url(url):
    """What is wrong with ``url`` as a reply URL: ``REPLY_URL_MISSING``,
    ``REPLY_URL_TOO_LONG`` or ``REPLY_URL_NOT_WEB``; None when it can receive replies."""
    if not url:
        return REPLY_URL_MISSING
    if len(url) > MAX_URL_LENGTH:
        return REPLY_URL_TOO_LONG
    if not _is_web_url(url):
        return REPLY_URL_NOT_WEB
    return None


def _is_web_url(url):
    try:
        parts = urlsplit(url)
        return parts.scheme in URL_SCHEMES and bool(parts.hostname)
    except ValueError:  # e.g. an invalid port or IPv6 literal
        return False


def reply_body(thread_id, contact, text, attachments=None, metadata=None):
    """The JSON bytes of a reply sent to the channel's reply URL."""
    reply = {
        "thread_id": str(thread_id),
        "contact": contact,
        "text": text or "",
        "attachments": list(attachments or []),
        "metadata": dict(metadata or {}),
    }
    return json.dumps(reply, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def signed_headers(secret, body, sign, timestamp=None, delivery=None):
    """The headers of a signed JSON delivery of ``body``.

    :param sign: ``sign(secret, timestamp, body) -> "sha256=<hex>"`` (the integrator's)
    """
    timestamp = int(time.time()) if timestamp is None else int(timestamp)
    return {
        "Content-Type": f"{JSON_MEDIA_TYPE}; charset=utf-8",
        "Accept": JSON_MEDIA_TYPE,
        SIGNATURE_HEADER: sign(secret, timestamp, body),
        TIMESTAMP_HEADER: str(timestamp),
        DELIVERY_HEADER: delivery or str(uuid.uuid4()),
    }


def post_signed(url, body, secret, sign, timeout=SEND_TIMEOUT, session=None, delivery=None):
    """POST ``body`` signed with ``secret`` to ``url``; the result of an accepted delivery.

    ``delivery``: the delivery id, the same on every try of one reply (the receiver may
    deduplicate on it); a new UUID when not given.

    :return: ``{"external_id": <the receiver's "message_id" as a string, or None>}``
    :raise ChannelSendError: retryable for 408, 429, 5xx, a timeout or a connection error
        (with the ``Retry-After`` the receiver sent); permanent for any other answer. The
        reason names the host only: a reply URL may carry a token in its path or query.
    """
    host = urlsplit(url).hostname or "?"
    response = send_request(
        session or requests,
        "POST",
        url,
        f"The reply URL at {host}",
        data=body,
        headers=signed_headers(secret, body, sign, delivery=delivery),
        timeout=timeout,
    )
    return classify_response(
        response.status_code, response.headers, json_or_none(response), host, secret
    )


def classify_response(status, headers, payload, host, secret=None):
    """The result of a delivery the receiver answered ``status`` (with JSON ``payload``).

    :return: ``{"external_id": ...}`` for a 2xx answer
    :raise ChannelSendError: otherwise, retryable for 408, 429 and 5xx
    """
    if 200 <= status < 300:
        message_id = payload.get("message_id") if isinstance(payload, dict) else None
        return {"external_id": None if message_id in (None, "") else str(message_id)}
    retryable = status in RETRYABLE_STATUSES or status >= 500
    reason = f"The reply URL at {host} answered HTTP {status}"
    detail = _error_detail(payload, secret)
    reason += f": {detail}." if detail else "."
    raise ChannelSendError(
        reason,
        retryable=retryable,
        retry_after=parse_retry_after(headers.get("Retry-After")) if retryable else None,
        status=status,
    )


def json_or_none(response, objects_only=False):
    """The answer's JSON (only an object with ``objects_only``), or None."""
    try:
        value = response.json()
    except ValueError:
        return None
    return value if isinstance(value, dict) or not objects_only else None


def send_request(session, method, url, service, **kwargs):
    """``session.request(method, url, ...)`` without following redirects (a request carrying
    a token or a signature goes to the configured URL or nowhere), with its transport failures
    as :class:`ChannelSendError` naming ``service``: a timeout or a connection error is
    retryable, another failure is not."""
    try:
        return session.request(method, url, allow_redirects=False, **kwargs)
    except requests.Timeout:
        raise ChannelSendError(f"{service} did not answer in time.", retryable=True) from None
    except requests.ConnectionError:
        raise ChannelSendError(f"{service} could not be reached.", retryable=True) from None
    except requests.RequestException as exc:
        raise ChannelSendError(f"The call to {service} failed ({type(exc).__name__}).") from None


def _error_detail(payload, secret):
    """The receiver's ``error`` text, printable, bounded, without our secret."""
    error = payload.get("error") if isinstance(payload, dict) else None
    return clean_reason(error, (secret,)) if isinstance(error, str) else ""


#: Runs of token alphabet long enough to be a token, hidden from a platform's error text
#: whatever the token was.
TOKEN_LIKE = re.compile(r"[A-Za-z0-9|_\-]{24,}")


def clean_reason(text, secrets=(), limit=MAX_REASON_LENGTH, hide_token_like=False):
    """A platform's text fit for a reason: ``secrets`` replaced by ``***``, printable,
    at most ``limit`` characters (with ``hide_token_like``, anything shaped like a token is
    hidden too)."""
    text = text if isinstance(text, str) else ""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = "".join(char if char.isprintable() else " " for char in text).strip()
    if hide_token_like:
        text = TOKEN_LIKE.sub("***", text)
    return text[:limit] + "..." if len(text) > limit else text


def parse_retry_after(value, now=None):
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return int(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment is None or moment.tzinfo is None:
        return None
    now = time.time() if now is None else now
    return max(0, math.ceil(moment.timestamp() - now))


# outbound: replies longer than a channel takes ---------------------------------------------
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_SENTENCE_BREAK = re.compile(r"(?<=[.!?…])\s|\n")
_WORD_BREAK = re.compile(r"\s")


def text_length(text, utf16=False):
    """``text``'s length as a channel counts it: characters, or UTF-16 code units (an emoji
    outside the Basic Multilingual Plane counts 2) for channels that count those."""
    return len(text.encode("utf-16-le")) // 2 if utf16 else len(text)


def split_text(text, limit, utf16=False):
    """``text`` in parts of at most ``limit`` (:func:`text_length`), cut at the last paragraph
    break or sentence end in the second half of a part, else at the last whitespace, else
    hard: the messages a channel that takes several short ones receives for one long reply."""
    if limit < 1:
        raise ValueError("limit must be positive")
    parts = []
    rest = (text or "").strip()
    while text_length(rest, utf16) > limit:
        cut = _cut_point(rest, limit, utf16)
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        parts.append(rest)
    return parts


def _cut_point(text, limit, utf16):
    fitting = _fitting_characters(text, limit) if utf16 else min(limit, len(text))
    window = text[: fitting + 1]  # a break right after the last fitting character counts
    # a paragraph or sentence break earlier than half the part would leave a tiny message;
    # any word break beats cutting a word in two
    for pattern, floor in (
        (_PARAGRAPH_BREAK, fitting // 2),
        (_SENTENCE_BREAK, fitting // 2),
        (_WORD_BREAK, 0),
    ):
        cuts = [match.start() for match in pattern.finditer(window) if match.start() > floor]
        if cuts:
            return cuts[-1]
    return fitting


def _fitting_characters(text, limit):
    units = 0
    for index, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > limit:
            return index
    return len(text)
