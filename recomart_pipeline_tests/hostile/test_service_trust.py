"""The model service under a tampered registry, and its admin surface.

A champion that cannot be loaded (a pointer leaving the registry, a flipped byte, a pickle
dressed as the npz file, a missing file, a garbage pointer) must not take the service down:
every endpoint keeps answering with the model it holds, ``/health`` says ``degraded`` and
why, the refusal is logged once however many requests meet it, and the next valid champion
is served. ``/admin/reload`` changes what is served, so it needs the configured bearer token
and is disabled without one; the token never appears in anything the service prints.

Each test runs the real service (``python -m recomart_pipeline.serving`` or the ``serve``
command) on 127.0.0.1 against a registry of real models built here.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest
import scipy.sparse as sp

from recomart_pipeline.contract.files import sha256_file
from recomart_pipeline.deployment.registry import ModelRegistry
from recomart_pipeline.ml.models import create_model
from recomart_pipeline.ml.persistence import save_model
from recomart_pipeline.runtime.object_store import ObjectStore
from recomart_pipeline.serving.state import ChampionWatcher
from recomart_pipeline_tests.deployment.conftest import (
    ADMIN_TOKEN,
    ADMIN_TOKEN_ENV,
    CONFIG,
    Service,
    running_service,
    serve_command,
)
from recomart_pipeline_tests.helpers import REPO_ROOT, moto_server, wait_until, write_index_files
from recomart_pipeline_tests.ml.synthetic import make_synthetic

pytestmark = pytest.mark.slow

N_USERS, N_ITEMS = 40, 25
TOKEN_ENV, TOKEN = ADMIN_TOKEN_ENV, ADMIN_TOKEN
WRONG_TOKEN = "wr0ng-" + "0123456789abcdef0123456789abcdef"


class _Payload:
    """Unpickling this creates the marker file: proof that attacker code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


def build_registry(root: Path, versions: int, remote: ObjectStore | None = None) -> ModelRegistry:
    """``versions`` real popularity models (each fitted on its own data, so their bytes
    differ) over one set of serving files; v0001 is the champion."""
    work = root / "build"
    work.mkdir(parents=True)
    serving = write_index_files(work, N_USERS, N_ITEMS)
    registry = ModelRegistry(root / "registry", remote)
    for seed in range(1, versions + 1):
        data = make_synthetic(n_users=N_USERS, n_items=N_ITEMS, per_user=6, seed=seed)
        if seed == 1:
            sp.save_npz(serving["train_implicit.npz"], data.train.implicit)
        model = create_model("popularity")
        model.fit(data.train)
        save_model(model, work / f"model{seed}.npz", model_format="npz")
        registry.register(
            work / f"model{seed}.npz",
            serving,
            model_type="popularity",
            metrics={},
            data_hash=None,
            run_id=f"run-{seed}",
        )
    registry.promote("v0001")
    return registry


def _serve(registry: ModelRegistry, tmp_path: Path, *extra: str, env: dict[str, str] | None = None):
    command = [sys.executable, "-m", "recomart_pipeline.serving", "--registry", str(registry.root)]
    return running_service([*command, *extra], tmp_path, env)


def _with_token() -> dict[str, str]:
    return {**os.environ, TOKEN_ENV: TOKEN}


def _refusals(service: Service) -> list[str]:
    return [line for line in service.printed().splitlines() if "refused" in line]


# -- the tampering: each returns (the version the refusal names, a fragment of its reason) ---


def _pointer_outside(registry: ModelRegistry, marker: Path) -> tuple[str | None, str]:
    outside = registry.root.parent / "x"
    outside.mkdir()
    (outside / "evil.pkl").write_bytes(pickle.dumps(_Payload(marker)))
    (outside / "version.json").write_text(
        json.dumps(
            {
                "version": "../x",
                "model_file": "evil.pkl",
                "sha256": sha256_file(outside / "evil.pkl"),
            }
        )
    )
    (registry.root / "champion.json").write_text(json.dumps({"version": "../x"}))
    return "../x", "is not a model version id"


def _flipped_byte(registry: ModelRegistry, marker: Path) -> tuple[str | None, str]:
    model = registry.root / "v0002" / "model.npz"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))
    registry.promote("v0002")
    return "v0002", "it was modified or replaced after it was published"


def _pickle_named_npz(registry: ModelRegistry, marker: Path) -> tuple[str | None, str]:
    folder = registry.root / "v0002"
    (folder / "model.npz").write_bytes(pickle.dumps(_Payload(marker)))
    (folder / "model.npz.sha256").unlink(missing_ok=True)
    record = json.loads((folder / "version.json").read_text())
    record["sha256"] = sha256_file(folder / "model.npz")  # the hash "matches"
    (folder / "version.json").write_text(json.dumps(record))
    registry.promote("v0002")
    return "v0002", "never unpickles"


