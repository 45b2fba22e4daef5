# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Daily metrics: cache counters flushed by atomic upserts, call figures from the audit rows."""

import time
from datetime import timedelta

from psycopg2 import IntegrityError

from odoo import fields
from odoo.exceptions import AccessError
from odoo.tests import new_test_user, tagged
from odoo.tools import mute_logger

from .test_integrator_api import McpIntegratorCase


@tagged("post_install", "-at_install")
class TestMetrics(McpIntegratorCase):
    def setUp(self):
        super().setUp()
        self.Metric = self.env["mcp.metric.daily"]
        self.cache = self.integrator.cache()

    def row(self, tenant, module, day=None):
        self.Metric.invalidate_model()
        return self.Metric.search(
            [
                ("tenant_id", "=", tenant.id),
                ("module", "=", module),
                ("date", "=", day or fields.Date.today()),
            ]
        )

    def read_product(self, resource_id, module="catalog"):
        def compute():
            time.sleep(0.002)  # a real computation takes time: the hits save it
            return {"id": resource_id}

        return self.integrator.cached(
            self.tenant, module, "product", resource_id, "details", compute
        )

    def log_call(self, duration_ms, status="ok", module="tools", **kwargs):
        return self.env["mcp.audit.log"]._log(
            "tool.call",
            "get_product",
            status=status,
            tenant=self.tenant,
            module=module,
            duration_ms=duration_ms,
            **kwargs,
        )

    def test_counters_are_upserted(self):
        for _ in range(3):
            self.read_product(1)
        self.Metric._flush_cache_counters(self.cache)
        row = self.row(self.tenant, "catalog")
        self.assertRecordValues(
            row, [{"cache_hits": 2, "company_id": self.tenant.company_id.id, "calls": 0}]
        )
        self.assertGreaterEqual(row.cache_misses, 1)
        self.assertAlmostEqual(
            row.hit_rate, row.cache_hits / (row.cache_hits + row.cache_misses), places=4
        )
        self.assertGreater(row.saved_ms, 0)
        misses = row.cache_misses
        self.read_product(1)
        self.read_product(2)
        self.Metric._flush_cache_counters(self.cache)
        row = self.row(self.tenant, "catalog")
        self.assertEqual(len(row), 1, "one row per day, tenant and module")
        self.assertEqual(row.cache_hits, 3)
        self.assertGreater(row.cache_misses, misses)
        self.assertAlmostEqual(row.hit_rate, 3 / (3 + row.cache_misses), places=4)
        self.assertEqual(self.Metric._flush_cache_counters(self.cache), 0, "nothing left")

    def test_counters_of_unknown_accounts_are_dropped(self):
        key = self.cache.key(987654321, "catalog", "product", 1, "details")
        self.cache.get(key)
        self.read_product(1)
        self.assertEqual(self.Metric._flush_cache_counters(self.cache), 1)
        self.assertFalse(self.Metric.search([("tenant_id", "=", False)]))

    def test_call_figures_from_the_audit_rows(self):
        for duration in (10, 20, 30):
            self.log_call(duration, tokens_in=100, tokens_out=10, cost=0.5)
        self.log_call(40, status="error")
        self.log_call(5, module=None)  # not a call: configuration change
        for _ in range(2):
            self.read_product(1, module="tools")
        self.Metric._flush_cache_counters(self.cache)
        counters = self.row(self.tenant, "tools").read(["cache_hits", "cache_misses"])[0]
        today = fields.Date.today()
        self.Metric._aggregate_day(today)
        expected = {
            "calls": 4,
            "errors": 1,
            "latency_p50_ms": 25.0,
            "latency_p95_ms": 38.5,
            "tokens_in": 300,
            "tokens_out": 30,
            "cost": 1.5,
            "cache_hits": 1,
            "cache_misses": counters["cache_misses"],
        }
        self.assertRecordValues(self.row(self.tenant, "tools"), [expected])
        # idempotent, and the counters are left alone
        self.Metric._aggregate_day(today)
        self.assertRecordValues(self.row(self.tenant, "tools"), [expected])

    def test_cron_covers_today_and_yesterday(self):
        yesterday_call = self.log_call(70)
        self.log_call(30)
        self.env.cr.execute(
            "UPDATE mcp_audit_log SET create_date = create_date - interval '1 day' WHERE id = %s",
            (yesterday_call,),
        )
        self.read_product(1)
        self.env.ref("mcp_integrator.ir_cron_mcp_metrics_aggregate").method_direct_trigger()
        today = fields.Date.today()
        self.assertEqual(self.row(self.tenant, "tools").latency_p95_ms, 30)
        self.assertEqual(self.row(self.tenant, "tools", today - timedelta(days=1)).calls, 1)
        self.assertGreaterEqual(self.row(self.tenant, "catalog").cache_misses, 1)

    def test_one_row_per_day_tenant_and_module(self):
        vals = {"date": fields.Date.today(), "tenant_id": self.tenant.id, "module": "dup"}
        self.Metric.create(vals)
        with mute_logger("odoo.sql_db"), self.assertRaises(IntegrityError), self.env.cr.savepoint():
            self.Metric.create(vals)

    def test_hit_rate_is_computed(self):
        row = self.Metric.create(
            {
                "date": fields.Date.today(),
                "tenant_id": self.tenant.id,
                "module": "rate",
                "cache_hits": 3,
                "cache_misses": 1,
            }
        )
        self.assertEqual(row.hit_rate, 0.75)
        row.cache_misses = 0
        self.assertEqual(row.hit_rate, 1.0)

    def test_users_see_the_metrics_of_their_companies(self):
        company_b = self.env["res.company"].create({"name": "Metrics Company B"})
        tenant_b = self.make_tenant("Metrics Tenant B", company_id=company_b.id)
        today = fields.Date.today()
        mine = self.Metric.create({"date": today, "tenant_id": self.tenant.id, "module": "vis"})
        theirs = self.Metric.create({"date": today, "tenant_id": tenant_b.id, "module": "vis"})
        self.assertEqual(theirs.company_id, company_b)
        user = new_test_user(
            self.env,
            login="mcp_metrics_user_a",
            groups="mcp_integrator.group_mcp_user",
            company_id=self.env.company.id,
            company_ids=[self.env.company.id],
        )
        self.assertEqual(self.Metric.with_user(user).search([("module", "=", "vis")]), mine)
        with self.assertRaises(AccessError):
            theirs.with_user(user).read(["calls"])
        groups = self.Metric.with_user(user)._read_group(
            [("module", "=", "vis")], ["tenant_id"], ["calls:sum"]
        )
        self.assertEqual([tenant for tenant, _calls in groups], [self.tenant])
