# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Odoo as an MCP server: ``/mcp`` against the official SDK client and raw HTTP, with MCP
client keys (shown once, hashed, expiry, revocation, allow-list, consent, rate limit) and the
fixed deny-list; tools from a real SDK server and from the built-in Odoo tools."""

import json
import uuid
from datetime import timedelta

from psycopg2.errors import CheckViolation

from odoo import Command, fields
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tests import HttpCase, new_test_user, tagged
from odoo.tests.common import TEST_CURSOR_COOKIE_NAME, get_db_name
from odoo.tools import mute_logger

from odoo.addons.mcp_integrator.tests.test_integrator_api import DEAD_REDIS_URL

from ..controllers.mcp_endpoint import REQUEST_OPERATION
from ..services import client_keys
from ..services.mcp_server_protocol import Unauthorized
from .common import McpConnectorsCase

PROTOCOL_VERSION = "2025-11-25"
KEY_LOGGER = "odoo.addons.mcp_connectors.models.mcp_client_key"
QUIET_LOGGERS = (
    KEY_LOGGER,
    "odoo.addons.mcp_integrator.models.mcp_integrator",
    "odoo.addons.mcp_integrator.services.cache",
    "odoo.addons.mcp_connectors.services.mcp_server_protocol",
)


class McpKeyCase(McpConnectorsCase):
    """A tenant with a remote SDK server and the built-in Odoo server, an acting user, and
    ``make_key`` for MCP client keys."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.demo, cls.remote = cls.discovered_demo_server(cls.addClassCleanup)
        cls.tool("create_order").enabled = True
        cls.bot = new_test_user(
            cls.env,
            login=f"mcp_bot_{cls.tenant.account_id}",
            groups="base.group_user,base.group_partner_manager",
        )
        cls.odoo = cls.make_server(code="odoo", kind="odoo", run_as_user_id=cls.bot.id)
        cls.odoo.action_discover()
        cls.tool("odoo_search_records").enabled = True
        cls.tool("odoo_log_activity").enabled = True
        cls.agent = new_test_user(
            cls.env, login=f"mcp_agent_{cls.tenant.account_id}", groups="base.group_user"
        )
        cls.allowed = cls.tools(
            "add",
            "create_order",
            "odoo_log_activity",
            "odoo_search_records",
            "odoo_tenant_profile",
        )

    @classmethod
    def tool(cls, name):
        return cls.env["mcp.tool"].search([("tenant_id", "=", cls.tenant.id), ("name", "=", name)])

    @classmethod
    def tools(cls, *names):
        return cls.env["mcp.tool"].search(
            [("tenant_id", "=", cls.tenant.id), ("name", "in", names)]
        )

    @classmethod
    def make_key(cls, tools=None, **vals):
        """A client key made by a manager, and the key string shown once."""
        record = (
            cls.env["mcp.client.key"]
            .with_user(cls.manager)
            .create(
                {
                    "name": f"Client {uuid.uuid4().hex[:6]}",
                    "tenant_id": cls.tenant.id,
                    "user_id": cls.agent.id,
                    "rate_limit": 1000,
                    "tool_ids": [Command.set((cls.allowed if tools is None else tools).ids)],
                    **vals,
                }
            )
        )
        action = record.action_generate_key()
        return record.sudo(), action["context"]["default_key"]


