"""Routing a message to a crew: pt-BR normalisation, rules, the real offline embedder, the LLM
classifier as a last resort, bad messages, and decisions cached in the real Redis."""

import json
import logging

import pytest
from conftest import load_services

load_services("mcp_connectors")
load_services("mcp_crew_engine")
from mcp_connectors_services import embeddings  # after load_services, which makes them
from mcp_crew_engine_services import routing, routing_lexicon

STORE_CREWS = (
    {
        "code": "vendas",
        "purpose": "Dúvidas sobre produtos: preço, tamanhos, cores e promoções.",
        "examples": ["Quanto custa o tênis branco?"],
    },
    {
        "code": "pedidos",
        "purpose": "Pedidos já feitos: rastreio, prazo de entrega e frete.",
        "examples": ["Onde está meu pedido?"],
    },
    {
        "code": "trocas",
        "purpose": "Trocas, devoluções e reembolso de produtos com defeito.",
        "examples": ["Quero devolver a blusa"],
    },
    {
        "code": "agendamento",
        "purpose": "Agendar ou remarcar horário de prova de roupa na loja.",
        "examples": ["Quero marcar um horário"],
        "service": "appointments",
        "hours": "open",
    },
)
# English, where the offline model is at home: similarity can decide with no shared keyword.
DESK_CREWS = (
    {
        "code": "billing",
        "purpose": "Invoices, payments and refunds of a customer account",
        "examples": ["Why was my card charged twice?"],
    },
    {
        "code": "shipping",
        "purpose": "Delivery of orders: tracking, couriers, delays",
        "examples": ["When will my package arrive?"],
    },
    {
        "code": "jobs",
        "purpose": "Job applications and careers at the company",
        "examples": ["Are you hiring in Lisbon?"],
    },
)
ALWAYS_UNSURE = routing.RouterSettings(rules_min_score=1000.0, unsure_margin=1000.0)


@pytest.fixture(scope="module")
def embedder():
    return embeddings.OnnxMiniLMEmbedder()


@pytest.fixture(scope="module")
def store_router(embedder):
    return routing.Router(STORE_CREWS, embedder)


class RecordingClassifier:
    """An LLM classifier stand-in at the edge: answers what it is told, records each call."""

    def __init__(self, answer=None, error=None):
        self.answer, self.error, self.calls = answer, error, []

    def __call__(self, text, candidates):
        self.calls.append((text, candidates))
        if self.error:
            raise self.error
        return self.answer


def route(router, text, **request):
    return router.route(routing.RoutingRequest(text, **request))


# -- normalisation ---------------------------------------------------------------------------


def test_plain_text_folds_case_accents_and_punctuation():
    assert routing.plain_text("  Devolução,  JÁ!? ") == "devolucao ja"
    assert routing.plain_text("Ação—PROMOÇÃO\n\tçà") == "acao promocao ca"


def test_stems_join_inflections_of_one_word():
    assert routing.stem("devolucoes") == routing.stem("devolucao")
    assert routing.stem("trocar") == routing.stem("trocas") == routing.stem("troca")
    assert routing.stem("pedidos") == routing.stem("pedido") == "pedid"  # not the verb "pedir"
    assert routing.stem("comprado") == routing.stem("comprar")


def test_terms_drop_function_words_numbers_and_spell_out_chat():
    assert routing.terms("vcs tem cupom do pedido 1234?") == [
        ("cupom", "#promocao"),  # a lexicon concept
        ("pedido", "pedid"),
    ]
    assert routing.terms("Bom dia, obrigado! Hello") == [(routing.COURTESY, routing.COURTESY)] * 3


def test_term_matches_prefix_families_and_one_typo_but_not_short_words():
    def match(first, second):
        return routing.term_match((first, routing.stem(first)), (second, routing.stem(second)))

    assert match("devolucao", "devolucoes") == 1.0
    assert 0.7 < match("rastreamento", "rastreio") < 1.0
    assert match("tenis", "tneis") == routing.TYPO_MATCH
    assert match("cor", "dor") == 0.0  # too short for a typo
    assert match("tamanho", "amanha") == 0.0


