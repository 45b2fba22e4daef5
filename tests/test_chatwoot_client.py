# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""The bridge's Chatwoot REST client against the fake Chatwoot on loopback (real HTTP), and
the fake itself: its spec validation, auth and webhook payloads."""

import importlib
import json
import socket
import threading
import traceback
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from conftest import load_services, load_test_double

FAKE = load_test_double("chatwoot_bridge", "fake_chatwoot")
BOT = "bot-Tk-9f3a1c0d5e"
USER = "user-Tk-77b2e0a4c1"
REVOKED_USER = "user-Tk-revoked-31f0"
REVOKED_BOT = "bot-Tk-revoked-8d2c"
ACCOUNT = 3
API_INBOX = 7
WIDGET_INBOX = 8


@pytest.fixture(scope="module")
def cw():
    load_services("chatwoot_bridge")
    return importlib.import_module("chatwoot_bridge_services.client")


@pytest.fixture
def fake():
    with FAKE.FakeChatwoot(account_id=ACCOUNT, bot_token=BOT, user_token=USER) as server:
        yield server
    assert server.violations == []


@pytest.fixture
def sleeps():
    """The waits the client asked for, instead of sleeping."""
    return []


@pytest.fixture
def make_client(cw, fake, sleeps):
    clients = []

    def make(**options):
        settings = {
            "bot_token": BOT,
            "user_token": USER,
            "sleep": sleeps.append,
            "timeout": (2, 5),
            **options,
        }
        base_url = settings.pop("base_url", fake.url)
        account_id = settings.pop("account_id", ACCOUNT)
        client = cw.ChatwootClient(base_url, account_id, **settings)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client):
    return make_client()


@pytest.fixture
def conversation(fake):
    return fake.new_conversation(
        API_INBOX, name="Comprador", identifier="ml:1", source_id="ml:pack:1", content="Olá"
    )


@pytest.fixture
def unaccepting_port():
    """A port whose backlog is full: a new connection times out while connecting."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _attempt in range(8):
        filler = socket.socket()
        filler.settimeout(0.3)
        fillers.append(filler)
        try:
            filler.connect(("127.0.0.1", port))
        except OSError:
            break
    yield port
    for filler in fillers:
        filler.close()
    server.close()


def tokens_used(fake):
    return [request.headers.get("api_access_token") for request in fake.requests]


def paths(fake):
    return [(request.method, request.path.split("?")[0]) for request in fake.requests]


def conversation_path(conversation_id, tail=""):
    return f"/api/v1/accounts/{ACCOUNT}/conversations/{conversation_id}{tail}"


# -- each method ------------------------------------------------------------------------------


def test_post_message_as_the_bot(client, fake, conversation):
    fake.requests.clear()
    message = client.post_message(conversation, "Temos 12 unidades.")
    assert message["message_type"] == 1
    assert message["sender"]["type"] == "agent_bot"
    assert message["conversation_id"] == conversation
    assert message["id"] >= 5000
    request = fake.requests[-1]
    assert request.body == {
        "content": "Temos 12 unidades.",
        "message_type": "outgoing",
        "private": False,
    }
    assert tokens_used(fake) == ["bot"]
    assert [reply["content"] for reply in fake.replies(conversation)] == ["Temos 12 unidades."]


def test_post_message_options_and_private_note(client, fake, conversation):
    items = {"items": [{"title": "Sim", "value": "yes"}, {"title": "Não", "value": "no"}]}
    client.post_message(
        conversation,
        "Resolvido?",
        content_type="input_select",
        content_attributes=items,
        source_id="odoo-1",
    )
    stored = fake.messages(conversation)[-1]
    assert (stored["content_type"], stored["content_attributes"]) == ("input_select", items)
    assert stored["source_id"] == "odoo-1"
    note = client.post_private_note(conversation, "IA: cliente pediu troca")
    assert note["private"] is True
    assert [n["content"] for n in fake.notes(conversation)] == ["IA: cliente pediu troca"]
    assert [r["content"] for r in fake.replies(conversation)] == ["Resolvido?"]


