"""Table cells in real PDFs (issue 36): can rag-qa answer a question whose answer sits in a table cell?

The set is 13 real PDFs from Debian documentation packages (LaTeX papers and manuals, R package
vignettes, a program manual; benchmarks/pdf_tables/README.md says what each holds and why) and 85
questions about table cells (benchmarks/pdf_tables/questions.json). The PDFs are not kept in the
repository: each package is fetched at its pinned version with `apt-get download` into a cache
outside the repository, unpacked with `dpkg-deb -x`, and each PDF is checked against its SHA-256.

Every question is asked with the answer forced (answer policy `eager`), over the whole index and
again over its own file only (`sources`), so a miss can be told apart: retrieval across 13 files,
or the table's text itself. Reported per file and overall:
- right@1: the top answer, SQuAD-normalised, equals an acceptable answer, or contains one and is
  at most 3 normalised tokens longer; right@5: one of the top 5 answers is right; F1: the top
  answer's SQuAD F1 (best over the acceptable answers); file@1: right@1 asked of its own file;
- ingestion: each file indexed on its own, timed by this script (the embedder warmed first), and
  pages per second;
- glued: the share of word tokens in the indexed text (`RagQA.show`) that are not in the word list
  but split into two word-list words ("oneinathousand"-style gluing from TeX PDFs, which draw no
  space glyphs; `glued_words` says which tokens are left out); the word list is Debian's
  `wamerican` (/usr/share/dict/american-english), fetched the same way.
Table detection (precision and recall of tables found per page against the inventory in
questions.json) is measured with rag-qa's detector (`rag_qa_tables`), or the function named by
--finder (module:function taking a PDF path and returning {page: tables}); see `detection_scores`.

Usage: python benchmarks/pdf_tables.py [--cache DIR] [--reader PATH] [--threads N] [--finder MOD:FN] [--json]
(the human table goes to stdout, a progress line per file to stderr)
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from common import READER, table

SET = Path(__file__).resolve().parent / "pdf_tables" / "questions.json"
DEFAULT_CACHE = Path.home() / ".cache" / "rag-qa" / "pdf-tables"
WORD = re.compile(r"[^\W\d_]+")  # runs of letters: the word tokens of the glued-word rate
SHORT_WORDS = {"a", "an", "as", "at", "be", "by", "do", "if", "in", "is", "it", "of", "on", "or", "to", "we", "no", "so", "up"}
MAX_EXTRA_TOKENS = 3  # a right answer may hold an acceptable one and at most this many tokens more
FINDER = "rag-qa"  # the detection hook's default: rag-qa's own detector, page by page (`rag_qa_tables`)


def progress(message: str) -> None:
    """One line per step on stderr, so --json output on stdout stays clean."""
    print(message, file=sys.stderr, flush=True)


# --- fetching the set ------------------------------------------------------------------------


def unpacked_package(package: str, version: str, cache: Path) -> Path:
    """The folder holding `package` at `version` unpacked: `apt-get download` (pinned, so the
    bytes never change under the recorded hashes) then `dpkg-deb -x`, both once per cache."""
    name = f"{package}_{version.replace(':', '%3a')}"  # apt-get download's file name for an epoch
    root = cache / "root" / name
    if (root / ".done").exists():
        return root
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    if not list(debs.glob(f"{name}_*.deb")):
        run = subprocess.run(["apt-get", "download", f"{package}={version}"], cwd=debs, capture_output=True, text=True)
        if run.returncode != 0:
            sys.exit(f"apt-get download {package}={version} failed (run `apt-get update` first?):\n{run.stderr.strip()}")
    found = list(debs.glob(f"{name}_*.deb"))
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    subprocess.run(["dpkg-deb", "-x", str(found[0]), str(root)], check=True)
    (root / ".done").touch()
    return root


def sha256(path: Path) -> str:
    """A PDF's identity: the recorded hash pins the exact bytes the questions were written for."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch_file(entry: dict, cache: Path, target: Path) -> Path:
    """Copy one recorded file (a PDF, gunzipped when the package ships it as .gz, or the word
    list) out of its package to `target`, refusing bytes other than the recorded ones."""
    source = unpacked_package(entry["package"], entry["version"], cache) / entry["path"].lstrip("/")
    if not source.exists():
        sys.exit(f"{entry['package']} {entry['version']} has no {entry['path']}")
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.suffix == ".gz":
        with gzip.open(source) as packed:
            target.write_bytes(packed.read())
    else:
        shutil.copyfile(source, target)
    if sha256(target) != entry["sha256"]:
        sys.exit(f"{target.name}: SHA-256 {sha256(target)} is not the recorded {entry['sha256']}")
    return target