# -- lexicon ---------------------------------------------------------------------------------


def concepts(text):
    return [stem for _word, stem in routing.terms(text)]


def test_lexicon_reads_synonyms_families_phrases_and_sizes_as_one_concept():
    refund = ["#reembolso"]
    assert concepts("estorno") == concepts("Reembolsado") == refund
    assert concepts("quero meu dinheiro de volta") == concepts("dinheiro volta") == refund
    assert concepts("vcs tem no 37?") == concepts("nº 42") == concepts("tamanho GG") == ["#tamanho"]
    assert concepts("numeração") == ["#tamanho"]
    assert concepts("vou entrar com um processo") == ["#ameaca_legal"]
    assert concepts("Me passa pra um atendente") == ["#pessoa"]
    # a lone word with other senses stays a word: a procedure, a mention, a chat "p"
    assert concepts("processo de troca") == ["process", "troc"]
    assert concepts("a atendente disse") == ["atendent", "diss"]
    assert concepts("manda p mim") == ["mand"]


def test_lexicon_entries_are_unambiguous_and_never_a_function_word_alone():
    phrases = [phrase for found in routing.LEXICON_WORDS.values() for phrase in found]
    phrases += [phrase for _first, phrase in routing.LEXICON_FAMILIES]
    written = [phrase.tokens for phrase in phrases]
    assert len(written) == len(set(written))
    assert not [
        tokens for tokens in written if len(tokens) == 1 and tokens[0][0] in routing.STOPWORDS
    ]
    weights = {routing_lexicon.STRONG, routing_lexicon.NORMAL, routing_lexicon.WEAK}
    assert set(routing.CONCEPT_WEIGHTS.values()) <= weights


def test_concepts_match_themselves_or_a_typo_of_their_words_never_a_prefix():
    def match(first, second):
        return routing.term_match(routing.terms(first)[0], routing.terms(second)[0])

    assert match("estorno", "reembolso") == match("entregador", "frete") == 1.0
    assert match("reembolço", "reembolso") == routing.TYPO_MATCH
    assert match("atendente", "atendimento personalizado") == 0.0  # "atend" is no common subject
    assert match("estoque", "estorno") == 0.0


# -- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("crew", "message"),
    [
        ({"code": "Vendas", "purpose": "x"}, "crew code 'Vendas' is invalid"),
        ({"code": "vendas"}, "nothing to route on"),
        ({"code": "vendas", "purpose": "?!", "keywords": " , "}, "nothing to route on"),
        ({"code": "vendas", "purpose": "x", "hours": "night"}, "hours must be one of"),
        ({"code": "vendas", "purpose": "x", "channels": ["Whats App"]}, "invalid channel"),
        ({"code": "vendas", "purpose": "x", "keywords": [1, 2]}, "keywords must be a list"),
        ({"code": "vendas", "purpose": ["x"]}, "purpose must be a text"),
        ("vendas", "a crew must be a mapping"),
    ],
)
def test_bad_crew_data_is_refused_with_its_reason(crew, message):
    with pytest.raises(routing.RoutingConfigError, match=message):
        routing.CrewRoute.from_dict(crew)


def test_description_reads_as_purpose_and_codes_must_be_unique():
    crew = routing.CrewRoute.from_dict({"code": "vendas", "description": "Preços  e\ncores"})
    assert crew.purpose == "Preços e cores"
    with pytest.raises(routing.RoutingConfigError, match="unique"):
        routing.Router([crew, crew])


def test_bad_settings_and_requests_are_refused():
    with pytest.raises(routing.RoutingConfigError, match="unsure_margin"):
        routing.RouterSettings(unsure_margin=-1)
    with pytest.raises(routing.RoutingConfigError, match="when_unsure"):
        routing.RouterSettings(when_unsure="guess")
    with pytest.raises(TypeError, match="service codes"):
        routing.RoutingRequest("oi", enabled_services="appointments")
    with pytest.raises(TypeError, match="channel"):
        routing.RoutingRequest("oi", channel=7)


# -- rules -----------------------------------------------------------------------------------


