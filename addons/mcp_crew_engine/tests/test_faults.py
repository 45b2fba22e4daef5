# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Bad input and faults (issue 4, section 5): each run ends answered or handed off, with the
reason in the run, and the customer's message kept."""

import json
import socket

from odoo import Command
from odoo.tests import tagged

from odoo.addons.mcp_connectors.services import mcp_client
from odoo.addons.mcp_connectors.tests.common import McpServerProcess
from odoo.addons.queue_job.job import Job

from ..services.crew_requests import MAX_STORED_CHARS
from . import fake_llm_server as fake
from .common import PRODUCT_SEARCH, CrewEngineCase

CACHE_LOGGER = "odoo.addons.mcp_integrator.services.cache"
CONTEXT_LOGGER = "odoo.addons.mcp_crew_engine.services.conversation_context"


def closed_port():
    """A local port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@tagged("post_install", "-at_install")
class TestBadInput(CrewEngineCase):
    def assertRefusedAndKept(self, run, problem):
        self.assertHandoff(run, "bad_request")
        self.assertIn(problem, run.request_problem)
        self.assertEqual(run.handoff_detail, run.request_problem)
        self.assertEqual(self.llm.requests, [], "no LLM call for a message nobody can answer")

    def test_an_empty_message(self):
        for empty in ("", None):
            with self.subTest(repr(empty)):
                run = self.ask(empty)
                self.assertRefusedAndKept(run, "the message is empty")
                self.assertFalse(run.request)

    def test_a_whitespace_only_message(self):
        run = self.ask(" \n\t  ")
        self.assertRefusedAndKept(run, "the message is empty")
        self.assertEqual(run.request, " \n\t  ")

    def test_a_message_without_words(self):
        run = self.ask("👍👍 ?!")
        self.assertRefusedAndKept(run, "no words")
        self.assertEqual(run.request, "👍👍 ?!")

    def test_a_binary_message(self):
        data = bytes(range(256)) * 4
        run = self.ask(data)
        self.assertRefusedAndKept(run, "binary data (1024 bytes)")
        self.assertEqual(run.request, "[binary data, 1024 bytes]")

    def test_text_full_of_control_characters(self):
        run = self.ask("\x00\x01\x02\x03\x04\x05 oi")
        self.assertRefusedAndKept(run, "binary data (control characters)")

    def test_a_huge_message_is_stored_cut_and_still_answered(self):
        text = "Quanto custa a camiseta azul? " + "Detalhes do pedido. " * 10_000
        self.assertGreater(len(text), 200_000)
        self.llm.script(fake.answer("A camiseta azul custa R$ 49,90."))
        run = self.ask(text, message_id="huge-1")
        self.assertAnswered(run, "A camiseta azul custa R$ 49,90.")
        self.assertEqual(run.crew_id, self.crew)
        self.assertFalse(run.request_problem)
        self.assertTrue(run.request.startswith(text[:MAX_STORED_CHARS]))
        self.assertTrue(run.request.endswith(f"[{len(text) - MAX_STORED_CHARS} more characters]"))
        self.assertLess(len(run.request), MAX_STORED_CHARS + 100)
        asked = self.llm.chat_requests[0]["messages"][-1]["content"]
        self.assertEqual(asked, run.request, "the LLM reads the stored text, not 200k characters")


@tagged("post_install", "-at_install")
class TestLlmFaults(CrewEngineCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.odoo_server = cls.with_odoo_tools()
        cls.product_search = cls.tool(cls.odoo_server, PRODUCT_SEARCH)
        cls.agent.tool_ids = [Command.link(cls.product_search.id)]

    def tool_messages(self, request_index):
        messages = self.llm.chat_requests[request_index]["messages"]
        return [message["content"] for message in messages if message["role"] == "tool"]

    def test_tool_arguments_that_are_not_json(self):
        self.llm.script(
            fake.tool_calls((PRODUCT_SEARCH, '{"query": "camiseta"')),
            fake.answer("Pode repetir o nome do produto?"),
        )
        run = self.ask("Tem camiseta?")
        self.assertAnswered(run, "Pode repetir o nome do produto?")
        [step] = self.steps_of(run, "tool")
        self.assertTrue(step["error"])
        self.assertEqual(step["arguments"], '{"query": "camiseta"')
        self.assertIn("not a JSON object", step["result"])
        self.assertEqual(self.tool_messages(1), ["ERROR: the arguments are not a JSON object"])
        self.assertFalse(self.audit_rows(operation="tool.call"), "the tool never ran")

    def test_an_unknown_tool(self):
        self.llm.script(
            fake.tool_calls(("odoo_delete_everything", {"confirm": True})),
            fake.answer("Não posso fazer isso."),
        )
        run = self.ask("Apague tudo")
        self.assertAnswered(run, "Não posso fazer isso.")
        [step] = self.steps_of(run, "tool")
        self.assertTrue(step["error"])
        self.assertIn("unknown tool 'odoo_delete_everything'", step["result"])
        self.assertIn(PRODUCT_SEARCH, self.tool_messages(1)[0], "the model is told its tools")
        self.assertFalse(self.audit_rows(operation="tool.call"))

    def test_a_tool_disabled_after_it_was_given_to_the_agent(self):
        self.product_search.enabled = False
        self.llm.script(
            fake.tool_calls((PRODUCT_SEARCH, {"query": "camiseta"})),
            fake.answer("Não consigo consultar produtos agora."),
        )
        run = self.ask("Tem camiseta?")
        offered = [tool["function"]["name"] for tool in self.llm.chat_requests[0]["tools"]]
        self.assertNotIn(PRODUCT_SEARCH, offered)
        self.assertAnswered(run, "Não consigo consultar produtos agora.")
        [step] = self.steps_of(run, "tool")
        self.assertTrue(step["error"])
        self.assertFalse(self.audit_rows(operation="tool.call"), "a disabled tool never runs")

    def test_a_model_that_never_stops_calling_tools(self):
        self.agent.max_steps = 3

        def another_search(body):
            return fake.tool_calls((PRODUCT_SEARCH, {"query": f"modelo {len(body['messages'])}"}))

        self.llm.reset(responder=another_search)
        run = self.ask("Quais camisetas vocês têm?")
        self.assertHandoff(run, "step_limit")
        self.assertIn("Vendedor made its 3 LLM calls", run.handoff_detail)
        self.assertEqual(run.llm_calls, 3)
        self.assertEqual(len(self.steps_of(run, "tool")), 2, "the last call's tools never ran")
        self.assertGreater(run.cost, 0)

    def test_the_crews_run_step_limit(self):
        self.crew.max_steps = 2

        def another_search(body):
            return fake.tool_calls((PRODUCT_SEARCH, {"query": f"modelo {len(body['messages'])}"}))

        self.llm.reset(responder=another_search)
        run = self.ask("Quais camisetas vocês têm?")
        self.assertHandoff(run, "step_limit")
        self.assertIn("the run made its 2 LLM calls", run.handoff_detail)

    def test_the_crews_time_limit(self):
        self.crew.max_seconds = 2  # the LLM call may wait what is left of the 2 s, no more
        self.llm.script(fake.slow(fake.answer("too late"), 5))
        run = self.ask("Oi")
        self.assertHandoff(run, "time_limit")
        self.assertIn("the run took its 2 s", run.handoff_detail)

    def test_a_repeated_identical_tool_call(self):
        call = fake.tool_calls((PRODUCT_SEARCH, {"query": "camiseta", "limit": 3}))
        again = fake.tool_calls((PRODUCT_SEARCH, {"limit": 3, "query": "camiseta"}))
        self.llm.script(call, again, fake.answer("never asked"))
        run = self.ask("Quais camisetas vocês têm?")
        self.assertHandoff(run, "repeated_tool_call")
        self.assertIn(f"called {PRODUCT_SEARCH} again with the same arguments", run.handoff_detail)
        self.assertEqual(len(self.llm.chat_requests), 2)
        self.assertEqual(len(self.audit_rows(operation="tool.call")), 1)

    def test_the_model_answering_nothing(self):
        self.llm.script(fake.answer("  "))
        run = self.ask("Oi")
        self.assertHandoff(run, "empty_answer")

    def test_the_model_handing_off(self):
        self.llm.script(fake.tool_calls(("handoff_to_human", {"reason": "cliente pediu gerente"})))
        run = self.ask("Quero falar com o gerente")
        self.assertHandoff(run, "agent_decision")
        self.assertIn("cliente pediu gerente", run.handoff_detail)

    def test_a_permanent_llm_error_hands_off_without_the_key(self):
        self.llm.script(fake.error(401, f"Incorrect API key provided: {self.api_key}"))
        run = self.ask("Oi")
        self.assertHandoff(run, "llm_error")
        self.assertIn("AuthenticationError", run.handoff_detail)
        recorded = json.dumps(run.read()[0], default=str)
        self.assertNotIn(self.api_key, recorded)
        self.assertIn("***", run.handoff_detail)

    def test_a_reply_that_is_not_json(self):
        self.llm.script(fake.Reply(status=200, body=b"<html>proxy error</html>"))
        run = self.ask("Oi")
        # litellm reads it as the provider's 500: worth a retry in a job, at once a handoff here
        self.assertHandoff(run, "llm_unavailable")
        self.assertIn("InternalServerError", run.handoff_detail)

    def test_the_budget_crossed_mid_run(self):
        self.tenant.llm_daily_budget = 0.001  # the first call costs 0.0015 on gpt-4o-mini
        self.llm.script(
            fake.tool_calls((PRODUCT_SEARCH, {"query": "camiseta"}), prompt_tokens=10_000),
            fake.answer("never asked"),
        )
        run = self.ask("Quais camisetas vocês têm?")
        self.assertHandoff(run, "budget_spent")
        self.assertIn("remaining budget", run.handoff_detail)
        self.assertGreater(run.cost, 0.001)
        self.assertEqual(len(self.llm.chat_requests), 1)
        self.assertFalse(self.audit_rows(operation="tool.call"), "handed off before the tool ran")
        self.tenant.invalidate_recordset(["llm_spent_today"])
        self.assertEqual(self.tenant.llm_spent_today, run.cost, "the day's budget is spent")

    def test_redis_down_mid_run(self):
        self.llm.script(fake.answer("Temos sim, a azul marinho."), fake.answer("Custa R$ 49,90."))
        first = self.ask("Vocês têm camiseta azul?", conversation="c-redis", message_id="1")
        self.assertAnswered(first)
        second = self.ask("E quanto custa?", conversation="c-redis", message_id="2", run_now=False)
        # Redis goes away between the enqueueing and the job
        self.env["ir.config_parameter"].sudo().set_param(
            "mcp_integrator.redis_url", f"redis://127.0.0.1:{closed_port()}/0"
        )
        with (
            self.assertLogs(CACHE_LOGGER, "WARNING") as cache_logs,
            self.assertLogs(CONTEXT_LOGGER, "WARNING") as context_logs,
        ):
            Job.load(self.env, second.job_uuid).perform()
        self.assertIn("unavailable", cache_logs.output[0])
        self.assertIn("Redis unavailable", context_logs.output[0])
        self.assertAnswered(second, "Custa R$ 49,90.")
        self.assertEqual(second.crew_id, self.crew)
        self.assertIn("conversation context unavailable", second.notes)
        roles = [message["role"] for message in self.llm.chat_requests[1]["messages"]]
        self.assertEqual(roles, ["system", "user"], "answered without the earlier messages")


@tagged("post_install", "-at_install")
class TestToolFaults(CrewEngineCase):
    """A real remote MCP server (the connectors' SDK demo server) whose tools fail or hang."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.addClassCleanup(mcp_client.shared_pool().close)
        demo = McpServerProcess("http")
        cls.addClassCleanup(demo.stop)
        server = cls.make_server(url=demo.url, timeout=1)
        server.action_discover()
        tools = server.tool_ids.filtered(lambda tool: tool.name in ("fail", "sleep"))
        tools.enabled = True
        cls.agent.tool_ids = [Command.set(tools.ids)]

    def setUp(self):
        super().setUp()
        # fresh sessions and circuits: a call that timed out must not weigh on the next test
        mcp_client.shared_pool().close()
        mcp_client.shared_pool()._circuits.clear()

    def test_a_tool_that_fails_is_news_for_the_model(self):
        self.llm.script(
            fake.tool_calls(("fail", {"reason": "estoque offline"})),
            fake.answer("Não consegui consultar o estoque agora."),
        )
        run = self.ask("Tem camiseta M?")
        self.assertAnswered(run, "Não consegui consultar o estoque agora.")
        [step] = self.steps_of(run, "tool")
        self.assertTrue(step["error"])
        self.assertIn("refused: estoque offline", step["result"])
        tool_message = self.llm.chat_requests[1]["messages"][-1]
        self.assertIn("refused: estoque offline", tool_message["content"])

    def test_a_tool_that_keeps_failing_hands_off(self):
        def fail_again(body):
            return fake.tool_calls(("fail", {"reason": f"falha {len(body['messages'])}"}))

        self.llm.reset(responder=fail_again)
        run = self.ask("Tem camiseta M?")
        self.assertHandoff(run, "tool_errors")
        self.assertIn("4 failed tool calls", run.handoff_detail)
        self.assertEqual(len(self.steps_of(run, "tool")), 4)

    def test_a_tool_that_times_out(self):
        self.llm.script(
            fake.tool_calls(("sleep", {"seconds": 10})),
            fake.answer("O sistema está lento, tente de novo em instantes."),
        )
        run = self.ask("Tem camiseta M?")
        self.assertAnswered(run, "O sistema está lento, tente de novo em instantes.")
        [step] = self.steps_of(run, "tool")
        self.assertTrue(step["error"])
        self.assertIn("within 1s", step["result"])
        audit = self.audit_rows(operation="tool.call", target="sleep")
        self.assertEqual(audit.status, "error")
