"""`rag-qa eval open` on paper-length contexts: each article of the shared SQuAD files becomes one
document (its paragraphs joined by blank lines, answer offsets moved along), so "the right document"
is a whole article and only the passage grain says whether retrieval found the answer. The
dev-eval questions are asked over every article of dev-eval.json and reader-train.json (11 long
documents), at answer caps of 30 and 100 tokens.

Usage: python benchmarks/long_context.py [--caps 30 100] [--json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from common import READER, REPO, SQUAD, require_shared, table

KEYS = ["passages", "recall@1", "recall@5", "passage_recall@1", "passage_recall@5", "passage_mrr", "exact", "f1", "HasAns_f1",
        "NoAns_exact", "best_f1", "forced_HasAns_f1", "answers_over_cap", "abstained_on_answerable", "questions_per_second"]  # fmt: skip


def joined(source: Path, target: Path) -> Path:
    """`source` with each article's paragraphs joined into one context (answer offsets moved)."""
    articles = []
    for article in json.loads(source.read_text("utf-8"))["data"]:
        context, qas = "", []
        for paragraph in article["paragraphs"]:
            shift = len(context) + 2 if context else 0
            context = f"{context}\n\n{paragraph['context']}" if context else paragraph["context"]
            qas += [dict(qa, answers=[dict(a, answer_start=a["answer_start"] + shift) for a in qa.get("answers", [])]) for qa in paragraph["qas"]]
        articles.append({"title": article.get("title", ""), "paragraphs": [{"context": context, "qas": qas}]})
    target.write_text(json.dumps({"version": "v2.0", "data": articles}))
    return target


def run(caps: list[int]) -> dict:
    require_shared()
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        dev, corpus = joined(SQUAD / "dev-eval.json", Path(folder) / "dev-eval-long.json"), joined(SQUAD / "reader-train.json", Path(folder) / "train-long.json")
        for cap in caps:
            command = [sys.executable, "-m", "rag_qa.cli", "eval", "open", str(dev), "--corpus", str(corpus), "--index-dir", f"{folder}/index",
                       "--reader", str(READER), "--max-answer-tokens", str(cap), "--json"]  # fmt: skip
            rows[f"cap {cap}"] = json.loads(subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO).stdout)
    return {"caps": caps, "rows": rows}


def markdown(result: dict) -> str:
    rows = [[name] + [m.get(k, float("nan")) for k in KEYS] for name, m in result["rows"].items()]
    return table(["max_answer_tokens", *KEYS], rows) + (
        "\n\n865 dev-eval questions over 11 article-length documents (dev-eval.json and reader-train.json, each article's "
        "paragraphs joined), top 5 passages, a fresh index (the scoring shipped for the offline reader, no calibrate). "
        "recall@k: a passage of the right article among the top k; passage_recall@k: a passage that holds a gold answer "
        "at its offsets. answers_over_cap: % of "
        "answerable questions whose every gold answer is longer than the cap."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--caps", type=int, nargs="+", default=[30, 100], help="answer caps in tokens (default: 30 100)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    result = run(args.caps)
    print(json.dumps(result, indent=2) if args.json else markdown(result))


if __name__ == "__main__":
    main()
