"""Which crew answers a message ("motor de decisão"): rules first, then similarity, then an LLM.

Plain Python (no Odoo). A :class:`Router` is built once per tenant from its crews' routing data
(:class:`CrewRoute`) and an embedder; :meth:`Router.route` takes a :class:`RoutingRequest` (the
text, its channel, whether the tenant is open, its enabled services) and returns a
:class:`RoutingDecision`: the crew (or a handoff), a score, the stage that decided and a reason.

1. ``rules``: the message must hold readable text; crews that are inactive or do not serve the
   channel are left out; crews needing a service the tenant has not enabled, or open (closed)
   hours, are *unavailable*: when one of them fits best, the decision is a handoff that says
   why, never a second-best crew. Then keywords: the crews' keywords, purpose and example
   messages, normalised for pt-BR (lower-case, no accents, chat abbreviations spelled out,
   function words dropped, the synonyms of a customer-service lexicon as one concept, a light
   stemmer, shared prefixes, one-letter typos), weighted by how few crews use each term and by
   how strong a signal the lexicon says it is (:mod:`.routing_lexicon`). Clear keyword
   evidence decides here.
2. ``similarity``: the message's embedding against each crew's purpose, examples and keywords
   (vectors computed once, when the router is built), blended with the keyword scores.
   A lead over the runner-up below ``unsure_margin`` is *unsure*.
3. ``llm``: only when both stages are unsure and the caller gave a classifier.

Without a classifier, an unsure decision keeps the best guess (``unsure=True``) or hands off,
as the router was told (``when_unsure``); nothing that fits at all is a handoff.

Decisions are JSON-serialisable (:meth:`RoutingDecision.as_dict`) so the caller can cache them
under :meth:`Router.cache_id`: one id per normalised message, channel, hours state, enabled
services and routing configuration, so an edited crew never meets an old decision. With the
integrator's cache: ``cache.get_or_compute(cache.key(account_id, "mcp_crew_engine", "routing",
router.cache_id(request), "decision"), lambda: router.route(request).as_dict(), "transient")``.
"""

import copy
import hashlib
import json
import logging
import math
import os
import re
import unicodedata
from dataclasses import dataclass, replace
from typing import NamedTuple

from .routing_lexicon import CONCEPTS

_logger = logging.getLogger(__name__)

STAGES = ("rules", "similarity", "llm")
HOURS = ("any", "open", "closed")
UNSURE_POLICIES = ("best_guess", "handoff")

#: Longer messages are routed on their head: a customer states the subject first, and a
#: megabyte of pasted text must not cost a megabyte of work.
MAX_ROUTED_CHARS = 2000
#: More than this share of control or replacement characters means the text is not text.
MAX_UNREADABLE_SHARE = 0.1

# A purpose lists its subjects ("Trocas, devoluções, reembolso"): each is compared on its own too.
PURPOSE_CLAUSES = re.compile(r"[,;:.]|\s(?:e|ou)\s")
CODE_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
CHANNEL_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")

# Weight of a matched term by where the crew's hints hold it: keywords are chosen words;
# the purpose names the subjects; examples also carry incidental words ("Recife", "amanhã").
KEYWORD_WEIGHT = 1.0
PURPOSE_WEIGHT = 1.0
EXAMPLE_WEIGHT = 0.5
# A word one typo away from a crew's word counts less than the same word.
TYPO_MATCH = 0.6
MIN_PREFIX = 5  # "devol" (devolução, devolver); shorter shared prefixes join unrelated words
MIN_TYPO_LENGTH = 5  # below that, one edit turns a word into another word

