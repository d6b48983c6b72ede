"""Ingestion's row rules as SQL, run by DuckDB (``local``) or Spark SQL (``spark``).

What follows reading a source file is written here once: the ``filter`` on the file's own
columns, ``column_mapping`` and the reduction to the canonical columns, ``value_mapping``,
``constants`` and the time column's conversion to ISO-8601 UTC text. One statement computes
every kept row's canonical values (all text, like the raw layout) with the row's position;
the rows then stream back in order into the task's own writer, so the raw tables are the
pandas/pyarrow reference's, byte for byte.

The rows come from a relation the task prepares (``Rows``) from what the reference reader
read: on DuckDB each read batch as it is (Arrow), on Spark a scratch Parquet copy of the
file (docs/engines.md, "How the engines run ingestion", says why the engines do not read
the source themselves).
Its columns are named ``c0``, ``c1``... in the file's order, so a column name never enters
the SQL text; every value from the config (filter values, mapped values, constants) is a
query parameter.

Exactness where the SQL and the reference could disagree is handled as in validation: the
SQL decides only canonical spellings both agree on (plain decimals, plain integers for
epoch units, the strict ISO-8601 pattern when the zone is UTC); every other distinct value
is handed to the caller's reference parser (``Parsers``) and joined back. What cannot be
exact raises ``NotExact`` before a row is handed on, and the task converts those rows with
the reference instead: the reference formats each read batch's times at the coarsest exact
precision of that batch, so sub-second times have batch-dependent text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from recomart_pipeline.engines.sql import Pattern, SqlSession
from recomart_pipeline.engines.validation import NUMBER_PATTERN, TIMESTAMP_PATTERN

# Plain integers: the reference's to_numeric reads them as int64 exactly (19 digits may not).
INTEGER_PATTERN = r"-?[0-9]{1,18}"
# Ticks of each epoch unit in one second.
TICKS_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
NS_PER_SECOND = 1_000_000_000
# The largest finite double: BETWEEN its negation and it excludes NaN and ±inf on both.
_FINITE = "BETWEEN -1.7976931348623157e308 AND 1.7976931348623157e308"
_COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")
POSITION = "rn"


class NotExact(Exception):
    """The SQL cannot give the reference's output for this file; its reason is logged."""


@dataclass(frozen=True)
class _Spelling:
    """Spellings ingestion needs that the engines do not share (besides ``sql.Dialect``)."""

    # "YYYY-MM-DDTHH:MM:SSZ" of whole epoch seconds (a BIGINT expression)
    iso_seconds: Callable[[str], str]
    # integer division of BIGINT expressions, exact for the values it is given
    div: Callable[[str, str], str]


_SPELLINGS = {
    "duckdb": _Spelling(
        iso_seconds=lambda s: (
            f"strftime(make_timestamp(CAST({s} AS BIGINT) * 1000000), '%Y-%m-%dT%H:%M:%SZ')"
        ),
        div=lambda a, b: f"({a} // {b})",
    ),
    # The session's time zone is UTC (forced by the Spark session). The literal T and Z are
    # concatenated rather than quoted in the pattern (no escapes inside SQL strings).
    "spark": _Spelling(
        iso_seconds=lambda s: (
            f"concat(date_format(timestamp_seconds({s}), 'yyyy-MM-dd'), 'T', "
            f"date_format(timestamp_seconds({s}), 'HH:mm:ss'), 'Z')"
        ),
        div=lambda a, b: f"div({a}, {b})",
    ),
}


@dataclass(frozen=True)
class Condition:
    """One ``filter`` condition, its value already as the reference compares it: text
    (``_as_text``), a float for a numeric comparison, a list of texts for in / not_in."""

    column: str  # the relation's column (c0, c1, ...)
    op: str
    value: str | float | list[str] | None


@dataclass(frozen=True)
class TimeRule:
    """How the time column converts: ``unit`` as configured; ``sql_iso`` when ISO text in UTC
    without a strptime format (the SQL parses its canonical spellings; otherwise every
    distinct value goes to the reference)."""

    unit: str
    sql_iso: bool
    earliest_ns: int
    latest_ns: int


