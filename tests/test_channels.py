# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""The custom signed-webhook channel's wire logic: inbound payload checks, signed replies
verified with the integrator's signing module, and how the receiver's answers are classified,
against a real reply endpoint on 127.0.0.1."""

import base64
import json
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
from conftest import load_services, load_test_double

load_services("mcp_connectors")
load_services("mcp_integrator")
from mcp_connectors_services import channels  # after load_services, which makes them
from mcp_connectors_services.channels import ChannelSendError, InboundRejected
from mcp_integrator_services import signing

receiver_module = load_test_double("mcp_connectors", "channel_receiver")

SECRET = "channel-signing-secret-0123456789"


def valid_payload(**overrides):
    payload = {
        "thread_id": "order-1001",
        "message_id": "m-1",
        "contact": {"id": "c-7", "name": "Ana", "phone": "+5511999990000", "email": None},
        "text": "Olá, meu pedido chegou?",
        "attachments": [
            {"name": "nota.pdf", "mimetype": "application/pdf", "url": "https://x.io/n"}
        ],
        "metadata": {"order": "1001"},
    }
    payload.update(overrides)
    return payload


def rejected(payload):
    with pytest.raises(InboundRejected) as caught:
        channels.parse_message(payload)
    assert caught.value.status == 400
    return caught.value.reason


@pytest.fixture
def receiver():
    with receiver_module.ChannelReceiver() as running:
        yield running


def send(url, secret=SECRET, **kwargs):
    body = channels.reply_body("order-1001", {"id": "c-7"}, "Chegou sim!")
    return channels.post_signed(url, body, secret, signing.sign, **kwargs)


def send_error(url, **kwargs):
    with pytest.raises(ChannelSendError) as caught:
        send(url, **kwargs)
    return caught.value


# inbound: envelope and JSON -------------------------------------------------------------------
@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON"]
)
def test_json_content_types_pass(content_type):
    channels.check_envelope(10, content_type)
    channels.check_envelope(None, content_type)


@pytest.mark.parametrize("content_type", [None, "", "text/plain", "application/jsonx"])
def test_other_content_types_get_415(content_type):
    with pytest.raises(InboundRejected) as caught:
        channels.check_envelope(10, content_type)
    assert caught.value.status == 415


def test_a_body_over_one_mebibyte_gets_413():
    channels.check_envelope(channels.MAX_INBOUND_BYTES, "application/json")
    with pytest.raises(InboundRejected) as caught:
        channels.check_envelope(channels.MAX_INBOUND_BYTES + 1, "application/json")
    assert caught.value.status == 413


@pytest.mark.parametrize(
    "raw",
    [b"{", b'{"text": "a"', b"not json", b"\xff\xfe{}", b'{"a": NaN}', b"[]", b'"text"', b""],
)
def test_anything_but_a_json_object_gets_400(raw):
    with pytest.raises(InboundRejected) as caught:
        channels.decode_json_object(raw)
    assert caught.value.status == 400


def test_a_json_object_is_decoded():
    assert channels.decode_json_object('{"text": "ação"}'.encode()) == {"text": "ação"}


# inbound: fields ------------------------------------------------------------------------------
def test_a_valid_message_is_parsed():
    message = channels.parse_message(valid_payload(unknown="ignored"))
    assert message == channels.InboundMessage(
        thread_id="order-1001",
        message_id="m-1",
        contact={"id": "c-7", "name": "Ana", "phone": "+5511999990000", "email": None},
        text="Olá, meu pedido chegou?",
        attachments=[{"name": "nota.pdf", "mimetype": "application/pdf", "url": "https://x.io/n"}],
        metadata={"order": "1001"},
    )


def test_integer_ids_become_strings_and_optional_fields_default():
    message = channels.parse_message(
        {"thread_id": 12345678901234567890, "message_id": 7, "contact": {"id": 3}, "text": "hi"}
    )
    assert (message.thread_id, message.message_id) == ("12345678901234567890", "7")
    assert message.contact == {"id": "3", "name": None, "phone": None, "email": None}
    assert (message.attachments, message.metadata) == ([], {})


def test_an_attachment_alone_is_a_message():
    data = base64.b64encode(b"%PDF-1.4").decode()
    message = channels.parse_message(
        valid_payload(text="", attachments=[{"name": "a.pdf", "data": data}])
    )
    assert message.text == ""
    assert message.attachments == [{"name": "a.pdf", "mimetype": None, "data": data}]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"thread_id": None}, "thread_id"),
        ({"thread_id": ""}, "thread_id"),
        ({"thread_id": True}, "thread_id"),
        ({"thread_id": ["1"]}, "thread_id"),
        ({"thread_id": "x" * 256}, "thread_id"),
        ({"message_id": None}, "message_id"),
        ({"message_id": 1.5}, "message_id"),
        ({"contact": None}, "contact"),
        ({"contact": "c-7"}, "contact"),
        ({"contact": {"name": "Ana"}}, "contact.id"),
        ({"contact": {"id": "c-7", "name": 5}}, "contact.name"),
        ({"text": 42}, "text"),
        ({"text": "", "attachments": []}, "neither text nor attachments"),
        ({"text": "  ", "attachments": None}, "neither text nor attachments"),
        ({"attachments": {"url": "https://x.io"}}, "attachments"),
        ({"attachments": ["https://x.io"]}, "attachments[0]"),
        ({"attachments": [{"name": "a"}]}, "either url or data"),
        ({"attachments": [{"url": "https://x.io", "data": "AAAA"}]}, "either url or data"),
        ({"attachments": [{"url": "ftp://x.io/a"}]}, "attachments[0].url"),
        ({"attachments": [{"url": "javascript:alert(1)"}]}, "attachments[0].url"),
        ({"attachments": [{"data": "not base64!"}]}, "attachments[0].data"),
        ({"attachments": [{"url": "https://x.io", "mimetype": 1}]}, "attachments[0].mimetype"),
        ({"metadata": ["a"]}, "metadata"),
    ],
)
def test_wrong_fields_get_400_naming_the_field(changes, field):
    assert field in rejected(valid_payload(**changes))


def test_reasons_never_quote_the_payload():
    reason = rejected(valid_payload(thread_id={"secret": "customer text"}))
    assert "customer text" not in reason


# reply URL ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://app.example.com/replies?token=abc", None),
        ("http://127.0.0.1:8080/r", None),
        (None, channels.REPLY_URL_MISSING),
        ("", channels.REPLY_URL_MISSING),
        ("https://app.example.com/" + "a" * 2048, channels.REPLY_URL_TOO_LONG),
        ("ftp://app.example.com/r", channels.REPLY_URL_NOT_WEB),
        ("javascript:alert(1)", channels.REPLY_URL_NOT_WEB),
        ("https:///no-host", channels.REPLY_URL_NOT_WEB),
        ("http://[::1/broken", channels.REPLY_URL_NOT_WEB),
        ("app.example.com/replies", channels.REPLY_URL_NOT_WEB),
    ],
)
def test_reply_urls(url, problem):
    assert channels.check_reply_url(url) == problem


# signing ----------------------------------------------------------------------------------------
def test_reply_body_and_signature_verify_with_the_integrators_signing():
    body = channels.reply_body("t-1", {"id": "c"}, "Olá", [{"name": "a", "url": "https://x"}])
    assert json.loads(body) == {
        "thread_id": "t-1",
        "contact": {"id": "c"},
        "text": "Olá",
        "attachments": [{"name": "a", "url": "https://x"}],
        "metadata": {},
    }
    headers = channels.signed_headers(SECRET, body, signing.sign)
    now = time.time()
    signing.verify([SECRET], body, headers["X-MCP-Timestamp"], headers["X-MCP-Signature"], now)
    assert headers["X-MCP-Signature"].startswith("sha256=")
    with pytest.raises(signing.SignatureError):
        signing.verify(
            [SECRET], body + b" ", headers["X-MCP-Timestamp"], headers["X-MCP-Signature"], now
        )
    with pytest.raises(signing.SignatureError):
        signing.verify(
            ["another"], body, headers["X-MCP-Timestamp"], headers["X-MCP-Signature"], now
        )
    other = channels.signed_headers(SECRET, body, signing.sign)
    assert other["X-MCP-Delivery"] != headers["X-MCP-Delivery"], "one delivery id per post"


def test_a_reply_reaches_the_receiver_signed(receiver):
    receiver.answer(200, {"message_id": "out-9"})
    assert send(receiver.url) == {"external_id": "out-9"}
    (request,) = receiver.requests
    assert request.path == "/replies"
    assert request.headers["Content-Type"].startswith("application/json")
    assert request.verified_json(SECRET, signing.verify)["text"] == "Chegou sim!"
    assert SECRET not in str(request.headers) and SECRET.encode() not in request.body


# how answers are classified -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "payload", "external_id"),
    [
        (200, {"message_id": "a-1"}, "a-1"),
        (201, {"message_id": 42}, "42"),
        (202, {"status": "queued"}, None),
        (200, ["not", "an", "object"], None),
        (204, None, None),
    ],
)
def test_2xx_answers_are_delivered(receiver, status, payload, external_id):
    receiver.answer(status, payload)
    assert send(receiver.url) == {"external_id": external_id}


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422])
def test_other_4xx_answers_are_permanent(receiver, status):
    receiver.answer(status, {"error": "unknown thread"}, headers={"Retry-After": "5"})
    error = send_error(receiver.url)
    assert (error.retryable, error.retry_after, error.status) == (False, None, status)
    assert f"HTTP {status}: unknown thread" in error.reason
    assert "127.0.0.1" in error.reason


def test_a_redirect_is_not_followed_and_is_permanent(receiver):
    receiver.answer(302, None, headers={"Location": receiver.url + "/elsewhere"})
    error = send_error(receiver.url)
    assert (error.retryable, error.status) == (False, 302)
    assert len(receiver.requests) == 1


def test_429_is_retryable_after_the_delay_asked(receiver):
    receiver.answer(429, {"error": "slow down"}, headers={"Retry-After": "7"})
    error = send_error(receiver.url)
    assert (error.retryable, error.retry_after, error.status) == (True, 7, 429)


def test_429_with_an_http_date_or_without_retry_after(receiver):
    later = datetime.now(timezone.utc) + timedelta(seconds=120)
    receiver.answer(429, None, headers={"Retry-After": format_datetime(later, usegmt=True)})
    error = send_error(receiver.url)
    assert error.retryable and 100 <= error.retry_after <= 121
    receiver.answer(429, None)
    error = send_error(receiver.url)
    assert (error.retryable, error.retry_after) == (True, None)


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_server_errors_are_retryable(receiver, status):
    receiver.answer(status, None, headers={"Retry-After": "30"} if status == 503 else None)
    error = send_error(receiver.url)
    assert (error.retryable, error.status) == (True, status)
    assert error.retry_after == (30 if status == 503 else None)


def test_a_connection_error_is_retryable(closed_port):
    error = send_error(f"http://127.0.0.1:{closed_port}/replies?token=hidden")
    assert (error.retryable, error.status) == (True, None)
    assert "could not be reached" in error.reason
    assert "hidden" not in error.reason, "only the host is named: a URL may hold a token"


def test_a_receiver_that_does_not_answer_in_time_is_retryable(receiver):
    receiver.answer(hold=True)
    error = send_error(receiver.url, timeout=(3.05, 0.2))
    assert (error.retryable, error.status) == (True, None)
    assert "did not answer in time" in error.reason


def test_a_receiver_echoing_the_secret_does_not_leak_it(receiver):
    receiver.answer(400, {"error": f"bad signature for secret {SECRET}\n\x1b[31m"})
    error = send_error(receiver.url)
    assert SECRET not in error.reason and SECRET not in str(error)
    assert "***" in error.reason and "\x1b" not in error.reason


def test_an_invalid_url_is_a_permanent_failure():
    error = send_error("http://")
    assert (error.retryable, error.status) == (False, None)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        ("", None),
        ("12", 12),
        (" 0 ", 0),
        ("-3", None),
        ("soon", None),
        ("١٢", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0),
    ],
)
def test_retry_after_values(value, seconds):
    assert channels.parse_retry_after(value) == seconds


def test_retry_after_as_a_date_counts_from_now():
    now = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
    value = format_datetime(now + timedelta(seconds=90), usegmt=True)
    assert channels.parse_retry_after(value, now=now.timestamp()) == 90
