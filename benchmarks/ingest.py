"""Ingestion throughput on real PDFs: the SQuAD articles of ../shared rendered one article per PDF
(two paragraphs a page), indexed by rag-qa from scratch. Prints JSON: pages/s, passages/s, the
share of time spent embedding, index size per 1,000 passages and peak memory.

Usage: python benchmarks/ingest.py [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
SQUAD = REPO.parent / "shared" / "data" / "squad2"


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="runs to take the median of (default: %(default)s)")
    args = parser.parse_args()
    from squad_pdfs import build_corpus

    from rag_qa import RagQA

    work = Path(tempfile.mkdtemp(prefix="rag-qa-bench-"))
    try:
        for name in ("dev-eval.json", "reader-train.json"):
            build_corpus(SQUAD / name, work / "pdfs")
        runs = []
        for run in range(args.repeat):
            index = work / f"index-{run}"
            with RagQA.open(index) as qa:
                qa.embedder.warm_up()
                started = time.perf_counter()
                report = qa.index([work / "pdfs"])
                seconds = time.perf_counter() - started
            runs.append((seconds, report, folder_size(index)))
        seconds, report, size = sorted(runs, key=lambda r: r[0])[len(runs) // 2]
        print(json.dumps({
            "files": report.files_indexed,
            "pages": report.pages,
            "passages": report.passages_added,
            "seconds_median": round(seconds, 2),
            "seconds_all": [round(r[0], 2) for r in runs],
            "pages_per_second": round(report.pages / seconds, 2),
            "passages_per_second": round(report.passages_added / seconds, 2),
            "embedding_share": round(report.seconds["embed"] / seconds, 3),
            "stage_seconds": report.seconds,
            "index_bytes_per_1000_passages": round(1000 * size / report.passages_added),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "spread": round(statistics.pstdev(r[0] for r in runs), 2),
        }, indent=2))  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
