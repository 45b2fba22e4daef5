# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Real MCP servers in subprocesses for the tests of both tiers (no Odoo import here)."""

import socket
import subprocess
import sys
from pathlib import Path

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
