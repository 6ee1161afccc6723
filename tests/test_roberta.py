"""The default reader's tokenizer family, end to end. Every entry point that reads (the reader,
`eval squad`, `train`, `ask`, `serve`, the Haystack component) runs with the tiny random RoBERTa
(byte-level BPE, `<s> q </s></s> c </s>`, no token_type_ids, offsets after `Ġ`, empty-width
tokens) and with the MiniLM reader (WordPiece), on text with accents, CJK and emoji: every answer
quotes the document at its offsets and has no whitespace at its edges."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag_qa.cli import main
from rag_qa.config import ReaderConfig, ServerConfig
from rag_qa.pipeline import RagQA
from rag_qa.reader import Reader
from helpers import READER

pytestmark = pytest.mark.integration  # trains, serves and loads the real MiniLM reader

CONTEXTS = [
    "Le café  de la rue Müller ouvre à 7 h.\u00a0La crème brûlée coûte 5 €. Noël Ørsted le dirige depuis 2019.",
    "東京の図書館は 1972年に開館しました。 館長は山田さんです。毎週土曜日に 🔧 修理カフェ 🎉 があります。",
    "The 🔧 repair café meets on the last Saturday.\r\nBring a broken toaster ☕ or a bike 🚲; volunteers fix it for free.",
]
QUESTIONS = ["Qui dirige le café ?", "館長は誰ですか？", "When does the repair café meet?", "What does the crème brûlée cost?"]


@pytest.fixture(params=["roberta", "minilm"])
def model(request: pytest.FixtureRequest) -> str:
    if request.param == "roberta":
        return request.getfixturevalue("tiny_roberta")
    if not READER.exists():
        pytest.skip(f"{READER} is not available (the ../shared folder holds the offline reader)")
    return str(READER)


def squad_file(path: Path) -> Path:
    paragraphs = []
    for i, context in enumerate(CONTEXTS):
        answer = context.split()[2]
        qas = [
            {"id": f"a{i}", "question": QUESTIONS[i], "answers": [{"text": answer, "answer_start": context.index(answer)}], "is_impossible": False},
            {"id": f"n{i}", "question": "Who is the mayor of Mars?", "answers": [], "is_impossible": True},
        ]
        paragraphs.append({"context": context, "qas": qas})
    path.write_text(json.dumps({"version": "v2.0", "data": [{"title": "Mixed", "paragraphs": paragraphs}]}, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.fixture
def documents(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    for i, context in enumerate(CONTEXTS):
        (folder / f"doc{i}.txt").write_bytes((context + "\n\n" + context[::-1]).encode("utf-8"))
    return folder


def assert_quotes(text: str, start: int, end: int, quote: str) -> None:
    assert text[start:end] == quote and quote == quote.strip() and quote


def test_reader_spans_quote_the_passage(model: str) -> None:
    reader = Reader(ReaderConfig(model=model, max_seq_len=48, doc_stride=16, max_query_tokens=16))
    for reading, context in zip(reader.read(QUESTIONS[:3], [[c] for c in CONTEXTS])[0:3], CONTEXTS):
        for span in reading[0].spans:
            assert_quotes(context, span.start, span.end, span.text)


def test_eval_squad_and_train_run(model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = squad_file(tmp_path / "mixed.json")
    predictions = tmp_path / "pred.json"
    assert main(["eval", "squad", str(data), "--reader", model, "--tau", "1000", "--predictions", str(predictions), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["total"] == 6 and metrics["HasAns_total"] == 3
    for question_id, predicted in json.loads(predictions.read_text()).items():
        context = CONTEXTS[int(question_id[1])]
        assert predicted and predicted in context and predicted == predicted.strip()  # tau 1000: always answers
    out = tmp_path / "trained"
    assert main(["train", "--base", model, "--train", str(data), "--out", str(out), "--max-steps", "2", "--batch-size", "2",
                 "--max-seq-len", "96", "--doc-stride", "16", "--json"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)["steps"] == 2
    reading = Reader(ReaderConfig(model=str(out), max_seq_len=64, doc_stride=16, max_query_tokens=16)).read([QUESTIONS[0]], [[CONTEXTS[0]]])[0][0]
    assert all(CONTEXTS[0][s.start : s.end] == s.text for s in reading.spans)


def test_ask_serve_and_haystack_quote_the_source(model: str, documents: Path, tmp_path: Path) -> None:
    httpx = pytest.importorskip("httpx", reason="the service tests need httpx (pip install -e '.[dev]')")
    from haystack import Document as HaystackDocument

    from rag_qa.integrations.haystack import SpanReader
    from rag_qa.server.background import live_service

    reader = ReaderConfig(model=model, max_seq_len=64, doc_stride=16, max_query_tokens=16)
    with RagQA.open(tmp_path / "index", reader=reader) as qa:
        qa.index([documents])
        for result in qa.ask_many(QUESTIONS, top_k=3):
            for answer in result.answers:
                assert_quotes(qa.show(answer.source).text, answer.start, answer.end, answer.text)
                assert_quotes(Path(answer.source).read_bytes().decode("utf-8"), answer.start, answer.end, answer.text)
        with live_service(qa, ServerConfig(upload_dir=str(tmp_path / "uploads"))) as url:
            served = httpx.post(f"{url}/ask", json={"question": QUESTIONS[2], "top_k": 3}, timeout=120).json()
            for answer in served["answers"] or [served["best_guess"]]:
                shown = httpx.get(f"{url}/documents/{answer['source']}/text", timeout=60).json()
                assert_quotes(shown["text"], answer["start"], answer["end"], answer["text"])
    component = SpanReader(model=model, revision=None, top_k=3, tau=1000.0)
    component.reader = Reader(reader)
    docs = [HaystackDocument(content=c, score=0.5) for c in CONTEXTS]
    answers = component.run(query=QUESTIONS[1], documents=docs)["answers"]
    for answer in answers:
        if answer.data is not None:
            span = answer.document_offset
            assert_quotes(answer.document.content, span.start, span.end, answer.data)
