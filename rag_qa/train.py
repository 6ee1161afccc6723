"""Fine-tuning a span reader on SQuAD-format data (`rag-qa train`).

Questions become the same overlapping windows the reader uses at inference. A window is labelled
with the answer's first and last token when it holds the whole answer, and with [CLS] (position 0,
"no answer") when the question is unanswerable or the answer lies outside the window (SQuAD 2.0
convention). Training is AdamW with linear warm-up and decay, gradient clipping and fixed seeds.

A checkpoint (weights, optimizer, scheduler, RNG and step) is written atomically every
`checkpoint_every` steps; running the same command again resumes from the newest one and ends
with the same weights as an uninterrupted run. The result is a plain Hugging Face model folder
(safetensors, tokenizer, config) plus MODEL_CARD.md and training.json.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rag_qa.config import ReaderConfig, ScoringConfig, TrainConfig
from rag_qa.errors import ConfigError, LoadError
from rag_qa.models import resolve_model
from rag_qa.reader import padded_batch, window_features
from rag_qa.tokenizer import MODEL_INPUTS

NEW_HEAD_LEARNING_RATE = 1e-4
CONTINUED_LEARNING_RATE = 3e-5
CHECKPOINT_PREFIX = "checkpoint-"
SHOWN_MISMATCHES = 5


@dataclass(frozen=True)
class TrainingExample:
    """One question with its paragraph; `answer_start` is None for an unanswerable question."""

    id: str
    question: str
    context: str
    answer_start: int | None
    answer_text: str


@dataclass
class TrainingData:
    examples: list[TrainingExample]
    mismatched: list[dict[str, Any]]  # answers whose text is not the context at answer_start

    @property
    def answerable(self) -> int:
        return sum(e.answer_start is not None for e in self.examples)


@dataclass
class TrainReport:
    out: str
    base: str
    new_head: bool
    learning_rate: float
    examples: int
    answerable: int
    windows: int
    mismatched: int
    mismatched_examples: list[dict[str, Any]]
    steps: int
    resumed_from_step: int
    seconds: float
    windows_per_second: float
    final_loss: float
    dev_metrics: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def load_training_data(path: str | Path) -> TrainingData:
    """Questions of a SQuAD 1.1/2.0 file. The first gold answer of each answerable question must
    be the context's text at its `answer_start`; those that are not are reported and left out."""
    try:
        articles = json.loads(Path(path).read_text("utf-8"))["data"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise LoadError(str(path), f"not a SQuAD JSON file ({type(exc).__name__}: {exc})") from exc
    data = TrainingData([], [])
    for article in articles:
        for paragraph in article["paragraphs"]:
            context = paragraph["context"]
            for qa in paragraph["qas"]:
                answers = [] if qa.get("is_impossible") else qa.get("answers", [])
                if not answers:
                    data.examples.append(TrainingExample(qa["id"], qa["question"], context, None, ""))
                    continue
                start, text = int(answers[0]["answer_start"]), answers[0]["text"]
                found = context[start : start + len(text)]
                if found != text or not text.strip():
                    data.mismatched.append({"id": qa["id"], "answer": text, "answer_start": start, "context_there": found})
                    continue
                data.examples.append(TrainingExample(qa["id"], qa["question"], context, start, text))
    if not data.examples:
        raise LoadError(str(path), "holds no usable questions")
    return data


def label_windows(tokenizer: Any, examples: list[TrainingExample], config: TrainConfig) -> dict[str, list[Any]]:
    """Windows of every example with start/end token labels (0 = [CLS] = no answer in this window)."""
    features = window_features(
        tokenizer, [e.question for e in examples], [e.context for e in examples], config.max_seq_len, config.doc_stride, config.max_query_tokens
    )
    starts, ends = [], []
    for index, example_index in enumerate(features["overflow_to_sample_mapping"]):
        example = examples[example_index]
        start, end = _answer_tokens(example, features.sequence_ids(index), features["offset_mapping"][index])
        starts.append(start)
        ends.append(end)
    windows = {name: features[name] for name in MODEL_INPUTS if name in features}
    windows["start_positions"], windows["end_positions"] = starts, ends
    return windows


def _answer_tokens(example: TrainingExample, sequence_ids: list[int | None], offsets: list[tuple[int, int]]) -> tuple[int, int]:
    if example.answer_start is None:
        return 0, 0
    first_char, last_char = example.answer_start, example.answer_start + len(example.answer_text)
    context = [i for i, s in enumerate(sequence_ids) if s == 1]
    if offsets[context[0]][0] > first_char or offsets[context[-1]][1] < last_char:
        return 0, 0  # the answer is not wholly inside this window
    start = next(i for i in context if offsets[i][1] > first_char)
    end = next(i for i in reversed(context) if offsets[i][0] < last_char)
    return start, end


# ----------------------------------------------------------------------------- model and checkpoints


def load_base(config: TrainConfig) -> tuple[Any, Any, bool]:
    """Tokenizer and QA model from the base; True when the QA head is new (a plain encoder)."""
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer
    from transformers.utils import logging as hf_logging

    resolved = resolve_model(config.base, config.revision, "base")
    revision = resolved.load_revision
    tokenizer = AutoTokenizer.from_pretrained(resolved.location, revision=revision, use_fast=True)
    if not tokenizer.is_fast:
        raise ConfigError(f"{config.base}: training needs a fast tokenizer (tokenizer.json) for character offsets")
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the "newly initialized qa_outputs" warning is expected; we report it ourselves
    try:
        model, info = AutoModelForQuestionAnswering.from_pretrained(
            resolved.location, revision=revision, use_safetensors=True, trust_remote_code=False, output_loading_info=True
        )
    finally:
        hf_logging.set_verbosity(verbosity)
    new_head = any("qa_outputs" in key for key in info["missing_keys"])
    return tokenizer, model, new_head


def fingerprint(config: TrainConfig) -> str:
    """What makes two runs the same run: the training data and every setting that shapes the weights."""
    settings = {k: v for k, v in config.to_dict().items() if k not in ("out", "dev_file", "checkpoint_every")}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    digest.update(Path(config.train_file).read_bytes())
    return digest.hexdigest()


def _checkpoints(out: Path) -> list[tuple[int, Path]]:
    found = [(int(p.name[len(CHECKPOINT_PREFIX) :]), p) for p in out.glob(f"{CHECKPOINT_PREFIX}*") if p.name[len(CHECKPOINT_PREFIX) :].isdigit()]
    return sorted(found)


def save_checkpoint(out: Path, step: int, state: dict[str, Any]) -> None:
    """Write to a temporary folder and rename it into place, then drop older checkpoints, so a
    kill at any moment leaves at least one complete checkpoint."""
    import torch

    final = out / f"{CHECKPOINT_PREFIX}{step}"
    partial = out / f".{CHECKPOINT_PREFIX}{step}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    torch.save(state, partial / "state.pt")
    partial.rename(final)
    for older_step, older in _checkpoints(out):
        if older_step < step:
            shutil.rmtree(older, ignore_errors=True)


def load_checkpoint(out: Path, run: str) -> dict[str, Any] | None:
    """The newest checkpoint of this run, or None; a checkpoint of another run is an error."""
    import torch

    found = _checkpoints(out)
    if not found:
        return None
    state = torch.load(found[-1][1] / "state.pt", weights_only=True)
    if state["fingerprint"] != run:
        raise ConfigError(
            f"{out} holds a checkpoint of a different training run (other data or settings); "
            "use another --out, or --overwrite to start afresh"
        )
    return state


def prepare_out(out: Path, overwrite: bool) -> None:
    if overwrite and out.exists():
        shutil.rmtree(out)
    if (out / "config.json").exists() and not _checkpoints(out):
        raise ConfigError(f"{out} already holds a trained model; use another --out, or --overwrite to replace it")
    out.mkdir(parents=True, exist_ok=True)


# ----------------------------------------------------------------------------- training loop


def _optimizer(model: Any, learning_rate: float, weight_decay: float) -> Any:
    import torch

    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
    decay = [p for n, p in model.named_parameters() if not n.endswith(no_decay)]
    rest = [p for n, p in model.named_parameters() if n.endswith(no_decay)]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}], lr=learning_rate)


