"""The background audit writer: batches, flush, a refusing database, overflow, fork."""

import os
import signal
import threading

import pytest


@pytest.fixture(scope="module")
def writer_module(services):
    from mcp_integrator_services import audit_writer

    return audit_writer


class Table:
    """Stands in for the database table: the batches it received, or the error it raises."""

    def __init__(self):
        self.batches = []
        self.refuse = None
        self.lock = threading.Lock()

    def write(self, rows):
        if self.refuse:
            raise self.refuse
        with self.lock:
            self.batches.append(list(rows))

    @property
    def rows(self):
        return [row for batch in self.batches for row in batch]


def test_rows_are_written_in_batches_off_the_callers_thread(writer_module):
    table = Table()
    writer = writer_module.AuditWriter(table.write, interval=0.05, max_batch=10)
    for number in range(25):
        writer.put({"n": number})
    assert writer.flush(5)
    assert [row["n"] for row in table.rows] == list(range(25))
    assert all(len(batch) <= 10 for batch in table.batches)
    assert writer.pending == 0


def test_a_refused_batch_is_kept_and_written_later(writer_module, caplog):
    table = Table()
    table.refuse = OSError("database is down")
    writer = writer_module.AuditWriter(table.write, interval=0.05)
    writer.put({"n": 1})
    writer.put({"n": 2})
    assert not writer.flush(0.3)
    assert writer.pending == 2
    assert "Could not write 2 audit rows" in caplog.text
    table.refuse = None
    assert writer.flush(5)
    assert [row["n"] for row in table.rows] == [1, 2]


def test_a_full_queue_drops_the_oldest_rows_and_says_so(writer_module, caplog):
    table = Table()
    table.refuse = OSError("database is down")
    writer = writer_module.AuditWriter(table.write, interval=0.05, max_queue=3)
    for number in range(5):
        writer.put({"n": number})
    assert writer.pending == 3
    table.refuse = None
    assert writer.flush(5)
    assert [row["n"] for row in table.rows] == [2, 3, 4]
    assert "dropped the 2 oldest rows" in caplog.text


def test_one_writer_per_name_and_flush_all(writer_module):
    table = Table()
    first = writer_module.writer_for("db-audit-test", table.write)
    assert writer_module.writer_for("db-audit-test", Table().write) is first
    first.put({"n": 1})
    assert writer_module.flush_all(5)
    assert table.rows == [{"n": 1}]


def in_forked_child(body):
    """``(pid, exit code)`` of a forked child that runs ``body()``: 0 when it returns true, 1
    when false, 2 when it raises, -14 when it is still stuck after 5 s (SIGALRM)."""
    pid = os.fork()
    if pid == 0:
        try:
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.alarm(5)  # a deadlock kills the child instead of hanging the run
            os._exit(0 if body() else 1)
        except BaseException:  # noqa: BLE001 - a forked child must never return to pytest
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    return pid, os.waitstatus_to_exitcode(status)


def test_a_forked_child_writes_with_its_own_thread(writer_module, tmp_path):
    done = tmp_path / "child"

    def write(rows):
        with done.open("a") as out:
            out.write(f"{os.getpid()}:{len(rows)}\n")

    writer = writer_module.AuditWriter(write, interval=0.05)
    writer.put({"n": "parent"})
    assert writer.flush(5)

    def child():  # its writer starts a thread of its own
        writer.put({"n": "child"})
        return writer.flush(5)

    pid, exit_code = in_forked_child(child)
    assert exit_code == 0
    lines = done.read_text().splitlines()
    assert lines == [f"{os.getpid()}:1", f"{pid}:1"]


def test_a_child_forked_during_a_writer_lookup_can_look_one_up(writer_module):
    def child():
        writer = writer_module.writer_for("db-forked-mid-lookup", lambda rows: None)
        writer.put({"n": "child"})
        return writer.flush(5)

    with writer_module._WRITERS_LOCK:  # another thread was looking up a writer at the fork
        _pid, exit_code = in_forked_child(child)
    assert exit_code == 0
