"""Shared test helpers: throwaway projects, the CLI and ``dagster dev`` in them, polling with a
deadline. Test modules import these rather than each other's private functions."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import ModuleType

DAGSTER = str(Path(sys.executable).with_name("dagster"))
POLL_INTERVAL_S = 0.2
REPO_ROOT = Path(__file__).resolve().parents[1]
# The shipped default pipeline's tasks, in order.
DEFAULT_TASKS = [
    "ingestion",
    "validation",
    "preparation",
    "features",
    "training",
    "evaluation",
    "inference",
    "report",
    "deploy",
    "monitoring",
]
# storage: section putting a test project's storage in an S3 bucket (format with bucket=).
S3_STORAGE = """
        storage:
          base_dir: s3://{bucket}/pipelines/sample
          object_store:
            endpoint_url: ${{S3_ENDPOINT_URL}}
            access_key_id: ${{AWS_ACCESS_KEY_ID}}
            secret_access_key: ${{AWS_SECRET_ACCESS_KEY}}
"""


# The users' contract; tests take its examples from the document itself, never retyped.
# $RECOMART_CONFIG_GUIDE, else ../shared/spec next to the project, else the workplace's copy.
CONFIG_GUIDE = next(
    (
        path
        for path in (
            Path(os.environ.get("RECOMART_CONFIG_GUIDE", "")),
            REPO_ROOT.parent / "shared" / "spec" / "recomart-config-guide.md",
            Path("/work/shared/spec/recomart-config-guide.md"),
        )
        if path.is_file()
    ),
    REPO_ROOT.parent / "shared" / "spec" / "recomart-config-guide.md",
)


def guide_yaml_block(first_line: str) -> str:
    """The guide's ```yaml block that starts with ``first_line`` (e.g. its file-name comment),
    verbatim."""
    text = CONFIG_GUIDE.read_text(encoding="utf-8")
    blocks = re.findall(r"^```ya?ml\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)
    found = [block for block in blocks if block.startswith(first_line)]
    assert len(found) == 1, f"{CONFIG_GUIDE} has {len(found)} yaml blocks starting {first_line!r}"
    return found[0]


def project_env(project: Path) -> dict[str, str]:
    """The environment of a CLI or Dagster process working on ``project``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")])
    env["DAGSTER_HOME"] = str(project / "dagster_home")
    env["PIPELINE_CONFIG"] = str(project / "pipeline_config.yaml")
    (project / "dagster_home").mkdir(exist_ok=True)
    return env


