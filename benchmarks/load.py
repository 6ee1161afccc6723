"""Load test of `rag-qa serve` on loopback, for the FAISS and the PostgreSQL backend.

The service runs as its own process (`rag-qa serve`, the offline reader, top_k 5) over the 109
dev-eval.json paragraphs. For each client count, that many clients ask dev-eval questions
back to back for `--duration` seconds while one more client keeps uploading documents (one
distractor paragraph per upload, each a new file). Reported: answered questions per second,
p50/p99 latency, uploads, and errors (any non-200 answer or failed request; the target is zero).
The clients run on the same 2 cores as the service, so the numbers are a floor.

Usage: python benchmarks/load.py [--clients 1 8] [--duration 60] [--backends faiss postgresql] [--runtime onnx] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from common import READER, REPO, SQUAD, require_shared, table


def build_index(location: str) -> int:
    """The dev-eval paragraphs, indexed in-process before the service starts."""
    from rag_qa import RagQA
    from rag_qa.squad import squad_corpus
    from rag_qa.indexer import add_documents

    with RagQA.open(location) as qa:
        add_documents(squad_corpus([SQUAD / "dev-eval.json"]), qa.store, qa.embedder)
        return qa.store.count()


def start_service(location: str, uploads: Path, port: int, runtime: str) -> subprocess.Popen:
    import httpx

    command = [sys.executable, "-m", "rag_qa.cli", "serve", "--index", location, "--reader", str(READER), "--port", str(port),
               "--upload-dir", str(uploads), "--log-level", "warning", "--runtime", runtime,
               "--rate-limit", "none"]  # fmt: skip  (all clients come from one address: measure throughput, not the limiter)
    service = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return service
        except httpx.TransportError:
            time.sleep(0.5)
        if service.poll() is not None:
            sys.exit(f"the service exited: {service.stderr.read()}")
    service.kill()
    sys.exit("the service did not start within 120 s")


def run_load(url: str, questions: list[str], paragraphs: list[str], clients: int, duration: float) -> dict:
    """`clients` askers and one uploader against `url` for `duration` seconds."""
    import httpx

    deadline = time.monotonic() + duration
    asks: list[float] = []
    uploads: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def asker(offset: int) -> None:
        with httpx.Client(base_url=url, timeout=120) as client:
            i = offset
            while time.monotonic() < deadline:
                started = time.perf_counter()
                try:
                    response = client.post("/ask", json={"question": questions[i % len(questions)]})
                    problem = None if response.status_code == 200 else f"ask {response.status_code}: {response.text[:200]}"
                except httpx.HTTPError as exc:
                    problem = f"ask: {exc!r}"
                with lock:
                    (errors.append(problem) if problem else asks.append(time.perf_counter() - started))
                i += clients

    def uploader() -> None:
        with httpx.Client(base_url=url, timeout=300, headers={"Authorization": "Bearer open-service"}) as client:  # an open service wants a bearer header on uploads
            n = 0
            while time.monotonic() < deadline:
                started = time.perf_counter()
                name = f"upload-{os.getpid()}-{time.time_ns()}-{n}.txt"
                try:
                    response = client.post("/documents", files=[("files", (name, paragraphs[n % len(paragraphs)].encode()))])
                    problem = None if response.status_code == 200 and response.json()["files_indexed"] == 1 else f"upload {response.status_code}: {response.text[:200]}"
                except httpx.HTTPError as exc:
                    problem = f"upload: {exc!r}"
                with lock:
                    (errors.append(problem) if problem else uploads.append(time.perf_counter() - started))
                n += 1

    threads = [threading.Thread(target=asker, args=(c,)) for c in range(clients)] + [threading.Thread(target=uploader)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    latencies = np.array(asks) * 1000
    return {
        "clients": clients,
        "seconds": round(elapsed, 1),
        "questions": len(asks),
        "questions_per_s": len(asks) / elapsed,
        "p50_ms": float(np.percentile(latencies, 50)) if len(asks) else None,
        "p99_ms": float(np.percentile(latencies, 99)) if len(asks) else None,
        "uploads": len(uploads),
        "upload_p50_ms": float(np.median(uploads) * 1000) if uploads else None,
        "errors": len(errors),
        "error_examples": errors[:3],
    }


def service_peak_mb(service: subprocess.Popen) -> float:
    """The service process's peak resident memory so far (VmHWM)."""
    for line in Path(f"/proc/{service.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(backends: list[str], client_counts: list[int], duration: float, runtime: str = "onnx") -> list[dict]:
    from rag_qa.squad import load_squad

    questions = [q.question for q in load_squad(SQUAD / "dev-eval.json")]
    paragraphs = [json.loads(line)["text"] for line in (SQUAD / "distractor-passages.jsonl").read_text("utf-8").splitlines()]
    results = []
    with tempfile.TemporaryDirectory(prefix="rag-qa-load-") as scratch:
        for backend in backends:
            location = str(Path(scratch) / "index") if backend == "faiss" else postgres_url(Path(scratch) / "postgres")
            passages = build_index(location)
            from rag_qa.server.background import free_port

            port = free_port()
            service = start_service(location, Path(scratch) / f"uploads-{backend}", port, runtime)
            try:
                for clients in client_counts:
                    result = run_load(f"http://127.0.0.1:{port}", questions, paragraphs, clients, duration)
                    results.append({"backend": backend, "runtime": runtime, "passages_at_start": passages, **result, "service_peak_mb": service_peak_mb(service)})
                    print(json.dumps(results[-1]), file=sys.stderr, flush=True)
            finally:
                service.terminate()
                service.wait(timeout=60)
    return results


def postgres_url(folder: Path) -> str:
    import pgserver

    folder.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(folder, cleanup_mode="stop")
    return server.get_uri() + "#load_test"


def markdown(results: list[dict]) -> str:
    rows = [
        [r["backend"], r["clients"], r["questions_per_s"], r["p50_ms"], r["p99_ms"], r["questions"], r["uploads"], r["upload_p50_ms"], r["errors"], r["service_peak_mb"]]
        for r in results
    ]
    intro = (
        f"`rag-qa serve --runtime {results[0]['runtime']}` (its own process, offline reader, top_k 5, questions arriving within "
        "10 ms of each other answered as one batch) over the 109 dev-eval.json paragraphs; each run asks dev-eval questions "
        "back to back from N clients while one more client uploads a new one-paragraph document after another. Clients "
        "share the 2 cores with the service.\n\n"
    )
    headers = ["backend", "ask clients (+1 uploader)", "questions/s", "p50 ms", "p99 ms", "questions", "uploads", "upload p50 ms", "errors", "service peak MB"]
    return intro + table(headers, rows) + "\n\n" + scaling(results)


def scaling(results: list[dict]) -> str:
    """Questions/s of the most clients over those of one client, per backend."""
    ratios = []
    for backend in dict.fromkeys(r["backend"] for r in results):
        runs = sorted((r for r in results if r["backend"] == backend), key=lambda r: r["clients"])
        if len(runs) > 1 and runs[0]["clients"] == 1:
            ratios.append(f"{backend} {runs[-1]['questions_per_s'] / runs[0]['questions_per_s']:.2f}x")
    return f"{results[-1]['clients']} clients' questions/s over 1 client's: " + ", ".join(ratios) + "." if ratios else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8], help="concurrent asking clients, one run each (default: %(default)s)")
    parser.add_argument("--duration", type=float, default=60, help="seconds per run (default: %(default)s)")
    parser.add_argument("--backends", nargs="+", choices=["faiss", "postgresql"], default=["faiss", "postgresql"])
    parser.add_argument("--runtime", choices=["torch", "onnx"], default="onnx", help="the service's --runtime (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    require_shared()
    os.chdir(REPO)
    results = run(args.backends, args.clients, args.duration, args.runtime)
    print(json.dumps(results, indent=2) if args.json else markdown(results))


if __name__ == "__main__":
    main()
