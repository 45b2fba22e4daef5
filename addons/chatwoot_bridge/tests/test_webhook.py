# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""The webhook controller: what it accepts, refuses, ignores, and records exactly once."""

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import requests

from odoo.tests import tagged

from odoo.addons.mcp_integrator.services import signing

from ..services import webhook
from .common import SITE_INBOX, ChatwootBridgeCase, reference_payload
from .fake_chatwoot import sign_headers


@tagged("post_install", "-at_install")
class TestWebhookRefusals(ChatwootBridgeCase):
    """Bad input gets the right 4xx with a reason, and nothing is recorded or enqueued."""

    def setUp(self):
        super().setUp()
        self.jobs_before = self.env["queue.job"].search_count([])
        self.runs_before = self.env["mcp.crew.run"].search_count([])

    def assertNothingDone(self):
        self.assertEqual(self.env["queue.job"].search_count([]), self.jobs_before)
        self.assertEqual(self.env["mcp.crew.run"].search_count([]), self.runs_before)
        self.assertFalse(self.env["chatwoot.event"].search([("account_id", "=", self.account.id)]))

    def assertRefused(self, response, status, reason):
        self.assertEqual(response.status_code, status, response.text)
        self.assertIn(reason, response.json()["error"])
        self.assertNothingDone()

    def test_unknown_path_token(self):
        url = self.webhook_url.rsplit("/", 1)[0] + "/" + "x" * 43
        self.assertRefused(self.deliver(self.message_payload(), url=url), 404, "unknown webhook")

    def test_unknown_path_token_even_when_signed_and_unsigned(self):
        url = self.webhook_url + "-not"
        self.assertRefused(self.deliver(self.message_payload(), url=url), 404, "unknown")
        self.assertRefused(
            self.deliver(self.message_payload(), url=url, secret=False), 404, "unknown"
        )

    def test_missing_signature(self):
        self.assertRefused(self.deliver(self.message_payload(), secret=False), 401, "signature")

    def test_wrong_signature(self):
        self.assertRefused(
            self.deliver(self.message_payload(), secret="not-the-secret"), 401, "signature"
        )

    def test_signature_of_other_bytes(self):
        body = json.dumps(self.message_payload()).encode()
        headers = signing_headers(self.secret, body + b" ")
        headers["Content-Type"] = "application/json"
        response = self.post(self.webhook_url, body, headers)
        self.assertRefused(response, 401, "signature")

    def test_stale_timestamp(self):
        body = json.dumps(self.message_payload()).encode()
        stale = int(time.time()) - signing.SIGNATURE_WINDOW - 60
        headers = signing_headers(self.secret, body, ts=stale)
        headers["Content-Type"] = "application/json"
        self.assertRefused(self.post(self.webhook_url, body, headers), 401, "timestamp")

    def test_wrong_content_type(self):
        response = self.deliver(
            self.message_payload(), headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        self.assertRefused(response, 415, "application/json")

    def test_malformed_and_truncated_json(self):
        body = json.dumps(self.message_payload()).encode()
        for raw in (b"{not json", body[: len(body) // 2], b"[1, 2]", b"\xff\xfe{}"):
            with self.subTest(raw=raw[:20]):
                self.assertRefused(self.deliver(raw), 400, "")

    def test_oversize_body(self):
        payload = self.message_payload(text="x" * (webhook.MAX_BODY_BYTES + 10))
        self.assertRefused(self.deliver(payload), 413, "too large")

    def test_missing_fields(self):
        payload = self.message_payload()
        del payload["conversation"]
        self.assertRefused(self.deliver(payload), 400, "conversation")
        payload = self.message_payload()
        del payload["event"]
        self.assertRefused(self.deliver(payload), 400, "event")

    def test_payload_for_another_account(self):
        payload = self.message_payload()
        payload["account"]["id"] = self.tenant.account_id + 1000
        self.assertRefused(self.deliver(payload), 403, "another account")

    def test_refusals_log_no_secret_and_no_body(self):
        payload = self.message_payload(text="segredo-do-cliente-123")
        with self.assertLogs("odoo.addons.chatwoot_bridge", level="WARNING") as logs:
            self.url_open(
                self.webhook_url,
                data=json.dumps(payload).encode(),
                headers={**signing_headers("wrong", b"x"), "Content-Type": "application/json"},
                timeout=30,
            )
        text = "\n".join(logs.output)
        for secret in (self.secret, self.bot_token, self.user_token, "segredo-do-cliente-123"):
            self.assertNotIn(secret, text)
        self.assertNothingDone()


def signing_headers(secret, body, ts=None):
    ts = ts or int(time.time())
    return {
        "X-Chatwoot-Timestamp": str(ts),
        "X-Chatwoot-Signature": signing.sign(secret, ts, body),
        "X-Chatwoot-Delivery": str(uuid.uuid4()),
    }


@tagged("post_install", "-at_install")
class TestWebhookGate(ChatwootBridgeCase):
    """Only a customer's message in a conversation the AI holds is answered; the rest is
    acknowledged, ignored, or used for the conversation's state."""

    def outcome(self, response):
        self.assertEqual(response.status_code, 200, response.text)
        return response.json()["status"]

    def test_a_customer_message_is_recorded_and_its_answer_queued(self):
        response = self.deliver(self.message_payload("Qual o prazo de entrega?", 2001))
        self.assertEqual(self.outcome(response), "answer")
        [event] = self.answers_of(2001)
        self.assertEqual(event.text, "Qual o prazo de entrega?")
        self.assertFalse(self.runs_of(2001), "the crews are asked by a job, not in the request")
        [job] = self.pending_jobs()
        self.assertEqual(job.func_string, f"chatwoot.event({event.id},)._answer()")
        self.assertEqual(job.channel, "root.mcp.crew")
        self.assertEqual(self.chatwoot.requests, [], "nothing sent to Chatwoot by the webhook")
        self.answered_with("Em até 3 dias úteis.")
        self.run_jobs()
        [run] = self.runs_of(2001)
        self.assertEqual((run.state, run.reply_to), ("answered", "chatwoot"))
        self.assertEqual((run.request, run.tenant_id), ("Qual o prazo de entrega?", self.tenant))
        self.assertEqual(event.run_id, run)

    def test_reference_samples_that_are_not_customer_messages_are_ignored(self):
        for name, expected in (
            ("wh_message_created_outgoing_agent_bot.json", "ignored"),
            ("wh_message_created_private_note.json", "ignored"),
            ("wh_contact_created.json", "ignored"),
            ("wh_conversation_created.json", "ignored"),
        ):
            with self.subTest(name=name):
                payload = reference_payload(name, self.tenant.account_id)
                self.assertEqual(self.outcome(self.deliver(payload)), expected)
        self.assertFalse(self.env["mcp.crew.run"].search([("reply_to", "=", "chatwoot")]))

    def test_an_event_chatwoot_may_add_tomorrow_is_acknowledged(self):
        payload = {"event": "conversation_summarised", "id": 1042, "account": {"id": 1}}
        self.assertEqual(self.outcome(self.deliver(payload)), "ignored")
        event = self.env["chatwoot.event"].search([("event", "=", "conversation_summarised")])
        self.assertIn("unknown event", event.detail)

    def test_open_conversation_is_not_answered_in_agent_bot_mode(self):
        payload = self.message_payload(conversation_id=2002, status="open")
        self.assertEqual(self.outcome(self.deliver(payload)), "ignored")
        self.assertFalse(self.answers_of(2002))

    def test_a_human_reply_silences_the_ai_until_pending_again(self):
        conversation_id = self.customer_writes("Oi, tudo bem?")
        self.assertEqual(len(self.answers_of(conversation_id)), 1)
        self.chatwoot.agent_reply(conversation_id, "Olá, aqui é a Ana.")
        self.deliver_outbox()
        state = self.env["chatwoot.conversation"].search(
            [("conversation_id", "=", conversation_id)]
        )
        self.assertTrue(state.ai_silenced)
        self.assertIn("Ana Souza replied", state.silenced_reason)
        # as Captain does, the bot opens the conversation for the person who replied
        self.run_jobs()
        self.assertEqual(self.chatwoot.conversation(conversation_id)["status"], "open")
        self.deliver_outbox()
        self.customer_writes("Quero trocar um produto", conversation_id)
        self.assertEqual(len(self.answers_of(conversation_id)), 1, "the person answers now")
        # the agent gives the conversation back to the bot: its next message is answered
        self.chatwoot.agent_toggle_status(conversation_id, "pending")
        self.deliver_outbox()
        self.customer_writes("Ainda está aí?", conversation_id)
        self.assertEqual(len(self.answers_of(conversation_id)), 2)
        self.assertFalse(state.ai_silenced)

    def test_status_events_of_an_account_webhook(self):
        self.account.mode = "account_webhook"
        self.addCleanup(setattr, self.account, "mode", "agent_bot")
        payload = reference_payload("wh_conversation_status_changed.json", self.tenant.account_id)
        payload.update(id=2010, status="open", inbox_id=SITE_INBOX)
        self.assertEqual(self.outcome(self.deliver(payload)), "state")
        state = self.env["chatwoot.conversation"].search([("conversation_id", "=", 2010)])
        self.assertFalse(state.ai_silenced, "open is where an account webhook's AI works")
        payload = self.message_payload(conversation_id=2010, status="open")
        self.assertEqual(self.outcome(self.deliver(payload)), "answer")

    def test_an_echo_of_the_bridges_own_reply_does_nothing(self):
        conversation_id = self.customer_writes("Oi")
        self.answered_with("Olá! Como posso ajudar?")
        self.run_jobs()
        self.assertEqual(len(self.chatwoot.replies(conversation_id)), 1)
        # the bot's reply comes back as message_created (outgoing, agent_bot)
        responses = self.deliver_outbox()
        self.assertTrue(responses)
        self.assertEqual({r.json()["status"] for r in responses}, {"ignored"})
        self.assertEqual(self.pending_jobs(), self.env["queue.job"])

    def test_ai_disabled_inbox_is_not_answered(self):
        self.inbox(SITE_INBOX).ai_enabled = False
        conversation_id = self.customer_writes("Oi")
        self.assertFalse(self.answers_of(conversation_id))

    def test_a_pinned_crew_answers_without_routing(self):
        support = self.make_crew(self.tenant, code="support", purpose="Trocas e devoluções")
        self.make_agent(support, name="Suporte")
        self.inbox(SITE_INBOX).crew_id = support
        conversation_id = self.customer_writes("Quanto custa a camiseta azul?")
        self.answered_with("Posso ajudar com a troca.")
        self.run_jobs()
        [run] = self.runs_of(conversation_id)
        self.assertEqual(run.crew_id, support)
        self.assertIn("chose crew support", run.routing_reason)

    def test_an_account_without_signing_secret_accepts_the_path_token_alone(self):
        self.account.signing_credential_ids = [(5,)]
        response = self.deliver(self.message_payload(conversation_id=2003), secret=False)
        self.assertEqual(self.outcome(response), "answer")


@tagged("post_install", "-at_install")
class TestExactlyOnce(ChatwootBridgeCase):
    def test_a_redelivery_with_the_same_delivery_id_is_a_duplicate(self):
        payload = self.message_payload(conversation_id=3001)
        delivery = str(uuid.uuid4())
        first = self.deliver(payload, delivery=delivery)
        again = self.deliver(payload, delivery=delivery)
        self.assertEqual([first.json()["status"], again.json()["status"]], ["answer", "duplicate"])
        self.assertEqual(len(self.answers_of(3001)), 1)

    def test_a_duplicate_message_created_with_another_delivery_id(self):
        payload = self.message_payload(conversation_id=3002)
        statuses = [self.deliver(payload).json()["status"] for _ in range(3)]
        self.assertEqual(statuses, ["answer", "duplicate", "duplicate"])
        self.assertEqual(len(self.answers_of(3002)), 1)

    def test_fifty_concurrent_identical_deliveries_make_one_reply(self):
        conversation_id = self.chatwoot.new_conversation(SITE_INBOX, name="Rui", content="Oi!")
        [delivery] = self.chatwoot.outbox
        self.chatwoot.outbox.clear()
        # no session, as with Chatwoot: the database comes from the header
        headers = {**delivery_headers(delivery, self.secret), "X-Odoo-Database": self.env.cr.dbname}

        def post(_index):
            return requests.post(delivery.url, data=delivery.body, headers=headers, timeout=60)

        # plain requests from other threads; the test server serialises them on its cursor
        with self.allow_requests(all_requests=True), ThreadPoolExecutor(max_workers=10) as pool:
            responses = list(pool.map(post, range(50)))
        statuses = sorted(response.json()["status"] for response in responses)
        self.assertEqual(statuses, ["answer"] + ["duplicate"] * 49)
        self.answered_with("Olá, Rui!")
        self.run_jobs()
        self.assertEqual(
            [m["content"] for m in self.chatwoot.replies(conversation_id)], ["Olá, Rui!"]
        )

    def test_redis_down_still_exactly_once(self):
        self.env["ir.config_parameter"].sudo().set_param(
            "mcp_integrator.redis_url", "redis://127.0.0.1:1/0"
        )
        self.env.registry.clear_cache()
        payload = self.message_payload("Oi", conversation_id=3003)
        statuses = [self.deliver(payload).json()["status"] for _ in range(2)]
        self.assertEqual(statuses, ["answer", "duplicate"])
        self.assertEqual(len(self.answers_of(3003)), 1)


def delivery_headers(delivery, secret):
    """The headers of a delivery the fake Chatwoot queued, signed."""
    return {
        "Content-Type": "application/json",
        **sign_headers(secret, delivery.body, delivery=delivery.delivery_id),
    }


@tagged("post_install", "-at_install")
class TestTenancy(ChatwootBridgeCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.other_tenant = cls.make_tenant("Beta")
        cls.other_secret = f"whsec-{uuid.uuid4().hex}"
        cls.other_chatwoot = cls.fake_chatwoot(cls.other_tenant)
        cls.other_account = cls.make_account(
            cls.other_tenant, cls.other_chatwoot, secret=cls.other_secret
        )
        cls.other_url = cls.webhook_url_of(cls.other_account)

    def test_one_accounts_url_cannot_reach_another_tenant(self):
        payload = self.message_payload(conversation_id=4001)
        # the other account's URL with this account's payload: refused, nothing recorded
        response = self.deliver(payload, url=self.other_url, secret=self.other_secret)
        self.assertEqual(response.status_code, 403)
        # this account's secret on the other account's URL: refused
        response = self.deliver(self.message_payload(conversation_id=4001), url=self.other_url)
        self.assertEqual(response.status_code, 401)
        self.assertFalse(
            self.env["chatwoot.event"].search([("account_id", "=", self.other_account.id)])
        )

    def test_same_conversation_number_in_two_accounts_stays_apart(self):
        self.deliver(self.message_payload("Oi A", conversation_id=4002))
        other = self.message_payload("Oi B", conversation_id=4002)
        other["account"]["id"] = self.other_tenant.account_id
        response = self.deliver(other, url=self.other_url, secret=self.other_secret)
        self.assertEqual(response.json()["status"], "answer")
        self.run_jobs()
        [mine] = self.runs_of(4002)
        [theirs] = self.runs_of(4002, account=self.other_account)
        self.assertEqual((mine.tenant_id, theirs.tenant_id), (self.tenant, self.other_tenant))
        self.assertNotEqual(mine.chatwoot_conversation_id, theirs.chatwoot_conversation_id)
        self.assertEqual(mine.request, "Oi A")
        self.assertEqual(theirs.request, "Oi B")

    def test_a_payload_without_account_is_routed_by_the_url_only(self):
        payload = reference_payload("wh_conversation_status_changed.json", 0)
        payload.update(id=4003, status="open")
        response = self.deliver(payload, url=self.other_url, secret=self.other_secret)
        self.assertEqual(response.json()["status"], "state")
        self.assertTrue(
            self.env["chatwoot.conversation"].search(
                [("account_id", "=", self.other_account.id), ("conversation_id", "=", 4003)]
            )
        )
        self.assertFalse(
            self.env["chatwoot.conversation"].search(
                [("account_id", "=", self.account.id), ("conversation_id", "=", 4003)]
            )
        )
