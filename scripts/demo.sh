#!/usr/bin/env bash
# The main job: set up, index the sample documents in data/, and search them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
rag-qa index data/ --index indexes/demo
rag-qa check --index indexes/demo
while IFS= read -r question; do
    [ -z "$question" ] && continue
    echo
    echo "Q: $question"
    rag-qa search "$question" --index indexes/demo --top-k 2
done < scripts/sample_questions.txt