def fetch_set(spec: dict, cache: Path, folder: Path) -> dict[str, Path]:
    """Every PDF of the set, checked, copied to `folder` as FILE_ID.pdf."""
    pdfs = {}
    for file_id, entry in spec["files"].items():
        pdfs[file_id] = fetch_file(entry, cache, folder / f"{file_id}.pdf")
        progress(f"fetched {file_id}: {entry['package']} {entry['version']}, {entry['pages']} pages, sha256 ok")
    return pdfs


def word_list(spec: dict, cache: Path) -> set[str]:
    """Lower-case words of the pinned word list, possessives ("Abel's") left out."""
    path = fetch_file(spec["wordlist"], cache, cache / "wordlist" / "american-english")
    return {w.lower() for w in path.read_text(encoding="utf-8").split() if w.isalpha()}


# --- scoring -------------------------------------------------------------------------------


def is_right(predicted: str, acceptable: list[str]) -> bool:
    """Right: after SQuAD normalisation the answer equals an acceptable one, or holds one (as
    whole tokens) and is at most MAX_EXTRA_TOKENS tokens longer: "12.7 kpc" is right for 12.7,
    a whole table row is not."""
    from rag_qa.answer import normalize_answer

    answer = normalize_answer(predicted).split()
    for gold in (normalize_answer(a).split() for a in acceptable):
        if not gold or len(answer) - len(gold) > MAX_EXTRA_TOKENS:
            continue
        if any(answer[i : i + len(gold)] == gold for i in range(len(answer) - len(gold) + 1)):
            return True
    return False


def best_f1(predicted: str, acceptable: list[str]) -> float:
    """SQuAD F1 against the closest acceptable form (rag_qa's own definition, as `rag-qa eval`)."""
    from rag_qa.evaluate import f1_score

    return max(f1_score(gold, predicted) for gold in acceptable)


def glued_words(text: str, words: set[str]) -> tuple[int, int, list[str]]:
    """(glued tokens, word tokens, a few glued examples). Glued: a token not in the word list that
    splits into two word-list words ("tablesin" -> "tables" + "in"). To keep identifiers and names
    from counting, a token with a capital inside ("RcppGSL") is skipped, each part must have three
    letters or be a short function word, and each part must also stand alone somewhere in the same
    text; what is left is mostly real gluing plus a floor of LaTeX and R names ("longtable")."""
    tokens = WORD.findall(text)
    used = {t.lower() for t in tokens}

    def part(piece: str) -> bool:
        return piece in words and piece in used and (len(piece) >= 3 or piece in SHORT_WORDS)

    glued = []
    for token in tokens:
        lower = token.lower()
        if len(lower) < 5 or lower in words or any(c.isupper() for c in token[1:]):
            continue
        if any(part(lower[:i]) and part(lower[i:]) for i in range(2, len(lower) - 1)):
            glued.append(lower)
    return len(glued), len(tokens), sorted(set(glued))[:8]


def share(part: float, whole: float) -> float | None:
    return part / whole if whole else None


# --- table detection hook ------------------------------------------------------------------


def detection_scores(find_tables: Callable[[str], dict[int, int]], pdfs: dict[str, Path], spec: dict) -> dict:
    """HOOK for table detection: compare `find_tables(pdf_path) -> {page (1-based): tables found}`
    with the inventory of tables a person sees (questions.json, `tables_per_page`). Per page,
    min(found, present) tables are true positives, the rest false positives or misses; summed
    over every page of every file into precision and recall."""
    true_pos = found_all = present_all = 0
    per_file = {}
    for file_id, pdf in pdfs.items():
        present = {int(p): n for p, n in spec["files"][file_id]["tables_per_page"].items()}
        found = {int(p): n for p, n in find_tables(str(pdf)).items() if n}
        hits = sum(min(found.get(p, 0), n) for p, n in present.items())
        per_file[file_id] = {"found": sum(found.values()), "present": sum(present.values()), "matched": hits}
        true_pos, found_all, present_all = true_pos + hits, found_all + sum(found.values()), present_all + sum(present.values())
    return {"precision": share(true_pos, found_all), "recall": share(true_pos, present_all), "files": per_file}


def rag_qa_tables(pdf_path: str) -> dict[int, int]:
    """rag-qa's detector run over a PDF's pages as ingestion runs it (a table continued from
    the page before counts on each page it is on)."""
    import pypdfium2 as pdfium

    from rag_qa.ingest.pdf_layout import read_layout
    from rag_qa.ingest.pdf_tables import find_tables

    document = pdfium.PdfDocument(pdf_path)
    found, previous = {}, None
    try:
        for index in range(len(document)):
            page = document[index]
            tables = find_tables(read_layout(page, page.get_textpage()), previous)
            found[index + 1], previous = len(tables), (tables[-1] if tables else None)
    finally:
        document.close()
    return found


