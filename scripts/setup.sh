#!/usr/bin/env bash
# Create .venv and install rag-qa with its test tools. Safe to re-run.
# torch is pinned to 2.13.0: on these machines that is a CPU wheel on local disk; an unpinned
# torch would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[dev]"
