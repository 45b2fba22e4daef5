# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Without an LLM (none configured, the day's budget spent, the provider failing for good) or
without a crew or agent to run, the engine still answers what data alone answers (hours, FAQ,
products) and hands off the rest with the reason."""

from odoo import Command
from odoo.tests import tagged

from ..models.mcp_tenant import DEFAULT_MODEL_PARAM
from . import fake_llm_server as fake
from .common import PRODUCT_SEARCH, CrewEngineCase

FAQ_QUESTION = "Vocês aceitam pagamento com Pix?"
FAQ_ANSWER = "Sim, aceitamos Pix e cartão."
EVERY_DAY_8_TO_18 = [
    Command.create({"weekday": str(day), "hour_from": 8.0, "hour_to": 18.0}) for day in range(7)
]


@tagged("post_install", "-at_install")
class TestWithoutLlm(CrewEngineCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.plain = cls.make_tenant(
            "Sem LLM",
            hours_ids=EVERY_DAY_8_TO_18,
            faq_ids=[Command.create({"question": FAQ_QUESTION, "answer": FAQ_ANSWER})],
        )
        cls.make_agent(cls.make_crew(cls.plain))

    def assertNoLlmRequest(self):
        self.assertEqual(self.llm.requests, [])

    def test_the_faq_answers(self):
        run = self.ask(FAQ_QUESTION.lower(), tenant=self.plain)
        self.assertAnswered(run, FAQ_ANSWER)
        self.assertEqual(run.answer_source, "faq")
        self.assertIn("no LLM model is configured", run.notes)
        self.assertEqual((run.llm_calls, run.cost), (0, 0))
        self.assertNoLlmRequest()

    def test_the_opening_hours_answer(self):
        run = self.ask("Que horas vocês abrem?", tenant=self.plain)
        self.assertAnswered(run)
        self.assertEqual(run.answer_source, "hours")
        self.assertIn("08:00", run.answer)
        self.assertNoLlmRequest()

    def test_the_rest_is_handed_off_with_a_message_for_the_customer(self):
        run = self.ask("Quero trocar o meu pedido 123 por outro modelo", tenant=self.plain)
        self.assertHandoff(run, "no_llm")
        self.assertEqual(run.answer_source, "handoff")
        self.assertTrue(run.answer, "the customer is told a person takes over")
        self.assertIn("no LLM model is configured", run.handoff_detail)
        self.assertNoLlmRequest()

    def test_products_are_searched_with_the_tenants_tool(self):
        self.with_odoo_tools(self.plain)
        run = self.ask("Qual o preço da camiseta azul?", tenant=self.plain)
        self.assertAnswered(run)
        self.assertEqual(run.answer_source, "products")
        self.assertIn("Camiseta Azul Marinho", run.answer)
        audit = self.audit_rows(operation="tool.call", target=PRODUCT_SEARCH)
        self.assertTrue(audit, "searched through the integrator")
        self.assertEqual(audit.tenant_id, self.plain)
        self.assertNoLlmRequest()

    def test_the_default_model_of_the_settings_is_used_when_the_tenant_names_none(self):
        self.with_llm(self.plain)
        self.plain.llm_model = False
        self.env["ir.config_parameter"].sudo().set_param(DEFAULT_MODEL_PARAM, "openai/gpt-4o-mini")
        self.llm.script(fake.answer("Trocamos sim, em até 30 dias."))
        run = self.ask("Quero trocar o meu pedido 123 por outro modelo", tenant=self.plain)
        self.assertAnswered(run, "Trocamos sim, em até 30 dias.")
        self.assertEqual(self.llm.chat_requests[0]["model"], "gpt-4o-mini")


@tagged("post_install", "-at_install")
class TestNoCrewOrNoAgent(CrewEngineCase):
    """With an LLM configured, but nobody to run it: the customer is still told, and a person
    takes over with the reason."""

    def test_no_crew_serves_the_channel(self):
        self.crew.channels = "whatsapp, instagram"
        run = self.ask("Quanto custa a camiseta?", channel="email")
        self.assertHandoff(run, "routing")
        self.assertFalse(run.crew_id)
        self.assertIn("no active crew serves the channel 'email'", run.routing_reason)
        self.assertEqual(run.answer_source, "handoff")
        self.assertEqual(self.llm.requests, [])

    def test_a_crew_without_active_agents(self):
        self.agent.active = False
        run = self.ask("Quanto custa a camiseta?")
        self.assertHandoff(run, "no_agent")
        self.assertEqual(run.crew_id, self.crew)
        self.assertIn("crew sales has no active agent", run.handoff_detail)
        self.assertEqual(self.llm.requests, [])


@tagged("post_install", "-at_install")
class TestBudgetSpent(CrewEngineCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tenant.write(
            {
                "llm_daily_budget": 0.01,
                "faq_ids": [Command.create({"question": FAQ_QUESTION, "answer": FAQ_ANSWER})],
            }
        )

    def spend_the_budget(self):
        self.env["mcp.crew.run"].create(
            {"tenant_id": self.tenant.id, "request": "earlier", "state": "answered", "cost": 0.02}
        )
        self.assertGreater(self.tenant.llm_spent_today, self.tenant.llm_daily_budget)

    def test_a_spent_budget_hands_off_without_asking_the_llm(self):
        self.spend_the_budget()
        run = self.ask("Quero trocar o meu pedido 123 por outro modelo")
        self.assertHandoff(run, "budget_spent")
        self.assertIn("daily LLM budget is spent", run.handoff_detail)
        self.assertEqual(run.answer_source, "handoff")
        self.assertEqual(self.llm.requests, [])

    def test_a_spent_budget_still_answers_from_the_faq(self):
        self.spend_the_budget()
        run = self.ask(FAQ_QUESTION)
        self.assertAnswered(run, FAQ_ANSWER)
        self.assertEqual(run.answer_source, "faq")
        self.assertEqual(self.llm.requests, [])

    def test_an_llm_failing_for_good_still_answers_from_the_faq(self):
        self.llm.script(fake.error(500, "upstream broke"))
        run = self.ask(FAQ_QUESTION)  # at once: no retry left
        self.assertAnswered(run, FAQ_ANSWER)
        self.assertEqual(run.answer_source, "faq")
        self.assertIn("InternalServerError", run.notes)
        self.assertEqual(len(self.llm.chat_requests), 1)

    def test_yesterdays_spending_does_not_count(self):
        earlier = self.env["mcp.crew.run"].create(
            {"tenant_id": self.tenant.id, "request": "earlier", "state": "answered", "cost": 0.02}
        )
        self.env.flush_all()
        self.env.cr.execute(
            "UPDATE mcp_crew_run SET create_date = now() - interval '2 days' WHERE id = %s",
            [earlier.id],
        )
        self.llm.script(fake.answer("Trocamos sim."))
        run = self.ask("Quero trocar o meu pedido 123 por outro modelo")
        self.assertAnswered(run, "Trocamos sim.")
        self.tenant.invalidate_recordset(["llm_spent_today"])
        self.assertEqual(self.tenant.llm_spent_today, run.cost)
