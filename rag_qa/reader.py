"""The span reader: a Hugging Face question-answering model over sliding windows of each passage.

For every (question, passage) pair the model reads the passage's cleaned text (Unicode and
whitespace normalised, with a character map back), cut into windows of `max_seq_len` tokens that
overlap by `doc_stride`; all windows of all passages of all questions in a call run through the
model together, sorted by length and padded per batch. Per window we keep the null score
(start[CLS] + end[CLS]) and every valid span's score (start[i] + end[j], context tokens, i <= j,
at most `max_answer_tokens`). Windows are then merged per passage by the SQuAD 2.0 rule: null =
minimum over windows, spans ranked by raw score over all windows, one softmax per passage
(DESIGN §3). Spans come back as offsets into the passage text as given, never the cleaned copy.

    >>> reader = Reader(ReaderConfig(model="../shared/models/minilm-squad2-reader-v2"))
    >>> reading = reader.read(["Who wrote it?"], [["Ada wrote it in 1843."]])[0][0]
    >>> reading.spans[0].text  # doctest: +SKIP
    'Ada'
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from rag_qa.config import ReaderConfig
from rag_qa.errors import ConfigError
from rag_qa.ingest.tables import cell_span
from rag_qa.ingest.text import MappedText, clean_mapped, clean_text, trim_span
from rag_qa.models import ResolvedModel, resolve_model
from rag_qa.onnx_models import load_graph, reader_graph
from rag_qa.precision import bf16_weights
from rag_qa.table_lookup import matching_rows, row_matches, table_rows
from rag_qa.tokenizer import FastTokenizer, cached_tokenizer, hf_snapshot, padded_arrays

CANDIDATES_PER_WINDOW = 200  # spans decoded per window of a passage with table rows, before those across cells are dropped (`cell_span`)


@dataclass(frozen=True)
class Span:
    """A candidate answer in a passage: character offsets into the passage text as given."""

    start: int
    end: int
    text: str
    score: float  # start + end logit (the raw score the SQuAD rule compares)
    log_prob: float  # log P(span | passage): one softmax over all the passage's windows' spans and its null


@dataclass(frozen=True)
class PassageReading:
    """What the reader found in one passage: its best spans and how strongly it says "no answer"."""

    null_score: float  # minimum over windows of start[CLS] + end[CLS]
    spans: tuple[Span, ...]  # best first (raw score over all windows), no duplicates, no edge whitespace

    @property
    def best_score(self) -> float:
        return self.spans[0].score if self.spans else float("-inf")


@dataclass(frozen=True, eq=False)
class WindowDecoding:
    """Decoded logits of one window, in token positions."""

    null_score: float
    span_log_norm: float  # log of the sum of exp(score) over every valid span (-inf when none)
    spans: list[tuple[int, int, float]]  # (start token, end token, score), best first
    band: np.ndarray  # band[w, i]: score of the span of tokens i..i+w, -inf where not a valid span


def decode_window(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    context: np.ndarray,
    max_answer_tokens: int,
    top_n: int,
    cls_index: int = 0,
) -> WindowDecoding:
    """Exact best spans of one window: all pairs i <= j < i + max_answer_tokens of context tokens.

    Done as a (max_answer_tokens x length) band of sums, so no valid span is missed (no top-n
    pre-filtering of starts and ends), at the cost of a few thousand additions per window.
    """
    length = len(start_logits)
    null_score = float(start_logits[cls_index] + end_logits[cls_index])
    band = np.full((max_answer_tokens, length), -np.inf, dtype=np.float64)
    masked_start = np.where(context, start_logits, -np.inf)
    masked_end = np.where(context, end_logits, -np.inf)
    for width in range(min(max_answer_tokens, length)):
        band[width, : length - width] = masked_start[: length - width] + masked_end[width:]
    flat = band.ravel()
    finite = flat[np.isfinite(flat)]
    count = min(top_n, finite.size)
    if count == 0:
        return WindowDecoding(null_score, float("-inf"), [], band)
    best = np.argpartition(-flat, count - 1)[:count]
    starts, widths = best % length, best // length
    order = np.lexsort((widths, starts, -flat[best]))  # by score; ties: earlier start, then shorter
    spans = [(int(starts[k]), int(starts[k] + widths[k]), float(flat[best[k]])) for k in order]
    return WindowDecoding(null_score, _logsumexp(finite), spans, band)


def _logsumexp(values: np.ndarray) -> float:
    top = float(values.max())
    return top + float(np.log(np.exp(values - top).sum()))


def merge_windows(
    text: str, windows: Sequence[tuple[WindowDecoding, Sequence[tuple[int, int]]]], top_n: int, cleaned: MappedText | None = None,
    rows: frozenset[int] | None = None, tabular: bool = False,
) -> PassageReading:  # fmt: skip
    """One passage's reading from its windows (each with its token → character offsets), by the
    SQuAD rule: null = minimum over windows, spans ranked by raw start + end over all windows.
    In a `tabular` passage (one holding table rows) a span in a row is one cell's whole value
    (`tables.cell_span`): one inside a value grows to all of it, one across cells, onto a header
    or in a row other than `rows` (those naming what the question names) is dropped.

    Span probabilities share one normaliser for the whole passage (`passage_log_norm`). When the
    model read `cleaned` (the cleaned form of `text`), token offsets are into `cleaned.text` and
    are mapped back to `text`.
    """
    null_score = min(decoding.null_score for decoding, _ in windows)
    log_norm = passage_log_norm(null_score, windows)
    by_offsets: dict[tuple[int, int], Span] = {}
    for decoding, offsets in windows:
        for start_token, end_token, score in decoding.spans:
            start, end = offsets[start_token][0], offsets[end_token][1]
            if start >= end:
                continue  # a window of tokens without characters (special or empty-width tokens)
            if cleaned is not None:
                start, end = cleaned.original_span(start, end)
            trimmed = trim_span(text, start, end)
            fitted = cell_span(text, *trimmed, rows) if tabular and trimmed is not None else trimmed
            if fitted is None:
                continue  # only whitespace, or across a table's cells
            start, end = fitted
            kept = by_offsets.get((start, end))
            if kept is None or score > kept.score:
                by_offsets[(start, end)] = Span(start, end, text[start:end], score, score - log_norm)
    spans = sorted(by_offsets.values(), key=lambda s: (-s.score, s.start, s.end))[:top_n]
    return PassageReading(null_score, tuple(spans))


def passage_log_norm(null_score: float, windows: Sequence[tuple[WindowDecoding, Sequence[tuple[int, int]]]]) -> float:
    """log(exp(null) + the sum of exp(score) over the passage's distinct spans). A span that two
    overlapping windows both see counts once, at its higher score: counted per window, the
    normaliser would grow with the number of windows and rank long passages' spans too low."""
    if len(windows) == 1:
        return float(np.logaddexp(null_score, windows[0][0].span_log_norm))
    keys, scores = [], []
    for decoding, offsets in windows:
        widths, starts = np.nonzero(np.isfinite(decoding.band))
        chars = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
        keys.append((chars[starts, 0] << 32) | chars[starts + widths, 1])  # the span's characters name it
        scores.append(decoding.band[widths, starts])
    key, score = np.concatenate(keys), np.concatenate(scores)
    if key.size == 0:
        return null_score
    order = np.lexsort((score, key))  # by span, its best score last
    key, score = key[order], score[order]
    best_of_each = np.append(key[1:] != key[:-1], True)
    return float(np.logaddexp(null_score, _logsumexp(score[best_of_each])))


def fit_question(tokenizer: Any, question: str, max_tokens: int) -> str:
    """The question cut to at most `max_tokens` tokens, at a token boundary. Cut by the
    tokenizer's own count: characters say little (one emoji can be four byte-level tokens)."""

    def token_offsets(text: str) -> list[tuple[int, int]]:
        return tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)["offset_mapping"]

    offsets, keep = token_offsets(question), max_tokens
    while len(offsets) > max_tokens and keep > 0:
        question = question[: offsets[keep - 1][1]]
        offsets, keep = token_offsets(question), keep - 1  # a cut can tokenize differently: re-count
    return question