def test_incoming_message_with_a_user_token_only(make_client, fake, conversation):
    client = make_client(bot_token=None)
    message = client.post_message(
        conversation, "pergunta do marketplace", message_type="incoming", source_id="ml-msg-1"
    )
    assert message["message_type"] == 0
    assert message["sender"]["type"] == "contact"
    assert fake.messages(conversation)[-1]["source_id"] == "ml-msg-1"
    assert tokens_used(fake)[-1] == "user"


def test_attachments_go_as_multipart(client, fake, conversation):
    image = b"\x89PNG\r\n\x1a\n\x00\xff--binary\r\n"
    message = client.post_message(
        conversation,
        "segue a foto",
        message_type="incoming",
        attachments=[
            ("foto.png", image, "image/png"),
            ("nota.pdf", b"%PDF-1.4", "application/pdf"),
        ],
    )
    request = fake.requests[-1]
    assert request.headers["Content-Type"].startswith("multipart/form-data")
    assert request.body["private"] == "false"
    assert request.body["attachments[]"] == [
        ("foto.png", image, "image/png"),
        ("nota.pdf", b"%PDF-1.4", "application/pdf"),
    ]
    assert [a["file_type"] for a in message["attachments"]] == ["image", "file"]
    stored = fake.messages(conversation)[-1]["attachments"]
    assert [(a["filename"], a["data"]) for a in stored] == [
        ("foto.png", image),
        ("nota.pdf", b"%PDF-1.4"),
    ]


def test_toggle_status_priority_typing(client, fake, conversation):
    payload = client.toggle_status(conversation, "pending")
    assert payload == {
        "success": True,
        "conversation_id": conversation,
        "current_status": "pending",
        "snoozed_until": None,
    }
    # the bot moving pending -> open is Chatwoot's bot handoff: success is null
    assert client.toggle_status(conversation, "open")["success"] is None
    assert fake.conversation(conversation)["status"] == "open"
    until = datetime(2030, 7, 21, 17, 32, 28)
    client.toggle_status(conversation, "snoozed", snoozed_until=until)
    assert fake.requests[-1].body == {
        "status": "snoozed",
        "snoozed_until": int(until.replace(tzinfo=timezone.utc).timestamp()),
    }
    assert client.toggle_priority(conversation, "high") is None
    assert fake.conversation(conversation)["priority"] == "high"
    client.toggle_priority(conversation, None)
    assert fake.requests[-1].body == {"priority": "none"}
    assert fake.conversation(conversation)["priority"] is None
    assert client.toggle_typing(conversation, True) is None
    client.toggle_typing(conversation, False, private=True)
    assert fake.requests[-1].body == {"typing_status": "off", "is_private": True}
    assert set(tokens_used(fake)[-7:]) == {"bot"}


def test_labels_are_read_then_written_whole(client, fake, conversation):
    fake.requests.clear()
    assert client.add_labels(conversation, ["mercadolivre", "pos-venda"]) == [
        "mercadolivre",
        "pos-venda",
    ]
    assert client.add_labels(conversation, ["urgente", "mercadolivre"]) == [
        "mercadolivre",
        "pos-venda",
        "urgente",
    ]
    labels = conversation_path(conversation, "/labels")
    assert paths(fake) == [("GET", labels), ("POST", labels), ("GET", labels), ("POST", labels)]
    assert fake.requests[-1].body == {"labels": ["mercadolivre", "pos-venda", "urgente"]}
    fake.requests.clear()
    assert client.add_labels(conversation, ["pos-venda"]) == [
        "mercadolivre",
        "pos-venda",
        "urgente",
    ]
    assert client.remove_labels(conversation, ["ausente"]) == [
        "mercadolivre",
        "pos-venda",
        "urgente",
    ]
    assert paths(fake) == [("GET", labels), ("GET", labels)]  # nothing new: no write
    assert client.remove_labels(conversation, ["pos-venda"]) == ["mercadolivre", "urgente"]
    assert fake.conversation(conversation)["labels"] == ["mercadolivre", "urgente"]
    assert client.list_labels(conversation) == ["mercadolivre", "urgente"]
    assert set(tokens_used(fake)) == {"user"}


def test_custom_attributes_replace_the_hash(client, fake, conversation):
    assert client.set_custom_attributes(conversation, {"ml_order_id": "2000009876543"}) == {
        "ml_order_id": "2000009876543"
    }
    client.set_custom_attributes(conversation, {"ai_handled": True})
    assert fake.conversation(conversation)["custom_attributes"] == {"ai_handled": True}


