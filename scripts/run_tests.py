"""`make test`: lint, then the three test tiers, then one summary (README.md, "Test tiers").

Tiers:
  plain    python3 -m pytest tests/            no database, real Redis
  odoo     the addons' Odoo tests               fresh database, Odoo's own test runner
  browser  the addons' tours (tag mcp_browser)  same database, headless Chromium

A tier that should run but runs no test, cannot run, or ends with failures counts as failed;
where Odoo 19 is not importable only lint and the plain tier run and the run fails.
Logs of each run: .run/test-logs/<run id>/ (the test database is mcp_test_<run id>).
"""

import ast
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import check_install_log
import odoo_env

ROOT = odoo_env.ROOT
SCRIPTS = ROOT / "scripts"
PYTHON = sys.executable
BROWSER_TAG = "mcp_browser"
# Odoo apps installed with the suite's addons (their own tests are not run): the tools that
# need them (mcp_connectors' built-in Odoo tools for orders, stock and CRM leads) are absent
# without them, and so would their tests be.
APPS_FOR_OPTIONAL_TOOLS = ("sale_management", "stock", "crm")
VERBOSE = os.environ.get("MCP_TEST_VERBOSE") == "1"
TIMEOUT = int(os.environ.get("MCP_TEST_TIMEOUT", "1800"))  # seconds per Odoo run
DB = {
    "host": os.environ.get("MCP_DB_HOST", "127.0.0.1"),
    "port": os.environ.get("MCP_DB_PORT", "5432"),
    "user": os.environ.get("MCP_DB_USER", "odoo"),
    "password": os.environ.get("MCP_DB_PASSWORD", "odoo"),
}
TEST_SUMMARY = re.compile(
    r"odoo\.tests\.result: (\d+) failed, (\d+) error\(s\) of (\d+) tests when loading database"
)
# Records that report test failures already counted by the summary line.
COUNTED_FAILURE = re.compile(r": (?:FAIL|ERROR): |: Module \w+: \d+ failures|: Test suite halted")
SKIPPED = re.compile(
    r"^\S+ \S+ \d+ INFO \S+ odoo\.addons\.\S+: skipped (?P<test>.+?) : (?P<reason>.*)"
)
BROWSER_BROKEN = re.compile(r"chrome|chromium|devtools|websocket", re.IGNORECASE)


@dataclass
class Tier:
    name: str
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    problems: list = field(default_factory=list)

    def problem(self, text):
        """Something that stops the tier from passing; counts as one failure in the totals."""
        self.problems.append(text)
        self.failed += 1

    @property
    def ok(self):
        return not self.problems and self.failed == 0 and self.passed > 0

    def line(self):
        text = f"{self.name}: {self.passed} passed, {self.failed} failed"
        if self.skipped:
            text += f", {self.skipped} skipped"
        if self.problems:
            text += " (" + "; ".join(self.problems) + ")"
        return text


def banner(text):
    print(f"\n==> {text}", flush=True)


def run(command, **kwargs):
    print("    $ " + " ".join(str(part) for part in command), flush=True)
    return subprocess.run(command, cwd=ROOT, check=False, **kwargs).returncode


def run_logged(command, log_path, echo, env=None):
    """Run ``command`` with its output in ``log_path``; print the lines ``echo`` selects.

    The command runs in its own process group, killed after TIMEOUT seconds (Odoo starts
    Chromium, which must not outlive it).
    """
    print("    $ " + " ".join(str(part) for part in command), flush=True)
    print(f"    (full log: {log_path.relative_to(ROOT)})", flush=True)
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            start_new_session=True,
            env=env,
        )
        timed_out = threading.Event()

        def kill_group():
            timed_out.set()
            with contextlib.suppress(ProcessLookupError):  # it may end at that very moment
                os.killpg(process.pid, signal.SIGKILL)

        watchdog = threading.Timer(TIMEOUT, kill_group)
        watchdog.start()
        try:
            for line in process.stdout:
                log.write(line)
                if VERBOSE or echo(line):
                    print("    | " + line.rstrip(), flush=True)
            process.wait()
        finally:
            watchdog.cancel()
            if process.poll() is None:  # interrupted: take Odoo and its browser down with us
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    if timed_out.is_set():
        return f"killed after {TIMEOUT}s (MCP_TEST_TIMEOUT)"
    return process.returncode


