"""The suite's Redis cache: tenant-first keys, TTL classes, stampede-safe fills, O(1) invalidation.

It fails open: when Redis is down or slow every call still returns the right result (a miss, or a
fresh computation), after at most one short timeout; then a circuit skips Redis for a while and a
warning is logged once per interval.

Invalidation uses generation numbers kept in Redis, one per tenant, module, resource type and
resource. Each stored value carries the generations it was computed under; a read compares them with
the current ones inside one Lua call (one round trip), and bumping a generation makes every value
under it a miss at once. Old values then die by their TTL, so nothing ever walks the keyspace.
A read is one MGET of the value and its four generations: no script, so a large value is not copied
through Lua, and the hit path stays within a few microseconds of a plain GET.
Generations are microsecond timestamps rather than counters, so one that expired and comes back can
never repeat a value an old entry was stamped with.
"""

import functools
import json
import logging
import os
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import astuple, dataclass, field
from typing import NamedTuple

from . import keys as key_rules
from . import redis_url
from .keys import InvalidKeyPart
from .redis_url import CacheConfigError

__all__ = [
    "TTL_BOUNDS",
    "Cache",
    "CacheConfigError",
    "CacheKey",
    "CacheSettings",
    "CacheUnavailable",
    "InvalidKeyPart",
    "shared_cache",
]

_logger = logging.getLogger(__name__)

TTL_BOUNDS = {
    "transient": (5 * 60, 15 * 60),
    "session": (3600, 24 * 3600),
    "config": (24 * 3600, 7 * 24 * 3600),
}
# Generations outlive every value they stamp (values never live longer than the config class bound).
GENERATION_TTL_MS = (TTL_BOUNDS["config"][1] + 24 * 3600) * 1000
GENERATIONS = "~gen"
WARNING_INTERVAL = 60.0
LOCK_POLL = 0.02

