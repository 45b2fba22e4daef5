# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Shopee Open Platform v2 seller chat, plain Python (no Odoo import).

Inbound (push mechanism; answer 2xx with an empty body within 3 s, then work in a job):

- :func:`verify_push` checks ``Authorization`` = lowercase hex HMAC-SHA256(live push partner
  key, ``callback_url + "|" + raw body``) in constant time, or raises
  :class:`~.channels.InboundRejected`. ``callback_url`` must be exactly the URL registered in
  the console (a proxy that rewrites scheme or host breaks it). A digest over the body alone,
  reported by one integrator, is refused, with a reason that says so (onboarding aid).
- :func:`decode_push` turns the raw body into a dict (413/400 otherwise).
- :func:`push_shop_id` gives the shop id, to find the tenant (and refuse unknown shops);
  :func:`push_identity` the push's key for deduplication (``msg_id``, else the webchat
  message id, else a digest of the body); :func:`authorization_shop_ids` the shops a
  (de)authorization or authorization-expiry push is about.
- :func:`parse_push` gives a list of events: :class:`~.channels.InboundMessage` for a buyer's
  webchat message (push code 10), :class:`SkippedEvent` for everything else (the shop's own
  messages, other push codes, unknown kinds), never an exception.

Outbound: :func:`split_text` and :func:`text_message_body` build ``POST
/api/v2/sellerchat/send_message`` bodies; :meth:`ShopeeClient.send_text` sends them and
returns Shopee's message ids. No reply window is documented for Shopee chat. Reads:
:meth:`ShopeeClient.get_shop_info` (the channel's *Test*), :meth:`ShopeeClient.get_messages`
and :meth:`ShopeeClient.unread_conversation_count` (the agents' tools).

Signing (:func:`api_sign`, :func:`signed_query`): ``sign`` = hex HMAC-SHA256(partner key,
partner_id + path + timestamp [+ access_token + shop_id for shop APIs]), in the query string
with the common parameters; the timestamp is valid 5 minutes.

Tokens: :meth:`ShopeeClient.get_token` (authorization code) and
:meth:`ShopeeClient.refresh_access_token` return :class:`ShopeeTokens`: the access token
lasts 4 h (``expire_in``), the refresh token 30 days and is single use, so the caller saves
the new pair atomically, one refresh at a time per shop.

Errors come as HTTP 200 with a non-empty ``error`` (or as an HTTP error status): every failed
call raises :class:`~.channels.ChannelSendError`, retryable for 429, 5xx, timeouts, connection
errors and rate-limit codes; :class:`AccessTokenRejected` (refresh the access token, then
send again) and :class:`ReauthorizationRequired` (the seller must authorize the app again)
are its permanent subclasses.

Unverified (see the channel reference, §6 and §11): the text limit (:data:`MAX_TEXT_LENGTH` is
a conservative guess), rate-limit error codes, the error code for a used or revoked refresh
token, the content keys of non-text message types, the ``data`` keys listing the shops of
authorization pushes (codes 1, 2 and 12), and the key of the unread conversation count.
"""

import hashlib
import hmac
import json
import mimetypes
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode

import requests

from .channels import (
    MAX_INBOUND_BYTES,
    SEND_TIMEOUT,
    AccessTokenRejected,
    ChannelSendError,
    InboundMessage,
    InboundRejected,
    PartialSendError,
    ReauthorizationRequired,
    SkippedEvent,
    clean_reason,
    decode_json_object,
    json_or_none,
    parse_retry_after,
    send_request,
    split_text,
)

HOST_GLOBAL = "https://partner.shopeemobile.com"
HOST_BRAZIL = "https://openplatform.shopee.com.br"
HOST_CHINA = "https://openplatform.shopee.cn"
HOST_SANDBOX = "https://openplatform.sandbox.test-stable.shopee.sg"
SEND_MESSAGE_PATH = "/api/v2/sellerchat/send_message"
GET_MESSAGE_PATH = "/api/v2/sellerchat/get_message"
UNREAD_COUNT_PATH = "/api/v2/sellerchat/get_unread_conversation_count"
SHOP_INFO_PATH = "/api/v2/shop/get_shop_info"
# get_message pages hold at most this many messages (Shopee's documented maximum: unverified)
MAX_MESSAGE_PAGE = 60
TOKEN_GET_PATH = "/api/v2/auth/token/get"
TOKEN_REFRESH_PATH = "/api/v2/auth/access_token/get"
AUTH_PARTNER_PATH = "/api/v2/shop/auth_partner"
PUSH_AUTHORIZATION_HEADER = "Authorization"
ACCESS_TOKEN_LIFETIME = 14400  # seconds, when the answer has no expire_in
# Unverified: Shopee documents no chat text limit; long replies are split at this length.
MAX_TEXT_LENGTH = 1000
# Refresh this long before the access token expires, so a call never starts with a dying one.
REFRESH_MARGIN = 300

PUSH_WEBCHAT = 10
PUSH_SHOP_DEAUTHORIZATION = 2
PUSH_AUTHORIZATION_EXPIRY = 12
# Push codes that are not chat messages, by what they mean (Shopee push config types).
PUSH_KINDS = {
    1: "shop_authorization",
    2: "shop_deauthorization",
    3: "order_status",
    4: "tracking_number",
    12: "authorization_expiry",
}

# Lists of shop ids in the ``data`` of authorization pushes (unverified names: Shopee's push
# pages describe "a list of shop and merchant IDs" without a sample).
AUTHORIZATION_SHOP_LISTS = ("shop_expire_soon", "shop_id_list", "shop_ids")
# Errors about the access token: refresh it and send again.
ACCESS_TOKEN_ERRORS = frozenset({"invalid_access_token", "invalid_acceess_token"})
# On the token endpoints, these mean the code or refresh token is no longer valid (used,
# expired or revoked): unverified which one Shopee uses, so all re-authorize.
AUTHORIZATION_ERRORS = frozenset({"error_auth", "invalid_refresh_token", "invalid_code"})
# On shop APIs, the shop's authorization itself is gone (cancelled by the seller, or past its
# yearly expiry): a new access token cannot help.
SHOP_AUTHORIZATION_ERRORS = frozenset({"error_auth"})
ERROR_REASONS = {
    "error_auth": "the request was not authorized (shop authorization or access token)",
    "error_sign": "the signature was refused (check the partner id and key, and the clock)",
    "error_param": "a parameter was refused",
    "error_permission": "the app has no seller-chat permission for this shop",
}
# Unverified codes: any error code with one of these words is a rate limit or an overload.
RETRYABLE_ERROR_WORDS = ("too_many", "rate_limit", "busy", "server", "inner")


@dataclass(frozen=True)
class ShopeeTokens:
    """A shop's tokens; save all of them at once (the refresh token is single use)."""

    shop_id: str
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: float


# signing ----------------------------------------------------------------------------------------
def _hmac_hex(key, message):
    return hmac.new(key.encode("utf-8"), message, hashlib.sha256).hexdigest()


def api_sign(partner_key, partner_id, path, timestamp, access_token=None, shop_id=None):
    """The ``sign`` of an API call: shop APIs pass ``access_token`` and ``shop_id``, public
    APIs (auth) pass neither."""
    base = f"{partner_id}{path}{int(timestamp)}"
    if access_token is not None:
        base += f"{access_token}{shop_id}"
    return _hmac_hex(partner_key, base.encode("utf-8"))


def signed_query(partner_key, partner_id, path, timestamp, access_token=None, shop_id=None):
    """The common query parameters of a call, in Shopee's order, ``sign`` last."""
    query = [("partner_id", str(partner_id)), ("timestamp", str(int(timestamp)))]
    if access_token is not None:
        query += [("access_token", access_token), ("shop_id", str(shop_id))]
    sign = api_sign(partner_key, partner_id, path, timestamp, access_token, shop_id)
    return query + [("sign", sign)]


# inbound ----------------------------------------------------------------------------------------
def push_signature(push_partner_key, callback_url, raw_body):
    """The ``Authorization`` value Shopee sends with a push of ``raw_body`` (bytes)."""
    return _hmac_hex(push_partner_key, callback_url.encode("utf-8") + b"|" + raw_body)


def verify_push(push_partner_key, callback_url, raw_body, authorization):
    """Accept the push only if ``authorization`` signs ``callback_url|raw_body``.

    :raise InboundRejected: 503 when no key is configured (Shopee retries later), 401 when the
        header is missing or does not match
    """
    if not push_partner_key or not callback_url:
        raise InboundRejected(503, "Shopee push verification is not configured")
    received = (authorization or "").strip().lower().encode("ascii", "replace")
    if not received:
        raise InboundRejected(401, "the Authorization header is missing")
    expected = push_signature(push_partner_key, callback_url, raw_body).encode("ascii")
    if hmac.compare_digest(received, expected):
        return
    body_only = _hmac_hex(push_partner_key, raw_body).encode("ascii")
    if hmac.compare_digest(received, body_only):
        raise InboundRejected(
            401, 'the signature covers the body only, not "<callback URL>|<body>"'
        )
    raise InboundRejected(
        401,
        "the Authorization signature does not match (check the live push partner key and "
        "that the callback URL is exactly the registered one; the console's test pushes are "
        "signed with the test push partner key instead)",
    )


def decode_push(raw_body):
    """The push body as a dict; 413 when too large, 400 when not a JSON object."""
    if len(raw_body) > MAX_INBOUND_BYTES:
        raise InboundRejected(413, f"the body is larger than {MAX_INBOUND_BYTES} bytes")
    return decode_json_object(raw_body)


def push_shop_id(payload):
    """The shop id of a push as a string, or None (then refuse the push)."""
    shop_id = _id_string(payload.get("shop_id"))
    if shop_id is None:
        content = _webchat_content(payload)
        shop_id = _id_string(content.get("shop_id")) if content else None
    return shop_id


def push_identity(payload, raw_body):
    """The push's key for deduplication: Shopee's ``msg_id``, else the webchat message id,
    else the SHA-256 of the raw body (a retry of a push is the same bytes)."""
    identity = _id_string(payload.get("msg_id"))
    if identity is None:
        content = _webchat_content(payload)
        identity = _id_string(content.get("message_id")) if content else None
    return identity or hashlib.sha256(raw_body).hexdigest()


def authorization_shop_ids(payload):
    """The shops an authorization push (codes 1, 2, 12) is about, as strings: its
    ``shop_id`` and the lists of shop ids in its ``data``."""
    data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
    found = [payload.get("shop_id"), data.get("shop_id")]
    for key in AUTHORIZATION_SHOP_LISTS:
        if isinstance(data.get(key), list):
            found += data[key]
    shop_ids = []
    for value in found:
        shop_id = _id_string(value)
        if shop_id and shop_id not in shop_ids:
            shop_ids.append(shop_id)
    return shop_ids


def parse_push(payload, shop_user_ids=()):
    """The events of a decoded push.

    :param shop_user_ids: the shop's own chat user ids (the ``to_id`` of buyers' messages,
        which differs from the shop id): a message from one of them is the shop's own
    :return: a list of :class:`InboundMessage` and :class:`SkippedEvent`
    """
    code = _as_int(payload.get("code"))
    metadata = {"shop_id": push_shop_id(payload), "code": code}
    if code == PUSH_WEBCHAT:
        return [_webchat_event(payload, metadata, {str(uid) for uid in shop_user_ids})]
    kind = PUSH_KINDS.get(code)
    if kind:
        return [SkippedEvent(kind, f"push code {code} ({kind}) is not a chat message", metadata)]
    return [SkippedEvent("unknown", f"push code {code!r} is not handled", metadata)]


def _webchat_content(payload):
    data = payload.get("data")
    content = data.get("content") if isinstance(data, dict) else None
    return content if isinstance(content, dict) else None


def _webchat_event(payload, metadata, shop_user_ids):
    data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
    data_type = data.get("type")
    if data_type != "message":
        kind = f"webchat_{data_type}" if isinstance(data_type, str) else "webchat_unknown"
        return SkippedEvent(kind, "a webchat push that is not a new message", metadata)
    content = _webchat_content(payload)
    message_id = _id_string(content.get("message_id")) if content else None
    message_id = message_id or _id_string(payload.get("msg_id"))
    sender = _id_string(content.get("from_id")) if content else None
    if not message_id or not sender:
        return SkippedEvent("malformed", "a webchat message without message or sender id", metadata)
    metadata = {**metadata, "message_id": message_id}
    shop_id = metadata["shop_id"]
    from_shop = _id_string(content.get("from_shop_id"))
    if sender in shop_user_ids or sender == shop_id or (from_shop and from_shop == shop_id):
        return SkippedEvent("echo", "a message sent by the shop itself", metadata)
    message_type = content.get("message_type")
    body = _message_body(message_type, content.get("content"))
    if body is None:
        reason = f"message type {message_type!r} is not handled"
        return SkippedEvent("unsupported_message", reason, metadata)
    text, attachments, details = body
    if not text.strip() and not attachments:
        return SkippedEvent("empty", "a message with neither text nor a usable file", metadata)
    return InboundMessage(
        thread_id=_id_string(content.get("conversation_id")) or sender,
        message_id=message_id,
        contact={
            "id": sender,
            "name": content.get("from_user_name") or None,
            "phone": None,
            "email": None,
        },
        text=text,
        attachments=attachments,
        metadata={**metadata, **_message_metadata(content, data), **details},
    )


def _message_body(message_type, inner):
    """``(text, attachments, metadata)`` of a message's ``content``, None when unhandled.

    Non-text kinds get a short bracketed text, so the conversation shows what was sent.
    """
    inner = inner if isinstance(inner, dict) else {}
    text = inner.get("text") if isinstance(inner.get("text"), str) else ""
    if message_type == "text":
        return text, [], {}
    if message_type in ("image", "image_with_text"):
        url = inner.get("url") or inner.get("image_url")
        return text, _url_attachment(url), {}
    if message_type == "video":
        return text, _url_attachment(inner.get("video_url")), {}
    if message_type == "sticker":
        details = {
            "sticker_id": inner.get("sticker_id"),
            "sticker_package_id": inner.get("sticker_package_id"),
        }
        return "[sticker]", [], details
    if message_type == "item":
        item_id = _id_string(inner.get("item_id"))
        return f"[product {item_id}]", [], {"item_id": item_id}
    if message_type == "order":
        order_sn = _id_string(inner.get("order_sn"))
        return f"[order {order_sn}]", [], {"order_sn": order_sn}
    return None


def _url_attachment(url):
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        return []
    mimetype = mimetypes.guess_type(url.split("?", 1)[0])[0]
    return [{"name": None, "mimetype": mimetype, "url": url}]


def _message_metadata(content, data):
    quoted = content.get("quoted_msg") if isinstance(content.get("quoted_msg"), dict) else {}
    metadata = {
        "conversation_id": _id_string(content.get("conversation_id")),
        "message_type": content.get("message_type"),
        "shop_user_id": _id_string(content.get("to_id")),
        "region": content.get("region") or data.get("region"),
        "created_timestamp": _as_int(content.get("created_timestamp")),
        "is_in_chatbot_session": bool(content.get("is_in_chatbot_session")),
    }
    if _id_string(quoted.get("message_id")):
        metadata["quoted_message_id"] = _id_string(quoted.get("message_id"))
    if content.get("source_content"):
        metadata["source_content"] = content["source_content"]
    return metadata


def _id_string(value):
    """An id as a non-empty string, or None (Shopee sends ids as numbers or strings)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _as_int(value):
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


# outbound ---------------------------------------------------------------------------------------
def text_message_body(to_id, text):
    """The ``send_message`` body of a text to the buyer ``to_id`` (the contact id)."""
    return {"to_id": _user_id(to_id), "message_type": "text", "content": {"text": text}}


def _user_id(value):
    number = _as_int(value)
    if number is None:
        raise ChannelSendError(f"{value!r} is not a Shopee user id.")
    return number


def needs_refresh(expires_at, now=None, margin=REFRESH_MARGIN):
    """Whether an access token expiring at ``expires_at`` should be refreshed before use."""
    now = time.time() if now is None else now
    return expires_at - margin <= now


# transport --------------------------------------------------------------------------------------
class ShopeeClient:
    """Signed calls to one Shopee host for one partner (app).

    :param base_url: the host (:data:`HOST_BRAZIL`, :data:`HOST_GLOBAL`...) or a test fake
    :param clock: returns the Unix time used to sign (tests fix it)
    """

    def __init__(
        self,
        partner_id,
        partner_key,
        base_url=HOST_GLOBAL,
        timeout=SEND_TIMEOUT,
        session=None,
        clock=time.time,
    ):
        self.partner_id = int(partner_id)
        self._partner_key = partner_key
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._session = session or requests
        self._clock = clock

    def __repr__(self):
        return f"ShopeeClient(partner_id={self.partner_id}, base_url={self.base_url!r})"

    def authorization_url(self, redirect_url):
        """The page where a seller authorizes the app; Shopee then redirects to
        ``redirect_url`` with ``code`` (single use, 10 minutes) and ``shop_id``."""
        query = signed_query(self._partner_key, self.partner_id, AUTH_PARTNER_PATH, self._clock())
        query.append(("redirect", redirect_url))
        return f"{self.base_url}{AUTH_PARTNER_PATH}?{urlencode(query)}"

    def send_message(self, access_token, shop_id, body):
        """POST one ``send_message`` body; Shopee's message id as a string (or None)."""
        answer = self._post(SEND_MESSAGE_PATH, body, access_token=access_token, shop_id=shop_id)
        response = answer.get("response") if isinstance(answer.get("response"), dict) else {}
        return _id_string(response.get("message_id"))

    def send_text(self, access_token, shop_id, to_id, text, first_part=0, limit=MAX_TEXT_LENGTH):
        """Send ``text`` to the buyer ``to_id``, split into several messages when long.

        Not safe to repeat blindly: a failure after some parts were sent raises
        :class:`~.channels.PartialSendError`; send again with ``first_part`` = the number of
        parts already sent (counting earlier tries) to go on without duplicates.

        :return: Shopee's message ids of the parts sent now
        """
        parts = split_text(text, limit)
        if not parts:
            raise ChannelSendError("The reply is empty.")
        sent = []
        for part in parts[first_part:]:
            try:
                sent.append(
                    self.send_message(access_token, shop_id, text_message_body(to_id, part))
                )
            except ChannelSendError as error:
                if not sent:
                    raise
                raise PartialSendError(error, sent, parts_sent=first_part + len(sent)) from None
        return sent

    def get_token(self, code, shop_id):
        """Exchange an authorization code for the shop's first :class:`ShopeeTokens`.

        :raise ChannelSendError: permanent when Shopee refuses the code
        """
        body = {"code": code, "shop_id": _user_id(shop_id), "partner_id": self.partner_id}
        try:
            return self._tokens(TOKEN_GET_PATH, body, shop_id)
        except ReauthorizationRequired as error:
            # an authorization error here is about the code, not a lapsed authorization
            raise ChannelSendError(
                "Shopee refused the authorization code: it expired (codes last 10 minutes), "
                "was already used, or was given for another shop.",
                status=error.status,
            ) from None

    def refresh_access_token(self, refresh_token, shop_id):
        """New :class:`ShopeeTokens` (the given refresh token is used up by this call)."""
        body = {
            "refresh_token": refresh_token,
            "shop_id": _user_id(shop_id),
            "partner_id": self.partner_id,
        }
        return self._tokens(TOKEN_REFRESH_PATH, body, shop_id)

    def _tokens(self, path, body, shop_id):
        now = self._clock()
        answer = self._post(path, body, token_call=True)
        access_token = answer.get("access_token")
        refresh_token = answer.get("refresh_token")
        if not isinstance(access_token, str) or not isinstance(refresh_token, str):
            raise ChannelSendError("Shopee answered the token request without the tokens.")
        lifetime = _as_int(answer.get("expire_in")) or ACCESS_TOKEN_LIFETIME
        return ShopeeTokens(str(shop_id), access_token, refresh_token, now + lifetime)

    def get_shop_info(self, access_token, shop_id):
        """The shop's profile: ``shop_name``, ``region``, ``status``, ``expire_time`` (the
        end of the seller's authorization, Unix seconds)..."""
        return self._call("GET", SHOP_INFO_PATH, access_token=access_token, shop_id=shop_id)

    def get_messages(self, access_token, shop_id, conversation_id, page_size=20, offset=None):
        """A page of a conversation's messages, newest first: ``response.messages`` and
        ``response.page_result.next_offset``."""
        params = [
            ("conversation_id", _id_string(conversation_id) or ""),
            ("page_size", str(max(1, min(int(page_size), MAX_MESSAGE_PAGE)))),
        ]
        if offset:
            params.append(("offset", str(offset)))
        return self._call(
            "GET", GET_MESSAGE_PATH, params=params, access_token=access_token, shop_id=shop_id
        )

    def unread_conversation_count(self, access_token, shop_id):
        """How many of the shop's conversations have unread messages (None if not given)."""
        answer = self._call("GET", UNREAD_COUNT_PATH, access_token=access_token, shop_id=shop_id)
        response = answer.get("response") if isinstance(answer.get("response"), dict) else {}
        return _as_int(response.get("total_unread_count"))

    def _post(self, path, body, access_token=None, shop_id=None, token_call=False):
        return self._call(
            "POST",
            path,
            body=body,
            access_token=access_token,
            shop_id=shop_id,
            token_call=token_call,
        )

    def _call(
        self,
        method,
        path,
        body=None,
        params=(),
        access_token=None,
        shop_id=None,
        token_call=False,
    ):
        query = signed_query(
            self._partner_key, self.partner_id, path, self._clock(), access_token, shop_id
        )
        options = {"headers": {"Accept": "application/json"}}
        if body is not None:
            options["data"] = json.dumps(body, ensure_ascii=False).encode("utf-8")
            options["headers"]["Content-Type"] = "application/json"
        # the signed query carries the access token: send_request follows no redirect
        response = send_request(
            self._session,
            method,
            self.base_url + path,
            "Shopee",
            params=[*params, *query],
            timeout=self.timeout,
            **options,
        )
        return classify_answer(
            response.status_code,
            response.headers,
            json_or_none(response, objects_only=True),
            token_call,
        )


def classify_answer(status, headers, payload, token_call=False):
    """The JSON answer of a successful call; otherwise raise :class:`ChannelSendError`.

    :param token_call: the token endpoints, where an authorization error means the seller
        must authorize again
    """
    error = payload.get("error") if payload else None
    error = error if isinstance(error, str) and error else None
    if status == 429 or status >= 500:
        raise ChannelSendError(
            _reason(f"Shopee answered HTTP {status}", error, payload),
            retryable=True,
            retry_after=parse_retry_after(headers.get("Retry-After")),
            status=status,
        )
    if error:
        raise _error_for(error, status, headers, payload, token_call)
    if not 200 <= status < 300 or payload is None:
        raise ChannelSendError(f"Shopee answered HTTP {status} without a result.", status=status)
    return payload


def _error_for(error, status, headers, payload, token_call):
    if token_call and error in AUTHORIZATION_ERRORS:
        return ReauthorizationRequired(
            "The Shopee authorization is no longer valid; the seller must authorize the app again.",
            status=status,
        )
    if not token_call and error in SHOP_AUTHORIZATION_ERRORS:
        return ReauthorizationRequired(
            _reason(
                "Shopee refused the shop's authorization; the seller must authorize the app again",
                error,
                payload,
            ),
            status=status,
        )
    if error in ACCESS_TOKEN_ERRORS:
        return AccessTokenRejected(
            "Shopee refused the access token; refresh it and send again.", status=status
        )
    if any(word in error for word in RETRYABLE_ERROR_WORDS):
        return ChannelSendError(
            _reason("Shopee asked to try later", error, payload),
            retryable=True,
            retry_after=parse_retry_after(headers.get("Retry-After")),
            status=status,
        )
    return ChannelSendError(
        _reason(f"Shopee refused the call: {ERROR_REASONS.get(error, 'error')}", error, payload),
        status=status,
    )


def _reason(prefix, error, payload):
    """``prefix`` with the error code and Shopee's message, printable and bounded."""
    if not error:
        return f"{prefix}."
    message = clean_reason(payload.get("message"), hide_token_like=True)
    return f"{prefix} ({error}: {message})." if message else f"{prefix} ({error})."


# reads ------------------------------------------------------------------------------------------
def _page_messages(answer):
    response = answer.get("response") if isinstance(answer, dict) else None
    messages = response.get("messages") if isinstance(response, dict) else None
    return (
        [item for item in messages if isinstance(item, dict)] if isinstance(messages, list) else []
    )


def _from_shop(message, shop_id):
    return _id_string(message.get("from_shop_id")) == str(shop_id)


def push_conversation_id(payload):
    """The conversation of a webchat message push, or None for any other push."""
    data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
    content = _webchat_content(payload)
    if _as_int(payload.get("code")) != PUSH_WEBCHAT or data.get("type") != "message" or not content:
        return None
    return _id_string(content.get("conversation_id"))


def shop_user_id(answer, shop_id, payload):
    """The shop's own chat user id, read from a ``get_message`` page of the pushed message's
    conversation: the sender of a message the shop sent, else the recipient of the pushed
    message when the page shows it came from a buyer; None when the page does not tell."""
    messages = _page_messages(answer)
    for message in messages:
        if _from_shop(message, shop_id) and _id_string(message.get("from_id")):
            return _id_string(message.get("from_id"))
    content = _webchat_content(payload) or {}
    pushed = _id_string(content.get("message_id"))
    for message in messages:
        if pushed and _id_string(message.get("message_id")) == pushed:
            return _id_string(content.get("to_id"))
    return None


def conversation_messages(answer, shop_id):
    """A ``get_message`` page as the agents read it: who wrote (``buyer`` or ``shop``), the
    text (or a bracketed kind for other message types) and when."""
    result = []
    for message in _page_messages(answer):
        body = _message_body(message.get("message_type"), message.get("content"))
        result.append(
            {
                "message_id": _id_string(message.get("message_id")),
                "from": "shop" if _from_shop(message, shop_id) else "buyer",
                "text": body[0] if body else f"[{message.get('message_type')}]",
                "created_timestamp": _as_int(message.get("created_timestamp")),
            }
        )
    return result
