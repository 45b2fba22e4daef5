"""Conversation context on the real Redis: turns, dedupe, budgets, rolling summary, tool results,
tenants kept apart, and Redis down (closed port, and a proxy that dies mid-run)."""

import logging
import socket
import threading
from datetime import datetime, timezone

import pytest
import redis
from conftest import load_services

load_services("mcp_integrator")
load_services("mcp_crew_engine")

from mcp_crew_engine_services import conversation_context
from mcp_crew_engine_services.conversation_context import Appended
from mcp_integrator_services import cache as cache_service
from mcp_integrator_services.tool_calls import arguments_json


class RedisProxy:
    """A TCP relay on 127.0.0.1 in front of the real Redis; ``stop()`` is Redis dying mid-run."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _address = self.listener.accept()
            except OSError:
                return  # listener closed
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=2)
            with self._lock:
                self.sockets += [client, upstream]
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    @staticmethod
    def _pump(source, target):
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, target):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self):
        # shutdown wakes the thread blocked in accept(); close alone would leave it listening
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        with self._lock:
            for sock in self.sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()


@pytest.fixture
def redis_proxy(redis_url):
    port = redis.connection.parse_url(redis_url).get("port", 6379)
    proxy = RedisProxy(port)
    yield proxy
    proxy.stop()


def store_for(cache, **options):
    return conversation_context.ConversationStore(cache, **options)


def contents(context):
    return [turn.content for turn in context.turns]


def test_turns_round_trip_in_order(cache):
    conversation = store_for(cache).conversation(7, "chatwoot-12")
    sent = datetime(2025, 3, 10, 12, 30, tzinfo=timezone.utc)
    assert conversation.append("user", "Oi, tem o tênis 42?", message_id=101, at=sent) == (
        Appended.STORED
    )
    assert conversation.append("assistant", "Temos sim!", message_id="r-1") == Appended.STORED
    context = conversation.context()
    assert context.degraded is False and context.summary == "" and context.omitted == 0
    first, second = context.turns
    assert (first.message_id, first.role, first.content, first.at) == (
        "101",
        "user",
        "Oi, tem o tênis 42?",
        "2025-03-10T12:30:00+00:00",
    )
    assert (second.role, second.content) == ("assistant", "Temos sim!")
    assert context.as_messages() == [
        {"role": "user", "content": "Oi, tem o tênis 42?"},
        {"role": "assistant", "content": "Temos sim!"},
    ]


def test_the_same_message_id_is_stored_once(cache):
    conversation = store_for(cache).conversation(7, "chatwoot-12")
    assert conversation.append("user", "Olá", message_id="m-1") == Appended.STORED
    assert conversation.append("user", "Olá", message_id="m-1") == Appended.DUPLICATE
    assert contents(conversation.context()) == ["Olá"]


def test_concurrent_deliveries_of_one_message_store_it_once(cache):
    conversation = store_for(cache).conversation(7, "chatwoot-12")
    start = threading.Barrier(8)
    results = []

    def deliver():
        start.wait()
        results.append(conversation.append("user", "Quero trocar", message_id="webhook-9"))

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [Appended.DUPLICATE] * 7 + [Appended.STORED]
    assert contents(conversation.context()) == ["Quero trocar"]


def test_turns_without_message_id_are_all_kept(cache):
    conversation = store_for(cache).conversation(7, 12)
    conversation.append("assistant", "Um momento")
    conversation.append("assistant", "Um momento")
    assert contents(conversation.context()) == ["Um momento", "Um momento"]


def test_tenants_never_see_each_other(cache, raw, namespace):
    store = store_for(cache)
    mine, theirs = store.conversation(1, "conv-5"), store.conversation(2, "conv-5")
    mine.append("user", "pedido 1234 da conta 1", message_id="m-1")
    assert theirs.context().turns == ()
    assert theirs.append("user", "outra conta", message_id="m-1") == Appended.STORED
    assert contents(mine.context()) == ["pedido 1234 da conta 1"]
    assert contents(theirs.context()) == ["outra conta"]
    tenants = {key.decode().split(":")[1] for key in raw.scan_iter(match=f"{namespace}:*")}
    assert tenants == {"account_1", "account_2"}


def test_a_reference_that_is_not_a_plain_id_is_hashed_into_the_key(cache, raw, namespace):
    conversation = store_for(cache).conversation(3, "whatsapp:+55 11 99999-0000")
    conversation.append("user", "oi", message_id="m-1")
    assert contents(conversation.context()) == ["oi"]
    stored = [key.decode() for key in raw.scan_iter(match=f"{namespace}:*")]
    assert stored and all("99999" not in key for key in stored)


def test_last_and_budget_pick_the_newest_contiguous_turns(cache):
    conversation = store_for(cache).conversation(7, "c")
    for text in ("aaaa", "bb", "cccccc", "dd", "e"):
        conversation.append("user", text)
    assert contents(conversation.context(last=2)) == ["dd", "e"]
    context = conversation.context(budget=9)
    assert contents(context) == ["cccccc", "dd", "e"]
    assert context.omitted == 2
    # a turn that does not fit ends the window: no older turn jumps over it
    assert contents(conversation.context(budget=8)) == ["dd", "e"]
    assert conversation.context(budget=0).turns == ()


def test_a_token_counter_makes_the_budget_tokens(cache):
    words = conversation_context.ConversationStore(cache, measure=lambda text: len(text.split()))
    conversation = words.conversation(7, "c")
    conversation.append("user", "one two three")
    conversation.append("user", "four five")
    assert contents(conversation.context(budget=2)) == ["four five"]
    assert contents(conversation.context(budget=5)) == ["one two three", "four five"]


def test_old_turns_are_folded_into_a_rolling_summary(cache):
    calls = []

    def summarise(previous, turns):
        calls.append((previous, [turn.content for turn in turns]))
        return f"{previous}+{len(turns)}"

    conversation = store_for(cache, summariser=summarise, max_turns=4).conversation(7, "c")
    for number in range(5):
        conversation.append("user", f"m{number}")
    # five live turns outgrow four: the oldest three fold, half of the limit stays verbatim
    assert calls == [("", ["m0", "m1", "m2"])]
    context = conversation.context()
    assert context.summary == "+3"
    assert contents(context) == ["m3", "m4"]
    for number in range(5, 8):
        conversation.append("user", f"m{number}")
    # the next fold starts from the previous summary: the summary rolls
    assert calls[1] == ("+3", ["m3", "m4", "m5"])
    context = conversation.context()
    assert (context.summary, contents(context)) == ("+3+3", ["m6", "m7"])
    assert context.as_messages()[0] == {
        "role": "system",
        "content": "Earlier in this conversation:\n+3+3",
    }


def test_a_long_conversation_stays_bounded(cache, raw):
    store = store_for(cache, max_turns=4)
    conversation = store.conversation(7, "c")
    for number in range(60):
        conversation.append("user", f"message number {number}")
    assert raw.llen(conversation.log_key.redis_key) <= store.log_limit
    context = conversation.context()
    assert len(context.turns) <= 4
    assert contents(context)[-1] == "message number 59"
    assert "message number 58" in contents(context) or "message number 58" in context.summary


def test_size_limit_folds_even_few_turns(cache):
    conversation = store_for(cache, max_size=20).conversation(7, "c")
    conversation.append("user", "x" * 15)
    conversation.append("user", "y" * 15)
    context = conversation.context()
    assert contents(context) == ["y" * 15]
    assert context.summary == "user: " + "x" * 15


def test_the_default_summariser_is_deterministic_and_bounded():
    turn = conversation_context.Turn
    summarise = conversation_context.TruncatingSummariser(max_chars=60, line_chars=20)
    turns = [
        turn("1", "user", "Quero   trocar\n a blusa que ficou pequena", "t"),
        turn("2", "assistant", "Claro!", "t"),
    ]
    first = summarise("", turns)
    assert first == "user: Quero trocar a blus…\nassistant: Claro!"
    assert summarise("", turns) == first
    rolled = summarise(first, turns)
    assert len(rolled) == 60 and rolled.startswith("…") and rolled.endswith("assistant: Claro!")
    with pytest.raises(ValueError):
        conversation_context.TruncatingSummariser(max_chars=10, line_chars=20)


def test_a_failing_summariser_keeps_the_turns_verbatim(cache, caplog):
    def broken(previous, turns):
        raise TimeoutError("summary model did not answer")

    conversation = store_for(cache, summariser=broken, max_turns=2).conversation(7, "c")
    with caplog.at_level(logging.WARNING):
        results = [conversation.append("user", f"m{n}") for n in range(3)]
    assert results == [Appended.STORED] * 3
    context = conversation.context()
    assert context.summary == "" and contents(context) == ["m0", "m1", "m2"]
    assert "TimeoutError" in caplog.text and "m0" not in caplog.text


def test_huge_content_is_cut_and_bad_turns_are_refused(cache):
    conversation = store_for(cache, max_turn_chars=100).conversation(7, "c")
    conversation.append("user", "z" * 10_000)
    (stored,) = conversation.context().turns
    assert len(stored.content) == 100 and stored.content.endswith("…")
    with pytest.raises(ValueError, match="unknown role"):
        conversation.append("tool", "x")
    with pytest.raises(TypeError, match="bytes"):
        conversation.append("user", b"\x00\xff")
    with pytest.raises(ValueError, match="reference"):
        store_for(cache).conversation(7, "")


def test_history_expiry_slides_on_reads_and_writes(cache, raw):
    conversation = store_for(cache).conversation(7, "c")
    conversation.append("user", "oi", message_id="m-1")
    session_ms = cache.settings.ttl_session * 1000
    for key in (conversation.log_key, conversation.seen_key):
        assert raw.pttl(key.redis_key) > session_ms - 5000
    raw.pexpire(conversation.log_key.redis_key, 60_000)
    conversation.context()
    assert raw.pttl(conversation.log_key.redis_key) > session_ms - 5000


def test_tool_results_are_kept_per_conversation_by_tool_and_arguments(cache):
    store = store_for(cache)
    conversation, other = store.conversation(7, "c-1"), store.conversation(7, "c-2")
    calls = []

    def stock(sku):
        def call():
            calls.append(sku)
            return {"sku": sku, "qty": 3}

        return call

    first = arguments_json({"sku": "TN-42", "warehouse": "main"})
    same = arguments_json({"warehouse": "main", "sku": "TN-42"})
    assert conversation.tool_result("stock", first, stock("TN-42")) == (
        {"sku": "TN-42", "qty": 3},
        False,
    )
    assert conversation.tool_result("stock", same, stock("TN-42")) == (
        {"sku": "TN-42", "qty": 3},
        True,
    )
    assert conversation.tool_result("price", same, stock("TN-42"))[1] is False
    assert other.tool_result("stock", first, stock("TN-42"))[1] is False
    assert calls == ["TN-42"] * 3


def test_an_uncached_tool_result_is_not_kept(cache):
    conversation = store_for(cache).conversation(7, "c")
    failure = {"isError": True, "content": [{"type": "text", "text": "timeout"}]}
    arguments = arguments_json({"q": 1})
    for _ in range(2):
        result, cached = conversation.tool_result(
            "search", arguments, lambda: cache_service.Uncached(failure)
        )
        assert (result, cached) == (failure, False)


def test_clear_forgets_turns_ids_and_tool_results(cache, raw, namespace):
    store = store_for(cache, max_turns=2)
    conversation = store.conversation(7, "c")
    kept = store.conversation(7, "other")
    kept.append("user", "fica", message_id="m-1")
    for number in range(4):
        conversation.append("user", f"m{number}", message_id=f"m-{number}")
    arguments = arguments_json({"q": 1})
    conversation.tool_result("search", arguments, lambda: ["a"])
    conversation.clear()
    assert conversation.context() == conversation_context.ConversationContext("", ())
    assert conversation.tool_result("search", arguments, lambda: ["b"]) == (["b"], False)
    assert conversation.append("user", "m0", message_id="m-0") == Appended.STORED
    assert contents(kept.context()) == ["fica"]


def test_redis_down_gives_a_degraded_empty_context_and_skips_writes(
    make_cache, closed_port, caplog
):
    cache = make_cache(url=f"redis://127.0.0.1:{closed_port}/0")
    conversation = store_for(cache).conversation(7, "c")
    with caplog.at_level(logging.WARNING):
        assert conversation.append("user", "segredo do cliente", message_id="m-1") == (
            Appended.SKIPPED
        )
        context = conversation.context()
        assert conversation.tool_result("stock", "{}", lambda: {"qty": 1}) == ({"qty": 1}, False)
        conversation.clear()
    assert context == conversation_context.ConversationContext("", (), degraded=True)
    assert "not updated" in caplog.text and "segredo" not in caplog.text


def test_redis_dying_mid_run_degrades_without_raising(make_cache, redis_proxy, caplog):
    cache = make_cache(url=f"redis://127.0.0.1:{redis_proxy.port}/0", socket_timeout=0.5)
    conversation = store_for(cache).conversation(7, "c")
    assert conversation.append("user", "Quero trocar a blusa", message_id="m-1") == (
        Appended.STORED
    )
    assert contents(conversation.context()) == ["Quero trocar a blusa"]
    redis_proxy.stop()
    with caplog.at_level(logging.WARNING):
        assert conversation.context().degraded is True
        assert conversation.append("assistant", "Claro", message_id="r-1") == Appended.SKIPPED
        result = conversation.tool_result("orders", "{}", lambda: {"order": 1})
    assert result == ({"order": 1}, False)
    assert "not updated" in caplog.text


def test_a_turn_skipped_while_redis_was_down_is_stored_when_it_is_back(make_cache, redis_proxy):
    proxied = make_cache(url=f"redis://127.0.0.1:{redis_proxy.port}/0", socket_timeout=0.5)
    direct = make_cache()
    conversation = store_for(proxied).conversation(7, "c")
    conversation.append("user", "primeira", message_id="m-1")
    redis_proxy.stop()
    assert conversation.append("user", "segunda", message_id="m-2") == Appended.SKIPPED
    again = store_for(direct).conversation(7, "c")
    assert again.append("user", "segunda", message_id="m-2") == Appended.STORED
    assert contents(again.context()) == ["primeira", "segunda"]


def test_a_redis_outage_warns_once_a_minute_with_the_count(
    make_cache, closed_port, caplog, monkeypatch
):
    cache = make_cache(url=f"redis://127.0.0.1:{closed_port}/0")
    conversation = store_for(cache).conversation(7, "c")
    now = [1000.0]
    monkeypatch.setattr(conversation_context, "_clock", lambda: now[0])
    with caplog.at_level(logging.WARNING):
        for number in range(5):
            conversation.append("user", f"turno {number}", message_id=f"m-{number}")
        assert caplog.text.count("not updated") == 1, "one line for the outage, not one a turn"
        now[0] += conversation_context.SKIP_WARNING_INTERVAL
        conversation.append("user", "mais um", message_id="m-5")
    warnings = [r.getMessage() for r in caplog.records if "not updated" in r.getMessage()]
    assert len(warnings) == 2
    assert warnings[1].endswith("(4 more since the last warning)")
