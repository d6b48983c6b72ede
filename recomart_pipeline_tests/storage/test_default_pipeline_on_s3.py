"""The shipped default pipeline with its storage in S3, through Dagster as `run` runs it:
every task works the same, the registry's champion is in the bucket, and a second machine
(an empty local cache) sees the runs and the models."""

from __future__ import annotations

import json
import shutil
import sys

import pytest

from recomart_pipeline_tests.helpers import (
    DEFAULT_TASKS,
    S3_STORAGE,
    copy_default_project,
    run_in_project,
    task_rows,
)

pytestmark = pytest.mark.slow


def test_default_pipeline_with_storage_in_s3(tmp_path, s3_env):
    project = copy_default_project(tmp_path)
    bucket = s3_env.new_bucket()
    overlay = project / "pipeline_config.s3.yaml"
    overlay.write_text(
        "extends: pipeline_config.yaml\n"
        + "\n".join(line[8:] for line in S3_STORAGE.format(bucket=bucket).splitlines())
        + "\n"
    )
    cli = [sys.executable, "-m", "recomart_pipeline"]
    done = run_in_project([*cli, "run", "--env", "s3"], project, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert task_rows(done.stdout) == dict.fromkeys(DEFAULT_TASKS, "SUCCESS")
    keys = s3_env.keys(bucket, "pipelines/sample/")
    for task in DEFAULT_TASKS:
        assert f"pipelines/sample/latest/{task}.json" in keys
    champion = json.loads(s3_env.read(bucket, "pipelines/sample/registry/champion.json"))
    assert champion["version"] == "v0001"
    assert "pipelines/sample/registry/v0001/model.npz" in keys
    run_ids = {k.split("/")[3] for k in keys if k.endswith("/manifest.json")}
    assert len(run_ids) == 1

    shutil.rmtree(project / ".storage_cache")  # another machine
    models = run_in_project([*cli, "models", "--config", str(overlay)], project)
    assert models.returncode == 0, models.stderr
    assert "v0001" in models.stdout and "champion" in models.stdout
    runs = run_in_project([*cli, "runs", "--config", str(overlay)], project)
    assert runs.returncode == 0 and run_ids.pop() in runs.stdout
