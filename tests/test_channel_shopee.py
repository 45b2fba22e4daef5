# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""The Shopee channel's protocol: push signature (fixed vectors), push parsing, API signing
(fixed vectors), sending and tokens against a fake Shopee on 127.0.0.1."""

import json
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import jsonschema
import pytest
import requests
from conftest import load_services, load_test_double

load_services("mcp_connectors")
from mcp_connectors_services import channel_shopee as shopee  # after load_services
from mcp_connectors_services.channels import ChannelSendError, InboundMessage, InboundRejected

fake_module = load_test_double("mcp_connectors", "fake_shopee")

DATA = Path(__file__).resolve().parent.parent / "addons/mcp_connectors/tests/data/channels"
VECTORS = json.loads((DATA / "signature_test_vectors.json").read_text())
PUSH = VECTORS["shopee_push_authorization"]
RAW_PUSH = (DATA / PUSH["body_file"]).read_bytes()
SHOP_ID = "947042923"
BUYER_ID = "165105353"
SHOP_USER_ID = "947151379"


def fixture(name):
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def push_payload(**content_changes):
    payload = fixture("shopee_push_webchat_code10.json")
    payload["data"]["content"].update(content_changes)
    return payload


def rejected(authorization, raw=RAW_PUSH, key=PUSH["push_partner_key"], url=PUSH["callback_url"]):
    with pytest.raises(InboundRejected) as caught:
        shopee.verify_push(key, url, raw, authorization)
    return caught.value


@pytest.fixture
def fake():
    with fake_module.FakeShopee() as running:
        yield running


@pytest.fixture
def client(fake):
    return shopee.ShopeeClient(fake.partner_id, fake.partner_key, base_url=fake.url)


def send_error(call, *args, **kwargs):
    with pytest.raises(ChannelSendError) as caught:
        call(*args, **kwargs)
    return caught.value


# push signature -------------------------------------------------------------------------------
def test_push_signature_matches_the_vector():
    signature = shopee.push_signature(PUSH["push_partner_key"], PUSH["callback_url"], RAW_PUSH)
    assert signature == PUSH["header_value"]
    shopee.verify_push(PUSH["push_partner_key"], PUSH["callback_url"], RAW_PUSH, signature)


def test_push_signature_ignores_case_and_surrounding_spaces():
    header = f"  {PUSH['header_value'].upper()} "
    shopee.verify_push(PUSH["push_partner_key"], PUSH["callback_url"], RAW_PUSH, header)


def test_body_only_digest_is_refused_and_named():
    error = rejected(PUSH["body_only_variant_reported_by_some_integrators"])
    assert error.status == 401
    assert "body only" in error.reason


@pytest.mark.parametrize(
    "changes",
    [
        {"raw": json.dumps(json.loads(RAW_PUSH)).encode()},  # re-serialised: \u escapes
        {"raw": json.dumps(json.loads(RAW_PUSH), ensure_ascii=False).encode()},  # spaces
        {"key": "test_push_partner_key_other"},  # the API partner key or a test push key
        {"url": "http://odoo.example.test/shopee/push"},  # a proxy changed the scheme
        {"url": PUSH["callback_url"] + "/"},
    ],
)
def test_any_other_signed_form_is_refused(changes):
    error = rejected(PUSH["header_value"], **changes)
    assert error.status == 401
    assert "does not match" in error.reason
    assert PUSH["push_partner_key"] not in error.reason


@pytest.mark.parametrize("authorization", [None, "", "   "])
def test_missing_authorization_is_refused(authorization):
    assert rejected(authorization).reason == "the Authorization header is missing"


def test_non_ascii_authorization_is_refused_not_raised():
    assert rejected("sha256=é" + PUSH["header_value"]).status == 401


def test_unconfigured_key_asks_shopee_to_retry_later():
    assert rejected(PUSH["header_value"], key="").status == 503


def test_decode_push_refuses_large_and_non_json_bodies():
    assert shopee.decode_push(RAW_PUSH)["code"] == 10
    for raw, status in ((b"[1]", 400), (b"{", 400), (b" " * (1024 * 1024 + 1), 413)):
        with pytest.raises(InboundRejected) as caught:
            shopee.decode_push(raw)
        assert caught.value.status == status


# push parsing ---------------------------------------------------------------------------------
def test_webchat_text_becomes_an_inbound_message():
    [event] = shopee.parse_push(shopee.decode_push(RAW_PUSH))
    assert isinstance(event, InboundMessage)
    assert event.thread_id == "709122092476686867"
    assert event.message_id == "2302748948493123953"
    assert event.contact == {
        "id": BUYER_ID,
        "name": "comprador_teste",
        "phone": None,
        "email": None,
    }
    assert event.text == "Olá, tem pronta entrega?"
    assert event.attachments == []
    assert event.metadata["shop_id"] == SHOP_ID
    assert event.metadata["shop_user_id"] == SHOP_USER_ID
    assert event.metadata["region"] == "BR"
    assert event.metadata["created_timestamp"] == 1767225600
    assert "quoted_message_id" not in event.metadata  # the fixture quotes nothing ("")


def test_push_shop_id_finds_the_tenant():
    assert shopee.push_shop_id(push_payload()) == SHOP_ID
    payload = push_payload()
    del payload["shop_id"]
    assert shopee.push_shop_id(payload) == SHOP_ID  # from data.content
    assert shopee.push_shop_id({"code": 3}) is None


def test_the_contact_is_the_same_across_messages_and_types():
    first = shopee.parse_push(push_payload())[0]
    second = shopee.parse_push(push_payload(message_id=987, from_id=int(BUYER_ID)))[0]
    assert first.contact == second.contact
    assert second.message_id == "987"


@pytest.mark.parametrize(
    "content",
    [
        {"from_id": int(SHOP_USER_ID), "to_id": int(BUYER_ID)},
        {"from_id": int(SHOP_ID)},
        {"from_id": 5, "from_shop_id": int(SHOP_ID)},
    ],
)
def test_the_shops_own_messages_are_echoes(content):
    [event] = shopee.parse_push(push_payload(**content), shop_user_ids=[SHOP_USER_ID])
    assert isinstance(event, shopee.SkippedEvent)
    assert (event.kind, event.metadata["shop_id"]) == ("echo", SHOP_ID)


def test_without_a_shop_id_nothing_is_taken_for_an_echo():
    payload = push_payload()
    del payload["shop_id"]
    del payload["data"]["content"]["shop_id"]
    assert isinstance(shopee.parse_push(payload)[0], InboundMessage)


@pytest.mark.parametrize(
    ("message_type", "inner", "text", "details"),
    [
        ("image", {"url": "https://cf.shopee.com.br/file/a1.jpg"}, "", {}),
        (
            "sticker",
            {"sticker_id": "7", "sticker_package_id": "2"},
            "[sticker]",
            {"sticker_id": "7"},
        ),
        ("item", {"item_id": 123456, "shop_id": 1}, "[product 123456]", {"item_id": "123456"}),
        ("order", {"order_sn": "2601011ABCD"}, "[order 2601011ABCD]", {"order_sn": "2601011ABCD"}),
    ],
)
def test_other_message_types_are_normalised(message_type, inner, text, details):
    payload = push_payload(message_type=message_type, content=inner)
    [event] = shopee.parse_push(payload)
    assert event.text == text
    assert event.metadata["message_type"] == message_type
    assert details.items() <= event.metadata.items()
    if message_type == "image":
        assert event.attachments == [
            {"name": None, "mimetype": "image/jpeg", "url": "https://cf.shopee.com.br/file/a1.jpg"}
        ]


def test_quoted_messages_and_source_content_are_kept():
    payload = push_payload(quoted_msg={"message_id": "111"}, source_content={"order_sn": "X1"})
    metadata = shopee.parse_push(payload)[0].metadata
    assert metadata["quoted_message_id"] == "111"
    assert metadata["source_content"] == {"order_sn": "X1"}


@pytest.mark.parametrize(
    ("message_type", "inner"),
    [("text", {"text": "  "}), ("text", {}), ("image", {"url": "javascript:alert(1)"})],
)
def test_messages_with_nothing_to_read_are_skipped(message_type, inner):
    [event] = shopee.parse_push(push_payload(message_type=message_type, content=inner))
    assert event.kind == "empty"


def test_unknown_message_types_are_skipped():
    [event] = shopee.parse_push(push_payload(message_type="bundle_offer", content={}))
    assert event.kind == "unsupported_message"
    assert event.metadata["message_id"] == "2302748948493123953"


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (3, "order_status"),
        (4, "tracking_number"),
        (1, "shop_authorization"),
        (2, "shop_deauthorization"),
        (12, "authorization_expiry"),
        (99, "unknown"),
        (None, "unknown"),
        ("3", "order_status"),
    ],
)
def test_other_push_codes_are_recognised_and_not_answered(code, kind):
    payload = {"data": {"ordersn": "2601011ABCD", "status": "READY_TO_SHIP"}, "shop_id": 947042923}
    payload["code"] = code
    [event] = shopee.parse_push(payload)
    assert isinstance(event, shopee.SkippedEvent)
    assert event.kind == kind
    assert event.metadata["shop_id"] == SHOP_ID


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        ({"type": "read", "content": {}}, "webchat_read"),
        ({"content": {}}, "webchat_unknown"),
        ({"type": "message", "content": {"message_id": "1"}}, "malformed"),
        ({"type": "message"}, "malformed"),
        ("oops", "webchat_unknown"),
    ],
)
def test_other_webchat_pushes_are_skipped(data, kind):
    assert shopee.parse_push({"code": 10, "shop_id": 1, "data": data})[0].kind == kind


# signing --------------------------------------------------------------------------------------
def test_shop_api_sign_matches_the_vector():
    vector = VECTORS["shopee_api_sign_shop_level"]
    arguments = [vector[name] for name in ("partner_key", "partner_id", "path", "timestamp")]
    sign = shopee.api_sign(*arguments, vector["access_token"], vector["shop_id"])
    assert sign == vector["sign"]
    query = shopee.signed_query(*arguments, vector["access_token"], vector["shop_id"])
    url = f"{shopee.HOST_BRAZIL}{vector['path']}?" + "&".join(f"{k}={v}" for k, v in query)
    assert url == vector["request_url"]


def test_public_api_sign_matches_the_vector():
    vector = VECTORS["shopee_api_sign_public"]
    arguments = [vector[name] for name in ("partner_key", "partner_id", "path", "timestamp")]
    assert shopee.api_sign(*arguments) == vector["sign"]
    assert [name for name, _value in shopee.signed_query(*arguments)] == [
        "partner_id",
        "timestamp",
        "sign",
    ]


def test_authorization_url_is_signed_as_a_public_api():
    client = shopee.ShopeeClient(2001887, "test_partner_key", clock=lambda: 1767225700)
    url = client.authorization_url("https://odoo.example.test/shopee/authorized")
    expected_sign = shopee.api_sign(
        "test_partner_key", 2001887, shopee.AUTH_PARTNER_PATH, 1767225700
    )
    assert url.startswith(f"{shopee.HOST_GLOBAL}/api/v2/shop/auth_partner?partner_id=2001887&")
    assert f"sign={expected_sign}&redirect=https%3A%2F%2Fodoo.example.test" in url


# outbound -------------------------------------------------------------------------------------
def test_the_text_body_is_the_fixture_and_passes_the_fakes_schema():
    request = fixture("shopee_send_message_request.json")
    body = shopee.text_message_body(BUYER_ID, request["content"]["text"])
    assert body == request
    jsonschema.validate(body, fake_module.SEND_MESSAGE_SCHEMA)


def test_a_contact_id_that_is_not_a_number_is_refused():
    error = send_error(shopee.text_message_body, "buyer-x", "Oi")
    assert not error.retryable


def test_split_text_keeps_short_texts_whole():
    assert shopee.split_text("  Olá!  ", shopee.MAX_TEXT_LENGTH) == ["Olá!"]
    assert shopee.split_text("", shopee.MAX_TEXT_LENGTH) == []


def test_split_text_cuts_at_sentence_ends_then_words():
    text = "Primeira frase aqui. Segunda frase bem mais longa que continua"
    parts = shopee.split_text(text, limit=30)
    assert parts[0] == "Primeira frase aqui."
    assert all(len(part) <= 30 for part in parts)
    assert " ".join(parts) == text


def test_split_text_cuts_long_words_hard():
    assert shopee.split_text("a" * 25, limit=10) == ["a" * 10, "a" * 10, "a" * 5]


def test_send_text_posts_a_signed_message(fake, client):
    access_token, _refresh = fake.issue_tokens()
    text = fixture("shopee_send_message_request.json")["content"]["text"]
    assert client.send_text(access_token, SHOP_ID, BUYER_ID, text) == ["2302749000000000001"]
    [received] = fake.requests
    assert received.path == shopee.SEND_MESSAGE_PATH
    assert list(received.query) == ["partner_id", "timestamp", "access_token", "shop_id", "sign"]
    assert received.json() == fixture("shopee_send_message_request.json")
    assert fake.messages == [fixture("shopee_send_message_request.json")]


def test_long_replies_go_as_several_messages(fake, client):
    access_token, _refresh = fake.issue_tokens()
    text = ("Frase número um. " * 40).strip()
    ids = client.send_text(access_token, SHOP_ID, BUYER_ID, text, limit=300)
    assert len(ids) == len(fake.messages) == 3
    assert " ".join(body["content"]["text"] for body in fake.messages) == text


def test_a_failed_part_says_what_was_sent_and_the_rest_can_follow(fake, client):
    access_token, _refresh = fake.issue_tokens()
    text = ("Uma frase curta. " * 9).strip()
    fake.fail_next(status=503, after=1)
    error = send_error(client.send_text, access_token, SHOP_ID, BUYER_ID, text, limit=60)
    assert error.retryable
    assert error.sent_ids == ["2302749000000000001"]
    assert error.parts_sent == 1
    rest = client.send_text(access_token, SHOP_ID, BUYER_ID, text, first_part=1, limit=60)
    assert len(rest) == 2
    assert " ".join(body["content"]["text"] for body in fake.messages) == text


def test_empty_replies_are_refused(client):
    assert not send_error(client.send_text, "token", SHOP_ID, BUYER_ID, "   ").retryable


def test_an_expired_access_token_asks_for_a_refresh(fake, client):
    access_token, _refresh = fake.issue_tokens()
    fake.expire_access_token(access_token)
    error = send_error(client.send_text, access_token, SHOP_ID, BUYER_ID, "Oi")
    assert isinstance(error, shopee.AccessTokenRejected)
    assert not error.retryable
    assert access_token not in error.reason


def test_a_wrong_partner_key_is_a_permanent_sign_error(fake):
    access_token, _refresh = fake.issue_tokens()
    client = shopee.ShopeeClient(fake.partner_id, "another_key", base_url=fake.url)
    error = send_error(client.send_text, access_token, SHOP_ID, BUYER_ID, "Oi")
    assert not error.retryable
    assert "error_sign" in error.reason
    assert "another_key" not in error.reason and access_token not in error.reason


def test_a_clock_off_by_ten_minutes_is_refused(fake):
    access_token, _refresh = fake.issue_tokens()
    client = shopee.ShopeeClient(
        fake.partner_id, fake.partner_key, base_url=fake.url, clock=lambda: fake.clock() - 600
    )
    assert (
        "error_param" in send_error(client.send_text, access_token, SHOP_ID, BUYER_ID, "Oi").reason
    )


@pytest.mark.parametrize(
    ("error", "words"),
    [("error_permission", "seller-chat permission"), ("error_param", "parameter")],
)
def test_error_envelopes_with_http_200_are_permanent(fake, client, error, words):
    fake.fail_next(error=error, message="Something is wrong.")
    failure = send_error(client.send_text, "token", SHOP_ID, BUYER_ID, "Oi")
    assert not failure.retryable
    assert words in failure.reason and error in failure.reason
    assert failure.status == 200


def test_platform_messages_that_quote_a_token_are_cut(fake, client):
    fake.fail_next(error="error_param", message="bad token 6a4d5a6b4e4f4c6d69647a6c52706f71")
    reason = send_error(client.send_text, "token", SHOP_ID, BUYER_ID, "Oi").reason
    assert "6a4d5a6b4e4f4c6d69647a6c52706f71" not in reason and "***" in reason


@pytest.mark.parametrize(
    ("status", "error", "headers", "retry_after"),
    [
        (429, None, {"Retry-After": "30"}, 30),
        (500, None, {}, None),
        (503, "error_server", {}, None),
        (200, "error_too_many_request", {"Retry-After": "5"}, 5),
        (200, "error_busy", {}, None),
    ],
)
def test_rate_limits_and_server_errors_are_retryable(
    fake, client, status, error, headers, retry_after
):
    fake.fail_next(status=status, error=error, headers=headers)
    failure = send_error(client.send_text, "token", SHOP_ID, BUYER_ID, "Oi")
    assert failure.retryable
    assert failure.retry_after == retry_after
    assert failure.status == status


def test_a_success_status_without_json_is_permanent(fake, client):
    fake.fail_next(status=200)
    assert not send_error(client.send_text, "token", SHOP_ID, BUYER_ID, "Oi").retryable


def test_timeouts_are_retryable(fake):
    fake.fail_next(hold=True)
    client = shopee.ShopeeClient(fake.partner_id, fake.partner_key, fake.url, timeout=(1, 0.2))
    error = send_error(client.send_text, "token", SHOP_ID, BUYER_ID, "Oi")
    assert error.retryable and "in time" in error.reason


def test_connection_errors_are_retryable(closed_port):
    client = shopee.ShopeeClient(1, "key", base_url=f"http://127.0.0.1:{closed_port}")
    error = send_error(client.send_text, "token", SHOP_ID, BUYER_ID, "Oi")
    assert error.retryable and "reached" in error.reason


# tokens ---------------------------------------------------------------------------------------
def test_code_exchange_gives_tokens_that_work(fake, client):
    code = fake.authorize()
    tokens = client.get_token(code, SHOP_ID)
    assert fake.requests[0].json() == {"code": code, "shop_id": 947042923, "partner_id": 2001887}
    assert set(fake.requests[0].query) == {"partner_id", "timestamp", "sign"}
    assert tokens.shop_id == SHOP_ID
    assert tokens.expires_at == pytest.approx(fake.clock() + 14400, abs=5)
    assert client.send_text(tokens.access_token, SHOP_ID, BUYER_ID, "Oi")


def test_a_used_code_is_refused_clearly(fake, client):
    code = fake.authorize()
    client.get_token(code, SHOP_ID)
    error = send_error(client.get_token, code, SHOP_ID)
    # about the code, not a lapsed authorization of the shop
    assert not isinstance(error, shopee.ReauthorizationRequired)
    assert not error.retryable and "authorization code" in error.reason


def test_the_authorization_page_sends_the_seller_back_with_a_code_for_the_shop(fake, client):
    redirect = "https://odoo.example.test/mcp/channel/oauth/t0ken?state=st4te"
    back = requests.get(client.authorization_url(redirect), allow_redirects=False, timeout=5)
    assert back.status_code == 302
    returned = dict(parse_qsl(urlsplit(back.headers["Location"]).query))
    assert returned["state"] == "st4te" and returned["shop_id"] == SHOP_ID
    tokens = client.get_token(returned["code"], returned["shop_id"])
    assert client.get_shop_info(tokens.access_token, SHOP_ID)["shop_name"] == fake.shop_name
    unsigned = shopee.ShopeeClient(fake.partner_id, "another-key", base_url=fake.url)
    refused = requests.get(unsigned.authorization_url(redirect), allow_redirects=False, timeout=5)
    assert refused.status_code == 200 and refused.json()["error"] == "error_sign"


def test_refresh_rotates_the_single_use_refresh_token(fake, client):
    _access, refresh_token = fake.issue_tokens()
    tokens = client.refresh_access_token(refresh_token, SHOP_ID)
    assert fake.requests[0].json() == {
        "refresh_token": refresh_token,
        "shop_id": 947042923,
        "partner_id": 2001887,
    }
    assert tokens.refresh_token != refresh_token
    assert client.send_text(tokens.access_token, SHOP_ID, BUYER_ID, "Oi")
    again = send_error(client.refresh_access_token, refresh_token, SHOP_ID)
    assert isinstance(again, shopee.ReauthorizationRequired)
    assert client.refresh_access_token(tokens.refresh_token, SHOP_ID).access_token


def test_a_revoked_shop_must_authorize_again(fake, client):
    _access, refresh_token = fake.issue_tokens()
    fake.revoke()
    error = send_error(client.refresh_access_token, refresh_token, SHOP_ID)
    assert isinstance(error, shopee.ReauthorizationRequired)
    assert refresh_token not in error.reason


def test_token_request_bodies_match_the_fixtures():
    for name, schema in (
        ("shopee_auth_token_get_request.json", fake_module.TOKEN_GET_SCHEMA),
        ("shopee_auth_access_token_refresh_request.json", fake_module.TOKEN_REFRESH_SCHEMA),
    ):
        jsonschema.validate(fixture(name), schema)


def test_a_token_answer_without_tokens_is_an_error(fake, client):
    fake.fail_next(payload={"request_id": "r1", "error": "", "message": ""})
    error = send_error(client.refresh_access_token, "refresh", SHOP_ID)
    assert not error.retryable and "without the tokens" in error.reason


def test_the_token_fixture_is_a_success():
    answer = fixture("shopee_auth_token_response.json")
    assert shopee.classify_answer(200, {}, answer, token_call=True) == answer


def test_the_error_fixture_asks_for_a_refresh():
    with pytest.raises(shopee.AccessTokenRejected):
        shopee.classify_answer(200, {}, fixture("shopee_error_response.json"))


def test_needs_refresh_before_expiry():
    assert not shopee.needs_refresh(10_000, now=9_000)
    assert shopee.needs_refresh(10_000, now=9_800)
    assert shopee.needs_refresh(10_000, now=10_500)


def test_secrets_stay_out_of_reprs():
    tokens = shopee.ShopeeTokens(SHOP_ID, "access-secret", "refresh-secret", 1.0)
    client = shopee.ShopeeClient(1, "partner-secret")
    assert "secret" not in repr(tokens) + repr(client)


# deduplication and authorization pushes -------------------------------------------------------
def test_push_identity_prefers_msg_id_then_the_message_id_then_the_body():
    assert shopee.push_identity({**push_payload(), "msg_id": "p-1"}, RAW_PUSH) == "p-1"
    assert shopee.push_identity(push_payload(), RAW_PUSH) == "2302748948493123953"
    order_push = {"code": 3, "shop_id": 1, "data": {"ordersn": "X"}}
    identity = shopee.push_identity(order_push, b'{"code": 3}')
    assert identity == shopee.push_identity(order_push, b'{"code": 3}')
    assert identity != shopee.push_identity(order_push, b'{"code": 3 }')


def test_authorization_pushes_name_their_shops():
    assert shopee.authorization_shop_ids({"code": 2, "shop_id": 947042923}) == [SHOP_ID]
    expiry = {"code": 12, "data": {"shop_expire_soon": [947042923, "5", None], "page_no": 1}}
    assert shopee.authorization_shop_ids(expiry) == [SHOP_ID, "5"]
    assert shopee.authorization_shop_ids({"code": 12, "data": "?"}) == []


def test_a_test_push_signed_with_another_key_names_the_test_key():
    signature = shopee.push_signature("test-push-key", PUSH["callback_url"], RAW_PUSH)
    error = rejected(signature)
    assert error.status == 401 and "test push partner key" in error.reason


# reads ----------------------------------------------------------------------------------------
def test_shop_info_is_a_signed_get(fake, client):
    access_token, _refresh = fake.issue_tokens()
    info = client.get_shop_info(access_token, SHOP_ID)
    assert info["shop_name"] == fake.shop_name
    [received] = fake.requests
    assert (received.method, received.path) == ("GET", shopee.SHOP_INFO_PATH)
    assert received.query["shop_id"] == SHOP_ID and received.body == b""


def test_messages_and_unread_count_are_read(fake, client):
    access_token, _refresh = fake.issue_tokens()
    fake.add_message("709", "m-1", "Oi", from_id=BUYER_ID)
    fake.add_message("709", "m-2", "Olá!", from_id=SHOP_USER_ID, from_shop_id=SHOP_ID)
    fake.unread_count = 3
    answer = client.get_messages(access_token, SHOP_ID, "709", page_size=500)
    assert [m["message_id"] for m in answer["response"]["messages"]] == ["m-2", "m-1"]
    assert fake.requests[-1].query["page_size"] == str(shopee.MAX_MESSAGE_PAGE)
    assert client.unread_conversation_count(access_token, SHOP_ID) == 3


def test_a_shop_api_error_auth_means_authorize_again(fake, client):
    fake.fail_next(error="error_auth", message="No permission for this shop.")
    error = send_error(client.send_text, "token", SHOP_ID, BUYER_ID, "Oi")
    assert isinstance(error, shopee.ReauthorizationRequired)
    assert "authorize the app again" in error.reason
