"""The reader's precision (issue 37): fp32 the exact reference, bf16 where the processor multiplies
bf16 natively (else fp32 with a notice), int8 on ONNX Runtime, auto choosing per processor."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
from helpers import READER, needs_shared

from rag_qa import precision
from rag_qa.cli.common import reader_config, shared_options
from rag_qa.config import ReaderConfig
from rag_qa.errors import ConfigError, RagQAError
from rag_qa.precision import chosen_precision, cpu_flags, native_bf16, processor_summary
from rag_qa.reader import Reader

SAPPHIRE_RAPIDS = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8\n"
SKYLAKE = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw\n"
NEOVERSE_V1 = "processor\t: 0\nFeatures\t: fp asimd aes sha2 sve bf16 i8mm\n"


def cpuinfo(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    return path


def test_bf16_instructions_are_read_from_the_processors_flags(tmp_path: Path) -> None:
    assert native_bf16(cpuinfo(tmp_path, SAPPHIRE_RAPIDS)) and native_bf16(cpuinfo(tmp_path, NEOVERSE_V1))
    assert not native_bf16(cpuinfo(tmp_path, SKYLAKE))
    assert not native_bf16(tmp_path / "missing") and cpu_flags(tmp_path / "missing") == frozenset()  # unknown: assumed absent


def test_each_precision_is_chosen_for_the_processor_and_a_fallback_says_so() -> None:
    assert chosen_precision("fp32", lambda: True) == ("fp32", None)
    assert chosen_precision("int8", lambda: False) == ("int8", None)
    assert chosen_precision("bf16", lambda: True) == ("bf16", None)
    assert chosen_precision("auto", lambda: True) == ("bf16", None)
    for requested in ("bf16", "auto"):
        chosen, notice = chosen_precision(requested, lambda: False)
        assert chosen == "fp32" and notice is not None and "no native bf16" in notice and "fp32" in notice and "\n" not in notice
    with pytest.raises(ConfigError, match="precision must be one of"):
        chosen_precision("fp16")


def test_the_command_line_falls_back_to_fp32_on_a_processor_without_bf16(tmp_path: Path, monkeypatch, capsys) -> None:
    parser = argparse.ArgumentParser(parents=[shared_options().reader, shared_options().runtime])
    monkeypatch.setattr(precision, "CPUINFO", cpuinfo(tmp_path, SKYLAKE))  # the check forced off
    config = reader_config(parser.parse_args(["--precision", "bf16"]))
    assert (config.precision, config.runtime) == ("fp32", "auto")
    assert "no native bf16 matrix instructions" in capsys.readouterr().err
    assert processor_summary() == {"bf16_instructions": "none", "precision_auto": "fp32"}
    monkeypatch.setattr(precision, "CPUINFO", cpuinfo(tmp_path, SAPPHIRE_RAPIDS))
    config = reader_config(parser.parse_args(["--precision", "auto"]))
    assert (config.precision, config.runtime, config.bf16, config.int8) == ("bf16", "torch", True, False)
    assert capsys.readouterr().err == ""
    assert processor_summary() == {"bf16_instructions": "amx_bf16, avx512_bf16", "precision_auto": "bf16"}
    assert reader_config(parser.parse_args(["--int8"])).precision == "int8"
    assert reader_config(parser.parse_args([])).precision == "fp32"  # the exact reference stays the default
    with pytest.raises(RagQAError, match="contradict"):
        reader_config(parser.parse_args(["--int8", "--precision", "bf16"]))


def test_bf16_runs_on_pytorch_alone() -> None:
    with pytest.raises(ConfigError, match="bf16 runs on PyTorch"):
        ReaderConfig(bf16=True, runtime="onnx")
    with pytest.raises(ConfigError, match="one precision"):
        ReaderConfig(bf16=True, int8=True)
    assert ReaderConfig(bf16=True).precision == "bf16" and ReaderConfig(int8=True).precision == "int8"


def test_a_bf16_reader_keeps_its_span_head_in_fp32_and_stays_near_fp32(tiny_roberta: str) -> None:
    """bf16 moves the logits a little (bfloat16 keeps 8 bits of mantissa); the head that turns the
    hidden states into start, end and null logits computes in fp32, even under autocast."""
    question, passages = "Who runs the library?", ["The library is run by volunteers. " * 30, "Late returns cost two dollars a day."]
    windows = {"max_seq_len": 64, "doc_stride": 16, "max_query_tokens": 16}
    fp32 = Reader(ReaderConfig(model=tiny_roberta, runtime="torch", **windows))
    bf16 = Reader(ReaderConfig(model=tiny_roberta, runtime="auto", bf16=True, **windows))
    features = fp32._features([question] * 2, passages)
    moved = [np.abs(a - b).max() for (sa, ea), (sb, eb) in zip(fp32.window_logits(features), bf16.window_logits(features)) for a, b in ((sa, sb), (ea, eb))]
    assert 0 < max(moved) < 0.1, moved  # computed in bf16 (not identical), and close
    assert len(bf16.read([question], [passages])[0]) == 2
    import torch
    from transformers import AutoModelForQuestionAnswering

    from rag_qa.reader import fp32_head

    net = AutoModelForQuestionAnswering.from_pretrained(tiny_roberta).eval()
    fp32_head(net)
    fp32_head(net)  # once only
    assert net.qa_outputs.in_fp32 and not getattr(net.qa_outputs.inner, "in_fp32", False)
    hidden = torch.randn(1, 4, net.config.hidden_size)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert net.qa_outputs(hidden).dtype == torch.float32


def test_the_offline_reader_ships_a_fit_for_bf16_and_int8_beside_fp32() -> None:
    """Scoring is fitted per precision: a bf16 or int8 reader is not scored with fp32's fit, nor
    left to the defaults."""
    needs_shared(READER)
    from rag_qa.saved_scoring import shipped_scoring

    for mode in ("dense", "bm25", "hybrid"):
        fits = [shipped_scoring(str(READER), mode, precision=p) for p in ("fp32", "bf16", "int8")]
        assert None not in fits and len({repr(f) for f in fits}) == 3


def test_the_embedder_computes_in_bf16_with_the_reader_or_when_told(embedder, tmp_path: Path) -> None:
    """bf16 embeddings stay close to fp32's (retrieval finds the same passages:
    benchmarks/embedder_precision.py), are not identical (bf16 really ran), and are float32 vectors."""
    from dataclasses import replace

    from rag_qa import RagQA
    from rag_qa.config import EmbedderConfig
    from rag_qa.embed import Embedder

    texts = ["The library opens at nine on weekdays.", "Late returns cost two dollars a day, at most twenty dollars per item."]
    exact = Embedder(replace(embedder.config, runtime="torch")).embed(texts)
    bf16 = Embedder(replace(embedder.config, runtime="auto", bf16=True)).embed(texts)
    assert bf16.dtype == np.float32 and bf16.shape == exact.shape
    cosines = (bf16 * exact).sum(axis=1)
    assert 0.99 < cosines.min() and not np.array_equal(bf16, exact)
    with pytest.raises(ConfigError, match="bf16 runs on PyTorch"):
        EmbedderConfig(bf16=True, runtime="onnx")
    with RagQA.open(tmp_path / "a", reader=ReaderConfig(bf16=True)) as qa:
        assert qa.embedder.config.bf16  # one precision for the process
    with RagQA.open(tmp_path / "b", embedder_bf16=True) as qa:
        assert qa.embedder.config.bf16 and not qa.reader.config.bf16
    with RagQA.open(tmp_path / "c") as qa:
        assert not qa.embedder.config.bf16  # fp32 stays the default


def test_int8_reads_each_window_alone_so_its_answer_does_not_move_with_its_neighbours(tiny_roberta: str) -> None:
    """Dynamic int8 scales activations per forward pass: batched with other windows (and their
    padding), a window's logits would depend on what else is read with it."""
    assert ReaderConfig(int8=True).windows_per_batch == 1
    assert ReaderConfig(int8=True, batch_size=8).windows_per_batch == 8  # asked for: kept
    assert ReaderConfig().windows_per_batch > 1
    reader = Reader(ReaderConfig(model=tiny_roberta, runtime="onnx", int8=True))
    question, passage = "Who runs the library?", "The library is run by volunteers from the town."
    alone = reader.read([question], [[passage]])[0][0]
    beside_others = reader.read([question, "When does it open?"], [[passage], ["It opens at nine, " * 20 + "on weekdays."]])[0][0]
    assert alone == beside_others


