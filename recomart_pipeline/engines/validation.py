"""The validation task's row rules as SQL, run by DuckDB (the ``local`` engine).

One statement classifies every interaction — the rule bits it breaks (the same bit order as
the pandas reference, ``ROW_RULES``, so the same quarantine reasons), its typed timestamp
(epoch nanoseconds, UTC) and rating — and keeps only the broken rows, with the row each
duplicate copies. Ordered reads then stream the valid rows (the raw rows minus the broken
ones, typed) and the quarantined rows back as Arrow batches; the task writes them with the
same Parquet writer as the pandas path, so the files are byte-identical.

Exactness where the SQL and the reference could disagree: DuckDB's casts accept spellings
pandas rejects (``1_0`` as a number) and vice versa. So the SQL parses only the canonical
spellings (a strict pattern each, listed below), which both agree on; every other distinct
non-empty value is handed to the caller's reference parser (``Parsers``), once per distinct
value, and joined back. Clean feeds never leave SQL; a dirty one sends only its odd values.

Duplicates are decided on the raw values themselves (``PARTITION BY`` all columns, nulls
equal, null ≠ ""); a hash only narrows down the candidates. Exact, where the reference is
exact up to a ~n²/2⁶⁵ hash collision.
"""

from __future__ import annotations

import resource
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import duckdb
import pyarrow as pa

# Row-level rules in bit order (bit i = 1 << i); the pandas reference uses the same order.
ROW_RULES: tuple[str, ...] = (
    "required_columns",
    "timestamp_parse",
    "future_timestamps",
    "rating_range",
    "event_type_values",
    "duplicates",
    "referential_integrity",
)
RAW_COLUMNS: tuple[str, ...] = ("user_id", "item_id", "event_type", "timestamp", "rating")
REQUIRED: tuple[str, ...] = ("user_id", "item_id", "event_type", "timestamp")

# ISO-8601 spellings the SQL parses itself: a date, optionally a time to the minute, second
# or microsecond, optionally Z or ±HH:MM. The year is limited to 1678..2261 so every parsed
# value fits the nanosecond range pandas parses into; anything else goes to the reference.
_YEAR = r"(16(7[89]|[89][0-9])|1[7-9][0-9]{2}|2[01][0-9]{2}|22[0-5][0-9]|226[01])"
_TIME = r"([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?)?"
TIMESTAMP_PATTERN = _YEAR + r"-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])" + _TIME
# Plain decimals (no sign, exponent or separators): both parsers give the nearest double.
NUMBER_PATTERN = r"[0-9]{1,9}(\.[0-9]{1,9})?"

TimestampParser = Callable[[pa.Array], pa.Array]
"""Distinct text values → epoch nanoseconds (int64, null where the reference fails)."""
NumberParser = Callable[[pa.Array], pa.Array]
"""Distinct text values → float64 (null where the reference gives a non-finite value)."""


@dataclass(frozen=True)
class Parsers:
    """The reference's parsers, for the values the SQL leaves to them."""

    timestamps: TimestampParser
    numbers: NumberParser


@dataclass(frozen=True)
class InteractionRules:
    """The settings of the row rules, as plain values (the engine knows no config model)."""

    allowed_events: tuple[str, ...]
    min_rating: float
    max_rating: float
    future_limit_ns: int  # timestamps after this are in the future
    earliest_ns: int  # the typed layout's range; outside it a timestamp does not parse
    latest_ns: int


@dataclass(frozen=True)
class Tally:
    """Whole-table counts and ranges, for the checks and the report."""

    rows: int
    failed: dict[str, int]
    null_counts: dict[str, int]
    broken_rating_min: float | None  # of broken rating events with a finite rating
    broken_rating_max: float | None


def _blank(column: str) -> str:
    return f'("{column}" IS NULL OR "{column}" = \'\')'


def _bit(rule: str) -> int:
    return 1 << ROW_RULES.index(rule)


def raw_columns_are_text(path: Path) -> bool:
    """The engine reads ingestion's raw layout (every column text) straight from Parquet."""
    with duckdb.connect() as con:
        names = {row[0]: row[1] for row in con.sql(f"DESCRIBE {_scan(path)}").fetchall()}
    return all(names.get(column) == "VARCHAR" for column in RAW_COLUMNS)


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


def _scan(path: Path) -> str:
    return f"SELECT * FROM read_parquet('{_quote(path)}', file_row_number = true)"


