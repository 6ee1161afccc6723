#!/usr/bin/env bash
# The main job: set up, index the sample documents in data/, and answer the sample questions.
#
# The reader is $RAG_QA_READER when set; otherwise the small offline reader in ../shared when it is
# there (the Hugging Face Hub may be unreachable); otherwise deepset/roberta-large-squad2 from the Hub.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/apt_install.sh --no-install-recommends tesseract-ocr tesseract-ocr-eng  # OCR of the scanned notice
bash scripts/setup.sh
. .venv/bin/activate
if [ -z "${RAG_QA_READER:-}" ] && [ -d ../shared/models/minilm-squad2-reader-v2 ]; then
    export RAG_QA_READER=../shared/models/minilm-squad2-reader-v2
    echo "Using the offline reader $RAG_QA_READER (small; its confidences come from the calibration rag-qa ships for it; set RAG_QA_READER to use another)."
fi
rag-qa index data/ --index indexes/demo
rag-qa check --index indexes/demo
echo
rag-qa ask --questions scripts/sample_questions.txt --index indexes/demo
