# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""From a customer's message to the reply in Chatwoot, the handoff, and what happens while
Chatwoot is down: end to end through the webhook, the crew run job and the delivery job."""

from datetime import timedelta

from odoo import fields
from odoo.tests import tagged

from odoo.addons.mcp_crew_engine.tests import fake_llm_server as fake
from odoo.addons.queue_job.job import Job

from .common import ChatwootBridgeCase


@tagged("post_install", "-at_install")
class TestReply(ChatwootBridgeCase):
    def test_a_message_gets_one_reply_from_the_bot(self):
        conversation_id = self.customer_writes("Quanto custa a camiseta?")
        self.answered_with("A camiseta custa R$ 49,90.")
        self.assertFalse(self.run_jobs())
        [reply] = self.chatwoot.replies(conversation_id)
        self.assertEqual(reply["content"], "A camiseta custa R$ 49,90.")
        self.assertEqual(reply["sender_type"], "AgentBot", "posted with the Agent Bot's token")
        [run] = self.runs_of(conversation_id)
        self.assertEqual((run.state, run.delivery_state), ("answered", "done"))
        self.assertTrue(run.chatwoot_conversation_id.last_ai_reply_at)
        self.assertEqual(self.chatwoot.notes(conversation_id), [])
        # the conversation's next message is a turn of the same context
        self.customer_writes("E tem no tamanho M?", conversation_id)
        self.answered_with("Tem sim.")
        self.run_jobs()
        self.assertEqual(len(self.chatwoot.replies(conversation_id)), 2)
        history = self.llm.chat_requests[-1]["messages"]
        self.assertIn("A camiseta custa R$ 49,90.", str(history))

    def test_no_secret_reaches_the_jobs(self):
        self.customer_writes("Oi")
        self.env.flush_all()
        self.env.cr.execute("SELECT args, kwargs, records FROM queue_job")
        stored = str(self.env.cr.fetchall())
        for secret in (self.secret, self.bot_token, self.user_token, self.api_key):
            self.assertNotIn(secret, stored)

    def test_the_agents_hand_off(self):
        self.account.write({"handoff_priority": "high", "handoff_message": "Já chamo alguém!"})
        conversation_id = self.customer_writes("Quero meu dinheiro de volta")
        self.llm.script(fake.tool_calls(("handoff_to_human", {"reason": "pedido de reembolso"})))
        self.run_jobs()
        [run] = self.runs_of(conversation_id)
        self.assertEqual(run.state, "handoff")
        self.assertEqual(
            [m["content"] for m in self.chatwoot.replies(conversation_id)], ["Já chamo alguém!"]
        )
        [note] = self.chatwoot.notes(conversation_id)
        self.assertIn("AI handoff", note["content"])
        self.assertIn("reembolso", note["content"])
        self.assertIn("Quero meu dinheiro de volta", note["content"])
        state = self.chatwoot.conversation(conversation_id)
        self.assertEqual(state["status"], "open")
        self.assertEqual(state["priority"], "high")
        self.assertIn("ai-handoff", state["labels"])
        conversation = run.chatwoot_conversation_id
        self.assertTrue(conversation.ai_silenced)
        self.assertTrue(conversation.handoff_at)
        # the customer writes again: people answer now
        self.deliver_outbox()
        self.customer_writes("Alô?", conversation_id)
        self.assertEqual(len(self.runs_of(conversation_id)), 1)

    def test_asking_for_a_person_hands_off_without_an_llm(self):
        self.make_crew(
            self.tenant,
            code="handoff",
            purpose="O cliente quer falar com um atendente humano",
            keywords="atendente, humano, pessoa",
        )
        conversation_id = self.customer_writes("Quero falar com um atendente humano")
        self.run_jobs()
        [run] = self.runs_of(conversation_id)
        self.assertEqual((run.state, run.handoff_reason), ("handoff", "handoff_crew"))
        self.assertEqual(self.llm.chat_requests, [])
        self.assertEqual(self.chatwoot.conversation(conversation_id)["status"], "open")
        self.assertEqual(len(self.chatwoot.notes(conversation_id)), 1)

    def test_out_of_hours_handoff_policy(self):
        tomorrow = (fields.Date.context_today(self.tenant) + timedelta(days=2)).weekday()
        self.tenant.hours_ids = [
            (0, 0, {"weekday": str(tomorrow), "hour_from": 8.0, "hour_to": 18.0})
        ]
        self.account.write(
            {"out_of_hours": "handoff", "handoff_closed_message": "Voltamos amanhã às 8h."}
        )
        conversation_id = self.customer_writes("Oi, vocês estão abertos?")
        self.run_jobs()
        [run] = self.runs_of(conversation_id)
        self.assertEqual((run.state, run.handoff_reason), ("handoff", "out_of_hours"))
        replies = [m["content"] for m in self.chatwoot.replies(conversation_id)]
        self.assertEqual(replies, ["Voltamos amanhã às 8h."])
        self.assertIn("Outside opening hours", self.chatwoot.notes(conversation_id)[0]["content"])
        self.assertEqual(self.llm.chat_requests, [])

    def test_without_a_handoff_message_the_customer_is_told_when_you_open(self):
        in_two_days = (fields.Date.context_today(self.tenant) + timedelta(days=2)).weekday()
        self.tenant.hours_ids = [
            (0, 0, {"weekday": str(in_two_days), "hour_from": 8.0, "hour_to": 18.0})
        ]
        self.account.out_of_hours = "handoff"
        conversation_id = self.customer_writes("Oi?")
        self.run_jobs()
        [reply] = self.chatwoot.replies(conversation_id)
        self.assertIn("someone on our team", reply["content"])
        self.assertIn("we open", reply["content"])
        self.assertIn("08:00", reply["content"])

    def test_a_handoff_may_leave_the_customer_message_out(self):
        self.account.post_handoff_message = False
        conversation_id = self.customer_writes("Quero meu dinheiro de volta")
        self.llm.script(fake.tool_calls(("handoff_to_human", {"reason": "reembolso"})))
        self.run_jobs()
        self.assertEqual(self.chatwoot.replies(conversation_id), [])
        self.assertEqual(len(self.chatwoot.notes(conversation_id)), 1)
        self.assertEqual(self.chatwoot.conversation(conversation_id)["status"], "open")

    def test_a_person_who_took_over_meanwhile_gets_a_suggestion_not_a_reply(self):
        conversation_id = self.customer_writes("Qual o prazo de entrega?")
        self.chatwoot.agent_reply(conversation_id, "Oi, sou a Ana, já vejo isso.")
        self.deliver_outbox()
        self.answered_with("O prazo é de 3 dias úteis.")
        self.run_jobs()
        replies = [m["content"] for m in self.chatwoot.replies(conversation_id)]
        self.assertEqual(replies, ["Oi, sou a Ana, já vejo isso."])
        [note] = self.chatwoot.notes(conversation_id)
        self.assertIn("O prazo é de 3 dias úteis.", note["content"])


@tagged("post_install", "-at_install")
class TestChatwootDown(ChatwootBridgeCase):
    def test_a_reply_waits_while_chatwoot_is_down_and_is_posted_once(self):
        conversation_id = self.customer_writes("Vocês entregam em Recife?")
        self.answered_with("Entregamos sim, em até 5 dias.")
        self.chatwoot.go_down()
        waiting = self.run_jobs()
        [run] = self.runs_of(conversation_id)
        self.assertEqual((run.state, run.delivery_state), ("answered", "pending"))
        self.assertEqual(len(waiting), 1, "the delivery job waits for its next try")
        self.assertTrue(self.account.last_error, "the account's health line shows it")
        # minutes later Chatwoot is back; the runner tries again
        self.chatwoot.come_back()
        Job.load(self.env, waiting.uuid).perform()
        self.assertEqual(run.delivery_state, "done")
        self.assertEqual(len(self.chatwoot.replies(conversation_id)), 1)
        # a stray extra try posts nothing more
        Job.load(self.env, waiting.uuid).perform()
        self.assertEqual(len(self.chatwoot.replies(conversation_id)), 1)

    def test_500_and_429_are_retried_later_honouring_retry_after(self):
        conversation_id = self.customer_writes("Oi")
        self.answered_with("Olá!")
        self.chatwoot.fail_next(1, status=429, retry_after=30)
        waiting = self.run_jobs()
        self.assertEqual(len(waiting), 1)
        self.assertGreaterEqual(waiting.eta, fields.Datetime.now() + timedelta(seconds=25))
        self.assertLess(len(self.chatwoot.requests), 3, "no long sleep on Retry-After in a job")
        self.chatwoot.fail_next(1, status=500)
        self.assertEqual(self.run_jobs(), waiting, "a POST that got a 500 is tried again later")
        Job.load(self.env, waiting.uuid).perform()
        self.assertEqual([m["content"] for m in self.chatwoot.replies(conversation_id)], ["Olá!"])

    def test_a_handoff_interrupted_half_way_posts_nothing_twice(self):
        conversation_id = self.customer_writes("Quero meu dinheiro de volta")
        self.llm.script(fake.tool_calls(("handoff_to_human", {"reason": "reembolso"})))
        [answer] = self.pending_jobs()
        Job.load(self.env, answer.uuid).perform()  # the run hands off; its delivery is queued
        answer.state = "done"
        [run] = self.runs_of(conversation_id)
        [delivery] = self.pending_jobs()
        # the handoff message goes through, then Chatwoot fails on the private note
        self.chatwoot.fail_next(1, status=500, after=1)
        self.assertEqual(self.run_jobs(), delivery)
        self.assertEqual(len(self.chatwoot.replies(conversation_id)), 1)
        self.assertEqual(len(self.chatwoot.notes(conversation_id)), 0)
        Job.load(self.env, delivery.uuid).perform()
        self.assertEqual(len(self.chatwoot.replies(conversation_id)), 1, "message not repeated")
        self.assertEqual(len(self.chatwoot.notes(conversation_id)), 1)
        self.assertEqual(self.chatwoot.conversation(conversation_id)["status"], "open")
        self.assertEqual(run.delivery_state, "done")

    def test_a_permanent_refusal_fails_the_delivery_without_retrying(self):
        conversation_id = self.customer_writes("Oi")
        self.answered_with("Olá!")
        # the conversation was deleted in Chatwoot meanwhile
        with self.chatwoot._lock:
            del self.chatwoot.conversations[conversation_id]
        self.run_jobs()
        [run] = self.runs_of(conversation_id)
        job = self.env["queue.job"].search([("state", "=", "failed")], order="id desc", limit=1)
        self.assertEqual(run.delivery_state, "pending")
        self.assertTrue(job)
        self.assertIn("404", job.exc_info or job.exc_message or "")


@tagged("post_install", "-at_install")
class TestIdleResolution(ChatwootBridgeCase):
    def test_idle_conversations_the_ai_answered_are_resolved(self):
        self.account.write({"auto_resolve_hours": 1, "resolution_message": "Até logo!"})
        conversation_id = self.customer_writes("Oi")
        self.answered_with("Olá!")
        self.run_jobs()
        conversation = self.runs_of(conversation_id).chatwoot_conversation_id
        conversation.status = "pending"
        self.env["chatwoot.account"]._cron_resolve_idle()
        self.assertFalse(self.pending_jobs(), "not idle yet")
        two_hours_ago = fields.Datetime.now() - timedelta(hours=2)
        conversation.last_ai_reply_at = two_hours_ago
        self.env["chatwoot.event"].search([("conversation_id", "=", conversation.id)]).write(
            {"received_at": two_hours_ago}
        )
        self.env["chatwoot.account"]._cron_resolve_idle()
        self.run_jobs()
        self.assertEqual(self.chatwoot.conversation(conversation_id)["status"], "resolved")
        self.assertEqual(self.chatwoot.replies(conversation_id)[-1]["content"], "Até logo!")
        self.assertEqual(conversation.status, "resolved")

    def test_a_conversation_a_person_holds_is_not_resolved(self):
        self.account.write({"auto_resolve_hours": 1})
        conversation_id = self.customer_writes("Oi")
        self.answered_with("Olá!")
        self.run_jobs()
        conversation = self.runs_of(conversation_id).chatwoot_conversation_id
        conversation.write(
            {
                "status": "pending",
                "ai_silenced": True,
                "last_ai_reply_at": fields.Datetime.now() - timedelta(hours=5),
            }
        )
        self.env["chatwoot.account"]._cron_resolve_idle()
        self.assertFalse(self.pending_jobs())