# Chat spellings of pt-BR function words and courtesies, spelled out before anything else.
ABBREVIATIONS = {
    "vc": "voce",
    "vcs": "voces",
    "pq": "porque",
    "q": "que",
    "oq": "o que",
    "tb": "tambem",
    "tbm": "tambem",
    "hj": "hoje",
    "ta": "esta",
    "to": "estou",
    "qdo": "quando",
    "qnd": "quando",
    "qto": "quanto",
    "qnto": "quanto",
    "td": "tudo",
    "tds": "todos",
    "mt": "muito",
    "mto": "muito",
    "n": "nao",
    "obg": "obrigado",
    "obgd": "obrigado",
    "vlw": "valeu",
    "pf": "por favor",
    "pfv": "por favor",
    "pfvr": "por favor",
    "msg": "mensagem",
}
# Greetings and thanks (pt-BR, and English for the customers who write it): one term, so
# "Bom dia!" in a crew's examples meets "boa tarde".
COURTESY = "#courtesy"  # not a word: plain text never holds "#"
CONCEPT_MARK = "#"  # starts a lexicon concept's term, which matches only the same concept
_COURTESY_TEXT = """
    oi ola opa obrigado obrigada agradeco grato grata valeu saudacao saudacoes cumprimento
    cumprimentos tchau hi hello hey thanks thank greetings bye
"""
COURTESY_WORDS = frozenset(_COURTESY_TEXT.split())
COURTESY_PAIRS = frozenset(
    [("bom", "dia"), ("boa", "tarde"), ("boa", "noite"), ("tudo", "bem"), ("tudo", "bom")]
    + [("good", "morning"), ("good", "afternoon"), ("good", "evening")]
)
# Function words, forms of ser/estar/ter/haver/ir and request verbs (pt-BR, then English):
# they say nothing about the subject of a message.
_STOPWORDS_TEXT = """
    a o as os um uma uns umas de do da dos das em no na nos nas num numa ao aos por pelo pela
    pelos pelas para pra pro com sem sob sobre entre ate e ou mas que se como quando onde qual
    quais quanto quanta quantos quantas quem porque pois entao ja ainda tambem so mais menos
    muito muita muitos muitas pouco bem nao sim eu tu ele ela nos vos eles elas voce voces me te
    lhe lhes mim meu minha meus minhas seu sua seus suas teu tua nosso nossa nossos nossas dele
    dela deles delas este esta estes estas esse essa esses essas isso isto aquele aquela aquilo
    ser sou es sao era eram foi fui estar estou estao estava estive ter tenho tem temos tinha
    tive teve ha haver vou vai vamos vao ir queria quero quer gostaria preciso precisa pode posso
    podem poderia consigo consegue fazer faco faz fiz fez feito feita feitos feitas saber sei
    aqui ai la agora ok tipo ne ah eh
    favor algum alguma alguns algumas nenhum nenhuma outro outra outros outras todo toda todos
    todas tudo cada mesmo mesma dar
    the an of to in on at for with from by about is are was were be been am do does did i you
    he she we they it its my your our their me us him her them this that these those what which
    who whom how when where why can could would will should may might must have has had any
    some and or but not yes if so than then there here just please want need know
"""
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())
# Light pt-BR stemmer: plural first, then one derivational or verbal ending, longest first.
PLURAL_ENDINGS = (
    ("oes", "ao"),
    ("aes", "ao"),
    ("ais", "al"),
    ("eis", "el"),
    ("ois", "ol"),
    ("ns", "m"),
    ("res", "r"),
    ("zes", "z"),
    ("ses", "s"),
    ("s", ""),
)
_ENDINGS_TEXT = """
    amento imento acao icao ucao cao idade mente aram eram iram arem erem irem ando endo indo
    ado ada ido ida ar er ir ei ou am em ia a e o
"""
ENDINGS = tuple(sorted(_ENDINGS_TEXT.split(), key=len, reverse=True))
MIN_STEM = 3
MIN_PARTICIPLE_STEM = 5  # "pedido" stays "pedid", "comprado" becomes "compr"
PARTICIPLES = frozenset(("ado", "ada", "ido", "ida"))


class _Phrase(NamedTuple):
    """One entry of the lexicon: ``tokens`` are ``(word, is_family)``; a family word matches
    every word it begins."""

    concept: str
    tokens: tuple


class RoutingConfigError(ValueError):
    """The crews' routing data or the router's settings are unusable."""


# -- text normalisation ----------------------------------------------------------------------


def plain_text(text):
    """Lower-case words without accents or punctuation, single-spaced: the routing normal form."""
    folded = unicodedata.normalize("NFKD", text.casefold())
    folded = "".join(char for char in folded if not unicodedata.combining(char))
    return " ".join("".join(char if char.isalnum() else " " for char in folded).split())


def stem(word):
    """The light pt-BR stem of a plain word ("devolucoes" -> "devol", "trocar" -> "troc")."""
    for ending, replacement in PLURAL_ENDINGS:
        if word.endswith(ending) and len(word) - len(ending) >= MIN_STEM:
            word = word[: -len(ending)] + replacement
            break
    for ending in ENDINGS:
        rest = len(word) - len(ending)
        minimum = MIN_PARTICIPLE_STEM if ending in PARTICIPLES else MIN_STEM
        if word.endswith(ending) and rest >= minimum:
            return word[:rest]
    return word


