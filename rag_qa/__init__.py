"""rag-qa: extractive question answering over your documents, with citations and abstention."""

from rag_qa.config import ChunkingConfig, EmbedderConfig, IndexSettings, IngestConfig, VectorIndexConfig
from rag_qa.errors import RagQAError
from rag_qa.pipeline import RagQA
from rag_qa.records import Document, Passage, SearchHit

__all__ = [
    "ChunkingConfig",
    "Document",
    "EmbedderConfig",
    "IndexSettings",
    "IngestConfig",
    "Passage",
    "RagQA",
    "RagQAError",
    "SearchHit",
    "VectorIndexConfig",
]
__version__ = "0.1.0"
