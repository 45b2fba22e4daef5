"""Embedders: litellm against a real OpenAI-protocol server on loopback; the offline ONNX model."""

import base64
import hashlib
import importlib
import json
import math
import re
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import load_services

API_KEY = "sk-test-embeddings-5f2c"
DIMENSION = 64
#: Fields the OpenAI ``POST /v1/embeddings`` request body may carry.
OPENAI_EMBEDDING_FIELDS = {"model", "input", "encoding_format", "dimensions", "user"}


@pytest.fixture(scope="module")
def embeddings():
    load_services("mcp_connectors")
    return importlib.import_module("mcp_connectors_services.embeddings")


def bag_of_words(text):
    """The server's deterministic vector: word counts hashed into 64 buckets (not normalised)."""
    vector = [0.0] * DIMENSION
    for word in re.findall(r"\w+", text.lower()):
        vector[int(hashlib.md5(word.encode()).hexdigest(), 16) % DIMENSION] += 1.0
    return vector


class OpenAIEmbeddingsServer:
    """A stdlib HTTP server speaking OpenAI's embeddings protocol on 127.0.0.1 (an edge double)."""

    def __init__(self, api_key=API_KEY):
        self.api_key = api_key
        self.requests = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(
                    {"path": self.path, "auth": self.headers.get("Authorization"), "body": body}
                )
                if self.headers.get("Authorization") != f"Bearer {server.api_key}":
                    return self._reply(
                        401, {"error": {"message": "Incorrect API key", "type": "invalid_api_key"}}
                    )
                texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
                data = []
                for index, text in enumerate(texts):
                    vector = bag_of_words(text)
                    if body.get("encoding_format") == "base64":
                        packed = struct.pack(f"<{DIMENSION}f", *vector)
                        vector = base64.b64encode(packed).decode()
                    data.append({"object": "embedding", "index": index, "embedding": vector})
                tokens = sum(len(text.split()) for text in texts)
                self._reply(
                    200,
                    {
                        "object": "list",
                        "data": data,
                        "model": body["model"],
                        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                    },
                )

            def _reply(self, status, payload):
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.api_base = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc_info):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def server():
    with OpenAIEmbeddingsServer() as running:
        yield running


def cosine(a, b):
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_litellm_embedder_speaks_the_openai_protocol(embeddings, server):
    embedder = embeddings.LitellmEmbedder(
        "openai/text-embedding-test", api_base=server.api_base, api_key=API_KEY, timeout=10
    )
    server.requests.clear()
    texts = ["Cerveja artesanal IPA 500ml", "Refrigerante de cola 2L"]
    vectors = embedder.embed(texts)

    (request,) = server.requests
    assert request["path"] == "/v1/embeddings"
    assert request["auth"] == f"Bearer {API_KEY}"
    body = request["body"]
    assert set(body) <= OPENAI_EMBEDDING_FIELDS
    assert body["model"] == "text-embedding-test"
    assert body["input"] == texts
    assert body.get("encoding_format", "float") in ("float", "base64")

    assert len(vectors) == 2 and all(len(vector) == DIMENSION for vector in vectors)
    for text, vector in zip(texts, vectors, strict=True):
        assert math.isclose(math.sqrt(sum(x * x for x in vector)), 1.0, rel_tol=1e-6)
        raw = bag_of_words(text)
        norm = math.sqrt(sum(x * x for x in raw))
        assert vector == pytest.approx([x / norm for x in raw], abs=1e-6)
    assert embedder.dimension == DIMENSION
    assert embedder.name == "litellm:openai/text-embedding-test"


def test_litellm_embedder_probes_the_dimension_once(embeddings, server):
    embedder = embeddings.LitellmEmbedder(
        "openai/text-embedding-test", api_base=server.api_base, api_key=API_KEY
    )
    server.requests.clear()
    assert embedder.dimension == DIMENSION
    assert embedder.dimension == DIMENSION
    assert len(server.requests) == 1
    assert embedder.embed([]) == []
    assert len(server.requests) == 1


def test_litellm_embedder_wrong_key_is_a_clear_error_without_the_key(embeddings, server):
    secret = "sk-wrong-secret-9d1e"
    embedder = embeddings.LitellmEmbedder(
        "openai/text-embedding-test", api_base=server.api_base, api_key=secret, timeout=5
    )
    with pytest.raises(embeddings.EmbeddingError) as error:
        embedder.embed(["hello"])
    assert "text-embedding-test failed" in str(error.value)
    assert secret not in str(error.value)
    assert error.value.__cause__ is None and error.value.__context__ is not None
    assert secret not in repr(embedder)


def test_litellm_embedder_unreachable_server(embeddings, closed_port):
    embedder = embeddings.LitellmEmbedder(
        "openai/text-embedding-test",
        api_base=f"http://127.0.0.1:{closed_port}/v1",
        api_key=API_KEY,
        timeout=3,
    )
    with pytest.raises(embeddings.EmbeddingError, match="text-embedding-test failed"):
        embedder.embed(["hello"])


def test_bad_embedder_input(embeddings, server):
    with pytest.raises(ValueError, match="model name"):
        embeddings.LitellmEmbedder("")
    with pytest.raises(ValueError, match="timeout"):
        embeddings.LitellmEmbedder("openai/x", timeout=0)
    embedder = embeddings.LitellmEmbedder(
        "openai/text-embedding-test", api_base=server.api_base, api_key=API_KEY
    )
    server.requests.clear()
    for bad in ("one string", ["ok", ""], ["ok", None]):
        with pytest.raises((TypeError, ValueError)):
            embedder.embed(bad)
    assert server.requests == []


def test_litellm_is_not_imported_with_the_module(embeddings):
    source = Path(embeddings.__file__).read_text(encoding="utf-8")
    top_level = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert not [line for line in top_level if re.search(r"litellm|onnx|tokenizers|numpy", line)]


# The offline default; skipped where its packages are not installed.


@pytest.fixture(scope="module")
def minilm(embeddings):
    pytest.importorskip("onnxruntime")
    try:
        embeddings.default_minilm_files()
    except embeddings.EmbeddingError as exc:
        pytest.skip(str(exc))
    return embeddings.OnnxMiniLMEmbedder(batch_size=2)


def test_onnx_minilm_embeds_normalised_384_vectors(minilm):
    texts = [
        "Show me the unpaid invoices of ACME",
        "Show me the paid invoices of ACME",
        "Which ACME invoices are still open?",
    ]
    vectors = minilm.embed(texts)
    assert minilm.dimension == 384
    assert [len(vector) for vector in vectors] == [384, 384, 384]
    for vector in vectors:
        assert math.isclose(math.sqrt(sum(x * x for x in vector)), 1.0, rel_tol=1e-5)
    # The reference measured these with the same model (section 5.3): 0.953 and 0.766.
    assert cosine(vectors[0], vectors[1]) == pytest.approx(0.953, abs=0.01)
    assert cosine(vectors[0], vectors[2]) == pytest.approx(0.766, abs=0.01)
    # Batching (2 per run) and padding do not change a text's vector.
    assert minilm.embed([texts[2]])[0] == pytest.approx(vectors[2], abs=1e-5)


def test_onnx_minilm_ranks_related_text_higher(minilm):
    query, near, far = minilm.embed(
        ["wireless mouse", "cordless computer mouse", "fresh orange juice 1 liter"]
    )
    assert cosine(query, near) > cosine(query, far)


def test_onnx_minilm_paths_come_in_pairs(embeddings):
    with pytest.raises(ValueError, match="both"):
        embeddings.OnnxMiniLMEmbedder(model_path="/tmp/model.onnx")