def table_finder(name: str) -> tuple[Callable[[str], dict[int, int]] | None, str]:
    """The detector `name` ("module:function") when the code under test has it and it takes a PDF
    path, else None and why. rag_qa may name a page-level function find_tables too; that one
    is not called (it would need a page layout, not a path)."""
    import importlib
    import inspect

    if name == FINDER:
        try:
            import rag_qa.ingest.pdf_tables  # noqa: F401
        except ImportError:
            return None, "this rag_qa has no table detector (rag_qa.ingest.pdf_tables)"
        return rag_qa_tables, ""
    module, _, function = name.partition(":")
    try:
        finder = getattr(importlib.import_module(module), function)
    except (ImportError, AttributeError):
        return None, f"{module} has no {function}"
    first = next(iter(inspect.signature(finder).parameters.values()), None)
    if first is None or first.name not in ("pdf_path", "path", "pdf"):
        return None, f"{name} does not take a PDF path (its first parameter is {first.name if first else 'missing'!r})"
    return finder, ""


# --- the run -------------------------------------------------------------------------------


def index_files(qa, pdfs: dict[str, Path]) -> dict[str, dict]:  # noqa: ANN001 (RagQA)
    """Index the files one by one, each timed on its own, so pages per second is per file."""
    qa.embedder.warm_up()
    timings = {}
    for file_id, pdf in pdfs.items():
        started = time.perf_counter()
        report = qa.index([pdf])
        seconds = time.perf_counter() - started
        if report.files_skipped:
            sys.exit(f"{file_id} was not indexed: {report.files_skipped}")
        timings[file_id] = {"seconds": seconds, "pages": report.pages, "passages": report.passages_added}
        progress(f"indexed {file_id}: {report.pages} pages, {report.passages_added} passages in {seconds:.1f} s")
    return timings


def ask_all(qa, questions: list[dict], pdfs: dict[str, Path]) -> list[dict]:  # noqa: ANN001 (RagQA)
    """Ask each question over the whole index and over its own file; keep the top 5 answers."""
    results = [{"id": q["id"]} for q in questions]
    started = time.perf_counter()
    everywhere = qa.ask_many([q["question"] for q in questions])
    progress(f"asked {len(questions)} questions over the whole index in {time.perf_counter() - started:.1f} s")
    for result, outcome in zip(results, everywhere):
        result["answers"] = [{"text": a.text, "source": Path(a.source or "").stem, "page": a.page} for a in outcome.answers[:5]]
    for file_id, pdf in pdfs.items():
        members = [i for i, q in enumerate(questions) if q["file"] == file_id]
        if not members:
            continue
        outcomes = qa.ask_many([questions[i]["question"] for i in members], sources=[str(pdf)])
        for i, outcome in zip(members, outcomes):
            results[i]["file_answer"] = outcome.answers[0].text if outcome.answers else ""
        progress(f"asked {file_id}: {len(members)} questions over its own file")
    return results


def score(questions: list[dict], results: list[dict]) -> list[dict]:
    """Mark each question's answers right or not; kept per question in --json so a miss can be read."""
    for question, result in zip(questions, results):
        texts = [a["text"] for a in result["answers"]]
        top = texts[0] if texts else ""
        result.update({
            "file": question["file"], "page": question["page"], "kind": question["kind"], "two_column": question["two_column"],
            "top": top, "right1": is_right(top, question["answers"]), "right5": any(is_right(t, question["answers"]) for t in texts),
            "f1": best_f1(top, question["answers"]), "right_file": is_right(result.get("file_answer", ""), question["answers"]),
        })  # fmt: skip
    return results


def summary(rows: list[dict], timing: dict, glued: tuple[int, int]) -> dict:
    """The numbers of one group of questions (a file, a table kind, or all)."""
    n = len(rows)
    return {
        "questions": n,
        "right_top1": share(sum(r["right1"] for r in rows), n),
        "right_top5": share(sum(r["right5"] for r in rows), n),
        "f1_top1": share(sum(r["f1"] for r in rows), n),
        "right_top1_own_file": share(sum(r["right_file"] for r in rows), n),
        "pages": timing.get("pages"),
        "ingest_seconds": timing.get("seconds"),
        "pages_per_second": share(timing.get("pages") or 0, timing.get("seconds") or 0),
        "glued_rate": share(*glued),
    }


