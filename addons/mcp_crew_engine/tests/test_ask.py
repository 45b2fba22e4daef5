# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""``mcp.integrator.ask()``, the run's queue jobs (retries, last try), delivery, "Try it"."""

import json

from odoo import Command
from odoo.exceptions import UserError
from odoo.tests import new_test_user, tagged

from odoo.addons.queue_job.exception import RetryableJobError
from odoo.addons.queue_job.job import Job
from odoo.addons.queue_job.tests.common import trap_jobs

from ..models.mcp_crew_run import LLM_ATTEMPTS, TENANT_CONTEXT
from . import fake_llm_server as fake
from .common import CrewEngineCase

RUN_LOGGER = "odoo.addons.mcp_crew_engine.models.mcp_crew_run"


@tagged("post_install", "-at_install")
class TestAsk(CrewEngineCase):
    def test_ask_enqueues_one_job_on_the_crew_channel(self):
        with trap_jobs() as trap:
            run = self.ask("Quanto custa a camiseta?", run_now=False, message_id="m1")
            trap.assert_jobs_count(1)
            trap.assert_enqueued_job(
                run._perform,
                properties={"max_retries": LLM_ATTEMPTS, "identity_key": f"mcp.crew.run:{run.id}"},
            )
            [job] = trap.enqueued_jobs
            self.assertEqual(job.channel, "root.mcp.crew")
            self.assertEqual(job.recordset.env.context.get(TENANT_CONTEXT), self.tenant.id)
        self.assertEqual(
            (run.state, run.request, run.channel),
            ("queued", "Quanto custa a camiseta?", "whatsapp"),
        )
        self.assertFalse(self.llm.requests, "nothing runs before the job")

    def test_the_stored_job_carries_the_tenant_and_no_secret(self):
        run = self.ask("Quanto custa a camiseta?", run_now=False)
        job = self.queue_job_of(run)
        self.assertEqual(len(job), 1)
        self.assertEqual(
            (job.channel, job.method_name, job.model_name),
            ("root.mcp.crew", "_perform", "mcp.crew.run"),
        )
        self.assertEqual(job.records, run)
        self.assertEqual(job.records.env.context.get(TENANT_CONTEXT), self.tenant.id)
        # what the job table holds, as the runner will read it
        self.env.flush_all()
        self.env.cr.execute(
            "SELECT args, kwargs, records, name, func_string FROM queue_job WHERE id = %s",
            [job.id],
        )
        [row] = self.env.cr.fetchall()
        self.assertNotIn(self.api_key, str(row))
        args, kwargs, records = map(json.loads, row[:3])
        self.assertEqual((args, kwargs), ([], {}), "the job reads everything from the run")
        self.assertEqual(records["context"][TENANT_CONTEXT], self.tenant.id)
        self.assertNotIn(self.api_key, json.dumps(job.read()[0], default=str))

        self.llm.script(fake.answer("R$ 49,90."))
        Job.load(self.env, run.job_uuid).perform()
        self.assertAnswered(run, "R$ 49,90.")
        self.assertEqual(run.attempts, 1)
        self.assertEqual(run.job_id, job)
        self.assertNotIn(self.api_key, json.dumps(run.read()[0], default=str))
        # the key reached the provider, and only there
        self.assertEqual(self.llm.requests[0]["authorization"], f"Bearer {self.api_key}")

    def test_a_duplicate_message_returns_the_same_run_and_no_second_job(self):
        with trap_jobs() as trap:
            first = self.ask("Oi", run_now=False, conversation="c-1", message_id="m-1")
            again = self.ask("Oi", run_now=False, conversation="c-1", message_id="m-1")
            other = self.ask("Oi", run_now=False, conversation="c-1", message_id="m-2")
            trap.assert_jobs_count(2)
        self.assertEqual(again, first)
        self.assertNotEqual(other, first)
        self.assertEqual(
            self.env["mcp.crew.run"].search_count([("conversation_ref", "=", "c-1")]), 2
        )

    def test_run_now_answers_at_once(self):
        self.llm.script(fake.answer("Temos sim!"))
        with trap_jobs() as trap:
            run = self.ask("Vocês têm camiseta azul?", run_now=True)
            trap.assert_jobs_count(0)
        self.assertAnswered(run, "Temos sim!")
        self.assertFalse(run.job_uuid)
        self.assertEqual(run.llm_calls, 1)

    def test_ask_with_the_account_id(self):
        self.llm.script(fake.answer("Temos sim!"))
        run = self.ask("Vocês têm camiseta azul?", tenant=self.tenant.account_id)
        self.assertEqual(run.tenant_id, self.tenant)
        self.assertAnswered(run, "Temos sim!")
        with self.assertRaisesRegex(UserError, "No AI tenant"):
            self.ask("Oi", tenant=987654321)

    def test_a_tenant_of_another_company_is_refused(self):
        company_b = self.env["res.company"].create({"name": "Company B"})
        tenant_b = self.make_tenant("Tenant B", company_id=company_b.id)
        user_a = new_test_user(
            self.env,
            login="mcp_crew_ask_user_a",
            groups="base.group_user,mcp_integrator.group_mcp_user",
            company_id=self.env.company.id,
            company_ids=[Command.set(self.env.company.ids)],
        )
        integrator = self.env["mcp.integrator"].with_user(user_a)
        with self.assertRaisesRegex(UserError, "belongs to a company you do not work in"):
            integrator.ask(tenant_b, "Oi")
        with self.assertRaisesRegex(UserError, "belongs to a company you do not work in"):
            integrator.ask(tenant_b.account_id, "Oi")
        self.assertFalse(self.env["mcp.crew.run"].search([("tenant_id", "=", tenant_b.id)]))

    def test_an_invalid_channel_is_refused(self):
        for channel in ("What's App", "whatsapp!", "-sms"):
            with self.subTest(channel), self.assertRaisesRegex(UserError, "Invalid channel"):
                self.ask("Oi", channel=channel)
        self.assertFalse(self.env["mcp.crew.run"].search([("tenant_id", "=", self.tenant.id)]))

    def test_an_archived_tenants_request_is_recorded_and_handed_off(self):
        self.tenant.active = False
        run = self.ask("Oi", tenant=self.tenant.account_id)
        self.assertEqual(run.request, "Oi")
        self.assertHandoff(run, "tenant_inactive")
        self.assertFalse(self.llm.requests)

    def test_a_job_queued_for_another_tenant_is_refused(self):
        run = self.ask("Oi", run_now=False)
        other = self.make_tenant("Other")
        with self.assertRaisesRegex(UserError, "queued for another tenant"):
            run.with_context(**{TENANT_CONTEXT: other.id})._perform()
        self.assertEqual(run.state, "queued")


