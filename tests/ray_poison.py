"""A Ray ingestion worker that misbehaves on purpose, for the fault tests: sent to the cluster's
workers by value (the test registers this module with Ray's cloudpickle)."""

from __future__ import annotations

import os
from pathlib import Path

from rag_qa.distributed import IngestWorker


class PoisonedWorker(IngestWorker):
    """Dies (its process exits at once) on files named kills-its-worker*, raises on files named raises*."""

    def process(self, source: str, data: bytes, content_hash: str):
        name = Path(source).name
        if name.startswith("kills-its-worker"):
            os._exit(1)
        if name.startswith("raises"):
            raise ValueError(f"cannot read {name}")
        return super().process(source, data, content_hash)
