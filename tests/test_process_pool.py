"""The per-process pool of built-in servers' clients: reuse, replacement, fork, close."""

import importlib
import os
import threading

import pytest
from conftest import load_services


@pytest.fixture
def pool():
    load_services("mcp_connectors")
    return importlib.import_module("mcp_connectors_services.process_pool").ProcessPool()


class Resource:
    def __init__(self, name):
        self.name = name
        self.closed = False

    def close(self):
        self.closed = True


def opener(made):
    def create():
        made.append(Resource(len(made)))
        return made[-1]

    return create


def test_one_resource_per_key_and_config(pool):
    made = []
    first = pool.get("a", ("url", 1), opener(made), Resource.close)
    assert pool.get("a", ("url", 1), opener(made), Resource.close) is first
    other = pool.get("b", ("url", 1), opener(made), Resource.close)
    assert other is not first and len(made) == 2 and "a" in pool


def test_new_config_closes_the_old_resource_first(pool):
    made, seen_open = [], []

    def create():
        seen_open.append([resource.closed for resource in made])
        return opener(made)()

    old = pool.get("a", 1, create, Resource.close)
    new = pool.get("a", 2, create, Resource.close)
    assert new is not old and old.closed and not new.closed
    assert seen_open == [[], [True]], "the old one was closed before the new one opened"


def test_discard_and_close_all(pool):
    made = []
    first = pool.get("a", 1, opener(made), Resource.close)
    second = pool.get("b", 1, opener(made), Resource.close)
    pool.discard("a")
    pool.discard("missing")
    assert first.closed and "a" not in pool and not second.closed
    pool.close_all()
    assert second.closed and "b" not in pool


def test_failing_close_does_not_block_the_successor(pool, caplog):
    def broken(_resource):
        raise OSError("disk gone")

    pool.get("a", 1, lambda: "old", broken)
    assert pool.get("a", 2, lambda: "new") == "new"
    assert "Closing the pooled client 'a' failed" in caplog.text
    pool.discard("a")  # close=None: nothing to call


def test_concurrent_first_use_builds_once(pool):
    made, barrier = [], threading.Barrier(8)
    results = []

    def use():
        barrier.wait()
        results.append(pool.get("a", 1, opener(made)))

    threads = [threading.Thread(target=use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) == 1 and all(result is made[0] for result in results)


def test_after_fork_the_parents_resources_are_forgotten_not_closed(pool):
    made = []
    parent = pool.get("a", 1, opener(made), Resource.close)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report, never return into pytest
        fresh = pool.get("a", 1, opener(made), Resource.close)
        os.write(write, b"1" if fresh is not parent and not parent.closed else b"0")
        os._exit(0)
    os.close(write)
    assert os.read(read, 1) == b"1"
    os.waitpid(pid, 0)
    assert pool.get("a", 1, opener(made), Resource.close) is parent and not parent.closed


def test_create_may_take_another_resource_of_the_pool(pool):
    def store():
        return ("store", pool.get("embedder", None, lambda: "model"))

    assert pool.get("server", 1, store) == ("store", "model")
    assert "embedder" in pool
