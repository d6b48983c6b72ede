"""``dagster dev`` as users run it: assets grouped under the pipeline, the job, Materialize.

The web UI's GraphQL API is what the UI's buttons call, so launching through it is the
"Materialize" click (runs are queued and started by the daemon ``dagster dev`` runs).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from recomart_pipeline_tests.conftest import REPO_ROOT
from recomart_pipeline_tests.e2e.test_dagster_cli import _env

pytestmark = pytest.mark.slow
DAGSTER = str(Path(sys.executable).with_name("dagster"))

ASSETS_QUERY = """
{ assetNodes { assetKey { path } groupName dependencyKeys { path } } }
"""
JOBS_QUERY = """
{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name }
  jobs { name } } } } }
"""
LAUNCH = """
mutation($params: ExecutionParams!) { launchPipelineExecution(executionParams: $params) {
  __typename ... on LaunchRunSuccess { run { runId } }
  ... on PythonError { message } ... on InvalidSubsetError { message }
  ... on RunConfigValidationInvalid { errors { message } } } }
"""
RUN_STATUS = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"
MATERIALIZATIONS = """
{ assetNodes { assetKey { path } assetMaterializations(limit: 1) { runId } } }
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _graphql(port: int, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        payload = json.loads(response.read())
    assert "errors" not in payload, payload
    return payload["data"]


def _wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)  # polling interval, not a synchronisation stand-in: we re-check state
    raise AssertionError(f"timed out waiting for {what}")


def _server_up(port: int, process: subprocess.Popen) -> bool:
    assert process.poll() is None, f"dagster dev exited with {process.returncode}"
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2):
            return True
    except OSError:
        return False


def test_webserver_lists_assets_and_materializes(sample_project):
    project = sample_project.parent
    port = _free_port()
    process = subprocess.Popen(
        [DAGSTER, "dev", "-h", "127.0.0.1", "-p", str(port), "-w", str(_workspace(project))],
        cwd=project,
        env=_env(project),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_until(lambda: _server_up(port, process), 120, "the webserver")
        nodes = _graphql(port, ASSETS_QUERY)["assetNodes"]
        groups = {n["assetKey"]["path"][0]: n["groupName"] for n in nodes}
        assert groups == dict.fromkeys(["numbers", "square", "square_again", "total"], "sample")
        deps = {
            n["assetKey"]["path"][0]: sorted(d["path"][0] for d in n["dependencyKeys"])
            for n in nodes
        }
        assert deps["total"] == ["square", "square_again"]
        repo = _graphql(port, JOBS_QUERY)["repositoriesOrError"]["nodes"][0]
        assert "automated_pipeline_job" in {j["name"] for j in repo["jobs"]}
        params = {
            "selector": {
                "repositoryLocationName": repo["location"]["name"],
                "repositoryName": repo["name"],
                "pipelineName": "automated_pipeline_job",
            },
            "mode": "default",
        }
        run_id = _launch_and_wait(port, params)
        assert _status(port, run_id) == "SUCCESS"
        nodes = _graphql(port, MATERIALIZATIONS)["assetNodes"]
        latest = {
            n["assetKey"]["path"][0]: [m["runId"] for m in n["assetMaterializations"]]
            for n in nodes
        }
        assert latest == {key: [run_id] for key in ["numbers", "square", "square_again", "total"]}
        assert (project / "storage" / "latest" / "total.json").exists()
        _launchpad_run_config(port, params, project)
        _screenshot_asset_graph(port)
    finally:
        stop_process_group(process)


def _status(port: int, run_id: str) -> str:
    return _graphql(port, RUN_STATUS, {"id": run_id})["runOrError"]["status"]


def _launch(port: int, params: dict) -> dict:
    return _graphql(port, LAUNCH, {"params": params})["launchPipelineExecution"]


def _launch_and_wait(port: int, params: dict) -> str:
    launched = _launch(port, params)
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    _wait_until(
        lambda: _status(port, run_id) in ("SUCCESS", "FAILURE", "CANCELED"),
        180,
        f"run {run_id}",
    )
    return run_id


def _launchpad_run_config(port: int, params: dict, project: Path) -> None:
    """What the launchpad sends: a typed value is checked by Dagster, a rule by our config."""
    wrong_type = _launch(
        port, {**params, "runConfigData": {"ops": {"numbers": {"config": {"count": "six"}}}}}
    )
    assert wrong_type["__typename"] == "RunConfigValidationInvalid", wrong_type
    broken = _launch_and_wait(
        port, {**params, "runConfigData": {"ops": {"numbers": {"config": {"count": -1}}}}}
    )
    assert _status(port, broken) == "FAILURE"
    run_id = _launch_and_wait(
        port, {**params, "runConfigData": {"ops": {"numbers": {"config": {"count": 6}}}}}
    )
    assert _status(port, run_id) == "SUCCESS"
    manifest = json.loads((project / "storage" / "runs" / run_id / "manifest.json").read_text())
    assert manifest["overrides"] == ["tasks.numbers.config.count=6"]
    assert manifest["tasks"]["total"]["metrics"] == {"total": 2 * sum(n * n for n in range(6))}


def stop_process_group(process: subprocess.Popen) -> None:
    """Stop ``dagster dev`` and everything it started (webserver, daemon, code servers)."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,900",
    "--virtual-time-budget=15000",
    "--enable-logging=stderr",
    "--v=0",
]


def _screenshot_asset_graph(port: int) -> None:
    """Headless Chromium renders the asset graph page without console errors; the PNG is kept
    in test-artifacts/ (or $RECOMART_TEST_ARTIFACTS) for a person to look at."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    folder = Path(os.environ.get("RECOMART_TEST_ARTIFACTS", REPO_ROOT / "test-artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    shot = folder / "asset_graph.png"
    shot.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [
                chromium,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                f"--screenshot={shot}",
                f"http://127.0.0.1:{port}/asset-groups",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert shot.exists() and shot.stat().st_size > 20_000, done.stderr[-2000:]
    errors = [
        line
        for line in done.stderr.splitlines()
        if ("CONSOLE" in line and ":ERROR:" in line) or "Uncaught" in line
    ]
    assert not errors, errors


def _workspace(project: Path) -> Path:
    """A workspace.yaml like the project's, in the throwaway project."""
    workspace = project / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_module:\n      module_name: recomart_pipeline.definitions\n"
        "      working_directory: .\n"
    )
    return workspace
