"""What the indexing jobs put in a tenant's Qdrant collections (plain Python, no Odoo).

- :func:`product_document`: one product (variant) as an item to embed, with the payload keys the
  ``semantic_search`` filters know (:data:`qdrant_store.DEFAULT_FILTER_KEYS`);
- :func:`rules_documents`: a tenant's business rules, split into chunks one search hit each;
- :class:`IndexStore`: the store plus a full sync, so a re-index also drops what is gone, safe
  to share between threads in local mode too.
"""

import re
import threading

from .qdrant_store import ID_KEY, QdrantStore

MAX_CHUNK_CHARS = 500
SCROLL_PAGE = 256
# A line that starts a list item: "-", "*", "•", "1." or "1)".
_BULLET = re.compile(r"^\s*(?:[-*\u2022]|\d{1,3}[.)])\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+")


def product_document(
    product_id,
    name,
    default_code=None,
    category=None,
    description=None,
    price=None,
    category_id=None,
    company_id=None,
    template_id=None,
):
    """The item of one product: its words in ``text``, its facts in ``payload``."""
    text = " | ".join(
        part.strip()
        for part in (name, category, default_code, description)
        if isinstance(part, str) and part.strip()
    )
    payload = {
        "name": name,
        "default_code": default_code or None,
        "category": category or None,
        "category_id": category_id or None,
        "price": None if price is None else round(float(price), 2),
        "company_id": company_id or None,
        "template_id": template_id or None,
    }
    return {
        "id": product_id,
        "text": text,
        "payload": {key: value for key, value in payload.items() if value is not None},
    }


def text_chunks(text, max_chars=MAX_CHUNK_CHARS):
    """``text`` cut into search-sized chunks.

    Paragraphs (blank-line separated) are the units, and so is each list item of a paragraph
    written as a list; a unit longer than ``max_chars`` is cut at sentence ends, and a sentence
    longer than that at spaces.
    """
    chunks = []
    for block in re.split(r"\n\s*\n", text or ""):
        lines = [line.strip() for line in block.splitlines() if line.strip()]
        if not lines:
            continue
        units = lines if any(_BULLET.match(line) for line in lines) else [" ".join(lines)]
        for unit in units:
            chunks.extend(_packed(_SENTENCE_END.split(unit), max_chars))
    return chunks


def _packed(sentences, max_chars):
    """Consecutive sentences joined while they fit in ``max_chars``."""
    chunks, current = [], ""
    for sentence in sentences:
        for piece in _cut(sentence, max_chars):
            if current and len(current) + 1 + len(piece) > max_chars:
                chunks.append(current)
                current = piece
            else:
                current = f"{current} {piece}" if current else piece
    if current:
        chunks.append(current)
    return chunks


def _cut(sentence, max_chars):
    """``sentence`` in pieces of at most ``max_chars``, cut at spaces where there are any."""
    pieces = []
    while len(sentence) > max_chars:
        cut = sentence.rfind(" ", 0, max_chars + 1)
        cut = cut if cut > 0 else max_chars
        pieces.append(sentence[:cut].strip())
        sentence = sentence[cut:].strip()
    if sentence:
        pieces.append(sentence)
    return pieces


def rules_documents(text, lang=None):
    """The items of a tenant's business rules: ``rule-<n>`` per chunk, in order."""
    payload = {"topic": "business_rules"}
    if lang:
        payload["lang"] = lang
    return [
        {"id": f"rule-{index}", "text": chunk, "payload": dict(payload)}
        for index, chunk in enumerate(text_chunks(text))
    ]


class _SerialClient:
    """A client whose calls run one at a time: qdrant-client's embedded engine is not
    thread-safe. Call by call, not operation by operation, so that a long indexing (embedding
    is most of its time) lets searches through between its batches."""

    def __init__(self, client):
        self._client = client
        self._lock = threading.Lock()

    def __getattr__(self, name):
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def serialised(*args, **kwargs):
            with self._lock:
                return attribute(*args, **kwargs)

        return serialised


class IndexStore(QdrantStore):
    """A :class:`QdrantStore` that can also list and replace a whole collection; in local
    mode its client calls are serialised, so threads may share it."""

    def __init__(self, embedder, **options):
        super().__init__(embedder, **options)
        if options.get("path") is not None:
            self.client = _SerialClient(self.client)

    def has_collection(self, account_id, purpose):
        """Whether the tenant has a ``purpose`` collection (made with this embedder)."""
        return self._existing_collection(account_id, purpose) is not None

    def item_ids(self, account_id, purpose):
        """The caller ids of every point of the tenant's ``purpose`` collection."""
        name = self._existing_collection(account_id, purpose)
        if name is None:
            return set()
        ids, offset = set(), None
        while True:
            points, offset = self._call(
                "list points",
                self.client.scroll,
                name,
                limit=SCROLL_PAGE,
                offset=offset,
                with_payload=[ID_KEY],
                with_vectors=False,
            )
            ids.update((point.payload or {}).get(ID_KEY, point.id) for point in points)
            if offset is None:
                return ids

    def replace_all(self, account_id, purpose, items, on_batch=None, recreate=False):
        """Make the collection hold exactly ``items``.

        Every item is checked first; then all are written (``on_batch`` reports progress) and
        only then are the points of items no longer there deleted, so searches meanwhile see
        the old or the new version of each item, never a collection emptied halfway.
        ``recreate`` drops the collection first (its embedder changed: the old vectors are
        useless anyway). Returns the upsert counts plus ``deleted``.
        """
        items = [self._checked_item(item) for item in items]
        if recreate:
            self.ensure_collection(account_id, purpose, recreate=True)
        counts = self.upsert(account_id, purpose, items, on_batch=on_batch)
        kept = {item["id"] for item in items}
        stale = sorted(self.item_ids(account_id, purpose) - kept, key=str)
        self.delete(account_id, purpose, stale)
        return {**counts, "deleted": len(stale)}
