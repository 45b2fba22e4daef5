# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""The Amazon channel's protocol: relayed buyer e-mails in, reply e-mails out, SP-API
Messaging and LWA tokens against a fake Amazon on 127.0.0.1."""

import base64
import email
import json
from datetime import datetime, timezone
from email import policy
from email.message import EmailMessage
from pathlib import Path

import jsonschema
import pytest
from conftest import load_services, load_test_double

load_services("mcp_connectors")
from mcp_connectors_services import channel_amazon as amazon  # after load_services
from mcp_connectors_services.channels import ChannelSendError, InboundMessage

fake_module = load_test_double("mcp_connectors", "fake_amazon")
buyer_email = fake_module.buyer_email

DATA = Path(__file__).resolve().parent.parent / "addons/mcp_connectors/tests/data/channels"
ALIAS = "k3x9z2mq7w1b8rt@marketplace.amazon.com.br"
ORDER = fake_module.ORDER_ID
SELLER = "atendimento@loja.example.test"
MARKETPLACE = amazon.MARKETPLACE_BRAZIL


def fixture(name):
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def parsed(raw, **kwargs):
    event = amazon.parse_email(raw, **kwargs)
    assert isinstance(event, InboundMessage), event
    return event


def skipped(raw, **kwargs):
    event = amazon.parse_email(raw, **kwargs)
    assert isinstance(event, amazon.SkippedEvent), event
    return event


def mail(text, sender=f"Maria <{ALIAS}>", subject="Pergunta", headers=None, html=None):
    message = EmailMessage()
    message["From"] = sender
    message["To"] = SELLER
    message["Subject"] = subject
    message["Message-ID"] = "<m1@example.test>"
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    return message.as_bytes()


def send_error(call, *args, **kwargs):
    with pytest.raises(ChannelSendError) as caught:
        call(*args, **kwargs)
    return caught.value


@pytest.fixture
def fake():
    with fake_module.FakeAmazon() as running:
        yield running


@pytest.fixture
def messaging(fake):
    return amazon.AmazonMessagingClient(base_url=fake.url)


@pytest.fixture
def lwa(fake):
    return amazon.LwaClient(fake.client_id, fake.client_secret, token_url=fake.token_url)


# inbound: buyer messages ------------------------------------------------------------------------
def test_a_relayed_buyer_message_becomes_an_inbound_message():
    event = parsed(buyer_email("Olá, meu pedido ainda não chegou.\nPodem ver?"))
    assert event.thread_id == ORDER
    assert event.message_id == "<relay-1@marketplace.amazon.com.br>"
    assert event.contact == {"id": ALIAS, "name": "Maria Silva", "phone": None, "email": ALIAS}
    assert event.text == "Olá, meu pedido ainda não chegou.\nPodem ver?"
    assert event.attachments == []
    metadata = event.metadata
    assert metadata["order_id"] == ORDER
    assert metadata["buyer_alias"] == ALIAS
    assert metadata["marketplace_domain"] == "marketplace.amazon.com.br"
    assert metadata["recipients"] == [SELLER]
    assert metadata["subject"] == f"Pergunta sobre o pedido ({ORDER})"
    assert metadata["date"] == "2026-01-01T10:00:00-03:00"
    assert metadata["asins"] == ["B0TESTASIN"]
    assert metadata["comm_token"] == "A1B2C3D4E5F6G7"


@pytest.mark.parametrize("markers", ["en", "pt", "es"])
def test_the_text_between_the_relays_markers_is_taken(markers):
    event = parsed(buyer_email("Where is my order?\nIt is late.", markers=markers))
    assert event.text == "Where is my order?\nIt is late."
    assert "commMgrTok" not in event.text and "For Your Information" not in event.text


def test_the_order_id_is_found_in_the_body_when_the_subject_has_none():
    event = parsed(buyer_email("Tem nota fiscal?", subject="Consulta do cliente da Amazon Maria"))
    assert event.thread_id == ORDER


def test_without_an_order_id_the_thread_is_the_buyer():
    event = parsed(buyer_email("Vocês têm em azul?", subject="Consulta", order_id=None))
    assert event.thread_id == ALIAS
    assert event.metadata["order_id"] is None


def test_the_same_buyer_is_the_same_contact_across_orders():
    first = parsed(buyer_email("Oi", name="Maria Silva - Amazon Marketplace"))
    second = parsed(buyer_email("Oi de novo", order_id="701-1111111-2222222", subject="Pedido"))
    assert first.contact == second.contact
    assert (first.thread_id, second.thread_id) == (ORDER, "701-1111111-2222222")


def test_order_ids_in_longer_numbers_are_not_taken():
    assert amazon.find_order_id("Ref 1123-1234567-1234567", "") is None
    assert amazon.find_order_id("(Order: 123-1234567-1234567)", "") == ORDER


def test_html_only_messages_are_read_as_text():
    event = parsed(buyer_email("Olá,\nO produto veio <b>sem</b> manual.", html=True))
    assert event.text == "Olá,\nO produto veio sem manual."


def test_html_drops_styles_and_blockquotes():
    html = (
        "<html><head><style>p{color:red}</style></head><body><div>Oi,&nbsp;tudo bem?</div>"
        "<div><div>Veio <b>quebrado</b>.<br>Obrigada</div></div>"
        "<blockquote>mensagem antiga</blockquote></body></html>"
    )
    event = parsed(mail("", html=html))
    assert event.text == "Oi, tudo bem?\nVeio quebrado.\nObrigada"


def test_plain_text_is_preferred_to_html():
    event = parsed(mail("Texto puro.", html="<p>VERSÃO HTML</p>"))
    assert event.text == "Texto puro."


@pytest.mark.parametrize(
    "quote",
    [
        "On Wed, Sep 24, 2026 at 10:00 AM Loja <x@loja.example.test> wrote:\n> old answer",
        "Em qua., 24 de set. de 2026 às 10:00, Loja <x@loja.example.test>\nescreveu:\n> velha",
        "El mié, 24 sept 2026 a las 10:00, Loja escribió:\n> vieja",
        "-----Original Message-----\nFrom: Loja\nold answer",
        "--- Original message ---\n\nThank you.",
        "De: Loja <x@loja.example.test>\nEnviado: quarta-feira\nPara: Maria\nresposta velha",
        "________________________________\nFrom: Loja",
    ],
)
def test_quoted_history_is_cut(quote):
    text = f"Ainda não recebi.\n> linha citada solta\n\n{quote}"
    assert amazon.extract_message(text) == "Ainda não recebi."


@pytest.mark.parametrize(
    "signature",
    ["-- \nMaria Silva\nSão Paulo", "Enviado do meu iPhone", "Sent from my Galaxy", "--\nMaria"],
)
def test_signatures_are_cut(signature):
    assert amazon.extract_message(f"Obrigada!\n\n{signature}") == "Obrigada!"


def test_a_reply_inside_the_markers_loses_its_quoted_history():
    text = "Quero trocar pelo 14/16.\n\nEm qua., 24 de set. de 2026, Loja escreveu:\n> Não temos L"
    assert parsed(buyer_email(text, markers="en")).text == "Quero trocar pelo 14/16."


def test_unknown_marker_lines_do_not_cut_the_message():
    text = "------------- Nachricht: -------------\nHallo, wo ist meine Bestellung?"
    assert amazon.extract_message(text).endswith("Hallo, wo ist meine Bestellung?")


def test_only_an_end_marker_still_cuts_the_footer():
    text = "Cadê meu pedido?\n------------- End message -------------\nFor Your Information: x"
    assert amazon.extract_message(text) == "Cadê meu pedido?"


def test_attachments_come_as_base64():
    photo = b"\x89PNG\r\n\x1a\nfake image"
    raw = buyer_email(
        "Segue a foto do defeito.",
        attachments=[("defeito.png", "image/png", photo), ("nota.pdf", "application/pdf", b"%PDF")],
    )
    event = parsed(raw)
    assert event.text == "Segue a foto do defeito."
    assert event.attachments == [
        {"name": "defeito.png", "mimetype": "image/png", "data": base64.b64encode(photo).decode()},
        {
            "name": "nota.pdf",
            "mimetype": "application/pdf",
            "data": base64.b64encode(b"%PDF").decode(),
        },
    ]


def test_an_attachment_alone_is_a_message():
    raw = buyer_email("", markers=None, attachments=[("foto.jpg", "image/jpeg", b"jpg")])
    event = parsed(raw)
    assert (event.text, len(event.attachments)) == ("", 1)


def test_a_mail_without_message_id_gets_a_stable_one():
    raw = buyer_email("Oi", message_id=None)
    first, second = parsed(raw), parsed(raw)
    assert first.message_id.startswith("sha256:")
    assert first.message_id == second.message_id


def test_thread_headers_are_kept_for_the_reply():
    headers = {
        "In-Reply-To": "<our-1@loja.example.test>",
        "References": "<a@x> <our-1@loja.example.test>",
    }
    metadata = parsed(buyer_email("Ok, obrigada", headers=headers)).metadata
    assert metadata["in_reply_to"] == "<our-1@loja.example.test>"
    assert metadata["references"] == ["<a@x>", "<our-1@loja.example.test>"]


def test_recipients_name_the_mailbox_that_got_the_relay():
    raw = buyer_email("Oi", headers={"Delivered-To": "amazon+loja1@loja.example.test"})
    assert parsed(raw).metadata["recipients"] == ["amazon+loja1@loja.example.test", SELLER]


def test_a_broken_charset_does_not_raise():
    raw = (
        b"From: <" + ALIAS.encode() + b">\r\nTo: s@x.test\r\nSubject: Oi\r\nMessage-ID: <c@x>\r\n"
        b"Content-Type: text/plain; charset=no-such-charset\r\n\r\nOl\xe1 tudo bem\r\n"
    )
    assert parsed(raw).text.startswith("Ol")


# inbound: not buyer messages --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("sender", "kind"),
    [
        ("Amazon <donotreply@marketplace.amazon.com.br>", "notification"),
        ("Amazon Seller Central <seller-notification@amazon.com.br>", "notification"),
        ("Amazon <no-reply@amazon.com>", "notification"),
        ("Fulano <fulano@gmail.com>", "not_buyer"),
        ("Golpe <abc123@marketplace.amazon.com.br.golpe.test>", "not_buyer"),
        ("Golpe <abc123@evilamazon.com>", "not_buyer"),
        (f"Loja <{SELLER}>", "echo"),
    ],
)
def test_mail_not_from_a_buyer_alias_is_skipped(sender, kind):
    event = skipped(mail("Oi", sender=sender), seller_addresses=[SELLER.upper()])
    assert event.kind == kind
    assert event.metadata["email_message_id"] == "<m1@example.test>"


def test_buyer_aliases_are_recognised_in_every_marketplace():
    for domain in ("com", "com.br", "co.uk", "de", "com.mx", "co.jp"):
        assert amazon.is_buyer_alias(f"AbC123@Marketplace.Amazon.{domain}")
    assert not amazon.is_buyer_alias("noreply@marketplace.amazon.com")
    assert not amazon.is_buyer_alias("@marketplace.amazon.com")
    assert not amazon.is_buyer_alias(None)


@pytest.mark.parametrize(
    ("headers", "subject"),
    [
        ({"Auto-Submitted": "auto-replied"}, "Pergunta"),
        ({"X-Autoreply": "yes"}, "Pergunta"),
        ({"Precedence": "auto_reply"}, "Pergunta"),
        ({}, "Resposta automática: Pergunta"),
        ({}, "Automatic reply: Your order"),
        ({}, "Out of Office: Re: Pedido"),
    ],
)
def test_the_buyers_auto_replies_are_skipped(headers, subject):
    assert skipped(mail("Estou fora", subject=subject, headers=headers)).kind == "auto_reply"


def test_a_relay_marked_auto_generated_is_still_a_buyer_message():
    assert parsed(mail("Oi", headers={"Auto-Submitted": "auto-generated"})).text == "Oi"


def delivery_report(report_type="delivery-status", returned="text/rfc822-headers"):
    """A delivery status notification (RFC 3464) returning our reply to the buyer."""
    returned_headers = (
        f"From: {SELLER}\r\nTo: {ALIAS}\r\nSubject: Re: Pergunta\r\n"
        "Message-ID: <our-reply-7@loja.example.test>\r\n"
    )
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mail.loja.example.test>\r\n"
        f"To: {SELLER}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <bounce-1@mail.loja.example.test>\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type={report_type}; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--b1\r\nContent-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; mail.loja.example.test\r\n\r\nFinal-Recipient: rfc822; {ALIAS}\r\n"
        "Action: failed\r\nStatus: 5.1.1\r\n\r\n"
        f"--b1\r\nContent-Type: {returned}\r\n\r\n{returned_headers}\r\nOlá!\r\n--b1--\r\n"
    ).encode()


@pytest.mark.parametrize("returned", ["text/rfc822-headers", "message/rfc822"])
def test_a_bounce_of_our_reply_names_the_reply(returned):
    event = skipped(delivery_report(returned=returned))
    assert event.kind == "bounce"
    assert event.metadata["bounced_message_id"] == "<our-reply-7@loja.example.test>"


def test_a_read_receipt_is_skipped():
    assert skipped(delivery_report("disposition-notification")).kind == "read_receipt"


def test_mail_from_the_mail_system_is_a_bounce():
    event = skipped(mail("Delivery failed", sender="postmaster@mail.example.test"))
    assert (event.kind, event.metadata["bounced_message_id"]) == ("bounce", None)


def test_amazons_copy_of_the_sellers_message_is_an_echo():
    text = (
        "Here is a copy of the e-mail that you sent to Maria Silva.\n\nOrder ID 123-1234567-1234567"
    )
    assert skipped(mail(text)).kind == "echo"


@pytest.mark.parametrize("text", ["", "   \n", "Enviado do meu iPhone"])
def test_empty_messages_are_skipped(text):
    assert skipped(buyer_email(text)).kind == "empty"


# outbound: reply e-mails ------------------------------------------------------------------------
def test_the_reply_is_threaded_to_the_buyers_mail():
    event = parsed(
        buyer_email("Cadê?", headers={"References": "<older@marketplace.amazon.com.br>"})
    )
    moment = datetime(2026, 1, 1, 14, 0, tzinfo=timezone.utc)
    reply = amazon.build_reply(
        f"Loja Exemplo <{SELLER}>",
        event.contact["email"],
        "Olá! Seu pedido saiu hoje.",
        subject=event.metadata["subject"],
        in_reply_to=event.message_id,
        references=event.metadata["references"],
        order_id=event.metadata["order_id"],
        now=moment,
    )
    assert reply["From"] == f"Loja Exemplo <{SELLER}>"
    assert reply["To"] == ALIAS
    assert reply["Subject"] == f"Re: Pergunta sobre o pedido ({ORDER})"
    assert reply["In-Reply-To"] == "<relay-1@marketplace.amazon.com.br>"
    assert reply["References"] == (
        "<older@marketplace.amazon.com.br> <relay-1@marketplace.amazon.com.br>"
    )
    assert reply["Message-ID"].endswith("@loja.example.test>")
    assert reply["Date"] == "Thu, 01 Jan 2026 14:00:00 +0000"
    sent = email.message_from_bytes(reply.as_bytes(), policy=policy.default)
    assert sent.get_content().strip() == "Olá! Seu pedido saiu hoje."


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("RE: Re: Pergunta", "Re: Pergunta"),
        ("Res: Dúvida", "Re: Dúvida"),
        ("Re[2]: Oi", "Re: Oi"),
        ("AW: Frage\r\n folded", "Re: Frage folded"),
        ("", f"Re: Order {ORDER}"),
        (None, f"Re: Order {ORDER}"),
    ],
)
def test_reply_subjects_do_not_stack_prefixes(subject, expected):
    assert amazon.reply_subject(subject, ORDER) == expected
    assert amazon.reply_subject(None) == "Re: Your message"


def test_a_reply_without_a_previous_mail_has_no_thread_headers():
    reply = amazon.build_reply(SELLER, ALIAS, "Olá!", order_id=ORDER)
    assert reply["In-Reply-To"] is None and reply["References"] is None
    assert reply["Subject"] == f"Re: Order {ORDER}"


def test_reply_attachments_are_attached():
    attachment = {"name": "nota.pdf", "mimetype": "application/pdf", "data": "JVBERg=="}
    reply = amazon.build_reply(SELLER, ALIAS, "Segue a nota.", attachments=[attachment])
    [part] = list(reply.iter_attachments())
    assert (part.get_filename(), part.get_content_type()) == ("nota.pdf", "application/pdf")
    assert part.get_content() == b"%PDF"


@pytest.mark.parametrize(
    ("sender", "recipient", "text"),
    [
        ("", ALIAS, "Oi"),
        (SELLER, "fulano@gmail.com", "Oi"),
        (SELLER, "donotreply@marketplace.amazon.com", "Oi"),
        (SELLER, ALIAS, "  "),
    ],
)
def test_replies_that_cannot_go_are_refused(sender, recipient, text):
    assert not send_error(amazon.build_reply, sender, recipient, text).retryable


# SP-API Messaging -------------------------------------------------------------------------------
def test_actions_are_read_from_the_hal_links():
    payload = fixture("amazon_messaging_get_actions_response.json")
    assert amazon.parse_actions(payload) == [
        "confirmDeliveryDetails",
        "unexpectedProblem",
        "confirmOrderDetails",
    ]


def test_actions_without_names_take_them_from_href_and_unknown_ones_are_left_out():
    payload = {
        "_links": {
            "actions": [
                {"href": "/messaging/v1/orders/1/messages/warranty?marketplaceIds=X"},
                {"href": "/x", "name": "negativeFeedbackRemoval"},
                {"href": "/x", "name": "attributes"},
                {"name": "warranty"},
                "junk",
            ]
        }
    }
    assert amazon.parse_actions(payload) == ["warranty"]
    assert amazon.parse_actions({}) == [] == amazon.parse_actions(None)


def test_the_unexpected_problem_request_is_the_fixture():
    request = fixture("amazon_messaging_unexpected_problem_request.json")
    body = amazon.message_request("unexpectedProblem", request["text"])
    assert body == request
    jsonschema.validate(body, fake_module.MESSAGE_SCHEMAS["unexpectedProblem"])


def test_texts_up_to_the_types_limit_pass_and_longer_ones_are_refused():
    assert amazon.message_request("unexpectedProblem", "a" * 2000)["text"] == "a" * 2000
    error = send_error(amazon.message_request, "unexpectedProblem", "a" * 2001)
    assert not error.retryable
    assert "2001 characters" in error.reason and "at most 2000" in error.reason
    assert send_error(amazon.message_request, "confirmCustomizationDetails", "a" * 801)
    assert send_error(amazon.message_request, "digitalAccessKey", "a" * 401)


@pytest.mark.parametrize(
    ("message_type", "text", "attachments", "words"),
    [
        ("unexpectedProblem", "Veja <a href='x'>aqui</a>", None, "HTML"),
        ("unexpectedProblem", "Escreva para loja@example.test", None, "e-mail addresses"),
        ("negativeFeedbackRemoval", None, None, "not an SP-API"),
        ("unexpectedProblem", None, None, "needs text"),
        ("invoice", None, None, "needs attachments"),
        ("invoice", "Segue", None, "takes no text"),
        ("unexpectedProblem", "Oi", [{"uploadDestinationId": "u", "fileName": "a"}], "no attach"),
        ("invoice", None, [{"fileName": "nota.pdf"}], "uploadDestinationId"),
        ("invoice", None, [{"uploadDestinationId": "u", "fileName": "f"}] * 6, "at most 5"),
    ],
)
def test_invalid_messages_are_refused_before_sending(message_type, text, attachments, words):
    error = send_error(amazon.message_request, message_type, text, attachments)
    assert words in error.reason and not error.retryable


def test_attachment_types_take_upload_ids():
    attachments = [{"uploadDestinationId": "4e936e26", "fileName": "nota.pdf", "extra": 1}]
    body = amazon.message_request("invoice", attachments=attachments)
    assert body == {"attachments": [{"uploadDestinationId": "4e936e26", "fileName": "nota.pdf"}]}


def test_get_actions_and_locale_from_the_fake(fake, messaging):
    token = fake.access_token()
    assert messaging.get_actions(token, ORDER, MARKETPLACE) == [
        "confirmDeliveryDetails",
        "unexpectedProblem",
        "confirmOrderDetails",
    ]
    assert messaging.get_buyer_locale(token, ORDER, MARKETPLACE) == "pt-BR"
    first = fake.requests[0]
    assert (first.method, first.path) == ("GET", f"/messaging/v1/orders/{ORDER}")
    assert first.query == {"marketplaceIds": [MARKETPLACE]}
    assert first.headers["x-amz-access-token"] == token


def test_send_message_posts_the_request(fake, messaging):
    token = fake.access_token()
    text = fixture("amazon_messaging_unexpected_problem_request.json")["text"]
    assert messaging.send_message(token, ORDER, MARKETPLACE, "unexpectedProblem", text) is None
    assert fake.messages == [
        {"order_id": ORDER, "type": "unexpectedProblem", "body": {"text": text}}
    ]
    assert fake.requests[0].path == f"/messaging/v1/orders/{ORDER}/messages/unexpectedProblem"


def test_a_type_the_order_does_not_allow_is_refused(fake, messaging):
    error = send_error(
        messaging.send_message, fake.access_token(), ORDER, MARKETPLACE, "warranty", None,
        [{"uploadDestinationId": "u", "fileName": "garantia.pdf"}],
    )  # fmt: skip
    assert (error.status, error.retryable) == (400, False)
    assert "InvalidInput" in error.reason


def test_an_unknown_order_is_a_permanent_404(fake, messaging):
    error = send_error(
        messaging.get_actions, fake.access_token(), "999-9999999-9999999", MARKETPLACE
    )
    assert (error.status, error.retryable) == (404, False)


def test_a_malformed_order_id_never_reaches_amazon(fake, messaging):
    assert send_error(messaging.get_actions, "token", "../../x", MARKETPLACE)
    assert fake.requests == []


def test_an_expired_access_token_asks_for_a_refresh(fake, messaging):
    token = fake.access_token()
    fake.expire(token)
    error = send_error(messaging.get_actions, token, ORDER, MARKETPLACE)
    assert isinstance(error, amazon.AccessTokenRejected)
    assert not error.retryable and token not in error.reason


def test_another_403_is_a_missing_role():
    payload = {
        "errors": [{"code": "Unauthorized", "message": "Access to requested resource is denied."}]
    }
    with pytest.raises(ChannelSendError) as caught:
        amazon.classify_sp_api(403, {}, payload)
    assert not isinstance(caught.value, amazon.AccessTokenRejected)
    assert "Buyer Communication role" in caught.value.reason


@pytest.mark.parametrize(
    ("status", "headers", "retry_after"),
    [
        (429, {"x-amzn-RateLimit-Limit": "0.5"}, 2),
        (429, {"x-amzn-RateLimit-Limit": "1.0"}, 1),
        (429, {"Retry-After": "7", "x-amzn-RateLimit-Limit": "1.0"}, 7),
        (429, {"x-amzn-RateLimit-Limit": "oops"}, None),
        (500, {}, None),
        (503, {"x-amzn-RateLimit-Limit": "1.0"}, None),
    ],
)
def test_rate_limits_and_server_errors_are_retryable(fake, messaging, status, headers, retry_after):
    errors = [{"code": "QuotaExceeded", "message": "You exceeded your quota.", "details": ""}]
    fake.fail_next(status, headers=headers, errors=errors)
    error = send_error(messaging.get_actions, fake.access_token(), ORDER, MARKETPLACE)
    assert (error.retryable, error.retry_after, error.status) == (True, retry_after, status)


def test_the_error_fixture_is_permanent_and_named(fake, messaging):
    fake.fail_next(400, payload=fixture("amazon_error_response.json"))
    error = send_error(messaging.get_actions, fake.access_token(), ORDER, MARKETPLACE)
    assert not error.retryable
    assert "InvalidInput: Invalid Input" in error.reason


def test_sp_api_timeouts_and_connection_errors_are_retryable(fake, closed_port):
    fake.fail_next(hold=True)
    slow = amazon.AmazonMessagingClient(base_url=fake.url, timeout=(1, 0.2))
    assert send_error(slow.get_actions, "token", ORDER, MARKETPLACE).retryable
    down = amazon.AmazonMessagingClient(base_url=f"http://127.0.0.1:{closed_port}")
    assert send_error(down.get_actions, "token", ORDER, MARKETPLACE).retryable


# LWA tokens -------------------------------------------------------------------------------------
def test_refresh_gives_an_hour_long_token_that_works(fake, lwa, messaging):
    refresh_token = fake.grant()
    token = lwa.refresh(refresh_token)
    form = fake.requests[0].form()
    expected_form = fixture("amazon_lwa_token_refresh_request.form.json")
    assert list(form) == [key for key in expected_form if not key.startswith("_")]
    assert form["grant_type"] == "refresh_token" and form["refresh_token"] == refresh_token
    assert token.refresh_token == refresh_token
    assert token.expires_at == pytest.approx(fake.clock() + 3600, abs=5)
    assert messaging.get_actions(token.access_token, ORDER, MARKETPLACE)


def test_the_token_fixture_is_a_success():
    payload = fixture("amazon_lwa_token_response.json")
    assert amazon.classify_lwa(200, {}, payload) == payload


def test_a_revoked_grant_means_authorize_again(fake, lwa):
    refresh_token = fake.grant()
    fake.revoke(refresh_token)
    error = send_error(lwa.refresh, refresh_token)
    assert isinstance(error, amazon.ReauthorizationRequired)
    assert not error.retryable and "authorize the app again" in error.reason
    assert refresh_token not in error.reason


def test_wrong_client_credentials_are_permanent(fake):
    client = amazon.LwaClient(fake.client_id, "wrong-secret", token_url=fake.token_url)
    error = send_error(client.refresh, fake.grant())
    assert not error.retryable and "invalid_client" in error.reason
    assert "wrong-secret" not in error.reason


@pytest.mark.parametrize(("status", "payload"), [(500, None), (429, {"error": "slow_down"})])
def test_lwa_overload_is_retryable(fake, lwa, status, payload):
    fake.fail_next(status, payload=payload, headers={"Retry-After": "3"})
    error = send_error(lwa.refresh, fake.grant())
    assert (error.retryable, error.retry_after) == (True, 3)


def test_an_lwa_answer_without_a_token_is_an_error(fake, lwa):
    fake.fail_next(200, payload={"token_type": "bearer"})
    assert not send_error(lwa.refresh, fake.grant()).retryable


def test_lwa_timeouts_are_retryable(fake):
    fake.fail_next(hold=True)
    client = amazon.LwaClient("id", "secret", token_url=fake.token_url, timeout=(1, 0.2))
    assert send_error(client.refresh, "Atzr|x").retryable


def test_secrets_stay_out_of_reprs():
    token = amazon.LwaToken("Atza|secret-access", "Atzr|secret-refresh", 1.0)
    client = amazon.LwaClient("client-id", "client-secret-value")
    assert "secret" not in repr(token) + repr(client)
    assert "secret" not in repr(amazon.AmazonMessagingClient())


# routing, reply content, Sellers API ------------------------------------------------------------
def test_routing_gives_every_recipient_and_the_message_id():
    raw = buyer_email(
        "Oi",
        to="Loja <Atendimento@Loja.example.test>",
        headers={"Cc": "copia@loja.example.test", "Delivered-To": "caixa@relay.example.test"},
    )
    recipients, message_id = amazon.email_routing(raw)
    assert recipients == [
        "caixa@relay.example.test",
        "atendimento@loja.example.test",
        "copia@loja.example.test",
    ]
    assert message_id == "<relay-1@marketplace.amazon.com.br>"
    assert message_id == parsed(raw).message_id


def test_routing_a_mail_without_message_id_keys_it_by_its_bytes():
    raw = buyer_email("Oi", message_id=None)
    _recipients, message_id = amazon.email_routing(raw)
    assert message_id.startswith("sha256:") and message_id == parsed(raw).message_id
    assert amazon.email_routing(buyer_email("Outro", message_id=None))[1] != message_id


@pytest.mark.parametrize(
    ("text", "words"),
    [("Veja <b>isto</b>", "HTML"), ("Escreva para loja@example.test", "e-mail addresses")],
)
def test_reply_texts_with_html_or_addresses_are_refused(text, words):
    error = send_error(amazon.check_reply_text, text)
    assert words in error.reason and not error.retryable
    assert amazon.check_reply_text("Seu pedido saiu hoje (rastreio BR123).")


def test_reply_content_attaches_data_and_lists_links():
    data = {"name": "nota.pdf", "mimetype": "application/pdf", "data": "JVBERg=="}
    link = {"name": "foto.png", "url": "https://chatwoot.example.test/f/foto.png"}
    text, files = amazon.reply_content("Segue.", [data, link, {"name": "vazio"}])
    assert text == "Segue.\nfoto.png: https://chatwoot.example.test/f/foto.png"
    assert files == [data]
    assert amazon.reply_content("Oi", []) == ("Oi", [])


def test_marketplace_participations_from_the_fake(fake, messaging):
    token = fake.access_token()
    assert messaging.get_marketplace_participations(token) == [
        {"id": MARKETPLACE, "name": "Amazon.com.br", "country": "BR", "participating": True}
    ]
    request = fake.requests[0]
    assert (request.method, request.path, request.query) == (
        "GET",
        amazon.PARTICIPATIONS_PATH,
        {},
    )
    fake.expire(token)
    error = send_error(messaging.get_marketplace_participations, token)
    assert isinstance(error, amazon.AccessTokenRejected)


def test_participations_without_marketplace_ids_are_left_out():
    payload = {
        "payload": [
            {"marketplace": {"id": "X1"}},
            {"marketplace": {"name": "no id"}, "participation": {"isParticipating": True}},
            "junk",
        ]
    }
    assert amazon.parse_participations(payload) == [
        {"id": "X1", "name": "X1", "country": "", "participating": False}
    ]
    assert amazon.parse_participations(None) == []


def test_regions_name_their_hosts():
    assert amazon.SP_API_HOSTS == {
        "na": amazon.SP_API_NA,
        "eu": amazon.SP_API_EU,
        "fe": amazon.SP_API_FE,
    }
