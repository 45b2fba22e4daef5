"""Per-tenant Qdrant collections on real qdrant-client local mode; vectors from loopback."""

import importlib

import pytest
from conftest import load_services
from test_embeddings import API_KEY, DIMENSION, OpenAIEmbeddingsServer

PRODUCTS = [
    {
        "id": 1,
        "text": "cerveja artesanal IPA garrafa",
        "payload": {"category": "bebidas", "price": 18.9},
    },
    {"id": 2, "text": "cerveja pilsen lata", "payload": {"category": "bebidas", "price": 4.5}},
    {"id": 3, "text": "queijo minas frescal", "payload": {"category": "frios", "price": 32.0}},
    {"id": "SKU-4", "text": "vinho tinto seco", "payload": {"category": "bebidas", "price": 59.0}},
]


@pytest.fixture(scope="module")
def services():
    load_services("mcp_connectors")
    return (
        importlib.import_module("mcp_connectors_services.qdrant_store"),
        importlib.import_module("mcp_connectors_services.embeddings"),
    )


@pytest.fixture(scope="module")
def server():
    with OpenAIEmbeddingsServer() as running:
        yield running


@pytest.fixture
def embedder(services, server):
    _, embeddings = services
    return embeddings.LitellmEmbedder(
        "openai/bow-64", api_base=server.api_base, api_key=API_KEY, dimension=DIMENSION
    )


@pytest.fixture
def store(services, embedder, tmp_path):
    qdrant_store, _ = services
    with qdrant_store.QdrantStore(embedder, path=tmp_path / "qdrant", batch_size=3) as opened:
        yield opened


def test_collection_names_are_per_tenant_and_validated(services):
    qdrant_store, _ = services
    assert qdrant_store.collection_name(7, "products") == "t7_products"
    assert qdrant_store.collection_name(7, "business_rules") == "t7_business_rules"
    for account_id, purpose in [(0, "faq"), (-1, "faq"), (True, "faq"), ("7", "faq"), (7, "x")]:
        with pytest.raises(ValueError):
            qdrant_store.collection_name(account_id, purpose)


def test_point_ids_are_stable(services):
    qdrant_store, _ = services
    assert qdrant_store.point_id(42) == 42
    assert qdrant_store.point_id("SKU-4") == qdrant_store.point_id("SKU-4")
    assert qdrant_store.point_id("SKU-4") != qdrant_store.point_id("SKU-5")
    for bad in (-1, "", None, 1.5, True):
        with pytest.raises(ValueError):
            qdrant_store.point_id(bad)


def test_upsert_in_batches_reports_progress(store):
    progress = []
    counts = store.upsert(1, "products", PRODUCTS, on_batch=lambda d, t: progress.append((d, t)))
    assert counts == {"total": 4, "upserted": 4, "batches": 2}
    assert progress == [(3, 4), (4, 4)]
    assert store.client.count("t1_products").count == 4
    # Upserting the same ids again replaces, never duplicates.
    store.upsert(1, "products", PRODUCTS)
    assert store.client.count("t1_products").count == 4


def test_search_ranks_similar_text_first_and_returns_json_hits(store):
    store.upsert(1, "products", PRODUCTS)
    hits = store.semantic_search(1, "products", "cerveja IPA", limit=4)
    ranked = [hit["id"] for hit in hits]
    assert ranked[0] == 1 and ranked.index(2) < ranked.index(3)
    assert hits[0]["score"] > hits[1]["score"]
    assert hits[0] == {
        "id": 1,
        "score": hits[0]["score"],
        "text": "cerveja artesanal IPA garrafa",
        "payload": {"category": "bebidas", "price": 18.9},
    }
    (vinho,) = store.semantic_search(1, "products", "vinho tinto", limit=1)
    assert vinho["id"] == "SKU-4"


def test_tenants_never_see_each_other(store):
    store.upsert(1, "products", PRODUCTS[:2])
    store.upsert(2, "products", [{"id": 1, "text": "cerveja do tenant dois", "payload": {}}])
    hits_1 = store.semantic_search(1, "products", "cerveja", limit=10)
    hits_2 = store.semantic_search(2, "products", "cerveja", limit=10)
    assert {hit["text"] for hit in hits_1} == {PRODUCTS[0]["text"], PRODUCTS[1]["text"]}
    assert [hit["text"] for hit in hits_2] == ["cerveja do tenant dois"]
    assert store.semantic_search(3, "products", "cerveja") == []
    assert store.semantic_search(1, "faq", "cerveja") == []
    store.delete(2, "products", [1])
    assert store.semantic_search(2, "products", "cerveja") == []
    assert len(store.semantic_search(1, "products", "cerveja", limit=10)) == 2


