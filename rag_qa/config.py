"""Settings with their defaults in one place. Every dataclass validates itself and round-trips
through `to_dict` / `from_dict`, so settings can be saved with an index and read back."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any, TypeVar

from rag_qa.errors import ConfigError
from rag_qa.ingest import formats

DEFAULT_EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_EMBEDDING_REVISION = "c9745ed1d9f207416be6d2e6f8de32d1f16199bf"
DEFAULT_READER_MODEL = "deepset/roberta-large-squad2"
# The Hub is unreachable where this was written, so the reader's commit hash could not be looked up
# and verified; pin it with --reader-revision (or ReaderConfig.revision) where the Hub is reachable.
DEFAULT_READER_REVISION = "main"
RETRIEVAL_MODES = ("dense", "bm25", "hybrid")
DEFAULT_RETRIEVAL_MODE = "hybrid"  # the mode that holds across corpora (docs/benchmarks.md section 16)
# "auto": ONNX Runtime when the `onnx` extra is installed (same answers, faster: docs/benchmarks.md), else
# eager PyTorch; "onnx" insists on ONNX Runtime, "torch" on PyTorch.
RUNTIMES = ("auto", "torch", "onnx")
INDEX_TYPES = ("auto", "flat", "hnsw")

T = TypeVar("T", bound="_Serialisable")


class _Serialisable:
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"{cls.__name__}: unknown settings {sorted(unknown)}; valid: {sorted(known)}")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**values)


def batch_for(batch_size: int | None, device: str | None) -> int:
    """`batch_size`, or else 4 on CPU and 64 on a GPU. Texts and windows are sorted by length before
    batching; on CPU, batches of 4 pad less and keep their activations in cache: the reader's forward
    takes 8% less time than in batches of 16, the embedder's 25% less than in batches of 32
    (docs/benchmarks.md sections 3 and 11). A GPU wants large batches."""
    if batch_size is not None:
        return batch_size
    return 64 if device is not None and device.startswith("cuda") else 4


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _require_runtime(runtime: str, threads: int | None) -> None:
    _require(runtime in RUNTIMES, f"runtime must be one of {RUNTIMES}, got {runtime!r}")
    _require(threads is None or threads >= 1, f"threads must be >= 1, got {threads}")


def _require_windows(max_seq_len: int, doc_stride: int, max_query_tokens: int) -> None:
    """SQuAD windows (the reader's and the trainer's) must leave room for context and overlap."""
    _require(32 <= max_seq_len <= 4096, f"max_seq_len must be in [32, 4096], got {max_seq_len}")
    _require(
        0 < doc_stride < max_seq_len - max_query_tokens - 3,
        f"doc_stride must be in (0, max_seq_len - max_query_tokens - 3), got {doc_stride}",
    )


@dataclass(frozen=True)
class EmbedderConfig(_Serialisable):
    """Which sentence-transformers model embeds passages and queries, and how."""

    model: str = DEFAULT_EMBEDDING_MODEL
    revision: str | None = DEFAULT_EMBEDDING_REVISION
    batch_size: int | None = None  # texts per forward pass (None: the device's default, `batch_for`)
    device: str | None = None
    runtime: str = "auto"  # how this process runs the model; an index never depends on it
    threads: int | None = None  # ONNX Runtime threads (None: one per core)
    spin: bool = True  # ONNX Runtime threads busy-wait between steps (see ReaderConfig.spin)
    bf16: bool = False  # bfloat16 matrix products (PyTorch autocast); how this process runs, as runtime

    def __post_init__(self) -> None:
        _require(bool(self.model), "embedder model must be a Hub id or a local path")
        _require(self.batch_size is None or self.batch_size >= 1, f"embedder batch_size must be >= 1, got {self.batch_size}")
        _require_runtime(self.runtime, self.threads)
        _require(not (self.bf16 and self.runtime == "onnx"), "bf16 runs on PyTorch: use runtime 'torch' or 'auto', not 'onnx'")

    @property
    def texts_per_batch(self) -> int:
        return batch_for(self.batch_size, self.device)


@dataclass(frozen=True)
class ChunkingConfig(_Serialisable):
    """Passage size in embedder tokens; passages overlap by whole sentences where possible."""

    max_tokens: int = 200
    overlap_tokens: int = 40

    def __post_init__(self) -> None:
        _require(self.max_tokens >= 16, f"chunking max_tokens must be >= 16, got {self.max_tokens}")
        _require(
            0 <= self.overlap_tokens < self.max_tokens // 2,
            f"chunking overlap_tokens must be in [0, max_tokens/2), got {self.overlap_tokens}",
        )


@dataclass(frozen=True)
class VectorIndexConfig(_Serialisable):
    """FAISS index choice: exact search below `hnsw_threshold` vectors, HNSW above (for "auto")."""

    index_type: str = "auto"
    hnsw_threshold: int = 50_000
    hnsw_m: int = 32
    hnsw_ef_construction: int = 200
    hnsw_ef_search: int = 128

    def __post_init__(self) -> None:
        _require(self.index_type in INDEX_TYPES, f"index_type must be one of {INDEX_TYPES}, got {self.index_type!r}")
        _require(self.hnsw_threshold >= 0, "hnsw_threshold must be >= 0")
        _require(self.hnsw_m >= 4, "hnsw_m must be >= 4")
        _require(self.hnsw_ef_search >= 1 and self.hnsw_ef_construction >= 1, "HNSW ef values must be >= 1")

    def kind_for(self, count: int) -> str:
        """The concrete index kind ("flat" or "hnsw") for a collection of `count` vectors."""
        if self.index_type != "auto":
            return self.index_type
        return "hnsw" if count >= self.hnsw_threshold else "flat"


@dataclass(frozen=True)
class ReaderConfig(_Serialisable):
    """The span reader: model, sliding windows and decoding limits (SQuAD 2.0 conventions)."""

    model: str = DEFAULT_READER_MODEL
    revision: str | None = DEFAULT_READER_REVISION
    max_seq_len: int = 384
    doc_stride: int = 128
    max_query_tokens: int = 64
    max_answer_tokens: int = 30
    top_spans: int = 5
    batch_size: int | None = None  # windows per forward pass (None: the device's default, `batch_for`)
    device: str | None = None
    runtime: str = "auto"
    threads: int | None = None  # ONNX Runtime threads (None: one per core)
    # ONNX Runtime threads busy-wait between steps: a few % faster when the model has the cores to
    # itself (indexing, evaluation), slower when other work needs them (`rag-qa serve` turns it off)
    spin: bool = True
    int8: bool = False  # int8 weights and activations (ONNX Runtime): faster, its own fitted scoring
    bf16: bool = False  # bfloat16 matrix products, the QA head in fp32 (PyTorch autocast; `rag_qa.precision`)
    # `ask` reads a question's first passage first and the others only when they could change the
    # top answer or the decision to answer (`rag_qa.cascade`). Off by default: fewer tokens, but one
    # more forward pass for each question the first passage does not settle (most of them), which
    # costs more than it saves for one question at a time with a large reader (docs/benchmarks.md 19)
    read_in_stages: bool = False

    def __post_init__(self) -> None:
        _require(bool(self.model), "reader model must be a Hub id or a local path")
        _require_runtime(self.runtime, self.threads)
        _require(not (self.int8 and self.runtime == "torch"), "int8 runs on ONNX Runtime: use runtime 'onnx' or 'auto', not 'torch'")
        _require(not (self.bf16 and self.runtime == "onnx"), "bf16 runs on PyTorch: use runtime 'torch' or 'auto', not 'onnx'")
        _require(not (self.bf16 and self.int8), "choose one precision: bf16 or int8")
        _require_windows(self.max_seq_len, self.doc_stride, self.max_query_tokens)
        _require(self.max_query_tokens >= 4, "max_query_tokens must be >= 4")
        _require(self.max_answer_tokens >= 1, "max_answer_tokens must be >= 1")
        _require(self.top_spans >= 1 and (self.batch_size is None or self.batch_size >= 1), "top_spans and batch_size must be >= 1")

    @property
    def windows_per_batch(self) -> int:
        """int8 reads one window per forward pass unless told otherwise: its activations are scaled
        per pass, so in a batch a window's answer would move with the other windows and their
        padding (on dev-eval, batched int8 kept 98.0% of fp32's exact match, alone 99.7%)."""
        return 1 if self.int8 and self.batch_size is None else batch_for(self.batch_size, self.device)

    @property
    def precision(self) -> str:
        """"int8", "bf16" or "fp32": what fitted scoring depends on (fp32 logits agree across runtimes)."""
        return "int8" if self.int8 else "bf16" if self.bf16 else "fp32"


# Answer policies: the least confidence (the top answer's calibrated expected F1) for an answer to be
# shown rather than "no answer". The same meaning on every corpus, because the confidence stays
# calibrated off SQuAD (docs/benchmarks.md section 16). careful: each answer shown at least half
# right on average; balanced: most of what a knowledge base holds answered (the answers shown about
# 30% F1 on average on SQuAD and on scientific papers alike); eager: always the best span.
ANSWER_POLICIES = MappingProxyType({"careful": 0.5, "balanced": 0.1, "eager": 0.0})
DEFAULT_ANSWER_POLICY = "balanced"


def with_answer_policy(scoring: "ScoringConfig", policy: str) -> "ScoringConfig":
    """`scoring` answering by the named policy's threshold."""
    _require(policy in ANSWER_POLICIES, f"answer policy must be one of {', '.join(ANSWER_POLICIES)}, got {policy!r}")
    return replace(scoring, answer_threshold=ANSWER_POLICIES[policy])


# Softmax temperature over retrieval scores, per retrieval mode (cosine, BM25, cosine of the fused hits).
DEFAULT_RETRIEVAL_TEMPERATURE = MappingProxyType({"dense": 0.05, "bm25": 2.0, "hybrid": 0.05})  # read-only


@dataclass(frozen=True)
class ScoringConfig(_Serialisable):
    """How retrieval and span scores combine into ranked answers, when to abstain, and the
    confidence calibration (see docs/architecture.md, "Scoring"). Fit these with `rag-qa calibrate` on held-out data.

    - Answer score = log P(span | passage) + retrieval_weight * log P(passage | question).
    - margin m = max over passages of (best span - null): how much the reader prefers an answer
      to "no answer" in the passage it likes best.
    - The top answer's confidence p = sigmoid(answer_scale * logit(q) + answer_margin_scale * m +
      answer_words_scale * w + answer_rare_words_scale * v + answer_relevance_scale * r +
      answer_bias): its expected F1 against the right answer (1 exactly right, partial overlap in
      part, 0 when there is none), with q = exp(its score), its own ranking probability (so
      uncalibrated, p = q), w the share of the question's words the passages read hold, v the
      same share weighted by each word's rarity among the passages searched, r its passage's
      retrieval score; an answer ranked lower, its score d below the top one, gets
      min(p * exp(-d), 1 - p).
    - With `answer_threshold` set (an answer policy, or a fit of `calibrate`): answer when
      p >= answer_threshold; an abstention's confidence is 1 - p (that the best answer found is
      wrong). The candidates are those of the passages that pass `tau` (every passage's when none
      does).
    - Without it (fits saved before answer policies, or `--tau`): a passage abstains when its null
      score exceeds its best span score by more than `tau`, the system when every passage does;
      P(no answer right) = sigmoid(-no_answer_scale * (m + tau) + no_answer_bias).
    """

    tau: float = 0.0
    retrieval_weight: float = 0.5
    retrieval_temperature: float | None = None  # None: the default for the retrieval mode
    answer_scale: float = 1.0
    answer_bias: float = 0.0
    answer_margin_scale: float = 0.0  # 0 in fits saved before these three were features
    answer_words_scale: float = 0.0
    answer_relevance_scale: float = 0.0
    answer_rare_words_scale: float = 0.0  # 0 in fits saved before it was a feature
    answer_threshold: float | None = None  # None: the tau rule
    no_answer_scale: float = 1.0
    no_answer_bias: float = 0.0
    max_answers: int = 5
    max_answer_tokens: int | None = None  # the reader's answer cap this was fitted with (None: the reader's own)

    def __post_init__(self) -> None:
        _require(self.retrieval_weight >= 0, "retrieval_weight must be >= 0")
        _require(self.max_answer_tokens is None or self.max_answer_tokens >= 1, "max_answer_tokens must be >= 1")
        _require(self.retrieval_temperature is None or self.retrieval_temperature > 0, "retrieval_temperature must be > 0")
        _require(self.max_answers >= 1, "max_answers must be >= 1")
        _require(self.answer_threshold is None or 0 <= self.answer_threshold <= 1, "answer_threshold must be in [0, 1]")


@dataclass(frozen=True)
class RetrievalConfig(_Serialisable):
    """How passages are found for a question."""

    mode: str = DEFAULT_RETRIEVAL_MODE
    top_k: int = 5
    rrf_k: int = 60
    neighbour_chars: int = 200  # characters of the document read on either side of a passage (0: none)
    table_scan_depth: int = 40  # passages scanned for a table row the question names, read beyond top_k (0: none)

    def __post_init__(self) -> None:
        _require(0 <= self.table_scan_depth <= 1000, f"table_scan_depth must be in [0, 1000], got {self.table_scan_depth}")
        _require(self.mode in RETRIEVAL_MODES, f"retrieval mode must be one of {RETRIEVAL_MODES}, got {self.mode!r}")
        _require(1 <= self.top_k <= 1000, f"top_k must be in [1, 1000], got {self.top_k}")
        _require(self.rrf_k >= 1, "rrf_k must be >= 1")
        _require(0 <= self.neighbour_chars <= 10_000, f"neighbour_chars must be in [0, 10000], got {self.neighbour_chars}")


DEFAULT_INCLUDE = formats.DEFAULT_INCLUDE  # every type a loader reads


@dataclass(frozen=True)
class IngestConfig(_Serialisable):
    """Which files a directory walk picks up, and the guards against hostile or huge files."""

    include: tuple[str, ...] = DEFAULT_INCLUDE
    exclude: tuple[str, ...] = ()
    max_file_mb: float = 100.0
    pdf_timeout_s: float = 120.0
    pdf_memory_mb: int = 2048
    commit_passages: int = 256  # embed and commit in groups this big: full batches, bounded loss on a kill
    save_interval_s: float = 30.0  # save the FAISS file at least this often during a long run
    ocr: bool = True  # read scanned PDF pages with Tesseract
    ocr_languages: str = "eng"  # Tesseract language codes joined by "+": "eng+deu"
    max_prune_share: float = 0.5  # a sync that would remove more of a folder's indexed files stops there (unless forced)
    tombstone_days: float = 30.0  # a document a sync removed keeps its access groups this long, for when it comes back

    def __post_init__(self) -> None:
        _require(self.max_file_mb > 0, "max_file_mb must be > 0")
        _require(0 <= self.max_prune_share <= 1, f"max_prune_share must be between 0 and 1, got {self.max_prune_share}")
        _require(self.tombstone_days >= 0, "tombstone_days must be >= 0")
        _require(
            re.fullmatch(r"[A-Za-z_]+(\+[A-Za-z_]+)*", self.ocr_languages) is not None,
            f"ocr_languages must be Tesseract language codes joined by '+' (such as eng or eng+deu), got {self.ocr_languages!r}",
        )
        _require(self.commit_passages >= 1, "commit_passages must be >= 1")
        _require(self.save_interval_s >= 0, "save_interval_s must be >= 0")
        _require(self.pdf_timeout_s > 0, "pdf_timeout_s must be > 0")
        _require(self.pdf_memory_mb >= 256, "pdf_memory_mb must be >= 256")


@dataclass(frozen=True)
class IndexSettings(_Serialisable):
    """Everything fixed when an index is created; saved in its manifest."""

    embedder: EmbedderConfig = field(default_factory=EmbedderConfig)
    chunking: ChunkingConfig = field(default_factory=ChunkingConfig)
    vector_index: VectorIndexConfig = field(default_factory=VectorIndexConfig)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "IndexSettings":
        return cls(
            embedder=EmbedderConfig.from_dict(data.get("embedder", {})),
            chunking=ChunkingConfig.from_dict(data.get("chunking", {})),
            vector_index=VectorIndexConfig.from_dict(data.get("vector_index", {})),
        )


@dataclass(frozen=True)
class TrainConfig(_Serialisable):
    """Fine-tuning a span reader on SQuAD-format data; defaults suit a CPU and a small model.

    `learning_rate=None` picks 1e-4 when the base model gets a new QA head (a plain encoder) and
    3e-5 when it already has one (continued fine-tuning should not wash out what it knows).
    """

    base: str
    train_file: str
    out: str
    dev_file: str | None = None
    revision: str | None = None
    epochs: float = 2.0
    max_steps: int | None = None  # stop after this many optimizer steps (overrides epochs)
    max_seq_len: int = 384
    doc_stride: int = 128
    max_query_tokens: int = 64
    batch_size: int = 16
    learning_rate: float | None = None
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    seed: int = 0
    checkpoint_every: int = 50  # optimizer steps between resumable checkpoints

    def __post_init__(self) -> None:
        _require(self.epochs > 0, f"epochs must be > 0, got {self.epochs}")
        _require(self.max_steps is None or self.max_steps >= 1, "max_steps must be >= 1")
        _require_windows(self.max_seq_len, self.doc_stride, self.max_query_tokens)
        _require(self.batch_size >= 1, "batch_size must be >= 1")
        _require(self.learning_rate is None or self.learning_rate > 0, "learning_rate must be > 0")
        _require(0 <= self.warmup_ratio < 1, "warmup_ratio must be in [0, 1)")
        _require(self.checkpoint_every >= 1, "checkpoint_every must be >= 1")


AUTH_MODES = ("auto", "keys", "off")


@dataclass(frozen=True)
class ServerConfig(_Serialisable):
    """Limits of the HTTP service (`rag-qa serve`); requests beyond them get a 4xx JSON error."""

    upload_dir: str = "uploads"  # uploaded files are kept here (and indexed from here)
    max_upload_mb: float = 50.0  # per request
    max_json_kb: int = 256  # any other request body (questions, searches, keys)
    max_question_chars: int = 1000
    max_top_k: int = 50
    batch_wait_ms: float = 0.0  # questions that arrive while a batch runs (or within this wait of the first) form the next batch
    max_batch: int = 32
    max_queue: int = 256  # questions waiting beyond this get 503 at once
    ask_timeout_s: float = 120.0  # a question not answered within this gets 504
    auth: str = "auto"  # API keys: "auto" (open until the index holds its first key; loopback only), "keys" (always) or "off" (server.auth)
    allowed_hosts: tuple[str, ...] = ("127.0.0.1", "localhost", "::1")  # Host headers served (others: 400)
    cors_origins: tuple[str, ...] = ()  # web origins allowed to call the API from a browser (none: CORS off)
    rate_limit: str = "600/minute"  # per key (per client address on an open service); "" for none
    auth_failures: str = "20/minute"  # failed key checks per client address; beyond it 429 for requests without a valid key until the window passes; "" for none

    def __post_init__(self) -> None:
        _require(self.auth in AUTH_MODES, f"auth must be one of {', '.join(AUTH_MODES)}, got {self.auth!r}")
        _require(self.max_upload_mb > 0, "max_upload_mb must be > 0")
        _require(self.max_json_kb >= 1, "max_json_kb must be >= 1")
        _require(bool(self.allowed_hosts), "allowed_hosts must name at least one host (\"*\" allows any)")
        _require(self.max_queue >= 1 and self.ask_timeout_s > 0, "max_queue must be >= 1 and ask_timeout_s > 0")
        _require(0 <= self.batch_wait_ms <= 1000 and self.max_batch >= 1, "batch_wait_ms must be in [0, 1000] and max_batch >= 1")
        _require(self.max_question_chars >= 1 and self.max_top_k >= 1, "max_question_chars and max_top_k must be >= 1")
