"""The pipeline with ``storage.base_dir: s3://…``: artifacts, manifests and the registry live
in the object store; any machine (here: an emptied local cache) continues from there."""

from __future__ import annotations

import hashlib
import json
import shutil
import textwrap

import pytest
from dagster import AssetKey, DagsterEventType, DagsterInstance

from recomart_pipeline import PipelineConfig
from recomart_pipeline.cli import main
from recomart_pipeline.deployment.registry import ModelRegistry
from recomart_pipeline.orchestration import build_definitions
from recomart_pipeline.runtime.object_store import object_store_for
from recomart_pipeline_tests.conftest import SAMPLE
from recomart_pipeline_tests.helpers import S3_STORAGE
from recomart_pipeline_tests.storage.conftest import SECRET_KEY


@pytest.fixture
def s3_project(s3_env, sample_project):
    """The diamond sample pipeline with its storage in a fresh bucket."""
    bucket = s3_env.new_bucket()
    storage = textwrap.dedent(S3_STORAGE.format(bucket=bucket))
    sample_project.write_text(sample_project.read_text() + storage)
    return sample_project, bucket


def _execute(path, selection=None):
    job = build_definitions(PipelineConfig(path)).resolve_job_def("automated_pipeline_job")
    return job.execute_in_process(
        instance=DagsterInstance.ephemeral(),
        raise_on_error=False,
        asset_selection=[AssetKey(s) for s in selection] if selection else None,
    )


def _failure_message(result) -> str:
    failures = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
    return failures[0].event_specific_data.error.message


def test_outputs_pointers_and_manifest_are_in_the_bucket(s3_project, s3_env):
    path, bucket = s3_project
    result = _execute(path)
    assert result.success
    keys = s3_env.keys(bucket, "pipelines/sample/")
    prefix = f"pipelines/sample/runs/{result.run_id}"
    for task, artifact in [("numbers", "numbers.json"), ("total", "total.json")]:
        assert f"{prefix}/{task}/{artifact}" in keys
        assert f"pipelines/sample/latest/{task}.json" in keys
    pointer = json.loads(s3_env.read(bucket, "pipelines/sample/latest/total.json"))
    assert pointer["run_id"] == result.run_id
    stored = s3_env.read(bucket, f"{prefix}/total/total.json")
    assert hashlib.sha256(stored).hexdigest() == pointer["artifacts"]["total"]["sha256"]
    manifest = json.loads(s3_env.read(bucket, f"{prefix}/manifest.json"))
    assert set(manifest["tasks"]) == {"numbers", "square", "square_again", "total"}
    assert all(t["status"] == "SUCCESS" for t in manifest["tasks"].values())
    everything = b"".join(s3_env.read(bucket, k) for k in keys if k.endswith(".json"))
    assert SECRET_KEY.encode() not in everything
    assert "**********" in json.dumps(manifest["config"]["storage"]["object_store"])


def test_an_empty_local_cache_continues_from_the_object_store(s3_project, capsys):
    path, _ = s3_project
    first = _execute(path)
    assert first.success
    config = PipelineConfig(path)
    shutil.rmtree(config.storage_root)  # a new machine: nothing local
    again = _execute(path, ["total"])
    assert again.success, _failure_message(again)
    squares = config.storage_root / "runs" / first.run_id / "square" / "squares.json"
    assert json.loads(squares.read_text()) == [0, 1, 4, 9]  # downloaded input
    shutil.rmtree(config.storage_root)
    assert main(["runs", "--config", str(path)]) == 0
    listing = capsys.readouterr().out
    assert first.run_id in listing and again.run_id in listing


def test_a_tampered_object_is_refused_by_its_hash(s3_project, s3_env):
    path, bucket = s3_project
    first = _execute(path)
    assert first.success
    config = PipelineConfig(path)
    key = f"pipelines/sample/runs/{first.run_id}/square/squares.json"
    s3_env.client().put_object(Bucket=bucket, Key=key, Body=b"[0, 1, 4, 99]")
    shutil.rmtree(config.storage_root)
    again = _execute(path, ["total"])
    assert not again.success
    message = _failure_message(again)
    assert "was modified after it was written" in message
    # the stored pointer still names the good checkpoint; nothing was overwritten
    pointer = json.loads(s3_env.read(bucket, "pipelines/sample/latest/total.json"))
    assert pointer["run_id"] == first.run_id


def test_unreachable_store_fails_the_task_with_the_url_and_a_hint(write_config, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "unreachable-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("S3_ENDPOINT_URL", "http://127.0.0.1:9")
    path = write_config(
        f"""
        execution: {{max_retries: 0}}
        tasks:
          numbers:
            callable: "{SAMPLE}:make_numbers"
        """
        + S3_STORAGE.format(bucket="somewhere")
    )
    result = _execute(path)
    assert not result.success
    message = _failure_message(result)
    assert "could not read s3://somewhere/pipelines/sample/latest/numbers.json" in message
    assert "check storage.base_dir, storage.object_store" in message
    assert SECRET_KEY not in message


def test_registry_state_and_versions_are_shared_through_the_store(s3_project, tmp_path):
    path, _ = s3_project
    remote = object_store_for(PipelineConfig(path)).child("registry")
    model = tmp_path / "model.npz"
    model.write_bytes(b"model-bytes")
    serving = {}
    for name in ("user_index.parquet", "item_index.parquet", "train_implicit.npz"):
        serving[name] = tmp_path / name
        serving[name].write_bytes(name.encode())
    writer = ModelRegistry(tmp_path / "machine_a", remote)
    version, created = writer.register(
        model, serving, model_type="svd", metrics={"ndcg_at_10": 0.2}, data_hash=None, run_id="r1"
    )
    writer.promote(version.version)
    reader = ModelRegistry(tmp_path / "machine_b", remote)
    reader.refresh()
    assert created and reader.champion().version == version.version
    folder = reader.version_dir(version.version)
    assert (folder / "model.npz").read_bytes() == b"model-bytes"
    assert (folder / "train_implicit.npz").read_bytes() == b"train_implicit.npz"
    second = tmp_path / "model2.npz"
    second.write_bytes(b"better-model")
    newer, _ = reader.register(
        second, serving, model_type="als", metrics={}, data_hash=None, run_id="r2"
    )
    reader.promote(newer.version)
    writer.refresh()
    assert newer.version == "v0002" and writer.champion().version == "v0002"
    _, restored = writer.rollback()
    reader.refresh()
    assert restored.version == version.version == reader.champion().version