def odoo_echo():
    """Echo filter for Odoo logs: warnings (first line), errors with their tracebacks, test
    progress and the test summary. The full log is in the file."""
    state = {"error": False}

    def echo(line):
        start = check_install_log.RECORD_START.match(line)
        if not start:
            return state["error"]
        state["error"] = start["level"] in ("ERROR", "CRITICAL")
        return (
            start["level"] in check_install_log.SERIOUS
            or (".tests." in start["logger"] and (": Starting " in line or ": skipped " in line))
            or start["logger"] == "odoo.tests.result"
        )

    return echo


# -- steps ------------------------------------------------------------------------------------


def ensure(items):
    return run(["bash", str(SCRIPTS / "services.sh"), *items]) == 0


def lint_step():
    banner("Lint: ruff check, ruff format --check, pylint-odoo (scripts/lint.sh)")
    return run(["bash", str(SCRIPTS / "lint.sh")]) == 0


def plain_tier(logs):
    tier = Tier("plain")
    banner("Tier plain: python3 -m pytest tests/ (no database, real Redis)")
    report = logs / "plain.xml"
    code = run([PYTHON, "-m", "pytest", "tests/", f"--junitxml={report}"])
    if code == 5:
        tier.problem("pytest collected no tests (exit 5)")
        return tier
    if not report.exists():
        tier.problem(f"pytest exited {code} without a report")
        return tier
    suites = ET.parse(report).getroot()
    suites = [suites] if suites.tag == "testsuite" else list(suites)
    total = sum(int(suite.get("tests", 0)) for suite in suites)
    failures = sum(int(suite.get("failures", 0)) + int(suite.get("errors", 0)) for suite in suites)
    tier.skipped = sum(int(suite.get("skipped", 0)) for suite in suites)
    tier.passed = total - failures - tier.skipped
    tier.failed = failures
    if code not in (0, 1):
        tier.problem(f"pytest exited {code}")
    elif code == 1 and not failures:
        tier.problem("pytest exited 1 without reporting a failure")
    if total == 0:
        tier.problem("no test ran")
    return tier


