"""Any question gets an answer, an abstention or one clear error line (CLI exit 2, HTTP 422):
never a traceback, a tokenizer panic or a 500. Questions are cut by the tokenizer's own count of
tokens, with its own count of special tokens (RoBERTa pairs have 4, BERT pairs 3)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import cli_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rag_qa.cli import main
from rag_qa.config import ReaderConfig, ServerConfig
from rag_qa.errors import ConfigError, QuestionError
from rag_qa.pipeline import RagQA
from rag_qa.reader import Reader, fit_question

PASSAGE = "The Harborview Tool Library opened in 2019. Le café 🔧 東京 sert une crème brûlée. Late returns cost two dollars a day."
ODD_QUESTIONS = [
    "?" * 255,
    "?" * 100_000,
    "why " * 25_000,
    "🔧" * 30_000,
    "東京" * 20_000,
    "!!!???...,,,",
    "a\x00b\x00c?",
    "\ud800 lone surrogate \udcff?",
    "\u202e RTL override مرحبا؟",
    "x",
]
EMPTY_QUESTIONS = ["", " ", "\t\n\r ", "\x00\x00", "\u200b\ufeff"]
any_text = st.text(st.characters(exclude_categories=()), max_size=3000)


@pytest.fixture(scope="module", params=["roberta", "bert"])
def reader(request: pytest.FixtureRequest) -> Reader:
    loaded = Reader(ReaderConfig(model=request.getfixturevalue(f"tiny_{request.param}"), max_seq_len=64, doc_stride=16, max_query_tokens=16))
    loaded.warm_up()
    return loaded


@given(question=any_text)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_reader_reads_any_question(reader: Reader, question: str) -> None:
    reading = reader.read([question], [[PASSAGE]])[0][0]
    assert all(PASSAGE[s.start : s.end] == s.text for s in reading.spans)


@pytest.mark.parametrize("question", ODD_QUESTIONS + EMPTY_QUESTIONS, ids=lambda q: repr(q[:12]) + f"x{len(q)}")
def test_reader_reads_odd_and_huge_questions(reader: Reader, question: str) -> None:
    reading = reader.read([question], [[PASSAGE]])[0][0]
    assert math.isfinite(reading.null_score) and reading.spans
    assert all(PASSAGE[s.start : s.end] == s.text for s in reading.spans)


def test_questions_are_cut_by_tokens_not_characters(tiny_roberta: str) -> None:
    tokenizer = Reader(ReaderConfig(model=tiny_roberta)).tokenizer
    for question in ("🔧" * 100, "Who runs the library? " * 40, "?" * 255):
        cut = fit_question(tokenizer, question, 64)
        assert question.startswith(cut) and 0 < len(tokenizer(cut, add_special_tokens=False)["input_ids"]) <= 64
    assert fit_question(tokenizer, "Who runs it?", 64) == "Who runs it?"


def test_windows_are_checked_with_the_tokenizers_own_special_tokens(tiny_roberta: str, tiny_bert: str) -> None:
    """384 - 64 - 4 = 316 for RoBERTa, 384 - 64 - 3 = 317 for BERT: a stride of 316 fits BERT only."""
    roberta = Reader(ReaderConfig(model=tiny_roberta, doc_stride=316))
    with pytest.raises(ConfigError, match=r"doc_stride must be in \(0, 316\)"):
        roberta.read(["why?"], [[PASSAGE]])
    bert = Reader(ReaderConfig(model=tiny_bert, doc_stride=316))
    assert bert.read(["why?"], [[PASSAGE]])[0][0].spans


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory, tiny_roberta: str) -> Path:
    folder = tmp_path_factory.mktemp("questions")
    (folder / "library.txt").write_text(PASSAGE, encoding="utf-8")
    with RagQA.open(folder / "index", reader=tiny_roberta) as qa:
        qa.index([folder / "library.txt"])
    return folder / "index"


def test_api_answers_or_abstains_and_refuses_empty_questions(index: Path, tiny_roberta: str) -> None:
    with RagQA.open(index, reader=tiny_roberta, read_only=True) as qa:
        for question in ODD_QUESTIONS:
            result = qa.ask(question)
            assert "\ud800" not in result.question and json.dumps(result.to_dict(), ensure_ascii=False).encode("utf-8")
        for question in EMPTY_QUESTIONS:
            with pytest.raises(QuestionError, match="empty"):
                qa.ask(question)


@pytest.mark.integration
@pytest.mark.parametrize("question", [q for q in ODD_QUESTIONS if len(q.encode("utf-8", "surrogatepass")) < 100_000] + EMPTY_QUESTIONS)
def test_cli_answers_or_says_one_clear_line(index: Path, tiny_roberta: str, question: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["ask", "--index", str(index), "--reader", tiny_roberta, "--json", "--", question])  # after "--": any text, "-:" too
    out, err = capsys.readouterr()
    if question.strip(" \t\n\r\x00\u200b\ufeff"):
        assert code == 0 and json.loads(out)["question"]
    else:
        assert code == 2 and err.count("\n") == 1 and err.startswith("rag-qa: error: the question is empty")


@pytest.mark.integration
def test_the_reported_panic_question_in_a_real_process(index: Path, tiny_roberta: str) -> None:
    """`rag-qa ask "$(python3 -c 'print("?"*255)')"` ended in a pyo3 PanicException traceback."""
    result = subprocess.run(
        [sys.executable, "-m", "rag_qa.cli", "ask", "?" * 255, "--index", str(index), "--reader", tiny_roberta, "--json"],
        capture_output=True, text=True, timeout=300, env=cli_env(),
    )  # fmt: skip
    assert result.returncode == 0 and "Traceback" not in result.stderr and "Panic" not in result.stderr
    assert json.loads(result.stdout)["question"] == "?" * 255


@pytest.mark.integration
@pytest.mark.parametrize("limit", [200_000])
def test_http_answers_200_or_422_never_500(index: Path, tiny_roberta: str, limit: int) -> None:
    httpx = pytest.importorskip("httpx", reason="the service tests need httpx (pip install -e '.[dev]')")
    from rag_qa.server.background import live_service

    config = ServerConfig(upload_dir=str(index.parent / "uploads"), max_question_chars=limit, max_json_kb=4000)  # escaped emoji: 12 bytes each
    with RagQA.open(index, reader=tiny_roberta, read_only=True) as qa, live_service(qa, config) as url:
        for question in ODD_QUESTIONS + EMPTY_QUESTIONS:
            body = json.dumps({"question": question})  # JSON escapes carry even lone surrogates
            response = httpx.post(f"{url}/ask", content=body, headers={"content-type": "application/json"}, timeout=120)
            expected = 422 if question in EMPTY_QUESTIONS else 200
            assert response.status_code == expected, (question[:20], response.text[:300])
            assert ("error" in response.json()) == (expected == 422)


@pytest.mark.integration
@given(question=st.text(st.characters(exclude_categories=()), min_size=1, max_size=2000))
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_cli_property_any_text_answers_or_refuses_in_one_line(index: Path, tiny_roberta: str, capsys: pytest.CaptureFixture[str], question: str) -> None:
    code = main(["ask", "--index", str(index), "--reader", tiny_roberta, "--json", "--", question])  # after "--": any text, "-:" too
    out, err = capsys.readouterr()
    assert (code == 0 and json.loads(out)) or (code == 2 and err.count("\n") == 1 and err.startswith("rag-qa: error: the question is empty"))


@pytest.mark.integration
def test_http_property_any_text_gets_200_or_422(index: Path, tiny_roberta: str) -> None:
    httpx = pytest.importorskip("httpx", reason="the service tests need httpx (pip install -e '.[dev]')")
    from rag_qa.server.background import live_service

    config = ServerConfig(upload_dir=str(index.parent / "uploads"), max_question_chars=5000)
    with RagQA.open(index, reader=tiny_roberta, read_only=True) as qa, live_service(qa, config) as url:

        @given(question=st.text(st.characters(exclude_categories=()), max_size=6000))
        @settings(max_examples=40, deadline=None)
        def check(question: str) -> None:
            response = httpx.post(f"{url}/ask", content=json.dumps({"question": question}), headers={"content-type": "application/json"}, timeout=120)
            assert response.status_code in (200, 422), (question[:20], response.text[:300])
            assert ("error" in response.json()) == (response.status_code == 422)

        check()


def test_haystack_reader_takes_any_query(tiny_roberta: str) -> None:
    from haystack import Document

    from rag_qa.integrations.haystack import SpanReader

    component = SpanReader(model=tiny_roberta, revision=None, top_k=3)
    for question in ODD_QUESTIONS + EMPTY_QUESTIONS:
        answers = component.run(query=question, documents=[Document(content=PASSAGE, score=0.4)])["answers"]
        assert sum(a.data is None for a in answers) == 1 and all(0 <= a.score <= 1 for a in answers)


@pytest.mark.parametrize("question", ["-:", "-v?", "--what"])
def test_cli_a_question_that_looks_like_an_option_gets_told_about_dashes(index: Path, capsys: pytest.CaptureFixture[str], question: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["ask", question, "--index", str(index)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert "--" in err.splitlines()[-1] and "rag-qa ask [OPTIONS] -- " in err, err


def test_cli_a_question_after_dashes_is_asked(index: Path, tiny_roberta: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "--index", str(index), "--reader", tiny_roberta, "--json", "--", "-: what?"]) == 0
    assert json.loads(capsys.readouterr().out)["question"] == "-: what?"