def test_keywords_decide_without_embedder_despite_accents_and_typos():
    router = routing.Router(STORE_CREWS)
    decision = route(router, "qro devoluçao do tneis q veio c defeito", channel="WhatsApp")
    assert (decision.crew, decision.stage, decision.unsure) == ("trocas", "rules", False)
    assert "devolucao" in decision.reason and "defeito" in decision.reason


def test_rules_decide_before_the_embedder_is_asked(store_router):
    classifier = RecordingClassifier(answer="vendas")
    router = routing.Router(STORE_CREWS, store_router.embedder, classifier)
    decision = route(router, "Qual o prazo de entrega e o rastreio do meu pedido?")
    assert (decision.crew, decision.stage) == ("pedidos", "rules")
    assert decision.candidates[0][0] == "pedidos"
    assert classifier.calls == []


def test_keywords_of_several_words_count_when_all_are_there():
    crews = [
        {"code": "fidelidade", "purpose": "Vantagens", "keywords": "clube de pontos, brindes"},
        {"code": "vendas", "purpose": "Preços e pontos de venda"},
    ]
    decision = route(routing.Router(crews), "como entro no clube de pontos?")
    assert (decision.crew, decision.stage) == ("fidelidade", "rules")
    assert "'clube de pontos'" in decision.reason


def test_a_greeting_alone_goes_to_the_crew_that_greets():
    crews = [*STORE_CREWS, {"code": "info", "purpose": "Saudações e horário", "examples": ["Oi"]}]
    router = routing.Router(crews)
    assert route(router, "Boa tarde, tudo bem?").crew == "info"
    assert route(router, "Obrigado pela ajuda!").crew == "info"  # thanks are the point here
    # before a question it is politeness: the question decides, even one no crew knows
    assert route(router, "Bom dia! Quero trocar a blusa").crew == "trocas"
    assert route(router, "Bom dia, vcs tem sandália rasteira?").crew is None


def test_synonyms_reach_a_crew_that_words_the_subject_otherwise():
    router = routing.Router(STORE_CREWS)
    # neither word is in the crew's hints ("reembolso de produtos com defeito")
    decision = route(router, "Quero o estorno, veio danificado")
    assert (decision.crew, decision.stage, decision.unsure) == ("trocas", "rules", False)
    assert "estorno" in decision.reason and "danificado" in decision.reason
    assert route(router, "a rasteira vem no 37?").crew == "vendas"  # "tamanhos"


def test_a_legal_threat_or_asking_for_a_person_outweighs_the_topic():
    crews = [
        *STORE_CREWS,
        {"code": "pessoas", "purpose": "Reclamação grave, ameaça de Procon, falar com atendente"},
    ]
    router = routing.Router(crews)
    threat = route(router, "Vou entrar com processo se não devolverem meu dinheiro")
    assert (threat.crew, threat.stage) == ("pessoas", "rules")
    assert route(router, "Quero trocar a blusa, me passa pra um atendente").crew == "pessoas"
    # naming an attendant is not asking for one
    assert route(router, "A atendente disse que eu podia trocar a blusa").crew == "trocas"


def test_words_that_qualify_any_topic_weigh_less_than_the_topic():
    router = routing.Router(STORE_CREWS)
    assert route(router, "Quanto tempo demora o estorno?").crew == "trocas"  # not "prazo"
    assert route(router, "Qual o prazo?").crew == "pedidos"


def test_a_subject_counts_once_however_often_it_is_worded():
    router = routing.Router(STORE_CREWS)
    once, thrice = route(router, "prazo"), route(router, "quanto tempo demora, qual o prazo?")
    assert once.crew == thrice.crew == "pedidos"
    assert once.score == thrice.score


def test_channels_restrict_crews():
    crews = [
        *STORE_CREWS,
        {"code": "interno", "purpose": "Pedidos internos da equipe", "channels": ["internal"]},
    ]
    router = routing.Router(crews)
    assert route(router, "pedidos internos da equipe", channel="whatsapp").crew != "interno"
    only = routing.Router([crews[-1], {**STORE_CREWS[0], "channels": ["whatsapp"]}])
    decision = route(only, "quanto custa o tênis?", channel="internal")
    assert (decision.crew, decision.stage) == ("interno", "rules")
    assert "only crew" in decision.reason
    nobody = route(only, "oi", channel="email")
    assert nobody.handoff and "no active crew serves the channel 'email'" in nobody.reason


