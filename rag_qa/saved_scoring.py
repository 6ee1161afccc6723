"""Fitted scoring kept with an index: `rag-qa calibrate` writes one fit per reader, precision and
retrieval mode (each moves the score scales: int8 shifts the null-vs-span balance), and `RagQA.open`
reads the matching one. fp32 fits serve both runtimes, whose logits agree within 1e-3. Kept apart from
`calibration` so that the facade loads a saved fit without importing the evaluation code."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rag_qa.config import ScoringConfig
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