@tagged("post_install", "-at_install")
class TestMcpClientKey(McpKeyCase):
    def test_the_key_is_shown_once_and_stored_only_as_a_salted_hash(self):
        record, key = self.make_key()
        self.assertEqual(record.key_prefix, client_keys.prefix_of(key))
        self.assertTrue(client_keys.verify(key, record.key_hash))
        self.assertEqual(record.state, "valid")
        stored = record.read()[0]
        self.assertNotIn(key, json.dumps(stored, default=str))
        self.assertNotIn(key, " ".join(self.audit_rows().mapped(lambda r: r.arguments or "")))
        self.assertEqual(self.env["mcp.client.key"]._mcp_authenticate(key), record)

    def test_the_key_dialog_shows_the_new_key(self):
        record, _key = self.make_key()
        action = record.with_user(self.manager).action_generate_key()
        dialog = self.env[action["res_model"]].with_user(self.manager)
        self.assertTrue(dialog.get_views([(False, "form")])["views"]["form"]["arch"])
        shown = dialog.with_context(**action["context"]).default_get(["key"])["key"]
        self.assertEqual(self.env["mcp.client.key"]._mcp_authenticate(shown), record)

    def test_a_new_key_replaces_the_old_one(self):
        record, old = self.make_key()
        new = record.with_user(self.manager).action_generate_key()["context"]["default_key"]
        self.assertEqual(self.env["mcp.client.key"]._mcp_authenticate(new), record)
        with mute_logger(KEY_LOGGER), self.assertRaisesRegex(Unauthorized, "unknown key"):
            self.env["mcp.client.key"]._mcp_authenticate(old)

    def test_a_revoked_key_is_forgotten_and_cannot_be_renewed(self):
        record, _key = self.make_key()
        record.with_user(self.manager).action_revoke()
        self.assertEqual(record.state, "revoked")
        self.assertFalse(record.key_hash)
        self.assertTrue(record.key_prefix, "the prefix stays, to recognise the key")
        with self.assertRaisesRegex(UserError, "revoked key cannot be renewed"):
            record.with_user(self.manager).action_generate_key()

    def test_the_expiry_is_a_date_or_never(self):
        record, _key = self.make_key()
        with self.assertRaises(CheckViolation), mute_logger("odoo.sql_db"), self.cr.savepoint():
            record.write({"expires_at": False, "no_expiry": False})
            record.flush_recordset()
        record.write({"expires_at": False, "no_expiry": True})
        self.assertEqual(record.state, "valid")
        record.write({"no_expiry": False, "expires_at": fields.Datetime.now() - timedelta(days=1)})
        self.assertEqual(record.state, "expired")

    def test_the_acting_user_is_internal_and_never_the_superuser(self):
        portal = new_test_user(
            self.env, login=f"mcp_portal_{self.tenant.account_id}", groups="base.group_portal"
        )
        for user in (self.env.ref("base.user_root"), portal):
            with self.subTest(user=user.login), self.assertRaises(ValidationError):
                self.make_key(user_id=user.id)

    def test_the_allow_list_holds_only_the_tenants_tools(self):
        other = self.make_tenant("Other")
        foreign = self.make_server(tenant=other, code="other", url=self.demo.url)
        foreign.action_discover()
        with self.assertRaisesRegex(ValidationError, "not tools of tenant"):
            self.make_key(tools=foreign.tool_ids[:1])

    def test_only_managers_see_keys(self):
        record, _key = self.make_key()
        user = new_test_user(
            self.env,
            login=f"mcp_user_{self.tenant.account_id}",
            groups="base.group_user,mcp_integrator.group_mcp_user",
        )
        with self.assertRaises(AccessError):
            record.with_user(user).read(["name"])
        self.assertEqual(record.with_user(self.manager).read(["name"])[0]["name"], record.name)
        with self.assertRaises(AccessError):
            record.with_user(self.manager).read(["key_hash"])

    def test_key_changes_are_audited_without_the_hash(self):
        record, _key = self.make_key()
        row = self.audit_rows(operation="config.write", target=f"mcp.client.key,{record.id}")[-1]
        self.assertIn("key_prefix", row.arguments)
        self.assertNotIn(record.key_hash, row.arguments)


