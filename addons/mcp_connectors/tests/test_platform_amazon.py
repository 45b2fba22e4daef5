# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""The Amazon channel on Odoo: buyer mail through Odoo's mail gateway into the channel's job
(never its chatter), replies by e-mail through Odoo's mailer (its SMTP session is the test
double), SP-API Messaging tools, the LWA token provider and the Test button against a fake
Amazon on 127.0.0.1. The hub part is the Chatwoot bridge's end-to-end test."""

import email
import smtplib
from email import policy
from unittest.mock import patch

from odoo.exceptions import UserError, ValidationError
from odoo.tests import tagged
from odoo.tools import mute_logger

from odoo.addons.base.tests.common import MockSmtplibCase
from odoo.addons.mcp_integrator.services import tool_calls
from odoo.addons.queue_job.exception import RetryableJobError
from odoo.addons.queue_job.job import Job

from ..services import channel_amazon
from ..services.channels import ChannelSendError, InboundRequest
from .common import McpConnectorsCase
from .fake_amazon import ORDER_ID, FakeAmazon, buyer_email

MAILBOX = "atendimento@loja.example.test"
SENDER = f"Loja Exemplo <{MAILBOX}>"
ALIAS = "k3x9z2mq7w1b8rt@marketplace.amazon.com.br"
BUYER = {"id": ALIAS, "name": "Maria Silva", "phone": None, "email": ALIAS}
RELAY_ID = "<relay-1@marketplace.amazon.com.br>"
CHANNEL_LOGGER = "odoo.addons.mcp_connectors.models.mcp_channel"
AMAZON_LOGGER = "odoo.addons.mcp_connectors.models.mcp_channel_amazon"
CREDENTIAL_LOGGER = "odoo.addons.mcp_integrator.models.mcp_credential"
QUIET = (CHANNEL_LOGGER, AMAZON_LOGGER, "odoo.addons.mail.models.mail_thread")


