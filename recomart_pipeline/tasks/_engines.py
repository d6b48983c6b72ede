"""The SQL engines as the data tasks open them (not a task itself).

Every task whose rules run on ``local`` (DuckDB) or ``spark`` (Spark SQL) opens its session
here, so a missing Spark piece is reported the same way by each (a ``TaskError`` with the
fix) and each session gets its own scratch folder that is removed afterwards (DuckDB's: a
private temporary folder; Spark's: a sub-folder of ``execution.spark.scratch`` or a private
one, see ``engines.spark.Scratch``), also when the task fails.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from recomart_pipeline.contract.errors import TaskError
from recomart_pipeline.contract.task import TaskContext
from recomart_pipeline.engines.spark import SparkSession, SparkUnavailable, check_available
from recomart_pipeline.engines.sql import DuckDBSession, SqlSession

SQL_ENGINES = ("local", "spark")


@contextmanager
def sql_session(ctx: TaskContext, engine: str) -> Iterator[SqlSession]:
    """The SQL session of ``engine`` with its own scratch folder (DuckDB's spill directory;
    Spark's inputs and ordered results). The caller closes the session; it is closed here
    too (a second close does nothing), so a failure before the caller's close still stops
    Spark and removes the scratch folder."""
    if engine == "spark":
        try:
            check_available()
        except SparkUnavailable as missing:
            raise TaskError(str(missing), hint=missing.fix()) from None
        with SparkSession(ctx.engine_options) as session:
            yield session
    else:
        with tempfile.TemporaryDirectory(prefix="recomart-duckdb-") as spill:
            yield DuckDBSession(temp_directory=Path(spill))


def engine_for(ctx: TaskContext, sql_can_read: Callable[[], bool], layout: str) -> str:
    """The engine that runs a task's rules: the context's, unless its input rules the SQL
    engines out. They read one layout as written (``sql_can_read``, asked only when a SQL
    engine is chosen); another one (a hand-made upstream) goes through the pandas reference,
    which converts it, and the log says so (``layout``: what the input is not)."""
    if ctx.engine in SQL_ENGINES and not sql_can_read():
        ctx.logger.info(f"{layout}: the pandas engine reads them")
        return "pandas"
    return ctx.engine