@tagged("post_install", "-at_install")
class TestMcpEndpoint(McpKeyCase, HttpCase):
    # McpIntegratorCase puts the registry in test mode itself (once per class is allowed)
    registry_test_mode = False

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.mcp_url = f"{cls.base_url()}/mcp"
        cls.key_record, cls.key = cls.make_key()

    # helpers --------------------------------------------------------------------------------
    def post(self, message, key=None, headers=None, method="POST"):
        """One raw HTTP request; ``message`` is JSON-encoded unless it is bytes."""
        body = message if isinstance(message, bytes) else json.dumps(message).encode()
        all_headers = {
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": PROTOCOL_VERSION,
        }
        if key is not False:
            all_headers["Authorization"] = f"Bearer {key or self.key}"
        all_headers.update(headers or {})
        with mute_logger(*QUIET_LOGGERS):
            return self.url_open(
                self.mcp_url, data=body, headers=all_headers, method=method, timeout=30
            )

    @staticmethod
    def rpc(method, params=None, request_id=1):
        message = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        return message

    def call(self, name, arguments, key=None):
        response = self.post(self.rpc("tools/call", {"name": name, "arguments": arguments}), key)
        self.assertEqual(response.status_code, 200, response.text)
        return response.json()

    def sdk(self, scenario, key=None, mode="auto"):
        """``await scenario(client)`` with the official SDK client connected to ``/mcp``."""
        import anyio
        import httpx2
        from mcp import Client
        from mcp.client.streamable_http import streamable_http_client

        async def main():
            headers = {"Authorization": f"Bearer {key or self.key}"}
            # the test server only answers requests that carry the test's cookie
            cookies = {TEST_CURSOR_COOKIE_NAME: self.http_request_key}
            async with httpx2.AsyncClient(
                headers=headers, cookies=cookies, timeout=httpx2.Timeout(30)
            ) as http:
                transport = streamable_http_client(self.mcp_url, http_client=http)
                async with Client(transport, mode=mode) as client:
                    return await scenario(client)

        self.env.flush_all()
        self.env.invalidate_all()
        with self.allow_requests(), mute_logger(*QUIET_LOGGERS, "mcp", "httpx2"):
            outcome = anyio.run(main)
        self.env.invalidate_all()
        return outcome

    def request_rows(self):
        return self.audit_rows(operation=REQUEST_OPERATION)

    def assertUnauthorized(self, response):
        self.assertEqual(response.status_code, 401, response.text)
        self.assertEqual(response.headers["WWW-Authenticate"], 'Bearer realm="mcp"')
        self.assertIn("Unauthorized", response.json()["error"]["message"])

    # end to end with the SDK client -----------------------------------------------------------
    def test_sdk_client_lists_and_calls_tools_end_to_end(self):
        async def scenario(client):
            page = await client.list_tools()
            return {
                "version": client.protocol_version,
                "server": client.server_info.name,
                "tools": {tool.name: tool for tool in page.tools},
                "add": await client.call_tool("add", {"a": 2, "b": 3}),
                "profile": await client.call_tool("odoo_tenant_profile", {}),
                "bad": await client.call_tool("add", {"a": "two", "b": 3}),
            }

        for mode in ("auto", "legacy"):
            with self.subTest(mode=mode):
                outcome = self.sdk(scenario, mode=mode)
                self.assertEqual(outcome["version"], PROTOCOL_VERSION)
                self.assertEqual(outcome["server"], "odoo")
                self.assertEqual(sorted(outcome["tools"]), sorted(self.allowed.mapped("name")))
                add = outcome["tools"]["add"]
                self.assertEqual(add.input_schema["required"], ["a", "b"])
                self.assertTrue(add.annotations.read_only_hint)
                self.assertFalse(outcome["tools"]["create_order"].annotations.read_only_hint)
                self.assertFalse(outcome["add"].is_error)
                self.assertEqual(outcome["add"].structured_content, {"result": 5})
                profile = outcome["profile"]
                self.assertFalse(profile.is_error, profile.content)
                self.assertEqual(profile.structured_content["name"], self.tenant.name)
                self.assertTrue(outcome["bad"].is_error)
                self.assertIn("'two' is not of type 'integer'", outcome["bad"].content[0].text)

        calls = self.audit_rows(operation="tool.call", target="add")
        self.assertEqual(calls.mapped("status"), ["ok", "ok"])
        self.assertEqual(calls.user_id, self.agent, "the tool ran as the key's acting user")
        self.assertEqual(calls.tenant_id, self.tenant)
        requests = self.request_rows()
        self.assertIn("tools/call add", requests.mapped("target"))
        self.assertEqual(set(requests.mapped("tenant_id")), {self.tenant})
        self.assertLessEqual(
            set(calls.mapped("correlation_id")),
            set(requests.mapped("correlation_id")),
            "a tool call shares the correlation id of its request",
        )
        self.key_record.invalidate_recordset()
        self.assertEqual(self.key_record.usage_count, len(requests))
        self.assertTrue(self.key_record.last_used_at)

    def test_the_key_never_reaches_the_audit_log(self):
        self.call("add", {"a": 1, "b": 1})
        self.post(self.rpc("ping"), key="odoo_mcp_0123456789ab_" + "x" * 43)
        rows = self.request_rows()
        self.assertEqual(len(rows), 2)
        for row in rows:
            text = " ".join(str(value) for value in (row.target, row.arguments, row.error))
            self.assertNotIn(self.key, text)
            self.assertNotIn("x" * 43, text)
        self.assertEqual(json.loads(rows[0].arguments)["key_prefix"], self.key_record.key_prefix)

    # keys -------------------------------------------------------------------------------------
    def test_wrong_expired_revoked_and_missing_keys_get_the_same_401(self):
        expired, expired_key = self.make_key()
        expired.expires_at = fields.Datetime.now() - timedelta(minutes=1)
        revoked, revoked_key = self.make_key()
        revoked.action_revoke()
        archived, archived_key = self.make_key()
        archived.active = False
        wrong = f"odoo_mcp_{self.key_record.key_prefix}_" + "A" * 43
        cases = {
            "wrong key": wrong,
            "expired key": expired_key,
            "revoked key": revoked_key,
            "archived key": archived_key,
            "not a key": "hunter2",
        }
        bodies = set()
        for reason, key in cases.items():
            with self.subTest(reason=reason):
                response = self.post(self.rpc("tools/list"), key=key)
                self.assertUnauthorized(response)
                bodies.add(response.content)
                row = self.request_rows()[-1]
                self.assertEqual((row.status, row.error), ("refused", reason))
                self.assertFalse(row.tenant_id)
        missing = self.post(self.rpc("tools/list"), key=False)
        self.assertUnauthorized(missing)
        bodies.add(missing.content)
        self.assertEqual(len(bodies), 1, "the answer does not tell the cases apart")
        self.assertEqual(self.request_rows()[-1].status, "refused")
        for record in (expired, revoked, archived):
            record.invalidate_recordset()
            self.assertEqual(record.usage_count, 0)

    def test_sdk_client_with_an_expired_key_cannot_connect(self):
        expired, key = self.make_key()
        expired.expires_at = fields.Datetime.now() - timedelta(minutes=1)

        async def scenario(client):
            raise AssertionError("connected with an expired key")

        from mcp import MCPError

        with self.assertRaises(Exception) as caught:
            self.sdk(scenario, key=key)
        # the discover probe and the fallback initialize both get 401; anyio groups the errors
        refused = caught.exception.subgroup(
            lambda exc: isinstance(exc, MCPError) and "Unauthorized" in str(exc)
        )
        self.assertIsNotNone(refused, caught.exception)

    def test_a_key_stops_working_when_its_user_loses_the_tenants_company(self):
        other_company = self.env["res.company"].create({"name": "Other MCP Co"})
        self.agent.write(
            {"company_ids": [Command.link(other_company.id)], "company_id": other_company.id}
        )
        self.agent.company_ids = [Command.unlink(self.tenant.company_id.id)]
        self.assertUnauthorized(self.post(self.rpc("ping")))
        self.assertIn("company", self.request_rows()[-1].error)

    # rate limit -------------------------------------------------------------------------------
    def test_over_the_rate_limit_the_answer_is_429_with_retry_after(self):
        record, key = self.make_key(rate_limit=2)
        for _ in range(2):
            self.assertEqual(self.post(self.rpc("ping"), key=key).status_code, 200)
        response = self.post(self.rpc("ping"), key=key)
        self.assertEqual(response.status_code, 429, response.text)
        self.assertTrue(1 <= int(response.headers["Retry-After"]) <= 30)
        self.assertIn("Rate limit", response.json()["error"]["message"])
        row = self.request_rows()[-1]
        self.assertEqual((row.status, row.tenant_id), ("refused", self.tenant))
        record.invalidate_recordset()
        self.assertEqual(record.usage_count, 2, "a refused request is not counted as a use")
        # another key of the same tenant has its own budget
        self.assertEqual(self.post(self.rpc("ping")).status_code, 200)

    @mute_logger(*QUIET_LOGGERS)
    def test_without_redis_the_rate_limit_holds_per_process(self):
        self.env["ir.config_parameter"].sudo().set_param("mcp_integrator.redis_url", DEAD_REDIS_URL)
        _record, key = self.make_key(rate_limit=1)
        self.assertEqual(self.post(self.rpc("ping"), key=key).status_code, 200)
        self.assertEqual(self.post(self.rpc("ping"), key=key).status_code, 429)

    # allow-list, consent, deny-list -----------------------------------------------------------
    def test_a_tool_not_on_the_allow_list_is_unknown_to_the_client(self):
        lookup = self.tool("odoo_partner_lookup")
        self.assertTrue(lookup.enabled, "enabled for the tenant, only not on the key's list")
        listed = self.post(self.rpc("tools/list")).json()["result"]["tools"]
        self.assertNotIn("odoo_partner_lookup", [tool["name"] for tool in listed])
        answer = self.call("odoo_partner_lookup", {"email": "a@example.com"})
        self.assertEqual(answer["error"]["code"], -32602)
        self.assertEqual(answer["error"]["message"], "Unknown tool: odoo_partner_lookup")
        row = self.request_rows()[-1]
        self.assertEqual(row.status, "refused")
        self.assertIn("allow-list", row.error)
        self.assertFalse(self.audit_rows(operation="tool.call", target="odoo_partner_lookup"))

    def test_an_empty_allow_list_allows_nothing(self):
        _record, key = self.make_key(tools=self.env["mcp.tool"])
        self.assertEqual(self.post(self.rpc("tools/list"), key=key).json()["result"]["tools"], [])
        self.assertEqual(self.call("add", {"a": 1, "b": 2}, key=key)["error"]["code"], -32602)

    def test_a_disabled_tool_or_server_leaves_the_list(self):
        self.tool("add").enabled = False
        self.odoo.enabled = False
        listed = self.post(self.rpc("tools/list")).json()["result"]["tools"]
        self.assertEqual([tool["name"] for tool in listed], ["create_order"])

    def test_a_mutating_tool_runs_only_with_consent(self):
        arguments = {"customer": "ana@example.com", "lines": [{"sku": 1}]}
        result = self.call("create_order", arguments)["result"]
        self.assertTrue(result["isError"])
        self.assertIn("no consent", result["content"][0]["text"])
        self.assertEqual(self.request_rows()[-1].status, "refused")
        self.assertFalse(self.audit_rows(operation="tool.call", target="create_order"))

        self.key_record.allow_mutating = True
        result = self.call("create_order", arguments)["result"]
        self.assertFalse(result["isError"], result)
        self.assertIn('"customer": "ana@example.com"', result["content"][0]["text"])

    def test_a_built_in_mutating_tool_without_consent_writes_nothing(self):
        partner = self.env["res.partner"].create({"name": "Cliente MCP"})
        arguments = {"record_type": "partner", "record_id": partner.id, "summary": "Call back"}
        result = self.call("odoo_log_activity", arguments)["result"]
        self.assertTrue(result["isError"])
        self.assertIn("no consent", result["content"][0]["text"])
        self.assertFalse(partner.activity_ids)

        self.key_record.allow_mutating = True
        # through /mcp the tool runs as the key's acting user, not the technical user: the
        # acting user may not schedule activities on contacts yet
        result = self.call("odoo_log_activity", arguments)["result"]
        self.assertTrue(result["isError"])
        self.assertIn(f"the user {self.agent.name} ", result["content"][0]["text"])
        self.assertFalse(partner.activity_ids)

        self.agent.group_ids += self.env.ref("base.group_partner_manager")
        result = self.call("odoo_log_activity", arguments)["result"]
        self.assertFalse(result["isError"], result)
        partner.invalidate_recordset()
        self.assertEqual(partner.activity_ids.summary, "Call back")

    def test_a_failing_call_leaves_nothing_written(self):
        self.key_record.allow_mutating = True
        activities = self.env["mail.activity"].search_count([])
        missing = self.env["res.partner"].search([], order="id desc", limit=1).id + 1000
        result = self.call(
            "odoo_log_activity",
            {"record_type": "partner", "record_id": missing, "summary": "Call back"},
        )["result"]
        self.assertTrue(result["isError"])
        self.assertIn(f"No partner with id {missing}", result["content"][0]["text"])
        self.assertEqual(self.env["mail.activity"].search_count([]), activities)

    def test_a_deny_listed_model_is_refused_by_name_whatever_the_allow_list(self):
        for model in ("res.users", "ir.config_parameter", "mcp.client.key", "ir.actions.server"):
            with self.subTest(model=model):
                result = self.call("odoo_search_records", {"model": model})["result"]
                self.assertTrue(result["isError"])
                self.assertIn(f"Access to model {model!r} is refused", result["content"][0]["text"])
                row = self.request_rows()[-1]
                self.assertEqual(row.status, "refused")
                self.assertIn(model, row.arguments)
        self.assertFalse(self.audit_rows(operation="tool.call", target="odoo_search_records"))
        allowed = self.call("odoo_search_records", {"model": "res.partner", "limit": 1})
        self.assertFalse(allowed["result"]["isError"], allowed)

    def test_a_remote_tools_failure_is_a_tool_error_for_the_client(self):
        self.tool("fail").write({"enabled": True, "read_only": True})
        _record, key = self.make_key(tools=self.tool("fail"))
        result = self.call("fail", {"reason": "out of stock"}, key=key)["result"]
        self.assertTrue(result["isError"])
        self.assertIn("refused: out of stock", result["content"][0]["text"])
        row = self.request_rows()[-1]
        self.assertEqual(row.status, "error")
        self.assertIn("refused: out of stock", row.error)

    # transport and JSON-RPC faults ------------------------------------------------------------
    def test_malformed_requests_get_a_clear_error(self):
        cases = [
            (b"{not json", {}, 400, -32700, "Parse error"),
            (json.dumps([self.rpc("ping")]).encode(), {}, 400, -32600, "Batch"),
            (json.dumps({"id": 1, "method": "ping"}).encode(), {}, 400, -32600, "jsonrpc"),
            (self.rpc("resources/list"), {}, 200, -32601, "Method not found"),
            (self.rpc("tools/call", {"arguments": {}}), {}, 200, -32602, "tool name"),
            (self.rpc("ping"), {"Content-Type": "text/plain"}, 415, -32600, "Content-Type"),
            (self.rpc("ping"), {"MCP-Protocol-Version": "1999-01-01"}, 400, -32600, "Unsupported"),
            (b"{" + b" " * (1024 * 1024) + b"}", {}, 413, -32600, "exceeds"),
        ]
        for body, headers, status, code, text in cases:
            with self.subTest(text=text):
                response = self.post(body, headers=headers)
                self.assertEqual(response.status_code, status, response.text)
                error = response.json()["error"]
                self.assertEqual(error["code"], code)
                self.assertIn(text, error["message"])
                self.assertEqual(self.request_rows()[-1].status, "error")

    def test_the_database_can_be_named_in_a_header(self):
        database = {"X-Odoo-Database": get_db_name()}
        self.assertEqual(self.post(self.rpc("ping"), headers=database).status_code, 200)
        unknown = {"X-Odoo-Database": f"{get_db_name()}_nope"}
        self.assertEqual(self.post(self.rpc("ping"), headers=unknown).status_code, 404)

    def test_get_and_delete_are_not_offered(self):
        for method in ("GET", "DELETE"):
            with self.subTest(method=method):
                response = self.post(b"", method=method)
                self.assertEqual(response.status_code, 405)
                self.assertEqual(response.headers["Allow"], "POST")

    def test_browser_origins_need_the_admins_allow_list(self):
        origin = {"Origin": "https://evil.example.com"}
        self.assertEqual(self.post(self.rpc("ping"), headers=origin).status_code, 403)
        self.env["ir.config_parameter"].sudo().set_param(
            "mcp_connectors.mcp_allowed_origins",
            "https://app.example.com, https://evil.example.com",
        )
        self.assertEqual(self.post(self.rpc("ping"), headers=origin).status_code, 200)