def test_opening_hours_and_services_hold_a_crew_back_with_a_handoff(store_router):
    text = "Quero remarcar meu horário de prova na loja"
    assert route(store_router, text, is_open=None).crew == "agendamento"
    assert route(store_router, text, is_open=True, enabled_services={"appointments"}).crew == (
        "agendamento"
    )
    closed = route(store_router, text, is_open=False)
    assert closed.handoff and closed.stage == "rules"
    assert "the tenant is closed" in closed.reason and "'agendamento'" in closed.reason
    off = route(store_router, text, enabled_services={"orders"})
    assert off.handoff and "service 'appointments', which is not enabled" in off.reason
    # other crews still work while it is held back
    assert route(store_router, "Quero trocar a blusa", is_open=False).crew == "trocas"


def test_inactive_or_unavailable_crews_leave_a_handoff():
    inactive = [{**crew, "active": False} for crew in STORE_CREWS]
    assert route(routing.Router(inactive), "quero trocar").handoff
    only_appointments = routing.Router([STORE_CREWS[3], {**STORE_CREWS[3], "code": "outra"}])
    decision = route(only_appointments, "marcar horário", is_open=False)
    assert decision.handoff and "no crew is available" in decision.reason


# -- similarity (the real offline embedder) --------------------------------------------------


def test_similarity_decides_when_no_keyword_is_shared(embedder):
    router = routing.Router(DESK_CREWS, embedder)
    billed = route(router, "I was billed two times for the same purchase")
    assert (billed.crew, billed.stage) == ("billing", "similarity")
    lost = route(router, "my parcel got lost by the postman")
    assert (lost.crew, lost.stage) == ("shipping", "similarity")
    assert lost.candidates[0][0] == "shipping" and len(lost.candidates) == 3


def test_nothing_fits_is_a_handoff(embedder, store_router):
    decision = route(store_router, "asdfgh qwerty zxcv")
    assert decision.handoff and decision.stage == "similarity"
    assert "no crew fits" in decision.reason
    without_embedder = route(routing.Router(STORE_CREWS), "asdfgh qwerty zxcv")
    assert without_embedder.handoff and "no crew fits" in without_embedder.reason


# -- the LLM classifier ----------------------------------------------------------------------


def test_unsure_asks_the_classifier_with_the_available_crews_best_first(embedder):
    classifier = RecordingClassifier(answer="trocas")
    router = routing.Router(STORE_CREWS, embedder, classifier, ALWAYS_UNSURE)
    decision = route(router, "A blusa veio manchada", enabled_services={"orders"})
    assert (decision.crew, decision.stage, decision.unsure) == ("trocas", "llm", False)
    ((text, candidates),) = classifier.calls
    assert text == "A blusa veio manchada"
    codes = [candidate["code"] for candidate in candidates]
    assert sorted(codes) == ["pedidos", "trocas", "vendas"]  # not the held-back crew
    assert codes[0] == decision.candidates[0][0]
    assert candidates[0].keys() == {"code", "purpose", "examples"}


def test_classifier_is_asked_after_unsure_keywords_when_there_is_no_embedder():
    classifier = RecordingClassifier(answer="vendas")
    router = routing.Router(STORE_CREWS, None, classifier, ALWAYS_UNSURE)
    assert route(router, "quanto custa?").stage == "llm"
    assert len(classifier.calls) == 1


def test_classifier_finding_no_crew_is_a_handoff(embedder):
    router = routing.Router(STORE_CREWS, embedder, RecordingClassifier(None), ALWAYS_UNSURE)
    decision = route(router, "me conta uma piada")
    assert decision.handoff and decision.stage == "llm"
    assert "found no crew" in decision.reason


