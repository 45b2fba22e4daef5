"""Answers without any LLM (none configured, or the tenant's budget spent) (plain Python, no Odoo).

The engine still helps a customer with what it can answer from data alone, in this order:

1. an explicit request for a person, or a complaint, is handed off at once;
2. opening hours: open now and until when, or when it opens next, and the weekly hours;
3. the tenant's FAQ and business rules, matched by an embedder passed in (with at least one shared
   word, because a small embedder scores unrelated pt-BR texts close) or by keyword overlap;
4. product search results from a search callable passed in, formatted for a customer;
5. a handoff for the rest (saying when the business opens again, if it is closed now).

Every answer names its source. Phrasing is pt-BR or English by the tenant's language. The opening
hours logic is the integrator's ``services/hours.py``, passed in as ``hours_service``.
"""

import logging
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from enum import Enum

from .routing import plain_text

_logger = logging.getLogger(__name__)

# How far ahead the next opening is looked for (two weeks cover a week of holidays).
LOOKAHEAD_DAYS = 14
MATCH_CHARS = 2000  # a huge message is matched by its beginning
STEM_CHARS = 5  # truncation stemming: "aceita"/"aceitam", "parcela"/"parcelamento" meet
# Measured on a pt-BR store's FAQ and rules against the routing set's messages (offline MiniLM):
# every right answer scored at or above these, the wrong ones below.
MATCH_THRESHOLDS = {"embedding": 0.65, "keyword": 0.5}


def _words(text):
    """A word list written as text (easier to read and extend than a literal of quoted words)."""
    return frozenset(text.split())


STOPWORDS = _words(
    """
    a o as os um uma uns umas de da do das dos em na no nas nos por para pra pro com sem que qual
    quais e ou se me meu minha meus minhas voce voces vc vcs eu ele ela eles elas isso isto esse
    essa este esta estao sao ser ter tem tenho ha como onde quando quanto quanta quantos quantas
    muito mais menos ja ainda so tambem nao sim oi ola bom boa dia tarde noite obrigado obrigada
    favor aqui ai la lhe te ao aos the an of to in on at for with is are be do does did you your
    i my me we our us it its this that these those what which who how when where can could would
    please hi hello thanks thank there have has any some
    """
)
HANDOFF_WORDS = _words(
    """
    atendente humano humana pessoa gerente supervisor procon processo advogado reclamacao reclamar
    reclamo human person agent manager supervisor representative complaint lawyer
    """
)
HOURS_WORDS = _words(
    """
    abre abrem abrir aberto aberta abertos abertas fecha fecham fechar fechado fechada fechados
    funcionamento expediente open opens opening close closes closing closed
    """
)
HOURS_PHRASES = (
    "horario de atendimento",
    "horarios de atendimento",
    "horario de voces",
    "horario da loja",
    "business hours",
    "office hours",
    "opening hours",
)
PRODUCT_WORDS = _words(
    """
    produto produtos preco precos custa custam valor estoque disponivel disponiveis vende vendem
    comprar tamanho tamanhos cor cores modelo modelos catalogo promocao product products price
    prices cost costs stock available sell buy size sizes color colors catalog
    """
)
CURRENCY_SYMBOLS = {"BRL": "R$", "USD": "US$", "EUR": "€"}

