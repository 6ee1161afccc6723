"""Glob filters at their worst (issue 34, item 3): the regular expression rag-qa matched globs with
before (it backtracks exponentially) against `rag_qa.globs.Glob`, side by side, on

- the issue's filter `/` + `**?` × n + `Z` for n = 9..20 over a 3-document index's names;
- `/**/` + `*a` × 8 + `Z` over one long name of `a`s (1,000 and 4,000 characters);
- 100,000 stored names: two everyday globs and the issue's filter at n = 20 (ending with `f`);
- the new matcher's own worst case: `/*a` + `?` x 60 over 10,000 random names of 190 `a`/`b`
  (every name leads to positions not met before, so nothing remembered helps).

Each old-regex run happens in a child process that is killed past `--budget` seconds (it holds the
GIL and cannot be interrupted); once one is, the larger n of that case are skipped. Times are the
best of `--repeat` runs (matching only; compiling included). Where both finish, the matches must
agree (the script stops otherwise). Usage: python benchmarks/globs.py [--budget 10] [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import sys
import time

from common import table

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from test_naming import old_glob_regex  # noqa: E402 (the reference the tests keep: the regex matched globs with before)

from rag_qa.globs import Glob, GlobTooComplexError

# a 3-document index's names; one ends with the glob's last character, so the matcher reads it whole
ISSUE_NAMES = ["/home/ana/kb/hr/salaries-2026.txt", "/home/ana/kb/legal/contract-draft.pdf", "/home/ana/kb/hr/2026/salaries-draft/Z"]


def match_old(pattern: str, names: list[str]) -> list[str]:
    regex = old_glob_regex(pattern)
    return [n for n in names if regex.fullmatch(n)]


def match_new(pattern: str, names: list[str]) -> list[str]:
    glob = Glob(pattern)
    return [n for n in names if glob.matches(n)]


def best_of(repeat: int, match, pattern: str, names: list[str]) -> tuple[float, list[str] | None]:
    """The best time of `repeat` runs and what matched (None: the glob was refused past its work budget)."""
    times, found = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        try:
            found = match(pattern, names)
        except GlobTooComplexError:
            found = None
        times.append(time.perf_counter() - started)
    return min(times), found


def _old_in_child(pattern: str, names: list[str], repeat: int, pipe) -> None:
    for _ in range(repeat):
        pipe.send(best_of(1, match_old, pattern, names))


def best_of_old(repeat: int, pattern: str, names: list[str], budget: float) -> tuple[float, list[str]] | None:
    """The old regex's best time, or None when a run did not finish within `budget` seconds."""
    context = multiprocessing.get_context("fork")  # the names reach the child without pickling
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_old_in_child, args=(pattern, names, repeat, send))
    child.start()
    runs = []
    while len(runs) < repeat and receive.poll(budget):
        runs.append(receive.recv())
    child.kill()
    child.join()
    return min(runs, key=lambda run: run[0]) if len(runs) == repeat else None


def many_names(count: int) -> list[str]:
    return [f"/srv/kb/dept{i % 50}/year{2000 + i % 25}/doc{i}.{('pdf', 'md', 'txt')[i % 3]}" for i in range(count)]


def cases() -> list[tuple[str, str, str, list[str]]]:
    """(group, label, pattern, names); within a group, cases grow harder."""
    found = [("issue", f"/ + **? x {n} + Z", "/" + "**?" * n + "Z", ISSUE_NAMES) for n in range(9, 21)]
    found += [("long name", f"/**/ + *a x 8 + Z, a {size:,}-character name", "/**/" + "*a" * 8 + "Z", ["/" + "a" * size + "/baZ"]) for size in (1000, 4000)]
    names = many_names(100_000)
    found += [
        ("100k names", "/srv/kb/**/*.pdf", "/srv/kb/**/*.pdf", names),
        ("100k names", "/srv/kb/dept7/*/doc1*.md", "/srv/kb/dept7/*/doc1*.md", names),
        ("100k names", "/ + **? x 20 + f", "/" + "**?" * 20 + "f", names),
    ]
    random.seed(0)  # the new matcher's own worst: positions that never repeat, so no step is remembered
    letters = ["/" + "".join(random.choice("ab") for _ in range(190)) for _ in range(10_000)]
    found.append(("fresh steps", "/*a + ? x 60, 10k random 190-letter names", "/*a" + "?" * 60, letters))
    return found


def run(budget: float, repeat: int) -> list[dict]:
    rows, given_up = [], set()
    for group, label, pattern, names in cases():
        new_seconds, new_found = best_of(repeat, match_new, pattern, names)
        old = None if group in given_up else best_of_old(repeat, pattern, names, budget)
        if old is None:
            given_up.add(group)
        elif new_found is not None and old[1] != new_found:
            sys.exit(f"{label}: the matchers disagree ({len(old[1])} against {len(new_found)} names)")
        matches = len(new_found) if new_found is not None else len(old[1]) if old else None
        rows.append({"case": label, "names": len(names), "matches": matches, "old_s": old[0] if old else None, "new_s": new_seconds, "refused": new_found is None})
        print(f"{label}: old {'> budget' if old is None else f'{old[0]:.4f} s'}, new {new_seconds:.4f} s{' (refused)' if new_found is None else ''}", file=sys.stderr)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=10.0, help="seconds an old-regex run may take before it is stopped")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = run(args.budget, args.repeat)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    stopped = f"> {args.budget:g} s (stopped)"
    print(table(["case", "names", "matches", "old regex s", "new matcher s"],
                [[r["case"], r["names"], r["matches"], stopped if r["old_s"] is None else r["old_s"], f"{r['new_s']:.4g} (refused)" if r["refused"] else r["new_s"]] for r in rows]))  # fmt: skip


if __name__ == "__main__":
    main()