def window_features(tokenizer: Any, questions: Sequence[str], contexts: Sequence[str], max_seq_len: int, doc_stride: int, max_query_tokens: int) -> Any:
    """Tokenize (question, context) pairs into overlapping windows with character offsets; long
    questions are cut to `max_query_tokens` tokens so every window keeps room for context. The
    trainer uses the same windows, so training and inference see identical inputs."""
    check_windows(tokenizer, max_seq_len, doc_stride, max_query_tokens)
    fitted = {q: fit_question(tokenizer, q, max_query_tokens) for q in set(questions)}  # a question comes once per passage
    questions = [fitted[q] for q in questions]
    try:
        return tokenizer(
            list(questions),
            list(contexts),
            truncation="only_second",
            max_length=max_seq_len,
            stride=doc_stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            padding=False,
        )
    except BaseException as exc:  # the Rust tokenizer panics (a BaseException) on bad window settings
        if type(exc).__name__ != "PanicException":
            raise
        raise ConfigError(f"the tokenizer cannot cut these windows ({exc}); lower doc_stride or max_query_tokens") from None


def check_windows(tokenizer: Any, max_seq_len: int, doc_stride: int, max_query_tokens: int) -> None:
    """Every window must keep more than `doc_stride` context tokens after the longest question
    and the tokenizer's own special tokens (3 for BERT pairs, 4 for RoBERTa's `<s> q </s></s> c </s>`)."""
    room = max_seq_len - max_query_tokens - tokenizer.num_special_tokens_to_add(pair=True)
    if not 0 < doc_stride < room:
        raise ConfigError(
            f"doc_stride must be in (0, {room}) for this tokenizer: max_seq_len {max_seq_len} - max_query_tokens "
            f"{max_query_tokens} - {tokenizer.num_special_tokens_to_add(pair=True)} special tokens; got {doc_stride}"
        )


