"""``execution.spark.scratch``: where the spark engine's files go, checked when the config
loads (a cluster master needs a shared folder; the value is a plain folder, nothing else),
and used by each session in its own sub-folder that is gone afterwards, also on failure."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from recomart_pipeline import PipelineConfig
from recomart_pipeline.config.errors import ConfigError
from recomart_pipeline.config.schema import SparkSettings


@pytest.mark.parametrize(
    "settings",
    [
        {"master": "spark://spark-master:7077"},
        {"master": "yarn"},
        {"master": "k8s://https://k8s.example:443"},
        {"master": "local[2]", "conf": {"spark.master": "spark://elsewhere:7077"}},
    ],
)
def test_a_cluster_master_without_a_shared_scratch_is_refused(settings: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as raised:
        SparkSettings(**settings)
    message = str(raised.value)
    assert "execution.spark.scratch" in message and "every executor" in message


@pytest.mark.parametrize(
    ("scratch", "says"),
    [
        ("scratch", "relative path"),
        ("~/scratch", "relative path"),
        ("/mnt/shared/../etc", "'..'"),
        ("s3a://bucket/a/./b", "'..'"),
        ("s3a://AKIA:s3cr3t@bucket/scratch", "credentials"),
        ("hdfs://user:pw@namenode:8020/x", "credentials"),
        ("gs://bucket/scratch?token=abc", "query"),
        ("http://host/scratch", "scheme 'http'"),
        ("s3a:///scratch", "no bucket"),
        ("file://host/scratch", "file:///path"),
        (" /mnt/shared", "blank"),
        ("/mnt/sha\nred", "control"),
    ],
)
def test_a_scratch_that_is_not_a_plain_shared_folder_is_refused(scratch: str, says: str) -> None:
    with pytest.raises(ValidationError) as raised:
        SparkSettings(master="spark://m:7077", scratch=scratch)
    message = raised.value.errors()[0]["msg"]  # what the config error shows
    assert says in message and "s3cr3t" not in message


@pytest.mark.parametrize(
    ("master", "scratch"),
    [
        ("local[*]", None),
        ("local-cluster[2,1,1024]", None),
        ("spark://m:7077", "/mnt/shared/recomart-scratch"),
        ("yarn", "hdfs:///tmp/recomart"),
        ("yarn", "hdfs://namenode:8020/tmp/recomart"),
        ("k8s://https://k8s:443", "s3a://bucket/scratch"),
        ("spark://m:7077", "file:///mnt/shared/scratch"),
        ("spark://m:7077", "abfss://container@account.dfs.core.windows.net/scratch"),
    ],
)
def test_shared_folders_are_accepted(master: str, scratch: str | None) -> None:
    settings = SparkSettings(master=master, scratch=scratch)
    assert settings.session_options()["scratch"] == scratch


def test_the_config_error_names_the_key_and_the_file(write_config: Callable[..., Path]) -> None:
    path = write_config(
        """
        execution: {engine: spark, spark: {master: "spark://m:7077", scratch: tmp/scratch}}
        tasks: {}
        """
    )
    with pytest.raises(ConfigError) as raised:
        PipelineConfig(path)
    message = str(raised.value)
    assert "pipeline_config.yaml:1 execution.spark.scratch" in message
    assert "absolute path" in message


# -- the folder in use (a local[2] session; a real cluster: test_spark_cluster.py) ------------


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "input" / "rows.parquet"
    path.parent.mkdir()
    pq.write_table(pa.table({"v": list(range(1000))}), path)
    return path


@pytest.mark.slow
def test_each_session_works_in_its_own_sub_folder_and_removes_it(
    spark_session: Any, source: Path, tmp_path: Path
) -> None:
    from recomart_pipeline.engines.spark import SparkSession

    root = tmp_path / "shared"
    root.mkdir()
    with (
        SparkSession({"scratch": str(root)}) as first,
        SparkSession({"scratch": str(root)}) as second,
    ):
        first.scan("rows", source)
        second.scan("rows", source)
        folders = sorted(root.iterdir())
        assert len(folders) == 2  # two sessions at once never share files
        # Executors read the staged copy in the shared folder, not the driver's disk.
        read = spark_session.table("rows").inputFiles()
        assert read and all(str(root) in f and str(source.parent) not in f for f in read)
        batches = list(first.stream("SELECT v, v AS o FROM rows", {}, "o", 100))
        assert pa.Table.from_batches(batches).column("v").to_pylist() == list(range(1000))
        assert [p.name for p in folders[0].iterdir()] + [p.name for p in folders[1].iterdir()]
    assert list(root.iterdir()) == []


@pytest.mark.slow
def test_a_failed_session_leaves_nothing_in_the_scratch(
    spark_session: Any, source: Path, tmp_path: Path
) -> None:
    from recomart_pipeline.engines.spark import SparkSession

    root = tmp_path / "shared"
    root.mkdir()
    with (
        pytest.raises(RuntimeError, match="task failed"),
        SparkSession({"scratch": str(root)}) as s,
    ):
        s.scan("rows", source)
        stream = s.stream("SELECT v, v AS o FROM rows", {}, "o", 100)
        next(stream)  # Spark's result files are in the scratch now
        assert any(path.is_dir() for path in next(root.iterdir()).iterdir())
        raise RuntimeError("task failed")
    assert list(root.iterdir()) == []
    assert spark_session.range(3).count() == 3  # a reused session is left running


def test_only_secret_named_conf_values_are_secrets(write_config: Callable[..., Path]) -> None:
    """A plain value (4, 1g, false) is no secret: were it one, every "4" in logs, plans and
    manifests would be masked, and the plan could not show the settings."""
    path = write_config(
        """
        execution:
          engine: spark
          spark:
            conf: {spark.sql.shuffle.partitions: "4", spark.executor.memory: 1g,
                   spark.hadoop.fs.s3a.secret.key: s3cr3t}
        tasks:
          numbers: {callable: "recomart_pipeline_tests.sample_tasks:make_numbers"}
        """
    )
    config = PipelineConfig(path)
    assert config.secret_values == {"s3cr3t"}
    shown = config.to_dict()["execution"]["spark"]["conf"]
    assert shown["spark.sql.shuffle.partitions"] == "4" and shown["spark.executor.memory"] == "1g"
    assert shown["spark.hadoop.fs.s3a.secret.key"] != "s3cr3t"


def test_a_uri_scratch_is_driven_through_fsspec(source: Path) -> None:
    """The driver's side of an hdfs://, s3a://… scratch (stage an input, write a file, read
    the Parquet files Spark would write, remove) through fsspec, on its in-memory file
    system (a real one; Spark cannot open it, so no session here)."""
    import fsspec

    from recomart_pipeline.engines.spark import Scratch

    memory = fsspec.filesystem("memory")
    scratch = Scratch("memory://recomart-test/scratch")
    root = "/recomart-test/scratch"
    staged = scratch.stage(source, "input-raw")
    assert staged.startswith("memory://recomart-test/scratch/recomart-")
    folder = scratch.new_name("stream")
    for part, values in (("part-1", [3, 4]), ("part-0", [1, 2]), ("part-2", [])):
        with scratch.open_write(f"{folder}/{part}.parquet") as sink:
            pq.write_table(pa.table({"v": pa.array(values, pa.int64())}), sink)
    files = scratch.parquet_files(folder)
    assert [file.read().column("v").to_pylist() for file in files] == [[1, 2], [3, 4]]
    scratch.remove(folder)
    assert [Path(p).name for p in memory.find(root)] == [staged.rsplit("/", 1)[1]]
    scratch.close()
    assert memory.find(root) == []
