"""The Chatwoot webhook's acknowledgement vs Odoo's own ``/web/health``, at growing concurrency.

One Odoo server with 2 HTTP workers (prefork, no cron thread, no queue_job runner: the jobs the
webhook queues stay queued, so nothing but the acknowledgements competes for the workers)
serves the database ``MCP_WEBHOOK_BENCH_DB``, which has ``chatwoot_bridge``. The bench's tenant
has a crew with an agent and no LLM, and a Chatwoot account in Agent Bot mode with a signing
secret (new each run) and the sample's API inbox; its Chatwoot URL is a closed port, as the
webhook itself calls no Chatwoot.

Deliveries: the shared reference ``wh_message_created_incoming_contact.json`` for the bench's
account, in a pending conversation nobody is assigned to, each message with an id and a
conversation of its own. Every message is delivered twice, each time with a new
``X-Chatwoot-Delivery`` uuid4 (as when Chatwoot sends one message event twice), the copies
shuffled among the others (seeded), so some arrive at the same time; each body is signed
(``X-Chatwoot-Signature``) just before it is sent, outside the timed part.

Per concurrency level (``MCP_WEBHOOK_BENCH_LEVELS``, default 1, 4, 16, 32): N threads, each
with its own ``requests.Session``, send requests one after the other until a shared queue is
empty (Odoo answers ``Connection: close``: every request opens a connection). Each level's
webhook deliveries (2 x ``MCP_WEBHOOK_BENCH_MESSAGES``) and as many ``GET /web/health`` are
split into 4 rounds, webhook and health phases alternating (the first phase changes each
round) with the same client machinery. Per level and kind: p50 and p99 of the requests' times
(the time until the answer is read) and requests/s (requests over the phases' wall time).
A printed warm-up round first (20 deliveries, 20 health checks, 2 threads) lets both workers
load the registry; its deliveries count in the totals below, its times in no percentile.

Afterwards, in the database: ``distinct_messages`` (sent) and ``answers_recorded`` (the
deliveries recorded with the outcome *answer*, each with the job that makes and performs its
crew run). The untimed part then performs those jobs the way the runner would, one cursor
each (the tenant has no LLM: the runs answer without one or hand off, and their delivery jobs
stay queued), and counts ``runs_created``: ``lost`` (sent messages without a run),
``duplicated`` (runs beyond one per message, answer jobs beyond one per delivery).
Every non-200 answer (or connection error) is a failure, printed with its status.

Targets, at the WORST level (the highest p99 ratio, the lowest throughput ratio; the level is
printed): webhook p99 <= 3x ``/web/health`` p99, webhook requests/s >= 50 % of health's; zero
lost, zero duplicated, zero failed requests. Last line ``webhook_p99_over_health_p99=<ratio>``;
exit code 1 when a target is missed. The client threads run on the same machine as Odoo and
PostgreSQL, for both kinds alike. With more clients waiting than Odoo's prefork listen backlog
holds (8 per worker), the kernel drops their connection attempts and they retry after 1 s: both
kinds' p99 then near 1 s.

Kept from run to run: the database (created when missing, its suite addons updated otherwise;
config ``.run/bench/<db>.conf``, logs ``.run/bench/<db>-*.log``, the server's in
``<db>-server.log``), the tenant, crew, agent, credentials, account and inbox. Removed at the
start and at the end: the tenant's runs and their jobs, the account's deliveries and
conversations, the tenant's audit rows. Environment: ``MCP_WEBHOOK_BENCH_DB`` (default
``mcp_webhook_bench``), ``MCP_WEBHOOK_BENCH_HTTP_PORT`` (default: a free port),
``MCP_WEBHOOK_BENCH_MESSAGES`` (default 200 per level), ``MCP_WEBHOOK_BENCH_LEVELS`` and the
``MCP_DB_*`` settings of scripts/lib.sh.
"""

import collections
import copy
import json
import os
import random
import secrets
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
from benchlib import emit, report_targets  # bench/ is the script's own directory
from benchlib.http_load import burst, p99
from benchlib.odoo_db import BenchDatabase, free_port

