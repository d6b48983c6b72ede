"""Deploy flows and the HTTP service as a real process on 127.0.0.1."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from recomart_pipeline import PipelineConfig
from recomart_pipeline.deployment.registry import ModelRegistry
from recomart_pipeline.deployment.serving_arrays import scratch_folder, with_serving_arrays
from recomart_pipeline.deployment.verification import free_port, wait_for_health
from recomart_pipeline.runtime.runner import TaskFailure, run_task
from recomart_pipeline.serving.state import load_state
from recomart_pipeline_tests.deployment.conftest import (
    ADMIN_TOKEN,
    ADMIN_TOKEN_ENV,
    running_service,
    serve_command,
    set_deploy_config,
)
from recomart_pipeline_tests.helpers import wait_until

pytestmark = pytest.mark.slow


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, json.loads(response.read())


def _registry(config) -> ModelRegistry:
    return ModelRegistry(config.storage_root / "registry")


def test_deploy_promotes_verifies_and_writes_the_marker(trained):
    outcome = run_task(trained, "deploy", "run-1")
    deployment = json.loads(outcome.checkpoint.path("deployment").read_text())
    assert deployment["status"] == "promoted" and deployment["champion"] == "v0001"
    # the verification URL has a free port: a run fact, kept in the task's metadata
    assert outcome.checkpoint.metadata["service_url"].startswith("http://127.0.0.1:")
    assert "service_url" not in deployment
    assert "service up" in outcome.checkpoint.path("service_marker").read_text()
    again = run_task(trained, "deploy", "run-2")  # same model bytes: idempotent
    assert again.checkpoint.metadata["deploy_status"] == "already_champion"
    assert [v.version for v in _registry(trained).list_versions()] == ["v0001"]


def test_failed_gates_are_never_deployed(trained):
    evaluation = json.loads((trained.storage_root / "latest" / "evaluation.json").read_text())
    path = trained.storage_root / evaluation["artifacts"]["evaluation"]["path"]
    data = json.loads(path.read_text())
    data["passed"] = False
    data["gates"] = [{"name": "gate_min_ndcg_at_10", "passed": False, "detail": "0.01 < 0.5"}]
    path.write_text(json.dumps(data))
    pointer = trained.storage_root / "latest" / "evaluation.json"
    record = json.loads(pointer.read_text())
    from recomart_pipeline.contract.files import sha256_file

    record["artifacts"]["evaluation"]["sha256"] = sha256_file(path)
    (trained.storage_root / "runs" / "run-1" / "evaluation" / "_result.json").write_text(
        json.dumps(record)
    )
    pointer.write_text(json.dumps(record))
    with pytest.raises(TaskFailure) as excinfo:
        run_task(trained, "deploy", "run-2")
    assert excinfo.value.error_class == "quality_gate_failed"
    assert _registry(trained).champion() is None


def test_approval_required_waits_then_cli_approves(trained):
    config = set_deploy_config(trained, "{require_approval: true, service: {mode: none}}")
    outcome = run_task(config, "deploy", "run-1")
    assert outcome.checkpoint.metadata["deploy_status"] == "awaiting_approval"
    assert "service_marker" not in outcome.checkpoint.artifacts
    assert _registry(config).champion() is None
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "recomart_pipeline",
            "approve",
            "v0001",
            "--config",
            str(config.path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert _registry(config).champion().version == "v0001"


def test_verification_failure_rolls_back_and_fails_loudly(trained):
    run_task(trained, "deploy", "run-1")  # v0001 is champion
    registry = _registry(trained)
    # a second, different candidate whose model file is corrupted after registration
    model = trained.storage_root / "runs" / "run-1" / "evaluation" / "model.npz"
    model.write_bytes(model.read_bytes()[:200])  # truncated: registered, but cannot be loaded
    from recomart_pipeline.contract.files import sha256_file

    for pointer in (
        trained.storage_root / "latest" / "evaluation.json",
        trained.storage_root / "runs" / "run-1" / "evaluation" / "_result.json",
    ):
        record = json.loads(pointer.read_text())
        record["artifacts"]["model"]["sha256"] = sha256_file(model)
        pointer.write_text(json.dumps(record))
    config = set_deploy_config(
        trained,
        "{require_better_than_champion: false, service: {mode: verify, startup_timeout_seconds: 5}}",
    )
    with pytest.raises(TaskFailure) as excinfo:
        run_task(config, "deploy", "run-2")
    assert "deploy verification failed" in excinfo.value.message
    assert "the service refused model v0002" in excinfo.value.message  # its reason, at once
    assert "rolled back to v0001" in excinfo.value.message
    assert registry.champion().version == "v0001"  # the service keeps the old model
    assert [v.version for v in registry.list_versions()] == ["v0001", "v0002"]


def test_service_endpoints_and_hot_reload(trained):
    run_task(trained, "deploy", "run-1")
    registry = _registry(trained)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "recomart_pipeline.serving",
            "--registry",
            str(registry.root),
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_health(base, 60, process)
        status, health = _get(f"{base}/health")
        assert status == 200 and health["model_version"] == "v0001"
        import pandas as pd

        user_index = pd.read_parquet(registry.version_dir("v0001") / "user_index.parquet")
        user = str(user_index["user_id"].iloc[0])
        _, answer = _get(f"{base}/recommendations/{user}?k=5")
        assert answer["strategy"] == "personalized" and len(answer["items"]) == 5
        _, cold = _get(f"{base}/recommendations/nobody-knows-me?k=3")
        assert cold["strategy"] == "popular" and len(cold["items"]) == 3
        with pytest.raises(urllib.error.HTTPError) as bad:
            _get(f"{base}/recommendations/{user}?k=0")
        assert bad.value.code == 422
        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
            assert 'recomart_serving_model_info{version="v0001"} 1' in response.read().decode()
        # hot reload: promote a different model (the popularity candidate) as v0002
        training = json.loads((trained.storage_root / "latest" / "training.json").read_text())
        popularity = trained.storage_root / training["artifacts"]["model_popularity"]["path"]
        folder = registry.version_dir("v0001")
        serving = {
            n: folder / n
            for n in ("user_index.parquet", "item_index.parquet", "train_implicit.npz")
        }
        second, created = registry.register(
            popularity, serving, model_type="popularity", metrics={}, data_hash=None, run_id="x"
        )
        assert created and second.version == "v0002"
        registry.promote("v0002")
        deadline = time.monotonic() + 30
        while _get(f"{base}/health")[1]["model_version"] != "v0002":
            assert time.monotonic() < deadline, "the service did not pick up the new champion"
            time.sleep(0.1)  # poll; every request re-checks the champion pointer
        _, model = _get(f"{base}/model")
        assert model["version"] == "v0002" and model["model_type"] == "popularity"
    finally:
        process.terminate()
        process.wait(timeout=20)


def _reloads(base: str) -> int:
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("recomart_serving_reloads_total "):
                return int(line.split()[1])
    raise AssertionError("no reload counter in /metrics")


def _load(base: str, users: list[str], stop: threading.Event, answers: list, errors: list) -> None:
    """One keep-alive client asking for ``users`` in turn until ``stop``."""
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        while not stop.is_set():
            for user in users:
                try:
                    connection.request("GET", f"/recommendations/{user}?k=10")
                    response = connection.getresponse()
                    body = response.read()
                    if response.status != 200:
                        errors.append((user, response.status, body[:200]))
                        continue
                    answer = json.loads(body)
                    answers.append((answer["model_version"], user, answer["items"]))
                except (OSError, http.client.HTTPException) as exc:
                    errors.append((user, type(exc).__name__, str(exc)))
                    connection.close()
    finally:
        connection.close()


def test_deploy_killed_mid_swap_leaves_a_whole_model_served(trained):
    """Nothing lost: while promotions are killed at random moments and clients keep asking
    for recommendations, every answer comes from one complete model version (never a mix:
    each equals that version's own answer), no request fails over 10+ swaps, and the
    champion pointer stays valid."""
    run_task(trained, "deploy", "run-1")
    registry = _registry(trained)
    training = json.loads((trained.storage_root / "latest" / "training.json").read_text())
    popularity = trained.storage_root / training["artifacts"]["model_popularity"]["path"]
    folder = registry.version_dir("v0001")
    serving = {
        n: folder / n for n in ("user_index.parquet", "item_index.parquet", "train_implicit.npz")
    }
    with scratch_folder() as scratch:
        registry.register(
            popularity,
            with_serving_arrays(popularity, serving, Path(scratch)),
            model_type="popularity",
            metrics={},
            data_hash=None,
            run_id="x",
        )
    expected_type = {"v0001": registry.get("v0001").model_type, "v0002": "popularity"}
    import pandas as pd

    users = [*pd.read_parquet(folder / "user_index.parquet")["user_id"].astype(str)[:20]]
    users.append("nobody-knows-me")
    expected = {}
    for version in expected_type:
        state = load_state(registry, registry.get(version))
        assert state.mapped  # both versions answer from their precomputed arrays
        expected[version] = {u: state.recommend(u, 10).items for u in users}
    assert expected["v0001"] != expected["v0002"]  # a mix would show
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    service = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "recomart_pipeline.serving",
            "--registry",
            str(registry.root),
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    flipper = None
    stop = threading.Event()
    answers: list = []
    errors: list = []
    clients = [
        threading.Thread(target=_load, args=(base, users[i::4], stop, answers, errors))
        for i in range(4)
    ]
    try:
        wait_for_health(base, 60, service)
        for client in clients:
            client.start()
        flipper = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys\nfrom pathlib import Path\n"
                "from recomart_pipeline.deployment.registry import ModelRegistry\n"
                "r = ModelRegistry(Path(sys.argv[1]))\n"
                "while True:\n    r.promote('v0002')\n    r.promote('v0001')\n",
                str(registry.root),
            ],
        )
        seen = set()
        deadline = time.monotonic() + 120
        while _reloads(base) < 11:  # the first load and 10 swaps
            assert time.monotonic() < deadline, f"only {_reloads(base)} loads in 120 s"
            _, model = _get(f"{base}/model")
            assert expected_type[model["version"]] == model["model_type"]
            seen.add(model["version"])
        flipper.kill()  # killed mid-swap, at whatever point it had reached
        flipper.wait()
        stop.set()
        for client in clients:
            client.join()
        assert errors == []
        assert answers and {version for version, _, _ in answers} == set(expected_type)
        mixed = [(v, u) for v, u, items in answers if items != expected[v][u]]
        assert mixed == [], f"{len(mixed)} of {len(answers)} answers mixed versions"
        pointer = json.loads((registry.root / "champion.json").read_text())
        assert pointer["version"] in expected_type
        wait_until(
            lambda: _get(f"{base}/health")[1]["model_version"] == pointer["version"],
            30,
            "the service to settle on the last champion",
        )
        assert seen <= set(expected_type) and seen
    finally:
        stop.set()
        if flipper is not None and flipper.poll() is None:
            flipper.kill()
        service.terminate()
        service.wait(timeout=20)


def _url_mode(config, url: str, token_env: str | None) -> PipelineConfig:
    token = f", admin_token_env: {token_env}" if token_env else ""
    return set_deploy_config(config, f"{{service: {{mode: url, url: '{url}'{token}}}}}")


def test_url_mode_reloads_the_running_service_with_its_admin_token(trained, tmp_path, monkeypatch):
    monkeypatch.setenv(ADMIN_TOKEN_ENV, ADMIN_TOKEN)
    command = serve_command(trained.path, "--admin-token-env", ADMIN_TOKEN_ENV)
    with running_service(command, tmp_path) as service:
        assert service.call("/health")[0] == 503  # nothing promoted yet
        config = _url_mode(trained, service.base, ADMIN_TOKEN_ENV)
        outcome = run_task(config, "deploy", "run-1")
        deployment = json.loads(outcome.checkpoint.path("deployment").read_text())
        assert deployment["status"] == "promoted"
        assert outcome.checkpoint.metadata["service_url"] == service.base
        assert service.call("/health")[1]["model_version"] == "v0001"
    printed = service.printed()
    assert '"POST /admin/reload HTTP/1.1" 200' in printed  # told to reload, and allowed to
    assert ADMIN_TOKEN not in printed


def test_url_mode_without_a_token_waits_for_the_service_to_notice(trained, tmp_path):
    with running_service(serve_command(trained.path), tmp_path) as service:
        config = _url_mode(trained, service.base, None)
        outcome = run_task(config, "deploy", "run-1")
        assert outcome.checkpoint.metadata["deploy_status"] == "promoted"
        assert service.call("/model")[1]["version"] == "v0001"
    assert "/admin/reload" not in service.printed()  # it never knocked on the admin door


def test_url_mode_with_a_wrong_token_fails_and_says_so(trained, tmp_path, monkeypatch):
    wrong = "wr0ng-0123456789abcdef0123456789abcdef"
    command = serve_command(trained.path, "--admin-token-env", ADMIN_TOKEN_ENV)
    with running_service(
        command, tmp_path, {**os.environ, ADMIN_TOKEN_ENV: ADMIN_TOKEN}
    ) as service:
        monkeypatch.setenv(ADMIN_TOKEN_ENV, wrong)
        config = _url_mode(trained, service.base, ADMIN_TOKEN_ENV)
        with pytest.raises(TaskFailure) as excinfo:
            run_task(config, "deploy", "run-1")
    message = excinfo.value.message
    assert "refused POST /admin/reload (HTTP 401: wrong admin token)" in message
    assert wrong not in message and wrong not in service.printed()