def test_the_haystack_span_reader_takes_bf16_as_the_command_line_does(tiny_roberta: str, tmp_path: Path, monkeypatch, caplog) -> None:
    from rag_qa.integrations.haystack import SpanReader

    monkeypatch.setattr(precision, "CPUINFO", cpuinfo(tmp_path, SAPPHIRE_RAPIDS))
    component = SpanReader(model=tiny_roberta, revision=None, bf16=True)
    assert component.reader.config.precision == "bf16"
    assert SpanReader.from_dict(component.to_dict()).reader.config.bf16  # kept through a saved pipeline
    monkeypatch.setattr(precision, "CPUINFO", cpuinfo(tmp_path, SKYLAKE))  # the check forced off
    with caplog.at_level("WARNING"):
        assert SpanReader(model=tiny_roberta, revision=None, bf16=True).reader.config.precision == "fp32"
    assert "no native bf16" in caplog.text


def test_bf16_weights_are_stored_once_with_the_same_numbers_as_autocast(tiny_roberta: str) -> None:
    """Autocast casts every fp32 weight to bf16 at each forward pass; storing the linear layers in
    bf16 once gives the same logits (the span head stays fp32)."""
    import torch
    from transformers import AutoModelForQuestionAnswering

    from rag_qa.precision import bf16_weights
    from rag_qa.reader import torch_forward

    stored = AutoModelForQuestionAnswering.from_pretrained(tiny_roberta).eval()
    cast_each_time = AutoModelForQuestionAnswering.from_pretrained(tiny_roberta).eval()
    arrays = {"input_ids": np.array([[0, 100, 200, 300, 2, 2, 400, 500, 2]]), "attention_mask": np.ones((1, 9), dtype=np.int64)}
    logits = torch_forward(stored, bf16=True)(arrays)
    assert stored.roberta.encoder.layer[0].attention.self.query.weight.dtype == torch.bfloat16
    assert stored.qa_outputs.inner.weight.dtype == torch.float32 and stored.roberta.embeddings.word_embeddings.weight.dtype == torch.float32
    assert all(np.array_equal(a, b) for a, b in zip(logits, torch_forward(cast_each_time, bf16=True, store_bf16=False)(arrays)))
    bf16_weights(stored)  # again: nothing changes
    assert stored.qa_outputs.inner.weight.dtype == torch.float32
