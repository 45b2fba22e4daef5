"""Indexing helpers: product items, business-rule chunks, and a full sync on real local Qdrant."""

import importlib
import threading

import pytest
from conftest import load_services
from test_embeddings import API_KEY, DIMENSION, OpenAIEmbeddingsServer

RULES = """Frete grátis para compras acima de R$ 200 em todo o Brasil.

- Trocas em até 7 dias após o recebimento.
- Pagamento no Pix com 5% de desconto.
* Parcelamos em até 3x sem juros no cartão.

Não vendemos para menores de 18 anos."""


@pytest.fixture(scope="module")
def indexing():
    load_services("mcp_connectors")
    return importlib.import_module("mcp_connectors_services.qdrant_indexing")


@pytest.fixture(scope="module")
def server():
    with OpenAIEmbeddingsServer() as running:
        yield running


@pytest.fixture
def store(indexing, server, tmp_path):
    embeddings = importlib.import_module("mcp_connectors_services.embeddings")
    embedder = embeddings.LitellmEmbedder(
        "openai/bow-64", api_base=server.api_base, api_key=API_KEY, dimension=DIMENSION
    )
    with indexing.IndexStore(embedder, path=tmp_path / "qdrant", batch_size=2) as opened:
        yield opened


def test_product_document_has_text_and_filterable_payload(indexing):
    item = indexing.product_document(
        7,
        "Camiseta Básica (Preta, G)",
        default_code="CAM-PT-G",
        category="Camisetas",
        description=" Algodão penteado ",
        price=59.904,
        category_id=3,
        company_id=1,
        template_id=5,
    )
    assert item == {
        "id": 7,
        "text": "Camiseta Básica (Preta, G) | Camisetas | CAM-PT-G | Algodão penteado",
        "payload": {
            "name": "Camiseta Básica (Preta, G)",
            "default_code": "CAM-PT-G",
            "category": "Camisetas",
            "category_id": 3,
            "price": 59.9,
            "company_id": 1,
            "template_id": 5,
        },
    }
    bare = indexing.product_document(8, "Caneca", default_code=False, description=False)
    assert bare == {"id": 8, "text": "Caneca", "payload": {"name": "Caneca"}}


def test_rules_are_cut_per_paragraph_and_list_item(indexing):
    chunks = indexing.text_chunks(RULES)
    assert chunks == [
        "Frete grátis para compras acima de R$ 200 em todo o Brasil.",
        "- Trocas em até 7 dias após o recebimento.",
        "- Pagamento no Pix com 5% de desconto.",
        "* Parcelamos em até 3x sem juros no cartão.",
        "Não vendemos para menores de 18 anos.",
    ]
    assert indexing.text_chunks("") == [] and indexing.text_chunks(None) == []
    assert indexing.text_chunks("Linha um\nlinha dois") == ["Linha um linha dois"]


def test_long_text_is_cut_at_sentences_then_spaces(indexing):
    sentence = "Entregamos em todo o Brasil pelos Correios."
    chunks = indexing.text_chunks(" ".join([sentence] * 5), max_chars=100)
    assert chunks == [f"{sentence} {sentence}"] * 2 + [sentence]
    word_soup = " ".join(["palavra"] * 40)
    pieces = indexing.text_chunks(word_soup, max_chars=50)
    assert all(len(piece) <= 50 for piece in pieces)
    assert " ".join(pieces) == word_soup
    assert indexing.text_chunks("x" * 120, max_chars=50) == ["x" * 50, "x" * 50, "x" * 20]


def test_rules_documents(indexing):
    documents = indexing.rules_documents(RULES, "pt_BR")
    assert [doc["id"] for doc in documents] == [f"rule-{n}" for n in range(5)]
    assert documents[1]["payload"] == {"topic": "business_rules", "lang": "pt_BR"}
    assert indexing.rules_documents("Uma regra.")[0]["payload"] == {"topic": "business_rules"}


def test_replace_all_writes_everything_then_drops_what_is_gone(indexing, store):
    progress = []
    first = [indexing.product_document(n, f"produto {n}") for n in (1, 2, 3)]
    counts = store.replace_all(7, "products", first, on_batch=lambda d, t: progress.append(d))
    assert counts == {"total": 3, "upserted": 3, "batches": 2, "deleted": 0}
    assert progress == [2, 3]
    assert store.item_ids(7, "products") == {1, 2, 3}
    second = [indexing.product_document(n, f"produto novo {n}") for n in (2, 4)]
    assert store.replace_all(7, "products", second)["deleted"] == 2
    assert store.item_ids(7, "products") == {2, 4}
    hits = store.semantic_search(7, "products", "produto novo", limit=5)
    assert {hit["text"] for hit in hits} == {"produto novo 2", "produto novo 4"}
    assert store.replace_all(7, "products", [])["deleted"] == 2
    assert store.item_ids(7, "products") == set()
    assert store.has_collection(7, "products")
    assert store.item_ids(8, "products") == set()
    assert not store.has_collection(8, "products")


def test_replace_all_with_string_ids_and_many_pages(indexing, store, monkeypatch):
    monkeypatch.setattr(indexing, "SCROLL_PAGE", 3)
    rules = indexing.rules_documents("\n\n".join(f"Regra número {n}." for n in range(8)))
    store.replace_all(7, "business_rules", rules)
    assert store.item_ids(7, "business_rules") == {f"rule-{n}" for n in range(8)}
    store.replace_all(7, "business_rules", rules[:2])
    assert store.item_ids(7, "business_rules") == {"rule-0", "rule-1"}


def test_replace_all_checks_every_item_before_writing(indexing, store):
    store.replace_all(7, "products", [indexing.product_document(1, "produto 1")])
    with pytest.raises(ValueError):
        store.replace_all(
            7, "products", [indexing.product_document(2, "ok"), {"id": 3}], recreate=True
        )
    assert store.item_ids(7, "products") == {1}, "nothing was dropped or written"


def test_recreate_replaces_the_collection(indexing, store):
    store.replace_all(7, "products", [indexing.product_document(1, "produto 1")])
    store.replace_all(7, "products", [indexing.product_document(2, "produto 2")], recreate=True)
    assert store.item_ids(7, "products") == {2}


def test_threads_share_a_local_store(indexing, store):
    """Searches run between the batches of an indexing in another thread, without errors."""
    items = [indexing.product_document(n, f"produto {n}") for n in range(40)]
    store.replace_all(7, "products", items[:2])
    errors = []

    def index():
        try:
            store.replace_all(7, "products", items)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def search():
        try:
            for _ in range(20):
                assert store.semantic_search(7, "products", "produto", limit=3)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=index)] + [threading.Thread(target=search) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert store.item_ids(7, "products") == set(range(40))
    assert isinstance(store.client, indexing._SerialClient)
