# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Amazon buyer messaging, plain Python (no Odoo import).

Amazon has no API to read buyer messages or answer them: Buyer-Seller Messaging relays each
buyer's message by e-mail, from an anonymised alias (``<token>@marketplace.amazon.<tld>``,
stable per buyer and seller), to the seller's mailbox; the seller answers by e-mail from an
authorised sender address to that alias. SP-API Messaging only sends fixed, order-scoped
message types (channel reference §7).

Inbound (the mail gateway hands over the raw RFC 822 bytes):

- :func:`email_routing` gives the recipients (which name the seller mailbox, hence the
  channel) and the delivery key of a mail, for the mail gateway.
- :func:`parse_email` gives one event: an :class:`~.channels.InboundMessage` (contact = the
  buyer alias, thread = the order id, else the alias; the Message-ID for dedupe; quoted
  history and signatures cut; attachments as base64), or a :class:`SkippedEvent` for a bounce,
  a read receipt, an auto-reply, Amazon's own notifications, the seller's own copies, mail
  from anyone else, or an empty message. The tenant is the mailbox the relay was sent to:
  ``metadata["recipients"]``.

Outbound: :func:`reply_content` and :func:`check_reply_text` turn a hub's reply into what a
mail to Amazon may carry; :func:`build_reply` builds the reply e-mail (an ``EmailMessage``,
not sent) from the authorised address to the alias, threaded with ``In-Reply-To``/
``References``. SP-API Messaging: :data:`MESSAGE_TYPES`, :func:`parse_actions`
(``getMessagingActionsForOrder``, HAL), :func:`message_request` (checked against the type's
schema: text length, no HTML, no e-mail addresses), :class:`AmazonMessagingClient` (also the
Sellers API's marketplace participations, the channel's test call) and
:func:`tool_descriptors` (the agents' MCP tools); :class:`LwaClient` refreshes the 1 h access
token. Failed calls raise :class:`~.channels.ChannelSendError` (retryable for 429, 5xx,
timeouts and connection errors); :class:`AccessTokenRejected` (refresh, then send
again), :class:`ReauthorizationRequired` (``invalid_grant``: the seller must authorize
the app again) and :class:`LwaAppRefused` (the app's client id or secret) are its permanent
subclasses. Amazon expects answers to buyers within 24 h
(unverified); there is no reply window.

The relay format is not documented and no verified sample exists (reference §7.2, §11.5).
What this module relies on, most certain first:

1. The buyer's alias is the ``From`` address, at ``marketplace.amazon.<tld>``; role names
   there (``donotreply``...) are Amazon's own notices (seen in third-party code).
2. Order ids look like ``\\d{3}-\\d{7}-\\d{7}``; the subject is searched first (``(Order:
   ...)``, ``(Pedido: ...)``), then the body (``Order ID: ...``, ``# ...:``). Only the number's
   shape is relied on, not the labels.
3. Uncertain (third-party samples): the buyer's text sits between lines of dashes around
   ``Begin message``/``Message:``/``Mensagem:``/``Mensaje:``/``Iniciar mensaje`` and ``End
   message``/``Encerrar mensagem``/``Fim da mensagem``/``Finalizar mensaje``; without them the
   whole body is taken, minus quotes and signatures. The display name may end with ``- Amazon
   Marketplace``. A ``[commMgrTok:...]`` tag is removed from the text and kept as metadata.
   A copy of the seller's own message starts ``Here is a copy of the e-mail that you sent``.
"""

import base64
import email
import hashlib
import json
import math
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email import policy
from email.message import EmailMessage
from email.parser import HeaderParser
from email.utils import format_datetime, getaddresses, make_msgid, parseaddr, parsedate_to_datetime
from html.parser import HTMLParser

import requests

from .channels import (
    SEND_TIMEOUT,
    AccessTokenRejected,
    ChannelSendError,
    InboundMessage,
    ReauthorizationRequired,
    SkippedEvent,
    clean_reason,
    json_or_none,
    parse_retry_after,
    send_request,
)

SP_API_NA = "https://sellingpartnerapi-na.amazon.com"
SP_API_EU = "https://sellingpartnerapi-eu.amazon.com"
SP_API_FE = "https://sellingpartnerapi-fe.amazon.com"
#: SP-API regional hosts: North America (US, CA, MX and Brazil), Europe, Far East.
SP_API_HOSTS = {"na": SP_API_NA, "eu": SP_API_EU, "fe": SP_API_FE}
LWA_TOKEN_URL = "https://api.amazon.com/auth/o2/token"
PARTICIPATIONS_PATH = "/sellers/v1/marketplaceParticipations"
MARKETPLACE_BRAZIL = "A2Q3Y263D00KWC"
ACCESS_TOKEN_LIFETIME = 3600  # seconds, when the answer has no expires_in
MAX_ATTACHMENTS = 5
USER_AGENT = "mcp-connectors/1.0 (Language=Python)"

ORDER_ID_PATTERN = r"\d{3}-\d{7}-\d{7}"
ORDER_ID = re.compile(rf"(?<![\d-])({ORDER_ID_PATTERN})(?![\d-])")
ALIAS_DOMAIN = re.compile(r"marketplace\.amazon\.(?:com|[a-z]{2}|co\.[a-z]{2}|com\.[a-z]{2})")
AMAZON_DOMAIN = re.compile(r"(?:.+\.)?amazon\.(?:com|[a-z]{2}|co\.[a-z]{2}|com\.[a-z]{2})")
# Local parts at the alias domain that are Amazon's own senders, not buyers.
ROLE_LOCAL_PARTS = frozenset(
    {"donotreply", "do-not-reply", "noreply", "no-reply", "notification", "notifications",
     "seller-notification", "mailer-daemon", "postmaster"}
)  # fmt: skip
BOUNCE_LOCAL_PARTS = frozenset({"mailer-daemon", "postmaster"})
BUYER_NAME_SUFFIX = re.compile(r"\s+-\s+Amazon(?: Marketplace)?$", re.IGNORECASE)
ASIN = re.compile(r"\bASIN:\s*([A-Z0-9]{10})\b")
COMM_TOKEN = re.compile(r"\[commMgrTok:([A-Za-z0-9]+)\]")
_DASHES = r"^[ \t]*-{3,}[ \t]*"
START_MARKER = re.compile(
    _DASHES + r"(?:begin message|message:?|mensagem:?|mensaje:?|iniciar mensaje|iniciar mensagem"
    r"|in[ií]cio da mensagem)[ \t]*-{3,}[ \t]*$",
    re.IGNORECASE | re.MULTILINE,
)
END_MARKER = re.compile(
    _DASHES + r"(?:end message|encerrar mensagem|fim da mensagem|mensagem final"
    r"|finalizar mensaje)[ \t]*-{3,}[ \t]*$",
    re.IGNORECASE | re.MULTILINE,
)
FOOTER = re.compile(
    r"^[ \t]*(?:For Your Information:|Was this email helpful\?)", re.IGNORECASE | re.MULTILINE
)
SELLER_COPY = re.compile(r"here is a copy of the e-?mail (?:that )?you sent", re.IGNORECASE)
# Lines that open quoted history (en, pt, es, fr, de), tried on a line and on a line joined
# with the next (clients wrap long "On ... wrote:" lines).
QUOTE_HEADERS = (
    re.compile(r"^On .{0,300}wrote:$"),
    re.compile(r"^Em .{0,300}escreveu:$"),
    re.compile(r"^El .{0,300}escribió:$"),
    re.compile(r"^Le .{0,300}a écrit ?:$"),
    re.compile(r"^Am .{0,300}schrieb .{0,300}:$"),
    re.compile(
        r"^-{2,} ?(?:original message|mensagem original|mensaje original) ?-{2,}$", re.IGNORECASE
    ),
    re.compile(r"^_{10,}$"),  # Outlook's rule above a forwarded or quoted message
)
OUTLOOK_FROM = re.compile(r"^(?:From|De|Von):\s")
OUTLOOK_NEXT = re.compile(r"^(?:Sent|Date|Enviado|Enviada|Data|Fecha|Gesendet|To|Para|An):\s")
SIGNATURE = re.compile(
    r"^(?:--$|sent from my\b|enviado do meu\b|enviado de meu\b|enviado desde mi\b"
    r"|get outlook for\b|obtener outlook para\b)",
    re.IGNORECASE,
)
AUTO_REPLY_SUBJECT = re.compile(
    r"^(?:automatic reply|auto ?reply|auto:|out of office|resposta automática|respuesta "
    r"automática|réponse automatique|abwesenheitsnotiz|fora do escritório)",
    re.IGNORECASE,
)
REPLY_PREFIX = re.compile(r"^(?:re|res|aw|sv|rv|fw|fwd|enc)(?:\[\d+\])?\s*:\s*", re.IGNORECASE)
HTML_TAG = re.compile(r"<\s*/?\s*[a-zA-Z][^>]*>")
EMAIL_ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


@dataclass(frozen=True)
class MessageType:
    """An SP-API Messaging message type (its path segment) and what its body takes.

    :ivar text_limit: the most characters ``text`` may have; None when it takes no text
    :ivar attachments: whether it takes ``attachments`` (uploaded with the Uploads API)
    """

    name: str
    text_limit: int | None
    attachments: bool


# The message types of the Messaging API model (2026-01, amzn/selling-partner-api-models).
MESSAGE_TYPES = {
    message_type.name: message_type
    for message_type in (
        MessageType("confirmCustomizationDetails", 800, True),
        MessageType("confirmDeliveryDetails", 2000, False),
        MessageType("legalDisclosure", None, True),
        MessageType("confirmOrderDetails", 2000, False),
        MessageType("confirmServiceDetails", 2000, False),
        MessageType("warranty", None, True),
        MessageType("digitalAccessKey", 400, True),
        MessageType("unexpectedProblem", 2000, False),
        MessageType("invoice", None, True),
    )
}


class LwaAppRefused(ChannelSendError):
    """LWA refused the app itself (its client id or secret): permanent; ``error`` is LWA's
    code (``invalid_client``, ``unauthorized_client``)."""

    def __init__(self, reason, error, status=None):
        super().__init__(reason, status=status)
        self.error = error


@dataclass(frozen=True)
class LwaToken:
    """An LWA access token and the refresh token to keep (LWA returns the same one)."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: float


# addresses --------------------------------------------------------------------------------------
def is_buyer_alias(address):
    """Whether ``address`` is an anonymised buyer alias of Buyer-Seller Messaging."""
    local, _at, domain = (address or "").strip().lower().rpartition("@")
    return bool(local) and local not in ROLE_LOCAL_PARTS and bool(ALIAS_DOMAIN.fullmatch(domain))


def _is_amazon_address(address):
    domain = (address or "").lower().rpartition("@")[2]
    return bool(AMAZON_DOMAIN.fullmatch(domain))


def find_order_id(subject, body):
    """The first order id in ``subject``, else in ``body``, or None."""
    for text in (subject, body):
        match = ORDER_ID.search(text or "")
        if match:
            return match.group(1)
    return None


# inbound ----------------------------------------------------------------------------------------
def email_routing(raw):
    """``(recipients, message_id)`` of a mail (its RFC 822 bytes): the addresses it was sent
    to (``Delivered-To``, ``X-Original-To``, ``To``, ``Cc``; lower-case), which name the
    seller mailbox and so the channel, and the key of its delivery (as :func:`parse_email`
    gives it)."""
    message = email.message_from_bytes(bytes(raw), policy=policy.default)
    return _recipients(message), _message_id(message, raw)


def parse_email(raw, seller_addresses=()):
    """The event of one e-mail of the seller's mailbox (``raw``: its RFC 822 bytes).

    :param seller_addresses: the seller's own (authorised) addresses: their mail is an echo
    :return: an :class:`InboundMessage` or a :class:`SkippedEvent`
    """
    message = email.message_from_bytes(bytes(raw), policy=policy.default)
    sender_name, sender = parseaddr(str(message.get("From", "")))
    sender = sender.lower()
    subject = " ".join(str(message.get("Subject", "")).split())
    message_id = _message_id(message, raw)
    metadata = {"email_message_id": message_id, "from": sender, "subject": subject}
    skipped = _skipped(message, sender, subject, metadata, {a.lower() for a in seller_addresses})
    if skipped:
        return skipped
    body = _body_text(message)
    if SELLER_COPY.search(body):
        return SkippedEvent("echo", "Amazon's copy of a message the seller sent", metadata)
    text = extract_message(body)
    attachments = _attachments(message)
    if not text and not attachments:
        return SkippedEvent("empty", "no message text or attachment found", metadata)
    order_id = find_order_id(subject, body)
    return InboundMessage(
        thread_id=order_id or sender,
        message_id=message_id,
        contact={"id": sender, "name": _buyer_name(sender_name), "phone": None, "email": sender},
        text=text,
        attachments=attachments,
        metadata={**metadata, **_message_metadata(message, body, order_id, sender)},
    )


def _skipped(message, sender, subject, metadata, seller_addresses):
    """The :class:`SkippedEvent` for a mail that is not a buyer's message, else None."""
    if message.get_content_type() == "multipart/report":
        if message.get_param("report-type") == "disposition-notification":
            return SkippedEvent("read_receipt", "a read receipt", metadata)
        bounced = {**metadata, "bounced_message_id": _bounced_message_id(message)}
        return SkippedEvent("bounce", "a delivery failure report", bounced)
    if sender.partition("@")[0] in BOUNCE_LOCAL_PARTS:
        bounced = {**metadata, "bounced_message_id": _bounced_message_id(message)}
        return SkippedEvent("bounce", "a message from the mail system", bounced)
    if sender in seller_addresses:
        return SkippedEvent("echo", "a message from the seller's own address", metadata)
    if not is_buyer_alias(sender):
        if _is_amazon_address(sender):
            return SkippedEvent("notification", "an Amazon notification, not a buyer", metadata)
        return SkippedEvent("not_buyer", "not sent from an Amazon buyer alias", metadata)
    if _is_auto_reply(message, subject):
        return SkippedEvent("auto_reply", "an automatic reply of the buyer's mailbox", metadata)
    return None


def _is_auto_reply(message, subject):
    # Only the buyer's autoresponder marks: Amazon's relay itself may be "auto-generated".
    auto_submitted = str(message.get("Auto-Submitted", "")).strip().lower()
    precedence = str(message.get("Precedence", "")).strip().lower()
    return (
        auto_submitted.startswith("auto-replied")
        or precedence == "auto_reply"
        or "X-Autoreply" in message
        or "X-Autorespond" in message
        or bool(AUTO_REPLY_SUBJECT.match(subject))
    )


def _message_id(message, raw):
    """The Message-ID as ``<id>``, or a stable hash of the bytes when the mail has none."""
    value = " ".join(str(message.get("Message-ID", "")).split())
    if value:
        return value if value.startswith("<") else f"<{value}>"
    return "sha256:" + hashlib.sha256(bytes(raw)).hexdigest()


def _bounced_message_id(report):
    """The Message-ID of the mail a delivery report returns, when it quotes its headers."""
    for part in report.walk():
        content_type = part.get_content_type()
        if content_type == "message/rfc822":
            returned = part.get_payload(0) if part.is_multipart() else None
            value = returned.get("Message-ID") if returned is not None else None
        elif content_type == "text/rfc822-headers":
            value = HeaderParser().parsestr(_part_text(part)).get("Message-ID")
        else:
            continue
        if value:
            return " ".join(str(value).split())
    return None


def _buyer_name(display_name):
    name = BUYER_NAME_SUFFIX.sub("", display_name or "")
    return name.strip() or None


def _message_metadata(message, body, order_id, sender):
    in_reply_to = " ".join(str(message.get("In-Reply-To", "")).split())
    comm_token = COMM_TOKEN.search(body)
    return {
        "order_id": order_id,
        "buyer_alias": sender,
        "marketplace_domain": sender.rpartition("@")[2],
        "recipients": _recipients(message),
        "date": _date(message),
        "in_reply_to": in_reply_to or None,
        "references": str(message.get("References", "")).split(),
        "asins": list(dict.fromkeys(ASIN.findall(body))),
        "comm_token": comm_token.group(1) if comm_token else None,
    }


def _recipients(message):
    values = []
    for name in ("Delivered-To", "X-Original-To", "To", "Cc"):
        values += [str(value) for value in message.get_all(name, [])]
    addresses = [address.lower() for _name, address in getaddresses(values) if "@" in address]
    return list(dict.fromkeys(addresses))


def _date(message):
    try:
        moment = parsedate_to_datetime(str(message.get("Date", "")))
    except (TypeError, ValueError, IndexError):
        return None
    return moment.isoformat() if moment.tzinfo else None


def _body_text(message):
    """The plain-text body, else the HTML body as text; CRLF as LF."""
    plain = message.get_body(preferencelist=("plain",))
    text = _part_text(plain) if plain is not None else ""
    if not text.strip():
        html = message.get_body(preferencelist=("html",))
        text = html_to_text(_part_text(html)) if html is not None else ""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _part_text(part):
    try:
        return part.get_content()
    except (LookupError, UnicodeError, AttributeError, ValueError):
        payload = part.get_payload(decode=True) or b""
        try:
            return payload.decode(part.get_content_charset() or "utf-8", errors="replace")
        except LookupError:  # an unknown charset name
            return payload.decode("utf-8", errors="replace")


def _attachments(message):
    attachments = []
    for part in message.walk():
        if part.is_multipart():
            continue
        filename = part.get_filename()
        disposition = part.get_content_disposition()
        if disposition != "attachment" and not (filename and part.get_content_maintype() != "text"):
            continue
        data = part.get_payload(decode=True) or b""
        attachments.append(
            {
                "name": filename or None,
                "mimetype": part.get_content_type(),
                "data": base64.b64encode(data).decode("ascii"),
            }
        )
    return attachments


def extract_message(body):
    """The buyer's own words in a relayed mail's text: between Amazon's markers when present,
    without quoted history, signature, Amazon's footer or the ``commMgrTok`` tag."""
    text = _between_markers(body)
    text = _cut_quotes_and_signature(text)
    text = COMM_TOKEN.sub("", text)
    lines = [line.rstrip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _between_markers(text):
    start = START_MARKER.search(text)
    end = END_MARKER.search(text, start.end() if start else 0)
    if start and end:
        return text[start.end() : end.start()]
    if start:
        return text[start.end() :]
    if end:
        return text[: end.start()]
    footer = FOOTER.search(text)
    return text[: footer.start()] if footer else text


def _cut_quotes_and_signature(text):
    lines = text.split("\n")
    kept = []
    for index, line in enumerate(lines):
        stripped = line.strip()
        following = [other.strip() for other in lines[index + 1 : index + 4]]
        if _opens_quote(stripped, following) or SIGNATURE.match(stripped):
            break
        if not stripped.startswith(">"):
            kept.append(line)
    return "\n".join(kept)


def _opens_quote(line, following):
    joined = f"{line} {following[0]}" if following else line
    if any(pattern.match(line) or pattern.match(joined) for pattern in QUOTE_HEADERS):
        return True
    return bool(OUTLOOK_FROM.match(line)) and any(OUTLOOK_NEXT.match(other) for other in following)


class _HtmlText(HTMLParser):
    """Text of an HTML body: a block starts a new line, ``<br>`` breaks one; scripts, styles
    and quoted ``<blockquote>`` history are left out."""

    BLOCKS = frozenset(
        {"p", "div", "li", "tr", "table", "ul", "ol", "pre", "hr", "h1", "h2", "h3", "h4", "h5",
         "h6"}
    )  # fmt: skip
    HIDDEN = frozenset({"script", "style", "head", "title", "blockquote"})

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts = []
        self._hidden = 0
        # nested or adjacent blocks make one line break, not one per tag
        self._block_break = False

    def handle_starttag(self, tag, attrs):
        if tag in self.HIDDEN:
            self._hidden += 1
        elif tag == "br":
            self.parts.append("\n")
        elif tag in self.BLOCKS:
            self._block_break = True

    def handle_endtag(self, tag):
        if tag in self.HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag in self.BLOCKS:
            self._block_break = True

    def handle_data(self, data):
        if self._hidden:
            return
        if data.strip() and self._block_break:
            self.parts.append("\n")
            self._block_break = False
        self.parts.append(re.sub(r"\s+", " ", data))


def html_to_text(html):
    """The text of an HTML mail body, one line per block."""
    parser = _HtmlText()
    parser.feed(html)
    parser.close()
    lines = [line.strip() for line in "".join(parser.parts).split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# outbound e-mail --------------------------------------------------------------------------------
def reply_subject(subject, order_id=None):
    """``Re: <subject>`` without stacked prefixes; a subject naming the order when none."""
    subject = " ".join((subject or "").split())
    while REPLY_PREFIX.match(subject):
        subject = REPLY_PREFIX.sub("", subject, count=1)
    if not subject:
        subject = f"Order {order_id}" if order_id else "Your message"
    return f"Re: {subject}"


def check_reply_text(text):
    """Refuse what Amazon's messaging rules forbid in a text for a buyer: HTML and e-mail
    addresses (Amazon blocks or removes them).

    :raise ChannelSendError: (permanent) naming what is wrong
    """
    if HTML_TAG.search(text or ""):
        raise ChannelSendError("Amazon messages may not contain HTML.")
    if EMAIL_ADDRESS.search(text or ""):
        raise ChannelSendError("Amazon messages may not contain e-mail addresses.")
    return text


def reply_content(text, attachments):
    """``(text, attachments)`` of a reply e-mail from a reply of the hub: files given as
    ``data`` are attached; files known only by URL are listed under the text (a mail carries
    files, it cannot point the relay at them)."""
    files = [item for item in attachments if item.get("data")]
    links = [
        f"{item.get('name') or 'attachment'}: {item['url']}"
        for item in attachments
        if not item.get("data") and item.get("url")
    ]
    return "\n".join([text or "", *links]).strip(), files


def build_reply(
    from_address,
    buyer_alias,
    text,
    subject=None,
    in_reply_to=None,
    references=(),
    order_id=None,
    attachments=(),
    now=None,
):
    """The reply e-mail to a buyer (not sent: the caller's mail server sends it).

    :param from_address: the authorised sender address (Amazon rejects mail from others)
    :param in_reply_to: the Message-ID of the buyer's mail being answered
    :param references: that mail's ``References`` (list or space-separated text)
    :param attachments: ``{"name", "mimetype", "data" (base64)}`` dicts
    :raise ChannelSendError: (permanent) no sender address, a recipient that is not a buyer
        alias, or an empty reply
    """
    sender = parseaddr(from_address or "")[1]
    if "@" not in sender:
        raise ChannelSendError("No authorised sender address is configured for Amazon.")
    alias = parseaddr(buyer_alias or "")[1].lower()
    if not is_buyer_alias(alias):
        raise ChannelSendError("The recipient is not an Amazon buyer alias.")
    if not (text or "").strip() and not attachments:
        raise ChannelSendError("The reply is empty.")
    reply = EmailMessage()
    reply["From"] = from_address
    reply["To"] = alias
    reply["Subject"] = reply_subject(subject, order_id)
    reply["Date"] = format_datetime(now or datetime.now(timezone.utc))
    reply["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2])
    if in_reply_to:
        if isinstance(references, str):
            references = references.split()
        reply["In-Reply-To"] = in_reply_to
        reply["References"] = " ".join(dict.fromkeys([*references, in_reply_to]))
    reply.set_content(text or "")
    for attachment in attachments:
        maintype, _slash, subtype = (attachment.get("mimetype") or "").partition("/")
        reply.add_attachment(
            base64.b64decode(attachment["data"]),
            maintype=maintype or "application",
            subtype=subtype or "octet-stream",
            filename=attachment.get("name") or "attachment",
        )
    return reply


# SP-API Messaging -------------------------------------------------------------------------------
def parse_actions(payload):
    """The message types ``getMessagingActionsForOrder`` allows now, that this module can
    send, in Amazon's order (names from ``_links.actions[]``, else from their ``href``)."""
    links = payload.get("_links") if isinstance(payload, dict) else None
    actions = links.get("actions") if isinstance(links, dict) else None
    names = []
    for action in actions if isinstance(actions, list) else []:
        if not isinstance(action, dict):
            continue
        name = action.get("name")
        if not name and isinstance(action.get("href"), str):
            name = action["href"].split("?", 1)[0].rstrip("/").rpartition("/")[2]
        if name in MESSAGE_TYPES and name not in names:
            names.append(name)
    return names


def order_path(order_id):
    """The Messaging API path of an order (refusing anything but an order id in it)."""
    if not isinstance(order_id, str) or not ORDER_ID.fullmatch(order_id):
        raise ChannelSendError(f"{order_id!r} is not an Amazon order id.")
    return f"/messaging/v1/orders/{order_id}"


def message_path(order_id, message_type):
    """The path of a message type's call for an order."""
    if message_type not in MESSAGE_TYPES:
        raise ChannelSendError(f"{message_type!r} is not an SP-API Messaging message type.")
    return f"{order_path(order_id)}/messages/{message_type}"


def message_request(message_type, text=None, attachments=None):
    """The JSON body of a ``message_type`` message, checked as Amazon checks it.

    A message is one templated message: a text over the type's limit is refused, not split.

    :raise ChannelSendError: (permanent) with what is wrong
    """
    kind = MESSAGE_TYPES.get(message_type)
    if kind is None:
        raise ChannelSendError(f"{message_type!r} is not an SP-API Messaging message type.")
    body = {}
    if text:
        body["text"] = _checked_text(kind, text)
    if attachments:
        body["attachments"] = _checked_attachments(kind, attachments)
    if not body:
        needed = "text" if kind.text_limit else "attachments"
        raise ChannelSendError(f"A {message_type} message needs {needed}.")
    return body


def _checked_text(kind, text):
    if kind.text_limit is None:
        raise ChannelSendError(f"A {kind.name} message takes no text.")
    if len(text) > kind.text_limit:
        raise ChannelSendError(
            f"The text has {len(text)} characters; a {kind.name} message allows at most "
            f"{kind.text_limit}."
        )
    return check_reply_text(text)


def _checked_attachments(kind, attachments):
    if not kind.attachments:
        raise ChannelSendError(f"A {kind.name} message takes no attachments.")
    if len(attachments) > MAX_ATTACHMENTS:
        raise ChannelSendError(f"Amazon takes at most {MAX_ATTACHMENTS} attachments.")
    checked = []
    for attachment in attachments:
        upload_id = attachment.get("uploadDestinationId")
        file_name = attachment.get("fileName")
        if not isinstance(upload_id, str) or not isinstance(file_name, str) or not file_name:
            raise ChannelSendError("Each attachment needs an uploadDestinationId and a fileName.")
        checked.append({"uploadDestinationId": upload_id, "fileName": file_name})
    return checked


class AmazonMessagingClient:
    """SP-API Messaging calls on one regional host; the LWA access token is passed per call.

    :param base_url: :data:`SP_API_NA` (US, CA, MX, BR), :data:`SP_API_EU`,
        :data:`SP_API_FE`, or a test fake
    """

    def __init__(self, base_url=SP_API_NA, timeout=SEND_TIMEOUT, session=None):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._session = session or requests

    def __repr__(self):
        return f"AmazonMessagingClient(base_url={self.base_url!r})"

    def get_actions(self, access_token, order_id, marketplace_id):
        """The message types the order allows now (see :func:`parse_actions`)."""
        return parse_actions(self._call("GET", order_path(order_id), access_token, marketplace_id))

    def get_buyer_locale(self, access_token, order_id, marketplace_id):
        """The buyer's language (``pt-BR``...): messages must be written in it."""
        path = f"{order_path(order_id)}/attributes"
        payload = self._call("GET", path, access_token, marketplace_id)
        buyer = payload.get("buyer") if isinstance(payload.get("buyer"), dict) else {}
        return buyer.get("locale") if isinstance(buyer.get("locale"), str) else None

    def send_message(
        self, access_token, order_id, marketplace_id, message_type, text=None, attachments=None
    ):
        """Send one message of ``message_type``; Amazon answers 201 with no message id."""
        body = message_request(message_type, text, attachments)
        path = message_path(order_id, message_type)
        self._call("POST", path, access_token, marketplace_id, body)

    def get_marketplace_participations(self, access_token):
        """The marketplaces the seller takes part in (Sellers API
        ``getMarketplaceParticipations``, see :func:`parse_participations`): the cheapest
        authenticated call, for the channel's test."""
        return parse_participations(self._call("GET", PARTICIPATIONS_PATH, access_token))

    def _call(self, method, path, access_token, marketplace_id=None, body=None):
        headers = {
            "x-amz-access-token": access_token,
            "Accept": "application/hal+json, application/json",
            "User-Agent": USER_AGENT,
        }
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        response = send_request(
            self._session,
            method,
            self.base_url + path,
            "SP-API",
            params={"marketplaceIds": marketplace_id} if marketplace_id else None,
            data=data,
            headers=headers,
            timeout=self.timeout,
        )
        return classify_sp_api(
            response.status_code, response.headers, json_or_none(response, objects_only=True)
        )


def parse_participations(payload):
    """``[{"id", "name", "country", "participating"}]`` of a ``getMarketplaceParticipations``
    answer (``payload[]{marketplace{id, name, countryCode}, participation{isParticipating}}``),
    entries without a marketplace id left out."""
    entries = payload.get("payload") if isinstance(payload, dict) else None
    participations = []
    for entry in entries if isinstance(entries, list) else []:
        marketplace = entry.get("marketplace") if isinstance(entry, dict) else None
        if not isinstance(marketplace, dict) or not isinstance(marketplace.get("id"), str):
            continue
        participation = entry.get("participation")
        participation = participation if isinstance(participation, dict) else {}
        participations.append(
            {
                "id": marketplace["id"],
                "name": str(marketplace.get("name") or marketplace["id"]),
                "country": str(marketplace.get("countryCode") or ""),
                "participating": participation.get("isParticipating") is True,
            }
        )
    return participations


def classify_sp_api(status, headers, payload):
    """The JSON answer of a successful SP-API call (``{}`` when empty); otherwise raise
    :class:`ChannelSendError`."""
    if 200 <= status < 300:
        return payload or {}
    code, message, details = _first_error(payload)
    detail = _clean_reason(f"{code}: {message}" if message else code)
    if status == 429 or status >= 500:
        raise ChannelSendError(
            _with_detail(f"SP-API answered HTTP {status}", detail),
            retryable=True,
            retry_after=_sp_api_wait(headers) if status == 429 else None,
            status=status,
        )
    if status == 403 and "token" in f"{message} {details}".lower():
        raise AccessTokenRejected(
            "SP-API refused the access token; refresh it and send again.", status=status
        )
    if status == 403:
        reason = "SP-API denied access (is the Buyer Communication role granted?)"
        raise ChannelSendError(_with_detail(reason, detail), status=status)
    raise ChannelSendError(
        _with_detail(f"SP-API refused the call (HTTP {status})", detail), status=status
    )


def _first_error(payload):
    errors = payload.get("errors") if isinstance(payload, dict) else None
    first = errors[0] if isinstance(errors, list) and errors else {}
    first = first if isinstance(first, dict) else {}
    return tuple(str(first.get(name) or "") for name in ("code", "message", "details"))


def _sp_api_wait(headers):
    """Seconds to wait after a 429: ``Retry-After``, else one request's share of the rate
    ``x-amzn-RateLimit-Limit`` (requests per second)."""
    wait = parse_retry_after(headers.get("Retry-After"))
    if wait is not None:
        return wait
    try:
        rate = float(headers.get("x-amzn-RateLimit-Limit") or "")
    except ValueError:
        return None
    return math.ceil(1 / rate) if rate > 0 else None


# MCP tools --------------------------------------------------------------------------------------
ACTIONS_TOOL = "amazon_messaging_actions"
SEND_TOOL = "amazon_send_order_message"
_ORDER_ID_SCHEMA = {
    "type": "string",
    "pattern": f"^{ORDER_ID_PATTERN}$",
    "description": "The Amazon order id, like 123-1234567-1234567.",
}


def tool_descriptors():
    """The MCP definitions of the Amazon tools: what the buyer of an order may be sent now,
    and sending one templated SP-API message (text types only: the others need files
    uploaded first)."""
    text_types = sorted(name for name, kind in MESSAGE_TYPES.items() if kind.text_limit)
    return [
        {
            "name": ACTIONS_TOOL,
            "description": (
                "The SP-API message types the seller may send now to the buyer of an Amazon "
                "order, and the buyer's language (write the message in it). Amazon has no chat: "
                "these templated messages are the only messages the seller can start."
            ),
            "input_schema": {
                "type": "object",
                "properties": {"order_id": _ORDER_ID_SCHEMA},
                "required": ["order_id"],
                "additionalProperties": False,
            },
            "annotations": {
                "read_only": True,
                "destructive": False,
                "idempotent": True,
                "open_world": True,
            },
        },
        {
            "name": SEND_TOOL,
            "description": (
                "Send the buyer of an Amazon order one templated message of a type that "
                f"{ACTIONS_TOOL} lists for the order now (unexpectedProblem: a delay or a "
                "problem with the order; confirmDeliveryDetails, confirmOrderDetails...). "
                "Plain text in the buyer's language, no HTML, no e-mail addresses, no links "
                "unrelated to the order; at most 2000 characters (800 or 400 for some types)."
            ),
            "input_schema": {
                "type": "object",
                "properties": {
                    "order_id": _ORDER_ID_SCHEMA,
                    "message_type": {"type": "string", "enum": text_types},
                    "text": {"type": "string", "minLength": 1, "maxLength": 2000},
                },
                "required": ["order_id", "message_type", "text"],
                "additionalProperties": False,
            },
            "annotations": {
                "read_only": False,
                "destructive": False,
                "idempotent": False,
                "open_world": True,
            },
        },
    ]


# LWA tokens -------------------------------------------------------------------------------------
class LwaClient:
    """Login with Amazon token refresh for one app (client id and secret)."""

    def __init__(
        self,
        client_id,
        client_secret,
        token_url=LWA_TOKEN_URL,
        timeout=SEND_TIMEOUT,
        session=None,
        clock=time.time,
    ):
        self.client_id = client_id
        self._client_secret = client_secret
        self.token_url = token_url
        self.timeout = timeout
        self._session = session or requests
        self._clock = clock

    def __repr__(self):
        return f"LwaClient(client_id={self.client_id!r}, token_url={self.token_url!r})"

    def refresh(self, refresh_token):
        """A new access token (1 h) for the seller's ``refresh_token``."""
        form = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": self.client_id,
            "client_secret": self._client_secret,
        }
        now = self._clock()
        response = send_request(
            self._session,
            "POST",
            self.token_url,
            "LWA",
            data=form,
            headers={"Accept": "application/json"},
            timeout=self.timeout,
        )
        payload = classify_lwa(
            response.status_code, response.headers, json_or_none(response, objects_only=True)
        )
        lifetime = payload.get("expires_in")
        lifetime = lifetime if isinstance(lifetime, int) and lifetime > 0 else ACCESS_TOKEN_LIFETIME
        new_refresh = payload.get("refresh_token")
        return LwaToken(
            payload["access_token"],
            new_refresh if isinstance(new_refresh, str) and new_refresh else refresh_token,
            now + lifetime,
        )


def classify_lwa(status, headers, payload):
    """The token answer of LWA; otherwise raise :class:`ChannelSendError`."""
    error = str(payload.get("error") or "") if payload else ""
    if status == 429 or status >= 500:
        raise ChannelSendError(
            _with_detail(f"LWA answered HTTP {status}", _clean_reason(error)),
            retryable=True,
            retry_after=parse_retry_after(headers.get("Retry-After")),
            status=status,
        )
    if error == "invalid_grant":
        raise ReauthorizationRequired(
            "The Amazon authorization was revoked or has expired; the seller must authorize "
            "the app again.",
            status=status,
        )
    if error in ("invalid_client", "unauthorized_client"):
        raise LwaAppRefused(
            f"LWA refused the app's client id or secret ({error}).", error, status=status
        )
    access_token = payload.get("access_token") if payload else None
    if not 200 <= status < 300 or error or not isinstance(access_token, str) or not access_token:
        reason = _with_detail(f"LWA answered HTTP {status} without a token", _clean_reason(error))
        raise ChannelSendError(reason, status=status)
    return payload


def _with_detail(reason, detail):
    return f"{reason}: {detail}." if detail else f"{reason}."


def _clean_reason(text):
    return clean_reason(text, hide_token_like=True)
