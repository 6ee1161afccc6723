"""Sync cost: `rag-qa index FOLDER --prune` over a folder of 1,000 text files (about 2 kB each,
SQuAD distractor paragraphs), as whole processes (cold start included), after a first full index:

- unchanged: nothing to read or embed (every file hashed and looked up);
- 1% changed: 10 files edited, plus 5 moved to another folder and 5 deleted (moves are re-pointed,
  not re-embedded);

each `--repeat` times on a fresh copy, reporting min/median seconds and what the report says was
embedded. Usage: python benchmarks/sync.py [--files 1000] [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, SQUAD, require_shared, table


def make_folder(root: Path, files: int) -> None:
    lines = (SQUAD / "distractor-passages.jsonl").read_text("utf-8").splitlines()
    for i in range(files):
        folder = root / f"part{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"doc{i:04}.txt").write_text(json.loads(lines[i % len(lines)])["text"] + f"\n\nDocument {i}.\n")


def rag_qa(*args: str) -> tuple[float, dict]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "rag_qa.cli", *args, "--json", "--quiet"], capture_output=True, text=True, check=True)
    return time.perf_counter() - started, json.loads(done.stdout.splitlines()[-1])


def change_one_percent(root: Path, files: int) -> None:
    step = files // 10
    for i in range(0, files, step):  # 10 edits
        path = root / f"part{i % 10}" / f"doc{i:04}.txt"
        path.write_text(path.read_text() + "An edited line.\n")
    for i in range(1, 6):  # 5 moves
        os.replace(root / f"part{i % 10}" / f"doc{i:04}.txt", root / "part0" / f"moved{i:04}.txt")
    for i in range(6, 11):  # 5 deletions
        (root / f"part{i % 10}" / f"doc{i:04}.txt").unlink()


def run(files: int, repeat: int) -> list[dict]:
    rows: dict[str, list[tuple[float, dict]]] = {"unchanged": [], "1% changed": []}
    with tempfile.TemporaryDirectory(prefix="rag-qa-sync-") as scratch:
        base, base_index = Path(scratch) / "base", Path(scratch) / "base-index"
        make_folder(base, files)
        seconds, first = rag_qa("index", str(base), "--index", str(base_index))
        print(f"first index: {seconds:.1f} s, {first['passages_added']} passages", file=sys.stderr)
        for r in range(repeat):
            root, index = Path(scratch) / f"kb{r}", Path(scratch) / f"index{r}"
            shutil.copytree(base, root)
            shutil.copytree(base_index, index)
            rag_qa("index", str(root), "--index", str(index), "--prune")  # the copy's own names (moves: the whole folder)
            rows["unchanged"].append(rag_qa("index", str(root), "--index", str(index), "--prune"))
            change_one_percent(root, files)
            rows["1% changed"].append(rag_qa("index", str(root), "--index", str(index), "--prune"))
    return [
        {
            "case": case,
            "files": files,
            "min_s": min(s for s, _ in runs),
            "median_s": statistics.median(s for s, _ in runs),
            "indexed": runs[0][1]["files_indexed"],
            "moved": runs[0][1]["files_moved"],
            "removed": runs[0][1]["files_removed"],
            "unchanged": runs[0][1]["files_unchanged"],
            "passages_embedded": runs[0][1]["passages_added"],
        }
        for case, runs in rows.items()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=1000, help="files in the folder (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each case (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    require_shared()
    os.chdir(REPO)
    results = run(args.files, args.repeat)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        headers = ["case", "files", "min s", "median s", "indexed", "moved", "removed", "unchanged", "passages embedded"]
        print(table(headers, [[r[k] for k in ("case", "files", "min_s", "median_s", "indexed", "moved", "removed", "unchanged", "passages_embedded")] for r in results]))


if __name__ == "__main__":
    main()
