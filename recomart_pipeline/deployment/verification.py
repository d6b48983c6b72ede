"""Checking that a real service answers with the expected model version."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from recomart_pipeline.contract.errors import TaskError


class VerificationError(TaskError):
    error_class = "deploy_verification_failed"


def _get(url: str, method: str = "GET") -> dict[str, Any]:
    request = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_for_health(
    base_url: str, timeout_s: float, process: subprocess.Popen | None = None
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    last_error = "no answer"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise VerificationError(
                f"the service exited with code {process.returncode} before /health answered"
            )
        try:
            return _get(f"{base_url}/health")
        except (urllib.error.URLError, OSError, json.JSONDecodeError) as exc:
            last_error = str(exc)
        time.sleep(0.2)  # poll interval while the service starts
    raise VerificationError(
        f"{base_url}/health did not answer within {timeout_s:g}s ({last_error})"
    )


def check_service(base_url: str, version: str, user_id: str | None) -> dict[str, Any]:
    """The service reports ``version`` and recommends for a known user."""
    health = _get(f"{base_url}/health")
    model = _get(f"{base_url}/model")
    if health.get("model_version") != version or model.get("version") != version:
        raise VerificationError(
            f"the service reports model {model.get('version')!r}, expected {version!r}"
        )
    if user_id is not None:
        answer = _get(f"{base_url}/recommendations/{user_id}?k=5")
        if answer.get("strategy") != "personalized" or not answer.get("items"):
            raise VerificationError(
                f"no personalised recommendations for known user {user_id}: {answer}"
            )
    return {"health": health, "model": model}


def verify_in_child_service(
    registry_dir: Path, version: str, user_id: str | None, host: str, port: int, timeout_s: float
) -> str:
    """Start the real service on a free port, check it, stop it; returns the URL it used."""
    port = port or free_port(host)
    base_url = f"http://{host}:{port}"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "recomart_pipeline.serving",
            "--registry",
            str(registry_dir),
            "--host",
            host,
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_health(base_url, timeout_s, process)
        check_service(base_url, version, user_id)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return base_url


def verify_running_service(
    base_url: str, version: str, user_id: str | None, timeout_s: float
) -> str:
    """Ask a long-running service to reload the champion, then check it."""
    try:
        _get(f"{base_url}/admin/reload", method="POST")
    except (urllib.error.URLError, OSError) as exc:
        raise VerificationError(f"cannot reach the service at {base_url}: {exc}") from exc
    wait_for_health(base_url, timeout_s)
    check_service(base_url, version, user_id)
    return base_url
