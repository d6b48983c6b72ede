"""The data tasks' harness fixture (shared with recomart_pipeline_tests/data) and a Spark
session for the spark engine's tests."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from typing import Any

import pytest

from recomart_pipeline.engines.spark import java_executable
from recomart_pipeline_tests.data.conftest import harness

__all__ = ["harness", "require_spark", "spark_session"]


def require_spark() -> None:
    """Skip where Spark cannot run (no Java); fail where pyspark is missing, since the dev
    lock (requirements-dev.txt) installs it and a skip would hide a broken environment."""
    if java_executable() is None:
        pytest.skip("the spark engine needs a Java runtime (17+): no java on PATH or JAVA_HOME")
    if importlib.util.find_spec("pyspark") is None:
        pytest.fail("pyspark is missing: it is in the dev lock (make setup-dev)")


@pytest.fixture(scope="module")
def spark_session() -> Iterator[Any]:
    """One local[2] session for a module's tests (starting Spark takes seconds); the engine
    reuses an active session and leaves it running, so this fixture stops it."""
    require_spark()
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("recomart-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .getOrCreate()
    )
    try:
        yield session
    finally:
        session.stop()
