"""Reader benchmark: rag-qa's reader vs Haystack's TransformersExtractiveReader with the same
weights (the shared offline reader), on the same questions and passages (each dev-eval question
with its own paragraph). Reports questions/s, top-answer agreement, EM/F1 of each (each with its
own no-answer rule at its defaults), and the model's pure forward time on our token batches: the
floor that any reader implementation pays.

Usage: python benchmarks/reader.py [--questions N] [--repeat R] [--json]
"""

from __future__ import annotations

import argparse
import json
import time

from common import READER, SQUAD, median, require_peer, require_shared, table


def forward_floor(reader, questions) -> float:
    """Seconds for the model forward passes alone, on exactly the batches our reader builds."""
    import torch

    features = reader._features([q.question for q in questions], [q.context for q in questions])
    ids = features["input_ids"]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    batches = []
    for first in range(0, len(order), reader.config.batch_size):
        batch = order[first : first + reader.config.batch_size]
        width = max(len(ids[i]) for i in batch)
        inputs = {}
        for name in ("input_ids", "attention_mask", "token_type_ids"):
            if name in features:
                fill = reader.tokenizer.pad_token_id if name == "input_ids" else 0
                inputs[name] = torch.tensor([features[name][i] + [fill] * (width - len(features[name][i])) for i in batch])
        batches.append(inputs)
    started = time.perf_counter()
    with torch.inference_mode():
        for inputs in batches:
            reader._model(**inputs)
    return time.perf_counter() - started


def run_ours(reader, questions):
    """Seconds, final predictions ("" = no answer) and best non-null spans."""
    from rag_qa.config import ScoringConfig
    from rag_qa.evaluate import read_single_passages

    started = time.perf_counter()
    predictions, spans = {}, {}
    for question, result in read_single_passages(reader, questions, ScoringConfig(tau=0.0, retrieval_weight=0.0)):
        spans[question.id] = result.answers[0].text if result.answers else ""
        predictions[question.id] = "" if result.abstained else spans[question.id]
    return time.perf_counter() - started, predictions, spans


def run_haystack(peer, questions):
    """Seconds, final predictions ("" = its no-answer ranked first) and best non-null spans."""
    from haystack import Document

    started = time.perf_counter()
    predictions, spans = {}, {}
    for question in questions:
        answers = peer.run(query=question.question, documents=[Document(content=question.context)], top_k=1)["answers"]
        predictions[question.id] = max(answers, key=lambda a: a.score).data or ""
        spans[question.id] = next((a.data for a in sorted(answers, key=lambda a: -a.score) if a.data), "")
    return time.perf_counter() - started, predictions, spans


def run(n_questions: int = 300, repeat: int = 3) -> dict:
    require_shared()
    require_peer()
    from haystack_integrations.components.readers.transformers import TransformersExtractiveReader

    from rag_qa.config import ReaderConfig
    from rag_qa.evaluate import load_squad, squad_metrics
    from rag_qa.reader import Reader

    questions = load_squad(SQUAD / "dev-eval.json")[:n_questions]
    systems = {"rag-qa": Reader(ReaderConfig(model=str(READER))), "rag-qa --int8": Reader(ReaderConfig(model=str(READER), int8=True))}
    for reader in systems.values():
        reader.warm_up()
    peer = TransformersExtractiveReader(model=str(READER), top_k=1)
    peer.warm_up()
    for reader in systems.values():
        run_ours(reader, questions[:16])  # warm caches and threads
    run_haystack(peer, questions[:16])
    times: dict[str, list[float]] = {name: [] for name in [*systems, "Haystack TransformersExtractiveReader", "pure forward"]}
    predictions: dict[str, dict[str, str]] = {}
    spans: dict[str, dict[str, str]] = {}
    for _ in range(repeat):  # interleaved, so machine noise hits every system alike
        for name, reader in systems.items():
            seconds, predictions[name], spans[name] = run_ours(reader, questions)
            times[name].append(seconds)
        seconds, predictions["Haystack TransformersExtractiveReader"], spans["Haystack TransformersExtractiveReader"] = run_haystack(peer, questions)
        times["Haystack TransformersExtractiveReader"].append(seconds)
        times["pure forward"].append(forward_floor(systems["rag-qa"], questions))
    peer_name = "Haystack TransformersExtractiveReader"
    rows = {}
    for name, found in predictions.items():
        m = squad_metrics(questions, found)
        rows[name] = {
            "questions_per_second": len(questions) / median(times[name]), "exact": m["exact"], "f1": m["f1"],
            "HasAns_f1": m.get("HasAns_f1"), "NoAns_exact": m.get("NoAns_exact"),
            "same_best_span_as_haystack": sum(spans[name][q.id] == spans[peer_name][q.id] for q in questions) / len(questions),
        }  # fmt: skip
    return {
        "questions": len(questions), "repeat": repeat, "systems": rows, "seconds": times,
        "speedup": median(times[peer_name]) / median(times["rag-qa"]),
        "speedup_int8": median(times[peer_name]) / median(times["rag-qa --int8"]),
        "ours_over_forward": median(times["rag-qa"]) / median(times["pure forward"]),
    }  # fmt: skip


def markdown(result: dict) -> str:
    keys = ["questions_per_second", "exact", "f1", "HasAns_f1", "NoAns_exact", "same_best_span_as_haystack"]
    rows = [[name] + [values[k] for k in keys] for name, values in result["systems"].items()]
    return table(["reader (same weights)"] + keys, rows) + (
        f"\n\nSpeed-up over Haystack: {result['speedup']:.2f}x (int8: {result['speedup_int8']:.2f}x). "
        f"rag-qa reader time / pure model forward on the same batches: {result['ours_over_forward']:.3f}. "
        f"{result['questions']} dev-eval questions, each with its own paragraph; median of {result['repeat']} interleaved runs. "
        "Each system uses its own no-answer rule at its defaults (rag-qa: the SQuAD 2.0 null-vs-best rule, tau = 0; "
        "Haystack: its no-answer score ranked against sigmoid span scores). same_best_span_as_haystack compares the best "
        "non-null spans, whatever each system decided."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=300, help="dev-eval questions to use (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per system; medians are reported (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    result = run(args.questions, args.repeat)
    print(json.dumps(result, indent=2) if args.json else markdown(result))


if __name__ == "__main__":
    main()