def _compile_lexicon(concepts):
    """``({first word: [phrases]}, [(first family word, phrase)], {concept term: weight})``."""
    by_word, by_family, weights = {}, [], {}
    for concept, (weight, entries) in concepts.items():
        weights[CONCEPT_MARK + concept] = weight
        for entry in filter(str.strip, entries.split(",")):
            tokens = []
            for written in entry.split():
                words = plain_text(written.rstrip("*")).split()
                tokens += [(word, False) for word in words[:-1]]
                tokens.append((words[-1], written.endswith("*")))
            # function words after the first are optional in the message: left out
            tokens = tokens[:1] + [token for token in tokens[1:] if token[0] not in STOPWORDS]
            phrase = _Phrase(CONCEPT_MARK + concept, tuple(tokens))
            first, is_family = tokens[0]
            if is_family:
                by_family.append((first, phrase))
            else:
                by_word.setdefault(first, []).append(phrase)
    return by_word, by_family, weights


LEXICON_WORDS, LEXICON_FAMILIES, CONCEPT_WEIGHTS = _compile_lexicon(CONCEPTS)
#: In every router's fingerprint: a new lexicon (a deploy) must not reuse cached decisions.
LEXICON_VERSION = hashlib.sha256(repr(sorted(CONCEPTS.items())).encode()).hexdigest()[:16]


def _token_matches(token, word):
    written, is_family = token
    return word.startswith(written) if is_family else word == written


def _phrase_end(phrase, words, start):
    """Where ``phrase`` found at ``words[start]`` ends (0: not found there), stepping over
    function words between its words."""
    position = start + 1
    for token in phrase.tokens[1:]:
        while (
            position < len(words)
            and words[position] in STOPWORDS
            and not _token_matches(token, words[position])
        ):
            position += 1
        if position == len(words) or not _token_matches(token, words[position]):
            return 0
        position += 1
    return position


def _concept_at(words, start):
    """``(concept term, end)`` of the longest lexicon phrase at ``words[start]``, or ``None``."""
    word = words[start]
    phrases = LEXICON_WORDS.get(word, [])
    phrases = phrases + [phrase for first, phrase in LEXICON_FAMILIES if word.startswith(first)]
    found = None
    for phrase in phrases:
        end = _phrase_end(phrase, words, start)
        if end and (found is None or end > found[1]):
            found = (phrase.concept, end)
    return found


def _spelled_out(words):
    for word in words:
        yield from ABBREVIATIONS.get(word, word).split()


def terms(text):
    """The ``(word, stem)`` pairs that say what ``text`` is about; greetings and thanks are one
    :data:`COURTESY` pair, and a phrase of the lexicon one ``(phrase, "#<concept>")`` pair."""
    words = list(_spelled_out(plain_text(text).split()))
    found = []
    index = 0
    while index < len(words):
        word = words[index]
        if tuple(words[index : index + 2]) in COURTESY_PAIRS:
            found.append((COURTESY, COURTESY))
            index += 2
            continue
        concept = _concept_at(words, index)
        if concept:
            found.append((" ".join(words[index : concept[1]]), concept[0]))
            index = concept[1]
            continue
        index += 1
        if word in COURTESY_WORDS:
            found.append((COURTESY, COURTESY))
        elif len(word) > 1 and word not in STOPWORDS and not any(c.isdigit() for c in word):
            found.append((word, stem(word)))
    return found


def embedded_text(text):
    """What the embedder sees: the words that carry the subject, as written (no accents).

    The offline model reads Portuguese poorly; function words only add noise to it.
    """
    words = [word for word, stem_ in terms(text) if stem_ != COURTESY]
    return " ".join(words) if words else plain_text(text)


def _one_edit_apart(first, second):
    """Whether one insertion, deletion, substitution or swap of neighbours turns one into the
    other."""
    if abs(len(first) - len(second)) > 1 or first == second:
        return False
    if len(first) > len(second):
        first, second = second, first
    start = 0
    while start < len(first) and first[start] == second[start]:
        start += 1
    if len(first) < len(second):
        return first[start:] == second[start + 1 :]
    if first[start + 1 :] == second[start + 1 :]:
        return True
    return (
        first[start : start + 2] == second[start : start + 2][::-1]
        and first[start + 2 :] == second[start + 2 :]
    )


def term_match(message_term, crew_term):
    """How well a message's ``(word, stem)`` stands for a crew's, from 0 to 1.

    The same stem is a full match; stems sharing at least :data:`MIN_PREFIX` leading letters
    match by the share of the longer one they have in common ("rastre"/"rastrei" closely,
    "atendent"/"atend" less); words one typo apart match at :data:`TYPO_MATCH`. A lexicon
    concept shares no prefix: it matches itself, or a word one typo away from its own.
    """
    (word, stem_), (crew_word, crew_stem) = message_term, crew_term
    if stem_ == crew_stem:
        return 1.0
    if COURTESY in (stem_, crew_stem):
        return 0.0
    shared = len(os.path.commonprefix((stem_, crew_stem)))
    if shared >= MIN_PREFIX and CONCEPT_MARK not in (stem_[0], crew_stem[0]):
        return shared / max(len(stem_), len(crew_stem))
    if min(len(word), len(crew_word)) >= MIN_TYPO_LENGTH and _one_edit_apart(word, crew_word):
        return TYPO_MATCH
    return 0.0


