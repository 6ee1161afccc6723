"""A real Ray cluster on this machine for tests and benchmarks: a head and more node processes
started with `ray start`, CPU-limited, with Ray's default token authentication (the token is
shared through the environment with this process and the drivers it starts)."""

from __future__ import annotations

import os
import secrets
import shutil
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


@contextmanager
def local_cluster(nodes: int = 2, cpus_per_node: int = 1) -> Iterator[str]:
    """Yields the cluster's address; stops it (and disconnects this process) afterwards."""
    from rag_qa.server.background import free_port

    saved = dict(os.environ)
    os.environ.update(RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    temp = tempfile.mkdtemp(prefix="rq-", dir="/tmp")  # short: Ray's socket paths have a length limit
    address = f"127.0.0.1:{free_port()}"
    common = [f"--num-cpus={cpus_per_node}", "--object-store-memory=150000000", "--node-ip-address=127.0.0.1"]
    try:
        ray_command("start", "--head", f"--port={address.split(':')[1]}", "--include-dashboard=false", f"--temp-dir={temp}", *common)
        for _ in range(nodes - 1):
            ray_command("start", f"--address={address}", *common)
        yield address
    finally:
        if "ray" in sys.modules and sys.modules["ray"] is not None:
            sys.modules["ray"].shutdown()
        ray_command("stop", "--force")
        shutil.rmtree(temp, ignore_errors=True)
        os.environ.clear()
        os.environ.update(saved)
