"""The quickstart notebook runs top to bottom with the offline models."""

from __future__ import annotations

import os
import re
import shutil
import sys

import pytest
from helpers import READER, REPO, SAMPLE_FILES, SQUAD, needs_shared

pytestmark = pytest.mark.integration


def test_quickstart_notebook_executes(tmp_path, monkeypatch):
    """Runs in a temporary folder with its own index; asserts on what the cells print."""
    needs_shared(READER)
    import nbformat
    from nbclient import NotebookClient

    index = tmp_path / "index"
    shutil.copytree(REPO / "data", tmp_path / "data")  # the notebook indexes ./data of the folder it runs in
    monkeypatch.setenv("RAG_QA_READER", str(READER))
    monkeypatch.setenv("RAG_QA_INDEX", str(index))
    # the kernelspec runs `python`: make that this interpreter, with rag-qa installed
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    monkeypatch.delenv("RAG_QA_RUNTIME")  # the kernel runs rag-qa as a user does (runtime auto)
    notebook = nbformat.read(REPO / "notebooks" / "quickstart.ipynb", as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert not any(o.get("output_type") == "error" for cell in notebook.cells for o in cell.get("outputs", []))
    outputs = "".join(o.get("text", "") for cell in notebook.cells for o in cell.get("outputs", []))
    report = next(o["data"]["text/plain"] for o in notebook.cells[1]["outputs"] if "data" in o)
    assert f"'files_indexed': {SAMPLE_FILES}" in report and "'files_skipped': []" in report
    assert "about forty minutes" in outputs and "safety-guide.pdf page 2" in outputs
    assert "[[about forty minutes]]" in outputs and "offsets index the source: True" in outputs
    assert "abstained: True" in outputs
    assert "What is the capital of France? -> no answer" in outputs
    assert (index / "manifest.json").is_file()  # the notebook wrote to the folder it was given


def test_evaluation_notebook_draws_the_pictures(tmp_path, monkeypatch):
    """Runs on every 8th shared dev-eval question in a temporary folder; asserts on the numbers it
    prints, the inline pictures and the report folder it writes."""
    needs_shared(READER)
    needs_shared(SQUAD / "dev-eval.json")
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("RAG_QA_READER", str(READER))
    monkeypatch.setenv("RAG_QA_SQUAD", str(SQUAD / "dev-eval.json"))
    monkeypatch.setenv("RAG_QA_EVERY", "8")
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    monkeypatch.delenv("RAG_QA_RUNTIME")  # the kernel runs rag-qa as a user does (runtime auto)
    notebook = nbformat.read(REPO / "notebooks" / "evaluation.ipynb", as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in notebook.cells for o in cell.get("outputs", [])]
    assert not any(o.get("output_type") == "error" for o in outputs)
    text = "".join(o.get("text", "") for o in outputs)
    assert "109 questions from dev-eval.json" in text
    f1 = float(re.search(r"^f1 +([\d.]+)$", text, re.M).group(1))
    assert 30 < f1 < 80  # a real reader on real questions, not a constant
    pictures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(pictures) == 2, "the reliability diagram and the risk-coverage curve are shown inline"
    written = sorted(p.name for p in (tmp_path / "evaluation-report").iterdir())
    assert written == ["index.html", "metrics.json", "reliability.png", "risk-coverage.png"]
    assert str(written) in text
