"""Where DuckDB and Spark SQL differ: one dialect table and one small session per engine.

The rules (``validation.py``) are SQL text written once; they call the ``Dialect`` for the
handful of spellings the two engines do not share, and a ``SqlSession`` for the few
operations that are not SQL statements (register an Arrow table, keep a result, fetch,
stream in order). Everything else — windows with ``PARTITION BY`` all columns, ``CASE``,
aggregates with ``FILTER``, ``count_if``, ``TRY_CAST`` — is the same text on both engines,
so a rule changed once changes on both, and the conformance tests hold them to the pandas
reference.
"""

from __future__ import annotations

import resource
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import duckdb
import pyarrow as pa

from recomart_pipeline.contract.closing import ClosedOnExit


@dataclass(frozen=True)
class Dialect:
    """The spellings that differ between the engines, each a function of SQL fragments."""

    name: str
    param: Callable[[str], str]  # a named query parameter
    full_match: Callable[[str, str], str]  # (text, pattern parameter) -> boolean
    # epoch nanoseconds (UTC) of text already known to be a canonical ISO-8601 spelling
    # (TIMESTAMP_PATTERN); null where it names no real instant (2026-02-30)
    epoch_ns: Callable[[str], str]
    contains: Callable[[str, str], str]  # (list parameter, value) -> boolean
    hash: Callable[[Sequence[str]], str]  # 64-bit hash of columns, to find candidates only
    # (query, non-null column) -> a query of the values that occur more than once in it
    repeated: Callable[[str, str], str]
    anti_join: str  # the keyword of a left anti join
    # epoch nanoseconds of a Parquet TIMESTAMP(NANOS) column (features.py)
    ns_timestamp: Callable[[str], str]


def _repeated_by_sorting(query: str, column: str) -> str:
    """The values of ``column`` equal to their predecessor in sorted order (a value repeated
    k times appears k - 1 times; the callers only test membership).

    For the duplicates' hashes (20M mostly distinct values) DuckDB sorts and compares
    neighbours with ~half the CPU of ``GROUP BY … HAVING count(*) > 1``, whose hash table
    of 20M groups is the slowest part of finding duplicates.
    """
    return (
        f"SELECT {column} FROM (SELECT {column}, lag({column}) OVER (ORDER BY {column}) "
        f"AS preceding FROM ({query}) ordered) neighbours WHERE {column} = preceding"
    )


DUCKDB = Dialect(
    name="duckdb",
    param=lambda name: f"${name}",
    full_match=lambda text, pattern: f"regexp_full_match({text}, {pattern})",
    epoch_ns=lambda text: f"epoch_ns(TRY_CAST({text} AS TIMESTAMPTZ))",
    contains=lambda values, value: f"list_contains({values}, {value})",
    hash=lambda columns: f"hash({', '.join(columns)})",
    repeated=_repeated_by_sorting,
    anti_join="ANTI JOIN",
    ns_timestamp=lambda column: f"epoch_ns({column})",
)

# Spark's cast rejects a zone after minutes ("2026-01-01 10:00Z"): seconds are spelled out
# first. Only text that matched the strict pattern reaches it, so the shape is known.
_MINUTES_THEN_ZONE = "'^(.{10}[T ][0-9]{2}:[0-9]{2})([Z+-].*)$'"

SPARK = Dialect(
    name="spark",
    param=lambda name: f":{name}",
    # rlike finds a match anywhere; \z (not $, which also matches before a final newline)
    # anchors the end. The anchors are added to the pattern by the session (SparkSession).
    full_match=lambda text, pattern: f"({text} RLIKE {pattern})",
    # The session time zone is UTC (forced by the session); Spark keeps microseconds, and
    # the pattern allows no finer fraction.
    epoch_ns=lambda text: (
        f"unix_micros(TRY_CAST(regexp_replace({text}, {_MINUTES_THEN_ZONE}, '$1:00$2') "
        "AS TIMESTAMP)) * 1000"
    ),
    contains=lambda values, value: f"array_contains({values}, {value})",
    # xxhash64 skips nulls, so (a, null) and (null, a) collide: harmless, the window
    # compares the values themselves.
    hash=lambda columns: f"xxhash64({', '.join(columns)})",
    # A window ordered without a partition runs on one task in Spark: group instead.
    repeated=lambda query, column: (
        f"SELECT {column} FROM ({query}) grouped GROUP BY {column} HAVING count(*) > 1"
    ),
    anti_join="LEFT ANTI JOIN",
    # Spark has no nanosecond timestamp: the session reads them as epoch ns (FIXED_CONF).
    ns_timestamp=lambda column: column,
)