def test_classifier_failure_or_stray_answer_falls_back_to_the_best_guess(embedder, caplog):
    secret = "sk-live-123 at https://llm.internal"
    failing = RecordingClassifier(error=RuntimeError(secret))
    router = routing.Router(STORE_CREWS, embedder, failing, ALWAYS_UNSURE)
    with caplog.at_level(logging.WARNING):
        decision = route(router, "Quero trocar a blusa")
    assert (decision.crew, decision.stage, decision.unsure) == ("trocas", "similarity", True)
    assert "the LLM classifier failed (RuntimeError)" in decision.reason
    assert secret not in caplog.text and secret not in decision.reason
    stray = routing.Router(STORE_CREWS, embedder, RecordingClassifier("hacker"), ALWAYS_UNSURE)
    decision = route(stray, "Quero trocar a blusa")
    assert decision.crew == "trocas" and "was not offered" in decision.reason


def test_unsure_without_classifier_can_hand_off(embedder):
    settings = routing.RouterSettings(
        rules_min_score=1000.0, unsure_margin=1000.0, when_unsure="handoff"
    )
    decision = route(routing.Router(STORE_CREWS, embedder, settings=settings), "a blusa")
    assert decision.handoff and decision.unsure and "unsure" in decision.reason


# -- bad messages ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "the message is empty"),
        ("   \n\t", "the message is empty"),
        (None, "the message is empty"),
        ("🙂🙂 ?!", "no words"),
        (b"\xff\xfe\x00\x81binary", "binary data (10 bytes)"),
        ("\x00\x01\x02\x03 oi", "binary data (control characters)"),
        (42, "is a int, not text"),
    ],
)
def test_unroutable_messages_are_handoffs_that_say_why(store_router, text, reason):
    decision = route(store_router, text)
    assert decision.handoff and decision.stage == "rules" and reason in decision.reason


def test_utf8_bytes_are_text_and_huge_messages_route_on_their_head(store_router):
    assert route(store_router, "Devolução da blusa".encode()).crew == "trocas"
    huge = "Quero trocar a blusa com defeito. " + "bla " * 250_000
    decision = route(store_router, huge)
    assert decision.crew == "trocas"
    assert f"first {routing.MAX_ROUTED_CHARS} of {len(huge)} characters" in decision.reason


# -- cache -----------------------------------------------------------------------------------


def test_cache_id_follows_the_normal_form_and_the_routing_context(store_router, services):
    from mcp_integrator_services import keys

    def cache_id(text, router=store_router, **request):
        return router.cache_id(routing.RoutingRequest(text, **request))

    base = cache_id("Quero trocar a blusa", channel="whatsapp")
    assert keys.resource_part(base) == base  # a readable key part: used as it is
    assert cache_id("  quero TROCÁR a blusa!!", channel="WhatsApp") == base
    assert cache_id("Quero trocar a saia", channel="whatsapp") != base
    assert cache_id("Quero trocar a blusa", channel="email") != base
    assert cache_id("Quero trocar a blusa", channel="whatsapp", is_open=False) != base
    assert cache_id("Quero trocar a blusa", channel="whatsapp", enabled_services=[]) != base
    edited = routing.Router(
        [{**STORE_CREWS[0], "purpose": "Preços"}, *STORE_CREWS[1:]], store_router.embedder
    )
    assert cache_id("Quero trocar a blusa", edited, channel="whatsapp") != base
    assert cache_id(b"\xff\xfe") == cache_id(b"\xff\xfe") != cache_id("")


def test_decisions_round_trip_through_json_and_the_transient_cache(store_router, cache):
    request = routing.RoutingRequest("A blusa veio com defeito", channel="whatsapp")
    decision = store_router.route(request)
    restored = routing.RoutingDecision.from_dict(json.loads(json.dumps(decision.as_dict())))
    assert restored.as_dict() == decision.as_dict()
    key = cache.key(1, "mcp_crew_engine", "routing", store_router.cache_id(request), "decision")
    computed = []

    def compute():
        computed.append(1)
        return store_router.route(request).as_dict()

    first = cache.get_or_compute(key, compute, "transient")
    second = cache.get_or_compute(key, compute, "transient")
    assert first == second == decision.as_dict() and len(computed) == 1
    assert routing.RoutingDecision.from_dict(second).crew == "trocas"
