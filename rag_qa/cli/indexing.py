"""Commands that build and look after an index: index, info, check, show, delete."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rag_qa import audit
from rag_qa.audit import command_line_user
from rag_qa.cli.common import SharedOptions, emit, precision, runtime, split_groups
from rag_qa.config import (
    DEFAULT_EMBEDDING_MODEL,
    DEFAULT_EMBEDDING_REVISION,
    DEFAULT_INCLUDE,
    INDEX_TYPES,
    ChunkingConfig,
    EmbedderConfig,
    IndexSettings,
    IngestConfig,
    VectorIndexConfig,
)
from rag_qa.errors import IndexCorruptError, ManifestUnreadable, RagQAError
from rag_qa.indexer import IndexReport
from rag_qa.naming import display_name
from rag_qa.store.pg_schema import is_database_url
from rag_qa.pipeline import RagQA
from rag_qa.precision import processor_summary
from rag_qa.sync import needs_force


def _settings(args: argparse.Namespace) -> IndexSettings:
    """Settings for a new index from the command line (an existing index keeps its own)."""
    return IndexSettings(
        embedder=EmbedderConfig(model=args.embedder, revision=args.embedder_revision, batch_size=args.batch_size),
        chunking=ChunkingConfig(max_tokens=args.chunk_tokens, overlap_tokens=args.chunk_overlap),
        vector_index=VectorIndexConfig(index_type=args.index_type),
    )


def cmd_index(args: argparse.Namespace) -> int:
    ingest = IngestConfig(
        include=tuple(args.include) if args.include else DEFAULT_INCLUDE,
        exclude=tuple(args.exclude),
        max_file_mb=args.max_file_mb,
        pdf_timeout_s=args.pdf_timeout,
        ocr=not args.no_ocr,
        ocr_languages=args.ocr_lang,
        commit_passages=args.commit_every,
        save_interval_s=args.save_every,
        max_prune_share=args.max_prune_share,
    )
    groups = split_groups(args.groups)
    check_force(args)
    chosen = precision(args)
    with RagQA.open(args.index, _settings(args), ingest, runtime=runtime(args, chosen), threads=args.threads, embedder_bf16=chosen == "bf16") as qa:
        if args.watch:
            if args.ray:
                raise RagQAError("--watch runs on this machine; leave out --ray")
            print(f"rag-qa: keeping {args.index} in step with {', '.join(args.paths)}; Ctrl-C stops", file=sys.stderr)
            qa.watch(args.paths, lambda report: print_report(args, report, prune=True), groups=groups)
            return 0
        report = qa.index(args.paths, progress=not args.json and not args.quiet, ray=args.ray, groups=groups, prune=args.prune, force=args.force)
    print_report(args, report, args.prune)
    over = needs_force(report.prune_refused)
    if over:  # the rest of the run is done and reported; what it would not remove makes it fail
        raise RagQAError("; ".join(r["reason"] for r in over))
    return 0


def check_force(args: argparse.Namespace) -> None:
    """`--force` lifts the share limit of one `--prune` run; a watch never forces."""
    if args.force and args.watch:
        raise RagQAError("--watch never forces a prune: run `rag-qa index PATHS --prune --force` once, then watch")
    if args.force and not args.prune:
        raise RagQAError("--force only applies to --prune")


def print_report(args: argparse.Namespace, report: IndexReport, prune: bool) -> None:
    """One run's report: JSON (one object per line when watching), or what changed and the totals."""
    if args.json:
        print(json.dumps(report.to_dict()), flush=True)
        return
    for skipped in report.files_skipped:
        print(f"skipped {skipped['path']}: {skipped['reason']}", file=sys.stderr)
    for warning in report.warnings:
        print(f"warning: {warning['path']}: {warning['reason']}", file=sys.stderr)
    for move in report.moved:
        print(f"moved {display_name(move['from'])} -> {display_name(move['to'])}")
    for source in report.removed:
        print(f"removed {display_name(source)}")
    for back in report.groups_restored:
        print(f"{display_name(back['source'])} came back under a pruned name: it has its groups again ({','.join(back['groups'])})")
    for refused in report.prune_refused:
        if args.watch or refused not in needs_force(report.prune_refused):  # those end a single run with an error that says so
            print(f"warning: not pruned: {refused['reason']}", file=sys.stderr)
    unsupported = f" ({report.files_unsupported} of an unsupported format)" if report.files_unsupported else ""
    synced = f", {len(report.moved)} moved, {len(report.removed)} removed" if prune else ""
    scanned = f"; {report.ocr_pages} scanned page(s) read by OCR in {report.seconds['ocr']:.1f} s" if report.ocr_pages else ""
    print(
        f"{report.files_indexed} files indexed ({len(report.added)} new, {len(report.changed)} changed){synced}, {report.files_unchanged} unchanged, "
        f"{len(report.files_skipped)} skipped{unsupported}; {report.passages_added} passages added, {report.passages_total} in {args.index}{scanned}",
        flush=True,
    )