def padded_batch(features: Any, rows: Sequence[int], pad_id: int, device: Any = None) -> dict[str, Any]:
    """`padded_arrays` as torch tensors on `device`."""
    import torch

    return {name: torch.from_numpy(array).to(device) for name, array in padded_arrays(features, rows, pad_id).items()}


Forward = Callable[[dict[str, np.ndarray]], tuple[np.ndarray, np.ndarray]]


def torch_forward(model: Any, bf16: bool = False, store_bf16: bool = True) -> Forward:
    """Start and end logits of one padded batch from an eager PyTorch model; with `bf16`, its
    matrix products in bfloat16 (autocast; its linear layers stored in bf16 unless `store_bf16` is
    False, which only benchmarks want) and its QA head in fp32 (`fp32_head`)."""
    import torch

    device = next(model.parameters()).device
    if bf16:
        fp32_head(model)
        if store_bf16:
            bf16_weights(model)

    def forward(arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            output = model(**{name: torch.from_numpy(array).to(device) for name, array in arrays.items()})
        return output.start_logits.float().cpu().numpy(), output.end_logits.float().cpu().numpy()

    return forward


def fp32_head(model: Any) -> None:
    """Run the model's span head (`qa_outputs`, a linear layer over the last hidden states) in fp32
    under autocast: it is a sliver of the compute, and the start, end and null logits it makes
    decide between near-tied spans and no answer."""
    import torch

    head = getattr(model, "qa_outputs", None)
    if head is None or getattr(head, "in_fp32", False):
        return

    class Fp32Head(torch.nn.Module):
        in_fp32 = True

        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, hidden: Any) -> Any:
            with torch.autocast(hidden.device.type, enabled=False):
                return self.inner(hidden.float())

    model.qa_outputs = Fp32Head(head)


