"""Answers without an LLM: hours, FAQ and rules, product search, handoff (pt-BR, English)."""

import logging
from datetime import date, datetime, timedelta, timezone

import pytest
from conftest import load_services

load_services("mcp_integrator")
load_services("mcp_crew_engine")

from mcp_crew_engine_services import fallback_answers
from mcp_crew_engine_services.fallback_answers import (
    FallbackAnswerer,
    FaqEntry,
    Schedule,
    Source,
)
from mcp_integrator_services import hours

SAO_PAULO = "America/Sao_Paulo"  # UTC-3 all year
WEEK = {day: [(9.0, 18.0)] for day in range(5)} | {5: [(9.0, 13.0)]}
STORE = Schedule(SAO_PAULO, WEEK)
WEEKLY_PT = "Horário de atendimento: segunda-feira a sexta-feira 09:00–18:00; sábado 09:00–13:00."
FAQ = [
    FaqEntry(
        "Quais formas de pagamento vocês aceitam? Pix, cartão de crédito ou débito?",
        "Aceitamos Pix, cartões de crédito e débito e boleto.",
    ),
    FaqEntry("Qual o endereço da loja?", "Rua das Flores, 123, Centro."),
    FaqEntry("Parcelam em quantas vezes sem juros?", "Parcelamos em até 6x sem juros no cartão."),
    FaqEntry("Qual o prazo de entrega?", "De 3 a 10 dias úteis, conforme a região."),
    FaqEntry("Tem estacionamento?", "Sim, estacionamento conveniado ao lado da loja."),
]
RULES = """
- Trocas em até 30 dias com a nota fiscal e a etiqueta.
* Frete grátis para compras acima de R$ 299.
3. Devolução por arrependimento em até 7 dias após o recebimento, com reembolso integral.
"""


def local(text):
    """A São Paulo wall-clock instant as an aware UTC datetime (2025-03-10 is a Monday)."""
    return datetime.fromisoformat(text).replace(tzinfo=timezone(timedelta(hours=-3)))


def answerer(language="pt_BR", **options):
    options.setdefault("hours_service", hours)
    options.setdefault("schedule", STORE)
    return FallbackAnswerer(language, **options)


# opening hours ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("instant", "first_sentence"),
    [
        ("2025-03-10T14:00", "Estamos abertos agora, até as 18:00."),
        ("2025-03-10T07:30", "No momento estamos fechados. Abrimos hoje às 09:00."),
        ("2025-03-10T18:00", "No momento estamos fechados. Abrimos amanhã às 09:00."),
        ("2025-03-14T20:00", "No momento estamos fechados. Abrimos amanhã às 09:00."),
        ("2025-03-15T13:30", "No momento estamos fechados. Abrimos na segunda-feira às 09:00."),
        ("2025-03-15T10:00", "Estamos abertos agora, até as 13:00."),
    ],
)
def test_hours_answer_in_portuguese(instant, first_sentence):
    answer = answerer().answer("Vocês abrem no sábado?", at=local(instant))
    assert answer.text == f"{first_sentence} {WEEKLY_PT}"
    assert (answer.source, answer.handoff) == (Source.HOURS, False)


def test_hours_answer_in_english():
    answer = answerer("en_US").answer("What are your opening hours?", at=local("2025-03-15T13:30"))
    assert answer.text == (
        "We are closed right now. We open on Monday at 09:00. "
        "Opening hours: Monday to Friday 09:00–18:00; Saturday 09:00–13:00."
    )
    assert answer.source == Source.HOURS


@pytest.mark.parametrize(
    "message",
    [
        "Que horas fecha hoje?",
        "Qual o horário de atendimento?",
        "Oi! Queria saber o horário de vocês",
    ],
)
def test_hours_questions_are_recognised(message):
    assert answerer().answer(message, at=local("2025-03-10T14:00")).source == Source.HOURS


@pytest.mark.parametrize(
    "message", ["Tem horário livre amanhã de tarde?", "pode cancelar meu horário das 15h?"]
)
def test_booking_a_time_slot_is_not_an_hours_question(message):
    assert answerer().answer(message, at=local("2025-03-10T14:00")).source != Source.HOURS


def test_holidays_move_the_next_opening():
    holiday = Schedule(SAO_PAULO, WEEK, holidays=(date(2025, 3, 17),))
    answer = answerer(schedule=holiday).answer("abrem segunda?", at=local("2025-03-15T14:00"))
    assert answer.text.startswith("No momento estamos fechados. Abrimos na terça-feira às 09:00.")


