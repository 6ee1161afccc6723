"""Stand-ins for a parser misbehaving on a hostile file. A module of their own, light to import:
the guarded worker imports it under its memory limit."""

from __future__ import annotations

import os
import time

from rag_qa.ingest.pdf import PdfPages


def hang(path: str) -> PdfPages:
    time.sleep(3600)
    return PdfPages(())


def bloat(path: str) -> PdfPages:
    hog = [bytearray(64 * 2**20) for _ in range(64)]  # 4 GiB: over the limit
    return PdfPages((str(len(hog)),))


def crash(path: str) -> PdfPages:
    os._exit(139)