sys.path.insert(0, str(ROOT / "scripts"))
import odoo_env

DB = os.environ.get("MCP_WEBHOOK_BENCH_DB", "mcp_webhook_bench")
MESSAGES = int(os.environ.get("MCP_WEBHOOK_BENCH_MESSAGES", "200"))
LEVELS = [int(n) for n in os.environ.get("MCP_WEBHOOK_BENCH_LEVELS", "1,4,16,32").split(",")]
DATABASE = BenchDatabase(DB, "chatwoot_bridge")
REFERENCE = ROOT.parent / "shared" / "reference" / "chatwoot"  # shared/, beside the repository
SAMPLE = REFERENCE / "wh_message_created_incoming_contact.json"
TENANT_CODE = "webhook-bench"
TENANT_ACCOUNT_ID = 990003
INBOX = {"inbox_id": 7, "name": "Mercado Livre (API)", "channel_type": "Channel::Api"}
CHATWOOT_URL = "http://127.0.0.1:9"  # never called: the webhook only records and queues
COPIES = 2  # deliveries of each message
ROUNDS = 4  # alternating webhook and health phases per level
WARMUP_REQUESTS = 20
WARMUP_CONCURRENCY = 2
FIRST_MESSAGE_ID = 1_000_001
SHUFFLE_SEED = 20240605
HTTP_TIMEOUT = 30
TARGET_P99_RATIO = 3.0
TARGET_THROUGHPUT_RATIO = 0.5


# set-up ---------------------------------------------------------------------------------------
def bench_account(env, secret):
    """The bench's tenant and its Chatwoot account, signing with ``secret``; kept between
    runs: found again by the tenant's code, created with the rest on the first run."""
    tenant = env["mcp.tenant"].with_context(active_test=False).search(
        [("code", "=", TENANT_CODE)]
    ) or env["mcp.tenant"].create(
        {"name": "Webhook bench", "code": TENANT_CODE, "account_id": TENANT_ACCOUNT_ID}
    )
    account = (
        env["chatwoot.account"]
        .with_context(active_test=False)
        .search([("tenant_id", "=", tenant.id)])
    )
    if account:
        account.signing_credential_ids.secret_input = secret
    else:
        account = new_account(env, tenant, secret)
    tenant.active = account.active = True
    env.cr.commit()
    return tenant, account


def new_account(env, tenant, secret):
    """The tenant's crew with its agent, and its Chatwoot account in Agent Bot mode with the
    sample's inbox, its tokens and a signing secret."""
    from odoo import Command

    crew = env["mcp.crew"].create(
        {
            "tenant_id": tenant.id,
            "name": "Sales",
            "code": "sales",
            "purpose": "Perguntas sobre produtos, preços e estoque da loja",
            "keywords": "preço, produto, estoque",
        }
    )
    env["mcp.agent"].create(
        {
            "crew_id": crew.id,
            "name": "Vendedor",
            "role": "a sales assistant of a store",
            "goal": "Answer questions about products with the store's data.",
        }
    )

    def credential(kind, name, value):
        return env["mcp.credential"].create(
            {"name": name, "kind": kind, "tenant_id": tenant.id, "secret_input": value}
        )

    return env["chatwoot.account"].create(
        {
            "name": "Webhook bench",
            "tenant_id": tenant.id,
            "base_url": CHATWOOT_URL,
            "mode": "agent_bot",
            "bot_credential_id": credential("api_key", "bot", f"bot-{uuid.uuid4().hex}").id,
            "user_credential_id": credential("api_key", "user", f"user-{uuid.uuid4().hex}").id,
            "signing_credential_ids": [Command.set(credential("hmac", "signing", secret).ids)],
            "inbox_ids": [Command.create(INBOX)],
        }
    )