class OdooRun:
    """A throw-away database and data directory for the Odoo tiers."""

    def __init__(self, run_id, logs):
        self.db = f"{os.environ.get('MCP_TEST_DB_PREFIX', 'mcp_test')}_{run_id}"
        self.logs = logs
        self.data_dir = logs / "data"
        self.port = int(os.environ.get("MCP_TEST_HTTP_PORT") or free_port())
        self.addons = odoo_env.suite_addons()
        addons_dirs = [*odoo_env.odoo_addons_dirs(), odoo_env.SUITE_ADDONS_DIR]
        self.addons_path = ",".join(str(path) for path in addons_dirs)
        # The password goes through the environment (libpq reads it), never on a command line.
        self.env = dict(os.environ, PGPASSWORD=DB["password"])
        self.config = logs / "odoo-test.conf"
        # An empty config file of our own keeps a user's ~/.odoorc out of the tests.
        self.config.write_text("[options]\n", encoding="utf-8")

    def command(self, *extra):
        return [
            PYTHON,
            str(SCRIPTS / "odoo_cli.py"),
            f"--config={self.config}",
            f"--addons-path={self.addons_path}",
            f"--data-dir={self.data_dir}",
            f"--db_host={DB['host']}",
            f"--db_port={DB['port']}",
            f"--db_user={DB['user']}",
            f"--database={self.db}",
            "--http-interface=127.0.0.1",
            f"--http-port={self.port}",
            "--workers=0",
            "--max-cron-threads=0",
            "--stop-after-init",
            *extra,
        ]

    def install(self, tier):
        modules = [*self.addons, *APPS_FOR_OPTIONAL_TOOLS]
        banner(f"Installing {', '.join(modules)} on a fresh database {self.db} (no tests)")
        log = self.logs / "install.log"
        code = run_logged(self.command("-i", ",".join(modules)), log, odoo_echo(), self.env)
        if code != 0:
            tier.problem(f"install exited {code}")
            return False
        print("    checking the install log (scripts/check_install_log.py)", flush=True)
        if run([PYTHON, str(SCRIPTS / "check_install_log.py"), str(log)]) != 0:
            tier.problem("install logged warnings/errors from our addons")
        return True

    def run_tests(self, tier, tags):
        log = self.logs / f"{tier.name}.log"
        code = run_logged(self.command(f"--test-tags={tags}"), log, odoo_echo(), self.env)
        text = log.read_text(encoding="utf-8", errors="replace")
        summaries = TEST_SUMMARY.findall(text)
        skips = [match for match in map(SKIPPED.match, text.splitlines()) if match]
        counted = 0  # failures and errors the test runner reported
        if summaries:
            failed, errors, total = map(int, summaries[-1])
            counted = failed + errors
            tier.failed += counted
            tier.skipped = len(skips)
            tier.passed = total - counted - tier.skipped
        else:
            tier.problem(f"Odoo exited {code} without a test summary")
        # With every test green, an error logged anyway (a test module that failed to import,
        # an unmuted exception) still fails the tier; next to failures it is their echo.
        stray = [
            record
            for record in check_install_log.parse_records(text)
            if record.level in ("ERROR", "CRITICAL")
            and not COUNTED_FAILURE.search(record.lines[0])
            and record.logger != "odoo.tests.result"
        ]
        if summaries and not counted:
            if stray:
                for record in stray:
                    print("    stray: " + record.lines[0], flush=True)
                tier.problem(f"{len(stray)} ERROR/CRITICAL log record(s) outside test failures")
            elif code != 0:
                tier.problem(f"Odoo exited {code}")
        broken = [match for match in skips if BROWSER_BROKEN.search(match["reason"])]
        if broken:
            tier.problem(f"browser unusable: {broken[0]['reason']}")
        if summaries and tier.passed + counted == 0:
            tier.problem("no test ran" + (" (all skipped)" if skips else ""))
        print("    " + tier.line(), flush=True)

    def drop(self):
        if os.environ.get("MCP_TEST_KEEP_DB") == "1":
            print(f"    keeping database {self.db} (MCP_TEST_KEEP_DB=1)")
            return
        banner(f"Dropping the test database {self.db}")
        sql = f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)'
        psql = ["psql", "-X", "-w", "-q", "-h", DB["host"], "-p", DB["port"], "-U", DB["user"]]
        run([*psql, "-d", "postgres", "-c", sql], env=self.env)
        shutil.rmtree(self.data_dir, ignore_errors=True)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def unimported_test_files(addons):
    """tests/test_*.py files that tests/__init__.py does not import: Odoo would never run them."""
    missing = []
    for addon in addons:
        tests_dir = odoo_env.SUITE_ADDONS_DIR / addon / "tests"
        init = tests_dir / "__init__.py"
        imported = set()
        if init.exists():
            for node in ast.walk(ast.parse(init.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and node.level == 1:
                    imported.update(alias.name for alias in node.names)
        missing += [
            f"{addon}/tests/{path.name}"
            for path in sorted(tests_dir.glob("test_*.py"))
            if path.stem not in imported
        ]
    return missing


def odoo_tiers(run_id, logs):
    odoo_tier, browser_tier = Tier("odoo"), Tier("browser")
    for path in unimported_test_files(odoo_env.suite_addons()):
        odoo_tier.problem(f"{path} is not imported by its tests/__init__.py")
    if not ensure(["postgres", "db-role"]):
        odoo_tier.problem("PostgreSQL not available")
        browser_tier.problem("PostgreSQL not available")
        return [odoo_tier, browser_tier]
    odoo_run = OdooRun(run_id, logs)
    if not odoo_run.addons:
        odoo_tier.problem("no addon with a __manifest__.py under addons/")
        browser_tier.problem("no addon to test")
        return [odoo_tier, browser_tier]
    try:
        if not odoo_run.install(odoo_tier):
            browser_tier.problem("install failed")
            return [odoo_tier, browser_tier]
        banner(f"Tier odoo: the addons' tests except the tours (port {odoo_run.port})")
        tags = ",".join(f"/{addon}" for addon in odoo_run.addons) + f",-{BROWSER_TAG}"
        odoo_run.run_tests(odoo_tier, tags)
        banner(f"Tier browser: tours tagged {BROWSER_TAG} in headless Chromium")
        if ensure(["chromium"]):
            odoo_run.run_tests(
                browser_tier, ",".join(f"{BROWSER_TAG}/{a}" for a in odoo_run.addons)
            )
        else:
            browser_tier.problem("Chromium not available")
    finally:
        odoo_run.drop()
    return [odoo_tier, browser_tier]


def fresh_logs_dir(run_id, keep=10):
    """A log directory for this run. Runs beyond the last ``keep`` are removed once a day old
    (a younger one may still be running in another shell)."""
    base = ROOT / ".run" / "test-logs"
    base.mkdir(parents=True, exist_ok=True)
    day_ago = time.time() - 86400
    for old in sorted(base.iterdir(), key=lambda path: path.stat().st_mtime)[: -keep + 1]:
        if old.stat().st_mtime < day_ago:
            shutil.rmtree(old, ignore_errors=True)
    logs = base / run_id
    logs.mkdir()
    return logs


def main():
    failed_steps = []  # steps and tiers that failed, in order
    banner("Python packages (scripts/python_deps.py)")
    deps_ok = run([PYTHON, str(SCRIPTS / "python_deps.py")]) == 0
    lint_ok = lint_step()
    failed_steps += [
        name for name, ok in (("python packages", deps_ok), ("lint", lint_ok)) if not ok
    ]

    banner("Services for the tests")
    redis_ok = ensure(["redis"])
    run_id = uuid.uuid4().hex[:8]
    logs = fresh_logs_dir(run_id)
    tiers = [plain_tier(logs)]
    if not redis_ok:
        tiers[0].problem("Redis not available")
    print("    " + tiers[0].line(), flush=True)

    banner("Odoo 19 (scripts/odoo_env.py check)")
    odoo_missing = odoo_env.odoo_problem()
    if odoo_missing:
        run([PYTHON, str(SCRIPTS / "odoo_env.py"), "check"])
        for name in ("odoo", "browser"):
            tier = Tier(name)
            tier.problem("not run: Odoo 19 is not importable")
            tiers.append(tier)
    else:
        from odoo import release  # importable: checked just above

        print(f"    Odoo {release.version} from {Path(release.__file__).parent}", flush=True)
        tiers.extend(odoo_tiers(run_id, logs))

    banner("Summary")
    if odoo_missing:
        print("!!! ODOO 19 NOT FOUND: only lint and the plain tier ran; this is NOT a full pass.")
    print("lint: " + ("passed" if lint_ok else "FAILED (see above)"))
    for tier in tiers:
        print(tier.line())
        if not tier.ok:
            failed_steps.append(tier.name)
    print("result: " + ("passed" if not failed_steps else "FAILED: " + ", ".join(failed_steps)))
    passed = sum(tier.passed for tier in tiers)
    # A failed step outside the tiers (packages, lint) counts as one failure too.
    failed = sum(tier.failed for tier in tiers) + (not deps_ok) + (not lint_ok)
    print(f"total: {passed} passed, {failed} failed", flush=True)
    return 1 if failed_steps else 0


if __name__ == "__main__":
    sys.exit(main())
