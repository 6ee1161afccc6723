"""Ingestion benchmark on real PDFs: the SQuAD articles of ../shared rendered one article per PDF
(two paragraphs a page, 11 PDFs, 222 pages), indexed from scratch by rag-qa (the embedder on
PyTorch, on ONNX Runtime, and on PyTorch in bf16) and by the Haystack
indexing pipeline (PyPDFToDocument -> DocumentSplitter -> SentenceTransformersDocumentEmbedder ->
FAISSDocumentStore) with the same embedder. Each run is a fresh process (so peak memory is its
own); runs alternate between systems and medians are reported.

Usage: python benchmarks/ingest.py [--repeat N] [--json]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import SQUAD, embedder_path, median, require_shared, table


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def ingest_ours(pdfs: Path, work: Path, runtime: str) -> dict:
    from rag_qa import RagQA

    runtime, _, precision = runtime.partition(" ")
    with RagQA.open(work / "index", runtime=runtime, embedder_bf16=precision == "bf16") as qa:
        qa.embedder.warm_up()
        started = time.perf_counter()
        report = qa.index([pdfs])
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "pages": report.pages, "passages": report.passages_added, "embed_seconds": report.seconds["embed"],
            "index_bytes": folder_size(work / "index"), "skipped": len(report.files_skipped)}  # fmt: skip


def ingest_haystack(pdfs: Path, work: Path) -> dict:
    from haystack.components.converters import PyPDFToDocument
    from haystack.components.preprocessors import DocumentSplitter
    from haystack_integrations.components.embedders.sentence_transformers import SentenceTransformersDocumentEmbedder
    from haystack_integrations.document_stores.faiss import FAISSDocumentStore

    converter = PyPDFToDocument()
    splitter = DocumentSplitter(split_by="word", split_length=150, split_overlap=30)
    embedder = SentenceTransformersDocumentEmbedder(model=embedder_path(), normalize_embeddings=True, progress_bar=False)
    embedder.warm_up()
    splitter.warm_up() if hasattr(splitter, "warm_up") else None
    store = FAISSDocumentStore(index_path=str(work / "haystack"), embedding_dim=384)
    started = time.perf_counter()
    documents = converter.run(sources=sorted(pdfs.glob("*.pdf")))["documents"]
    chunks = splitter.run(documents=documents)["documents"]
    embed_started = time.perf_counter()
    embedded = embedder.run(documents=chunks)["documents"]
    embed_seconds = time.perf_counter() - embed_started
    store.write_documents(embedded)
    store.save(str(work / "haystack"))
    seconds = time.perf_counter() - started
    from pypdf import PdfReader

    pages = sum(len(PdfReader(str(p)).pages) for p in pdfs.glob("*.pdf"))
    return {"seconds": seconds, "pages": pages, "passages": len(chunks), "embed_seconds": embed_seconds,
            "index_bytes": folder_size(work), "skipped": 0}  # fmt: skip


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


SYSTEMS = {"rag-qa torch": "torch", "rag-qa onnx": "onnx", "rag-qa torch bf16": "torch bf16", "Haystack 3 pipeline": None}  # name: rag-qa runtime and precision


def one_run(system: str, pdfs: Path) -> dict:
    runtime = SYSTEMS[system]
    with tempfile.TemporaryDirectory() as work:
        result = ingest_haystack(pdfs, Path(work)) if runtime is None else ingest_ours(pdfs, Path(work), runtime)
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def run(repeat: int = 3) -> dict:
    require_shared()
    from squad_pdfs import build_corpus

    work = Path(tempfile.mkdtemp(prefix="rag-qa-bench-"))
    try:
        for name in ("dev-eval.json", "reader-train.json"):
            build_corpus(SQUAD / name, work / "pdfs")
        runs: dict[str, list[dict]] = {system: [] for system in SYSTEMS}
        for _ in range(repeat):
            for system in runs:
                output = subprocess.run([sys.executable, __file__, "--one", system, str(work / "pdfs")], capture_output=True, text=True, check=True)
                runs[system].append(json.loads(output.stdout.strip().splitlines()[-1]))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary = {}
    for system, results in runs.items():
        seconds = median([r["seconds"] for r in results])
        first = results[0]
        summary[system] = {
            "pages": first["pages"], "passages": first["passages"], "seconds": seconds,
            "pages_per_second": first["pages"] / seconds, "passages_per_second": first["passages"] / seconds,
            "embedding_share": median([r["embed_seconds"] / r["seconds"] for r in results]),
            "peak_rss_mb": median([r["peak_rss_mb"] for r in results]),
            "index_mb_per_1000_passages": first["index_bytes"] / first["passages"] * 1000 / 2**20,
            "runs_seconds": [r["seconds"] for r in results],
        }  # fmt: skip
    peer = summary["Haystack 3 pipeline"]["pages_per_second"]
    summary["speedup_pages"] = {system: summary[system]["pages_per_second"] / peer for system in SYSTEMS if SYSTEMS[system]}
    return summary


def markdown(result: dict) -> str:
    keys = ["pages", "passages", "seconds", "pages_per_second", "passages_per_second", "embedding_share", "peak_rss_mb", "index_mb_per_1000_passages"]
    rows = [[system] + [result[system][k] for k in keys] for system in SYSTEMS]
    speedups = ", ".join(f"{system} {value:.2f}x" for system, value in result["speedup_pages"].items())
    runs = len(result["Haystack 3 pipeline"]["runs_seconds"])
    return table(["system"] + keys, rows) + f"\n\nPages per second over Haystack's: {speedups} (median of {runs} runs each)."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="runs per system (default: %(default)s)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--one", nargs=2, metavar=("SYSTEM", "PDFS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_run(args.one[0], Path(args.one[1]))))
        return
    result = run(args.repeat)
    print(json.dumps(result, indent=2) if args.json else markdown(result))


if __name__ == "__main__":
    main()
