# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""What an admin does in the browser: headless Chromium drives the real web client through the
tour of static/tests/tours/mcp_crew_engine_tours.js, the tenant's LLM being a fake provider."""

from odoo.tests import HttpCase, tagged

from .common import MODEL, CrewEngineCase
from .fake_llm_server import answer

# what the tour waits for in the "Try it" wizard
ANSWER = "Temos sim! O vestido floral no tamanho M custa R$ 129,90."


@tagged("post_install", "-at_install", "mcp_browser")
class TestBrowserTours(CrewEngineCase, HttpCase):
    # McpIntegratorCase puts the registry in test mode itself (it may be entered only once)
    registry_test_mode = False

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # the name the tour types; its LLM is the fake server, which the test scripts
        cls.tour_tenant = cls.with_llm(cls.make_tenant("Loja Tour"))

    def test_admin_creates_a_crew_and_tries_it(self):
        self.llm.script(answer(ANSWER))
        self.start_tour("/odoo", "mcp_crew_engine_crew_try_tour", login="admin")
        # the browser's requests changed the records behind this environment's cache
        self.env.invalidate_all()

        crew = self.env["mcp.crew"].search([("tenant_id", "=", self.tour_tenant.id)])
        self.assertEqual((crew.name, crew.code), ("Vendas Tour", "vendas"))
        self.assertIn("tamanhos", crew.purpose)
        self.assertEqual(crew.examples, "Vocês têm essa camiseta no tamanho G?")
        self.assertEqual(
            crew.agent_ids.mapped(lambda agent: (agent.name, agent.role)),
            [("Ana", "assistente de vendas de uma loja de roupas")],
        )

        run = self.env["mcp.crew.run"].search([("tenant_id", "=", self.tour_tenant.id)])
        self.assertEqual(len(run), 1)
        self.assertEqual((run.state, run.answer, run.answer_source), ("answered", ANSWER, "llm"))
        self.assertEqual((run.crew_id, run.channel), (crew, "whatsapp"))
        self.assertEqual(run.request, "Vocês têm o vestido floral no tamanho M?")
        self.assertEqual([step["model"] for step in self.steps_of(run, "llm")], [MODEL])

        # one crew: routed without asking the LLM; the agent the admin typed reached the model
        [request] = self.llm.requests
        self.assertEqual(request["authorization"], f"Bearer {self.api_key}")
        system = request["body"]["messages"][0]
        self.assertEqual(system["role"], "system")
        self.assertIn("You are assistente de vendas de uma loja de roupas.", system["content"])