def test_assign_and_get_conversation(client, fake, conversation):
    assert client.assign(conversation, assignee_id=21)["name"] == "Ana Souza"
    assert fake.requests[-1].body == {"assignee_id": 21}
    client.assign(conversation, team_id=2)
    state = fake.conversation(conversation)
    assert (state["assignee_id"], state["team_id"]) == (21, 2)
    count = len(fake.requests)
    with pytest.raises(ValueError):
        client.assign(conversation)
    assert len(fake.requests) == count
    shown = client.get_conversation(conversation)
    assert shown["id"] == conversation
    assert shown["meta"]["assignee"]["id"] == 21
    assert shown["meta"]["sender"]["identifier"] == "ml:1"
    assert tokens_used(fake)[-1] == "user"


def test_contacts_contact_inboxes_and_conversations(cw, client, fake):
    created = client.create_contact(
        API_INBOX,
        name="Comprador ML 123456789",
        identifier="ml:123456789",
        source_id="ml:pack:2000004567890",
        phone_number="+5511999990000",
        additional_attributes={"source": "mercadolivre"},
        custom_attributes={"ml_buyer_id": "123456789"},
    )
    contact = created["contact"]
    assert contact["identifier"] == "ml:123456789"
    assert created["contact_inbox"]["source_id"] == "ml:pack:2000004567890"
    assert created["contact_inbox"]["inbox"]["id"] == API_INBOX
    assert [c["id"] for c in client.search_contacts("ml:123456789")] == [contact["id"]]
    assert client.search_contacts("nobody") == []
    widget = client.create_contact_inbox(contact["id"], WIDGET_INBOX, "widget-1")
    assert widget == {
        "source_id": "widget-1",
        "inbox": {
            "id": WIDGET_INBOX,
            "avatar_url": "",
            "channel_id": fake.inboxes[WIDGET_INBOX]["channel_id"],
            "name": "Site",
            "channel_type": "Channel::WebWidget",
            "provider": None,
        },
    }
    with pytest.raises(cw.ChatwootError) as duplicate:
        client.create_contact_inbox(contact["id"], WIDGET_INBOX, "widget-1")
    assert (duplicate.value.status, duplicate.value.retryable) == (422, False)
    opened = client.create_conversation(
        API_INBOX,
        contact["id"],
        "ml:pack:2000004567890",
        status="pending",
        additional_attributes={"ml_pack_id": "2000004567890"},
        custom_attributes={"ml_order_id": "2000009876543"},
    )
    assert opened["id"] >= 1000
    assert opened["status"] == "pending"
    assert fake.conversation(opened["id"])["additional_attributes"] == {
        "ml_pack_id": "2000004567890"
    }
    assert set(tokens_used(fake)) == {"user", "bot"}  # conversation create is bot-accessible


def test_inboxes_message_status_and_profile(client, fake, conversation):
    inboxes = client.list_inboxes()
    assert [(i["id"], i["channel_type"]) for i in inboxes] == [
        (API_INBOX, "Channel::Api"),
        (WIDGET_INBOX, "Channel::WebWidget"),
    ]
    assert client.get_inbox(API_INBOX)["name"] == "Mercado Livre (API)"
    reply = client.post_message(conversation, "resposta")
    updated = client.update_message_status(
        conversation, reply["id"], "failed", external_error="ML API 403: window closed"
    )
    assert updated["status"] == "failed"
    assert fake.messages(conversation)[-1]["external_error"] == "ML API 403: window closed"
    client.update_message_status(conversation, reply["id"], "delivered")
    assert fake.requests[-1].body == {"status": "delivered"}
    assert fake.messages(conversation)[-1]["external_error"] is None
    profile = client.profile()
    assert profile["id"] == 21
    assert profile["accounts"][0]["id"] == ACCOUNT
    assert "access_token" not in profile


def test_base_url_with_a_slash_and_context_manager(cw, fake, conversation):
    with cw.ChatwootClient(fake.url + "/", ACCOUNT, user_token=USER) as client:
        assert client.get_conversation(conversation)["id"] == conversation
    assert fake.requests[-1].path == conversation_path(conversation)


