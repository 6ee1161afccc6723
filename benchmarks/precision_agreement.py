"""Each precision's answers against fp32's with the real offline readers, on SQuAD dev-eval (865
questions, each with its own paragraph; the reader alone at τ = 0, the SQuAD 2.0 rule, as `rag-qa
eval squad` scores it).

Reported per reader and precision, each as a share of fp32's value: exact match and F1 at τ 0
(answer or abstain), and forced (the best span of every answerable question, abstaining never);
and the share of questions whose prediction (the answer text, or no answer) and whose best span
are identical to fp32's. bf16 runs where the processor has native bf16 instructions; int8 on ONNX
Runtime.

Usage: python benchmarks/precision_agreement.py [--readers DIR ...] [--int8-batched] [--json]
"""

from __future__ import annotations

import argparse
import json

from common import SHARED, SQUAD, require_shared, table

READERS = [SHARED / "models" / "minilm-squad2-reader", SHARED / "models" / "minilm-squad2-reader-v2"]
METRICS = ("exact", "f1", "forced_HasAns_exact", "forced_HasAns_f1")


BATCHED = "int8, 4 windows per pass"  # how int8 read before each window had a pass of its own


def read(folder: str, precision: str, questions) -> dict:  # noqa: ANN001
    from rag_qa.config import ReaderConfig, ScoringConfig
    from rag_qa.evaluate import evaluate_reader, squad_metrics
    from rag_qa.precision import runtime_for
    from rag_qa.reader import Reader

    batch = 4 if precision == BATCHED else None
    precision = "int8" if precision == BATCHED else precision
    config = ReaderConfig(model=folder, runtime=runtime_for(precision), int8=precision == "int8", bf16=precision == "bf16", batch_size=batch)
    evaluation = evaluate_reader(Reader(config), questions, ScoringConfig(tau=0.0, retrieval_weight=0.0))
    forced = squad_metrics([q for q in questions if q.has_answer], evaluation.best_spans)
    metrics = {"exact": evaluation.metrics["exact"], "f1": evaluation.metrics["f1"], "forced_HasAns_exact": forced["exact"], "forced_HasAns_f1": forced["f1"]}
    return {"metrics": metrics, "predictions": evaluation.predictions, "best_spans": evaluation.best_spans}


def run(readers: list[str], batched: bool = False) -> dict:
    require_shared()
    from rag_qa.precision import native_bf16
    from rag_qa.squad import load_squad

    questions = load_squad(SQUAD / "dev-eval.json")
    precisions = (["bf16"] if native_bf16() else []) + ["int8"] + ([BATCHED] if batched else [])
    result = {}
    for folder in readers:
        base = read(folder, "fp32", questions)
        rows = {"fp32": base["metrics"]}
        for precision in precisions:
            found = read(folder, precision, questions)
            rows[precision] = {
                **found["metrics"], **{f"{k}_of_fp32": 100 * found["metrics"][k] / base["metrics"][k] for k in METRICS},
                "identical_predictions": 100 * sum(found["predictions"][q] == p for q, p in base["predictions"].items()) / len(questions),
                "identical_best_spans": 100 * sum(found["best_spans"][q] == s for q, s in base["best_spans"].items()) / len(questions),
            }  # fmt: skip
        result[str(folder).rstrip("/").split("/")[-1]] = rows
    return {"questions": len(questions), "readers": result}


def markdown(result: dict) -> str:
    rows = []
    for reader, found in result["readers"].items():
        for precision, m in found.items():
            if precision == "fp32":
                rows.append([reader, "fp32", *(f"{m[k]:.2f}" for k in METRICS), "", ""])
            else:
                shares = [f"{m[k]:.2f} ({m[k + '_of_fp32']:.1f}%)" for k in METRICS]
                rows.append([reader, precision, *shares, f"{m['identical_predictions']:.1f}%", f"{m['identical_best_spans']:.1f}%"])
    headers = ["reader", "precision", "EM (τ 0)", "F1 (τ 0)", "forced HasAns EM", "forced HasAns F1", "identical predictions", "identical best spans"]
    return table(headers, rows) + f"\n\n{result['questions']} dev-eval questions; (x%) = of fp32's value."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readers", nargs="+", default=[str(r) for r in READERS], help="reader folders (default: the two offline readers)")
    parser.add_argument("--int8-batched", action="store_true", help=f"also int8 read as before, windows batched 4 at a time ('{BATCHED}')")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    result = run(args.readers, args.int8_batched)
    print(json.dumps(result, indent=2) if args.json else markdown(result))


if __name__ == "__main__":
    main()