PHRASES = {
    "pt": {
        "weekdays": (
            "segunda-feira",
            "terça-feira",
            "quarta-feira",
            "quinta-feira",
            "sexta-feira",
            "sábado",
            "domingo",
        ),
        "today": "hoje",
        "tomorrow": "amanhã",
        "on_day": "na {day}",
        "on_weekend_day": "no {day}",
        "date": "{day}, {date:%d/%m}",
        "at_time": "{when} às {time}",
        "span": "{first} a {last}",
        "open_until_today": "Estamos abertos agora, até as {time}.",
        "open_until": "Estamos abertos agora, até {when}.",
        "closed_opens": "No momento estamos fechados. Abrimos {when}.",
        "closed": "No momento estamos fechados.",
        "weekly": "Horário de atendimento: {hours}.",
        "products": "Encontrei estes produtos:",
        "in_stock": "em estoque",
        "out_of_stock": "sem estoque",
        "handoff": (
            "Vou chamar alguém da nossa equipe para te ajudar. "
            "Em breve você recebe uma resposta por aqui."
        ),
        "handoff_closed": "No momento estamos fechados; abrimos {when}.",
    },
    "en": {
        "weekdays": (
            "Monday",
            "Tuesday",
            "Wednesday",
            "Thursday",
            "Friday",
            "Saturday",
            "Sunday",
        ),
        "today": "today",
        "tomorrow": "tomorrow",
        "on_day": "on {day}",
        "on_weekend_day": "on {day}",
        "date": "{day}, {date:%b %d}",
        "at_time": "{when} at {time}",
        "span": "{first} to {last}",
        "open_until_today": "We are open now, until {time}.",
        "open_until": "We are open now, until {when}.",
        "closed_opens": "We are closed right now. We open {when}.",
        "closed": "We are closed right now.",
        "weekly": "Opening hours: {hours}.",
        "products": "Here is what I found:",
        "in_stock": "in stock",
        "out_of_stock": "out of stock",
        "handoff": "I'm passing this to someone on our team. You'll get a reply here soon.",
        "handoff_closed": "We're closed right now; we open {when}.",
    },
}


class Source(str, Enum):
    """Where a fallback answer came from."""

    HOURS = "hours"
    FAQ = "faq"
    RULES = "rules"
    PRODUCTS = "products"
    HANDOFF = "handoff"


@dataclass(frozen=True)
class FallbackAnswer:
    """A customer-facing ``text``, its ``source``, and, for the run record, why (in English).

    ``handoff`` is true when a person must take over; ``score`` is the match score of an FAQ or
    rule answer."""

    text: str
    source: Source
    reason: str
    handoff: bool = False
    score: float | None = None


@dataclass(frozen=True)
class Schedule:
    """A tenant's opening hours, as ``hours.is_open`` takes them.

    ``intervals`` is ``{weekday: [(hour_from, hour_to), ...]}`` with weekday 0 = Monday and float
    hours (8.5 = 08:30); ``holidays`` are local dates, ``yearly_holidays`` ``(month, day)`` pairs.
    """

    tz: str
    intervals: Mapping[int, Sequence[tuple[float, float]]]
    holidays: tuple[date, ...] = ()
    yearly_holidays: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class FaqEntry:
    question: str
    answer: str


@dataclass(frozen=True)
class OpeningStatus:
    """Open now and until when, or when it opens next; times are ``(local date, float hour)``."""

    open_now: bool
    closes: tuple[date, float] | None = None
    opens: tuple[date, float] | None = None


def content_stems(text):
    """The stems of the words that carry meaning (no stop words, no single letters)."""
    return {
        word[:STEM_CHARS]
        for word in plain_text(text).split()
        if len(word) > 1 and word not in STOPWORDS
    }


class KeywordIndex:
    """Keyword overlap of a message with each entry: the cosine of their stem sets, each stem
    weighted by its rarity among the entries (idf), so a word every entry shares counts little."""

    def __init__(self, texts):
        self.entry_stems = [content_stems(text) for text in texts]
        count = len(self.entry_stems)
        frequency = Counter(stem for stems in self.entry_stems for stem in stems)
        self.idf = {
            stem: math.log((count + 1) / (seen + 1)) + 1 for stem, seen in frequency.items()
        }
        self.norms = [math.sqrt(sum(self.idf[s] ** 2 for s in stems)) for stems in self.entry_stems]

    def scores(self, message):
        message_stems = content_stems(message)
        # a stem no entry has still lengthens the message: it is something no entry answers
        message_norm = math.sqrt(sum(self.idf.get(s, 1.0) ** 2 for s in message_stems))
        found = []
        for stems, norm in zip(self.entry_stems, self.norms, strict=True):
            shared = sum(self.idf[s] ** 2 for s in message_stems & stems)
            found.append(shared / (message_norm * norm) if shared else 0.0)
        return found