# -- tokens -----------------------------------------------------------------------------------


def test_bot_endpoints_take_the_bot_token_the_others_the_user_token(client, fake, conversation):
    fake.requests.clear()
    client.post_message(conversation, "oi")
    client.set_custom_attributes(conversation, {"a": "1"})
    client.get_conversation(conversation)
    client.list_inboxes()
    assert tokens_used(fake) == ["bot", "bot", "user", "user"]


def test_a_user_endpoint_without_a_user_token_sends_nothing(cw, make_client, fake, conversation):
    client = make_client(user_token=None)
    count = len(fake.requests)
    for call in (
        lambda: client.list_labels(conversation),
        lambda: client.search_contacts("ml:1"),
        client.profile,
        lambda: client.update_message_status(conversation, 5000, "read"),
    ):
        with pytest.raises(cw.ChatwootError, match="needs a user access token") as refused:
            call()
        assert (refused.value.status, refused.value.retryable) == (None, False)
    assert len(fake.requests) == count
    client.post_message(conversation, "the bot token still answers")
    with pytest.raises(cw.ChatwootError, match="needs an access token"):
        make_client(user_token=None, bot_token=None).toggle_status(conversation, "open")


def test_wrong_account_and_rejected_token(cw, make_client, conversation):
    with pytest.raises(cw.ChatwootError) as missing:
        make_client(account_id=99).get_conversation(conversation)
    assert (missing.value.status, missing.value.retryable) == (404, False)
    with pytest.raises(cw.ChatwootError, match="Invalid Access Token") as rejected:
        make_client(user_token=REVOKED_USER).get_conversation(conversation)
    assert (rejected.value.status, rejected.value.retryable) == (401, False)


def test_the_fake_refuses_a_bot_token_where_chatwoot_does(fake, conversation):
    answer = requests.get(
        fake.url + conversation_path(conversation, "/labels"),
        headers={"api_access_token": BOT},
        timeout=5,
    )
    assert answer.status_code == 401
    assert answer.json() == {"error": "Access to this endpoint is not authorized for bots"}
    profile = requests.get(
        fake.url + "/api/v1/profile", headers={"api_access_token": BOT}, timeout=5
    )
    assert profile.status_code == 401


# -- retries ----------------------------------------------------------------------------------


def test_429_waits_what_retry_after_says(client, fake, sleeps, conversation):
    fake.requests.clear()
    fake.fail_next(2, status=429, retry_after=3)
    assert client.get_conversation(conversation)["id"] == conversation
    assert sleeps == [3.0, 3.0]
    assert len(fake.requests) == 3


def test_retry_after_as_an_http_date_and_a_longer_one_left_to_the_caller(
    cw, make_client, fake, sleeps, conversation
):
    when = datetime.now(timezone.utc) + timedelta(seconds=20)
    fake.fail_next(1, status=503, retry_after=format_datetime(when, usegmt=True))
    make_client().get_conversation(conversation)
    assert 0 < sleeps[0] <= 20
    sleeps.clear()
    fake.fail_next(5, status=429, retry_after=120)
    with pytest.raises(cw.ChatwootError) as exhausted:
        make_client(max_retries=1, max_retry_after=30).list_inboxes()
    assert sleeps == [], "a worker does not sleep 2 minutes: the job tries again later"
    assert (exhausted.value.status, exhausted.value.retryable) == (429, True)
    assert exhausted.value.retry_after == 120.0


def test_5xx_backs_off_exponentially_with_jitter(make_client, fake, sleeps, conversation):
    fake.requests.clear()
    fake.fail_next(3, status=500)
    make_client(max_retries=3, backoff=0.5).get_conversation(conversation)
    assert len(fake.requests) == 4
    assert len(sleeps) == 3
    for attempt, waited in enumerate(sleeps):
        assert 0.25 * 2**attempt <= waited <= 0.5 * 2**attempt


def test_tries_run_out_as_a_retryable_error(cw, make_client, fake, sleeps, conversation):
    fake.requests.clear()
    fake.fail_next(10, status=503, retry_after=2)
    with pytest.raises(cw.ChatwootError) as failed:
        make_client(max_retries=2).toggle_status(conversation, "open")
    error = failed.value
    assert (error.status, error.retryable, error.retry_after) == (503, True, 2.0)
    assert "POST /conversations/{conversation_id}/toggle_status" in error.reason
    assert len(fake.requests) == 3
    assert sleeps == [2.0, 2.0]


