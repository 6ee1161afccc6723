"""The reader's forward pass against this machine's GEMM peak, batch shape by batch shape.

The reader batches windows by length (`Reader.logits`: sorted, `batch_size` at a time, padded to
the longest in the batch). For each batch of the 300-question reader benchmark (each dev-eval
question with its own paragraph) this times the model's forward on exactly that padded batch
(best of `--trials`), counts its floating-point work (as `benchmarks/reader.py`: the six matrix
products of each layer plus attention, on the padded length), and measures the fp32 GEMM peak on
the model's feed-forward shape with the same number of tokens (the faster of PyTorch's matmul and
ONNX Runtime's MatMul, best of `--trials` each).
Rows are grouped by padded length; `share_of_peak` = forward GFLOP/s ÷ GEMM GFLOP/s.

Usage: python benchmarks/forward_shapes.py [--questions 300] [--trials 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict

from common import READER, SQUAD, machine, require_shared, table


def batches(reader, questions):  # type: ignore[no-untyped-def]
    """The padded batches the reader builds for these questions, in its order."""
    from rag_qa.tokenizer import padded_arrays

    features = reader._features([q.question for q in questions], [q.context for q in questions])
    ids = features["input_ids"]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    size = reader.config.batch_size
    return [padded_arrays(features, order[first : first + size], reader.tokenizer.pad_token_id) for first in range(0, len(order), size)]


def best_seconds(call, trials: int) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(trials):
        started = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - started)
    return best


def gemm_peak(tokens: int, hidden: int, inner: int, trials: int) -> float:
    """GFLOP/s of the best fp32 GEMM this machine has for a (tokens x hidden) @ (hidden x inner)
    product: PyTorch's and ONNX Runtime's (MLAS), the faster of the two."""
    import numpy as np
    import onnxruntime as ort
    import torch
    from onnx import TensorProto, helper

    x, w = torch.randn(tokens, hidden), torch.randn(hidden, inner)
    flop = 2 * tokens * hidden * inner * 10 / 1e9
    torch_gflops = flop / best_seconds(lambda: [x @ w for _ in range(10)], trials)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "gemm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [tokens, hidden])], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [tokens, inner])],
        [helper.make_tensor("w", TensorProto.FLOAT, [hidden, inner], w.numpy().ravel())],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feed = {"x": x.numpy().astype(np.float32)}
    ort_gflops = flop / best_seconds(lambda: [session.run(None, feed) for _ in range(10)], trials)
    return max(torch_gflops, ort_gflops)


def measure(runtime: str, questions, trials: int) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    from transformers import AutoConfig

    from rag_qa.config import ReaderConfig
    from rag_qa.reader import Reader

    reader = Reader(ReaderConfig(model=str(READER), runtime=runtime))
    reader.warm_up()
    config = AutoConfig.from_pretrained(str(READER))
    hidden, inner, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    by_length: dict[int, list[tuple[float, float, float]]] = defaultdict(list)  # padded length -> (GFLOP, forward s, GEMM GFLOP/s)
    for arrays in batches(reader, questions):
        count, length = arrays["input_ids"].shape
        work = layers * count * (2 * length * (4 * hidden * hidden + 2 * hidden * inner) + 4 * length * length * hidden) / 1e9
        forward = best_seconds(lambda: reader.forward(arrays), trials)
        by_length[length].append((work, forward, gemm_peak(count * length, hidden, inner, trials)))
    rows = []
    for length in sorted(by_length):
        found = by_length[length]
        work, forward = sum(f[0] for f in found), sum(f[1] for f in found)
        gemm = sum(f[2] for f in found) / len(found)
        rows.append({"runtime": runtime, "padded_length": length, "batches": len(found), "forward_gflops": round(work / forward, 1),
                     "gemm_peak_gflops": round(gemm, 1), "share_of_peak": round(work / forward / gemm, 3)})  # fmt: skip
    work, forward = sum(f[0] for v in by_length.values() for f in v), sum(f[1] for v in by_length.values() for f in v)
    gemm = sum(f[2] * f[0] for v in by_length.values() for f in v) / work  # weighted by work
    rows.append({"runtime": runtime, "padded_length": "all", "batches": sum(len(v) for v in by_length.values()), "forward_gflops": round(work / forward, 1),
                 "gemm_peak_gflops": round(gemm, 1), "share_of_peak": round(work / forward / gemm, 3)})  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=300, help="dev-eval questions (default: %(default)s)")
    parser.add_argument("--trials", type=int, default=5, help="timings per batch; the best is kept (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    require_shared()
    from rag_qa.squad import load_squad

    questions = load_squad(SQUAD / "dev-eval.json")[: args.questions]
    rows = [row for runtime in ("onnx", "torch") for row in measure(runtime, questions, args.trials)]
    if args.json:
        print(json.dumps({"machine": machine(), "rows": rows}))
        return
    print(f"Forward vs GEMM peak on {machine()}")
    print(table(list(rows[0]), [list(r.values()) for r in rows]))


if __name__ == "__main__":
    main()
