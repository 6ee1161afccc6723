"""`rag-qa serve`: the HTTP API and web page."""

from __future__ import annotations

import argparse
import functools
import json
import logging
import logging.config
import os
import socket
import threading
import sys
from dataclasses import replace
from typing import Any

from rag_qa.cli.common import SharedOptions, add_answer_policy, reader_config
from rag_qa.config import RetrievalConfig, ServerConfig
from rag_qa.errors import RagQAError
from rag_qa.indexer import IndexReport
from rag_qa.keys import KeyRing
from rag_qa.pipeline import RagQA


def default_upload_dir(index: str) -> str:
    """Uploads live in the index folder, or beside the working directory for a database index."""
    from rag_qa.store.pg_schema import is_database_url

    return "rag-qa-uploads" if is_database_url(index) else os.path.join(index, "uploads")


def allowed_hosts(host: str, given: list[str] | None) -> tuple[str, ...]:
    """The Host headers to serve: --allowed-hosts, else the loopback names plus the bound address
    (for a wildcard address, this machine's name and addresses)."""
    if given:
        return tuple(h.strip() for part in given for h in part.split(",") if h.strip())
    hosts = list(ServerConfig.allowed_hosts)
    if host in ("0.0.0.0", "::"):
        name = socket.gethostname()
        try:
            addresses = socket.gethostbyname_ex(name)[2]
        except OSError:  # a name this machine cannot resolve
            addresses = []
        hosts += [name, socket.getfqdn(), *addresses]
    else:
        hosts.append(host)
    return tuple(dict.fromkeys(hosts))


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn  # noqa: F401 (the server extra is installed)

        from rag_qa.server import create_app
        from rag_qa.server.auth import startup_mode
        from rag_qa.server.lifecycle import Lifecycle, serve
    except ImportError as exc:
        raise RagQAError(f"the service needs the server extra: pip install 'rag-qa[server]' ({exc})") from None
    logs = serve_logs(args.log_format, args.log_level)  # json: every line from here on is a JSON object (the models' loading too)
    config = ServerConfig(
        upload_dir=args.upload_dir or default_upload_dir(args.index), max_upload_mb=args.max_upload_mb, max_json_kb=args.max_json_kb,
        max_question_chars=args.max_question_chars, max_top_k=args.max_top_k, batch_wait_ms=args.batch_wait_ms,
        max_queue=args.max_queue, ask_timeout_s=args.ask_timeout, allowed_hosts=allowed_hosts(args.host, args.allowed_hosts),
        cors_origins=tuple(args.cors_origin or ()), rate_limit="" if args.rate_limit in ("0", "none") else args.rate_limit,
        auth_failures="" if args.auth_failures in ("0", "none") else args.auth_failures,
    )  # fmt: skip
    if args.drain < 0 or args.stop_timeout <= 0:
        raise RagQAError(f"--drain must be 0 or more and --stop-timeout above 0 seconds, got {args.drain} and {args.stop_timeout}")
    reader = reader_config(args)
    retrieval = RetrievalConfig(mode=args.retrieval, top_k=args.top_k)
    # spin=False: the models' idle threads sleep, leaving the cores to HTTP, uploads and each other
    # (one client's median answer 145 -> 105 ms on 2 cores; docs/benchmarks.md section 5)
    with RagQA.open(
        args.index, reader=reader, retrieval=retrieval, runtime=reader.runtime, threads=args.threads, spin=False, answer_policy=args.answer_policy
    ) as qa:  # fmt: skip
        config = replace(config, auth=startup_mode(args.host, args.no_auth, KeyRing(qa.store).any_key(), config.allowed_hosts))  # server.auth decides
        lifecycle = Lifecycle()  # /ready fails until both models are loaded (now, not on the first request)
        lifecycle.warm_in_background(lambda: (qa.embedder.warm_up(), qa.reader.warm_up()))
        say(f"rag-qa serving {qa.store.path} on http://{args.host}:{args.port}/ (API docs at /docs); reader {qa.reader.config.model} in {qa.reader.config.precision}", bool(logs))
        stop = threading.Event()
        if args.watch:  # the index follows these folders while the service answers
            watcher = threading.Thread(target=qa.watch, args=(args.watch, functools.partial(log_sync, as_json=bool(logs)), stop), name="rag-qa-watch", daemon=True)
            watcher.start()
        try:
            serve(create_app(qa, config, lifecycle), lifecycle, args.drain, args.stop_timeout, host=args.host, port=args.port, log_level=args.log_level, **logs)
        finally:
            stop.set()
    return 0


def serve_logs(log_format: str, level: str) -> dict[str, Any]:
    """uvicorn's logging options for `--log-format`: none for text (uvicorn's own), and for json
    the JSON configuration (`server.observe.log_config`), applied now too, without uvicorn's access
    log (the service logs each request itself, with its id)."""
    if log_format != "json":
        return {}
    from transformers.utils import logging as transformers_logging

    from rag_qa.server.observe import log_config

    logging.config.dictConfig(log_config(level))
    logging.captureWarnings(True)  # Python's warnings as log records, not bare lines
    transformers_logging.disable_progress_bar()  # its bars ("Loading weights") are not log lines (Hugging Face Hub's too)
    return {"log_config": log_config(level), "access_log": False}  # (dictConfig consumes its dict: a fresh one for uvicorn)


