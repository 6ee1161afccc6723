"""Evaluation pictures: a reliability diagram, a risk-coverage curve, a recall@k curve, and one
HTML page that shows them with the headline numbers (`rag-qa eval ... --report DIR`).

matplotlib draws them: the standard, well-kept plotting library. Figures are made with its
object API (no pyplot state, no display, safe in any thread) and a notebook with `%matplotlib
inline` shows them inline. It is the `report` extra.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from rag_qa.errors import RagQAError

HEADLINE = (
    "questions", "exact", "f1", "HasAns_f1", "NoAns_exact", "best_f1", "forced_HasAns_f1", "always_abstain_f1", "never_abstain_f1",
    "answerable_share", "abstained_on_answerable", "answers_over_cap", "max_answer_tokens", "aurc", "top_answer_ece",
    "expected_calibration_error", "recall@1", "recall@5", "recall@20", "mrr", "passage_recall@1", "passage_recall@5",
    "passage_recall@20", "passage_mrr", "questions_per_second",
)  # fmt: skip


def _figure(**options: Any):  # type: ignore[no-untyped-def]
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise RagQAError("evaluation pictures need matplotlib: pip install 'rag-qa[report]'") from None
    return Figure(**options)


def reliability_figure(bins: list[dict[str, Any]], title: str = "Reliability of the top answer's confidence"):  # type: ignore[no-untyped-def]
    """Confidence vs accuracy per confidence bin (bars; the diagonal is perfect calibration), with
    each bin's question count on its bar and as a histogram below."""
    figure = _figure(figsize=(5.5, 6))
    top, bottom = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    width = bins[0]["upper"] - bins[0]["lower"] if bins else 0.1
    centres = [(b["lower"] + b["upper"]) / 2 for b in bins]
    filled = [(c, b) for c, b in zip(centres, bins) if b["count"]]
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    top.bar([c for c, _ in filled], [b["accuracy"] for _, b in filled], width=width * 0.9, color="#1f5fbf", alpha=0.8, label="share right")
    top.scatter([b["confidence"] for _, b in filled], [b["accuracy"] for _, b in filled], color="#e0a800", zorder=3, label="mean confidence")
    for centre, b in filled:
        top.annotate(str(b["count"]), (centre, b["accuracy"]), textcoords="offset points", xytext=(0, 3), ha="center", fontsize=8)
    top.set(xlim=(0, 1), ylim=(0, 1.08), ylabel="share of top answers right", title=title)
    top.legend(loc="upper left", fontsize=8)
    bottom.bar(centres, [b["count"] for b in bins], width=width * 0.9, color="grey")
    bottom.set(xlabel="confidence", ylabel="questions")
    figure.tight_layout()
    return figure


def risk_coverage_figure(curve: dict[str, Any], points: dict[str, dict[str, float]] | None = None, title: str = "Risk-coverage"):  # type: ignore[no-untyped-def]
    """Mean F1 of the answers given, and SQuAD F1 over all questions, as the no-answer threshold
    moves from answering nothing to answering everything; the always-abstain and never-abstain
    ends and the operating points marked: `points` (name → coverage/answer_f1), else the one
    the curve's own decisions give."""
    figure = _figure(figsize=(6, 4.5))
    axes = figure.subplots()
    coverage = curve["coverage"]
    answered = [(c, f) for c, f in zip(coverage, curve["answer_f1"]) if f is not None]
    axes.plot([c for c, _ in answered], [f for _, f in answered], color="#1f5fbf", label="F1 of the answers given")
    axes.plot(coverage, curve["overall_f1"], color="#7a7a7a", label="F1 over all questions (SQuAD)")
    axes.scatter([0], [curve["overall_f1"][0]], marker="s", color="black", zorder=3, label=f"always abstain ({curve['overall_f1'][0]:.1f})")
    axes.scatter([100], [curve["overall_f1"][-1]], marker="D", color="black", zorder=3, label=f"never abstain ({curve['overall_f1'][-1]:.1f})")
    marks = points or {"operating point": curve["operating_point"]}
    for (name, point), colour in zip(marks.items(), ("#e0a800", "#c0392b", "#2e8b57", "#8e44ad")):
        label = f"{name}: answers {point['coverage']:.0f}%, their F1 {point['answer_f1']:.1f}"
        axes.scatter([point["coverage"]], [point["answer_f1"]], marker="*", s=160, color=colour, zorder=4, label=label)
    axes.set(xlim=(-2, 102), ylim=(0, 102), xlabel="coverage: % of questions answered", ylabel="F1 (%)", title=title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="upper right")  # the curves fall from upper left to lower right
    figure.tight_layout()
    return figure


