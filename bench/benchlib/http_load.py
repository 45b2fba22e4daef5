"""Concurrent HTTP clients for the benchmarks that time Odoo's answers against ``/web/health``.

Each client thread has its own ``requests.Session`` and sends requests one after the other
until a shared queue is empty; every request's time is the time until its answer is read.
"""

import collections
import queue
import statistics
import threading
import time

import requests

HTTP_TIMEOUT = 30

Answer = collections.namedtuple("Answer", "kind status outcome seconds body")


def json_status(response):
    """The ``status`` of a JSON answer, or None."""
    try:
        return response.json().get("status")
    except ValueError:
        return None


def burst(items, concurrency, prepare, outcome_of=json_status):
    """Send ``items`` (``(kind, payload)`` pairs) from ``concurrency`` threads until none is
    left; ``prepare(item) -> (method, url, body, headers)``. ``([Answer], wall seconds)``;
    only the answers of failed requests (not 2xx) keep their text."""
    work = queue.SimpleQueue()
    for item in items:
        work.put(item)
    answers = []
    start = threading.Barrier(concurrency + 1)
    clock = time.perf_counter

    def client():
        with requests.Session() as session:
            start.wait()
            while True:
                try:
                    item = work.get_nowait()
                except queue.Empty:
                    return
                method, url, body, headers = prepare(item)
                started = clock()
                try:
                    response = session.request(
                        method, url, data=body, headers=headers, timeout=HTTP_TIMEOUT
                    )
                except requests.RequestException as error:
                    # not its text: it quotes the URL, whose path token is a secret
                    status, outcome, text = type(error).__name__, None, ""
                else:
                    status, outcome = response.status_code, outcome_of(response)
                    text = "" if 200 <= status < 300 else response.text
                answers.append(Answer(item[0], status, outcome, clock() - started, text[:160]))

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    start.wait()
    started = clock()
    for thread in threads:
        thread.join()
    wall = clock() - started
    if len(answers) != len(items):
        raise SystemExit(f"{len(items) - len(answers)} requests were not sent")
    return answers, wall


def p99(values):
    return statistics.quantiles(values, n=100, method="inclusive")[98]
