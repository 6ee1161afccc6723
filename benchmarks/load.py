"""Load test of `rag-qa serve` on loopback, for the FAISS and the PostgreSQL backend.

The service runs as its own process (`rag-qa serve`, the offline reader, top_k 5) over the 109
dev-eval.json paragraphs. For each client count, that many clients ask dev-eval questions
back to back for `--duration` seconds while one more client keeps uploading documents (one
distractor paragraph per upload, each a new file; `--uploader off` leaves it out, `off on` runs
both). Reported: answered questions per second,
p50/p99 latency, uploads, and errors (any non-200 answer or failed request; the target is zero).
The clients run on the same 2 cores as the service, so the numbers are a floor.

With `--auth keys`, the service needs API keys and the paragraphs belong to two access groups
(alternate articles: blue, green). Half the asking clients hold a blue reader key, half a green
one; the uploader holds a blue editor key (its uploads are blue). Every answer and closest-match
hint is checked against the client's groups: one from a document the key may not read is counted
as a cross-group hit (and an error). `--auth off keys` runs both, side by side.

Usage: python benchmarks/load.py [--clients 1 8] [--duration 60] [--backends faiss postgresql] [--runtime onnx] [--auth off keys] [--uploader off on] [--batch-wait-ms 0 10] [--json]
"""

from __future__ import annotations

import argparse
import functools
import itertools
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


GROUPS = ("blue", "green")


def build_index(location: str, keyed: bool) -> tuple[int, dict[str, str], dict[str, str]]:
    """The dev-eval paragraphs, indexed in-process before the service starts: (passages, group of
    each source, key of each role) — with `keyed`, alternate articles are blue or green and there
    are keys for a blue reader, a green reader and a blue editor."""
    from dataclasses import replace

    from rag_qa import RagQA
    from rag_qa.indexer import add_documents
    from rag_qa.keys import KeyRing
    from rag_qa.squad import squad_corpus

    documents = list(squad_corpus([SQUAD / "dev-eval.json"]))
    articles = list(dict.fromkeys(d.source.rsplit("/", 1)[0] for d in documents))  # squad:dev-eval/ARTICLE/PARAGRAPH (title)
    group_of = {d.source: GROUPS[articles.index(d.source.rsplit("/", 1)[0]) % 2] for d in documents} if keyed else {}
    with RagQA.open(location) as qa:
        add_documents([replace(d, groups=(group_of[d.source],)) if keyed else d for d in documents], qa.store, qa.embedder)
        keys = {}
        if keyed:
            ring = KeyRing(qa.store)
            keys = {name: ring.create(role, [group], name)[1] for name, role, group in (("blue", "reader", "blue"), ("green", "reader", "green"), ("uploader", "editor", "blue"))}
        return qa.store.count(), group_of, keys


def start_service(location: str, uploads: Path, port: int, runtime: str, auth: str, batch_wait_ms: float) -> subprocess.Popen:
    import httpx

    command = [sys.executable, "-m", "rag_qa.cli", "serve", "--index", location, "--reader", str(READER), "--port", str(port),
               "--upload-dir", str(uploads), "--log-level", "warning", "--runtime", runtime, *(["--no-auth"] if auth == "off" else []),
               "--rate-limit", "none", "--batch-wait-ms", str(batch_wait_ms)]  # fmt: skip  (all clients come from one address: measure throughput, not the limiter)
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


def cross_group(result: dict, group: str | None, group_of: dict[str, str]) -> list[str]:
    """Sources in an answer (or closest-match hint) that a `group` key may not read (uploads are blue)."""
    shown = result["answers"] + ([result["best_guess"]] if "best_guess" in result else [])
    return [a["source"] for a in shown if group is not None and group_of.get(a["source"], "blue") != group]