class Pattern(str):
    """A query parameter holding a regular expression to match whole values.

    DuckDB's ``regexp_full_match`` anchors itself; Spark's ``RLIKE`` needs ``^(?:…)\\z``. The
    session, not the rule, adds what its engine needs.
    """


class SqlSession(Protocol):
    """What the rules need from an engine besides SQL text."""

    dialect: Dialect

    def scan(self, name: str, path: Path) -> None:
        """A view of a Parquet file with its rows' positions as ``rn`` (0-based)."""

    def register(self, name: str, table: pa.Table) -> None:
        """An Arrow table (small: ids, odd values) as a view."""

    def keep(self, name: str, sql: str, params: dict[str, Any]) -> None:
        """Compute a query once and keep it as a table for the later statements."""

    def drop(self, name: str) -> None: ...

    def fetch(self, sql: str, params: dict[str, Any] | None = None) -> pa.Table:
        """A (small) result on the driver."""

    def stream(
        self, sql: str, params: dict[str, Any], order: Sequence[str], batch_rows: int
    ) -> Iterator[pa.RecordBatch]:
        """A (large) result sorted by the ``order`` columns, in batches, without them."""

    def close(self) -> None: ...


def _share_of_address_space() -> str | None:
    """A DuckDB memory limit inside the process's address-space limit, if it has one.

    DuckDB sizes its buffer pool from the machine's RAM (80 %); under ``RLIMIT_AS`` (the
    runtime's ``resources.max_memory_gb``) that would fail allocations instead of spilling.
    A third of the limit leaves room for the interpreter, Arrow and the writer.
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    return f"{max(soft // 3, 64 * 2**20) // 2**20}MB"


def _quote(path: Path) -> str:
    return str(path).replace("'", "''")


def parquet_column_types(path: Path) -> dict[str, str]:
    """Column name → DuckDB type name of a Parquet file (schema only, no rows read)."""
    with duckdb.connect() as con:
        rows = con.sql(f"DESCRIBE SELECT * FROM read_parquet('{_quote(path)}')").fetchall()
    return {row[0]: row[1] for row in rows}


class DuckDBSession(ClosedOnExit):
    """The ``local`` engine: an in-memory DuckDB, spilling to ``temp_directory``.

    ``threads`` caps DuckDB's worker threads (default: all cores); ``memory_limit`` (DuckDB
    syntax, e.g. ``"4GB"``) bounds its memory, past which it spills.
    """

    dialect = DUCKDB

    def __init__(
        self,
        *,
        temp_directory: Path | None = None,
        threads: int | None = None,
        memory_limit: str | None = None,
    ) -> None:
        config: dict[str, Any] = {"preserve_insertion_order": True}
        if threads:
            config["threads"] = threads
        memory_limit = memory_limit or _share_of_address_space()
        if memory_limit:
            config["memory_limit"] = memory_limit
        if temp_directory is not None:
            config["temp_directory"] = str(temp_directory)
        self._con = duckdb.connect(config=config)
        # Zone-less timestamps are UTC, as in the reference (ICU is built into the wheel).
        self._con.sql("SET TimeZone = 'UTC'")

    def scan(self, name: str, path: Path) -> None:
        self._con.sql(
            f"CREATE TEMP VIEW {name} AS SELECT *, file_row_number AS rn "
            f"FROM read_parquet('{_quote(path)}', file_row_number = true)"
        )

    def register(self, name: str, table: pa.Table) -> None:
        self._con.register(name, table)

    def keep(self, name: str, sql: str, params: dict[str, Any]) -> None:
        self._con.sql(f"CREATE TEMP TABLE {name} AS {sql}", params=_plain(params))

    def drop(self, name: str) -> None:
        self._con.sql(f"DROP TABLE {name}")

    def fetch(self, sql: str, params: dict[str, Any] | None = None) -> pa.Table:
        return self._con.sql(sql, params=_plain(params or {})).to_arrow_table()

    def stream(
        self, sql: str, params: dict[str, Any], order: Sequence[str], batch_rows: int
    ) -> Iterator[pa.RecordBatch]:
        query = f"SELECT * FROM ({sql}) ORDER BY {', '.join(order)}"
        for batch in self._con.sql(query, params=_plain(params)).to_arrow_reader(batch_rows):
            yield batch.drop_columns(list(order))

    def close(self) -> None:
        self._con.close()


def _plain(params: dict[str, Any]) -> dict[str, Any]:
    """DuckDB takes plain values; ``regexp_full_match`` anchors patterns itself."""
    return {k: str(v) if isinstance(v, Pattern) else v for k, v in params.items()}