@dataclass(frozen=True)
class FileRules:
    """The rules of one file, as plain values (the engine knows no config model)."""

    outputs: dict[str, str | None]  # canonical column → relation column (None: not in file)
    integers: frozenset[str]  # relation columns holding integers (the rest hold text)
    conditions: tuple[Condition, ...]
    value_mapping: dict[str, dict[str, str]]
    constants: dict[str, str]
    time_column: str | None = None  # the canonical column converted by ``time``
    time: TimeRule | None = None
    amount: str | None = None  # relation column summed by aggregation (a float output)
    amount_name: str = "__amount"

    @property
    def selects_only(self) -> bool:
        """The rules keep every row and change no value: each output is a text column as
        read, or absent (null) with no constant. The rows are then the read batches with
        their columns picked and renamed (the reference's pass), nothing left for the SQL."""
        if self.conditions or self.time_column is not None or self.amount is not None:
            return False
        return all(
            canonical not in self.constants
            if column is None
            else column not in self.integers and not self.value_mapping.get(canonical)
            for canonical, column in self.outputs.items()
        )


@dataclass(frozen=True)
class Parsers:
    """The reference's parsers for the distinct values the SQL leaves to them."""

    # distinct text → float64 (NaN as null, ±inf kept), as the filter compares numbers
    numbers: Callable[[pa.Array], pa.Array]
    # distinct text → the time column's text (converted, or the value itself); raises
    # NotExact where the reference's output would depend on its read batches
    times: Callable[[pa.Array], pa.Array]


@dataclass(frozen=True)
class Rows:
    """Where the rows are: a relation with columns c0..cN and a position expression."""

    relation: str
    position: str


@dataclass
class _Query:
    """SQL fragments with their parameters, named p0, p1, ... as they are added."""

    session: SqlSession
    params: dict[str, Any] = field(default_factory=dict)
    joins: list[str] = field(default_factory=list)

    def param(self, value: Any) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return self.session.dialect.param(name)

    def used(self, sql: str) -> dict[str, Any]:
        """The parameters ``sql`` names (the engines refuse values for absent ones)."""
        named = set(re.findall(r"[$:](p[0-9]+)\b", sql))
        return {name: value for name, value in self.params.items() if name in named}


