"""A model's fast tokenizer without transformers: the `tokenizers` library only.

Why: importing transformers (and torch behind it) costs seconds at every cold start, while a
Hugging Face fast tokenizer is a thin layer over a `tokenizers.Tokenizer`. On the ONNX runtime the
reader and the embedder tokenize with `FastTokenizer`, a snapshot of that backend taken once from
the real Hugging Face tokenizer (`hf_snapshot`; cached beside the ONNX graphs, see `cached_tokenizer`),
and answer the calls rag-qa makes exactly as transformers' `PreTrainedTokenizerFast.__call__`
does: the same ids, type ids, masks, offsets, overflowing windows and sequence ids (tested
against transformers for a WordPiece and a byte-level BPE tokenizer).

Thread-safe: each truncation setting gets its own backend, configured once, so concurrent calls
never change a backend another call is using ("Already borrowed" in the Rust tokenizer).
"""

from __future__ import annotations

import importlib.metadata
import json
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from rag_qa.errors import ConfigError
from rag_qa.models import ResolvedModel
from rag_qa.onnx_models import cache_dir, cached_file, model_files, weights_digest

TOKENIZER_SUFFIXES = (".json", ".txt", ".model")  # tokenizer.json, vocab.txt, merges.txt, sentencepiece models
RECIPE_VERSION = 1  # bump when what a snapshot holds changes: old snapshots are then ignored
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")  # what a row of tokens feeds a model


class Encoded(dict):
    """What a call returns: a dict of lists like transformers' BatchEncoding, with `sequence_ids`."""

    def __init__(self, values: dict[str, Any], encodings: list[Any]):
        super().__init__(values)
        self.encodings = encodings

    def sequence_ids(self, index: int = 0) -> list[int | None]:
        return self.encodings[index].sequence_ids


class FastTokenizer:
    """The subset of a Hugging Face fast tokenizer's interface that rag-qa uses."""

    def __init__(self, backend_json: str, pad_token_id: int | None, model_input_names: Sequence[str], truncation_side: str = "right"):
        self.backend_json = backend_json
        self.pad_token_id = pad_token_id
        self.model_input_names = list(model_input_names)
        self.truncation_side = truncation_side
        self._backends: dict[tuple[Any, ...], Tokenizer] = {}
        self._lock = threading.Lock()

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend_json, "pad_token_id": self.pad_token_id,
            "model_input_names": self.model_input_names, "truncation_side": self.truncation_side,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> FastTokenizer:
        return cls(values["backend"], values["pad_token_id"], values["model_input_names"], values["truncation_side"])

    def __deepcopy__(self, memo: dict[int, Any]) -> FastTokenizer:
        return FastTokenizer.from_dict(self.to_dict())  # a fresh lock and backends

    def _backend(self, truncation: str | None, max_length: int | None, stride: int) -> Tokenizer:
        key = (truncation, max_length, stride)
        with self._lock:
            backend = self._backends.get(key)
            if backend is None:
                backend = Tokenizer.from_str(self.backend_json)
                backend.no_padding()
                backend.no_truncation()
                if truncation:
                    if max_length is None:
                        raise ValueError("truncation needs max_length")
                    backend.enable_truncation(max_length, stride=stride, strategy=truncation, direction=self.truncation_side)
                self._backends[key] = backend
        return backend

    def __call__(
        self,
        text: str | Sequence[str],
        text_pair: str | Sequence[str] | None = None,
        *,
        add_special_tokens: bool = True,
        truncation: str | bool | None = None,
        max_length: int | None = None,
        stride: int = 0,
        return_overflowing_tokens: bool = False,
        return_offsets_mapping: bool = False,
        padding: bool = False,
        verbose: bool = True,
    ) -> Encoded:
        """Like transformers' `tokenizer(...)` with no padding and no tensors: one text (or pair)
        gives flat lists, a list of texts gives a list per row (overflowing windows as extra rows)."""
        if padding:
            raise ValueError("FastTokenizer does not pad: pad the arrays (padded_arrays)")
        single = isinstance(text, str)
        texts = [text] if single else list(text)
        pairs = None if text_pair is None else ([text_pair] if single else list(text_pair))
        inputs = texts if pairs is None else list(zip(texts, pairs, strict=True))
        strategy = "longest_first" if truncation is True else (truncation or None)
        backend = self._backend(strategy, max_length, stride if strategy else 0)
        rows: list[Any] = []
        mapping: list[int] = []
        for sample, encoding in enumerate(backend.encode_batch(inputs, add_special_tokens=add_special_tokens)):
            windows = [encoding, *encoding.overflowing] if return_overflowing_tokens else [encoding]
            rows.extend(windows)
            mapping.extend([sample] * len(windows))
        values: dict[str, Any] = {"input_ids": [e.ids for e in rows]}
        if "token_type_ids" in self.model_input_names:
            values["token_type_ids"] = [e.type_ids for e in rows]
        values["attention_mask"] = [e.attention_mask for e in rows]
        if return_offsets_mapping:
            values["offset_mapping"] = [e.offsets for e in rows]
        if return_overflowing_tokens:
            values["overflow_to_sample_mapping"] = mapping
        elif single:
            values = {name: value[0] for name, value in values.items()}
        return Encoded(values, rows)

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        return self._backend(None, None, 0).num_special_tokens_to_add(pair)


def hf_snapshot(tokenizer: Any) -> FastTokenizer:
    """A snapshot of a transformers fast tokenizer: its backend and the settings its calls use."""
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(f"{type(tokenizer).__name__} is not a fast tokenizer (no tokenizer.json), so it gives no character offsets")
    return FastTokenizer(tokenizer.backend_tokenizer.to_str(), tokenizer.pad_token_id, tokenizer.model_input_names, tokenizer.truncation_side)


def cached_tokenizer(resolved: ResolvedModel, kind: str, build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The snapshot `build()` returns for this model's tokenizer files (a dict with a "tokenizer"
    entry from `FastTokenizer.to_dict`, and what else the caller needs), made once and then read
    from the ONNX cache folder. Keyed by the files and the library versions that made it. A Hub
    model, whose files can change under the same name, is snapshotted at each start instead."""
    if resolved.origin == "hub":
        return build()
    key = {"tokenizer": kind, "files": weights_digest(model_files(resolved, TOKENIZER_SUFFIXES)), "recipe": RECIPE_VERSION, **_versions()}
    path = cached_file(cache_dir(), f"{kind}-tokenizer", key, ".json", lambda out: out.write_text(json.dumps(build())))
    return json.loads(path.read_text())


def _versions() -> dict[str, str | None]:
    """The versions of the libraries that decide how a tokenizer behaves (read without importing them)."""
    versions: dict[str, str | None] = {}
    for name in ("transformers", "sentence-transformers", "tokenizers"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def padded_arrays(features: Any, rows: Sequence[int], pad_id: int) -> dict[str, np.ndarray]:
    """The model inputs of some windows as int64 arrays, padded to the longest of them (dynamic
    padding: a batch of short windows stays cheap). Used for reading, embedding and training."""
    width = max(len(features["input_ids"][r]) for r in rows)
    batch = {}
    for name in MODEL_INPUTS:
        if name in features:
            fill = pad_id if name == "input_ids" else 0
            batch[name] = np.array([features[name][r] + [fill] * (width - len(features[name][r])) for r in rows], dtype=np.int64)
    return batch
