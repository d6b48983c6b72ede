"""The SQL engines as the data tasks open them (not a task itself).

Every task whose rules run on ``local`` (DuckDB) or ``spark`` (Spark SQL) opens its session
here, so a missing Spark piece is reported the same way by each (a ``TaskError`` with the
fix) and each session gets a private scratch folder that is removed afterwards.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from recomart_pipeline.contract.errors import TaskError
from recomart_pipeline.contract.task import TaskContext
from recomart_pipeline.engines.spark import (
    SparkSession,
    SparkUnavailable,
    check_available,
    scratch_directory,
)
from recomart_pipeline.engines.sql import DuckDBSession, SqlSession

SQL_ENGINES = ("local", "spark")


@contextmanager
def sql_session(ctx: TaskContext, engine: str) -> Iterator[SqlSession]:
    """The SQL session of ``engine`` with its private scratch folder (DuckDB's spill
    directory; Spark's ordered results). The caller closes the session."""
    if engine == "spark":
        try:
            check_available()
        except SparkUnavailable as missing:
            raise TaskError(str(missing), hint=missing.fix) from None
        with scratch_directory() as scratch:
            yield SparkSession(ctx.engine_options, Path(scratch))
    else:
        with tempfile.TemporaryDirectory(prefix="recomart-duckdb-") as spill:
            yield DuckDBSession(temp_directory=Path(spill))