def cmd_info(args: argparse.Namespace) -> int:
    with RagQA.open(args.index, read_only=True) as qa:
        info = qa.info().to_dict() | processor_summary()
        if args.files:
            info["file_list"] = [{k: f[k] for k in ("source", "passages", "content_hash", "groups")} for f in qa.store.files()]

    def human() -> None:
        for key, value in info.items():
            if key != "file_list":
                print(f"{key:20} {value}")
        for f in info.get("file_list", []):
            print(f"  {f['passages']:6} passages  {f['source']}" + (f"  (groups: {','.join(f['groups'])})" if f["groups"] else ""))

    emit(args, info, human)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    if args.repair and args.no_repair:
        raise RagQAError("--repair and --no-repair contradict each other")
    from rag_qa.store.faiss_store import FaissStore

    restored = []
    try:
        qa = RagQA.open(args.index, read_only=args.no_repair)
    except IndexCorruptError as exc:
        if not (args.repair and isinstance(exc, ManifestUnreadable) and FaissStore.restore_manifest(args.index)):
            problem = str(exc)
            emit(args, {"consistent": False, "problems": [problem], "recovered": False}, lambda: print(f"NOT consistent: {problem}"))
            return 1
        restored, qa = ["the manifest, from its copy in the database"], RagQA.open(args.index)
    with qa:
        recovered = qa.store.recovered
        rebuilt = restored + (qa.store.repair() if args.repair else [])
        qa.store.flush()
        problems = qa.store.check()
        info = qa.info().to_dict()
    result = {"consistent": not problems, "problems": problems, "recovered": recovered, "rebuilt": rebuilt, **info}

    def human() -> None:
        if recovered:
            print("the FAISS index was behind SQLite (interrupted run?) and was rebuilt from it")
        for what in rebuilt:
            print(f"rebuilt {what}")
        if problems:
            print("NOT consistent:\n  " + "\n  ".join(problems))
        else:
            print(f"consistent: {info['passages']} passages, {info['vectors']} vectors, {info['files']} files")

    emit(args, result, human)
    return 1 if problems else 0


def cmd_backup(args: argparse.Namespace) -> int:
    if is_database_url(args.index):
        raise RagQAError("back up a PostgreSQL index with pg_dump (and its upload folder with it)")
    with RagQA.open(args.index, read_only=True) as qa:
        copied = qa.store.backup(args.target)
    emit(args, {"backup": args.target, "files": copied}, lambda: print(f"backed up {args.index} to {args.target} ({len(copied)} files; restore with `rag-qa restore {args.target} --index DIR`)"))
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from rag_qa.keys import KeyRing
    from rag_qa.store.faiss_store import FaissStore

    if is_database_url(args.index):
        raise RagQAError("restore a PostgreSQL index with pg_restore")
    info = FaissStore.restore(args.backup, args.index)  # all or nothing: checked in a temporary folder, then renamed
    with RagQA.open(args.index, read_only=True) as qa:
        active = sum(key.revoked_at is None for key in KeyRing(qa.store).list())
    if active:
        print(f"warning: {args.index} holds {active} active key{'s' if active != 1 else ''} as they were when the backup was made: "
              f"keys revoked since work again. Review them with `rag-qa keys list --index {args.index}` and revoke those that must stay revoked",
              file=sys.stderr)  # fmt: skip
    result = {"restored": args.index, "passages": info.passages, "files": info.files, "active_keys": active}
    emit(args, result, lambda: print(f"restored {args.index}: {info.files} files, {info.passages} passages"))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with RagQA.open(args.index, read_only=True) as qa:
        shown = qa.show(args.source, args.page)
    emit(args, shown.to_dict(), lambda: print(shown.text))
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    with RagQA.open(args.index) as qa:
        removed = qa.delete(args.source, event=audit.event(command_line_user(), "delete", args.source))  # written with the delete
        remaining = qa.store.count()
    result = {"source": args.source, "passages_removed": removed, "passages_total": remaining}
    found = removed > 0

    def human() -> None:
        if found:
            print(f"removed {removed} passages of {args.source}; {remaining} remain")
        else:
            print(f"{args.source} is not in the index (see `rag-qa info --files --index {args.index}`)")

    emit(args, result, human)
    return 0 if found else 1


