"""Small assertions shared by tests."""

from __future__ import annotations

from typing import Any

import pytest


def approx_floats(value: Any, rel: float = 1e-4, abs_: float = 1e-6) -> Any:
    """`value` with every float wrapped in pytest.approx, recursively, so results compare with
    decisions and texts exactly and scores within a tolerance (batch shapes move float digits)."""
    if isinstance(value, float):
        return pytest.approx(value, rel=rel, abs=abs_)
    if isinstance(value, dict):
        return {k: approx_floats(v, rel, abs_) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(approx_floats(v, rel, abs_) for v in value)
    return value
