"""`rag-qa train`: fine-tune a reader on SQuAD-format data."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rag_qa.cli.common import SharedOptions, emit, metrics_table
from rag_qa.config import DEFAULT_EMBEDDING_MODEL, TrainConfig


def cmd_train(args: argparse.Namespace) -> int:
    from rag_qa.train import train

    config = TrainConfig(
        base=args.base, train_file=args.train, out=args.out, dev_file=args.dev, revision=args.revision, epochs=args.epochs,
        max_steps=args.max_steps, max_seq_len=args.max_seq_len, doc_stride=args.doc_stride, batch_size=args.batch_size,
        learning_rate=args.lr, warmup_ratio=args.warmup, seed=args.seed, checkpoint_every=args.checkpoint_every,
    )  # fmt: skip
    report = train(config, overwrite=args.overwrite, progress=not args.json)

    def human() -> None:
        if report.mismatched:
            print(f"skipped {report.mismatched} answers whose text is not the context at answer_start, e.g.:", file=sys.stderr)
            for bad in report.mismatched_examples:
                print(f"  {bad['id']}: answer {bad['answer']!r} but context has {bad['context_there']!r}", file=sys.stderr)
        if report.resumed_from_step:
            print(f"resumed from the checkpoint at step {report.resumed_from_step}")
        head = "new QA head" if report.new_head else "continued fine-tuning"
        print(f"trained {report.steps} steps ({head}, lr {report.learning_rate:g}) on {report.windows} windows "
              f"of {report.examples} questions: {report.windows_per_second} windows/s; saved to {report.out}")  # fmt: skip
        if report.dev_metrics:
            metrics_table(report.dev_metrics)

    emit(args, report.to_dict(), human)
    return 0


def add_train(sub: Any, o: SharedOptions) -> None:
    p = sub.add_parser("train", parents=[o.json], help="fine-tune a reader on SQuAD-format data (resumes an interrupted run)")
    p.add_argument("--base", required=True, metavar="MODEL", help=f"a QA model to fine-tune further, or a plain encoder that gets a new QA head (e.g. {DEFAULT_EMBEDDING_MODEL}, bundled offline): Hub id or local folder")
    p.add_argument("--revision", metavar="REV", help="Hub revision of the base model")
    p.add_argument("--train", required=True, metavar="FILE", help="SQuAD 1.1/2.0 JSON training file")
    p.add_argument("--dev", metavar="FILE", help="SQuAD JSON file to evaluate the result on (metrics go into the model card)")
    p.add_argument("--out", required=True, metavar="DIR", help="where the trained model (and its checkpoints while training) go")
    p.add_argument("--epochs", type=float, default=TrainConfig.epochs, help="passes over the data (default: %(default)s)")
    p.add_argument("--max-steps", type=int, metavar="N", help="stop after N optimizer steps instead")
    p.add_argument("--max-seq-len", type=int, default=TrainConfig.max_seq_len, help="window in tokens (default: %(default)s)")
    p.add_argument("--doc-stride", type=int, default=TrainConfig.doc_stride, help="window overlap in tokens (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=TrainConfig.batch_size, help="windows per step (default: %(default)s)")
    p.add_argument("--lr", type=float, metavar="RATE", help="peak learning rate (default: 1e-4 for a new QA head, 3e-5 to continue a QA model)")
    p.add_argument("--warmup", type=float, default=TrainConfig.warmup_ratio, metavar="RATIO", help="share of steps spent warming up (default: %(default)s)")
    p.add_argument("--seed", type=int, default=TrainConfig.seed, help="seed for initialisation, shuffling and dropout (default: %(default)s)")
    p.add_argument("--checkpoint-every", type=int, default=TrainConfig.checkpoint_every, metavar="N", help="save a resumable checkpoint every N steps (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="delete what DIR holds and start afresh")
    p.set_defaults(func=cmd_train)
