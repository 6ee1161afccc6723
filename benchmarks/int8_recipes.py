"""Which layers of the int8 reader stay fp32: each recipe measured on one SQuAD file.

Choose on reader-train.json (the offline reader's training data, never used for reporting), then
report the chosen recipe against fp32 on dev-eval.json, which played no part in the choice. Each
recipe is ONNX Runtime's dynamic int8 of the fused fp32 graph, with the nodes whose names contain
one of the recipe's parts left in fp32; reader only (each question with its own paragraph), τ = 0.

Usage: python benchmarks/int8_recipes.py --data reader-train --sample 400
       python benchmarks/int8_recipes.py --data dev-eval --recipes fp32 qa_outputs qa_outputs+layer.0
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from common import READER, SQUAD, require_shared, table

RECIPES = ["fp32", "none", "qa_outputs", "qa_outputs+layer.0", "qa_outputs+layer.5", "qa_outputs+attention"]
METRICS = ("exact", "f1", "forced_HasAns_f1", "best_f1")  # each reported as a share of fp32's too


def run(data: str, sample: int | None, recipes: list[str], reader_dir: Path = READER) -> dict:
    require_shared()
    from rag_qa.config import ReaderConfig, ScoringConfig
    from rag_qa.evaluate import evaluate_reader, squad_metrics
    from rag_qa.onnx_models import OnnxGraph, quantize_int8, reader_fp32_graph
    from rag_qa.reader import Reader
    from rag_qa.squad import load_squad

    questions = load_squad(SQUAD / f"{data}.json")
    if sample:
        random.Random(0).shuffle(questions)
        questions = questions[:sample]
    fp32 = Reader(ReaderConfig(model=str(reader_dir), runtime="onnx"))
    fp32.warm_up()  # exports (or finds) the fused fp32 graph
    graph = reader_fp32_graph(fp32.resolved)
    rows, folder = {}, Path(tempfile.mkdtemp(prefix="int8-recipes-"))
    for number, recipe in enumerate(recipes):
        reader = Reader(ReaderConfig(model=str(reader_dir), runtime="onnx"))
        reader.warm_up()
        if recipe != "fp32":
            keep = () if recipe == "none" else tuple(recipe.split("+"))
            quantized = folder / f"recipe-{number}.onnx"  # numbered: recipes hold "/"
            quantize_int8(graph, quantized, keep)
            reader._forward = OnnxGraph(quantized).run  # the same reader, its model swapped for this recipe's graph
        started = time.perf_counter()
        evaluation = evaluate_reader(reader, questions, ScoringConfig(tau=0.0, retrieval_weight=0.0))
        seconds = time.perf_counter() - started
        forced = squad_metrics(questions, evaluation.best_spans)
        rows[recipe] = {
            "exact": evaluation.metrics["exact"], "f1": evaluation.metrics["f1"], "forced_HasAns_f1": forced["HasAns_f1"],
            "best_f1": evaluation.metrics["best_f1"], "predictions": evaluation.predictions, "questions_per_s": len(questions) / seconds,
        }  # fmt: skip
    reference = rows.get("fp32", {}).get("predictions", {})
    for row in rows.values():
        same = sum(row["predictions"].get(qid) == text for qid, text in reference.items())
        row["identical"] = 100 * same / len(reference) if reference else None
        del row["predictions"]
    return {"data": data, "reader": reader_dir.name, "questions": len(questions), "rows": rows}


def markdown(result: dict) -> str:
    base = result["rows"].get("fp32")
    rows = []
    for recipe, m in result["rows"].items():
        shares = [f"{m[k]:.2f} ({100 * m[k] / base[k]:.1f}%)" if base else f"{m[k]:.2f}" for k in METRICS]
        identical = "" if m["identical"] is None else f"{m['identical']:.1f}%"
        rows.append([recipe, *shares, identical, m["questions_per_s"]])
    headers = ["kept in fp32", "EM (τ=0)", "F1 (τ=0)", "forced HasAns F1", "best_f1", "identical to fp32", "questions/s"]
    note = f"{result['questions']} questions of {result['data']}.json, reader {result['reader']}, reader only, one run each; (x%) = of fp32's value."
    return table(headers, rows) + "\n\n" + note


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="reader-train", choices=["reader-train", "dev-eval"], help="the SQuAD file (default: %(default)s)")
    parser.add_argument("--sample", type=int, help="a random sample of this many questions (default: all)")
    parser.add_argument("--recipes", nargs="+", default=RECIPES, help=f"fp32, none, or node-name parts joined by + (default: {' '.join(RECIPES)})")
    parser.add_argument("--reader", type=Path, default=READER, help="the reader's folder (default: the shared v2 reader)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a Markdown table")
    args = parser.parse_args()
    result = run(args.data, args.sample, args.recipes, args.reader)
    print(json.dumps(result, indent=2) if args.json else markdown(result))


if __name__ == "__main__":
    main()