def run_in_project(
    args: list[str], project: Path, timeout: float = 240, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``args`` run in ``project`` with its environment (plus ``env``), output captured."""
    return subprocess.run(
        args,
        cwd=project,
        env={**project_env(project), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def copy_default_project(target: Path, data_from: Path | None = None) -> Path:
    """The shipped config (and, unless ``data_from`` is given, the bundled data) in ``target``."""
    shutil.copy(REPO_ROOT / "pipeline_config.yaml", target / "pipeline_config.yaml")
    if data_from is None:
        shutil.copytree(REPO_ROOT / "data", target / "data")
    return target


# ``dagster job execute`` of the project's job, the way the docs tell users to run it.
JOB_EXECUTE = [
    DAGSTER,
    "job",
    "execute",
    "-m",
    "recomart_pipeline.definitions",
    "-j",
    "automated_pipeline_job",
]
# numbers -> square -> finish, where finish fails (not retried) until flag.txt exists: a run
# that fails late and can be resumed once the file is written. Format with sample=SAMPLE.
RESUMABLE_PIPELINE = """
tasks:
  numbers: {{callable: "{sample}:make_numbers"}}
  square: {{callable: "{sample}:square", depends_on: [numbers]}}
  finish: {{callable: "{sample}:needs_file", depends_on: [square], config: {{path: flag.txt}}}}
"""


def write_index_files(
    folder: Path, n_users: int, n_items: int, user_prefix: str = "u", item_prefix: str = "i"
) -> dict[str, Path]:
    """The id indexes a registered model is served with (``<prefix><n>`` ids), plus the
    path its training matrix goes to: the serving files of a test registry."""
    import pandas as pd

    files = {
        "user_index.parquet": folder / "user_index.parquet",
        "item_index.parquet": folder / "item_index.parquet",
        "train_implicit.npz": folder / "train_implicit.npz",
    }
    users = [f"{user_prefix}{i}" for i in range(n_users)]
    items = [f"{item_prefix}{j}" for j in range(n_items)]
    pd.DataFrame({"user_id": users, "user_idx": range(n_users)}).to_parquet(
        files["user_index.parquet"]
    )
    pd.DataFrame({"item_id": items, "item_idx": range(n_items)}).to_parquet(
        files["item_index.parquet"]
    )
    return files


def run_id_of(stdout: str) -> str:
    """The run id from the last line ``run`` prints (``run <id>: SUCCESS``)."""
    return stdout.strip().splitlines()[-1].split()[1].rstrip(":")


def table_start(stdout: str) -> int:
    """Where the table ``run`` or ``reproduce`` ends with starts: its header line (progress
    lines above it may say "task succeeded" too, but indented)."""
    found = re.search(r"^task +(status|result)", stdout, re.M)
    assert found, f"no task table in: {stdout[-2000:]}"
    return found.start()


def task_rows(stdout: str) -> dict[str, str]:
    """task -> status from the final table ``run`` prints."""
    table = stdout[table_start(stdout) :].splitlines()[1:-1]
    return {line.split()[0]: line.split()[1] for line in table}


def task_table(stdout: str) -> dict[str, tuple[str, str]]:
    """task -> (status, detail) from the final table ``run`` prints."""
    table = stdout[table_start(stdout) :].splitlines()[1:-1]
    rows = {}
    for line in table:
        cells = line.split(maxsplit=4)
        rows[cells[0]] = (cells[1], cells[4] if len(cells) > 4 else "")
    return rows


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


def _moto_up(endpoint: str, process: subprocess.Popen) -> bool:
    assert process.poll() is None, f"moto_server exited with {process.returncode}"
    try:
        with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):
            return True
    except OSError:
        return False


@contextmanager
def moto_server() -> Iterator[str]:
    """A real S3-compatible server (moto) on 127.0.0.1; yields its endpoint URL."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    moto = Path(sys.executable).with_name("moto_server")
    process = subprocess.Popen(
        [str(moto), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: _moto_up(endpoint, process), 30, "moto_server to start")
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=20)


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", body, {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            payload = json.loads(response.read())
    except urllib.error.HTTPError as error:
        # The webserver answers 500 when a resolver caught an exception (a PythonError in the
        # data, e.g. a launch the code location refused); the UI shows that data, so do we.
        payload = json.loads(error.read())
        if not payload.get("data"):
            raise
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
def dagster_dev(
    project: Path, env: dict[str, str], timeout: float = 120, log: Path | None = None
) -> Iterator[int]:
    """``dagster dev`` on the project's pipeline_config.yaml; yields its port once it serves.
    ``log`` receives its console output."""
    port = free_port()
    with ExitStack() as stack:
        output = stack.enter_context(log.open("w")) if log else subprocess.DEVNULL
        process = subprocess.Popen(
            [
                DAGSTER,
                "dev",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-w",
                str(write_workspace(project)),
            ],
            cwd=project,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_until(lambda: _server_up(port, process), timeout, "the webserver")
            yield port
        finally:
            stop_process_group(process)


# The GraphQL the web UI's buttons send.
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


def run_status(port: int, run_id: str) -> str:
    return graphql(port, RUN_STATUS, {"id": run_id})["runOrError"]["status"]


def job_params(port: int, job: str = "automated_pipeline_job", **extra: object) -> dict:
    """The launch parameters the launchpad sends for ``job`` of the (only) code location,
    with ``extra`` keys (``runConfigData``, ``assetSelection`` in the selector's place...)."""
    repo = graphql(port, JOBS_QUERY)["repositoriesOrError"]["nodes"][0]
    selector = {
        "repositoryLocationName": repo["location"]["name"],
        "repositoryName": repo["name"],
        "pipelineName": job,
    }
    return {"selector": selector, "mode": "default", **extra}


def launch_run(port: int, params: dict) -> dict:
    return graphql(port, LAUNCH, {"params": params})["launchPipelineExecution"]


def launch_and_wait(port: int, params: dict) -> str:
    launched = launch_run(port, params)
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    wait_until(
        lambda: run_status(port, run_id) in ("SUCCESS", "FAILURE", "CANCELED"),
        180,
        f"run {run_id}",
    )
    return run_id


def benchmark_module(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` imported as module ``name`` (the scripts are not a package;
    registered in ``sys.modules`` so that dataclasses and pickling inside them work)."""
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "benchmarks" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