def forget_run_rows(registry, tenant_id, account_id):
    """A run's rows would only grow the tables from run to run (also a crashed run's): the
    tenant's runs and their jobs, the account's deliveries and their answer jobs, its
    conversations, audit rows."""
    from odoo import SUPERUSER_ID, api

    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        runs = env["mcp.crew.run"].search([("tenant_id", "=", tenant_id)])
        env["queue.job"].search([("uuid", "in", runs.mapped("job_uuid"))]).unlink()
        events = env["chatwoot.event"].search([("account_id", "=", account_id)])
        answer_jobs(env, events).unlink()
        events.unlink()
        env["chatwoot.conversation"].search([("account_id", "=", account_id)]).unlink()
        runs.unlink()
        env["mcp.audit.log"].search([("tenant_id", "=", tenant_id)]).unlink()


# requests -------------------------------------------------------------------------------------
class Deliveries:
    """The webhook bodies to send: every message ``COPIES`` times, each copy its own delivery."""

    def __init__(self):
        self.template = json.loads(SAMPLE.read_text(encoding="utf-8"))
        self.next_id = FIRST_MESSAGE_ID
        self.message_ids = []
        self.rng = random.Random(SHUFFLE_SEED)

    def body(self, message_id):
        """The sample, as message ``message_id`` of a conversation of the same number."""
        payload = copy.deepcopy(self.template)
        payload["id"] = message_id
        payload["account"]["id"] = TENANT_ACCOUNT_ID
        payload["sender"]["account"]["id"] = TENANT_ACCOUNT_ID
        conversation = payload["conversation"]
        conversation.update(id=message_id, status="pending")
        conversation["meta"].update(assignee=None, assignee_type=None)
        for message in conversation["messages"]:
            message.update(id=message_id, conversation_id=message_id, account_id=TENANT_ACCOUNT_ID)
        return json.dumps(payload).encode()

    def new(self, count, copies=COPIES):
        """``count`` new messages, ``copies`` deliveries each, shuffled."""
        bodies = []
        for _ in range(count):
            self.message_ids.append(self.next_id)
            bodies += [self.body(self.next_id)] * copies
            self.next_id += 1
        self.rng.shuffle(bodies)
        return [("webhook", body) for body in bodies]


def request_maker(base_url, path_token, secret):
    """``prepare(item) -> (method, url, body, headers)``; a webhook's signed at the call."""
    from odoo.addons.chatwoot_bridge.models.chatwoot_account import WEBHOOK_PATH
    from odoo.addons.mcp_integrator.services import signing

    webhook_url = f"{base_url}{WEBHOOK_PATH}{path_token}"
    health_url = f"{base_url}/web/health"

    def prepare(item):
        kind, body = item
        if kind == "health":
            return "GET", health_url, None, {}
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "X-Chatwoot-Delivery": str(uuid.uuid4()),
            "X-Chatwoot-Timestamp": str(timestamp),
            "X-Chatwoot-Signature": signing.sign(secret, timestamp, body),
        }
        return "POST", webhook_url, body, headers

    return prepare


# figures --------------------------------------------------------------------------------------
def measure_level(concurrency, deliveries, prepare):
    """Both kinds at ``concurrency``; ``({kind: (p50 s, p99 s, requests/s)}, answers)``."""
    webhooks = deliveries.new(MESSAGES)
    health = [("health", None)] * len(webhooks)
    seconds = {"webhook": [], "health": []}
    walls = {"webhook": 0.0, "health": 0.0}
    answers = []
    for round_no in range(ROUNDS):
        phases = [
            ("webhook", webhooks[round_no::ROUNDS]),
            ("health", health[round_no::ROUNDS]),
        ]
        if round_no % 2:
            phases.reverse()
        for kind, items in phases:
            phase_answers, wall = burst(items, concurrency, prepare)
            answers += phase_answers
            seconds[kind] += [answer.seconds for answer in phase_answers]
            walls[kind] += wall
    figures = {
        kind: (statistics.median(values), p99(values), len(values) / walls[kind])
        for kind, values in seconds.items()
    }
    return figures, answers


