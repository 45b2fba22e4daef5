"""MCP tool calls through the suite against their baselines, measured side by side in one run.

Figures (one ``name=value`` per line; medians of interleaved rounds whose order rotates):
- a warm ``call_tool`` through the integrator (a remote ``mcp.server`` on the SDK demo server of
  the addon's tests, streamable HTTP on loopback; ``add`` not cached) vs the same call made
  directly with a warm SDK ``Client`` in a portal thread: through ``McpClientPool`` alone (the
  connector's client, so the same transport settings: the ratio's baseline), and through a bare
  ``mcp.Client(url)`` with the SDK's defaults. The audit row each integrator call writes is
  timed on its own in the same rounds;
- a cached read-only call through the integrator (``add`` with cache class transient, warm hit)
  vs a raw Redis GET of a value of the same size, and vs the cache helper's hit alone;
- Odoo's ``/mcp`` ``tools/call`` (JSON-RPC with a client key; the cached ``add``, and the
  uncached one that reaches the demo server) vs ``/web/health``, on one Odoo server with
  2 workers, through one ``requests.Session`` (Odoo answers ``Connection: close``, so every
  request of both kinds opens a connection).
Targets: integrator call <= 1.3x the direct call; cached call <= 1.5x the raw GET.
The last line is ``integrator_call_over_direct=<ratio>``.

Set-up: the database ``MCP_BENCH_DB`` (default ``mcp_bench``) is created with mcp_connectors
when missing, and its suite addons are updated otherwise; its configuration is written to
``.run/bench/<db>.conf`` from ``odoo.conf.example`` and its logs to ``.run/bench/<db>-*.log``.
The bench's tenant, servers and client key are kept from run to run; the demo server, the Odoo
server, the audit rows and the cache keys of a run are removed at its end.
Environment: ``MCP_BENCH_DB``, ``MCP_BENCH_HTTP_PORT`` (default: a free port),
``MCP_BENCH_REDIS_URL``, ``MCP_BENCH_ROUNDS`` and the ``MCP_DB_*`` settings of scripts/lib.sh.
"""

import contextlib
import importlib.util
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

import redis
import requests

ROOT = Path(__file__).resolve().parent.parent
from benchlib import drop_redis_keys, emit, report_targets  # bench/ is the script's own directory
from benchlib.odoo_db import BenchDatabase, free_port

sys.path.insert(0, str(ROOT / "scripts"))
import odoo_env

