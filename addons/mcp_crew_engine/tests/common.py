# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Shared set-up of the crew engine's Odoo tests: a tenant whose LLM is the fake
OpenAI-compatible server on loopback, a crew with one agent, and helpers to ask and read."""

import contextlib
import uuid

from psycopg2 import IntegrityError

from odoo.tests import new_test_user

from odoo.addons.mcp_connectors.tests.common import McpConnectorsCase

from ..models.mcp_tenant import DEFAULT_MODEL_PARAM
from .fake_llm_server import FakeLLMServer

MODEL = "openai/gpt-4o-mini"  # in litellm's local cost map: runs have a real cost
PRODUCT_SEARCH = "odoo_product_search"


class CrewEngineCase(McpConnectorsCase):
    """The connectors' test case (own cache namespace, a tenant, a manager) with the fake LLM
    server running for the class, the tenant's LLM pointed at it, and a one-agent crew."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.llm = FakeLLMServer()
        cls.llm.__enter__()
        cls.addClassCleanup(cls.llm.__exit__, None, None, None)
        # no default model from the Settings: a tenant without its own has no LLM
        cls.env["ir.config_parameter"].sudo().set_param(DEFAULT_MODEL_PARAM, "")
        cls.api_key = f"sk-crewtest-{uuid.uuid4().hex}"
        cls.with_llm(cls.tenant)
        cls.crew = cls.make_crew(cls.tenant)
        cls.agent = cls.make_agent(cls.crew)

    def setUp(self):
        super().setUp()
        self.llm.reset()

    # configuration ----------------------------------------------------------------------------
    @classmethod
    def with_llm(cls, tenant):
        """Point ``tenant``'s LLM at the fake server, with an API key credential."""
        credential = cls.env["mcp.credential"].create(
            {
                "name": f"LLM key {tenant.code}",
                "kind": "api_key",
                "tenant_id": tenant.id,
                "secret_input": cls.api_key,
            }
        )
        tenant.write(
            {
                "llm_model": MODEL,
                "llm_api_base": cls.llm.api_base,
                "llm_credential_id": credential.id,
            }
        )
        return tenant

    @classmethod
    def make_crew(cls, tenant, code="sales", **vals):
        return cls.env["mcp.crew"].create(
            {
                "tenant_id": tenant.id,
                "name": code.title(),
                "code": code,
                "purpose": "Perguntas sobre produtos, preços e estoque da loja",
                "keywords": "preço, produto, estoque, camiseta",
                **vals,
            }
        )

    @classmethod
    def make_agent(cls, crew, name="Vendedor", **vals):
        return cls.env["mcp.agent"].create(
            {
                "crew_id": crew.id,
                "name": name,
                "role": "a sales assistant of a clothing store",
                "goal": "Answer questions about products with the store's data.",
                **vals,
            }
        )

    @classmethod
    def with_odoo_tools(cls, tenant=None):
        """The built-in Odoo tools of ``tenant`` (the ``mcp.server`` returned), run as a
        technical user who may read products, discovered; and a product to find, ``cls.shirt``."""
        env = cls.env
        tenant = tenant or cls.tenant
        groups = ["base.group_user"]
        if "stock.quant" in env:
            groups.append("stock.group_stock_user")
        bot = new_test_user(
            env, login=f"mcp_crew_bot_{tenant.account_id}", groups=",".join(groups), name="Bot"
        )
        server = cls.make_server(
            tenant=tenant, code="odoo", kind="odoo", run_as_user_id=bot.id, name="Odoo"
        )
        server.action_discover()
        cls.shirt = env["product.product"].create(
            {"name": "Camiseta Azul Marinho", "default_code": "CAM-AZ-01", "list_price": 49.9}
        )
        return server

    @staticmethod
    def tool(server, name):
        return server.tool_ids.filtered(lambda tool: tool.name == name)

    # asking -----------------------------------------------------------------------------------
    def ask(self, text, tenant=None, **kwargs):
        """``ask()`` run at once (no job), in a conversation of its own unless one is given."""
        kwargs.setdefault("run_now", True)
        kwargs.setdefault("conversation", f"conv-{uuid.uuid4().hex[:12]}")
        kwargs.setdefault("channel", "whatsapp")
        return self.env["mcp.integrator"].ask(tenant or self.tenant, text, **kwargs)

    def queue_job_of(self, run):
        return self.env["queue.job"].search([("uuid", "=", run.job_uuid)])

    def steps_of(self, run, kind):
        return [step for step in run.steps or [] if step.get("kind") == kind]

    @contextlib.contextmanager
    def assertRefused(self, exception, pattern):
        """``assertRaisesRegex`` that also rolls back what the refused operation wrote (a
        constraint is checked after the row is written)."""
        with self.assertRaisesRegex(exception, pattern) as caught, self.env.cr.savepoint():
            yield caught

    @contextlib.contextmanager
    def assertViolates(self, constraint):
        """The database refuses the write with ``constraint`` (Odoo logs the query at ERROR)."""
        with self.assertLogs("odoo.sql_db", "ERROR") as logs, self.assertRaises(IntegrityError):
            yield
        self.assertIn(constraint, "\n".join(logs.output))

    def assertHandoff(self, run, reason):
        self.assertEqual(
            (run.state, run.handoff_reason), ("handoff", reason), run.handoff_detail or run.notes
        )

    def assertAnswered(self, run, answer=None):
        self.assertEqual(run.state, "answered", f"{run.handoff_reason}: {run.handoff_detail}")
        if answer is not None:
            self.assertEqual(run.answer, answer)
