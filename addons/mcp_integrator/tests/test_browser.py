# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo.tests import HttpCase, tagged


@tagged("post_install", "-at_install", "mcp_browser")
class TestBrowserTours(HttpCase):
    """What an admin does in the browser: headless Chromium drives the real web client."""

    def test_admin_creates_a_tenant(self):
        self.start_tour("/odoo", "mcp_integrator_tenant_tour", login="admin")
        tenant = self.env["mcp.tenant"].search([("account_id", "=", 4242)])
        self.assertEqual(tenant.name, "Loja Tour")
        self.assertEqual(tenant.service_ids.mapped("code"), ["orders"])
        self.assertFalse(tenant.is_open())

    def test_admin_tests_the_redis_connection(self):
        self.start_tour(
            "/odoo/settings#mcp_integrator", "mcp_integrator_settings_tour", login="admin"
        )
