"""The crew engine's request handling: what is kept of a message, dedupe keys, the routing
and answer caches over the integrator's real Cache, and the LLM crew classifier."""

import pytest
from conftest import load_services, load_test_double

load_services("mcp_crew_engine")
from mcp_crew_engine_services import agent_loop, crew_requests, routing  # after load_services

fake = load_test_double("mcp_crew_engine", "fake_llm_server")

CREWS = [
    {"code": "vendas", "purpose": "preço, tamanhos e estoque de produtos"},
    {"code": "pedidos", "purpose": "status e rastreio de pedidos já feitos"},
]


@pytest.mark.parametrize(
    ("raw", "stored", "problem"),
    [
        ("Oi, tem no M?", "Oi, tem no M?", ""),
        ("   ", "   ", "the message is empty"),
        ("", "", "the message is empty"),
        (None, "", "the message is empty"),
        ("🙂🙂", "🙂🙂", "the message has no words (only symbols or emoji)"),
        ("Olá".encode(), "Olá", ""),
        (b"\x00\xff\xfe\x01", "[binary data, 4 bytes]", "binary"),
        ("\x00\x01\x02\x03abc", "[binary data, 7 characters]", "binary"),
    ],
)
def test_checked_request(raw, stored, problem):
    text, found = crew_requests.checked_request(raw)
    assert text == stored
    assert (problem in found) if problem else found == ""


def test_huge_request_is_kept_cut_and_still_answerable():
    text, problem = crew_requests.checked_request("tem no M? " * 10_000)
    assert problem == ""
    assert len(text) < 20_100 and text.endswith("more characters]")


def test_dedupe_key_needs_a_conversation_and_a_message():
    key = crew_requests.dedupe_key(7, "whatsapp", "c1", "m1")
    assert key == crew_requests.dedupe_key(7, "whatsapp", "c1", "m1")
    others = {
        crew_requests.dedupe_key(8, "whatsapp", "c1", "m1"),
        crew_requests.dedupe_key(7, "instagram", "c1", "m1"),
        crew_requests.dedupe_key(7, "whatsapp", "c2", "m1"),
        crew_requests.dedupe_key(7, "whatsapp", "c1", "m2"),
    }
    assert len(others) == 4 and key not in others
    assert crew_requests.dedupe_key(7, "whatsapp", None, "m1") is None
    assert crew_requests.dedupe_key(7, "whatsapp", "c1", "") is None


def test_answer_cache_is_per_tenant(make_cache):
    cache = make_cache()
    first, second = crew_requests.AnswerCache(cache, 1), crew_requests.AnswerCache(cache, 2)
    digest = "ab" * 32
    assert first.get(digest) is None
    first.set(digest, {"content": "oi"})
    assert first.get(digest) == {"content": "oi"}
    assert second.get(digest) is None
    cache.invalidate(1, crew_requests.MODULE, crew_requests.ANSWER_RESOURCE)
    assert first.get(digest) is None


def test_answer_cache_misses_when_redis_is_down(make_cache, closed_port):
    down = crew_requests.AnswerCache(make_cache(url=f"redis://127.0.0.1:{closed_port}/0"), 1)
    down.set("cd" * 32, {"content": "oi"})
    assert down.get("cd" * 32) is None


def test_routing_cache_reuses_decisions_of_the_same_normal_form(make_cache):
    router = routing.Router(CREWS)
    routes = crew_requests.RoutingCache(make_cache(), 1)
    decision, cached = routes.route(router, routing.RoutingRequest("Qual o preço do tênis?"))
    assert (decision.crew, cached) == ("vendas", False)
    again, cached = routes.route(router, routing.RoutingRequest("qual o PRECO do tenis"))
    assert (again, cached) == (decision, True)
    other_tenant, cached = crew_requests.RoutingCache(routes.cache, 2).route(
        router, routing.RoutingRequest("qual o preco do tenis")
    )
    assert cached is False and other_tenant == decision


def test_routing_cache_without_redis_routes_every_time():
    router = routing.Router(CREWS)
    decision, cached = crew_requests.RoutingCache(None, 1).route(
        router, routing.RoutingRequest("onde está meu pedido?")
    )
    assert (decision.crew, cached) == ("pedidos", False)


def test_llm_classifier_over_http():
    with fake.FakeLLMServer() as server:
        chat = agent_loop.LitellmChat(api_base=server.api_base, api_key="sk-classifier")
        classifier = crew_requests.LlmCrewClassifier(chat, "openai/gpt-4o-mini")
        candidates = [{"code": crew["code"], "purpose": crew["purpose"]} for crew in CREWS]
        server.script(fake.answer(" `Pedidos`. "), fake.answer("none"))
        assert classifier("cadê minha encomenda", candidates) == "pedidos"
        assert classifier("qual a capital da França", candidates) is None
        prompt = server.chat_requests[0]["messages"][0]["content"]
        assert "- vendas: preço" in prompt and "- pedidos:" in prompt
    spent = classifier.spent()
    assert spent["llm_calls"] == 2 and spent["tokens_in"] == 200 and spent["cost"] > 0


def test_router_with_classifier_shares_vectors_and_changes_fingerprint():
    router = routing.Router(CREWS)
    classified = router.with_classifier(lambda text, candidates: "pedidos")
    assert classified.fingerprint != router.fingerprint
    assert classified._vocabularies is router._vocabularies
    assert router.llm_classifier is None
    request = routing.RoutingRequest("oi")
    assert classified.cache_id(request) != router.cache_id(request)