def test_other_4xx_are_final(cw, client, fake, sleeps):
    fake.requests.clear()
    with pytest.raises(cw.ChatwootError) as missing:
        client.get_conversation(99999)
    assert (missing.value.status, missing.value.retryable) == (404, False)
    assert "Resource could not be found" in missing.value.reason
    client.create_contact(API_INBOX, name="A", identifier="ml:dup")
    with pytest.raises(cw.ChatwootError) as duplicate:
        client.create_contact(API_INBOX, name="B", identifier="ml:dup")
    assert (duplicate.value.status, duplicate.value.retryable) == (422, False)
    assert "Identifier has already been taken" in duplicate.value.reason
    assert len(fake.requests) == 3
    assert sleeps == []


def test_a_post_is_not_repeated_after_a_500(cw, client, fake, sleeps, conversation):
    fake.requests.clear()
    fake.fail_next(1, status=500)
    with pytest.raises(cw.ChatwootError) as failed:
        client.post_message(conversation, "talvez aplicado")
    assert (failed.value.status, failed.value.retryable) == (500, True)
    assert len(fake.requests) == 1
    assert sleeps == []


def test_a_post_is_repeated_after_429_and_503(client, fake, sleeps, conversation):
    fake.requests.clear()
    fake.fail_next(1, status=429)
    fake.fail_next(1, status=503)
    client.post_message(conversation, "uma vez só")
    assert len(fake.requests) == 3
    assert len(sleeps) == 2
    assert [r["content"] for r in fake.replies(conversation)] == ["uma vez só"]


def test_a_value_setting_post_is_repeated_after_a_500(client, fake, conversation):
    fake.fail_next(1, status=500)
    client.set_custom_attributes(conversation, {"a": "1"})
    assert fake.conversation(conversation)["custom_attributes"] == {"a": "1"}


def test_a_dropped_connection(cw, make_client, fake, sleeps, conversation):
    client = make_client(max_retries=2)
    fake.go_down()
    with pytest.raises(cw.ChatwootError) as read_failed:
        client.get_conversation(conversation)
    assert (read_failed.value.status, read_failed.value.retryable) == (None, True)
    assert fake.dropped == 3
    with pytest.raises(cw.ChatwootError, match="connection lost") as post_failed:
        client.post_message(conversation, "enviado?")
    assert post_failed.value.retryable is True
    assert fake.dropped == 4  # the POST may have been applied: not repeated
    assert len(sleeps) == 2
    fake.come_back()
    assert client.get_conversation(conversation)["id"] == conversation


def test_connection_refused_is_retried_even_for_a_post(cw, make_client, sleeps, closed_port):
    client = make_client(base_url=f"http://127.0.0.1:{closed_port}", max_retries=2)
    with pytest.raises(cw.ChatwootError, match="could not connect") as refused:
        client.post_message(1000, "nada enviado")
    assert (refused.value.status, refused.value.retryable) == (None, True)
    assert len(sleeps) == 2


def test_connect_timeout_is_retried_even_for_a_post(cw, make_client, sleeps, unaccepting_port):
    client = make_client(
        base_url=f"http://127.0.0.1:{unaccepting_port}", max_retries=1, timeout=(0.2, 1)
    )
    with pytest.raises(cw.ChatwootError, match="timed out connecting") as timed_out:
        client.post_message(1000, "nada enviado")
    assert timed_out.value.retryable is True
    assert len(sleeps) == 1


def test_read_timeouts(cw, make_client, fake, sleeps, conversation):
    client = make_client(max_retries=1, timeout=(2, 0.2))
    fake.requests.clear()
    fake.delay(1.0)
    with pytest.raises(cw.ChatwootError, match="timed out waiting") as slow_read:
        client.get_conversation(conversation)
    assert (slow_read.value.status, slow_read.value.retryable) == (None, True)
    assert len(fake.requests) == 2
    fake.requests.clear()
    with pytest.raises(cw.ChatwootError, match="timed out waiting") as slow_post:
        client.post_message(conversation, "aplicado, sem resposta")
    assert slow_post.value.retryable is True
    assert len(fake.requests) == 1
    # Chatwoot applied it: this is why the caller, not the client, decides to repeat it
    assert [r["content"] for r in fake.replies(conversation)] == ["aplicado, sem resposta"]
    fake.delay(0)


