"""The README runs: every command of its shell blocks that uses the sample documents (`data/`, the
`indexes/docs` index built from them) is run as written, in a copy of the repository's layout,
and its output is checked for what the README says it shows. A PostgreSQL URL runs against the
session's server and the `MODEL` placeholder is the offline reader; `serve` (a server) and lines
with other placeholders or files that are not in the repository are listed as not run."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, cli_env, needs_shared

pytestmark = pytest.mark.integration
READER = REPO.parent / "shared" / "models" / "minilm-squad2-reader-v2"
README_PG_URL = "postgresql://rag@db.internal/rag#handbook"
OUTPUT_OPTIONS = {"--report", "--predictions", "--na-probs", "--index-dir", "--out"}


def readme_commands() -> list[str]:
    """The `rag-qa` lines of README.md's bash blocks, continuation lines joined, comments dropped."""
    commands, block = [], None
    for line in (REPO / "README.md").read_text("utf-8").splitlines():
        if line.startswith("```"):
            block = [] if line.strip() == "```bash" and block is None else None
            continue
        if block is not None:
            if commands and commands[-1].endswith("\\"):
                commands[-1] = commands[-1][:-1] + " " + line.strip()
            elif line.startswith("rag-qa "):
                commands.append(line)
    return [shlex.join(shlex.split(c, comments=True)) for c in commands]


def runnable(command: str, sandbox: Path, sample_indexes: set[str]) -> bool:
    """Uses the sample documents (or an index of them), needs no server of its own, and names no
    file the repository lacks."""
    words = shlex.split(command)
    if not any(w.startswith("data") or w in sample_indexes for w in words) or words[1] == "serve":
        return False
    placeholders = [w for w in words if re.fullmatch(r"[A-Z][A-Z_]{2,}", w) and w != "MODEL"]
    outputs = {after for flag, after in zip(words, words[1:]) if flag in OUTPUT_OPTIONS}
    paths = [w for w in words[2:] if ("/" in w or re.search(r"\.(json|jsonl|pdf|txt|md|html)$", w)) and not w.startswith("-")]
    inputs = [p for p in paths if p not in outputs and p not in sample_indexes and "://" not in p]
    return not placeholders and all((sandbox / p).exists() for p in inputs)


def test_every_readme_command_on_the_sample_documents_runs_as_shown(tmp_path: Path, postgres_url: str) -> None:
    needs_shared(READER)
    sandbox = tmp_path / "work" / "rag-qa"  # ../shared from here is the real shared folder, as in a checkout
    shutil.copytree(REPO / "data", sandbox / "data")
    (sandbox / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "sample_questions.txt", sandbox / "scripts")
    (tmp_path / "work" / "shared").symlink_to(REPO.parent / "shared")
    env = cli_env() | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env["RAG_QA_READER"] = "../shared/models/minilm-squad2-reader-v2"  # what the README tells an offline machine to set
    ran, outputs = [], {}
    for command in readme_commands():
        line = command.replace(README_PG_URL, postgres_url).replace(" MODEL", f" {READER}")
        if not runnable(line, sandbox, {"indexes/docs", postgres_url}):
            continue
        done = subprocess.run(line, shell=True, cwd=sandbox, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{command}\n{done.stderr[-2000:]}"
        assert "no passages found" not in done.stdout and "Traceback" not in done.stderr, command
        ran.append(command)
        outputs[command] = done.stdout
    said = {c.split()[1]: outputs[c] for c in ran}  # the last output of each command
    searched = next(outputs[c] for c in ran if c.startswith("rag-qa search"))
    assert searched.startswith("1. [") and "data/safety-guide.pdf, page 3" in searched  # the ladder angle passage
    battery = next(outputs[c] for c in ran if "drill battery" in c)
    assert "forty minutes" in battery  # the answer, with its source and page
    batch = [json.loads(line) for line in next(outputs[c] for c in ran if "--questions" in c).splitlines()]
    assert len(batch) == len([q for q in (REPO / "scripts" / "sample_questions.txt").read_text().splitlines() if q.strip()])
    assert "Harborview Tool Library" in next(outputs[c] for c in ran if c.startswith("rag-qa show data/handbook.md"))
    assert json.loads(next(outputs[c] for c in ran if "--page 2" in c))["page"] == 2
    assert said["check"].startswith("consistent") and "removed" in said["delete"]
    assert "seven days" in next(outputs[c] for c in ran if "standard loan period" in c)  # the PostgreSQL block
    assert {c.split()[1] for c in ran} >= {"index", "search", "ask", "info", "show", "check", "delete", "keys"}