def test_an_opening_a_week_or_more_away_carries_its_date():
    mondays = Schedule(SAO_PAULO, {0: [(9.0, 12.0)]}, yearly_holidays=((3, 17),))
    pt = answerer(schedule=mondays).answer("abrem?", at=local("2025-03-10T13:00"))
    assert "Abrimos na segunda-feira, 24/03 às 09:00." in pt.text
    en = answerer("en", schedule=mondays).answer("open?", at=local("2025-03-10T13:00"))
    assert "We open on Monday, Mar 24 at 09:00." in en.text


def test_an_opening_across_midnight_closes_the_next_day():
    late = Schedule(SAO_PAULO, {4: [(22.0, 24.0)], 5: [(0.0, 2.0)]})
    late_answerer = answerer("en", schedule=late)
    friday = late_answerer.answer("Are you open?", at=local("2025-03-14T23:00"))
    assert friday.text.startswith("We are open now, until tomorrow at 02:00.")
    saturday = late_answerer.answer("Are you open?", at=local("2025-03-15T01:00"))
    assert saturday.text.startswith("We are open now, until 02:00.")


def test_opening_status_reads_the_integrators_hours():
    status = fallback_answers.opening_status(hours, STORE, local("2025-03-14T18:00"))
    assert status == fallback_answers.OpeningStatus(False, opens=(date(2025, 3, 15), 9.0))
    never = Schedule(SAO_PAULO, {0: [(9.0, 12.0)]}, yearly_holidays=((3, 17), (3, 24)))
    # closed for the whole lookahead: no next opening to promise
    assert fallback_answers.opening_status(hours, never, local("2025-03-10T13:00")) == (
        fallback_answers.OpeningStatus(False)
    )


def test_without_hours_an_hours_question_is_handed_off():
    for schedule in (None, Schedule(SAO_PAULO, {})):
        answer = answerer(schedule=schedule).answer("Que horas vocês abrem?")
        assert (answer.source, answer.handoff) == (Source.HANDOFF, True)
    with pytest.raises(ValueError, match="hours service"):
        FallbackAnswerer("pt_BR", schedule=STORE)


# FAQ and rules ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("message", "source", "answer_start"),
    [
        ("Qual o endereço da loja?", Source.FAQ, "Rua das Flores"),
        ("Parcela em quantas vezes sem juros?", Source.FAQ, "Parcelamos em até 6x"),
        ("Aceita cartão de débito?", Source.FAQ, "Aceitamos Pix"),
        ("Qual o prazo de entrega para Porto Alegre?", Source.FAQ, "De 3 a 10 dias"),
        ("Tem estacionamento perto da loja?", Source.FAQ, "Sim, estacionamento"),
        (
            "Me arrependi da compra, posso cancelar e receber o reembolso?",
            Source.RULES,
            "Devolução por arrependimento",
        ),
    ],
)
def test_faq_and_rules_match_by_keywords(message, source, answer_start):
    answer = answerer(faq=FAQ, rules=RULES).answer(message, at=local("2025-03-10T14:00"))
    assert answer.source == source and answer.text.startswith(answer_start)
    assert answer.score >= fallback_answers.MATCH_THRESHOLDS["keyword"]
    assert "keyword" in answer.reason


@pytest.mark.parametrize(
    "message",
    [
        "Preciso da nota fiscal da minha compra",
        "A transportadora disse que entregou mas eu não recebi",
        "Boa tarde, tudo bem?",
    ],
)
def test_a_weak_match_is_not_an_answer(message):
    answer = answerer(faq=FAQ, rules=RULES).answer(message, at=local("2025-03-10T14:00"))
    assert answer.source == Source.HANDOFF


def test_rules_are_one_per_line_without_list_markers():
    assert fallback_answers.split_rules(RULES) == [
        "Trocas em até 30 dias com a nota fiscal e a etiqueta.",
        "Frete grátis para compras acima de R$ 299.",
        "Devolução por arrependimento em até 7 dias após o recebimento, com reembolso integral.",
    ]


def test_the_offline_embedder_matches_paraphrases():
    load_services("mcp_connectors")
    from mcp_connectors_services.embeddings import OnnxMiniLMEmbedder

    embedded = answerer(faq=FAQ, rules=RULES, embedder=OnnxMiniLMEmbedder())
    answer = embedded.answer("Tem estacionamento perto da loja?", at=local("2025-03-10T14:00"))
    assert answer.source == Source.FAQ and answer.text.startswith("Sim, estacionamento")
    assert "embedding" in answer.reason
    # close for a small embedder, but no shared word: not evidence enough
    unrelated = embedded.answer("Vou pagar no boleto amanhã", at=local("2025-03-10T14:00"))
    assert unrelated.source == Source.HANDOFF


class BrokenEmbedder:
    """An embedder whose model cannot load (a passed-in dependency failing)."""

    def embed(self, texts):
        raise RuntimeError("model file missing")