def run(args: argparse.Namespace) -> dict:
    from rag_qa import RagQA

    spec = json.loads(SET.read_text(encoding="utf-8"))
    cache = Path(args.cache).expanduser().resolve()
    words = word_list(spec, cache)
    with tempfile.TemporaryDirectory(prefix="rag-qa-pdf-tables-") as work:
        pdfs = fetch_set(spec, cache, Path(work) / "pdfs")
        with RagQA.open(Path(work) / "index", reader=args.reader, answer_policy="eager", threads=args.threads) as qa:
            timings = index_files(qa, pdfs)
            texts = {file_id: qa.show(pdf).text for file_id, pdf in pdfs.items()}
            questions = json.loads(Path(args.questions).read_text(encoding="utf-8"))["questions"] if args.questions else spec["questions"]
            results = score(questions, ask_all(qa, questions, pdfs))
        finder, why_not = table_finder(args.finder)
        detection = detection_scores(finder, pdfs, spec) if finder else {"not_measured": why_not}
    glued = {file_id: glued_words(text, words) for file_id, text in texts.items()}
    files = {}
    for file_id in spec["files"]:
        rows = [r for r in results if r["file"] == file_id]
        files[file_id] = summary(rows, timings[file_id], glued[file_id][:2]) | {"glued_examples": glued[file_id][2]}
    total_time = {"pages": sum(t["pages"] for t in timings.values()), "seconds": sum(t["seconds"] for t in timings.values())}
    total_glued = (sum(g[0] for g in glued.values()), sum(g[1] for g in glued.values()))
    kinds = {kind: summary([r for r in results if r["kind"] == kind], {}, (0, 0)) for kind in sorted({r["kind"] for r in results})}
    return {
        "overall": summary(results, total_time, total_glued),
        "files": files,
        "kinds": kinds,
        "two_column": summary([r for r in results if r["two_column"]], {}, (0, 0)),
        "detection": detection,
        "settings": {"reader": args.reader, "answer_policy": "eager", "threads": args.threads, "word_list": "wamerican " + spec["wordlist"]["version"]},
        "questions": results,
    }


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def markdown(result: dict) -> str:
    """The human-readable report: a row per file, the overall row, table kinds, detection."""
    headers = ["file", "pages", "questions", "right@1", "right@5", "F1", "file@1", "pages/s", "glued"]

    def row(name: str, s: dict) -> list[object]:
        speed = "" if s["pages_per_second"] is None else f"{s['pages_per_second']:.1f}"
        return [name, s["pages"] or "", s["questions"], percent(s["right_top1"]), percent(s["right_top5"]),
                f"{100 * s['f1_top1']:.1f}", percent(s["right_top1_own_file"]), speed, percent(s["glued_rate"])]  # fmt: skip

    rows = [row(name, s) for name, s in result["files"].items()] + [row("**all**", result["overall"])]
    kinds = [row(f"kind: {k}", s) for k, s in result["kinds"].items()] + [row("two-column pages", result["two_column"])]
    detection = result["detection"]
    found = (
        f"Table detection is not measured: {detection['not_measured']}."
        if "not_measured" in detection
        else f"Table detection: precision {percent(detection['precision'])}, recall {percent(detection['recall'])}."
    )
    overall = result["overall"]
    return "\n\n".join([
        table(headers, rows), table(headers, kinds), found,
        f"Ingestion: {overall['pages']} pages in {overall['ingest_seconds']:.1f} s ({overall['pages_per_second']:.2f} pages/s); "
        f"reader {result['settings']['reader']}, answers forced (eager); glued words by {result['settings']['word_list']}.",
    ])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", default=str(DEFAULT_CACHE), help="where fetched packages are kept (default: %(default)s)")
    parser.add_argument("--reader", default=os.environ.get("RAG_QA_READER", str(READER)), help="reader model folder (default: $RAG_QA_READER, else %(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads per model (default: one per core)")
    parser.add_argument("--finder", default=FINDER, help="table detector to score, module:function taking a PDF path and returning {page: tables} (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print the full result as JSON (per question too)")
    parser.add_argument("--questions", default=None, help="ask these questions instead of the set's (a JSON file like questions.json; the held-out check: benchmarks/pdf_tables/heldout.json)")
    args = parser.parse_args()
    if Path(args.cache).expanduser().resolve().is_relative_to(Path(__file__).resolve().parent.parent):
        sys.exit("--cache must be outside the repository")
    result = run(args)
    print(json.dumps(result, indent=2, ensure_ascii=False) if args.json else markdown(result))


if __name__ == "__main__":
    main()