class InteractionValidation:
    """Classifies the interactions of one raw Parquet file; use as a context manager.

    ``threads`` caps DuckDB's worker threads (default: all cores); ``memory_limit`` (DuckDB
    syntax, e.g. ``"4GB"``) bounds its memory, past which it spills to ``temp_directory``.
    """

    def __init__(
        self,
        source: Path,
        rules: InteractionRules,
        item_ids: pa.Array,
        user_ids: pa.Array,
        parsers: Parsers,
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
        self._rules = rules
        self._con.register("known_items", pa.table({"id": item_ids.cast(pa.string())}))
        self._con.register("known_users", pa.table({"id": user_ids.cast(pa.string())}))
        self._con.sql(f"CREATE TEMP VIEW raw AS {_scan(source)}")
        columns = {row[0] for row in self._con.sql("DESCRIBE raw").fetchall()}
        # Aggregated interactions carry a weight that passes through (null: one event).
        self._weight = "r.weight" if "weight" in columns else "NULL"
        self._odd_values(parsers)
        self._classify()

    def __enter__(self) -> InteractionValidation:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._con.close()

    def _odd_values(self, parsers: Parsers) -> None:
        """Parse the values outside the canonical spellings with the reference parsers."""
        for column, pattern, parse, kind in (
            ("timestamp", TIMESTAMP_PATTERN, parsers.timestamps, pa.int64()),
            ("rating", NUMBER_PATTERN, parsers.numbers, pa.float64()),
        ):
            odd = self._con.sql(
                f'SELECT DISTINCT "{column}" AS text FROM raw WHERE NOT {_blank(column)} '
                f'AND NOT regexp_full_match("{column}", $pattern) ORDER BY text',
                params={"pattern": pattern},
            ).to_arrow_table()
            text = odd["text"].combine_chunks() if odd.num_rows else pa.array([], pa.string())
            values = parse(text).cast(kind) if len(text) else pa.array([], kind)
            self._con.register(f"odd_{column}", pa.table({"text": text, "value": values}))

    def _typed(self) -> str:
        """Every raw row with its typed timestamp (epoch ns, null unless it parses within
        the typed range) and rating (null unless a finite number)."""
        ts_any = (
            f"CASE WHEN {_blank('timestamp')} THEN NULL "
            'WHEN regexp_full_match(r."timestamp", $ts_pattern) '
            'THEN epoch_ns(TRY_CAST(r."timestamp" AS TIMESTAMPTZ)) ELSE ot.value END'
        )
        rating_any = (
            f"CASE WHEN {_blank('rating')} THEN NULL "
            "WHEN regexp_full_match(r.rating, $number_pattern) "
            "THEN TRY_CAST(r.rating AS DOUBLE) ELSE orat.value END"
        )
        return f"""
            SELECT rn, user_id, item_id, event_type, "timestamp", rating,
                   CASE WHEN ts_any BETWEEN $earliest AND $latest THEN ts_any END AS ts_ns,
                   CASE WHEN isfinite(rating_any) THEN rating_any END AS rating_value,
                   CASE WHEN isfinite(weight_any) THEN weight_any END AS weight_value
            FROM (SELECT r.file_row_number AS rn, r.user_id, r.item_id, r.event_type,
                         r."timestamp", r.rating, {ts_any} AS ts_any, {rating_any} AS rating_any,
                         TRY_CAST({self._weight} AS DOUBLE) AS weight_any
                  FROM raw r
                  LEFT JOIN odd_timestamp ot ON ot.text = r."timestamp"
                  LEFT JOIN odd_rating orat ON orat.text = r.rating)
        """

    def _params(self) -> dict[str, Any]:
        rules = self._rules
        return {
            "ts_pattern": TIMESTAMP_PATTERN,
            "number_pattern": NUMBER_PATTERN,
            "earliest": rules.earliest_ns,
            "latest": rules.latest_ns,
        }

    def _classify(self) -> None:
        """Materialise the broken rows only (rule bits, duplicates' originals); the valid
        rows are streamed later by leaving these out, so memory holds the faults alone."""
        everything = ", ".join(f'"{c}"' for c in RAW_COLUMNS)
        # Exact duplicates: hashing all columns finds the few candidate groups cheaply; the
        # window over the candidates alone compares the values themselves.
        self._con.sql(
            f"""
            CREATE TEMP TABLE repeats AS
            SELECT rn, row_number() OVER same > 1 AS repeated, min(rn) OVER same AS copy_of
            FROM (SELECT file_row_number AS rn, {everything} FROM raw
                  WHERE hash({everything}) IN (
                      SELECT h FROM (SELECT hash({everything}) AS h FROM raw)
                      GROUP BY h HAVING count(*) > 1))
            WINDOW same AS (PARTITION BY {everything} ORDER BY rn)
            """
        )
        blank = {column: _blank(column) for column in RAW_COLUMNS}
        is_rating = "coalesce(event_type = 'rating', false)"
        outside = "coalesce(rating_value < $min_rating OR rating_value > $max_rating, false)"
        bits = {
            "required_columns": " OR ".join(blank[c] for c in REQUIRED),
            "timestamp_parse": f"(NOT {blank['timestamp']} AND ts_ns IS NULL)",
            "future_timestamps": "coalesce(ts_ns > $future, false)",
            "rating_range": f"(({is_rating} AND ({outside} OR {blank['rating']})) "
            f"OR (NOT {blank['rating']} AND rating_value IS NULL))",
            "event_type_values": f"(NOT {blank['event_type']} "
            "AND NOT list_contains($allowed, event_type))",
            "duplicates": "coalesce(d.repeated, false)",
            # Anti-joins (known ids are unique and never null): NOT IN's null semantics
            # make DuckDB plan a mark join, ~8x slower at 5M rows.
            "referential_integrity": f"((NOT {blank['item_id']} AND ki.id IS NULL) "
            f"OR (NOT {blank['user_id']} AND ku.id IS NULL))",
        }
        code = " + ".join(
            f"(CASE WHEN {sql} THEN {_bit(rule)} ELSE 0 END)" for rule, sql in bits.items()
        )
        rules = self._rules
        self._con.sql(
            f"""
            CREATE TEMP TABLE broken AS
            SELECT * FROM (
                SELECT t.*, {is_rating} AS is_rating, coalesce(d.copy_of, t.rn) AS copy_of,
                       CAST({code} AS UTINYINT) AS code
                FROM ({self._typed()}) t
                LEFT JOIN repeats d ON d.rn = t.rn
                LEFT JOIN known_items ki ON ki.id = t.item_id
                LEFT JOIN known_users ku ON ku.id = t.user_id)
            WHERE code <> 0
            """,
            params={
                **self._params(),
                "future": rules.future_limit_ns,
                "min_rating": rules.min_rating,
                "max_rating": rules.max_rating,
                "allowed": list(rules.allowed_events),
            },
        )
        self._con.sql("DROP TABLE repeats")

    def tally(self) -> Tally:
        """Rows, failures per rule, nulls per required column (all from the broken rows:
        a null in a required column always breaks a rule) and the broken rows' ratings."""
        failed = ", ".join(f"coalesce(count_if(code & {_bit(rule)} <> 0), 0)" for rule in ROW_RULES)
        nulls = ", ".join(f"coalesce(count_if({_blank(c)}), 0)" for c in REQUIRED)
        row = self._con.sql(
            f"""
            SELECT {failed}, {nulls},
                   min(rating_value) FILTER (WHERE is_rating),
                   max(rating_value) FILTER (WHERE is_rating)
            FROM broken
            """
        ).fetchall()[0]
        (total,) = self._con.sql("SELECT count(*) FROM raw").fetchall()[0]
        rules, columns = len(ROW_RULES), len(REQUIRED)
        return Tally(
            rows=int(total),
            failed=dict(zip(ROW_RULES, map(int, row[:rules]), strict=True)),
            null_counts=dict(zip(REQUIRED, map(int, row[rules : rules + columns]), strict=True)),
            broken_rating_min=row[-2],
            broken_rating_max=row[-1],
        )

    def valid(self, batch_rows: int) -> Iterator[pa.RecordBatch]:
        """Valid rows in input order: text ids, ``timestamp`` as epoch ns, ``rating`` and
        ``weight`` double."""
        query = (
            'SELECT user_id, item_id, event_type, ts_ns AS "timestamp", rating_value AS rating, '
            "weight_value AS weight "
            f"FROM ({self._typed()}) t ANTI JOIN broken b ON b.rn = t.rn ORDER BY t.rn"
        )
        yield from self._con.sql(query, params=self._params()).to_arrow_reader(batch_rows)

    def quarantined(self, batch_rows: int) -> Iterator[pa.RecordBatch]:
        """Broken rows in input order: raw text, ``row_number``, ``code`` (rule bits),
        ``copy_of`` (the first row with the same values; the row itself if none before)."""
        query = (
            'SELECT user_id, item_id, event_type, "timestamp", rating, rn AS row_number, '
            "code, copy_of FROM broken ORDER BY rn"
        )
        yield from self._con.sql(query).to_arrow_reader(batch_rows)
