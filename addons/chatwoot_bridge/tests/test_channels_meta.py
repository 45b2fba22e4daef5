# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""WhatsApp, Messenger and Instagram through the hub, end to end: Meta's signed webhook reaches the
channel's inbound URL, the customer's message lands in the channel's Chatwoot API inbox, an
agent (or the AI) answers there, and the answer goes out through the fake Graph API; Meta's
later delivery statuses show on the Chatwoot message. And the other mode: Chatwoot's own
WhatsApp inbox, answered by the bridge, while the connector ingests nothing."""

import copy
import time
import uuid

from odoo.tests import tagged
from odoo.tools import mute_logger

from odoo.addons.mcp_connectors.services import channel_meta
from odoo.addons.mcp_connectors.tests.fake_meta import (
    ACCESS_TOKEN,
    APP_SECRET,
    FakeGraph,
    fixture,
    signature_header,
    webhook_body,
)

from .common import API_INBOX, ChatwootBridgeCase

WA_PHONE_ID = "106540352242922"
PAGE_ID = "109876543210987"
IG_ID = "17841405309211844"
IG_CUSTOMER = "1122334455667788"
PHONE = "5511988887777"
BSUID = "BR.1502576394655843"
MESSENGER_INBOX = 9  # an API inbox added to the fake for Messenger
WHATSAPP_INBOX = 10  # Chatwoot's own WhatsApp inbox
INSTAGRAM_INBOX = 11  # an API inbox added to the fake for Instagram
QUIET = (
    "odoo.addons.mcp_connectors.controllers.channel_webhook",
    "odoo.addons.mcp_connectors.models.mcp_channel",
    "odoo.addons.mcp_connectors.models.mcp_channel_meta",
    "odoo.addons.chatwoot_bridge.models.chatwoot_hub_message",
)


def whatsapp_message(text, wamid=None, sent_at=None, phone=PHONE, user_id=BSUID):
    """Meta's webhook of a customer's WhatsApp text (without ``phone`` or ``user_id`` when
    they are None: a username user, or a message before business-scoped ids)."""
    payload = fixture("whatsapp_inbound_text.json")
    value = payload["entry"][0]["changes"][0]["value"]
    [contact], [message] = value["contacts"], value["messages"]
    message.update(
        id=wamid or f"wamid.{uuid.uuid4().hex}",
        timestamp=str(int(sent_at or time.time())),
        text={"body": text},
    )
    for record, phone_key, user_key in (
        (contact, "wa_id", "user_id"),
        (message, "from", "from_user_id"),
    ):
        if phone:
            record[phone_key] = phone
        else:
            record.pop(phone_key)
        if user_id:
            record[user_key] = user_id
        else:
            record.pop(user_key)
    if not phone:
        message["from"] = user_id
    return payload


def whatsapp_status(wamid, status, errors=None):
    payload = fixture("whatsapp_status_delivered.json")
    [entry] = payload["entry"][0]["changes"][0]["value"]["statuses"]
    entry.update(id=wamid, status=status, timestamp=str(int(time.time())))
    if errors:
        entry["errors"] = errors
    return payload


def messenger_message(text, sent_at=None, psid="6543210987654321", platform="messenger"):
    """Meta's webhook of a customer's Messenger (or Instagram: same shape) text."""
    payload = fixture(f"{platform}_inbound_text.json")
    [event] = payload["entry"][0]["messaging"]
    event["sender"]["id"] = psid
    event["timestamp"] = int((sent_at or time.time()) * 1000)
    event["message"] = {"mid": f"m_{uuid.uuid4().hex}", "text": text}
    return payload


@tagged("post_install", "-at_install")
class TestChannelsMeta(ChatwootBridgeCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.graph = FakeGraph()
        cls.addClassCleanup(cls.graph.stop)
        app_secret = cls.credential(cls.tenant, "hmac", APP_SECRET, "Meta app secret")
        token = cls.credential(cls.tenant, "bearer", ACCESS_TOKEN, "System user token")
        channels = cls.env["mcp.channel"]
        common = {
            "tenant_id": cls.tenant.id,
            "signing_credential_id": app_secret.id,
            "access_credential_id": token.id,
            "api_base_url": cls.graph.url,
        }
        cls.whatsapp = channels.create(
            {**common, "name": "WhatsApp", "channel_type": "whatsapp", "account_ref": WA_PHONE_ID}
        )
        cls.messenger = channels.create(
            {**common, "name": "Messenger", "channel_type": "messenger", "account_ref": PAGE_ID}
        )
        cls.instagram = channels.create(
            {**common, "name": "Instagram", "channel_type": "instagram", "account_ref": IG_ID}
        )
        # the API inboxes deliver their messages to Odoo too, signed with a secret of their own
        cls.inbox_secret = f"inbox-{uuid.uuid4().hex}"
        cls.account.signing_credential_ids = [
            (4, cls.credential(cls.tenant, "hmac", cls.inbox_secret, "api inbox").id)
        ]
        fake_inboxes = cls.chatwoot.inboxes
        for inbox_id, name in ((MESSENGER_INBOX, "Messenger"), (INSTAGRAM_INBOX, "Instagram")):
            fake_inboxes[inbox_id] = cls.chatwoot._inbox_record(
                {"id": inbox_id, "name": f"{name} (API)", "channel_type": "Channel::Api"}
            )
        # Chatwoot's own WhatsApp inbox (a type the fake does not create: added as it lists it)
        fake_inboxes[WHATSAPP_INBOX] = {
            **fake_inboxes[API_INBOX],
            "id": WHATSAPP_INBOX,
            "name": "WhatsApp (Chatwoot)",
            "channel_type": "Channel::Whatsapp",
            "channel_id": WHATSAPP_INBOX + 5,
            "inbox_identifier": uuid.uuid4().hex,
        }
        for inbox_id in (API_INBOX, MESSENGER_INBOX, INSTAGRAM_INBOX):
            fake_inboxes[inbox_id].update(webhook_url=cls.webhook_url, secret=cls.inbox_secret)
        fake_inboxes[WHATSAPP_INBOX].update(webhook_url=None, secret=None)
        cls.account.action_connect()
        cls.inbox(API_INBOX).channel_connector_id = cls.whatsapp
        cls.inbox(MESSENGER_INBOX).channel_connector_id = cls.messenger
        cls.inbox(INSTAGRAM_INBOX).channel_connector_id = cls.instagram

    def setUp(self):
        super().setUp()
        self.graph.requests.clear()
        self.graph.sent.clear()

    def meta_posts(self, channel, payload):
        """Meta posts ``payload`` to the channel's inbound URL, signed with the app secret."""
        body = webhook_body(payload)
        headers = {
            "Content-Type": "application/json",
            channel_meta.SIGNATURE_HEADER: signature_header(APP_SECRET, body),
        }
        with mute_logger(*QUIET):
            response = self.url_open(
                f"/mcp/channel/{channel.inbound_token}", data=body, headers=headers, timeout=30
            )
        self.assertEqual(response.status_code, 200, response.text)
        return response

    def run_all(self):
        with mute_logger(*QUIET):
            return self.run_jobs()

    def hub_conversations(self, channel):
        return self.env["chatwoot.conversation"].search([("channel_connector_id", "=", channel.id)])

    def agent_answers(self, conversation, text):
        """An agent replies in the Chatwoot conversation; its delivery reaches the bridge."""
        self.chatwoot.outbox.clear()
        message = self.chatwoot.agent_reply(conversation.conversation_id, text)
        self.deliver_outbox()
        self.run_all()
        return message

    def chatwoot_message(self, conversation, message_id):
        return next(
            m for m in self.chatwoot.messages(conversation.conversation_id) if m["id"] == message_id
        )

    def test_whatsapp_round_trip_and_a_late_failed_status(self):
        self.meta_posts(self.whatsapp, whatsapp_message("Meu pedido já foi enviado?", "wamid.IN1"))
        self.assertFalse(self.chatwoot.requests, "Meta is answered before Chatwoot is called")
        self.run_all()
        [conversation] = self.hub_conversations(self.whatsapp)
        self.assertEqual(conversation.external_thread_id, BSUID)
        chatwoot = self.chatwoot.conversation(conversation.conversation_id)
        self.assertEqual(chatwoot["inbox_id"], API_INBOX)
        [incoming] = chatwoot["messages"]
        self.assertEqual(
            (incoming["message_type"], incoming["content"], incoming["source_id"]),
            ("incoming", "Meu pedido já foi enviado?", "wamid.IN1"),
        )
        [contact] = [
            contact
            for contact in self.chatwoot.contacts.values()
            if contact["identifier"] == f"whatsapp:{self.whatsapp.id}:{BSUID}"
        ]
        self.assertEqual(contact["phone_number"], f"+{PHONE}")

        reply = self.agent_answers(conversation, "Sim, saiu hoje pela transportadora.")
        [(account, body)] = self.graph.sent
        self.assertEqual(account, WA_PHONE_ID)
        self.assertEqual(body["to"], PHONE)
        self.assertEqual(body["text"], {"preview_url": False, "body": reply["content"]})
        self.assertEqual(self.chatwoot_message(conversation, reply["id"])["status"], "delivered")
        [outgoing] = self.env["chatwoot.hub.message"].search([("direction", "=", "out")])
        self.assertEqual(outgoing.state, "done")
        self.assertTrue(outgoing.by_human)

        # WhatsApp accepted it, then failed it: the reply shows failed in Chatwoot and Odoo
        error = {"code": 131047, "title": "Re-engagement message", "message": "Re-engagement"}
        self.meta_posts(
            self.whatsapp, whatsapp_status(outgoing.external_message_id, "failed", [error])
        )
        self.run_all()
        self.assertEqual(outgoing.state, "failed")
        self.assertIn("131047", outgoing.error)
        status = self.chatwoot_message(conversation, reply["id"])
        self.assertEqual(status["status"], "failed")
        self.assertIn("template", status["external_error"])

    def test_a_message_delivered_again_is_filed_once_and_statuses_are_not_answered(self):
        payload = whatsapp_message("Oi", "wamid.DUP")
        for _try in range(2):
            self.meta_posts(self.whatsapp, payload)
        self.run_all()
        again = copy.deepcopy(payload)  # the same message in another delivery
        again["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"] = "Oi "
        self.meta_posts(self.whatsapp, again)
        self.meta_posts(self.whatsapp, whatsapp_status("wamid.UNKNOWN", "read"))
        self.run_all()
        self.assertEqual(
            len(self.env["chatwoot.hub.message"].search([("direction", "=", "in")])), 1
        )
        [conversation] = self.hub_conversations(self.whatsapp)
        self.assertEqual(len(self.chatwoot.messages(conversation.conversation_id)), 1)
        self.assertFalse(self.env["chatwoot.hub.message"].search([("direction", "=", "out")]))
        self.assertFalse(self.graph.requests)

    def test_the_same_customer_keeps_one_conversation_with_and_without_the_phone(self):
        # a customer of their own (the fake Chatwoot keeps its contacts from test to test)
        phone, user_id = "5511977776666", "BR.2002576394655844"
        # before business-scoped ids, then with the phone and the id, then the id only
        for text, sender in (
            ("Oi", {"user_id": None}),
            ("Ainda aí?", {}),
            ("Sou eu", {"phone": None}),
        ):
            self.meta_posts(
                self.whatsapp,
                whatsapp_message(text, **{"phone": phone, "user_id": user_id, **sender}),
            )
            self.run_all()
        [conversation] = self.hub_conversations(self.whatsapp)
        self.assertEqual(conversation.external_thread_id, user_id)
        self.assertEqual(
            [m["content"] for m in self.chatwoot.messages(conversation.conversation_id)],
            ["Oi", "Ainda aí?", "Sou eu"],
        )
        contacts = self.chatwoot.contacts.values()
        self.assertEqual(len([c for c in contacts if c["phone_number"] == f"+{phone}"]), 1)
        self.agent_answers(conversation, "Olá!")
        self.assertEqual(self.graph.sent_bodies()[0]["to"], phone, "the phone is still known")

    def test_a_whatsapp_reply_after_24_hours_is_refused_and_shown_failed(self):
        self.meta_posts(self.whatsapp, whatsapp_message("Oi", sent_at=time.time() - 30 * 3600))
        self.run_all()
        [conversation] = self.hub_conversations(self.whatsapp)
        reply = self.agent_answers(conversation, "Desculpe a demora!")
        self.assertFalse(self.graph.requests, "nothing is sent outside the window")
        [outgoing] = self.env["chatwoot.hub.message"].search([("direction", "=", "out")])
        self.assertEqual(outgoing.state, "failed")
        status = self.chatwoot_message(conversation, reply["id"])
        self.assertEqual(status["status"], "failed")
        self.assertIn("template", status["external_error"])

    def test_messenger_round_trip_with_the_human_agent_tag(self):
        self.meta_posts(self.messenger, messenger_message("Entregam em Curitiba?"))
        self.run_all()
        [conversation] = self.hub_conversations(self.messenger)
        self.assertEqual(
            self.chatwoot.conversation(conversation.conversation_id)["inbox_id"], MESSENGER_INBOX
        )
        # the AI answers within the window
        self.deliver_outbox()
        self.answered_with("Entregamos sim!")
        self.run_all()
        [ai_body] = self.graph.sent_bodies(PAGE_ID)
        self.assertEqual(ai_body["messaging_type"], "RESPONSE")
        self.assertEqual(ai_body["recipient"], {"id": "6543210987654321"})
        self.assertEqual(ai_body["message"], {"text": "Entregamos sim!"})
        # three days later only a person may answer, with the HUMAN_AGENT tag
        self.env["chatwoot.hub.message"].search([("direction", "=", "in")]).write(
            {"metadata": {"sent_at": int(time.time()) - 72 * 3600}}
        )
        self.agent_answers(conversation, "Aqui é a Ana: enviamos ontem.")
        human_body = self.graph.sent_bodies(PAGE_ID)[-1]
        self.assertEqual(
            (human_body["messaging_type"], human_body["tag"]), ("MESSAGE_TAG", "HUMAN_AGENT")
        )

    def test_instagram_round_trip_split_at_its_1000_characters(self):
        self.meta_posts(
            self.instagram,
            messenger_message("Tem no tamanho M?", psid=IG_CUSTOMER, platform="instagram"),
        )
        self.run_all()
        [conversation] = self.hub_conversations(self.instagram)
        self.assertEqual(
            self.chatwoot.conversation(conversation.conversation_id)["inbox_id"], INSTAGRAM_INBOX
        )
        answer = "Temos sim, no tamanho M e em três cores. " * 40  # about 1600 characters
        message = self.agent_answers(conversation, answer.strip())
        bodies = self.graph.sent_bodies(IG_ID)
        self.assertEqual(len(bodies), 2, "Instagram takes less than 1000 characters a message")
        for body in bodies:
            self.assertEqual(body["recipient"], {"id": IG_CUSTOMER})
            self.assertLess(len(body["message"]["text"]), 1000)
        self.assertEqual(" ".join(body["message"]["text"] for body in bodies), answer.strip())
        self.assertEqual(self.chatwoot_message(conversation, message["id"])["status"], "delivered")

    def test_chatwoot_owned_whatsapp_is_answered_by_the_bridge_and_never_ingested(self):
        self.whatsapp.meta_owner = "chatwoot"
        self.meta_posts(self.whatsapp, whatsapp_message("Oi, vocês abrem sábado?"))
        self.assertFalse(self.pending_jobs(), "nothing is queued")
        self.assertFalse(self.env["chatwoot.hub.message"].search([]))
        # Chatwoot received the same message in its own WhatsApp inbox: the bridge answers it
        conversation_id = self.customer_writes("Oi, vocês abrem sábado?", inbox_id=WHATSAPP_INBOX)
        self.assertEqual(len(self.answers_of(conversation_id)), 1)
        self.answered_with("Abrimos sim, das 9h às 13h.")
        self.run_all()
        self.assertEqual(
            [m["content"] for m in self.chatwoot.replies(conversation_id)],
            ["Abrimos sim, das 9h às 13h."],
        )
        self.deliver_outbox()
        self.run_all()
        self.assertFalse(self.env["chatwoot.hub.message"].search([]))
        self.assertFalse(self.graph.requests, "Chatwoot sends it to WhatsApp, not Odoo")

    def test_a_long_reply_cut_off_half_way_sends_only_the_rest_on_the_next_try(self):
        self.meta_posts(self.messenger, messenger_message("Me conta tudo?"))
        self.run_all()
        [conversation] = self.hub_conversations(self.messenger)
        self.chatwoot.outbox.clear()
        text = "Uma frase completa. " * 150  # two Messenger messages
        self.chatwoot.agent_reply(conversation.conversation_id, text)
        self.graph.fail_next(503, code=2, message="Service temporarily unavailable", after=1)
        self.deliver_outbox()
        waiting = self.run_all()
        [outgoing] = self.env["chatwoot.hub.message"].search([("direction", "=", "out")])
        self.assertEqual((outgoing.state, len(waiting)), ("pending", 1))
        [first_part] = self.graph.sent_bodies(PAGE_ID)
        waiting.write({"eta": False})
        self.run_all()
        self.assertEqual(outgoing.state, "done")
        parts = [body["message"]["text"] for body in self.graph.sent_bodies(PAGE_ID)]
        self.assertEqual(len(parts), 2, "the first part is not sent twice")
        self.assertEqual(parts[0], first_part["message"]["text"])
        self.assertEqual(" ".join(parts), text.strip())
        self.assertTrue(outgoing.external_message_id.startswith("m_FAKE"))