def recall_figure(recall_curve: list[float], passage_curve: list[float] | None = None, title: str = "Retrieval: recall@k"):  # type: ignore[no-untyped-def]
    """Share of answerable questions whose document (their paragraph), and whose answer's passage,
    is among the top k passages, for each k."""
    figure = _figure(figsize=(5.5, 4))
    axes = figure.subplots()
    for curve, colour, label, below in ((recall_curve, "#1f5fbf", "the right document", -14), (passage_curve, "#e07b00", "a passage holding the answer", 6)):
        if not curve:
            continue
        ks = list(range(1, len(curve) + 1))
        axes.plot(ks, curve, marker="o", color=colour, label=label)
        for k in (1, 5, 10, 20):
            if k <= len(curve):
                axes.annotate(f"{curve[k - 1]:.2f}", (k, curve[k - 1]), textcoords="offset points", xytext=(0, below), ha="center", fontsize=8, color=colour)
    axes.set(xlim=(0.5, len(recall_curve) + 0.5), ylim=(0, 1.05), xlabel="k (passages retrieved)", ylabel="recall@k", title=title)
    axes.legend(fontsize=8, loc="lower right")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def write_report(folder: str | Path, metrics: dict[str, Any], title: str, points: dict[str, dict[str, float]] | None = None) -> Path:
    """Write the pictures the metrics allow, `metrics.json` and `index.html` into `folder`;
    returns the HTML page's path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    figures = {}
    if metrics.get("reliability"):
        figures["reliability.png"] = ("Reliability diagram", reliability_figure(metrics["reliability"]))
    if metrics.get("risk_coverage"):
        figures["risk-coverage.png"] = ("Risk-coverage curve", risk_coverage_figure(metrics["risk_coverage"], points))
    if metrics.get("recall_curve"):
        figures["recall-at-k.png"] = ("Recall@k", recall_figure(metrics["recall_curve"], metrics.get("passage_recall_curve")))
    for name, (_, figure) in figures.items():
        figure.savefig(folder / name, dpi=120)
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=1, ensure_ascii=False), "utf-8")
    page = folder / "index.html"
    page.write_text(_page(title, metrics, {name: caption for name, (caption, _) in figures.items()}), "utf-8")
    return page


def _page(title: str, metrics: dict[str, Any], pictures: dict[str, str]) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(key)}</th><td>{metrics[key]:.4g}</td></tr>" for key in HEADLINE if isinstance(metrics.get(key), (int, float))
    )
    images = "".join(f'<figure><img src="{name}" alt="{html.escape(caption)}"><figcaption>{html.escape(caption)}</figcaption></figure>' for name, caption in pictures.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font:15px/1.5 system-ui,sans-serif;max-width:1100px;margin:24px auto;padding:0 16px;color:#1d2330}}
table{{border-collapse:collapse}}th,td{{padding:3px 12px;border-bottom:1px solid #d9dee7;text-align:left}}td{{font-variant-numeric:tabular-nums}}
figure{{display:inline-block;margin:12px 12px 0 0;vertical-align:top}}img{{max-width:520px;border:1px solid #d9dee7}}</style></head>
<body><h1>{html.escape(title)}</h1><table>{rows}</table>{images}
<p>All numbers: <a href="metrics.json">metrics.json</a>. Percentages for EM/F1/coverage; recall, MRR and ECE as fractions.</p></body></html>
"""