def emit_level(concurrency, figures):
    for kind, (p50_s, p99_s, rate) in figures.items():
        emit(f"concurrency_{concurrency}_{kind}_p50_ms", f"{p50_s * 1000:.2f}")
        emit(f"concurrency_{concurrency}_{kind}_p99_ms", f"{p99_s * 1000:.2f}")
        emit(f"concurrency_{concurrency}_{kind}_requests_per_s", f"{rate:.1f}")
    p99_ratio = figures["webhook"][1] / figures["health"][1]
    rate_ratio = figures["webhook"][2] / figures["health"][2]
    emit(f"concurrency_{concurrency}_webhook_p99_over_health_p99", f"{p99_ratio:.2f}")
    emit(f"concurrency_{concurrency}_webhook_rate_over_health_rate", f"{rate_ratio:.2f}")
    return p99_ratio, rate_ratio


def report_answers(answers):
    """The webhook's outcomes (200 answers), and every failure with its status; the number
    of failures."""
    outcomes = collections.Counter(
        a.outcome for a in answers if a.kind == "webhook" and a.status == 200
    )
    for outcome, count in sorted(outcomes.items(), key=lambda item: str(item[0])):
        emit(f"webhook_status_{outcome}", count)
    failures = collections.defaultdict(list)
    for answer in answers:
        if answer.status != 200:
            failures[answer.kind, answer.status].append(answer)
    for (kind, status), failed in sorted(failures.items(), key=str):
        emit(f"failed_{kind}_{status}", f"{len(failed)} (first: {failed[0].body!r})")
    return sum(len(failed) for failed in failures.values())


def answer_jobs(env, events):
    """The jobs that answer ``events`` (``chatwoot.event._answer``)."""
    calls = [f"chatwoot.event({event.id},)._answer()" for event in events]
    return env["queue.job"].search([("func_string", "in", calls)])


def perform_answer_jobs(registry, account_id):
    """After the timed part, what a job runner would do with the answer jobs: each performed
    and committed on its own cursor (the tenant has no LLM: its runs answer what they can
    without one, or hand off); their runs queue deliveries, which stay queued. Seconds."""
    from odoo import SUPERUSER_ID, api

    from odoo.addons.queue_job.job import Job

    started = time.perf_counter()
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        events = env["chatwoot.event"].search([("account_id", "=", account_id)])
        pending = answer_jobs(env, events).filtered(lambda job: job.state == "pending")
        job_uuids = pending.mapped("uuid")
    for job_uuid in job_uuids:
        with registry.cursor() as cr:
            job = Job.load(api.Environment(cr, SUPERUSER_ID, {}), job_uuid)
            job.set_started()
            job.perform()
            job.set_done()
            job.store()
    return time.perf_counter() - started


def count_rows(registry, tenant_id, account_id, message_ids):
    """What the deliveries left in the database; ``(lost, duplicated)``.

    Once the webhook has answered, a message is recorded as its delivery (``chatwoot.event``,
    outcome *answer*, with the text) and the job that answers it; once that job has run, as
    its crew run."""
    from odoo import SUPERUSER_ID, api

    sent = {str(message_id) for message_id in message_ids}
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        events = env["chatwoot.event"].search([("account_id", "=", account_id)])
        answers = events.filtered(lambda event: event.outcome == "answer")
        jobs = answer_jobs(env, answers)
        jobs_per_event = collections.Counter(jobs.mapped("func_string"))
        job_states = collections.Counter(jobs.mapped("state"))
        runs = env["mcp.crew.run"].search([("tenant_id", "=", tenant_id)])
        runs_per_message = collections.Counter(runs.mapped("message_ref"))
        run_states = collections.Counter(runs.mapped("state"))
        counts = (len(events), len(answers), len(runs))
    lost = len(sent - set(runs_per_message))
    duplicated = sum(count - 1 for ref, count in runs_per_message.items() if ref in sent)
    duplicated += sum(count - 1 for count in jobs_per_event.values())
    emit("distinct_messages", len(sent))
    emit("chatwoot_events_recorded", counts[0])
    emit("answers_recorded", counts[1])
    for state, count in sorted(job_states.items()):
        emit(f"answer_jobs_{state}", count)
    emit("runs_created", counts[2])
    emit("runs_of_other_messages", sum(c for r, c in runs_per_message.items() if r not in sent))
    for state, count in sorted(run_states.items()):
        emit(f"runs_{state}", count)
    emit("lost", lost)
    emit("duplicated", duplicated)
    return lost, duplicated


