# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""What an admin does in the browser: headless Chromium drives the real web client through the
tours of static/tests/tours/mcp_connectors_tours.js."""

from datetime import timedelta

from odoo import fields
from odoo.tests import HttpCase, new_test_user, tagged
from odoo.tools import SQL

from ..services import client_keys
from .common import McpConnectorsCase, McpServerProcess
from .fake_mercadolivre import FakeMercadoLivre, fixture


@tagged("post_install", "-at_install", "mcp_browser")
class TestBrowserTours(McpConnectorsCase, HttpCase):
    # McpIntegratorCase puts the registry in test mode itself (it may be entered only once)
    registry_test_mode = False

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # the names the tours type
        cls.tour_tenant = cls.make_tenant("Padaria Tour")
        cls.bot = new_test_user(
            cls.env, login="mcp_tour_bot", name="Tour Bot", groups="base.group_user"
        )

    def run_admin_tour(self, tour):
        self.start_tour("/odoo", tour, login="admin")
        # the browser's requests changed the records behind this environment's cache
        self.env.invalidate_all()

    def test_admin_adds_the_builtin_odoo_tools(self):
        self.run_admin_tour("mcp_connectors_odoo_server_tour")
        server = self.env["mcp.server"].search([("tenant_id", "=", self.tour_tenant.id)])
        self.assertEqual((server.kind, server.code), ("odoo", "catalog"))
        self.assertEqual(server.run_as_user_id, self.bot)
        self.assertTrue(server.last_discovery_at)
        tools = {tool.name: tool for tool in server.tool_ids}
        self.assertTrue(tools["odoo_product_search"].enabled)
        self.assertTrue(tools["odoo_log_activity"].enabled, "enabled by the admin's toggle")
        self.assertFalse(tools["odoo_search_records"].enabled)
        still_disabled = server.tool_ids.filtered(
            lambda tool: not tool.read_only and tool.name != "odoo_log_activity"
        )
        self.assertFalse(any(still_disabled.mapped("enabled")))

    def test_admin_generates_a_client_key_shown_once(self):
        self.run_admin_tour("mcp_connectors_client_key_tour")
        key = self.env["mcp.client.key"].search([("tenant_id", "=", self.tour_tenant.id)])
        self.assertEqual(
            (key.name, key.user_id, key.state), ("Claude Desktop Tour", self.bot, "valid")
        )
        self.assertRegex(key.key_prefix, r"^[0-9a-f]{12}$")
        self.assertTrue(key.key_hash.startswith(f"{client_keys.HASH_SCHEME}$"))
        # whole rows, whatever their columns: a key in clear would start with its tag
        for table in ("mcp_client_key", "mcp_audit_log"):
            self.env.cr.execute(
                SQL(
                    "SELECT count(*) FROM %s rec WHERE strpos(rec::text, %s) > 0",
                    SQL.identifier(table),
                    f"{client_keys.KEY_TAG}_",
                )
            )
            self.assertEqual(self.env.cr.fetchone()[0], 0, f"a key in clear in {table}")

    def test_admin_discovers_the_tools_of_a_remote_server(self):
        demo = McpServerProcess("http")
        self.addCleanup(demo.stop)
        server = self.make_server(tenant=self.tour_tenant, name="Demo Remote", url=demo.url)
        self.run_admin_tour("mcp_connectors_remote_server_tour")
        self.assertFalse(server.last_discovery_error)
        tools = {tool.name: tool for tool in server.tool_ids}
        self.assertTrue(tools["add"].enabled)
        self.assertFalse(tools["create_order"].enabled)

    def test_admin_connects_a_mercado_livre_seller_and_tests_it(self):
        app_id, seller = "2069392825111111", "123456789"  # as the tours type them
        token = fixture("mercadolivre_oauth_token_response.json")
        credential = self.env["mcp.credential"].create(
            {
                "name": "Tour ML tokens",
                "kind": "oauth2",
                "oauth_provider": "mercadolivre",
                "tenant_id": self.tour_tenant.id,
                "client_id": app_id,
                "secret_input": "fake-client-secret",
                "access_token_input": token["access_token"],
                "refresh_token_input": token["refresh_token"],
                "expires_at": fields.Datetime.now() + timedelta(hours=5),
            }
        )
        self.run_admin_tour("mcp_connectors_channel_tour")
        channel = self.env["mcp.channel"].search([("tenant_id", "=", self.tour_tenant.id)])
        self.assertEqual(
            (channel.channel_type, channel.account_ref, channel.access_credential_id),
            ("mercadolivre", seller, credential),
        )
        self.assertEqual(channel.server_id.kind, "mercadolivre")
        fake = FakeMercadoLivre(app_id=app_id)
        self.addCleanup(fake.stop)
        channel.api_base_url = fake.url
        self.run_admin_tour("mcp_connectors_channel_test_tour")
        self.assertEqual([request.path for request in fake.requests], ["/users/me"])
