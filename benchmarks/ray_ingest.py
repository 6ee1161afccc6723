"""Ingestion on Ray against a local run, on the same real PDFs as the ingestion benchmark (the
SQuAD articles of ../shared, one per PDF): a local run, Ray with one node of 2 CPUs, and Ray with
two nodes of 1 CPU each, all on this 2-core machine (so Ray cannot beat local here: the point is
what each worker CPU delivers, and what the driver costs). Each Ray run's fixed start-up (connect,
start the workers, load the model in each) is measured on a one-file run and reported apart.
From these: pages per second per CPU at steady state, and an estimate for 1M PDF pages.

Usage: python benchmarks/ray_ingest.py [--repeat N] [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import SQUAD, median, require_shared, table

SETUPS = {"local": None, "Ray, 1 node x 2 CPUs": (1, 2), "Ray, 2 nodes x 1 CPU": (2, 1)}  # name: (nodes, cpus per node)
MILLION = 1_000_000


def index_once(paths: list[Path], ray: str | None) -> dict:
    """One indexing run into a fresh index (in this process)."""
    from rag_qa import RagQA

    with tempfile.TemporaryDirectory() as work, RagQA.open(Path(work) / "index") as qa:
        qa.embedder.warm_up()  # the driver's own model load is not indexing time
        started = time.perf_counter()
        report = qa.index([str(p) for p in paths], ray=ray)
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "pages": report.pages, "files": report.files_indexed, "store_seconds": report.seconds["store"]}


def one_setup(name: str, pdfs: Path, tiny: Path, repeat: int) -> dict:
    """`repeat` full runs and as many one-file runs of one setup, on a cluster of its own."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from ray_cluster import local_cluster

    shape = SETUPS[name]
    if shape is None:
        return {"full": [index_once([pdfs], None) for _ in range(repeat)], "tiny": [index_once([tiny], None) for _ in range(repeat)]}
    with local_cluster(nodes=shape[0], cpus_per_node=shape[1]) as address:
        return {"full": [index_once([pdfs], address) for _ in range(repeat)], "tiny": [index_once([tiny], address) for _ in range(repeat)]}


def run(repeat: int = 2) -> dict:
    require_shared()
    from squad_pdfs import build_corpus

    work = Path(tempfile.mkdtemp(prefix="rag-qa-ray-bench-"))
    try:
        for name in ("dev-eval.json", "reader-train.json"):
            build_corpus(SQUAD / name, work / "pdfs")
        tiny = min((work / "pdfs").glob("*.pdf"), key=lambda p: p.stat().st_size)
        results = {}
        for name in SETUPS:  # each setup in a fresh process: one Ray connection per process
            output = subprocess.run([sys.executable, __file__, "--one", name, str(work / "pdfs"), str(tiny), str(repeat)],
                                    capture_output=True, text=True, check=True)  # fmt: skip
            results[name] = json.loads(output.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return summarise(results)


def summarise(results: dict) -> dict:
    summary = {}
    for name, runs in results.items():
        full, tiny = median([r["seconds"] for r in runs["full"]]), median([r["seconds"] for r in runs["tiny"]])
        pages = runs["full"][0]["pages"]
        steady = pages / max(full - tiny, 1e-9)
        cpus = 2
        summary[name] = {
            "pages": pages, "seconds": full, "pages_per_second": pages / full, "start_up_seconds": tiny,
            "steady_pages_per_second": steady, "steady_pages_per_second_per_cpu": steady / cpus,
            "driver_store_seconds": median([r["store_seconds"] for r in runs["full"]]),
        }  # fmt: skip
    two_nodes = summary["Ray, 2 nodes x 1 CPU"]
    per_cpu = two_nodes["steady_pages_per_second_per_cpu"]
    driver_pages_per_second = two_nodes["pages"] / max(two_nodes["driver_store_seconds"], 1e-9)
    summary["estimate_1m_pages"] = {
        "pages_per_second_per_2cpu_node": 2 * per_cpu,
        "driver_store_pages_per_second": driver_pages_per_second,
        "hours_on_one_2cpu_machine_local": MILLION / summary["local"]["steady_pages_per_second"] / 3600,
        "nodes_16cpu_for_1_hour": MILLION / 3600 / (16 * per_cpu),
        "max_useful_cpus_before_the_driver_bounds": driver_pages_per_second / per_cpu,
    }
    return summary


def markdown(result: dict) -> str:
    keys = ["pages", "seconds", "pages_per_second", "start_up_seconds", "steady_pages_per_second", "steady_pages_per_second_per_cpu", "driver_store_seconds"]
    rows = [[name] + [result[name][k] for k in keys] for name in SETUPS]
    e = result["estimate_1m_pages"]
    return table(["setup"] + keys, rows) + (
        "\n\nAll setups share the same 2 cores, so Ray cannot be faster than local here; what matters is the steady rate"
        f" per CPU. From it, for 1M PDF pages: one 2-core machine, local, about {e['hours_on_one_2cpu_machine_local']:.0f} hours;"
        f" a worker CPU does about {e['pages_per_second_per_2cpu_node'] / 2:.1f} pages/s, so one hour needs about"
        f" {e['nodes_16cpu_for_1_hour']:.1f} nodes of 16 CPUs (if a CPU there does what one does here). The driver writes the"
        f" index: its store writes ran at {e['driver_store_pages_per_second']:.0f} pages/s here (an upper bound: it also hashes"
        f" and sends each file), so past a few hundred worker CPUs (about {e['max_useful_cpus_before_the_driver_bounds']:.0f} at"
        " that bound) the driver, not the workers, sets the pace: split the corpus over several drivers writing to PostgreSQL."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=2, help="runs per setup (default: %(default)s)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--one", nargs=4, metavar=("SETUP", "PDFS", "TINY", "REPEAT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_setup(args.one[0], Path(args.one[1]), Path(args.one[2]), int(args.one[3]))))
        return
    result = run(args.repeat)
    print(json.dumps(result, indent=2) if args.json else markdown(result))


if __name__ == "__main__":
    main()
