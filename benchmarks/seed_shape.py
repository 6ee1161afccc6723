"""The reference reader's shape on this CPU: seconds per question for each precision.

deepset/roberta-large-squad2 cannot be downloaded here; its compute can. This builds a
`RobertaForQuestionAnswering` of its exact shape (24 layers, hidden 1024, 16 heads, FFN 4096,
vocabulary 50265; `--shape base`: 12 layers, 768, 12, 3072) with random weights, and a byte-level BPE
tokenizer of that vocabulary trained on the shared SQuAD text, saved once under `--cache`. Its
answers are meaningless; the time is the real one (every weight is multiplied all the same).

Each question is read with 5 passages, as `ask` reads the 5 it retrieves: its own SQuAD paragraph
and the next 4 of its article (about 700 words in all). Timed per question, one at a time, as a
person at the CLI or the web page asks (not a batched throughput): `Reader.read` of the question
over its 5 passages, after one question read to warm up; p50 and p90 over `--questions`.
`ask` adds retrieval to this (`--ask` times it too).

Precisions: fp32 and bf16 (PyTorch; bf16 only where the processor has native bf16 instructions),
`--onnx` adds ONNX Runtime fp32 and int8 (exporting the large graph takes minutes and 1.4 GB).

`--ask` also times `RagQA.ask` end to end: an index of every passage of the questions (one text file
each), the top 5 retrieved, then read (the index's passages are those the question sets hold, so
retrieval finds mostly the same ones); with `--haystack`, Haystack's reader is timed over the
passages `ask` reads too (a row of its own, to set beside `ask`'s column).
`--reader DIR` times a real reader instead (the offline readers: their per-question speed).
`--haystack` adds Haystack's `TransformersExtractiveReader` (fp32) over the same passages, first.

Usage: python benchmarks/seed_shape.py [--shape large|base] [--questions 10] [--onnx] [--haystack] [--ask] [--autocast-alone] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from common import PEER_PACKAGES, SQUAD, machine, require_peer, require_shared, table

SHAPES = {  # (layers, hidden, heads, FFN): deepset/roberta-large-squad2 and roberta-base
    "large": (24, 1024, 16, 4096),
    "base": (12, 768, 12, 3072),
}
VOCAB = 50265
PASSAGES = 5
DEFAULT_CACHE = Path.home() / ".cache" / "rag-qa" / "seed-shape"


def build_model(shape: str, cache: Path) -> Path:
    """The random-weight reader of `shape` with its tokenizer (built once, then reused)."""
    folder = cache / f"roberta-{shape}-random"
    if (folder / "model.safetensors").is_file():
        return folder
    import torch
    from tokenizers import ByteLevelBPETokenizer, processors
    from transformers import RobertaConfig, RobertaForQuestionAnswering, RobertaTokenizerFast

    from rag_qa.squad import load_squad

    folder.mkdir(parents=True, exist_ok=True)
    texts = sorted({q.context for name in ("dev-eval.json", "reader-train.json") for q in load_squad(SQUAD / name)})
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=VOCAB, min_frequency=1, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"], show_progress=False)
    bpe.post_processor = processors.RobertaProcessing(("</s>", bpe.token_to_id("</s>")), ("<s>", bpe.token_to_id("<s>")), trim_offsets=True, add_prefix_space=False)
    tokenizer = RobertaTokenizerFast(tokenizer_object=bpe._tokenizer, model_max_length=512)
    tokenizer.save_pretrained(folder)
    layers, hidden, heads, ffn = SHAPES[shape]
    config = RobertaConfig(
        vocab_size=VOCAB, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=ffn,
        max_position_embeddings=514, pad_token_id=1, bos_token_id=0, eos_token_id=2, type_vocab_size=1,
    )  # fmt: skip
    torch.manual_seed(0)
    RobertaForQuestionAnswering(config).save_pretrained(folder, safe_serialization=True)
    return folder


def question_sets(count: int) -> list[tuple[str, list[str]]]:
    """`count` dev-eval questions, each with its paragraph and the next 4 of its article."""
    from rag_qa.squad import load_squad

    questions = load_squad(SQUAD / "dev-eval.json")
    by_article: dict[int, list[str]] = {}
    for q in questions:
        paragraphs = by_article.setdefault(q.article, [])
        if q.context not in paragraphs:
            paragraphs.append(q.context)
    step = max(1, len(questions) // count)
    chosen = questions[::step][:count]
    sets = []
    for q in chosen:
        paragraphs = by_article[q.article]
        first = paragraphs.index(q.context)
        sets.append((q.question, [paragraphs[(first + i) % len(paragraphs)] for i in range(PASSAGES)]))
    return sets


def timed(read, sets: list[tuple[str, list[str]]]) -> list[float]:  # type: ignore[no-untyped-def]
    """Seconds of `read(question, passages)` for each question, after one question read to warm up
    (loading, first allocations)."""
    read(*sets[0])
    seconds = []
    for question, passages in sets:
        start = time.perf_counter()
        read(question, passages)
        seconds.append(time.perf_counter() - start)
    return seconds


def percentiles(seconds: list[float], prefix: str = "") -> dict[str, float]:
    ordered = sorted(seconds)
    return {f"{prefix}p50_s": statistics.median(seconds), f"{prefix}p90_s": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]}


def time_reader(reader, sets: list[tuple[str, list[str]]]) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """p50 and p90 seconds per question, and the tokens read per question (windows as batched)."""
    seconds = timed(lambda question, passages: reader.read([question], [passages]), sets)
    tokens = [sum(len(ids) for ids in reader._features([q] * len(passages), passages)["input_ids"]) for q, passages in sets]
    return percentiles(seconds) | {"tokens_per_question": statistics.mean(tokens)}


def build_index(sets: list[tuple[str, list[str]]], index: Path) -> list[tuple[str, list[str]]]:
    """An index of every passage of `sets` (each a text file), and each question with the 5
    passages `ask` reads from it (retrieved, widened into their neighbours: `RagQA.search`)."""
    from rag_qa import RagQA

    folder = index.parent / "passages"
    folder.mkdir(parents=True, exist_ok=True)
    for number, text in enumerate(sorted({p for _, passages in sets for p in passages})):
        (folder / f"passage-{number:03d}.txt").write_text(text, encoding="utf-8")
    with RagQA.open(index) as qa:
        qa.index([folder])
        return [(question, [hit.passage.text for hit in qa.search(question, top_k=PASSAGES)]) for question, _ in sets]


def time_ask(config, sets: list[tuple[str, list[str]]], index: Path) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """p50 and p90 seconds per question of `RagQA.ask` over `build_index`'s index: retrieval of
    the top 5 included, one question at a time."""
    from rag_qa import RagQA

    with RagQA.open(index, reader=config, runtime=config.runtime, answer_policy="eager") as qa:
        return percentiles(timed(lambda question, _: qa.ask(question, top_k=PASSAGES), sets), prefix="ask_")


def autocast_alone(config):  # type: ignore[no-untyped-def]
    """A bf16 reader whose weights stay fp32: autocast casts them at every forward pass."""
    from rag_qa.reader import Reader, torch_forward

    reader = Reader(config)
    reader.warm_up()
    reader._forward = torch_forward(reader._torch_model(), bf16=True, store_bf16=False)
    return reader


def time_haystack(folder: str, sets: list[tuple[str, list[str]]]) -> dict[str, float | None]:
    """The same timing for Haystack's `TransformersExtractiveReader` over the same passages (fp32,
    its defaults: 384-token windows, stride 128)."""
    from haystack import Document
    from haystack_integrations.components.readers.transformers import TransformersExtractiveReader

    reader = TransformersExtractiveReader(model=folder, top_k=5)
    reader.warm_up()
    seconds = timed(lambda question, passages: reader.run(query=question, documents=[Document(content=p) for p in passages]), sets)
    return percentiles(seconds) | {"tokens_per_question": None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="large", help="model shape (default: %(default)s, deepset/roberta-large-squad2's)")
    parser.add_argument("--questions", type=int, default=10, help="questions timed (default: %(default)s)")
    parser.add_argument("--onnx", action="store_true", help="also ONNX Runtime fp32 and int8 (exports the graph first: minutes)")
    parser.add_argument("--haystack", action="store_true", help=f"also Haystack's TransformersExtractiveReader, fp32 (pip install --no-deps {PEER_PACKAGES})")
    parser.add_argument("--ask", action="store_true", help="also time RagQA.ask (retrieval of the top 5 from an index of every passage, then reading)")
    parser.add_argument("--autocast-alone", action="store_true", help="also bf16 with the weights kept in fp32 (autocast casts them at every forward pass), as rag-qa read before it stored them in bf16")
    parser.add_argument("--reader", metavar="DIR", help="time this reader folder instead of the random-weight shape (the offline v2 reader: ../shared/models/minilm-squad2-reader-v2)")
    parser.add_argument("--cache", default=str(DEFAULT_CACHE), help="where the random-weight model is kept (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    require_shared()
    from rag_qa.config import ReaderConfig
    from rag_qa.precision import native_bf16
    from rag_qa.reader import Reader

    folder = args.reader or str(build_model(args.shape, Path(args.cache).expanduser()))
    sets = question_sets(args.questions)
    runs = {"torch fp32": ReaderConfig(model=folder, runtime="torch")}
    if native_bf16():
        runs["torch bf16"] = ReaderConfig(model=folder, runtime="torch", bf16=True)
    if args.onnx:
        runs["onnx fp32"] = ReaderConfig(model=folder, runtime="onnx")
        runs["onnx int8"] = ReaderConfig(model=folder, runtime="onnx", int8=True)
    results = {}
    if args.haystack:
        require_peer()
        results["haystack fp32"] = time_haystack(folder, sets)
    with tempfile.TemporaryDirectory(prefix="rag-qa-seed-shape-") as work:
        index = Path(work) / "index"
        if args.ask:
            retrieved = build_index(sets, index)
            if args.haystack:  # Haystack's reader over the very passages `ask` reads, to set beside ask's p50
                results["haystack fp32, ask's passages"] = time_haystack(folder, retrieved)
        for name, config in runs.items():
            results[name] = time_reader(Reader(config), sets) | (time_ask(config, sets, index) if args.ask else {})
        if args.ask and "torch bf16" in runs:  # reading in stages (rag_qa.cascade), which only `ask` does
            results["torch bf16, ask in stages"] = time_ask(replace(runs["torch bf16"], read_in_stages=True), sets, index) | {"tokens_per_question": None}
        if args.autocast_alone and "torch bf16" in runs:
            results["torch bf16, autocast alone"] = time_reader(autocast_alone(runs["torch bf16"]), sets)
    baseline = results["haystack fp32" if args.haystack else "torch fp32"]["p50_s"]
    report = {"shape": args.reader or args.shape, "questions": len(sets), "machine": machine(), "threads": os.cpu_count(), "results": results}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    rows = [[name, r.get("p50_s", ""), r.get("p90_s", ""), baseline / r["p50_s"] if "p50_s" in r else "", r["tokens_per_question"] or "not counted", r.get("ask_p50_s", ""), r.get("ask_p90_s", "")] for name, r in results.items()]
    headers = ["reader", "read p50 s/question", "read p90 s/question", f"read speed vs {'haystack' if args.haystack else 'torch'} fp32", "tokens read/question", "ask p50 s", "ask p90 s"]
    print(table(headers, rows))
    print(f"\n{report['shape']}, {len(sets)} questions x {PASSAGES} passages, one at a time; {report['machine']}")


if __name__ == "__main__":
    main()