def test_a_redirect_is_not_followed(cw, make_client, fake, conversation):
    target = fake.url

    class Redirect(BaseHTTPRequestHandler):
        def do_GET(self):  # the name http.server calls
            self.send_response(301)
            self.send_header("Location", target + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        fake.requests.clear()
        client = make_client(base_url=f"http://127.0.0.1:{server.server_address[1]}")
        with pytest.raises(cw.ChatwootError, match="redirected") as redirected:
            client.get_conversation(conversation)
    finally:
        server.shutdown()
        server.server_close()
    assert (redirected.value.status, redirected.value.retryable) == (301, False)
    assert fake.requests == []  # the token went nowhere else


# -- secrets ----------------------------------------------------------------------------------


def test_no_token_in_any_error(cw, make_client, fake, conversation, closed_port):
    errors = []

    def capture(call):
        with pytest.raises(cw.ChatwootError) as caught:
            call()
        errors.append(caught.value)

    client = make_client(max_retries=0, timeout=(2, 0.2))
    capture(lambda: make_client(user_token=REVOKED_USER).list_inboxes())
    capture(lambda: make_client(bot_token=REVOKED_BOT).post_message(conversation, "x"))
    capture(lambda: client.get_conversation(424242))
    fake.fail_next(1, status=500)
    capture(lambda: client.post_message(conversation, f"body {USER}"))
    fake.delay(0.5)
    capture(lambda: client.list_inboxes())
    fake.delay(0)
    fake.go_down()
    capture(lambda: client.list_inboxes())
    fake.come_back()
    capture(lambda: make_client(base_url=f"http://127.0.0.1:{closed_port}").list_inboxes())
    capture(lambda: make_client(user_token=None).list_inboxes())
    secrets = (BOT, USER, REVOKED_USER, REVOKED_BOT)
    for error in errors:
        text = "".join(traceback.format_exception(error)) + repr(error) + str(error)
        assert not [secret for secret in secrets if secret in text], text
        assert len(error.reason) < 400
    assert not [secret for secret in secrets if secret in repr(client)]


# -- the fake -----------------------------------------------------------------------------------


def test_the_fake_rejects_what_the_spec_does_not_allow(fake, conversation):
    headers = {"api_access_token": USER}
    json_type = {"Content-Type": "application/json"}
    base = fake.url + conversation_path(conversation)

    def send(method, url, extra_headers=None, **kwargs):
        sent = {**headers, **(extra_headers or {})}
        return requests.request(method, url, headers=sent, timeout=5, **kwargs).status_code

    assert send("POST", base + "/toggle_status", json={"status": "closed"}) == 422
    assert send("POST", base + "/messages", json={"private": True}) == 422
    assert send("POST", base + "/labels", json={"labels": "a,b"}) == 422
    assert send("POST", base + "/messages", data={"content": "form"}) == 422
    assert send("POST", base + "/messages", data=b"{not json", extra_headers=json_type) == 422
    assert send("POST", base + "/messages", files={"file": ("a.txt", b"a")}) == 422
    assert send("GET", fake.url + conversation_path("abc")) == 422
    assert send("POST", fake.url + f"/api/v1/accounts/{ACCOUNT}/nothing") == 422
    assert send("DELETE", base + "/labels") == 422
    assert len(fake.violations) == 9
    assert "status" in fake.violations[0] and "'closed' is not one of" in fake.violations[0]
    assert "'content' is a required property" in fake.violations[1]
    assert "integer" in fake.violations[6]
    assert fake.conversation(conversation)["status"] == "open"
    assert len(fake.messages(conversation)) == 1
    fake.violations.clear()


def test_the_spec_is_read_as_json_schema():
    spec = FAKE.load_spec()
    assert spec.json_schema({"type": "string", "nullable": True, "example": "x"}) == {
        "type": ["string", "null"]
    }
    route, params = spec.match("GET", f"/api/v1/accounts/{ACCOUNT}/contacts/search")
    assert route.short == "/contacts/search"
    route, params = spec.match("GET", f"/api/v1/accounts/{ACCOUNT}/inboxes/7/")
    assert (route.short, params["id"]) == ("/inboxes/{id}", "7")


def _sample(name):
    return json.loads((FAKE.default_spec_path().parent / name).read_text(encoding="utf-8"))


def _same_shape(payload, sample):
    assert set(payload) == set(sample)
    assert set(payload["conversation"]) == set(sample["conversation"])
    assert set(payload["sender"]) == set(sample["sender"])
    assert set(payload["conversation"]["meta"]) == set(sample["conversation"]["meta"])
    pushed = payload["conversation"]["messages"][0]
    assert set(pushed) == set(sample["conversation"]["messages"][0])


def test_webhooks_are_shaped_and_signed_like_chatwoot(client, fake):
    fake.bot_url, fake.bot_secret = "http://odoo.test/bot", "bot-signing-secret"
    fake.inboxes[API_INBOX].update(webhook_url="http://odoo.test/inbox", secret="inbox-secret")
    conversation = fake.new_conversation(API_INBOX, identifier="ml:9", content="Tem estoque?")
    assert fake.conversation(conversation)["status"] == "pending"  # Agent Bot mode
    assert [(d.url, d.event) for d in fake.outbox] == [
        ("http://odoo.test/inbox", "conversation_created"),
        ("http://odoo.test/bot", "message_created"),
        ("http://odoo.test/inbox", "message_created"),
    ]
    _same_shape(fake.outbox[1].payload, _sample("wh_message_created_incoming_contact.json"))
    fake.outbox.clear()

    client.post_message(conversation, "Temos sim.")
    echo = fake.outbox[0].payload
    _same_shape(echo, _sample("wh_message_created_outgoing_agent_bot.json"))
    assert (echo["message_type"], echo["sender"]["type"]) == ("outgoing", "agent_bot")
    fake.agent_reply(conversation, "Aqui é a Ana.")
    human = fake.outbox[-1].payload
    _same_shape(human, _sample("wh_message_created_outgoing_human_agent.json"))
    assert human["sender"] == {
        "id": 21,
        "name": "Ana Souza",
        "email": "ana@lojaexemplo.com.br",
        "type": "user",
    }
    fake.outbox.clear()

    client.toggle_status(conversation, "open")
    events = {(d.url, d.event): d.payload for d in fake.outbox}
    changed = events[("http://odoo.test/inbox", "conversation_status_changed")]
    assert set(changed) == set(_sample("wh_conversation_status_changed.json"))
    assert (changed["status"], changed["changed_attributes"]) == ("open", None)
    assert ("http://odoo.test/bot", "conversation_opened") in events

    received = []
    fake.deliver_webhooks(lambda url, body, headers: received.append((url, body, headers)))
    assert fake.outbox == []
    for url, body, headers in received:
        secret = "bot-signing-secret" if url.endswith("/bot") else "inbox-secret"
        expected = FAKE.sign_headers(
            secret,
            body,
            ts=headers["X-Chatwoot-Timestamp"],
            delivery=headers["X-Chatwoot-Delivery"],
        )
        assert headers["X-Chatwoot-Signature"] == expected["X-Chatwoot-Signature"]
        assert headers["Content-Type"] == "application/json"


def test_unsigned_webhooks_and_customer_messages(fake):
    fake.inboxes[API_INBOX]["webhook_url"] = "http://odoo.test/inbox"
    conversation = fake.new_conversation(API_INBOX, identifier="ml:5")
    fake.agent_toggle_status(conversation, "resolved")
    fake.outbox.clear()
    message = fake.customer_message(conversation, "voltei", source_id="ml-msg-9")
    assert fake.conversation(conversation)["status"] == "open"  # reopened by the customer
    events = [d.event for d in fake.outbox]
    assert events == ["conversation_status_changed", "message_created"]
    payload = fake.outbox[-1].payload
    assert (payload["id"], payload["message_type"]) == (message["id"], "incoming")
    assert "type" not in payload["sender"]
    assert payload["source_id"] == "ml-msg-9"
    headers = fake.deliver_webhooks(lambda url, body, headers: headers)
    assert headers[0] == {"Content-Type": "application/json", "Accept": "application/json"}