@tagged("post_install", "-at_install")
class TestRunJobRetries(CrewEngineCase):
    def test_the_job_function_declares_channel_and_retry_pattern(self):
        function = self.env.ref("mcp_crew_engine.job_function_mcp_crew_run_perform")
        self.assertEqual(function.name, "<mcp.crew.run>._perform")
        self.assertEqual(function.channel, "root.mcp.crew")
        pattern = {1: (5, 15), 2: (20, 60), 3: (60, 180)}
        self.assertEqual(function._parse_retry_pattern(), pattern)
        delivery = self.env.ref("mcp_crew_engine.job_function_mcp_crew_run_deliver")
        self.assertEqual(delivery.channel, "root.mcp.crew")

        run = self.ask("Oi", run_now=False)
        job = Job.load(self.env, run.job_uuid)
        self.assertEqual(job.job_config.retry_pattern, pattern)
        job.retry = 2
        self.assertTrue(20 <= job._get_retry_seconds() <= 60, "jittered within [20, 60]")

    def test_llm_429_retries_later_and_loses_nothing(self):
        run = self.ask("Quanto custa a camiseta?", run_now=False, message_id="m-429")
        self.llm.script(fake.error(429, "slow down", retry_after=7))
        with self.assertRaises(RetryableJobError) as caught:
            Job.load(self.env, run.job_uuid).perform()
        self.assertEqual(caught.exception.seconds, 8, "the provider's Retry-After, plus one")
        self.assertEqual(len(self.llm.chat_requests), 1)
        # the job's transaction is rolled back: the run waits for the next try, as recorded
        self.assertEqual((run.state, run.request), ("queued", "Quanto custa a camiseta?"))
        self.assertTrue(run.job_id)

        self.llm.script(fake.answer("R$ 49,90."))
        Job.load(self.env, run.job_uuid).perform()
        self.assertAnswered(run, "R$ 49,90.")

    def test_a_job_performed_again_after_the_end_does_nothing(self):
        run = self.ask("Oi", run_now=False)
        self.llm.script(fake.answer("Olá!"))
        Job.load(self.env, run.job_uuid).perform()
        self.assertAnswered(run, "Olá!")
        result = Job.load(self.env, run.job_uuid).perform()
        self.assertIn("had already ended", result)
        self.assertEqual(len(self.llm.chat_requests), 1)

    def test_llm_500_on_every_try_but_the_last_retries(self):
        run = self.ask("Quanto custa a camiseta?", run_now=False)
        for retry in range(LLM_ATTEMPTS - 1):
            self.queue_job_of(run).retry = retry
            self.llm.script(fake.error(500, "upstream broke"))
            with self.subTest(retry=retry), self.assertRaises(RetryableJobError):
                Job.load(self.env, run.job_uuid).perform()
            self.assertEqual(run.state, "queued")

    def test_llm_failing_on_the_last_try_hands_off(self):
        run = self.ask("Quanto custa a camiseta?", run_now=False)
        self.queue_job_of(run).retry = LLM_ATTEMPTS - 1
        self.llm.script(fake.error(500, "upstream broke"))
        Job.load(self.env, run.job_uuid).perform()
        self.assertHandoff(run, "llm_unavailable")
        self.assertEqual(run.attempts, LLM_ATTEMPTS)
        self.assertIn("InternalServerError", run.handoff_detail)
        [failed] = self.steps_of(run, "llm")
        self.assertEqual(failed["status"], 500)
        # the customer is told a person takes over: the answers without an LLM found nothing
        self.assertEqual(run.answer_source, "handoff")
        self.assertTrue(run.answer)

    def test_an_llm_call_that_times_out_is_retried_then_handed_off(self):
        self.crew.llm_timeout = 1
        run = self.ask("Quanto custa a camiseta?", run_now=False)
        self.llm.script(fake.slow(fake.answer("too late"), 4))
        with self.assertRaises(RetryableJobError):
            Job.load(self.env, run.job_uuid).perform()
        self.assertEqual(run.state, "queued")

        self.queue_job_of(run).retry = LLM_ATTEMPTS - 1
        self.llm.script(fake.slow(fake.answer("too late"), 4))
        Job.load(self.env, run.job_uuid).perform()
        self.assertHandoff(run, "llm_unavailable")
        self.assertIn("Timeout", run.handoff_detail)
        self.assertEqual(len(self.llm.chat_requests), 2)

    def test_run_now_hands_off_at_once_when_the_llm_fails(self):
        self.llm.script(fake.error(429, "slow down"))
        run = self.ask("Quanto custa a camiseta?")
        self.assertHandoff(run, "llm_unavailable")
        self.assertEqual(len(self.llm.chat_requests), 1)


