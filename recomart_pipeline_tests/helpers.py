"""Shared test helpers: polling with a deadline, ``dagster dev`` in a throwaway project."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

DAGSTER = str(Path(sys.executable).with_name("dagster"))
POLL_INTERVAL_S = 0.2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    """Re-check ``predicate`` until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(POLL_INTERVAL_S)  # polling interval, not a synchronisation stand-in
    raise AssertionError(f"timed out waiting for {what}")


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        payload = json.loads(response.read())
    assert "errors" not in payload, payload
    return payload["data"]


def write_workspace(project: Path) -> Path:
    """A workspace.yaml like the project's, in the throwaway project."""
    workspace = project / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_module:\n      module_name: recomart_pipeline.definitions\n"
        "      working_directory: .\n"
    )
    return workspace


def stop_process_group(process: subprocess.Popen) -> None:
    """Stop ``dagster dev`` and everything it started (webserver, daemon, code servers)."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _server_up(port: int, process: subprocess.Popen) -> bool:
    assert process.poll() is None, f"dagster dev exited with {process.returncode}"
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2):
            return True
    except OSError:
        return False


@contextmanager
def dagster_dev(project: Path, env: dict[str, str], timeout: float = 120) -> Iterator[int]:
    """``dagster dev`` on the project's pipeline_config.yaml; yields its port once it serves."""
    port = free_port()
    process = subprocess.Popen(
        [DAGSTER, "dev", "-h", "127.0.0.1", "-p", str(port), "-w", str(write_workspace(project))],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_until(lambda: _server_up(port, process), timeout, "the webserver")
        yield port
    finally:
        stop_process_group(process)
