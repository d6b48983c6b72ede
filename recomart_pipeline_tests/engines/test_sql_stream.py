"""``SqlSession.stream``: a large result sorted by several columns, in batches, without
them. Preparation streams each part in time order by (``ts``, ``rn``), so rows sharing a
timestamp must come in input order, on Spark across the files its global sort writes too.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest

from recomart_pipeline.engines.spark import SparkSession
from recomart_pipeline.engines.sql import DuckDBSession, SqlSession


@pytest.fixture(params=["duckdb", "spark"])
def session(request: pytest.FixtureRequest) -> Iterator[SqlSession]:
    if request.param == "spark":
        request.getfixturevalue("spark_session")  # the module's running local[2] session
        with SparkSession({}) as spark:
            yield spark
    else:
        with DuckDBSession(threads=2) as duck:
            yield duck


def _rows(count: int) -> pa.Table:
    """Few distinct timestamps (long runs of ties), the row numbers shuffled."""
    rng = random.Random(3)
    positions = list(range(count))
    rng.shuffle(positions)
    return pa.table(
        {
            "ts": pa.array([rng.randrange(40) * 10**9 for _ in range(count)], pa.int64()),
            "rn": pa.array(positions, pa.int64()),
            "value": pa.array([f"v{p}" for p in positions]),
        }
    )


def test_stream_sorts_by_every_order_column_and_drops_them(session: SqlSession) -> None:
    table = _rows(5_000)
    session.register("events", table)
    batches = list(
        session.stream(
            "SELECT ts AS time_order, rn, value, ts AS stamp FROM events",
            {},
            ("time_order", "rn"),
            batch_rows=700,
        )
    )
    streamed = pa.Table.from_batches(batches)
    assert streamed.column_names == ["value", "stamp"]
    rows: list[dict[str, Any]] = table.to_pylist()
    expected = sorted(rows, key=lambda row: (row["ts"], row["rn"]))
    assert streamed["value"].to_pylist() == [row["value"] for row in expected]
    assert streamed["stamp"].to_pylist() == [row["ts"] for row in expected]
