# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Chatwoot as the hub of another channel, end to end: a custom channel (signed webhooks)
posts a customer's message to Odoo, it lands in the channel's Chatwoot API inbox, the AI and
the agents answer there, and the answers go back to the channel's reply URL."""

import json
import time
import uuid
from datetime import timedelta

from odoo import fields
from odoo.tests import tagged
from odoo.tools import mute_logger

from odoo.addons.mcp_connectors.services import channels
from odoo.addons.mcp_connectors.tests.channel_receiver import ChannelReceiver
from odoo.addons.mcp_integrator.services import signing

from .common import API_INBOX, SITE_INBOX, ChatwootBridgeCase

#: 22 digits: more than Chatwoot's integers (and JavaScript's) hold
THREAD = "2000004567890123456789"


@tagged("post_install", "-at_install")
class TestHub(ChatwootBridgeCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.receiver = ChannelReceiver()
        cls.addClassCleanup(cls.receiver.stop)
        cls.channel_secret = f"chan-{uuid.uuid4().hex}"
        cls.channel = cls.env["mcp.channel"].create(
            {
                "name": "Loja app",
                "tenant_id": cls.tenant.id,
                "channel_type": "webhook",
                "signing_credential_id": cls.credential(
                    cls.tenant, "hmac", cls.channel_secret, "channel"
                ).id,
                "reply_url": cls.receiver.url,
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
        self.receiver.requests.clear()

    def channel_posts(self, text, message_id=None, thread=THREAD, contact=None, attachments=None):
        """The custom channel's app posts a customer's message to Odoo."""
        payload = {
            "thread_id": thread,
            "message_id": message_id or uuid.uuid4().hex,
            "contact": contact or {"id": "cust-77", "name": "Joana", "phone": "+5511988887777"},
            "text": text,
            "metadata": {"order": "2000009876543"},
        }
        if attachments:
            payload["attachments"] = attachments
        body = json.dumps(payload).encode()
        ts = int(time.time())
        headers = {
            "Content-Type": "application/json",
            channels.TIMESTAMP_HEADER: str(ts),
            channels.SIGNATURE_HEADER: signing.sign(self.channel_secret, ts, body),
        }
        with mute_logger(
            "odoo.addons.mcp_connectors.controllers.channel_webhook",
            "odoo.addons.mcp_connectors.models.mcp_channel",
        ):
            return self.url_open(
                f"/mcp/channel/{self.channel.inbound_token}", data=body, headers=headers
            )

    def hub_conversation(self, thread=THREAD):
        return self.env["chatwoot.conversation"].search(
            [("channel_connector_id", "=", self.channel.id), ("external_thread_id", "=", thread)]
        )

    def replies_received(self):
        """What the channel's app received, each signature checked."""
        return [
            request.verified_json(self.channel_secret, signing.verify)
            for request in self.receiver.requests
        ]

    def test_round_trip_channel_to_chatwoot_to_ai_and_back(self):
        response = self.channel_posts("Meu pedido já foi enviado?", message_id="ml-1")
        self.assertEqual(response.status_code, 200, response.text)
        [incoming] = self.env["chatwoot.hub.message"].search([("direction", "=", "in")])
        self.assertEqual((incoming.state, incoming.external_thread_id), ("pending", THREAD))
        self.assertFalse(self.chatwoot.requests, "the app is answered before Chatwoot is called")

        self.run_jobs()
        conversation = self.hub_conversation()
        self.assertEqual(incoming.state, "done")
        chatwoot = self.chatwoot.conversation(conversation.conversation_id)
        self.assertEqual(chatwoot["inbox_id"], API_INBOX)
        self.assertEqual(chatwoot["additional_attributes"]["external_thread_id"], THREAD)
        self.assertEqual(chatwoot["additional_attributes"]["mcp_order"], "2000009876543")
        [message] = chatwoot["messages"]
        self.assertEqual(
            (message["message_type"], message["content"], message["source_id"]),
            ("incoming", "Meu pedido já foi enviado?", "ml-1"),
        )
        contact = next(iter(self.chatwoot.contacts.values()))
        self.assertEqual(contact["identifier"], f"webhook:{self.channel.id}:cust-77")
        self.assertEqual(contact["phone_number"], "+5511988887777")

        # Chatwoot tells the Agent Bot (and the API inbox): the AI answers
        self.deliver_outbox()
        self.assertEqual(len(self.answers_of(conversation.conversation_id)), 1)
        self.answered_with("Sim, saiu hoje pela transportadora.")
        self.run_jobs()
        [run] = conversation.run_ids
        self.assertEqual(run.channel, "webhook")
        self.assertEqual(
            [m["content"] for m in self.chatwoot.replies(conversation.conversation_id)],
            ["Sim, saiu hoje pela transportadora."],
        )
        [reply] = self.replies_received()
        self.assertEqual(reply["thread_id"], THREAD)
        self.assertEqual(reply["text"], "Sim, saiu hoje pela transportadora.")
        self.assertEqual(reply["contact"]["id"], "cust-77")
        # the delivery is reported on the Chatwoot message
        bot_reply = self.chatwoot.replies(conversation.conversation_id)[0]
        self.assertEqual(bot_reply["status"], "delivered")
        # the echoes of all this change nothing: no second run, no second send
        self.deliver_outbox()
        self.run_jobs()
        self.assertEqual(len(conversation.run_ids), 1)
        self.assertEqual(len(self.receiver.requests), 1)

    def test_an_agents_reply_in_the_api_inbox_goes_back_to_the_channel(self):
        self.channel_posts("Oi")
        self.run_jobs()
        conversation = self.hub_conversation()
        self.chatwoot.outbox.clear()
        self.chatwoot.agent_reply(conversation.conversation_id, "Aqui é a Ana, posso ajudar?")
        self.chatwoot.agent_reply(conversation.conversation_id, "nota interna", private=True)
        self.deliver_outbox()
        self.run_jobs()
        self.assertEqual(
            [reply["text"] for reply in self.replies_received()], ["Aqui é a Ana, posso ajudar?"]
        )
        self.assertTrue(conversation.ai_silenced)

    def test_a_message_received_twice_is_filed_once(self):
        for _ in range(3):
            self.assertEqual(self.channel_posts("Oi", message_id="ml-dup").status_code, 200)
        self.run_jobs()
        conversation = self.hub_conversation()
        self.assertEqual(len(self.chatwoot.messages(conversation.conversation_id)), 1)
        self.assertEqual(
            len(self.env["chatwoot.hub.message"].search([("direction", "=", "in")])), 1
        )

    def test_one_thread_one_conversation(self):
        self.channel_posts("Oi")
        self.channel_posts("Tudo bem?")
        self.channel_posts("Outro pedido", thread="pedido-2")
        self.run_jobs()
        first, second = self.hub_conversation(), self.hub_conversation("pedido-2")
        self.assertNotEqual(first.conversation_id, second.conversation_id)
        self.assertEqual(len(self.chatwoot.messages(first.conversation_id)), 2)
        self.assertEqual(len(self.chatwoot.contacts), 1, "one customer, one contact")

    def test_a_customer_chatwoot_already_knows_by_phone_keeps_one_contact(self):
        # the same person wrote before in one of Chatwoot's own inboxes (its WhatsApp, say):
        # Chatwoot keeps phones unique, so the hub files the message under that contact
        phone = "+5511977776666"
        with self.account._client() as client:
            known = client.create_contact(SITE_INBOX, name="Joana Silva", phone_number=phone)
        # the fake's contacts outlive the test: the other tests count theirs
        self.addCleanup(self.chatwoot.contacts.pop, known["contact"]["id"])
        contacts = len(self.chatwoot.contacts)
        self.channel_posts(
            "Oi, sou eu de novo",
            thread="pedido-known",
            contact={"id": "cust-88", "name": "Joana", "phone": phone},
        )
        self.run_jobs()
        conversation = self.hub_conversation("pedido-known")
        self.assertTrue(conversation, "the message reached Chatwoot")
        chatwoot = self.chatwoot.conversation(conversation.conversation_id)
        self.assertEqual(chatwoot["contact_id"], known["contact"]["id"])
        self.assertEqual(len(self.chatwoot.contacts), contacts, "no second contact")

    def test_the_channel_notes_when_it_last_received_at_most_once_a_minute(self):
        channel = self.channel.sudo()
        half_a_minute_ago = fields.Datetime.now() - timedelta(seconds=30)
        channel.last_received_at = half_a_minute_ago
        self.channel_posts("Oi")
        channel.invalidate_recordset()
        self.assertEqual(channel.last_received_at, half_a_minute_ago, "no write per message")
        channel.last_received_at = fields.Datetime.now() - timedelta(minutes=2)
        self.channel_posts("Tudo bem?")
        channel.invalidate_recordset()
        self.assertGreater(channel.last_received_at, half_a_minute_ago)

    def test_attachments_by_data_are_uploaded(self):
        self.channel_posts(
            "Veja a foto",
            attachments=[
                {"name": "foto.png", "mimetype": "image/png", "data": "iVBORw0KGgo="},
                {"name": "nota.pdf", "url": "https://files.example.com/nota.pdf"},
            ],
        )
        self.run_jobs()
        [message] = self.chatwoot.messages(self.hub_conversation().conversation_id)
        self.assertEqual(len(message["attachments"]), 1)
        self.assertIn("nota.pdf: https://files.example.com/nota.pdf", message["content"])

    def test_chatwoot_down_keeps_the_customers_message_until_it_is_back(self):
        self.chatwoot.go_down()
        self.assertEqual(self.channel_posts("Oi, alguém aí?").status_code, 200)
        waiting = self.run_jobs()
        [incoming] = self.env["chatwoot.hub.message"].search([("direction", "=", "in")])
        self.assertEqual(incoming.state, "pending")
        self.assertEqual(len(waiting), 1)
        self.chatwoot.come_back()
        self.run_jobs_again(waiting)
        self.assertEqual(incoming.state, "done")
        self.assertEqual(len(self.chatwoot.messages(self.hub_conversation().conversation_id)), 1)

    def run_jobs_again(self, jobs):
        jobs.write({"eta": False})
        self.run_jobs()

    def test_the_channel_failing_is_retried_then_reported_on_the_chatwoot_message(self):
        self.channel_posts("Oi")
        self.run_jobs()
        conversation = self.hub_conversation()
        self.receiver.answer(503)
        message = self.chatwoot.agent_reply(conversation.conversation_id, "Olá!")
        self.deliver_outbox()
        waiting = self.run_jobs()
        [outgoing] = self.env["chatwoot.hub.message"].search([("direction", "=", "out")])
        self.assertEqual(outgoing.state, "pending")
        self.receiver.answer(422, {"error": "thread closed"})
        self.run_jobs_again(waiting)
        self.assertEqual(outgoing.state, "failed")
        status = next(
            m
            for m in self.chatwoot.messages(conversation.conversation_id)
            if m["id"] == message["id"]
        )
        self.assertEqual(status["status"], "failed")
        self.assertTrue(status["external_error"])

    def test_a_channel_without_a_mapped_inbox_is_refused_with_503(self):
        self.inbox(API_INBOX).channel_connector_id = False
        response = self.channel_posts("Oi")
        self.assertEqual(response.status_code, 503)
        self.assertIn("No Chatwoot inbox", response.json()["error"])
        self.assertFalse(self.env["chatwoot.hub.message"].search([]))
