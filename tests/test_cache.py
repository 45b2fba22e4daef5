"""The cache helper against the real local Redis: TTL classes, invalidation, stampedes, failures."""

import logging
import socket
import threading
import time

import pytest


@pytest.fixture(scope="module")
def cache_service(services):
    from mcp_integrator_services import cache

    return cache


@pytest.fixture
def silent_server():
    """A TCP server that accepts connections and never answers: a hung Redis."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    server.close()


def test_values_round_trip_as_json(cache):
    key = cache.key(1, "business_rules", "rule", 123, "details")
    assert cache.get(key) == (False, None)
    value = {"text": "Trocas em até 7 dias", "prices": [1.5, 2], "ok": True, "none": None}
    cache.set(key, value)
    assert cache.get(key) == (True, value)


def test_values_that_are_not_json_are_refused_and_not_stored(cache):
    key = cache.key(1, "business_rules", "rule", 1, "details")
    with pytest.raises(TypeError):
        cache.set(key, {"when": object()})
    assert cache.get(key) == (False, None)


@pytest.mark.parametrize(
    ("ttl_class", "seconds"), [("transient", 600), ("session", 43200), ("config", 259200)]
)
def test_each_ttl_class_sets_its_expiry(cache, raw, ttl_class, seconds):
    key = cache.key(1, "rules", "rule", ttl_class, "details")
    cache.set(key, 1, ttl_class=ttl_class)
    assert seconds - 5 <= raw.ttl(key.redis_key) <= seconds


def test_unknown_ttl_class_is_a_clear_error(cache, cache_service):
    key = cache.key(1, "rules", "rule", 1, "details")
    with pytest.raises(cache_service.CacheConfigError, match="transient, session, config"):
        cache.get(key, ttl_class="forever")


def test_session_values_slide_on_each_hit(cache, raw):
    key = cache.key(1, "context", "conversation", 77, "summary")
    cache.set(key, "resumo", ttl_class="session")
    raw.pexpire(key.redis_key, 5000)
    assert cache.get(key, ttl_class="session") == (True, "resumo")
    assert raw.ttl(key.redis_key) > 40000


def test_transient_values_do_not_slide(cache, raw):
    key = cache.key(1, "tools", "search", "q", "call")
    cache.set(key, [1])
    raw.pexpire(key.redis_key, 5000)
    assert cache.get(key) == (True, [1])
    assert raw.ttl(key.redis_key) <= 5


@pytest.fixture
def populated(cache):
    """Two tenants, two modules, two resource types, two resources each."""
    keys = {}
    for account in (1, 2):
        for module in ("products", "orders"):
            for resource_type in ("item", "list"):
                for resource_id in (10, 11):
                    key = cache.key(account, module, resource_type, resource_id, "details")
                    cache.set(key, [account, module, resource_type, resource_id])
                    keys[(account, module, resource_type, resource_id)] = key
    return keys


def hits(cache, populated):
    return {name for name, key in populated.items() if cache.get(key)[0]}


@pytest.mark.parametrize(
    ("scope", "gone"),
    [
        ({}, lambda n: n[0] == 1),
        ({"module": "products"}, lambda n: n[:2] == (1, "products")),
        (
            {"module": "products", "resource_type": "item"},
            lambda n: n[:3] == (1, "products", "item"),
        ),
        (
            {"module": "products", "resource_type": "item", "resource_id": 10},
            lambda n: n == (1, "products", "item", 10),
        ),
    ],
)
def test_invalidation_reaches_exactly_its_scope(cache, populated, scope, gone):
    cache.invalidate(1, **scope)
    expected = {name for name in populated if not gone(name)}
    assert hits(cache, populated) == expected


def test_invalidation_needs_the_enclosing_scope(cache, cache_service):
    with pytest.raises(cache_service.InvalidKeyPart, match="module"):
        cache.invalidate(1, resource_type="item")
    with pytest.raises(cache_service.InvalidKeyPart, match="resource type"):
        cache.invalidate(1, module="products", resource_id=3)


def test_values_refill_after_invalidation(cache, populated):
    key = populated[(1, "products", "item", 10)]
    cache.invalidate(1, "products")
    assert cache.get(key) == (False, None)
    assert cache.get_or_compute(key, lambda: "fresh") == "fresh"
    assert cache.get(key) == (True, "fresh")


def test_a_value_computed_across_an_invalidation_is_not_served(cache):
    """The write keeps the generations read before computing, so it is stale on arrival."""
    key = cache.key(1, "products", "item", 5, "details")

    def compute():
        cache.invalidate(1, "products", "item", 5)  # the product changes meanwhile
        return "old price"

    assert cache.get_or_compute(key, compute) == "old price"
    assert cache.get(key) == (False, None)


def test_generations_never_repeat_after_they_expire(cache, raw):
    key = cache.key(1, "products", "item", 5, "details")
    cache.invalidate(1)
    cache.set(key, "stamped with the first generation")
    tenant_generation = key.generation_keys[0]
    raw.delete(tenant_generation)  # the generation expired
    assert cache.get(key) == (False, None)
    cache.invalidate(1)
    assert cache.get(key) == (False, None)


def test_concurrent_misses_compute_once(cache):
    key = cache.key(1, "products", "item", "cold", "details")
    computations = []
    barrier = threading.Barrier(16)
    results = []

    def compute():
        computations.append(1)
        time.sleep(0.2)
        return {"stock": 3}

    def worker():
        barrier.wait()
        results.append(cache.get_or_compute(key, compute))

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(computations) == 1
    assert results == [{"stock": 3}] * 16


def test_a_dead_lock_holder_does_not_block_others(make_cache, raw):
    cache = make_cache(lock_timeout=0.3)
    key = cache.key(1, "products", "item", "orphan", "details")
    raw.set(f"{key.redis_key}:~lock", "a worker that died", px=300)
    assert cache.get_or_compute(key, lambda: "computed") == "computed"
    assert cache.get(key) == (True, "computed")


def test_a_failing_computation_releases_the_lock(cache, raw):
    key = cache.key(1, "products", "item", "boom", "details")

    def compute():
        raise RuntimeError("upstream said no")

    with pytest.raises(RuntimeError):
        cache.get_or_compute(key, compute)
    assert raw.exists(f"{key.redis_key}:~lock") == 0
    assert cache.get_or_compute(key, lambda: "second try") == "second try"


def test_counters_per_tenant_and_module(cache):
    key = cache.key(4, "products", "item", 1, "details")
    other = cache.key(4, "orders", "order", 1, "status")
    cache.get_or_compute(key, lambda: time.sleep(0.01) or 1)
    cache.get(key)
    cache.get(key)
    cache.get(other)
    counts = cache.stats.drain()
    assert counts[(4, "products")]["hits"] == 2
    assert counts[(4, "products")]["misses"] == 1
    assert counts[(4, "products")]["saved_ms"] >= 20
    assert counts[(4, "orders")]["misses"] == 1
    assert cache.stats.drain() == {}


def test_lists_are_capped_and_slide(cache, raw):
    key = cache.key(1, "context", "conversation", 9, "history")
    for turn in range(7):
        cache.list_append(key, {"role": "user", "text": f"msg {turn}"}, max_items=5)
    items = cache.list_items(key)
    assert [item["text"] for item in items] == [f"msg {turn}" for turn in range(2, 7)]
    assert raw.ttl(key.redis_key) > 43000


def test_hashes_hold_fields_and_slide(cache, raw):
    key = cache.key(1, "chatwoot", "conversation", 9, "state")
    cache.hash_update(key, {"status": "pending", "handoff": False})
    cache.hash_update(key, {"status": "open", "agent": {"id": 3}})
    assert cache.hash_items(key) == {"status": "open", "handoff": False, "agent": {"id": 3}}
    assert raw.ttl(key.redis_key) > 43000


def test_sets(cache):
    key = cache.key(1, "chatwoot", "conversation", "silenced", "members")
    assert not cache.set_contains(key, "42")
    assert cache.set_add(key, "42") is True
    assert cache.set_add(key, "42") is False  # already there: the caller knows it is a repeat
    assert cache.set_contains(key, "42")
    cache.set_remove(key, "42")
    assert not cache.set_contains(key, "42")


def test_redis_down_still_returns_right_results(make_cache, closed_port, caplog):
    cache = make_cache(url=f"redis://127.0.0.1:{closed_port}/0")
    key = cache.key(1, "products", "item", 1, "details")
    with caplog.at_level(logging.WARNING):
        values = [cache.get_or_compute(key, lambda: "computed") for _ in range(50)]
        cache.set(key, "x")
        cache.invalidate(1)
        cache.list_append(key, "x", max_items=3)
    assert values == ["computed"] * 50
    assert cache.get(key) == (False, None)
    assert cache.list_items(key) == []
    cache.hash_update(key, {"x": 1})
    assert cache.hash_items(key) == {}
    assert not cache.set_contains(key, "x")
    assert cache.set_add(key, "x") is None  # neither new nor known: Redis could not say
    warnings = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(warnings) == 1
    status = cache.status()
    assert status["up"] is False and "Connection refused" in status["error"]
    assert cache.stats.drain()[(1, "products")]["errors"] >= 50


def test_a_hung_redis_costs_one_timeout_then_is_skipped(make_cache, silent_server):
    port, accepted = silent_server
    cache = make_cache(url=f"redis://127.0.0.1:{port}/0", socket_timeout=0.2)
    key = cache.key(1, "products", "item", 1, "details")
    assert cache.get_or_compute(key, lambda: 1) == 1
    assert "Timeout" in cache.status()["error"]
    connections = len(accepted)
    for _ in range(100):
        assert cache.get_or_compute(key, lambda: 1) == 1
    assert len(accepted) == connections  # the open circuit never went back to the hung server


def test_the_circuit_closes_when_redis_is_back(make_cache, redis_url):
    cache = make_cache(circuit_cooldown=0.05)
    key = cache.key(1, "products", "item", 1, "details")
    cache.circuit.failure(ConnectionError("simulated outage"))
    assert cache.get(key) == (False, None)
    assert cache.status()["up"] is False
    time.sleep(0.06)
    cache.set(key, 1)
    assert cache.get(key) == (True, 1)
    assert cache.status() == {"up": True, "checked": True, "error": None, "retry_in": None}


def test_ping_reports_latency_or_the_exact_error(make_cache, closed_port, cache_service):
    assert make_cache().ping() > 0
    down = make_cache(url=f"redis://127.0.0.1:{closed_port}/0")
    with pytest.raises(cache_service.CacheUnavailable, match="Connection refused"):
        down.ping()


def test_wrong_password_is_reported_without_the_password(make_cache, cache_service):
    cache = make_cache(password="not-the-password-123")
    with pytest.raises(cache_service.CacheUnavailable) as error:
        cache.ping()
    assert "not-the-password-123" not in str(error.value)
    assert "AUTH" in str(error.value) or "password" in str(error.value).lower()
    key = cache.key(1, "products", "item", 1, "details")
    assert cache.get_or_compute(key, lambda: "still served") == "still served"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"url": "http://x"}, "must start with"),
        ({"namespace": "Prod DB"}, "namespace"),
        ({"ttl_transient": 60}, "transient TTL"),
        ({"ttl_session": 90000}, "session TTL"),
        ({"ttl_config": 3600}, "config TTL"),
        ({"socket_timeout": 0}, "timeout"),
    ],
)
def test_invalid_settings_are_refused_with_a_reason(cache_service, overrides, reason):
    with pytest.raises(cache_service.CacheConfigError, match=reason):
        cache_service.CacheSettings(**overrides).validate()


def test_settings_never_show_the_password(cache_service):
    assert "s3cr3t" not in repr(cache_service.CacheSettings(password="s3cr3t"))


def test_shared_cache_is_one_per_settings(cache_service, redis_url, namespace):
    settings = cache_service.CacheSettings(url=redis_url, namespace=namespace)
    first = cache_service.shared_cache(settings)
    assert cache_service.shared_cache(settings) is first
    changed = cache_service.CacheSettings(url=redis_url, namespace=namespace, ttl_transient=700)
    assert cache_service.shared_cache(changed) is not first


def test_an_uncached_value_reaches_the_caller_and_not_the_cache(cache, cache_service):
    key = cache.key(7, "tools", "search", {"q": "x"}, "call")
    calls = []

    def failing_tool():
        calls.append(1)
        return cache_service.Uncached({"isError": True})

    assert cache.get_or_compute(key, failing_tool) == {"isError": True}
    assert cache.get_or_compute(key, failing_tool) == {"isError": True}
    assert len(calls) == 2
    assert cache.get_or_compute(key, lambda: "ok") == "ok"
    assert cache.get_or_compute(key, failing_tool) == "ok"
    assert len(calls) == 2


def test_an_uncached_value_is_unwrapped_when_redis_is_down(make_cache, closed_port, cache_service):
    cache = make_cache(url=f"redis://127.0.0.1:{closed_port}/0")
    key = cache.key(7, "tools", "search", None, "call")
    assert cache.get_or_compute(key, lambda: cache_service.Uncached(3)) == 3


@pytest.mark.parametrize("resource_id", [None, 123, "SKU-1", "a:b", True, {"q": "x", "limit": 5}])
def test_cache_keys_are_the_keys_build_key_specifies(cache, namespace, resource_id):
    from mcp_integrator_services import keys

    key = cache.key(3, "tools", "search", resource_id, "call")
    assert key.redis_key == keys.build_key(namespace, 3, "tools", "search", resource_id, "call")
    tenant = keys.tenant_prefix(namespace, 3)
    resource = keys.resource_part(resource_id)
    assert key.generation_keys == (
        f"{tenant}:~gen",
        f"{tenant}:~gen:tools",
        f"{tenant}:~gen:tools:search",
        f"{tenant}:~gen:tools:search:{resource}",
    )