def say(message: str, as_json: bool, warning: bool = False) -> None:
    """A line for the service's operator: on stderr, or with --log-format json a log record."""
    if as_json:
        logging.getLogger("rag_qa.server").log(logging.WARNING if warning else logging.INFO, message)
    else:
        print(message, file=sys.stderr, flush=True)


def log_sync(report: IndexReport, as_json: bool = False) -> None:
    """What a watched folder's sync changed, on the service's log (nothing when nothing changed);
    what it refused to prune (the watch goes on) as a warning each."""
    if report.files_indexed or report.moved or report.removed or report.files_skipped:
        changes = {"added": report.added, "changed": report.changed, "moved": report.moved, "removed": report.removed, "skipped": report.files_skipped}
        say(f"rag-qa: synced watched folders: {json.dumps({k: v for k, v in changes.items() if v})}", as_json)
    for refused in report.prune_refused:
        say(f"rag-qa: warning: not pruned: {refused['reason']}", as_json, warning=True)


def add_serve(sub: Any, o: SharedOptions) -> None:
    p = sub.add_parser("serve", parents=[o.common, o.reader, o.runtime, o.retrieval], help="HTTP API and web page for asking questions and uploading documents")
    add_answer_policy(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s; 0.0.0.0 exposes the service to your network)")
    p.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    p.add_argument("--upload-dir", metavar="DIR", help="where uploaded files are kept (default: INDEX/uploads, or ./rag-qa-uploads for a database)")
    p.add_argument("--max-upload-mb", type=float, default=ServerConfig.max_upload_mb, help="largest upload request (default: %(default)s)")
    p.add_argument("--max-json-kb", type=int, default=ServerConfig.max_json_kb, help="largest body of any other request, in kB (default: %(default)s)")
    p.add_argument("--max-question-chars", type=int, default=ServerConfig.max_question_chars, help="longest question (default: %(default)s)")
    p.add_argument("--max-top-k", type=int, default=ServerConfig.max_top_k, help="largest top_k a request may ask for (default: %(default)s)")
    p.add_argument("--batch-wait-ms", type=float, default=ServerConfig.batch_wait_ms, help="answer questions that arrive within this many ms of each other as one batch (0: no waiting) (default: %(default)s)")
    p.add_argument("--max-queue", type=int, default=ServerConfig.max_queue, help="questions that may wait; more get 503 with Retry-After (default: %(default)s)")
    p.add_argument("--ask-timeout", type=float, default=ServerConfig.ask_timeout_s, metavar="S", help="a question not answered within S seconds gets 504 (default: %(default)s)")
    p.add_argument("--allowed-hosts", action="append", metavar="A,B", help="Host headers to serve, e.g. kb.example.com behind a proxy; others get 400, which stops DNS rebinding (default: localhost, 127.0.0.1, ::1 and --host; for 0.0.0.0 this machine's names and addresses; * for any)")
    p.add_argument("--cors-origin", action="append", metavar="ORIGIN", help="a web origin allowed to call the API from a browser, e.g. https://intranet.example.com (repeatable; default: none, CORS off)")
    p.add_argument("--rate-limit", default=ServerConfig.rate_limit, metavar="N/PERIOD", help="requests per key (per client address on an open service), e.g. 600/minute; 429 with Retry-After beyond it; none to turn off (default: %(default)s)")
    p.add_argument("--auth-failures", default=ServerConfig.auth_failures, metavar="N/PERIOD", help="failed key checks per client address, e.g. 20/minute; beyond it every request from that address without a valid key gets 429 until the period passes; each failure within it goes to the audit log; none to turn off (default: %(default)s)")
    p.add_argument("--no-auth", action="store_true", help="serve without API keys on any address, even an index that has had keys (everyone who can reach it may read, upload and delete; logged as a warning); without it, a service is open only on loopback while its index has never held a key")
    p.add_argument("--watch", action="append", metavar="PATH", help="keep the index in step with this folder while serving (as `rag-qa index PATH --watch`; repeatable)")
    p.add_argument("--drain", type=float, default=5.0, metavar="S", help="on SIGTERM, /ready fails at once and the replica keeps serving S seconds more, for the load balancer to notice (default: %(default)s)")
    p.add_argument("--stop-timeout", type=float, default=30.0, metavar="S", help="then the questions and uploads in flight get up to S seconds to finish before the replica exits (default: %(default)s)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"], help="server log level (default: %(default)s)")
    p.add_argument("--log-format", default="text", choices=["text", "json"], help="json: one JSON object per log line (time, level, logger, message, request_id), one line per request, for log collectors (default: %(default)s)")
    p.set_defaults(func=cmd_serve)
