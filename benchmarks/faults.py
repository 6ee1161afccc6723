"""Faults at a larger scale than the tests: Ray nodes lost mid-run, and PostgreSQL restarted while
the service answers and takes uploads.

ray: the SQuAD articles as PDFs (the ingestion benchmark's corpus) on a local cluster, a head
without CPUs and two one-CPU nodes. Three runs: no fault; a node (its raylet and workers) killed
once a third of the files are stored; then the last node killed likewise (the run must end, naming
the files not done, and a local run completes the index). Each index is compared with the
fault-free one, passage by passage.

postgresql: `rag-qa serve` on a PostgreSQL index of the dev-eval paragraphs, 4 askers and one
uploader for DURATION seconds while the server goes down twice: for 3 s (shorter than the store's
30 s wait for the server) and for 40 s (longer). Every response is counted by
status; an upload answered 503 is sent again (with replace, as a client following the README
would). Afterwards every acknowledged upload must be stored exactly once.

Usage: python benchmarks/faults.py [--only ray postgresql] [--duration 120] [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
from common import READER, SQUAD, require_shared, table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def passages(index: Path) -> dict[str, tuple]:
    """Every passage of a folder index with its vector (after the store's own consistency check)."""
    from rag_qa.store import FaissStore

    with FaissStore.open(index) as store:
        store.flush()
        if store.check():
            raise AssertionError(f"{index} is not consistent: {store.check()}")
        return {p.id: (p.source, p.text, p.char_start, p.char_end, p.page, v) for p, v in store.iter_passages()}


def same_index(index: Path, reference: dict[str, tuple]) -> bool:
    ours = passages(index)
    return set(ours) == set(reference) and all(
        ours[i][:-1] == reference[i][:-1] and float(np.abs(ours[i][-1] - reference[i][-1]).max()) < 1e-5 for i in ours
    )


class LostWorkers(logging.Handler):
    """Counts the driver's "a Ray worker was lost" log lines."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += "a Ray worker was lost" in record.getMessage()


def ray_run(folder: Path, index: Path, address: str, kill_at: int | None) -> dict:
    """Index `folder` on the cluster; with `kill_at`, a busy node is killed once that many passages are stored."""
    from ray_cluster import kill_a_busy_node

    from rag_qa import RagQA
    from rag_qa.store import FaissStore

    killed: list[float] = []
    started = time.monotonic()

    def killer() -> None:
        while kill_at is not None and not killed and time.monotonic() - started < 600:
            try:
                with FaissStore.open(index, read_only=True) as store:
                    if store.count() >= kill_at and kill_a_busy_node() is not None:
                        killed.append(time.monotonic() - started)
            except Exception:  # the index is being created
                pass
            time.sleep(0.1)

    lost = LostWorkers()
    logging.getLogger("rag_qa.distributed").addHandler(lost)
    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        with RagQA.open(index, runtime="onnx") as qa:
            report = qa.index([str(folder)], ray=address)
    finally:
        logging.getLogger("rag_qa.distributed").removeHandler(lost)
    seconds = time.monotonic() - started
    return {"seconds": round(seconds, 1), "node_killed_at_s": round(killed[0], 1) if killed else None, "workers_lost": lost.count,
            "files_indexed": report.files_indexed, "files_not_done": len(report.files_skipped), "reasons": sorted({s["reason"][:60] for s in report.files_skipped})}  # fmt: skip


def ray_scenarios() -> list[dict]:
    from ray_cluster import local_cluster
    from squad_pdfs import build_corpus

    from rag_qa import RagQA

    work = Path(tempfile.mkdtemp(prefix="rag-qa-faults-"))
    try:
        for name in ("dev-eval.json", "reader-train.json"):
            build_corpus(SQUAD / name, work / "pdfs")
        rows = []
        with local_cluster(nodes=3, cpus_per_node=1, head_cpus=0) as address:
            clean = ray_run(work / "pdfs", work / "clean", address, None)
            reference = passages(work / "clean")
            rows.append({"run": "no fault", **clean, "same_passages_as_no_fault": True})
            third = len(reference) // 3
            lost = ray_run(work / "pdfs", work / "node-lost", address, third)
            rows.append({"run": "one of two nodes killed", **lost, "same_passages_as_no_fault": same_index(work / "node-lost", reference)})
            gone = ray_run(work / "pdfs", work / "all-lost", address, third)
        started = time.monotonic()
        with RagQA.open(work / "all-lost", runtime="onnx") as qa:  # the cluster is gone: finish locally
            qa.index([str(work / "pdfs")])
        rows.append({"run": "the last node killed, then a local run", **gone, "local_run_s": round(time.monotonic() - started, 1),
                     "same_passages_as_no_fault": same_index(work / "all-lost", reference)})  # fmt: skip
        return rows
    finally:
        shutil.rmtree(work, ignore_errors=True)


def postgresql_scenario(duration: float, outages_s: tuple[float, ...] = (3.0, 40.0)) -> dict:
    import httpx
    import pgserver
    from load import build_index, start_service
    from pg_restart import restart, shut_down

    from rag_qa.server.background import free_port
    from rag_qa.squad import squad_corpus
    from rag_qa.store import open_store

    work = Path(tempfile.mkdtemp(prefix="rag-qa-faults-pg-"))
    server = pgserver.get_server(work / "pg", cleanup_mode="stop")
    try:
        location = server.get_uri() + "#faults"
        build_index(location, keyed=False)
        port = free_port()
        service = start_service(location, work / "uploads", port, "onnx", "off")
        url = f"http://127.0.0.1:{port}"
        documents = list(squad_corpus([SQUAD / "dev-eval.json"]))
        questions = [q["question"] for a in json.loads((SQUAD / "dev-eval.json").read_text())["data"] for p in a["paragraphs"] for q in p["qas"]]
        statuses: Counter[str] = Counter()
        failures: list[float] = []  # when a request got a 503 (seconds from the start)
        acknowledged: list[str] = []
        slowest: dict[str, float] = {}
        lock = threading.Lock()
        started = time.monotonic()
        deadline = started + duration

        def count(kind: str, status: int, seconds: float) -> None:
            with lock:
                statuses[f"{kind} {status}"] += 1
                slowest[kind] = max(slowest.get(kind, 0.0), seconds)
                if status != 200:
                    failures.append(time.monotonic() - started)

        def asker(offset: int) -> None:
            with httpx.Client(base_url=url, timeout=120) as client:
                for i in range(offset, 10**9, 4):
                    if time.monotonic() > deadline:
                        return
                    asked = time.monotonic()
                    count("ask", client.post("/ask", json={"question": questions[i % len(questions)]}).status_code, time.monotonic() - asked)

        def uploader() -> None:
            with httpx.Client(base_url=url, timeout=300, headers={"Authorization": "Bearer open-service"}) as client:
                for n in range(10**9):
                    name = f"upload-{n}.txt"
                    while time.monotonic() < deadline:
                        sent = time.monotonic()
                        response = client.post("/documents", files=[("files", (name, documents[n % len(documents)].text.encode()))], data={"replace": "true"})
                        count("upload", response.status_code, time.monotonic() - sent)
                        if response.status_code == 200:
                            acknowledged.append(name)
                            break
                        time.sleep(0.5)  # 503: the server is restarting; send it again
                    if time.monotonic() > deadline:
                        return

        threads = [threading.Thread(target=asker, args=(c,)) for c in range(4)] + [threading.Thread(target=uploader)]
        for thread in threads:
            thread.start()
        restarted_at = []
        for k, down_s in enumerate(outages_s):
            time.sleep(max(0.0, started + duration * (k + 1) / (len(outages_s) + 2) - time.monotonic()))
            restarted_at.append(round(time.monotonic() - started, 1))
            restart(server, down_s)
        for thread in threads:
            thread.join()
        service.terminate()
        service.wait(timeout=60)
        with open_store(location, read_only=True) as store:
            files = {Path(f["source"]).name: f["passages"] for f in store.files()}
            ids = [p.id for p, _ in store.iter_passages()]
            consistent = store.check() == []
        stored_uploads = [name for name in files if name.startswith("upload-")]
        return {
            "seconds": duration, "outages_s": list(outages_s), "restarts_at_s": restarted_at, "responses": dict(sorted(statuses.items())),
            "non_503_errors": sum(v for k, v in statuses.items() if not k.endswith((" 200", " 503"))),
            "last_503_after_restart_s": _gaps(restarted_at, failures), "slowest_s": {k: round(v, 1) for k, v in slowest.items()}, "uploads_acknowledged": len(acknowledged),
            "acknowledged_and_stored": len(set(acknowledged) & set(stored_uploads)), "uploads_stored": len(stored_uploads),
            "duplicate_passage_ids": len(ids) - len(set(ids)), "passages_match_files": len(ids) == sum(files.values()), "consistent": consistent,
        }  # fmt: skip
    finally:
        shut_down(server)  # after restarts pgserver's own cleanup would leave the server running
        shutil.rmtree(work, ignore_errors=True)


def _gaps(restarted_at: list[float], failures: list[float]) -> list[float]:
    """For each restart, how long after it the last failed request came (its window of 503s)."""
    gaps = []
    for k, at in enumerate(restarted_at):
        until = restarted_at[k + 1] if k + 1 < len(restarted_at) else float("inf")
        window = [t - at for t in failures if at <= t < until]
        gaps.append(round(max(window), 2) if window else 0.0)
    return gaps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=("ray", "postgresql"), default=["ray", "postgresql"])
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of load in the PostgreSQL scenario")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of tables")
    args = parser.parse_args()
    require_shared()
    results = {}
    if "ray" in args.only:
        results["ray"] = ray_scenarios()
    if "postgresql" in args.only:
        results["postgresql"] = postgresql_scenario(args.duration)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    if "ray" in results:
        headers = ["run", "seconds", "node_killed_at_s", "workers_lost", "files_indexed", "files_not_done", "local_run_s", "same_passages_as_no_fault"]
        print(table(headers, [[r.get(h, "") for h in headers] for r in results["ray"]]))
    if "postgresql" in results:
        print()
        print(table(["measure", "value"], [[k, v] for k, v in results["postgresql"].items()]))
    print(f"\nreader: {READER}")


if __name__ == "__main__":
    main()
