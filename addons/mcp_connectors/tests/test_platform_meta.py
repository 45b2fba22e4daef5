# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""WhatsApp, Messenger and Instagram channels on the real Odoo against the fake Graph API: the
inbound URL (handshake, signature, acknowledgement, deduplication, Chatwoot-owned mode), the
delivery job (routing, events never answered), replies (windows, splits, rate limits, tokens),
the *Test* button and the channels' MCP tools. The way to Chatwoot and back is the bridge's
end-to-end test (``chatwoot_bridge/tests/test_channels_meta.py``)."""

import copy
import json
import time
from datetime import timedelta

from odoo import fields
from odoo.exceptions import UserError
from odoo.tests import HttpCase, tagged
from odoo.tools import mute_logger

from odoo.addons.queue_job.exception import RetryableJobError

from ..services import channel_meta
from ..services.channel_meta import PartialSendError
from ..services.channels import ChannelSendError, ReauthorizationRequired
from . import fake_meta
from .fake_meta import ACCESS_TOKEN, APP_SECRET, FakeGraph, fixture, signature_header
from .test_channel import McpChannelCase, closed_port

WA_PHONE_ID = "106540352242922"
PAGE_ID = "109876543210987"
IG_ID = "17841405309211844"
VECTORS = fixture("signature_test_vectors.json")
RAW_WHATSAPP = (fake_meta.DATA / "whatsapp_inbound_text.raw_body.txt").read_bytes()
MODEL_LOGGER = "odoo.addons.mcp_connectors.models.mcp_channel"
META_LOGGER = "odoo.addons.mcp_connectors.models.mcp_channel_meta"
CONTROLLER_LOGGER = "odoo.addons.mcp_connectors.controllers.channel_webhook"


def hours_ago(hours):
    return int(time.time() - hours * 3600)


class MetaChannelCase(McpChannelCase):
    """The fake Graph API and a channel of each Meta type pointing at it."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.graph = FakeGraph()
        cls.addClassCleanup(cls.graph.stop)
        cls.app_secret = cls.make_credential(APP_SECRET)
        cls.token = cls.make_credential(ACCESS_TOKEN, kind="bearer")
        cls.whatsapp = cls.make_meta_channel("whatsapp", WA_PHONE_ID)
        cls.messenger = cls.make_meta_channel("messenger", PAGE_ID)
        cls.ig_credential = cls.env["mcp.credential"].create(
            {
                "name": "Instagram user token",
                "kind": "oauth2",
                "oauth_provider": "instagram",
                "tenant_id": cls.tenant.id,
                "access_token": ACCESS_TOKEN,
                "refresh_token": ACCESS_TOKEN,
                "refresh_token_set_at": fields.Datetime.now(),
                "expires_at": fields.Datetime.now() + timedelta(days=50),
            }
        )
        cls.instagram = cls.make_meta_channel(
            "instagram", IG_ID, access_credential_id=cls.ig_credential.id
        )

    @classmethod
    def make_meta_channel(cls, channel_type, account_ref, **vals):
        return cls.make_channel(
            **{
                "name": f"Loja {channel_type}",
                "channel_type": channel_type,
                "account_ref": account_ref,
                "signing_credential_id": cls.app_secret.id,
                "access_credential_id": cls.token.id,
                "api_base_url": cls.graph.url,
                "reply_url": False,
                **vals,
            }
        )

    def setUp(self):
        super().setUp()
        self.graph.requests.clear()
        self.graph.sent.clear()
        self.graph._answers.clear()
        self.graph._revoked = False

    def reply(self, channel, text="Oi!", thread="5511988887777", **metadata):
        metadata.setdefault("last_customer_at", hours_ago(1))
        contact = {"id": thread, "phone": f"+{thread}" if thread.isdigit() else None}
        return channel.send_reply(thread, contact, text, metadata=metadata)

    def refused_reply(self, channel, text="Oi!", thread="5511988887777", **metadata):
        """The ChannelSendError of a reply, caught without a savepoint (what the channel
        recorded stays visible)."""
        try:
            self.reply(channel, text, thread, **metadata)
        except ChannelSendError as exc:
            return exc
        self.fail("the reply was sent")


