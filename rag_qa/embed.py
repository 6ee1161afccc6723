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
from rag_qa.precision import bf16_weights
from rag_qa.tokenizer import FastTokenizer, cached_tokenizer, hf_snapshot, padded_arrays


class Embedder:
    """Embeds passages and queries for inner-product search.

    >>> embedder = Embedder()                     # cheap: nothing is loaded yet
    >>> vectors = embedder.embed(["A passage."])  # loads the model once, returns (1, 384) float32
    """

    def __init__(self, config: EmbedderConfig | None = None):
        self.config = config if config is not None else EmbedderConfig()
        self._model: Any = None  # the sentence-transformers model: on PyTorch, or to export and snapshot
        self._graph: Any = None  # the ONNX Runtime session, on the onnx runtime
        self._tokenizer: Any = None
        self._dimension = self._max_tokens = 0
        self.resolved: ResolvedModel | None = None
        self._lock = threading.RLock()
        self._local = threading.local()

    def warm_up(self) -> None:
        """Load the model (once)."""
        with self._lock:
            if self._tokenizer is None:
                self._load()

    def _load(self) -> None:
        self.resolved = resolve_model(self.config.model, self.config.revision, "embedder")
        config = self.config
        runtime = "torch" if config.bf16 else config.runtime  # bf16 is autocast: "auto" means PyTorch
        self._graph = load_graph(runtime, config.model, lambda: embedder_graph(self.resolved, self._sentence_transformer, config.threads, config.device, config.spin))
        if self._graph is not None:  # ONNX: no torch, transformers or sentence-transformers once graph and snapshot are cached
            snapshot = self._snapshot()
            self._tokenizer = FastTokenizer.from_dict(snapshot["tokenizer"])
            self._dimension, self._max_tokens = snapshot["dimension"], snapshot["max_tokens"]
        else:
            model = self._sentence_transformer()
            self._tokenizer = model.tokenizer
            self._dimension, self._max_tokens = int(model.get_embedding_dimension()), int(model.max_seq_length)

    def _sentence_transformer(self) -> Any:
        """The sentence-transformers model, loaded on first need."""
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            assert self.resolved is not None
            self._model = SentenceTransformer(
                self.resolved.location,
                revision=self.resolved.load_revision,
                device=self.config.device,
            )
            if self.config.bf16:
                bf16_weights(self._model)  # the same numbers as autocast's, cast once
        return self._model

    def _snapshot(self) -> dict[str, Any]:
        """What the ONNX path needs besides the graph: the tokenizer's snapshot, the vector size
        and the token limit, taken from the sentence-transformers model once and cached."""

        def take() -> dict[str, Any]:
            model = self._sentence_transformer()
            return {"tokenizer": hf_snapshot(model.tokenizer).to_dict(), "dimension": int(model.get_embedding_dimension()), "max_tokens": int(model.max_seq_length)}

        assert self.resolved is not None
        return cached_tokenizer(self.resolved, "embedder", take)

    @property
    def tokenizer(self) -> Any:
        """This thread's copy of the model's tokenizer (for chunking)."""
        tokenizer = getattr(self._local, "tokenizer", None)
        if tokenizer is None:
            self.warm_up()
            with self._lock:
                tokenizer = self._local.tokenizer = copy.deepcopy(self._tokenizer)
        return tokenizer

    @property
    def dimension(self) -> int:
        self.warm_up()
        return self._dimension

    @property
    def max_tokens(self) -> int:
        self.warm_up()
        return self._max_tokens

    def embed(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        self.warm_up()
        with self._lock:
            if self._graph is not None:
                return self._encode_onnx(texts, progress)
            import torch

            model = self._sentence_transformer()
            with torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=self.config.bf16):
                vectors = model.encode(
                    list(texts),
                    batch_size=self.config.texts_per_batch,
                    normalize_embeddings=True,
                    convert_to_tensor=True,
                    show_progress_bar=progress,
                )
        return np.ascontiguousarray(vectors.float().cpu().numpy(), dtype=np.float32)  # numpy has no bfloat16

    def _encode_onnx(self, texts: Sequence[str], progress: bool) -> np.ndarray:
        """What `encode` does (longest texts first, so batches pad little), on the ONNX graph:
        the texts cut to the model's token limit, as sentence-transformers cuts them."""
        from tqdm import tqdm

        order = np.argsort([-len(text) for text in texts], kind="stable")
        vectors = np.empty((len(texts), self._dimension), dtype=np.float32)
        for first in tqdm(range(0, len(texts), self.config.texts_per_batch), desc="Batches", disable=not progress):
            rows = order[first : first + self.config.texts_per_batch]
            features = self._tokenizer([texts[i] for i in rows], truncation="longest_first", max_length=self._max_tokens)
            vectors[rows] = self._graph.run(padded_arrays(features, range(len(rows)), self._tokenizer.pad_token_id))[0]
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors
