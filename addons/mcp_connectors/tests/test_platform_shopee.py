# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""The Shopee channel on Odoo against a fake Shopee on 127.0.0.1: the push URL (signature
with the reference vector, acknowledgement, deduplication), the delivery job (buyer messages,
the shop's own messages, other pushes, unknown shops, authorization alerts), replies (split,
rate limits, a token renewed once, a lapsed authorization), the *Test* button, the MCP tools,
two workers renewing one single-use refresh token at once, and the *Authorize* button (the
seller authorizes the shop on the fake's page; the code comes back with the shop id)."""

import json
import threading
from datetime import timedelta
from pathlib import Path
from unittest.mock import patch
from urllib.parse import parse_qs, urlsplit

import requests

from odoo import SUPERUSER_ID, api, fields
from odoo.modules.registry import DummyRLock, Registry
from odoo.tests import HttpCase, TransactionCase, tagged
from odoo.tools import mute_logger

from odoo.addons.mcp_integrator.models.mcp_credential import REFRESH_LOCK_CLASS
from odoo.addons.mcp_integrator.tests.test_integrator_api import ACCOUNT_IDS
from odoo.addons.queue_job.exception import RetryableJobError

from ..services import channel_shopee as shopee
from ..services.channels import ChannelSendError, ReauthorizationRequired
from .common import McpConnectorsCase
from .fake_shopee import SHOP_ID, FakeShopee

DATA = Path(__file__).resolve().parent / "data" / "channels"
VECTOR = json.loads((DATA / "signature_test_vectors.json").read_text())["shopee_push_authorization"]
RAW_PUSH = (DATA / VECTOR["body_file"]).read_bytes()
BUYER_ID = "165105353"
SHOP_USER_ID = "947151379"
CONVERSATION = "709122092476686867"
QUIET = ("odoo.addons.mcp_connectors.controllers.channel_webhook", "odoo.http")
CHANNEL_LOGGER = "odoo.addons.mcp_connectors.models.mcp_channel"


def push(code=10, **content_changes):
    """The reference webchat push (code 10) with changes to its message, or another code."""
    payload = json.loads(RAW_PUSH)
    payload["data"]["content"].update(content_changes)
    payload["code"] = code
    return payload


class ShopeeChannelCase(McpConnectorsCase):
    """A fake Shopee, and a tenant's Shopee channel for the reference shop, whose push key and
    registered URL are those of the reference signature vector."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.shopee = FakeShopee()
        cls.addClassCleanup(cls.shopee.stop)
        cls.channel = cls.make_shopee_channel(cls.tenant, cls.shopee)

    @classmethod
    def make_shopee_channel(cls, tenant, fake, shop_id=SHOP_ID, **vals):
        access_token, refresh_token = fake.issue_tokens(shop_id)
        env = cls.env
        push_key = env["mcp.credential"].create(
            {
                "name": "Shopee live push partner key",
                "kind": "hmac",
                "tenant_id": tenant.id,
                "secret_input": VECTOR["push_partner_key"],
            }
        )
        access = env["mcp.credential"].create(
            {
                "name": f"Shopee shop {shop_id}",
                "kind": "oauth2",
                "oauth_provider": "shopee",
                "tenant_id": tenant.id,
                "client_id": str(fake.partner_id),
                "secret_input": fake.partner_key,
                "access_token_input": access_token,
                "refresh_token_input": refresh_token,
                "expires_at": fields.Datetime.now() + timedelta(hours=4),
            }
        )
        return env["mcp.channel"].create(
            {
                "name": f"Shopee {shop_id}",
                "tenant_id": tenant.id,
                "channel_type": "shopee",
                "account_ref": str(shop_id),
                "signing_credential_id": push_key.id,
                "access_credential_id": access.id,
                "api_base_url": fake.url,
                "shopee_push_url": VECTOR["callback_url"],
                **vals,
            }
        )

    def setUp(self):
        super().setUp()
        # the fake is not rolled back with the test: fresh tokens for each test
        access_token, refresh_token = self.shopee.issue_tokens()
        self.channel.access_credential_id.write(
            {
                "access_token_input": access_token,
                "refresh_token_input": refresh_token,
                "expires_at": fields.Datetime.now() + timedelta(hours=4),
            }
        )
        self.shopee.requests.clear()
        self.shopee.messages.clear()
        self.shopee.conversations.clear()
        self.shopee.refreshes = 0

    def access_token(self, channel=None):
        return (channel or self.channel).access_credential_id._get_secret_values()["access_token"]

    def failed_reply(self, text="Oi", channel=None):
        """The ChannelSendError of a reply, caught without a savepoint (what the channel
        recorded stays visible)."""
        try:
            (channel or self.channel).send_reply(CONVERSATION, {"id": BUYER_ID}, text)
        except ChannelSendError as exc:
            return exc
        self.fail("the reply was delivered")

    def assertAlerted(self, channel, words):
        channel.invalidate_recordset()
        self.assertTrue(channel.reauthorization_needed)
        self.assertIn(words, channel.reauthorization_reason)
        self.assertTrue(
            channel.activity_ids.filtered(
                lambda a: a.activity_type_id == self.env.ref("mail.mail_activity_data_warning")
            )
        )


@tagged("post_install", "-at_install")
class TestShopeePushUrl(ShopeeChannelCase, HttpCase):
    registry_test_mode = False  # McpIntegratorCase puts the registry in test mode itself

    def post(self, body, authorization=None, method="POST", channel=None):
        headers = {"Content-Type": "application/json"}
        if authorization is not None:
            headers["Authorization"] = authorization
        url = f"/mcp/channel/{(channel or self.channel).inbound_token}"
        with mute_logger(*QUIET):
            if method == "GET":
                return self.url_open(url, timeout=30)
            return self.url_open(url, data=body, headers=headers, timeout=30)

    def signed(self, body, url=VECTOR["callback_url"], key=VECTOR["push_partner_key"]):
        return shopee.push_signature(key, url, body)

    def deliveries(self):
        return self.env["queue.job"].search(
            [("method_name", "=", "_process_delivery"), ("model_name", "=", "mcp.channel")]
        )

    def test_the_reference_push_is_acknowledged_empty_and_queued(self):
        response = self.post(RAW_PUSH, VECTOR["header_value"])
        self.assertEqual((response.status_code, response.content), (200, b""))
        [job] = self.deliveries()
        self.assertEqual(job.args, [json.loads(RAW_PUSH)])
        self.assertNotIn(VECTOR["push_partner_key"], json.dumps(job.args) + (job.name or ""))

    def test_a_push_delivered_twice_is_queued_once(self):
        for _attempt in range(3):
            self.assertEqual(self.post(RAW_PUSH, VECTOR["header_value"]).status_code, 200)
        self.assertEqual(len(self.deliveries()), 1)
        other = json.dumps(push(message_id="2302748948493123999")).encode()
        self.assertEqual(self.post(other, self.signed(other)).status_code, 200)
        self.assertEqual(len(self.deliveries()), 2)

    def test_bad_missing_and_body_only_signatures_are_401(self):
        cases = {
            "does not match": self.signed(RAW_PUSH.replace(b"pronta", b"pronto")),
            "missing": None,
            "body only": VECTOR["body_only_variant_reported_by_some_integrators"],
        }
        for words, authorization in cases.items():
            with self.subTest(words=words):
                response = self.post(RAW_PUSH, authorization)
                self.assertEqual(response.status_code, 401)
                self.assertIn(words, response.json()["error"])
        self.assertFalse(self.deliveries())

    def test_the_consoles_test_push_key_is_not_the_live_key(self):
        response = self.post(RAW_PUSH, self.signed(RAW_PUSH, key="test-push-partner-key"))
        self.assertEqual(response.status_code, 401)
        self.assertIn("test push partner key", response.json()["error"])
        self.assertFalse(self.deliveries())

    def test_the_registered_url_is_signed_not_the_request_url(self):
        self.channel.shopee_push_url = False  # registered as the inbound URL itself
        response = self.post(RAW_PUSH, VECTOR["header_value"])
        self.assertEqual(response.status_code, 401, "signed for another URL")
        response = self.post(RAW_PUSH, self.signed(RAW_PUSH, url=self.channel.inbound_url))
        self.assertEqual(response.status_code, 200)

    def test_no_push_key_asks_shopee_to_retry_and_get_is_405(self):
        self.channel.signing_credential_id = False
        self.assertEqual(self.post(RAW_PUSH, VECTOR["header_value"]).status_code, 503)
        self.assertEqual(self.post(b"", method="GET").status_code, 405)
        self.assertFalse(self.deliveries())

    def test_a_signed_body_that_is_not_json_is_400(self):
        body = b"not json"
        self.assertEqual(self.post(body, self.signed(body)).status_code, 400)
        self.assertFalse(self.deliveries())


@tagged("post_install", "-at_install")
class TestShopeeDeliveries(ShopeeChannelCase):
    """The delivery job. No Chatwoot inbox holds these channels, so a buyer's message handed
    to the hub comes back as a job to retry (the end-to-end test is the bridge's)."""

    def assertHandedToHub(self, payload):
        """The job hands the message to the hub (which takes it later); caught without a
        savepoint (unlike assertRaises), so what the job recorded stays visible."""
        try:
            with mute_logger(CHANNEL_LOGGER):
                self.channel._process_delivery(payload)
        except RetryableJobError:
            return
        self.fail("the message was not handed to the hub")

    def test_a_buyers_message_goes_to_the_hub_and_the_shop_user_is_learned(self):
        self.shopee.add_message(CONVERSATION, "2302748948493123953", "Oi", from_id=BUYER_ID)
        self.assertHandedToHub(push())
        self.assertEqual(self.channel.shopee_shop_user_id, SHOP_USER_ID)
        self.shopee.requests.clear()
        echo = push(from_id=int(SHOP_USER_ID), to_id=int(BUYER_ID), message_id="9")
        self.assertEqual(self.channel._process_delivery(echo), "skipped: echo")
        self.assertFalse(self.shopee.requests, "the known shop user needs no call")

    def test_the_shops_own_message_is_recognised_before_any_buyer_wrote(self):
        self.shopee.add_message(CONVERSATION, "9", "Olá!", SHOP_USER_ID, from_shop_id=SHOP_ID)
        echo = push(from_id=int(SHOP_USER_ID), to_id=int(BUYER_ID), message_id="9")
        self.assertEqual(self.channel._process_delivery(echo), "skipped: echo")
        self.assertEqual(self.channel.shopee_shop_user_id, SHOP_USER_ID)

    def test_an_unconfirmed_shop_user_is_not_guessed(self):
        # Shopee's page does not show the pushed message yet: nothing is learned from it
        self.assertHandedToHub(push())
        self.assertFalse(self.channel.shopee_shop_user_id)

    def test_other_pushes_and_unknown_codes_are_recorded_never_answered(self):
        order = {"code": 3, "shop_id": SHOP_ID, "data": {"ordersn": "2601011ABCD"}}
        self.assertEqual(self.channel._process_delivery(order), "skipped: order_status")
        self.assertEqual(self.channel._process_delivery(push(code=99)), "skipped: unknown")
        read = push()
        read["data"]["type"] = "read"
        self.assertEqual(self.channel._process_delivery(read), "skipped: webchat_read")

    def test_a_shop_no_channel_receives_is_skipped(self):
        payload = push()
        payload["shop_id"] = 5550001
        self.assertEqual(self.channel._process_delivery(payload), "skipped: unknown shop")

    def test_a_shop_of_another_partner_app_is_not_routed(self):
        other_app = FakeShopee(partner_id=2009999)
        self.addCleanup(other_app.stop)
        other = self.make_shopee_channel(self.make_tenant("Other"), other_app, shop_id=5550002)
        payload = push()
        payload["shop_id"] = 5550002
        self.assertEqual(self.channel._process_delivery(payload), "skipped: unknown shop")
        self.assertFalse(other.shopee_shop_user_id)

    def test_one_partner_app_routes_each_shop_to_its_channel(self):
        sibling = self.make_shopee_channel(self.tenant, self.shopee, shop_id=5550003)
        sibling.shopee_shop_user_id = "777"
        payload = push(from_id=777)
        payload["shop_id"] = 5550003
        self.assertEqual(self.channel._process_delivery(payload), "skipped: echo")

    def test_authorization_expiry_and_cancellation_raise_the_alert(self):
        expiry = {"code": 12, "data": {"shop_expire_soon": [SHOP_ID], "expire_before": 1}}
        self.assertIn("alerted", self.channel._process_delivery(expiry))
        self.assertAlerted(self.channel, "expires soon")
        sibling = self.make_shopee_channel(self.tenant, self.shopee, shop_id=5550004)
        cancelled = {"code": 2, "shop_id": 5550004, "data": {}}
        self.channel._process_delivery(cancelled)
        self.assertAlerted(sibling, "cancelled")


@tagged("post_install", "-at_install")
class TestShopeeReplies(ShopeeChannelCase):
    def test_a_reply_is_a_signed_send_message_to_the_buyer(self):
        result = self.channel.send_reply(CONVERSATION, {"id": BUYER_ID}, "Temos, sim!")
        self.assertEqual(result, {"external_id": "2302749000000000001"})
        self.assertEqual(
            self.shopee.messages,
            [{"to_id": int(BUYER_ID), "message_type": "text", "content": {"text": "Temos, sim!"}}],
        )
        [request] = self.shopee.requests
        self.assertEqual(request.query["shop_id"], str(SHOP_ID))
        self.assertTrue(self.channel.last_sent_at)

    def test_long_replies_are_split_and_links_carry_the_files(self):
        text = ("Frase longa. " * 100).strip()
        self.channel.send_reply(
            CONVERSATION,
            {"id": BUYER_ID},
            text,
            attachments=[{"name": "nf.pdf", "url": "https://files.example.com/nf.pdf"}],
        )
        parts = [message["content"]["text"] for message in self.shopee.messages]
        self.assertEqual(len(parts), 2)
        self.assertTrue(all(len(part) <= shopee.MAX_TEXT_LENGTH for part in parts))
        self.assertTrue(parts[-1].endswith("nf.pdf: https://files.example.com/nf.pdf"))
        with self.assertRaisesRegex(ChannelSendError, "text and links only"):
            self.channel.send_reply(
                CONVERSATION,
                {"id": BUYER_ID},
                "Veja",
                attachments=[{"name": "a.png", "mimetype": "image/png", "data": "AA=="}],
            )

    def test_rate_limits_and_shopee_down_are_retryable(self):
        self.shopee.fail_next(status=429, headers={"Retry-After": "30"})
        error = self.failed_reply()
        self.assertEqual((error.retryable, error.retry_after), (True, 30))
        self.shopee.fail_next(status=503)
        self.assertTrue(self.failed_reply().retryable)
        self.shopee.fail_next(error="error_server_busy", message="Busy.")
        self.assertTrue(self.failed_reply().retryable)
        self.assertEqual(
            self.channel.last_error, "Shopee asked to try later (error_server_busy: Busy.)."
        )
        self.assertFalse(self.shopee.messages)

    def test_a_reply_cut_short_goes_on_where_it_stopped(self):
        text = ("Frase longa. " * 100).strip()
        self.shopee.fail_next(status=503, after=1)
        error = self.failed_reply(text)
        self.assertTrue(error.retryable)
        self.assertEqual((error.sent_ids, error.parts_sent), (["2302749000000000001"], 1))
        self.assertEqual(len(self.shopee.messages), 1)
        # the hub remembers the parts sent and tells the next try
        result = self.channel.send_reply(
            CONVERSATION, {"id": BUYER_ID}, text, metadata={"parts_sent": error.parts_sent}
        )
        self.assertEqual(len(self.shopee.messages), 2, "the first part is not sent again")
        self.assertEqual(result["external_id"], "2302749000000000002")
        self.assertEqual(" ".join(m["content"]["text"] for m in self.shopee.messages), text)

    def test_a_refused_access_token_is_renewed_once_and_the_reply_sent(self):
        old_refresh = self.channel.access_credential_id.sudo().refresh_token
        self.shopee.expire_access_token(self.access_token())
        self.channel.send_reply(CONVERSATION, {"id": BUYER_ID}, "Oi")
        self.assertEqual(len(self.shopee.messages), 1)
        self.assertEqual(self.shopee.refreshes, 1)
        credential = self.channel.access_credential_id.sudo()
        credential.invalidate_recordset()
        self.assertNotEqual(credential.refresh_token, old_refresh, "the refresh token rotated")
        self.assertEqual(
            [r.path for r in self.shopee.requests],
            [shopee.SEND_MESSAGE_PATH, shopee.TOKEN_REFRESH_PATH, shopee.SEND_MESSAGE_PATH],
        )

    def test_a_revoked_authorization_raises_the_alert(self):
        self.shopee.revoke()
        with mute_logger("odoo.addons.mcp_integrator.models.mcp_credential", CHANNEL_LOGGER):
            error = self.failed_reply()
        self.assertIsInstance(error, ReauthorizationRequired)
        self.assertFalse(error.retryable)
        self.assertAlerted(self.channel, "could not be renewed")
        self.assertTrue(self.channel.access_credential_id.reauthorization_needed)
        self.assertFalse(self.shopee.messages)

    def test_error_auth_on_a_send_raises_the_alert(self):
        self.shopee.fail_next(error="error_auth", message="Shop authorization expired.")
        with mute_logger(CHANNEL_LOGGER):
            error = self.failed_reply()
        self.assertIsInstance(error, ReauthorizationRequired)
        self.assertAlerted(self.channel, "authorize the app again")

    def test_no_chat_permission_is_a_clear_permanent_failure(self):
        self.shopee.fail_next(error="error_permission", message="No permission.")
        error = self.failed_reply()
        self.assertFalse(error.retryable)
        self.assertIn("the app has no seller-chat permission", error.reason)

    def test_the_test_button_reads_the_shop(self):
        action = self.channel.with_user(self.manager).action_test()
        self.assertIn("Loja Teste", action["params"]["message"])
        self.assertEqual(self.shopee.requests[-1].path, shopee.SHOP_INFO_PATH)
        self.shopee.revoke()
        with mute_logger("odoo.addons.mcp_integrator.models.mcp_credential", CHANNEL_LOGGER):
            action = self.channel.with_user(self.manager).action_test()
        # a notification, not an error: the alert it raised is kept
        self.assertEqual(action["params"]["type"], "danger")
        self.assertIn("Authorize the channel again", action["params"]["message"])
        self.assertTrue(self.channel.reauthorization_needed)

    def test_the_mcp_server_reads_conversations(self):
        server = self.channel.server_id
        self.assertEqual(server.kind, "shopee")
        server.action_discover()
        self.assertEqual(
            sorted(server.tool_ids.mapped("remote_name")),
            ["shopee_conversation_messages", "shopee_unread_conversations"],
        )
        self.shopee.add_message(CONVERSATION, "1", "Oi", from_id=BUYER_ID)
        self.shopee.add_message(CONVERSATION, "2", "Olá!", SHOP_USER_ID, from_shop_id=SHOP_ID)
        self.shopee.unread_count = 2
        result = server._mcp_call_tool(
            self.tenant, "shopee_conversation_messages", {"conversation_id": CONVERSATION}
        )
        self.assertEqual(
            [(m["from"], m["text"]) for m in result["messages"]],
            [("shop", "Olá!"), ("buyer", "Oi")],
        )
        self.assertEqual(
            server._mcp_call_tool(self.tenant, "shopee_unread_conversations", {}),
            {"unread_conversations": 2},
        )
        server.action_check_health()
        self.assertEqual(server.health_state, "up")


@tagged("post_install", "-at_install")
class TestShopeeAuthorize(ShopeeChannelCase, HttpCase):
    """The manager clicks *Authorize*, the seller authorizes the shop on the fake's page, the
    browser comes back to Odoo logged in as the manager (the state's checks are the Mercado
    Livre tests')."""

    registry_test_mode = False  # McpIntegratorCase puts the registry in test mode itself

    def setUp(self):
        super().setUp()
        self.addCleanup(setattr, self.shopee, "consenting_shop", SHOP_ID)
        self.authenticate(self.manager.login, self.manager.login)

    def click_authorize(self):
        return self.channel.with_user(self.manager).action_authorize()["url"]

    def consent(self, url):
        back = requests.get(url, allow_redirects=False, timeout=10)
        self.assertEqual(back.status_code, 302)
        location = urlsplit(back.headers["Location"])
        return f"{location.path}?{location.query}"

    def come_back(self, path):
        with mute_logger(*QUIET, CHANNEL_LOGGER):
            response = self.url_open(path, allow_redirects=False, timeout=30)
        self.env.invalidate_all()
        return response

    def assertRefused(self, response, words, before):
        self.assertEqual(response.status_code, 400)
        self.assertIn(words, response.text)
        self.assertEqual(self.access_token(), before)
        self.assertFalse(self.channel.authorization_pending)

    def test_the_button_opens_the_signed_authorization_page_with_the_state_in_the_redirect(self):
        url = urlsplit(self.click_authorize())
        query = {key: values[0] for key, values in parse_qs(url.query).items()}
        self.assertEqual(
            f"{url.scheme}://{url.netloc}{url.path}", self.shopee.url + shopee.AUTH_PARTNER_PATH
        )
        self.assertEqual(
            query["sign"],
            shopee.api_sign(
                self.shopee.partner_key,
                self.shopee.partner_id,
                shopee.AUTH_PARTNER_PATH,
                int(query["timestamp"]),
            ),
        )
        redirect = urlsplit(query["redirect"])
        self.assertEqual(
            f"{redirect.scheme}://{redirect.netloc}{redirect.path}",
            self.channel.authorization_redirect_url,
        )
        state = parse_qs(redirect.query)["state"][0]
        self.assertNotIn(state, json.dumps(self.channel.authorization_pending))

    def test_the_seller_authorizes_the_shop_and_the_tokens_are_stored(self):
        with mute_logger(CHANNEL_LOGGER):
            self.channel._alert_reauthorization("The seller cancelled the authorization")
        self.channel.access_credential_id.reauthorization_needed = True
        response = self.come_back(self.consent(self.click_authorize()))
        self.assertEqual(response.status_code, 303)
        self.assertTrue(
            response.headers["Location"].endswith(f"/odoo/mcp.channel/{self.channel.id}")
        )
        [exchange] = [r for r in self.shopee.requests if r.path == shopee.TOKEN_GET_PATH]
        self.assertEqual(exchange.json()["shop_id"], SHOP_ID)
        self.assertFalse(self.channel.reauthorization_needed)
        self.assertFalse(self.channel.access_credential_id.reauthorization_needed)
        self.assertAlmostEqual(
            self.channel.access_credential_id.expires_at,
            fields.Datetime.now() + timedelta(hours=4),
            delta=timedelta(minutes=5),
        )
        action = self.channel.with_user(self.manager).action_test()
        self.assertEqual(action["params"]["type"], "success")
        self.assertEqual(self.shopee.requests[-1].query["access_token"], self.access_token())

    def test_another_shops_authorization_is_refused(self):
        before = self.access_token()
        self.shopee.consenting_shop = 111222333
        response = self.come_back(self.consent(self.click_authorize()))
        self.assertRefused(response, "Account 111222333 authorized the app", before)

    def test_shopee_refusing_the_code_stores_nothing(self):
        before = self.access_token()
        back = self.consent(self.click_authorize())
        self.shopee.fail_next(error="error_auth", message="Invalid code.")
        self.assertRefused(self.come_back(back), "Shopee refused the authorization", before)

    def test_a_main_account_authorization_is_refused(self):
        before = self.access_token()
        back = self.consent(self.click_authorize())
        main_account = back.replace(f"shop_id={SHOP_ID}", "main_account_id=5501")
        self.assertRefused(self.come_back(main_account), "no shop ID", before)


@tagged("post_install", "-at_install")
class TestShopeeConcurrentRenewal(TransactionCase):
    """Two workers on their own database connections renew one shop's tokens at the same
    moment: Shopee is called once, and its single-use refresh token is never spent twice.

    The records are committed for real (and deleted afterwards); the fake holds the first
    renewal until the second worker waits on the credential's lock (seen in pg_locks)."""

    def setUp(self):
        super().setUp()
        self.shopee = FakeShopee()
        self.addCleanup(self.shopee.stop)
        access_token, self.refresh_token = self.shopee.issue_tokens()
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            account_id = next(ACCOUNT_IDS)
            tenant = env["mcp.tenant"].create(
                {"name": "Shopee race", "code": f"t{account_id}", "account_id": account_id}
            )
            credential = env["mcp.credential"].create(
                {
                    "name": "Shopee race",
                    "kind": "oauth2",
                    "oauth_provider": "shopee",
                    "tenant_id": tenant.id,
                    "client_id": str(self.shopee.partner_id),
                    "secret_input": self.shopee.partner_key,
                    "access_token_input": access_token,
                    "refresh_token_input": self.refresh_token,
                    "expires_at": fields.Datetime.now() - timedelta(minutes=5),
                }
            )
            channel = env["mcp.channel"].create(
                {
                    "name": "Shopee race",
                    "tenant_id": tenant.id,
                    "channel_type": "shopee",
                    "account_ref": str(SHOP_ID),
                    "access_credential_id": credential.id,
                    "api_base_url": self.shopee.url,
                }
            )
            self.ids = (tenant.id, credential.id, channel.id, channel.server_id.id)
        self.addCleanup(self.delete_committed)

    def delete_committed(self):
        tenant_id, credential_id, channel_id, server_id = self.ids
        with self.registry.cursor() as cr:
            cr.execute("DELETE FROM mcp_audit_log WHERE tenant_id = %s", (tenant_id,))
            cr.execute(
                "DELETE FROM mcp_audit_log WHERE target IN %s",
                ((f"mcp.credential,{credential_id}", f"mcp.channel,{channel_id}"),),
            )
            cr.execute(
                "DELETE FROM mail_message WHERE model = 'mcp.channel' AND res_id = %s",
                (channel_id,),
            )
            cr.execute(
                "DELETE FROM mail_followers WHERE res_model = 'mcp.channel' AND res_id = %s",
                (channel_id,),
            )
            cr.execute("DELETE FROM mcp_channel WHERE id = %s", (channel_id,))
            cr.execute("DELETE FROM mcp_server WHERE id = %s", (server_id,))
            cr.execute("DELETE FROM mcp_credential WHERE id = %s", (credential_id,))
            cr.execute("DELETE FROM mcp_tenant WHERE id = %s", (tenant_id,))

    @classmethod
    def _request_handler(cls, s, r, /, **kw):
        # as McpConnectorsCase: Odoo's test handler compares the timeout with a number
        if isinstance(kw.get("timeout"), tuple):
            kw["timeout"] = max(kw["timeout"])
        return super()._request_handler(s, r, **kw)

    def lock_waiters(self):
        """Workers of this database waiting for the renewal lock of the credential."""
        with self.registry.cursor() as cr:
            cr.execute(
                "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
                "WHERE d.datname = current_database() AND l.locktype = 'advisory' "
                "AND NOT l.granted AND l.classid = %s AND l.objid = %s",
                (REFRESH_LOCK_CLASS, self.ids[1]),
            )
            return cr.fetchone()[0]

    def test_two_workers_refresh_once(self):
        self.startPatcher(patch.object(Registry, "_lock", DummyRLock()))
        self.shopee.hold_refreshes()
        barrier = threading.Barrier(2, timeout=10)
        tokens, errors = [], []
        credential_id = self.ids[1]

        def worker():
            try:
                with self.registry.cursor() as cr:
                    env = api.Environment(cr, SUPERUSER_ID, {})
                    barrier.wait()
                    tokens.append(env["mcp.credential"].browse(credential_id)._get_access_token())
                    cr.rollback()  # the caller's transaction is lost: the renewal must not be
            except Exception as exc:  # noqa: BLE001 - reported by the main thread
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for thread in threads:
            thread.start()
        McpConnectorsCase.wait_until(lambda: self.lock_waiters() >= 1 or errors)
        self.shopee.release_refreshes()
        for thread in threads:
            thread.join(timeout=30)
        self.assertEqual(errors, [])
        self.assertEqual(len(set(tokens)), 1, tokens)
        self.assertEqual(self.shopee.refreshes, 1, "exactly one renewal")
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            values = env["mcp.credential"].browse(credential_id)._get_secret_values()
        self.assertEqual(values["access_token"], tokens[0])
        self.assertNotEqual(values["refresh_token"], self.refresh_token, "rotated and stored")