# -- data ------------------------------------------------------------------------------------


def _texts(value, what, code, separators="\n"):
    """A tuple of single-spaced texts from a list, or from one text cut at ``separators`` (how
    a form field holds them)."""
    if isinstance(value, str):
        value = re.split(f"[{re.escape(separators)}]", value)
    texts = tuple(" ".join(text.split()) for text in value or () if isinstance(text, str))
    if len(texts) != len(value or ()):
        raise RoutingConfigError(f"crew {code!r}: {what} must be a list of texts")
    return tuple(text for text in texts if text)


@dataclass(frozen=True)
class CrewRoute:
    """What the router knows of one crew.

    ``channels`` empty means every channel. ``service`` is the code of a tenant service the
    crew needs enabled (empty: none). ``hours`` is ``any``, ``open`` (the crew needs the
    tenant open, e.g. people in the store) or ``closed`` (an after-hours crew).
    """

    code: str
    purpose: str = ""
    keywords: tuple = ()
    examples: tuple = ()
    channels: tuple = ()
    service: str = ""
    hours: str = "any"
    active: bool = True

    @classmethod
    def from_dict(cls, data):
        """A checked crew from plain data (``description`` is read as the purpose)."""
        if not isinstance(data, dict):
            raise RoutingConfigError(f"a crew must be a mapping, got {type(data).__name__}")
        code = data.get("code")
        if not isinstance(code, str) or not CODE_PATTERN.fullmatch(code):
            raise RoutingConfigError(
                f"crew code {code!r} is invalid: use 1 to 64 of [a-z0-9_-], starting with a "
                "letter or a digit"
            )
        purpose = data.get("purpose", data.get("description")) or ""
        if not isinstance(purpose, str):
            raise RoutingConfigError(f"crew {code!r}: the purpose must be a text")
        channels = tuple(
            channel.lower() for channel in _texts(data.get("channels"), "channels", code, ",\n")
        )
        bad_channels = [channel for channel in channels if not CHANNEL_PATTERN.fullmatch(channel)]
        if bad_channels:
            raise RoutingConfigError(f"crew {code!r}: invalid channel names {bad_channels}")
        hours = data.get("hours") or "any"
        if hours not in HOURS:
            raise RoutingConfigError(f"crew {code!r}: hours must be one of {', '.join(HOURS)}")
        service = data.get("service") or ""
        if not isinstance(service, str):
            raise RoutingConfigError(f"crew {code!r}: the service must be a service code")
        crew = cls(
            code=code,
            purpose=" ".join(purpose.split()),
            keywords=_texts(data.get("keywords"), "keywords", code, ",;\n"),
            examples=_texts(data.get("examples"), "examples", code),
            channels=channels,
            service=service,
            hours=hours,
            active=bool(data.get("active", True)),
        )
        if not any(map(plain_text, (crew.purpose, *crew.keywords, *crew.examples))):
            raise RoutingConfigError(
                f"crew {code!r} has nothing to route on: give a purpose, keywords or examples"
            )
        return crew

    def as_dict(self):
        return {
            "code": self.code,
            "purpose": self.purpose,
            "keywords": list(self.keywords),
            "examples": list(self.examples),
            "channels": list(self.channels),
            "service": self.service,
            "hours": self.hours,
            "active": self.active,
        }

    def unavailable_because(self, request):
        """Why the crew cannot take ``request`` now (closed, service off), or ``""``."""
        is_open, services = request.is_open, request.enabled_services
        if self.hours != "any" and is_open is not None and is_open != (self.hours == "open"):
            state = "open" if is_open else "closed"
            return f"the tenant is {state} and crew {self.code!r} only works when {self.hours}"
        if self.service and services is not None and self.service not in services:
            return f"crew {self.code!r} needs the service {self.service!r}, which is not enabled"
        return ""


class ReadableText(NamedTuple):
    """What of a message can be routed: its head, its full length, or why it cannot be."""

    head: str
    length: int
    problem: str
    #: the message is data, not text (undecodable bytes, mostly control characters)
    binary: bool = False


