"""The validation task's row rules as SQL, run by DuckDB (``local``) or Spark SQL (``spark``).

One pass classifies every interaction — the rule bits it breaks (the same bit order as
the pandas reference, ``ROW_RULES``, so the same quarantine reasons), its typed timestamp
(epoch nanoseconds, UTC) and rating — and keeps only the broken rows and the duplicate
candidates, from which the broken rows are kept with the row each duplicate copies. Ordered reads then stream the valid rows (the raw rows minus the broken
ones, typed) and the quarantined rows back as Arrow batches; the task writes them with the
same Parquet writer as the pandas path, so the files are byte-identical.

Exactness where the SQL and the reference could disagree: DuckDB's casts accept spellings
pandas rejects (``1_0`` as a number) and vice versa. So the SQL parses only the canonical
spellings (a strict pattern each, listed below), which both agree on; every other distinct
non-empty value is handed to the caller's reference parser (``Parsers``), once per distinct
value, and joined back. Clean feeds never leave SQL; a dirty one sends only its odd values.

The statements are written once; the few spellings DuckDB and Spark SQL do not share come
from the session's ``Dialect`` (``sql.py``), and the session runs them (``DuckDBSession``,
``spark.SparkSession``).

Duplicates are decided on the raw values themselves (``PARTITION BY`` all columns, nulls
equal, null ≠ ""); a hash only narrows down the candidates. Exact, where the reference is
exact up to a ~n²/2⁶⁵ hash collision.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from recomart_pipeline.contract.closing import ClosedOnExit
from recomart_pipeline.engines.sql import Pattern, SqlSession, parquet_column_types

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
    """The engines read ingestion's raw layout (every column text) straight from Parquet."""
    names = parquet_column_types(path)
    return all(names.get(column) == "VARCHAR" for column in RAW_COLUMNS)


# The largest finite double: BETWEEN its negation and it excludes NaN and ±inf on both
# engines (NaN sorts above every number in DuckDB and Spark alike).
_FINITE = "BETWEEN -1.7976931348623157e308 AND 1.7976931348623157e308"