class Reader:
    """Any Hugging Face `AutoModelForQuestionAnswering` checkpoint (safetensors only, no remote code),
    run by eager PyTorch or by ONNX Runtime (`ReaderConfig.runtime`). Thread-safe: concurrent
    `read` calls take turns on the one model and tokenizer."""

    def __init__(self, config: ReaderConfig | None = None):
        self.config = config if config is not None else ReaderConfig()
        self._forward: Forward | None = None
        self._tokenizer: Any = None
        self.resolved: ResolvedModel | None = None
        self._lock = threading.RLock()

    def warm_up(self) -> None:
        """Load the tokenizer and model (once); on the onnx runtime, export the graph first if it is not cached."""
        with self._lock:
            if self._forward is None:
                self._load()

    def _load(self) -> None:
        self.resolved = resolve_model(self.config.model, self.config.revision, "reader")
        config = self.config
        runtime = "torch" if config.bf16 else config.runtime  # bf16 is PyTorch's autocast
        graph = load_graph(runtime, config.model, lambda: reader_graph(self.resolved, config.int8, config.threads, config.device, config.spin))
        if graph is not None:  # ONNX: neither transformers nor torch is imported once the graph is cached
            self._tokenizer, self._forward = self._snapshot_tokenizer(), graph.run
        else:
            self._tokenizer, self._forward = self._hf_tokenizer(), torch_forward(self._torch_model(), bf16=config.bf16)

    def _hf_tokenizer(self) -> Any:
        from transformers import AutoTokenizer

        assert self.resolved is not None
        return AutoTokenizer.from_pretrained(self.resolved.location, revision=self.resolved.load_revision, use_fast=True)

    def _snapshot_tokenizer(self) -> FastTokenizer:
        """The tokenizer without transformers: its snapshot, cached beside the graphs."""
        assert self.resolved is not None
        snapshot = cached_tokenizer(self.resolved, "reader", lambda: {"tokenizer": hf_snapshot(self._hf_tokenizer()).to_dict()})
        return FastTokenizer.from_dict(snapshot["tokenizer"])

    def _torch_model(self) -> Any:
        import torch
        from transformers import AutoModelForQuestionAnswering

        assert self.resolved is not None
        model = AutoModelForQuestionAnswering.from_pretrained(
            self.resolved.location, revision=self.resolved.load_revision, use_safetensors=True, trust_remote_code=False
        )
        device = self.config.device or ("cuda" if torch.cuda.is_available() else "cpu")
        return model.to(device).eval()

    def with_answer_cap(self, max_answer_tokens: int) -> "Reader":
        """This reader decoding answers of up to `max_answer_tokens` tokens: the same loaded model
        (decoding happens after the model runs), so trying several caps costs no reload."""
        self.warm_up()
        other = Reader(replace(self.config, max_answer_tokens=max_answer_tokens))
        other._forward, other._tokenizer, other.resolved, other._lock = self._forward, self._tokenizer, self.resolved, self._lock
        return other

    @property
    def tokenizer(self) -> Any:
        self.warm_up()
        return self._tokenizer

    def _features(self, questions: Sequence[str], contexts: Sequence[str]) -> Any:
        return window_features(self.tokenizer, questions, contexts, self.config.max_seq_len, self.config.doc_stride, self.config.max_query_tokens)

    def forward(self, arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Start and end logits of one padded batch of windows (`padded_arrays`): the model alone."""
        self.warm_up()
        assert self._forward is not None
        return self._forward(arrays)

    def batches(self, features: Any) -> list[list[int]]:
        """The windows' indices in forward-pass batches: sorted by length and `windows_per_batch`
        at a time, so each batch pads little."""
        ids = features["input_ids"]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        size = self.config.windows_per_batch
        return [order[first : first + size] for first in range(0, len(order), size)]

    def window_logits(self, features: Any) -> list[tuple[np.ndarray, np.ndarray]]:
        """Start/end logits per window (the model's forward passes); windows batched by similar
        length with dynamic padding. The one place the model runs: replace it to plant logits."""
        ids = features["input_ids"]
        results: list[tuple[np.ndarray, np.ndarray]] = [None] * len(ids)  # type: ignore[list-item]
        for batch in self.batches(features):
            starts, ends = self.forward(padded_arrays(features, batch, self.tokenizer.pad_token_id))
            for row, index in enumerate(batch):
                n = len(ids[index])
                results[index] = (starts[row, :n], ends[row, :n])
        return results

    def _decoded(
        self, features: Any, logits: list[tuple[np.ndarray, np.ndarray]], index: int, tabular: bool
    ) -> tuple[WindowDecoding, Sequence[tuple[int, int]]]:  # fmt: skip
        context = np.array([s == 1 for s in features.sequence_ids(index)])
        start, end = logits[index]
        count = max(self.config.top_spans, CANDIDATES_PER_WINDOW) if tabular else self.config.top_spans
        decoding = decode_window(start, end, context, self.config.max_answer_tokens, count)
        return decoding, features["offset_mapping"][index]

    def read(self, questions: Sequence[str], passages: Sequence[Sequence[str]]) -> list[list[PassageReading]]:
        """Readings of every passage text for every question: `passages[q]` belong to `questions[q]`."""
        if len(questions) != len(passages):
            raise ConfigError("one list of passages per question is required")
        pairs = [(q, text) for q, texts in zip(questions, passages) for text in texts]
        if not pairs:
            return [[] for _ in questions]
        # Each question comes once per passage, and a passage can serve several questions: clean each once.
        clean_questions = {q: clean_text(q) for q in questions}  # no control characters or lone surrogates
        clean_passages = {text: clean_mapped(text, join_lines=True) for _, text in pairs}
        questions_seen = [clean_questions[q] for q, _ in pairs]
        cleaned = [clean_passages[text] for _, text in pairs]
        with self._lock:
            features = self._features(questions_seen, [c.text for c in cleaned])
            logits = self.window_logits(features)
        windows_of_pair: list[list[int]] = [[] for _ in pairs]
        for index, pair_index in enumerate(features["overflow_to_sample_mapping"]):
            windows_of_pair[pair_index].append(index)
        tabular = {text: bool(table_rows(text)) for _, text in pairs}
        rows = [  # per pair, the table rows its answers may come from, decided over all the passages of its question
            named for q, texts in zip(questions, passages)
            for named in (matching_rows(row_matches(q, texts)) if any(tabular[t] for t in texts) else [None] * len(texts))
        ]  # fmt: skip
        readings = [
            merge_windows(
                text, [self._decoded(features, logits, w, tabular[text]) for w in windows_of_pair[i]], self.config.top_spans, cleaned[i], rows[i],
                tabular[text],
            )  # fmt: skip
            for i, (_, text) in enumerate(pairs)
        ]  # one pair's windows decoded at a time: their score bands are freed with it
        grouped, position = [], 0
        for texts in passages:
            grouped.append(readings[position : position + len(texts)])
            position += len(texts)
        return grouped

