"""Shared by the conformance tests: run a data task (validation, features) on an engine and
compare it with the pandas reference byte for byte (files, checks, metrics)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from recomart_pipeline.contract.catalog import builtin_spec
from recomart_pipeline.contract.task import TaskResult
from recomart_pipeline.runtime.artifacts import Checkpoint
from recomart_pipeline_tests.data.helpers import TaskHarness

# Replaying fixed data: pin the clock so freshness/future checks do not drift with today.
PINNED = {"freshness": {"reference_time": "2026-06-01T00:00:00Z"}}


# The upstream task each compared task reads.
UPSTREAM = {"validation": "ingestion", "features": "preparation"}


def validate_on(
    harness: TaskHarness,
    upstream: Checkpoint,
    engine: str,
    config: dict[str, Any] | None = None,
    task: str = "validation",
) -> TaskResult:
    """Run ``task`` (validation unless told) on ``engine``; validation's clock is pinned."""
    default = PINNED if task == "validation" else {}
    ctx = harness.context(task, config or default, {UPSTREAM[task]: upstream})
    ctx.engine = engine
    return builtin_spec(task).function()(ctx)


def fingerprint(result: TaskResult) -> dict[str, Any]:
    """Everything a downstream task or an operator sees of a validation run."""
    return {
        "files": {
            name: hashlib.sha256(Path(path).read_bytes()).hexdigest()
            for name, path in result.outputs.items()
        },
        "checks": [
            (c.name, c.passed, c.severity, c.description, c.metadata) for c in result.checks
        ],
        "metrics": result.metrics,
    }


def spark_jobs() -> int:
    """Jobs the active Spark session has started: proof the rules ran on Spark, not on a
    pandas fallback that merely says "spark". Job ids only grow; the tracker forgets all
    but the last ``spark.ui.retainedJobs`` (1,000), so their count is no measure."""
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    assert session is not None
    return max(session.sparkContext.statusTracker().getJobIdsForGroup(None), default=-1) + 1


def assert_conform(
    harness: TaskHarness,
    upstream: Checkpoint,
    engine: str,
    config: dict[str, Any] | None = None,
    expected_engine: str | None = None,
    task: str = "validation",
) -> TaskResult:
    reference = validate_on(harness, upstream, "pandas", config, task)
    jobs = spark_jobs() if engine == "spark" else 0
    local = validate_on(harness, upstream, engine, config, task)
    if engine == "spark" and expected_engine is None:
        assert spark_jobs() > jobs, "no Spark job ran"
    assert reference.metadata["engine"] == "pandas"
    assert local.metadata["engine"] == (expected_engine or engine)
    expected, found = fingerprint(reference), fingerprint(local)
    assert found["files"] == expected["files"]
    for mine, theirs in zip(found["checks"], expected["checks"], strict=True):
        assert mine == theirs
    assert found["metrics"] == expected["metrics"]
    return local
