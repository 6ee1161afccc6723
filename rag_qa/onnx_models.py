"""ONNX Runtime for the reader and the embedder: export a model's graph once, cache it, run it.

Why torch's own exporter rather than optimum (or sentence-transformers' `backend="onnx"`, which
calls optimum): every optimum release on the registry pins transformers < 5, and rag-qa runs on
transformers 5. So the graph is exported with `torch.onnx.export`, fused with ONNX Runtime's own
transformer optimizer (attention, LayerNorm, GELU, MatMul + bias), and checked against PyTorch on
a padded probe batch before it is kept: a graph that disagrees is never cached.

Cache: one file per graph in `cache_dir()` ($RAG_QA_ONNX_CACHE), named by a hash of the
weights, the graph kind and precision, the opset, the onnxruntime version and this module's
recipe version. A graph is written in a temporary folder beside its final name and renamed into
place only when complete, so a killed export never leaves a file that is later loaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rag_qa.errors import DISK_FULL, ConfigError, RagQAError
from rag_qa.models import ResolvedModel
from rag_qa.store.writing import atomic_write, durable_replace

LOG = logging.getLogger(__name__)
OPSET = 17
RECIPE_VERSION = 1  # bump when the export or quantization recipe changes: old cached graphs are then ignored
EXPORT_TOLERANCE = 1e-3  # largest |ONNX - PyTorch| output allowed on the probe batch (fp32)
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".json")  # what decides a graph: weights and configs
STALE_EXPORT_S = 24 * 3600  # a temporary export folder this old belongs to a killed export
# Transformer families whose graphs ONNX Runtime's "bert" optimizer fuses (others run unfused).
BERT_LIKE = ("bert", "roberta", "xlm-roberta", "camembert", "electra", "distilbert")


class ExportError(RagQAError):
    """A model could not be exported to ONNX, or the exported graph disagrees with PyTorch."""


def import_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError(
            "runtime 'onnx' needs ONNX Runtime: pip install 'rag-qa[onnx]' (or use runtime 'torch', e.g. --runtime torch)"
        ) from None
    return onnxruntime


def resolved_runtime(runtime: str) -> str:
    """"torch" or "onnx": what `runtime` means here ("auto": $RAG_QA_RUNTIME when it names one,
    else onnx when ONNX Runtime is installed, else torch)."""
    if runtime != "auto":
        return runtime
    chosen = os.environ.get("RAG_QA_RUNTIME", "")
    if chosen in ("torch", "onnx"):
        return chosen
    return "onnx" if importlib.util.find_spec("onnxruntime") is not None else "torch"


def load_graph(runtime: str, model: str, build: Callable[[], OnnxGraph]) -> OnnxGraph | None:
    """The model's ONNX graph from `build`, or None where it runs on PyTorch: runtime "torch", or
    "auto" without ONNX Runtime, or "auto" with a model that does not export faithfully (said in
    the log; asked for by name, "onnx" raises instead of swapping runtimes behind the user's back)."""
    if resolved_runtime(runtime) == "torch":
        return None
    if runtime == "onnx":
        return build()
    try:
        return build()
    except Exception as exc:  # not only ExportError: an exporter crash, a full disk, an unloadable graph
        LOG.warning("rag-qa: running %s on PyTorch: %s", model, exc if isinstance(exc, ExportError) else f"the ONNX graph failed ({type(exc).__name__}: {exc})")
        return None


def cache_dir() -> Path:
    """Where exported graphs live: $RAG_QA_ONNX_CACHE, else ~/.cache/rag-qa/onnx."""
    folder = os.environ.get("RAG_QA_ONNX_CACHE") or Path.home() / ".cache" / "rag-qa" / "onnx"
    return Path(folder).expanduser()


def model_files(resolved: ResolvedModel, suffixes: Sequence[str] = WEIGHT_SUFFIXES) -> list[Path]:
    """The files that decide a model's graph (by default weights and configs; for a Hub model, the
    two files `from_pretrained` downloads anyway)."""
    if resolved.origin == "hub":
        from huggingface_hub import hf_hub_download

        return [Path(hf_hub_download(resolved.location, name, revision=resolved.revision)) for name in ("config.json", "model.safetensors")]
    root = Path(resolved.location)
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in suffixes and not _hidden(p, root))


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def weights_digest(files: Sequence[Path]) -> str:
    """SHA-256 over the files' names and contents (each file's hash from `file_sha256`)."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + file_sha256(path).encode())
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's content, remembered in the cache folder by path, size and
    modification time, so a large model is read once, not at every start."""
    known_path = cache_dir() / "file-hashes.json"
    try:
        known = json.loads(known_path.read_text())
    except (OSError, ValueError):
        known = {}
    stat, key = path.stat(), str(path.resolve())
    if known.get(key, [None, None])[:2] != [stat.st_size, stat.st_mtime_ns]:
        with open(path, "rb") as handle:
            known[key] = [stat.st_size, stat.st_mtime_ns, hashlib.file_digest(handle, "sha256").hexdigest()]
        try:
            known_path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(known_path, json.dumps(known).encode())
        except OSError:  # only a memo (a full disk, a read-only cache): the hash is known for this run anyway
            pass
    return known[key][2]


