"""One name for a document: a stored name, a relative, absolute or `./` path, a folder and a glob
all name the same documents, through the CLI, Python, HTTP and Haystack; a name that matches
nothing is an error (exit 2, 404, UnknownSourceError), never an empty result."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, cli_env
from service_process import start_service, stop

from rag_qa.integrations.haystack import PassageRetriever
from rag_qa.naming import UnknownSourceError, display_name, glob_regex, resolve_sources
from rag_qa.pipeline import RagQA

httpx = pytest.importorskip("httpx", reason="the service tests need httpx (pip install -e '.[dev]')")


def test_each_form_resolves_to_stored_names(tmp_path: Path) -> None:
    base = tmp_path.resolve()
    stored = [str(base / p) for p in ("kb/hr/pay.pdf", "kb/hr/leave.md", "kb/legal/nda.pdf", "kb/legal/old/nda.pdf", "notes.txt")] + ["squad:dev/0/1 (Normans)"]
    forms = {
        "kb/hr/pay.pdf": ["kb/hr/pay.pdf"],
        "./kb/hr/../hr/pay.pdf": ["kb/hr/pay.pdf"],
        str(base / "notes.txt"): ["notes.txt"],
        "kb/hr": ["kb/hr/pay.pdf", "kb/hr/leave.md"],
        "kb/": ["kb/hr/pay.pdf", "kb/hr/leave.md", "kb/legal/nda.pdf", "kb/legal/old/nda.pdf"],
        "kb/*/*.pdf": ["kb/hr/pay.pdf", "kb/legal/nda.pdf"],
        "kb/**/*.pdf": ["kb/hr/pay.pdf", "kb/legal/nda.pdf", "kb/legal/old/nda.pdf"],
        "**/nda.pdf": ["kb/legal/nda.pdf", "kb/legal/old/nda.pdf"],
        "kb/hr/[lp]*": ["kb/hr/pay.pdf", "kb/hr/leave.md"],
        "kb/hr/[!l]*": ["kb/hr/pay.pdf"],
        "squad:dev/0/1 (Normans)": ["squad:dev/0/1 (Normans)"],
    }
    for form, expected in forms.items():
        named = resolve_sources([form], stored, base)
        assert named == [s for s in stored if s in {str(base / e) for e in expected} | set(expected)], form
    assert resolve_sources(["kb/hr", "kb/hr/pay.pdf"], stored, base) == stored[:2]  # each name once, in stored order
    with pytest.raises(UnknownSourceError, match="'kb/hr/pay.docx', 'k\\*/x'"):
        resolve_sources(["kb/hr/pay.docx", "k*/x", "notes.txt"], stored, base)
    with pytest.raises(UnknownSourceError):
        resolve_sources(["kb/h"], stored, base)  # a prefix of a folder's name is not the folder
    assert glob_regex("/a/*.pdf").fullmatch("/a/b/c.pdf") is None and glob_regex("/a/**").fullmatch("/a/b/c.pdf")
    assert display_name(str(base / "kb/hr/pay.pdf"), base) == "kb/hr/pay.pdf" and display_name("/elsewhere/x.pdf", base) == "/elsewhere/x.pdf"


def rag_qa(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "rag_qa.cli", *args], capture_output=True, text=True, timeout=300, env=cli_env(), cwd=REPO)
    assert not check or result.returncode == 0, result.stderr[-2000:]
    return result


@pytest.mark.integration
def test_every_entry_point_takes_every_form_of_a_name(tmp_path: Path, tiny_bert: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # relative names are relative to where a command (or the service) runs
    index = str(tmp_path / "index")
    rag_qa("index", "data", "--index", index, "--quiet")
    pdf = str(REPO / "data" / "safety-guide.pdf")
    query, forms = "extension ladder angle", ["data/safety-guide.pdf", "./data/safety-guide.pdf", pdf, "data/safety-*.pdf", "data/**/safety-*"]
    with RagQA.open(index, read_only=True) as qa:
        hits = qa.search(query, 3, sources=[pdf])
        expected, places = [h.passage.id for h in hits], [(h.passage.source, h.passage.char_start) for h in hits]
        assert len(expected) == 3
        for form in forms:
            assert [h.passage.id for h in qa.search(query, 3, sources=[form])] == expected, form
        assert {h.passage.source for h in qa.search(query, 50, sources=["data"])} == {str(p) for p in (REPO / "data").iterdir()}
        with pytest.raises(UnknownSourceError):
            qa.ask("At what angle?", sources=["data/safety-guide.pdf.bak"])  # not a confident abstention
    for form in forms:
        found = PassageRetriever(index, top_k=3, sources=[form]).run(query)["documents"]
        assert [d.id for d in found] == expected, form
        cli = json.loads(rag_qa("search", query, "--index", index, "--top-k", "3", "--source", form, "--json").stdout)
        assert [(r["source"], r["start"]) for r in cli["results"]] == places, form
    missing = rag_qa("ask", "At what angle?", "--index", index, "--source", "data/nothing.pdf", check=False)
    assert missing.returncode == 2 and "'data/nothing.pdf'" in missing.stderr and "Traceback" not in missing.stderr
    assert "data/safety-guide.pdf, page 3" in rag_qa("search", query, "--index", index, "--source", "data/safety-guide.pdf").stdout  # the short name
    piped = subprocess.run(f"{sys.executable} -m rag_qa.cli show {pdf} --index {index} --json | head -c 100", shell=True, capture_output=True, text=True, env=cli_env())
    assert piped.stdout.startswith('{"source"') and "Traceback" not in piped.stderr and "BrokenPipe" not in piped.stderr
    process, url = start_service(index, tiny_bert, "--upload-dir", str(tmp_path / "uploads"))
    try:
        for form in forms:
            body = {"query": query, "top_k": 3, "filters": {"sources": [form]}}
            assert [(r["source"], r["start"]) for r in httpx.post(f"{url}/search", json=body).json()["results"]] == places, form
        assert httpx.get(f"{url}/documents/data/safety-guide.pdf/text", params={"page": 3}).json()["source"] == pdf
        unknown = httpx.post(f"{url}/ask", json={"question": "At what angle?", "filters": {"sources": ["data/*.docx"]}}, timeout=60)
        assert unknown.status_code == 404 and "data/*.docx" in unknown.json()["error"]
    finally:
        stop(process)
