# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Shopee through Chatwoot, end to end: a buyer's webchat push (code 10, signed with the live
push partner key) reaches Odoo, lands in the channel's Chatwoot API inbox, an agent answers in
Chatwoot, and the answer goes back as a signed ``send_message`` to the buyer on a fake Shopee."""

import json
from datetime import timedelta
from pathlib import Path

from odoo import fields
from odoo.tests import tagged
from odoo.tools import mute_logger

from odoo.addons.mcp_connectors.services import channel_shopee as shopee
from odoo.addons.mcp_connectors.tests.fake_shopee import SHOP_ID, FakeShopee

from .common import API_INBOX, ChatwootBridgeCase

DATA = Path(shopee.__file__).resolve().parent.parent / "tests" / "data" / "channels"
RAW_PUSH = (DATA / "shopee_push_webchat_code10.raw_body.txt").read_bytes()
PUSH_KEY = "live-push-key-e2e"
BUYER_ID = 165105353
CONVERSATION = "709122092476686867"


@tagged("post_install", "-at_install")
class TestShopeeThroughChatwoot(ChatwootBridgeCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.shopee = FakeShopee()
        cls.addClassCleanup(cls.shopee.stop)
        access_token, refresh_token = cls.shopee.issue_tokens()
        cls.channel = cls.env["mcp.channel"].create(
            {
                "name": "Loja Shopee",
                "tenant_id": cls.tenant.id,
                "channel_type": "shopee",
                "account_ref": str(SHOP_ID),
                "api_base_url": cls.shopee.url,
                "signing_credential_id": cls.credential(
                    cls.tenant, "hmac", PUSH_KEY, "shopee push"
                ).id,
                "access_credential_id": cls.env["mcp.credential"]
                .create(
                    {
                        "name": "Shopee shop",
                        "kind": "oauth2",
                        "oauth_provider": "shopee",
                        "tenant_id": cls.tenant.id,
                        "client_id": str(cls.shopee.partner_id),
                        "secret_input": cls.shopee.partner_key,
                        "access_token_input": access_token,
                        "refresh_token_input": refresh_token,
                        "expires_at": fields.Datetime.now() + timedelta(hours=4),
                    }
                )
                .id,
            }
        )
        cls.inbox(API_INBOX).channel_connector_id = cls.channel

    def setUp(self):
        super().setUp()
        self.shopee.requests.clear()
        self.shopee.messages.clear()

    def shopee_pushes(self, body):
        """Shopee posts ``body`` (bytes) to the channel's push URL, signed over the URL."""
        signature = shopee.push_signature(PUSH_KEY, self.channel.inbound_url, body)
        with mute_logger("odoo.addons.mcp_connectors.controllers.channel_webhook"):
            return self.url_open(
                f"/mcp/channel/{self.channel.inbound_token}",
                data=body,
                headers={"Content-Type": "application/json", "Authorization": signature},
            )

    def push_of(self, message_id, text):
        payload = json.loads(RAW_PUSH)
        payload["data"]["content"].update(message_id=message_id, content={"text": text})
        return json.dumps(payload, ensure_ascii=False).encode()

    def hub_conversation(self):
        return self.env["chatwoot.conversation"].search(
            [
                ("channel_connector_id", "=", self.channel.id),
                ("external_thread_id", "=", CONVERSATION),
            ]
        )

    def test_buyer_to_chatwoot_to_agent_and_back_to_shopee(self):
        for _retry in range(2):  # Shopee retries a push it thinks was lost
            response = self.shopee_pushes(RAW_PUSH)
            self.assertEqual((response.status_code, response.content), (200, b""))
        self.assertFalse(self.chatwoot.requests, "Shopee is answered before Chatwoot is called")
        self.run_jobs()
        conversation = self.hub_conversation()
        chatwoot = self.chatwoot.conversation(conversation.conversation_id)
        self.assertEqual(chatwoot["inbox_id"], API_INBOX)
        [message] = chatwoot["messages"]
        self.assertEqual(
            (message["message_type"], message["content"], message["source_id"]),
            ("incoming", "Olá, tem pronta entrega?", "2302748948493123953"),
        )
        contact = next(iter(self.chatwoot.contacts.values()))
        self.assertEqual(contact["identifier"], f"shopee:{self.channel.id}:{BUYER_ID}")
        self.assertEqual(contact["name"], "comprador_teste")

        self.chatwoot.outbox.clear()
        self.chatwoot.agent_reply(conversation.conversation_id, "Temos, envio em 24h.")
        self.deliver_outbox()
        self.run_jobs()
        self.assertEqual(
            self.shopee.messages,
            [
                {
                    "to_id": BUYER_ID,
                    "message_type": "text",
                    "content": {"text": "Temos, envio em 24h."},
                }
            ],
        )
        [send] = [r for r in self.shopee.requests if r.path == shopee.SEND_MESSAGE_PATH]
        self.assertEqual(send.query["shop_id"], str(SHOP_ID))
        self.assertTrue(send.query["sign"])
        [reply] = self.chatwoot.replies(conversation.conversation_id)
        self.assertEqual(reply["status"], "delivered")

    def test_out_of_order_and_duplicated_pushes_file_each_message_once(self):
        second, first = self.push_of("m-2", "Segunda"), self.push_of("m-1", "Primeira")
        for body in (second, first, second):
            self.assertEqual(self.shopee_pushes(body).status_code, 200)
        self.run_jobs()
        self.assertEqual(
            len(self.env["chatwoot.hub.message"].search([("direction", "=", "in")])), 2
        )
        messages = self.chatwoot.messages(self.hub_conversation().conversation_id)
        self.assertEqual(sorted(m["content"] for m in messages), ["Primeira", "Segunda"])

    def test_shopee_refusing_the_reply_is_shown_failed_in_chatwoot(self):
        self.shopee_pushes(RAW_PUSH)
        self.run_jobs()
        conversation = self.hub_conversation()
        self.shopee.fail_next(error="error_permission", message="No permission.")
        message = self.chatwoot.agent_reply(conversation.conversation_id, "Olá!")
        self.deliver_outbox()
        self.run_jobs()
        [outgoing] = self.env["chatwoot.hub.message"].search([("direction", "=", "out")])
        self.assertEqual(outgoing.state, "failed")
        status = next(
            m
            for m in self.chatwoot.messages(conversation.conversation_id)
            if m["id"] == message["id"]
        )
        self.assertEqual(status["status"], "failed")
        self.assertIn("seller-chat permission", status["external_error"])