def fire_all(base_url, path_token, secret, deliveries):
    """The warm-up round, then every level; ``(answers, {level: (p99 ratio, rate ratio)})``."""
    prepare = request_maker(base_url, path_token, secret)
    warmup = deliveries.new(WARMUP_REQUESTS, copies=1) + [("health", None)] * WARMUP_REQUESTS
    answers, _wall = burst(warmup, WARMUP_CONCURRENCY, prepare)
    emit("warmup_round", f"{len(warmup)} requests at concurrency {WARMUP_CONCURRENCY}")
    for kind in ("webhook", "health"):
        slowest = max(a.seconds for a in answers if a.kind == kind)
        emit(f"warmup_{kind}_max_ms", f"{slowest * 1000:.2f}")
    ratios = {}
    for concurrency in LEVELS:
        figures, level_answers = measure_level(concurrency, deliveries, prepare)
        answers += level_answers
        ratios[concurrency] = emit_level(concurrency, figures)
    return answers, ratios


def main():
    problem = odoo_env.odoo_problem()
    if problem:
        print(f"!!! ODOO 19 NOT FOUND: {problem}.", file=sys.stderr)
        return 3
    if not SAMPLE.is_file():
        sys.exit(f"webhook bench: {SAMPLE} is needed (shared/ checkout)")
    import odoo
    from odoo import SUPERUSER_ID, api
    from odoo.modules.registry import Registry

    http_port = int(os.environ.get("MCP_WEBHOOK_BENCH_HTTP_PORT") or free_port())
    DATABASE.write_config(http_port, workers=2)
    odoo.tools.config.parse_config(
        ["-c", str(DATABASE.conf), "--log-handler=:WARNING"], setup_logging=True
    )
    DATABASE.ensure()
    registry = Registry(DB)
    secret = secrets.token_urlsafe(32)
    with registry.cursor() as cr:
        tenant, account = bench_account(api.Environment(cr, SUPERUSER_ID, {}), secret)
        tenant_id, account_id = tenant.id, account.id
        path_token = account.sudo().path_token
    forget_run_rows(registry, tenant_id, account_id)  # a crashed run's
    deliveries = Deliveries()
    emit("levels", ",".join(map(str, LEVELS)))
    emit("messages_per_level", f"{MESSAGES} x {COPIES} deliveries")
    try:
        with DATABASE.server(http_port, workers=2) as base_url:
            answers, ratios = fire_all(base_url, path_token, secret, deliveries)
        failed = report_answers(answers)
        emit("answer_jobs_performed_s", f"{perform_answer_jobs(registry, account_id):.1f}")
        lost, duplicated = count_rows(registry, tenant_id, account_id, deliveries.message_ids)
    finally:
        forget_run_rows(registry, tenant_id, account_id)
    p99_level = max(ratios, key=lambda level: ratios[level][0])
    rate_level = min(ratios, key=lambda level: ratios[level][1])
    p99_ratio, rate_ratio = ratios[p99_level][0], ratios[rate_level][1]
    emit("worst_p99_ratio_concurrency", p99_level)
    emit("worst_rate_ratio_concurrency", rate_level)
    emit("webhook_rate_over_health_rate", f"{rate_ratio:.2f}")
    targets = {
        f"target_webhook_p99_le_{TARGET_P99_RATIO:g}x_health": p99_ratio <= TARGET_P99_RATIO,
        f"target_webhook_rate_ge_{TARGET_THROUGHPUT_RATIO:.2f}_health": (
            rate_ratio >= TARGET_THROUGHPUT_RATIO
        ),
        "target_zero_lost": lost == 0,
        "target_zero_duplicated": duplicated == 0,
        "target_zero_failed_requests": failed == 0,
    }
    return report_targets(targets, "webhook_p99_over_health_p99", f"{p99_ratio:.2f}")


if __name__ == "__main__":
    sys.exit(main())