@dataclass(frozen=True)
class RoutingRequest:
    """A message to route.

    ``text`` may be bytes (decoded as UTF-8; undecodable bytes are a binary message).
    ``is_open`` and ``enabled_services`` ``None`` mean unknown: no crew is held back for them.
    """

    text: object
    channel: str = ""
    is_open: bool | None = None
    enabled_services: frozenset | None = None

    def __post_init__(self):
        if self.channel is not None and not isinstance(self.channel, str):
            raise TypeError(f"the channel must be a text, got {type(self.channel).__name__}")
        object.__setattr__(self, "channel", (self.channel or "").strip().lower())
        if self.enabled_services is not None:
            if isinstance(self.enabled_services, str) or not all(
                isinstance(code, str) for code in self.enabled_services
            ):
                raise TypeError("enabled_services must be a collection of service codes")
            object.__setattr__(self, "enabled_services", frozenset(self.enabled_services))

    def readable(self):
        """The :class:`ReadableText` of the message (the head when it is huge)."""
        text = self.text
        if text is None:
            return ReadableText("", 0, "the message is empty")
        if isinstance(text, (bytes, bytearray, memoryview)):
            data = bytes(text)
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                return ReadableText(
                    "", len(data), f"the message is binary data ({len(data)} bytes), not text", True
                )
        if not isinstance(text, str):
            return ReadableText("", 0, f"the message is a {type(text).__name__}, not text")
        head = text[:MAX_ROUTED_CHARS]
        unreadable = sum(
            1
            for char in head
            if char == "\ufffd" or (unicodedata.category(char) == "Cc" and not char.isspace())
        )
        binary = unreadable > MAX_UNREADABLE_SHARE * len(head)
        if binary:
            problem = "the message looks like binary data (control characters), not text"
        elif not head.strip():
            problem = "the message is empty"
        elif not plain_text(head):
            problem = "the message has no words (only symbols or emoji)"
        else:
            problem = ""
        return ReadableText("" if problem else head, len(text), problem, binary)


@dataclass(frozen=True)
class RoutingDecision:
    """Where a message goes. ``crew`` is ``None`` for a handoff to a person."""

    crew: str | None
    score: float
    stage: str
    reason: str
    unsure: bool = False
    candidates: tuple = ()  # ((code, score), ...) best first, as the deciding stage saw them

    @property
    def handoff(self):
        return self.crew is None

    def as_dict(self):
        """Plain JSON data (what the routing cache stores)."""
        return {
            "crew": self.crew,
            "handoff": self.handoff,
            "score": round(self.score, 4),
            "stage": self.stage,
            "reason": self.reason,
            "unsure": self.unsure,
            "candidates": [[code, round(score, 4)] for code, score in self.candidates],
        }

    @classmethod
    def from_dict(cls, data):
        return cls(
            crew=data["crew"],
            score=float(data["score"]),
            stage=data["stage"],
            reason=data["reason"],
            unsure=bool(data.get("unsure")),
            candidates=tuple((code, float(score)) for code, score in data.get("candidates", ())),
        )


