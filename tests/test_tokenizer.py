"""The tokenizer snapshot (rag_qa.tokenizer.FastTokenizer) tokenizes exactly as transformers does,
for the reader's windows, the chunker's token counts and the embedder's inputs; it is cached beside
the ONNX graphs; and a cold `rag-qa ask` on ONNX imports neither torch nor transformers."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import READER, REPO, needs_shared

from rag_qa.config import ReaderConfig
from rag_qa.models import ResolvedModel
from rag_qa.reader import Reader, window_features
from rag_qa.tokenizer import FastTokenizer, cached_tokenizer, hf_snapshot, padded_arrays

QUESTIONS = ["Who runs the library?", "¿Quién abrió el café Müller en 1998?", "What does 🦉 mean here?  ", "x" * 300]
CONTEXTS = [
    "The library is run by volunteers. " * 40,
    "Le café  Müller\u00a0ouvrit en 1998;\tNoël Ørsted l'a fondé.\n\nIt closed in 2004. " * 6,
    "An owl 🦉 means wisdom. " * 25 + "Émoji 👩‍👩‍👧 and CJK 图书馆 too.",
    "Short.",
]


def hf_tokenizer(path: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path, use_fast=True)


def same_encoding(got, want) -> None:
    assert set(got) == set(want)
    for name in want:
        assert [list(map(tuple, row)) if name == "offset_mapping" else row for row in got[name]] == [
            list(map(tuple, row)) if name == "offset_mapping" else row for row in want[name]
        ], name
    assert [got.sequence_ids(i) for i in range(len(want["input_ids"]))] == [want.sequence_ids(i) for i in range(len(want["input_ids"]))]


@pytest.mark.parametrize("model", ["tiny_roberta", "tiny_bert"])
def test_reader_windows_are_those_of_transformers(model: str, request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue(model)
    hf = hf_tokenizer(path)
    snapshot = FastTokenizer.from_dict(json.loads(json.dumps(hf_snapshot(hf).to_dict())))  # as read back from the cache
    for max_seq_len, stride, query in ((64, 16, 16), (128, 32, 24)):
        want = window_features(hf, QUESTIONS, CONTEXTS, max_seq_len, stride, query)
        got = window_features(snapshot, QUESTIONS, CONTEXTS, max_seq_len, stride, query)
        assert len(want["input_ids"]) > len(QUESTIONS)  # overflowing windows are compared too
        same_encoding(got, want)
    assert ("token_type_ids" in got) == (model == "tiny_bert")  # RoBERTa takes none
    for text in CONTEXTS + QUESTIONS + ["", "   "]:
        plain = dict(add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        assert snapshot(text, **plain)["offset_mapping"] == [tuple(o) for o in hf(text, **plain)["offset_mapping"]]
        assert snapshot(text, add_special_tokens=False)["input_ids"] == hf(text, add_special_tokens=False)["input_ids"]
    assert snapshot.num_special_tokens_to_add(pair=True) == hf.num_special_tokens_to_add(pair=True)
    assert snapshot.pad_token_id == hf.pad_token_id


def test_embedder_inputs_are_those_of_sentence_transformers(embedder) -> None:
    """The ONNX embedder cuts texts to the model's limit as sentence-transformers does."""
    model = embedder._sentence_transformer()
    snapshot = hf_snapshot(model.tokenizer)
    texts = CONTEXTS + QUESTIONS + ["", "  padded  "]
    want = model.preprocess(texts)
    features = snapshot(texts, truncation="longest_first", max_length=model.max_seq_length)
    got = padded_arrays(features, range(len(texts)), snapshot.pad_token_id)
    assert max(len(ids) for ids in features["input_ids"]) == model.max_seq_length  # the long texts were cut
    for name in ("input_ids", "attention_mask", "token_type_ids"):
        assert np.array_equal(got[name], want[name].numpy()), name
    document = " ".join(CONTEXTS)
    plain = dict(add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    assert snapshot(document, **plain)["offset_mapping"] == [tuple(o) for o in model.tokenizer(document, **plain)["offset_mapping"]]


def test_threads_get_copies_that_tokenize_alike(tiny_bert: str) -> None:
    snapshot = hf_snapshot(hf_tokenizer(tiny_bert))
    other = copy.deepcopy(snapshot)
    assert other is not snapshot and other("Same text.")["input_ids"] == snapshot("Same text.")["input_ids"]


def test_the_snapshot_is_cached_by_the_tokenizer_files(tiny_bert: str, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RAG_QA_ONNX_CACHE", str(tmp_path / "cache"))
    model = tmp_path / "model"
    model.mkdir()
    for file in os.listdir(tiny_bert):
        (model / file).write_bytes((__import__("pathlib").Path(tiny_bert) / file).read_bytes())
    resolved = ResolvedModel(str(model), None, "local")
    made = []

    def take() -> dict:
        made.append(1)
        return {"tokenizer": hf_snapshot(hf_tokenizer(str(model))).to_dict()}

    first = cached_tokenizer(resolved, "reader", take)
    assert cached_tokenizer(resolved, "reader", take) == first and len(made) == 1  # the next start reads it
    config = json.loads((model / "tokenizer_config.json").read_text())
    (model / "tokenizer_config.json").write_text(json.dumps({**config, "model_max_length": 77}))
    cached_tokenizer(resolved, "reader", take)
    assert len(made) == 2  # a changed tokenizer file makes a new snapshot
    assert not list((tmp_path / "cache").glob(".export-*"))


CHECK_IMPORTS = """
import atexit, json, runpy, sys
heavy = ("torch", "transformers", "sentence_transformers")
atexit.register(lambda: print("HEAVY=" + json.dumps(sorted(m for m in heavy if m in sys.modules)), file=sys.stderr))
sys.argv = ["rag-qa", *sys.argv[1:]]
runpy.run_module("rag_qa.cli", run_name="__main__")
"""


def test_a_cold_ask_on_onnx_imports_neither_torch_nor_transformers(tmp_path) -> None:
    """The guard for cold starts: once the graphs and snapshots are cached, `ask` and `search` on
    ONNX load onnxruntime, tokenizers, numpy and the store only (a stray import fails here)."""
    needs_shared(READER)
    pytest.importorskip("onnxruntime", reason="the onnx runtime needs the onnx extra (pip install -e '.[onnx]')")
    env = {**os.environ, "RAG_QA_RUNTIME": "onnx"}
    index = str(tmp_path / "index")
    question = "How long does a fully charged drill battery last?"

    def run(*args: str) -> tuple[str, list[str]]:
        done = subprocess.run([sys.executable, "-c", CHECK_IMPORTS, *args], capture_output=True, text=True, env=env, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout, json.loads(done.stderr.rsplit("HEAVY=", 1)[1])

    run("index", str(REPO / "data"), "--index", index)
    Reader(ReaderConfig(model=str(READER), runtime="onnx")).warm_up()  # the graph and snapshot are cached (exported once per session)
    answer, heavy = run("ask", question, "--index", index, "--reader", str(READER), "--json")
    assert json.loads(answer)["answers"][0]["text"] == "about forty minutes"
    assert heavy == []
    found, heavy = run("search", question, "--index", index, "--json")
    assert "forty minutes" in found and heavy == []
