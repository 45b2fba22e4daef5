# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""The Mercado Livre channel on Odoo against a fake Mercado Livre on 127.0.0.1: the callback
URL (acknowledgement, refusals, one job per notification), the delivery job (reads, skips,
retries), replies (limits, blocked conversations, rate limits, partial sends), tokens
(single-use refresh tokens, a revoked authorization's alert), the Test button, the agents'
tools, the recovery of missed notifications, and the *Authorize* button (the seller's
authorization in the browser, with PKCE, and every way its return can be refused). The hub's
side is the Chatwoot bridge's end-to-end test."""

import base64
import hashlib
import json
import logging
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import requests

from odoo import fields
from odoo.exceptions import AccessError, UserError
from odoo.tests import HttpCase, new_test_user, tagged
from odoo.tools import mute_logger

from odoo.addons.queue_job.exception import RetryableJobError

from ..models.mcp_channel import HUB_RETRY_SECONDS
from ..models.mcp_channel_mercadolivre import AUTHORIZATION_WAITS_KEY
from ..services.channels import ChannelSendError
from .fake_mercadolivre import FakeMercadoLivre, fixture
from .test_channel import CONTROLLER_LOGGER, McpChannelCase

APP_ID = "2069392825111111"
SELLER = "123456789"
BUYER = "987654321"
AGENT = "3037675074"
QUESTION_ID = "5036111111"
PACK_ID = "2000000089077943"
QUIET = (
    CONTROLLER_LOGGER,
    "odoo.http",
    "odoo.addons.mcp_connectors.models.mcp_channel",
    "odoo.addons.mcp_connectors.models.mcp_channel_mercadolivre",
    "odoo.addons.mcp_connectors.models.mcp_channel_authorization",
    "odoo.addons.mcp_integrator.models.mcp_credential",
)
AUTHORIZATION_LOGGER = "odoo.addons.mcp_connectors.models.mcp_channel_authorization"


class MercadoLivreCase(McpChannelCase):
    """A seller's Mercado Livre channel, its OAuth credential, and a fresh fake Mercado Livre
    for each test."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.oauth = cls.ml_credential()
        cls.ml = cls.make_channel(
            name="Loja no Mercado Livre",
            channel_type="mercadolivre",
            signing_credential_id=False,
            reply_url=False,
            access_credential_id=cls.oauth.id,
            account_ref=SELLER,
        )

    @classmethod
    def ml_credential(cls, client_id=APP_ID, tenant=None, **tokens):
        token = fixture("mercadolivre_oauth_token_response.json")
        return cls.env["mcp.credential"].create(
            {
                "name": f"Mercado Livre {client_id}",
                "kind": "oauth2",
                "oauth_provider": "mercadolivre",
                "tenant_id": (tenant or cls.tenant).id,
                "client_id": client_id,
                "secret_input": "fake-client-secret",
                "access_token_input": tokens.get("access", token["access_token"]),
                "refresh_token_input": tokens.get("refresh", token["refresh_token"]),
                "expires_at": fields.Datetime.now() + timedelta(hours=5),
            }
        )

    def setUp(self):
        super().setUp()
        self.fake = FakeMercadoLivre(app_id=APP_ID)
        self.addCleanup(self.fake.stop)
        self.ml.api_base_url = self.fake.url
        # the token renewal reads the channel in a cursor of its own
        self.ml.flush_recordset()

    def delivery_jobs(self):
        return self.env["queue.job"].search(
            [("identity_key", "=like", "mcp.channel.delivery:%")], order="id"
        )

    def process(self, payload, channel=None):
        with mute_logger(*QUIET):
            return (channel or self.ml)._process_delivery(payload)

    def retried(self, payload, channel=None):
        """The RetryableJobError of a delivery job that must be tried again."""
        with mute_logger(*QUIET), self.assertRaises(RetryableJobError) as caught:
            (channel or self.ml)._process_delivery(payload)
        return caught.exception

    def reply(self, thread_id, text, contact=None, channel=None):
        with mute_logger(*QUIET):
            return (channel or self.ml).send_reply(thread_id, contact or {"id": BUYER}, text)

    def failed_reply(self, thread_id, text, contact=None):
        try:
            self.reply(thread_id, text, contact)
        except ChannelSendError as exc:
            return exc
        self.fail("the reply was sent")

    def expire_access_token(self):
        self.oauth.expires_at = fields.Datetime.now() - timedelta(minutes=1)


@tagged("post_install", "-at_install")
class TestMercadoLivreInbound(MercadoLivreCase, HttpCase):
    registry_test_mode = False  # McpIntegratorCase puts the registry in test mode itself

    def notify(self, payload, method="POST", token=None):
        url = f"/mcp/channel/{token or self.ml.inbound_token}"
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        with mute_logger(*QUIET):
            if method == "GET":
                return self.url_open(url, timeout=30)
            headers = {"Content-Type": "application/json"}
            return self.url_open(url, data=body, headers=headers, timeout=30)

    def test_a_notification_is_acknowledged_at_once_and_queued_once(self):
        notification = fixture("mercadolivre_notification_questions.json")
        response = self.notify(notification)
        self.assertEqual((response.status_code, response.json()), (200, {"status": "accepted"}))
        self.assertFalse(self.fake.requests, "nothing is read before Mercado Livre is answered")
        # Mercado Livre's retries of the same notification
        for attempt in (2, 3):
            retry = dict(notification, attempts=attempt, sent=f"2026-01-05T14:0{attempt}:00Z")
            self.assertEqual(self.notify(retry).status_code, 200)
        [job] = self.delivery_jobs()
        self.assertEqual(job.state, "pending")
        self.assertEqual(job.records, self.ml)
        payload = job.args[0]
        self.assertEqual(
            (payload["topic"], payload["resource"]), ("questions", "/questions/" + QUESTION_ID)
        )
        self.assertNotIn(self.fake.access_token, json.dumps(job.args))

    def test_only_posts_are_notifications(self):
        response = self.notify(None, method="GET")
        self.assertEqual(response.status_code, 405)
        self.assertFalse(self.delivery_jobs())

    def test_malformed_notifications_are_400(self):
        notification = fixture("mercadolivre_notification_questions.json")
        for body in (b"{", b"[]", json.dumps(dict(notification, resource="/questions/x")).encode()):
            with self.subTest(body=body):
                self.assertEqual(self.notify(body).status_code, 400)
        self.assertFalse(self.delivery_jobs())

    def test_another_apps_notification_is_refused(self):
        notification = dict(fixture("mercadolivre_notification_questions.json"), application_id=999)
        response = self.notify(notification)
        self.assertEqual(response.status_code, 403)
        self.assertIn("another application", response.json()["error"])
        self.assertFalse(self.delivery_jobs())

    def test_a_seller_no_tenant_owns_is_acknowledged_and_skipped(self):
        notification = dict(fixture("mercadolivre_notification_questions.json"), user_id=555)
        response = self.notify(notification)
        # 200: Mercado Livre would otherwise retry it for an hour
        self.assertEqual((response.status_code, response.json()), (200, {"status": "skipped"}))
        self.assertFalse(self.delivery_jobs())

    def test_one_app_serves_several_sellers_never_another_apps(self):
        other_tenant = self.make_tenant("Second seller")
        sibling = self.make_channel(
            name="Segunda loja",
            tenant_id=other_tenant.id,
            channel_type="mercadolivre",
            signing_credential_id=False,
            reply_url=False,
            access_credential_id=self.ml_credential(tenant=other_tenant).id,
            account_ref="222333444",
        )
        foreign = self.make_channel(
            name="Loja de outro app",
            channel_type="mercadolivre",
            signing_credential_id=False,
            reply_url=False,
            access_credential_id=self.ml_credential(client_id="777").id,
            account_ref="888999000",
        )
        notification = fixture("mercadolivre_notification_questions.json")
        self.assertEqual(self.notify(dict(notification, user_id=222333444)).status_code, 200)
        self.assertEqual(
            self.notify(dict(notification, user_id=888999000)).json()["status"], "skipped"
        )
        [job] = self.delivery_jobs()
        self.assertEqual(job.records, sibling)
        self.assertNotEqual(job.records, foreign)

    def test_a_channel_without_app_id_refuses_everything(self):
        self.oauth.client_id = False
        response = self.notify(fixture("mercadolivre_notification_questions.json"))
        self.assertEqual(response.status_code, 403)
        self.assertIn("app id", response.json()["error"])


@tagged("post_install", "-at_install")
class TestMercadoLivreChannel(MercadoLivreCase):
    # the delivery job ---------------------------------------------------------------------------
    def test_a_question_is_read_with_the_sellers_token_and_handed_to_the_hub(self):
        error = self.retried(fixture("mercadolivre_notification_questions.json"))
        # no inbox maps this channel in these tests: the hub refuses, the job keeps the message
        self.assertEqual(error.seconds, HUB_RETRY_SECONDS)
        (read,) = self.fake.requests_to("GET", "/questions/")
        self.assertEqual(read.path, f"/questions/{QUESTION_ID}")
        self.assertEqual(read.headers["Authorization"], f"Bearer {self.fake.access_token}")

    def test_a_question_answered_meanwhile_is_recorded_not_answered(self):
        # out of order: the notification of the question comes after its answer
        self.fake.questions[QUESTION_ID]["status"] = "ANSWERED"
        summary = self.process(fixture("mercadolivre_notification_questions.json"))
        self.assertIn("0 message(s) to the hub, 1 other event(s)", summary)

    def test_events_that_are_not_messages_are_recorded_without_reading(self):
        base = fixture("mercadolivre_notification_questions.json")
        for topic, resource, actions in (
            ("orders_v2", f"/orders/{PACK_ID}", None),
            ("items", "/items/MLB3486661111", None),
            ("messages", "3f6da1e35ac84f70a24af7360d24c7bc", ["read"]),
            ("a_topic_of_2027", "/whatever/1", None),
        ):
            with self.subTest(topic=topic):
                payload = dict(base, topic=topic, resource=resource)
                if actions:
                    payload["actions"] = actions
                self.assertIn("1 other event(s)", self.process(payload))
        self.assertFalse(self.fake.requests)

    def test_own_messages_are_recorded_not_answered(self):
        self.reply(f"pack:{PACK_ID}", "Enviamos hoje.")
        own = self.fake.packs[PACK_ID]["message_ids"][-1]
        notification = self.fake.notification("messages", own, actions=["created"])
        # the pack's buyer message goes to the hub (refused here), ours is only recorded
        self.retried(notification)
        self.fake.packs[PACK_ID]["message_ids"] = [own]
        self.assertIn("0 message(s) to the hub, 1 other event(s)", self.process(notification))

    def test_a_kind_the_channel_does_not_take_is_skipped_unread(self):
        self.ml.mercadolivre_answer_questions = False
        summary = self.process(fixture("mercadolivre_notification_questions.json"))
        self.assertIn("does not take questions", summary)
        self.assertFalse(self.fake.requests)

    def test_mercado_livre_down_or_rate_limiting_retries_the_job(self):
        payload = fixture("mercadolivre_notification_questions.json")
        self.fake.inject(503, {"message": "unavailable", "error": "internal_error"})
        self.assertEqual(self.retried(payload).seconds, 60)
        slow_down = {"message": "Too many requests", "error": "too_many_requests"}
        self.fake.inject(429, slow_down, headers={"Retry-After": "7"})
        self.assertEqual(self.retried(payload).seconds, 7)
        self.ml.api_base_url = "http://127.0.0.1:9"  # nothing listens there
        self.assertIn("could not be reached", str(self.retried(payload)))

    def test_a_notification_of_a_seller_gone_meanwhile_is_skipped(self):
        payload = fixture("mercadolivre_notification_questions.json")
        self.ml.account_ref = "111"
        self.assertEqual(self.process(payload), "unknown seller")
        self.assertFalse(self.fake.requests)

    # tokens -------------------------------------------------------------------------------------
    def test_a_refused_access_token_is_renewed_once_with_the_single_use_refresh_token(self):
        old_refresh = self.fake.refresh_token
        del self.fake.access_tokens[self.fake.access_token]  # expired early at Mercado Livre
        self.reply(f"question:{QUESTION_ID}", "Sim, temos em estoque.")
        (renewal,) = self.fake.requests_to("POST", "/oauth/token")
        self.assertEqual(renewal.form()["refresh_token"], old_refresh)
        self.assertNotIn(old_refresh, self.fake.refresh_tokens, "spent")
        values = self.oauth._get_secret_values()
        self.assertIn(values["refresh_token"], self.fake.refresh_tokens, "the new one is kept")
        self.assertIn(values["access_token"], self.fake.access_tokens)
        self.assertEqual(len(self.fake.requests_to("POST", "/answers")), 1)

    def test_workers_renewing_one_after_the_other_spend_the_refresh_token_once(self):
        self.expire_access_token()
        first = self.oauth._get_access_token()
        # a second worker that waited for the lock finds the token renewed
        self.assertEqual(self.oauth._oauth2_refresh(), first)
        self.assertEqual(len(self.fake.requests_to("POST", "/oauth/token")), 1)
        # forced renewals rotate: each uses the refresh token the previous one stored
        for _renewal in range(2):
            self.oauth._oauth2_refresh(force=True)
        forms = [call.form() for call in self.fake.requests_to("POST", "/oauth/token")]
        self.assertEqual(len({form["refresh_token"] for form in forms}), 3)
        self.assertFalse(self.oauth.reauthorization_needed)
        self.assertEqual(forms[0]["client_id"], APP_ID)

    def test_a_revoked_authorization_raises_the_alert_and_keeps_the_notification(self):
        self.fake.revoke()
        payload = fixture("mercadolivre_notification_questions.json")
        summary = self.process(payload)
        self.assertIn("authorize", summary)
        self.assertTrue(self.oauth.reauthorization_needed)
        self.assertTrue(self.ml.reauthorization_needed)
        self.assertIn("invalid_grant", self.ml.reauthorization_reason)
        self.assertTrue(self.ml.activity_ids, "the managers get a to-do")
        # the notification waits for the new authorization in a job of its own
        [waiting] = self.delivery_jobs()
        self.assertEqual(waiting.args[0][AUTHORIZATION_WAITS_KEY], 1)
        self.assertTrue(waiting.eta)
        for secret in (self.fake.refresh_token, "fake-client-secret"):
            self.assertNotIn(secret, summary + (self.ml.reauthorization_reason or ""))

    def test_a_revoked_authorization_fails_replies_permanently(self):
        self.fake.revoke()
        self.expire_access_token()
        error = self.failed_reply(f"question:{QUESTION_ID}", "Sim")
        self.assertFalse(error.retryable)
        self.assertTrue(self.ml.reauthorization_needed)
        self.assertFalse(self.fake.requests_to("POST", "/answers"))

    # replies ------------------------------------------------------------------------------------
    def test_a_question_is_answered_publicly(self):
        result = self.reply(f"question:{QUESTION_ID}", "Sim, temos em estoque.")
        self.assertEqual(result, {"external_id": QUESTION_ID})
        (answer,) = self.fake.requests_to("POST", "/answers")
        self.assertEqual(
            answer.json(), {"question_id": int(QUESTION_ID), "text": "Sim, temos em estoque."}
        )
        self.assertTrue(self.ml.last_sent_at)

    def test_a_too_long_answer_is_refused_not_split(self):
        error = self.failed_reply(f"question:{QUESTION_ID}", "a" * 2001)
        self.assertFalse(error.retryable)
        self.assertIn("public", error.reason)
        self.assertIn("2000", error.reason)
        self.assertFalse(self.fake.requests, "not even read")

    def test_an_answered_question_is_not_answered_again(self):
        self.reply(f"question:{QUESTION_ID}", "Sim, temos.")
        # the same answer tried again (its first answer lost to a timeout) is not posted twice
        self.assertEqual(
            self.reply(f"question:{QUESTION_ID}", "Sim, temos."), {"external_id": QUESTION_ID}
        )
        error = self.failed_reply(f"question:{QUESTION_ID}", "Outra resposta")
        self.assertFalse(error.retryable)
        self.assertIn("already answered", error.reason)
        self.assertIn("public", error.reason)
        self.assertEqual(len(self.fake.requests_to("POST", "/answers")), 1)

    def test_a_post_sale_reply_goes_to_the_messaging_agent_in_parts(self):
        text = "Seu pedido foi separado e será postado hoje até as 17h. " * 10
        result = self.reply(f"pack:{PACK_ID}", text)
        posts = self.fake.requests_to("POST", f"/messages/packs/{PACK_ID}/sellers/{SELLER}")
        self.assertEqual(len(posts), 2)
        for post in posts:
            self.assertEqual(post.json()["to"], {"user_id": int(AGENT)})
            self.assertLessEqual(len(post.json()["text"]), 350)
        self.assertEqual(len(result["external_id"].split(",")), 2)

    def test_outside_mlb_the_reply_goes_to_the_buyer(self):
        self.fake.add_pack("2000000600000002", "777", "MLA")
        self.ml.mercadolivre_site_id = "MLA"
        self.reply("pack:2000000600000002", "Hola, ya sale.", contact={"id": "777"})
        (post,) = self.fake.requests_to("POST", "/messages/packs/")
        self.assertEqual(post.json()["to"], {"user_id": 777})

    def test_a_blocked_conversation_is_a_clear_permanent_failure(self):
        self.fake.packs[PACK_ID].update(status="blocked", substatus="blocked_by_mediation")
        error = self.failed_reply(f"pack:{PACK_ID}", "Olá")
        self.assertFalse(error.retryable)
        self.assertIn("blocked_by_mediation", error.reason)
        self.assertEqual(self.ml.last_error, error.reason)
        self.assertFalse(self.fake.requests_to("POST", "/messages/packs/"))

    def test_rate_limits_are_retryable_with_the_wait_asked(self):
        slow_down = {"message": "Too many requests", "error": "too_many_requests"}
        self.fake.inject(429, slow_down, headers={"Retry-After": "30"}, path="/messages", after=1)
        error = self.failed_reply(f"pack:{PACK_ID}", "Olá")
        self.assertEqual((error.retryable, error.retry_after), (True, 30))

    def test_a_partial_send_is_not_repeated_on_retry(self):
        text = "Primeira parte da resposta, bem longa. " * 12
        pack_path = f"/messages/packs/{PACK_ID}"
        # the status read and the first part pass, the second part fails
        self.fake.inject(503, {"message": "unavailable"}, path=pack_path, after=2)
        error = self.failed_reply(f"pack:{PACK_ID}", text)
        self.assertTrue(error.retryable)
        self.assertIn("1 part(s)", error.reason)
        # the hub's job tries again: its second try reads what went out and sends the rest
        job = self.ml.with_delay()._test_mercadolivre()
        self.env["queue.job"].search([("uuid", "=", job.uuid)]).retry = 1
        with mute_logger(*QUIET):
            self.ml.with_context(job_uuid=job.uuid).send_reply(
                f"pack:{PACK_ID}", {"id": BUYER}, text
            )
        stored = [
            self.fake.messages[key]["text"]
            for key in self.fake.packs[PACK_ID]["message_ids"]
            if self.fake.messages[key]["from"]["user_id"] == int(SELLER)
        ]
        self.assertEqual(len(stored), len(set(stored)), "each part once")
        self.assertEqual(" ".join(stored), text.strip())

    def test_attachments_and_foreign_threads_are_refused_clearly(self):
        with mute_logger(*QUIET), self.assertRaisesRegex(ChannelSendError, "text only"):
            self.ml.send_reply(
                f"pack:{PACK_ID}", {"id": BUYER}, "Veja", attachments=[{"url": "https://x"}]
            )
        error = self.failed_reply("order-1001", "Oi")
        self.assertIn("not a Mercado Livre", error.reason)
        self.assertFalse(self.fake.requests)

    # test button ----------------------------------------------------------------------------------
    def test_the_test_button_names_the_seller(self):
        action = self.ml.with_user(self.manager).action_test()
        self.assertEqual(action["params"]["message"], f"Seller LOJA_TESTE ({SELLER})")
        self.assertEqual(self.fake.requests[0].path, "/users/me")

    def test_the_test_button_fails_when_the_token_is_another_sellers(self):
        self.ml.account_ref = "444"
        with (
            mute_logger(*QUIET),
            self.assertRaisesRegex(UserError, "LOJA_TESTE .123456789.'s, not"),
        ):
            self.ml.with_user(self.manager).action_test()

    # the agents' tools --------------------------------------------------------------------------
    def test_the_agents_read_orders_and_open_questions(self):
        server = self.ml.server_id
        self.assertEqual(server.kind, "mercadolivre")
        server.action_discover()
        self.assertEqual(
            sorted(server.tool_ids.mapped("name")),
            ["mercadolivre_get_order", "mercadolivre_unanswered_questions"],
        )
        self.assertTrue(all(server.tool_ids.mapped("read_only")))
        self.fake.add_shipment(PACK_ID, "shipped", "out_for_delivery", "BR123456789")
        integrator = self.env["mcp.integrator"]
        order = integrator.call_tool(
            self.tenant, "mercadolivre_get_order", {"order_id": PACK_ID}, cache=False
        )
        self.assertEqual(order["buyer"], {"id": BUYER, "nickname": "COMPRADOR_TESTE"})
        self.assertEqual(order["items"][0]["title"], "Fone de ouvido sem fio")
        self.assertEqual(order["shipping"]["status"], "shipped")
        self.fake.add_question("Tem na cor azul?")
        self.fake.add_question("Já respondida", status="ANSWERED")
        questions = integrator.call_tool(
            self.tenant, "mercadolivre_unanswered_questions", {"limit": 10}, cache=False
        )
        self.assertEqual(questions["total"], 2)
        self.assertEqual(
            [q["text"] for q in questions["questions"]],
            [self.fake.questions[QUESTION_ID]["text"], "Tem na cor azul?"],
        )
        missing = integrator.call_tool(
            self.tenant, "mercadolivre_get_order", {"order_id": "1"}, cache=False
        )
        self.assertTrue(missing["isError"])

    # missed notifications -------------------------------------------------------------------------
    def test_the_cron_queues_missed_notifications_once(self):
        question = self.fake.notification("questions", f"/questions/{QUESTION_ID}")
        unknown = self.fake.notification("questions", "/questions/1", user_id=555)
        self.fake.missed = [
            dict(question, request={"url": "x"}, response={"http_code": 500}),
            unknown,
        ]
        with mute_logger(*QUIET):
            self.assertEqual(self.env["mcp.channel"]._cron_mercadolivre_missed_feeds(), 1)
        [job] = self.delivery_jobs()
        self.assertEqual(job.records, self.ml)
        self.assertEqual(job.args[0]["resource"], f"/questions/{QUESTION_ID}")
        (read,) = self.fake.requests_to("GET", "/missed_feeds")
        self.assertEqual(read.query["app_id"], APP_ID)
        # listed for two days: the next runs queue nothing again, even once the job is done
        job.state = "done"
        with mute_logger(*QUIET):
            self.assertEqual(self.env["mcp.channel"]._cron_mercadolivre_missed_feeds(), 0)
        self.assertEqual(len(self.delivery_jobs()), 1)


@tagged("post_install", "-at_install")
class TestMercadoLivreAuthorize(MercadoLivreCase, HttpCase):
    """The manager clicks *Authorize*, the seller allows the app on the fake's authorization
    page, the browser comes back to Odoo logged in as the manager."""

    registry_test_mode = False  # McpIntegratorCase puts the registry in test mode itself

    def setUp(self):
        super().setUp()
        self.ml.mercadolivre_auth_base_url = self.fake.url
        self.authenticate(self.manager.login, self.manager.login)

    def click_authorize(self, user=None):
        action = self.ml.with_user(user or self.manager).action_authorize()
        self.assertEqual((action["type"], action["target"]), ("ir.actions.act_url", "self"))
        return action["url"]

    def consent(self, url):
        """The seller on Mercado Livre's page: where the browser is sent back (path and
        query, on this test's server)."""
        back = requests.get(url, allow_redirects=False, timeout=10)
        self.assertEqual(back.status_code, 302)
        location = urlsplit(back.headers["Location"])
        return f"{location.path}?{location.query}"

    def come_back(self, path):
        with mute_logger(*QUIET):
            response = self.url_open(path, allow_redirects=False, timeout=30)
        self.env.invalidate_all()
        return response

    def stored_tokens(self):
        values = self.oauth._get_secret_values()
        return values["access_token"], values["refresh_token"]

    def assertRefused(self, response, words, before):
        """A failure page with ``words``; the credential and the fake's tokens as they were."""
        self.assertEqual(response.status_code, 400)
        self.assertIn(words, response.text)
        self.assertIn(f"/odoo/mcp.channel/{self.ml.id}", response.text)
        self.assertEqual(self.stored_tokens(), before)
        self.assertFalse(self.ml.authorization_pending, "the authorization is spent")

    def test_the_button_opens_the_sites_page_with_pkce_and_keeps_the_verifier(self):
        url = urlsplit(self.click_authorize())
        query = {key: values[0] for key, values in parse_qs(url.query).items()}
        self.assertEqual(f"{url.scheme}://{url.netloc}{url.path}", f"{self.fake.url}/authorization")
        self.assertEqual(
            self.ml.authorization_redirect_url,
            f"{self.ml.get_base_url()}/mcp/channel/oauth/{self.ml.inbound_token}",
        )
        self.assertEqual(
            (query["response_type"], query["client_id"], query["redirect_uri"]),
            ("code", APP_ID, self.ml.authorization_redirect_url),
        )
        self.assertEqual(query["code_challenge_method"], "S256")
        pending = self.ml.authorization_pending
        digest = hashlib.sha256(pending["code_verifier"].encode()).digest()
        self.assertEqual(
            query["code_challenge"], base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        )
        # the server keeps a digest of the state, never the state itself
        self.assertNotIn(query["state"], json.dumps(pending))
        self.assertEqual(pending["user_id"], self.manager.id)
        self.ml.mercadolivre_auth_base_url = False
        self.assertTrue(self.click_authorize().startswith("https://auth.mercadolivre.com.br/"))
        self.ml.mercadolivre_site_id = "MLA"
        self.assertTrue(self.click_authorize().startswith("https://auth.mercadolibre.com.ar/"))

    def test_the_seller_authorizes_and_the_tokens_are_stored(self):
        with mute_logger(*QUIET):
            self.ml._alert_reauthorization("Mercado Livre refused the refresh token")
        # a credential set up for another renewal than Mercado Livre's is set right
        self.oauth.write(
            {
                "reauthorization_needed": True,
                "oauth_provider": "generic",
                "token_url": "https://example.test/oauth/token",
            }
        )
        # logging.INFO: Odoo names another level "INFO" too
        with self.assertLogs(AUTHORIZATION_LOGGER, logging.INFO) as logs:
            back = self.consent(self.click_authorize())
            with mute_logger(CONTROLLER_LOGGER, "odoo.http"):
                response = self.url_open(back, allow_redirects=False, timeout=30)
        self.env.invalidate_all()
        self.assertEqual(response.status_code, 303)
        self.assertTrue(response.headers["Location"].endswith(f"/odoo/mcp.channel/{self.ml.id}"))
        [exchange] = self.fake.requests_to("POST", "/oauth/token")
        form = exchange.form()
        self.assertEqual(form["grant_type"], "authorization_code")
        self.assertEqual(form["redirect_uri"], self.ml.authorization_redirect_url)
        self.assertTrue(form["code_verifier"])
        access_token, refresh_token = self.stored_tokens()
        self.assertEqual(self.fake.access_tokens[access_token], SELLER)
        self.assertEqual(self.fake.refresh_tokens[refresh_token], SELLER)
        self.assertAlmostEqual(
            self.oauth.expires_at,
            fields.Datetime.now() + timedelta(hours=6),
            delta=timedelta(minutes=5),
        )
        self.assertEqual(self.oauth.oauth_provider, "mercadolivre")
        self.assertFalse(self.oauth.reauthorization_needed)
        self.assertFalse(self.ml.reauthorization_needed)
        self.assertFalse(self.ml.activity_ids, "the re-authorize to-do is done")
        self.assertFalse(self.ml.authorization_pending)
        self.assertIn("authorization stored by", self.ml.message_ids[0].body)
        logged = "\n".join(logs.output)
        self.assertIn("authorization of account 123456789 stored", logged)
        for secret in (form["code"], form["code_verifier"], access_token, refresh_token):
            self.assertNotIn(secret, logged)
        # the new tokens work
        self.assertIn(
            "LOJA_TESTE", self.ml.with_user(self.manager).action_test()["params"]["message"]
        )
        # the same return again: the state served once
        self.assertRefused(self.come_back(back), "already used", (access_token, refresh_token))

    def test_an_empty_account_id_is_filled_by_the_authorization(self):
        self.ml.account_ref = False
        self.assertEqual(self.come_back(self.consent(self.click_authorize())).status_code, 303)
        self.assertEqual(self.ml.account_ref, SELLER)

    def test_another_sellers_authorization_is_refused(self):
        before = self.stored_tokens()
        self.fake.consenting_seller = "555000111"
        response = self.come_back(self.consent(self.click_authorize()))
        self.assertRefused(response, "Account 555000111 authorized the app", before)
        self.assertEqual(self.ml.account_ref, SELLER)

    def test_an_account_another_channel_receives_is_refused(self):
        self.ml.account_ref = False
        self.ml.flush_recordset()
        self.make_channel(
            name="Outra loja",
            channel_type="mercadolivre",
            signing_credential_id=False,
            reply_url=False,
            access_credential_id=self.ml_credential(client_id="777").id,
            account_ref=SELLER,
        )
        before = self.stored_tokens()
        response = self.come_back(self.consent(self.click_authorize()))
        self.assertRefused(response, "already received by channel Outra loja", before)
        self.assertFalse(self.ml.account_ref)

    def test_an_expired_state_is_refused_before_the_code_is_spent(self):
        before = self.stored_tokens()
        back = self.consent(self.click_authorize())
        self.ml.authorization_pending = dict(self.ml.authorization_pending, expires=0)
        self.assertRefused(self.come_back(back), "expired", before)
        self.assertFalse(self.fake.requests_to("POST", "/oauth/token"))

    def test_another_users_return_is_refused(self):
        other = new_test_user(
            self.env,
            login=f"mcp_conn_manager2_{self.tenant.account_id}",
            groups="base.group_user,mcp_integrator.group_mcp_manager",
        )
        before = self.stored_tokens()
        back = self.consent(self.click_authorize())
        self.authenticate(other.login, other.login)
        self.assertRefused(self.come_back(back), "started by another user", before)
        self.assertFalse(self.fake.requests_to("POST", "/oauth/token"))

    def test_a_forged_or_replaced_state_is_refused(self):
        before = self.stored_tokens()
        first = self.consent(self.click_authorize())
        self.click_authorize()  # a newer authorization replaces the first
        self.assertRefused(self.come_back(first), "replaced by a newer one", before)
        self.click_authorize()
        forged = first.replace("state=", "state=x")
        self.assertRefused(self.come_back(forged), "unknown", before)

    def test_mercado_livre_refusing_the_code_or_the_seller_declining_stores_nothing(self):
        before = self.stored_tokens()
        back = self.consent(self.click_authorize())
        self.fake.inject(
            400, fixture("mercadolivre_oauth_error_invalid_grant.json"), path="/oauth/token"
        )
        self.assertRefused(self.come_back(back), "Mercado Livre refused the authorization", before)
        url = urlsplit(self.click_authorize())
        state = parse_qs(url.query)["state"][0]
        declined = f"/mcp/channel/oauth/{self.ml.inbound_token}?error=access_denied&state={state}"
        self.assertRefused(self.come_back(declined), "did not authorize the app", before)

    def test_the_button_needs_the_apps_secret_and_a_manager(self):
        self.oauth.action_clear_secrets()
        self.assertFalse(self.ml.authorization_ready)
        with self.assertRaisesRegex(UserError, "client ID and secret"):
            self.ml.with_user(self.manager).action_authorize()
        with self.assertRaises(AccessError):
            self.ml.with_user(self.user).action_authorize()
        self.assertEqual(self.come_back("/mcp/channel/oauth/unknown-token").status_code, 404)

    def test_the_pending_authorization_is_secret_like_metas_verify_token(self):
        self.assertLessEqual(
            {"inbound_token", "meta_verify_token", "authorization_pending"},
            set(self.env["mcp.channel"]._mcp_secret_fields),
        )
        meta = self.make_channel(name="WhatsApp", channel_type="whatsapp", reply_url=False)
        meta.meta_verify_token = "verify-0123456789"
        url = urlsplit(self.click_authorize())
        state = parse_qs(url.query)["state"][0]
        verifier = self.ml.authorization_pending["code_verifier"]
        audited = " ".join(self.audit_rows(operation="config.write").mapped("arguments"))
        self.assertIn("meta_verify_token", audited)
        self.assertIn("authorization_pending", audited)
        for secret in ("verify-0123456789", verifier, state):
            self.assertNotIn(secret, audited)
        with self.assertRaises(AccessError):
            self.ml.with_user(self.user).authorization_pending  # noqa: B018
