# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Remote MCP servers as connectors: discovery, health, and calls through the integrator,
against real SDK servers (streamable HTTP on loopback and stdio)."""

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from odoo.exceptions import UserError, ValidationError
from odoo.tests import tagged
from odoo.tools import mute_logger

from odoo.addons.mcp_integrator.models.mcp_integrator import McpToolError, McpToolRefused

from ..services import mcp_client
from .common import McpConnectorsCase, stdio_command

CLIENT_LOGGERS = ("mcp", "httpx2", "odoo.addons.mcp_integrator.models.mcp_integrator")


class GarbageHandler(BaseHTTPRequestHandler):
    """Answers every POST with 200 and a body that is not MCP."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b"<html>not an MCP server</html>"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@tagged("post_install", "-at_install")
class TestRemoteServer(McpConnectorsCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.demo, cls.server = cls.discovered_demo_server(cls.addClassCleanup)

    def tool(self, name, server=None):
        return (server or self.server).tool_ids.filtered(lambda t: t.remote_name == name)

    def test_discovery_creates_tools_with_schema_and_annotations(self):
        add = self.tool("add")
        self.assertEqual(add.name, "add")
        self.assertEqual(add.input_schema["required"], ["a", "b"])
        self.assertTrue(add.read_only and add.idempotent and add.enabled)
        order = self.tool("create_order")
        self.assertFalse(order.read_only)
        self.assertFalse(order.enabled, "a tool that changes data waits for an admin")
        self.assertTrue(self.server.last_discovery_at)
        self.assertFalse(self.server.last_discovery_error)
        self.assertEqual(self.audit_rows(operation="mcp.discover").mapped("status")[-1:], ["ok"])

    def test_rediscovery_keeps_admin_choices_and_marks_vanished_tools(self):
        order = self.tool("create_order")
        order.write({"enabled": True, "crew_codes": "sales"})
        gone = self.env["mcp.tool"].create(
            {"server_id": self.server.id, "name": "gone", "remote_name": "gone"}
        )
        self.server.action_discover()
        self.assertTrue(order.enabled)
        self.assertEqual(order.crew_list(), ["sales"])
        self.assertFalse(gone.available)
        with self.assertRaisesRegex(McpToolRefused, "not found on its server"):
            self.integrator.call_tool(self.tenant, "gone", {})

    def test_tool_names_and_crew_codes_are_checked(self):
        add = self.tool("add")
        add.write({"name": "Add.v2", "crew_codes": "sales, support-2"})  # MCP names, crew codes
        self.assertEqual(add.crew_list(), ["sales", "support-2"])
        with self.assertRaisesRegex(ValidationError, "Tool name .* is invalid"):
            add.name = "add numbers"
        with self.assertRaisesRegex(ValidationError, "crew codes"):
            add.crew_codes = "sales, Support"

    def test_rediscovery_drops_the_cache_class_of_a_tool_no_longer_read_only(self):
        order = self.tool("create_order")
        order.write({"read_only": True, "cache_class": "transient"})  # the admin's belief
        self.server.action_discover()  # the server says it changes data
        self.assertEqual((order.read_only, order.cache_class), (False, "none"))

    def test_name_clash_with_another_server_gets_the_server_prefix(self):
        other = self.make_server(code="second", url=self.demo.url)
        other.action_discover()
        self.assertEqual(self.tool("add", other).name, "second_add")
        self.assertEqual(self.tool("add", other).remote_name, "add")

    def test_call_through_the_integrator_is_audited(self):
        result = self.integrator.call_tool(self.tenant, "add", {"a": 2, "b": 3})
        self.assertFalse(result["isError"])
        self.assertEqual(result["structuredContent"], {"result": 5})
        row = self.audit_rows(operation="tool.call", target="add")[-1]
        self.assertEqual(row.status, "ok")
        self.assertEqual(row.tenant_id, self.tenant)

    def test_read_only_results_are_cached_with_the_tools_cache_class(self):
        counters = self.tool("counters")
        counters.enabled = True
        self.integrator.call_tool(self.tenant, "counters", {})
        first = self.integrator.call_tool(self.tenant, "counters", {})
        second = self.integrator.call_tool(self.tenant, "counters", {})
        self.assertNotEqual(first, second, "not cached: the server counts every call")
        counters.write({"read_only": True, "cache_class": "transient"})
        third = self.integrator.call_tool(self.tenant, "counters", {})
        self.assertEqual(self.integrator.call_tool(self.tenant, "counters", {}), third)
        counters.write({"cache_class": "none"})  # a configuration change drops cached results
        self.assertNotEqual(self.integrator.call_tool(self.tenant, "counters", {}), third)

    def test_tool_error_is_a_result_and_is_never_cached(self):
        fail = self.tool("fail")
        fail.write({"enabled": True, "read_only": True, "cache_class": "session"})
        for _ in range(2):
            result = self.integrator.call_tool(self.tenant, "fail", {"reason": "out of stock"})
            self.assertTrue(result["isError"])
            self.assertIn("refused: out of stock", result["content"][0]["text"])
        calls = self.audit_rows(operation="tool.call", target="fail")
        self.assertEqual(len(calls), 2, "both calls reached the server")

    def test_arguments_that_break_the_schema_are_refused_before_the_call(self):
        with mute_logger(*CLIENT_LOGGERS), self.assertRaisesRegex(McpToolError, "a: .*integer"):
            self.integrator.call_tool(self.tenant, "add", {"a": "two", "b": 3})
        row = self.audit_rows(operation="tool.call", target="add")[-1]
        self.assertEqual(row.status, "error")
        self.assertIn("input schema", row.error)

    def test_unknown_disabled_and_other_tenants_tools_are_refused(self):
        with mute_logger(*CLIENT_LOGGERS):
            with self.assertRaisesRegex(McpToolError, "no provider offers the tool 'nope'"):
                self.integrator.call_tool(self.tenant, "nope", {})
            with self.assertRaisesRegex(McpToolRefused, "create_order is not enabled"):
                self.integrator.call_tool(
                    self.tenant, "create_order", {"customer": "ana@x.com", "lines": []}
                )
            other = self.make_tenant("Outra Loja")
            with self.assertRaisesRegex(McpToolRefused, "not one of this tenant's tools"):
                self.integrator.call_tool(other, "add", {"a": 1, "b": 2})
            self.server.enabled = False
            with self.assertRaisesRegex(McpToolRefused, "server .* is disabled"):
                self.integrator.call_tool(self.tenant, "add", {"a": 1, "b": 2})
        statuses = self.audit_rows(operation="tool.call").mapped("status")
        self.assertEqual(statuses.count("refused"), 3)

    def test_health_check_records_latency_without_an_audit_row(self):
        before = len(self.audit_rows())
        self.server.action_check_health()
        self.assertEqual(self.server.health_state, "up")
        self.assertGreater(self.server.last_latency_ms, 0)
        self.assertEqual(len(self.audit_rows()), before)

    def test_cron_checks_every_enabled_server_and_survives_a_dead_one(self):
        dead = self.make_server(code="dead", url=self.dead_url())
        with mute_logger(*CLIENT_LOGGERS):
            self.env["mcp.server"]._cron_check_health()
        self.assertEqual(self.server.health_state, "up")
        self.assertEqual(dead.health_state, "down")
        self.assertIn("ConnectError", dead.last_error)

    @staticmethod
    def dead_url():
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            return f"http://127.0.0.1:{probe.getsockname()[1]}/mcp"


@tagged("post_install", "-at_install")
class TestRemoteFaults(McpConnectorsCase):
    """A remote server that is down, hangs, dies mid-call or answers garbage: a clear error in
    bounded time, and nothing written."""

    def setUp(self):
        super().setUp()
        # every test gets fresh sessions and circuits, and leaves no server process behind
        self.addCleanup(mcp_client.shared_pool().close)
        mcp_client.shared_pool().close()
        mcp_client.shared_pool()._circuits.clear()

    def test_discovery_of_a_dead_server_is_a_clear_user_error(self):
        server = self.make_server(url=TestRemoteServer.dead_url(), timeout=2)
        with mute_logger(*CLIENT_LOGGERS), self.assertRaisesRegex(UserError, "ConnectError"):
            server.action_discover()
        self.assertFalse(server.tool_ids)
        row = self.audit_rows(operation="mcp.discover")[-1]
        self.assertEqual(row.status, "error")

    def test_a_hanging_server_times_out_and_a_job_may_retry_later(self):
        _demo, server = self.discovered_demo_server(self.addCleanup, timeout=1)
        server.tool_ids.filtered(lambda t: t.name == "sleep").enabled = True
        started = time.monotonic()
        with mute_logger(*CLIENT_LOGGERS), self.assertRaisesRegex(McpToolError, "within 1s"):
            self.integrator.call_tool(self.tenant, "sleep", {"seconds": 30})
        self.assertLess(time.monotonic() - started, 10)
        row = self.audit_rows(operation="tool.call", target="sleep")[-1]
        self.assertEqual((row.status, row.attempts), ("error", 1), "a sent call is not repeated")

    def test_a_server_dying_mid_call_then_coming_back(self):
        demo, server = self.discovered_demo_server(self.addCleanup, timeout=10)
        server.tool_ids.filtered(lambda t: t.name == "blocking_sleep").enabled = True
        threading.Timer(0.5, demo.kill).start()
        with mute_logger(*CLIENT_LOGGERS), self.assertRaises(McpToolError):
            self.integrator.call_tool(self.tenant, "blocking_sleep", {"seconds": 5})
        demo.start()
        result = self.integrator.call_tool(self.tenant, "add", {"a": 1, "b": 1})
        self.assertEqual(result["structuredContent"], {"result": 2})

    def test_a_server_answering_garbage_is_a_protocol_error(self):
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), GarbageHandler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        self.addCleanup(httpd.server_close)
        self.addCleanup(httpd.shutdown)
        server = self.make_server(url=f"http://127.0.0.1:{httpd.server_port}/mcp", timeout=3)
        started = time.monotonic()
        with mute_logger(*CLIENT_LOGGERS), self.assertRaisesRegex(UserError, "Could not discover"):
            server.action_discover()
        self.assertLess(time.monotonic() - started, 20)
        self.assertTrue(server.last_discovery_error)

    def test_stdio_server_from_the_admins_command(self):
        server = self.make_server(transport="stdio", command=stdio_command(), url=False)
        server.action_discover()
        result = self.integrator.call_tool(self.tenant, "add", {"a": 40, "b": 2})
        self.assertEqual(result["structuredContent"], {"result": 42})

    def test_stdio_command_is_for_managers_only(self):
        user = self.env["res.users"].create(
            {
                "name": "AI user",
                "login": f"ai_user_{self.tenant.account_id}",
                "group_ids": [(6, 0, [self.env.ref("mcp_integrator.group_mcp_user").id])],
            }
        )
        server = self.make_server(transport="stdio", command=stdio_command(), url=False)
        self.assertNotIn("command", server.with_user(user).fields_get())

    def test_bad_configuration_is_refused(self):
        with self.assertRaisesRegex(ValidationError, "needs a URL"):
            self.make_server(url=False)
        with self.assertRaisesRegex(ValidationError, "needs a command"):
            self.make_server(code="cmd", transport="stdio", url=False)
        with self.assertRaisesRegex(ValidationError, "code"):
            self.make_server(code="Not A Slug", url="http://127.0.0.1:9/mcp")
