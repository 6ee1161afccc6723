"""The number format the reader computes in, chosen for the processor it runs on.

- fp32: the exact reference; every other precision is measured against it.
- bf16: matrix products in bfloat16 (PyTorch autocast), the QA head in fp32. bfloat16 keeps fp32's
  exponent range, so logits move little (docs/benchmarks.md). Only worth it where the processor
  multiplies bf16 natively (x86 AMX-BF16 or AVX-512 BF16, Arm's BF16 extension); elsewhere it is
  emulated, slower than fp32, and rag-qa reads in fp32 instead, saying so in one line.
- int8: dynamic int8 on ONNX Runtime (`onnx_models.quantize_int8`).
- auto: bf16 where the processor has native bf16 matrix instructions, else fp32.

Which instructions a processor has is read from the operating system (Linux' /proc/cpuinfo flags);
where that cannot be read, bf16 is taken to be absent: detect, never assume.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rag_qa.errors import ConfigError

PRECISIONS = ("fp32", "bf16", "int8", "auto")
BF16_FLAGS = frozenset({"amx_bf16", "avx512_bf16", "bf16"})  # x86 AMX and AVX-512 BF16; Arm's "bf16" feature
CPUINFO = Path("/proc/cpuinfo")


def cpu_flags(cpuinfo: Path | None = None) -> frozenset[str]:
    """The processor's feature flags as the kernel lists them (x86 "flags", Arm "Features"), or none."""
    try:
        text = (cpuinfo or CPUINFO).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return frozenset(flags)


def native_bf16(cpuinfo: Path | None = None) -> bool:
    """Whether this processor multiplies bf16 matrices natively."""
    return bool(cpu_flags(cpuinfo) & BF16_FLAGS)


def chosen_precision(requested: str, has_bf16: Callable[[], bool] | None = None) -> tuple[str, str | None]:
    """The precision to read in for `requested` on this processor, and a one-line notice when it is
    not the one asked for (bf16 without native instructions: fp32)."""
    if requested not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {requested!r}")
    if requested in ("fp32", "int8") or (has_bf16 or native_bf16)():
        return ("bf16" if requested == "auto" else requested), None
    notice = "rag-qa: this processor has no native bf16 matrix instructions (AMX-BF16, AVX-512 BF16 or Arm BF16): reading in fp32"
    return "fp32", (notice if requested == "bf16" else f"{notice} (--precision auto)")


def runtime_for(precision: str) -> str:
    """The runtime a precision runs on: int8 on ONNX Runtime, bf16 on PyTorch (autocast), fp32 on either."""
    return {"int8": "onnx", "bf16": "torch"}.get(precision, "auto")


def processor_summary() -> dict[str, str]:
    """What `rag-qa info` says of this processor: its bf16 instructions and what auto reads in."""
    found = sorted(cpu_flags() & BF16_FLAGS)
    return {"bf16_instructions": ", ".join(found) or "none", "precision_auto": "bf16" if found else "fp32"}


def bf16_weights(model: Any, keep_fp32: str = "qa_outputs") -> None:
    """Store the model's linear layers in bf16, except those under `keep_fp32` (the reader's span
    head). Under autocast the numbers are the same (autocast casts each fp32 weight to bf16 anyway),
    but it casts them again at every forward pass: with the reference reader's shape, reading took
    1.16x as long that way (benchmarks/seed_shape.py --autocast-alone, docs/benchmarks.md section 19)."""
    import torch

    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and not name.startswith(keep_fp32):
            module.to(torch.bfloat16)
