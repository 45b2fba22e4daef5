"""The acknowledgement time of each platform channel's inbound URL vs Odoo's ``/web/health``,
at 50 concurrent deliveries.

A platform waits a bounded time for the answer to its webhook, then counts the delivery as
failed and retries (Mercado Livre: 200 within 500 ms, or the topic is eventually switched off;
Shopee: 3 s; Meta: "a few seconds", taken here as 3 s). The inbound URL checks the signature,
queues the delivery's job and answers; this bench times that answer.

One Odoo server with ``MCP_CHANNELS_BENCH_WORKERS`` HTTP workers (default 7: Odoo's prefork
listen backlog is 8 per worker, and with fewer than 50 / 8 workers the kernel drops the
connection attempts beyond it, which clients retry after 1 s: both kinds' p99 then near 1 s),
no cron thread and no job runner (the queued jobs stay queued), serves the database
``MCP_CHANNELS_BENCH_DB`` with ``chatwoot_bridge``. Its tenant has one channel per platform
with an HTTP inbound URL: WhatsApp, Messenger, Instagram (signed with the Meta app secret, new
each run), Mercado Livre (unsigned; its app id) and Shopee (signed with the live push partner
key, new each run, over the registered URL and the body). Amazon's buyer messages arrive by
e-mail, through Odoo's mail gateway: it has no inbound URL to time.

Deliveries: the shared reference payloads (``shared/reference/channels``), each with a message
id of its own, signed as the platform signs just before it is sent (outside the timed part).
Per platform: a warm-up round (not timed), then ``MCP_CHANNELS_BENCH_MESSAGES`` deliveries
(default 200) and as many ``GET /web/health``, split into 4 rounds, the two kinds alternating,
each round sent by ``MCP_CHANNELS_BENCH_CONCURRENCY`` client threads (default 50), each with
its own ``requests.Session``. Per platform and kind: p50 and p99 of the requests' times, and
the ratio of the p99s.

Afterwards, in the database: the delivery jobs queued for the bench's channels, against the
deliveries sent (``lost`` = sent without a job); then they are removed, unperformed.

Targets, per platform: the acknowledgement's p99 within the platform's deadline, and at most
twice ``/web/health``'s p99 in the same run (at 50 simultaneous requests most of either time is
the wait for a worker and a core: the ratio is what the acknowledgement itself adds, the
deadline what the platform tolerates); then zero failed requests (a platform counts anything
but 2xx as a failure) and zero lost. Each platform's headroom (deadline minus p99) is printed.
Last line ``worst_ack_p99_ms=<ms>``; exit code 1 when a target is missed. The client threads
run on the same machine as Odoo and PostgreSQL, for both kinds alike: on a 2-core machine even
``/web/health`` then waits about 250 ms at p99.

Kept from run to run: the database (created when missing, its suite addons updated otherwise),
its tenant, channels and credentials. Environment: ``MCP_CHANNELS_BENCH_DB`` (default
``mcp_channels_bench``), ``MCP_CHANNELS_BENCH_HTTP_PORT`` (default: a free port), and the
``MCP_DB_*`` settings of scripts/lib.sh.
"""

import copy
import hashlib
import hmac
import json
import os
import secrets
import statistics
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
from benchlib import emit, report_targets  # bench/ is the script's own directory
from benchlib.http_load import burst, p99
from benchlib.odoo_db import BenchDatabase, free_port

sys.path.insert(0, str(ROOT / "scripts"))
import odoo_env

DB = os.environ.get("MCP_CHANNELS_BENCH_DB", "mcp_channels_bench")
MESSAGES = int(os.environ.get("MCP_CHANNELS_BENCH_MESSAGES", "200"))
CONCURRENCY = int(os.environ.get("MCP_CHANNELS_BENCH_CONCURRENCY", "50"))
WORKERS = int(os.environ.get("MCP_CHANNELS_BENCH_WORKERS", "7"))
DATABASE = BenchDatabase(DB, "chatwoot_bridge")
REFERENCE = ROOT.parent / "shared" / "reference" / "channels"  # shared/, beside the repository
TENANT_CODE = "channels-bench"
TENANT_ACCOUNT_ID = 990006
ROUNDS = 4
WARMUP_REQUESTS = 20
ML_APP_ID = "2069392825111111"
SHOPEE_PARTNER_ID = "2001234"

# type: (reference payload, account on the platform, deadline in seconds)
TARGET_RATIO = 2.0

PLATFORMS = {
    "whatsapp": ("whatsapp_inbound_text.json", "106540352242922", 3.0),
    "messenger": ("messenger_inbound_text.json", "109876543210987", 3.0),
    "instagram": ("instagram_inbound_text.json", "17841405309211844", 3.0),
    "mercadolivre": ("mercadolivre_notification_questions.json", "123456789", 0.5),
    "shopee": ("shopee_push_webchat_code10.json", "947042923", 3.0),
}


