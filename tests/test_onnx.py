"""The onnx runtime gives the same answers as PyTorch: start/end logits within 1e-3 on every
window, the same decision on dev-eval questions, embeddings within 1e-4 cosine with the same
top-5 passages; and its graph cache is keyed, reused and written atomically."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from helpers import READER, SQUAD, needs_shared

from rag_qa.config import EmbedderConfig, ReaderConfig, ScoringConfig
from rag_qa.embed import Embedder
from rag_qa.errors import ConfigError
from rag_qa.onnx_models import resolved_runtime
from rag_qa.reader import Reader

pytest.importorskip("onnxruntime", reason="the onnx runtime needs the onnx extra (pip install -e '.[onnx]')")
pytestmark = pytest.mark.integration

SAMPLE = 200  # dev-eval questions compared between the runtimes


@pytest.fixture(scope="module")
def dev_sample():
    needs_shared(SQUAD / "dev-eval.json")
    from rag_qa.squad import load_squad

    return load_squad(SQUAD / "dev-eval.json")[:SAMPLE]


@pytest.fixture(scope="module")
def readers():
    needs_shared(READER)
    return Reader(ReaderConfig(model=str(READER), runtime="torch")), Reader(ReaderConfig(model=str(READER), runtime="onnx"))


def test_onnx_logits_match_torch_on_every_window(readers, dev_sample) -> None:
    torch_reader, onnx_reader = readers
    features = torch_reader._features([q.question for q in dev_sample], [q.context for q in dev_sample])
    worst = 0.0
    for (start_t, end_t), (start_o, end_o) in zip(torch_reader.window_logits(features), onnx_reader.window_logits(features), strict=True):
        assert start_t.shape == start_o.shape
        worst = max(worst, float(np.abs(start_t - start_o).max()), float(np.abs(end_t - end_o).max()))
    assert worst < 1e-3, f"largest start/end logit difference {worst:.2e}"


def test_onnx_takes_the_same_decisions(readers, dev_sample) -> None:
    from rag_qa.evaluate import read_single_passages

    scoring = ScoringConfig(tau=0.0, retrieval_weight=0.0)
    torch_reader, onnx_reader = readers
    decided = [
        [("" if r.abstained else r.answers[0].text) for _, r in read_single_passages(reader, dev_sample, scoring)]
        for reader in (torch_reader, onnx_reader)
    ]
    same = sum(a == b for a, b in zip(*decided)) / len(dev_sample)
    assert same >= 0.995, f"same decision on {same:.1%} of {len(dev_sample)} questions"


def test_onnx_embeddings_match_and_retrieve_the_same_passages(dev_sample) -> None:
    embedder, onnx_embedder = Embedder(EmbedderConfig(runtime="torch")), Embedder(EmbedderConfig(runtime="onnx"))
    paragraphs = sorted({q.context for q in dev_sample})
    questions = [q.question for q in dev_sample]
    for texts in (paragraphs, questions):
        cosine = (embedder.embed(texts) * onnx_embedder.embed(texts)).sum(axis=1)
        assert cosine.min() > 1 - 1e-4
    top5 = [np.argsort(-(model.embed(questions) @ model.embed(paragraphs).T), axis=1)[:, :5] for model in (embedder, onnx_embedder)]
    same = np.mean([set(a) == set(b) for a, b in zip(*top5)])
    assert same >= 0.99, f"same top-5 passages for {same:.1%} of queries"


def test_roberta_exports_without_token_type_ids_and_matches_torch(tiny_roberta: str) -> None:
    """The default reader's family: `<s> q </s></s> c </s>`, no token_type_ids, fused attention."""
    question, passages = "Who runs the library?", ["The library is run by volunteers. " * 30, "Late returns cost two dollars a day."]
    torch_reader = Reader(ReaderConfig(model=tiny_roberta, max_seq_len=64, doc_stride=16, max_query_tokens=16, runtime="torch"))
    onnx_reader = Reader(ReaderConfig(model=tiny_roberta, max_seq_len=64, doc_stride=16, max_query_tokens=16, runtime="onnx"))
    features = torch_reader._features([question] * 2, passages)
    assert "token_type_ids" not in features and len(features["input_ids"]) > 2  # several windows, padded batches
    for (start_t, end_t), (start_o, end_o) in zip(torch_reader.window_logits(features), onnx_reader.window_logits(features)):
        assert np.abs(start_t - start_o).max() < 1e-3 and np.abs(end_t - end_o).max() < 1e-3
    torch_spans = [[(s.start, s.end) for s in r.spans] for r in torch_reader.read([question], [passages])[0]]
    onnx_spans = [[(s.start, s.end) for s in r.spans] for r in onnx_reader.read([question], [passages])[0]]
    assert torch_spans == onnx_spans