# -- the router ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RouterSettings:
    """The router's thresholds. Keyword scores are sums of term rarities (a term only one crew
    of six uses weighs about 1.5); similarities are cosines, plus ``keyword_blend`` times each
    crew's keyword score relative to the best one."""

    #: Keywords decide alone from this score on, with this lead over the runner-up.
    rules_min_score: float = 1.5
    rules_margin: float = 1.0
    #: Below this cosine, and with no keyword at all, no crew fits: handoff.
    similarity_floor: float = 0.4
    #: How much keyword evidence counts next to the cosine. The offline model's cosines
    #: between pt-BR texts lie close together (0.45-0.8), so a keyword lead weighs a lot.
    keyword_blend: float = 1.0
    #: A blended lead smaller than this is unsure: the LLM classifier is asked, if there is one.
    unsure_margin: float = 0.3
    #: Unsure and no classifier (or it failed): keep the best guess, or hand off.
    when_unsure: str = "best_guess"

    def __post_init__(self):
        for name in ("rules_min_score", "rules_margin", "keyword_blend", "unsure_margin"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise RoutingConfigError(f"{name} must be a number >= 0, got {value!r}")
        if not -1.0 <= self.similarity_floor <= 1.0:
            raise RoutingConfigError("similarity_floor is a cosine: between -1 and 1")
        if self.when_unsure not in UNSURE_POLICIES:
            raise RoutingConfigError(f"when_unsure must be one of {', '.join(UNSURE_POLICIES)}")


class _CrewVocabulary:
    """A crew's routing terms: stem -> [summed weight of its occurrences, words written]."""

    def __init__(self, crew):
        self.terms = {}
        self.keyword_phrases = []  # [(stems, keyword)] for the keywords of several words
        for example in crew.examples:
            self._add(example, EXAMPLE_WEIGHT)
        self._add(crew.purpose, PURPOSE_WEIGHT)
        for keyword in crew.keywords:
            stems = tuple(stem_ for _word, stem_ in terms(keyword))
            if len(stems) > 1:
                self.keyword_phrases.append((stems, keyword))
            self._add(keyword, KEYWORD_WEIGHT)

    def _add(self, text, weight):
        for word, stem_ in terms(text):
            entry = self.terms.setdefault(stem_, [0.0, set()])
            entry[0] += weight
            entry[1].add(word)


def saturated(weight):
    """A term's weight for a crew grows with its occurrences in the crew's hints, ever slower
    (BM25's term-frequency saturation, k = 1): a repeated word is central, not decisive."""
    return 2 * weight / (weight + 1)


class Router:
    """Routes one tenant's messages to its crews; build one per tenant and configuration.

    ``crews``: :class:`CrewRoute` objects or their plain dicts. ``embedder``: anything with
    ``embed(list_of_texts) -> list of unit vectors`` and a ``name`` (offline: the connectors'
    ``OnnxMiniLMEmbedder``); ``None`` leaves the similarity stage out. ``llm_classifier``:
    optional ``callable(text, candidates) -> crew code or None`` (``None``: no crew fits), where
    ``candidates`` is ``[{"code", "purpose", "examples"}, ...]`` of the available crews, best
    first; it owns its timeout, and any exception it raises falls back to the unsure policy.
    """

    def __init__(self, crews, embedder=None, llm_classifier=None, settings=None):
        self.crews = tuple(
            CrewRoute.from_dict(crew.as_dict() if isinstance(crew, CrewRoute) else crew)
            for crew in crews
        )
        codes = [crew.code for crew in self.crews]
        if len(set(codes)) != len(codes):
            raise RoutingConfigError(f"crew codes must be unique, got {codes}")
        self.settings = settings or RouterSettings()
        self.embedder = embedder
        self.llm_classifier = llm_classifier
        self._vocabularies = {crew.code: _CrewVocabulary(crew) for crew in self.crews}
        self._rarity = self._term_rarity()
        #: ``{code: [(stem, weight for the crew x rarity, words written)]}``, once per router.
        self._relevance = {
            code: [
                (stem_, saturated(weight) * self._rarity[stem_], tuple(words))
                for stem_, (weight, words) in vocabulary.terms.items()
            ]
            for code, vocabulary in self._vocabularies.items()
        }
        self._crew_vectors = self._embed_crews() if embedder is not None else {}
        configuration = {
            "lexicon": LEXICON_VERSION,
            "crews": [crew.as_dict() for crew in self.crews],
            "settings": self.settings.__dict__,
            "embedder": getattr(embedder, "name", type(embedder).__name__) if embedder else None,
            "llm": llm_classifier is not None,
        }
        #: Changes with anything that can change a decision: part of every cache id.
        self.fingerprint = hashlib.sha256(
            json.dumps(configuration, sort_keys=True).encode()
        ).hexdigest()

    def _term_rarity(self):
        """A term found in few crews' hints tells more than one found in all of them (IDF)."""
        counts = {}
        for vocabulary in self._vocabularies.values():
            for stem_ in vocabulary.terms:
                counts[stem_] = counts.get(stem_, 0) + 1
        total = len(self.crews)
        return {stem_: math.log((total + 1) / (count + 0.5)) for stem_, count in counts.items()}

    def _embed_crews(self):
        """Each crew's texts (purpose, each subject it lists, examples, keywords) as unit
        vectors, computed once in one batch."""
        texts, owners = [], []
        for crew in self.crews:
            crew_texts = [crew.purpose, *PURPOSE_CLAUSES.split(crew.purpose), *crew.examples]
            if crew.keywords:
                crew_texts.append(", ".join(crew.keywords))
            for text in dict.fromkeys(filter(None, map(embedded_text, crew_texts))):
                texts.append(text)
                owners.append(crew.code)
        by_crew = {}
        for owner, vector in zip(owners, self.embedder.embed(texts), strict=True):
            by_crew.setdefault(owner, []).append(vector)
        return by_crew

    # -- public ------------------------------------------------------------------------------

    def with_classifier(self, llm_classifier):
        """This router with ``llm_classifier`` (vocabularies and crew vectors shared, not
        rebuilt): a classifier may live for one request only, to count what it spends."""
        other = copy.copy(self)
        other.llm_classifier = llm_classifier
        if (llm_classifier is None) != (self.llm_classifier is None):
            # whether an LLM may settle unsure messages changes the decisions: and their ids
            other.fingerprint = hashlib.sha256(
                f"{self.fingerprint}:llm={llm_classifier is not None}".encode()
            ).hexdigest()
        return other

    def cache_id(self, request):
        """The routing cache's resource id for ``request`` (40 hex digits).

        Equal for messages that differ only in case, accents, punctuation or spacing, on the same
        channel, hours state and enabled services, under the same routing configuration: the
        router decides on exactly that normal form, so a cached decision is the one it would take.
        """
        readable = request.readable()
        payload = {
            "text": plain_text(readable.head) if not readable.problem else None,
            "problem": readable.problem,
            "length": readable.length if readable.length > MAX_ROUTED_CHARS else None,
            "channel": request.channel,
            "open": request.is_open,
            "services": sorted(request.enabled_services)
            if request.enabled_services is not None
            else None,
            "router": self.fingerprint,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:40]

    def route(self, request):
        """The :class:`RoutingDecision` for ``request``: a bad message is a handoff, never an
        error."""
        readable = request.readable()
        if readable.problem:
            return RoutingDecision(None, 0.0, "rules", f"handoff: {readable.problem}")
        decision = self._route_text(readable.head, request)
        if readable.length > len(readable.head):
            decision = replace(
                decision,
                reason=f"{decision.reason} (routed on the first {len(readable.head)} of "
                f"{readable.length} characters)",
            )
        return decision

    # -- stages ------------------------------------------------------------------------------

    def _route_text(self, text, request):
        serving = [
            crew
            for crew in self.crews
            if crew.active and (not crew.channels or request.channel in crew.channels)
        ]
        if not serving:
            return RoutingDecision(
                None,
                0.0,
                "rules",
                f"handoff: no active crew serves the channel {request.channel!r}",
            )
        unavailable = {crew.code: crew.unavailable_because(request) for crew in serving}
        if all(unavailable.values()):
            reasons = "; ".join(unavailable.values())
            return RoutingDecision(None, 0.0, "rules", f"handoff: no crew is available ({reasons})")
        if len(serving) == 1:
            return RoutingDecision(
                serving[0].code, 1.0, "rules", f"the only crew serving channel {request.channel!r}"
            )

        keyword_scores, decisive = self._keyword_scores(text, serving)
        ranked = sorted(keyword_scores.items(), key=lambda item: -item[1][0])
        (best, (best_score, best_words)), (second, (second_score, _)) = ranked[:2]
        keyword_candidates = tuple((code, score) for code, (score, _words) in ranked)
        settings = self.settings
        if (
            decisive
            and best_score >= settings.rules_min_score
            and best_score - second_score >= settings.rules_margin
        ):
            reason = (
                f"keywords {', '.join(best_words)} point to {best!r} ({best_score:.2f}, "
                f"next {second!r} {second_score:.2f})"
            )
            return self._decided(best, best_score, "rules", reason, unavailable, keyword_candidates)
        if not self._crew_vectors:
            why = (
                f"keywords are not decisive ({best!r} {best_score:.2f}, next {second!r} "
                f"{second_score:.2f})"
            )
            return self._unsure(text, serving, unavailable, keyword_candidates, "rules", why)
        return self._similarity_stage(text, serving, unavailable, keyword_scores)

    def _keyword_scores(self, text, serving):
        """``({code: (score, message words that matched)}, whether they may decide)``.

        A greeting before a question is politeness, not its subject: it counts only when
        nothing else matches and it is at least half of what the message says ("Obrigado pela
        ajuda!", not "Bom dia, tem sandália rasteira?"), and decides alone only when the message
        is nothing but courtesy.
        """
        message_terms = terms(text)
        subject_terms = [term for term in message_terms if term[1] != COURTESY]
        scores = {crew.code: self._keyword_score(subject_terms, crew.code) for crew in serving}
        courtesies = len(message_terms) - len(subject_terms)
        if courtesies < len(subject_terms) or any(score for score, _words in scores.values()):
            return scores, True
        scores = {crew.code: self._keyword_score(message_terms, crew.code) for crew in serving}
        return scores, not subject_terms

    def _keyword_score(self, message_terms, code):
        """The sum over the message's terms of their best match in the crew's hints, times the
        term's weight for the crew, its rarity among the crews and its lexicon weight; and the
        words that matched."""
        vocabulary = self._vocabularies[code]
        found = {}  # stem -> (best match, word): one subject counts once, however it is worded
        for word, stem_ in dict.fromkeys(message_terms):
            best = 0.0
            for crew_stem, relevance, crew_words in self._relevance[code]:
                for crew_word in crew_words:
                    best = max(best, term_match((word, stem_), (crew_word, crew_stem)) * relevance)
            if best > found.get(stem_, (0.0,))[0]:
                found[stem_] = (best, word)
        score = sum(best * CONCEPT_WEIGHTS.get(stem_, 1.0) for stem_, (best, _) in found.items())
        matched = ["(greeting)" if word == COURTESY else word for _best, word in found.values()]
        present = {stem_ for _word, stem_ in message_terms}
        for stems, keyword in vocabulary.keyword_phrases:
            if present.issuperset(stems):
                score += KEYWORD_WEIGHT * sum(self._rarity[stem_] for stem_ in stems)
                matched.append(repr(keyword))
        return score, matched

    def _similarity_stage(self, text, serving, unavailable, keyword_scores):
        settings = self.settings
        similarities = self._similarities(embedded_text(text), serving)
        top_keyword = max(score for score, _words in keyword_scores.values()) or 1.0
        blended = {
            code: similarity + settings.keyword_blend * keyword_scores[code][0] / top_keyword
            for code, similarity in similarities.items()
        }
        candidates = tuple(sorted(blended.items(), key=lambda item: -item[1]))
        (best, best_score), (second, second_score) = candidates[:2]
        if similarities[best] < settings.similarity_floor and not keyword_scores[best][0]:
            return RoutingDecision(
                None,
                best_score,
                "similarity",
                f"handoff: no crew fits (the closest, {best!r}, is at {similarities[best]:.2f}, "
                f"below {settings.similarity_floor:.2f}, and no keyword matches)",
                candidates=candidates,
            )
        comparison = f"{best!r} {best_score:.2f}, next {second!r} {second_score:.2f}"
        if best_score - second_score >= settings.unsure_margin:
            reason = f"similar to {best!r} ({comparison})"
            return self._decided(best, best_score, "similarity", reason, unavailable, candidates)
        why = f"{comparison}: a lead under {settings.unsure_margin:.2f}"
        return self._unsure(text, serving, unavailable, candidates, "similarity", why)

    def _similarities(self, text, serving):
        """The best cosine of the message to each crew's texts (all vectors are unit length)."""
        import numpy  # with the embedder: only needed when keywords do not decide

        (vector,) = self.embedder.embed([text])
        message = numpy.asarray(vector)
        return {
            crew.code: float(numpy.max(numpy.asarray(self._crew_vectors[crew.code]) @ message))
            for crew in serving
        }

    def _unsure(self, text, serving, unavailable, candidates, stage, why):
        """Rules and similarity both unsure: ask the classifier if there is one, else follow
        ``when_unsure``."""
        if self.llm_classifier is not None:
            decision, failure = self._classify(text, serving, unavailable, candidates, why)
            if decision is not None:
                return decision
            why = f"{why}; {failure}"
        best, best_score = candidates[0]
        if best_score <= 0:
            reason = f"handoff: no crew fits ({why})"
            return RoutingDecision(None, best_score, stage, reason, True, candidates)
        if self.settings.when_unsure == "handoff":
            reason = f"handoff: unsure ({why})"
            return RoutingDecision(None, best_score, stage, reason, True, candidates)
        reason = f"best guess {best!r}, unsure ({why})"
        return self._decided(best, best_score, stage, reason, unavailable, candidates, True)

    def _classify(self, text, serving, unavailable, candidates, why):
        """``(decision, None)`` from the LLM classifier, or ``(None, why it gave none)``."""
        rank = {code: index for index, (code, _score) in enumerate(candidates)}
        offered = sorted(
            (crew for crew in serving if not unavailable[crew.code]),
            key=lambda crew: rank.get(crew.code, len(rank)),
        )
        choices = [
            {"code": crew.code, "purpose": crew.purpose, "examples": list(crew.examples)}
            for crew in offered
        ]
        try:
            answer = self.llm_classifier(text, choices)
        except Exception as exc:  # noqa: BLE001 - the caller's LLM call: any failure falls back
            # The type only: an LLM client's message may carry its endpoint or account.
            _logger.warning("the routing LLM classifier failed: %s", type(exc).__name__)
            return None, f"the LLM classifier failed ({type(exc).__name__})"
        if answer is None:
            reason = f"handoff: the LLM classifier found no crew for it ({why})"
            return RoutingDecision(None, 0.0, "llm", reason, False, candidates), None
        if answer not in {choice["code"] for choice in choices}:
            # A label outside the offered set is ignored, never followed (nor a silent stop).
            _logger.warning("the routing LLM classifier answered a crew it was not offered")
            return None, "the LLM classifier answered a crew it was not offered"
        reason = f"the LLM classifier chose {answer!r} ({why})"
        return RoutingDecision(answer, 1.0, "llm", reason, False, candidates), None

    @staticmethod
    def _decided(code, score, stage, reason, unavailable, candidates, unsure=False):
        """The decision for crew ``code``, or a handoff that says why that crew cannot take it:
        never the runner-up, which fits the message less."""
        if unavailable.get(code):
            reason = f"handoff: {reason}; but {unavailable[code]}"
            return RoutingDecision(None, score, stage, reason, unsure, candidates)
        return RoutingDecision(code, score, stage, reason, unsure, candidates)