def _missing_file(registry: ModelRegistry, marker: Path) -> tuple[str | None, str]:
    (registry.root / "v0002" / "user_index.parquet").unlink()
    registry.promote("v0002")
    return "v0002", "user_index.parquet"


def _garbage_pointer(registry: ModelRegistry, marker: Path) -> tuple[str | None, str]:
    (registry.root / "champion.json").write_bytes(b"\x00\xff{not json\x1b[31m")
    return None, "is not readable JSON"


TAMPERING: dict[str, Callable[[ModelRegistry, Path], tuple[str | None, str]]] = {
    "pointer outside the registry": _pointer_outside,
    "flipped byte in the model file": _flipped_byte,
    "pickle named model.npz": _pickle_named_npz,
    "missing serving file": _missing_file,
    "garbage champion.json": _garbage_pointer,
}


@pytest.mark.parametrize("tamper", TAMPERING.values(), ids=TAMPERING.keys())
def test_a_bad_champion_is_refused_once_and_the_held_model_keeps_answering(tamper, tmp_path):
    registry = build_registry(tmp_path, versions=3)
    marker = tmp_path / "pwned"
    with _serve(registry, tmp_path) as service:
        status, health = service.call("/health")
        assert status == 200 and (health["status"], health["model_version"]) == ("ok", "v0001")
        refused_version, reason = tamper(registry, marker)
        # the watcher's timer notices the change (no request looks at the registry)
        wait_until(lambda: _degraded(service), 30, "the service to judge the new champion")

        for _ in range(10):  # every endpoint, many times: all answered by the held model
            status, answer = service.call("/recommendations/u3?k=5")
            assert status == 200 and answer["model_version"] == "v0001", answer
            assert answer["strategy"] == "personalized" and len(answer["items"]) == 5
            status, model = service.call("/model")
            assert status == 200 and model["version"] == "v0001", model
            status, metrics = service.call("/metrics")
            assert status == 200 and 'recomart_serving_model_info{version="v0001"} 1' in metrics
            assert "recomart_serving_degraded 1" in metrics
            status, health = service.call("/health")
            assert status == 200, health
        assert health["status"] == "degraded" and health["ready"] is True
        assert health["model_version"] == "v0001"
        problem = health["problem"]
        assert problem["kind"] == "champion_refused" and problem["version"] == refused_version
        assert reason in problem["reason"] and problem["reason"].isprintable()
        [logged] = _refusals(service)  # exactly one record across all those requests
        assert reason in logged and "still serving v0001" in logged
        assert "\x1b" not in service.printed()  # no control bytes from the pointer echoed

        registry.promote("v0003")  # the next valid champion is picked up by itself
        wait_until(lambda: _serving(service, "v0003"), 30, "the service to serve v0003")
        status, answer = service.call("/recommendations/u3?k=5")
        assert status == 200 and answer["model_version"] == "v0003", answer
        assert service.call("/health") == (
            200,
            {"status": "ok", "ready": True, "model_version": "v0003", "problem": None},
        )
        assert len(_refusals(service)) == 1
    assert not marker.exists()  # no payload ran, at any point


def test_with_no_model_held_a_bad_champion_is_a_clear_503_never_a_500(tmp_path):
    registry = build_registry(tmp_path, versions=2)
    _flipped_byte_in("v0001", registry)
    with _serve(registry, tmp_path) as service:
        for _ in range(5):
            status, health = service.call("/health")
            assert status == 503, health
            status, answer = service.call("/recommendations/u3?k=5")
            assert status == 503, answer
            assert answer["detail"].startswith("no model to serve: champion v0001 refused:")
            assert "modified or replaced" in answer["detail"]
            assert service.call("/model")[0] == 503
        assert health["status"] == "degraded" and health["ready"] is False
        assert health["model_version"] is None and health["problem"]["version"] == "v0001"
        assert len(_refusals(service)) == 1

        registry.promote("v0002")
        wait_until(lambda: _serving(service, "v0002"), 30, "the service to serve v0002")
        status, answer = service.call("/recommendations/u3?k=5")
        assert status == 200 and answer["model_version"] == "v0002", answer
        assert service.call("/health")[1]["status"] == "ok"


def _degraded(service: Service) -> bool:
    return service.call("/health")[1]["status"] == "degraded"


def _serving(service: Service, version: str) -> bool:
    return service.call("/health")[1]["model_version"] == version


def _flipped_byte_in(version: str, registry: ModelRegistry) -> None:
    model = registry.root / version / "model.npz"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))


def test_admin_endpoints_are_disabled_without_a_token_and_read_only_ones_stay_open(tmp_path):
    registry = build_registry(tmp_path, versions=1)
    with _serve(registry, tmp_path) as service:
        status, refused = service.call("/admin/reload", "POST")
        assert status == 403 and "--admin-token-env" in refused["detail"], refused
        assert service.call("/admin/reload", "POST", TOKEN)[0] == 403  # any token: still off
        for path in ("/health", "/model", "/recommendations/u1", "/metrics", "/docs"):
            assert service.call(path)[0] == 200, path
        status, openapi = service.call("/openapi.json")
        assert status == 200
        reload = openapi["paths"]["/admin/reload"]["post"]
        assert reload["security"] == [{"admin token": []}]
        assert openapi["components"]["securitySchemes"]["admin token"]["scheme"] == "bearer"
        assert "security" not in openapi["paths"]["/health"]["get"]


