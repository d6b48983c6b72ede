"""Checking that a real service answers with the expected model version.

Verification waits on ``/ready`` — the model loaded, its kernels warmed and its precomputed
answers checked against live scoring — not on liveness, so "deployed" means the version
answers at full speed. A service too old to have ``/ready`` is asked ``/health`` instead.
The service reports which champion it refused and why; verification reads that to fail with
the service's own reason (at once for a service it started itself) instead of waiting for a
timeout that says nothing.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from recomart_pipeline.contract.errors import TaskError

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MIN_ADMIN_TOKEN_CHARS = 16
# Poll pauses. The service opens its port only once its champion is loaded, warmed and
# verified, so while nothing listens the wait is its start (1.5-2.5 s at 20M events) and a
# refused connection costs nothing on either side: poll often, to notice the open port
# within 0.05 s instead of up to 0.2 s. Once it answers, each /ready runs its probe requests
# through the app: poll gently while it has no (or another) model.
CONNECT_POLL_SECONDS = 0.05
READY_POLL_SECONDS = 0.2


class VerificationError(TaskError):
    error_class = "deploy_verification_failed"


def read_admin_token(name: str | None) -> str | None:
    """The service's admin token, held by environment variable ``name`` (None: no token).

    The token lives in the environment only, never on a command line or in a config file, so
    it is not in shell history, process lists or run manifests. It is refused (never echoed)
    unless it is long enough not to be guessed and fits in an HTTP header.
    """
    if name is None:
        return None
    if not ENV_NAME.fullmatch(name):
        raise ValueError(f"admin token variable {name!r} is not an environment variable name")
    token = os.environ.get(name, "")
    if not token:
        raise ValueError(
            f"the environment variable {name} that should hold the admin token is not set "
            "(or empty); export it, or leave the admin token unset to keep admin endpoints off"
        )
    if len(token) < MIN_ADMIN_TOKEN_CHARS or not all(33 <= ord(c) <= 126 for c in token):
        raise ValueError(
            f"the admin token in {name} must be at least {MIN_ADMIN_TOKEN_CHARS} printable "
            "ASCII characters without spaces "
            "(e.g. python -c 'import secrets; print(secrets.token_urlsafe())')"
        )
    return token


def _get(url: str, method: str = "GET", token: str | None = None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _readiness(base_url: str) -> dict[str, Any]:
    """``/ready``'s answer (``/health``'s from a service that predates ``/ready``)."""
    try:
        return _answer(f"{base_url}/ready")
    except urllib.error.HTTPError as exc:
        if exc.code != 404:
            raise
        return _answer(f"{base_url}/health")


def _answer(url: str, method: str = "GET", token: str | None = None) -> dict[str, Any]:
    """The JSON the service answered, a 503 "no model" answer included."""
    try:
        return _get(url, method, token)
    except urllib.error.HTTPError as exc:
        if exc.code != 503:
            raise
        try:
            return json.loads(exc.read())
        except ValueError:
            raise exc from None


def _refused(health: dict[str, Any], version: str) -> str | None:
    """The service's reason for refusing ``version``, if it says it did."""
    problem = health.get("problem")
    if isinstance(problem, dict) and problem.get("version") == version:
        return str(problem.get("reason"))
    return None


def _state(health: dict[str, Any]) -> str:
    problem = health.get("problem")
    serving = f"serving {health.get('model_version') or 'no model'}"
    if isinstance(problem, dict):
        which = f"champion {problem['version']} refused: " if problem.get("version") else ""
        return f"{serving}; {which}{problem.get('reason')}"
    return serving


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_for_health(
    base_url: str, timeout_s: float, process: subprocess.Popen | None = None
) -> dict[str, Any]:
    """``/ready`` once the service has a model to serve, warmed and verified."""
    return _poll_health(base_url, timeout_s, process, lambda health: bool(health.get("ready")))


def wait_for_version(
    base_url: str,
    version: str,
    timeout_s: float,
    process: subprocess.Popen | None = None,
    *,
    fail_fast: bool = False,
) -> dict[str, Any]:
    """``/ready`` once the service serves ``version``, ready; with ``fail_fast`` (a service
    that loaded this registry afresh) its refusal of ``version`` fails at once with its reason."""

    def done(health: dict[str, Any]) -> bool:
        reason = _refused(health, version) if fail_fast else None
        if reason is not None:
            raise VerificationError(f"the service refused model {version}: {reason}")
        return bool(health.get("ready")) and health.get("model_version") == version

    return _poll_health(base_url, timeout_s, process, done, f"serve model {version}")


def _poll_health(
    base_url: str,
    timeout_s: float,
    process: subprocess.Popen | None,
    done: Callable[[dict[str, Any]], bool],
    goal: str = "have a model to serve",
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise VerificationError(
                f"the service exited with code {process.returncode} before /ready answered"
            )
        try:
            health = _readiness(base_url)
        except (urllib.error.URLError, OSError, json.JSONDecodeError) as exc:
            last = str(exc)
            pause = CONNECT_POLL_SECONDS
        else:
            if done(health):
                return health
            last = _state(health)
            pause = READY_POLL_SECONDS
        time.sleep(pause)
    raise VerificationError(f"{base_url} did not {goal} within {timeout_s:g}s (last: {last})")


def check_service(base_url: str, version: str, user_id: str | None) -> dict[str, Any]:
    """The service is ready with ``version`` and recommends for a known user."""
    health = _readiness(base_url)
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
        wait_for_version(base_url, version, timeout_s, process, fail_fast=True)
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
    base_url: str,
    version: str,
    user_id: str | None,
    timeout_s: float,
    admin_token: str | None = None,
) -> str:
    """Check that a long-running service serves ``version``: with the admin token it is told
    to reload at once (and its refusal fails at once), without it the service is given
    ``timeout_s`` to notice the new champion by itself."""
    if admin_token is not None:
        try:
            answer = _answer(f"{base_url}/admin/reload", "POST", admin_token)
        except urllib.error.HTTPError as exc:
            detail = _detail(exc)
            raise VerificationError(
                f"the service at {base_url} refused POST /admin/reload (HTTP {exc.code}: {detail})"
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            raise VerificationError(f"cannot reach the service at {base_url}: {exc}") from exc
        reason = _refused(answer, version)
        if reason is not None:
            raise VerificationError(f"the service refused model {version}: {reason}")
    wait_for_version(base_url, version, timeout_s)
    check_service(base_url, version, user_id)
    return base_url


def _detail(error: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(error.read()).get("detail"))
    except (ValueError, AttributeError, OSError):
        return error.reason
