"""The Odoo database a benchmark runs on: its configuration file, its creation, its updates,
and an Odoo server serving it.

Kept between runs (creating one takes minutes): created when missing, with the given addons,
and updated with the suite's code otherwise; a failed creation is dropped, so the next run
starts over. Configuration and logs: ``.run/bench/<db>.conf`` and ``.run/bench/<db>-*.log``.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
RUN_DIR = ROOT / ".run" / "bench"
ODOO_CLI = [sys.executable, str(ROOT / "scripts" / "odoo_cli.py")]
SERVER_START_SECONDS = 120

sys.path.insert(0, str(ROOT / "scripts"))
import odoo_env


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class BenchDatabase:
    """``name``: the database; ``addons``: what it is created with (comma-separated)."""

    def __init__(self, name, addons):
        self.name = name
        self.addons = addons
        self.conf = RUN_DIR / f"{name}.conf"

    def run(self, args, log_name):
        """Run Odoo's command line to completion; its log is shown only when it fails."""
        log = RUN_DIR / f"{self.name}-{log_name}"
        with open(log, "w", encoding="utf-8") as out:
            done = subprocess.run(
                [*ODOO_CLI, *args], stdout=out, stderr=subprocess.STDOUT, timeout=1800, check=False
            )
        if done.returncode:
            print(log.read_text(encoding="utf-8")[-4000:], file=sys.stderr)
            raise SystemExit(f"odoo {' '.join(args[:2])} ... failed (log: {log})")

    def write_config(self, http_port, workers):
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        addons_path = [*odoo_env.odoo_addons_dirs(), odoo_env.SUITE_ADDONS_DIR]
        odoo_env.write_config(
            ROOT / "odoo.conf.example",
            self.conf,
            {
                "addons_path": ",".join(str(path) for path in addons_path),
                "data_dir": ROOT / ".run" / "data",
                "db_host": os.environ.get("MCP_DB_HOST", "127.0.0.1"),
                "db_port": os.environ.get("MCP_DB_PORT", "5432"),
                "db_user": os.environ.get("MCP_DB_USER", "odoo"),
                "db_password": os.environ.get("MCP_DB_PASSWORD", "odoo"),
                "db_name": self.name,
                "dbfilter": f"^{self.name}$",
                "http_port": http_port,
                "workers": workers,
            },
        )

    def ensure(self):
        """The database with the addons installed and up to date with the code."""
        from odoo.service.db import exp_db_exist

        setup = ["-c", str(self.conf), "-d", self.name, "--stop-after-init", "--workers=0"]
        setup += ["--max-cron-threads=0", "--log-level=warn"]
        if exp_db_exist(self.name):
            suite = ",".join(odoo_env.suite_addons())
            self.run([*setup, "-i", self.addons, "-u", suite], "update.log")
            return
        try:
            self.run(["db", "-c", str(self.conf), "init", self.name], "db-init.log")
            self.run([*setup, "-i", self.addons], "install.log")
        except BaseException:
            # nothing half-written: the next run starts over
            drop = [*ODOO_CLI, "db", "-c", str(self.conf), "drop", self.name]
            subprocess.run(drop, capture_output=True, check=False)
            raise

    @contextlib.contextmanager
    def server(self, http_port, workers=2):
        """Odoo serving the database with ``workers`` HTTP workers; yields its base URL.

        No cron thread, and only base and web loaded server-wide: queue_job's runner does not
        start, so the jobs a bench queues stay queued. Log: ``.run/bench/<db>-server.log``.
        """
        log = RUN_DIR / f"{self.name}-server.log"
        command = [*ODOO_CLI, "-c", str(self.conf), "-d", self.name, f"--http-port={http_port}"]
        command += [f"--gevent-port={free_port()}", f"--workers={workers}"]
        command += ["--max-cron-threads=0", "--load=base,web", "--log-handler=:WARNING"]
        with open(log, "w", encoding="utf-8") as out:
            server = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        base_url = f"http://127.0.0.1:{http_port}"
        try:
            deadline = time.monotonic() + SERVER_START_SECONDS
            while not _healthy(base_url):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the Odoo server did not start (log: {log})")
                time.sleep(0.5)
            yield base_url
        finally:
            # the server's own process group: its workers and gevent process go with it
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=10)


def _healthy(base_url):
    import requests

    try:
        return requests.get(f"{base_url}/web/health", timeout=2).status_code == 200
    except requests.ConnectionError:
        return False
