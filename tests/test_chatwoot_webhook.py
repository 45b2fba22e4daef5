# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Chatwoot webhook bodies: parsing the raw bytes, classifying every reference sample and the
variants Chatwoot also sends, rejecting bodies that break the protocol, and the answer gate."""

import copy
import dataclasses
import json
from pathlib import Path

import pytest
from conftest import load_services

load_services("chatwoot_bridge")
from chatwoot_bridge_services import webhook  # after load_services, which makes it

REFERENCE = Path(__file__).resolve().parent.parent / "addons/chatwoot_bridge/tests/data/chatwoot"
CUSTOMER = {
    "id": 512,
    "name": "Comprador ML 123456789",
    "identifier": "ml:123456789",
    "phone_number": None,
    "email": None,
}


def raw_sample(name):
    return (REFERENCE / name).read_bytes()


def sample(name):
    """A reference sample read as the controller reads it: raw bytes through read_json."""
    return webhook.read_json(raw_sample(name), "application/json")


def incoming(**changes):
    payload = sample("wh_message_created_incoming_contact.json")
    payload.update(changes)
    return payload


def with_conversation(payload, **changes):
    payload["conversation"].update(changes)
    return payload


def with_meta(payload, **changes):
    payload["conversation"]["meta"].update(changes)
    return payload


def fields(event, *names):
    return {name: getattr(event, name) for name in names}


FLAGS = ("customer_message", "human_reply", "outbound", "new_status", "deleted", "ignored_reason")

# Every sample of the reference folder, with what the bridge must read from it.
EXPECTED = {
    "wh_message_created_incoming_contact.json": {
        "event": "message_created",
        "account_id": 3,
        "inbox_id": 7,
        "conversation_id": 1042,
        "conversation_status": "pending",
        "assignee_type": None,
        "message_id": 88001,
        "message_type": "incoming",
        "private": False,
        "text": "Olá, o produto ainda tem em estoque? Qual o prazo para CEP 01310-100?",
        "sender_type": "contact",
        "contact": CUSTOMER,
        "source_id": "ml-msg-5f1c2a",
        "attachments": (),
        "customer_message": True,
        "human_reply": False,
        "outbound": False,
        "new_status": None,
        "deleted": False,
        "ignored_reason": "",
    },
    "wh_message_created_outgoing_agent_bot.json": {
        "event": "message_created",
        "account_id": 3,
        "inbox_id": 7,
        "conversation_id": 1042,
        "conversation_status": "pending",
        "assignee_type": None,
        "message_id": 88002,
        "message_type": "outgoing",
        "private": False,
        "text": (
            "Olá! Sim, temos 12 unidades. Para o CEP 01310-100 o prazo estimado é de 2 dias úteis."
        ),
        "sender_type": "agent_bot",
        "contact": CUSTOMER,
        "source_id": None,
        # The bot's own reply: forwarded to the channel, never answered (no loop).
        "customer_message": False,
        "human_reply": False,
        "outbound": True,
        "new_status": None,
        "deleted": False,
        "ignored_reason": "",
    },
    "wh_message_created_outgoing_human_agent.json": {
        "event": "message_created",
        "account_id": 3,
        "inbox_id": 7,
        "conversation_id": 1042,
        "conversation_status": "open",
        "assignee_type": "User",
        "message_id": 88010,
        "message_type": "outgoing",
        "private": False,
        "text": "Oi! Aqui é a Ana, vou verificar seu pedido 2000009876543 e já retorno.",
        "sender_type": "user",
        "contact": CUSTOMER,
        "source_id": None,
        "customer_message": False,
        "human_reply": True,
        "outbound": True,
        "new_status": None,
        "deleted": False,
        "ignored_reason": "",
    },
    "wh_message_created_private_note.json": {
        "event": "message_created",
        "account_id": 3,
        "inbox_id": 7,
        "conversation_id": 1042,
        "conversation_status": "open",
        "assignee_type": "User",
        "message_id": 88011,
        "message_type": "outgoing",
        "private": True,
        "text": "Cliente já reclamou do prazo em outro pedido; priorizar.",
        "sender_type": "user",
        "contact": CUSTOMER,
        "source_id": None,
        "customer_message": False,
        "human_reply": False,
        "outbound": False,
        "new_status": None,
        "deleted": False,
        "ignored_reason": "private note",
    },
    "wh_conversation_created.json": {
        "event": "conversation_created",
        "account_id": None,  # conversation payloads carry no account
        "inbox_id": 7,
        "conversation_id": 1042,
        "conversation_status": "pending",
        "assignee_type": None,
        "message_id": None,
        "message_type": None,
        "text": "",
        "sender_type": "none",
        "contact": CUSTOMER,
        "customer_message": False,
        "human_reply": False,
        "outbound": False,
        "new_status": None,
        "ignored_reason": "conversation created: its messages arrive as message_created",
    },
    "wh_conversation_status_changed.json": {
        "event": "conversation_status_changed",
        "account_id": None,
        "inbox_id": 7,
        "conversation_id": 1042,
        "conversation_status": "open",
        "assignee_type": "User",
        "message_id": None,
        "contact": CUSTOMER,
        "customer_message": False,
        "new_status": "open",  # changed_attributes is null: the payload's status
        "ignored_reason": "",
    },
    "wh_contact_created.json": {
        "event": "contact_created",
        "account_id": 3,
        "inbox_id": None,
        "conversation_id": None,
        "contact": CUSTOMER,
        "customer_message": False,
        "new_status": None,
        "ignored_reason": "event contact_created is not used",
    },
    "agentbot_conversation_opened.json": {
        "event": "conversation_opened",
        "account_id": None,
        "inbox_id": 7,
        "conversation_id": 1042,
        "conversation_status": "open",
        "assignee_type": "User",
        "contact": CUSTOMER,
        "customer_message": False,
        "new_status": "open",
        "ignored_reason": "",
    },
}


def test_every_reference_sample_is_covered():
    samples = {path.name for path in REFERENCE.glob("wh_*.json")}
    samples.add("agentbot_conversation_opened.json")
    assert samples == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_reference_samples(name):
    expected = EXPECTED[name]
    event = webhook.classify(sample(name))
    assert fields(event, *expected) == expected


def test_the_connectors_chatwoot_sample_is_outbound():
    raw = REFERENCE / "chatwoot_webhook_message_created_outgoing.json"
    event = webhook.classify(webhook.read_json(raw.read_bytes(), "application/json"))
    assert fields(event, "account_id", "inbox_id", "conversation_id", "sender_type") == {
        "account_id": 1,
        "inbox_id": 5,
        "conversation_id": 567,
        "sender_type": "agent_bot",
    }
    assert event.outbound and not event.customer_message
    assert event.contact == {}  # no contact sender and no conversation meta


def test_events_are_frozen():
    event = webhook.classify(sample("wh_message_created_incoming_contact.json"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.customer_message = False


# -- message variants -------------------------------------------------------------------------


def test_captain_reply_is_outbound_and_not_a_customer_message():
    payload = incoming(
        message_type="outgoing",
        source_id=None,
        sender={
            "id": 2,
            "name": "Captain",
            "avatar_url": "",
            "description": "Store assistant",
            "created_at": "2026-02-13T18:22:12.000Z",
            "type": "captain_assistant",
        },
    )
    event = webhook.classify(payload)
    assert fields(event, "sender_type", "customer_message", "human_reply", "outbound") == {
        "sender_type": "captain_assistant",
        "customer_message": False,
        "human_reply": False,
        "outbound": True,
    }
    assert event.contact == CUSTOMER  # from conversation.meta.sender


@pytest.mark.parametrize("message_type", ["template", 3])
def test_template_message_without_sender_is_outbound(message_type):
    payload = incoming(message_type=message_type, source_id=None, sender=None, content="Olá!")
    event = webhook.classify(payload)
    assert fields(event, "message_type", "sender_type", "outbound", "customer_message") == {
        "message_type": "template",
        "sender_type": "none",
        "outbound": True,
        "customer_message": False,
    }
    assert event.contact == CUSTOMER


def test_private_template_is_not_outbound():
    event = webhook.classify(incoming(message_type="template", source_id=None, private=True))
    assert not event.outbound
    assert event.ignored_reason == "private note"


def test_outgoing_message_imported_from_the_channel_is_not_forwarded_again():
    payload = incoming(
        message_type="outgoing",
        source_id="ml-msg-seller-9",
        sender={"id": 4, "name": "Odoo AI Agent", "type": "agent_bot"},
    )
    event = webhook.classify(payload)
    assert not event.outbound
    assert event.ignored_reason == "outgoing message imported from the source channel"


def test_an_outgoing_message_sent_as_the_contact_is_not_forwarded():
    event = webhook.classify(incoming(message_type="outgoing", source_id=None))
    assert not (event.outbound or event.customer_message or event.human_reply)
    assert event.ignored_reason == "outgoing message of a contact"


def test_attachments_are_kept_as_received():
    attachment = {
        "id": 301,
        "message_id": 88001,
        "file_type": "image",
        "account_id": 3,
        "extension": None,
        "data_url": "https://chatwoot.example.test/rails/active_storage/blobs/redirect/x/photo.jpg",
        "thumb_url": "https://chatwoot.example.test/rails/active_storage/x/photo.jpg",
        "file_size": 48213,
        "width": 800,
        "height": 600,
    }
    audio = {"id": 302, "message_id": 88001, "file_type": "audio", "account_id": 3}
    event = webhook.classify(incoming(content=None, attachments=[attachment, audio]))
    assert event.attachments == (attachment, audio)
    assert event.text == ""
    assert event.customer_message


def test_a_deleted_message_is_reported():
    payload = incoming(
        event="message_updated",
        content="This message was deleted",
        content_attributes={"deleted": True},
    )
    event = webhook.classify(payload)
    assert fields(event, "deleted", "customer_message", "ignored_reason", "message_id") == {
        "deleted": True,
        "customer_message": False,
        "ignored_reason": "",
        "message_id": 88001,
    }


@pytest.mark.parametrize("content_attributes", [{}, {"deleted": False}, {"deleted": "true"}, None])
def test_other_message_updates_are_ignored(content_attributes):
    payload = incoming(event="message_updated", content_attributes=content_attributes)
    event = webhook.classify(payload)
    assert not event.deleted and not event.customer_message
    assert event.ignored_reason == "message update other than a deletion"


def test_an_update_of_the_bots_reply_is_not_forwarded_again():
    payload = sample("wh_message_created_outgoing_agent_bot.json")
    payload["event"] = "message_updated"
    event = webhook.classify(payload)
    assert not event.outbound
    assert event.ignored_reason == "message update other than a deletion"


@pytest.mark.parametrize(
    ("message_type", "expected"),
    [(0, "incoming"), (1, "outgoing"), (2, "activity"), (3, "template")],
)
def test_integer_message_types_are_mapped(message_type, expected):
    event = webhook.classify(incoming(message_type=message_type))
    assert event.message_type == expected
    assert event.customer_message is (expected == "incoming")


def test_activity_messages_are_ignored():
    event = webhook.classify(incoming(message_type="activity", sender=None))
    assert event.ignored_reason == "activity message"
    assert not (event.customer_message or event.outbound)


def test_an_unknown_message_type_string_is_ignored():
    event = webhook.classify(incoming(message_type="hologram\n"))
    assert event.ignored_reason == "message type hologram is not used"
    assert not (event.customer_message or event.outbound or event.human_reply)


def test_an_incoming_message_not_sent_by_a_contact_is_not_answered():
    event = webhook.classify(incoming(sender={"id": 21, "name": "Ana", "type": "user"}))
    assert not event.customer_message
    assert event.ignored_reason == "incoming message from sender user, not a contact"
    assert event.contact == CUSTOMER  # the customer, not the agent


def test_the_contact_type_of_older_servers_is_a_contact():
    payload = incoming()
    payload["sender"]["type"] = "contact"
    event = webhook.classify(payload)
    assert event.sender_type == "contact" and event.customer_message


def test_the_contact_comes_from_the_sender_over_the_meta():
    payload = with_meta(incoming(), sender={"id": 1, "name": "Someone else"})
    payload["sender"]["email"] = "buyer@example.test"
    event = webhook.classify(payload)
    assert event.contact == {**CUSTOMER, "email": "buyer@example.test"}


def test_an_unknown_sender_type_is_neither_a_contact_nor_a_person():
    payload = incoming(
        message_type="outgoing", source_id=None, sender={"id": 9, "type": "Robot\x00X"}
    )
    event = webhook.classify(payload)
    assert event.sender_type == "RobotX"
    assert event.outbound and not event.human_reply


def test_a_private_note_of_a_bot_is_ignored():
    payload = sample("wh_message_created_outgoing_agent_bot.json")
    payload["private"] = True
    event = webhook.classify(payload)
    assert not event.outbound
    assert event.ignored_reason == "private note"


def test_the_inbox_falls_back_to_the_conversations():
    payload = incoming()
    del payload["inbox"]
    payload["conversation"]["inbox_id"] = 8
    assert webhook.classify(payload).inbox_id == 8


def test_optional_message_fields_may_be_absent():
    payload = {
        "event": "message_created",
        "id": 5,
        "message_type": "incoming",
        "conversation": {"id": 9},
        "sender": {"id": 3, "name": "Buyer"},
    }
    event = webhook.classify(payload)
    assert fields(
        event, "account_id", "inbox_id", "conversation_status", "assignee_type", "text", "contact"
    ) == {
        "account_id": None,
        "inbox_id": None,
        "conversation_status": None,
        "assignee_type": None,
        "text": "",
        "contact": {
            "id": 3,
            "name": "Buyer",
            "identifier": None,
            "phone_number": None,
            "email": None,
        },
    }
    assert event.customer_message


# -- conversation, typing, contact and other events -------------------------------------------


def status_changed(**changes):
    payload = sample("wh_conversation_status_changed.json")
    payload.update(changes)
    return payload


@pytest.mark.parametrize("status", ["resolved", "pending", "snoozed"])
def test_status_changed_reads_the_payload_status(status):
    event = webhook.classify(status_changed(status=status))
    assert event.new_status == status and event.ignored_reason == ""


def test_status_changed_with_changed_attributes_still_reads_the_payload_status():
    changes = [{"status": {"previous_value": "pending", "current_value": "open"}}]
    assert webhook.classify(status_changed(changed_attributes=changes)).new_status == "open"


def test_conversation_resolved_for_the_bot():
    payload = sample("agentbot_conversation_opened.json")
    payload.update(event="conversation_resolved", status="resolved")
    event = webhook.classify(payload)
    assert event.new_status == "resolved" and event.ignored_reason == ""


def test_conversation_updated_with_a_status_change():
    payload = status_changed(
        event="conversation_updated",
        changed_attributes=[
            {"status": {"previous_value": "pending", "current_value": "open"}},
            {"updated_at": {"previous_value": 1771006930.5, "current_value": 1771007200.1}},
        ],
    )
    event = webhook.classify(payload)
    assert event.new_status == "open" and event.ignored_reason == ""
    assert event.assignee_type == "User"


@pytest.mark.parametrize(
    "changes",
    [
        [{"label_list": {"previous_value": [], "current_value": ["ml"]}}],
        [{"updated_at": {"previous_value": 1, "current_value": 2}}],
        [],
        None,
    ],
)
def test_conversation_updated_without_a_status_change_is_ignored(changes):
    event = webhook.classify(
        status_changed(event="conversation_updated", changed_attributes=changes)
    )
    assert event.new_status is None
    assert event.ignored_reason == "conversation update without a status change"
    assert event.conversation_id == 1042


@pytest.mark.parametrize("name", ["conversation_typing_on", "conversation_typing_off"])
def test_typing_events_are_ignored(name):
    conversation = sample("wh_conversation_created.json")
    del conversation["event"]
    payload = {
        "event": name,
        "user": {"id": 21, "name": "Ana Souza", "email": "ana@lojaexemplo.com.br", "type": "user"},
        "conversation": conversation,
        "is_private": False,
    }
    event = webhook.classify(payload)
    assert fields(event, "conversation_id", "inbox_id", "conversation_status", "contact") == {
        "conversation_id": 1042,
        "inbox_id": 7,
        "conversation_status": "pending",
        "contact": CUSTOMER,
    }
    assert event.ignored_reason == f"event {name} is not used"
    assert not event.customer_message


def test_contact_updated_is_ignored():
    payload = sample("wh_contact_created.json")
    payload.update(
        event="contact_updated",
        phone_number="+5511987654321",
        changed_attributes=[{"phone_number": {"previous_value": None, "current_value": "+55"}}],
    )
    event = webhook.classify(payload)
    assert event.contact["phone_number"] == "+5511987654321"
    assert event.ignored_reason == "event contact_updated is not used"


@pytest.mark.parametrize(
    "name",
    [
        "webwidget_triggered",
        "inbox_created",
        "inbox_updated",
        "macro.executed",
        "automation_event.message_created",
        "automation_event.conversation_updated",
        "automation_event.some_later_rule_event",
    ],
)
def test_known_events_the_bridge_does_not_use(name):
    payload = sample("wh_conversation_created.json")
    payload["event"] = name
    event = webhook.classify(payload)
    assert name in webhook.KNOWN_EVENTS or name.startswith("automation_event.")
    assert event.ignored_reason == f"event {name} is not used"
    assert not (event.customer_message or event.outbound or event.new_status)


def test_the_known_events_hold_the_whole_catalogue():
    catalogue = {
        "message_created",
        "message_updated",
        "conversation_created",
        "conversation_status_changed",
        "conversation_updated",
        "conversation_opened",
        "conversation_resolved",
        "webwidget_triggered",
        "contact_created",
        "contact_updated",
        "inbox_created",
        "inbox_updated",
        "conversation_typing_on",
        "conversation_typing_off",
        "macro.executed",
    }
    assert catalogue <= webhook.KNOWN_EVENTS


def test_an_unknown_event_is_ignored_not_rejected():
    event = webhook.classify({"event": "conversation_exploded", "id": [1], "whatever": {}})
    assert event.event == "conversation_exploded"
    assert event.ignored_reason == "unknown event conversation_exploded"
    assert not (event.customer_message or event.outbound or event.new_status or event.deleted)


def test_an_unknown_event_name_is_made_printable_and_short_in_the_reason():
    name = "\x1b[31mevil\r\nX-Injected: 1\u200b" + "a" * 200
    event = webhook.classify({"event": name})
    assert event.ignored_reason.startswith("unknown event [31mevilX-Injected: 1")
    assert event.ignored_reason.isprintable()
    assert len(event.ignored_reason) == len("unknown event ") + 64


# -- bodies that break the protocol -----------------------------------------------------------


@pytest.mark.parametrize("payload", [{}, {"event": None}, {"event": ""}, {"id": 1}])
def test_a_missing_event_is_rejected(payload):
    with pytest.raises(webhook.WebhookRejected) as raised:
        webhook.classify(payload)
    assert (raised.value.status, raised.value.reason) == (400, "missing event")


@pytest.mark.parametrize("name", [5, ["message_created"], {"x": 1}, True])
def test_an_event_name_that_is_not_a_string_is_rejected(name):
    with pytest.raises(webhook.WebhookRejected) as raised:
        webhook.classify({"event": name})
    assert raised.value.status == 400


def drop(path):
    def change(payload):
        *parents, last = path
        for key in parents:
            payload = payload[key]
        del payload[last]

    return change


def put(path, value):
    def change(payload):
        *parents, last = path
        for key in parents:
            payload = payload[key]
        payload[last] = value

    return change


MESSAGE_BREAKAGES = {
    "no id": drop(["id"]),
    "no message_type": drop(["message_type"]),
    "no conversation": drop(["conversation"]),
    "null conversation": put(["conversation"], None),
    "no conversation id": drop(["conversation", "id"]),
    "id as a list": put(["id"], [88001]),
    "id as a string": put(["id"], "88001"),
    "id as a boolean": put(["id"], True),
    "id as a float": put(["id"], 88001.0),
    "conversation as a list": put(["conversation"], [1042]),
    "conversation as a string": put(["conversation"], "1042"),
    "conversation id as a string": put(["conversation", "id"], "1042"),
    "message_type as a list": put(["message_type"], ["incoming"]),
    "message_type as a boolean": put(["message_type"], False),
    "message_type out of range": put(["message_type"], 9),
    "private as a string": put(["private"], "false"),
    "content as a number": put(["content"], 5),
    "sender as a string": put(["sender"], "contact"),
    "sender type as a number": put(["sender", "type"], 1),
    "sender id as a string": put(["sender", "id"], "512"),
    "sender name as a list": put(["sender", "name"], ["Olá"]),
    "source_id as a number": put(["source_id"], 5),
    "attachments as an object": put(["attachments"], {"file_type": "image"}),
    "attachments of numbers": put(["attachments"], [1, 2]),
    "inbox as a list": put(["inbox"], [7]),
    "inbox id as a string": put(["inbox", "id"], "7"),
    "account as a number": put(["account"], 3),
    "content_attributes as a list": put(["content_attributes"], ["deleted"]),
    "meta as a list": put(["conversation", "meta"], []),
    "assignee_type as an object": put(["conversation", "meta", "assignee_type"], {"x": 1}),
    "conversation status as a number": put(["conversation", "status"], 0),
    "meta sender as a string": put(["conversation", "meta", "sender"], "x"),
}


@pytest.mark.parametrize("event_name", ["message_created", "message_updated"])
@pytest.mark.parametrize("breakage", MESSAGE_BREAKAGES.values(), ids=MESSAGE_BREAKAGES.keys())
def test_broken_message_payloads_are_rejected(event_name, breakage):
    payload = incoming(event=event_name)
    breakage(payload)
    with pytest.raises(webhook.WebhookRejected) as raised:
        webhook.classify(payload)
    assert raised.value.status == 400
    assert raised.value.reason.isprintable() and "Olá" not in raised.value.reason


CONVERSATION_BREAKAGES = {
    "no id": drop(["id"]),
    "id as a string": put(["id"], "1042"),
    "inbox_id as a list": put(["inbox_id"], [7]),
    "status as a number": put(["status"], 1),
    "meta as a string": put(["meta"], "meta"),
    "changed_attributes as an object": put(["changed_attributes"], {"status": {}}),
    "changed_attributes of strings": put(["changed_attributes"], ["status"]),
    "status change as a string": put(["changed_attributes"], [{"status": "open"}]),
    "status change value as a number": put(
        ["changed_attributes"], [{"status": {"previous_value": 0, "current_value": 1}}]
    ),
}


@pytest.mark.parametrize("breakage", CONVERSATION_BREAKAGES.values(), ids=CONVERSATION_BREAKAGES)
def test_broken_conversation_payloads_are_rejected(breakage):
    payload = status_changed(event="conversation_updated", changed_attributes=[])
    breakage(payload)
    with pytest.raises(webhook.WebhookRejected) as raised:
        webhook.classify(payload)
    assert raised.value.status == 400


@pytest.mark.parametrize(
    "payload",
    [
        {"event": "conversation_typing_on"},
        {"event": "conversation_typing_on", "conversation": [1]},
        {"event": "conversation_typing_off", "conversation": {"inbox_id": 7}},
        {"event": "conversation_typing_off", "conversation": {"id": 1}, "is_private": "no"},
        {"event": "contact_created", "id": "512"},
        {"event": "contact_updated", "id": 512, "email": 5},
        {"event": "contact_created", "account": "3"},
    ],
)
def test_broken_typing_and_contact_payloads_are_rejected(payload):
    with pytest.raises(webhook.WebhookRejected) as raised:
        webhook.classify(payload)
    assert raised.value.status == 400


@pytest.mark.parametrize("payload", [[], "x", None, 5])
def test_classify_takes_only_an_object(payload):
    with pytest.raises(webhook.WebhookRejected) as raised:
        webhook.classify(payload)
    assert raised.value.status == 400


# -- read_json --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON; Charset=UTF-8",
        'application/json;charset="utf-8"',
        " application/json ",
        "application/json; charset=utf8; boundary=x",
    ],
)
def test_json_media_types_are_accepted(content_type):
    raw = raw_sample("wh_message_created_incoming_contact.json")
    assert webhook.read_json(raw, content_type) == json.loads(raw)


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "",
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/json-patch+json",
        "application/vnd.api+json",
        "text/json",
        "application/json; charset=iso-8859-1",
        "multipart/form-data; boundary=x",
    ],
)
def test_other_media_types_are_rejected(content_type):
    with pytest.raises(webhook.WebhookRejected) as raised:
        webhook.read_json(b'{"event": "message_created"}', content_type)
    assert raised.value.status == 415


def padded(size):
    """A valid JSON object of exactly ``size`` bytes."""
    head, tail = b'{"event": "x", "pad": "', b'"}'
    return head + b"a" * (size - len(head) - len(tail)) + tail


def test_a_body_of_the_maximum_size_is_read():
    assert webhook.read_json(padded(webhook.MAX_BODY_BYTES), "application/json")["event"] == "x"


def test_a_larger_body_is_rejected():
    with pytest.raises(webhook.WebhookRejected) as raised:
        webhook.read_json(padded(webhook.MAX_BODY_BYTES + 1), "application/json")
    assert raised.value.status == 413


RAW = raw_sample("wh_message_created_incoming_contact.json")
BAD_BODIES = {
    "empty": b"",
    "open brace": b"{",
    "truncated sample": RAW[:-10],
    "half of the sample": RAW[: len(RAW) // 2],
    "single quotes": b"{'event': 'message_created'}",
    "trailing comma": b'{"event": "message_created",}',
    "two objects": b'{"a": 1}{"b": 2}',
    "latin-1 text": '{"content": "ação"}'.encode("latin-1"),
    "invalid UTF-8": b'{"content": "\xff\xfe"}',
    "UTF-16": '{"event": "message_created"}'.encode("utf-16"),
    "UTF-8 BOM": b'\xef\xbb\xbf{"event": "message_created"}',
    "NaN": b'{"event": "message_created", "id": NaN}',
    "Infinity": b'{"event": "message_created", "id": Infinity}',
    "-Infinity": b'{"event": "message_created", "id": -Infinity}',
    "deep nesting": b'{"a": ' + b"[" * 200_000 + b"]" * 200_000 + b"}",
    "huge integer": b'{"id": ' + b"9" * 5000 + b"}",
    "lone surrogate": b'{"content": "\\ud800"}',
    "array": b"[]",
    "array of the sample": b"[" + RAW + b"]",
    "number": b"1",
    "string": b'"message_created"',
    "null": b"null",
    "true": b"true",
}


@pytest.mark.parametrize("raw", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_bad_bodies_are_rejected(raw):
    with pytest.raises(webhook.WebhookRejected) as raised:
        webhook.read_json(raw, "application/json")
    error = raised.value
    assert error.status == 400
    assert "Olá" not in error.reason and "message_created" not in error.reason


def test_paired_surrogate_escapes_are_text():
    payload = webhook.read_json(b'{"content": "\\ud83d\\ude00"}', "application/json")
    assert payload == {"content": "\U0001f600"}


# -- answerable -------------------------------------------------------------------------------


def customer_message(status, assignee_type):
    payload = with_meta(with_conversation(incoming(), status=status), assignee_type=assignee_type)
    return webhook.classify(payload)


@pytest.mark.parametrize(
    ("status", "assignee_type", "agent_bot", "account_webhook"),
    [
        ("pending", None, True, True),
        ("pending", "AgentBot", True, True),
        ("pending", "User", False, False),  # a person took it: never the AI
        ("open", None, False, True),
        ("open", "AgentBot", False, False),
        ("open", "User", False, False),
        ("resolved", None, False, False),
        ("snoozed", None, False, False),
        (None, None, False, False),
    ],
)
def test_answerable(status, assignee_type, agent_bot, account_webhook):
    event = customer_message(status, assignee_type)
    for mode, expected in (("agent_bot", agent_bot), ("account_webhook", account_webhook)):
        allowed, reason = webhook.answerable(event, mode)
        assert allowed is expected
        assert (reason == "") is expected
        assert reason.isprintable()


def test_answerable_reasons():
    assert webhook.answerable(customer_message("open", None), "agent_bot") == (
        False,
        "conversation is open, not pending",
    )
    assert webhook.answerable(customer_message("pending", "User"), "agent_bot") == (
        False,
        "conversation is assigned to a User",
    )
    assert webhook.answerable(customer_message("open", "User"), "account_webhook") == (
        False,
        "conversation is assigned to a User",
    )
    assert webhook.answerable(customer_message("open", "AgentBot"), "account_webhook") == (
        False,
        "open conversation assigned to a bot",
    )


@pytest.mark.parametrize(
    "name",
    [
        "wh_message_created_outgoing_agent_bot.json",
        "wh_message_created_outgoing_human_agent.json",
        "wh_message_created_private_note.json",
        "wh_conversation_created.json",
        "agentbot_conversation_opened.json",
    ],
)
@pytest.mark.parametrize("mode", ["agent_bot", "account_webhook"])
def test_only_customer_messages_are_answerable(name, mode):
    payload = sample(name)
    # Even in a pending, unassigned conversation.
    if "conversation" in payload:
        payload["conversation"]["status"] = "pending"
    else:
        payload["status"] = "pending"
    event = webhook.classify(payload)
    assert webhook.answerable(event, mode) == (False, "not a customer message")


def test_an_unknown_mode_is_a_programming_error():
    with pytest.raises(ValueError):
        webhook.answerable(customer_message("pending", None), "telepathy")


def test_classify_does_not_change_the_payload():
    payload = incoming()
    before = copy.deepcopy(payload)
    webhook.classify(payload)
    assert payload == before


def test_request_text_names_attachments():
    payload = incoming()
    payload["content"] = "olha isso"
    payload["attachments"] = [
        {"id": 1, "file_type": "image", "data_url": "https://x/1.png"},
        {"id": 2, "file_type": "audio", "transcribed_text": "quero trocar o tamanho"},
    ]
    event = webhook.classify(payload)
    assert webhook.request_text(event) == ("olha isso\n[image]\n[audio: quero trocar o tamanho]")
