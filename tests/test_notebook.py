"""The quickstart notebook runs top to bottom with the offline models."""

from __future__ import annotations

import os
import sys

import pytest
from conftest import READER, REPO, needs_shared

pytestmark = pytest.mark.integration


def test_quickstart_notebook_executes(tmp_path, monkeypatch):
    needs_shared(READER)
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("RAG_QA_READER", str(READER))
    # the kernelspec runs `python`: make that this interpreter, with rag-qa installed
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    notebook = nbformat.read(REPO / "notebooks" / "quickstart.ipynb", as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(REPO / "notebooks")}}).execute()
    outputs = "".join(o.get("text", "") for cell in notebook.cells for o in cell.get("outputs", []))
    assert "about forty minutes" in outputs and "page 2" in outputs
    assert "abstained: True" in outputs
    assert not any(o.get("output_type") == "error" for cell in notebook.cells for o in cell.get("outputs", []))
    assert os.path.isdir(REPO / "indexes" / "quickstart")
