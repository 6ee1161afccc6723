"""How much the shipped fit depends on which SQuAD articles it is fitted on (issue 35).

`scripts/fit_shipped_scoring.py` fits on two of dev-eval's three articles and reports on the third.
This runs that fit three times, each article held out once (the corpus and reading as that script
has them, one retrieval mode), and prints per fold: the ranking and calibration fitted, the held-out
article's F1, coverage and top-answer ECE at the objective's threshold, and the confidence of the
top answer to each of the demo's sample questions over the sample documents (`data/`), where the
demo wants the seven answerable ones answered and the last two abstained on.

Usage: python benchmarks/fit_stability.py [--mode hybrid] [--objective policy:balanced] [--json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from rag_qa.config import DEFAULT_RETRIEVAL_MODE, DEFAULT_RETRIEVAL_TEMPERATURE, RETRIEVAL_MODES

from common import READER, SQUAD, SQUAD_CORPUS, require_shared, table

REPO = Path(__file__).resolve().parent.parent
SAMPLE_QUESTIONS = REPO / "scripts" / "sample_questions.txt"


def read_squad(mode: str) -> list:
    """Every dev-eval question read once over the shared SQuAD corpus (as fit_shipped_scoring.py)."""
    from rag_qa import RagQA
    from rag_qa.calibration import read_once
    from rag_qa.config import ReaderConfig, RetrievalConfig, ScoringConfig
    from rag_qa.evaluate import index_squad_corpus
    from rag_qa.squad import load_squad

    with tempfile.TemporaryDirectory() as folder:
        with RagQA.open(folder) as qa:
            index_squad_corpus(qa, [str(f) for f in SQUAD_CORPUS])
        with RagQA.open(folder, reader=ReaderConfig(model=str(READER)), retrieval=RetrievalConfig(mode=mode), scoring=ScoringConfig()) as qa:
            return read_once(qa, load_squad(SQUAD / "dev-eval.json"), progress=True)


def read_samples(mode: str) -> list:
    """The demo's sample questions read over the sample documents, as `rag-qa ask` reads them."""
    from rag_qa import RagQA
    from rag_qa.calibration import CachedQuestion
    from rag_qa.config import ReaderConfig, RetrievalConfig, ScoringConfig
    from rag_qa.squad import SquadQuestion

    questions = [line.strip() for line in SAMPLE_QUESTIONS.read_text().splitlines() if line.strip()]
    with tempfile.TemporaryDirectory() as folder:
        index = str(Path(folder) / "demo")
        subprocess.run([sys.executable, "-m", "rag_qa.cli", "index", str(REPO / "data"), "--index", index], check=True, capture_output=True)
        with RagQA.open(index, reader=ReaderConfig(model=str(READER)), retrieval=RetrievalConfig(mode=mode), scoring=ScoringConfig()) as qa:
            found = list(qa.retrieve_and_read(questions))  # read before the index closes
    return [CachedQuestion(SquadQuestion(str(i), q, "", (), "", 0), hits, readings) for i, (q, (_, hits, readings)) in enumerate(zip(questions, found))]


def folds(squad: list, samples: list, mode: str, objective: str) -> list[dict[str, Any]]:
    from rag_qa.calibration import _top_probability, decide, fit_scoring, metrics_for

    temperature = DEFAULT_RETRIEVAL_TEMPERATURE[mode]
    rows = []
    for held_out in sorted({c.question.title for c in squad}):
        fit = [c for c in squad if c.question.title != held_out]
        report = [c for c in squad if c.question.title == held_out]
        scoring, _ = fit_scoring(fit, mode, objective=objective)
        held = metrics_for(report, decide(report, scoring, temperature))
        demo = [_top_probability(scoring, c, r) for c, r in zip(samples, decide(samples, scoring, temperature))]
        rows.append({
            "held_out": held_out, "tau": scoring.tau, "retrieval_weight": scoring.retrieval_weight,
            "words_scale": scoring.answer_words_scale, "rare_words_scale": scoring.answer_rare_words_scale, "threshold": scoring.answer_threshold,
            "f1": held["f1"], "coverage": held["coverage"], "top_answer_ece": held["top_answer_ece"],
            "demo_answerable_min": min(demo[:-2]), "demo_unanswerable": demo[-2:],
        })  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=RETRIEVAL_MODES, default=DEFAULT_RETRIEVAL_MODE, help="retrieval mode (default: %(default)s)")
    parser.add_argument("--objective", default="policy:balanced", help="as `rag-qa calibrate --objective` (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    require_shared()
    rows = folds(read_squad(args.mode), read_samples(args.mode), args.mode, args.objective)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    columns = ["held_out", "tau", "retrieval_weight", "words_scale", "rare_words_scale", "threshold", "f1", "coverage", "top_answer_ece", "demo_answerable_min"]
    print(table(columns + ["demo: moon, France"], [[r[c] for c in columns] + [", ".join(f"{p:.3f}" for p in r["demo_unanswerable"])] for r in rows]))


if __name__ == "__main__":
    main()