def test_a_failing_embedder_falls_back_to_keywords(caplog):
    with caplog.at_level(logging.WARNING):
        answer = answerer(faq=FAQ, embedder=BrokenEmbedder()).answer("Qual o endereço da loja?")
    assert answer.source == Source.FAQ and "keyword" in answer.reason
    assert "RuntimeError" in caplog.text


# products --------------------------------------------------------------------------------------
CATALOGUE = [
    {"name": "Bota de couro preta", "price": 1299.9, "currency": "BRL", "available": True},
    {"name": "Bota de camurça", "price": 499, "available": False},
    {"name": "Cinto de couro"},
    {"name": "   "},  # a nameless result is never shown
    "not a product",
]


def search_catalogue(text, limit):
    return CATALOGUE[:limit]


def test_product_results_are_formatted_for_the_customer():
    pt = answerer().answer("qual o preço da bota de couro preta", product_search=search_catalogue)
    assert pt.text == (
        "Encontrei estes produtos:\n"
        "- Bota de couro preta: R$ 1.299,90 (em estoque)\n"
        "- Bota de camurça: R$ 499,00 (sem estoque)\n"
        "- Cinto de couro"
    )
    assert (pt.source, pt.handoff, pt.reason) == (
        Source.PRODUCTS,
        False,
        "3 products found by search",
    )
    en = answerer("en_US", currency="USD")
    asked = en.answer("Do you have black boots in stock?", product_search=search_catalogue)
    assert asked.text.splitlines()[1:3] == [
        "- Bota de couro preta: R$ 1,299.90 (in stock)",
        "- Bota de camurça: US$ 499.00 (out of stock)",
    ]


def test_the_search_gets_the_message_and_the_limit():
    seen = []

    def search(text, limit):
        seen.append((text, limit))
        return []

    answerer(product_limit=3).answer("Tem tênis branco no estoque?", product_search=search)
    assert seen == [("Tem tênis branco no estoque?", 3)]


def test_no_product_or_a_failed_search_hands_off(caplog):
    empty = answerer().answer("quanto custa o tênis?", product_search=lambda text, limit: [])
    assert (empty.source, empty.reason) == (Source.HANDOFF, "no product matched the search")

    def timing_out(text, limit):
        raise TimeoutError("catalogue did not answer")

    with caplog.at_level(logging.WARNING):
        failed = answerer().answer("quanto custa o tênis?", product_search=timing_out)
    assert failed.handoff and failed.reason == "product search failed (TimeoutError)"
    assert "TimeoutError" in caplog.text


# handoff ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "message",
    [
        "Quero falar com uma pessoa de verdade",
        "Vou reclamar no Procon, vocês nunca abrem no horário",
        "Can I talk to a human?",
    ],
)
def test_asking_for_a_person_hands_off_first(message):
    answer = answerer(faq=FAQ).answer(message, product_search=search_catalogue)
    assert (answer.source, answer.handoff) == (Source.HANDOFF, True)
    assert answer.reason == "the customer asked for a person or complained"


def test_a_handoff_while_closed_says_when_the_team_is_back():
    answer = answerer().answer("Minha blusa veio manchada", at=local("2025-03-15T13:30"))
    assert answer.text == (
        "Vou chamar alguém da nossa equipe para te ajudar. Em breve você recebe uma resposta "
        "por aqui. No momento estamos fechados; abrimos na segunda-feira às 09:00."
    )
    open_now = answerer("en").answer("My blouse arrived stained", at=local("2025-03-10T14:00"))
    assert open_now.text == (
        "I'm passing this to someone on our team. You'll get a reply here soon."
    )
    assert open_now.reason == "no answer without an LLM"


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("", "the message has no words"),
        ("  \n\t ", "the message has no words"),
        ("?!…", "the message has no words"),
        (b"\x00\xff", "the message is not text"),
        (None, "the message is not text"),
    ],
)
def test_empty_or_binary_messages_are_handed_off(message, reason):
    answer = answerer(faq=FAQ).answer(message)
    assert (answer.source, answer.reason, answer.handoff) == (Source.HANDOFF, reason, True)


def test_a_huge_message_is_answered_from_its_beginning():
    answer = answerer(faq=FAQ).answer("Qual o endereço da loja? " + "blá " * 200_000)
    assert answer.source == Source.FAQ


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("pt_BR", "pt"),
        ("pt-BR", "pt"),
        ("pt", "pt"),
        ("en_US", "en"),
        ("es_ES", "en"),
        (None, "en"),
    ],
)
def test_the_language_picks_the_phrasing(language, expected):
    assert FallbackAnswerer(language).language == expected
