"""The embedder in bf16 against fp32: passages embedded per second, and whether retrieval finds the
same passages (recall@k of the passage holding each answer), on two corpora.

- SQuAD dev-eval: every paragraph of dev-eval.json and the distractor passages; its answerable
  questions, each with its own paragraph as the passage to find.
- COVID-QA: the 49 papers cut into passages of 150 words (30 overlapping); each question's passage
  is the one holding the first character of its answer.

Each precision embeds the same passages and questions (rag-qa's Embedder, as indexing and `ask`
do); exact inner-product search over them. Speed: the median of `--repeat` passes over all passages. ONNX Runtime fp32 is rag-qa's default embedder runtime.

Usage: python benchmarks/embedder_precision.py [--questions 300] [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import time

import numpy as np
from common import SHARED, SQUAD, embedder_path, require_shared, table

COVIDQA = SHARED / "data" / "covidqa" / "dev.json"
RUNS = {"onnx fp32": {"runtime": "onnx"}, "torch fp32": {"runtime": "torch"}, "torch bf16": {"runtime": "torch", "bf16": True}}
KS = (1, 5, 20)


def squad_corpus(limit: int) -> tuple[list[str], list[tuple[str, int]]]:
    """(passages, [(question, index of its passage)]) of SQuAD dev-eval and the distractors."""
    from rag_qa.squad import load_squad

    questions = [q for q in load_squad(SQUAD / "dev-eval.json") if q.answers]
    passages = list(dict.fromkeys(q.context for q in load_squad(SQUAD / "dev-eval.json")))
    passages += [json.loads(line)["text"] for line in (SQUAD / "distractor-passages.jsonl").read_text().splitlines() if line.strip()]
    where = {text: i for i, text in enumerate(passages)}
    random.Random(0).shuffle(questions)
    return passages, [(q.question, where[q.context]) for q in questions[:limit]]


def covid_corpus(limit: int, words: int = 150, overlap: int = 30) -> tuple[list[str], list[tuple[str, int]]]:
    """(passages, [(question, index of the passage holding its answer's first character)])."""
    data = json.loads(COVIDQA.read_text())["data"]
    passages: list[str] = []
    asked: list[tuple[str, int]] = []
    for article in data:
        for paragraph in article["paragraphs"]:
            context, first = paragraph["context"], len(passages)
            spans = [(m.start(), m.end()) for m in re.finditer(r"\S+", context)]
            starts = list(range(0, max(len(spans) - overlap, 1), words - overlap))
            passages += [context[spans[s][0] : spans[min(s + words, len(spans)) - 1][1]] for s in starts]
            for qa in paragraph["qas"]:
                at = qa["answers"][0]["answer_start"]
                word = sum(1 for start, _ in spans if start <= at) - 1
                chunk = max(i for i, s in enumerate(starts) if s <= max(word, 0))
                asked.append((qa["question"], first + chunk))
    random.Random(0).shuffle(asked)
    return passages, asked[:limit]


def measure(config: dict, passages: list[str], asked: list[tuple[str, int]], repeat: int) -> dict:
    """Passages per second (the median of `repeat` passes over them all) and recall@k."""
    from rag_qa.config import EmbedderConfig
    from rag_qa.embed import Embedder

    embedder = Embedder(EmbedderConfig(model=embedder_path(), **config))
    embedder.embed(passages[:8])  # loads the model, and (ONNX) exports its graph once
    passes = []
    for _ in range(repeat):
        started = time.perf_counter()
        vectors = embedder.embed(passages)
        passes.append(time.perf_counter() - started)
    seconds = statistics.median(passes)
    queries = embedder.embed([question for question, _ in asked])
    ranks = np.argsort(-(queries @ vectors.T), axis=1)[:, : max(KS)]
    gold = np.array([passage for _, passage in asked])[:, None]
    return {"passages_per_s": len(passages) / seconds, **{f"recall@{k}": float((ranks[:, :k] == gold).any(axis=1).mean()) for k in KS}, "vectors": vectors}


def run(limit: int, repeat: int) -> dict:
    require_shared()
    result = {}
    for corpus, (passages, asked) in {"SQuAD dev-eval": squad_corpus(limit), "COVID-QA": covid_corpus(limit)}.items():
        rows = {name: measure(config, passages, asked, repeat) for name, config in RUNS.items()}
        reference = rows["torch fp32"].pop("vectors")
        for row in rows.values():
            vectors = row.pop("vectors", reference)
            row["largest_1_minus_cosine_to_fp32"] = float(1.0 - (vectors * reference).sum(axis=1).min())
        result[corpus] = {"passages": len(passages), "questions": len(asked), "rows": rows}
    return result


def markdown(result: dict) -> str:
    parts = []
    for corpus, found in result.items():
        base = found["rows"]["onnx fp32"]["passages_per_s"]
        rows = [[name, r["passages_per_s"], r["passages_per_s"] / base, *(r[f"recall@{k}"] for k in KS), f"{r['largest_1_minus_cosine_to_fp32']:.1e}"] for name, r in found["rows"].items()]
        headers = ["embedder", "passages/s", "vs onnx fp32", *(f"recall@{k}" for k in KS), "largest 1 - cosine to torch fp32"]
        parts.append(f"**{corpus}** ({found['passages']} passages, {found['questions']} questions)\n\n" + table(headers, rows))
    return "\n\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=300, help="questions per corpus (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=3, help="passes over the passages per embedder; the median is reported (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    result = run(args.questions, args.repeat)
    print(json.dumps(result, indent=2) if args.json else markdown(result))


if __name__ == "__main__":
    main()
