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
engines'. The scratch folder (``Scratch``) must be readable and writable by the driver and
every executor: a private local temporary folder serves ``local[*]`` masters; a cluster's
executors run on other machines, so there it is ``execution.spark.scratch`` (a shared mount
or an hdfs://, s3a://… URI; the config refuses a cluster master without it). Each session
works in its own sub-folder of it, removed when the session closes, whatever happened.
With a shared scratch the task's input files (on the driver's disk: the storage folder or
its local cache of the object store) are copied there first, so executors read them too.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

from recomart_pipeline.contract.closing import ClosedOnExit
from recomart_pipeline.contract.errors import TaskError
from recomart_pipeline.contract.spark_master import is_local_master
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
# The executors' Python (a cluster's machines have their own paths).
PYTHON_CONF = "spark.pyspark.python"


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


class Scratch(ClosedOnExit):
    """One session's own scratch folder: ``<root>/recomart-<random>`` under
    ``execution.spark.scratch``, or a private local temporary folder when it is not set.

    Spark opens it by URI (``uri``: a local path as ``file://``, so a cluster whose default
    file system is HDFS does not read it as an HDFS path); the driver opens it through
    fsspec (a local path directly). ``close`` removes the whole folder: runs never see each
    other's files, and a failed run leaves nothing behind.
    """

    def __init__(self, root: str | None) -> None:
        self.shared = root is not None
        name = f"recomart-{uuid.uuid4().hex}"
        if root is None:
            self._fs: Any = None
            self._path = tempfile.mkdtemp(prefix="recomart-spark-")
            self._uri = Path(self._path).as_uri()
        elif "://" not in root or root.lower().startswith("file://"):
            self._fs = None
            base = root[len("file://") :] if "://" in root else root
            self._path = str(Path(base) / name)
            Path(self._path).mkdir(parents=True)
            self._uri = Path(self._path).as_uri()
        else:
            import fsspec

            self._fs, base = fsspec.core.url_to_fs(root)
            self._path = f"{base.rstrip('/')}/{name}"
            self._fs.makedirs(self._path, exist_ok=False)
            self._uri = f"{root.rstrip('/')}/{name}"
        self._names = 0

    def new_name(self, stem: str) -> str:
        """A name no earlier call returned (``stem-N``)."""
        self._names += 1
        return f"{stem}-{self._names}"

    def uri(self, name: str) -> str:
        """``name`` in the folder, as Spark opens it."""
        return f"{self._uri}/{name}"

    def _child(self, name: str) -> str:
        return f"{self._path}/{name}"

    def open_write(self, name: str) -> IO[bytes]:
        """``name`` in the folder, opened for the driver to write."""
        if self._fs is None:
            return open(self._child(name), "wb")
        handle: IO[bytes] = self._fs.open(self._child(name), "wb")
        return handle

    def stage(self, path: Path, stem: str) -> str:
        """A copy of the driver's file ``path`` in the folder; its URI for Spark."""
        name = self.new_name(stem) + "".join(path.suffixes)
        if self._fs is None:
            shutil.copyfile(path, self._child(name))
        else:
            self._fs.put_file(str(path), self._child(name))
        return self.uri(name)

    def parquet_files(self, name: str) -> list[pq.ParquetFile]:
        """The non-empty Parquet files Spark wrote into the folder ``name``."""
        if self._fs is None:
            paths: list[Any] = sorted(Path(self._child(name)).glob("*.parquet"))
            files = [pq.ParquetFile(path) for path in paths]
        else:
            paths = sorted(self._fs.glob(f"{self._child(name)}/*.parquet"))
            files = [pq.ParquetFile(self._fs.open(path, "rb")) for path in paths]
        return [file for file in files if file.metadata.num_rows]

    def remove(self, name: str) -> None:
        """Delete ``name`` (a file or a folder) from the folder, if it is there."""
        if self._fs is None:
            child = Path(self._child(name))
            if child.is_dir():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
        elif self._fs.exists(self._child(name)):
            self._fs.rm(self._child(name), recursive=True)

    def close(self) -> None:
        if self._fs is None:
            shutil.rmtree(self._path, ignore_errors=True)
        elif self._fs.exists(self._path):
            self._fs.rm(self._path, recursive=True)


def _first_row(file: pq.ParquetFile, columns: list[str]) -> tuple[Any, ...]:
    """The ``columns`` of a sorted file's first row: where its range starts."""
    head = file.read_row_group(0, columns=columns).slice(0, 1)
    return tuple(head[column][0].as_py() for column in columns)


class SparkSession(ClosedOnExit):
    """A Spark SQL session for the rules; use as a context manager (closing twice is fine).

    ``settings`` is ``execution.spark`` as plain values: ``master``, ``app_name``, ``conf``,
    ``scratch`` (the root of the session's own ``Scratch`` folder; None: a private one).
    """

    dialect = SPARK

    def __init__(self, settings: Mapping[str, Any]) -> None:
        check_available()
        self.scratch = Scratch(settings.get("scratch"))
        try:
            self._start(settings)
        except BaseException:
            self.scratch.close()
            raise
        self._kept: dict[str, Any] = {}
        self._views: list[str] = []
        self._closed = False

    def _start(self, settings: Mapping[str, Any]) -> None:
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
            if conf.get(PYTHON_CONF):
                # Started from Python, pyspark tells executors which Python to run from
                # PYSPARK_PYTHON only (spark-submit would translate the setting itself).
                os.environ["PYSPARK_PYTHON"] = conf[PYTHON_CONF]
            active = builder.getOrCreate()
        else:
            running = str(active.sparkContext.master)
            if not self.scratch.shared and not is_local_master(running):
                raise TaskError(
                    f"the active Spark session's master '{running}' runs executors on other "
                    "machines, which cannot read the driver's private temporary folder",
                    hint="set execution.spark.scratch to a folder the driver and every "
                    "executor can read and write (docs/spark_cluster.md)",
                )
            for key, value in FIXED_CONF.items():
                active.conf.set(key, value)
        self.spark = active
        self.version: str = active.version

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

        # A shared scratch means executors elsewhere: they read a copy there, not the
        # driver's disk. Without one, every executor is on this machine.
        where = self.scratch.stage(path, f"input-{name}") if self.scratch.shared else str(path)
        frame = self.spark.read.parquet(where)
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
        self, sql: str, params: dict[str, Any], order: Sequence[str], batch_rows: int
    ) -> Iterator[pa.RecordBatch]:
        folder = self.scratch.new_name("stream")
        columns = list(order)
        try:
            self._sql(sql, params).orderBy(*columns).write.parquet(self.scratch.uri(folder))
            # A global sort writes one range of `order` per file: the files in order of
            # their first row are the result in order (each file is sorted within).
            files = sorted(
                self.scratch.parquet_files(folder),
                key=lambda file: _first_row(file, columns),
            )
            for file in files:
                yield from (
                    batch.drop_columns(columns)
                    for batch in file.iter_batches(batch_size=batch_rows)
                )
        finally:
            self.scratch.remove(folder)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            for name in self._views:
                self.spark.catalog.dropTempView(name)
            self._kept, self._views = {}, []
            if self._owned:
                self.spark.stop()
        finally:
            self.scratch.close()
