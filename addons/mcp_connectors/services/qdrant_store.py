"""Per-tenant vector collections in Qdrant (plain Python, no Odoo).

Each tenant (Chatwoot ``account_id``) gets its own collection per purpose, named
``t<account_id>_<purpose>``, so no query can reach another tenant's points. Each collection
records the embedder's name and dimension in its metadata; a store with another embedder
refuses it until the caller re-creates it, so vectors of two models never mix.

Two modes:

- local (``path=``): qdrant-client's embedded engine in a directory. Only ONE process may open a
  directory at a time (a second one gets "already accessed by another instance"), so this mode
  suits a single-process Odoo (development, ``--workers=0``) or a dedicated indexing process;
  the search is a brute-force scan, fine up to tens of thousands of points.
- server (``url=``, optional ``api_key``): a Qdrant server, for deployments with several workers.

qdrant-client is imported on first use, not at import.
"""

import math
import re
import uuid

PURPOSES = ("products", "business_rules", "faq")
#: Payload keys each purpose may be filtered on (the indexers write these keys).
DEFAULT_FILTER_KEYS = {
    "products": ("category", "category_id", "company_id", "default_code", "price", "in_stock"),
    "business_rules": ("topic", "lang"),
    "faq": ("topic", "lang"),
}
#: Payload keys the store owns: the caller's id and the embedded text.
ID_KEY = "_id"
TEXT_KEY = "_text"
RANGE_OPERATORS = ("gt", "gte", "lt", "lte")
#: Fixed namespace so a string id maps to the same point UUID in every process and release.
POINT_ID_NAMESPACE = uuid.UUID("5b0f3c1e-7d0a-4c55-9a53-2f1f6e0c9d41")
MAX_LIMIT = 100


class QdrantStoreError(RuntimeError):
    """Qdrant could not do what was asked (unreachable, locked, refused...)."""


class EmbedderMismatch(QdrantStoreError):
    """The collection holds vectors of another embedding model or dimension."""


def collection_name(account_id, purpose):
    """``t<account_id>_<purpose>``; a bad account id or purpose raises ValueError."""
    if isinstance(account_id, bool) or not isinstance(account_id, int) or account_id <= 0:
        raise ValueError(f"account_id must be a positive integer, got {account_id!r}")
    if purpose not in PURPOSES:
        raise ValueError(f"unknown collection purpose {purpose!r}; expected one of {PURPOSES}")
    return f"t{account_id}_{purpose}"


def point_id(item_id):
    """Qdrant point id for a caller id: a non-negative int as is, a string as a stable UUID."""
    if isinstance(item_id, int) and not isinstance(item_id, bool) and item_id >= 0:
        return item_id
    if isinstance(item_id, str) and item_id:
        return str(uuid.uuid5(POINT_ID_NAMESPACE, item_id))
    raise ValueError(
        f"an item id must be a non-negative integer or a non-empty string: {item_id!r}"
    )


def _safe_url(url):
    """The URL without credentials, for messages."""
    return re.sub(r"//[^/@]*@", "//", url)


