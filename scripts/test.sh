#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite, offline. The browser test needs Chromium, the
# PDF extraction test a real LaTeX-typeset manual (Debian's debian-reference-en), the OCR tests
# Tesseract: installed here from Debian packages when missing, in the background while the Python
# packages install (the two take minutes each on a fresh machine).
set -euo pipefail
cd "$(dirname "$0")/.."
(
    bash scripts/apt_install.sh chromium chromium-driver
    bash scripts/apt_install.sh --no-install-recommends debian-reference-en tesseract-ocr tesseract-ocr-eng
) &
system_packages=$!
bash scripts/setup.sh
wait "$system_packages"
.venv/bin/python -m pytest "$@"
