"""Small statistics used by the daily metrics: percentiles, hit rate, a flush throttle.

Plain Python; the Odoo model ``mcp.metric.daily`` stores what these functions compute.
"""

import math
import threading
import time


def percentile(values, q):
    """The ``q``-th percentile (0-100) of ``values`` by linear interpolation between closest
    ranks (the method numpy and PostgreSQL's ``percentile_cont`` use), or ``None`` if empty."""
    if not 0 <= q <= 100:
        raise ValueError("q must be between 0 and 100")
    ordered = sorted(values)
    if not ordered:
        return None
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency_summary(durations):
    """``{"count", "p50", "p95"}`` of a list of durations (ms); zeros when empty."""
    if not durations:
        return {"count": 0, "p50": 0.0, "p95": 0.0}
    return {
        "count": len(durations),
        "p50": percentile(durations, 50),
        "p95": percentile(durations, 95),
    }


def hit_rate(hits, misses):
    """Share of cache lookups that were hits, between 0 and 1 (0 when there was no lookup)."""
    lookups = (hits or 0) + (misses or 0)
    return (hits or 0) / lookups if lookups else 0.0


class Throttle:
    """Lets an action through at most once per ``interval`` seconds (per process, thread-safe).

    The hot path asks :meth:`ready` on every call; only the first caller after the interval
    gets ``True``, so the action it guards never runs twice at once. ``ready_now``: whether
    the first call may pass at once, or only once the first interval has gone by.
    """

    def __init__(self, interval, clock=time.monotonic, ready_now=False):
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._next = clock() + (0 if ready_now else interval)

    def ready(self):
        now = self._clock()
        if now < self._next:
            return False
        with self._lock:
            if now < self._next:
                return False
            self._next = now + self.interval
            return True
