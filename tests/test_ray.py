"""Ingestion on a real local Ray cluster started by this module on this machine: a head that runs
no work and two worker nodes of one CPU each. A Ray run equals a local run passage for passage; a
worker killed mid-run, a file that kills its workers, a lost node and then a cluster with no node
left are each survived without a hang; a run whose driver is SIGKILLed is completed by running it
again. The last two tests stop the nodes, so they run last."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from broken_files import text_pdf
from helpers import REPO, SQUAD, cli_env, needs_shared
from ray_cluster import kill_a_busy_node, local_cluster
from ray_poison import PoisonedWorker
from squad_pdfs import build_corpus
from test_docx import handbook_docx

import rag_qa.distributed
from rag_qa import RagQA
from rag_qa.errors import ConfigError, IndexCorruptError
from rag_qa.store import FaissStore

pytestmark = pytest.mark.integration
@pytest.fixture(scope="module")
def cluster():
    """The address of a Ray cluster on this machine (a head without CPUs, two nodes of one CPU each), stopped afterwards."""
    if importlib.util.find_spec("ray") is None:
        pytest.skip("the Ray tests need the ray extra (pip install -e '.[dev]')")
    with local_cluster(nodes=3, cpus_per_node=1, head_cpus=0) as address:  # sets Ray's settings before Ray is imported
        yield address


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A long PDF, the sample documents, a Word document and two broken files; and a local index of them."""
    needs_shared(SQUAD / "dev-eval.json")
    folder = tmp_path_factory.mktemp("ray-corpus")
    build_corpus(SQUAD / "dev-eval.json", folder / "squad", limit=1)
    shutil.copytree(REPO / "data", folder / "samples")
    handbook_docx(folder / "handbook.docx")
    (folder / "broken.pdf").write_bytes(text_pdf(folder / "good.pdf").read_bytes()[:200])
    (folder / "good.pdf").unlink()
    (folder / "renamed.docx").write_text("not a Word document")
    local = folder.parent / "local-index"
    with RagQA.open(local, runtime="onnx") as qa:  # the runtime the cluster's workers use (runtime auto there)
        report = qa.index([folder]).to_dict()
    return folder, local, report


def stored(index: Path) -> dict[str, tuple]:
    """Every passage with its file's hash and its vector, after checking the index is consistent
    (as any writer finds it: a FAISS file behind SQLite is brought up to date on open)."""
    with FaissStore.open(index) as store:
        store.flush()
        assert store.check() == []
        files = {f["source"]: f["content_hash"] for f in store.files()}
        return {p.id: (p.source, p.text, p.char_start, p.char_end, p.page, files[p.source], v) for p, v in store.iter_passages()}


def assert_same_index(index: Path, local: Path) -> None:
    ours, theirs = stored(index), stored(local)
    assert set(ours) == set(theirs)
    for pid, (*fields, vector) in ours.items():
        assert fields == list(theirs[pid][:-1]), pid
        assert np.abs(vector - theirs[pid][-1]).max() < 1e-5, pid