def split_rules(rules):
    """One rule per non-empty line of the tenant's business rules, without list markers."""
    found = []
    for line in (rules or "").splitlines():
        rule = re.sub(r"^\s*(?:[-*•]|\d+[.)])\s*", "", line).strip()
        if rule:
            found.append(rule)
    return found


def opening_status(hours_service, schedule, at):
    """Whether ``schedule`` is open at ``at`` and until when, or when it opens next.

    ``hours_service`` is the integrator's ``services/hours.py``. Times are the local wall clock, so
    daylight-saving changes are followed as ``hours.is_open`` follows them. An opening that runs
    to 24:00 and continues at 00:00 the next day closes at the end of the next day's interval.
    """
    local = hours_service.local_time(at, schedule.tz)
    today = local.date()
    hour = local.hour + local.minute / 60 + (local.second + local.microsecond / 1e6) / 3600

    def day_intervals(day):
        if hours_service.is_holiday(day, schedule.holidays, schedule.yearly_holidays):
            return []
        return sorted(schedule.intervals.get(day.weekday(), ()))

    if hours_service.is_open(
        at, schedule.tz, schedule.intervals, schedule.holidays, schedule.yearly_holidays
    ):
        end = next(end for start, end in day_intervals(today) if start <= hour < end)
        closes = (today, end)
        for offset in range(1, 8):
            if closes[1] < 24.0:
                break
            day = today + timedelta(days=offset)
            following = [end for start, end in day_intervals(day) if start == 0.0]
            if not following:
                break
            closes = (day, following[0])
        return OpeningStatus(True, closes=closes)
    for offset in range(LOOKAHEAD_DAYS + 1):
        day = today + timedelta(days=offset)
        for start, _end in day_intervals(day):
            if offset or start > hour:
                return OpeningStatus(False, opens=(day, start))
    return OpeningStatus(False)


