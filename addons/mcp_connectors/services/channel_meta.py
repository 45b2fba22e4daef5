# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Meta's messaging channels on the wire: WhatsApp Cloud API, Messenger and Instagram Direct.

Plain Python (no Odoo import). The three share Meta's webhook scheme and Graph API, so one module
serves them; ``platform`` is one of :data:`WHATSAPP`, :data:`MESSENGER`, :data:`INSTAGRAM`.

Inbound (the webhook controller):

- :func:`verify_handshake`: the ``GET`` subscription check (``hub.mode``, ``hub.verify_token``,
  ``hub.challenge``) -> the challenge to answer with 200 ``text/plain``, or
  :class:`InboundRejected` (403).
- :func:`verify_signature`: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, raw
  body)>`` over the RAW bytes (Meta signs its ``\\uXXXX``-escaped JSON: re-serialised JSON gives
  another digest); :class:`InboundRejected` (401) when it does not match.
- :func:`decode_payload`: the raw body -> a dict (413 over :data:`MAX_WEBHOOK_BYTES`, 400 not JSON).
- :func:`webhook_accounts`: the ``(platform, account id)`` pairs a payload is for (WhatsApp:
  ``phone_number_id``; Messenger: the Page id; Instagram: the professional account id), so the
  caller finds the tenant and refuses unknown accounts before queueing.
- :func:`parse_webhook`: a payload -> a list of events: an :class:`InboundMessage` for each
  customer message (``message_id`` = ``wamid``/``mid`` for dedupe, ``metadata`` with
  ``platform``, ``account_id`` and ``sent_at``), a :class:`ChannelEvent` for everything else
  (echoes of our sends, statuses, deliveries, reads, reactions, unknown kinds) with its
  ``kind`` and the ``reason`` it is not answered. It never raises on content.

  WhatsApp contact identity: since 2026 Meta adds a business-scoped user id (BSUID, ``user_id``
  / ``from_user_id``) and may omit the phone of users with a username, so the contact id and
  thread id are the BSUID when present, else the phone (``wa_id``); ``contact["phone"]`` is the
  phone in E.164 when known; both raw ids are in ``metadata`` (``wa_id``, ``user_id``).

Outbound (the reply job):

- :func:`reply_window`: whether a free-form reply is allowed now, given the customer's last
  message time (24 h; Messenger/Instagram: a human agent up to 7 days with the ``HUMAN_AGENT``
  tag; WhatsApp after 24 h: an approved template only) -> :class:`ReplyWindow`.
- :func:`text_messages`: the request bodies of a text reply, split under the platform's limit
  (:data:`TEXT_LIMITS`) at paragraph, sentence or word boundaries (:func:`split_text`).
- :func:`whatsapp_template_body`: an approved template message (re-engaging a customer after
  the 24 h window).
