"""Vector search at scale: synthetic normalised 384-d vectors (a mixture of 1,000 Gaussian clusters,
closer to real embeddings than uniform noise), for each index type rag-qa offers. Reports build
time, index memory, p50/p99 single-query latency and recall@10 against exact search.

Usage: python benchmarks/retrieval_scale.py [--sizes 100000 1000000] [--queries 1000] [--json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from common import table

DIM = 384
NOISE = 0.04  # per dimension: points lie about 0.8 (in norm) from their cluster centre of norm 1


def vectors(n: int, rng: np.random.Generator, centres: np.ndarray) -> np.ndarray:
    out = np.empty((n, DIM), dtype=np.float32)
    for first in range(0, n, 100_000):
        count = min(100_000, n - first)
        chunk = centres[rng.integers(0, len(centres), count)] + NOISE * rng.standard_normal((count, DIM), dtype=np.float32)
        out[first : first + count] = chunk / np.linalg.norm(chunk, axis=1, keepdims=True)
    return out


def measure(size: int, queries: int, seed: int = 0) -> list[dict]:
    from rag_qa.config import VectorIndexConfig
    from rag_qa.store.vector_index import VectorIndex

    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((1000, DIM), dtype=np.float32) / np.sqrt(DIM)  # norm about 1
    data = vectors(size, rng, centres)
    probes = vectors(queries, rng, centres)
    rows = np.arange(size, dtype=np.int64)
    results, exact = [], None
    for kind in ("flat", "hnsw"):
        started = time.perf_counter()
        index = VectorIndex.build(DIM, VectorIndexConfig(index_type=kind), rows, data)
        build = time.perf_counter() - started
        latencies, found = [], []
        for probe in probes:
            started = time.perf_counter()
            _, ids = index.search(probe[None, :], 10)
            latencies.append(time.perf_counter() - started)
            found.append(ids[0])
        found = np.asarray(found)
        if kind == "flat":
            exact = found
        recall = float(np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact)]))
        results.append({
            "vectors": size, "index": kind, "build_seconds": build, "memory_mb": len(index.to_bytes(0)) / 2**20,
            "p50_ms": 1000 * float(np.percentile(latencies, 50)), "p99_ms": 1000 * float(np.percentile(latencies, 99)),
            "recall_at_10": recall,
        })  # fmt: skip
        del index
    return results


def run(sizes: list[int], queries: int = 1000) -> list[dict]:
    return [row for size in sizes for row in measure(size, queries)]


def markdown(rows: list[dict]) -> str:
    keys = ["vectors", "index", "build_seconds", "memory_mb", "p50_ms", "p99_ms", "recall_at_10"]
    return table(keys, [[r[k] for k in keys] for r in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000], help="collection sizes")
    parser.add_argument("--queries", type=int, default=1000, help="single queries timed per index (default: %(default)s)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = run(args.sizes, args.queries)
    print(json.dumps(rows, indent=2) if args.json else markdown(rows))


if __name__ == "__main__":
    main()
