"""The crew engine's own cost per message, and the LLM calls its caches avoid, in one run.

A real Odoo (the database ``MCP_CREW_BENCH_DB``) with ``mcp_crew_engine``: the sample tenant of
``../shared/reference/routing/`` (``crews.json``: its service hours and time zone, six crews,
purpose = description, examples; one agent each, ``openai/gpt-4o-mini`` at a fake
OpenAI-compatible server on loopback, the tests' ``fake_llm_server.py``, with an ``api_key``
credential). The sales agent may call the
built-in ``odoo_product_search`` (an Odoo MCP server of the tenant, a bot user, a few products).

Every message goes the way production takes it, in this process, each step on a cursor of its
own as Odoo's requests have, committed as they commit:
1. ``mcp.integrator.ask(account id, text, channel="whatsapp", conversation=..., message_id=...)``
   (as the superuser): the ``mcp.crew.run`` recorded and its job stored by ``with_delay``;
2. the job runner marking the job enqueued: queue_job's own ``jobrunner.runner.Database``
   (its connection, its SQL);
3. what ``/queue_job/runjob`` runs: ``RunJobController._acquire_job`` (job started, lock row,
   commit) and ``_runjob`` (``Job.perform()`` of ``mcp.crew.run._perform``: routing with the
   routing cache, the conversation's context in Redis, the agent loop with the answer cache,
   the LLM call through litellm, the run written; then the job set done, commit).
Not included: the runner's NOTIFY wake-up and channel scheduling, the HTTP hop to
``/queue_job/runjob`` and Odoo's request dispatch (registry signalling, session), the Chatwoot
webhook that will call ``ask`` and the delivery job (no ``reply_to``: nothing is delivered).

1. Overhead per message (``crew_run_median_ms`` vs ``direct_llm_median_ms``): one-step runs
   (the fake answers at once, no tool call) of dev messages the router is sure of (but for
   the handoff crew's, which hand off without an LLM call), each made
   unique by a number so neither the routing cache nor the answer cache hides the real path
   (both are looked up, missed and written), against ``litellm.completion()`` called directly
   with the same messages and tools the engine sent, at the same server; interleaved rounds,
   medians. ``engine_overhead_median_ms`` = their difference (target <= 15 ms). Also medians
   of: each message's time minus its run's recorded ``llm_duration``; the run's own
   ``duration`` (``_answer``: routing, context, agent loop; not the writes nor the job's
   bookkeeping) minus ``llm_duration``; each of the three steps above, and the SQL queries of
   the first and the third; the job method's own time (``job_perform``); the engine's part,
   ``ask`` plus the job method minus ``llm_duration`` (``engine_own_minus_llm_duration``), and
   queue_job's runner's part, the rest of steps 2 and 3 (``queue_job_runner``).
2. LLM calls avoided: a seeded replay of the 48 dev messages (each at least once, then random
   repeats: 200 requests), each request a new conversation and in a random variant (case, accents
   dropped, trailing punctuation and spaces). The fake answers from the request's content,
   identically for variants: ``resposta: <wording_form of the last user message>``; the sales
   agent first searches products when the message names one (two LLM calls), a message routed
   to the handoff crew hands off without an LLM call (the engine's rule for a crew coded
   ``handoff``), and the routing classifier (asked when the router is unsure) answers the
   message's labelled crew. Run twice on fresh caches: caches on (agents
   at temperature 0, Redis) and caches off: the same replay with the integrator's Redis URL on
   a closed port, so every cache the engine has (routing decisions, answers, conversation
   context, tool results) is off the way a Redis outage turns it off, nothing else changed.
   Counted: requests reaching the fake server. ``answers_identical``: crew, state, answer and
   handoff of each request equal in both replays (also a target).
Last line ``llm_calls_avoided=<fraction>`` (target >= 0.70); exit code 1 when a target is missed.

Kept from run to run: the database (created when missing, its suite addons updated otherwise;
config ``.run/bench/<db>.conf``, logs ``.run/bench/<db>-*.log``), the tenant, its crews,
agents, credential, bot user, Odoo server and products. Removed at the end: the runs and their
jobs, the tenant's audit rows, the run's Redis keys. Environment: ``MCP_CREW_BENCH_DB``
(default ``mcp_crew_bench``), ``MCP_CREW_BENCH_HTTP_PORT`` (written to the config only: no
server is started), ``MCP_CREW_BENCH_REDIS_URL``, ``MCP_CREW_BENCH_ROUNDS``,
``MCP_BENCH_ROUTING_DATA`` (as routing_bench.py) and the ``MCP_DB_*`` settings of scripts/lib.sh.
"""

