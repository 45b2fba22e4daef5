# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Tenants: identity constraints, behaviour profile, service hours, audit and cache invalidation."""

import json
from datetime import date, datetime, timezone

from psycopg2 import IntegrityError

from odoo.exceptions import ValidationError
from odoo.tests import tagged
from odoo.tools import mute_logger

from .test_integrator_api import ACCOUNT_IDS, McpIntegratorCase

MONDAY_11_UTC = datetime(2026, 3, 2, 11, 0, tzinfo=timezone.utc)  # 08:00 in São Paulo


def hours(*lines):
    """One2many commands for ``(weekday, from, to)`` lines."""
    return [
        (0, 0, {"weekday": str(day), "hour_from": start, "hour_to": end})
        for day, start, end in lines
    ]


WEEKDAYS_8_TO_18 = hours(
    *[(day, 8.0, 12.0) for day in range(5)], *[(d, 13.0, 18.0) for d in range(5)]
)


@tagged("post_install", "-at_install")
class TestTenant(McpIntegratorCase):
    def new_tenant(self, **vals):
        account_id = next(ACCOUNT_IDS)
        return self.env["mcp.tenant"].create(
            {"name": f"Tenant {account_id}", "code": f"t{account_id}", "account_id": account_id}
            | vals
        )

    def audit_rows(self, target):
        return self.env["mcp.audit.log"].search([("target", "=", target)], order="id")

    # identity ---------------------------------------------------------------------------------
    def test_defaults(self):
        tenant = self.new_tenant()
        self.assertEqual(tenant.company_id, self.env.company)
        self.assertTrue(tenant.active)
        self.assertEqual(tenant.tone, "friendly")
        expected_tz = self.env.company.partner_id.tz or self.env.user.tz or "America/Sao_Paulo"
        self.assertEqual(tenant.tz, expected_tz)
        installed = dict(self.env["res.lang"].get_installed())
        self.assertIn(tenant.language, installed, "the default language is always installed")

    def test_default_language_prefers_pt_br_when_installed(self):
        installed = dict(self.env["res.lang"].get_installed())
        if "pt_BR" not in installed:
            self.assertEqual(self.env["mcp.tenant"]._default_language(), "en_US")
            self.env["res.lang"]._activate_lang("pt_BR")
        self.assertEqual(self.env["mcp.tenant"]._default_language(), "pt_BR")
        self.assertEqual(self.new_tenant().language, "pt_BR")

    def test_default_tz_falls_back_to_sao_paulo(self):
        self.env.company.partner_id.tz = False
        self.env.user.tz = False
        self.assertEqual(self.new_tenant().tz, "America/Sao_Paulo")
        self.env.user.tz = "Europe/Lisbon"
        self.assertEqual(self.new_tenant().tz, "Europe/Lisbon")
        self.env.company.partner_id.tz = "America/Manaus"
        self.assertEqual(self.new_tenant().tz, "America/Manaus")

    def test_language_must_be_installed(self):
        with self.assertRaises(ValidationError), self.cr.savepoint():
            self.new_tenant(language="xx_XX")

    def test_code_must_be_a_slug(self):
        for code in ("Acme", "acme store", "-acme", "acme:1", "açaí", "a" * 65, ""):
            with self.subTest(code=code), self.assertRaises(ValidationError), self.cr.savepoint():
                self.new_tenant(code=code)
        self.assertEqual(self.new_tenant(code="acme_store-2").code, "acme_store-2")

    def test_code_is_unique(self):
        self.new_tenant(code="unique-code")
        with mute_logger("odoo.sql_db"), self.assertRaises(IntegrityError), self.cr.savepoint():
            self.new_tenant(code="unique-code")

    def test_account_id_is_unique_and_positive(self):
        tenant = self.new_tenant()
        with mute_logger("odoo.sql_db"), self.assertRaises(IntegrityError), self.cr.savepoint():
            self.new_tenant(account_id=tenant.account_id)
        for account_id in (0, -5):
            with (
                self.subTest(account_id=account_id),
                mute_logger("odoo.sql_db"),
                self.assertRaises(IntegrityError),
                self.cr.savepoint(),
            ):
                self.new_tenant(account_id=account_id)

    # service hours -----------------------------------------------------------------------------
    def test_invalid_intervals_are_refused(self):
        tenant = self.new_tenant()
        for start, end in ((18.0, 8.0), (8.0, 8.0), (-1.0, 8.0), (8.0, 24.5)):
            with (
                self.subTest(start=start, end=end),
                self.assertRaises(ValidationError) as caught,
                self.cr.savepoint(),
            ):
                tenant.write({"hours_ids": hours((2, start, end))})
            self.assertIn("Wednesday", str(caught.exception))
            self.assertIn(tenant.name, str(caught.exception))
        self.assertFalse(tenant.hours_ids, "nothing is half-written")

    def test_overlapping_intervals_are_refused(self):
        tenant = self.new_tenant(hours_ids=hours((0, 8.0, 12.0)))
        with self.assertRaises(ValidationError) as caught, self.cr.savepoint():
            tenant.write({"hours_ids": hours((0, 11.5, 14.0))})
        message = str(caught.exception)
        self.assertIn("Monday", message)
        self.assertIn("08:00-12:00", message)
        self.assertIn("11:30-14:00", message)
        # Touching intervals, and the same hours on another day, are fine.
        tenant.write({"hours_ids": hours((0, 12.0, 14.0), (1, 8.0, 12.0))})
        self.assertEqual(len(tenant.hours_ids), 3)
        # Moving an existing line onto another one is refused too.
        with self.assertRaises(ValidationError), self.cr.savepoint():
            tenant.hours_ids.filtered(lambda line: line.weekday == "1").weekday = "0"

    def test_overlap_within_one_create(self):
        with self.assertRaises(ValidationError), self.cr.savepoint():
            self.new_tenant(hours_ids=hours((4, 8.0, 18.0), (4, 17.0, 20.0)))

    def test_is_open(self):
        tenant = self.new_tenant(tz="America/Sao_Paulo", hours_ids=WEEKDAYS_8_TO_18)
        self.assertTrue(tenant.is_open(MONDAY_11_UTC))
        self.assertTrue(tenant.is_open(datetime(2026, 3, 2, 11, 0)), "naive means UTC")
        self.assertFalse(tenant.is_open(datetime(2026, 3, 2, 10, 59)))
        self.assertFalse(tenant.is_open(datetime(2026, 3, 2, 15, 30)), "lunch break")
        self.assertFalse(tenant.is_open(datetime(2026, 3, 7, 14, 0)), "Saturday")
        tenant.tz = "Europe/Lisbon"  # 11:00 UTC is 11:00 in Lisbon in March
        self.assertTrue(tenant.is_open(datetime(2026, 3, 2, 15, 30)))

    def test_holidays_close_the_day(self):
        tenant = self.new_tenant(
            tz="America/Sao_Paulo",
            hours_ids=WEEKDAYS_8_TO_18,
            holiday_ids=[
                (0, 0, {"date": date(2026, 3, 2), "name": "Inventory"}),
                (0, 0, {"date": date(2020, 12, 25), "name": "Christmas", "yearly": True}),
            ],
        )
        self.assertFalse(tenant.is_open(MONDAY_11_UTC))
        self.assertTrue(tenant.is_open(datetime(2026, 3, 3, 11, 0)))
        self.assertFalse(tenant.is_open(datetime(2026, 12, 25, 14, 0)), "yearly holiday")
        self.assertTrue(tenant.is_open(datetime(2026, 12, 24, 14, 0)))

    def test_holiday_date_is_unique_per_tenant(self):
        tenant = self.new_tenant(holiday_ids=[(0, 0, {"date": date(2026, 4, 21)})])
        with mute_logger("odoo.sql_db"), self.assertRaises(IntegrityError), self.cr.savepoint():
            tenant.write({"holiday_ids": [(0, 0, {"date": date(2026, 4, 21)})]})
        self.new_tenant(holiday_ids=[(0, 0, {"date": date(2026, 4, 21)})])

    def test_open_now_matches_is_open(self):
        always = hours(*[(day, 0.0, 24.0) for day in range(7)])
        self.assertTrue(self.new_tenant(hours_ids=always).open_now)
        self.assertFalse(self.new_tenant().open_now, "no hours: closed")

    # behaviour profile ----------------------------------------------------------------------
    def test_behaviour_profile(self):
        services = self.env.ref("mcp_integrator.service_orders") | self.env.ref(
            "mcp_integrator.service_products"
        )
        tenant = self.new_tenant(
            code="acme-profile",
            tone="formal",
            personality="You are Ana.",
            language="en_US",
            tz="America/Sao_Paulo",
            hours_ids=hours((0, 8.0, 12.0), (0, 13.5, 18.0), (5, 9.0, 13.0)),
            holiday_ids=[
                (0, 0, {"date": date(2999, 1, 2), "name": "Future"}),
                (0, 0, {"date": date(2000, 1, 3), "name": "Past"}),
                (0, 0, {"date": date(2000, 12, 25), "name": "Christmas", "yearly": True}),
            ],
            service_ids=[(6, 0, services.ids)],
            business_rules="No refunds after 30 days.",
        )
        profile = tenant._behaviour_profile()
        self.assertEqual(json.loads(json.dumps(profile)), profile, "plain JSON data")
        self.assertEqual(
            {key: profile[key] for key in profile if key not in ("hours", "holidays", "open_now")},
            {
                "tenant": "acme-profile",
                "name": tenant.name,
                "account_id": tenant.account_id,
                "tone": "formal",
                "personality": "You are Ana.",
                "language": "en_US",
                "tz": "America/Sao_Paulo",
                "services": ["products", "orders"],
                "business_rules": "No refunds after 30 days.",
            },
        )
        self.assertEqual(profile["hours"]["monday"], ["08:00-12:00", "13:30-18:00"])
        self.assertEqual(profile["hours"]["saturday"], ["09:00-13:00"])
        self.assertEqual(profile["hours"]["sunday"], [])
        self.assertEqual(len(profile["hours"]), 7)
        self.assertEqual(
            profile["holidays"],
            [
                {"date": "--12-25", "name": "Christmas", "yearly": True},
                {"date": "2999-01-02", "name": "Future", "yearly": False},
            ],
            "past one-off holidays are left out",
        )
        self.assertIs(profile["open_now"], tenant.is_open())

    # audit and cache -------------------------------------------------------------------------
    def test_changes_are_audited(self):
        tenant = self.new_tenant(business_rules="Rule one")
        target = f"mcp.tenant,{tenant.id}"
        tenant.write({"name": "Renamed", "business_rules": "Rule two"})
        tenant.write({"hours_ids": hours((0, 8.0, 12.0))})
        tenant.hours_ids.hour_to = 13.0  # a direct change of a line is a change of the tenant
        rows = self.audit_rows(target)
        self.assertEqual(
            rows.mapped("operation"),
            ["config.create", "config.write", "config.write", "config.write"],
        )
        self.assertEqual(rows.tenant_id, tenant)
        write = json.loads(rows[1].arguments)
        self.assertEqual(write["fields"], ["business_rules", "name"])
        self.assertEqual(write["values"], {"name": "Renamed"}, "long texts: names only")
        self.assertEqual(json.loads(rows[2].arguments)["fields"], ["hours_ids"])
        self.assertEqual(json.loads(rows[3].arguments)["fields"], ["hours_ids"])
        tenant.unlink()
        deleted = self.audit_rows(target)[-1]
        self.assertEqual(deleted.operation, "config.unlink")
        self.assertEqual(json.loads(deleted.arguments), {"display_name": "Renamed"})

    def cached_profile_counter(self, tenant):
        """Read the tenant's profile through the cache; return how many times it was computed."""
        computed = []

        def compute():
            computed.append(1)
            return tenant._behaviour_profile()

        def read():
            self.integrator.cached(
                tenant, "mcp_integrator", "tenant", tenant.id, "profile", compute, "config"
            )
            return len(computed)

        return read

    def test_writes_invalidate_the_cached_tenant(self):
        tenant = self.new_tenant()
        read = self.cached_profile_counter(tenant)
        self.assertEqual(read(), 1)
        self.assertEqual(read(), 1, "served from the cache")
        tenant.personality = "Changed"
        self.assertEqual(read(), 2, "tenant write invalidates")
        tenant.write({"hours_ids": hours((0, 8.0, 12.0))})
        self.assertEqual(read(), 3)
        tenant.hours_ids.hour_from = 9.0
        self.assertEqual(read(), 4, "line write invalidates")
        tenant.write({"holiday_ids": [(0, 0, {"date": date(2026, 5, 1)})]})
        self.assertEqual(read(), 5)
        tenant.holiday_ids.unlink()
        self.assertEqual(read(), 6, "line unlink invalidates")
        self.assertEqual(read(), 6)

    def test_account_change_drops_the_old_account_cache(self):
        tenant = self.new_tenant()
        old_account = tenant.account_id
        self.integrator.cached(tenant, "other_module", "rule", 1, "details", lambda: 1)
        tenant.account_id = next(ACCOUNT_IDS)
        # The old account's values of every module are gone: moving back recomputes.
        tenant.account_id = old_account
        hits = []
        self.integrator.cached(
            tenant, "other_module", "rule", 1, "details", lambda: hits.append(1) or 2
        )
        self.assertEqual(hits, [1])

    def test_unlink_drops_the_whole_tenant_cache(self):
        tenant = self.new_tenant()
        account_id = tenant.account_id
        self.integrator.cached(tenant, "other_module", "rule", 1, "details", lambda: 1)
        tenant.unlink()
        reborn = self.new_tenant(account_id=account_id)
        hits = []
        self.integrator.cached(
            reborn, "other_module", "rule", 1, "details", lambda: hits.append(1) or 2
        )
        self.assertEqual(hits, [1])