class InteractionValidation(ClosedOnExit):
    """Classifies the interactions of one raw Parquet file in a SQL session; use as a
    context manager (closing it closes the session)."""

    def __init__(
        self,
        session: SqlSession,
        source: Path,
        rules: InteractionRules,
        item_ids: pa.Array,
        user_ids: pa.Array,
        parsers: Parsers,
    ) -> None:
        self._session = session
        self._sql = session.dialect
        self._rules = rules
        try:
            session.register("known_items", pa.table({"id": item_ids.cast(pa.string())}))
            session.register("known_users", pa.table({"id": user_ids.cast(pa.string())}))
            session.scan("raw", source)
            # Aggregated interactions carry a weight that passes through (null: one event).
            self._weight = "r.weight" if "weight" in parquet_column_types(source) else "NULL"
            self._odd_values(parsers)
            self._classify()
        except BaseException:
            session.close()
            raise

    def close(self) -> None:
        self._session.close()

    def _odd_values(self, parsers: Parsers) -> None:
        """Parse the values outside the canonical spellings with the reference parsers."""
        p = self._sql.param
        for column, pattern, parse, kind in (
            ("timestamp", TIMESTAMP_PATTERN, parsers.timestamps, pa.int64()),
            ("rating", NUMBER_PATTERN, parsers.numbers, pa.float64()),
        ):
            canonical = self._sql.full_match(f'"{column}"', p("pattern"))
            odd = self._session.fetch(
                f'SELECT DISTINCT "{column}" AS text FROM raw WHERE NOT {_blank(column)} '
                f"AND NOT {canonical} ORDER BY text",
                {"pattern": Pattern(pattern)},
            )
            text = odd["text"].combine_chunks() if odd.num_rows else pa.array([], pa.string())
            values = parse(text).cast(kind) if len(text) else pa.array([], kind)
            self._session.register(f"odd_{column}", pa.table({"text": text, "value": values}))

    def _typed(self) -> str:
        """Every raw row with its typed timestamp (epoch ns, null unless it parses within
        the typed range) and rating (null unless a finite number).

        The patterns are not matched again here: the odd-value tables hold every distinct
        non-empty value outside them, so a value found there takes the reference's verdict
        and any other non-empty value is canonical, for the engine's cast. Matching once
        (``_odd_values``) instead of in every pass over the rows saves a pattern pass per
        statement (the timestamp pattern is ~1 s per 5M rows here)."""
        sql, p = self._sql, self._sql.param
        text = 'r."timestamp"'
        ts_any = (
            f"CASE WHEN {_blank('timestamp')} THEN NULL WHEN ot.text IS NOT NULL THEN ot.value "
            f"ELSE {sql.epoch_ns(text)} END"
        )
        rating_any = (
            f"CASE WHEN {_blank('rating')} THEN NULL WHEN orat.text IS NOT NULL THEN orat.value "
            "ELSE TRY_CAST(r.rating AS DOUBLE) END"
        )
        return f"""
            SELECT rn, user_id, item_id, event_type, "timestamp", rating,
                   CASE WHEN ts_any BETWEEN {p("earliest")} AND {p("latest")} THEN ts_any END
                       AS ts_ns,
                   CASE WHEN rating_any {_FINITE} THEN rating_any END AS rating_value,
                   CASE WHEN weight_any {_FINITE} THEN weight_any END AS weight_value
            FROM (SELECT r.rn, r.user_id, r.item_id, r.event_type,
                         r."timestamp", r.rating, {ts_any} AS ts_any, {rating_any} AS rating_any,
                         TRY_CAST({self._weight} AS DOUBLE) AS weight_any
                  FROM raw r
                  LEFT JOIN odd_timestamp ot ON ot.text = r."timestamp"
                  LEFT JOIN odd_rating orat ON orat.text = r.rating) typed
        """

    def _params(self) -> dict[str, Any]:
        rules = self._rules
        return {"earliest": rules.earliest_ns, "latest": rules.latest_ns}

    def _classify(self) -> None:
        """Materialise the broken rows only (rule bits, duplicates' originals); the valid
        rows are streamed later by leaving these out, so memory holds the faults alone."""
        sql, p = self._sql, self._sql.param
        columns = [f'"{c}"' for c in RAW_COLUMNS]
        # Exact duplicates: the values of a hash of all columns that occur more than once
        # (few) mark the candidates, which the classifying pass keeps beside the rows that
        # break a rule; a window over the candidates alone then compares the values. Marking
        # them in that pass instead of a pass of their own saves a read and hash of every row.
        self._session.keep(
            "repeated_hashes", sql.repeated(f"SELECT {sql.hash(columns)} AS h FROM raw", "h"), {}
        )
        blank = {column: _blank(column) for column in RAW_COLUMNS}
        is_rating = "coalesce(event_type = 'rating', false)"
        outside = (
            f"coalesce(rating_value < {p('min_rating')} OR rating_value > {p('max_rating')}, false)"
        )
        bits = {
            "required_columns": " OR ".join(blank[c] for c in REQUIRED),
            "timestamp_parse": f"(NOT {blank['timestamp']} AND ts_ns IS NULL)",
            "future_timestamps": f"coalesce(ts_ns > {p('future')}, false)",
            "rating_range": f"(({is_rating} AND ({outside} OR {blank['rating']})) "
            f"OR (NOT {blank['rating']} AND rating_value IS NULL))",
            "event_type_values": f"(NOT {blank['event_type']} "
            f"AND NOT {sql.contains(p('allowed'), 'event_type')})",
            # Anti-joins (known ids are unique and never null): NOT IN's null semantics
            # make DuckDB plan a mark join, ~8x slower at 5M rows.
            "referential_integrity": f"((NOT {blank['item_id']} AND ki.id IS NULL) "
            f"OR (NOT {blank['user_id']} AND ku.id IS NULL))",
        }
        code = " + ".join(
            f"(CASE WHEN {rule_sql} THEN {_bit(rule)} ELSE 0 END)"
            for rule, rule_sql in bits.items()
        )
        rules = self._rules
        self._session.keep(
            "flagged",
            f"""
            SELECT * FROM (
                SELECT t.*, {is_rating} AS is_rating, {sql.hash(columns)} AS h,
                       {code} AS code
                FROM ({self._typed()}) t
                LEFT JOIN known_items ki ON ki.id = t.item_id
                LEFT JOIN known_users ku ON ku.id = t.user_id) classified
            WHERE code <> 0 OR h IN (SELECT h FROM repeated_hashes)
            """,
            {
                **self._params(),
                "future": rules.future_limit_ns,
                "min_rating": rules.min_rating,
                "max_rating": rules.max_rating,
                "allowed": list(rules.allowed_events),
            },
        )
        everything = ", ".join(columns)
        kept = ", ".join(f"f.{c}" for c in (*columns, "ts_ns", "rating_value", "weight_value"))
        duplicate = f"(CASE WHEN coalesce(d.repeated, false) THEN {_bit('duplicates')} ELSE 0 END)"
        self._session.keep(
            "broken",
            f"""
            SELECT * FROM (
                SELECT f.rn, {kept}, f.is_rating, coalesce(d.copy_of, f.rn) AS copy_of,
                       CAST(f.code + {duplicate} AS TINYINT) AS code
                FROM flagged f
                LEFT JOIN (
                    SELECT rn, row_number() OVER same > 1 AS repeated,
                           min(rn) OVER same AS copy_of
                    FROM flagged WHERE h IN (SELECT h FROM repeated_hashes)
                    WINDOW same AS (PARTITION BY {everything} ORDER BY rn)) d ON d.rn = f.rn
            ) classified
            WHERE code <> 0
            """,
            {},
        )
        self._session.drop("flagged")
        self._session.drop("repeated_hashes")

    def tally(self) -> Tally:
        """Rows, failures per rule, nulls per required column (all from the broken rows:
        a null in a required column always breaks a rule) and the broken rows' ratings."""
        failed = [f"coalesce(count_if(code & {_bit(rule)} <> 0), 0)" for rule in ROW_RULES]
        nulls = [f"coalesce(count_if({_blank(c)}), 0)" for c in REQUIRED]
        span = [f"{side}(rating_value) FILTER (WHERE is_rating)" for side in ("min", "max")]
        aggregates = ", ".join(f"{sql} AS a{i}" for i, sql in enumerate(failed + nulls + span))
        row = self._session.fetch(f"SELECT {aggregates} FROM broken")
        values = [row[f"a{i}"][0].as_py() for i in range(row.num_columns)]
        total = self._session.fetch("SELECT count(*) AS n FROM raw")["n"][0].as_py()
        rules, columns = len(ROW_RULES), len(REQUIRED)
        return Tally(
            rows=int(total),
            failed=dict(zip(ROW_RULES, map(int, values[:rules]), strict=True)),
            null_counts=dict(zip(REQUIRED, map(int, values[rules : rules + columns]), strict=True)),
            broken_rating_min=values[-2],
            broken_rating_max=values[-1],
        )

    def valid(self, batch_rows: int) -> Iterator[pa.RecordBatch]:
        """Valid rows in input order: text ids, ``timestamp`` as epoch ns, ``rating`` and
        ``weight`` double."""
        query = (
            'SELECT t.rn, user_id, item_id, event_type, ts_ns AS "timestamp", '
            "rating_value AS rating, weight_value AS weight "
            f"FROM ({self._typed()}) t {self._sql.anti_join} broken b ON b.rn = t.rn"
        )
        yield from self._session.stream(query, self._params(), ("rn",), batch_rows)

    def quarantined(self, batch_rows: int) -> Iterator[pa.RecordBatch]:
        """Broken rows in input order: raw text, ``row_number``, ``code`` (rule bits),
        ``copy_of`` (the first row with the same values; the row itself if none before)."""
        query = (
            'SELECT rn, user_id, item_id, event_type, "timestamp", rating, rn AS row_number, '
            "code, copy_of FROM broken"
        )
        yield from self._session.stream(query, {}, ("rn",), batch_rows)
