"""The reader's forward pass against this machine's GEMM peak, batch shape by batch shape.

The reader batches windows by length (`Reader.batches`: sorted, `batch_size` at a time, padded to
the longest in the batch). For each batch of the 300-question reader benchmark (each dev-eval
question with its own paragraph) this times the model's forward on exactly that padded batch
(best of `--trials`), counts its floating-point work (as `benchmarks/reader.py`: the six matrix
products of each layer plus attention, on the padded length), and measures the fp32 GEMM peak on
the model's feed-forward shape with the same number of tokens (the faster of PyTorch's matmul and
ONNX Runtime's MatMul, best of `--trials` each).
Rows are grouped by padded length; `share_of_peak` = forward GFLOP/s ÷ GEMM GFLOP/s.

`--profile` adds where the ONNX forward's time goes by operator type (ONNX Runtime's profiler).

`--batch-sizes 1 2 4 8 16` adds the whole forward's time per reader batch size.

Usage: python benchmarks/forward_shapes.py [--questions 300] [--trials 5] [--profile] [--batch-sizes N ...] [--json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from common import READER, SQUAD, machine, require_shared, table


def batches(reader, questions):  # type: ignore[no-untyped-def]
    """The padded batches the reader builds for these questions, in its order."""
    from rag_qa.tokenizer import padded_arrays

    features = reader._features([q.question for q in questions], [q.context for q in questions])
    return [padded_arrays(features, batch, reader.tokenizer.pad_token_id) for batch in reader.batches(features)]


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


def batch_size_sweep(questions, sizes: list[int], trials: int) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    """The ONNX forward over all the questions' windows with each batch size (sizes interleaved
    `trials` times, the best kept): smaller length-sorted batches pad less and stay in cache."""
    from rag_qa.config import ReaderConfig
    from rag_qa.reader import Reader

    readers = {size: Reader(ReaderConfig(model=str(READER), runtime="onnx", batch_size=size)) for size in sizes}
    work = {size: batches(reader, questions) for size, reader in readers.items()}
    best = {size: float("inf") for size in sizes}
    for _ in range(trials):
        for size, reader in readers.items():
            started = time.perf_counter()
            for arrays in work[size]:
                reader.forward(arrays)
            best[size] = min(best[size], time.perf_counter() - started)
    padded = {size: sum(a["input_ids"].size for a in work[size]) for size in sizes}
    return [{"batch_size": size, "batches": len(work[size]), "padded_tokens": padded[size], "seconds": round(best[size], 3),
             "relative_to_largest": round(best[size] / best[max(sizes)], 3)} for size in sizes]  # fmt: skip


def op_profile(questions) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    """Where the ONNX forward's time goes, by operator type: the reader's batches run twice in a
    profiling session (the second pass counted), each node's time summed by type, with GFLOP/s
    for the operators that do the counted matrix work (MatMul; Attention: its QKV projection, QK^T
    and AV, from the shapes ONNX Runtime records)."""
    import numpy as np
    import onnxruntime as ort

    from rag_qa.config import ReaderConfig
    from rag_qa.reader import Reader

    reader = Reader(ReaderConfig(model=str(READER), runtime="onnx"))
    reader.warm_up()
    options = ort.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = str(Path(tempfile.gettempdir()) / "rag-qa-forward-profile")
    session = ort.InferenceSession(str(reader._forward.__self__.path), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    work = list(batches(reader, questions))
    for _ in range(2):
        for arrays in work:
            session.run(None, {n: arrays[n] for n in names})
    written = Path(session.end_profiling())
    events = [e for e in json.loads(written.read_text()) if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    written.unlink()
    by_node: dict[str, list[dict]] = defaultdict(list)
    for event in events:
        by_node[event["name"]].append(event)
    seconds: dict[str, float] = defaultdict(float)
    flops: dict[str, float] = defaultdict(float)
    for runs in by_node.values():
        for event in runs[len(runs) // 2 :]:  # the second pass
            op = event["args"]["op_name"]
            seconds[op] += event["dur"] / 1e6
            shapes = [list(s.values())[0] for s in event["args"].get("input_type_shape", [])]  # prepacked weights are not listed
            if op == "MatMul":  # (tokens x K) @ (K x N): N from the output
                flops[op] += 2 * float(np.prod(shapes[0])) * list(event["args"]["output_type_shape"][0].values())[0][-1]
            elif op == "Attention":  # the QKV projection (its bias is 3 x hidden long), QK^T and AV
                batch, length, hidden = shapes[0]
                flops[op] += 2 * batch * length * hidden * shapes[1][0] + 4 * batch * length * length * hidden
    total = sum(seconds.values())
    return [{"operator": op, "seconds": round(s, 3), "share_of_time": round(s / total, 3), "gflops": round(flops[op] / s / 1e9, 1) if flops[op] else ""}
            for op, s in sorted(seconds.items(), key=lambda kv: -kv[1])]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=300, help="dev-eval questions (default: %(default)s)")
    parser.add_argument("--trials", type=int, default=5, help="timings per batch; the best is kept (default: %(default)s)")
    parser.add_argument("--profile", action="store_true", help="also where the ONNX forward's time goes, by operator type")
    parser.add_argument("--batch-sizes", type=int, nargs="*", default=[], metavar="N", help="also the ONNX forward over all windows with each of these batch sizes")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    require_shared()
    from rag_qa.squad import load_squad

    questions = load_squad(SQUAD / "dev-eval.json")[: args.questions]
    rows = [row for runtime in ("onnx", "torch") for row in measure(runtime, questions, args.trials)]
    profile = op_profile(questions) if args.profile else []
    sweep = batch_size_sweep(questions, args.batch_sizes, args.trials) if args.batch_sizes else []
    if args.json:
        print(json.dumps({"machine": machine(), "rows": rows, "profile": profile, "batch_sizes": sweep}))
        return
    print(f"Forward vs GEMM peak on {machine()}")
    print(table(list(rows[0]), [list(r.values()) for r in rows]))
    if profile:
        print("\nThe ONNX forward by operator type (second of two passes over the same batches, profiled):")
        print(table(list(profile[0]), [list(r.values()) for r in profile]))
    if sweep:
        print(f"\nThe ONNX forward over all windows by batch size (best of {args.trials}, interleaved):")
        print(table(list(sweep[0]), [list(r.values()) for r in sweep]))


if __name__ == "__main__":
    main()
