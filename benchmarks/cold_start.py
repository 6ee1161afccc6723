"""Cold starts: whole processes, side by side, interleaved, several times.

What a user waits for when each command is a new process: `rag-qa ask` on ONNX Runtime and on
PyTorch, `rag-qa search`, `rag-qa serve` until its first answer, a Haystack 3 pipeline script
asking the same question (when the Haystack peer is installed), and, as the yardstick,
`python -c "import torch, transformers, sentence_transformers"`. Each row: min and median wall
time and the peak resident memory of the process (GNU time; for serve, its peak up to the first answer). The index (data/) and the ONNX
graph cache are made first and are warm for every run: this measures starting, not exporting.

Usage: python benchmarks/cold_start.py [--repeats 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import READER, REPO, embedder_path, median, require_shared, table

QUESTION = "How long does a fully charged drill battery last?"
TIME = "/usr/bin/time"  # GNU time, for each process's own peak memory
HAYSTACK_SCRIPT = """
import sys
from haystack import Pipeline
from haystack.document_stores.in_memory import InMemoryDocumentStore
from haystack.components.retrievers.in_memory import InMemoryEmbeddingRetriever
from haystack_integrations.components.embedders.sentence_transformers import SentenceTransformersTextEmbedder
from haystack_integrations.components.readers.transformers import TransformersExtractiveReader
store_file, embedder, reader, question = sys.argv[1:]
store = InMemoryDocumentStore.load_from_disk(store_file)
pipeline = Pipeline()
pipeline.add_component("embedder", SentenceTransformersTextEmbedder(model=embedder, normalize_embeddings=True, progress_bar=False))
pipeline.add_component("retriever", InMemoryEmbeddingRetriever(document_store=store, top_k=5))
pipeline.add_component("reader", TransformersExtractiveReader(model=reader, top_k=3))
pipeline.connect("embedder.embedding", "retriever.query_embedding")
pipeline.connect("retriever.documents", "reader.documents")
answers = pipeline.run({"embedder": {"text": question}, "reader": {"query": question}})["reader"]["answers"]
print(answers[0].data)
"""


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one process run to its end. The peak comes from GNU time
    (/usr/bin/time -f %M): a child forked from this large process would report this process's
    memory as its own peak."""
    started = time.perf_counter()
    done = subprocess.run([TIME, "-f", "%M", *command], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(command)}\n{done.stderr[-2000:]}")
    return seconds, int(done.stderr.strip().splitlines()[-1]) / 1024


def timed_serve(index: str, env: dict[str, str]) -> tuple[float, float]:
    """Seconds from starting `rag-qa serve` to its first answer, and its peak RSS in MB."""
    import httpx

    from rag_qa.server.background import free_port

    port = free_port()
    command = [sys.executable, "-m", "rag_qa.cli", "serve", "--index", index, "--reader", str(READER), "--port", str(port), "--log-level", "warning"]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    while True:
        try:
            answer = httpx.post(f"http://127.0.0.1:{port}/ask", json={"question": QUESTION}, timeout=60)
            if answer.status_code == 200:
                break
        except httpx.TransportError:
            if process.poll() is not None:
                sys.exit("rag-qa serve exited before answering")
            time.sleep(0.05)
    seconds = time.perf_counter() - started
    status = Path(f"/proc/{process.pid}/status").read_text()
    peak_kb = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))  # its peak so far
    process.terminate()
    process.wait()
    return seconds, peak_kb / 1024


def haystack_store(folder: str) -> str | None:
    """The sample passages, embedded, in a Haystack in-memory store saved to disk (None without the peer)."""
    try:
        from haystack import Document
        from haystack.document_stores.in_memory import InMemoryDocumentStore
        from haystack_integrations.components.embedders.sentence_transformers import SentenceTransformersDocumentEmbedder
    except ImportError:
        return None
    from rag_qa import RagQA

    with RagQA.open(os.path.join(folder, "index"), read_only=True) as qa:
        passages = [p for p, _ in qa.store.iter_passages()]
    embedder = SentenceTransformersDocumentEmbedder(model=embedder_path(), normalize_embeddings=True, progress_bar=False)
    embedder.warm_up()
    store = InMemoryDocumentStore()
    store.write_documents(embedder.run([Document(content=p.text, meta={"source": p.source}) for p in passages])["documents"])
    path = os.path.join(folder, "haystack-store.json")
    store.save_to_disk(path)
    return path


