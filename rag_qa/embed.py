"""Sentence-transformers embeddings: batched, L2-normalised float32, model loaded once on first use,
run by eager PyTorch or by ONNX Runtime (`EmbedderConfig.runtime`; same vectors within 1e-4).

Thread-safe: one model serves every thread (calls take turns), and each thread gets its own copy
of the tokenizer for chunking, because a Hugging Face fast tokenizer shared across threads fails
with "Already borrowed" when two calls with different truncation settings overlap."""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from rag_qa.config import EmbedderConfig
from rag_qa.models import ResolvedModel, resolve_model
from rag_qa.onnx_models import embedder_graph, load_graph


class Embedder:
    """Embeds passages and queries for inner-product search.

    >>> embedder = Embedder()                     # cheap: nothing is loaded yet
    >>> vectors = embedder.embed(["A passage."])  # loads the model once, returns (1, 384) float32
    """

    def __init__(self, config: EmbedderConfig | None = None):
        self.config = config if config is not None else EmbedderConfig()
        self._model: Any = None
        self._graph: Any = None  # the ONNX Runtime session, on the onnx runtime
        self.resolved: ResolvedModel | None = None
        self._lock = threading.RLock()
        self._local = threading.local()

    def warm_up(self) -> None:
        """Load the model (once)."""
        with self._lock:
            if self._model is None:
                self._load()

    def _load(self) -> None:
        from sentence_transformers import SentenceTransformer

        self.resolved = resolve_model(self.config.model, self.config.revision, "embedder")
        self._model = SentenceTransformer(
            self.resolved.location,
            revision=self.resolved.revision if self.resolved.origin == "hub" else None,
            device=self.config.device,
        )
        config = self.config
        self._graph = load_graph(config.runtime, config.model, lambda: embedder_graph(self._model, self.resolved, config.threads, config.device))

    @property
    def model(self) -> Any:
        self.warm_up()
        return self._model

    @property
    def tokenizer(self) -> Any:
        """This thread's copy of the model's tokenizer (for chunking)."""
        tokenizer = getattr(self._local, "tokenizer", None)
        if tokenizer is None:
            with self._lock:
                tokenizer = self._local.tokenizer = copy.deepcopy(self.model.tokenizer)
        return tokenizer

    @property
    def dimension(self) -> int:
        return int(self.model.get_embedding_dimension())

    @property
    def max_tokens(self) -> int:
        return int(self.model.max_seq_length)

    def embed(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:
            if self._graph is not None:
                return self._encode_onnx(texts, progress)
            vectors = self.model.encode(
                list(texts),
                batch_size=self.config.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=progress,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def _encode_onnx(self, texts: Sequence[str], progress: bool) -> np.ndarray:
        """What `encode` does (longest texts first, so batches pad little), on the ONNX graph."""
        from tqdm import tqdm

        order = np.argsort([-len(text) for text in texts], kind="stable")
        vectors = np.empty((len(texts), self.dimension), dtype=np.float32)
        for first in tqdm(range(0, len(texts), self.config.batch_size), desc="Batches", disable=not progress):
            rows = order[first : first + self.config.batch_size]
            features = self._model.preprocess([texts[i] for i in rows])
            arrays = {name: value.numpy() for name, value in features.items() if hasattr(value, "numpy")}
            vectors[rows] = self._graph.run(arrays)[0]
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors
