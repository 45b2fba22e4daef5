# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Running a crew against the fake LLM with real built-in Odoo tools: steps, costs, the
transcript, delegation, the caches, the conversation's context, and tenants kept apart."""

from odoo import Command
from odoo.tests import tagged

from . import fake_llm_server as fake
from .common import PRODUCT_SEARCH, CrewEngineCase

QUESTION = "Quanto custa a camiseta azul?"


@tagged("post_install", "-at_install")
class TestRunningACrew(CrewEngineCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.odoo_server = cls.with_odoo_tools()
        cls.agent.tool_ids = [Command.link(cls.tool(cls.odoo_server, PRODUCT_SEARCH).id)]

    def test_answer_with_a_tool_call(self):
        # enough blue shirts for the search result to be cut in the recorded step
        self.env["product.product"].create(
            [
                {"name": f"Camiseta Azul Estampada Edição Limitada Número {number}"}
                for number in range(9)
            ]
        )
        self.llm.script(
            fake.tool_calls((PRODUCT_SEARCH, {"query": "Camiseta Azul"})),
            fake.answer("A Camiseta Azul Marinho custa R$ 49,90."),
        )
        run = self.ask(f"{QUESTION} <script>alert('x')</script>")

        self.assertAnswered(run, "A Camiseta Azul Marinho custa R$ 49,90.")
        self.assertEqual(run.answer_source, "llm")
        self.assertEqual(run.crew_id, self.crew)
        self.assertEqual((run.routing_stage, run.routing_score), ("rules", 1.0))
        self.assertIn("the only crew serving channel 'whatsapp'", run.routing_reason)
        # the second LLM request read the real tool's result
        tool_message = self.llm.chat_requests[1]["messages"][-1]
        self.assertEqual(tool_message["role"], "tool")
        self.assertIn("Camiseta Azul Marinho", tool_message["content"])
        self.assertIn("49.9", tool_message["content"])

        llm_steps, tool_steps = self.steps_of(run, "llm"), self.steps_of(run, "tool")
        self.assertEqual([step["finish_reason"] for step in llm_steps], ["tool_calls", "stop"])
        self.assertEqual(llm_steps[0]["tool_calls"], [PRODUCT_SEARCH])
        [tool_step] = tool_steps
        self.assertEqual(tool_step["tool"], PRODUCT_SEARCH)
        self.assertEqual(tool_step["arguments"], '{"query":"Camiseta Azul"}')
        self.assertFalse(tool_step["error"])
        self.assertIn("Camiseta Azul Marinho", tool_step["result"])
        self.assertRegex(tool_step["result"], r"… \[\d+ more characters\]$")
        self.assertLess(len(tool_step["result"]), 1100)
        # through the integrator: audited as the tenant's tool call
        audit = self.audit_rows(operation="tool.call", target=PRODUCT_SEARCH)
        self.assertEqual((audit.tenant_id, audit.status), (self.tenant, "ok"))

        self.assertEqual((run.llm_calls, run.cache_hits), (2, 0))
        self.assertEqual((run.tokens_in, run.tokens_out), (200, 40))
        self.assertFalse(run.tokens_estimated)
        self.assertTrue(run.cost_known)
        self.assertGreater(run.cost, 0)
        self.assertGreater(run.duration, 0)
        self.assertGreater(run.llm_duration, 0)
        self.assertGreater(run.tool_duration, 0)
        self.assertTrue(run.started_at and run.ended_at)

        transcript = str(run.transcript)
        self.assertNotIn("<script>", transcript)
        self.assertIn("&lt;script&gt;", transcript)
        self.assertIn(PRODUCT_SEARCH, transcript)
        self.assertIn("Camiseta Azul", transcript)
        self.assertIn("100 → 20 tokens", transcript)
        self.assertIn("A Camiseta Azul Marinho custa R$ 49,90.", transcript)

    def test_the_system_prompt_carries_the_tenants_behaviour(self):
        self.tenant.write(
            {
                "tone": "formal",
                "business_rules": "Trocas em até 30 dias.",
                "faq_ids": [Command.create({"question": "Aceitam Pix?", "answer": "Sim."})],
            }
        )
        self.llm.script(fake.answer("Pois não."))
        self.ask("Bom dia")
        system = self.llm.chat_requests[0]["messages"][0]
        self.assertEqual(system["role"], "system")
        self.assertIn("a sales assistant of a clothing store", system["content"])
        self.assertIn("Tone: formal", system["content"])
        self.assertIn("Trocas em até 30 dias.", system["content"])
        self.assertIn("Q: Aceitam Pix?\nA: Sim.", system["content"])

    def test_a_hierarchical_crew_delegates_and_combines(self):
        crew = self.make_crew(self.make_tenant("Hierarquia"), code="orders", process="hierarchical")
        self.with_llm(crew.tenant_id)
        manager = self.make_agent(crew, name="Gerente", role="the store's service manager")
        self.make_agent(crew, name="Estoquista", role="the stock keeper", sequence=20)
        self.assertEqual(crew.agent_ids[0], manager)
        self.llm.script(
            fake.tool_calls(
                ("delegate", {"agent": "Estoquista", "task": "Estoque da camiseta M?"})
            ),
            fake.answer("Há 5 camisetas M no estoque."),
            fake.answer("Sim! Temos 5 camisetas no tamanho M."),
        )
        run = self.ask("Tem camiseta M?", tenant=crew.tenant_id)

        self.assertAnswered(run, "Sim! Temos 5 camisetas no tamanho M.")
        [delegation] = self.steps_of(run, "delegation")
        self.assertEqual(
            (delegation["agent"], delegation["to"], delegation["task"]),
            ("Gerente", "Estoquista", "Estoque da camiseta M?"),
        )
        self.assertEqual(
            [step["agent"] for step in self.steps_of(run, "llm")],
            ["Gerente", "Estoquista", "Gerente"],
        )
        manager_tools = [tool["function"]["name"] for tool in self.llm.chat_requests[0]["tools"]]
        self.assertIn("delegate", manager_tools)
        worker_request = self.llm.chat_requests[1]["messages"]
        self.assertIn("the stock keeper", worker_request[0]["content"])
        self.assertEqual(worker_request[-1], {"role": "user", "content": "Estoque da camiseta M?"})
        combined = self.llm.chat_requests[2]["messages"][-1]
        self.assertEqual(
            (combined["role"], combined["content"]), ("tool", "Há 5 camisetas M no estoque.")
        )
        self.assertEqual(run.llm_calls, 3)
        self.assertIn("Estoquista", str(run.transcript))

    def test_a_sequential_crew_passes_results_to_the_last_agent(self):
        self.make_agent(self.crew, name="Revisor", role="a reviewer", sequence=20)
        self.llm.script(
            fake.answer("Rascunho: R$ 49,90."), fake.answer("A camiseta custa R$ 49,90.")
        )
        run = self.ask(QUESTION)
        self.assertAnswered(run, "A camiseta custa R$ 49,90.")
        last = self.llm.chat_requests[1]["messages"][-1]
        self.assertIn("Vendedor: Rascunho: R$ 49,90.", last["content"])


@tagged("post_install", "-at_install")
class TestCaches(CrewEngineCase):
    def test_an_identical_request_is_answered_from_the_cache(self):
        self.llm.script(fake.answer("A camiseta azul custa R$ 49,90."))
        first = self.ask(QUESTION)
        self.assertEqual((first.llm_calls, first.cache_hits, first.routing_cached), (1, 0, False))

        second = self.ask("  quanto CUSTA a camiseta azúl  ")
        self.assertAnswered(second, "A camiseta azul custa R$ 49,90.")
        self.assertEqual((second.llm_calls, second.cache_hits), (0, 1))
        self.assertTrue(second.routing_cached)
        self.assertEqual(second.cost, 0)
        self.assertEqual(len(self.llm.chat_requests), 1, "no second LLM call")
        self.assertTrue(self.steps_of(second, "llm")[0]["cached"])
        self.assertIn("cached", str(second.transcript))

    def test_a_different_question_is_never_served_from_the_cache(self):
        self.llm.script(fake.answer("Sim, pagas."), fake.answer("Não há faturas em aberto."))
        self.ask("Minhas faturas estão pagas?")
        run = self.ask("Minhas faturas não estão pagas?")
        self.assertEqual((run.cache_hits, run.answer), (0, "Não há faturas em aberto."))
        self.assertEqual(len(self.llm.chat_requests), 2)

    def test_with_temperature_above_zero_the_llm_is_asked_again(self):
        self.agent.temperature = 0.7
        self.llm.script(fake.answer("Custa R$ 49,90."), fake.answer("Sai por R$ 49,90!"))
        self.ask(QUESTION)
        run = self.ask(QUESTION)
        self.assertEqual((run.llm_calls, run.cache_hits, run.answer), (1, 0, "Sai por R$ 49,90!"))
        self.assertEqual(len(self.llm.chat_requests), 2)
        self.assertEqual(self.llm.chat_requests[1]["temperature"], 0.7)

    def test_a_crew_change_drops_the_stored_answers(self):
        self.llm.script(fake.answer("Custa R$ 49,90."), fake.answer("Custa R$ 39,90 agora."))
        self.ask(QUESTION)
        # a change the answers do not depend on: dropped all the same, by the invalidation
        self.crew.name = "Vendas"
        run = self.ask(QUESTION)
        self.assertEqual((run.llm_calls, run.cache_hits), (1, 0))
        self.assertFalse(run.routing_cached)
        self.assertEqual(run.answer, "Custa R$ 39,90 agora.")
        self.assertEqual(len(self.llm.chat_requests), 2)

    def test_an_agent_change_drops_the_stored_answers(self):
        self.llm.script(fake.answer("Custa R$ 49,90."), fake.answer("Custa R$ 49,90, viu?"))
        self.ask(QUESTION)
        self.agent.instructions = "Seja breve."
        run = self.ask(QUESTION)
        self.assertEqual((run.llm_calls, run.cache_hits), (1, 0))
        self.assertIn("Seja breve.", self.llm.chat_requests[1]["messages"][0]["content"])


@tagged("post_install", "-at_install")
class TestConversationContext(CrewEngineCase):
    def test_the_second_message_carries_the_first_exchange(self):
        self.llm.script(fake.answer("Temos sim, a azul marinho."), fake.answer("Custa R$ 49,90."))
        first = self.ask("Vocês têm camiseta azul?", conversation="c-42", message_id="1")
        second = self.ask("E quanto custa?", conversation="c-42", message_id="2")
        self.assertAnswered(first)
        self.assertAnswered(second, "Custa R$ 49,90.")
        first_messages = self.llm.chat_requests[0]["messages"]
        self.assertEqual([message["role"] for message in first_messages], ["system", "user"])
        messages = self.llm.chat_requests[1]["messages"]
        self.assertEqual(
            messages[1:],
            [
                {"role": "user", "content": "Vocês têm camiseta azul?"},
                {"role": "assistant", "content": "Temos sim, a azul marinho."},
                {"role": "user", "content": "E quanto custa?"},
            ],
        )

    def test_other_conversations_do_not_leak_in(self):
        self.llm.script(fake.answer("Temos sim."), fake.answer("Olá!"))
        self.ask("Vocês têm camiseta azul?", conversation="c-1")
        self.ask("Oi", conversation="c-2")
        roles = [message["role"] for message in self.llm.chat_requests[1]["messages"]]
        self.assertEqual(roles, ["system", "user"])


@tagged("post_install", "-at_install")
class TestTenancy(CrewEngineCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tenant_b = cls.with_llm(cls.make_tenant("Acme"))
        cls.crew_b = cls.make_crew(cls.tenant_b)  # the same code, purpose and keywords
        cls.agent_b = cls.make_agent(cls.crew_b)

    def test_runs_and_caches_never_cross_tenants(self):
        self.llm.script(fake.answer("Resposta de A."), fake.answer("Resposta de B."))
        run_a = self.ask(QUESTION, conversation="c-1", message_id="m-1")
        run_b = self.ask(QUESTION, tenant=self.tenant_b, conversation="c-1", message_id="m-1")

        self.assertNotEqual(run_a, run_b, "the same message id of another tenant is a new run")
        self.assertEqual((run_a.tenant_id, run_a.crew_id), (self.tenant, self.crew))
        self.assertEqual((run_b.tenant_id, run_b.crew_id), (self.tenant_b, self.crew_b))
        self.assertEqual((run_b.routing_cached, run_b.cache_hits), (False, 0))
        self.assertEqual(run_b.answer, "Resposta de B.")
        self.assertEqual(len(self.llm.chat_requests), 2, "B asked the LLM itself")
        roles = [message["role"] for message in self.llm.chat_requests[1]["messages"]]
        self.assertEqual(roles, ["system", "user"], "nothing of A's conversation c-1")

        # each tenant's own second request is served from its own cache
        again_a = self.ask(QUESTION)
        again_b = self.ask(QUESTION, tenant=self.tenant_b)
        self.assertEqual((again_a.answer, again_a.cache_hits), ("Resposta de A.", 1))
        self.assertEqual((again_b.answer, again_b.cache_hits), ("Resposta de B.", 1))
        self.assertEqual(len(self.llm.chat_requests), 2)
        runs = self.env["mcp.crew.run"].search([("tenant_id", "=", self.tenant_b.id)])
        self.assertEqual(runs, run_b | again_b)
