"""Dockerfile.spark, checked without a Docker engine (none runs here): it is the Dockerfile's
code location plus what the spark engine needs, and its paths agree with its base image.
(Its COPY sources and extras are checked with the Dockerfile's, in e2e/test_code_location.py;
the code server its CMD starts is run there.)"""

from __future__ import annotations

import re

from recomart_pipeline_tests.conftest import REPO_ROOT

SPARK = (REPO_ROOT / "Dockerfile.spark").read_text()
PLAIN = (REPO_ROOT / "Dockerfile").read_text()


def _instruction(text: str, name: str) -> list[str]:
    return re.findall(rf"^{name} (.*)$", text, re.MULTILINE)


def test_it_serves_the_same_code_location_with_java_and_the_spark_extra() -> None:
    assert _instruction(SPARK, "CMD")[-1] == _instruction(PLAIN, "CMD")[-1]
    assert "openjdk-17-jre-headless" in SPARK  # Spark 4's Java; check_available asks for 17+
    extras = re.search(r'pip install --no-cache-dir "\.\[(.*)\]"', SPARK)
    plain = re.search(r'pip install --no-cache-dir "\.\[(.*)\]"', PLAIN)
    assert extras and plain
    assert set(extras.group(1).split(",")) == {*plain.group(1).split(","), "spark"}


def test_spark_home_is_where_pip_puts_pyspark_for_the_base_image() -> None:
    base = re.fullmatch(r"python:(\d+\.\d+)-slim-bookworm AS base", _instruction(SPARK, "FROM")[0])
    assert base, "a pinned Debian release: Java 17 is packaged in bookworm, not in trixie"
    site = f"/usr/local/lib/python{base.group(1)}/site-packages/pyspark"
    assert f"SPARK_HOME={site}" in SPARK and f"PATH={site}/bin:$PATH" in SPARK
    assert "PYSPARK_PYTHON=/usr/local/bin/python" in SPARK  # executors run the image's Python