DB = os.environ.get("MCP_BENCH_DB", "mcp_bench")
REDIS_URL = os.environ.get("MCP_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
ROUNDS = int(os.environ.get("MCP_BENCH_ROUNDS", "500"))
WARMUP_ROUNDS = 50
DATABASE = BenchDatabase(DB, "mcp_connectors")
TENANT_CODE = "bench"
TENANT_ACCOUNT_ID = 990001
ARGUMENTS = {"a": 1, "b": 2}
NAMESPACE = f"bench-{uuid.uuid4().hex[:8]}"
HTTP_TIMEOUT = 30


def interleaved(paths, rounds=ROUNDS):
    """Median seconds of each path (name -> callable); every round runs each path once."""
    items = list(paths.items())
    for _ in range(WARMUP_ROUNDS):
        for _name, call in items:
            call()
    samples = {name: [] for name in paths}
    clock = time.perf_counter
    for round_no in range(rounds):
        shift = round_no % len(items)
        for name, call in items[shift:] + items[:shift]:
            started = clock()
            call()
            samples[name].append(clock() - started)
    return {name: statistics.median(values) for name, values in samples.items()}


# set-up ---------------------------------------------------------------------------------------


def demo_server_process():
    """The tests' helper that runs the SDK demo server in a subprocess on a loopback socket.

    Loaded by path, as the plain tests do: the addon's tests package imports every test module.
    """
    path = ROOT / "addons" / "mcp_connectors" / "tests" / "mcp_server_process.py"
    spec = importlib.util.spec_from_file_location("mcp_connectors_test_servers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.McpServerProcess("http")


def bench_records(env, demo_url):
    """The bench's tenant and two servers on the demo server: one with ``add`` uncached, one
    with its ``add`` cached as transient. Returns (tenant, uncached tool, cached tool)."""
    params = env["ir.config_parameter"].sudo()
    params.set_param("mcp_integrator.redis_url", REDIS_URL)
    params.set_param("mcp_integrator.cache_namespace", NAMESPACE)
    tenants = env["mcp.tenant"].with_context(active_test=False)
    tenant = tenants.search([("code", "=", TENANT_CODE)]) or tenants.create(
        {"name": "Bench", "code": TENANT_CODE, "account_id": TENANT_ACCOUNT_ID}
    )
    tenant.active = True
    tools = []
    for code, cache_class in (("demo", "none"), ("demo_cached", "transient")):
        server = env["mcp.server"].search([("tenant_id", "=", tenant.id), ("code", "=", code)])
        values = {"url": demo_url, "enabled": True, "timeout": 10.0}
        if server:
            server.write(values)
        else:
            server = server.create(
                {"name": code, "code": code, "tenant_id": tenant.id, "kind": "remote", **values}
            )
        server.action_discover()
        tool = server.tool_ids.filtered(lambda t: t.remote_name == "add")
        tool.write({"enabled": True, "cache_class": cache_class})
        tools.append(tool)
    env.cr.commit()
    return tenant, *tools


def bench_client_key(env, tenant, tools):
    """A fresh key of the bench's MCP client (acting user: the environment's), for ``tools``."""
    from odoo import Command

    keys = env["mcp.client.key"].with_context(active_test=False)
    key = keys.search([("tenant_id", "=", tenant.id), ("name", "=", "Bench")], limit=1)
    values = {
        "active": True,
        "user_id": env.uid,
        "tool_ids": [Command.set(tools.ids)],
        "no_expiry": True,
        "rate_limit": 100000,  # the most a key allows: the bench is not the limiter's test
    }
    key = key or keys.create({"name": "Bench", "tenant_id": tenant.id, **values})
    key.write(values)
    token = key.action_generate_key()["context"]["default_key"]
    env.cr.commit()
    return token


@contextlib.contextmanager
def sdk_client(url):
    """A warm bare SDK ``Client`` (the SDK's defaults) in a blocking portal."""
    from anyio.from_thread import start_blocking_portal
    from mcp import Client

    with (
        start_blocking_portal(backend="asyncio") as portal,
        portal.wrap_async_context_manager(Client(url)) as client,
    ):
        yield lambda: portal.call(client.call_tool, "add", ARGUMENTS)


# figures --------------------------------------------------------------------------------------
def integrator_vs_direct(env, tenant, tool, demo_url):
    from odoo.addons.mcp_connectors.services import mcp_client

    integrator = env["mcp.integrator"]
    spec = tool.server_id._client_spec()
    pool = mcp_client.McpClientPool()
    audit = env["mcp.audit.log"]
    with sdk_client(demo_url) as sdk_call:
        assert sdk_call().structured_content == {"result": 3}
        assert pool.call_tool(spec, "add", ARGUMENTS).structured_content == {"result": 3}
        result = integrator.call_tool(tenant, tool.name, ARGUMENTS, cache=None)
        assert result["structuredContent"] == {"result": 3}, result
        medians = interleaved(
            {
                "sdk_client": sdk_call,
                "pool": lambda: pool.call_tool(spec, "add", ARGUMENTS),
                "integrator": lambda: integrator.call_tool(
                    tenant, tool.name, ARGUMENTS, cache=None
                ),
                "audit_row": lambda: audit._log(
                    "tool.call",
                    tool.name,
                    tenant=tenant,
                    module="tools",
                    duration_ms=2.0,
                    attempts=1,
                    arguments=ARGUMENTS,
                ),
            }
        )
    pool.close()
    ms = {name: value * 1000 for name, value in medians.items()}
    emit("direct_sdk_client_call_median_ms", f"{ms['sdk_client']:.3f}")
    emit("direct_pool_call_median_ms", f"{ms['pool']:.3f}")
    emit("integrator_call_median_ms", f"{ms['integrator']:.3f}")
    emit("integrator_audit_row_median_ms", f"{ms['audit_row']:.3f}")
    emit("integrator_call_over_direct_sdk_client", f"{ms['integrator'] / ms['sdk_client']:.2f}")
    return ms["integrator"] / ms["pool"]


def cached_vs_raw_get(env, tenant, tool):
    from odoo import SUPERUSER_ID, api

    from odoo.addons.mcp_integrator.models.mcp_integrator import TOOLS_MODULE
    from odoo.addons.mcp_integrator.services import audit_writer, tool_calls

    integrator = env["mcp.integrator"]
    store = integrator.cache()
    resource_type, resource_id = tool_calls.cache_resource(
        tool.name, tool_calls.arguments_json(ARGUMENTS)
    )
    key = store.key(tenant.account_id, TOOLS_MODULE, resource_type, resource_id, "call")

    def calls_audited():
        # audit rows are written by this process's background writer on cursors of their own:
        # let it write what it holds, then count them through another cursor
        audit_writer.flush_all()
        with env.registry.cursor() as cr:
            return api.Environment(cr, SUPERUSER_ID, {})["mcp.audit.log"].search_count(
                [("tenant_id", "=", tenant.id), ("target", "=", tool.name)]
            )

    before = calls_audited()
    first = integrator.call_tool(tenant, tool.name, ARGUMENTS)
    assert integrator.call_tool(tenant, tool.name, ARGUMENTS) == first
    assert calls_audited() == before + 1, "the second call must be a cache hit"
    raw = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    stored = raw.get(key.redis_key)
    raw_key = f"{NAMESPACE}:raw"
    raw.set(raw_key, b"x" * len(stored))
    try:
        medians = interleaved(
            {
                "raw_get": lambda: raw.get(raw_key),
                "helper_hit": lambda: store.get(key),
                "integrator_hit": lambda: integrator.call_tool(tenant, tool.name, ARGUMENTS),
            },
            rounds=ROUNDS * 4,  # ~0.1 ms each: more rounds for a steady median
        )
    finally:
        raw.close()
    assert calls_audited() == before + 1, "every timed call must be a cache hit"
    us = {name: value * 1e6 for name, value in medians.items()}
    emit("cached_value_bytes", len(stored))
    emit("raw_get_median_us", f"{us['raw_get']:.1f}")
    emit("cache_helper_hit_median_us", f"{us['helper_hit']:.1f}")
    emit("integrator_cached_call_median_us", f"{us['integrator_hit']:.1f}")
    ratio = us["integrator_hit"] / us["raw_get"]
    emit("integrator_cached_call_over_raw_get", f"{ratio:.2f}")
    return ratio


def mcp_endpoint_vs_health(base_url, token, tool, cached_tool):
    session = requests.Session()
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2025-11-25",
    }

    def tools_call(name):
        body = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": name, "arguments": ARGUMENTS},
        }
        answer = session.post(
            f"{base_url}/mcp", data=json.dumps(body), headers=headers, timeout=HTTP_TIMEOUT
        )
        answer.raise_for_status()
        return answer.json()

    def health():
        session.get(f"{base_url}/web/health", timeout=HTTP_TIMEOUT).raise_for_status()

    for name in (tool.name, cached_tool.name):
        result = tools_call(name).get("result") or {}
        assert result.get("structuredContent") == {"result": 3}, result
    medians = interleaved(
        {
            "health": health,
            "mcp_cached": lambda: tools_call(cached_tool.name),
            "mcp_remote": lambda: tools_call(tool.name),
        }
    )
    session.close()
    ms = {name: value * 1000 for name, value in medians.items()}
    emit("web_health_median_ms", f"{ms['health']:.3f}")
    emit("mcp_tools_call_cached_median_ms", f"{ms['mcp_cached']:.3f}")
    emit("mcp_tools_call_remote_median_ms", f"{ms['mcp_remote']:.3f}")
    emit("mcp_tools_call_cached_over_web_health", f"{ms['mcp_cached'] / ms['health']:.2f}")
    emit("mcp_tools_call_remote_over_web_health", f"{ms['mcp_remote'] / ms['health']:.2f}")