# KEYS: the generation. ARGV: TTL in ms. Returns the new generation.
BUMP_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local nxt = math.max(tonumber(redis.call('GET', KEYS[1]) or '0') + 1, now)
local text = string.format('%d', nxt)
redis.call('SET', KEYS[1], text, 'PX', ARGV[1])
return text
"""

RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class Uncached:
    """Returned by a ``compute`` whose value must reach the caller but not the cache
    (a tool's error result, say): :meth:`Cache.get_or_compute` unwraps it and stores nothing."""

    value: object


def _unwrapped(value):
    return value.value if isinstance(value, Uncached) else value


class CacheUnavailable(Exception):
    """Redis could not be reached; the message is safe to show (no password in it)."""


@dataclass(frozen=True)
class CacheSettings:
    url: str = "redis://127.0.0.1:6379/0"
    namespace: str = "odoo"
    ttl_transient: int = 600
    ttl_session: int = 43200
    ttl_config: int = 259200
    socket_timeout: float = 0.25
    circuit_cooldown: float = 15.0
    lock_timeout: float = 10.0
    password: str = field(default="", repr=False)

    def __hash__(self):
        # the key of the process's Cache (shared_cache), looked up on every cached read
        try:
            return self.__dict__["_hash"]
        except KeyError:
            value = self.__dict__["_hash"] = hash(astuple(self))
            return value

    def ttl(self, ttl_class):
        if ttl_class not in TTL_BOUNDS:
            raise CacheConfigError(
                f"unknown cache TTL class {ttl_class!r}: use one of {', '.join(TTL_BOUNDS)}"
            )
        return getattr(self, f"ttl_{ttl_class}")

    def validate(self):
        """Raise CacheConfigError naming the first setting that cannot work; return the target."""
        target = redis_url.parse(self.url)
        if not key_rules.IDENTIFIER.fullmatch(self.namespace or ""):
            raise CacheConfigError(
                f"cache namespace {self.namespace!r} must be 1-64 characters of [a-z0-9_.-]"
            )
        for ttl_class, (low, high) in TTL_BOUNDS.items():
            value = getattr(self, f"ttl_{ttl_class}")
            if not low <= value <= high:
                raise CacheConfigError(
                    f"{ttl_class} TTL must be between {low} and {high} seconds, got {value}"
                )
        if not 0 < self.socket_timeout <= 5:
            raise CacheConfigError("Redis timeout must be between 0 and 5 seconds")
        return target


class CacheKey(NamedTuple):
    """A value's key plus its generation keys (tenant, module, type, resource), derived once.

    A named tuple, not a dataclass: one is built for every cached read."""

    redis_key: str
    account_id: int
    module: str
    generation_keys: tuple

    def __str__(self):
        return self.redis_key


@functools.lru_cache(maxsize=4096)
def _key_frame(namespace, account_id, module, resource_type, action):
    """The checked parts of a key that do not depend on the resource, kept per process:
    ``(prefix of the key, its action suffix, the tenant, module and type generation keys)``.
    An invalid part raises (and is not kept)."""
    tenant, module, resource_type, _resource, action = key_rules.key_parts(
        namespace, account_id, module, resource_type, None, action
    )
    tenant_generation = f"{tenant}:{GENERATIONS}"
    module_generation = f"{tenant_generation}:{module}"
    return (
        f"{tenant}:{module}:{resource_type}:",
        f":{action}",
        (tenant_generation, module_generation, f"{module_generation}:{resource_type}"),
    )


class CacheStats:
    """Per (account_id, module) counters; one dict update per call keeps the hot path cheap."""

    NAMES = ("hits", "misses", "errors", "saved_ms")

    def __init__(self):
        self._lock = threading.Lock()
        self._counts = defaultdict(lambda: [0, 0, 0, 0.0])

    def add(self, account_id, module, index, amount=1):
        with self._lock:
            self._counts[(account_id, module)][index] += amount

    def hit(self, key, saved_ms):
        with self._lock:
            counts = self._counts[(key.account_id, key.module)]
            counts[0] += 1
            counts[3] += saved_ms

    def drain(self):
        """Counters gathered since the last drain, as plain dicts; they restart from zero."""
        with self._lock:
            counts, self._counts = self._counts, defaultdict(lambda: [0, 0, 0, 0.0])
        return {
            group: dict(zip(self.NAMES, values, strict=True)) for group, values in counts.items()
        }


class Circuit:
    """Skips Redis for ``cooldown`` seconds after a failure, then lets one call try again."""

    def __init__(self, cooldown, label):
        self.cooldown = cooldown
        self.label = label
        self.retry_at = 0.0
        self.error = None
        self.checked = False
        self._warned_at = -WARNING_INTERVAL

    def allow(self):
        if not self.retry_at:
            return True
        now = time.monotonic()
        if now < self.retry_at:
            return False
        self.retry_at = now + self.cooldown  # one trial call; the others keep skipping
        return True

    def success(self):
        self.retry_at = 0.0
        self.error = None
        self.checked = True

    def failure(self, exc):
        now = time.monotonic()
        self.retry_at = now + self.cooldown
        self.error = f"{type(exc).__name__}: {exc}"
        self.checked = True
        if now - self._warned_at >= WARNING_INTERVAL:
            self._warned_at = now
            _logger.warning(
                "Redis cache %s unavailable (%s); serving without cache for %.0f s",
                self.label,
                self.error,
                self.cooldown,
            )


class Cache:
    def __init__(self, settings):
        import redis

        self.settings = settings
        self.namespace = settings.namespace
        target = settings.validate()
        self.label = redis_url.redact(settings.url)
        self.client = redis_url.connect(target, settings.password, settings.socket_timeout)
        self.circuit = Circuit(settings.circuit_cooldown, self.label)
        self.stats = CacheStats()
        self._errors = (redis.RedisError, OSError)
        # sessions slide their expiry on every hit; the other classes keep their written TTL
        self._slide_ms = {name: 0 for name in TTL_BOUNDS}
        self._slide_ms["session"] = settings.ttl_session * 1000
        self._bump = self.client.register_script(BUMP_SCRIPT)
        self._release = self.client.register_script(RELEASE_SCRIPT)

    # keys ------------------------------------------------------------------------------------
    def key(self, account_id, module, resource_type, resource_id, action):
        prefix, suffix, generations = _key_frame(
            self.namespace, account_id, module, resource_type, action
        )
        resource = key_rules.resource_part(resource_id)
        return CacheKey(
            f"{prefix}{resource}{suffix}",
            account_id,
            module,
            (*generations, f"{generations[2]}:{resource}"),
        )

    # guarded calls ---------------------------------------------------------------------------
    def _call(self, account_id, module, operation, fallback=None):
        """Run one Redis operation; on failure or open circuit, count an error, return fallback."""
        if not self.circuit.allow():
            self.stats.add(account_id, module, 2)
            return fallback
        try:
            result = operation()
        except self._errors as exc:
            self.circuit.failure(exc)
            self.stats.add(account_id, module, 2)
            return fallback
        if self.circuit.retry_at or not self.circuit.checked:
            self.circuit.success()
        return result

    def _lookup(self, key, ttl_class, count_miss=True):
        """(hit, value, stamp); stamp is None when Redis could not answer.

        ``count_miss=False`` for the re-reads of one get_or_compute, which is one miss at most.

        The hot path of every cached read: one MGET, no closures, no extra lookups.
        """
        slide_ms = self._slide_ms.get(ttl_class)
        if slide_ms is None:
            self.settings.ttl(ttl_class)  # raises the error that names the valid classes
        if not self.circuit.allow():
            self.stats.add(key.account_id, key.module, 2)
            return False, None, None
        try:
            stored, *generations = self.client.mget(key.redis_key, *key.generation_keys)
            stamp = b".".join([generation or b"0" for generation in generations])
            hit = stored is not None and stored.startswith(stamp + b" ")
            if hit and slide_ms:
                self.client.pexpire(key.redis_key, slide_ms)
        except self._errors as exc:
            self.circuit.failure(exc)
            self.stats.add(key.account_id, key.module, 2)
            return False, None, None
        if self.circuit.retry_at or not self.circuit.checked:
            self.circuit.success()
        if hit:
            head, _, body = stored.partition(b"\n")
            self.stats.hit(key, float(head[len(stamp) + 1 :]))
            return True, json.loads(body), None
        if count_miss:
            self.stats.add(key.account_id, key.module, 1)
        return False, None, stamp

    def _store(self, key, value, ttl_class, stamp, compute_ms):
        ttl_ms = self.settings.ttl(ttl_class) * 1000
        payload = (
            stamp
            + f" {compute_ms:.1f}\n".encode()
            + json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
        )
        self._call(
            key.account_id, key.module, lambda: self.client.set(key.redis_key, payload, px=ttl_ms)
        )

    # values ----------------------------------------------------------------------------------
    def get(self, key, ttl_class="transient"):
        """(hit, value). ``ttl_class`` matters for sessions, whose expiry slides on every hit."""
        hit, value, _stamp = self._lookup(key, ttl_class)
        return hit, value

    def set(self, key, value, ttl_class="transient"):
        _hit, _value, stamp = self._lookup(key, ttl_class)
        if stamp is not None:
            self._store(key, value, ttl_class, stamp, 0.0)

    def get_or_compute(self, key, compute, ttl_class="transient"):
        """The cached value, or ``compute()`` stored for the next caller.

        Concurrent misses on one key compute once: the first caller takes a lock that expires by
        itself (so a holder that dies does not block anyone longer than ``lock_timeout``), the
        others wait for its value.
        """
        hit, value, stamp = self._lookup(key, ttl_class)
        if hit:
            return value
        if stamp is None:
            return _unwrapped(compute())
        lock_key = f"{key.redis_key}:~lock"
        token = uuid.uuid4().hex
        lock_ms = int(self.settings.lock_timeout * 1000)
        deadline = time.monotonic() + self.settings.lock_timeout
        while True:
            acquired = self._call(
                key.account_id,
                key.module,
                lambda: self.client.set(lock_key, token, nx=True, px=lock_ms),
            )
            if acquired:
                try:
                    hit, value, stamp = self._lookup(key, ttl_class, count_miss=False)
                    if hit:
                        return value
                    return self._compute_and_store(key, compute, ttl_class, stamp)
                finally:
                    self._call(
                        key.account_id,
                        key.module,
                        lambda: self._release(keys=(lock_key,), args=(token,)),
                    )
            time.sleep(LOCK_POLL)
            hit, value, stamp = self._lookup(key, ttl_class, count_miss=False)
            if hit:
                return value
            if stamp is None or time.monotonic() > deadline:
                return self._compute_and_store(key, compute, ttl_class, stamp)

    def _compute_and_store(self, key, compute, ttl_class, stamp):
        started = time.perf_counter()
        value = compute()
        if isinstance(value, Uncached):
            return value.value
        if stamp is not None:
            self._store(key, value, ttl_class, stamp, (time.perf_counter() - started) * 1000)
        return value

    def delete(self, key):
        self._call(key.account_id, key.module, lambda: self.client.delete(key.redis_key))

    def invalidate(self, account_id, module=None, resource_type=None, resource_id=None):
        """Make every cached value of a tenant, module, type or resource a miss, in O(1)."""
        if resource_type is not None and module is None:
            raise InvalidKeyPart("invalidating a resource type needs its module")
        if resource_id is not None and resource_type is None:
            raise InvalidKeyPart("invalidating a resource needs its resource type")
        probe = self.key(
            account_id, module or "all", resource_type or "all", resource_id, "invalidate"
        )
        depth = 3 if resource_id is not None else 2 if resource_type else 1 if module else 0
        generation_key = probe.generation_keys[depth]
        self._call(
            account_id,
            module or "all",
            lambda: self._bump(keys=(generation_key,), args=(GENERATION_TTL_MS,)),
        )

    # lists, hashes and sets (conversation history and state, membership) --------------------
    def list_append(self, key, value, max_items, ttl_class="session"):
        """Append to a capped list whose expiry slides on every write."""
        ttl_ms = self.settings.ttl(ttl_class) * 1000
        item = json.dumps(value, separators=(",", ":"), ensure_ascii=False)

        def append():
            with self.client.pipeline(transaction=True) as pipe:
                pipe.rpush(key.redis_key, item)
                pipe.ltrim(key.redis_key, -max_items, -1)
                pipe.pexpire(key.redis_key, ttl_ms)
                pipe.execute()

        self._call(key.account_id, key.module, append)

    def list_items(self, key, ttl_class="session"):
        ttl_ms = self.settings.ttl(ttl_class) * 1000

        def read():
            with self.client.pipeline(transaction=False) as pipe:
                pipe.lrange(key.redis_key, 0, -1)
                pipe.pexpire(key.redis_key, ttl_ms)
                return pipe.execute()[0]

        return [json.loads(item) for item in self._call(key.account_id, key.module, read, [])]

    def hash_update(self, key, mapping, ttl_class="session"):
        """Set fields of a hash (a conversation's state, say); its expiry slides on every write."""
        ttl_ms = self.settings.ttl(ttl_class) * 1000
        fields = {name: json.dumps(value, ensure_ascii=False) for name, value in mapping.items()}

        def update():
            with self.client.pipeline(transaction=True) as pipe:
                pipe.hset(key.redis_key, mapping=fields)
                pipe.pexpire(key.redis_key, ttl_ms)
                pipe.execute()

        self._call(key.account_id, key.module, update)

    def hash_items(self, key):
        """All fields of a hash as a dict ({} when absent or when Redis is down)."""
        stored = self._call(key.account_id, key.module, lambda: self.client.hgetall(key.redis_key))
        return {name.decode(): json.loads(value) for name, value in (stored or {}).items()}

    def set_add(self, key, member, ttl_class="session"):
        """True when ``member`` is new, False when it was there, None when Redis is down.

        The answer is atomic, so concurrent callers adding one member can tell which one added it
        (the dedupe of a conversation's message ids)."""
        ttl_ms = self.settings.ttl(ttl_class) * 1000

        def add():
            with self.client.pipeline(transaction=True) as pipe:
                pipe.sadd(key.redis_key, member)
                pipe.pexpire(key.redis_key, ttl_ms)
                return pipe.execute()[0] == 1

        return self._call(key.account_id, key.module, add)

    def set_remove(self, key, member):
        self._call(key.account_id, key.module, lambda: self.client.srem(key.redis_key, member))

    def set_contains(self, key, member):
        found = self._call(
            key.account_id, key.module, lambda: self.client.sismember(key.redis_key, member)
        )
        return bool(found)

    # health ----------------------------------------------------------------------------------
    def ping(self):
        """Round-trip time in ms, or CacheUnavailable with the exact reason."""
        started = time.perf_counter()
        try:
            self.client.ping()
        except self._errors as exc:
            self.circuit.failure(exc)
            raise CacheUnavailable(f"{self.label}: {type(exc).__name__}: {exc}") from None
        self.circuit.success()
        return (time.perf_counter() - started) * 1000

    def status(self):
        retry_at = self.circuit.retry_at
        return {
            "up": not retry_at,
            "checked": self.circuit.checked,
            "error": self.circuit.error,
            "retry_in": max(0.0, retry_at - time.monotonic()) if retry_at else None,
        }

    def close(self):
        self.client.close()


_shared = {}
_shared_lock = threading.Lock()
_shared_pid = os.getpid()
SHARED_LIMIT = 8


def shared_cache(settings):
    """This process's Cache for ``settings``; a new one after fork or when the settings change."""
    global _shared_pid
    cache = _shared.get(settings)
    if cache is not None and _shared_pid == os.getpid():
        return cache  # the path of every cached read: no lock
    with _shared_lock:
        if _shared_pid != os.getpid():
            _shared.clear()
            _shared_pid = os.getpid()
        cache = _shared.get(settings)
        if cache is None:
            if len(_shared) >= SHARED_LIMIT:
                _shared.pop(next(iter(_shared))).close()
            cache = _shared[settings] = Cache(settings)
        return cache