def cached_graph(folder: Path, name: str, key: dict[str, Any], build: Callable[[Path], None]) -> Path:
    """The cached graph for `key`, built by `build(path)` first when missing; written atomically."""
    ort = import_onnxruntime()
    full_key = {**key, "opset": OPSET, "onnxruntime": ort.__version__, "recipe": RECIPE_VERSION}
    return cached_file(folder, name, full_key, ".onnx", build)


def cached_file(folder: Path, name: str, key: dict[str, Any], suffix: str, build: Callable[[Path], None]) -> Path:
    """The file cached for `key` (named by its hash), made by `build(path)` first when missing, in a
    temporary folder renamed into place only when complete. Beside a graph, a .json file records
    the key it was made from, for people."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    final = folder / f"{name}-{digest}{suffix}"
    if final.is_file():
        return final
    folder.mkdir(parents=True, exist_ok=True)
    _remove_stale_exports(folder)
    if suffix == ".onnx":
        LOG.warning("rag-qa: building the %s ONNX graph (once; cached in %s)", name, folder)
    work = Path(tempfile.mkdtemp(prefix=".export-", dir=folder))
    try:
        build(work / f"made{suffix}")
        if suffix == ".onnx":
            atomic_write(final.with_suffix(".json"), json.dumps(key, indent=2, sort_keys=True).encode())
        durable_replace(work / f"made{suffix}", final)  # a power loss never leaves an empty graph here
    except OSError as exc:
        if exc.errno not in DISK_FULL:
            raise
        raise ExportError(f"the disk holding the ONNX graph cache {folder} is full or refused a write ({exc}); "
                          "free some space, set RAG_QA_ONNX_CACHE to a folder with room, or use --runtime torch") from exc  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


def _remove_stale_exports(folder: Path) -> None:
    for leftover in folder.glob(".export-*"):
        try:
            if time.time() - leftover.stat().st_mtime > STALE_EXPORT_S:
                shutil.rmtree(leftover, ignore_errors=True)
        except OSError:
            pass  # another process removed it first


class OnnxGraph:
    """An ONNX Runtime session over one graph: numpy arrays in, numpy arrays out."""

    def __init__(self, path: Path, threads: int | None = None, device: str | None = None, spin: bool = True):
        ort = import_onnxruntime()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        if not spin:  # idle threads sleep instead of spinning, leaving the cores to the other model, HTTP and uploads
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = ["CPUExecutionProvider"]
        if device and device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise ConfigError("device 'cuda' with runtime 'onnx' needs onnxruntime-gpu: pip install onnxruntime-gpu")
            providers.insert(0, "CUDAExecutionProvider")
        self.path = path
        self.session = ort.InferenceSession(str(path), options, providers=providers)
        self.input_names = [i.name for i in self.session.get_inputs()]

    def run(self, arrays: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(None, {name: arrays[name] for name in self.input_names})


def export_verified(module: Any, probe: dict[str, Any], outputs: dict[str, dict[int, str]], path: Path, config: Any) -> None:
    """Export `module` (positional inputs in `probe`'s order, batch and sequence axes dynamic;
    `outputs` maps each output's name to its dynamic axes), fuse it where the family is known, and
    raise ExportError unless ONNX Runtime reproduces PyTorch's outputs on `probe` (a padded batch)
    within EXPORT_TOLERANCE at the real tokens."""
    import torch

    names, output_names = list(probe), list(outputs)
    axes = {**{name: {0: "batch", 1: "sequence"} for name in names}, **outputs}
    plain = path.with_name("plain.onnx")
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python control flow on shapes: checked below instead
        torch.onnx.export(
            module, tuple(probe[n] for n in names), str(plain), input_names=names, output_names=output_names,
            dynamic_axes=axes, opset_version=OPSET, dynamo=False,
        )  # fmt: skip
        expected = [t.float().numpy() for t in module(*(probe[n] for n in names))]
    _fuse(plain, path, config)
    arrays = {n: probe[n].numpy() for n in names}
    mask = arrays["attention_mask"].astype(bool)
    for name, got, want in zip(output_names, OnnxGraph(path).run(arrays), expected, strict=True):
        if got.shape[:2] == mask.shape:  # per-token outputs: padding positions are never read
            got, want = got[mask], want[mask]
        error = float(np.abs(got - want).max())
        if not error <= EXPORT_TOLERANCE:
            raise ExportError(f"the exported graph's {name} differs from PyTorch by {error:.2e} (> {EXPORT_TOLERANCE}); use runtime 'torch'")
    plain.unlink()


def _fuse(plain: Path, fused: Path, config: Any) -> None:
    """ONNX Runtime's transformer optimizer: fused attention, LayerNorm, GELU and bias kernels."""
    if getattr(config, "model_type", None) not in BERT_LIKE:
        shutil.copyfile(plain, fused)
        return
    from onnxruntime.transformers.optimizer import optimize_model

    heads, hidden = config.num_attention_heads, config.hidden_size
    optimize_model(str(plain), model_type="bert", num_heads=heads, hidden_size=hidden).save_model_to_file(str(fused))


def quantize_int8(fp32: Path, out: Path, keep_fp32: Sequence[str] = ()) -> None:
    """Dynamic int8 of the fused graph: weights per output channel, activations per batch at run
    time (no calibration set to go stale); nodes whose names contain a `keep_fp32` part stay fp32."""
    import onnx
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    names = [node.name for node in onnx.load(str(fp32), load_external_data=False).graph.node]
    excluded = [name for name in names if any(part in name for part in keep_fp32)]
    quantize_dynamic(
        fp32, out, per_channel=True, weight_type=QuantType.QInt8, nodes_to_exclude=excluded,
        extra_options={"DefaultTensorType": TensorProto.FLOAT},  # shape inference cannot type the fused ops' outputs
    )  # fmt: skip


def positional(model: Any, names: Sequence[str], pick: Callable[[Any], tuple[Any, ...]]) -> Any:
    """`model` as a module of positional tensors (what the exporter traces), returning `pick(output)`."""
    import torch

    class Positional(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: Any) -> tuple[Any, ...]:
            return pick(self.model(dict(zip(names, inputs)))) if _takes_dict(model) else pick(self.model(**dict(zip(names, inputs))))

    return Positional().eval()


def _takes_dict(model: Any) -> bool:
    """sentence-transformers models take one dict of features; Hugging Face models take keywords."""
    return type(model).__module__.startswith("sentence_transformers")


# ----------------------------------------------------------------------------- the two models
READER_PROBE = (
    ("Who wrote it?", "Ada Lovelace wrote the first published program in 1843, in her notes on the Analytical Engine."),
    ("When was the engine designed, and by whom?", "Babbage designed it."),
)
EMBEDDER_PROBE = ("A short probe.", "A longer probe sentence, so that the batch is padded to its length.")


def reader_graph(resolved: ResolvedModel, int8: bool, threads: int | None, device: str | None, spin: bool = True) -> OnnxGraph:
    """The reader's cached ONNX graph (exported on first use), fp32 or int8, in a session."""
    path = fp32 = reader_fp32_graph(resolved)
    if int8:
        path = cached_graph(
            cache_dir(), "reader-int8", {"graph": "reader-int8", "weights": weights_digest(model_files(resolved)), "keep_fp32": list(INT8_KEEP_FP32)},
            lambda out: quantize_int8(fp32, out, INT8_KEEP_FP32),
        )  # fmt: skip
    return open_graph(path, threads, device, spin)


def reader_fp32_graph(resolved: ResolvedModel) -> Path:
    """The path of the reader's fused fp32 graph, exported on first use: what int8 quantizes."""
    weights = weights_digest(model_files(resolved))
    return cached_graph(cache_dir(), "reader-fp32", {"graph": "reader", "weights": weights}, lambda path: _export_reader(resolved, path))


def open_graph(path: Path, threads: int | None, device: str | None, spin: bool = True) -> OnnxGraph:
    """A session over a cached graph. One that ONNX Runtime cannot load (a damaged cache file) is
    removed, so that the next start builds it again, and the error says so."""
    try:
        return OnnxGraph(path, threads, device, spin)
    except ConfigError:
        raise
    except Exception as exc:
        path.unlink(missing_ok=True)
        raise ExportError(f"the cached graph {path} could not be loaded ({type(exc).__name__}); it was removed and is built again on the next start") from None


def _export_reader(resolved: ResolvedModel, path: Path) -> None:
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    revision = resolved.load_revision
    tokenizer = AutoTokenizer.from_pretrained(resolved.location, revision=revision, use_fast=True)
    model = AutoModelForQuestionAnswering.from_pretrained(
        resolved.location, revision=revision, use_safetensors=True, trust_remote_code=False, attn_implementation="eager"
    ).eval()  # eager attention exports as the pattern the optimizer fuses
    questions, contexts = zip(*READER_PROBE)
    probe = tokenizer(list(questions), list(contexts), padding=True, return_tensors="pt")
    inputs = {name: probe[name] for name in tokenizer.model_input_names if name in probe}
    module = positional(model, list(inputs), lambda out: (out.start_logits, out.end_logits))
    sequence_axes = {0: "batch", 1: "sequence"}
    export_verified(module, inputs, {"start_logits": sequence_axes, "end_logits": sequence_axes}, path, model.config)


def embedder_graph(resolved: ResolvedModel, load_model: Callable[[], Any], threads: int | None, device: str | None, spin: bool = True) -> OnnxGraph:
    """The sentence-transformers model's whole pipeline (transformer, pooling, normalisation) as
    one cached ONNX graph (exported on first use from `load_model()`), in a session."""
    weights = weights_digest(model_files(resolved))
    path = cached_graph(cache_dir(), "embedder-fp32", {"graph": "embedder", "weights": weights}, lambda out: _export_embedder(load_model(), out))
    return open_graph(path, threads, device, spin)


def _export_embedder(model: Any, path: Path) -> None:
    features = model.preprocess(list(EMBEDDER_PROBE))
    inputs = {name: value for name, value in features.items() if name in EMBEDDER_INPUTS}
    module = positional(model, list(inputs), lambda out: (out["sentence_embedding"],))
    transformer = getattr(model[0], "auto_model", None)  # the Hugging Face model inside, when there is one
    if transformer is None:
        export_verified(module, inputs, {"sentence_embedding": {0: "batch"}}, path, None)
        return
    used = transformer.config._attn_implementation
    transformer.set_attn_implementation("eager")  # exports as the pattern the optimizer fuses
    try:
        export_verified(module, inputs, {"sentence_embedding": {0: "batch"}}, path, transformer.config)
    finally:
        transformer.set_attn_implementation(used)


EMBEDDER_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# Left in fp32, chosen on reader-train.json only (`benchmarks/int8_recipes.py`; docs/benchmarks.md):
# the span head (two outputs per token, no speed to gain) and the first encoder layer, whose inputs
# are the raw embeddings. Reported on dev-eval, which played no part: 100.6-100.8% of fp32's
# forced-answer HasAns F1 and 99.1-99.4% of its best_f1 (span head alone: 97.9-99.8% and 98.8-100.4%).
INT8_KEEP_FP32 = ("qa_outputs", "layer.0")
