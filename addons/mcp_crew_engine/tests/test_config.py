# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Crews and agents as an admin configures them: what is refused, and who sees what."""

from odoo import Command
from odoo.exceptions import AccessError, ValidationError
from odoo.tests import new_test_user, tagged

from . import fake_llm_server as fake
from .common import CrewEngineCase

USER_GROUPS = "base.group_user,mcp_integrator.group_mcp_user"


@tagged("post_install", "-at_install")
class TestCrewConfig(CrewEngineCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.other_tenant = cls.make_tenant("Other")
        cls.lookup = cls.make_tool(cls.tenant, "lookup")
        cls.other_lookup = cls.make_tool(cls.other_tenant, "lookup")

    @classmethod
    def make_tool(cls, tenant, name, **vals):
        """A remote tool declared by hand (never called here)."""
        server = cls.make_server(tenant=tenant, url="http://127.0.0.1:9/mcp")
        return cls.env["mcp.tool"].create(
            {
                "server_id": server.id,
                "name": name,
                "remote_name": name,
                "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
                "read_only": True,
                **vals,
            }
        )

    # crews ------------------------------------------------------------------------------------
    def test_crew_code_is_unique_per_tenant(self):
        self.make_crew(self.other_tenant, code="sales")  # the same code at another tenant
        with self.assertViolates("mcp_crew_code_per_tenant_uniq"):
            self.make_crew(self.tenant, code="sales")

    def test_invalid_routing_hints_are_refused(self):
        invalid = {
            "code with spaces": {"code": "Sales Team"},
            "bad channel": {"channels": "whatsapp, e mail"},
            "nothing to route on": {"purpose": "?!", "keywords": False, "examples": False},
        }
        for what, vals in invalid.items():
            with self.subTest(what), self.assertRefused(ValidationError, "cannot be routed"):
                self.make_crew(self.tenant, **{"code": "support", **vals})
        with self.assertRefused(ValidationError, "invalid channel names"):
            self.crew.channels = "whatsapp;instagram!"

    # agents -----------------------------------------------------------------------------------
    def test_agent_name_is_unique_per_crew(self):
        support = self.make_crew(self.tenant, code="support", purpose="Trocas e devoluções")
        self.make_agent(support, name=self.agent.name)  # the same name in another crew
        with self.assertViolates("mcp_agent_name_per_crew_uniq"):
            self.make_agent(self.crew, name=self.agent.name)

    def test_temperature_and_step_limit_bounds(self):
        refused = {
            "mcp_agent_temperature_range": ({"temperature": -0.1}, {"temperature": 2.01}),
            "mcp_agent_max_steps_positive": ({"max_steps": 0},),
        }
        for constraint, writes in refused.items():
            for vals in writes:
                with self.subTest(vals), self.assertViolates(constraint):
                    self.agent.write(vals)
        self.agent.write({"temperature": 2.0, "max_steps": 1})
        self.assertEqual((self.agent.temperature, self.agent.max_steps), (2.0, 1))

    def test_crew_run_limits_bounds(self):
        for vals in ({"max_steps": 0}, {"max_tokens": 0}, {"max_seconds": 0}, {"llm_timeout": -1}):
            with self.subTest(vals), self.assertViolates("mcp_crew_limits_positive"):
                self.crew.write(vals)
        # an LLM call timeout beyond the run's time is allowed: the run's time bounds the call
        # (test_faults.TestLlmFaults.test_the_crews_time_limit)
        self.crew.write({"max_seconds": 5, "llm_timeout": 30})
        self.assertEqual((self.crew.max_seconds, self.crew.llm_timeout), (5, 30))

    def test_bad_llm_model_strings_are_refused(self):
        for model in ("gpt-4o-mini", "openai/", "OpenAI/gpt-4o", "openai/gpt 4o", "/gpt-4o"):
            with self.subTest(model):
                with self.assertRefused(ValidationError, "not a litellm model string"):
                    self.agent.llm_model = model
                with self.assertRefused(ValidationError, "not a litellm model string"):
                    self.tenant.llm_model = model
        self.agent.llm_model = "ollama/llama3.1:8b"
        self.assertEqual(self.agent.llm_model, "ollama/llama3.1:8b")

    def test_an_agent_cannot_get_another_tenants_tool(self):
        with self.assertRefused(ValidationError, "another tenant's tool"):
            self.agent.tool_ids = [Command.link(self.other_lookup.id)]

    def test_an_agent_cannot_get_a_tool_for_other_crews(self):
        self.lookup.crew_codes = "support, returns"
        with self.assertRefused(ValidationError, "only for the crews support, returns"):
            self.agent.tool_ids = [Command.link(self.lookup.id)]
        self.lookup.crew_codes = "support, sales"
        self.agent.tool_ids = [Command.link(self.lookup.id)]
        self.assertEqual(self.agent.tool_ids, self.lookup)

    def test_a_tool_later_closed_to_the_crew_is_left_out_of_the_run(self):
        self.agent.tool_ids = [Command.link(self.lookup.id)]
        self.llm.script(fake.answer("Posso ajudar."))
        self.ask("Vocês têm camiseta?")
        offered = [tool["function"]["name"] for tool in self.llm.chat_requests[0]["tools"]]
        self.assertIn("lookup", offered)

        self.lookup.crew_codes = "support"  # the agent keeps the link; the run must not use it
        self.llm.reset([fake.answer("Posso ajudar.")])
        run = self.ask("Vocês têm camiseta?")
        self.assertAnswered(run)
        offered = [tool["function"]["name"] for tool in self.llm.chat_requests[0]["tools"]]
        self.assertNotIn("lookup", offered)
        self.assertIn("handoff_to_human", offered)

    # record rules -----------------------------------------------------------------------------
    def test_a_user_of_another_company_sees_no_crew_agent_faq_or_run(self):
        company_b = self.env["res.company"].create({"name": "Company B"})
        tenant_b = self.make_tenant("Tenant B", company_id=company_b.id)
        crew_b = self.make_crew(tenant_b)
        self.env["mcp.tenant.faq"].create(
            {"tenant_id": self.tenant.id, "question": "Aceitam Pix?", "answer": "Sim."}
        )
        run_a = self.env["mcp.crew.run"].create({"tenant_id": self.tenant.id, "request": "oi"})
        run_b = self.env["mcp.crew.run"].create({"tenant_id": tenant_b.id, "request": "oi"})
        user_b = new_test_user(
            self.env,
            login="mcp_crew_user_b",
            groups=USER_GROUPS,
            company_id=company_b.id,
            company_ids=[Command.set(company_b.ids)],
        )
        env = self.env(user=user_b)
        self.assertEqual(env["mcp.crew"].search([]), crew_b)
        self.assertEqual(env["mcp.crew.run"].search([]), run_b)
        self.assertFalse(env["mcp.agent"].search([("tenant_id", "=", self.tenant.id)]))
        self.assertFalse(env["mcp.tenant.faq"].search([("tenant_id", "=", self.tenant.id)]))
        for record in (self.crew, self.agent, run_a):
            with self.subTest(record._name), self.assertRaises(AccessError):
                env[record._name].browse(record.id).read(["display_name"])
