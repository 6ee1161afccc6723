"""Fit the scoring rag-qa ships for an offline reader (`rag_qa/shipped_scoring.json`), used by any
index that has no fit of its own (`rag-qa calibrate` on your own questions replaces it).

What `rag-qa calibrate FILE --objective O` does, for several retrieval modes and objectives at once:
index every paragraph of the shared SQuAD files, read the dev-eval questions once per mode and
precision, fit on two articles, report on the third (held out), and compare the objectives on the
held-out questions. The fits for `--objective` are written to the JSON file.

Usage: python scripts/fit_shipped_scoring.py [--reader DIR] [--objective O] [--modes ...] [--int8-modes ...] [--bf16-modes ...] [--runs JSON] [--write]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SQUAD = REPO.parent / "shared" / "data" / "squad2"
READER = REPO.parent / "shared" / "models" / "minilm-squad2-reader-v2"
OBJECTIVES = ("policy:balanced", "f1", "precision:0.5", "coverage:0.5")
SHOWN = ("coverage", "answer_f1", "f1", "HasAns_f1", "NoAns_exact", "top_answer_ece", "expected_calibration_error")


def fits_for(qa, mode: str, objectives: tuple[str, ...]) -> dict[str, dict]:
    """Each objective's fitted scoring and its held-out metrics, from one reading of the questions."""
    from rag_qa.calibration import decide, fit_scoring, hold_out_articles, metrics_for, read_once
    from rag_qa.config import DEFAULT_RETRIEVAL_TEMPERATURE
    from rag_qa.squad import load_squad

    fit_questions, report_questions = hold_out_articles(load_squad(SQUAD / "dev-eval.json"))
    fit, report = read_once(qa, fit_questions, progress=True), read_once(qa, report_questions, progress=True)
    found = {}
    for objective in objectives:
        scoring, details = fit_scoring(fit, mode, objective=objective)
        held_out = metrics_for(report, decide(report, scoring, DEFAULT_RETRIEVAL_TEMPERATURE[mode]))
        found[objective] = {
            "scoring": scoring.to_dict(), "objective": objective, "objective_met": details["objective_met"],
            "fitted_on": {"file": "dev-eval.json", "questions": len(fit_questions)},
            "reported_on": {"file": "dev-eval.json (held-out article)", "questions": len(report_questions),
                            **{k: round(held_out[k], 4) for k in SHOWN}},
        }  # fmt: skip
    return found


def read_and_fit(reader_folder: str, modes: list[str], int8_modes: list[str], objectives: tuple[str, ...], bf16_modes: list[str] = ()) -> list[dict]:
    """Every (mode, precision) run with the fits of every objective."""
    from rag_qa import RagQA
    from rag_qa.config import ReaderConfig, RetrievalConfig, ScoringConfig
    from rag_qa.precision import runtime_for
    from rag_qa.evaluate import index_squad_corpus

    runs = []
    with tempfile.TemporaryDirectory() as folder:
        with RagQA.open(folder) as qa:
            index_squad_corpus(qa, [str(SQUAD / "dev-eval.json"), str(SQUAD / "reader-train.json"), str(SQUAD / "distractor-passages.jsonl")])
        for mode, precision in [(m, "fp32") for m in modes] + [(m, "int8") for m in int8_modes] + [(m, "bf16") for m in bf16_modes]:
            reader = ReaderConfig(model=reader_folder, int8=precision == "int8", bf16=precision == "bf16", runtime=runtime_for(precision))
            with RagQA.open(folder, reader=reader, retrieval=RetrievalConfig(mode=mode), scoring=ScoringConfig()) as qa:
                runs.append({"precision": reader.precision, "retrieval_mode": mode, "fits": fits_for(qa, mode, objectives)})
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reader", default=str(READER), help="reader folder (default: %(default)s)")
    parser.add_argument("--objective", default="f1", help="the objective whose fits are shipped (default: %(default)s)")
    parser.add_argument("--modes", nargs="*", default=["dense", "bm25", "hybrid"], help="retrieval modes fitted in fp32 (none: `--modes` alone)")
    parser.add_argument("--int8-modes", nargs="*", default=[], help="retrieval modes fitted for the int8 reader too")
    parser.add_argument("--bf16-modes", nargs="*", default=[], help="retrieval modes fitted for the bf16 reader too (on a processor with native bf16)")
    parser.add_argument("--runs", metavar="JSON", help="reuse the fits a previous run printed (its JSON output) instead of reading again")
    parser.add_argument("--write", action="store_true", help="write the fits for --objective into rag_qa/shipped_scoring.json (the reader's fits for other precisions and modes stay)")
    args = parser.parse_args()
    from rag_qa.onnx_models import file_sha256

    objectives = tuple(dict.fromkeys([args.objective, *OBJECTIVES]))
    runs = json.loads(Path(args.runs).read_text()) if args.runs else read_and_fit(args.reader, args.modes, args.int8_modes, objectives, args.bf16_modes)
    for run in runs:
        print(f"\n{run['retrieval_mode']} {run['precision']}: held-out " + " ".join(SHOWN), file=sys.stderr)
        for objective, fit in run["fits"].items():
            print(f"  {objective:14} " + " ".join(f"{fit['reported_on'][k]:.3f}" for k in SHOWN) + ("" if fit["objective_met"] else "  (not met)"), file=sys.stderr)
    print(json.dumps(runs, indent=1))
    if args.write:
        command = f"python scripts/fit_shipped_scoring.py --objective {args.objective} --modes {' '.join(args.modes)} --int8-modes {' '.join(args.int8_modes)} --bf16-modes {' '.join(args.bf16_modes)} --write"
        fits = [{"precision": r["precision"], "retrieval_mode": r["retrieval_mode"], **r["fits"][args.objective], "command": command} for r in runs]
        weights = file_sha256(Path(args.reader) / "model.safetensors")
        target = REPO / "rag_qa" / "shipped_scoring.json"
        shipped = json.loads(target.read_text("utf-8"))
        refitted = {(f["precision"], f["retrieval_mode"]) for f in fits}
        kept = [f for r in shipped["readers"] if r["weights_sha256"] == weights for f in r["fits"] if (f["precision"], f["retrieval_mode"]) not in refitted]
        entry = {"name": Path(args.reader).name, "weights_sha256": weights, "fits": kept + fits}
        shipped["readers"] = [r for r in shipped["readers"] if r["weights_sha256"] != entry["weights_sha256"]] + [entry]
        target.write_text(json.dumps(shipped, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {target}", file=sys.stderr)


if __name__ == "__main__":
    main()