def _batch(windows: dict[str, list[Any]], rows: list[int], pad_id: int) -> dict[str, Any]:
    """Model inputs padded as at inference, plus the rows' answer labels."""
    import torch

    batch = padded_batch(windows, rows, pad_id)
    for name in ("start_positions", "end_positions"):
        batch[name] = torch.tensor([windows[name][r] for r in rows], dtype=torch.long)
    return batch


def epoch_batches(lengths: list[int], batch_size: int, seed: int, epoch: int, group: int = 50) -> list[list[int]]:
    """The batches of one epoch, from the seed alone, so a resumed run sees the same batches.

    Windows are shuffled, then sorted by length within groups of `group` batches, cut into batches
    and the batches shuffled: one long window no longer pads 15 short ones to full length (about
    3x faster on SQuAD, whose windows are mostly far shorter than max_seq_len)."""
    import torch

    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    shuffled = torch.randperm(len(lengths), generator=generator).tolist()
    span = batch_size * group
    batches = []
    for first in range(0, len(shuffled), span):
        grouped = sorted(shuffled[first : first + span], key=lambda i: lengths[i])
        batches += [grouped[i : i + batch_size] for i in range(0, len(grouped), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def train(config: TrainConfig, overwrite: bool = False, progress: bool = False, after_step: Callable[[int], None] | None = None) -> TrainReport:
    """Fine-tune `config.base` on `config.train_file` and save a reader to `config.out`.

    `after_step(step)` runs after each optimizer step and checkpoint (tests use it to interrupt).
    """
    import torch
    from tqdm import tqdm
    from transformers import get_linear_schedule_with_warmup

    out = Path(config.out)
    prepare_out(out, overwrite)
    data = load_training_data(config.train_file)
    torch.manual_seed(config.seed)
    tokenizer, model, new_head = load_base(config)
    windows = label_windows(tokenizer, data.examples, config)
    count = len(windows["input_ids"])
    lengths = [len(ids) for ids in windows["input_ids"]]
    steps_per_epoch = len(epoch_batches(lengths, config.batch_size, config.seed, 0))
    total_steps = config.max_steps or math.ceil(config.epochs * steps_per_epoch)
    learning_rate = config.learning_rate or (NEW_HEAD_LEARNING_RATE if new_head else CONTINUED_LEARNING_RATE)
    optimizer = _optimizer(model, learning_rate, config.weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total_steps), total_steps)

    run = fingerprint(config)
    state = load_checkpoint(out, run)
    first_step, loss_sum, loss_steps = 0, 0.0, 0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        first_step, loss_sum, loss_steps = state["step"], state["loss_sum"], state["loss_steps"]

    model.train()
    started, trained_windows = time.perf_counter(), 0
    bar = tqdm(total=total_steps, initial=first_step, desc="Training", unit="step", disable=not progress)
    batches: list[list[int]] = []
    batches_epoch = -1
    for step in range(first_step, total_steps):
        epoch, position = divmod(step, steps_per_epoch)
        if epoch != batches_epoch:
            batches, batches_epoch = epoch_batches(lengths, config.batch_size, config.seed, epoch), epoch
        rows = batches[position]
        loss = model(**_batch(windows, rows, tokenizer.pad_token_id)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        loss_sum, loss_steps, trained_windows = loss_sum + loss.item(), loss_steps + 1, trained_windows + len(rows)
        bar.update(1)
        bar.set_postfix(loss=f"{loss_sum / loss_steps:.3f}", lr=f"{scheduler.get_last_lr()[0]:.1e}", epoch=epoch + 1)
        done = step + 1
        if done % config.checkpoint_every == 0 and done < total_steps:
            save_checkpoint(out, done, {
                "fingerprint": run, "step": done, "loss_sum": loss_sum, "loss_steps": loss_steps, "rng": torch.get_rng_state(),
                "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            })  # fmt: skip
        if after_step is not None:
            after_step(done)
    bar.close()
    seconds = time.perf_counter() - started

    model.eval()
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    report = TrainReport(
        out=str(out), base=config.base, new_head=new_head, learning_rate=learning_rate, examples=len(data.examples),
        answerable=data.answerable, windows=count, mismatched=len(data.mismatched),
        mismatched_examples=data.mismatched[:SHOWN_MISMATCHES], steps=total_steps, resumed_from_step=first_step,
        seconds=round(seconds, 1), windows_per_second=round(trained_windows / seconds, 2) if seconds else 0.0,
        final_loss=round(loss_sum / max(loss_steps, 1), 4),
    )  # fmt: skip
    if config.dev_file:
        report.dev_metrics = evaluate_trained(config, progress)
    shared_config = portable(config, out)
    shared_report = replace(report, out=shared_config.out, base=shared_config.base)
    (out / "training.json").write_text(json.dumps({"config": shared_config.to_dict(), "report": shared_report.to_dict()}, indent=2))
    (out / "MODEL_CARD.md").write_text(model_card(shared_config, shared_report))
    for _, checkpoint in _checkpoints(out):
        shutil.rmtree(checkpoint)
    return report


def portable(config: TrainConfig, out: Path) -> TrainConfig:
    """The configuration as a shared model folder should carry it: local paths relative to the
    folder itself (no one else's home directory), Hub ids as given, the folder as its own name."""

    def relative(path: str | None) -> str | None:
        return os.path.relpath(Path(path).absolute(), out.absolute()) if path is not None and Path(path).exists() else path

    return replace(config, base=relative(config.base) or config.base, train_file=relative(config.train_file) or config.train_file,
                   dev_file=relative(config.dev_file), out=out.name)  # fmt: skip


def evaluate_trained(config: TrainConfig, progress: bool) -> dict[str, float]:
    """Official SQuAD 2.0 metrics of the saved reader on the dev file (each question with its own
    paragraph, tau = 0), plus HasAns F1 when forced to answer: how well it finds spans at all."""
    from rag_qa.evaluate import evaluate_reader, f1_score, normalize_answer
    from rag_qa.squad import load_squad
    from rag_qa.reader import Reader

    questions = load_squad(config.dev_file)  # type: ignore[arg-type]
    reader = Reader(ReaderConfig(model=config.out, max_seq_len=config.max_seq_len, doc_stride=config.doc_stride, max_query_tokens=config.max_query_tokens))
    evaluation = evaluate_reader(reader, questions, ScoringConfig(tau=0.0, retrieval_weight=0.0), progress=progress)
    answerable = [q for q in questions if any(normalize_answer(a) for a in q.answers)]
    forced = [max(f1_score(gold, evaluation.best_spans[q.id]) for gold in q.answers) for q in answerable]
    metrics = {k: round(v, 2) if isinstance(v, float) else v for k, v in evaluation.metrics.items()}
    metrics["HasAns_f1_forced"] = round(100.0 * sum(forced) / len(forced), 2) if forced else 0.0
    return metrics


def model_card(config: TrainConfig, report: TrainReport) -> str:
    """A short README for the trained reader: where it came from and how well it did."""
    lines = [
        "# Reader fine-tuned with `rag-qa train`\n",
        f"- Base: `{config.base}`" + (" (new QA head)" if report.new_head else " (continued fine-tuning of its QA head)"),
        f"- Data: `{Path(config.train_file).name}`: {report.examples} questions ({report.answerable} answerable), "
        f"{report.windows} windows; {report.mismatched} answers skipped because their text is not the context at answer_start",
        f"- Training: {report.steps} steps, batch {config.batch_size}, max_seq_len {config.max_seq_len}, doc_stride {config.doc_stride}, "
        f"AdamW lr {report.learning_rate:g} (weight decay {config.weight_decay}), linear warm-up {config.warmup_ratio:.0%} then linear decay, "
        f"gradient clipping {config.max_grad_norm}, seed {config.seed}",
        f"- Speed: {report.windows_per_second} windows/s; final mean loss {report.final_loss}",
        "- Load: `rag-qa ask --reader DIR`, `rag-qa eval squad --reader DIR`, or `AutoModelForQuestionAnswering.from_pretrained(DIR)`",
    ]
    if report.dev_metrics:
        m = report.dev_metrics
        lines += [
            f"\n## Dev metrics on `{Path(config.dev_file or '').name}` (tau = 0, each question with its own paragraph)\n",
            "| EM | F1 | HasAns F1 | NoAns accuracy | HasAns F1 (always answer) | best F1 over tau |",
            "|---|---|---|---|---|---|",
            f"| {m.get('exact', 0):.2f} | {m.get('f1', 0):.2f} | {m.get('HasAns_f1', 0):.2f} | {m.get('NoAns_exact', 0):.2f} "
            f"| {m.get('HasAns_f1_forced', 0):.2f} | {m.get('best_f1', 0):.2f} |",
        ]
    return "\n".join(lines) + "\n"
