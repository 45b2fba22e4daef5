# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Meta channels (WhatsApp Cloud API, Messenger, Instagram Direct): webhook handshake and
signatures on the fixed test vectors, parsing of every event kind, reply windows, text splits,
request bodies against the fixtures, and sends through a fake Graph API on 127.0.0.1."""

import copy
import json
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl, urlsplit

import jsonschema
import pytest
from conftest import load_services, load_test_double

load_services("mcp_connectors")
from mcp_connectors_services import channel_meta as meta  # after load_services, which makes it
from mcp_connectors_services.channels import ChannelSendError, InboundMessage, InboundRejected

fake_meta = load_test_double("mcp_connectors", "fake_meta")
fixture = fake_meta.fixture

VECTORS = fixture("signature_test_vectors.json")
RAW_WHATSAPP = (fake_meta.DATA / "whatsapp_inbound_text.raw_body.txt").read_bytes()
WA_PHONE_ID = "106540352242922"
PAGE_ID = "109876543210987"
IG_ID = "17841405309211844"
BSUID = "BR.1502576394655843"
WAMID = "wamid.HBgNNTUxMTk4ODg4Nzc3NxUCABIYFjNFQjBBMEI3RjQ1QzlGRTNBQkY5AA=="
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
OPEN = meta.ReplyWindow(True, "open", meta.RESPONSE)
WA_OPEN = meta.ReplyWindow(True, "open")


@pytest.fixture
def graph():
    with fake_meta.FakeGraph() as running:
        yield running


def client(graph, **kwargs):
    return meta.GraphClient(fake_meta.ACCESS_TOKEN, base_url=graph.url, **kwargs)


def send_error(call, *args):
    with pytest.raises(ChannelSendError) as caught:
        call(*args)
    return caught.value


def whatsapp_value(**value):
    """A WhatsApp webhook with one ``messages`` change holding ``value``."""
    base = {"messaging_product": "whatsapp", "metadata": {"phone_number_id": WA_PHONE_ID}}
    change = {"field": "messages", "value": {**base, **value}}
    return {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [change]}]}


def messaging(platform_object, *events, account=PAGE_ID):
    return {"object": platform_object, "entry": [{"id": account, "messaging": list(events)}]}


def the_event(payload):
    events = meta.parse_webhook(payload)
    assert len(events) == 1
    return events[0]


# handshake ------------------------------------------------------------------------------------
def handshake_params():
    request = VECTORS["meta_verify_handshake"]["request"].split(" ", 1)[1]
    return dict(parse_qsl(urlsplit(request).query))


def test_handshake_answers_the_challenge_as_plain_text():
    vector = VECTORS["meta_verify_handshake"]
    challenge = meta.verify_handshake(handshake_params(), vector["configured_verify_token"])
    assert challenge == vector["expected_response"]["body"]
    assert meta.CHALLENGE_CONTENT_TYPE == vector["expected_response"]["content_type"]


@pytest.mark.parametrize(
    "change",
    [
        {"hub.verify_token": "other-token"},
        {"hub.verify_token": ""},
        {"hub.mode": "unsubscribe"},
        {"hub.challenge": ""},
        {"hub.challenge": "12\n34"},
        {"hub.challenge": "9" * 300},
    ],
)
def test_handshake_mismatch_gets_403(change):
    params = {**handshake_params(), **change}
    with pytest.raises(InboundRejected) as caught:
        meta.verify_handshake(params, "my-verify-token")
    assert caught.value.status == VECTORS["meta_verify_handshake"]["on_mismatch"]["status"]


def test_handshake_refused_without_a_configured_token():
    params = {**handshake_params(), "hub.verify_token": ""}
    with pytest.raises(InboundRejected) as caught:
        meta.verify_handshake(params, "")
    assert caught.value.status == 403


# signature ------------------------------------------------------------------------------------
SIGNATURE = VECTORS["meta_x_hub_signature_256"]


def signature_status(body, header, secrets=SIGNATURE["app_secret"]):
    with pytest.raises(InboundRejected) as caught:
        meta.verify_signature(body, header, secrets)
    assert SIGNATURE["app_secret"] not in caught.value.reason
    return caught.value.status


def test_signature_of_the_raw_body_passes():
    assert SIGNATURE["body_file"] == "whatsapp_inbound_text.raw_body.txt"
    assert SIGNATURE["header_name"] == meta.SIGNATURE_HEADER
    assert SIGNATURE["app_secret"] == fake_meta.APP_SECRET
    meta.verify_signature(RAW_WHATSAPP, SIGNATURE["header_value"], SIGNATURE["app_secret"])
    meta.verify_signature(RAW_WHATSAPP, SIGNATURE["header_value"].upper(), SIGNATURE["app_secret"])


def test_reserialised_body_fails_the_signature():
    reserialised = json.dumps(
        json.loads(RAW_WHATSAPP), ensure_ascii=False, separators=(",", ":")
    ).encode("utf-8")
    assert (
        fake_meta.signature_header(fake_meta.APP_SECRET, reserialised)
        == (SIGNATURE["wrong_if_reserialized_utf8"])
    )
    assert signature_status(reserialised, SIGNATURE["header_value"]) == 401
    assert signature_status(RAW_WHATSAPP, SIGNATURE["wrong_if_reserialized_utf8"]) == 401


@pytest.mark.parametrize(
    "header", [None, "", "sha256=", "sha1=abc", "ebff8dbc29bd", "sha256=zz", "sha256=é"]
)
def test_missing_or_malformed_signature_gets_401(header):
    assert signature_status(RAW_WHATSAPP, header) == 401


def test_signature_with_another_secret_fails_and_any_configured_secret_passes():
    assert signature_status(RAW_WHATSAPP, SIGNATURE["header_value"], "other-secret") == 401
    secrets = ["instagram-app-secret", SIGNATURE["app_secret"]]
    meta.verify_signature(RAW_WHATSAPP, SIGNATURE["header_value"], secrets)


@pytest.mark.parametrize("secrets", [None, "", [], [""]])
def test_no_configured_secret_gets_403(secrets):
    assert signature_status(RAW_WHATSAPP, SIGNATURE["header_value"], secrets) == 403


def test_fake_makes_the_webhook_bytes_meta_signs():
    body = fake_meta.webhook_body(fixture("whatsapp_inbound_text.json"))
    assert body == RAW_WHATSAPP
    assert fake_meta.signature_header(SIGNATURE["app_secret"], body) == SIGNATURE["header_value"]


def test_decode_payload():
    assert meta.decode_payload(RAW_WHATSAPP) == fixture("whatsapp_inbound_text.json")
    for raw, status in ((b"[1]", 400), (b"{", 400), (b" " * (meta.MAX_WEBHOOK_BYTES + 1), 413)):
        with pytest.raises(InboundRejected) as caught:
            meta.decode_payload(raw)
        assert caught.value.status == status


# accounts -------------------------------------------------------------------------------------
def test_webhook_accounts_name_the_tenant_keys():
    assert meta.webhook_accounts(fixture("whatsapp_inbound_text.json")) == [
        (meta.WHATSAPP, WA_PHONE_ID)
    ]
    assert meta.webhook_accounts(fixture("messenger_inbound_text.json")) == [
        (meta.MESSENGER, PAGE_ID)
    ]
    assert meta.webhook_accounts(fixture("instagram_inbound_text.json")) == [
        (meta.INSTAGRAM, IG_ID)
    ]
    batch = fixture("whatsapp_inbound_text.json")
    other = copy.deepcopy(batch["entry"][0])
    other["changes"][0]["value"]["metadata"]["phone_number_id"] = "999"
    batch["entry"].append(other)
    assert meta.webhook_accounts(batch) == [(meta.WHATSAPP, WA_PHONE_ID), (meta.WHATSAPP, "999")]
    assert meta.webhook_accounts({"object": "user", "entry": [{"id": "1"}]}) == []
    assert meta.webhook_accounts({"object": "page", "entry": "x"}) == []


# WhatsApp parsing -----------------------------------------------------------------------------
def test_whatsapp_text_message_with_business_scoped_user_id():
    message = the_event(fixture("whatsapp_inbound_text.json"))
    assert isinstance(message, InboundMessage)
    assert message.thread_id == BSUID
    assert message.message_id == WAMID
    assert message.contact == {
        "id": BSUID,
        "name": "João Cliente",
        "phone": "+5511988887777",
        "email": None,
    }
    assert message.text == "Olá, meu pedido já foi enviado? Preço: R$ 59,90 ✅"
    assert message.attachments == []
    assert message.metadata == {
        "platform": "whatsapp",
        "account_id": WA_PHONE_ID,
        "waba_id": "102290129340398",
        "sent_at": 1767225600,
        "message_type": "text",
        "wa_id": "5511988887777",
        "user_id": BSUID,
    }


def test_whatsapp_username_user_without_phone_keeps_the_same_identity():
    payload = fixture("whatsapp_inbound_text.json")
    value = payload["entry"][0]["changes"][0]["value"]
    del value["contacts"][0]["wa_id"]
    del value["messages"][0]["from"]
    value["contacts"][0]["username"] = "@joao"
    message = the_event(payload)
    assert message.thread_id == message.contact["id"] == BSUID
    assert message.contact["phone"] is None
    assert message.metadata["username"] == "@joao"
    assert "wa_id" not in message.metadata


def test_whatsapp_message_before_business_scoped_ids_uses_the_phone():
    payload = fixture("whatsapp_inbound_text.json")
    value = payload["entry"][0]["changes"][0]["value"]
    del value["contacts"][0]["user_id"]
    del value["messages"][0]["from_user_id"]
    message = the_event(payload)
    assert message.thread_id == message.contact["id"] == "5511988887777"
    assert message.contact["phone"] == "+5511988887777"


def test_whatsapp_reply_button_interactive_media_and_location():
    sender = {"from": "5511988887777", "timestamp": "1767225600"}
    messages = [
        {**sender, "id": "w1", "type": "text", "text": {"body": "Oi"}, "context": {"id": "w0"}},
        {**sender, "id": "w2", "type": "button", "button": {"text": "Sim", "payload": "YES"}},
        {
            **sender,
            "id": "w3",
            "type": "interactive",
            "interactive": {"type": "list_reply", "list_reply": {"id": "opt-2", "title": "Troca"}},
        },
        {
            **sender,
            "id": "w4",
            "type": "image",
            "image": {"id": "media-1", "mime_type": "image/jpeg", "caption": "Chegou assim"},
        },
        {
            **sender,
            "id": "w5",
            "type": "location",
            "location": {"latitude": -25.43, "longitude": -49.27, "name": "Loja"},
        },
    ]
    events = meta.parse_webhook(whatsapp_value(messages=messages))
    assert [event.text for event in events] == [
        "Oi",
        "Sim",
        "Troca",
        "Chegou assim",
        "Loja (-25.43, -49.27)",
    ]
    assert events[0].metadata["reply_to"] == "w0"
    assert events[1].metadata["reply_payload"] == "YES"
    assert events[2].metadata["reply_payload"] == "opt-2"
    assert events[3].metadata["media"] == [
        {"id": "media-1", "type": "image", "mimetype": "image/jpeg", "name": None}
    ]
    # no contacts[] in this payload: the phone alone is the identity
    assert {event.thread_id for event in events} == {"5511988887777"}


def test_whatsapp_status_is_not_a_message():
    event = the_event(fixture("whatsapp_status_delivered.json"))
    assert event.kind == meta.EVENT_STATUS
    assert event.account_id == WA_PHONE_ID
    assert event.thread_id == "5511988887777"
    assert event.message_ids == ("wamid.HBgNNTUxMTk4ODg4Nzc3NxUCABEYEjg4QjA5RjM1QjQ4RkY5QjY0QQA=",)
    assert event.detail["status"] == "delivered"
    assert "delivered" in event.reason


def test_whatsapp_failed_status_outside_the_window_says_a_template_is_needed():
    payload = fixture("whatsapp_status_delivered.json")
    status = payload["entry"][0]["changes"][0]["value"]["statuses"][0]
    status["status"] = "failed"
    status["recipient_user_id"] = BSUID
    status["errors"] = [
        {
            "code": 131047,
            "title": "Re-engagement message",
            "message": "Re-engagement message",
            "error_data": {"details": "More than 24 hours have passed"},
        }
    ]
    event = the_event(payload)
    assert event.kind == meta.EVENT_STATUS
    assert event.thread_id == BSUID
    assert "131047" in event.reason and "template" in event.reason
    assert event.detail["errors"] == [
        {
            "code": 131047,
            "title": "Re-engagement message",
            "message": "Re-engagement message",
            "details": "More than 24 hours have passed",
        }
    ]


def test_whatsapp_errors_reactions_system_and_unsupported_messages_are_recognised():
    sender = {"from": "5511988887777", "timestamp": "1767225600"}
    payload = whatsapp_value(
        messages=[
            {
                **sender,
                "id": "r1",
                "type": "reaction",
                "reaction": {"message_id": "w9", "emoji": "👍"},
            },
            {
                **sender,
                "id": "s1",
                "type": "system",
                "system": {"type": "user_changed_number", "body": "changed"},
            },
            {
                **sender,
                "id": "u1",
                "type": "unsupported",
                "errors": [{"code": 131051, "title": "Message type unknown"}],
            },
            {**sender, "id": "c1", "type": "contacts", "contacts": []},
            {"id": "x1", "type": "text", "text": {"body": "no sender"}},
        ],
        errors=[{"code": 131000, "title": "Something went wrong"}],
    )
    kinds = [event.kind for event in meta.parse_webhook(payload)]
    assert kinds == [
        meta.EVENT_REACTION,
        meta.EVENT_SYSTEM,
        meta.EVENT_UNSUPPORTED,
        meta.EVENT_UNSUPPORTED,
        meta.EVENT_UNKNOWN,
        meta.EVENT_ERROR,
    ]
    reaction, _, unsupported, _, _, error = meta.parse_webhook(payload)
    assert reaction.detail == {"reacted_to": "w9", "emoji": "👍"}
    assert unsupported.detail["errors"][0]["code"] == 131051
    assert "131000" in error.reason


@pytest.mark.parametrize(
    "payload",
    [
        None,
        [],
        {},
        {"object": "user", "entry": []},
        {
            "object": "whatsapp_business_account",
            "entry": [{"changes": [{"field": "account_update", "value": {}}]}],
        },
    ],
)
def test_other_payloads_are_unknown_events_never_errors(payload):
    events = meta.parse_webhook(payload)
    assert [event.kind for event in events] == [meta.EVENT_UNKNOWN]
    assert events[0].reason


def test_malformed_parts_are_skipped():
    payload = {
        "object": "whatsapp_business_account",
        "entry": [1, {"changes": "x"}, {"changes": [None, {"field": "messages", "value": 3}]}],
    }
    assert meta.parse_webhook(payload) == []


# Messenger and Instagram parsing --------------------------------------------------------------
def test_messenger_text_message():
    message = the_event(fixture("messenger_inbound_text.json"))
    assert isinstance(message, InboundMessage)
    assert message.thread_id == "6543210987654321"
    assert message.contact == {"id": "6543210987654321", "name": None, "phone": None, "email": None}
    assert message.message_id == "m_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"
    assert message.text == "Vocês entregam em Curitiba?"
    assert message.metadata == {
        "platform": "messenger",
        "account_id": PAGE_ID,
        "sent_at": 1767225599,
    }


def test_instagram_text_message():
    message = the_event(fixture("instagram_inbound_text.json"))
    assert isinstance(message, InboundMessage)
    assert message.thread_id == "1122334455667788"
    assert message.text == "Tem no tamanho M?"
    assert message.metadata["platform"] == "instagram"
    assert message.metadata["account_id"] == IG_ID


CUSTOMER = {"sender": {"id": "psid-1"}, "recipient": {"id": PAGE_ID}, "timestamp": 1767225599876}


def test_messenger_echo_is_our_own_message():
    echo = {
        "sender": {"id": PAGE_ID},
        "recipient": {"id": "psid-1"},
        "timestamp": 1767225600000,
        "message": {"mid": "m_echo", "text": "Oi", "is_echo": True, "app_id": 1517776481860111},
    }
    event = the_event(messaging("page", echo))
    assert event.kind == meta.EVENT_ECHO
    assert event.thread_id == "psid-1"
    assert event.message_ids == ("m_echo",)
    assert event.detail["app_id"] == "1517776481860111"


def test_messenger_attachments_quick_replies_and_postbacks():
    events = meta.parse_webhook(
        messaging(
            "page",
            {
                **CUSTOMER,
                "message": {
                    "mid": "m_1",
                    "attachments": [
                        {"type": "image", "payload": {"url": "https://cdn.example/x.jpg"}},
                        {"type": "fallback", "payload": None},
                    ],
                },
            },
            {**CUSTOMER, "message": {"mid": "m_2", "text": "Sim", "quick_reply": {"payload": "Y"}}},
            {
                **CUSTOMER,
                "postback": {"mid": "m_3", "title": "Falar com atendente", "payload": "HUMAN"},
            },
            {**CUSTOMER, "postback": {"title": "Começar", "payload": "GET_STARTED"}},
        )
    )
    assert all(isinstance(event, InboundMessage) for event in events)
    image, quick, postback, old_postback = events
    assert image.text == ""
    assert image.attachments == [
        {"name": None, "mimetype": None, "url": "https://cdn.example/x.jpg"}
    ]
    assert image.metadata["attachment_types"] == ["image"]
    assert quick.metadata["reply_payload"] == "Y"
    assert (postback.text, postback.message_id) == ("Falar com atendente", "m_3")
    assert postback.metadata["reply_payload"] == "HUMAN"
    assert old_postback.message_id == "postback-psid-1-1767225599876"


def test_messenger_deliveries_reads_reactions_and_others_are_not_answered():
    payload = messaging(
        "page",
        {**CUSTOMER, "delivery": {"mids": ["m_a", "m_b"], "watermark": 1767225600000}},
        {**CUSTOMER, "read": {"watermark": 1767225600000}},
        {**CUSTOMER, "reaction": {"mid": "m_a", "action": "react", "emoji": "❤"}},
        {**CUSTOMER, "optin": {"ref": "x"}},
        {**CUSTOMER, "message": {"mid": "m_s", "attachments": [{"type": "template"}]}},
    )
    payload["entry"][0]["standby"] = [{**CUSTOMER, "message": {"mid": "m_x", "text": "Oi"}}]
    events = meta.parse_webhook(payload)
    assert [event.kind for event in events] == [
        meta.EVENT_DELIVERY,
        meta.EVENT_READ,
        meta.EVENT_REACTION,
        meta.EVENT_UNKNOWN,
        meta.EVENT_UNSUPPORTED,
        meta.EVENT_STANDBY,
    ]
    assert events[0].message_ids == ("m_a", "m_b")
    assert events[1].detail == {"watermark": 1767225600000}
    assert "'optin'" in events[3].reason
    assert all(event.thread_id == "psid-1" for event in events)


def test_instagram_deleted_read_and_unsupported_messages():
    customer = {**CUSTOMER, "recipient": {"id": IG_ID}}
    events = meta.parse_webhook(
        messaging(
            "instagram",
            {**customer, "message": {"mid": "ig_1", "is_deleted": True}},
            {**customer, "read": {"mid": "ig_0"}},
            {**customer, "message": {"mid": "ig_2", "is_unsupported": True}},
            account=IG_ID,
        )
    )
    assert [event.kind for event in events] == [
        meta.EVENT_DELETED,
        meta.EVENT_READ,
        meta.EVENT_UNSUPPORTED,
    ]
    assert events[1].message_ids == ("ig_0",)
    assert {event.platform for event in events} == {"instagram"}


# reply windows --------------------------------------------------------------------------------
@pytest.mark.parametrize("platform", meta.PLATFORMS)
def test_within_24_hours_every_platform_may_answer(platform):
    window = meta.reply_window(platform, NOW - timedelta(hours=23, minutes=59), NOW)
    assert window.allowed
    assert window.messaging_type == (None if platform == "whatsapp" else "RESPONSE")
    assert window.tag is None


def test_whatsapp_after_24_hours_needs_a_template():
    window = meta.reply_window("whatsapp", NOW - timedelta(hours=24), NOW, by_human=True)
    assert not window.allowed
    assert window.template_required
    assert "template" in window.reason


@pytest.mark.parametrize("platform", [meta.MESSENGER, meta.INSTAGRAM])
def test_messenger_and_instagram_human_agent_tag_up_to_7_days(platform):
    last = NOW - timedelta(days=3)
    human = meta.reply_window(platform, last, NOW, by_human=True)
    assert (human.allowed, human.messaging_type, human.tag) == (True, "MESSAGE_TAG", "HUMAN_AGENT")
    ai = meta.reply_window(platform, last, NOW)
    assert not ai.allowed and "human agent" in ai.reason
    late = meta.reply_window(platform, NOW - timedelta(days=7), NOW, by_human=True)
    assert not late.allowed and "7 days" in late.reason


def test_window_takes_naive_utc_datetimes_and_epoch_seconds_and_never_started_chats():
    naive_last = (NOW - timedelta(hours=1)).replace(tzinfo=None)
    assert meta.reply_window("whatsapp", naive_last, NOW.replace(tzinfo=None)).allowed
    assert meta.reply_window("whatsapp", NOW.timestamp() - 10, NOW.timestamp()).allowed
    # a customer clock ahead of ours counts as just now
    assert meta.reply_window("messenger", NOW + timedelta(minutes=5), NOW).allowed
    never = meta.reply_window("messenger", None, NOW, by_human=True)
    assert not never.allowed and "customer must start" in never.reason
    with pytest.raises(ValueError):
        meta.reply_window("telegram", NOW, NOW)


# text splitting -------------------------------------------------------------------------------
def test_short_text_is_one_part():
    assert meta.split_text("  Olá!  ", 10) == ["Olá!"]
    assert meta.split_text("   ", 10) == []


def test_long_text_splits_at_sentences_then_words_then_hard():
    text = "Primeira frase aqui. Segunda frase um pouco maior. Fim."
    assert meta.split_text(text, 30) == [
        "Primeira frase aqui.",
        "Segunda frase um pouco maior.",
        "Fim.",
    ]
    assert meta.split_text("palavra " * 5, 20) == ["palavra palavra", "palavra palavra", "palavra"]
    assert meta.split_text("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]
    # a paragraph break wins over a later sentence end
    assert meta.split_text("Primeiro parágrafo longo.\n\nSegundo. Com frases.", 40) == [
        "Primeiro parágrafo longo.",
        "Segundo. Com frases.",
    ]


@pytest.mark.parametrize("platform", meta.PLATFORMS)
def test_parts_stay_under_the_platform_limit_counting_emoji_as_two(platform):
    limit = meta.TEXT_LIMITS[platform]
    text = " ".join(f"Frase número {index} com emoji 😀." for index in range(600))
    parts = meta.split_text(text, limit)
    assert len(parts) > 1
    assert all(meta.text_length(part) <= limit for part in parts)
    assert " ".join(parts) == text
    assert meta.text_length("😀a") == 3


# request bodies -------------------------------------------------------------------------------
def test_whatsapp_bodies_match_the_fixtures():
    expected = fixture("whatsapp_send_text_request.json")
    text = expected["text"]["body"]
    assert meta.text_messages("whatsapp", "5511988887777", text, WA_OPEN) == [expected]
    quoted = fixture("whatsapp_send_text_reply_context_request.json")
    quoted["text"]["preview_url"] = False
    body = meta.text_messages("whatsapp", "+5511988887777", quoted["text"]["body"], WA_OPEN, WAMID)
    assert body == [quoted]
    assert meta.whatsapp_read_body(WAMID) == fixture("whatsapp_mark_read_request.json")


def test_whatsapp_to_a_business_scoped_user_id_only():
    (body,) = meta.text_messages("whatsapp", BSUID, "Oi", WA_OPEN)
    assert body["recipient"] == BSUID and "to" not in body


def test_messenger_and_instagram_bodies_match_the_fixtures():
    expected = fixture("messenger_send_text_request.json")
    assert meta.text_messages(
        "messenger", "6543210987654321", expected["message"]["text"], OPEN
    ) == [expected]
    tagged = fixture("messenger_send_human_agent_tag_request.json")
    window = meta.reply_window("messenger", NOW - timedelta(days=2), NOW, by_human=True)
    assert meta.text_messages(
        "messenger", "6543210987654321", tagged["message"]["text"], window
    ) == [tagged]
    instagram = fixture("instagram_send_text_request.json")
    assert meta.text_messages(
        "instagram", "1122334455667788", instagram["message"]["text"], OPEN
    ) == [instagram]
    assert meta.seen_body("psid-1") == {"recipient": {"id": "psid-1"}, "sender_action": "mark_seen"}


def test_long_replies_become_several_messages_and_only_the_first_quotes():
    text = "Uma frase. " * 400
    bodies = meta.text_messages("whatsapp", "5511988887777", text, WA_OPEN, reply_to=WAMID)
    assert len(bodies) == 2
    assert "context" in bodies[0] and "context" not in bodies[1]
    assert len(meta.text_messages("messenger", "psid", text, OPEN)) == 3
    assert len(meta.text_messages("instagram", "igsid", text, OPEN)) == 5


def test_refused_replies_say_why():
    closed = meta.reply_window("whatsapp", NOW - timedelta(days=2), NOW)
    for args in (
        ("whatsapp", "5511988887777", "Oi", closed),
        ("messenger", "psid", "   ", OPEN),
        ("messenger", "", "Oi", OPEN),
    ):
        error = send_error(meta.text_messages, *args)
        assert not error.retryable
        assert error.reason
    assert "template" in send_error(meta.text_messages, *("whatsapp", "1", "Oi", closed)).reason


@pytest.mark.parametrize(
    "name",
    [
        "whatsapp_send_text_request.json",
        "whatsapp_send_text_reply_context_request.json",
        "whatsapp_mark_read_request.json",
        "messenger_send_text_request.json",
        "messenger_send_human_agent_tag_request.json",
        "instagram_send_text_request.json",
    ],
)
def test_fixtures_pass_the_fake_graphs_checks(name):
    platform = name.split("_", 1)[0]
    body = fixture(name)
    jsonschema.validate(body, fake_meta.body_schema(platform, body))


# sending through the fake Graph API -----------------------------------------------------------
def test_whatsapp_send_returns_the_wamid(graph):
    bodies = meta.text_messages("whatsapp", "5511988887777", "Olá João!", WA_OPEN, WAMID)
    ids = client(graph).send_messages(WA_PHONE_ID, bodies)
    assert len(ids) == 1 and ids[0].startswith("wamid.")
    (request,) = graph.requests
    assert request.method == "POST"
    assert request.path == f"/v25.0/{WA_PHONE_ID}/messages"
    assert request.headers["Authorization"] == f"Bearer {fake_meta.ACCESS_TOKEN}"
    assert "access_token" not in request.query  # never in a URL that proxies may log
    assert request.json() == bodies[0]


def test_messenger_and_instagram_sends_return_the_message_ids(graph):
    graph_client = client(graph)
    text = "Uma frase. " * 250
    ids = graph_client.send_messages(PAGE_ID, meta.text_messages("messenger", "psid-1", text, OPEN))
    assert len(ids) == 2 and all(mid.startswith("m_FAKE") for mid in ids)
    bodies = meta.text_messages("instagram", "igsid-1", "Temos sim!", OPEN)
    assert len(graph_client.send_messages(IG_ID, bodies)) == 1
    assert [body["message"]["text"] for body in graph.sent_bodies(IG_ID)] == ["Temos sim!"]


def test_mark_read_and_seen(graph):
    graph_client = client(graph)
    graph_client.mark_read(WA_PHONE_ID, WAMID)
    graph_client.mark_seen(PAGE_ID, "psid-1")
    assert graph.sent_bodies() == [meta.whatsapp_read_body(WAMID), meta.seen_body("psid-1")]


def test_graph_api_version_and_host_are_settings():
    other = fake_meta.FakeGraph(version="v26.0")
    try:
        meta.GraphClient(fake_meta.ACCESS_TOKEN, other.url + "/", "v26.0").mark_read(
            WA_PHONE_ID, WAMID
        )
        assert other.requests[0].path == f"/v26.0/{WA_PHONE_ID}/messages"
    finally:
        other.stop()


def test_the_fake_refuses_what_graph_refuses(graph):
    graph_client = client(graph)
    too_long = meta.page_text_body("instagram", "igsid", "x" * 1001, OPEN)
    error = send_error(graph_client.send_message, IG_ID, too_long)
    assert (error.status, error.retryable) == (400, False)
    assert "error 100" in error.reason
    error = send_error(graph_client.send_message, "404404", meta.seen_body("x"))
    assert "error 100" in error.reason and not error.retryable
    wrong_token = meta.GraphClient("not-the-token", base_url=graph.url)
    error = send_error(wrong_token.mark_read, WA_PHONE_ID, WAMID)
    assert isinstance(error, meta.AccessTokenRejected)
    assert graph.sent == []


def test_rate_limit_codes_are_retryable_with_their_wait(graph):
    graph_client = client(graph)
    body = meta.whatsapp_text_body("5511988887777", "Oi")
    graph.fail_next(400, 130429, "(#130429) Rate limit hit")
    error = send_error(graph_client.send_message, WA_PHONE_ID, body)
    assert (error.retryable, error.retry_after, error.status) == (True, 5, 400)
    graph.fail_next(400, 131056, "(#131056) Pair rate limit hit")
    assert send_error(graph_client.send_message, WA_PHONE_ID, body).retry_after == 6
    usage = json.dumps({"1234": [{"type": "messenger", "estimated_time_to_regain_access": 3}]})
    graph.fail_next(
        400, 80006, "(#80006) Too many calls", headers={"X-Business-Use-Case-Usage": usage}
    )
    error = send_error(graph_client.send_message, PAGE_ID, meta.seen_body("psid"))
    assert (error.retryable, error.retry_after) == (True, 180)


@pytest.mark.parametrize(
    "status, headers, retry_after",
    [(429, {"Retry-After": "7"}, 7), (500, {}, None), (503, {"Retry-After": "2"}, 2)],
)
def test_http_429_and_5xx_are_retryable(graph, status, headers, retry_after):
    graph.fail_next(status, payload={"error": {"message": "busy"}}, headers=headers)
    error = send_error(client(graph).mark_read, WA_PHONE_ID, WAMID)
    assert (error.retryable, error.retry_after, error.status) == (True, retry_after, status)


def test_transient_errors_are_retryable(graph):
    graph.fail_next(400, 2, "Service temporarily unavailable")
    assert send_error(client(graph).mark_read, WA_PHONE_ID, WAMID).retryable
    graph.fail_next(payload={"error": {"code": 9999, "is_transient": True, "message": "later"}})
    assert send_error(client(graph).mark_read, WA_PHONE_ID, WAMID).retryable


def test_outside_the_window_is_permanent_with_the_reason(graph):
    graph.fail_next(payload=fixture("meta_graph_error_response.json"))
    error = send_error(
        client(graph).send_message, WA_PHONE_ID, meta.whatsapp_text_body("55119", "Oi")
    )
    assert (error.retryable, error.status) == (False, 400)
    assert "131047" in error.reason and "template" in error.reason
    graph.fail_next(
        403, 10, "(#10) This message is sent outside of allowed window.", subcode=2018278
    )
    error = send_error(client(graph).mark_seen, PAGE_ID, "psid")
    assert not error.retryable and "HUMAN_AGENT" in error.reason


def test_revoked_token_asks_for_reauthorization(graph):
    graph.revoke_token()
    error = send_error(client(graph).mark_read, WA_PHONE_ID, WAMID)
    # refused: renewed once by the channel, which alerts when that is refused too
    assert isinstance(error, meta.AccessTokenRejected)
    assert not error.retryable and "re-authorize" in error.reason


def test_reasons_never_carry_the_token(graph):
    token = fake_meta.ACCESS_TOKEN
    graph.fail_next(400, 100, f"Invalid parameter near access_token={token}\x00")
    error = send_error(client(graph).mark_read, WA_PHONE_ID, WAMID)
    assert token not in error.reason and "***" in error.reason
    assert token not in repr(client(graph))
    assert token not in str(error)


def test_timeouts_and_unreachable_graph_are_retryable(graph, closed_port):
    graph.hold_next()
    error = send_error(client(graph, timeout=(1, 0.2)).mark_read, WA_PHONE_ID, WAMID)
    assert error.retryable and "in time" in error.reason
    down = meta.GraphClient(fake_meta.ACCESS_TOKEN, base_url=f"http://127.0.0.1:{closed_port}")
    error = send_error(down.mark_read, WA_PHONE_ID, WAMID)
    assert error.retryable and "reached" in error.reason


def test_a_failed_later_part_reports_what_was_sent(graph):
    bodies = meta.text_messages("whatsapp", "5511988887777", "Uma frase. " * 1000, WA_OPEN)
    assert len(bodies) == 3
    graph.fail_next(400, 131056, "(#131056) Pair rate limit hit", after=1)
    with pytest.raises(meta.PartialSendError) as caught:
        client(graph).send_messages(WA_PHONE_ID, bodies)
    error = caught.value
    assert (error.retryable, error.retry_after, error.status) == (True, 6, 400)
    assert len(error.sent_ids) == 1 and error.sent_ids[0].startswith("wamid.")
    assert error.unsent == bodies[1:]
    assert "1 part(s) of the reply were already sent" in error.reason
    assert graph.sent_bodies() == bodies[:1]


def test_first_part_failing_raises_the_plain_error(graph):
    graph.fail_next(400, 131056, "(#131056) Pair rate limit hit")
    bodies = meta.text_messages("whatsapp", "5511988887777", "Oi", WA_OPEN)
    error = send_error(client(graph).send_messages, WA_PHONE_ID, bodies)
    assert type(error) is ChannelSendError and error.retryable


# Instagram Login token refresh ----------------------------------------------------------------
def test_instagram_token_refresh(graph):
    token = meta.refresh_instagram_token(
        fake_meta.ACCESS_TOKEN, now=NOW, base_url=graph.url, timeout=(1, 5)
    )
    assert token["access_token"].startswith("IGAAfake")
    assert token["expires_in"] == fake_meta.TOKEN_LIFETIME
    assert token["expires_at"] == int(NOW.timestamp()) + fake_meta.TOKEN_LIFETIME
    (request,) = graph.requests
    assert (request.method, request.path) == ("GET", "/refresh_access_token")
    assert request.query == {
        "grant_type": ["ig_refresh_token"],
        "access_token": [fake_meta.ACCESS_TOKEN],
    }
    # the new token works for the next calls
    meta.GraphClient(token["access_token"], base_url=graph.url).mark_seen(IG_ID, "igsid")


def test_instagram_token_refresh_of_a_revoked_token(graph):
    graph.revoke_token()
    with pytest.raises(meta.ReauthorizationRequired) as caught:
        meta.refresh_instagram_token(fake_meta.ACCESS_TOKEN, base_url=graph.url)
    assert "re-authorize" in caught.value.reason
    assert fake_meta.ACCESS_TOKEN not in caught.value.reason


def test_token_answer_without_a_token_is_an_error():
    assert meta.parse_token({"access_token": "t"}, now=NOW) == {
        "access_token": "t",
        "expires_in": None,
        "expires_at": None,
    }
    assert not send_error(meta.parse_token, {"token_type": "bearer"}).retryable


def test_whatsapp_template_body_fills_the_body_parameters(graph):
    body = meta.whatsapp_template_body("+5511988887777", "pedido_enviado", "pt_BR", ["João", 42])
    assert body == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "5511988887777",
        "type": "template",
        "template": {
            "name": "pedido_enviado",
            "language": {"code": "pt_BR"},
            "components": [
                {
                    "type": "body",
                    "parameters": [
                        {"type": "text", "text": "João"},
                        {"type": "text", "text": "42"},
                    ],
                }
            ],
        },
    }
    bare = meta.whatsapp_template_body("BR.1502576394655843", "hello_world", "en_US")
    assert bare["recipient"] == "BR.1502576394655843" and "components" not in bare["template"]
    assert client(graph).send_message(WA_PHONE_ID, body).startswith("wamid.")


def test_get_node_reads_the_account_with_the_token(graph):
    node = client(graph).get_node(WA_PHONE_ID, ["display_phone_number", "verified_name"])
    assert node["verified_name"] == "Loja Exemplo"
    (request,) = graph.requests
    assert (request.method, request.path) == ("GET", f"/v25.0/{WA_PHONE_ID}")
    assert request.query["fields"] == ["display_phone_number,verified_name"]
    assert "access_token" not in request.query
    error = send_error(client(graph).get_node, "404404", ["name"])
    assert "error 100" in error.reason and not error.retryable