def test_graphs_are_cached_by_weights_and_precision(tiny_bert: str, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RAG_QA_ONNX_CACHE", str(tmp_path))
    Reader(ReaderConfig(model=tiny_bert, runtime="onnx")).warm_up()
    graphs = sorted(tmp_path.glob("*.onnx"))
    assert [g.name.split("-")[:2] for g in graphs] == [["reader", "fp32"]]
    written = graphs[0].stat().st_mtime_ns
    Reader(ReaderConfig(model=tiny_bert, runtime="onnx")).warm_up()  # a second process start reuses the graph
    assert sorted(tmp_path.glob("*.onnx")) == graphs and graphs[0].stat().st_mtime_ns == written
    int8 = Reader(ReaderConfig(model=tiny_bert, runtime="onnx", int8=True))
    int8.warm_up()
    assert len(list(tmp_path.glob("reader-int8-*.onnx"))) == 1
    assert not list(tmp_path.glob(".export-*")), "no temporary export is left behind"
    question, passage = "What is it?", "It is a tiny random model."
    assert int8.read([question], [[passage]])[0][0].null_score == pytest.approx(
        Reader(ReaderConfig(model=tiny_bert, runtime="onnx")).read([question], [[passage]])[0][0].null_score, abs=0.5
    )


def test_an_interrupted_export_leaves_nothing_that_is_loaded(tmp_path) -> None:
    from rag_qa.onnx_models import cached_graph

    def killed(path) -> None:
        path.write_bytes(b"half a graph")
        raise KeyboardInterrupt  # the export dies after writing part of its file

    with pytest.raises(KeyboardInterrupt):
        cached_graph(tmp_path, "reader-fp32", {"weights": "abc"}, killed)
    assert list(tmp_path.iterdir()) == []
    built = cached_graph(tmp_path, "reader-fp32", {"weights": "abc"}, lambda path: path.write_bytes(b"whole graph"))
    assert built.read_bytes() == b"whole graph"
    other = cached_graph(tmp_path, "reader-fp32", {"weights": "abd"}, lambda path: path.write_bytes(b"other weights"))
    assert other != built


def test_without_onnxruntime_auto_is_torch_and_onnx_says_what_to_install(tiny_bert: str, monkeypatch) -> None:
    monkeypatch.delenv("RAG_QA_RUNTIME")
    assert resolved_runtime("auto") == "onnx"  # installed: auto is the faster runtime
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    assert resolved_runtime("auto") == "torch" and resolved_runtime("onnx") == "onnx"
    reader = Reader(ReaderConfig(model=tiny_bert))
    assert reader.read(["What?"], [["A tiny model."]])[0][0].null_score == pytest.approx(
        Reader(ReaderConfig(model=tiny_bert, runtime="torch")).read(["What?"], [["A tiny model."]])[0][0].null_score
    )
    with pytest.raises(ConfigError, match=r"pip install 'rag-qa\[onnx\]'"):
        Reader(ReaderConfig(model=tiny_bert, runtime="onnx")).warm_up()


def test_int8_needs_the_onnx_runtime() -> None:
    with pytest.raises(ConfigError, match="int8 runs on ONNX Runtime"):
        ReaderConfig(int8=True, runtime="torch")
    assert ReaderConfig(int8=True).precision == "int8" and ReaderConfig().precision == "fp32"


def test_auto_falls_back_to_torch_when_a_model_does_not_export(tiny_bert: str, monkeypatch) -> None:
    import rag_qa.reader
    from rag_qa.onnx_models import ExportError

    def unfaithful(*args, **kwargs):
        raise ExportError("the exported graph's start_logits differs from PyTorch by 3.1e-01")

    monkeypatch.setattr(rag_qa.reader, "reader_graph", unfaithful)
    monkeypatch.setenv("RAG_QA_RUNTIME", "onnx")  # what "auto" means where ONNX Runtime is installed
    reading = Reader(ReaderConfig(model=tiny_bert)).read(["What?"], [["A tiny model."]])[0][0]
    assert reading.null_score == pytest.approx(Reader(ReaderConfig(model=tiny_bert, runtime="torch")).read(["What?"], [["A tiny model."]])[0][0].null_score)
    with pytest.raises(ExportError):  # asked for by name, the runtime is not swapped behind the user's back
        Reader(ReaderConfig(model=tiny_bert, runtime="onnx")).warm_up()


def test_spin_false_lets_both_models_idle_threads_sleep(tiny_bert: str, tmp_path) -> None:
    """`serve` opens with spin=False: both sessions get ONNX Runtime's no-spinning option; a plain
    open keeps ONNX Runtime's default, whatever the index was built with."""
    from rag_qa import RagQA

    def spinning(session) -> str:  # type: ignore[no-untyped-def]
        return session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning")

    with RagQA.open(tmp_path / "index", reader=ReaderConfig(model=tiny_bert), runtime="onnx", spin=False) as qa:
        qa.embedder.warm_up()
        qa.reader.warm_up()
        assert qa.embedder.config.spin is False and qa.reader.config.spin is False
        assert spinning(qa.embedder._graph.session) == spinning(qa.reader._forward.__self__.session) == "0"
    with RagQA.open(tmp_path / "index", reader=ReaderConfig(model=tiny_bert), runtime="onnx") as qa:
        assert qa.embedder.config.spin is True and qa.reader.config.spin is True
        qa.embedder.warm_up()
        with pytest.raises(Exception):  # not set: ONNX Runtime's own default (spinning)
            spinning(qa.embedder._graph.session)


def test_reader_batches_are_small_on_cpu_and_large_on_a_gpu() -> None:
    assert ReaderConfig().windows_per_batch == 4 and ReaderConfig(device="cuda:0").windows_per_batch == 64
    assert ReaderConfig(batch_size=7, device="cuda").windows_per_batch == 7
    assert ReaderConfig.from_dict(ReaderConfig().to_dict()) == ReaderConfig()
    with pytest.raises(ConfigError, match="batch_size"):
        ReaderConfig(batch_size=0)


def test_embedder_batches_follow_the_same_rule_and_settings_are_still_checked() -> None:
    assert EmbedderConfig().texts_per_batch == 4 and EmbedderConfig(device="cuda").texts_per_batch == 64
    assert EmbedderConfig(batch_size=32).texts_per_batch == 32
    with pytest.raises(ConfigError, match="runtime"):
        EmbedderConfig(runtime="tensorflow")
    with pytest.raises(ConfigError, match="batch_size"):
        EmbedderConfig(batch_size=0)