- :class:`GraphClient`: ``send_messages`` (the platform's message ids, or
  :class:`PartialSendError` saying which parts are left), ``mark_read`` (WhatsApp),
  ``mark_seen`` (Messenger/Instagram), ``get_node`` (the channels' *Test*). Every failure is
  a ``ChannelSendError`` (:func:`graph_error`): retryable for 408/429/5xx, timeouts,
  connection errors and Meta's rate-limit and transient error codes (with their wait);
  :class:`ReauthorizationRequired` for an invalid/expired/revoked token (code 190); permanent
  otherwise.
- Instagram Login tokens (60 days): :func:`refresh_instagram_token` -> ``{"access_token",
  "expires_in", "expires_at"}``. WhatsApp system-user and Messenger Page tokens have no refresh.

Unverified (channels.md §11): the request field that sends to a BSUID-only WhatsApp user
(``recipient`` here, used only when no phone is known), ``recipient_user_id`` on statuses, and
how Meta counts characters (here UTF-16 code units, the stricter reading).
"""

import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

import requests

from .channels import (
    AccessTokenRejected,
    ChannelSendError,
    InboundMessage,
    InboundRejected,
    PartialSendError,
    ReauthorizationRequired,
    clean_reason,
    decode_json_object,
    json_or_none,
    parse_retry_after,
    send_request,
)
from .channels import split_text as channels_split_text
from .channels import text_length as channels_text_length

WHATSAPP = "whatsapp"
MESSENGER = "messenger"
INSTAGRAM = "instagram"
PLATFORMS = (WHATSAPP, MESSENGER, INSTAGRAM)
# webhook ``object`` -> platform
OBJECT_PLATFORMS = {
    "whatsapp_business_account": WHATSAPP,
    "page": MESSENGER,
    "instagram": INSTAGRAM,
}
TEXT_LIMITS = {WHATSAPP: 4096, MESSENGER: 2000, INSTAGRAM: 1000}

FACEBOOK_GRAPH_URL = "https://graph.facebook.com"
INSTAGRAM_GRAPH_URL = "https://graph.instagram.com"
GRAPH_VERSION = "v25.0"
# (connect, read) seconds
SEND_TIMEOUT = (3.05, 15)
# Meta posts up to 3 MB per webhook delivery
MAX_WEBHOOK_BYTES = 3 * 1024 * 1024
SIGNATURE_HEADER = "X-Hub-Signature-256"
CHALLENGE_CONTENT_TYPE = "text/plain"
MAX_CHALLENGE_LENGTH = 256

CUSTOMER_WINDOW_SECONDS = 24 * 3600
HUMAN_AGENT_WINDOW_SECONDS = 7 * 24 * 3600
RESPONSE = "RESPONSE"
MESSAGE_TAG = "MESSAGE_TAG"
HUMAN_AGENT = "HUMAN_AGENT"

# ChannelEvent kinds
EVENT_ECHO = "echo"
EVENT_STATUS = "status"
EVENT_DELIVERY = "delivery"
EVENT_READ = "read"
EVENT_REACTION = "reaction"
EVENT_DELETED = "deleted"
EVENT_STANDBY = "standby"
EVENT_SYSTEM = "system"
EVENT_ERROR = "error"
EVENT_UNSUPPORTED = "unsupported_message"
EVENT_UNKNOWN = "unknown"

WHATSAPP_MEDIA_TYPES = ("image", "audio", "video", "document", "sticker")
TOKEN_INVALID_CODE = 190
# Graph and WhatsApp rate-limit codes -> seconds to wait when Meta gives no estimate
RATE_LIMIT_WAITS = {
    4: 60,  # application request limit
    17: 60,  # user request limit
    32: 60,  # page request limit
    613: 60,  # calls exceeded the rate limit
    130429: 5,  # WhatsApp throughput (messages per second of the number)
    131048: 60,  # WhatsApp spam rate limit
    131056: 6,  # WhatsApp pair rate: about one message every 6 s to the same user
    **{code: 60 for code in range(80001, 80015)},  # business use case limits
}
# errors Meta documents as temporary
TRANSIENT_CODES = frozenset({1, 2, 131000, 131016, 133004})
ERROR_HINTS = {
    TOKEN_INVALID_CODE: "the access token is invalid, expired or revoked: re-authorize the channel",
    131047: "more than 24 hours have passed since the customer's last message: WhatsApp only "
    "accepts an approved template message now",
    131056: "too many messages to the same customer in a short time (pair rate limit)",
    130429: "the number's message throughput limit was reached",
    131048: "the number hit WhatsApp's spam rate limit",
    551: "this person is not available right now",
    10: "the app lacks a permission for this call",
    200: "the app lacks a permission for this call",
}
OUTSIDE_WINDOW_HINT = (
    "the message is outside the allowed reply window (24 hours; 7 days with the HUMAN_AGENT "
    "tag for a human agent)"
)
# Messenger (2018278) and Instagram (2534022) answer code 10 with these outside the window
SUBCODE_HINTS = {2018278: OUTSIDE_WINDOW_HINT, 2534022: OUTSIDE_WINDOW_HINT}


@dataclass(frozen=True)
class ChannelEvent:
    """A webhook event that is not a customer message to answer.

    :ivar kind: one of the ``EVENT_*`` constants
    :ivar reason: why it is not answered (short, safe to log)
    :ivar thread_id: the customer it concerns, when known
    :ivar message_ids: the platform's message ids it is about (a status, an echo, a delivery)
    :ivar detail: what the caller may act on (status, errors, watermark, app_id...)
    """

    kind: str
    platform: str
    account_id: str
    reason: str
    thread_id: str = None
    message_ids: tuple = ()
    detail: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ReplyWindow:
    """Whether a free-form reply may be sent now, and how.

    :ivar messaging_type: Messenger/Instagram ``messaging_type`` (``RESPONSE`` or
        ``MESSAGE_TAG``); None for WhatsApp
    :ivar tag: the message tag to send with ``MESSAGE_TAG`` (``HUMAN_AGENT``)
    :ivar template_required: WhatsApp: only an approved template may be sent
    """

    allowed: bool
    reason: str
    messaging_type: str = None
    tag: str = None
    template_required: bool = False


# inbound: verification ------------------------------------------------------------------------
def verify_handshake(params, verify_token):
    """The ``hub.challenge`` to answer (200, :data:`CHALLENGE_CONTENT_TYPE`) to Meta's
    subscription check.

    :param params: the query parameters (a mapping: ``request.args`` or a dict)
    :raise InboundRejected: 403 when the mode, the token or the challenge is wrong, or when no
        verify token is configured
    """
    if not verify_token:
        raise InboundRejected(403, "no verify token is configured for this channel")
    if params.get("hub.mode") != "subscribe":
        raise InboundRejected(403, "hub.mode must be subscribe")
    token = params.get("hub.verify_token")
    if not isinstance(token, str) or not hmac.compare_digest(
        token.encode("utf-8"), verify_token.encode("utf-8")
    ):
        raise InboundRejected(403, "the verify token does not match")
    challenge = params.get("hub.challenge")
    if not isinstance(challenge, str) or not _is_plain_challenge(challenge):
        raise InboundRejected(403, "hub.challenge is missing or not plain text")
    return challenge


def _is_plain_challenge(challenge):
    # echoed back verbatim: printable ASCII of bounded length only
    return (
        0 < len(challenge) <= MAX_CHALLENGE_LENGTH
        and challenge.isascii()
        and challenge.isprintable()
    )


def verify_signature(raw_body, signature, app_secrets):
    """Check ``X-Hub-Signature-256`` (``signature``) over the raw request bytes.

    :param raw_body: the body exactly as received (bytes), never re-serialised JSON
    :param app_secrets: the app secret, or several (a rotation, or the Facebook and the Instagram
        app of an Instagram Login setup); any match passes
    :raise InboundRejected: 401 for a missing, malformed or wrong signature; 403 when no secret
        is configured
    """
    secrets = [app_secrets] if isinstance(app_secrets, str) else list(app_secrets or ())
    secrets = [secret for secret in secrets if secret]
    if not secrets:
        raise InboundRejected(403, "no app secret is configured for this channel")
    scheme, _, digest = (signature or "").strip().partition("=")
    if scheme.lower() != "sha256" or not digest:
        raise InboundRejected(401, f"the {SIGNATURE_HEADER} header is missing or malformed")
    received = digest.strip().lower().encode("ascii", "replace")
    for secret in secrets:
        expected = hmac.new(secret.encode("utf-8"), raw_body, hashlib.sha256).hexdigest()
        if hmac.compare_digest(expected.encode("ascii"), received):
            return
    raise InboundRejected(401, f"the {SIGNATURE_HEADER} signature does not match")


def decode_payload(raw_body):
    """The webhook's JSON object; 413 when larger than Meta sends, 400 when not a JSON object."""
    if len(raw_body) > MAX_WEBHOOK_BYTES:
        raise InboundRejected(413, f"the body is larger than {MAX_WEBHOOK_BYTES} bytes")
    return decode_json_object(raw_body)


def webhook_accounts(payload):
    """The sorted distinct ``(platform, account_id)`` pairs the payload's events are for."""
    platform = OBJECT_PLATFORMS.get(payload.get("object")) if isinstance(payload, dict) else None
    accounts = set()
    for entry in _dicts(payload.get("entry") if platform else None):
        if platform == WHATSAPP:
            for change in _dicts(entry.get("changes")):
                account_id = _whatsapp_account(_dict(change.get("value")))
                if account_id:
                    accounts.add((platform, account_id))
        elif _id(entry.get("id")):
            accounts.add((platform, _id(entry.get("id"))))
    return sorted(accounts)


# inbound: parsing -----------------------------------------------------------------------------
def parse_webhook(payload):
    """The events of a decoded webhook payload: :class:`InboundMessage` or :class:`ChannelEvent`,
    in the payload's order. Never raises on content: what is not understood is an
    ``EVENT_UNKNOWN`` event."""
    if not isinstance(payload, dict):
        return [ChannelEvent(EVENT_UNKNOWN, "", "", "the payload is not a JSON object")]
    platform = OBJECT_PLATFORMS.get(payload.get("object"))
    if platform is None:
        reason = f"object {_short(payload.get('object'))} is not a Meta messaging webhook"
        return [ChannelEvent(EVENT_UNKNOWN, "", "", reason)]
    events = []
    for entry in _dicts(payload.get("entry")):
        if platform == WHATSAPP:
            events.extend(_whatsapp_entry(entry))
        else:
            events.extend(_messaging_entry(platform, entry))
    return events


def _whatsapp_account(value):
    return _id(_dict(value.get("metadata")).get("phone_number_id"))


def _whatsapp_entry(entry):
    waba_id = _id(entry.get("id"))
    for change in _dicts(entry.get("changes")):
        value = _dict(change.get("value"))
        account_id = _whatsapp_account(value) or ""
        if change.get("field") != "messages":
            reason = f"field {_short(change.get('field'))} is not a message"
            yield ChannelEvent(
                EVENT_UNKNOWN, WHATSAPP, account_id, reason, detail={"waba_id": waba_id}
            )
            continue
        where = {"platform": WHATSAPP, "account_id": account_id, "waba_id": waba_id}
        contacts = list(_dicts(value.get("contacts")))
        for message in _dicts(value.get("messages")):
            yield _whatsapp_message(message, contacts, where)
        for status in _dicts(value.get("statuses")):
            yield _whatsapp_status(status, account_id)
        for error in _dicts(value.get("errors")):
            summary = _error_summary(error)
            reason = f"WhatsApp reported an error: {_error_text(summary)}"
            yield ChannelEvent(EVENT_ERROR, WHATSAPP, account_id, reason, detail=summary)


def _whatsapp_message(message, contacts, where):
    sender = _id(message.get("from"))
    # ``from`` is the phone; a BSUID-only sender has none (or, defensively, a non-numeric one)
    phone = sender if sender and sender.isdigit() else None
    user_id = _id(message.get("from_user_id")) or (None if phone else sender)
    profile = _sender_contact(contacts, phone, user_id)
    phone = phone or _id(profile.get("wa_id"))
    user_id = user_id or _id(profile.get("user_id"))
    contact_id = user_id or phone
    message_id = _id(message.get("id"))
    account_id = where["account_id"]
    kind = message.get("type")
    if not contact_id or not message_id:
        return ChannelEvent(EVENT_UNKNOWN, WHATSAPP, account_id, "a message without sender or id")
    if kind == "reaction":
        return _whatsapp_reaction(message, account_id, contact_id, message_id)
    if kind == "system":
        system = _dict(message.get("system"))
        reason = f"a system notice ({_short(system.get('type'))}), not a customer message"
        return ChannelEvent(
            EVENT_SYSTEM, WHATSAPP, account_id, reason, contact_id, (message_id,), system
        )
    content = _whatsapp_content(kind, message)
    if content is None:
        errors = [_error_summary(error) for error in _dicts(message.get("errors"))]
        reason = f"message type {_short(kind)} is not supported"
        return ChannelEvent(
            EVENT_UNSUPPORTED,
            WHATSAPP,
            account_id,
            reason,
            contact_id,
            (message_id,),
            {"type": kind, "errors": errors},
        )
    text, extra = content
    metadata = {
        **where,
        "sent_at": _int(message.get("timestamp")),
        "message_type": kind,
        "wa_id": phone,
        "user_id": user_id,
        "username": _id(profile.get("username")),
        "reply_to": _id(_dict(message.get("context")).get("id")),
        **extra,
    }
    contact = {
        "id": contact_id,
        "name": _id(_dict(profile.get("profile")).get("name")),
        "phone": f"+{phone}" if phone else None,
        "email": None,
    }
    return InboundMessage(
        thread_id=contact_id,
        message_id=message_id,
        contact=contact,
        text=text,
        metadata={key: value for key, value in metadata.items() if value is not None},
    )


def _sender_contact(contacts, phone, user_id):
    """The ``contacts[]`` entry of the sender (the only one when there is one)."""
    for contact in contacts:
        if (phone and contact.get("wa_id") == phone) or (
            user_id and contact.get("user_id") == user_id
        ):
            return contact
    return contacts[0] if len(contacts) == 1 else {}


def _whatsapp_content(kind, message):
    """``(text, extra metadata)`` of a message a customer wrote, None for other types."""
    if kind == "text":
        return _dict(message.get("text")).get("body") or "", {}
    if kind == "button":  # a template's quick-reply button
        button = _dict(message.get("button"))
        return button.get("text") or "", {"reply_payload": button.get("payload")}
    if kind == "interactive":
        interactive = _dict(message.get("interactive"))
        reply = _dict(interactive.get(interactive.get("type")))
        if not reply.get("title"):
            return None
        return reply["title"], {"reply_payload": reply.get("id")}
    if kind in WHATSAPP_MEDIA_TYPES:
        # the media id needs a Graph call with the token to download: left to the caller
        media = _dict(message.get(kind))
        item = {
            "id": media.get("id"),
            "type": kind,
            "mimetype": media.get("mime_type"),
            "name": media.get("filename"),
        }
        return media.get("caption") or "", {"media": [item]}
    if kind == "location":
        location = _dict(message.get("location"))
        place = ", ".join(str(location[key]) for key in ("name", "address") if location.get(key))
        coordinates = f"{location.get('latitude')}, {location.get('longitude')}"
        text = f"{place} ({coordinates})" if place else coordinates
        return text, {"location": location}
    return None


def _whatsapp_reaction(message, account_id, contact_id, message_id):
    reaction = _dict(message.get("reaction"))
    return ChannelEvent(
        EVENT_REACTION,
        WHATSAPP,
        account_id,
        "a reaction to a message, not a message to answer",
        contact_id,
        (message_id,),
        {"reacted_to": reaction.get("message_id"), "emoji": reaction.get("emoji")},
    )


def _whatsapp_status(status, account_id):
    state = status.get("status")
    errors = [_error_summary(error) for error in _dicts(status.get("errors"))]
    if state == "failed":
        reason = "a message we sent failed" + (f": {_error_text(errors[0])}" if errors else "")
    else:
        reason = f"status {_short(state)} of a message we sent"
    recipient = _id(status.get("recipient_id"))
    recipient_user = _id(status.get("recipient_user_id"))
    message_id = _id(status.get("id"))
    detail = {
        "status": state,
        "timestamp": _int(status.get("timestamp")),
        "recipient_id": recipient,
        "recipient_user_id": recipient_user,
        "errors": errors,
    }
    return ChannelEvent(
        EVENT_STATUS,
        WHATSAPP,
        account_id,
        reason,
        recipient_user or recipient,
        (message_id,) if message_id else (),
        detail,
    )


def _messaging_entry(platform, entry):
    account_id = _id(entry.get("id")) or ""
    for event in _dicts(entry.get("messaging")):
        yield _messaging_event(platform, account_id, event)
    for event in _dicts(entry.get("standby")):
        reason = "another app has control of this thread (handover protocol)"
        customer = _id(_dict(event.get("sender")).get("id"))
        yield ChannelEvent(EVENT_STANDBY, platform, account_id, reason, customer)
    for change in _dicts(entry.get("changes")):
        reason = f"field {_short(change.get('field'))} is not a direct message"
        yield ChannelEvent(EVENT_UNKNOWN, platform, account_id, reason)


def _messaging_event(platform, account_id, event):
    sender = _id(_dict(event.get("sender")).get("id"))
    recipient = _id(_dict(event.get("recipient")).get("id"))
    message = event.get("message")
    if isinstance(message, dict):
        mids = (_id(message.get("mid")),) if _id(message.get("mid")) else ()
        if message.get("is_echo"):
            reason = "echo of a message the account sent"
            detail = {"app_id": _id(message.get("app_id")), "metadata": message.get("metadata")}
            return ChannelEvent(EVENT_ECHO, platform, account_id, reason, recipient, mids, detail)
        if message.get("is_deleted"):
            reason = "the customer deleted (unsent) a message"
            return ChannelEvent(EVENT_DELETED, platform, account_id, reason, sender, mids)
        return _messaging_message(platform, account_id, sender, event, message)
    if isinstance(event.get("postback"), dict):
        return _postback(platform, account_id, sender, event)
    receipt = _receipt(platform, account_id, sender, event)
    if receipt:
        return receipt
    known = [key for key in event if key not in ("sender", "recipient", "timestamp")]
    reason = f"event {_short(known[0] if known else None)} is not handled"
    return ChannelEvent(EVENT_UNKNOWN, platform, account_id, reason, sender)


def _messaging_message(platform, account_id, sender, event, message):
    message_id = _id(message.get("mid"))
    text = message.get("text") if isinstance(message.get("text"), str) else ""
    attachments, types = [], []
    for attachment in _dicts(message.get("attachments")):
        url = _dict(attachment.get("payload")).get("url")
        if isinstance(url, str) and url:
            attachments.append({"name": None, "mimetype": None, "url": url})
            types.append(attachment.get("type"))
    if not sender or not message_id or message.get("is_unsupported") or not (text or attachments):
        reason = "a message without text or a supported attachment"
        mids = (message_id,) if message_id else ()
        return ChannelEvent(EVENT_UNSUPPORTED, platform, account_id, reason, sender, mids)
    metadata = {
        "platform": platform,
        "account_id": account_id,
        "sent_at": _seconds(event.get("timestamp")),
        "attachment_types": types or None,
        "reply_payload": _dict(message.get("quick_reply")).get("payload"),
        "reply_to": _id(_dict(message.get("reply_to")).get("mid")),
    }
    return InboundMessage(
        thread_id=sender,
        message_id=message_id,
        contact={"id": sender, "name": None, "phone": None, "email": None},
        text=text,
        attachments=attachments,
        metadata={key: value for key, value in metadata.items() if value is not None},
    )


def _postback(platform, account_id, sender, event):
    """A button the customer tapped: its title is what they "said"."""
    postback = event["postback"]
    text = postback.get("title") or postback.get("payload")
    if not sender or not isinstance(text, str) or not text:
        return ChannelEvent(EVENT_UNSUPPORTED, platform, account_id, "an empty postback", sender)
    timestamp = _int(event.get("timestamp"))
    # older postbacks have no mid: sender and time identify a retried delivery
    message_id = _id(postback.get("mid")) or f"postback-{sender}-{timestamp}"
    metadata = {
        "platform": platform,
        "account_id": account_id,
        "sent_at": _seconds(timestamp),
        "message_type": "postback",
        "reply_payload": postback.get("payload"),
    }
    return InboundMessage(
        thread_id=sender,
        message_id=message_id,
        contact={"id": sender, "name": None, "phone": None, "email": None},
        text=text,
        metadata={key: value for key, value in metadata.items() if value is not None},
    )


def _receipt(platform, account_id, sender, event):
    """Deliveries, reads and reactions: customer-side signals, nothing to answer."""
    if isinstance(event.get("delivery"), dict):
        delivery = event["delivery"]
        mids = tuple(mid for mid in delivery.get("mids") or () if isinstance(mid, str))
        detail = {"watermark": _int(delivery.get("watermark"))}
        reason = "the customer's device received our messages"
        return ChannelEvent(EVENT_DELIVERY, platform, account_id, reason, sender, mids, detail)
    if isinstance(event.get("read"), dict):
        read = event["read"]
        mids = (read["mid"],) if isinstance(read.get("mid"), str) else ()
        detail = {"watermark": _int(read.get("watermark"))}
        reason = "the customer read our messages"
        return ChannelEvent(EVENT_READ, platform, account_id, reason, sender, mids, detail)
    if isinstance(event.get("reaction"), dict):
        reaction = event["reaction"]
        mids = (reaction["mid"],) if isinstance(reaction.get("mid"), str) else ()
        detail = {"action": reaction.get("action"), "emoji": reaction.get("emoji")}
        reason = "a reaction to a message, not a message to answer"
        return ChannelEvent(EVENT_REACTION, platform, account_id, reason, sender, mids, detail)
    return None


def _error_summary(error):
    return {
        "code": _int(error.get("code")),
        "title": error.get("title"),
        "message": error.get("message"),
        "details": _dict(error.get("error_data")).get("details"),
    }


def _error_text(summary):
    code = summary.get("code")
    text = ERROR_HINTS.get(code) or summary.get("title") or summary.get("message") or "unknown"
    return clean_reason(f"({code}) {text}" if code else text)


# outbound: window and request bodies ----------------------------------------------------------
def reply_window(platform, last_customer_at, now=None, by_human=False):
    """Whether a free-form reply to a customer is allowed now.

    :param last_customer_at: when the customer last wrote (datetime, naive = UTC, or epoch
        seconds), None when they never did
    :param by_human: the reply is written by a human agent: Messenger and Instagram accept it up
        to 7 days with the ``HUMAN_AGENT`` tag (Instagram needs the human-agent permission); an
        AI reply never uses that tag
    """
    _check_platform(platform)
    if last_customer_at is None:
        return ReplyWindow(False, "The customer has not written yet: the customer must start.")
    now = time.time() if now is None else _epoch(now)
    elapsed = max(0.0, now - _epoch(last_customer_at))
    if elapsed < CUSTOMER_WINDOW_SECONDS:
        messaging_type = None if platform == WHATSAPP else RESPONSE
        return ReplyWindow(True, "Within 24 hours of the customer's last message.", messaging_type)
    if platform == WHATSAPP:
        return ReplyWindow(
            False,
            "More than 24 hours since the customer's last message: WhatsApp only accepts an "
            "approved template message now.",
            template_required=True,
        )
    if elapsed >= HUMAN_AGENT_WINDOW_SECONDS:
        return ReplyWindow(
            False, "More than 7 days since the customer's last message: wait for them to write."
        )
    if not by_human:
        return ReplyWindow(
            False,
            "More than 24 hours since the customer's last message: only a human agent may "
            "answer now (HUMAN_AGENT tag, up to 7 days).",
        )
    return ReplyWindow(
        True, "Human agent reply within 7 days (HUMAN_AGENT tag).", MESSAGE_TAG, HUMAN_AGENT
    )


def text_messages(platform, recipient, text, window, reply_to=None):
    """The request bodies of a text reply, one per part of ``text`` split under the platform's
    limit.

    :param recipient: WhatsApp: the phone (``wa_id``) or, when there is none, the BSUID;
        Messenger/Instagram: the PSID/IGSID (the thread id)
    :param window: the :class:`ReplyWindow` of this conversation now
    :param reply_to: WhatsApp: the ``wamid`` the first part quotes
    :raise ChannelSendError: permanent, when the window does not allow it or there is no text
    """
    _check_platform(platform)
    if not window.allowed:
        raise ChannelSendError(window.reason)
    if not recipient:
        raise ChannelSendError("The conversation has no recipient id.")
    parts = split_text(text or "", TEXT_LIMITS[platform])
    if not parts:
        raise ChannelSendError("The reply has no text.")
    if platform == WHATSAPP:
        return [
            whatsapp_text_body(recipient, part, reply_to if index == 0 else None)
            for index, part in enumerate(parts)
        ]
    return [page_text_body(platform, recipient, part, window) for part in parts]


def whatsapp_text_body(recipient, text, reply_to=None):
    """A WhatsApp text message to a phone number, or to a BSUID when ``recipient`` is not one."""
    body = _whatsapp_envelope(recipient)
    if reply_to:
        body["context"] = {"message_id": reply_to}
    body["type"] = "text"
    body["text"] = {"preview_url": False, "body": text}
    return body


def whatsapp_template_body(recipient, name, language, parameters=()):
    """An approved WhatsApp template message (the only kind WhatsApp accepts outside the 24 h
    window), its body's ``{{n}}`` placeholders filled with ``parameters`` in order."""
    body = _whatsapp_envelope(recipient)
    template = {"name": name, "language": {"code": language}}
    if parameters:
        template["components"] = [
            {"type": "body", "parameters": [{"type": "text", "text": str(p)} for p in parameters]}
        ]
    body["type"] = "template"
    body["template"] = template
    return body


def _whatsapp_envelope(recipient):
    """The start of a WhatsApp message to a phone number, or to a BSUID when ``recipient`` is
    not one."""
    body = {"messaging_product": "whatsapp", "recipient_type": "individual"}
    address = recipient.strip().lstrip("+")
    if address.isdigit():
        body["to"] = address
    else:  # a business-scoped user id (field unverified, channels.md §11)
        body["recipient"] = recipient.strip()
    return body


def page_text_body(platform, recipient, text, window):
    """A Messenger or Instagram text message, tagged as ``window`` says."""
    body = {"recipient": {"id": recipient}}
    # Messenger requires messaging_type; Instagram's Send API only needs it for a tag
    if window.messaging_type == MESSAGE_TAG:
        body["messaging_type"] = MESSAGE_TAG
        body["tag"] = window.tag
    elif platform == MESSENGER:
        body["messaging_type"] = window.messaging_type or RESPONSE
    body["message"] = {"text": text}
    return body


def whatsapp_read_body(message_id):
    """Mark a received WhatsApp message (and the ones before it) as read."""
    return {"messaging_product": "whatsapp", "status": "read", "message_id": message_id}


def seen_body(recipient):
    """Mark a Messenger/Instagram conversation as seen."""
    return {"recipient": {"id": recipient}, "sender_action": "mark_seen"}


def text_length(text):
    """Length as Meta's limits are taken to count it: UTF-16 code units (an emoji outside the
    Basic Multilingual Plane counts 2), never less than the number of characters."""
    return channels_text_length(text, utf16=True)


def split_text(text, limit):
    """``text`` in parts of at most ``limit`` UTF-16 units (see ``channels.split_text``)."""
    return channels_split_text(text, limit, utf16=True)


# outbound: transport --------------------------------------------------------------------------
class GraphClient:
    """Calls to the Graph API with one access token.

    :param base_url: :data:`FACEBOOK_GRAPH_URL` (WhatsApp, Messenger, Instagram through a Page)
        or :data:`INSTAGRAM_GRAPH_URL` (Instagram Login); a local fake in tests
    """

    def __init__(
        self,
        access_token,
        base_url=FACEBOOK_GRAPH_URL,
        version=GRAPH_VERSION,
        timeout=SEND_TIMEOUT,
        session=None,
    ):
        self._access_token = access_token
        self.base_url = base_url.rstrip("/")
        self.version = version
        self.timeout = timeout
        self.session = session

    def __repr__(self):
        return f"GraphClient({self.base_url!r}, {self.version!r})"

    def send_message(self, account_id, body):
        """POST one message to ``/{account_id}/messages`` (WhatsApp: the phone number id;
        Messenger: the Page id; Instagram: the IG id, the Page id or ``me``); the platform's
        message id (None if the answer has none)."""
        answer = self._post(f"{account_id}/messages", body)
        messages = answer.get("messages")
        if isinstance(messages, list) and messages and isinstance(messages[0], dict):
            return _id(messages[0].get("id"))  # WhatsApp
        return _id(answer.get("message_id"))

    def send_messages(self, account_id, bodies):
        """Send the parts of one reply in order; their message ids.

        :raise ChannelSendError: when the first part fails
        :raise PartialSendError: when a later part fails (send its ``unsent`` bodies later)
        """
        sent_ids = []
        for index, body in enumerate(bodies):
            try:
                sent_ids.append(self.send_message(account_id, body))
            except ChannelSendError as error:
                if not sent_ids:
                    raise
                raise PartialSendError(error, sent_ids, unsent=bodies[index:]) from None
        return sent_ids

    def get_node(self, node_id, fields):
        """GET ``/{node_id}?fields=...`` (a phone number, a Page, ``me``): one cheap
        authenticated read, the node's JSON."""
        return _call(
            "GET",
            f"{self.base_url}/{self.version}/{node_id}",
            self.timeout,
            self.session,
            self._access_token,
            headers={"Authorization": f"Bearer {self._access_token}"},
            params={"fields": ",".join(fields)},
        )

    def mark_read(self, phone_number_id, message_id):
        """WhatsApp: mark the customer's message ``message_id`` as read (blue ticks)."""
        self._post(f"{phone_number_id}/messages", whatsapp_read_body(message_id))

    def mark_seen(self, account_id, recipient):
        """Messenger/Instagram: mark the conversation with ``recipient`` as seen."""
        self._post(f"{account_id}/messages", seen_body(recipient))

    def _post(self, path, body):
        return _call(
            "POST",
            f"{self.base_url}/{self.version}/{path}",
            self.timeout,
            self.session,
            self._access_token,
            headers={
                "Authorization": f"Bearer {self._access_token}",
                "Content-Type": "application/json",
            },
            data=json.dumps(body, ensure_ascii=False).encode("utf-8"),
        )


def refresh_instagram_token(
    access_token, now=None, base_url=INSTAGRAM_GRAPH_URL, timeout=SEND_TIMEOUT, session=None
):
    """Exchange a long-lived Instagram Login token (at least 24 h old, unexpired) for a new one
    valid 60 days; the new token replaces the old one.

    :return: see :func:`parse_token`
    :raise ReauthorizationRequired: the token is expired or revoked
    """
    try:
        payload = _call(
            "GET",
            f"{base_url.rstrip('/')}/refresh_access_token",
            timeout,
            session,
            access_token,
            params=instagram_refresh_params(access_token),
        )
    except AccessTokenRejected as exc:
        # the token that renews is the one refused: only a new login helps
        raise ReauthorizationRequired(exc.reason, status=exc.status) from None
    return parse_token(payload, now)


def instagram_refresh_params(access_token):
    return {"grant_type": "ig_refresh_token", "access_token": access_token}


def parse_token(payload, now=None):
    """``{"access_token", "expires_in", "expires_at"}`` (epoch seconds, None when not given)
    from a token answer."""
    token = payload.get("access_token") if isinstance(payload, dict) else None
    if not isinstance(token, str) or not token:
        raise ChannelSendError("The token answer has no access token.")
    expires_in = _int(payload.get("expires_in"))
    now = time.time() if now is None else _epoch(now)
    expires_at = int(now) + expires_in if expires_in is not None else None
    return {"access_token": token, "expires_in": expires_in, "expires_at": expires_at}


def _call(method, url, timeout, session, token, **kwargs):
    """One Graph request (never retried here: a send is not safe to repeat); its JSON."""
    response = send_request(
        session or requests, method, url, "The Graph API", timeout=timeout, **kwargs
    )
    payload = json_or_none(response)
    if 200 <= response.status_code < 300:
        return payload if isinstance(payload, dict) else {}
    raise graph_error(response.status_code, response.headers, payload, (token,))


def graph_error(status, headers, payload, secrets=()):
    """The ``ChannelSendError`` for a Graph answer ``status`` with the error envelope ``payload``
    (``{"error": {"message", "type", "code", "error_subcode", "error_data", "fbtrace_id"}}``).

    Retryable: 408, 429, 5xx, rate-limit codes (:data:`RATE_LIMIT_WAITS`) and transient errors,
    waiting ``Retry-After``, else Meta's ``estimated_time_to_regain_access``, else the code's
    usual wait. :class:`ReauthorizationRequired` for code 190. Permanent otherwise. ``secrets``
    are masked out of Meta's message.
    """
    headers = {str(name).lower(): value for name, value in (headers or {}).items()}
    error = _dict(payload.get("error") if isinstance(payload, dict) else None)
    code = _int(error.get("code"))
    subcode = _int(error.get("error_subcode"))
    described = (
        SUBCODE_HINTS.get(subcode)
        or ERROR_HINTS.get(code)
        or _dict(error.get("error_data")).get("details")
        or error.get("message")
    )
    reason = f"The Graph API answered HTTP {status}"
    if code is not None:
        reason += f" with error {code}"
    if isinstance(described, str) and described:
        reason += f": {clean_reason(described, secrets)}"
    reason += "."
    if code == TOKEN_INVALID_CODE:
        # invalid, expired or revoked alike: a renewal tells them apart
        return AccessTokenRejected(reason, status=status)
    rate_limited = code in RATE_LIMIT_WAITS
    if not (
        rate_limited
        or status in (408, 429)
        or status >= 500
        or code in TRANSIENT_CODES
        or error.get("is_transient") is True
    ):
        return ChannelSendError(reason, status=status)
    retry_after = parse_retry_after(headers.get("retry-after")) or _usage_wait(headers)
    if retry_after is None and rate_limited:
        retry_after = RATE_LIMIT_WAITS[code]
    return ChannelSendError(reason, retryable=True, retry_after=retry_after, status=status)


def _usage_wait(headers):
    """Seconds until access is back per ``X-Business-Use-Case-Usage`` (its
    ``estimated_time_to_regain_access`` is in minutes), or None."""
    try:
        usage = json.loads(headers.get("x-business-use-case-usage") or "null")
    except ValueError:
        return None
    minutes = [
        item.get("estimated_time_to_regain_access")
        for items in (usage.values() if isinstance(usage, dict) else ())
        if isinstance(items, list)
        for item in items
        if isinstance(item, dict)
    ]
    minutes = [value for value in minutes if isinstance(value, int | float) and value > 0]
    return int(max(minutes) * 60) if minutes else None


# helpers --------------------------------------------------------------------------------------
def _check_platform(platform):
    if platform not in PLATFORMS:
        raise ValueError(f"unknown Meta platform {platform!r}")


def _dict(value):
    return value if isinstance(value, dict) else {}


def _dicts(value):
    """The dict items of a JSON list (anything else in it, or no list, is skipped)."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _id(value):
    """A non-empty id as a string (Meta sends ids as strings, sometimes numbers), else None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value if isinstance(value, str) and value else None


def _int(value):
    try:
        return int(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None


def _seconds(milliseconds):
    """Epoch seconds from Messenger's millisecond timestamps."""
    value = _int(milliseconds)
    return value // 1000 if value is not None else None


def _epoch(moment):
    if isinstance(moment, datetime):
        if moment.tzinfo is None:  # Odoo's datetimes are naive UTC
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.timestamp()
    return float(moment)


def _short(value):
    """A payload value quoted in a reason: printable and bounded."""
    return repr(clean_reason(str(value), limit=40)) if value is not None else "(none)"
