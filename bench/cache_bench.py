"""Cache helper against raw redis-py on the local Redis, measured side by side in one run.

Figures (one ``name=value`` per line):
- hit path vs raw GET of the same payload (1 KB, 10 KB), interleaved, medians in microseconds;
- 32 threads missing one cold key: how many computations ran;
- invalidating one resource type among 200 000 keys: median milliseconds;
- per-call overhead with Redis down and the circuit open, vs calling the computation directly.
Targets: hit <= 1.5x raw GET; exactly 1 computation; invalidation <= 5 ms; <= 1 ms overhead with
Redis down.
The last line is ``cache_hit_over_raw_get=<ratio>`` (the worse of the two payload sizes).
"""

import json
import os
import socket
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

import redis
from benchlib import emit, report_targets  # bench/ is the script's own directory

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from conftest import load_services

load_services("mcp_integrator")
from mcp_integrator_services import cache as cache_service

REDIS_URL = os.environ.get("MCP_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
SAMPLES = int(os.environ.get("MCP_BENCH_SAMPLES", "5000"))
NAMESPACE = f"bench-{uuid.uuid4().hex[:8]}"


def median_us(samples):
    return statistics.median(samples) * 1e6


def payload_of(size):
    text = "x" * (size - 20)
    return {"rule": 123, "text": text}


def hit_vs_raw(cache, raw, size):
    value = payload_of(size)
    key = cache.key(1, "business_rules", "rule", size, "details")
    cache.set(key, value)
    raw_key = f"{NAMESPACE}:raw:{size}"
    raw.set(raw_key, json.dumps(value))
    assert cache.get(key) == (True, value)
    raw_times, hit_times, hit_key_times = [], [], []
    clock = time.perf_counter
    for _ in range(200):  # warm both paths
        raw.get(raw_key)
        cache.get(key)
    for _ in range(SAMPLES):
        started = clock()
        raw.get(raw_key)
        raw_times.append(clock() - started)
        started = clock()
        cache.get(key)
        hit_times.append(clock() - started)
        started = clock()
        cache.get(cache.key(1, "business_rules", "rule", size, "details"))
        hit_key_times.append(clock() - started)
    label = f"{size // 1000}kb"
    raw_us, hit_us = median_us(raw_times), median_us(hit_times)
    emit(f"raw_get_{label}_median_us", f"{raw_us:.1f}")
    emit(f"cache_hit_{label}_median_us", f"{hit_us:.1f}")
    emit(f"cache_hit_with_key_build_{label}_median_us", f"{median_us(hit_key_times):.1f}")
    emit(f"cache_hit_over_raw_get_{label}", f"{hit_us / raw_us:.2f}")
    return hit_us / raw_us


def stampede(cache):
    key = cache.key(2, "products", "product", "cold", "details")
    computations = []
    barrier = threading.Barrier(32)

    def compute():
        computations.append(1)
        time.sleep(0.2)
        return {"stock": 7}

    def worker(results):
        barrier.wait()
        results.append(cache.get_or_compute(key, compute))

    results = []
    threads = [threading.Thread(target=worker, args=(results,)) for _ in range(32)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    emit("stampede_threads", 32)
    emit("stampede_wall_ms", f"{(time.perf_counter() - started) * 1000:.0f}")
    emit("stampede_all_got_value", all(r == {"stock": 7} for r in results) and len(results) == 32)
    emit("stampede_computations", len(computations))
    return len(computations)


def invalidation(cache, raw):
    """200 000 keys across 50 tenants, 4 modules and 5 resource types, then one type invalidated."""
    modules, types = ("products", "orders", "rules", "tools"), ("a", "b", "c", "d", "e")
    stamp_of = {}
    total = 0
    with raw.pipeline(transaction=False) as pipe:
        for account in range(1, 51):
            for module in modules:
                for resource_type in types:
                    probe = cache.key(account, module, resource_type, 0, "details")
                    cache.set(probe, {"n": 0})  # real helper write: records the live stamp
                    stamp = raw.get(probe.redis_key).partition(b"\n")[0]
                    stamp_of[(account, module, resource_type)] = stamp
                    for resource_id in range(1, 200):
                        key = cache.key(account, module, resource_type, resource_id, "details")
                        pipe.set(key.redis_key, stamp + b'\n{"n":1}', px=600_000)
                        total += 1
                    total += 1
                pipe.execute()
    emit("invalidation_keys", total)
    target = cache.key(7, "products", "c", 42, "details")
    other = cache.key(7, "products", "d", 42, "details")
    assert cache.get(target)[0] and cache.get(other)[0]
    times = []
    for _ in range(50):
        started = time.perf_counter()
        cache.invalidate(7, "products", "c")
        times.append(time.perf_counter() - started)
    emit("invalidate_resource_type_median_ms", f"{statistics.median(times) * 1000:.3f}")
    emit("invalidated_key_now_misses", not cache.get(target)[0])
    emit("other_type_still_hits", cache.get(other)[0])
    return statistics.median(times) * 1000


def redis_down_overhead():
    """A Redis that refuses connections: the first call fails fast, then the circuit skips Redis."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    settings = cache_service.CacheSettings(
        url=f"redis://127.0.0.1:{closed_port}/0", namespace="down"
    )
    cache = cache_service.Cache(settings)
    key = cache.key(3, "orders", "order", "SO001", "status")

    def compute():
        return {"state": "sale"}

    started = time.perf_counter()
    cache.get_or_compute(key, compute)
    emit("redis_down_first_call_ms", f"{(time.perf_counter() - started) * 1000:.2f}")
    direct, through = [], []
    for _ in range(SAMPLES):
        started = time.perf_counter()
        compute()
        direct.append(time.perf_counter() - started)
        started = time.perf_counter()
        cache.get_or_compute(key, compute)
        through.append(time.perf_counter() - started)
    overhead_us = median_us(through) - median_us(direct)
    emit("redis_down_direct_call_median_us", f"{median_us(direct):.2f}")
    emit("redis_down_cached_call_median_us", f"{median_us(through):.2f}")
    emit("redis_down_overhead_median_us", f"{overhead_us:.2f}")
    emit("redis_down_circuit_open", not cache.status()["up"])
    return overhead_us / 1000


def main():
    raw = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    cache = cache_service.Cache(cache_service.CacheSettings(url=REDIS_URL, namespace=NAMESPACE))
    try:
        ratios = [hit_vs_raw(cache, raw, 1000), hit_vs_raw(cache, raw, 10000)]
        computations = stampede(cache)
        invalidate_ms = invalidation(cache, raw)
        down_ms = redis_down_overhead()
    finally:
        keys = list(raw.scan_iter(match=f"{NAMESPACE}:*", count=5000))
        for start in range(0, len(keys), 5000):
            raw.unlink(*keys[start : start + 5000])
    worst = max(ratios)
    targets = {
        "target_hit_ratio_le_1.5": worst <= 1.5,
        "target_one_computation": computations == 1,
        "target_invalidation_le_5ms": invalidate_ms <= 5,
        "target_down_overhead_le_1ms": down_ms <= 1,
    }
    return report_targets(targets, "cache_hit_over_raw_get", f"{worst:.2f}")


if __name__ == "__main__":
    sys.exit(main())