class AmazonCase(McpConnectorsCase, MockSmtplibCase):
    """A fake Amazon, an LWA credential of the seller's grant and the Amazon channel of the
    seller mailbox."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.amazon = FakeAmazon()
        cls.addClassCleanup(cls.amazon.stop)
        cls.credential = cls.env["mcp.credential"].create(
            {
                "name": "Amazon LWA",
                "kind": "oauth2",
                "oauth_provider": "amazon_lwa",
                "tenant_id": cls.tenant.id,
                "client_id": cls.amazon.client_id,
                "secret_input": cls.amazon.client_secret,
                "refresh_token_input": cls.amazon.grant(),
                "token_url": cls.amazon.token_url,
            }
        )
        cls.channel = cls.make_amazon_channel()

    @classmethod
    def make_amazon_channel(cls, **vals):
        return cls.env["mcp.channel"].create(
            {
                "name": "Amazon BR",
                "tenant_id": cls.tenant.id,
                "channel_type": "amazon",
                "account_ref": "Atendimento@Loja.example.test",
                "amazon_sender_address": SENDER,
                "access_credential_id": cls.credential.id,
                "api_base_url": cls.amazon.url,
                **vals,
            }
        )

    def setUp(self):
        super().setUp()
        self.amazon.requests.clear()
        self.amazon.messages.clear()

    def revoke_grant(self):
        """The seller removes the app: a grant of this test only (the fake outlives it)."""
        refresh_token = self.amazon.grant()
        self.credential.refresh_token_input = refresh_token
        self.amazon.revoke(refresh_token)
        return refresh_token

    # mail and jobs ------------------------------------------------------------------------------
    def fetch(self, raw):
        """The incoming mail server hands ``raw`` to the gateway, as fetchmail does."""
        with mute_logger(*QUIET):
            return self.env["mail.thread"].message_process("mcp.channel", raw)

    def delivery_jobs(self):
        return self.env["queue.job"].search(
            [("method_name", "=", "_process_delivery"), ("state", "=", "pending")], order="id"
        )

    def perform(self, record):
        with mute_logger(*QUIET):
            return Job.load(self.env, record.uuid).perform()

    def sent_mails(self):
        """The e-mails the mailer handed to its SMTP session, parsed."""
        return [
            email.message_from_string(sent["message"], policy=policy.SMTP) for sent in self.emails
        ]


@tagged("post_install", "-at_install")
class TestAmazonChannel(AmazonCase):
    # configuration ----------------------------------------------------------------------------
    def test_the_mailbox_is_kept_lower_case_and_addresses_are_checked(self):
        self.assertEqual(self.channel.account_ref, MAILBOX)
        self.assertEqual(self.channel.amazon_marketplace_id, "A2Q3Y263D00KWC")
        self.assertEqual(self.channel.server_id.kind, "amazon")
        with self.assertRaisesRegex(ValidationError, "not an e-mail address"):
            self.make_amazon_channel(
                account_ref="outra@loja.example.test", amazon_sender_address="x"
            )
        with self.assertRaisesRegex(ValidationError, "not an e-mail address"):
            self.channel.account_ref = "loja sem arroba"

    def test_the_inbound_url_refuses_everything(self):
        answer = self.channel._inbound(InboundRequest("POST", b"{}", {}, {}))
        self.assertEqual(answer.status, 404)
        self.assertIn(b"by e-mail", answer.body)

    # inbound ----------------------------------------------------------------------------------
    def test_a_buyer_mail_is_queued_for_the_hub_not_posted_on_the_channel(self):
        channels_before = self.env["mcp.channel"].search_count([])
        messages_before = self.channel.message_ids
        thread = self.fetch(buyer_email("Meu pedido ainda não chegou."))
        self.assertEqual(thread, self.channel.id)
        self.assertEqual(self.env["mcp.channel"].search_count([]), channels_before)
        self.assertEqual(self.channel.message_ids, messages_before, "nothing in the chatter")
        [job] = self.delivery_jobs()
        self.assertEqual(job.identity_key, f"mcp.channel.delivery:{self.channel.id}:{RELAY_ID}")
        self.assertNotIn("Meu pedido", job.name or "")
        # no hub inbox holds the channel here: the job keeps the message and tries again later
        with self.assertRaises(RetryableJobError):
            self.perform(job)

    def test_a_mail_fetched_twice_is_queued_once(self):
        raw = buyer_email("Oi, tudo bem?")
        self.fetch(raw)
        self.fetch(raw)
        self.assertEqual(len(self.delivery_jobs()), 1)
        self.fetch(buyer_email("Outra pergunta", message_id="<relay-2@marketplace.amazon.com.br>"))
        self.assertEqual(len(self.delivery_jobs()), 2)

    def test_mail_sent_to_the_mailbox_by_copy_or_delivered_to_reaches_the_channel(self):
        for headers in ({"Cc": MAILBOX}, {"Delivered-To": MAILBOX}):
            with self.subTest(headers=headers):
                raw = buyer_email(
                    "Oi", to="outro@relay.example.test", headers=headers, message_id=None
                )
                self.assertEqual(self.fetch(raw), self.channel.id)

    def test_what_is_not_a_buyer_message_is_never_answered(self):
        cases = {
            "auto_reply": buyer_email(
                "Estou de férias.", headers={"Auto-Submitted": "auto-replied"}
            ),
            "echo": buyer_email("Cópia", alias=MAILBOX, name="Loja"),
            "not_buyer": buyer_email("Promoção!", alias="vendas@spam.example.test"),
            "notification": buyer_email("Aviso", alias="donotreply@amazon.com.br", name=None),
            "bounce": buyer_email("Undeliverable", alias="postmaster@loja.example.test"),
        }
        for kind, raw in cases.items():
            with self.subTest(kind=kind):
                self.fetch(raw.replace(b"relay-1", kind.encode()))
                [job] = self.delivery_jobs()
                self.assertEqual(self.perform(job), f"skipped ({kind})")
                job.unlink()
        self.assertFalse(self.env["mcp.channel.amazon.thread"].search([]))

    def test_a_delivery_failure_report_stays_with_odoos_bounce_handling(self):
        report = (
            b"From: MAILER-DAEMON@relay.example.test\r\nTo: " + MAILBOX.encode() + b"\r\n"
            b"Subject: Undelivered Mail\r\nMessage-ID: <bounce-1@relay.example.test>\r\n"
            b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
            b"--b\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n--b--\r\n"
        )
        self.assertFalse(self.fetch(report))
        self.assertFalse(self.delivery_jobs())

    def test_mail_for_a_mailbox_no_channel_owns_is_refused_and_logged(self):
        raw = buyer_email("Oi", to="ninguem@outra-loja.example.test")
        with (
            self.assertLogs(AMAZON_LOGGER, "WARNING") as logs,
            self.assertRaisesRegex(ValueError, "No Amazon channel receives mail"),
        ):
            self.env["mail.thread"].message_process("mcp.channel", raw)
        self.assertIn("ninguem@outra-loja.example.test", logs.output[0])
        self.assertFalse(self.delivery_jobs())

    def test_an_archived_channel_receives_nothing(self):
        archived = self.make_amazon_channel(account_ref="arquivo@loja.example.test")
        archived.active = False
        with mute_logger(AMAZON_LOGGER), self.assertRaises(ValueError):
            self.env["mail.thread"].message_process(
                "mcp.channel", buyer_email("Oi", to="arquivo@loja.example.test")
            )

    # replies ----------------------------------------------------------------------------------
    def remember(self, raw):
        event = channel_amazon.parse_email(raw)
        self.env["mcp.channel.amazon.thread"]._remember(self.channel, event)
        return event

    def test_a_reply_goes_by_mail_from_the_authorised_address_in_the_buyers_thread(self):
        self.remember(
            buyer_email(
                "Quando chega?", headers={"References": "<older@marketplace.amazon.com.br>"}
            )
        )
        with self.mock_smtplib_connection():
            result = self.channel.send_reply(ORDER_ID, BUYER, "Olá Maria! Seu pedido saiu hoje.")
        [sent] = self.emails
        self.assertEqual(sent["smtp_to_list"], [ALIAS])
        [mail] = self.sent_mails()
        self.assertEqual(mail["From"], SENDER)
        self.assertEqual(mail["To"], ALIAS)
        self.assertEqual(mail["Subject"], f"Re: Pergunta sobre o pedido ({ORDER_ID})")
        self.assertEqual(mail["In-Reply-To"], RELAY_ID)
        # the folded header reads back with its fold's space
        self.assertEqual(
            mail["References"].split(), ["<older@marketplace.amazon.com.br>", RELAY_ID]
        )
        self.assertEqual(mail.get_content_type(), "text/plain", "no HTML for Amazon")
        self.assertEqual(mail.get_content().strip(), "Olá Maria! Seu pedido saiu hoje.")
        self.assertEqual(result, {"external_id": mail["Message-ID"]})
        self.assertTrue(self.channel.last_sent_at)

    def test_the_reply_follows_the_latest_mail_even_when_an_older_one_comes_late(self):
        later = buyer_email(
            "Segunda mensagem",
            subject=f"Outra dúvida ({ORDER_ID})",
            message_id="<relay-2@marketplace.amazon.com.br>",
        ).replace(b"10:00:00", b"11:00:00")
        self.remember(later)
        self.remember(buyer_email("Primeira mensagem"))
        with self.mock_smtplib_connection():
            self.channel.send_reply(ORDER_ID, BUYER, "Respondido.")
        [mail] = self.sent_mails()
        self.assertEqual(mail["In-Reply-To"], "<relay-2@marketplace.amazon.com.br>")
        self.assertEqual(mail["Subject"], f"Re: Outra dúvida ({ORDER_ID})")

    def test_a_reply_without_a_known_mail_names_the_order(self):
        with self.mock_smtplib_connection():
            self.channel.send_reply(ORDER_ID, BUYER, "Olá!")
        [mail] = self.sent_mails()
        self.assertEqual(mail["Subject"], f"Re: Order {ORDER_ID}")
        self.assertIsNone(mail["In-Reply-To"])

    def test_attachments_by_data_are_attached_and_links_listed(self):
        attachments = [
            {"name": "nota.pdf", "mimetype": "application/pdf", "data": "JVBERg=="},
            {"name": "foto.png", "url": "https://chatwoot.example.test/f/foto.png"},
        ]
        with self.mock_smtplib_connection():
            self.channel.send_reply(ORDER_ID, BUYER, "Segue a nota.", attachments)
        [mail] = self.sent_mails()
        [attached] = list(mail.iter_attachments())
        self.assertEqual(attached.get_filename(), "nota.pdf")
        body = mail.get_body(("plain",)).get_content()
        self.assertIn("foto.png: https://chatwoot.example.test/f/foto.png", body)

    def test_replies_amazon_would_refuse_are_refused_clearly(self):
        no_sender = self.make_amazon_channel(
            account_ref="semremetente@loja.example.test", amazon_sender_address=False
        )
        cases = [
            (self.channel, BUYER, "Veja <b>aqui</b>", "HTML"),
            (self.channel, BUYER, "Escreva para loja@example.test", "e-mail addresses"),
            (self.channel, {"id": "fulano@gmail.com"}, "Oi", "not an Amazon buyer alias"),
            (no_sender, BUYER, "Oi", "No authorised sender"),
        ]
        for channel, contact, text, reason in cases:
            with self.subTest(reason=reason), self.mock_smtplib_connection():
                with mute_logger(CHANNEL_LOGGER), self.assertRaises(ChannelSendError) as caught:
                    channel.send_reply(ORDER_ID, contact, text)
                self.assertIn(reason, caught.exception.reason)
                self.assertFalse(caught.exception.retryable)
                self.assertFalse(self.emails)

    def test_a_mail_server_that_fails_is_retried_later(self):
        with self.mock_smtplib_connection():
            failure = smtplib.SMTPDataError(451, b"try again later")
            with (
                patch.object(self.testing_smtp_session, "send_message", side_effect=failure),
                mute_logger("odoo.addons.base.models.ir_mail_server"),
                self.assertRaises(ChannelSendError) as caught,
            ):
                self.channel.send_reply(ORDER_ID, BUYER, "Olá!")
        self.assertTrue(caught.exception.retryable)
        self.assertIn("MailDeliveryException", caught.exception.reason)

    # SP-API tools -----------------------------------------------------------------------------
    def tools(self):
        server = self.channel.server_id
        server.action_discover()
        tools = {tool.remote_name: tool for tool in server.tool_ids}
        return server, tools

    def test_the_server_offers_the_messaging_tools(self):
        _server, tools = self.tools()
        self.assertEqual(set(tools), {channel_amazon.ACTIONS_TOOL, channel_amazon.SEND_TOOL})
        self.assertTrue(tools[channel_amazon.ACTIONS_TOOL].read_only)
        self.assertFalse(tools[channel_amazon.SEND_TOOL].read_only)
        self.assertFalse(tools[channel_amazon.SEND_TOOL].enabled, "sending waits for the admin")

    def test_the_actions_of_an_order_and_the_buyers_language(self):
        _server, _tools = self.tools()
        result = self.env["mcp.integrator"].call_tool(
            self.tenant, channel_amazon.ACTIONS_TOOL, {"order_id": ORDER_ID}, cache=False
        )
        self.assertEqual(
            result,
            {
                "order_id": ORDER_ID,
                "message_types": [
                    "confirmDeliveryDetails",
                    "unexpectedProblem",
                    "confirmOrderDetails",
                ],
                "buyer_locale": "pt-BR",
            },
        )
        token_calls = [r for r in self.amazon.requests if r.path == "/auth/o2/token"]
        self.assertEqual(len(token_calls), 1, "the LWA token was renewed through the credential")

    def test_an_allowed_message_is_sent_and_another_type_is_refused(self):
        server, tools = self.tools()
        send = tools[channel_amazon.SEND_TOOL]
        text = "Olá! Houve um atraso na transportadora; seu pedido chega até 10/01."
        arguments = {"order_id": ORDER_ID, "message_type": "unexpectedProblem", "text": text}
        self.assertTrue(server._mcp_run_amazon(send, arguments)["sent"])
        self.assertEqual(
            self.amazon.messages,
            [{"order_id": ORDER_ID, "type": "unexpectedProblem", "body": {"text": text}}],
        )
        refused = server._mcp_run_amazon(
            send, {**arguments, "message_type": "confirmServiceDetails"}
        )
        self.assertTrue(refused["isError"])
        self.assertIn("does not allow a confirmServiceDetails", refused["content"][0]["text"])
        self.assertEqual(len(self.amazon.messages), 1)

    def test_rate_limits_are_transient_and_a_missing_role_is_permanent(self):
        server, tools = self.tools()
        actions = tools[channel_amazon.ACTIONS_TOOL]
        arguments = {"order_id": ORDER_ID}
        server._mcp_run_amazon(actions, arguments)  # the token is renewed once
        errors = [{"code": "QuotaExceeded", "message": "You exceeded your quota."}]
        self.amazon.fail_next(429, headers={"x-amzn-RateLimit-Limit": "0.5"}, errors=errors)
        with self.assertRaisesRegex(tool_calls.TransientToolError, "retry after 2 s"):
            server._mcp_run_amazon(actions, arguments)
        self.amazon.fail_next(503, errors=[{"code": "ServiceUnavailable", "message": "down"}])
        with self.assertRaises(tool_calls.ToolUnavailable):
            server._mcp_run_amazon(actions, arguments)
        denied = [{"code": "Unauthorized", "message": "Access to requested resource is denied."}]
        self.amazon.fail_next(403, errors=denied)
        with self.assertRaisesRegex(tool_calls.PermanentToolError, "Buyer Communication role"):
            server._mcp_run_amazon(actions, arguments)

    def test_a_refused_access_token_is_renewed_once(self):
        server, tools = self.tools()
        actions = tools[channel_amazon.ACTIONS_TOOL]
        server._mcp_run_amazon(actions, {"order_id": ORDER_ID})
        self.amazon.expire(self.credential.sudo().access_token)
        self.assertEqual(
            server._mcp_run_amazon(actions, {"order_id": ORDER_ID})["buyer_locale"], "pt-BR"
        )
        token_calls = [r for r in self.amazon.requests if r.path == "/auth/o2/token"]
        self.assertEqual(len(token_calls), 2)

    def test_a_revoked_grant_raises_the_reauthorization_alert(self):
        server, tools = self.tools()
        refresh_token = self.revoke_grant()
        with (
            mute_logger(*QUIET, CREDENTIAL_LOGGER),
            self.assertRaisesRegex(tool_calls.PermanentToolError, "authorize"),
        ):
            server._mcp_run_amazon(tools[channel_amazon.ACTIONS_TOOL], {"order_id": ORDER_ID})
        self.assertTrue(self.credential.reauthorization_needed)
        self.assertTrue(self.channel.reauthorization_needed)
        self.assertTrue(self.channel.activity_ids, "a to-do for the managers")
        self.assertNotIn(refresh_token, self.channel.reauthorization_reason)

    def test_wrong_app_credentials_ask_for_a_new_authorization(self):
        self.credential.secret_input = "not-the-secret"
        with mute_logger(*QUIET, CREDENTIAL_LOGGER):
            action = self.channel.action_test()
        self.assertEqual(action["params"]["type"], "danger")
        self.assertIn("invalid_client", action["params"]["message"])
        self.assertTrue(self.credential.reauthorization_needed)
        self.assertTrue(self.channel.reauthorization_needed)
        self.assertNotIn("not-the-secret", self.credential.last_refresh_error)

    # the Test button --------------------------------------------------------------------------
    def test_the_test_button_renews_the_token_and_reads_the_marketplaces(self):
        action = self.channel.action_test()
        self.assertIn("Amazon.com.br (A2Q3Y263D00KWC)", action["params"]["message"])
        paths = [request.path for request in self.amazon.requests]
        self.assertEqual(paths, ["/auth/o2/token", channel_amazon.PARTICIPATIONS_PATH])
        self.channel.server_id.action_check_health()
        self.assertEqual(self.channel.server_id.health_state, "up")

    def test_the_test_button_says_when_the_marketplace_is_not_the_sellers(self):
        self.channel.amazon_marketplace_id = "ATVPDKIKX0DER"
        with self.assertRaisesRegex(UserError, "does not sell in marketplace ATVPDKIKX0DER"):
            self.channel.action_test()

    def test_the_test_button_reports_a_revoked_grant(self):
        self.revoke_grant()
        with mute_logger(*QUIET, CREDENTIAL_LOGGER):
            action = self.channel.action_test()
        self.assertEqual(action["params"]["type"], "danger")
        self.assertIn("authorize the app again", action["params"]["message"])
        self.assertTrue(self.channel.reauthorization_needed)
        self.assertTrue(self.channel.activity_ids, "a to-do for the managers")
