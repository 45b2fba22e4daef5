# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Mercado Livre through the hub, end to end: a notification reaches the channel's callback
URL, the job reads the question or the post-sale message on a fake Mercado Livre, the message
lands in the channel's Chatwoot API inbox (fake Chatwoot), an agent answers there, and the
answer goes back to Mercado Livre (``POST /answers``, or the pack's messages to the messaging
agent), its delivery reported on the Chatwoot message."""

import json
import uuid
from datetime import timedelta

from odoo import fields
from odoo.tests import tagged
from odoo.tools import mute_logger

from odoo.addons.mcp_connectors.tests.fake_mercadolivre import FakeMercadoLivre, fixture

from .common import API_INBOX, ChatwootBridgeCase

APP_ID = "2069392825111111"
SELLER = "123456789"
BUYER = "987654321"
AGENT = "3037675074"
QUESTION_ID = "5036111111"
PACK_ID = "2000000089077943"
QUIET = (
    "odoo.addons.mcp_connectors.controllers.channel_webhook",
    "odoo.addons.mcp_connectors.models.mcp_channel",
    "odoo.addons.mcp_connectors.models.mcp_channel_mercadolivre",
)


@tagged("post_install", "-at_install")
class TestChannelsMercadoLivre(ChatwootBridgeCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        token = fixture("mercadolivre_oauth_token_response.json")
        credential = cls.env["mcp.credential"].create(
            {
                "name": "Mercado Livre app",
                "kind": "oauth2",
                "oauth_provider": "mercadolivre",
                "tenant_id": cls.tenant.id,
                "client_id": APP_ID,
                "secret_input": "fake-client-secret",
                "access_token_input": token["access_token"],
                "refresh_token_input": token["refresh_token"],
                "expires_at": fields.Datetime.now() + timedelta(hours=5),
            }
        )
        cls.channel = cls.env["mcp.channel"].create(
            {
                "name": "Loja no Mercado Livre",
                "tenant_id": cls.tenant.id,
                "channel_type": "mercadolivre",
                "access_credential_id": credential.id,
                "account_ref": SELLER,
            }
        )
        cls.inbox(API_INBOX).channel_connector_id = cls.channel
        # the API inbox delivers its messages to Odoo too, signed with a secret of its own
        cls.inbox_secret = f"inbox-{uuid.uuid4().hex}"
        cls.account.signing_credential_ids = [
            (4, cls.credential(cls.tenant, "hmac", cls.inbox_secret, "api inbox").id)
        ]
        cls.chatwoot.inboxes[API_INBOX].update(webhook_url=cls.webhook_url, secret=cls.inbox_secret)

    def setUp(self):
        super().setUp()
        self.ml = FakeMercadoLivre(app_id=APP_ID)
        self.addCleanup(self.ml.stop)
        self.channel.api_base_url = self.ml.url

    def notify(self, payload):
        """Mercado Livre posts a notification to the channel's callback URL."""
        with mute_logger(*QUIET):
            response = self.url_open(
                f"/mcp/channel/{self.channel.inbound_token}",
                data=json.dumps(payload).encode(),
                headers={"Content-Type": "application/json"},
                timeout=30,
            )
        self.assertEqual(response.status_code, 200, response.text)
        return response

    def run_all(self):
        with mute_logger(*QUIET):
            return self.run_jobs()

    def hub_conversation(self, thread):
        return self.env["chatwoot.conversation"].search(
            [("channel_connector_id", "=", self.channel.id), ("external_thread_id", "=", thread)]
        )

    def agent_answers(self, thread, text):
        """An agent replies in the thread's Chatwoot conversation; the reply goes back."""
        conversation = self.hub_conversation(thread)
        self.chatwoot.outbox.clear()
        message = self.chatwoot.agent_reply(conversation.conversation_id, text)
        self.deliver_outbox()
        self.run_all()
        return next(
            m
            for m in self.chatwoot.messages(conversation.conversation_id)
            if m["id"] == message["id"]
        )

    def test_a_question_goes_to_chatwoot_and_its_answer_back_to_mercado_livre(self):
        self.notify(fixture("mercadolivre_notification_questions.json"))
        self.assertFalse(self.ml.requests, "Mercado Livre is answered before it is read")
        self.run_all()
        (read,) = self.ml.requests_to("GET", f"/questions/{QUESTION_ID}")
        self.assertEqual(read.headers["Authorization"], f"Bearer {self.ml.access_token}")
        conversation = self.hub_conversation(f"question:{QUESTION_ID}")
        chatwoot = self.chatwoot.conversation(conversation.conversation_id)
        self.assertEqual(chatwoot["inbox_id"], API_INBOX)
        self.assertEqual(chatwoot["additional_attributes"]["mcp_public"], "True")
        [message] = chatwoot["messages"]
        question = self.ml.questions[QUESTION_ID]
        self.assertEqual(
            (message["message_type"], message["content"], message["source_id"]),
            ("incoming", question["text"], QUESTION_ID),
        )
        contact = next(iter(self.chatwoot.contacts.values()))
        self.assertEqual(contact["identifier"], f"mercadolivre:{self.channel.id}:{BUYER}")

        status = self.agent_answers(f"question:{QUESTION_ID}", "Sim, temos em estoque.")
        (answer,) = self.ml.requests_to("POST", "/answers")
        self.assertEqual(
            answer.json(), {"question_id": int(QUESTION_ID), "text": "Sim, temos em estoque."}
        )
        self.assertEqual(status["status"], "delivered")
        self.assertEqual(self.ml.questions[QUESTION_ID]["status"], "ANSWERED")

    def test_a_second_answer_to_a_question_fails_visibly_in_chatwoot(self):
        self.notify(fixture("mercadolivre_notification_questions.json"))
        self.run_all()
        self.agent_answers(f"question:{QUESTION_ID}", "Sim.")
        status = self.agent_answers(f"question:{QUESTION_ID}", "Correção: não.")
        self.assertEqual(status["status"], "failed")
        self.assertIn("already answered", status["external_error"])
        self.assertIn("public", status["external_error"])
        self.assertEqual(len(self.ml.requests_to("POST", "/answers")), 1)
        [failed] = self.env["chatwoot.hub.message"].search(
            [("direction", "=", "out"), ("state", "=", "failed")]
        )
        self.assertIn("already answered", failed.error)

    def test_a_post_sale_message_and_its_reply_through_the_messaging_agent(self):
        self.notify(fixture("mercadolivre_notification_messages.json"))
        self.run_all()
        conversation = self.hub_conversation(f"pack:{PACK_ID}")
        [message] = self.chatwoot.messages(conversation.conversation_id)
        self.assertEqual(message["content"], "Bom dia, quando envia?")
        contact = next(iter(self.chatwoot.contacts.values()))
        # the agent hides the buyer: the buyer comes from the order
        self.assertEqual(contact["identifier"], f"mercadolivre:{self.channel.id}:{BUYER}")

        text = "Seu pedido foi separado e será postado hoje até as 17h. " * 8
        status = self.agent_answers(f"pack:{PACK_ID}", text)
        posts = self.ml.requests_to("POST", f"/messages/packs/{PACK_ID}/sellers/{SELLER}")
        self.assertEqual(len(posts), 2)
        for post in posts:
            self.assertEqual(post.query, {"tag": "post_sale"})
            self.assertEqual(post.json()["from"], {"user_id": int(SELLER)})
            self.assertEqual(post.json()["to"], {"user_id": int(AGENT)})
        self.assertEqual(" ".join(post.json()["text"] for post in posts), text.strip())
        self.assertEqual(status["status"], "delivered")

    def test_duplicated_and_out_of_order_notifications_file_each_message_once(self):
        first = self.ml.buyer_message(PACK_ID, "Pode enviar pela transportadora?")
        second = self.ml.buyer_message(PACK_ID, "E a nota fiscal?")
        # the first message's notification is lost; the second's comes three times, twice
        # as retries of one notification and once again as a new one
        notification = self.ml.notification("messages", second, actions=["created"])
        self.notify(notification)
        self.notify(dict(notification, attempts=2))
        self.notify(dict(notification, _id=str(uuid.uuid4()), received="2026-03-01T12:05:00Z"))
        self.run_all()
        conversation = self.hub_conversation(f"pack:{PACK_ID}")
        self.assertEqual(
            [m["content"] for m in self.chatwoot.messages(conversation.conversation_id)],
            ["Bom dia, quando envia?", "Pode enviar pela transportadora?", "E a nota fiscal?"],
        )
        incoming = self.env["chatwoot.hub.message"].search([("direction", "=", "in")])
        self.assertEqual(len(incoming), 3)
        self.assertIn(first, incoming.mapped("external_message_id"))
        # a notification for the question after it was answered files nothing
        self.ml.questions[QUESTION_ID]["status"] = "ANSWERED"
        self.notify(fixture("mercadolivre_notification_questions.json"))
        self.run_all()
        self.assertFalse(self.hub_conversation(f"question:{QUESTION_ID}"))

    def test_mercado_livre_down_keeps_the_notification_until_it_is_back(self):
        self.ml.inject(503, {"message": "unavailable", "error": "internal_error"})
        self.notify(fixture("mercadolivre_notification_questions.json"))
        waiting = self.run_all()
        self.assertEqual(len(waiting), 1)
        self.assertFalse(self.env["chatwoot.hub.message"].search([]))
        waiting.write({"eta": False})
        self.run_all()
        conversation = self.hub_conversation(f"question:{QUESTION_ID}")
        self.assertEqual(len(self.chatwoot.messages(conversation.conversation_id)), 1)
