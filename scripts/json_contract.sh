#!/usr/bin/env bash
# Every command's --json output on the sample data (timings dropped, floats to 4 digits), for
# checking that a refactor changes no contract:
#   bash scripts/json_contract.sh OLD_CHECKOUT old.jsonl; bash scripts/json_contract.sh . new.jsonl; diff old.jsonl new.jsonl
# Needs this checkout's .venv and ../shared (the offline reader and SQuAD data).
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
REPO=$(cd "$1" && pwd); OUT=$(realpath -m "$2")
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONPATH=$REPO
PY=$HERE/.venv/bin/python
R=$(cd "$HERE/../shared/models/minilm-squad2-reader-v2" && pwd)
S=$(cd "$HERE/../shared/data/squad2" && pwd)
W=${TMPDIR:-/tmp}/rag-qa-json-contract  # a fixed folder: passage ids hash the source path
rm -rf "$W"; mkdir -p "$W"; cp -r "$REPO/data" "$W/data"
"$PY" - "$S/dev-eval.json" "$W" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
for i, name in ((0, "fit"), (1, "report")):
    json.dump(dict(data, data=[dict(data["data"][i], paragraphs=data["data"][i]["paragraphs"][:4])]), open(f"{sys.argv[2]}/{name}.json", "w"))
PY
cd "$W"
run() {
    echo "## $*"
    "$PY" -m rag_qa.cli "$@" --json 2>/dev/null | "$PY" -c '
import json, sys
DROP = {"seconds", "questions_per_second", "indexed_at", "created_at", "saved"}
def clean(v):
    if isinstance(v, dict): return {k: clean(x) for k, x in v.items() if k not in DROP}
    if isinstance(v, list): return [clean(x) for x in v]
    return round(v, 4) if isinstance(v, float) else v
for line in sys.stdin:
    print(json.dumps(clean(json.loads(line)), ensure_ascii=False, sort_keys=True))'
}
{
    run index data --index idx
    run index data --index idx
    run search "extension ladder angle" --index idx --top-k 3
    run ask --questions "$REPO/scripts/sample_questions.txt" --index idx --reader "$R"
    run ask "What is the standard loan period?" --index idx --reader "$R" --retrieval hybrid
    run info --index idx --files
    run check --index idx
    run show data/handbook.md --index idx
    run eval squad fit.json --reader "$R"
    run eval open report.json --corpus fit.json --index-dir sq --reader "$R"
    run calibrate fit.json --index sq --report-on report.json --reader "$R"
    run delete data/faq.html --index idx
} | sed -e "s#$W#WORK#g" -e "s#$REPO#REPO#g" > "$OUT"
rm -rf "$W"