def test_filters_on_declared_keys(store):
    store.upsert(1, "products", PRODUCTS)
    by_category = store.semantic_search(
        1, "products", "queijo", limit=10, filters={"category": "frios"}
    )
    assert [hit["id"] for hit in by_category] == [3]
    cheap = store.semantic_search(1, "products", "cerveja", limit=10, filters={"price": {"lt": 20}})
    assert {hit["id"] for hit in cheap} == {1, 2}
    ranged = store.semantic_search(
        1, "products", "cerveja", limit=10, filters={"category": ["bebidas"], "price": {"gte": 10}}
    )
    assert {hit["id"] for hit in ranged} == {1, "SKU-4"}


@pytest.mark.parametrize(
    "filters",
    [
        {"secret_field": "x"},
        {"price": {"between": [1, 2]}},
        {"price": {"lt": "20"}},
        {"category": []},
        {"category": ["a", 1]},
        {"category": None},
        ["category"],
    ],
)
def test_bad_filters_are_refused(store, filters):
    store.upsert(1, "products", PRODUCTS[:1])
    with pytest.raises((TypeError, ValueError)):
        store.semantic_search(1, "products", "cerveja", filters=filters)


def test_bad_input_writes_nothing(store, server):
    server.requests.clear()
    bad_batches = [
        [PRODUCTS[0], {"id": -5, "text": "x"}],
        [PRODUCTS[0], {"id": 9, "text": "  "}],
        [PRODUCTS[0], {"id": 9, "text": "x", "payload": {"_text": "mine"}}],
        [PRODUCTS[0], "not a dict"],
    ]
    for items in bad_batches:
        with pytest.raises((TypeError, ValueError)):
            store.upsert(1, "products", items)
    assert not store.client.collection_exists("t1_products")
    assert server.requests == []
    for query, limit in [("", 5), ("x", 0), ("x", 101), ("x", True)]:
        with pytest.raises(ValueError):
            store.semantic_search(1, "products", query, limit=limit)
    with pytest.raises(ValueError):
        store.upsert(1, "orders", PRODUCTS)


def test_switching_the_model_is_refused_until_recreated(services, embedder, server, tmp_path):
    """The admin changes the embedding model: the old vectors cannot be searched with it."""
    qdrant_store, embeddings = services
    folder = tmp_path / "qdrant"
    with qdrant_store.QdrantStore(embedder, path=folder) as store:
        store.upsert(1, "products", PRODUCTS)
        with pytest.raises(qdrant_store.EmbedderMismatch, match="32"):
            store.ensure_collection(1, "products", dimension=32)
    other = embeddings.LitellmEmbedder(
        "openai/other-model", api_base=server.api_base, api_key=API_KEY, dimension=DIMENSION
    )
    with qdrant_store.QdrantStore(other, path=folder) as switched:
        with pytest.raises(qdrant_store.EmbedderMismatch, match="openai/bow-64.*re-index"):
            switched.semantic_search(1, "products", "cerveja")
        with pytest.raises(qdrant_store.EmbedderMismatch):
            switched.upsert(1, "products", PRODUCTS)
        assert switched.client.count("t1_products").count == 4
        switched.ensure_collection(1, "products", recreate=True)
        assert switched.client.count("t1_products").count == 0
        switched.upsert(1, "products", PRODUCTS[:1])
        assert [hit["id"] for hit in switched.semantic_search(1, "products", "cerveja")] == [1]


def test_local_directory_is_one_process_only(services, embedder, store):
    qdrant_store, _ = services
    with pytest.raises(qdrant_store.QdrantStoreError, match="already accessed"):
        qdrant_store.QdrantStore(embedder, path=store.location)


def test_unreachable_server_is_a_clear_error(services, embedder, closed_port):
    qdrant_store, _ = services
    url = f"https://user:pw-secret@127.0.0.1:{closed_port}"
    remote = qdrant_store.QdrantStore(embedder, url=url, api_key="qk-secret", timeout=2)
    with remote, pytest.raises(qdrant_store.QdrantStoreError, match="check a collection") as error:
        remote.semantic_search(1, "products", "cerveja")
    assert "127.0.0.1" in str(error.value)
    assert "pw-secret" not in str(error.value) and "qk-secret" not in str(error.value)


def test_store_needs_exactly_one_location(services, embedder, tmp_path):
    qdrant_store, _ = services
    with pytest.raises(ValueError):
        qdrant_store.QdrantStore(embedder)
    with pytest.raises(ValueError):
        qdrant_store.QdrantStore(embedder, path=tmp_path, url="http://127.0.0.1:6333")