def run_load(url: str, questions: list[str], paragraphs: list[str], clients: int, duration: float, keys: dict[str, str], group_of: dict[str, str], uploading: bool = True) -> dict:
    """`clients` askers (and one uploader when `uploading`) against `url` for `duration` seconds;
    with `keys`, client c asks with the key of group c % 2 and its answers are checked against that group."""
    import httpx

    deadline = time.monotonic() + duration
    asks: list[float] = []
    uploads: list[float] = []
    errors: list[str] = []
    leaks: list[str] = []
    lock = threading.Lock()

    def bearer(name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {keys.get(name, 'open-service')}"}  # an open service wants a bearer header on uploads

    def asker(offset: int) -> None:
        group = GROUPS[offset % 2] if keys else None
        with httpx.Client(base_url=url, timeout=120, headers=bearer(group) if group else {}) as client:
            i = offset
            while time.monotonic() < deadline:
                started = time.perf_counter()
                try:
                    response = client.post("/ask", json={"question": questions[i % len(questions)]})
                    problem = None if response.status_code == 200 else f"ask {response.status_code}: {response.text[:200]}"
                    leaked = cross_group(response.json(), group, group_of) if problem is None else []
                except httpx.HTTPError as exc:
                    problem, leaked = f"ask: {exc!r}", []
                with lock:
                    leaks.extend(leaked)
                    (errors.append(problem) if problem else asks.append(time.perf_counter() - started))
                i += clients

    def uploader() -> None:
        with httpx.Client(base_url=url, timeout=300, headers=bearer("uploader")) as client:
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

    threads = [threading.Thread(target=asker, args=(c,)) for c in range(clients)] + ([threading.Thread(target=uploader)] if uploading else [])
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    latencies = np.array(asks) * 1000
    return {
        "clients": clients,
        "uploader": "on" if uploading else "off",
        "seconds": round(elapsed, 1),
        "questions": len(asks),
        "questions_per_s": len(asks) / elapsed,
        "p50_ms": float(np.percentile(latencies, 50)) if len(asks) else None,
        "p99_ms": float(np.percentile(latencies, 99)) if len(asks) else None,
        "uploads": len(uploads),
        "upload_p50_ms": float(np.median(uploads) * 1000) if uploads else None,
        "errors": len(errors) + len(leaks),
        "cross_group_hits": len(leaks),
        "error_examples": (errors + leaks)[:3],
    }


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) the process has used so far, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def service_peak_mb(service: subprocess.Popen) -> float:
    """The service process's peak resident memory so far (VmHWM)."""
    for line in Path(f"/proc/{service.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(backends: list[str], client_counts: list[int], duration: float, runtime: str = "onnx", auth_modes: tuple[str, ...] = ("off",), uploader_modes: tuple[str, ...] = ("on",),
        waits_ms: tuple[float, ...] = (0.0,)) -> list[dict]:  # fmt: skip
    from rag_qa.squad import load_squad

    questions = [q.question for q in load_squad(SQUAD / "dev-eval.json")]
    paragraphs = [json.loads(line)["text"] for line in (SQUAD / "distractor-passages.jsonl").read_text("utf-8").splitlines()]
    results = []
    with tempfile.TemporaryDirectory(prefix="rag-qa-load-") as scratch:
        for backend, auth, wait_ms in itertools.product(backends, auth_modes, waits_ms):
            where = Path(scratch) / f"{backend}-{auth}-{wait_ms:g}"
            location = str(where / "index") if backend == "faiss" else postgres_url(Path(scratch) / "postgres", f"load_{auth}_{wait_ms:g}".replace(".", "_"))
            passages, group_of, keys = build_index(location, keyed=auth == "keys")
            from rag_qa.server.background import free_port

            port = free_port()
            service = start_service(location, where / "uploads", port, runtime, auth, wait_ms)
            try:
                for uploading, clients in itertools.product(uploader_modes, client_counts):
                    service_before, clients_before = cpu_seconds(service.pid), time.process_time()
                    result = run_load(f"http://127.0.0.1:{port}", questions, paragraphs, clients, duration, keys, group_of, uploading == "on")
                    busy = {"service_cores": (cpu_seconds(service.pid) - service_before) / result["seconds"],
                            "client_cores": (time.process_time() - clients_before) / result["seconds"]}  # fmt: skip
                    row = {"backend": backend, "auth": auth, "batch_wait_ms": wait_ms, "runtime": runtime, "passages_at_start": passages, **result, **busy,
                           "service_peak_mb": service_peak_mb(service)}  # fmt: skip
                    results.append(row)
                    print(json.dumps(row), file=sys.stderr, flush=True)
            finally:
                service.terminate()
                service.wait(timeout=60)
    return results


