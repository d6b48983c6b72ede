"""The dialects' ``repeated`` (the values occurring more than once), which narrows the
duplicates down to candidates in validation and preparation: DuckDB sorts and compares
neighbours, Spark groups. Both must find exactly the repeated values of a non-null column."""

from __future__ import annotations

import random

import duckdb
import pyarrow as pa
import pytest

from recomart_pipeline.engines.sql import DUCKDB, SPARK, Dialect


def _repeated(dialect: Dialect, values: list[int]) -> set[int]:
    with duckdb.connect() as con:
        con.register("v", pa.table({"h": pa.array(values, pa.int64())}))
        rows = con.sql(dialect.repeated("SELECT h FROM v", "h")).fetchall()
    return {row[0] for row in rows}


@pytest.mark.parametrize("dialect", [DUCKDB, SPARK], ids=lambda d: d.name)
def test_repeated_values_exactly(dialect: Dialect) -> None:
    # Spark's spelling (GROUP BY ... HAVING) is plain SQL, so DuckDB can check it too.
    values = [5, 1, 5, 2, 3, 3, 3, -7, 9, -7, 0]
    assert _repeated(dialect, values) == {5, 3, -7}
    assert _repeated(dialect, []) == set()
    assert _repeated(dialect, [4]) == set()
    assert _repeated(dialect, [4, 4]) == {4}


def test_repeated_matches_counting_on_many_values() -> None:
    rng = random.Random(7)
    values = [rng.randrange(-(2**63), 2**63) for _ in range(5000)]
    values += rng.sample(values, 300) + rng.sample(values, 50)
    rng.shuffle(values)
    counts: dict[int, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    expected = {value for value, n in counts.items() if n > 1}
    assert _repeated(DUCKDB, values) == expected == _repeated(SPARK, values)
