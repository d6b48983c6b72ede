"""The production topology of docs/deployment.md without containers (no Docker engine runs
here): the Dockerfile's own command serves the code location over gRPC, and a webserver and
a daemon load it through ``deploy/workspace.grpc.yaml`` and run the job."""

from __future__ import annotations

import glob
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dagster import DagsterInstance

from recomart_pipeline_tests.conftest import REPO_ROOT
from recomart_pipeline_tests.helpers import (
    JOBS_QUERY,
    free_port,
    graphql,
    launch_and_wait,
    project_env,
    run_status,
    stop_process_group,
    wait_until,
)

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
DOCKERFILE = (REPO_ROOT / "Dockerfile").read_text()


def _dockerfile_cmd() -> list[str]:
    return json.loads(re.search(r"^CMD (\[.*\])$", DOCKERFILE, re.MULTILINE).group(1))


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.spark"])
def test_every_file_the_dockerfile_copies_exists(name: str) -> None:
    dockerfile = (REPO_ROOT / name).read_text()
    sources = []
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            sources += shlex.split(line)[1:-1]
    assert sources
    missing = [s for s in sources if not glob.glob(str(REPO_ROOT / s))]
    assert not missing, f"the {name} copies files that do not exist: {missing}"
    extras = re.search(r'pip install --no-cache-dir "\.\[(.*)\]"', dockerfile).group(1).split(",")
    declared = (REPO_ROOT / "pyproject.toml").read_text()
    assert all(re.search(rf"^{extra} = \[", declared, re.MULTILINE) for extra in extras), extras


def _start(args: list[str], project: Path) -> subprocess.Popen:
    log = (project / f"{Path(args[0]).name}-{args[1]}.log").open("w")
    return subprocess.Popen(
        args,
        cwd=project,
        env=project_env(project),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _location_loaded(port: int) -> bool:
    try:
        nodes = graphql(port, JOBS_QUERY)["repositoriesOrError"].get("nodes") or []
    except OSError:
        return False
    return any(n["location"]["name"] == "recomart" for n in nodes)


def test_code_server_from_the_dockerfile_serves_webserver_and_daemon(sample_project):
    project = sample_project.parent
    grpc_port, web_port = free_port(), free_port()
    command = _dockerfile_cmd()
    assert command[:3] == ["dagster", "code-server", "start"]
    command[0] = str(BIN / "dagster")
    command[command.index("-h") + 1] = "127.0.0.1"
    command[command.index("-p") + 1] = str(grpc_port)
    workspace = yaml.safe_load((REPO_ROOT / "deploy" / "workspace.grpc.yaml").read_text())
    workspace["load_from"][0]["grpc_server"].update(host="127.0.0.1", port=grpc_port)
    (project / "workspace.grpc.yaml").write_text(yaml.safe_dump(workspace))
    env = project_env(project)
    # The instance storage exists before the services start, as with PostgreSQL in
    # production: three processes creating one SQLite schema at once race in its migrations.
    with DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        instance.get_runs(limit=1)
    processes = [_start(command, project)]
    try:
        processes.append(
            _start(
                [
                    str(BIN / "dagster-webserver"),
                    *("-h", "127.0.0.1", "-p", str(web_port), "-w", "workspace.grpc.yaml"),
                ],
                project,
            )
        )
        processes.append(
            _start([str(BIN / "dagster-daemon"), "run", "-w", "workspace.grpc.yaml"], project)
        )
        wait_until(lambda: _location_loaded(web_port), 180, "the gRPC code location")
        repo = next(
            n
            for n in graphql(web_port, JOBS_QUERY)["repositoriesOrError"]["nodes"]
            if n["location"]["name"] == "recomart"
        )
        assert "automated_pipeline_job" in {j["name"] for j in repo["jobs"]}
        params = {
            "selector": {
                "repositoryLocationName": "recomart",
                "repositoryName": repo["name"],
                "pipelineName": "automated_pipeline_job",
            },
            "mode": "default",
        }
        run_id = launch_and_wait(web_port, params)
        assert run_status(web_port, run_id) == "SUCCESS"
        manifest = project / "storage" / "runs" / run_id / "manifest.json"
        assert set(json.loads(manifest.read_text())["tasks"]) == {
            "numbers",
            "square",
            "square_again",
            "total",
        }
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                stop_process_group(process)
