# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Shared set-up of the Odoo tests: a tenant, and real MCP servers built with the SDK."""

import socket
import subprocess
import sys
import time
from pathlib import Path

from odoo.tests import new_test_user

from odoo.addons.mcp_integrator.tests.test_integrator_api import McpIntegratorCase

DEMO_SERVER = Path(__file__).resolve().parent / "mcp_demo_server.py"


class McpServerProcess:
    """An SDK server (``mcp_demo_server.py``) in a subprocess, on a socket this process keeps,
    so that it can be killed and restarted on the same URL."""

    def __init__(self, mode="http"):
        self.mode = mode
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/mcp"
        self.proc = None
        self.start()

    def start(self):
        fd = self.sock.fileno()
        self.proc = subprocess.Popen(
            [sys.executable, str(DEMO_SERVER), self.mode, str(fd)],
            pass_fds=[fd],
            stderr=subprocess.DEVNULL,
        )

    def kill(self):
        self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self):
        self.kill()
        self.sock.close()


def stdio_command():
    """The command line of the demo server over stdio."""
    return f"{sys.executable} {DEMO_SERVER} stdio"


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

    @staticmethod
    def wait_until(predicate, timeout=10.0):
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("condition not met in time")
            time.sleep(0.05)