@tagged("post_install", "-at_install")
class TestMetaInbound(MetaChannelCase, HttpCase):
    registry_test_mode = False  # McpIntegratorCase puts the registry in test mode itself

    def call(self, channel, body=None, signature=None, params=None):
        """GET (no body) or POST ``body`` to the channel's inbound URL."""
        url = f"/mcp/channel/{channel.inbound_token}"
        with mute_logger(CONTROLLER_LOGGER, META_LOGGER, MODEL_LOGGER):
            if body is None:
                return self.url_open(url, params=params, timeout=30)
            headers = {"Content-Type": "application/json"}
            if signature is not None:
                headers[channel_meta.SIGNATURE_HEADER] = signature
            return self.url_open(url, data=body, headers=headers, timeout=30)

    def delivery_jobs(self, channel):
        return self.env["queue.job"].search(
            [("identity_key", "=like", f"mcp.channel.delivery:{channel.id}:%")]
        )

    def test_handshake_answers_the_challenge_only_to_the_verify_token(self):
        vector = VECTORS["meta_verify_handshake"]
        self.whatsapp.meta_verify_token = vector["configured_verify_token"]
        params = {
            "hub.mode": "subscribe",
            "hub.verify_token": vector["configured_verify_token"],
            "hub.challenge": "1158201444",
        }
        response = self.call(self.whatsapp, params=params)
        self.assertEqual(response.status_code, vector["expected_response"]["status"])
        self.assertEqual(response.text, vector["expected_response"]["body"])
        self.assertTrue(response.headers["Content-Type"].startswith("text/plain"))
        for wrong in ({"hub.verify_token": "guess"}, {"hub.mode": "unsubscribe"}):
            with self.subTest(wrong=wrong):
                response = self.call(self.whatsapp, params={**params, **wrong})
                self.assertEqual(response.status_code, vector["on_mismatch"]["status"])
                self.assertNotIn("1158201444", response.text)

    def test_each_meta_channel_gets_a_verify_token_that_audits_never_show(self):
        token = self.messenger.meta_verify_token
        self.assertGreaterEqual(len(token), 32)
        self.assertNotEqual(token, self.instagram.meta_verify_token)
        self.messenger.with_user(self.manager).action_regenerate_verify_token()
        self.assertNotEqual(self.messenger.meta_verify_token, token)
        rows = self.audit_rows(target=f"mcp.channel,{self.messenger.id}")
        self.assertTrue(rows)
        for row in rows:
            self.assertNotIn(token, row.arguments or "")
            self.assertNotIn(self.messenger.meta_verify_token, row.arguments or "")
        self.assertFalse(self.make_channel().meta_verify_token, "custom channels have none")

    def test_a_signed_delivery_is_queued_once_and_answered_at_once(self):
        header = VECTORS["meta_x_hub_signature_256"]["header_value"]
        self.assertEqual(header, signature_header(APP_SECRET, RAW_WHATSAPP))
        for _try in range(3):  # Meta redelivers until it sees a 200
            response = self.call(self.whatsapp, RAW_WHATSAPP, header)
            self.assertEqual(response.status_code, 200, response.text)
        [job] = self.delivery_jobs(self.whatsapp)
        self.assertEqual(job.state, "pending")
        self.assertFalse(self.whatsapp.last_received_at, "the hub's work is the job's")
        self.assertNotIn(APP_SECRET, json.dumps(job.args) + json.dumps(job.kwargs))

    def test_bad_missing_or_reserialised_signatures_are_refused(self):
        vector = VECTORS["meta_x_hub_signature_256"]
        reserialised = json.dumps(json.loads(RAW_WHATSAPP), ensure_ascii=False).encode()
        cases = {
            "wrong digest": (RAW_WHATSAPP, vector["wrong_if_reserialized_utf8"]),
            "missing": (RAW_WHATSAPP, None),
            "another secret": (RAW_WHATSAPP, signature_header("not-the-secret", RAW_WHATSAPP)),
            "re-serialised body": (reserialised, vector["header_value"]),
            "malformed": (RAW_WHATSAPP, "sha1=abc"),
        }
        for case, (body, signature) in cases.items():
            with self.subTest(case=case):
                response = self.call(self.whatsapp, body, signature)
                self.assertEqual(response.status_code, 401, response.text)
        self.assertFalse(self.delivery_jobs(self.whatsapp))

    def test_a_channel_without_an_app_secret_refuses_everything(self):
        channel = self.make_meta_channel("whatsapp", "999000111", signing_credential_id=False)
        response = self.call(channel, RAW_WHATSAPP, signature_header(APP_SECRET, RAW_WHATSAPP))
        self.assertEqual(response.status_code, 403)
        self.assertFalse(self.delivery_jobs(channel))

    def test_a_body_that_is_not_json_is_400(self):
        body = b"not json"
        response = self.call(self.messenger, body, signature_header(APP_SECRET, body))
        self.assertEqual(response.status_code, 400)

    def test_a_chatwoot_owned_channel_acknowledges_and_queues_nothing(self):
        self.whatsapp.meta_owner = "chatwoot"
        response = self.call(
            self.whatsapp, RAW_WHATSAPP, signature_header(APP_SECRET, RAW_WHATSAPP)
        )
        self.assertEqual(response.status_code, 200)
        self.assertFalse(self.delivery_jobs(self.whatsapp))
        bad = self.call(self.whatsapp, RAW_WHATSAPP, "sha256=00")
        self.assertEqual(bad.status_code, 401, "the signature is still checked")


