"""A real Ray cluster on this machine for tests and benchmarks: a head and more node processes
started with `ray start`, CPU-limited, with Ray's default token authentication (the token is
shared through the environment with this process and the drivers it starts)."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

RAY = Path(sys.executable).parent / "ray"


def ray_command(*args: str) -> None:
    # The nodes' workers run the models as a user's would (runtime auto: ONNX Runtime where
    # installed), not on the PyTorch default of the test process that starts them.
    env = {name: value for name, value in os.environ.items() if name != "RAG_QA_RUNTIME"}
    result = subprocess.run([str(RAY), *args], capture_output=True, text=True, timeout=120, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"ray {' '.join(args)} failed: {result.stderr[-3000:]}")


# A lost node is noticed in about 3 s instead of Ray's default 15 s (read by the head's GCS at start).
HEALTH_CHECKS = {"RAY_health_check_period_ms": "1000", "RAY_health_check_timeout_ms": "1000", "RAY_health_check_failure_threshold": "3"}


def node_options(cpus: int) -> list[str]:
    return [f"--num-cpus={cpus}", "--object-store-memory=150000000", "--node-ip-address=127.0.0.1"]


def start_node(address: str, cpus: int = 1) -> None:
    """One more node process joining the cluster at `address`."""
    ray_command("start", f"--address={address}", *node_options(cpus))


def kill_a_busy_node() -> int | None:
    """SIGKILL the node of an ingestion worker that is reading a file, as when its machine is lost:
    the node's raylet and every process it started. The raylet's pid; None if no worker is reading."""
    for worker in _pgrep("-f", "^ray::IngestWorker.process"):
        raylet = int(Path(f"/proc/{worker}/stat").read_text().rsplit(")", 1)[1].split()[1])
        if "raylet" not in Path(f"/proc/{raylet}/cmdline").read_text():
            continue
        for pid in [raylet, *_pgrep("-P", str(raylet))]:
            os.kill(pid, signal.SIGKILL)
        return raylet
    return None


def _pgrep(*args: str) -> list[int]:
    return [int(pid) for pid in subprocess.run(["pgrep", *args], capture_output=True, text=True).stdout.split()]


@contextmanager
def local_cluster(nodes: int = 2, cpus_per_node: int = 1, head_cpus: int | None = None) -> Iterator[str]:
    """Yields the cluster's address; stops it (and disconnects this process) afterwards. With
    `head_cpus=0` no work runs on the head: every worker can then be lost with its node while
    the cluster (and a driver attached to the head) lives on."""
    from rag_qa.server.background import free_port

    saved = dict(os.environ)
    os.environ.update(RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    os.environ.update(HEALTH_CHECKS)
    temp = tempfile.mkdtemp(prefix="rq-", dir="/tmp")  # short: Ray's socket paths have a length limit
    address = f"127.0.0.1:{free_port()}"
    try:
        ray_command("start", "--head", f"--port={address.split(':')[1]}", "--include-dashboard=false", f"--temp-dir={temp}", *node_options(cpus_per_node if head_cpus is None else head_cpus))
        for _ in range(nodes - 1):
            start_node(address, cpus_per_node)
        yield address
    finally:
        if "ray" in sys.modules and sys.modules["ray"] is not None:
            sys.modules["ray"].shutdown()
        ray_command("stop", "--force")
        shutil.rmtree(temp, ignore_errors=True)
        os.environ.clear()
        os.environ.update(saved)