@tagged("post_install", "-at_install")
class TestDelivery(CrewEngineCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.partner = cls.env["res.partner"].create({"name": "Cliente Interno"})

    def test_an_answer_is_posted_in_the_asking_records_chatter(self):
        with trap_jobs() as trap:
            run = self.ask("Quanto custa a camiseta?", record=self.partner, run_now=False)
            self.assertEqual(
                (run.reply_to, run.origin_model, run.origin_id),
                ("record", "res.partner", self.partner.id),
            )
            self.llm.script(fake.answer("A camiseta custa R$ 49,90."))
            trap.perform_enqueued_jobs()
            self.assertAnswered(run)
            self.assertEqual(run.delivery_state, "pending")
            trap.assert_jobs_count(1, only=run._deliver)
            [delivery] = trap.enqueued_jobs
            self.assertEqual(delivery.channel, "root.mcp.crew")
            trap.perform_enqueued_jobs()
        self.assertEqual(run.delivery_state, "done")
        note = self.partner.message_ids.filtered(lambda message: "R$ 49,90" in str(message.body))
        self.assertEqual(len(note), 1)
        self.assertTrue(note.subtype_id.internal)

    def test_a_handoff_is_posted_too(self):
        self.llm.script(fake.tool_calls(("handoff_to_human", {"reason": "pedido de reembolso"})))
        run = self.ask("Quero meu dinheiro de volta", record=self.partner)
        self.assertHandoff(run, "agent_decision")
        run._deliver()
        self.assertEqual(run.delivery_state, "done")
        self.assertTrue(
            self.partner.message_ids.filtered(lambda message: "reembolso" in str(message.body))
        )

    def test_an_unknown_delivery_hook_fails_with_a_warning(self):
        self.llm.script(fake.answer("Temos sim!"))
        run = self.ask("Vocês têm camiseta?", record=self.partner)
        # the addon that delivered to 'pigeon' was uninstalled after the run was recorded
        self.env.flush_all()
        self.env.cr.execute("UPDATE mcp_crew_run SET reply_to = 'pigeon' WHERE id = %s", [run.id])
        run.invalidate_recordset()
        with self.assertLogs(RUN_LOGGER, "WARNING") as logs:
            run._deliver()
        self.assertIn("no delivery for 'pigeon'", logs.output[0])
        self.assertEqual((run.delivery_state, run.delivery_error), ("failed", "no pigeon"))
        self.assertEqual(run.answer, "Temos sim!", "the answer stays in the run")

    def test_asking_for_a_delivery_no_addon_provides_is_refused(self):
        runs_before = self.env["mcp.crew.run"].search_count([])
        with self.assertRaisesRegex(UserError, "No delivery 'pigeon'"):
            self.ask("Vocês têm camiseta?", reply_to="pigeon")
        self.assertEqual(self.env["mcp.crew.run"].search_count([]), runs_before)


@tagged("post_install", "-at_install")
class TestCallerDecisions(CrewEngineCase):
    """What a caller (a channel's bridge) may decide for a request: its crew, or a handoff."""

    def test_a_chosen_crew_answers_without_routing(self):
        support = self.make_crew(self.tenant, code="support", purpose="Trocas e devoluções")
        self.make_agent(support, name="Suporte")
        self.llm.script(fake.answer("Posso ajudar com a troca."))
        run = self.ask("Quanto custa a camiseta?", crew=support)
        self.assertAnswered(run, "Posso ajudar com a troca.")
        self.assertEqual(run.crew_id, support, "the words point to sales; the caller chose")
        self.assertEqual(run.routing_stage, "rules")
        self.assertIn("chose crew support", run.routing_reason)

    def test_an_archived_chosen_crew_hands_off(self):
        support = self.make_crew(self.tenant, code="support", purpose="Trocas e devoluções")
        self.make_agent(support, name="Suporte")
        run = self.ask("Oi", crew=support, run_now=False)
        support.active = False
        run._perform()
        self.assertHandoff(run, "routing")
        self.assertIn("not active", run.routing_reason)

    def test_another_tenants_crew_is_refused(self):
        other = self.make_tenant("Outra Loja")
        crew = self.make_crew(other, code="sales")
        with self.assertRaisesRegex(UserError, "not a crew of this tenant"):
            self.ask("Oi", crew=crew)

    def test_a_handoff_decided_by_the_caller_asks_no_llm(self):
        run = self.ask("Oi", handoff=("out_of_hours", "closed on Sundays"))
        self.assertHandoff(run, "out_of_hours")
        self.assertEqual(run.handoff_detail, "closed on Sundays")
        self.assertEqual(self.llm.chat_requests, [])

    def test_routing_to_the_handoff_crew_hands_off(self):
        self.make_crew(
            self.tenant,
            code="handoff",
            purpose="O cliente quer falar com um atendente humano",
            keywords="atendente, humano, pessoa",
        )
        run = self.ask("Quero falar com um atendente humano, por favor")
        self.assertHandoff(run, "handoff_crew")
        self.assertEqual(run.crew_id.code, "handoff")
        self.assertEqual(self.llm.chat_requests, [])


@tagged("post_install", "-at_install")
class TestTryWizard(CrewEngineCase):
    def test_send_shows_routing_and_answer(self):
        wizard = (
            self.env["mcp.crew.try"]
            .with_user(self.manager)
            .create({"tenant_id": self.tenant.id, "message": "Quanto custa a camiseta?"})
        )
        self.llm.script(fake.answer("A camiseta custa R$ 49,90."))
        action = wizard.action_send()
        self.assertEqual((action["res_model"], action["res_id"]), ("mcp.crew.try", wizard.id))
        self.assertEqual(wizard.crew_id, self.crew)
        self.assertEqual((wizard.state, wizard.routing_stage), ("answered", "rules"))
        self.assertIn("only crew", wizard.routing_reason)
        self.assertEqual(wizard.answer, "A camiseta custa R$ 49,90.")
        self.assertIn("R$ 49,90", wizard.transcript)
        self.assertFalse(wizard.message, "ready for the next message")

        # the next message of the same wizard continues the conversation
        wizard.message = "E tem no tamanho M?"
        self.llm.script(fake.answer("Tem sim."))
        wizard.action_send()
        self.assertEqual(wizard.answer, "Tem sim.")
        contents = [message["content"] for message in self.llm.chat_requests[1]["messages"]]
        self.assertIn("A camiseta custa R$ 49,90.", contents)

    def test_an_empty_message_is_refused(self):
        wizard = self.env["mcp.crew.try"].create({"tenant_id": self.tenant.id, "message": " \n "})
        with self.assertRaisesRegex(UserError, "Write the customer's message first"):
            wizard.action_send()
        self.assertFalse(wizard.run_id)
        self.assertFalse(self.llm.requests)
