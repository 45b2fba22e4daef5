"""Requests per minute per MCP client, shared by every Odoo worker through Redis.

Plain Python, no Odoo import. The algorithm is GCRA (the generic cell rate algorithm, a token
bucket kept as one timestamp): a client may send up to ``limit`` requests at once, then one
every ``period / limit`` seconds; unlike a per-minute counter there is no window edge at which
twice the limit gets through. One Lua call per request keeps it atomic across workers and
uses the Redis server's clock, so workers on several hosts agree.

When Redis cannot answer, :meth:`RateLimiter.local_hit` applies the same algorithm in this
process's memory: each worker then enforces the limit on its own (a client may get up to
``workers × limit``), which the caller logs.
"""

import threading
import time

DEFAULT_PERIOD = 60.0
MAX_LOCAL_CLIENTS = 10000

# KEYS[1]: the client's key. ARGV[1]: limit, ARGV[2]: period in ms.
# Returns 0 when the request may pass, else the ms to wait before the next one may.
GCRA_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local period = tonumber(ARGV[2])
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
local next_tat = tat + period / tonumber(ARGV[1])
local wait = next_tat - now - period
if wait > 0 then return math.ceil(wait) end
redis.call('SET', KEYS[1], string.format('%.3f', next_tat), 'PX', math.ceil(next_tat - now))
return 0
"""


class RateLimiter:
    """GCRA limiter: :meth:`shared_hit` through Redis, :meth:`local_hit` in this process.

    Both return 0 when the request may pass, else the seconds to wait (for ``Retry-After``).
    ``clock`` (monotonic seconds) drives the in-process fallback only.
    """

    def __init__(self, period=DEFAULT_PERIOD, clock=time.monotonic):
        if period <= 0:
            raise ValueError("period must be positive")
        self.period = period
        self._clock = clock
        self._lock = threading.Lock()
        self._local = {}
        self._script = None

    def shared_hit(self, client, key, limit):
        """Count one request of ``key`` in Redis (``client``); Redis errors propagate."""
        _check_limit(limit)
        if self._script is None:
            self._script = client.register_script(GCRA_SCRIPT)
        wait_ms = self._script(keys=(key,), args=(limit, int(self.period * 1000)), client=client)
        return int(wait_ms) / 1000

    def local_hit(self, key, limit):
        """Count one request of ``key`` in this process's memory."""
        _check_limit(limit)
        now = self._clock()
        with self._lock:
            if len(self._local) >= MAX_LOCAL_CLIENTS:
                # forget the clients whose bucket is full again: they start afresh anyway
                self._local = {k: tat for k, tat in self._local.items() if tat > now}
            next_tat = max(self._local.get(key, now), now) + self.period / limit
            wait = next_tat - now - self.period
            if wait > 0:
                return wait
            self._local[key] = next_tat
            return 0


def _check_limit(limit):
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"the rate limit must be a positive integer, got {limit!r}")
