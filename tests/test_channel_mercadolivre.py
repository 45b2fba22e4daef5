# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Mercado Livre's protocol: notifications, questions and answers, post-sale messages (with
the 2026 messaging agents), /missed_feeds and OAuth, against the fixtures and a fake
Mercado Livre API on 127.0.0.1."""

import json
from pathlib import Path

import pytest
import requests
from conftest import load_services, load_test_double

load_services("mcp_connectors")
from mcp_connectors_services import channel_mercadolivre as ml  # after load_services
from mcp_connectors_services.channels import ChannelSendError, InboundMessage, InboundRejected

fake_module = load_test_double("mcp_connectors", "fake_mercadolivre")

DATA = Path(__file__).resolve().parent.parent / "addons/mcp_connectors/tests/data/channels"
APP_ID = "2069392825111111"
SELLER = "123456789"
BUYER = "987654321"
AGENT = "3037675074"
QUESTION_ID = "5036111111"
PACK_ID = "2000000089077943"
NOW = 1_767_225_600


def fixture(name):
    return json.loads((DATA / name).read_text(encoding="utf-8"))


@pytest.fixture
def fake():
    with fake_module.FakeMercadoLivre(app_id=APP_ID) as running:
        yield running


@pytest.fixture
def client(fake):
    return ml.MercadoLivreClient(base_url=fake.url, timeout=(1, 2))


def failure(call, *args, **kwargs):
    with pytest.raises(ChannelSendError) as caught:
        call(*args, **kwargs)
    return caught.value


# notifications --------------------------------------------------------------------------------
def test_a_question_notification_needs_the_question_read():
    notification = ml.parse_notification(
        fixture("mercadolivre_notification_questions.json"), APP_ID
    )
    assert notification.kind == ml.KIND_QUESTION and notification.needs_fetch
    assert (notification.topic, notification.resource_id) == ("questions", QUESTION_ID)
    assert (notification.seller_id, notification.application_id) == (SELLER, APP_ID)
    assert notification.attempts == 1
    assert notification.notification_id == "f9f08571-1f65-4c46-9e0a-c0f43faas1e"
    assert (notification.sent, notification.received) == (
        "2026-01-05T13:51:05.464Z",
        "2026-01-05T13:51:05.438Z",
    )
    assert ml.notification_event(notification) is None


def test_a_messages_notification_names_the_bare_message_id():
    notification = ml.parse_notification(
        fixture("mercadolivre_notification_messages.json"), int(APP_ID)
    )
    assert notification.kind == ml.KIND_MESSAGE
    assert notification.resource_id == "3f6da1e35ac84f70a24af7360d24c7bc"
    assert notification.actions == ("created",)
    assert notification.notification_id == "5e2827f2-99b7-474e-b68b-6a86e934cc7e"


def test_retries_of_one_notification_share_the_dedupe_key():
    first = fixture("mercadolivre_notification_questions.json")
    retry = dict(first, attempts=4, sent="2026-01-05T14:20:00.000Z")
    other = dict(first, received="2026-01-05T15:00:00.000Z")
    key = ml.parse_notification(first, APP_ID).dedupe_key
    assert ml.parse_notification(retry, APP_ID).dedupe_key == key
    assert ml.parse_notification(other, APP_ID).dedupe_key != key


def test_a_string_user_id_is_accepted():
    payload = dict(fixture("mercadolivre_notification_questions.json"), user_id=SELLER)
    assert ml.parse_notification(payload, APP_ID).seller_id == SELLER


@pytest.mark.parametrize(
    ("topic", "resource", "actions", "kind"),
    [
        ("orders_v2", "/orders/2000000089077943", None, ml.EVENT_OTHER_TOPIC),
        ("items", "/items/MLB3486661111", None, ml.EVENT_OTHER_TOPIC),
        ("claims", "/post-purchase/v1/claims/5123", None, ml.EVENT_OTHER_TOPIC),
        ("shipments", "/shipments/4123", None, ml.EVENT_OTHER_TOPIC),
        ("messages", "3f6da1e35ac84f70a24af7360d24c7bc", ["read"], ml.EVENT_READ_RECEIPT),
        ("messages", "3f6da1e35ac84f70a24af7360d24c7bc", ["archived"], ml.EVENT_UNKNOWN),
        ("brand_new_topic", "/whatever/1", None, ml.EVENT_UNKNOWN),
    ],
)
def test_other_notifications_are_events_with_a_reason_never_errors(topic, resource, actions, kind):
    payload = dict(fixture("mercadolivre_notification_questions.json"), topic=topic)
    payload["resource"] = resource
    if actions:
        payload["actions"] = actions
    notification = ml.parse_notification(payload, APP_ID)
    assert not notification.needs_fetch
    event = ml.notification_event(notification)
    assert isinstance(event, ml.PlatformEvent)
    assert event.kind == kind
    assert event.reason
    assert event.metadata == {"topic": topic, "seller_id": SELLER}


def test_another_applications_notification_gets_403():
    with pytest.raises(InboundRejected) as caught:
        ml.parse_notification(fixture("mercadolivre_notification_questions.json"), "999")
    assert caught.value.status == 403


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"topic": None}, "topic"),
        ({"application_id": None}, "application_id"),
        ({"user_id": None}, "user_id"),
        ({"user_id": "12a"}, "user_id"),
        ({"user_id": True}, "user_id"),
        ({"resource": None}, "resource"),
        ({"resource": "/"}, "resource"),
        ({"resource": "/questions/../users/me"}, "resource"),
        ({"resource": "/questions/abc"}, "resource"),
        ({"actions": "created"}, "actions"),
    ],
)
def test_malformed_notifications_get_400_naming_the_field(changes, field):
    payload = dict(fixture("mercadolivre_notification_questions.json"), **changes)
    with pytest.raises(InboundRejected) as caught:
        ml.parse_notification(payload, APP_ID)
    assert caught.value.status == 400
    assert field in caught.value.reason


def test_a_body_that_is_not_an_object_gets_400():
    with pytest.raises(InboundRejected) as caught:
        ml.parse_notification([], APP_ID)
    assert caught.value.status == 400


# questions ------------------------------------------------------------------------------------
def test_an_open_question_is_a_public_thread_per_question():
    message = ml.parse_question(fixture("mercadolivre_question_get_response.json"))
    assert message == InboundMessage(
        thread_id=f"question:{QUESTION_ID}",
        message_id=QUESTION_ID,
        contact={"id": BUYER, "name": None, "phone": None, "email": None},
        text="Boa tarde, serve no modelo 2019?",
        metadata={
            "channel": "mercadolivre",
            "kind": "question",
            "public": True,
            "question_id": QUESTION_ID,
            "item_id": "MLB3486661111",
            "seller_id": SELLER,
            "created": "2026-01-05T09:51:05.000-04:00",
        },
    )
    assert ml.parse_thread_id(message.thread_id) == ("question", QUESTION_ID)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        ("ANSWERED", ml.EVENT_QUESTION_ANSWERED),
        ("CLOSED_UNANSWERED", ml.EVENT_QUESTION_NOT_OPEN),
        ("UNDER_REVIEW", ml.EVENT_QUESTION_NOT_OPEN),
    ],
)
def test_answered_or_closed_questions_are_events(status, kind):
    payload = dict(fixture("mercadolivre_question_get_response.json"), status=status)
    event = ml.parse_question(payload)
    assert isinstance(event, ml.PlatformEvent)
    assert (event.kind, event.thread_id) == (kind, f"question:{QUESTION_ID}")
    assert event.metadata["item_id"] == "MLB3486661111"


def test_the_answer_request_is_the_documented_body():
    expected = fixture("mercadolivre_answer_request.json")
    request = ml.answer_request(QUESTION_ID, expected["text"])
    assert (request.method, request.path, request.body) == ("POST", "/answers", expected)


def test_an_answer_of_exactly_2000_characters_is_allowed():
    assert len(ml.answer_request(QUESTION_ID, "a" * 2000).body["text"]) == 2000


def test_a_longer_answer_is_refused_not_split():
    error = failure(ml.answer_request, QUESTION_ID, "a" * 2001)
    assert not error.retryable
    assert "2001" in error.reason and "2000" in error.reason and "public" in error.reason
    assert not failure(ml.answer_request, QUESTION_ID, "   ").retryable


# post-sale messages ---------------------------------------------------------------------------
def test_an_agent_relayed_message_is_the_buyers_in_the_pack_thread():
    payload = fixture("mercadolivre_pack_messages_response.json")
    assert ml.packs_needing_buyer(payload, SELLER) == {PACK_ID}
    (message,) = ml.parse_post_sale_messages(payload, SELLER, buyers={PACK_ID: BUYER})
    assert message.thread_id == f"pack:{PACK_ID}"
    assert message.message_id == "3f6da1e35ac84f70a24af7360d24c7bc"
    assert message.contact == {"id": BUYER, "name": None, "phone": None, "email": None}
    assert message.text == "Bom dia, quando envia?"
    assert message.metadata["via_messaging_agent"] is True
    assert message.metadata["sender_id"] == AGENT
    assert (message.metadata["site_id"], message.metadata["buyer_id"]) == ("MLB", BUYER)
    assert message.metadata["conversation_status"] == "active"
    assert ml.parse_thread_id(message.thread_id) == ("pack", PACK_ID)


def test_an_agent_relayed_message_without_its_buyer_is_a_caller_error():
    with pytest.raises(ValueError, match=PACK_ID):
        ml.parse_post_sale_messages(fixture("mercadolivre_pack_messages_response.json"), SELLER)


def test_outside_mlb_and_mlc_the_sender_is_the_buyer():
    payload = fixture("mercadolivre_pack_messages_response.json")
    payload["messages"][0].update(site_id="MLA", **{"from": {"user_id": int(BUYER)}})
    assert ml.packs_needing_buyer(payload, SELLER) == set()
    (message,) = ml.parse_post_sale_messages(payload, SELLER)
    assert message.contact["id"] == BUYER
    assert message.metadata["via_messaging_agent"] is False


def test_the_sellers_own_and_moderated_messages_are_events():
    payload = fixture("mercadolivre_pack_messages_response.json")
    own = dict(payload["messages"][0], id="own1", **{"from": {"user_id": int(SELLER)}})
    hidden = dict(payload["messages"][0], id="mod1", message_moderation={"status": "blocked"})
    payload["messages"] = [own, hidden]
    events = ml.parse_post_sale_messages(payload, SELLER, buyers={PACK_ID: BUYER})
    assert [(e.kind, e.resource_id) for e in events] == [
        (ml.EVENT_OWN_MESSAGE, "own1"),
        (ml.EVENT_MODERATED, "mod1"),
    ]


def test_attachments_are_named_for_an_authorized_download():
    payload = fixture("mercadolivre_pack_messages_response.json")
    payload["messages"][0]["message_attachments"] = [
        {"filename": "123_a.png", "original_filename": "foto.png", "type": "image/png", "size": 9}
    ]
    (message,) = ml.parse_post_sale_messages(payload, SELLER, buyers={PACK_ID: BUYER})
    assert message.attachments == []
    assert message.metadata["attachments"] == [
        {"filename": "123_a.png", "name": "foto.png", "mimetype": "image/png", "size": 9}
    ]
    request = ml.attachment_request("123_a.png", "MLB")
    assert request.path == "/messages/attachments/123_a.png"
    assert failure(ml.attachment_request, "../x", "MLB").reason


def test_mlb_messages_go_to_the_messaging_agent():
    expected = fixture("mercadolivre_send_post_sale_message_request_MLB.json")
    (request,) = ml.post_sale_requests(PACK_ID, SELLER, expected["text"], "MLB")
    assert request.method == "POST"
    assert request.path == f"/messages/packs/{PACK_ID}/sellers/{SELLER}"
    assert request.params == {"tag": "post_sale"}
    assert request.body == expected


def test_other_sites_message_the_buyer():
    expected = fixture("mercadolivre_send_post_sale_message_request_legacy_buyer.json")
    (request,) = ml.post_sale_requests(PACK_ID, SELLER, expected["text"], "MLA", BUYER)
    assert request.body == expected


def test_mlc_needs_its_agent_id_setting():
    error = failure(ml.post_sale_requests, PACK_ID, SELLER, "Olá", "MLC", BUYER)
    assert "MLC" in error.reason and not error.retryable
    (request,) = ml.post_sale_requests(
        PACK_ID, SELLER, "Hola", "MLC", agent_ids={"MLB": AGENT, "MLC": "555"}
    )
    assert request.body["to"] == {"user_id": 555}


def test_a_long_post_sale_reply_is_split_at_sentences_within_350():
    sentence = "Seu pedido foi separado e será postado hoje. "
    text = sentence * 20
    requests = ml.post_sale_requests(PACK_ID, SELLER, text, "MLB")
    parts = [request.body["text"] for request in requests]
    assert len(parts) > 1
    assert all(len(part) <= 350 and part.endswith(".") for part in parts)
    assert " ".join(parts) == text.strip()


@pytest.mark.parametrize(
    ("text", "limit", "parts"),
    [
        ("curto", 10, ["curto"]),
        ("", 10, []),
        ("um dois três quatro", 9, ["um dois", "três", "quatro"]),
        ("Oi. Tudo bem com você?", 12, ["Oi. Tudo bem", "com você?"]),
        ("Primeira frase. Segunda", 20, ["Primeira frase.", "Segunda"]),
        ("abcdefghij", 4, ["abcd", "efgh", "ij"]),
        ("linha um\nlinha dois", 12, ["linha um", "linha dois"]),
    ],
)
def test_split_text(text, limit, parts):
    assert ml.split_text(text, limit) == parts


def test_a_blocked_conversation_is_a_clear_permanent_refusal():
    payload = fixture("mercadolivre_pack_messages_response.json")
    ml.check_conversation_open(payload)
    payload["conversation_status"].update(status="blocked", substatus="blocked_by_mediation")
    error = failure(ml.check_conversation_open, payload)
    assert not error.retryable
    assert "blocked_by_mediation" in error.reason


# threads --------------------------------------------------------------------------------------
@pytest.mark.parametrize("thread_id", [None, "", "pack:", "order:1", "pack:1/2", "question:x"])
def test_foreign_thread_ids_are_refused(thread_id):
    with pytest.raises(ValueError):
        ml.parse_thread_id(thread_id)


# against the fake API -------------------------------------------------------------------------
def test_a_question_notification_is_fetched_and_answered(fake, client):
    notification = ml.parse_notification(
        fixture("mercadolivre_notification_questions.json"), APP_ID
    )
    (message,) = client.fetch_events(notification, fake.access_token)
    assert message.message_id == QUESTION_ID and message.contact["id"] == BUYER
    (read,) = fake.requests_to("GET", "/questions/")
    assert read.headers["Authorization"] == f"Bearer {fake.access_token}"
    assert "access_token" not in read.query

    text = fixture("mercadolivre_answer_request.json")["text"]
    assert client.send_reply(message.thread_id, text, fake.access_token, SELLER) == [QUESTION_ID]
    (post,) = fake.requests_to("POST", "/answers")
    assert post.json() == fixture("mercadolivre_answer_request.json")
    # the answer is notified too: now an event, not a message
    (event,) = client.fetch_events(notification, fake.access_token)
    assert event.kind == ml.EVENT_QUESTION_ANSWERED
    error = failure(client.answer_question, QUESTION_ID, "de novo", fake.access_token)
    assert error.status == 400 and not error.retryable


def test_a_too_long_answer_never_reaches_mercado_livre(fake, client):
    failure(client.answer_question, QUESTION_ID, "a" * 2001, fake.access_token)
    assert fake.requests_to("POST", "/answers") == []


def test_an_mlb_message_notification_reads_the_buyer_from_the_order(fake, client):
    notification = ml.parse_notification(fixture("mercadolivre_notification_messages.json"), APP_ID)
    (message,) = client.fetch_events(notification, fake.access_token)
    assert message.contact["id"] == BUYER
    assert message.thread_id == f"pack:{PACK_ID}"
    read = fake.requests_to("GET", "/messages/")[0]
    assert read.path == "/messages/3f6da1e35ac84f70a24af7360d24c7bc"
    assert read.query == {"tag": "post_sale"}
    assert [r.path for r in fake.requests_to("GET", "/orders/")] == [f"/orders/{PACK_ID}"]
    # a known buyer saves the order read
    client.fetch_events(notification, fake.access_token, buyers={PACK_ID: BUYER})
    assert len(fake.requests_to("GET", "/orders/")) == 1


def test_a_cart_packs_buyer_comes_from_the_pack(fake, client):
    fake.add_pack("2000000500000001", "444555666", "MLB", order_ids=["11", "12"])
    message_id = fake.buyer_message("2000000500000001", "Chegou só um item")
    notification = ml.parse_notification(
        fake.notification("messages", message_id, actions=["created"]), APP_ID
    )
    (message,) = client.fetch_events(notification, fake.access_token)
    assert message.contact["id"] == "444555666"
    assert fake.requests_to("GET", "/packs/")[0].path == "/packs/2000000500000001"


def test_a_message_not_yet_readable_is_retryable(fake, client):
    notification = ml.parse_notification(
        fake.notification("messages", "ffffffffffffffffffffffffffffffff", actions=["created"]),
        APP_ID,
    )
    error = failure(client.fetch_events, notification, fake.access_token)
    assert (error.status, error.retryable) == (404, True)


def test_the_whole_pack_can_be_read_page_by_page(fake, client):
    for number in range(60):
        fake.buyer_message(PACK_ID, f"mensagem {number}")
    events = client.fetch_pack_events(PACK_ID, SELLER, fake.access_token, buyers={PACK_ID: BUYER})
    assert len(events) == 61
    assert len({event.message_id for event in events}) == 61
    assert len(fake.requests_to("GET", "/messages/packs/")) == 2


def test_a_split_mlb_reply_reaches_the_agent(fake, client):
    text = "Seu pedido foi separado e será postado hoje até as 17h. " * 10
    ids = client.send_reply(f"pack:{PACK_ID}", text, fake.access_token, SELLER)
    posts = fake.requests_to("POST", "/messages/packs/")
    assert len(ids) == len(posts) == 2 and all(ids)
    for post in posts:
        assert post.query == {"tag": "post_sale"}
        assert post.json()["from"] == {"user_id": int(SELLER)}
        assert post.json()["to"] == {"user_id": int(AGENT)}
        assert len(post.json()["text"]) <= 350
    (status_read,) = fake.requests_to("GET", "/messages/packs/")
    assert status_read.query["mark_as_read"] == "false"


def test_a_reply_outside_mlb_goes_to_the_buyer(fake, client):
    fake.add_pack("2000000600000002", "777", "MLA")
    fake.buyer_message("2000000600000002", "Hola")
    ids = client.send_reply("pack:2000000600000002", "Hola, ya sale.", fake.access_token, SELLER)
    assert len(ids) == 1
    (post,) = fake.requests_to("POST", "/messages/packs/")
    assert post.json()["to"] == {"user_id": 777}


def test_a_blocked_conversation_sends_nothing(fake, client):
    fake.packs[PACK_ID].update(status="blocked", substatus="blocked_by_mediation")
    error = failure(client.send_reply, f"pack:{PACK_ID}", "Olá", fake.access_token, SELLER)
    assert not error.retryable and "blocked_by_mediation" in error.reason
    assert fake.requests_to("POST", "/messages/packs/") == []


def test_a_failure_after_some_parts_says_how_many_went_out(fake, client):
    text = "Primeira parte da resposta, bem longa. " * 12
    pack_path = f"/messages/packs/{PACK_ID}"
    # the status read and the first part pass, the second part fails
    fake.inject(503, {"message": "unavailable", "error": "internal_error"}, path=pack_path, after=2)
    with pytest.raises(ml.PartialSendError) as caught:
        client.send_reply(f"pack:{PACK_ID}", text, fake.access_token, SELLER)
    error = caught.value
    assert (error.parts_sent, len(error.sent_ids), error.retryable) == (1, 1, True)
    assert "1 part(s)" in error.reason
    # the retry skips what went out: the buyer gets each part once
    rest = client.send_reply(
        f"pack:{PACK_ID}", text, fake.access_token, SELLER, skip=error.parts_sent
    )
    sent = [r.json()["text"] for r in fake.requests_to("POST", pack_path)]
    expected = [r.body["text"] for r in ml.post_sale_requests(PACK_ID, SELLER, text, "MLB")]
    assert len(rest) == len(expected) - 1
    assert sent == [expected[0], expected[1], *expected[1:]]  # the 503 one, then the retry
    stored = [fake.messages[key]["text"] for key in fake.packs[PACK_ID]["message_ids"][1:]]
    assert stored == expected


def test_a_failure_on_the_first_part_is_the_plain_error(fake, client):
    slow_down = {"message": "slow down", "error": "too_many_requests"}
    fake.inject(429, slow_down, path="/messages", after=1)
    error = failure(client.send_reply, f"pack:{PACK_ID}", "Olá", fake.access_token, SELLER)
    assert not isinstance(error, ml.PartialSendError) and error.retryable


@pytest.mark.parametrize(
    ("status", "payload", "headers", "retryable", "retry_after"),
    [
        (429, {"message": "Too many requests", "error": "too_many_requests"}, {}, True, None),
        (429, None, {"Retry-After": "7"}, True, 7),
        (403, {"message": "quota", "error": "local_rate_limited"}, {}, True, None),
        (500, None, {}, True, None),
        (503, {"message": "unavailable"}, {"Retry-After": "3"}, True, 3),
        (400, {"message": "bad", "error": "bad_request"}, {"Retry-After": "9"}, False, None),
        (403, {"message": "not allowed", "error": "forbidden"}, {}, False, None),
    ],
)
def test_answers_are_classified(fake, client, status, payload, headers, retryable, retry_after):
    fake.inject(status, payload, headers)
    error = failure(client.answer_question, QUESTION_ID, "Sim", fake.access_token)
    assert (error.status, error.retryable, error.retry_after) == (status, retryable, retry_after)
    assert f"HTTP {status}" in error.reason and "POST /answers" in error.reason


def test_a_refused_access_token_asks_for_a_refresh(fake, client):
    error = failure(client.answer_question, QUESTION_ID, "Sim", "APP_USR-expired-token")
    assert isinstance(error, ml.AccessTokenRejected)
    assert error.retryable and error.status == 401
    assert "APP_USR-expired-token" not in error.reason


def test_mercado_livre_echoing_the_token_does_not_leak_it(fake, client):
    fake.inject(400, {"message": f"token {fake.access_token} is odd", "error": "bad_request"})
    error = failure(client.answer_question, QUESTION_ID, "Sim", fake.access_token)
    assert fake.access_token not in error.reason and "***" in error.reason


def test_timeouts_and_unreachable_hosts_are_retryable(fake, client, closed_port):
    fake.inject(200, hold=True)
    error = failure(client.answer_question, QUESTION_ID, "Sim", fake.access_token)
    assert error.retryable and error.status is None and "in time" in error.reason
    down = ml.MercadoLivreClient(base_url=f"http://127.0.0.1:{closed_port}", timeout=(1, 1))
    error = failure(down.answer_question, QUESTION_ID, "Sim", fake.access_token)
    assert error.retryable and "could not be reached" in error.reason
    assert fake.access_token not in error.reason


# missed feeds ---------------------------------------------------------------------------------
def test_missed_feeds_are_requested_and_parsed(fake, client):
    question = fake.notification("questions", f"/questions/{QUESTION_ID}")
    order = fake.notification("orders_v2", "/orders/1")
    broken = {"topic": "questions", "resource": "/questions/1"}
    fake.missed = [dict(question, request={"url": "https://x"}, response={"http_code": 500})]
    fake.missed += [order, broken]
    page = client.missed_feeds(fake.access_token, APP_ID, limit=2)
    (read,) = fake.requests_to("GET", "/missed_feeds")
    assert read.query == {"app_id": APP_ID, "offset": "0", "limit": "2"}
    assert [n.kind for n in page.notifications] == [ml.KIND_QUESTION, ml.EVENT_OTHER_TOPIC]
    assert (page.invalid, page.has_more) == (0, True)
    page = client.missed_feeds(fake.access_token, APP_ID, offset=2, limit=2)
    assert (page.notifications, page.invalid, page.has_more) == ([], 1, False)
    page = client.missed_feeds(fake.access_token, APP_ID, topic="orders_v2")
    assert [n.topic for n in page.notifications] == ["orders_v2"]
    assert fake.requests_to("GET", "/missed_feeds")[-1].query["topic"] == "orders_v2"


def test_a_missed_feeds_answer_without_messages_is_an_error():
    assert failure(ml.parse_missed_feeds, {"results": []}, APP_ID).reason


# OAuth ----------------------------------------------------------------------------------------
def test_the_refresh_request_is_the_documented_form():
    expected = fixture("mercadolivre_oauth_token_request.form.json")["refresh_token"]
    request = ml.refresh_request("<APP_ID>", "<SECRET>", expected["refresh_token"])
    assert (request.method, request.path, request.authorized) == ("POST", "/oauth/token", False)
    assert request.form == expected
    assert "<SECRET>" not in repr(request)


def test_the_code_request_is_the_documented_form():
    expected = fixture("mercadolivre_oauth_token_request.form.json")["authorization_code"]
    request = ml.code_request(
        "<APP_ID>",
        "<SECRET>",
        expected["code"],
        expected["redirect_uri"],
        expected["code_verifier"],
    )
    assert request.form == expected


def test_the_token_answer_gives_the_expiry_and_the_new_refresh_token():
    answer = fixture("mercadolivre_oauth_token_response.json")
    tokens = ml.parse_token_response(answer, now=NOW)
    assert tokens.expires_at == NOW + 21600
    assert (tokens.access_token, tokens.refresh_token) == (
        answer["access_token"],
        answer["refresh_token"],
    )
    assert (tokens.user_id, tokens.scope) == (SELLER, "offline_access read write")
    assert answer["access_token"] not in repr(tokens)
    assert answer["refresh_token"] not in repr(tokens)
    assert not ml.needs_refresh(tokens.expires_at, now=NOW)
    assert ml.needs_refresh(tokens.expires_at, now=NOW + 21600 - 60)


def test_a_token_answer_without_refresh_token_names_offline_access():
    answer = fixture("mercadolivre_oauth_token_response.json")
    del answer["refresh_token"]
    assert "offline_access" in failure(ml.parse_token_response, answer).reason


def test_a_refresh_token_works_once(fake, client):
    old = fake.refresh_token
    tokens = client.refresh(APP_ID, fake.client_secret, old, now=NOW)
    assert tokens.refresh_token != old and tokens.expires_at == NOW + 21600
    (call,) = fake.requests_to("POST", "/oauth/token")
    assert call.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert "Authorization" not in call.headers
    assert call.form()["grant_type"] == "refresh_token"
    # the new access token works, the old refresh token does not
    assert client.answer_question(QUESTION_ID, "Sim", tokens.access_token) == QUESTION_ID
    error = failure(client.refresh, APP_ID, fake.client_secret, old)
    assert isinstance(error, ml.ReauthorizationRequired)
    assert not error.retryable and "authorize" in error.reason
    assert old not in error.reason and fake.client_secret not in error.reason
    assert client.refresh(APP_ID, fake.client_secret, tokens.refresh_token).access_token


def test_a_revoked_authorization_asks_to_reauthorize(fake, client):
    fake.revoke()
    error = failure(client.refresh, APP_ID, fake.client_secret, fake.refresh_token)
    assert isinstance(error, ml.ReauthorizationRequired)
    error = failure(client.answer_question, QUESTION_ID, "Sim", fake.access_token)
    assert isinstance(error, ml.AccessTokenRejected)


def test_a_wrong_client_secret_is_permanent_and_not_echoed(fake, client):
    error = failure(client.refresh, APP_ID, "wrong-secret", fake.refresh_token)
    assert (error.status, error.retryable) == (401, False)
    assert not isinstance(error, ml.AccessTokenRejected)  # no access token was involved
    assert "invalid client_id or client_secret" in error.reason
    fake.inject(400, {"message": "wrong-secret is not the secret", "error": "invalid_client"})
    error = failure(client.refresh, APP_ID, "wrong-secret", fake.refresh_token)
    assert "wrong-secret" not in error.reason and "***" in error.reason
    assert fake.refresh_token in fake.refresh_tokens  # refused calls spend nothing


def test_an_authorization_code_is_exchanged_once_with_pkce(fake, client):
    verifier, challenge = ml.pkce_pair()
    assert len(challenge) == 43 and verifier != challenge
    url = ml.authorization_url(APP_ID, "https://odoo.test/ml/callback", "st4te", challenge)
    assert url.startswith("https://auth.mercadolivre.com.br/authorization?response_type=code")
    assert "code_challenge_method=S256" in url and "state=st4te" in url
    code = fake.issue_code("https://odoo.test/ml/callback")
    tokens = client.exchange_code(
        APP_ID, fake.client_secret, code, "https://odoo.test/ml/callback", verifier
    )
    assert tokens.user_id == SELLER
    assert fake.requests_to("POST", "/oauth/token")[0].form()["code_verifier"] == verifier
    error = failure(
        client.exchange_code, APP_ID, fake.client_secret, code, "https://odoo.test/ml/callback"
    )
    # the code is spent: a clear refusal of the code, not a lapsed refresh token
    assert not isinstance(error, ml.ReauthorizationRequired) and not error.retryable
    assert "authorization code" in error.reason and code not in error.reason


def test_each_site_has_its_authorization_page():
    assert ml.AUTH_BASE_URLS["MLB"] == ml.AUTH_BASE_URL == "https://auth.mercadolivre.com.br"
    assert ml.AUTH_BASE_URLS["MLA"] == "https://auth.mercadolibre.com.ar"
    url = ml.authorization_url(APP_ID, "https://odoo.test/cb", auth_base=ml.AUTH_BASE_URLS["MLM"])
    assert url.startswith("https://auth.mercadolibre.com.mx/authorization?")


def test_the_code_of_the_authorization_page_needs_its_pkce_verifier(fake, client):
    verifier, challenge = ml.pkce_pair()
    redirect_uri = "https://odoo.test/mcp/channel/oauth/t0ken"
    url = ml.authorization_url(APP_ID, redirect_uri, "st4te", challenge, auth_base=fake.url)
    back = requests.get(url, allow_redirects=False, timeout=5)
    assert back.status_code == 302
    location = back.headers["Location"]
    assert location.startswith(f"{redirect_uri}?code=") and location.endswith("&state=st4te")
    code = location.split("code=")[1].split("&")[0]
    other_verifier, _challenge = ml.pkce_pair()
    error = failure(
        client.exchange_code, APP_ID, fake.client_secret, code, redirect_uri, other_verifier
    )
    assert "authorization code" in error.reason  # and the code is spent by the attempt
    back = requests.get(url, allow_redirects=False, timeout=5)
    code = back.headers["Location"].split("code=")[1].split("&")[0]
    tokens = client.exchange_code(APP_ID, fake.client_secret, code, redirect_uri, verifier)
    assert tokens.user_id == SELLER and tokens.access_token in fake.access_tokens


# retries, the Test button and the agents' tools -------------------------------------------------
def test_a_notification_payload_survives_a_round_trip():
    sent = dict(fixture("mercadolivre_notification_messages.json"), extra="dropped")
    notification = ml.parse_notification(sent, APP_ID)
    payload = notification.payload()
    assert "extra" not in payload and payload["actions"] == ["created"]
    again = ml.parse_notification(payload, APP_ID)
    assert again == notification and again.dedupe_key == notification.dedupe_key


def test_an_answer_is_posted_once_even_when_tried_again(fake, client):
    assert client.answer_open_question(QUESTION_ID, " Sim ", fake.access_token) == QUESTION_ID
    # the same answer again (its first answer lost to a timeout): nothing posted twice
    assert client.answer_open_question(QUESTION_ID, "Sim", fake.access_token) == QUESTION_ID
    assert len(fake.requests_to("POST", "/answers")) == 1
    error = failure(client.answer_open_question, QUESTION_ID, "Não", fake.access_token)
    assert not error.retryable and "already answered" in error.reason and "public" in error.reason


@pytest.mark.parametrize("status", ["CLOSED_UNANSWERED", "UNDER_REVIEW", None])
def test_a_question_no_longer_open_cannot_be_answered(status):
    error = failure(ml.check_question_open, {"status": status}, "Sim")
    assert not error.retryable and "can no longer be answered" in error.reason


def test_a_too_long_answer_is_refused_before_any_call(fake, client):
    failure(client.answer_open_question, QUESTION_ID, "a" * 2001, fake.access_token)
    assert fake.requests == []


def test_already_sent_finds_the_leading_parts_among_the_sellers_latest_messages():
    def message(sender, text, second):
        return {
            "id": f"m{second}",
            "from": {"user_id": sender},
            "text": text,
            "message_date": {"created": f"2026-03-01T12:00:{second:02d}.000Z"},
        }

    # listed newest first: the order of the dates counts, not the listing's
    payload = {
        "messages": [
            message(int(AGENT), "Obrigado", 3),
            message(int(SELLER), "parte 1", 2),
            message(int(SELLER), "antiga", 1),
        ]
    }
    assert ml.already_sent(payload, SELLER, ["parte 1", "parte 2"]) == ["m2"]
    assert ml.already_sent(payload, SELLER, ["antiga", "parte 1"]) == ["m1", "m2"]
    assert ml.already_sent(payload, SELLER, ["parte 2"]) == []


def test_a_resumed_reply_sends_only_the_parts_not_sent(fake, client):
    text = "Primeira parte da resposta, bem longa. " * 12
    fake.inject(503, {"message": "unavailable"}, path=f"/messages/packs/{PACK_ID}", after=2)
    with pytest.raises(ml.PartialSendError):
        client.send_post_sale(PACK_ID, SELLER, text, fake.access_token)
    ids = client.send_post_sale(PACK_ID, SELLER, text, fake.access_token, resume=True)
    expected = [r.body["text"] for r in ml.post_sale_requests(PACK_ID, SELLER, text, "MLB")]
    stored = [fake.messages[key]["text"] for key in fake.packs[PACK_ID]["message_ids"][1:]]
    assert stored == expected and len(ids) == len(expected)
    # everything sent: a resumed reply sends nothing more
    assert client.send_post_sale(PACK_ID, SELLER, text, fake.access_token, resume=True) == ids
    assert len(fake.packs[PACK_ID]["message_ids"]) == 1 + len(expected)


def test_a_long_conversation_is_resumed_from_its_last_page(fake, client):
    for number in range(60):
        fake.buyer_message(PACK_ID, f"mensagem {number}")
    client.send_post_sale(PACK_ID, SELLER, "Já respondo.", fake.access_token)
    assert client.send_post_sale(PACK_ID, SELLER, "Já respondo.", fake.access_token, resume=True)
    assert len(fake.requests_to("POST", "/messages/packs/")) == 1
    last_page = fake.requests_to("GET", "/messages/packs/")[-1]
    assert last_page.query["offset"] == str(62 - ml.PACK_MESSAGES_PAGE)


def test_me_names_the_tokens_user(fake, client):
    assert client.me(fake.access_token) == (SELLER, "LOJA_TESTE")
    assert failure(ml.parse_me, {"nickname": "x"}).reason


def test_an_order_summary_has_status_items_buyer_and_shipping(fake, client):
    shipment = fake.add_shipment(PACK_ID, "shipped", "out_for_delivery", "BR1")
    summary = client.order(PACK_ID, fake.access_token)
    assert summary["order_id"] == PACK_ID and summary["status"] == "paid"
    assert summary["buyer"] == {"id": BUYER, "nickname": "COMPRADOR_TESTE"}
    assert summary["items"] == [
        {
            "item_id": "MLB3486661111",
            "title": "Fone de ouvido sem fio",
            "quantity": 1,
            "unit_price": 129.9,
        }
    ]
    assert summary["shipping"] == {
        "id": shipment,
        "status": "shipped",
        "substatus": "out_for_delivery",
        "tracking_number": "BR1",
    }
    assert "address" not in json.dumps(summary)


def test_an_order_without_shipment_reads_no_shipment(fake, client):
    assert client.order(PACK_ID, fake.access_token)["shipping"] is None
    assert fake.requests_to("GET", "/shipments/") == []


def test_unanswered_questions_are_listed(fake, client):
    fake.add_question("Tem azul?", buyer_id="555")
    fake.add_question("Respondida", status="ANSWERED")
    listed = client.unanswered_questions(SELLER, fake.access_token, limit=5)
    assert listed["total"] == 2
    assert [(q["text"], q["buyer_id"]) for q in listed["questions"]][-1] == ("Tem azul?", "555")
    (search,) = fake.requests_to("GET", "/questions/search")
    assert search.query == {
        "seller_id": SELLER,
        "status": "UNANSWERED",
        "api_version": "4",
        "limit": "5",
    }
    assert failure(ml.parse_unanswered_questions, {"results": []}).reason


def test_the_tools_are_read_only_and_take_no_seller():
    tools = {tool["name"]: tool for tool in ml.tool_descriptors()}
    assert set(tools) == {ml.TOOL_GET_ORDER, ml.TOOL_UNANSWERED_QUESTIONS}
    for tool in tools.values():
        assert tool["annotations"]["read_only"] and not tool["annotations"]["destructive"]
        assert "seller_id" not in tool["input_schema"]["properties"]
