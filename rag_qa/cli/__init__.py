"""The `rag-qa` command. Every command takes `--json` for scripts; human output goes to the terminal
with progress bars on stderr. Exit codes: 0 done, 1 the check or lookup failed, 2 bad input.

One module per command group: `indexing` (index, info, check, backup, restore, show, delete), `asking` (search,
ask), `evaluation` (eval, calibrate), `training` (train), `serving` (serve), `keys` (keys, groups, audit); `common` holds the
shared option groups and output helpers."""

from __future__ import annotations

import argparse
import os
import shlex
import sqlite3
import sys
from typing import NoReturn

from rag_qa.cli import asking, evaluation, indexing, keys, serving, training
from rag_qa.cli.common import shared_options
from rag_qa.errors import NotFoundError, RagQAError, storage_problem


class _Parser(argparse.ArgumentParser):
    """argparse reads a question such as "-:" as an unknown option; the error says how to ask it."""

    def error(self, message: str) -> NoReturn:
        unknown = message.partition("unrecognized arguments: ")[2]
        if unknown.startswith("-"):
            message += f"\n(a question or query that starts with '-' goes last, after '--': rag-qa ask [OPTIONS] -- {shlex.quote(unknown)})"
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rag-qa",
        description="Index documents (PDF, text, Markdown, HTML), then search them or ask questions answered "
        "with exact quotes, their source, page and a confidence, or an honest 'no answer'.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    options = shared_options()
    for add in (
        indexing.add_index, asking.add_search, asking.add_ask, evaluation.add_eval, evaluation.add_calibrate,
        training.add_train, serving.add_serve, keys.add_keys, indexing.add_maintenance,
    ):  # fmt: skip
        add(sub, options)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    try:
        status = args.func(args)
        sys.stdout.flush()  # a reader that left (`| head`) shows here, where it is handled, not at exit
        return status
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to say to a closed pipe
        return 141  # as a program ended by SIGPIPE
    except NotFoundError as exc:
        print(f"rag-qa: {exc}", file=sys.stderr)
        return 1
    except RagQAError as exc:
        print(f"rag-qa: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rag-qa: interrupted; the index keeps everything committed so far", file=sys.stderr)
        return 130
    except (OSError, sqlite3.DatabaseError) as exc:  # a full disk or a damaged database: say which, not a traceback
        problem = storage_problem(exc, getattr(args, "index", "the index"))
        if problem is None:
            raise
        print(f"rag-qa: error: {problem}", file=sys.stderr)
        return 2