class FallbackAnswerer:
    """Answers one tenant's customers without an LLM.

    :param language: the tenant's language (``pt_BR``, ``en_US``...); pt-BR phrasing for any
        Portuguese, English otherwise
    :param hours_service: the integrator's ``services/hours.py`` (needed with ``schedule``)
    :param schedule: the tenant's :class:`Schedule`, or None when it has no opening hours
    :param faq: :class:`FaqEntry` items; ``rules``: the tenant's business rules text
    :param embedder: an object with ``embed(texts) -> L2-normalised vectors`` (the connectors'
        embedders); keyword overlap is used without one, or when it fails
    """

    def __init__(
        self,
        language,
        *,
        hours_service=None,
        schedule: Schedule | None = None,
        faq: Sequence[FaqEntry] = (),
        rules: str = "",
        embedder=None,
        currency: str = "BRL",
        embedding_threshold: float = MATCH_THRESHOLDS["embedding"],
        keyword_threshold: float = MATCH_THRESHOLDS["keyword"],
        product_limit: int = 5,
    ):
        if schedule is not None and hours_service is None:
            raise ValueError("a schedule needs the hours service that reads it")
        self.language = "pt" if str(language or "").lower().startswith("pt") else "en"
        self.phrases = PHRASES[self.language]
        self.hours_service = hours_service
        # a schedule without any interval says nothing about the hours (none were set up)
        self.schedule = schedule if schedule and any(schedule.intervals.values()) else None
        self.entries = [(Source.FAQ, entry.question, entry.answer) for entry in faq] + [
            (Source.RULES, rule, rule) for rule in split_rules(rules)
        ]
        self.keywords = KeywordIndex([text for _source, text, _answer in self.entries])
        self.embedder = embedder
        self._entry_vectors = None
        self.currency = currency
        self.embedding_threshold = embedding_threshold
        self.keyword_threshold = keyword_threshold
        self.product_limit = product_limit

    # the answer --------------------------------------------------------------------------------
    def answer(self, message, at=None, product_search=None):
        """The best answer to ``message`` at instant ``at`` (aware, or naive UTC; default now).

        ``product_search``: ``(text, limit) -> [{"name", "price"?, "currency"?, "available"?}]``,
        per call: it reaches the caller's data, while one answerer (its FAQ vectors computed
        once) serves every message of a tenant.
        """
        at = at or datetime.now(timezone.utc)
        if not isinstance(message, str):
            return self._handoff(at, "the message is not text")
        message = message[:MATCH_CHARS]
        words = plain_text(message).split()
        if not words:
            return self._handoff(at, "the message has no words")
        if HANDOFF_WORDS.intersection(words):
            return self._handoff(at, "the customer asked for a person or complained")
        if self.schedule is not None and self._asks_for_hours(words):
            return self._hours_answer(at)
        found = self._faq_answer(message)
        if found:
            return found
        if product_search is not None and PRODUCT_WORDS.intersection(words):
            return self._products_answer(message, at, product_search)
        return self._handoff(at, "no answer without an LLM")

    @staticmethod
    def _asks_for_hours(words):
        if HOURS_WORDS.intersection(words):
            return True
        text = " ".join(words)
        return any(phrase in text for phrase in HOURS_PHRASES)

    # opening hours ---------------------------------------------------------------------------
    def _when(self, at, moment):
        """``hoje às 09:00`` / ``on Monday at 09:00``: a local moment relative to ``at``'s day."""
        day, hour = moment
        offset = (day - self.hours_service.local_time(at, self.schedule.tz).date()).days
        phrases = self.phrases
        if offset == 0:
            when = phrases["today"]
        elif offset == 1:
            when = phrases["tomorrow"]
        else:
            name = phrases["weekdays"][day.weekday()]
            if offset >= 7:
                name = phrases["date"].format(day=name, date=day)
            on = phrases["on_weekend_day" if day.weekday() >= 5 else "on_day"]
            when = on.format(day=name)
        return phrases["at_time"].format(when=when, time=self.hours_service.format_hour(hour))

    def _weekly_hours(self):
        """``segunda-feira a sexta-feira 09:00–18:00; sábado 09:00–13:00``: runs of equal days."""
        phrases = self.phrases
        format_hour = self.hours_service.format_hour
        runs = []  # [first weekday, last weekday, intervals]
        for weekday in range(7):
            intervals = sorted(self.schedule.intervals.get(weekday, ()))
            if runs and runs[-1][2] == intervals and runs[-1][1] == weekday - 1:
                runs[-1][1] = weekday
            elif intervals:
                runs.append([weekday, weekday, intervals])
        parts = []
        for first, last, intervals in runs:
            names = phrases["weekdays"]
            days = names[first]
            if last != first:
                days = phrases["span"].format(first=names[first], last=names[last])
            spans = ", ".join(
                f"{format_hour(start)}–{format_hour(end)}" for start, end in intervals
            )
            parts.append(f"{days} {spans}")
        return "; ".join(parts)

    def _hours_answer(self, at):
        status = opening_status(self.hours_service, self.schedule, at)
        phrases = self.phrases
        if status.open_now:
            today = self.hours_service.local_time(at, self.schedule.tz).date()
            if status.closes[0] == today:
                text = phrases["open_until_today"].format(
                    time=self.hours_service.format_hour(status.closes[1])
                )
            else:
                text = phrases["open_until"].format(when=self._when(at, status.closes))
        elif status.opens:
            text = phrases["closed_opens"].format(when=self._when(at, status.opens))
        else:
            text = phrases["closed"]
        weekly = self._weekly_hours()
        if weekly:
            text = f"{text} {phrases['weekly'].format(hours=weekly)}"
        return FallbackAnswer(text, Source.HOURS, "opening hours asked")

    # FAQ and rules ---------------------------------------------------------------------------
    def _faq_answer(self, message):
        if not self.entries:
            return None
        keyword_scores = self.keywords.scores(message)
        scores, threshold, how = (
            self._embedding_scores(message),
            self.embedding_threshold,
            "embedding",
        )
        if scores is None:
            scores, threshold, how = keyword_scores, self.keyword_threshold, "keyword"
        else:
            # Without a shared word, a small embedder's closeness is not evidence enough.
            scores = [score if keyword_scores[index] else 0.0 for index, score in enumerate(scores)]
        best = max(range(len(scores)), key=scores.__getitem__)
        if scores[best] < threshold:
            return None
        source, matched, answer = self.entries[best]
        reason = f"{source.value} entry matched by {how} ({scores[best]:.2f}): {matched[:80]}"
        return FallbackAnswer(answer, source, reason, score=round(scores[best], 3))

    def _embedding_scores(self, message):
        """Cosine of the message with each entry, or None without a working embedder."""
        if self.embedder is None or not message.strip():
            return None
        try:
            if self._entry_vectors is None:
                self._entry_vectors = self.embedder.embed([text for _s, text, _a in self.entries])
            (vector,) = self.embedder.embed([message])
        # any embedder failure (model files, a remote API): keyword overlap still answers
        except Exception as exc:  # noqa: BLE001
            _logger.warning("FAQ embedder failed (%s); matching by keywords", type(exc).__name__)
            return None
        return [
            sum(a * b for a, b in zip(vector, entry, strict=True)) for entry in self._entry_vectors
        ]

    # products --------------------------------------------------------------------------------
    def _price(self, value, currency):
        symbol = CURRENCY_SYMBOLS.get(currency, currency)
        amount = f"{value:,.2f}"
        if self.language == "pt":
            amount = amount.replace(",", " ").replace(".", ",").replace(" ", ".")
        return f"{symbol} {amount}"

    def _product_line(self, product):
        line = f"- {product['name']}"
        price = product.get("price")
        if isinstance(price, (int, float)) and not isinstance(price, bool):
            line += f": {self._price(price, product.get('currency') or self.currency)}"
        available = product.get("available")
        if isinstance(available, bool):
            line += f" ({self.phrases['in_stock' if available else 'out_of_stock']})"
        return line

    def _products_answer(self, message, at, product_search):
        try:
            products = list(product_search(message, self.product_limit) or ())
        # a failing search callable must not leave the customer unanswered
        except Exception as exc:  # noqa: BLE001
            _logger.warning("Product search failed (%s); handing off", type(exc).__name__)
            return self._handoff(at, f"product search failed ({type(exc).__name__})")
        products = [
            product
            for product in products
            if isinstance(product, Mapping) and str(product.get("name") or "").strip()
        ][: self.product_limit]
        if not products:
            return self._handoff(at, "no product matched the search")
        lines = [self.phrases["products"], *(self._product_line(product) for product in products)]
        return FallbackAnswer(
            "\n".join(lines), Source.PRODUCTS, f"{len(products)} products found by search"
        )

    # handoff ---------------------------------------------------------------------------------
    def handoff_text(self, at=None):
        """What the customer is told when a person takes over, in the tenant's language: when
        closed, with the next opening (``at``: aware, or naive UTC; default now)."""
        return self._handoff(at or datetime.now(timezone.utc), "").text

    def _handoff(self, at, reason):
        text = self.phrases["handoff"]
        if self.schedule is not None:
            status = opening_status(self.hours_service, self.schedule, at)
            if not status.open_now and status.opens:
                closed = self.phrases["handoff_closed"].format(when=self._when(at, status.opens))
                text = f"{text} {closed}"
        return FallbackAnswer(text, Source.HANDOFF, reason, handoff=True)
