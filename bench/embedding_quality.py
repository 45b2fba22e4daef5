"""Retrieval quality of the offline embedder on pt-BR product questions, against a lexical baseline.

The catalogue and the questions (``bench/data/ptbr_products.json``: customers' WhatsApp wording,
without accents, with typos and synonyms, each with the ids of the products that answer it)
are indexed as the addon indexes products (``qdrant_indexing.product_document``), into a real
``QdrantStore`` in local mode in a temporary directory, with the default embedder (offline
all-MiniLM-L6-v2 int8). The baseline is BM25 over the same texts, lower-cased and without
accents, measured in the same run.

Figures (one ``name=value`` per line), for each ranking:
- ``recall_at_k``: mean over the questions of |relevant in the top k| / min(k, |relevant|);
- ``mrr``: mean reciprocal rank of the first relevant product (0 beyond the top 10).
An embedding model reached through litellm is measured too when ``MCP_BENCH_EMBEDDING_MODEL``
is set (with ``MCP_BENCH_EMBEDDING_API_BASE`` and ``MCP_BENCH_EMBEDDING_API_KEY`` as needed);
otherwise it is reported as skipped, as no provider is reachable here.
The last line is ``embedding_recall_at_5=<value>`` (the offline embedder).
"""

import json
import math
import os
import statistics
import sys
import tempfile
import time
import unicodedata
from collections import Counter
from pathlib import Path

from benchlib import emit  # bench/ is the script's own directory

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from conftest import load_services

load_services("mcp_connectors")
from mcp_connectors_services import embeddings, qdrant_indexing, qdrant_store

DATA = Path(__file__).resolve().parent / "data" / "ptbr_products.json"
ACCOUNT_ID = 1
DEPTH = 10  # ranks looked at for MRR
CUTOFFS = (1, 5)


def documents(data):
    return [
        qdrant_indexing.product_document(
            product["id"],
            product["name"],
            default_code=product["default_code"],
            category=product["category"],
            description=product["description"],
            price=product["price"],
        )
        for product in data["products"]
    ]


def scores(rankings, queries):
    """``{"recall_at_1", "recall_at_5", "mrr"}`` of ``rankings`` (one id list per query)."""
    figures = {}
    for k in CUTOFFS:
        figures[f"recall_at_{k}"] = statistics.mean(
            len(set(ranking[:k]) & set(query["relevant"])) / min(k, len(query["relevant"]))
            for ranking, query in zip(rankings, queries, strict=True)
        )
    reciprocal = []
    for ranking, query in zip(rankings, queries, strict=True):
        ranks = [rank for rank, item in enumerate(ranking[:DEPTH], 1) if item in query["relevant"]]
        reciprocal.append(1 / ranks[0] if ranks else 0.0)
    figures["mrr"] = statistics.mean(reciprocal)
    return figures


def words(text):
    """Lower-case words without accents: customers rarely type them."""
    plain = unicodedata.normalize("NFKD", text.lower())
    plain = "".join(char for char in plain if not unicodedata.combining(char))
    return "".join(char if char.isalnum() else " " for char in plain).split()


class BM25:
    """Okapi BM25 (k1 = 1.5, b = 0.75) over the documents' texts."""

    def __init__(self, items, k1=1.5, b=0.75):
        self.ids = [item["id"] for item in items]
        self.counts = [Counter(words(item["text"])) for item in items]
        self.lengths = [sum(counts.values()) for counts in self.counts]
        self.average = statistics.mean(self.lengths)
        frequency = Counter(word for counts in self.counts for word in counts)
        total = len(items)
        self.idf = {
            word: math.log(1 + (total - seen + 0.5) / (seen + 0.5))
            for word, seen in frequency.items()
        }
        self.k1, self.b = k1, b

    def rank(self, query):
        terms = words(query)
        scored = []
        for item_id, counts, length in zip(self.ids, self.counts, self.lengths, strict=True):
            score = 0.0
            for term in terms:
                tf = counts.get(term, 0)
                if tf:
                    norm = self.k1 * (1 - self.b + self.b * length / self.average)
                    score += self.idf[term] * tf * (self.k1 + 1) / (tf + norm)
            scored.append((score, item_id))
        scored.sort(key=lambda pair: -pair[0])
        return [item_id for score, item_id in scored if score > 0][:DEPTH]


def embedding_rankings(embedder, items, queries):
    """Index ``items`` with ``embedder`` in a local store; rank each query's top hits."""
    with (
        tempfile.TemporaryDirectory(prefix="mcp_bench_qdrant_") as folder,
        qdrant_store.QdrantStore(embedder, path=folder) as store,
    ):
        started = time.perf_counter()
        store.upsert(ACCOUNT_ID, "products", items)
        indexed = time.perf_counter() - started
        rankings, timings = [], []
        for query in queries:
            started = time.perf_counter()
            hits = store.semantic_search(ACCOUNT_ID, "products", query["text"], limit=DEPTH)
            timings.append(time.perf_counter() - started)
            rankings.append([hit["id"] for hit in hits])
    return rankings, indexed, statistics.median(timings)


def main():
    data = json.loads(DATA.read_text(encoding="utf-8"))
    items, queries = documents(data), data["queries"]
    emit("products", len(items))
    emit("queries", len(queries))

    bm25 = BM25(items)
    for name, value in scores([bm25.rank(query["text"]) for query in queries], queries).items():
        emit(f"bm25_{name}", f"{value:.3f}")

    model = os.environ.get("MCP_BENCH_EMBEDDING_MODEL")
    if model:
        litellm = embeddings.LitellmEmbedder(
            model,
            api_base=os.environ.get("MCP_BENCH_EMBEDDING_API_BASE"),
            api_key=os.environ.get("MCP_BENCH_EMBEDDING_API_KEY"),
        )
        rankings, _indexed, _median = embedding_rankings(litellm, items, queries)
        for name, value in scores(rankings, queries).items():
            emit(f"litellm_{name}", f"{value:.3f}")
    else:
        emit("litellm", "skipped (set MCP_BENCH_EMBEDDING_MODEL; no provider is reachable here)")

    embedder = embeddings.OnnxMiniLMEmbedder()
    emit("embedder", embedder.name)
    rankings, indexed, median = embedding_rankings(embedder, items, queries)
    emit("embedding_index_seconds", f"{indexed:.2f}")
    emit("embedding_search_median_ms", f"{median * 1000:.1f}")
    figures = scores(rankings, queries)
    emit("embedding_recall_at_1", f"{figures['recall_at_1']:.3f}")
    emit("embedding_mrr", f"{figures['mrr']:.3f}")
    emit("embedding_recall_at_5", f"{figures['recall_at_5']:.3f}")


if __name__ == "__main__":
    main()