def test_an_unreachable_registry_store_keeps_the_held_model_serving(tmp_path, caplog):
    """The registry in an S3-compatible store (a real moto server) that goes away: the
    service keeps its model and says why it cannot look for a newer one."""
    with moto_server() as endpoint:
        options = {
            "key": "test-key",
            "secret": "test-secret",
            "endpoint_url": endpoint,
            "client_kwargs": {"region_name": "us-east-1"},
            "config_kwargs": {"retries": {"max_attempts": 1}},
        }
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="test-key",
            aws_secret_access_key="test-secret",
            region_name="us-east-1",
        ).create_bucket(Bucket="registry-bucket")
        build_registry(
            tmp_path / "a", versions=1, remote=ObjectStore("s3://registry-bucket/r", options)
        )
        watcher = ChampionWatcher(
            ModelRegistry(tmp_path / "service", ObjectStore("s3://registry-bucket/r", options)),
            refresh_seconds=0,
        )
        state = watcher.current()
        assert state is not None and state.version.version == "v0001"
    with caplog.at_level(logging.INFO, logger="recomart_pipeline.serving"):
        for _ in range(3):
            assert watcher.current() is state  # still answering with the model it holds
    assert watcher.problem is not None and watcher.problem.kind == "registry_unreachable"
    assert "cannot refresh the registry: could not download" in watcher.problem.reason
    assert [r.levelname for r in caplog.records] == ["ERROR"]  # logged once
    assert "test-secret" not in watcher.problem.reason


def _project(tmp_path: Path, registry_versions: int) -> Path:
    """A pipeline config whose deploy task names the token variable, and its registry."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "pipeline_config.yaml").write_text(
        CONFIG.replace(
            "config: {service: {mode: verify, startup_timeout_seconds: 60}}",
            f"config: {{service: {{admin_token_env: {TOKEN_ENV}}}}}",
        )
    )
    build_registry(project / "storage", registry_versions)
    return project


def test_admin_reload_needs_the_configured_token_which_is_never_printed(tmp_path):
    project = _project(tmp_path, registry_versions=2)
    registry = ModelRegistry(project / "storage" / "registry")
    command = serve_command(project / "pipeline_config.yaml")
    with running_service(command, tmp_path, _with_token()) as service:
        status, missing = service.call("/admin/reload", "POST")
        assert status == 401 and "missing admin token" in missing["detail"], missing
        status, wrong = service.call("/admin/reload", "POST", WRONG_TOKEN)
        assert status == 401 and wrong["detail"] == "wrong admin token", wrong
        assert service.call("/admin/reload", "POST", TOKEN[:-1])[0] == 401  # a prefix is wrong
        # with the right token, a reload while degraded answers from the held model ...
        _flipped_byte_in("v0002", registry)
        registry.promote("v0002")
        status, reloaded = service.call("/admin/reload", "POST", TOKEN)
        assert status == 200 and reloaded["model_version"] == "v0001", reloaded
        assert reloaded["status"] == "degraded" and reloaded["problem"]["version"] == "v0002"
        # ... and once the files are fixed, serves the champion without another promotion
        _flipped_byte_in("v0002", registry)  # flipped back: the registered bytes again
        assert service.call("/health")[1]["problem"]["version"] == "v0002"  # not retried alone
        status, reloaded = service.call("/admin/reload", "POST", TOKEN)
        assert status == 200 and reloaded["model_version"] == "v0002", reloaded
        assert reloaded["status"] == "ok"
        assert len(_refusals(service)) == 1  # the repeated reload did not log it again
        printed = service.printed()
    assert "POST /admin/reload" in printed  # the access log was on
    assert f"${TOKEN_ENV}" in printed  # the startup line names the variable ...
    assert TOKEN not in printed and WRONG_TOKEN not in printed  # ... never the token
    assert TOKEN[:12] not in printed and WRONG_TOKEN[:12] not in printed


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, f"the environment variable {TOKEN_ENV} that should hold the admin token is not set"),
        ("short-s3cret", "must be at least 16 printable ASCII characters"),
    ],
)
def test_serve_refuses_to_start_with_an_unusable_token(value, message, tmp_path):
    project = _project(tmp_path, registry_versions=1)
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    if value is not None:
        env[TOKEN_ENV] = value
    done = subprocess.run(
        serve_command(
            project / "pipeline_config.yaml", "--admin-token-env", TOKEN_ENV, "--port", "1"
        ),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
        env=env,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert message in done.stdout
    assert "short-s3cret" not in done.stdout + done.stderr