import json
import os
import random
import statistics
import sys
import time
import unicodedata
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
from benchlib import drop_redis_keys, emit, report_targets  # bench/ is the script's own directory
from benchlib.odoo_db import BenchDatabase, free_port

sys.path.insert(0, str(ROOT / "scripts"))
import odoo_env

sys.path.insert(0, str(ROOT / "tests"))
from conftest import load_test_double

fake = load_test_double("mcp_crew_engine", "fake_llm_server")

DB = os.environ.get("MCP_CREW_BENCH_DB", "mcp_crew_bench")
REDIS_URL = os.environ.get("MCP_CREW_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
ROUNDS = int(os.environ.get("MCP_CREW_BENCH_ROUNDS", "200"))
WARMUP_ROUNDS = 20
DATA = Path(
    os.environ.get("MCP_BENCH_ROUTING_DATA", ROOT.parent / "shared" / "reference" / "routing")
)
DATABASE = BenchDatabase(DB, "mcp_crew_engine,product")
TENANT_CODE = "crew-bench"
TENANT_ACCOUNT_ID = 990002
MODEL = "openai/gpt-4o-mini"
API_KEY = "sk-crew-bench"
CHANNEL = "whatsapp"
#: This run's Redis keys and conversations (a crashed run's leftovers never collide).
RUN_TAG = uuid.uuid4().hex[:8]
NAMESPACE = f"crew-bench-{RUN_TAG}"
REPLAY_SIZE = 200
REPLAY_SEED = 20240604
TARGET_OVERHEAD_MS = 15.0
TARGET_AVOIDED = 0.70
#: The handoff crew's instructions; the fake model obeys them (see FakeModel).
HANDOFF_INSTRUCTIONS = "Passe sempre a conversa para uma pessoa da equipe."
CLASSIFIER_PROMPT = "You route customer messages"  # crew_requests.LlmCrewClassifier's prompt
#: Words of the dev messages naming a product (accents folded) -> what the model searches.
PRODUCT_QUERIES = {
    "vestido": "vestido",
    "bota": "bota",
    "calca": "calça",
    "jaqueta": "jaqueta",
    "tenis": "tênis",
    "camisa": "camisa",
    "moletom": "moletom",
    "sandalia": "sandália",
}
PRODUCTS = (
    ("CREWB-01", "Vestido Floral Midi", 189.9),
    ("CREWB-02", "Bota de Couro Preta", 349.0),
    ("CREWB-03", "Calça Jeans Reta", 159.9),
    ("CREWB-04", "Jaqueta Jeans Clássica", 229.0),
    ("CREWB-05", "Tênis de Corrida Leve", 299.9),
    ("CREWB-06", "Camisa Social Slim", 139.9),
    ("CREWB-07", "Moletom Cinza Mescla", 179.0),
    ("CREWB-08", "Sandália Rasteira Couro", 99.9),
)


def milliseconds(seconds):
    return f"{seconds * 1000:.3f}"


# set-up ---------------------------------------------------------------------------------------
def load_data():
    crews_file, messages_file = DATA / "crews.json", DATA / "messages_dev.jsonl"
    if not crews_file.is_file() or not messages_file.is_file():
        sys.exit(f"crew bench: {crews_file} and {messages_file} are needed (shared/ checkout)")
    crews = json.loads(crews_file.read_text(encoding="utf-8"))
    lines = messages_file.read_text(encoding="utf-8").splitlines()
    return crews, [json.loads(line) for line in lines if line.strip()]


def upsert(model, domain, values):
    record = model.with_context(active_test=False).search(domain, limit=1)
    if record:
        record.write(values)
        return record
    return model.create(values)


def bench_tenant(env, crews_data, api_base):
    """The sample tenant, its six crews (one agent each) and the sales agent's product search;
    returns the tenant. Kept between runs: found again by code and written over."""
    from odoo import Command

    data = crews_data["tenant"]
    tenant = upsert(
        env["mcp.tenant"],
        [("code", "=", TENANT_CODE)],
        {
            "name": data["name"],
            "code": TENANT_CODE,
            "account_id": TENANT_ACCOUNT_ID,
            "active": True,
            "tone": data["tone"],
            "tz": data["service_hours"]["tz"],
        },
    )
    if not tenant.hours_ids:
        tenant.hours_ids = [
            Command.create({"weekday": weekday, "hour_from": start, "hour_to": end})
            for weekday, start, end in opening_hours(data["service_hours"])
        ]
    credential = upsert(
        env["mcp.credential"],
        [("tenant_id", "=", tenant.id), ("name", "=", "Crew bench LLM key")],
        {"name": "Crew bench LLM key", "tenant_id": tenant.id, "kind": "api_key"},
    )
    credential.secret_input = API_KEY
    tenant.write(
        {
            "llm_model": MODEL,
            "llm_api_base": api_base,
            "llm_credential_id": credential.id,
            "llm_daily_budget": 0.0,
            "routing_when_unsure": "best_guess",
        }
    )
    search_tool = product_search_tool(env, tenant)
    for sequence, crew_data in enumerate(crews_data["crews"], start=1):
        code = crew_data["code"]
        crew = upsert(
            env["mcp.crew"],
            [("tenant_id", "=", tenant.id), ("code", "=", code)],
            {
                "tenant_id": tenant.id,
                "name": code.title(),
                "code": code,
                "sequence": sequence,
                "active": True,
                "purpose": crew_data["description"],
                "examples": "\n".join(crew_data["examples"]),
                "process": "sequential",
            },
        )
        upsert(
            env["mcp.agent"],
            [("crew_id", "=", crew.id), ("name", "=", f"{code}-agent")],
            {
                "crew_id": crew.id,
                "name": f"{code}-agent",
                "active": True,
                "role": f"the {code} assistant of {data['name']}",
                "goal": crew_data["description"],
                "instructions": HANDOFF_INSTRUCTIONS if code == "handoff" else "",
                "temperature": 0.0,
                "max_steps": 4,
                "tool_ids": [Command.set(search_tool.ids if code == "vendas" else [])],
            },
        )
    env.cr.commit()
    return tenant


def product_search_tool(env, tenant):
    """The tenant's built-in Odoo server (as a bot user), its product search enabled, and
    the products it finds."""
    from odoo import Command

    from odoo.addons.mcp_crew_engine.models.mcp_tenant import PRODUCT_SEARCH_TOOL

    bot = upsert(
        env["res.users"],
        [("login", "=", "crew_bench_bot")],
        {
            "name": "Crew Bench Bot",
            "login": "crew_bench_bot",
            "active": True,
            "group_ids": [Command.set([env.ref("base.group_user").id])],
        },
    )
    server = upsert(
        env["mcp.server"],
        [("tenant_id", "=", tenant.id), ("code", "=", "odoo")],
        {
            "name": "Odoo",
            "code": "odoo",
            "tenant_id": tenant.id,
            "kind": "odoo",
            "run_as_user_id": bot.id,
            "enabled": True,
        },
    )
    server.action_discover()
    tool = server.tool_ids.filtered(lambda tool: tool.remote_name == PRODUCT_SEARCH_TOOL)
    tool.enabled = True
    for code, name, price in PRODUCTS:
        upsert(
            env["product.product"],
            [("default_code", "=", code)],
            {"name": name, "default_code": code, "list_price": price, "sale_ok": True},
        )
    return tool


def opening_hours(service_hours):
    """``[(weekday, from, to)]`` of crews.json's ``{"mon-fri": "09:00-18:00", ...}``."""
    from odoo.addons.mcp_integrator.services.hours import WEEKDAYS

    days = [name[:3] for name in WEEKDAYS]
    lines = []
    for span, interval in service_hours.items():
        if span == "tz":
            continue
        first, _dash, last = span.partition("-")
        start, end = (
            int(hours) + int(minutes) / 60
            for hours, minutes in (time_.split(":") for time_ in interval.split("-"))
        )
        weekdays = range(days.index(first), days.index(last or first) + 1)
        lines += [(str(day), start, end) for day in weekdays]
    return lines


def use_cache(env, redis_url, namespace):
    """The integrator's Redis for what follows (a setting change: its caches start empty)."""
    params = env["ir.config_parameter"].sudo()
    params.set_param("mcp_integrator.redis_url", redis_url)
    params.set_param("mcp_integrator.cache_namespace", namespace)
    env.cr.commit()


# the fake model -------------------------------------------------------------------------------
class FakeModel:
    """The fake server's answers, from the request's content only (a stand-in for a model that
    answers the same question the same way): ``resposta: <wording_form of the last user
    message>``, after a product search when ``with_tools`` and the message names a product;
    ``handoff_to_human`` when the agent's instructions say so; the classifier's requests get
    the message's labelled crew."""

    def __init__(self, labels, with_tools):
        from odoo.addons.mcp_crew_engine.models.mcp_tenant import PRODUCT_SEARCH_TOOL
        from odoo.addons.mcp_crew_engine.services.agent_loop import HANDOFF_TOOL, wording_form

        self.wording_form = wording_form
        self.handoff_tool = HANDOFF_TOOL
        self.search_tool = PRODUCT_SEARCH_TOOL
        self.labels = {wording_form(text): crew for text, crew in labels.items()}
        self.with_tools = with_tools

    def __call__(self, body):
        messages = body["messages"]
        system = messages[0]["content"] if messages[0]["role"] == "system" else ""
        said = self.wording_form(
            next(message["content"] for message in reversed(messages) if message["role"] == "user")
        )
        if system.startswith(CLASSIFIER_PROMPT):
            return fake.answer(self.labels.get(said, "none"))
        functions = [tool["function"]["name"] for tool in body.get("tools") or []]
        results = [message["content"] for message in messages if message["role"] == "tool"]
        if self.with_tools and not results:
            if self.handoff_tool in functions and HANDOFF_INSTRUCTIONS in system:
                reason = {"reason": "o cliente quer uma pessoa"}
                return fake.tool_calls((self.handoff_tool, reason))
            search = next((name for name in functions if name.endswith(self.search_tool)), None)
            query = product_query(said)
            if search and query:
                return fake.tool_calls((search, {"query": query, "limit": 3}))
        if results:
            return fake.answer(f"resposta: {said} | produtos: {product_names(results[-1])}")
        return fake.answer(f"resposta: {said}")


def product_query(said):
    from odoo.addons.mcp_crew_engine.services.routing import plain_text

    words = plain_text(said).split()
    return next((PRODUCT_QUERIES[word] for word in words if word in PRODUCT_QUERIES), None)


def product_names(tool_result):
    try:
        products = json.loads(tool_result).get("products", [])
    except (ValueError, AttributeError):
        return f"? ({len(tool_result)} chars)"
    return ", ".join(product.get("name", "?") for product in products) or "nenhum"


# the request path -----------------------------------------------------------------------------
class MessagePath:
    """One customer message as production handles it (see the module's docstring), timed."""

    def __init__(self, registry):
        from odoo.addons.queue_job.controllers.main import RunJobController
        from odoo.addons.queue_job.jobrunner.runner import Database

        self.registry = registry
        self.controller = RunJobController
        self.runner_db = Database(DB)
        #: seconds of each step of each message: ask, runner, job
        self.steps = []
        #: SQL queries of the ask and job steps of each message, through Odoo's cursors
        self.queries = []

    def close(self):
        self.runner_db.close()

    def handle(self, text, conversation):
        from odoo import SUPERUSER_ID, api, sql_db

        clock = time.perf_counter
        queries = sql_db.sql_counter
        started = clock()
        with self.registry.cursor() as cr:  # the caller's transaction, committed at the end
            env = api.Environment(cr, SUPERUSER_ID, {})
            run = env["mcp.integrator"].ask(
                TENANT_ACCOUNT_ID, text, channel=CHANNEL, conversation=conversation, message_id="1"
            )
            run_id, job_uuid = run.id, run.job_uuid
        asked = clock()
        asked_queries = sql_db.sql_counter
        self.runner_db.set_job_enqueued(job_uuid)
        self.runner_db.conn.notifies.clear()  # the runner reads them; nobody does here
        marked = clock()
        with self.registry.cursor() as cr:  # /queue_job/runjob's
            env = api.Environment(cr, SUPERUSER_ID, {})
            job = self.controller._acquire_job(env, job_uuid)
            if job is None:
                raise SystemExit(f"crew bench: the job of run {run_id} could not be acquired")
            perform, performed = job.perform, []

            def timed_perform():
                begun = clock()
                try:
                    return perform()
                finally:
                    performed.append(clock() - begun)

            job.perform = timed_perform  # what mcp.crew.run._perform takes, inside the runner
            self.controller._runjob(env, job)
        done = clock()
        self.steps.append((asked - started, marked - asked, done - marked, performed[0]))
        self.queries.append((asked_queries - queries, sql_db.sql_counter - asked_queries))
        return run_id, done - started


def read_runs(registry, run_ids):
    from odoo import SUPERUSER_ID, api

    with registry.cursor() as cr:
        runs = api.Environment(cr, SUPERUSER_ID, {})["mcp.crew.run"].browse(run_ids)
        names = ["state", "crew_id", "answer", "handoff_reason", "handoff_detail", "llm_calls"]
        names += ["cache_hits", "duration", "llm_duration", "routing_cached", "job_uuid"]
        rows = {row["id"]: row for row in runs.read(names)}
        jobs = api.Environment(cr, SUPERUSER_ID, {})["queue.job"].search(
            [("uuid", "in", [row["job_uuid"] for row in rows.values()])]
        )
        job_states = {job.uuid: job.state for job in jobs}
    for row in rows.values():
        row["job_state"] = job_states.get(row["job_uuid"])
    return [rows[run_id] for run_id in run_ids]


# 1. overhead ----------------------------------------------------------------------------------
def sure_messages(registry, tenant_id, messages):
    """Texts for every round: dev messages made unique by a number, those the router is sure
    of with the number added (no classifier call: each run is one LLM call), but for the
    handoff crew's."""
    from odoo import SUPERUSER_ID, api

    from odoo.addons.mcp_crew_engine.models.mcp_crew_run import HANDOFF_CREW

    count = WARMUP_ROUNDS + ROUNDS
    with registry.cursor() as cr:
        tenant = api.Environment(cr, SUPERUSER_ID, {})["mcp.tenant"].browse(tenant_id)
        config = tenant._crew_config()
        router = tenant._crew_router(config)
        picked, number = [], 0
        while len(picked) < count:
            before = len(picked)
            for message in messages:
                number += 1
                text = f"{message['text']} ({number})"
                decision = router.route(tenant._routing_request(config, text, CHANNEL))
                # the handoff crew's runs hand off without calling the LLM: not one-step runs
                if decision.crew not in (None, HANDOFF_CREW) and not decision.unsure:
                    picked.append(text)
            if len(picked) == before:
                raise SystemExit("crew bench: the router is unsure of every dev message")
    return picked[:count]


def direct_call(body, text, api_base):
    """Seconds of ``litellm.completion()`` called as the engine calls it, with the messages
    and tools of the engine's request ``body``, ``text`` as the customer's message."""
    from odoo.addons.mcp_crew_engine.services.agent_loop import _litellm

    messages = [*body["messages"][:-1], {"role": "user", "content": text}]
    arguments = {
        "model": MODEL,
        "messages": messages,
        "temperature": body.get("temperature"),
        "max_tokens": body.get("max_tokens"),
        "timeout": 30,
        "num_retries": 0,
        "max_retries": 0,
        "api_base": api_base,
        "api_key": API_KEY,
    }
    if body.get("tools"):
        arguments["tools"] = body["tools"]
    litellm = _litellm()
    started = time.perf_counter()
    response = litellm.completion(**arguments)
    seconds = time.perf_counter() - started
    if not response.choices[0].message.content:
        raise SystemExit("crew bench: the direct call got no answer")
    return seconds


def measure_overhead(registry, tenant_id, server, messages, labels):
    """Interleaved rounds of the full path and the direct call; returns the overhead (ms)."""
    server.reset(responder=FakeModel(labels, with_tools=False))
    texts = sure_messages(registry, tenant_id, messages)
    path = MessagePath(registry)
    samples = {"full": [], "direct": []}
    run_ids, body = [], None
    try:
        for round_no, text in enumerate(texts):
            # the order alternates; the direct call sends the last messages the engine sent
            direct_first = round_no % 2 == 1
            if direct_first:
                direct_seconds = direct_call(body, text, server.api_base)
            run_id, full_seconds = path.handle(text, f"overhead-{RUN_TAG}-{round_no}")
            body = server.chat_requests[-1]
            if not direct_first:
                direct_seconds = direct_call(body, text, server.api_base)
            if round_no >= WARMUP_ROUNDS:
                run_ids.append(run_id)
                samples["full"].append(full_seconds)
                samples["direct"].append(direct_seconds)
        steps = path.steps[WARMUP_ROUNDS:]
        queries = path.queries[WARMUP_ROUNDS:]
    finally:
        path.close()
    runs = read_runs(registry, run_ids)
    wrong = [run for run in runs if run["state"] != "answered" or run["llm_calls"] != 1]
    if wrong:
        raise SystemExit(f"crew bench: {len(wrong)} overhead runs were not one-step: {wrong[0]}")
    full_median = statistics.median(samples["full"])
    direct_median = statistics.median(samples["direct"])
    without_llm = [
        seconds - run["llm_duration"] for seconds, run in zip(samples["full"], runs, strict=True)
    ]
    emit("overhead_rounds", len(samples["full"]))
    emit("crew_run_median_ms", milliseconds(full_median))
    emit("direct_llm_median_ms", milliseconds(direct_median))
    emit("crew_run_minus_llm_duration_median_ms", milliseconds(statistics.median(without_llm)))
    answering = [run["duration"] - run["llm_duration"] for run in runs]
    emit("run_answer_minus_llm_duration_median_ms", milliseconds(statistics.median(answering)))
    names = ("ask_and_enqueue", "runner_mark_enqueued", "job_run", "job_perform")
    for index, name in enumerate(names):
        emit(f"{name}_median_ms", milliseconds(statistics.median(step[index] for step in steps)))
    # the engine's part: ask() (run recorded, job stored) and its job method, LLM call apart;
    # the rest of the path is queue_job's runner (acquire, lock, load, done, commits)
    own = [step[0] + step[3] - run["llm_duration"] for step, run in zip(steps, runs, strict=True)]
    emit("engine_own_minus_llm_duration_median_ms", milliseconds(statistics.median(own)))
    runner = [step[1] + step[2] - step[3] for step in steps]
    emit("queue_job_runner_median_ms", milliseconds(statistics.median(runner)))
    for index, name in enumerate(("ask_and_enqueue", "job_run")):
        emit(f"{name}_sql_queries_median", f"{statistics.median(q[index] for q in queries):g}")
    overhead_ms = (full_median - direct_median) * 1000
    emit("engine_overhead_median_ms", f"{overhead_ms:.3f}")
    return overhead_ms


# 2. LLM calls avoided -------------------------------------------------------------------------
def variant(rng, text):
    """The same question as another customer types it: case, accents, the end of it."""
    text = rng.choice((str, str.lower, str.upper, str.capitalize))(text)
    if rng.random() < 0.4:
        folded = unicodedata.normalize("NFKD", text)
        text = "".join(char for char in folded if not unicodedata.combining(char))
    text = text.rstrip("?!. ") + rng.choice(("", "?", "??", "!", ".", " ?", "..."))
    return text + rng.choice(("", "", " ", "  "))


def build_replay(messages):
    """``[(message index, text)]``: every dev message once, then random repeats; shuffled."""
    rng = random.Random(REPLAY_SEED)
    picks = list(range(len(messages)))
    picks += [rng.randrange(len(messages)) for _ in range(REPLAY_SIZE - len(messages))]
    rng.shuffle(picks)
    return [(index, variant(rng, messages[index]["text"])) for index in picks]


def run_replay(registry, server, replay, label):
    """``(LLM requests the server received, runs)`` of the replay, in order."""
    server.reset(responder=server.responder)
    path = MessagePath(registry)
    try:
        run_ids = [
            path.handle(text, f"replay-{label}-{RUN_TAG}-{number}")[0]
            for number, (_index, text) in enumerate(replay)
        ]
    finally:
        path.close()
    return len(server.chat_requests), read_runs(registry, run_ids)


def outcome(run):
    return (run["crew_id"] and run["crew_id"][1], run["state"], run["answer"] or "") + (
        run["handoff_reason"] or "",
        run["handoff_detail"] or "",
    )


def measure_avoided(registry, server, env, messages, labels):
    """Returns ``(fraction of LLM calls avoided, answers identical)``."""
    from odoo.tools import mute_logger

    replay = build_replay(messages)
    emit("replay_requests", len(replay))
    emit("replay_distinct_messages", len({index for index, _text in replay}))
    emit("replay_distinct_texts", len({text for _index, text in replay}))
    server.reset(responder=FakeModel(labels, with_tools=True))

    use_cache(env, REDIS_URL, f"{NAMESPACE}-replay")
    calls_on, runs_on = run_replay(registry, server, replay, "on")
    use_cache(env, f"redis://127.0.0.1:{free_port()}/0", f"{NAMESPACE}-off")
    try:
        # warnings that Redis is down (the cache's, and each context turn skipped): expected
        with mute_logger(
            "odoo.addons.mcp_integrator.services.cache",
            "odoo.addons.mcp_crew_engine.services.conversation_context",
        ):
            calls_off, runs_off = run_replay(registry, server, replay, "off")
    finally:
        use_cache(env, REDIS_URL, NAMESPACE)

    unfinished = [run for run in runs_on + runs_off if run["job_state"] != "done"]
    if unfinished:
        raise SystemExit(f"crew bench: {len(unfinished)} replay jobs did not end: {unfinished[0]}")
    for label, runs in (("caches_on", runs_on), ("caches_off", runs_off)):
        emit(f"{label}_runs_answered", sum(run["state"] == "answered" for run in runs))
        emit(f"{label}_runs_handoff", sum(run["state"] == "handoff" for run in runs))
        emit(f"{label}_runs_llm_calls", sum(run["llm_calls"] for run in runs))
        emit(f"{label}_answer_cache_hits", sum(run["cache_hits"] for run in runs))
        emit(f"{label}_routing_cached", sum(bool(run["routing_cached"]) for run in runs))
    emit("replay_tool_runs", sum("| produtos:" in (run["answer"] or "") for run in runs_off))
    differing = 0
    for number, (run_on, run_off) in enumerate(zip(runs_on, runs_off, strict=True)):
        if outcome(run_on) != outcome(run_off):
            differing += 1
            emit("answer_differs", f"#{number} {outcome(run_on)!r} != {outcome(run_off)!r}")
    identical = differing == 0
    emit("answers_identical", identical)
    emit("llm_calls_caches_off", calls_off)
    emit("llm_calls_caches_on", calls_on)
    return (1 - calls_on / calls_off if calls_off else 0.0), identical


# clean-up -------------------------------------------------------------------------------------
def forget_runs(registry, tenant_id):
    """The runs, their jobs and the tenant's audit rows would only grow the tables from run to
    run (also a crashed run's). Audit rows are written by cursors of their own: flushed first."""
    from odoo import SUPERUSER_ID, api

    from odoo.addons.mcp_integrator.services import audit_writer

    audit_writer.flush_all()
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        runs = env["mcp.crew.run"].search([("tenant_id", "=", tenant_id)])
        env["queue.job"].search([("uuid", "in", runs.mapped("job_uuid"))]).unlink()
        runs.unlink()
        env["mcp.audit.log"].search([("tenant_id", "=", tenant_id)]).unlink()


def main():
    problem = odoo_env.odoo_problem()
    if problem:
        print(f"!!! ODOO 19 NOT FOUND: {problem}.", file=sys.stderr)
        return 3
    crews_data, messages = load_data()
    labels = {message["text"]: message["crew"] for message in messages}
    import odoo
    from odoo import SUPERUSER_ID, api
    from odoo.modules.registry import Registry

    DATABASE.write_config(int(os.environ.get("MCP_CREW_BENCH_HTTP_PORT") or free_port()), workers=0)
    odoo.tools.config.parse_config(
        ["-c", str(DATABASE.conf), "--log-handler=:WARNING"], setup_logging=True
    )
    DATABASE.ensure()
    registry = Registry(DB)
    tenant_id = None
    try:
        with (
            fake.FakeLLMServer() as server,
            registry.cursor() as cr,
        ):
            env = api.Environment(cr, SUPERUSER_ID, {})
            use_cache(env, REDIS_URL, f"{NAMESPACE}-overhead")
            tenant_id = bench_tenant(env, crews_data, server.api_base).id
            forget_runs(registry, tenant_id)  # a crashed run's
            emit("crews", len(crews_data["crews"]))
            emit("messages", len(messages))
            overhead_ms = measure_overhead(registry, tenant_id, server, messages, labels)
            avoided, identical = measure_avoided(registry, server, env, messages, labels)
    finally:
        drop_redis_keys(REDIS_URL, NAMESPACE)
        if tenant_id:
            forget_runs(registry, tenant_id)
    targets = {
        f"target_engine_overhead_{TARGET_OVERHEAD_MS:g}ms": overhead_ms <= TARGET_OVERHEAD_MS,
        "target_answers_identical": identical,
        f"target_llm_calls_avoided_{TARGET_AVOIDED:.2f}": avoided >= TARGET_AVOIDED,
    }
    return report_targets(targets, "llm_calls_avoided", f"{avoided:.3f}")


if __name__ == "__main__":
    sys.exit(main())
