"""Daily metrics arithmetic: percentiles, hit rate, the flush throttle."""

import threading

import pytest


@pytest.fixture(scope="module")
def metrics(services):
    from mcp_integrator_services import metrics

    return metrics


def test_percentiles_interpolate_like_postgresql(metrics):
    values = [10, 20, 30, 40]
    assert metrics.percentile(values, 0) == 10
    assert metrics.percentile(values, 100) == 40
    assert metrics.percentile(values, 50) == pytest.approx(25)
    # percentile_cont(0.95) of 10, 20, 30, 40 in PostgreSQL is 38.5
    assert metrics.percentile(values, 95) == pytest.approx(38.5)
    assert metrics.percentile([7], 95) == 7
    assert metrics.percentile([], 50) is None
    assert metrics.percentile([3, 1, 2], 50) == 2


def test_percentile_rejects_out_of_range(metrics):
    with pytest.raises(ValueError):
        metrics.percentile([1], 101)


def test_latency_summary(metrics):
    durations = list(range(1, 101))
    summary = metrics.latency_summary(durations)
    assert summary["count"] == 100
    assert summary["p50"] == pytest.approx(50.5)
    assert summary["p95"] == pytest.approx(95.05)
    assert metrics.latency_summary([]) == {"count": 0, "p50": 0.0, "p95": 0.0}


def test_hit_rate(metrics):
    assert metrics.hit_rate(3, 1) == 0.75
    assert metrics.hit_rate(0, 0) == 0.0
    assert metrics.hit_rate(None, 4) == 0.0


def test_throttle_lets_one_caller_through_per_interval(metrics):
    now = [100.0]
    throttle = metrics.Throttle(60, clock=lambda: now[0])
    assert not throttle.ready()
    now[0] += 60
    assert throttle.ready()
    assert not throttle.ready()
    now[0] += 59
    assert not throttle.ready()
    now[0] += 1
    assert throttle.ready()
    at_once = metrics.Throttle(60, clock=lambda: now[0], ready_now=True)
    assert at_once.ready()
    assert not at_once.ready()


def test_throttle_under_threads(metrics):
    now = [0.0]
    throttle = metrics.Throttle(1, clock=lambda: now[0])
    now[0] = 5.0
    results = []
    barrier = threading.Barrier(16)

    def worker():
        barrier.wait()
        results.append(throttle.ready())

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 1
