# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""The internal API: cached reads, invalidation, call_tool through a provider registry."""

import contextlib
import json
import os
import tempfile
import uuid
from itertools import count
from unittest.mock import patch

import redis

from odoo import api, models
from odoo.orm.model_classes import add_to_registry
from odoo.tests import TransactionCase, new_test_user, tagged
from odoo.tools import config, mute_logger

from ..models.mcp_integrator import COUNTER_FLUSH, McpToolError, McpToolRefused
from ..services import tool_calls

REDIS_URL = os.environ.get("MCP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
DEAD_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
ACCOUNT_IDS = count(91000)
CACHE_LOGGER = "odoo.addons.mcp_integrator.services.cache"
INTEGRATOR_LOGGER = "odoo.addons.mcp_integrator.models.mcp_integrator"

# What the test provider does, per tool name: a list of outcomes consumed one per call. An
# outcome is a value to return, an exception to raise, or a callable(env, arguments) whose
# result is returned.
SCRIPT = {}
CALLS = []


@contextlib.contextmanager
def conf_redis_url(url):
    """Run with a server configuration file whose [mcp_integrator] section sets redis_url."""
    with tempfile.NamedTemporaryFile("w", suffix=".conf") as conf:
        conf.write(f"[options]\n\n[mcp_integrator]\nredis_url = {url}\n")
        conf.flush()
        with patch.dict(config.options, {"config": conf.name}):
            yield


class McpTestToolProvider(models.AbstractModel):
    """A tool provider living only in the tests (never registered for the module)."""

    _module = None
    _name = "mcp.test.tool.provider"
    _inherit = "mcp.tool.provider"
    _description = "MCP tool provider of the tests"

    @api.model
    def _mcp_provides(self, tenant, tool_name):
        return tool_name in SCRIPT

    @api.model
    def _mcp_call_tool(self, tenant, tool_name, arguments):
        CALLS.append((tenant.id, tool_name, arguments))
        outcome = SCRIPT[tool_name].pop(0) if len(SCRIPT[tool_name]) > 1 else SCRIPT[tool_name][0]
        if isinstance(outcome, BaseException):
            raise outcome
        if callable(outcome):
            return outcome(self.env, arguments)
        return outcome


def drop_namespace(namespace):
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2)
    keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


class McpIntegratorCase(TransactionCase):
    """A cache namespace of its own (removed afterwards) and the registry in test mode.

    In test mode the cursors that audit rows and metrics are written through are nested in
    the test transaction: the rows are visible to the test and vanish with it. The tests that
    prove rows survive a rollback (test_audit.py) use real cursors instead.
    """

    @classmethod
    def setUpClass(cls):
        # registered before the class's transaction: cleanups run last-in first-out, so the
        # keys go after the rollback, which repeats the invalidations it rolls back
        cls.namespace = f"test-{uuid.uuid4().hex[:12]}"
        cls.addClassCleanup(drop_namespace, cls.namespace)
        super().setUpClass()
        cls.registry_enter_test_mode_cls()
        params = cls.env["ir.config_parameter"].sudo()
        params.set_param("mcp_integrator.redis_url", REDIS_URL)
        params.set_param("mcp_integrator.cache_namespace", cls.namespace)
        cls.integrator = cls.env["mcp.integrator"]
        cls.tenant = cls.make_tenant("Acme")

    @classmethod
    def make_tenant(cls, name, **vals):
        account_id = next(ACCOUNT_IDS)
        return cls.env["mcp.tenant"].create(
            {"name": name, "code": f"t{account_id}", "account_id": account_id, **vals}
        )

    def setUp(self):
        # Redis is not rolled back with the test: each test gets keys (and counters) of its
        # own, dropped after the test's rollback (which repeats its invalidations)
        namespace = f"test-{uuid.uuid4().hex[:12]}"
        self.addCleanup(drop_namespace, namespace)
        super().setUp()
        self.env["ir.config_parameter"].sudo().set_param(
            "mcp_integrator.cache_namespace", namespace
        )

    def counted(self, tenant, module):
        """Cache counters of a tenant and module: still in memory, or already flushed to the
        metrics table (the hot path flushes once a minute, possibly during a test)."""
        drained = self.integrator.cache().stats.drain().get((tenant.account_id, module), {})
        rows = self.env["mcp.metric.daily"].search(
            [("tenant_id", "=", tenant.id), ("module", "=", module)]
        )
        return {
            "hits": drained.get("hits", 0) + sum(rows.mapped("cache_hits")),
            "misses": drained.get("misses", 0) + sum(rows.mapped("cache_misses")),
        }

    def audit_rows(self, **domain):
        return self.env["mcp.audit.log"].search(
            [(name, "=", value) for name, value in domain.items()], order="id"
        )