def run(repeats: int) -> dict:
    require_shared()
    if not os.path.exists(TIME):
        sys.exit(f"{TIME} (GNU time) is needed for peak memory: apt-get install time")
    folder = tempfile.mkdtemp(prefix="cold-start-")
    env = {**os.environ, "RAG_QA_ONNX_CACHE": os.path.join(folder, "onnx"), "HF_HUB_OFFLINE": "1"}
    env.pop("RAG_QA_RUNTIME", None)
    index = os.path.join(folder, "index")
    cli = [sys.executable, "-m", "rag_qa.cli"]
    subprocess.run([*cli, "index", str(REPO / "data"), "--index", index, "--quiet"], check=True, env=env, capture_output=True)
    ask = [*cli, "ask", QUESTION, "--index", index, "--reader", str(READER), "--json"]
    commands = {
        "imports: torch, transformers, sentence_transformers": [sys.executable, "-c", "import torch, transformers, sentence_transformers"],
        "rag-qa ask (onnx)": [*ask, "--runtime", "onnx"],
        "rag-qa ask (torch)": [*ask, "--runtime", "torch"],
        "rag-qa search": [*cli, "search", QUESTION, "--index", index, "--json"],
    }
    subprocess.run(commands["rag-qa ask (onnx)"], check=True, env=env, capture_output=True)  # export the graphs once: warm cache
    store = haystack_store(folder)
    if store is not None:
        commands["Haystack 3 pipeline script"] = [sys.executable, "-c", HAYSTACK_SCRIPT, store, embedder_path(), str(READER), QUESTION]
    names = [*commands, "rag-qa serve: first answer"]
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for repeat in range(repeats):
        for name in names[repeat % len(names) :] + names[: repeat % len(names)]:  # interleaved, a different order each time
            samples[name].append(timed_serve(index, env) if name == "rag-qa serve: first answer" else timed(commands[name], env))
    rows = {name: {"min_s": min(s for s, _ in runs), "median_s": median([s for s, _ in runs]), "peak_rss_mb": max(m for _, m in runs)} for name, runs in samples.items()}
    yardstick = rows[names[0]]["median_s"]
    ratios = {
        "ask_onnx_over_imports": rows["rag-qa ask (onnx)"]["median_s"] / yardstick,
        "serve_first_answer_over_ask_onnx": rows["rag-qa serve: first answer"]["median_s"] / rows["rag-qa ask (onnx)"]["median_s"],
    }
    if store is not None:
        ratios["haystack_over_ask_onnx"] = rows["Haystack 3 pipeline script"]["median_s"] / rows["rag-qa ask (onnx)"]["median_s"]
    return {"repeats": repeats, "rows": rows, "ratios": ratios, "haystack": store is not None}


def markdown(result: dict) -> str:
    rows = [[name, r["min_s"], r["median_s"], r["peak_rss_mb"]] for name, r in result["rows"].items()]
    ratios = ", ".join(f"{k} {v:.2f}" for k, v in result["ratios"].items())
    missing = "" if result["haystack"] else " The Haystack peer is not installed, so its row is missing."
    return table(["process", "min s", "median s", "peak RSS MB"], rows) + f"\n\n{result['repeats']} runs each, interleaved. Ratios of medians: {ratios}.{missing}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs of each process (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a Markdown table")
    args = parser.parse_args()
    result = run(args.repeats)
    print(json.dumps(result, indent=2) if args.json else markdown(result))


if __name__ == "__main__":
    main()
