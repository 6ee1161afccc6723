"""End to end through the real `rag-qa` command: a folder of real multi-page PDFs (SQuAD articles),
the sample documents and broken files; every broken file is reported, every good one indexed, and
search returns the right passages with correct pages and offsets."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from broken_files import make_broken_files
from helpers import REPO, SAMPLE_FILES, SQUAD, approx_floats, cli_env, needs_shared
from squad_pdfs import build_corpus, page_of

from rag_qa import RagQA
from rag_qa.config import IngestConfig
from rag_qa.ingest.loaders import load_document
from rag_qa.ingest.pdf import GuardedPdfReader

pytestmark = pytest.mark.integration


def rag_qa(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "rag_qa.cli", *args], capture_output=True, text=True, timeout=600, env=cli_env())
    if check and result.returncode != 0:
        raise AssertionError(f"rag-qa {args} exited {result.returncode}: {result.stderr[-2000:]}")
    return result


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    needs_shared(SQUAD / "dev-eval.json")
    folder = tmp_path_factory.mktemp("corpus")
    articles = build_corpus(SQUAD / "dev-eval.json", folder / "squad")
    shutil.copytree(REPO / "data", folder / "samples")
    broken = make_broken_files(folder / "broken")
    (folder / "broken" / "good.pdf").unlink()
    index = folder / "index"
    report = json.loads(rag_qa("index", str(folder), "--index", str(index), "--json").stdout)
    return folder, index, articles, broken, report


def test_index_reports_broken_files_and_indexes_the_rest(corpus):
    folder, index, articles, broken, report = corpus
    skipped = {Path(s["path"]).name: s["reason"] for s in report["files_skipped"]}
    assert set(skipped) == set(broken)
    for name, word in broken.items():
        assert word.lower() in skipped[name].lower()
    assert report["files_indexed"] == len(articles) + SAMPLE_FILES
    assert report["pages"] == sum(page_of(len(a.paragraphs) - 1) for a, _ in articles) + 6 + 3 + 1  # the sample guide's pages, the deck's slides, the scanned notice
    assert report["ocr_pages"] == 1 and report["warnings"] == []
    assert report["passages_added"] == report["passages_total"] > 100
    info = json.loads(rag_qa("info", "--index", str(index), "--json").stdout)
    assert info["files"] == report["files_indexed"] and info["passages"] == report["passages_total"]
    assert info["embedding_model"] == "sentence-transformers/all-MiniLM-L6-v2" and info["index_type"] == "flat"
    again = json.loads(rag_qa("index", str(folder), "--index", str(index), "--json").stdout)
    assert again["files_unchanged"] == report["files_indexed"] and again["passages_added"] == 0
    assert json.loads(rag_qa("check", "--index", str(index), "--json").stdout)["consistent"]


def test_search_finds_answers_on_the_right_page_with_exact_offsets(corpus):
    folder, index, articles, _, _ = corpus
    documents = {}
    with GuardedPdfReader() as reader:
        for _, path in articles:
            documents[str(path.resolve())] = load_document(str(path), IngestConfig(), reader)
    questions = [(a, q) for a, _ in articles for q in a.questions if not q["is_impossible"]][::4]
    found = 0
    with RagQA.open(index, read_only=True) as rag:
        results = [[h.to_dict() for h in rag.search(q["question"], top_k=5)] for _, q in questions]
    for (_, question), hits in zip(questions, results):
        answer = question["answers"][0]["text"]
        for hit in hits:
            document = documents.get(hit["source"])
            if document is None or answer not in hit["text"]:
                continue
            assert document.text[hit["start"] : hit["end"]] == hit["text"]
            assert hit["page"] == document.page_at(hit["start"])
            answer_at = hit["start"] + hit["text"].index(answer)
            if document.page_at(answer_at) == page_of(question["paragraph"]):
                found += 1
                break
    print(f"answer passage with the right page in the top 5: {found}/{len(questions)}")
    assert found >= 0.6 * len(questions)
    cli = json.loads(rag_qa("search", questions[0][1]["question"], "--index", str(index), "--top-k", "5", "--json").stdout)
    # the same k (hybrid fuses each list's top 2k, so k changes the fused order); the CLI embeds on
    # ONNX Runtime, this process on PyTorch: scores agree to about 1e-6
    assert cli["results"] == approx_floats(results[0], rel=1e-4, abs_=1e-5)


def test_search_takes_the_retrieval_modes_and_source_filters_of_ask(corpus):
    folder, index, articles, _, _ = corpus
    source = str(articles[0][1].resolve())
    query = articles[0][0].questions[0]["question"]
    with RagQA.open(index, read_only=True) as rag:
        for mode in ("dense", "bm25", "hybrid"):
            hits = rag.search(query, top_k=4, sources=[source], mode=mode)
            assert len(hits) == 4 and {h.passage.source for h in hits} == {source}, mode
            assert [h.passage.id for h in hits] == [h.passage.id for h in rag.retriever.retrieve([query], 4, [source], mode)[0]]
        bm25 = [h.to_dict() for h in rag.search(query, top_k=4, sources=[source], mode="bm25")]
    # a filtered search ranks as an index of only those documents would (tests/test_groups.py checks that)
    cli = rag_qa("search", query, "--index", str(index), "--top-k", "4", "--retrieval", "bm25", "--source", source, "--json")
    assert json.loads(cli.stdout)["results"] == bm25
    assert rag_qa("search", " ", "--index", str(index), check=False).returncode == 2


def test_delete_and_check(corpus, tmp_path):
    folder, index, articles, _, report = corpus
    copy = tmp_path / "index"
    shutil.copytree(index, copy)
    victim = str(articles[0][1])
    removed = json.loads(rag_qa("delete", victim, "--index", str(copy), "--json").stdout)
    assert removed["passages_removed"] > 0
    assert removed["passages_total"] == report["passages_total"] - removed["passages_removed"]
    assert rag_qa("delete", victim, "--index", str(copy), check=False).returncode == 1
    results = json.loads(rag_qa("search", articles[0][0].title, "--index", str(copy), "--top-k", "20", "--json").stdout)
    assert all(r["source"] != str(Path(victim).resolve()) for r in results["results"])
    (copy / "passages.sqlite3").write_bytes(b"garbage" * 1000)
    failed = rag_qa("check", "--index", str(copy), check=False)
    assert failed.returncode == 1 and "not a readable" in failed.stdout
