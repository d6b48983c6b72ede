"""The ``spark`` engine: the same rule SQL as DuckDB, run by Spark SQL.

pyspark is an optional extra (``pip install 'recomart-pipeline[spark]'``) and needs a Java
runtime (17 or later), so nothing here imports it until a session starts, and a missing
piece is reported with its fix (``SparkUnavailable``) before Spark is asked for anything.

The session comes from ``execution.spark`` (``master``, ``app_name``, ``conf``). If the
process already has an active Spark session (a notebook, a test), it is reused and left
running; a session this module started is stopped when the work is done. The session time
zone is always UTC: the rules' zone-less timestamps mean UTC, as in the pandas reference.

Ordered results reach the driver through Parquet: Spark writes the sorted result to a
scratch folder (in parallel, one file per range of rows) and the driver streams those files
in order into the task's own writer, so the published files are byte-identical to the other
engines'. The scratch folder must be readable by the driver and writable by the executors:
a local folder for ``local[*]`` masters.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from recomart_pipeline.contract.closing import ClosedOnExit
from recomart_pipeline.engines.sql import SPARK, Pattern

# Settings the rules depend on: they override the configured conf.
FIXED_CONF = {
    "spark.sql.session.timeZone": "UTC",
    # try_cast and the rules' own checks decide bad values; ANSI errors must not.
    "spark.sql.ansi.enabled": "true",
    # "timestamp" is a column, as in DuckDB (and standard SQL), not a string.
    "spark.sql.ansi.doubleQuotedIdentifiers": "true",
    # Parquet nanosecond timestamps (the typed layout's) as epoch ns: Spark's own timestamp
    # type would fail to read them, and would drop the nanoseconds if it did.
    "spark.sql.legacy.parquet.nanosAsLong": "true",
}
QUIET_CONF = {"spark.ui.showConsoleProgress": "false"}


def _local_defaults(master: str) -> dict[str, str]:
    """On one machine, Spark's 200 shuffle partitions are 200 tiny tasks per stage: a few per
    core instead (a default: ``conf`` overrides it)."""
    if not master.startswith("local"):
        return {}
    return {"spark.sql.shuffle.partitions": str(2 * (os.cpu_count() or 1))}


class SparkUnavailable(RuntimeError):
    """The spark engine cannot start here; ``install`` says what to install or set, and
    ``fix`` adds the way around it: the local engine for the data tasks' rules, or another
    alternative a task names (training and inference run on this machine instead)."""

    LOCAL = "choose the local engine (execution.engine / tasks.<name>.engine: local)"

    def __init__(self, message: str, install: str) -> None:
        super().__init__(message)
        self.install = install

    def fix(self, instead: str = LOCAL) -> str:
        return f"{self.install}, or {instead}"


def java_executable() -> str | None:
    """The ``java`` Spark would launch: ``$JAVA_HOME/bin/java``, else the one on ``PATH``."""
    home = os.environ.get("JAVA_HOME")
    if home:
        candidate = Path(home) / "bin" / "java"
        return str(candidate) if candidate.is_file() else None
    return shutil.which("java")


def check_available() -> None:
    """Raise ``SparkUnavailable`` naming the missing piece (pyspark, Java) and its fix."""
    if importlib.util.find_spec("pyspark") is None:
        raise SparkUnavailable(
            "the spark engine needs pyspark, which is not installed",
            install="pip install 'recomart-pipeline[spark]' (pyspark)",
        )
    if java_executable() is None:
        where = (
            f"JAVA_HOME={os.environ['JAVA_HOME']} has no bin/java"
            if os.environ.get("JAVA_HOME")
            else "no java on PATH and JAVA_HOME is not set"
        )
        raise SparkUnavailable(
            f"the spark engine needs a Java runtime (17 or later): {where}",
            install="install Java 17 or later (e.g. apt-get install openjdk-17-jre-headless) "
            "or set JAVA_HOME",
        )


class SparkSession(ClosedOnExit):
    """A Spark SQL session for the rules; use as a context manager.

    ``settings`` is ``execution.spark`` as plain values: ``master``, ``app_name``, ``conf``.
    ``scratch`` is where ordered results are written for the driver to stream.
    """

    dialect = SPARK

    def __init__(self, settings: Mapping[str, Any], scratch: Path) -> None:
        check_available()
        from pyspark.sql import SparkSession as Session

        active = Session.getActiveSession()
        self._owned = active is None
        if active is None:
            master = str(settings.get("master") or "local[*]")
            builder = Session.builder.master(master).appName(
                str(settings.get("app_name") or "recomart_pipeline")
            )
            conf = {
                **QUIET_CONF,
                **_local_defaults(master),
                **{str(k): str(v) for k, v in (settings.get("conf") or {}).items()},
            }
            for key, value in {**conf, **FIXED_CONF}.items():
                builder = builder.config(key, value)
            active = builder.getOrCreate()
        else:
            for key, value in FIXED_CONF.items():
                active.conf.set(key, value)
        self.spark = active
        self.version: str = active.version
        self._scratch = scratch
        self._kept: dict[str, Any] = {}
        self._views: list[str] = []
        self._streams = 0

    def _args(self, params: Mapping[str, Any]) -> dict[str, Any]:
        from pyspark.sql import functions as F

        args: dict[str, Any] = {}
        for name, value in params.items():
            if isinstance(value, Pattern):
                args[name] = f"^(?:{value})\\z"
            elif isinstance(value, (list, tuple)):
                args[name] = F.array(*[F.lit(v) for v in value])
            else:
                args[name] = value
        return args

    def _sql(self, sql: str, params: Mapping[str, Any] | None) -> Any:
        return self.spark.sql(sql, args=self._args(params or {}))

    def _view(self, name: str, frame: Any) -> None:
        frame.createOrReplaceTempView(name)
        self._views.append(name)

    def scan(self, name: str, path: Path) -> None:
        from pyspark.sql import functions as F

        frame = self.spark.read.parquet(str(path))
        self._view(name, frame.select("*", F.col("_metadata.row_index").alias("rn")))

    def register(self, name: str, table: pa.Table) -> None:
        from pyspark.sql.types import StructType

        if table.num_rows:
            frame = self.spark.createDataFrame(table)
        else:  # no rows, no types to infer: the schema from Arrow's
            from pyspark.sql.pandas.types import from_arrow_schema

            schema: StructType = from_arrow_schema(table.schema)
            frame = self.spark.createDataFrame([], schema)
        self._view(name, frame)

    def keep(self, name: str, sql: str, params: dict[str, Any]) -> None:
        # Computed now, once, and the plan cut here: cached results keep their whole plan,
        # and an iterative rule (the k-core reads the previous round three times) would nest
        # every earlier round's plan in the next (exponential; a 1M-row k-core ran the
        # driver out of memory printing it).
        frame = self._sql(sql, params).localCheckpoint(eager=True)
        self._kept[name] = frame
        self._view(name, frame)

    def drop(self, name: str) -> None:
        # Without the last reference Spark's cleaner frees the table's blocks (an iterative
        # rule, the k-core, keeps one table per round).
        self._kept.pop(name, None)
        self.spark.catalog.dropTempView(name)

    def fetch(self, sql: str, params: dict[str, Any] | None = None) -> pa.Table:
        table: pa.Table = self._sql(sql, params).toArrow()
        return table

    def stream(
        self, sql: str, params: dict[str, Any], order: str, batch_rows: int
    ) -> Iterator[pa.RecordBatch]:
        self._streams += 1
        folder = self._scratch / f"stream-{self._streams}"
        self._sql(sql, params).orderBy(order).write.parquet(str(folder))
        # A global sort writes one range of `order` per file: the files in order of their
        # first value are the result in order (each file is sorted within).
        files = []
        for path in folder.glob("*.parquet"):
            if pq.ParquetFile(path).metadata.num_rows == 0:
                continue
            first = pq.ParquetFile(path).read_row_group(0, columns=[order])[order][0].as_py()
            files.append((first, path))
        try:
            for _, path in sorted(files):
                yield from (
                    batch.drop_columns([order])
                    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows)
                )
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def close(self) -> None:
        for name in self._views:
            self.spark.catalog.dropTempView(name)
        self._kept, self._views = {}, []
        if self._owned:
            self.spark.stop()


def scratch_directory() -> tempfile.TemporaryDirectory[str]:
    """A private folder for the ordered results (see the module docstring)."""
    return tempfile.TemporaryDirectory(prefix="recomart-spark-")