class McpToolCase(McpIntegratorCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        add_to_registry(cls.registry, McpTestToolProvider)
        cls.registry._setup_models__(cls.env.cr, [McpTestToolProvider._name])
        cls.addClassCleanup(cls.registry.clear_cache)  # the provider list is cached
        cls.addClassCleanup(cls.registry.__delitem__, McpTestToolProvider._name)
        cls.registry.clear_cache()

    def setUp(self):
        super().setUp()
        SCRIPT.clear()
        CALLS.clear()


@tagged("post_install", "-at_install")
class TestCachedReads(McpIntegratorCase):
    def test_compute_once_then_hit(self):
        computed = []

        def compute():
            computed.append(1)
            return {"rules": ["no refunds after 30 days"]}

        read = [
            self.integrator.cached(self.tenant, "business_rules", "rule", 7, "details", compute)
            for _ in range(3)
        ]
        self.assertEqual(read, [{"rules": ["no refunds after 30 days"]}] * 3)
        self.assertEqual(len(computed), 1)
        self.assertEqual(self.counted(self.tenant, "business_rules"), {"hits": 2, "misses": 1})

    def test_a_cache_hit_runs_no_sql_query(self):
        """Even with the Redis password in a credential: the settings are kept per registry."""
        client = redis.Redis.from_url(REDIS_URL)
        acl_user = f"mcp-test-{uuid.uuid4().hex[:8]}"
        client.acl_setuser(
            acl_user, enabled=True, passwords=["+acl-pass"], keys=["*"], categories=["+@all"]
        )
        self.addCleanup(client.acl_deluser, acl_user)
        credential = self.env["mcp.credential"].create(
            {"name": "Redis ACL", "kind": "basic", "username": acl_user, "secret_input": "acl-pass"}
        )
        params = self.env["ir.config_parameter"].sudo()
        params.set_param("mcp_integrator.redis_url", REDIS_URL.replace("//", f"//{acl_user}@"))
        params.set_param("mcp_integrator.redis_credential_id", str(credential.id))
        self.assertEqual(self.integrator.settings().password, "acl-pass")

        def read():
            return self.integrator.cached(
                self.tenant, "business_rules", "rule", 8, "details", lambda: {"rules": []}
            )

        read()
        COUNTER_FLUSH.ready()  # takes this minute's counter flush, which writes to the database
        with self.assertQueryCount(0):
            self.assertEqual(read(), {"rules": []})
        self.assertEqual(self.counted(self.tenant, "business_rules")["hits"], 1)

    def test_invalidation_levels(self):
        values = iter(range(100))

        def read(resource_type="rule", resource_id=1, module="business_rules"):
            return self.integrator.cached(
                self.tenant, module, resource_type, resource_id, "details", lambda: next(values)
            )

        first = read()
        self.assertEqual(read(), first)
        self.integrator.invalidate(self.tenant, "business_rules", "rule", 1)
        second = read()
        self.assertNotEqual(second, first)
        other = read(resource_id=2)
        self.integrator.invalidate(self.tenant, "business_rules", "rule", 1)
        self.assertEqual(read(resource_id=2), other, "another resource keeps its value")
        self.integrator.invalidate(self.tenant, "business_rules")
        self.assertNotEqual(read(resource_id=2), other)
        kept = read(module="catalog")
        self.integrator.invalidate(self.tenant, "business_rules")
        self.assertEqual(read(module="catalog"), kept, "another module keeps its value")
        self.integrator.invalidate(self.tenant)
        self.assertNotEqual(read(module="catalog"), kept)

    def test_tenants_do_not_share_values(self):
        other = self.make_tenant("Other")
        mine = self.integrator.cached(self.tenant, "m", "t", 1, "a", lambda: "acme")
        theirs = self.integrator.cached(other, "m", "t", 1, "a", lambda: "other")
        self.assertEqual((mine, theirs), ("acme", "other"))
        self.integrator.invalidate(other)
        self.assertEqual(self.integrator.cached(self.tenant, "m", "t", 1, "a", lambda: "x"), "acme")

    def test_invalidated_again_when_the_transaction_ends(self):
        value = iter(range(100))

        def read():
            return self.integrator.cached(self.tenant, "m", "t", 1, "a", lambda: next(value))

        read()
        self.integrator.invalidate(self.tenant, "m", "t", 1)
        # a concurrent worker filling the cache from the old data before our commit...
        stale = read()
        self.assertEqual(read(), stale)
        # ...is undone by the second invalidation, which runs after commit or rollback
        self.env.cr.postrollback.run()
        self.assertNotEqual(read(), stale)

    @mute_logger(CACHE_LOGGER)
    def test_redis_down_keeps_working(self):
        with conf_redis_url(DEAD_REDIS_URL):
            computed = []
            for _ in range(2):
                value = self.integrator.cached(
                    self.tenant, "m", "t", 1, "a", lambda: computed.append(1) or len(computed)
                )
            self.assertEqual(value, 2, "computed every time, no error")
            self.integrator.invalidate(self.tenant, "m")

    @mute_logger(INTEGRATOR_LOGGER)
    def test_invalid_settings_keep_working(self):
        with conf_redis_url("http://not-redis"):
            self.assertEqual(self.integrator.cached(self.tenant, "m", "t", 1, "a", lambda: 5), 5)
            self.integrator.invalidate(self.tenant)
            with self.assertRaisesRegex(Exception, "must start with one of"):
                self.integrator.cache()

    def test_bad_key_parts_are_refused(self):
        with self.assertRaises(ValueError):
            self.integrator.cached(self.tenant, "Bad:Module", "t", 1, "a", lambda: 1)


@tagged("post_install", "-at_install")
class TestCallTool(McpToolCase):
    def test_provider_registry(self):
        providers = self.env["mcp.tool.provider"]._mcp_provider_models()
        self.assertIn("mcp.test.tool.provider", providers)
        self.assertNotIn("mcp.tool.provider", providers)

    def test_success_is_audited_once(self):
        SCRIPT["get_product"] = [{"id": 1, "name": "Shoe"}]
        result = self.integrator.with_context(mcp_correlation_id="conv-42").call_tool(
            self.tenant, "get_product", {"id": 1, "api_key": "k-secret-1"}
        )
        self.assertEqual(result, {"id": 1, "name": "Shoe"})
        self.assertEqual(
            CALLS, [(self.tenant.id, "get_product", {"id": 1, "api_key": "k-secret-1"})]
        )
        row = self.audit_rows(operation="tool.call", tenant_id=self.tenant.id)
        self.assertEqual(len(row), 1)
        self.assertRecordValues(
            row,
            [
                {
                    "target": "get_product",
                    "status": "ok",
                    "module": "tools",
                    "attempts": 1,
                    "correlation_id": "conv-42",
                    "company_id": self.tenant.company_id.id,
                    "user_id": self.env.uid,
                }
            ],
        )
        self.assertEqual(json.loads(row.arguments), {"api_key": "***", "id": 1})
        self.assertGreaterEqual(row.duration_ms, 0)

    def test_cached_result_is_counted_not_audited(self):
        SCRIPT["list_items"] = [["a"], ["b"]]
        first = self.integrator.call_tool(self.tenant, "list_items", {"q": 1}, cache="transient")
        again = self.integrator.call_tool(self.tenant, "list_items", {"q": 1}, cache="transient")
        self.assertEqual((first, again), (["a"], ["a"]))
        self.assertEqual(len(CALLS), 1)
        self.assertEqual(len(self.audit_rows(target="list_items")), 1)
        self.assertEqual(self.counted(self.tenant, "tools")["hits"], 1)
        # other arguments are another result
        self.integrator.call_tool(self.tenant, "list_items", {"q": 2}, cache="transient")
        self.assertEqual(len(CALLS), 2)
        # the tool's results can be dropped by resource type = tool name
        self.integrator.invalidate(self.tenant, "tools", "list_items")
        self.integrator.call_tool(self.tenant, "list_items", {"q": 1}, cache="transient")
        self.assertEqual(len(CALLS), 3)

    def test_transient_errors_are_retried(self):
        SCRIPT["flaky"] = [
            tool_calls.TransientToolError("503 service unavailable"),
            TimeoutError("read timed out"),
            {"ok": True},
        ]
        self.assertEqual(self.integrator.call_tool(self.tenant, "flaky", {}), {"ok": True})
        self.assertEqual(len(CALLS), 3)
        self.assertRecordValues(self.audit_rows(target="flaky"), [{"status": "ok", "attempts": 3}])

    def test_transient_errors_beyond_the_policy(self):
        SCRIPT["down"] = [tool_calls.TransientToolError("502 bad gateway")]
        self.assertEqual(self.integrator.call_tool(self.tenant, "down", {}, fallback=[]), [])
        self.assertEqual(len(CALLS), tool_calls.DEFAULT_POLICY.max_attempts)
        row = self.audit_rows(target="down")
        self.assertRecordValues(
            row, [{"status": "error", "attempts": tool_calls.DEFAULT_POLICY.max_attempts}]
        )
        self.assertIn("502 bad gateway", row.error)

    def test_permanent_error_fallback_or_clear_error_without_secrets(self):
        secret = "sk-live-0123456789abcdefghij"
        SCRIPT["broken"] = [
            tool_calls.PermanentToolError(f"401 Unauthorized (Authorization: Bearer {secret})")
        ]
        self.assertIsNone(self.integrator.call_tool(self.tenant, "broken", {}, fallback=None))
        self.assertEqual(len(CALLS), 1, "permanent errors are not retried")
        with self.assertRaisesRegex(McpToolError, "broken") as caught:
            self.integrator.call_tool(self.tenant, "broken", {"password": secret})
        message = str(caught.exception)
        self.assertIn("broken", message)
        self.assertIn("401 Unauthorized", message)
        self.assertNotIn(secret, message)
        rows = self.audit_rows(target="broken")
        self.assertEqual(rows.mapped("status"), ["error", "error"])
        for row in rows:
            self.assertNotIn(secret, row.error)
            self.assertNotIn(secret, row.arguments or "")

    def test_unexpected_provider_exception_is_a_permanent_error(self):
        SCRIPT["buggy"] = [KeyError("price")]
        with self.assertRaisesRegex(McpToolError, "KeyError"):
            self.integrator.call_tool(self.tenant, "buggy", {})
        self.assertEqual(len(CALLS), 1)

    def test_unknown_tool(self):
        self.assertEqual(self.integrator.call_tool(self.tenant, "nope", {}, fallback="n/a"), "n/a")
        with self.assertRaisesRegex(McpToolError, "no provider offers the tool"):
            self.integrator.call_tool(self.tenant, "nope", {})
        self.assertEqual(self.audit_rows(target="nope").mapped("status"), ["error", "error"])

    def test_result_must_be_json(self):
        SCRIPT["records"] = [lambda env, arguments: env["res.partner"].browse(1)]
        with self.assertRaisesRegex(McpToolError, "not JSON-serialisable"):
            self.integrator.call_tool(self.tenant, "records", {})

    def test_failed_attempts_leave_nothing_behind(self):
        attempt_numbers = count(1)

        def write_then_fail(env, arguments):
            number = next(attempt_numbers)
            env["ir.config_parameter"].set_param(f"test.mcp.attempt.{number}", "written")
            if number < 3:
                raise tool_calls.TransientToolError("flaky")
            return number

        SCRIPT["writer"] = [write_then_fail]
        self.assertEqual(self.integrator.call_tool(self.tenant, "writer", {}), 3)
        params = self.env["ir.config_parameter"].sudo()
        self.assertFalse(params.get_param("test.mcp.attempt.1"))
        self.assertFalse(params.get_param("test.mcp.attempt.2"))
        self.assertEqual(params.get_param("test.mcp.attempt.3"), "written")

    def test_archived_tenant_is_refused(self):
        SCRIPT["echo"] = ["echo"]
        tenant = self.make_tenant("Archived")
        tenant.active = False
        with self.assertRaisesRegex(McpToolRefused, "archived"):
            self.integrator.call_tool(tenant, "echo", {}, fallback="never for a refusal")
        # assertRaisesRegex, not assertRaises: the latter rolls back a savepoint, and in test
        # mode the audit row lives in the test transaction
        with self.assertRaisesRegex(McpToolRefused, "archived"):
            self.integrator.call_tool(tenant, "echo", {}, cache="transient")
        self.assertEqual(CALLS, [])
        self.assertEqual(
            self.audit_rows(tenant_id=tenant.id, operation="tool.call").mapped("status"),
            ["refused", "refused"],
        )

    def test_tenant_of_another_company_is_refused(self):
        SCRIPT["echo"] = ["echo"]
        company_b = self.env["res.company"].create({"name": "Company B"})
        tenant_b = self.make_tenant("Tenant B", company_id=company_b.id)
        user_a = new_test_user(
            self.env,
            login="mcp_tool_user_a",
            groups="mcp_integrator.group_mcp_user",
            company_id=self.env.company.id,
            company_ids=[self.env.company.id],
        )
        integrator = self.integrator.with_user(user_a)
        self.assertEqual(integrator.call_tool(self.tenant.with_user(user_a), "echo", {}), "echo")
        with self.assertRaisesRegex(McpToolRefused, "company"):
            integrator.call_tool(tenant_b.with_user(user_a), "echo", {})
        self.assertEqual(len(CALLS), 1)
        self.assertRecordValues(
            self.audit_rows(tenant_id=tenant_b.id, operation="tool.call"),
            [{"status": "refused", "user_id": user_a.id, "company_id": company_b.id}],
        )

    def test_bad_arguments(self):
        SCRIPT["echo"] = ["echo"]
        with self.assertRaises(TypeError):
            self.integrator.call_tool(self.tenant, "echo", ["not", "a", "dict"])
        with self.assertRaises(ValueError):
            self.integrator.call_tool(self.tenant, "echo", {"when": object()})
        with self.assertRaises(ValueError):
            self.integrator.call_tool(self.tenant, "echo", {}, cache="forever")
        with self.assertRaises(TypeError):
            self.integrator.call_tool(self.tenant, "", {})
        self.assertEqual(CALLS, [])

    @mute_logger(CACHE_LOGGER)
    def test_call_tool_with_redis_down(self):
        SCRIPT["echo"] = ["echo"]
        with conf_redis_url(DEAD_REDIS_URL):
            for _ in range(2):
                self.assertEqual(
                    self.integrator.call_tool(self.tenant, "echo", {}, cache="transient"), "echo"
                )
        self.assertEqual(len(CALLS), 2, "no cache: every call reaches the provider")