def add_index(sub: Any, o: SharedOptions) -> None:
    p = sub.add_parser("index", parents=[o.common, o.runtime], help="add or update files and folders in an index")
    p.add_argument("paths", nargs="+", metavar="PATH", help="files or folders (walked recursively)")
    p.add_argument("--include", action="append", metavar="GLOB", help=f"file patterns to index in folders (default: {' '.join(DEFAULT_INCLUDE)})")
    p.add_argument("--exclude", action="append", default=[], metavar="GLOB", help="file patterns to leave out")
    p.add_argument("--max-file-mb", type=float, default=IngestConfig.max_file_mb, help="skip larger files (default: %(default)s)")
    p.add_argument("--pdf-timeout", type=float, default=IngestConfig.pdf_timeout_s, metavar="S", help="give up on a PDF, and on the OCR of each scanned page, after S seconds (default: %(default)s)")
    p.add_argument("--no-ocr", action="store_true", help="do not read scanned PDF pages with Tesseract OCR (they are reported instead)")
    p.add_argument("--ocr-lang", default=IngestConfig.ocr_languages, metavar="LANGS", help="Tesseract languages of scanned pages, joined by '+', such as eng+deu (each needs its tesseract-ocr-LANG package; default: %(default)s)")
    p.add_argument("--commit-every", type=int, default=IngestConfig.commit_passages, metavar="N", help="commit to the index every N passages: an interrupted run loses at most this many (default: %(default)s)")
    p.add_argument("--save-every", type=float, default=IngestConfig.save_interval_s, metavar="S", help="save the FAISS file at least every S seconds (default: %(default)s)")
    p.add_argument("--precision", choices=("fp32", "bf16", "auto"), default=None, help="number format the embedder computes in: fp32 (exact), bf16 (matrix products in bfloat16 on PyTorch, where the processor has native bf16 instructions, else fp32 with a notice), auto (bf16 where native) (default: fp32)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--watch", action="store_true", help="keep syncing (as --prune) whenever files under PATHs change, until Ctrl-C; a changed file is read once it has held still for a second")
    p.add_argument("--prune", action="store_true", help="make the index mirror PATHs: remove files gone from them (deleted, moved away, now excluded) and re-point a moved file's passages without re-embedding. "
                   "Never removes what a missing, empty or unreadable folder or an index folder (its uploads) held, nor more than --max-prune-share of a folder's files without --force; a removed file's groups are kept for when it comes back")
    p.add_argument("--force", action="store_true", help="with --prune: remove files even when they are more than --max-prune-share of a folder's (only once you know they are gone for good)")
    p.add_argument("--max-prune-share", type=float, default=IngestConfig.max_prune_share, metavar="S", help="a --prune run that would remove more than this share of a PATH's indexed files removes none of them there and fails; a --watch run says so and keeps watching (default: %(default)s)")
    p.add_argument("--groups", action="append", metavar="A,B", help="access groups for every file of this run (unchanged files too): only keys holding one of them (and admin keys) may read the files; without it, files keep theirs and new files have none (every key reads them)")
    p.add_argument("--ray", nargs="?", const="auto", metavar="auto|ADDRESS", help="load, chunk and embed on a Ray cluster (the ray extra): auto joins the local Ray instance or starts one; ADDRESS is host:port or ray://host:10001. Files travel to the workers as bytes (at most --max-file-mb each); the driver writes the index")
    new = p.add_argument_group("settings for a new index (an existing index keeps its own)")
    new.add_argument("--embedder", default=DEFAULT_EMBEDDING_MODEL, metavar="MODEL", help="sentence-transformers model id or local folder (default: %(default)s)")
    new.add_argument("--embedder-revision", default=DEFAULT_EMBEDDING_REVISION, metavar="REV", help="Hub revision of the embedder (default: pinned)")
    new.add_argument("--batch-size", type=int, default=EmbedderConfig.batch_size, help="embedding batch size (default: %(default)s)")
    new.add_argument("--chunk-tokens", type=int, default=ChunkingConfig.max_tokens, help="passage size in tokens (default: %(default)s)")
    new.add_argument("--chunk-overlap", type=int, default=ChunkingConfig.overlap_tokens, help="overlap in tokens (default: %(default)s)")
    new.add_argument("--index-type", choices=INDEX_TYPES, default="auto", help="FAISS index: exact flat, HNSW, or auto by size (default: auto)")
    p.set_defaults(func=cmd_index)


def add_maintenance(sub: Any, o: SharedOptions) -> None:
    """info, check, show and delete: looking after an index."""
    p = sub.add_parser("info", parents=[o.common], help="describe an index")
    p.add_argument("--files", action="store_true", help="also list the indexed files")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("check", parents=[o.common], help="verify that FAISS, SQLite and the full-text table agree")
    p.add_argument("--no-repair", action="store_true", help="only report; do not rebuild a stale FAISS file")
    p.add_argument("--repair", action="store_true", help="also rebuild the full-text table and the FAISS file from the passages in SQLite (SQLite itself cannot be rebuilt: restore a backup)")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("backup", parents=[o.common], help="copy an index to a new folder, safely while it is in use (SQLite's online backup), with the uploaded originals kept in the index folder")
    p.add_argument("target", metavar="FOLDER", help="a new folder for the copy")
    p.set_defaults(func=cmd_backup)

    p = sub.add_parser("restore", parents=[o.common], help="make --index a copy of a backup, all or nothing (never over an existing index); keys revoked since the backup come back: review them after")
    p.add_argument("backup", metavar="FOLDER", help="a folder made by `rag-qa backup`")
    p.set_defaults(func=cmd_restore)

    p = sub.add_parser("show", parents=[o.common], help="print the text that a document's answer offsets index")
    p.add_argument("source", metavar="SOURCE", help="the file path as indexed (see `rag-qa info --files`)")
    p.add_argument("--page", type=int, metavar="N", help="only page N of a PDF (JSON gives its start and end in the whole text)")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("delete", parents=[o.common], help="remove a file's passages from an index")
    p.add_argument("source", metavar="SOURCE", help="the file path as indexed")
    p.set_defaults(func=cmd_delete)