class CanonicalRows:
    """The canonical rows of one file in a SQL session, computed when constructed.

    ``rows`` and ``kept`` count the rows read and kept by the filter; ``batches`` streams the
    kept rows in file order (computed again: nothing is kept but the small tables of odd
    values). Raises ``NotExact`` when the reference's output cannot be reproduced.
    """

    def __init__(
        self,
        session: SqlSession,
        rows: Rows,
        rules: FileRules,
        parsers: Parsers,
        name: str,
    ) -> None:
        self._session = session
        self._rules = rules
        self._name = name
        self._q = _Query(session)
        self._spell = _SPELLINGS[session.dialect.name]
        self._from = f"{rows.relation} AS src"
        self._build(rows, rules, parsers, name)

    def _build(self, rows: Rows, rules: FileRules, parsers: Parsers, name: str) -> None:
        session = self._session
        numbers = {c.column for c in rules.conditions if isinstance(c.value, float)}
        if rules.amount is not None:
            numbers.add(rules.amount)
        self._numbers = {
            column: self._number(column, parsers.numbers)
            for column in sorted(numbers - rules.integers)
        }
        where = " AND ".join(self._condition(c) for c in rules.conditions) or "TRUE"
        selected = [f"{rows.position} AS {POSITION}"]
        subsecond = "FALSE"
        for index, (canonical, column) in enumerate(rules.outputs.items()):
            if column is None:
                value = (
                    f"CAST({self._q.param(rules.constants[canonical])} AS STRING)"
                    if canonical in rules.constants
                    else "CAST(NULL AS STRING)"
                )
            elif canonical == rules.time_column and rules.time is not None:
                value, subsecond = self._time(column, rules.time, parsers.times, where)
            else:
                value = self._text(column)
            if column is not None:  # constants are written as given, not value-mapped
                value = self._mapped(value, rules.value_mapping.get(canonical))
            selected.append(f"{value} AS o{index}")
        if rules.amount is not None:
            amount = self._numeric(rules.amount)
            selected.append(f"CASE WHEN {amount} {_FINITE} THEN {amount} END AS amount")
        body = f"FROM {self._from} {' '.join(self._q.joins)} WHERE {where}"
        # Not kept: the rows are computed twice (counted, then streamed), which costs less
        # than writing every canonical string once more (1M rows: 0.4 s instead of 1.0 s).
        self._stream = f"SELECT {', '.join(selected)} {body}"
        self.rows = int(session.fetch(f"SELECT count(*) AS n FROM {rows.relation}")[0][0].as_py())
        counting = f"SELECT count(*) AS n, count_if({subsecond}) AS s {body}"
        counts = session.fetch(counting, self._q.used(counting)).to_pylist()[0]
        self.kept = int(counts["n"])
        if counts["s"]:
            raise NotExact(
                f"{counts['s']:,} times have fractions of a second (the reference writes each "
                "read batch's times at that batch's precision)"
            )

    def _text(self, column: str) -> str:
        return (
            f"CAST(src.{column} AS STRING)" if column in self._rules.integers else f"src.{column}"
        )

    def _number(self, column: str, parse: Callable[[pa.Array], pa.Array]) -> str:
        """A text column's numbers: plain decimals cast in SQL, other spellings parsed by the
        reference (once per distinct value) and joined back; the expression's SQL."""
        match = self._session.dialect.full_match(
            f"src.{column}", self._q.param(Pattern(NUMBER_PATTERN))
        )
        query = (
            f"SELECT DISTINCT src.{column} AS v FROM {self._from} "
            f"WHERE src.{column} IS NOT NULL AND NOT {match}"
        )
        odd = self._session.fetch(query, self._q.used(query)).column("v")
        table = f"{self._name}_n_{column}"
        self._session.register(table, pa.table({"v": odd.cast(pa.string()), "x": parse(odd)}))
        self._q.joins.append(f"LEFT JOIN {table} ON {table}.v = src.{column}")
        return f"CASE WHEN {match} THEN TRY_CAST(src.{column} AS DOUBLE) ELSE {table}.x END"

    def _numeric(self, column: str) -> str:
        if column in self._rules.integers:
            return f"CAST(src.{column} AS DOUBLE)"
        return self._numbers[column]

    def _condition(self, condition: Condition) -> str:
        """A row meets the condition: True or False, never null (a blank value meets only
        is_null), as the reference's ``_meets``."""
        text = self._text(condition.column)
        blank = f"({text} IS NULL OR {text} = '')"
        op, value = condition.op, condition.value
        if op == "is_null":
            return blank
        if op == "not_null":
            return f"(NOT {blank})"
        if op in ("in", "not_in"):
            assert isinstance(value, list)
            hit = self._session.dialect.contains(self._q.param(value), text)
            result = hit if op == "in" else f"(NOT {hit})"
        elif op in ("startswith", "not_startswith"):
            prefix = self._q.param(value)
            hit = f"(substring({text}, 1, length({prefix})) = {prefix})"
            result = hit if op == "startswith" else f"(NOT {hit})"
        else:
            assert op in _COMPARISONS
            sql_op = "=" if op == "==" else "<>" if op == "!=" else op
            if isinstance(value, float):
                result = f"({self._numeric(condition.column)} {sql_op} {self._q.param(value)})"
            else:
                result = f"({text} {sql_op} {self._q.param(value)})"
        return f"((NOT {blank}) AND coalesce({result}, FALSE))"

    def _mapped(self, value: str, mapping: dict[str, str] | None) -> str:
        if not mapping:
            return value
        cases = " ".join(
            f"WHEN {self._q.param(k)} THEN {self._q.param(v)}" for k, v in mapping.items()
        )
        return f"CASE {value} {cases} ELSE {value} END"

    def _time(
        self, column: str, rule: TimeRule, parse: Callable[[pa.Array], pa.Array], where: str
    ) -> tuple[str, str]:
        """The time column as ISO-8601 UTC text, and whether a row's time has a fraction of
        a second (the SQL's own conversions only; the parser refuses the odd ones)."""
        text = self._text(column)
        q, sql, spell = self._q, self._session.dialect, self._spell
        if rule.unit != "iso":
            ticks = TICKS_PER_SECOND[rule.unit]
            per_tick = NS_PER_SECOND // ticks
            canonical = sql.full_match(text, q.param(Pattern(INTEGER_PATTERN)))
            value = f"TRY_CAST({text} AS BIGINT)"
            low, high = -(-rule.earliest_ns // per_tick), rule.latest_ns // per_tick
            inside = f"({value} BETWEEN {q.param(low)} AND {q.param(high)})"
            seconds = spell.div(value, q.param(ticks))
            written = spell.iso_seconds(seconds)
            fraction = f"({value} % {q.param(ticks)} <> 0)"
        elif rule.sql_iso:
            canonical = sql.full_match(text, q.param(Pattern(TIMESTAMP_PATTERN)))
            # Only canonical text reaches the cast: the engines need not evaluate AND's
            # operands lazily, and other text may overflow it (year 1500).
            value = f"CASE WHEN {canonical} THEN {sql.epoch_ns(text)} END"
            inside = f"({value} BETWEEN {q.param(rule.earliest_ns)} AND {q.param(rule.latest_ns)})"
            seconds = spell.div(value, q.param(NS_PER_SECOND))
            # Text already in the output's spelling (a canonical value of 20 characters with
            # T and Z: YYYY-MM-DDTHH:MM:SSZ) that names a real instant in range is its own
            # conversion: it is kept as read instead of being formatted again. Exports in
            # that spelling are the common case (ingestion at 20M: 0.96x the time).
            own = (
                f"(length({text}) = 20 AND substring({text}, 11, 1) = 'T' "
                f"AND substring({text}, 20, 1) = 'Z')"
            )
            written = f"CASE WHEN {own} THEN {text} ELSE {spell.iso_seconds(seconds)} END"
            fraction = f"({value} % {q.param(NS_PER_SECOND)} <> 0)"
        else:
            canonical = inside = written = fraction = "FALSE"  # (unused)
        query = (
            f"SELECT DISTINCT {text} AS v FROM {self._from} {' '.join(q.joins)} "
            f"WHERE {where} AND {text} IS NOT NULL AND NOT coalesce({canonical}, FALSE)"
        )
        odd = self._session.fetch(query, q.used(query)).column("v")
        table = f"{self._name}_t"
        self._session.register(table, pa.table({"v": odd.cast(pa.string()), "x": parse(odd)}))
        q.joins.append(f"LEFT JOIN {table} ON {table}.v = {text}")
        if canonical == "FALSE":  # every value is the reference's
            return f"{table}.x", "FALSE"
        converted = (
            f"CASE WHEN coalesce({canonical}, FALSE) THEN "
            f"CASE WHEN coalesce({inside}, FALSE) THEN {written} "
            f"ELSE {text} END ELSE {table}.x END"
        )
        subsecond = f"(coalesce({canonical}, FALSE) AND coalesce({inside}, FALSE) AND {fraction})"
        return converted, subsecond

    def batches(self, batch_rows: int) -> Iterator[pa.RecordBatch]:
        """The kept rows in file order, named as the canonical columns (all text; the
        amount, if any, a double)."""
        names = list(self._rules.outputs)
        if self._rules.amount is not None:
            names.append(self._rules.amount_name)
        sql = f"SELECT * FROM ({self._stream}) AS kept"
        for batch in self._session.stream(sql, self._q.used(sql), (POSITION,), batch_rows):
            yield batch.rename_columns(names)