def bench_channels(env, meta_secret, push_key):
    """``{type: (channel id, inbound token, inbound URL)}`` of the bench's tenant, its signing
    secrets set to this run's; kept between runs: found again by type, created on the first
    run."""
    tenant = env["mcp.tenant"].with_context(active_test=False).search(
        [("code", "=", TENANT_CODE)]
    ) or env["mcp.tenant"].create(
        {"name": "Channels bench", "code": TENANT_CODE, "account_id": TENANT_ACCOUNT_ID}
    )
    tenant.active = True

    def credential(name, **vals):
        found = env["mcp.credential"].search([("tenant_id", "=", tenant.id), ("name", "=", name)])
        return found or env["mcp.credential"].create({"name": name, "tenant_id": tenant.id, **vals})

    meta_app = credential("Meta app secret", kind="hmac")
    meta_app.secret_input = meta_secret
    push = credential("Shopee live push partner key", kind="hmac")
    push.secret_input = push_key
    settings = {
        "whatsapp": {"signing_credential_id": meta_app.id},
        "messenger": {"signing_credential_id": meta_app.id},
        "instagram": {"signing_credential_id": meta_app.id},
        "mercadolivre": {
            "access_credential_id": credential(
                "Mercado Livre app",
                kind="oauth2",
                oauth_provider="mercadolivre",
                client_id=ML_APP_ID,
            ).id
        },
        "shopee": {
            "signing_credential_id": push.id,
            "access_credential_id": credential(
                "Shopee partner",
                kind="oauth2",
                oauth_provider="shopee",
                client_id=SHOPEE_PARTNER_ID,
            ).id,
        },
    }
    channels = {}
    for channel_type, (_sample, account_ref, _deadline) in PLATFORMS.items():
        vals = {"account_ref": account_ref, "tenant_id": tenant.id, **settings[channel_type]}
        channel = (
            env["mcp.channel"]
            .with_context(active_test=False)
            .search([("tenant_id", "=", tenant.id), ("channel_type", "=", channel_type)])
        )
        if channel:
            channel.write({**vals, "active": True})
        else:
            channel = env["mcp.channel"].create(
                {"name": f"Bench {channel_type}", "channel_type": channel_type, **vals}
            )
        channels[channel_type] = (channel.id, channel.inbound_token, channel.inbound_url)
    env.cr.commit()
    return channels


def sample(name):
    return json.loads((REFERENCE / name).read_text(encoding="utf-8"))


def delivery_body(channel_type, template, number):
    """The reference payload of ``channel_type`` as message ``number``, serialised."""
    payload = copy.deepcopy(template)
    if channel_type == "whatsapp":
        value = payload["entry"][0]["changes"][0]["value"]
        value["messages"][0]["id"] = f"wamid.bench-{number}-{uuid.uuid4().hex}"
    elif channel_type in ("messenger", "instagram"):
        payload["entry"][0]["messaging"][0]["message"]["mid"] = f"m_bench_{uuid.uuid4().hex}"
    elif channel_type == "mercadolivre":
        payload["_id"] = str(uuid.uuid4())
        payload["resource"] = f"/questions/{9_000_000_000 + number}"
    else:
        payload["msg_id"] = uuid.uuid4().hex
        payload["data"]["content"]["message_id"] = str(8_000_000_000_000 + number)
    return json.dumps(payload).encode()


def request_maker(base_url, channel_type, token, registered_url, meta_secret, push_key):
    """``prepare(item) -> (method, url, body, headers)``: a delivery signed at the call, or
    a health check. Shopee signs ``registered_url``: the URL set in its console."""
    url = f"{base_url}/mcp/channel/{token}"

    def prepare(item):
        kind, body = item
        if kind == "health":
            return "GET", f"{base_url}/web/health", None, {}
        headers = {"Content-Type": "application/json"}
        if channel_type in ("whatsapp", "messenger", "instagram"):
            digest = hmac.new(meta_secret.encode(), body, hashlib.sha256).hexdigest()
            headers["X-Hub-Signature-256"] = f"sha256={digest}"
        elif channel_type == "shopee":
            signed = registered_url.encode() + b"|" + body
            headers["Authorization"] = hmac.new(
                push_key.encode(), signed, hashlib.sha256
            ).hexdigest()
        return "POST", url, body, headers

    return prepare


def no_outcome(_response):
    return None


def measure_platform(channel_type, prepare, numbers):
    """Warm-up, then the timed rounds; ``({kind: (p50 s, p99 s)}, answers, bodies sent)``."""
    template = sample(PLATFORMS[channel_type][0])
    bodies = [delivery_body(channel_type, template, next(numbers)) for _ in range(MESSAGES)]
    warmup = [
        ("delivery", delivery_body(channel_type, template, next(numbers)))
        for _ in range(WARMUP_REQUESTS)
    ]
    answers, _wall = burst(warmup + [("health", None)] * WARMUP_REQUESTS, 4, prepare, no_outcome)
    sent = [body for _kind, body in warmup]
    deliveries = [("delivery", body) for body in bodies]
    health = [("health", None)] * len(deliveries)
    seconds = {"delivery": [], "health": []}
    for round_no in range(ROUNDS):
        phases = [deliveries[round_no::ROUNDS], health[round_no::ROUNDS]]
        if round_no % 2:
            phases.reverse()
        for items in phases:
            phase_answers, _wall = burst(items, CONCURRENCY, prepare, no_outcome)
            answers += phase_answers
            for answer in phase_answers:
                seconds[answer.kind].append(answer.seconds)
    sent += bodies
    figures = {kind: (statistics.median(values), p99(values)) for kind, values in seconds.items()}
    return figures, answers, sent


