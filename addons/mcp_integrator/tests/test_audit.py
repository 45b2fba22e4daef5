# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Audit rows: masked, read-only, per company, purged after the retention, and they survive the
rollback of the transaction they describe."""

import json
import uuid
from datetime import timedelta

from odoo import SUPERUSER_ID, api, fields
from odoo.exceptions import AccessError
from odoo.tests import TransactionCase, new_test_user, tagged

from ..services import audit_writer
from .test_integrator_api import ACCOUNT_IDS, McpIntegratorCase


@tagged("post_install", "-at_install")
class TestAuditLog(McpIntegratorCase):
    def log(self, **kwargs):
        kwargs.setdefault("operation", "test.op")
        kwargs.setdefault("target", "target")
        return self.env["mcp.audit.log"].browse(self.env["mcp.audit.log"]._log(**kwargs))

    def test_secrets_are_masked(self):
        row = self.log(
            target="redis://:pw-in-url@cache:6379/0",
            arguments={
                "user": "bob",
                "password": "p4ss",
                "nested": [{"refresh_token": "r3fresh"}, "Authorization: Bearer abcdef123456"],
                "max_tokens": 10,
            },
            error="upstream said: invalid api_key=zz-secret-99 for client_secret: cs-42",
            status="error",
        )
        self.assertEqual(
            json.loads(row.arguments),
            {
                "user": "bob",
                "password": "***",
                "nested": [{"refresh_token": "***"}, "Authorization: ***"],
                "max_tokens": 10,
            },
        )
        for secret in ("p4ss", "r3fresh", "abcdef123456", "zz-secret-99", "cs-42", "pw-in-url"):
            self.assertNotIn(secret, row.arguments + row.error + row.target)

    def test_fields_and_defaults(self):
        row = self.log(
            operation="llm.completion",
            target="openai/gpt-4o-mini",
            tenant=self.tenant,
            module="crew",
            duration_ms=812.5,
            tokens_in=1200,
            tokens_out=300,
            cost=0.0021,
        )
        self.assertRecordValues(
            row,
            [
                {
                    "tenant_id": self.tenant.id,
                    "company_id": self.tenant.company_id.id,
                    "user_id": self.env.uid,
                    "status": "ok",
                    "module": "crew",
                    "tokens_in": 1200,
                    "tokens_out": 300,
                    "cost": 0.0021,
                    "cache_hit": False,
                    "arguments": False,
                }
            ],
        )
        self.assertEqual(len(row.correlation_id), 32, "a correlation id is always set")
        traced = self.log(correlation_id="job-7")
        self.assertEqual(traced.correlation_id, "job-7")
        from_context = self.env["mcp.audit.log"].with_context(mcp_correlation_id="conv-9")
        self.assertEqual(from_context.browse(from_context._log("x", "y")).correlation_id, "conv-9")

    def test_bad_status_is_refused(self):
        with self.assertRaises(ValueError):
            self.log(status="maybe")

    def test_large_arguments_are_truncated(self):
        row = self.log(arguments={"blob": "x" * 50000})
        self.assertLessEqual(len(row.arguments), 16000)

    def test_rows_are_read_only(self):
        row = self.log(tenant=self.tenant)
        user = new_test_user(
            self.env, login="mcp_audit_user", groups="mcp_integrator.group_mcp_user"
        )
        manager = new_test_user(
            self.env, login="mcp_audit_manager", groups="mcp_integrator.group_mcp_manager"
        )
        self.assertEqual(row.with_user(user).operation, "test.op")
        for who in (user, manager):
            with self.assertRaises(AccessError):
                row.with_user(who).write({"status": "error"})
            with self.assertRaises(AccessError):
                self.env["mcp.audit.log"].with_user(who).create({"operation": "forged"})
        with self.assertRaises(AccessError):
            row.with_user(user).unlink()
        row.with_user(manager).unlink()
        self.assertFalse(row.exists())

    def test_users_see_the_rows_of_their_companies(self):
        company_b = self.env["res.company"].create({"name": "Audit Company B"})
        tenant_b = self.make_tenant("Audit Tenant B", company_id=company_b.id)
        mine = self.log(tenant=self.tenant, operation="test.visibility")
        theirs = self.log(tenant=tenant_b, operation="test.visibility")
        global_row = self.log(operation="test.visibility")
        self.assertFalse(global_row.company_id)
        company_a = self.env.company
        user = new_test_user(
            self.env,
            login="mcp_audit_user_a",
            groups="mcp_integrator.group_mcp_user",
            company_id=company_a.id,
            company_ids=[company_a.id],
        )
        manager = new_test_user(
            self.env,
            login="mcp_audit_manager_a",
            groups="mcp_integrator.group_mcp_manager",
            company_id=company_a.id,
            company_ids=[company_a.id],
        )
        domain = [("operation", "=", "test.visibility")]
        self.assertEqual(self.env["mcp.audit.log"].with_user(user).search(domain), mine)
        self.assertEqual(
            self.env["mcp.audit.log"].with_user(manager).search(domain), mine | global_row
        )
        with self.assertRaises(AccessError):
            theirs.with_user(manager).read(["error"])
        rows = self.env["mcp.audit.log"].with_user(user).search_read(domain, ["target"])
        self.assertEqual([r["id"] for r in rows], mine.ids)

    def test_retention_purge(self):
        params = self.env["ir.config_parameter"].sudo()
        rows = {age: self.log(operation=f"test.age.{age}") for age in (0, 10, 40)}
        for age, row in rows.items():
            self.env.cr.execute(
                "UPDATE mcp_audit_log SET create_date = %s WHERE id = %s",
                (fields.Datetime.now() - timedelta(days=age, minutes=1), row.id),
            )
        params.set_param("mcp_integrator.audit_retention_days", 30)
        audit = self.env["mcp.audit.log"]
        self.assertGreaterEqual(audit._cron_purge_expired(), 1)
        self.assertEqual([age for age, row in rows.items() if row.exists()], [0, 10])
        params.set_param("mcp_integrator.audit_retention_days", 5)
        audit._cron_purge_expired()
        self.assertEqual([age for age, row in rows.items() if row.exists()], [0])

    def test_purge_cron_is_installed(self):
        cron = self.env.ref("mcp_integrator.ir_cron_mcp_audit_purge")
        self.assertTrue(cron.active)
        cron.method_direct_trigger()


@tagged("post_install", "-at_install")
class TestAuditSurvivesRollback(TransactionCase):
    """Real cursors, not the test mode, and the background writer: what is proven here is what
    production does.

    The rows are committed for real, so each test reads them through a fresh cursor (the test
    transaction cannot see rows committed after it started) and deletes them afterwards.
    """

    def setUp(self):
        super().setUp()
        self.marker = f"test-rollback-{uuid.uuid4().hex}"
        self.addCleanup(self.delete_committed)

    def committed(self, query, *params):
        with self.registry.cursor() as cr:
            cr.execute(query, params)
            return cr.fetchall()

    def committed_rows(self):
        self.assertTrue(audit_writer.flush_all(), "the background writer wrote every row")
        return self.committed(
            "SELECT operation, tenant_id, company_id, status FROM mcp_audit_log "
            "WHERE correlation_id = %s ORDER BY id",
            self.marker,
        )

    def delete_committed(self, tenant_ids=()):
        with self.registry.cursor() as cr:
            cr.execute("DELETE FROM mcp_audit_log WHERE correlation_id = %s", (self.marker,))
            for tenant_id in tenant_ids:
                cr.execute(
                    "DELETE FROM mcp_audit_log WHERE target = %s", (f"mcp.tenant,{tenant_id}",)
                )
                cr.execute("DELETE FROM mcp_tenant WHERE id = %s", (tenant_id,))

    def test_rows_are_written_in_the_background_unless_asked_at_once(self):
        audit = self.env["mcp.audit.log"].with_context(mcp_audit_background=True)
        self.assertIsNone(audit._log("test.background", "x", correlation_id=self.marker))
        row_id = audit.with_context(mcp_audit_background=False)._log(
            "test.at_once", "x", correlation_id=self.marker
        )
        self.assertEqual(
            self.committed("SELECT operation FROM mcp_audit_log WHERE id = %s", row_id),
            [("test.at_once",)],
        )
        self.assertEqual(
            [operation for operation, *_rest in self.committed_rows()],
            ["test.at_once", "test.background"],
        )

    def test_row_survives_a_rolled_back_savepoint(self):
        with self.assertRaises(RuntimeError), self.env.cr.savepoint():
            self.env["mcp.audit.log"].with_context(mcp_audit_background=True)._log(
                "test.savepoint", "x", correlation_id=self.marker
            )
            raise RuntimeError("the operation failed")
        self.assertEqual(self.committed_rows(), [("test.savepoint", None, None, "ok")])

    def test_row_survives_a_rolled_back_transaction(self):
        with self.registry.cursor() as caller_cr:
            env = api.Environment(caller_cr, SUPERUSER_ID, {})
            env["mcp.audit.log"].with_context(mcp_audit_background=True)._log(
                "test.transaction", "x", status="error", correlation_id=self.marker
            )
            caller_cr.rollback()
        self.assertEqual(self.committed_rows(), [("test.transaction", None, None, "error")])

    def test_uncommitted_tenant_is_not_referenced(self):
        tenant = self.env["mcp.tenant"].create(
            {"name": "Uncommitted", "code": "uncommitted", "account_id": next(ACCOUNT_IDS)}
        )
        self.addCleanup(self.delete_committed, [tenant.id])
        self.env["mcp.audit.log"].with_context(mcp_audit_background=True)._log(
            "test.uncommitted", "x", tenant=tenant, correlation_id=self.marker
        )
        self.assertEqual(
            self.committed_rows(), [("test.uncommitted", None, tenant.company_id.id, "ok")]
        )

    def test_tenant_being_deleted_does_not_block(self):
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            tenant_id = (
                env["mcp.tenant"]
                .create({"name": "Committed", "code": "committed", "account_id": next(ACCOUNT_IDS)})
                .id
            )
        self.addCleanup(self.delete_committed, [tenant_id])
        with self.registry.cursor() as caller_cr:
            env = api.Environment(caller_cr, SUPERUSER_ID, {})
            tenant = env["mcp.tenant"].browse(tenant_id)
            company_id = tenant.company_id.id
            # the caller deletes the tenant and has not committed: its row is locked
            caller_cr.execute("DELETE FROM mcp_tenant WHERE id = %s", (tenant_id,))
            env["mcp.audit.log"].with_context(mcp_audit_background=True)._log(
                "test.locked", "x", tenant=tenant, correlation_id=self.marker
            )
            # written while the caller still holds the lock: the insert must not wait for it
            self.assertTrue(audit_writer.flush_all())
            caller_cr.rollback()
        self.assertEqual(self.committed_rows(), [("test.locked", None, company_id, "ok")])
