"""`rag-qa eval squad`, `rag-qa eval open` and `rag-qa calibrate` on small SQuAD subsets with the
offline reader: official-format outputs that re-score to the reported numbers, and a fitted scoring
that `ask` then uses."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import READER, SQUAD, cli_env, needs_shared

from rag_qa import RagQA
from rag_qa.config import ReaderConfig
from rag_qa.saved_scoring import SCORING_METADATA
from rag_qa.evaluate import exact_score
from rag_qa.squad import load_squad

pytestmark = pytest.mark.integration


def subset(source, article: int, paragraphs: int, target):
    data = json.loads(source.read_text("utf-8"))
    data["data"] = [dict(data["data"][article], paragraphs=data["data"][article]["paragraphs"][:paragraphs])]
    target.write_text(json.dumps(data))
    return target


def rag_qa(*args: str) -> dict:
    result = subprocess.run([sys.executable, "-m", "rag_qa.cli", *args, "--json"], capture_output=True, text=True, timeout=600, env=cli_env())
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    needs_shared(READER)
    needs_shared(SQUAD / "dev-eval.json")
    folder = tmp_path_factory.mktemp("squad")
    return subset(SQUAD / "dev-eval.json", 0, 6, folder / "fit.json"), subset(SQUAD / "dev-eval.json", 1, 4, folder / "report.json")


def test_eval_squad_writes_official_files_that_recount_to_the_metrics(files, tmp_path):
    fit, _ = files
    predictions, na_probs = tmp_path / "pred.json", tmp_path / "na.json"
    metrics = rag_qa("eval", "squad", str(fit), "--reader", str(READER), "--predictions", str(predictions), "--na-probs", str(na_probs), "--report", str(tmp_path / "report"))
    questions = load_squad(fit)
    written, probabilities = json.loads(predictions.read_text()), json.loads(na_probs.read_text())
    assert set(written) == set(probabilities) == {q.id for q in questions}
    assert all(isinstance(v, str) for v in written.values()) and all(0 <= p <= 1 for p in probabilities.values())
    # Re-count from the written files, without the metric code under test (exact_score is checked
    # by hand in test_evaluate.py; the aggregation against a hand-computed file there too).
    unanswerable = [q for q in questions if not q.has_answer]
    right = [bool(q.answers) and any(exact_score(g, written[q.id]) for g in q.answers) or (not q.answers and written[q.id] == "") for q in questions]
    assert metrics["NoAns_exact"] == pytest.approx(100 * sum(written[q.id] == "" for q in unanswerable) / len(unanswerable))
    assert metrics["exact"] == pytest.approx(100 * sum(right) / len(questions))
    assert all(written[q.id] == "" or written[q.id] in q.context for q in questions)  # quotes, not paraphrases
    assert metrics["total"] == len(questions) and metrics["questions_per_second"] > 0
    check_report(tmp_path / "report", metrics, ["reliability.png", "risk-coverage.png"])
    curve = metrics["risk_coverage"]
    assert curve["coverage"][0] == 0 and curve["coverage"][-1] == 100
    assert curve["overall_f1"][0] == pytest.approx(metrics["always_abstain_f1"])  # answering nothing
    assert curve["overall_f1"][-1] == pytest.approx(curve["answer_f1"][-1])  # answering everything
    assert curve["operating_point"]["coverage"] == pytest.approx(100 * sum(written[q.id] != "" for q in questions) / len(questions))


def check_report(folder, metrics, pictures):
    """The report folder has the pictures (real PNGs), the metrics and a page that shows both."""
    from PIL import Image

    assert sorted(p.name for p in folder.iterdir()) == sorted(["index.html", "metrics.json", *pictures])
    for name in pictures:
        with Image.open(folder / name) as image:
            assert image.format == "PNG" and image.width > 400 and len(image.getcolors(1 << 16) or range(1000)) > 8
    page = (folder / "index.html").read_text("utf-8")
    assert all(f'src="{name}"' in page for name in pictures)
    if "f1" in metrics:
        assert f"<th>f1</th><td>{metrics['f1']:.4g}</td>" in page
    assert json.loads((folder / "metrics.json").read_text("utf-8")).keys() == metrics.keys()


def test_eval_open_then_calibrate_then_ask_uses_the_fit(files, tmp_path):
    fit, report = files
    index = tmp_path / "index"
    metrics = rag_qa("eval", "open", str(report), "--corpus", str(fit), "--index-dir", str(index), "--reader", str(READER), "--report", str(tmp_path / "open"))
    check_report(tmp_path / "open", metrics, ["reliability.png", "risk-coverage.png", "recall-at-k.png"])
    assert [metrics["recall_curve"][k - 1] for k in (1, 5, 20)] == [metrics["recall@1"], metrics["recall@5"], metrics["recall@20"]]
    assert metrics["questions"] == len(load_squad(report)) and metrics["passages"] >= 10
    assert 0 <= metrics["recall@1"] <= metrics["recall@5"] <= metrics["recall@20"] <= 1
    assert 0 < metrics["passage_recall@5"] <= metrics["recall@5"] and metrics["passage_recall_questions"] == sum(q.has_answer for q in load_squad(report))
    assert metrics["max_answer_tokens"] == 30 and 0 <= metrics["answers_over_cap"] < 5 and metrics["answerable_share"] > 0
    assert {"abstention_precision", "abstention_recall", "expected_calibration_error", "mrr", "top_answer_ece"} <= set(metrics)
    bins = metrics["reliability"]
    assert len(bins) == 10 and sum(b["count"] for b in bins) == metrics["questions"]
    filled = [b for b in bins if b["count"]]
    assert metrics["top_answer_ece"] == pytest.approx(sum(b["count"] * abs(b["accuracy"] - b["confidence"]) for b in filled) / metrics["questions"])
    assert all(b["lower"] <= b["confidence"] <= b["upper"] for b in filled)
    result = rag_qa("calibrate", str(fit), "--index", str(index), "--report-on", str(report), "--reader", str(READER), "--objective", "coverage:0.5",
                    "--fit-max-answer-tokens", "30", "60", "--report", str(tmp_path / "calibration"))  # fmt: skip
    assert result["objective"] == "coverage:0.5" and abs(result["fit_point"]["coverage"] - 50) <= 15
    assert set(result["answer_caps"]) == {"30", "60"} and result["scoring"]["max_answer_tokens"] in (30, 60)
    assert result["fit_point"] == result["answer_caps"][str(result["scoring"]["max_answer_tokens"])]
    held_out = result["report"]["fitted"]
    assert 0 <= held_out["coverage"] <= 100 and 0 <= held_out["answer_f1"] <= 100
    check_report(tmp_path / "calibration", json.loads((tmp_path / "calibration" / "metrics.json").read_text()), ["reliability.png", "risk-coverage.png"])
    assert (index / f"{SCORING_METADATA}.json").exists()
    assert result["fitted_on"]["questions"] == len(load_squad(fit)) and result["reported_on"]["file"] == str(report)
    assert set(result["report"]) == {"default", "fitted"}
    with RagQA.open(index, reader=str(READER), read_only=True) as qa:
        assert qa.scoring.tau == result["scoring"]["tau"]
        assert qa.scoring.answer_scale == result["scoring"]["answer_scale"]
        assert qa.reader.config.max_answer_tokens == result["scoring"]["max_answer_tokens"]  # the fitted cap is used
    with RagQA.open(index, reader=ReaderConfig(model=str(READER), max_answer_tokens=45), read_only=True) as qa:
        assert qa.reader.config.max_answer_tokens == 45  # unless the caller sets another
