# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Shared set-up of the Odoo tests: a tenant, and real MCP servers built with the SDK."""

import time

from odoo.tests import new_test_user

from odoo.addons.mcp_integrator.tests.test_integrator_api import McpIntegratorCase

from .mcp_server_process import McpServerProcess, stdio_command  # noqa: F401  re-exported


class McpConnectorsCase(McpIntegratorCase):
    """The integrator's test case (own cache namespace, registry in test mode, a tenant) and a
    manager user."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.manager = new_test_user(
            cls.env,
            login=f"mcp_conn_manager_{cls.tenant.account_id}",
            groups="base.group_user,mcp_integrator.group_mcp_manager",
        )

    @classmethod
    def _request_handler(cls, s, r, /, **kw):
        # Odoo's test handler compares the timeout with a number; channel replies use a
        # (connect, read) pair
        if isinstance(kw.get("timeout"), tuple):
            kw["timeout"] = max(kw["timeout"])
        return super()._request_handler(s, r, **kw)

    @classmethod
    def make_server(cls, tenant=None, **vals):
        tenant = tenant or cls.tenant
        return cls.env["mcp.server"].create(
            {
                "name": vals.get("code", "demo").title(),
                "code": "demo",
                "tenant_id": tenant.id,
                "timeout": 5.0,
                **vals,
            }
        )

    @classmethod
    def discovered_demo_server(cls, cleanup, **vals):
        """A real SDK demo server (stopped through ``cleanup``, addCleanup or addClassCleanup)
        and its ``mcp.server``, tools discovered."""
        demo = McpServerProcess("http")
        cleanup(demo.stop)
        server = cls.make_server(url=demo.url, **vals)
        server.action_discover()
        return demo, server

    @staticmethod
    def wait_until(predicate, timeout=10.0):
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("condition not met in time")
            time.sleep(0.05)
