# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Amazon end to end: a buyer's mail relayed by Amazon is read by Odoo's mail gateway (as the
incoming mail server does), lands in the channel's Chatwoot API inbox, an agent answers in
Chatwoot, and the answer leaves by e-mail from the authorised address to the buyer's alias
(Odoo's mailer; its SMTP session is the test double)."""

import email
from email import policy

from odoo.tests import tagged
from odoo.tools import mute_logger

from odoo.addons.base.tests.common import MockSmtplibCase
from odoo.addons.mcp_connectors.tests.fake_amazon import ORDER_ID, buyer_email

from .common import API_INBOX, ChatwootBridgeCase

MAILBOX = "atendimento@loja.example.test"
SENDER = f"Loja Exemplo <{MAILBOX}>"
ALIAS = "k3x9z2mq7w1b8rt@marketplace.amazon.com.br"
RELAY_ID = "<relay-1@marketplace.amazon.com.br>"
QUIET = (
    "odoo.addons.mcp_connectors.models.mcp_channel",
    "odoo.addons.mcp_connectors.models.mcp_channel_amazon",
    "odoo.addons.mail.models.mail_thread",
)


@tagged("post_install", "-at_install")
class TestAmazonEndToEnd(ChatwootBridgeCase, MockSmtplibCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.channel = cls.env["mcp.channel"].create(
            {
                "name": "Amazon BR",
                "tenant_id": cls.tenant.id,
                "channel_type": "amazon",
                "account_ref": MAILBOX,
                "amazon_sender_address": SENDER,
            }
        )
        cls.inbox(API_INBOX).channel_connector_id = cls.channel

    def buyer_writes(self, text, **kwargs):
        """The seller mailbox receives a buyer's relayed mail; the incoming mail server hands
        it to Odoo's gateway."""
        with mute_logger(*QUIET):
            return self.env["mail.thread"].message_process(
                "mcp.channel", buyer_email(text, **kwargs)
            )

    def hub_conversation(self, thread=ORDER_ID):
        return self.env["chatwoot.conversation"].search(
            [("channel_connector_id", "=", self.channel.id), ("external_thread_id", "=", thread)]
        )

    def agent_answers(self, text):
        """An agent answers in the conversation's Chatwoot API inbox; the reply's jobs run with
        the mailer's SMTP session recorded. The Chatwoot message."""
        conversation = self.hub_conversation()
        self.chatwoot.outbox.clear()
        message = self.chatwoot.agent_reply(conversation.conversation_id, text)
        self.deliver_outbox()
        with self.mock_smtplib_connection():
            self.run_jobs()
        return next(
            item
            for item in self.chatwoot.messages(conversation.conversation_id)
            if item["id"] == message["id"]
        )

    def test_buyer_mail_to_chatwoot_and_the_agents_reply_by_mail(self):
        self.assertEqual(
            self.buyer_writes("Meu pedido ainda não chegou. Podem ver?"), self.channel.id
        )
        self.assertFalse(self.chatwoot.requests, "the gateway only queues the mail")
        self.run_jobs()
        conversation = self.hub_conversation()
        chatwoot = self.chatwoot.conversation(conversation.conversation_id)
        self.assertEqual(chatwoot["inbox_id"], API_INBOX)
        self.assertEqual(chatwoot["additional_attributes"]["external_thread_id"], ORDER_ID)
        [message] = chatwoot["messages"]
        self.assertEqual(
            (message["message_type"], message["content"], message["source_id"]),
            ("incoming", "Meu pedido ainda não chegou. Podem ver?", RELAY_ID),
        )
        contact = next(iter(self.chatwoot.contacts.values()))
        self.assertEqual(contact["identifier"], f"amazon:{self.channel.id}:{ALIAS}")
        self.assertEqual(contact["email"], ALIAS)
        self.assertEqual(contact["name"], "Maria Silva")

        status = self.agent_answers("Olá Maria, seu pedido sai hoje pela transportadora.")
        [sent] = self.emails
        self.assertEqual(sent["smtp_to_list"], [ALIAS])
        mail = email.message_from_string(sent["message"], policy=policy.SMTP)
        self.assertEqual(mail["From"], SENDER)
        self.assertEqual(mail["To"], ALIAS)
        self.assertEqual(mail["Subject"], f"Re: Pergunta sobre o pedido ({ORDER_ID})")
        self.assertEqual(mail["In-Reply-To"], RELAY_ID)
        self.assertEqual(
            mail.get_content().strip(), "Olá Maria, seu pedido sai hoje pela transportadora."
        )
        self.assertEqual(status["status"], "delivered")
        [outgoing] = self.env["chatwoot.hub.message"].search([("direction", "=", "out")])
        self.assertEqual(outgoing.state, "done")

    def test_a_mail_fetched_twice_is_filed_once(self):
        for _ in range(2):
            self.buyer_writes("Oi, tem nota fiscal?")
            self.run_jobs()
        conversation = self.hub_conversation()
        self.assertEqual(len(self.chatwoot.messages(conversation.conversation_id)), 1)
        self.assertEqual(
            len(self.env["chatwoot.hub.message"].search([("direction", "=", "in")])), 1
        )

    def test_an_auto_reply_of_the_buyers_mailbox_reaches_nobody(self):
        self.buyer_writes("Estou fora do escritório.", headers={"Auto-Submitted": "auto-replied"})
        self.run_jobs()
        self.assertFalse(self.env["chatwoot.hub.message"].search([]))
        self.assertFalse(self.chatwoot.requests)

    def test_a_reply_amazon_would_refuse_fails_visibly_in_chatwoot(self):
        self.buyer_writes("Qual o e-mail da loja?")
        self.run_jobs()
        status = self.agent_answers("Escreva para vendas@loja.example.test")
        self.assertFalse(self.emails)
        self.assertEqual(status["status"], "failed")
        self.assertIn("e-mail addresses", status["external_error"])
        [outgoing] = self.env["chatwoot.hub.message"].search([("direction", "=", "out")])
        self.assertEqual(outgoing.state, "failed")