def postgres_url(folder: Path, schema: str) -> str:
    return _postgres_server(folder).get_uri() + "#" + schema


@functools.cache
def _postgres_server(folder: Path):
    """One server for the whole run (each run gets its own schema)."""
    import pgserver

    folder.mkdir(parents=True, exist_ok=True)
    return pgserver.get_server(folder, cleanup_mode="stop")


def markdown(results: list[dict]) -> str:
    rows = [
        [r["backend"], r["auth"], r["batch_wait_ms"], r["uploader"], r["clients"], r["questions_per_s"], r["p50_ms"], r["p99_ms"], r["questions"], r["uploads"], r["upload_p50_ms"],
         r["errors"], r["cross_group_hits"], r["service_cores"], r["client_cores"], r["service_peak_mb"]]
        for r in results  # fmt: skip
    ]
    intro = (
        f"`rag-qa serve --runtime {results[0]['runtime']}` (its own process, offline reader, top_k 5; the questions that "
        "arrive while a batch runs, or within the batch wait of the first, answered as the next batch) over the 109 dev-eval.json paragraphs; each run asks dev-eval questions "
        "back to back from N clients, with the uploader on while one more client uploads a new one-paragraph document after another. Clients "
        "share the 2 cores with the service."
        + (" keys: with API keys, the paragraphs in two access groups (alternate articles), half the askers on each "
           "group's reader key and the uploader on an editor key; every answer and hint checked against the asker's "
           "groups (cross-group hits count as errors)." if any(r["auth"] == "keys" for r in results) else "")
        + "\n\n"
    )  # fmt: skip
    headers = ["backend", "keys", "batch wait ms", "uploader", "ask clients", "questions/s", "p50 ms", "p99 ms", "questions", "uploads", "upload p50 ms", "errors", "cross-group hits", "service cores busy", "client cores busy", "service peak MB"]
    return intro + table(headers, rows) + "\n\n" + scaling(results)


def scaling(results: list[dict]) -> str:
    """Questions/s of the most clients over those of one client, per backend, keys and uploader."""
    ratios = []
    for setup in dict.fromkeys((r["backend"], r["auth"], r["batch_wait_ms"], r["uploader"]) for r in results):
        runs = sorted((r for r in results if (r["backend"], r["auth"], r["batch_wait_ms"], r["uploader"]) == setup), key=lambda r: r["clients"])
        if len(runs) > 1 and runs[0]["clients"] == 1:
            ratios.append(f"{setup[0]} keys {setup[1]} wait {setup[2]:g} ms uploader {setup[3]} {runs[-1]['questions_per_s'] / runs[0]['questions_per_s']:.2f}x")
    return f"{results[-1]['clients']} clients' questions/s over 1 client's: " + ", ".join(ratios) + "." if ratios else ""


def main() -> None:
    from rag_qa.config import ServerConfig

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8], help="concurrent asking clients, one run each (default: %(default)s)")
    parser.add_argument("--duration", type=float, default=60, help="seconds per run (default: %(default)s)")
    parser.add_argument("--backends", nargs="+", choices=["faiss", "postgresql"], default=["faiss", "postgresql"])
    parser.add_argument("--runtime", choices=["torch", "onnx"], default="onnx", help="the service's --runtime (default: %(default)s)")
    parser.add_argument("--auth", nargs="+", choices=["off", "keys"], default=["off"], help="off: an open service; keys: API keys and two access groups (default: %(default)s)")
    parser.add_argument("--uploader", nargs="+", choices=["off", "on"], default=["on"],
                        help="on: one more client uploads documents all through each run; off: askers only; 'off on' runs both (default: %(default)s)")
    parser.add_argument("--batch-wait-ms", type=float, nargs="+", default=[ServerConfig.batch_wait_ms],
                        help="the service's --batch-wait-ms, one service each (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    require_shared()
    os.chdir(REPO)
    results = run(args.backends, args.clients, args.duration, args.runtime, tuple(args.auth), tuple(args.uploader), tuple(args.batch_wait_ms))
    print(json.dumps(results, indent=2) if args.json else markdown(results))


if __name__ == "__main__":
    main()
