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


def run(data: str, sample: int | None, recipes: list[str]) -> dict:
    require_shared()
    from rag_qa.config import ReaderConfig, ScoringConfig
    from rag_qa.evaluate import evaluate_reader, squad_metrics
    from rag_qa.onnx_models import OnnxGraph, cache_dir, quantize_int8
    from rag_qa.reader import Reader
    from rag_qa.squad import load_squad

    questions = load_squad(SQUAD / f"{data}.json")
    if sample:
        random.Random(0).shuffle(questions)
        questions = questions[:sample]
    fp32 = Reader(ReaderConfig(model=str(READER), runtime="onnx"))
    fp32.warm_up()  # exports (or finds) the fused fp32 graph
    graph = max(cache_dir().glob("reader-fp32-*.onnx"), key=lambda p: p.stat().st_mtime)
    rows, folder = {}, Path(tempfile.mkdtemp(prefix="int8-recipes-"))
    for recipe in recipes:
        reader = Reader(ReaderConfig(model=str(READER), runtime="onnx"))
        reader.warm_up()
        if recipe != "fp32":
            keep = () if recipe == "none" else tuple(recipe.split("+"))
            quantized = folder / f"{recipe}.onnx"
            quantize_int8(graph, quantized, keep)
            reader._forward = OnnxGraph(quantized).run  # the same reader, its model swapped for this recipe's graph
        started = time.perf_counter()
        evaluation = evaluate_reader(reader, questions, ScoringConfig(tau=0.0, retrieval_weight=0.0))
        seconds = time.perf_counter() - started
        forced = squad_metrics(questions, evaluation.best_spans)
        rows[recipe] = {"forced_HasAns_f1": forced["HasAns_f1"], "best_f1": evaluation.metrics["best_f1"], "f1": evaluation.metrics["f1"], "questions_per_s": len(questions) / seconds}
    return {"data": data, "questions": len(questions), "rows": rows}


def markdown(result: dict) -> str:
    base = result["rows"].get("fp32")
    rows = []
    for recipe, m in result["rows"].items():
        share = [f"{100 * m[k] / base[k]:.1f}%" if base else "" for k in ("forced_HasAns_f1", "best_f1")]
        rows.append([recipe, m["forced_HasAns_f1"], share[0], m["best_f1"], share[1], m["f1"], m["questions_per_s"]])
    headers = ["kept in fp32", "forced HasAns F1", "of fp32", "best_f1", "of fp32", "F1 (τ=0)", "questions/s"]
    return table(headers, rows) + f"\n\n{result['questions']} questions of {result['data']}.json, reader only, one run each."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="reader-train", choices=["reader-train", "dev-eval"], help="the SQuAD file (default: %(default)s)")
    parser.add_argument("--sample", type=int, help="a random sample of this many questions (default: all)")
    parser.add_argument("--recipes", nargs="+", default=RECIPES, help=f"fp32, none, or node-name parts joined by + (default: {' '.join(RECIPES)})")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a Markdown table")
    args = parser.parse_args()
    result = run(args.data, args.sample, args.recipes)
    print(json.dumps(result, indent=2) if args.json else markdown(result))


if __name__ == "__main__":
    main()