def report_failures(channel_type, answers):
    failures = [a for a in answers if not (isinstance(a.status, int) and 200 <= a.status < 300)]
    emit(f"{channel_type}_failed_requests", len(failures))
    for answer in failures[:5]:
        emit(f"{channel_type}_failure", f"{answer.kind} {answer.status} {answer.body!r}")
    return len(failures)


def delivery_jobs(env, channel):
    return (
        env["queue.job"]
        .search([("model_name", "=", "mcp.channel"), ("method_name", "=", "_process_delivery")])
        .filtered(lambda job: job.records.ids == channel.ids)
    )


def count_and_forget_jobs(registry, channel_ids):
    """``{channel id: jobs queued}``; the jobs are removed, unperformed."""
    from odoo import SUPERUSER_ID, api

    counts = {}
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        for channel in env["mcp.channel"].browse(channel_ids):
            jobs = delivery_jobs(env, channel)
            counts[channel.id] = len(jobs)
            jobs.unlink()
    return counts


def main():
    problem = odoo_env.odoo_problem()
    if problem:
        print(f"!!! ODOO 19 NOT FOUND: {problem}.", file=sys.stderr)
        return 3
    if not REFERENCE.is_dir():
        sys.exit(f"channels bench: {REFERENCE} is needed (shared/ checkout)")
    import odoo
    from odoo import SUPERUSER_ID, api
    from odoo.modules.registry import Registry

    http_port = int(os.environ.get("MCP_CHANNELS_BENCH_HTTP_PORT") or free_port())
    DATABASE.write_config(http_port, workers=WORKERS)
    odoo.tools.config.parse_config(
        ["-c", str(DATABASE.conf), "--log-handler=:WARNING"], setup_logging=True
    )
    DATABASE.ensure()
    registry = Registry(DB)
    meta_secret, push_key = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    with registry.cursor() as cr:
        channels = bench_channels(api.Environment(cr, SUPERUSER_ID, {}), meta_secret, push_key)
    channel_ids = [channel_id for channel_id, _token, _url in channels.values()]
    count_and_forget_jobs(registry, channel_ids)  # a crashed run's
    emit("concurrency", CONCURRENCY)
    emit("http_workers", WORKERS)
    emit("deliveries_per_platform", MESSAGES)
    numbers = iter(range(1, 10**9))
    results, failed, sent = {}, 0, {}
    try:
        with DATABASE.server(http_port, workers=WORKERS) as base_url:
            for channel_type, (channel_id, token, registered_url) in channels.items():
                prepare = request_maker(
                    base_url, channel_type, token, registered_url, meta_secret, push_key
                )
                figures, answers, bodies = measure_platform(channel_type, prepare, numbers)
                results[channel_type] = figures
                sent[channel_id] = len(bodies)
                failed += report_failures(channel_type, answers)
                deadline = PLATFORMS[channel_type][2]
                for kind, (p50_s, p99_s) in figures.items():
                    emit(f"{channel_type}_{kind}_p50_ms", f"{p50_s * 1000:.2f}")
                    emit(f"{channel_type}_{kind}_p99_ms", f"{p99_s * 1000:.2f}")
                ratio = figures["delivery"][1] / figures["health"][1]
                emit(f"{channel_type}_ack_p99_over_health_p99", f"{ratio:.2f}")
                emit(f"{channel_type}_deadline_ms", f"{deadline * 1000:.0f}")
                headroom = (deadline - figures["delivery"][1]) * 1000
                emit(f"{channel_type}_deadline_headroom_ms", f"{headroom:.0f}")
    finally:
        queued = count_and_forget_jobs(registry, channel_ids)
    lost = sum(max(sent.get(cid, 0) - queued.get(cid, 0), 0) for cid in channel_ids)
    emit("delivery_jobs_queued", sum(queued.values()))
    emit("deliveries_sent", sum(sent.values()))
    emit("lost", lost)
    targets = {}
    for channel_type, figures in results.items():
        deadline = PLATFORMS[channel_type][2]
        ack_p99, health_p99 = figures["delivery"][1], figures["health"][1]
        targets[f"target_{channel_type}_ack_p99_le_{deadline * 1000:.0f}ms"] = ack_p99 <= deadline
        targets[f"target_{channel_type}_ack_p99_le_{TARGET_RATIO:g}x_health"] = (
            ack_p99 <= TARGET_RATIO * health_p99
        )
    targets["target_zero_failed_requests"] = failed == 0
    targets["target_zero_lost"] = lost == 0
    worst = max(figures["delivery"][1] for figures in results.values())
    return report_targets(targets, "worst_ack_p99_ms", f"{worst * 1000:.2f}")


if __name__ == "__main__":
    sys.exit(main())