def kill_one_worker_when_it_appears(timeout_s: float = 60) -> list[int]:
    """SIGKILL one Ray ingestion worker process as soon as one exists; returns the pids killed."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = subprocess.run(["pgrep", "-f", "ray::IngestWorker"], capture_output=True, text=True).stdout.split()
        if found:
            time.sleep(1.0)  # let it take work
            os.kill(int(found[0]), signal.SIGKILL)
            return [int(found[0])]
        time.sleep(0.1)
    return []


def test_a_ray_run_equals_a_local_run_even_when_a_worker_is_killed(cluster, corpus, tmp_path):
    folder, local, local_report = corpus
    killed: list[int] = []
    killer = threading.Thread(target=lambda: killed.extend(kill_one_worker_when_it_appears()))
    killer.start()
    scratch_before = set(Path(tempfile.gettempdir()).glob("rag-qa-ray-*"))
    with RagQA.open(tmp_path / "index", runtime="onnx") as qa:
        report = qa.index([folder], ray=cluster, groups=["hr"]).to_dict()
        assert {tuple(f["groups"]) for f in qa.store.files()} == {("hr",)}  # stored with each file's passages
    killer.join()
    import ray

    assert killed, "no worker process was found to kill"
    left = set(Path(tempfile.gettempdir()).glob("rag-qa-ray-*")) - scratch_before
    assert len(left) <= len(killed)  # every worker cleaned its scratch folder, but the one killed mid-file
    assert len([n for n in ray.nodes() if n["Alive"]]) == 3
    assert {k: v for k, v in report.items() if k != "seconds"} == {k: v for k, v in local_report.items() if k != "seconds"}
    assert_same_index(tmp_path / "index", local)


def test_a_killed_driver_leaves_a_clean_index_that_a_rerun_completes(cluster, corpus, tmp_path):
    folder, local, _ = corpus
    index = tmp_path / "index"
    command = [sys.executable, "-m", "rag_qa.cli", "index", str(folder), "--index", str(index), "--ray", cluster, "--json", "--quiet"]
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=cli_env())
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and driver.poll() is None:  # kill it once the first files are stored
        if (index / "passages.sqlite3").exists():
            try:
                with FaissStore.open(index, read_only=True) as store:
                    if store.count() > 0:
                        break
            except IndexCorruptError:  # the driver is creating the database's tables this moment
                pass
        time.sleep(0.2)
    assert driver.poll() is None, "the run finished before it could be killed"
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    partial = stored(index)
    assert 0 < len(partial) < len(stored(local))
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300, env=cli_env())
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    report = json.loads(rerun.stdout)
    assert report["files_unchanged"] >= 1 and report["files_indexed"] >= 1
    assert_same_index(index, local)
    check = subprocess.run([sys.executable, "-m", "rag_qa.cli", "check", "--index", str(index), "--json"], capture_output=True, text=True, timeout=120, env=cli_env())
    assert json.loads(check.stdout)["consistent"]


def test_without_ray_or_a_cluster_the_error_is_one_line(tmp_path, monkeypatch):
    if importlib.util.find_spec("ray") is None:
        pytest.skip("the Ray tests need the ray extra (pip install -e '.[dev]')")
    command = [sys.executable, "-m", "rag_qa.cli", "index", str(REPO / "data"), "--index", str(tmp_path / "index")]
    unreachable = subprocess.run([*command, "--ray", "127.0.0.1:1"], capture_output=True, text=True, timeout=120, env=cli_env())
    assert unreachable.returncode == 2
    assert unreachable.stderr.strip().splitlines()[-1].startswith("rag-qa: error: cannot reach the Ray cluster at 127.0.0.1:1: ")
    assert not (tmp_path / "index" / "passages.sqlite3").exists() or FaissStore.open(tmp_path / "index", read_only=True).count() == 0
    from rag_qa.distributed import connect

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ConfigError, match=r"pip install 'rag-qa\[ray\]'"):
        connect("auto")


def orphaned_scratch_removed(before: set[Path], within_s: float = 60.0) -> bool:
    """What the next worker on this machine does first, once the killed workers have exited (Ray
    kills actors asynchronously: one killed as the run ends may take a moment to go)."""
    deadline = time.monotonic() + within_s
    while True:
        rag_qa.distributed._remove_orphaned_scratch()
        if not set(Path(tempfile.gettempdir()).glob("rag-qa-ray-*")) - before:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)


def test_a_file_that_kills_its_workers_costs_only_its_own_tries(cluster, tmp_path, monkeypatch, caplog):
    import ray

    ray.cloudpickle.register_pickle_by_value(sys.modules[PoisonedWorker.__module__])  # the nodes cannot import tests/
    monkeypatch.setattr(rag_qa.distributed, "IngestWorker", PoisonedWorker)
    folder = tmp_path / "docs"
    shutil.copytree(REPO / "data", folder)
    (folder / "kills-its-worker.txt").write_text("Every worker that reads this file dies.")
    (folder / "raises.txt").write_text("Every worker that reads this file raises an exception.")
    for n in range(4):  # queued behind the poisoned file on the same worker
        (folder / f"note-{n}.txt").write_text(f"Note {n}: the tool library opens at {n + 8} o'clock on Saturdays.")
    scratch_before = set(Path(tempfile.gettempdir()).glob("rag-qa-ray-*"))
    with RagQA.open(tmp_path / "index", runtime="onnx") as qa:
        report = qa.index([folder], ray=cluster).to_dict()
    assert orphaned_scratch_removed(scratch_before)  # killed workers' folders: removed by the next worker on the machine
    skipped = {Path(s["path"]).name: s["reason"] for s in report["files_skipped"]}
    assert set(skipped) == {"kills-its-worker.txt", "raises.txt"}
    assert skipped["kills-its-worker.txt"].startswith("its Ray worker died each of 3 times it read it alone (")
    assert skipped["raises.txt"].startswith("the Ray worker failed on it (ValueError: cannot read raises.txt)")
    assert report["files_indexed"] == len(list(folder.iterdir())) - 2  # nothing queued behind it lost a try
    # three deaths reading it alone, and the first one when it was sent with another file, unless
    # it happened to be sent alone (a finished file's result can die with its worker: no blame then)
    assert sum("a Ray worker was lost" in r.getMessage() for r in caplog.records) in (3, 4)
    with RagQA.open(tmp_path / "local", runtime="onnx") as qa:
        qa.index([p for p in folder.iterdir() if p.name not in skipped])
    assert_same_index(tmp_path / "index", tmp_path / "local")


@pytest.fixture(scope="module")
def many_files(tmp_path_factory):
    """48 text files of three SQuAD paragraphs each (enough to keep two workers busy for a while), and a local index of them."""
    needs_shared(SQUAD / "dev-eval.json")
    folder = tmp_path_factory.mktemp("ray-many")
    paragraphs = [p["context"] for article in json.loads((SQUAD / "dev-eval.json").read_text())["data"] for p in article["paragraphs"]]
    for n in range(48):
        (folder / f"notes-{n:02d}.txt").write_text("\n\n".join(paragraphs[(3 * n + k) % len(paragraphs)] for k in range(3)))
    local = folder.parent / "many-local"
    with RagQA.open(local, runtime="onnx") as qa:
        qa.index([folder])
    return folder, local


def index_killing_a_node(cluster: str, folder: Path, index: Path) -> tuple[dict, float, list[int]]:
    """Index `folder` on the cluster; once the first files are stored, SIGKILL a node whose worker is reading a file."""
    killed: list[int] = []

    def kill_when_files_are_stored() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            try:
                with FaissStore.open(index, read_only=True) as store:
                    if store.count() > 0 and (raylet := kill_a_busy_node()) is not None:
                        killed.append(raylet)
            except (IndexCorruptError, OSError):  # not created yet, or its tables are being created
                pass
            time.sleep(0.1)

    killer = threading.Thread(target=kill_when_files_are_stored)
    started = time.monotonic()
    killer.start()
    with RagQA.open(index, runtime="onnx") as qa:
        report = qa.index([folder], ray=cluster).to_dict()
    killer.join()
    return report, time.monotonic() - started, killed


def test_a_lost_node_s_files_are_read_by_the_node_left(cluster, many_files, tmp_path, caplog):
    import ray

    folder, local = many_files
    report, seconds, killed = index_killing_a_node(cluster, folder, tmp_path / "index")
    assert killed, "the run finished before a node could be stopped"
    assert any("a Ray worker was lost" in r.getMessage() for r in caplog.records)  # it was reading a file when its node went
    assert report["files_skipped"] == [] and report["files_indexed"] == 48
    assert seconds < 180
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2  # the head and one worker node
    assert_same_index(tmp_path / "index", local)


def test_with_no_node_left_the_run_ends_with_a_reason_and_a_local_run_completes_it(cluster, many_files, tmp_path):
    folder, local = many_files
    report, seconds, killed = index_killing_a_node(cluster, folder, tmp_path / "index")  # the last worker node
    assert killed, "the run finished before the last node could be stopped"
    assert seconds < 120  # it noticed, rather than waiting out its 10-minute stall bound
    assert 0 < report["files_indexed"] < 48
    assert len(report["files_skipped"]) == 48 - report["files_indexed"]
    assert all(s["reason"].startswith("no Ray worker is left to read it") for s in report["files_skipped"])
    stored(tmp_path / "index")  # consistent
    with RagQA.open(tmp_path / "index", runtime="onnx") as qa:
        rerun = qa.index([folder]).to_dict()
    assert rerun["files_unchanged"] == report["files_indexed"]
    assert_same_index(tmp_path / "index", local)