@tagged("post_install", "-at_install")
class TestMetaDelivery(MetaChannelCase):
    def process(self, channel, payload):
        with mute_logger(META_LOGGER, MODEL_LOGGER):
            return channel._process_delivery(payload)

    def test_a_customer_message_goes_to_the_hub(self):
        # no Chatwoot inbox holds the channel here: the hub refuses, the job keeps the message
        with self.assertRaises(RetryableJobError):
            self.process(self.whatsapp, fixture("whatsapp_inbound_text.json"))
        with self.assertRaises(RetryableJobError):
            self.process(self.instagram, fixture("instagram_inbound_text.json"))

    def test_statuses_echoes_reads_and_reactions_are_never_answered(self):
        status = fixture("whatsapp_status_delivered.json")
        self.assertEqual(self.process(self.whatsapp, status), "1 skipped")
        page = fixture("messenger_inbound_text.json")
        entry = page["entry"][0]
        event = entry["messaging"][0]
        echo = copy.deepcopy(event)
        echo["message"]["is_echo"] = True
        echo["message"]["app_id"] = 1517776481860111
        read = {
            **{k: event[k] for k in ("sender", "recipient", "timestamp")},
            "read": {"watermark": 1},
        }
        reaction = {
            **{k: event[k] for k in ("sender", "recipient", "timestamp")},
            "reaction": {"mid": "m_1", "action": "react", "emoji": "❤"},
        }
        unknown = {**{k: event[k] for k in ("sender", "recipient")}, "game_play": {}}
        entry["messaging"] = [echo, read, reaction, unknown]
        self.assertEqual(self.process(self.messenger, page), "4 skipped")
        self.assertFalse(self.graph.requests, "nothing is sent back")
        self.assertFalse(self.messenger.last_received_at)

    def test_a_status_of_a_message_the_hub_never_sent_is_only_recorded(self):
        # out of order (before our send was recorded) or sent elsewhere (the WhatsApp
        # Business app of a coexistence number): nothing to fail, nothing answered
        payload = fixture("whatsapp_status_delivered.json")
        status = payload["entry"][0]["changes"][0]["value"]["statuses"][0]
        status.update(status="failed", errors=[{"code": 131047, "title": "Re-engagement"}])
        self.assertEqual(self.process(self.whatsapp, payload), "1 skipped")
        self.assertFalse(self.graph.requests)

    def test_an_account_no_channel_receives_is_skipped(self):
        payload = fixture("whatsapp_inbound_text.json")
        payload["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = "4040404"
        self.assertEqual(self.process(self.whatsapp, payload), "1 not routed")
        # another app's account (another app secret) is not this app's either
        other_app = self.make_meta_channel(
            "whatsapp", "4040404", signing_credential_id=self.make_credential("other-app").id
        )
        self.assertEqual(self.process(self.whatsapp, payload), "1 not routed")
        self.assertFalse(other_app.last_received_at)

    def test_an_event_of_another_platform_or_an_unknown_object_is_not_routed(self):
        self.assertEqual(
            self.process(self.whatsapp, fixture("messenger_inbound_text.json")), "1 not routed"
        )
        self.assertEqual(self.process(self.whatsapp, {"object": "user"}), "1 not routed")

    def test_a_chatwoot_owned_sibling_ingests_nothing(self):
        self.instagram.meta_owner = "chatwoot"
        self.assertEqual(
            self.process(self.instagram, fixture("instagram_inbound_text.json")), "1 skipped"
        )


@tagged("post_install", "-at_install")
class TestMetaReplies(MetaChannelCase):
    def test_a_whatsapp_reply_goes_to_the_phone_number(self):
        result = self.reply(self.whatsapp, "Seu pedido saiu hoje.")
        self.assertTrue(result["external_id"].startswith("wamid."))
        [(account, body)] = self.graph.sent
        self.assertEqual(account, WA_PHONE_ID)
        self.assertEqual(body["to"], "5511988887777")
        self.assertEqual(body["text"]["body"], "Seu pedido saiu hoje.")
        self.assertTrue(self.whatsapp.last_sent_at)
        # a customer known by their business-scoped user id only
        self.reply(self.whatsapp, thread="BR.1502576394655843")
        self.assertEqual(self.graph.sent[-1][1]["recipient"], "BR.1502576394655843")

    def test_long_replies_are_split_and_parts_sent_are_not_sent_again(self):
        text = "Uma frase completa. " * 150  # 3000 characters: two Messenger messages
        result = self.reply(self.messenger, text, thread="6543210987654321")
        self.assertEqual(len(result["external_ids"]), 2)
        parts = [body["message"]["text"] for body in self.graph.sent_bodies(PAGE_ID)]
        self.assertEqual(len(parts), 2)
        self.assertTrue(all(len(part) <= 2000 for part in parts))
        self.graph.sent.clear()
        self.graph.fail_next(503, code=2, message="Service temporarily unavailable", after=1)
        error = self.refused_reply(self.messenger, text, thread="6543210987654321")
        self.assertIsInstance(error, PartialSendError)
        self.assertTrue(error.retryable)
        self.assertEqual(len(error.sent_ids), 1)
        self.reply(self.messenger, text, thread="6543210987654321", parts_sent=1)
        self.assertEqual(
            [body["message"]["text"] for body in self.graph.sent_bodies(PAGE_ID)], parts
        )

    def test_whatsapp_after_24_hours_refuses_clearly_and_sends_nothing(self):
        error = self.refused_reply(self.whatsapp, last_customer_at=hours_ago(30), by_human=True)
        self.assertFalse(error.retryable)
        self.assertIn("template", error.reason)
        self.assertEqual(self.whatsapp.last_error, error.reason)
        error = self.refused_reply(self.whatsapp, last_customer_at=None)
        self.assertIn("has not written", error.reason)
        self.assertFalse(self.graph.requests)

    def test_human_agents_use_the_human_agent_tag_up_to_7_days(self):
        self.reply(self.messenger, thread="psid-1", last_customer_at=hours_ago(72), by_human=True)
        [body] = self.graph.sent_bodies(PAGE_ID)
        self.assertEqual((body["messaging_type"], body["tag"]), ("MESSAGE_TAG", "HUMAN_AGENT"))
        error = self.refused_reply(self.messenger, thread="psid-1", last_customer_at=hours_ago(72))
        self.assertIn("human agent", error.reason)
        error = self.refused_reply(
            self.instagram, thread="igsid-1", last_customer_at=hours_ago(24 * 8), by_human=True
        )
        self.assertIn("7 days", error.reason)
        self.reply(self.messenger, thread="psid-1")
        self.assertEqual(self.graph.sent_bodies(PAGE_ID)[-1]["messaging_type"], "RESPONSE")

    def test_rate_limits_and_graph_down_are_retryable(self):
        cases = (
            (400, 130429, {}, channel_meta.RATE_LIMIT_WAITS[130429]),
            (400, 131056, {}, channel_meta.RATE_LIMIT_WAITS[131056]),
            (429, 613, {"Retry-After": "30"}, 30),
            (500, 1, {}, None),
        )
        for status, code, headers, wait in cases:
            with self.subTest(code=code):
                self.graph.fail_next(status, code=code, headers=headers)
                error = self.refused_reply(self.whatsapp)
                self.assertEqual((error.retryable, error.retry_after), (True, wait))
        down = self.make_meta_channel(
            "whatsapp", "777000777", api_base_url=f"http://127.0.0.1:{closed_port()}"
        )
        error = self.refused_reply(down)
        self.assertTrue(error.retryable)
        self.assertIn("could not be reached", error.reason)
        self.assertFalse(self.graph.sent)

    def test_a_revoked_token_raises_the_reauthorization_alert(self):
        self.graph.revoke_token()
        error = self.refused_reply(self.whatsapp)
        self.assertIsInstance(error, ReauthorizationRequired)
        self.assertFalse(error.retryable)
        self.assertNotIn(ACCESS_TOKEN, error.reason)
        self.assertTrue(self.whatsapp.reauthorization_needed)
        activities = self.whatsapp.activity_ids.filtered(
            lambda a: a.activity_type_id == self.env.ref("mail.mail_activity_data_warning")
        )
        self.assertEqual(len(activities), 1)
        self.refused_reply(self.whatsapp)
        self.assertEqual(len(self.whatsapp.activity_ids), 1, "one alert at a time")

    def test_an_instagram_token_meta_refuses_is_renewed_once(self):
        self.graph.fail_next(400, code=190, message="Error validating access token")
        self.reply(self.instagram, thread="igsid-1")
        refresh = [r for r in self.graph.requests if r.path == "/refresh_access_token"]
        self.assertEqual(len(refresh), 1)
        credential = self.ig_credential
        credential.invalidate_recordset()
        self.assertNotEqual(credential.access_token, ACCESS_TOKEN)
        self.assertEqual(credential.refresh_token, credential.access_token)
        [(account, _body)] = self.graph.sent
        self.assertEqual(account, IG_ID)
        self.assertEqual(self.graph.requests[0].path, f"/v25.0/{IG_ID}/messages")

    def test_an_instagram_grant_revoked_for_good_alerts(self):
        self.graph.revoke_token()
        with mute_logger("odoo.addons.mcp_integrator.models.mcp_credential", MODEL_LOGGER):
            error = self.refused_reply(self.instagram, thread="igsid-1")
        self.assertIsInstance(error, ReauthorizationRequired)
        self.ig_credential.invalidate_recordset()
        self.assertTrue(self.ig_credential.reauthorization_needed)
        self.assertTrue(self.instagram.reauthorization_needed)

    def test_instagram_through_a_facebook_page_posts_to_the_page(self):
        channel = self.make_meta_channel(
            "instagram", "17841400000000001", meta_instagram_login="facebook"
        )
        self.graph.me = IG_ID  # the fake answers for the Instagram account linked to the Page
        self.addCleanup(setattr, self.graph, "me", None)
        self.reply(channel, thread="igsid-2")
        self.assertEqual(self.graph.requests[0].path, "/v25.0/me/messages")
        self.assertEqual(self.graph.sent[0][0], IG_ID)

    def test_a_chatwoot_owned_channel_sends_nothing(self):
        self.messenger.meta_owner = "chatwoot"
        error = self.refused_reply(self.messenger, thread="psid-1")
        self.assertIn("Chatwoot", error.reason)
        self.assertFalse(self.graph.requests)

    def test_the_graph_version_is_a_setting(self):
        with self.assertRaises(UserError):
            self.whatsapp.meta_graph_version = "25"
        self.whatsapp.meta_graph_version = "v26.0"
        self.graph.version = "v26.0"
        self.addCleanup(setattr, self.graph, "version", fake_meta.GRAPH_VERSION)
        self.reply(self.whatsapp)
        self.assertEqual(self.graph.requests[0].path, f"/v26.0/{WA_PHONE_ID}/messages")


@tagged("post_install", "-at_install")
class TestMetaTestAndTools(MetaChannelCase):
    def test_the_test_button_reads_the_account_with_the_token(self):
        for channel in (self.whatsapp, self.messenger, self.instagram):
            with self.subTest(channel=channel.channel_type):
                action = channel.with_user(self.manager).action_test()
                self.assertEqual(action["params"]["type"], "success")
        self.assertIn("Loja Exemplo", self.whatsapp._test_whatsapp())
        paths = [request.path for request in self.graph.requests]
        self.assertEqual(
            paths,
            [
                f"/v25.0/{WA_PHONE_ID}",
                f"/v25.0/{PAGE_ID}",
                f"/v25.0/{IG_ID}",
                f"/v25.0/{WA_PHONE_ID}",
            ],
        )

    def test_a_failing_test_says_why(self):
        channel = self.make_meta_channel("messenger", "404404404")
        with self.assertRaisesRegex(UserError, "error 100"):
            channel.with_user(self.manager).action_test()
        self.graph.fail_next(500, code=2)
        with self.assertRaisesRegex(UserError, "HTTP 500"):
            self.whatsapp.with_user(self.manager).action_test()

    def test_each_channel_is_an_mcp_server_with_its_tools(self):
        server = self.whatsapp.server_id
        self.assertEqual(server.kind, "whatsapp")
        server.action_discover()
        tools = {tool.remote_name: tool for tool in server.tool_ids}
        self.assertEqual(set(tools), {"whatsapp_send_template", "meta_reply_window"})
        self.assertFalse(tools["whatsapp_send_template"].read_only)
        self.assertFalse(tools["whatsapp_send_template"].enabled, "sending is opted into")
        self.assertTrue(tools["meta_reply_window"].read_only)
        result = server._mcp_run_whatsapp(
            tools["whatsapp_send_template"],
            {
                "to": "+5511988887777",
                "name": "pedido_enviado",
                "language": "pt_BR",
                "parameters": ["João"],
            },
        )
        self.assertFalse(result["isError"])
        self.assertTrue(result["structuredContent"]["message_id"].startswith("wamid."))
        [(_account, body)] = self.graph.sent
        self.assertEqual(body["template"]["name"], "pedido_enviado")
        self.graph.fail_next(400, code=132001, message="Template name does not exist")
        refused = server._mcp_run_whatsapp(
            tools["whatsapp_send_template"],
            {"to": "5511988887777", "name": "x", "language": "pt_BR"},
        )
        self.assertTrue(refused["isError"])
        window = server._mcp_run_whatsapp(tools["meta_reply_window"], {"thread_id": "55119"})
        self.assertFalse(window["structuredContent"]["allowed"], "the customer never wrote")
        self.messenger.server_id.action_discover()
        self.assertEqual(
            self.messenger.server_id.tool_ids.mapped("remote_name"), ["meta_reply_window"]
        )

    def test_the_server_health_is_the_channel_test(self):
        self.messenger.server_id._check_health()
        self.assertEqual(self.messenger.server_id.health_state, "up")
        self.graph.revoke_token()
        self.messenger.server_id._check_health()
        self.assertEqual(self.messenger.server_id.health_state, "down")
