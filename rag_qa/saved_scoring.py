"""Fitted scoring kept with an index: `rag-qa calibrate` writes one fit per reader, precision and
retrieval mode (each moves the score scales: int8 shifts the null-vs-span balance), and `RagQA.open`
reads the matching one. fp32 fits serve both runtimes, whose logits agree within 1e-3. Kept apart from
`calibration` so that the facade loads a saved fit without importing the evaluation code.

An index that has no fit of its own uses the fit shipped for its reader in `shipped_scoring.json`
(readers known by the SHA-256 of their weights, so a copied or renamed folder is still known): a
raw reader's confidences are far from probabilities, and without a fit a fresh index would show
near 100% on every answer."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag_qa.config import ReaderConfig, ScoringConfig
from rag_qa.errors import RagQAError

if TYPE_CHECKING:
    from rag_qa.store import Store

SCORING_METADATA = "scoring"


def _fit_key(fit: dict[str, Any]) -> tuple[Any, Any, Any]:
    return fit.get("reader"), fit.get("precision", "fp32"), fit.get("retrieval_mode")  # fits saved before int8 are fp32


def save_scoring(
    store: Store, scoring: ScoringConfig, reader_model: str, retrieval_mode: str, details: dict[str, Any], *, precision: str = "fp32"
) -> str:
    """Keep the fitted scoring with the index, beside the fits for other readers, precisions and
    retrieval modes; a new fit for the same three replaces the old one. Returns where it went."""
    saved = store.read_metadata(SCORING_METADATA) or {}
    fits = [f for f in saved.get("fits", []) if _fit_key(f) != (reader_model, precision, retrieval_mode)]
    fits.append({"reader": reader_model, "precision": precision, "retrieval_mode": retrieval_mode, "scoring": scoring.to_dict(), **details})
    return store.write_metadata(SCORING_METADATA, {"fits": fits})


def load_scoring(store: Store, reader_model: str, retrieval_mode: str, *, precision: str = "fp32") -> ScoringConfig | None:
    """The scoring `rag-qa calibrate` fitted on this index for this reader, precision and retrieval mode, if any."""
    saved = store.read_metadata(SCORING_METADATA)
    for fit in (saved or {}).get("fits", []):
        if _fit_key(fit) == (reader_model, precision, retrieval_mode):
            try:
                return ScoringConfig.from_dict(fit["scoring"])
            except (ValueError, KeyError) as exc:
                raise RagQAError(f"{store.path}: unreadable scoring ({exc}); re-run `rag-qa calibrate`") from None
    return None


SHIPPED_SCORING = "shipped_scoring.json"
WEIGHTS_FILE = "model.safetensors"


def shipped_scoring(reader_model: str, retrieval_mode: str, *, precision: str = "fp32") -> ScoringConfig | None:
    """The fit shipped with rag-qa for this reader (a local folder whose weights it knows), its
    precision and the retrieval mode, if any."""
    weights = Path(reader_model).expanduser() / WEIGHTS_FILE
    if not weights.is_file():
        return None
    shipped = json.loads(resources.files("rag_qa").joinpath(SHIPPED_SCORING).read_text("utf-8"))
    known = [r for r in shipped["readers"] if r["weights_sha256"] == _sha256(weights)]
    for fit in (known[0]["fits"] if known else []):
        if (fit["precision"], fit["retrieval_mode"]) == (precision, retrieval_mode):
            return ScoringConfig.from_dict(fit["scoring"])
    return None


def _sha256(path: Path) -> str:
    from rag_qa.onnx_models import file_sha256  # remembered by path, size and time: read once

    return file_sha256(path)


def scoring_for(store: Store, reader: ReaderConfig, retrieval_mode: str) -> ScoringConfig:
    """How answers from `store` are scored: the index's own fit for this reader, precision and
    retrieval mode (`rag-qa calibrate`), else the fit shipped for the reader, else the defaults."""
    fitted = load_scoring(store, reader.model, retrieval_mode, precision=reader.precision)
    if fitted is None:
        fitted = shipped_scoring(reader.model, retrieval_mode, precision=reader.precision)
    return fitted if fitted is not None else ScoringConfig()