class QdrantStore:
    """Per-tenant collections over qdrant-client, vectors computed with ``embedder``.

    Give exactly one of ``path`` (local mode, one process only, see the module docstring) or
    ``url`` (server mode). ``timeout`` (seconds) bounds every server request.
    """

    def __init__(
        self,
        embedder,
        *,
        path=None,
        url=None,
        api_key=None,
        timeout=10,
        batch_size=64,
        filter_keys=None,
    ):
        if (path is None) == (url is None):
            raise ValueError("give either a local path or a server URL for Qdrant")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.embedder = embedder
        self.batch_size = batch_size
        self.filter_keys = {
            purpose: frozenset(keys)
            for purpose, keys in (filter_keys or DEFAULT_FILTER_KEYS).items()
        }
        self.location = str(path) if path is not None else _safe_url(url)
        # Collections already checked against the embedder (name -> True).
        self._checked = set()
        from qdrant_client import QdrantClient

        try:
            if path is not None:
                self.client = QdrantClient(path=str(path))
            else:
                # No compatibility probe: it would call the server (and warn) at construction.
                self.client = QdrantClient(
                    url=url,
                    api_key=api_key,
                    timeout=math.ceil(timeout),
                    check_compatibility=False,
                )
        except RuntimeError as exc:  # the directory is locked by another process
            raise QdrantStoreError(f"cannot open local Qdrant at {self.location}: {exc}") from None

    def close(self):
        self.client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def _call(self, action, method, *args, **kwargs):
        """Run one client call, turning transport and server failures into QdrantStoreError."""
        from qdrant_client.http.exceptions import ApiException

        try:
            return method(*args, **kwargs)
        except (ApiException, OSError) as exc:
            raise QdrantStoreError(
                f"Qdrant at {self.location} failed to {action}: {type(exc).__name__}: "
                f"{str(exc)[:300]}"
            ) from None

    # Collections

    def ensure_collection(self, account_id, purpose, dimension=None, recreate=False):
        """Create the tenant's collection (cosine) if missing; return its name.

        An existing collection made with another embedder or dimension raises EmbedderMismatch,
        unless ``recreate`` is true: then it is dropped (all its points) and created afresh.
        """
        from qdrant_client import models

        name = collection_name(account_id, purpose)
        dimension = dimension or self.embedder.dimension
        wanted = {"embedder": self.embedder.name, "dimension": dimension}
        if self._call("check a collection", self.client.collection_exists, name):
            found = self._metadata(name)
            if found == wanted and not recreate:
                self._checked.add(name)
                return name
            if not recreate:
                raise EmbedderMismatch(
                    f"collection {name} holds vectors of {found.get('embedder')!r} "
                    f"({found.get('dimension')} dimensions), not {wanted['embedder']!r} "
                    f"({dimension}); re-index it with recreate=True"
                )
            self._call("drop a collection", self.client.delete_collection, name)
        self._checked.discard(name)
        self._call(
            "create a collection",
            self.client.create_collection,
            name,
            vectors_config=models.VectorParams(size=dimension, distance=models.Distance.COSINE),
            metadata=wanted,
        )
        self._checked.add(name)
        return name

    def _metadata(self, name):
        info = self._call("read a collection", self.client.get_collection, name)
        metadata = dict(info.config.metadata or {})
        return {"embedder": metadata.get("embedder"), "dimension": metadata.get("dimension")}

    def _existing_collection(self, account_id, purpose):
        """The checked collection's name, or None when the tenant has none for ``purpose``."""
        name = collection_name(account_id, purpose)
        if name in self._checked:
            return name
        if not self._call("check a collection", self.client.collection_exists, name):
            return None
        return self.ensure_collection(account_id, purpose)

    # Points

    def upsert(self, account_id, purpose, items, on_batch=None):
        """Embed and store ``items`` (dicts with ``id``, ``text``, optional ``payload``).

        Every item is validated before anything is written. Writes go in batches of
        ``batch_size``; ``on_batch(done, total)`` is called after each one. Returns
        ``{"total": n, "upserted": n, "batches": k}``.
        """
        from qdrant_client import models

        items = [self._checked_item(item) for item in items]
        name = self.ensure_collection(account_id, purpose)
        done = batches = 0
        for start in range(0, len(items), self.batch_size):
            batch = items[start : start + self.batch_size]
            vectors = self.embedder.embed([item["text"] for item in batch])
            points = [
                models.PointStruct(
                    id=point_id(item["id"]),
                    vector=vector,
                    payload={**item["payload"], ID_KEY: item["id"], TEXT_KEY: item["text"]},
                )
                for item, vector in zip(batch, vectors, strict=True)
            ]
            self._call("write points", self.client.upsert, name, points=points, wait=True)
            done += len(batch)
            batches += 1
            if on_batch:
                on_batch(done, len(items))
        return {"total": len(items), "upserted": done, "batches": batches}

    @staticmethod
    def _checked_item(item):
        if not isinstance(item, dict):
            raise TypeError(f"an item must be a dict with id and text, got {type(item).__name__}")
        point_id(item.get("id"))
        text = item.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"item {item.get('id')!r} has no text to embed")
        payload = item.get("payload") or {}
        if not isinstance(payload, dict):
            raise TypeError(f"item {item['id']!r}: payload must be a dict")
        if ID_KEY in payload or TEXT_KEY in payload:
            raise ValueError(f"item {item['id']!r}: payload keys {ID_KEY}, {TEXT_KEY} are reserved")
        return {"id": item["id"], "text": text, "payload": payload}

    def delete(self, account_id, purpose, ids):
        """Remove the points of these caller ids; returns how many ids were asked for."""
        from qdrant_client import models

        ids = [point_id(item_id) for item_id in ids]
        name = self._existing_collection(account_id, purpose)
        if name and ids:
            self._call(
                "delete points",
                self.client.delete,
                name,
                points_selector=models.PointIdsList(points=ids),
                wait=True,
            )
        return len(ids)

    def semantic_search(self, account_id, purpose, query, limit=5, filters=None):
        """The ``limit`` points closest to ``query``, as JSON-able dicts.

        ``filters`` maps declared payload keys to a value (equality), a list (any of) or a dict
        of ``gt/gte/lt/lte`` bounds. Each hit is ``{"id", "score", "text", "payload"}``; a tenant
        without a collection for ``purpose`` gets no hits.
        """
        if not isinstance(query, str) or not query.strip():
            raise ValueError("the search query must be a non-empty string")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit must be an integer from 1 to {MAX_LIMIT}")
        query_filter = self._filter(purpose, filters)
        name = self._existing_collection(account_id, purpose)
        if name is None:
            return []
        (vector,) = self.embedder.embed([query])
        response = self._call(
            "search",
            self.client.query_points,
            name,
            query=vector,
            query_filter=query_filter,
            limit=limit,
            with_payload=True,
        )
        hits = []
        for point in response.points:
            payload = dict(point.payload or {})
            hits.append(
                {
                    "id": payload.pop(ID_KEY, point.id),
                    "score": round(float(point.score), 6),
                    "text": payload.pop(TEXT_KEY, ""),
                    "payload": payload,
                }
            )
        return hits

    def _filter(self, purpose, filters):
        from qdrant_client import models

        collection_name(1, purpose)  # validates the purpose before the filter keys
        if not filters:
            return None
        if not isinstance(filters, dict):
            raise TypeError("filters must be a dict of payload key to condition")
        allowed = self.filter_keys.get(purpose, frozenset())
        conditions = []
        for key, condition in filters.items():
            if key not in allowed:
                raise ValueError(
                    f"cannot filter {purpose} on {key!r}; allowed keys: {sorted(allowed)}"
                )
            conditions.append(models.FieldCondition(key=key, **self._condition(key, condition)))
        return models.Filter(must=conditions)

    @staticmethod
    def _condition(key, condition):
        from qdrant_client import models

        scalar = (str, int, bool)
        if isinstance(condition, scalar):
            return {"match": models.MatchValue(value=condition)}
        if (
            isinstance(condition, list)
            and condition
            and (
                all(isinstance(value, str) for value in condition)
                or all(
                    isinstance(value, int) and not isinstance(value, bool) for value in condition
                )
            )
        ):
            return {"match": models.MatchAny(any=condition)}
        if (
            isinstance(condition, dict)
            and condition
            and set(condition) <= set(RANGE_OPERATORS)
            and all(
                isinstance(value, int | float) and not isinstance(value, bool)
                for value in condition.values()
            )
        ):
            return {"range": models.Range(**condition)}
        raise ValueError(
            f"filter on {key!r} must be a value, a non-empty list of strings or of integers, "
            f"or a dict of {'/'.join(RANGE_OPERATORS)} numeric bounds"
        )