def forget_audit_rows(registry, tenant_id):
    """The run's audit rows would only grow the table from run to run. Through a new cursor:
    they were committed by cursors of their own, after the bench's transaction began."""
    from odoo import SUPERUSER_ID, api

    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        env["mcp.audit.log"].search([("tenant_id", "=", tenant_id)]).unlink()


def main():
    problem = odoo_env.odoo_problem()
    if problem:
        print(f"!!! ODOO 19 NOT FOUND: {problem}.", file=sys.stderr)
        return 3
    import odoo
    from odoo import SUPERUSER_ID, api
    from odoo.modules.registry import Registry

    http_port = int(os.environ.get("MCP_BENCH_HTTP_PORT") or free_port())
    DATABASE.write_config(http_port, workers=2)
    odoo.tools.config.parse_config(
        ["-c", str(DATABASE.conf), "--log-handler=:WARNING"], setup_logging=True
    )
    DATABASE.ensure()
    from odoo.addons.mcp_integrator.services import audit_writer

    demo = demo_server_process()
    tenant_id = None
    try:
        with Registry(DB).cursor() as cr:
            admin = api.Environment(cr, SUPERUSER_ID, {}).ref("base.user_admin")
            env = api.Environment(cr, admin.id, {})
            tenant, tool, cached_tool = bench_records(env, demo.url)
            tenant_id = tenant.id
            call_ratio = integrator_vs_direct(env, tenant, tool, demo.url)
            cached_ratio = cached_vs_raw_get(env, tenant, cached_tool)
            token = bench_client_key(env, tenant, tool | cached_tool)
            with DATABASE.server(http_port) as base_url:
                mcp_endpoint_vs_health(base_url, token, tool, cached_tool)
    finally:
        demo.stop()
        drop_redis_keys(REDIS_URL, f"{NAMESPACE}:")
        if tenant_id:
            # a failed run's rows go too; the background writer first writes what it holds
            audit_writer.flush_all()
            forget_audit_rows(Registry(DB), tenant_id)
    targets = {
        "target_integrator_call_le_1.3": call_ratio <= 1.3,
        "target_cached_call_le_1.5": cached_ratio <= 1.5,
    }
    return report_targets(targets, "integrator_call_over_direct", f"{call_ratio:.2f}")


if __name__ == "__main__":
    sys.exit(main())
