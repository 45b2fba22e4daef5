"""Plain-Python tier: the addons' ``services`` packages, loaded without Odoo, on the real Redis."""

import importlib.util
import os
import sys
import types
import uuid
from pathlib import Path

import pytest

ADDONS = Path(__file__).resolve().parent.parent / "addons"


def load_services(addon):
    """Import ``addons/<addon>/services`` as the top-level package ``<addon>_services``.

    Loading the package by path keeps the addon's ``__init__`` (which needs Odoo) out of the
    plain tier.
    """
    name = f"{addon}_services"
    if name in sys.modules:
        return sys.modules[name]
    init = ADDONS / addon / "services" / "__init__.py"
    spec = importlib.util.spec_from_file_location(
        name, init, submodule_search_locations=[str(init.parent)]
    )
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package
    spec.loader.exec_module(package)
    return package


def load_test_double(addon, module):
    """Import ``addons/<addon>/tests/<module>.py`` by path: a test double with no Odoo import,
    shared by the addon's Odoo tests and the plain tier.

    It is loaded as ``<addon>_tests.<module>`` of a package whose ``__init__`` (which needs
    Odoo) never runs, so the doubles may import each other relatively."""
    package = f"{addon}_tests"
    if package not in sys.modules:
        holder = types.ModuleType(package)
        holder.__path__ = [str(ADDONS / addon / "tests")]
        sys.modules[package] = holder
    return importlib.import_module(f"{package}.{module}")


@pytest.fixture(scope="session")
def services():
    return load_services("mcp_integrator")


@pytest.fixture(scope="session")
def redis_url():
    return os.environ.get("MCP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def namespace(redis_url):
    """A namespace of its own per test, removed afterwards (tests never touch other keys)."""
    import redis

    ns = f"test-{uuid.uuid4().hex[:12]}"
    yield ns
    client = redis.Redis.from_url(redis_url, socket_timeout=2)
    keys = list(client.scan_iter(match=f"{ns}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def make_cache(services, redis_url, namespace):
    """``make(**settings)``: the integrator's Cache on the test's namespace, closed afterwards."""
    from mcp_integrator_services import cache as cache_service

    created = []

    def make(**overrides):
        options = {"url": redis_url, "namespace": namespace, **overrides}
        cache = cache_service.Cache(cache_service.CacheSettings(**options))
        created.append(cache)
        return cache

    yield make
    for cache in created:
        cache.close()


@pytest.fixture
def cache(make_cache):
    return make_cache()


@pytest.fixture
def raw(redis_url):
    """A plain Redis client, to look at what the code under test stored."""
    import redis

    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def closed_port():
    """A local port nothing listens on: Redis (or any server) down."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
