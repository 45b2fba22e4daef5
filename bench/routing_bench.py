"""Routing accuracy and time on the shared sample tenant, without any LLM, against two baselines.

Data: ``../shared/reference/routing/`` (``crews.json``: a pt-BR clothing store's six crews, each
with a purpose and three example messages; ``messages_dev.jsonl``: customers' messages, each
labelled with the crew a support lead would pick, ``handoff`` meaning a person). The crews are
given to the router as they are: its keywords come from their purposes and examples, never from
the labelled messages. ``MCP_BENCH_ROUTING_DATA`` points at another folder of the same shape.
``bench/data/routing_holdout.jsonl`` holds messages of the same shape written for this repository,
never used to build or tune the router: its figures show whether the router generalises.

Three routers, one run, the same offline embedder (all-MiniLM-L6-v2 int8 on onnxruntime):
- ``full``: the router as the crew engine uses it (rules, then similarity; no LLM classifier);
- ``keywords_only``: the same rules with no embedder (the best keyword score wins);
- ``similarity_only``: the embedder alone (keywords never decide and never count).

A handoff decision counts as right when the label is ``handoff``. Figures (``name=value``):
accuracy of each router; for ``full`` the share of messages each stage decided, the share it
was unsure of (those an LLM classifier would see) and its accuracy when sure; mean and median
routing time per message over several passes (crew vectors are computed once, when the router
is built, and timed apart); each misrouted message; the same accuracies and misses on the
held-out messages (``holdout_``). The last line is ``routing_accuracy=<x>``, on the shared
messages; the exit code is 1 when it is under the target.
"""

import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

from benchlib import emit, report_targets  # bench/ is the script's own directory

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from conftest import load_services

load_services("mcp_connectors")
load_services("mcp_crew_engine")
from mcp_connectors_services import embeddings
from mcp_crew_engine_services import routing

DATA = Path(
    os.environ.get("MCP_BENCH_ROUTING_DATA", ROOT.parent / "shared" / "reference" / "routing")
)
HOLDOUT = Path(__file__).resolve().parent / "data" / "routing_holdout.jsonl"
TARGET_ACCURACY = 0.90
TIMED_PASSES = 5
CHANNEL = "whatsapp"


def load_messages(path):
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def load_data():
    crews_file, messages_file = DATA / "crews.json", DATA / "messages_dev.jsonl"
    if not crews_file.is_file() or not messages_file.is_file():
        sys.exit(f"routing bench: {crews_file} and {messages_file} are needed (shared/ checkout)")
    crews = json.loads(crews_file.read_text(encoding="utf-8"))["crews"]
    return crews, load_messages(messages_file)


def routed_label(decision):
    return decision.crew if decision.crew is not None else "handoff"


def run(router, messages):
    """``(decisions, seconds per message)``: one untimed pass, then :data:`TIMED_PASSES`."""
    requests = [routing.RoutingRequest(message["text"], CHANNEL) for message in messages]
    decisions = [router.route(request) for request in requests]
    timings = []
    for _ in range(TIMED_PASSES):
        for request in requests:
            started = time.perf_counter()
            router.route(request)
            timings.append(time.perf_counter() - started)
    return decisions, timings


def accuracy(decisions, messages):
    right = [
        routed_label(decision) == message["crew"]
        for decision, message in zip(decisions, messages, strict=True)
    ]
    return sum(right) / len(right) if right else 0.0


def emit_misses(name, decisions, messages):
    for decision, message in zip(decisions, messages, strict=True):
        if routed_label(decision) != message["crew"]:
            emit(
                name,
                f"{message['crew']} -> {routed_label(decision)} [{decision.stage}"
                f"{', unsure' if decision.unsure else ''}] {message['text']!r}",
            )


def main():
    crews, messages = load_data()
    emit("crews", len(crews))
    emit("messages", len(messages))

    embedder = embeddings.OnnxMiniLMEmbedder()
    emit("embedder", embedder.name)
    started = time.perf_counter()
    full = routing.Router(crews, embedder)
    emit("router_build_seconds", f"{time.perf_counter() - started:.2f}")  # model load included
    routers = {
        "full": full,
        "keywords_only": routing.Router(crews),
        "similarity_only": routing.Router(
            crews,
            embedder,
            settings=routing.RouterSettings(rules_min_score=math.inf, keyword_blend=0.0),
        ),
    }

    results = {name: run(router, messages) for name, router in routers.items()}
    for name, (decisions, timings) in results.items():
        emit(f"{name}_accuracy", f"{accuracy(decisions, messages):.3f}")
        emit(f"{name}_mean_ms", f"{statistics.mean(timings) * 1000:.2f}")
        emit(f"{name}_median_ms", f"{statistics.median(timings) * 1000:.2f}")

    decisions, _timings = results["full"]
    for stage in routing.STAGES:
        share = sum(decision.stage == stage for decision in decisions) / len(decisions)
        emit(f"full_stage_{stage}_share", f"{share:.3f}")
    unsure = [decision.unsure for decision in decisions]
    emit("full_unsure_share", f"{sum(unsure) / len(unsure):.3f}")
    sure = [
        (decision, message)
        for decision, message in zip(decisions, messages, strict=True)
        if not decision.unsure
    ]
    emit(
        "full_accuracy_when_sure",
        f"{accuracy([pair[0] for pair in sure], [pair[1] for pair in sure]):.3f}",
    )
    emit_misses("miss", decisions, messages)

    holdout = load_messages(HOLDOUT)
    emit("holdout_messages", len(holdout))
    holdout_decisions = {}
    for name, router in routers.items():
        requests = [routing.RoutingRequest(message["text"], CHANNEL) for message in holdout]
        holdout_decisions[name] = [router.route(request) for request in requests]
        emit(f"holdout_{name}_accuracy", f"{accuracy(holdout_decisions[name], holdout):.3f}")
    emit_misses("holdout_miss", holdout_decisions["full"], holdout)
    emit("holdout_accuracy", f"{accuracy(holdout_decisions['full'], holdout):.3f}")

    figure = accuracy(decisions, messages)
    return report_targets(
        {f"target_routing_accuracy_{TARGET_ACCURACY:.2f}": figure >= TARGET_ACCURACY},
        "routing_accuracy",
        f"{figure:.3f}",
    )


if __name__ == "__main__":
    sys.exit(main())
