# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Chatwoot webhook bodies: parse them and tell what each event means for the bridge.

Plain Python, no Odoo import. The controller calls :func:`read_json` on the raw body, then
:func:`classify`, and answers 200 for every classified event (ignored ones included) so that
Chatwoot never retries or, for an agent bot, hands the conversation over. Only a body that
breaks Chatwoot's protocol raises :class:`WebhookRejected` (a 4xx).

Payload shapes are those of Chatwoot v4.10 (``Message#webhook_data``, the conversation
``push_data``, ``Contact#webhook_data``; see the shared reference, chatwoot.md §1):

- message events carry ``account``, ``inbox`` and the whole ``conversation``; the top-level
  sender of a contact has no ``type`` key;
- conversation events are the conversation itself: its ``id`` is the display id, and there is
  no account;
- typing events are ``{user, conversation, is_private}``.
"""

import dataclasses
import json

MAX_BODY_BYTES = 1_048_576

MESSAGE_EVENTS = frozenset({"message_created", "message_updated"})
CONVERSATION_EVENTS = frozenset(
    {
        "conversation_created",
        "conversation_status_changed",
        "conversation_updated",
        "conversation_opened",
        "conversation_resolved",
    }
)
TYPING_EVENTS = frozenset({"conversation_typing_on", "conversation_typing_off"})
CONTACT_EVENTS = frozenset({"contact_created", "contact_updated"})
# Automation rules and macros post ``conversation.webhook_data`` as
# "automation_event.<rule event>" or "macro.executed"; any other "automation_event.*" name is
# known too (AUTOMATION_PREFIX).
AUTOMATION_PREFIX = "automation_event."
AUTOMATION_EVENTS = frozenset(
    AUTOMATION_PREFIX + name
    for name in (
        "conversation_created",
        "conversation_updated",
        "conversation_opened",
        "conversation_resolved",
        "message_created",
    )
) | {"macro.executed"}
KNOWN_EVENTS = (
    MESSAGE_EVENTS
    | CONVERSATION_EVENTS
    | TYPING_EVENTS
    | CONTACT_EVENTS
    | AUTOMATION_EVENTS
    | {"webwidget_triggered", "inbox_created", "inbox_updated"}
)

# Message#message_type: strings in webhooks, integers in conversation.messages[].
_MESSAGE_TYPES = {0: "incoming", 1: "outgoing", 2: "activity", 3: "template"}
# Sender#webhook_data "type"; a contact has none (older servers sent "contact").
_SENDER_TYPES = frozenset({"contact", "user", "agent_bot", "captain_assistant"})
_CONTACT_KEYS = ("id", "name", "identifier", "phone_number", "email")
_STATUS_EVENTS = {"conversation_opened": "open", "conversation_resolved": "resolved"}
_NAME_LENGTH = 64


class WebhookRejected(Exception):
    """The body breaks the protocol: answer ``status`` (4xx). ``reason`` quotes no body content."""

    def __init__(self, status, reason):
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


def _reject_constant(name):
    raise WebhookRejected(400, "NaN or Infinity in the JSON body")


def _media_type_is_json(content_type):
    media_type, *parameters = (content_type or "").split(";")
    if media_type.strip().lower() != "application/json":
        return False
    for parameter in parameters:
        key, _sep, value = parameter.partition("=")
        if key.strip().lower() == "charset" and value.strip().strip('"').lower() not in (
            "utf-8",
            "utf8",
        ):
            return False
    return True


def check_content_type(content_type):
    """:class:`WebhookRejected` (415) unless the body is declared JSON in UTF-8: checked
    before the body is read, as a web framework parses form bodies on its own."""
    if not _media_type_is_json(content_type):
        raise WebhookRejected(415, "content type is not application/json")


def read_json(raw, content_type):
    """The JSON object of a webhook body, or :class:`WebhookRejected` (415, 413 or 400)."""
    check_content_type(content_type)
    if len(raw) > MAX_BODY_BYTES:
        raise WebhookRejected(413, "body too large")
    try:
        text = bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise WebhookRejected(400, "body is not UTF-8") from None
    try:
        payload = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise WebhookRejected(400, "malformed JSON") from None
    if not isinstance(payload, dict):
        raise WebhookRejected(400, "JSON body is not an object")
    try:
        # A \ud800 escape decodes to a lone surrogate, which no database or log can encode.
        json.dumps(payload, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise WebhookRejected(400, "JSON body holds an invalid Unicode escape") from None
    return payload


@dataclasses.dataclass(frozen=True)
class Event:
    """One webhook, as the bridge reads it. The flags say what to do; see :func:`classify`."""

    event: str
    account_id: int | None = None
    inbox_id: int | None = None
    conversation_id: int | None = None  # the display id, used in REST paths
    conversation_status: str | None = None
    assignee_type: str | None = None  # "User", "AgentBot" or None
    message_id: int | None = None
    message_type: str | None = None  # "incoming", "outgoing", "activity", "template"
    private: bool = False
    text: str = ""
    sender_type: str = "none"  # "contact", "user", "agent_bot", "captain_assistant", "none"
    sender_name: str = ""  # who wrote the message (an agent's name for a human reply)
    # The customer: id, name, identifier, phone_number, email; {} when unknown.
    contact: dict = dataclasses.field(default_factory=dict)
    source_id: str | None = None  # set: imported from the external channel
    attachments: tuple = ()
    customer_message: bool = False  # a customer wrote: the AI may answer
    human_reply: bool = False  # a person answered
    outbound: bool = False  # to forward to the source channel of an API inbox
    new_status: str | None = None
    deleted: bool = False
    ignored_reason: str = ""  # "" when a flag is set, else why the bridge ignores the event


def printable(value, limit=_NAME_LENGTH):
    """``value`` fit for a reason or a log line: printable characters only, at most ``limit``."""
    return "".join(char for char in str(value) if char.isprintable())[:limit]


# -- typed reads: a wrong type is a protocol error (400), never a KeyError or TypeError --------


def _object(container, key, where, required=False):
    value = container.get(key)
    if value is None:
        if required:
            raise WebhookRejected(400, f"{where}{key} is missing")
        return {}
    if not isinstance(value, dict):
        raise WebhookRejected(400, f"{where}{key} is not an object")
    return value


def _integer(container, key, where, required=False):
    value = container.get(key)
    if value is None:
        if required:
            raise WebhookRejected(400, f"{where}{key} is missing")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise WebhookRejected(400, f"{where}{key} is not an integer")
    return value


def _string(container, key, where):
    value = container.get(key)
    if value is not None and not isinstance(value, str):
        raise WebhookRejected(400, f"{where}{key} is not a string")
    return value


def _boolean(container, key, where):
    value = container.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise WebhookRejected(400, f"{where}{key} is not a boolean")
    return value


def _contact(record, where):
    """The customer's identity fields of a contact record; {} when there is no record."""
    if not record:
        return {}
    contact = {"id": _integer(record, "id", where)}
    for key in _CONTACT_KEYS[1:]:
        contact[key] = _string(record, key, where)
    return contact


def _conversation_fields(conversation, where):
    """What a conversation object says, under the names of :class:`Event`."""
    meta = _object(conversation, "meta", where)
    return {
        "conversation_status": _string(conversation, "status", where),
        "assignee_type": _string(meta, "assignee_type", f"{where}meta."),
        "contact": _contact(_object(meta, "sender", f"{where}meta."), f"{where}meta.sender."),
    }


def _sender_type(sender):
    if not sender:
        return "none"
    kind = _string(sender, "type", "sender.")
    if kind is None:
        return "contact"
    # Kept as sent (made printable) when unknown: never "contact" nor "user", so it neither
    # triggers an answer nor counts as a person's reply.
    return kind if kind in _SENDER_TYPES else printable(kind)


def _message_type(payload):
    value = payload.get("message_type")
    if value is None:
        raise WebhookRejected(400, "message_type is missing")
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise WebhookRejected(400, "message_type has a wrong type")
    if isinstance(value, int):
        if value not in _MESSAGE_TYPES:
            raise WebhookRejected(400, "message_type is not a known number")
        return _MESSAGE_TYPES[value]
    return value


def _message_ignored_reason(event):
    if event.message_type not in _MESSAGE_TYPES.values():
        return f"message type {printable(event.message_type)} is not used"
    if event.private:
        return "private note"
    if event.message_type == "activity":
        return "activity message"
    if event.event == "message_updated":
        return "message update other than a deletion"
    if event.message_type == "incoming":
        return f"incoming message from sender {event.sender_type}, not a contact"
    if event.source_id is not None:
        return "outgoing message imported from the source channel"
    return f"{event.message_type} message of a contact"


def _classify_message(name, payload):
    conversation = _object(payload, "conversation", "", required=True)
    conversation_id = _integer(conversation, "id", "conversation.", required=True)
    message_id = _integer(payload, "id", "message ", required=True)
    message_type = _message_type(payload)
    inbox_id = _integer(_object(payload, "inbox", ""), "id", "inbox.")
    if inbox_id is None:
        inbox_id = _integer(conversation, "inbox_id", "conversation.")
    sender = _object(payload, "sender", "")
    sender_type = _sender_type(sender)
    fields = _conversation_fields(conversation, "conversation.")
    if sender_type == "contact":
        fields["contact"] = _contact(sender, "sender.")
    attachments = payload.get("attachments") or []
    if not isinstance(attachments, list) or not all(isinstance(a, dict) for a in attachments):
        raise WebhookRejected(400, "attachments is not a list of objects")
    private = _boolean(payload, "private", "")
    source_id = _string(payload, "source_id", "")
    content_attributes = _object(payload, "content_attributes", "")
    created = name == "message_created" and not private
    event = Event(
        event=name,
        account_id=_integer(_object(payload, "account", ""), "id", "account."),
        inbox_id=inbox_id,
        conversation_id=conversation_id,
        message_id=message_id,
        message_type=message_type,
        private=private,
        text=_string(payload, "content", "") or "",
        sender_type=sender_type,
        sender_name=printable(_string(sender or {}, "name", "sender.") or "", 128),
        source_id=source_id,
        attachments=tuple(attachments),
        customer_message=created and message_type == "incoming" and sender_type == "contact",
        human_reply=created and message_type == "outgoing" and sender_type == "user",
        outbound=created
        and message_type in ("outgoing", "template")
        and source_id is None
        and sender_type != "contact",
        deleted=name == "message_updated" and content_attributes.get("deleted") is True,
        **fields,
    )
    if event.customer_message or event.human_reply or event.outbound or event.deleted:
        return event
    return _with_reason(event, _message_ignored_reason(event))


def _status_change(name, payload):
    """The status a conversation event reports as new, or None."""
    if name in _STATUS_EVENTS:
        return _STATUS_EVENTS[name]
    status = _string(payload, "status", "")
    if name == "conversation_status_changed":
        # Chatwoot passes the status change after the commit, when Rails has cleared it:
        # changed_attributes is null there and the payload's status is the new one.
        return status
    if name != "conversation_updated":
        return None
    changes = payload.get("changed_attributes")
    if changes is None:
        return None
    if not isinstance(changes, list) or not all(isinstance(c, dict) for c in changes):
        raise WebhookRejected(400, "changed_attributes is not a list of objects")
    for change in changes:
        if "status" in change:
            detail = _object(change, "status", "changed_attributes.")
            current = _string(detail, "current_value", "changed_attributes.status.")
            return current or status
    return None


def _classify_conversation(name, payload):
    conversation_id = _integer(payload, "id", "conversation ", required=True)
    new_status = _status_change(name, payload) if name in CONVERSATION_EVENTS else None
    event = Event(
        event=name,
        # Conversation payloads have no account today; read it should a later version add it.
        account_id=_integer(_object(payload, "account", ""), "id", "account."),
        inbox_id=_integer(payload, "inbox_id", ""),
        conversation_id=conversation_id,
        new_status=new_status,
        **_conversation_fields(payload, ""),
    )
    if new_status:
        return event
    if name == "conversation_created":
        reason = "conversation created: its messages arrive as message_created"
    elif name == "conversation_updated":
        reason = "conversation update without a status change"
    else:
        reason = f"event {printable(name)} is not used"
    return _with_reason(event, reason)


def _classify_typing(name, payload):
    conversation = _object(payload, "conversation", "", required=True)
    event = Event(
        event=name,
        inbox_id=_integer(conversation, "inbox_id", "conversation."),
        conversation_id=_integer(conversation, "id", "conversation.", required=True),
        private=_boolean(payload, "is_private", ""),
        **_conversation_fields(conversation, "conversation."),
    )
    return _with_reason(event, f"event {name} is not used")


def _classify_contact(name, payload):
    event = Event(
        event=name,
        account_id=_integer(_object(payload, "account", ""), "id", "account."),
        contact=_contact(payload, "contact."),
    )
    return _with_reason(event, f"event {name} is not used")


def _with_reason(event, reason):
    return dataclasses.replace(event, ignored_reason=reason)


def classify(payload):
    """The :class:`Event` of a parsed webhook body.

    Unknown events (a later Chatwoot's) are classified as ignored, never rejected, so that the
    controller answers 200. Raises :class:`WebhookRejected` (400) when the event name is
    missing or a field the bridge reads is missing or of the wrong type.
    """
    if not isinstance(payload, dict):
        raise WebhookRejected(400, "JSON body is not an object")
    name = payload.get("event")
    if name is None or name == "":
        raise WebhookRejected(400, "missing event")
    if not isinstance(name, str):
        raise WebhookRejected(400, "event is not a string")
    if name in MESSAGE_EVENTS:
        return _classify_message(name, payload)
    if name in CONVERSATION_EVENTS or name in AUTOMATION_EVENTS:
        return _classify_conversation(name, payload)
    if name in TYPING_EVENTS:
        return _classify_typing(name, payload)
    if name in CONTACT_EVENTS:
        return _classify_contact(name, payload)
    if name in KNOWN_EVENTS or name.startswith(AUTOMATION_PREFIX):
        return Event(event=name, ignored_reason=f"event {printable(name)} is not used")
    return Event(event=name, ignored_reason=f"unknown event {printable(name)}")


def answerable(event, mode):
    """Whether the AI may answer this customer message: ``(True, "")`` or ``(False, reason)``.

    ``mode`` is how the webhook came in. Never while a person is assigned. ``"agent_bot"``: the
    conversation must be pending. ``"account_webhook"``: pending, or open with nobody assigned
    (no person has taken it).
    """
    if mode not in ("agent_bot", "account_webhook"):
        raise ValueError(f"unknown answer mode {mode!r}")
    if not event.customer_message:
        return False, "not a customer message"
    status = event.conversation_status
    assignee = event.assignee_type
    if assignee not in (None, "AgentBot"):
        return False, f"conversation is assigned to a {printable(assignee)}"
    if status == "pending":
        return True, ""
    if mode == "agent_bot":
        return False, f"conversation is {printable(status)}, not pending"
    if status != "open":
        return False, f"conversation is {printable(status)}, neither pending nor open"
    if assignee is not None:
        return False, "open conversation assigned to a bot"
    return True, ""


def request_text(event):
    """The customer's message as the crews read it: the text, and a line per attachment
    (its kind), so that a photo without words still reaches them as something."""
    lines = [event.text] if event.text else []
    for attachment in event.attachments:
        kind = printable(attachment.get("file_type") or "file", 32)
        text = attachment.get("transcribed_text")
        lines.append(f"[{kind}: {printable(text, 2000)}]" if text else f"[{kind}]")
    return "\n".join(lines)
