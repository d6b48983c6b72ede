"""Validation: the data contract between ingestion and everything downstream.

Every rule is a declared check with a configurable severity (ERROR blocks downstream tasks,
WARN does not) and threshold. Row-level rules look at each interaction; a row that breaks
any of them goes to the ``quarantine`` artifact with the rule names in its ``reason`` column
(joined by ``;``) and never reaches ``interactions``. A check passes while the share of rows
breaking its rule stays within ``max_fraction`` — the quarantine removes them either way, so
a few bad rows do not stop the pipeline but a broken feed does.

Row-level rules:
  required_columns       a required column (user_id, item_id, event_type, timestamp) is
                         null or empty
  timestamp_parse        a timestamp is present but not ISO-8601 (or outside 1678..2262)
  future_timestamps      a timestamp lies after now + max_future_skew
  rating_range           a rating is not a number, or a rating event has none within
                         [min_rating, max_rating]
  event_type_values      event_type is one of ``allowed``
  duplicates             exact copies of an earlier raw row (the first copy is kept)
  referential_integrity  item_id exists in items and user_id in users
Dataset-level rules (nothing more is quarantined):
  null_rate              the null share of each required column (its rows are quarantined
                         as ``required_columns``)
  freshness              the newest valid event is at most max_age_days old
  row_count_change       the input row count moved at most max_relative_change since the
                         previous successful run of this task

Every check that fails or quarantines rows explains itself: how many rows and which share,
the threshold and the config key that sets it, up to five offending values with their row
numbers (``row_number`` of the quarantine; 0 is the first data row of the ingested table)
and the file, and what to change. The examples are in the check's metadata and in
``validation_report.json`` too. Hints only name settings the data does not contradict (an
epoch unit is proposed only when every unparsable timestamp reads as that unit).

Interactions are read twice in batches of ``chunk_rows`` (once to find faults and
duplicates, once to write and collect examples), so memory holds only per-row flags and
64-bit row hashes. Two
different rows share a hash with probability ~n²/2⁶⁵ (about 1e-5 for 20M rows).

That is the ``pandas`` engine, the reference. With ``execution.engine: local`` (or ``spark``)
the row rules run as SQL on DuckDB (or Spark SQL: ``recomart_pipeline.engines.validation``,
one text for both); everything else here — the
items/users tables, the evidence behind the messages, the checks and the report — is shared,
and the outputs are byte-identical (``recomart_pipeline_tests/engines``).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic_core import to_jsonable_python

from recomart_pipeline.contract.documents import ValidationReport
from recomart_pipeline.contract.errors import DataValidationError, SchemaError
from recomart_pipeline.contract.task import (
    CheckOutcome,
    TaskContext,
    TaskResult,
)
from recomart_pipeline.engines.validation import (
    ROW_RULES,
    InteractionRules,
    InteractionValidation,
    Parsers,
    raw_columns_are_text,
)
from recomart_pipeline.runtime.artifacts import RESULT_FILE
from recomart_pipeline.tasks._engines import SQL_ENGINES, engine_for, sql_session
from recomart_pipeline.tasks._tables import (
    TYPED_SCHEMAS,
    ParquetSink,
    iter_text_batches,
    to_text,
    write_frame,
)
from recomart_pipeline.tasks.specs.tables import TABLES, WEIGHT
from recomart_pipeline.tasks.specs.validation import (
    RAW_INTERACTIONS,
    RAW_ITEMS,
    RAW_USERS,
    Config,
    FreshnessConfig,
    RowCountChangeConfig,
    RuleConfig,
)

# Row-level rules in bit order (shared with the engines): a row's flags are the OR of the
# bits of the rules it breaks.
BIT = {rule: np.uint8(1 << position) for position, rule in enumerate(ROW_RULES)}
REASONS = pa.array(
    [
        ";".join(rule for rule in ROW_RULES if code & BIT[rule])
        for code in range(1 << len(ROW_RULES))
    ]
)
REQUIRED = TABLES["interactions"].required
RAW_COLUMNS = list(TABLES["interactions"].columns)
QUARANTINE_SCHEMA = pa.schema(
    [
        *[pa.field(c, pa.string()) for c in RAW_COLUMNS],
        ("row_number", pa.int64()),
        ("reason", pa.string()),
    ]
)
SECONDS_PER_DAY = 86_400
# The typed layout stores nanoseconds, which cover 1677-09-21 .. 2262-04-11.
EARLIEST = pd.Timestamp("1678-01-01", tz="UTC")
LATEST = pd.Timestamp("2262-01-01", tz="UTC")
EXAMPLES = 5  # offending values shown per rule
VALUE_KINDS = 10_000  # distinct offending values counted per rule (bounds memory)
# Epoch units an all-numeric timestamp column may be in, and their length in seconds.
EPOCH_UNITS: tuple[tuple[str, str, float], ...] = (
    ("s", "seconds", 1.0),
    ("ms", "milliseconds", 1e-3),
    ("us", "microseconds", 1e-6),
    ("ns", "nanoseconds", 1e-9),
)
EPOCH_PLAUSIBLE_FROM = pd.Timestamp("1971-01-01", tz="UTC")


@dataclass(frozen=True)
class _References:
    """Known ids for the referential rule."""

    item_ids: pa.Array
    user_ids: pa.Array


@dataclass
class _Parsed:
    """The typed columns of one raw batch and which values failed to parse."""

    timestamps: pd.Series
    ratings: np.ndarray
    rating_blank: np.ndarray
    bad_timestamp: np.ndarray
    timestamp_out_of_range: np.ndarray
    bad_rating: np.ndarray


@dataclass
class _Scan:
    """What the first pass learns about the whole interactions table."""

    flags: np.ndarray
    hashes: np.ndarray
    null_counts: dict[str, int] = field(default_factory=dict)
    oldest: pd.Timestamp | None = None
    newest: pd.Timestamp | None = None


@dataclass(frozen=True)
class _Summary:
    """Whole-table counts and ranges the checks and the report need, from either engine."""

    rows: int
    failed: dict[str, int]
    null_counts: dict[str, int]
    oldest: pd.Timestamp | None
    newest: pd.Timestamp | None

    @classmethod
    def of(cls, scan: _Scan) -> _Summary:
        return cls(
            rows=len(scan.flags),
            failed={r: int(np.count_nonzero(scan.flags & BIT[r])) for r in ROW_RULES},
            null_counts=scan.null_counts,
            oldest=scan.oldest,
            newest=scan.newest,
        )


@dataclass
class _Evidence:
    """What the write pass saw of the broken rows: examples and counts, for the messages."""

    examples: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {rule: [] for rule in ROW_RULES}
    )
    values: dict[str, Counter[str | None]] = field(
        default_factory=lambda: {rule: Counter() for rule in ROW_RULES}
    )
    timestamps_bad: int = 0
    timestamps_numeric: int = 0
    timestamps_out_of_range: int = 0
    epoch_min: float | None = None
    epoch_max: float | None = None
    ratings_not_numeric: int = 0
    ratings_missing: int = 0
    rating_min: float | None = None
    rating_max: float | None = None
    latest_future: pd.Timestamp | None = None


@dataclass(frozen=True)
class _Keys:
    """Where the messages point: the config keys to change and the file the rows came from."""

    validation: str  # "tasks.<name>.config."
    source: str  # "tasks.<ingestion>.config.source.interactions."
    file: str  # the ingested file (or URI/glob), or the raw table's name


def _blank(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Null or empty string."""
    return pc.fill_null(pc.equal(column, ""), True).to_numpy(zero_copy_only=False)


def _parse(raw: pa.Table) -> _Parsed:
    """Timestamps (ISO-8601, UTC) and ratings (numeric); failures become NaT/NaN."""
    parsed_times = pd.to_datetime(
        raw["timestamp"].to_pandas(), utc=True, format="ISO8601", errors="coerce"
    )
    in_range = parsed_times.between(EARLIEST, LATEST)
    out_of_range = (parsed_times.notna() & ~in_range).to_numpy()
    timestamps = parsed_times.where(in_range)
    bad_timestamp = timestamps.isna().to_numpy() & ~_blank(raw["timestamp"])
    rating_blank = _blank(raw["rating"])
    parsed = pd.to_numeric(raw["rating"].to_pandas(), errors="coerce")
    parsed = parsed.to_numpy(dtype=np.float64, na_value=np.nan)
    bad_rating = ~np.isfinite(parsed) & ~rating_blank
    ratings = np.where(bad_rating, np.nan, parsed)
    return _Parsed(timestamps, ratings, rating_blank, bad_timestamp, out_of_range, bad_rating)


def _future_limit(config: Config) -> pd.Timestamp:
    """Timestamps after this are in the future: the run's clock plus the allowed skew."""
    now = config.freshness.reference_time or datetime.now(UTC)
    return pd.Timestamp(now) + pd.Timedelta(config.future_timestamps.max_future_skew)


def _is_rating(raw: pa.Table) -> np.ndarray:
    return pc.fill_null(pc.equal(raw["event_type"], "rating"), False).to_numpy(zero_copy_only=False)


def _flags(
    raw: pa.Table, parsed: _Parsed, config: Config, refs: _References, limit: pd.Timestamp
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Row flags of every row-level rule but duplicates, plus the null mask per column."""
    flags = np.zeros(raw.num_rows, dtype=np.uint8)
    nulls = {column: _blank(raw[column]) for column in REQUIRED}
    flags[np.logical_or.reduce(list(nulls.values()))] |= BIT["required_columns"]
    flags[parsed.bad_timestamp] |= BIT["timestamp_parse"]
    flags[(parsed.timestamps > limit).to_numpy()] |= BIT["future_timestamps"]

    bounds = config.rating_range
    outside = (parsed.ratings < bounds.min_rating) | (parsed.ratings > bounds.max_rating)
    broken_rating = (_is_rating(raw) & (outside | parsed.rating_blank)) | parsed.bad_rating
    flags[broken_rating] |= BIT["rating_range"]

    allowed = pa.array(config.event_type_values.allowed)
    known_event = pc.is_in(raw["event_type"], value_set=allowed).to_numpy(zero_copy_only=False)
    flags[~known_event & ~nulls["event_type"]] |= BIT["event_type_values"]

    orphan_item, orphan_user = _orphans(raw, refs, nulls)
    flags[orphan_item | orphan_user] |= BIT["referential_integrity"]
    return flags, nulls


def _orphans(
    raw: pa.Table, refs: _References, nulls: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    known_item = pc.is_in(raw["item_id"], value_set=refs.item_ids).to_numpy(zero_copy_only=False)
    known_user = pc.is_in(raw["user_id"], value_set=refs.user_ids).to_numpy(zero_copy_only=False)
    return ~known_item & ~nulls["item_id"], ~known_user & ~nulls["user_id"]


def _batches(path: Path, config: Config) -> Iterator[pa.Table]:
    """The rule columns, plus the weight of aggregated interactions when ingestion wrote it
    (it only passes through: rules and duplicates look at the rule columns)."""
    weighted = WEIGHT in pq.ParquetFile(path).schema_arrow.names
    yield from iter_text_batches(path, config.chunk_rows, [*RAW_COLUMNS, *[WEIGHT] * weighted])


def _weights(raw: pa.Table, keep: np.ndarray) -> pa.Array:
    """The typed weight of the kept rows: a finite number, else null (which means 1)."""
    if WEIGHT not in raw.column_names:
        return pa.nulls(int(keep.sum()), pa.float32())
    values = pd.to_numeric(raw[WEIGHT].to_pandas(), errors="coerce")
    numbers = values.to_numpy(dtype=np.float64, na_value=np.nan)[keep]
    return pa.array(numbers, mask=~np.isfinite(numbers)).cast(pa.float32())


def _check_columns(path: Path) -> None:
    found = pq.ParquetFile(path).schema_arrow.names
    missing = [c for c in RAW_COLUMNS if c not in found]
    if missing:
        raise SchemaError(
            f"interactions input {path} lacks column(s) {missing} (it has {found})",
            hint="produce the canonical columns upstream (ingestion's column_mapping)",
        )


def _mark_duplicates(hashes: np.ndarray) -> np.ndarray:
    """True for every row whose hash appeared on an earlier row."""
    order = np.argsort(hashes, kind="stable")
    repeated = np.zeros(len(hashes), dtype=bool)
    repeated[order[1:]] = hashes[order[1:]] == hashes[order[:-1]]
    return repeated


def _scan(path: Path, config: Config, refs: _References) -> _Scan:
    """First pass: rule flags, null counts, row hashes and the valid time range."""
    flags, hashes = [], []
    null_counts = dict.fromkeys(REQUIRED, 0)
    oldest, newest = [], []
    limit = _future_limit(config)
    for raw in _batches(path, config):
        parsed = _parse(raw)
        batch_flags, nulls = _flags(raw, parsed, config, refs, limit)
        flags.append(batch_flags)
        rule_columns = raw.select(RAW_COLUMNS).to_pandas()
        hashes.append(pd.util.hash_pandas_object(rule_columns, index=False).to_numpy())
        for column, blank in nulls.items():
            null_counts[column] += int(blank.sum())
        clean = parsed.timestamps[batch_flags == 0]
        if len(clean):
            oldest.append(clean.min())
            newest.append(clean.max())
    scan = _Scan(
        flags=np.concatenate(flags) if flags else np.zeros(0, np.uint8),
        hashes=np.concatenate(hashes) if hashes else np.zeros(0, np.uint64),
        null_counts=null_counts,
        oldest=min(oldest) if oldest else None,
        newest=max(newest) if newest else None,
    )
    scan.flags[_mark_duplicates(scan.hashes)] |= BIT["duplicates"]
    return scan


def _typed_rows(raw: pa.Table, parsed: _Parsed, keep: np.ndarray) -> pa.Table:
    mask = pa.array(keep)
    ratings = parsed.ratings[keep]
    return pa.table(
        {
            "user_id": raw["user_id"].filter(mask),
            "item_id": raw["item_id"].filter(mask),
            "event_type": raw["event_type"].filter(mask),
            "timestamp": pa.array(parsed.timestamps).filter(mask),
            "rating": pa.array(ratings, mask=np.isnan(ratings)),
            WEIGHT: _weights(raw, keep),
        }
    )


def _quarantined_rows(raw: pa.Table, flags: np.ndarray, first_row: int) -> pa.Table:
    bad = np.flatnonzero(flags)
    columns = {name: raw[name].take(bad) for name in RAW_COLUMNS}
    columns["row_number"] = pa.array(bad + first_row, pa.int64())
    columns["reason"] = REASONS.take(pa.array(flags[bad]))
    return pa.table(columns)


def _count_values(counter: Counter[str | None], values: pa.Array | pa.ChunkedArray) -> None:
    """Count offending values; once VALUE_KINDS are known, only those are counted."""
    counts = pc.value_counts(values)
    for value, rows in zip(
        counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True
    ):
        if value in counter or len(counter) < VALUE_KINDS:
            counter[value] += rows


def _span(low: float | None, high: float | None, values: np.ndarray) -> tuple[float, float]:
    lo, hi = float(values.min()), float(values.max())
    return (lo if low is None else min(low, lo)), (hi if high is None else max(high, hi))


def _example(raw: pa.Table, index: int, row_numbers: np.ndarray, column: str) -> dict[str, Any]:
    value = raw[column][index].as_py()
    return {"row_number": int(row_numbers[index]), "column": column, "value": value}


def _rule_examples(
    rule: str,
    raw: pa.Table,
    rows: np.ndarray,
    row_numbers: np.ndarray,
    masks: dict[str, np.ndarray],
    copy_of: Callable[[int], int],
) -> list[dict[str, Any]]:
    """The offending value of each of ``rows`` (batch indices) for ``rule``.

    ``row_numbers`` maps batch indices to table rows; ``copy_of`` a batch index to the
    first row holding the same values (the duplicates' original).
    """
    examples = []
    for index in rows:
        if rule == "required_columns":
            blank = [c for c in REQUIRED if masks[c][index]]
            example = {"row_number": int(row_numbers[index]), "column": ",".join(blank)}
            example["value"] = None
        elif rule == "referential_integrity":
            column = "item_id" if masks["orphan_item"][index] else "user_id"
            example = _example(raw, index, row_numbers, column)
        elif rule == "duplicates":
            example = {
                "row_number": int(row_numbers[index]),
                "column": "*",
                "value": ", ".join(f"{c}={raw[c][index].as_py()}" for c in RAW_COLUMNS),
                "copy_of_row": copy_of(int(index)),
            }
        else:
            column = {"rating_range": "rating", "event_type_values": "event_type"}.get(
                rule, "timestamp"
            )
            example = _example(raw, index, row_numbers, column)
        examples.append(example)
    return examples


def _rating_span(evidence: _Evidence, raw: pa.Table, parsed: _Parsed) -> None:
    """Widen the range of the finite ratings of rating events (valid or not) by one batch."""
    rated = parsed.ratings[_is_rating(raw) & np.isfinite(parsed.ratings)]
    if len(rated):
        evidence.rating_min, evidence.rating_max = _span(
            evidence.rating_min, evidence.rating_max, rated
        )


def _collect(
    evidence: _Evidence,
    raw: pa.Table,
    parsed: _Parsed,
    flags: np.ndarray,
    row_numbers: np.ndarray,
    refs: _References,
    copy_of: Callable[[int], int],
) -> None:
    """Add one batch's examples, value counts and fault ranges to ``evidence``.

    Only the flagged rows matter, so an engine may pass just the quarantined rows.
    """
    if not flags.any():
        return
    is_rating = _is_rating(raw)
    masks = {column: _blank(raw[column]) for column in REQUIRED}
    masks["orphan_item"], _ = _orphans(raw, refs, masks)
    for rule in ROW_RULES:
        hit = (flags & BIT[rule]) != 0
        if not hit.any():
            continue
        room = EXAMPLES - len(evidence.examples[rule])
        if room > 0:
            rows = np.flatnonzero(hit)[:room]
            evidence.examples[rule] += _rule_examples(rule, raw, rows, row_numbers, masks, copy_of)
        if rule in ("rating_range", "event_type_values"):
            column = "rating" if rule == "rating_range" else "event_type"
            _count_values(evidence.values[rule], raw[column].filter(pa.array(hit)))
    broken = (flags & BIT["timestamp_parse"]) != 0
    if broken.any():
        evidence.timestamps_bad += int(broken.sum())
        evidence.timestamps_out_of_range += int((broken & parsed.timestamp_out_of_range).sum())
        numbers = pd.to_numeric(raw["timestamp"].filter(pa.array(broken)).to_pandas(), "coerce")
        finite = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
        finite = finite[np.isfinite(finite)]
        evidence.timestamps_numeric += len(finite)
        if len(finite):
            evidence.epoch_min, evidence.epoch_max = _span(
                evidence.epoch_min, evidence.epoch_max, finite
            )
    ranged = (flags & BIT["rating_range"]) != 0
    evidence.ratings_not_numeric += int((ranged & parsed.bad_rating).sum())
    evidence.ratings_missing += int((ranged & is_rating & parsed.rating_blank).sum())
    future = parsed.timestamps[(flags & BIT["future_timestamps"]) != 0]
    if len(future):
        latest = future.max()
        if evidence.latest_future is None or latest > evidence.latest_future:
            evidence.latest_future = latest


def _write_interactions(
    ctx: TaskContext, path: Path, config: Config, scan: _Scan, refs: _References
) -> tuple[Path, Path, int, _Evidence]:
    """Second pass: valid rows, typed, to ``interactions``; the rest to ``quarantine``."""
    valid_path = ctx.output_path("interactions.parquet")
    quarantine_path = ctx.output_path("quarantine.parquet")
    evidence = _Evidence()
    start = 0

    def first_copy(index: int) -> int:
        row = start + index
        return int(np.flatnonzero(scan.hashes == scan.hashes[row])[0])

    with (
        ParquetSink(valid_path, TYPED_SCHEMAS["interactions"]) as valid,
        ParquetSink(quarantine_path, QUARANTINE_SCHEMA) as quarantine,
    ):
        for raw in _batches(path, config):
            batch_flags = scan.flags[start : start + raw.num_rows]
            parsed = _parse(raw)
            valid.write(_typed_rows(raw, parsed, batch_flags == 0))
            quarantine.write(_quarantined_rows(raw, batch_flags, start))
            _rating_span(evidence, raw, parsed)
            row_numbers = np.arange(start, start + raw.num_rows)
            _collect(evidence, raw, parsed, batch_flags, row_numbers, refs, first_copy)
            start += raw.num_rows
    return valid_path, quarantine_path, valid.rows, evidence


def _reference_timestamps(text: pa.Array) -> pa.Array:
    """The pandas parse of ``_parse`` for single values, as epoch ns for the engine's range
    check: a value pandas parses outside the typed range (pandas may parse at a coarser
    unit, reaching year 9999) is pinned 1 ns beyond the nearer end, so it stays outside."""
    parsed = pd.to_datetime(text.to_pandas(), utc=True, format="ISO8601", errors="coerce")
    in_range = parsed.between(EARLIEST, LATEST)
    nanoseconds = parsed.where(in_range).dt.as_unit("ns").to_numpy(dtype="int64", na_value=0)
    nanoseconds[(parsed < EARLIEST).to_numpy()] = EARLIEST.value - 1
    nanoseconds[(parsed > LATEST).to_numpy()] = LATEST.value + 1
    return pa.array(nanoseconds, mask=parsed.isna().to_numpy())


def _reference_numbers(text: pa.Array) -> pa.Array:
    """The pandas parse of ``_parse`` for single ratings: float64, null unless finite."""
    parsed = pd.to_numeric(text.to_pandas(), errors="coerce")
    values = parsed.to_numpy(dtype=np.float64, na_value=np.nan)
    return pa.array(values, mask=~np.isfinite(values))


PARSERS = Parsers(_reference_timestamps, _reference_numbers)


def _rules(config: Config) -> InteractionRules:
    return InteractionRules(
        allowed_events=tuple(config.event_type_values.allowed),
        min_rating=config.rating_range.min_rating,
        max_rating=config.rating_range.max_rating,
        # Past the typed range no valid timestamp can be later: clamp so it fits in ns.
        future_limit_ns=min(_future_limit(config), LATEST).value,
        earliest_ns=EARLIEST.value,
        latest_ns=LATEST.value,
    )


def _validate_sql(
    ctx: TaskContext, path: Path, config: Config, refs: _References, engine: str
) -> tuple[_Summary, Path, Path, int, _Evidence]:
    """The ``local`` and ``spark`` engines: the row rules run as SQL (recomart_pipeline.engines).

    The engine streams valid and quarantined rows in input order; they are written with the
    same sinks as the pandas path. Evidence comes from the quarantined rows only, through
    the same ``_collect``; the rating range spans valid rows too, so the valid batches
    widen it as they are written.
    """
    valid_path = ctx.output_path("interactions.parquet")
    quarantine_path = ctx.output_path("quarantine.parquet")
    with (
        sql_session(ctx, engine) as session,
        InteractionValidation(
            session, path, _rules(config), refs.item_ids, refs.user_ids, PARSERS
        ) as engine_run,
    ):
        tally = engine_run.tally()
        _require_rows(tally.rows, path)
        evidence = _Evidence()
        if tally.broken_rating_min is not None and tally.broken_rating_max is not None:
            evidence.rating_min, evidence.rating_max = _span(
                None, None, np.array([tally.broken_rating_min, tally.broken_rating_max])
            )
        times: list[int] = []  # epoch ns: min and max of each batch
        with ParquetSink(valid_path, TYPED_SCHEMAS["interactions"]) as valid:
            for batch in engine_run.valid(config.chunk_rows):
                typed = _typed_batch(batch)
                valid.write(typed)
                span = pc.min_max(batch["timestamp"])
                times += [v.as_py() for v in span.values() if v.is_valid]
                _valid_rating_span(evidence, typed)
        with ParquetSink(quarantine_path, QUARANTINE_SCHEMA) as quarantine:
            for batch in engine_run.quarantined(config.chunk_rows):
                raw = pa.table({c: batch[c].cast(pa.string()) for c in RAW_COLUMNS})
                codes = batch["code"].to_numpy(zero_copy_only=False).astype(np.uint8)
                rows = batch["row_number"].to_numpy(zero_copy_only=False)
                copies = batch["copy_of"].to_numpy(zero_copy_only=False)
                quarantine.write(
                    raw.append_column("row_number", pa.array(rows, pa.int64())).append_column(
                        "reason", REASONS.take(pa.array(codes))
                    )
                )
                _collect(evidence, raw, _parse(raw), codes, rows, refs, _lookup(copies))
    summary = _Summary(
        rows=tally.rows,
        failed=tally.failed,
        null_counts=tally.null_counts,
        oldest=pd.Timestamp(min(times), unit="ns", tz="UTC") if times else None,
        newest=pd.Timestamp(max(times), unit="ns", tz="UTC") if times else None,
    )
    return summary, valid_path, quarantine_path, valid.rows, evidence


def _lookup(values: np.ndarray) -> Callable[[int], int]:
    return lambda index: int(values[index])


def _valid_rating_span(evidence: _Evidence, typed: pa.Table) -> None:
    is_rating = pc.fill_null(pc.equal(typed["event_type"], "rating"), False)
    span = pc.min_max(pc.cast(typed["rating"].filter(is_rating), pa.float64()))
    low, high = span["min"].as_py(), span["max"].as_py()
    if low is not None and high is not None:
        evidence.rating_min, evidence.rating_max = _span(
            evidence.rating_min, evidence.rating_max, np.array([low, high])
        )


def _typed_batch(batch: pa.RecordBatch) -> pa.Table:
    """The engine's valid rows in the typed layout (its timestamps are epoch ns)."""
    timestamps = (
        batch["timestamp"]
        .cast(pa.int64())
        .cast(TYPED_SCHEMAS["interactions"].field("timestamp").type)
    )
    return pa.table(
        {
            "user_id": batch["user_id"],
            "item_id": batch["item_id"],
            "event_type": batch["event_type"],
            "timestamp": timestamps,
            "rating": batch["rating"],
            WEIGHT: batch[WEIGHT].cast(pa.float32()),
        }
    )


def _read_text_table(path: Path, table: str) -> pd.DataFrame:
    """A small raw table (items/users) as text columns, canonical columns only."""
    source = pq.read_table(path)
    layout = TABLES[table]
    missing = [c for c in layout.required if c not in source.column_names]
    if missing:
        raise SchemaError(
            f"{table} input {path} lacks column(s) {missing} (it has {source.column_names})",
            hint="produce the canonical columns upstream (ingestion's column_mapping)",
        )
    return pa.table(
        {
            c: to_text(source[c])
            if c in source.column_names
            else pa.nulls(len(source), pa.string())
            for c in layout.columns
        }
    ).to_pandas()


def _dedupe_ids(frame: pd.DataFrame, id_column: str) -> tuple[pd.DataFrame, dict[str, int]]:
    """Drop rows without an id and later rows repeating an id (catalogs need unique keys)."""
    blank = frame[id_column].isna() | (frame[id_column] == "")
    repeated = frame[id_column].duplicated() & ~blank
    stats = {
        "rows_in": len(frame),
        "null_id": int(blank.sum()),
        "duplicate_id": int(repeated.sum()),
    }
    kept = frame[~(blank | repeated)].reset_index(drop=True)
    stats["rows_out"] = len(kept)
    return kept, stats


def _typed_items(path: Path) -> tuple[pd.DataFrame, dict[str, int]]:
    items, stats = _dedupe_ids(_read_text_table(path, "items"), "item_id")
    price = pd.to_numeric(items["price"], errors="coerce")
    stats["unparseable_price"] = int((price.isna() & items["price"].notna()).sum())
    return items.assign(price=price), stats


def _typed_users(path: Path) -> tuple[pd.DataFrame, dict[str, int]]:
    users, stats = _dedupe_ids(_read_text_table(path, "users"), "user_id")
    signup = pd.to_datetime(users["signup_date"], utc=True, format="ISO8601", errors="coerce")
    stats["unparseable_signup_date"] = int((signup.isna() & users["signup_date"].notna()).sum())
    return users.assign(signup_date=signup), stats


def _pct(fraction: float) -> str:
    """A share as a short percentage: 0.3 %, 1 %, 12.5 %."""
    return f"{fraction * 100:.3g} %"


def _rows(count: int) -> str:
    return f"{count:,} row" + ("" if count == 1 else "s")


def _show(value: Any) -> str:
    return "null" if value is None else repr(value)


def _examples_text(examples: list[dict[str, Any]], keys: _Keys) -> str:
    shown = []
    for example in examples:
        if example["column"] == "*":
            text = f"row {example['row_number']} (copy of row {example['copy_of_row']})"
        elif example["value"] is None:
            text = f"row {example['row_number']} {example['column']}=null"
        else:
            text = f"row {example['row_number']} {example['column']}={_show(example['value'])}"
        shown.append(text)
    return f"Examples from {keys.file}: " + ", ".join(shown) + "."


def _top_values(counter: Counter[str | None], limit: int = 5) -> str:
    ranked = sorted(counter.items(), key=lambda kv: (-kv[1], str(kv[0])))
    text = ", ".join(f"{_show(value)} ({_rows(rows)})" for value, rows in ranked[:limit])
    more = len(ranked) - limit
    return text + (f" and {more:,} more value(s)" if more > 0 else "")


def _epoch_unit(evidence: _Evidence, limit: pd.Timestamp) -> tuple[str, str] | None:
    """The one epoch unit that puts every unparsable (all-numeric) timestamp in a sane range."""
    low, high = evidence.epoch_min, evidence.epoch_max
    if low is None or high is None or evidence.timestamps_numeric != evidence.timestamps_bad:
        return None
    start, end = EPOCH_PLAUSIBLE_FROM.timestamp(), limit.timestamp()
    fits = [
        (unit, name)
        for unit, name, seconds in EPOCH_UNITS
        if start <= low * seconds and high * seconds <= end
    ]
    return fits[0] if len(fits) == 1 else None


def _epoch_iso(value: float, unit: str) -> str:
    return pd.Timestamp(value, unit=unit, tz="UTC").isoformat()


def _timestamp_fix(evidence: _Evidence, keys: _Keys, limit: pd.Timestamp) -> str:
    unit_key, format_key = f"{keys.source}timestamp.unit", f"{keys.source}timestamp.format"
    found = _epoch_unit(evidence, limit)
    if found is not None and evidence.epoch_min is not None and evidence.epoch_max is not None:
        unit, name = found
        low, high = evidence.epoch_min, evidence.epoch_max
        return (
            f"every unparsable timestamp is a number, and read as Unix epoch {name} they "
            f"span {_epoch_iso(low, unit)} .. {_epoch_iso(high, unit)}: if that is the "
            f"source's format, set {unit_key}: {unit}."
        )
    if evidence.timestamps_numeric == evidence.timestamps_bad:
        return (
            "every unparsable timestamp is a number, but no epoch unit (s, ms, us, ns) puts "
            f"them all between {EPOCH_PLAUSIBLE_FROM.date()} and {limit.date()}: check which "
            f"source column is mapped to timestamp ({keys.source}column_mapping)."
        )
    if evidence.timestamps_out_of_range == evidence.timestamps_bad:
        return (
            "these dates lie outside 1678..2262, which the typed table cannot hold: correct "
            "them at the source."
        )
    fix = (
        "timestamps must be ISO-8601 (such as 2026-01-31T12:00:00Z); if the source writes "
        f"another format, describe it with {format_key} (a strptime pattern matching the "
        f"values above) or {unit_key} for epoch numbers."
    )
    if evidence.timestamps_numeric:
        fix += (
            f" {evidence.timestamps_numeric:,} of them are numbers and the rest are not, so "
            "no single epoch unit fits them all."
        )
    return fix


def _rating_fix(config: Config, evidence: _Evidence, keys: _Keys) -> tuple[str, str]:
    bounds = config.rating_range
    key = f"{keys.validation}rating_range"
    detail = [
        f"have a rating outside [{bounds.min_rating:g}, {bounds.max_rating:g}], not a number, "
        "or missing on a rating event"
    ]
    if evidence.values["rating_range"]:
        detail.append(f"values seen: {_top_values(evidence.values['rating_range'])}")
    fixes = []
    low, high = evidence.rating_min, evidence.rating_max
    if low is not None and low < bounds.min_rating:
        fixes.append(
            f"rating events go down to {low:g}: if {low:g} is a valid rating on your scale, "
            f"set {key}.min_rating: {low:g}"
        )
    if high is not None and high > bounds.max_rating:
        fixes.append(
            f"rating events go up to {high:g}: if {high:g} is a valid rating on your scale, "
            f"set {key}.max_rating: {high:g}"
        )
    if evidence.ratings_not_numeric:
        fixes.append(
            f"{evidence.ratings_not_numeric:,} rating(s) are not numbers: correct them at the "
            f"source or check which column is mapped to rating ({keys.source}column_mapping)"
        )
    if evidence.ratings_missing:
        fixes.append(
            f"{evidence.ratings_missing:,} rating event(s) carry no rating: map the rating "
            f"column ({keys.source}column_mapping) or correct the source"
        )
    return "; ".join(detail), "; ".join(fixes) + "."


def _explanation(
    name: str, config: Config, evidence: _Evidence, keys: _Keys, limit: pd.Timestamp
) -> tuple[str, str]:
    """What the broken rows of a row-level rule have in common, and what to change."""
    if name == "required_columns":
        return (
            "lack a value in a required column (" + ", ".join(REQUIRED) + ")",
            "fill the values at the source or map the source column that holds them "
            f"({keys.source}column_mapping).",
        )
    if name == "timestamp_parse":
        return "have a timestamp that does not parse", _timestamp_fix(evidence, keys, limit)
    if name == "future_timestamps":
        rule = config.future_timestamps
        skew = to_jsonable_python(rule.max_future_skew)
        latest = evidence.latest_future.isoformat() if evidence.latest_future else "?"
        return (
            f"are dated after {limit.isoformat()} (now + max_future_skew {skew}; the latest "
            f"is {latest})",
            "correct the source's clock or time zone; if the events really lie ahead, raise "
            f"{keys.validation}future_timestamps.max_future_skew; when replaying old data, "
            f"pin {keys.validation}freshness.reference_time to when it was exported.",
        )
    if name == "rating_range":
        return _rating_fix(config, evidence, keys)
    if name == "event_type_values":
        allowed = config.event_type_values.allowed
        return (
            f"have an event_type outside {allowed}; values seen: "
            f"{_top_values(evidence.values['event_type_values'])}",
            "if these are valid events, add them to "
            f"{keys.validation}event_type_values.allowed; otherwise correct them at the source.",
        )
    if name == "duplicates":
        return (
            "repeat an earlier row exactly (the first copy is kept)",
            "de-duplicate the source, or raise "
            f"{keys.validation}duplicates.max_fraction if repeats are expected.",
        )
    return (
        "name an item_id missing from items or a user_id missing from users",
        "ingest the matching items/users tables (their ids must match the interactions').",
    )


def _rule_outcome(
    name: str,
    rule: RuleConfig,
    failed: int,
    rows: int,
    explanation: tuple[str, str],
    examples: list[dict[str, Any]],
    keys: _Keys,
) -> CheckOutcome:
    fraction = failed / rows if rows else 0.0
    passed = fraction <= rule.max_fraction
    threshold_key = f"{keys.validation}{name}.max_fraction"
    limit = f"max_fraction {_pct(rule.max_fraction)} ({threshold_key})"
    if failed == 0:
        description = f"0 of {rows:,} rows break '{name}'; {limit}"
    else:
        what, fix = explanation
        verdict = "within" if passed else "above"
        description = (
            f"{failed:,} of {rows:,} rows ({_pct(fraction)}) quarantined, {verdict} {limit}: "
            f"they {what}. {_examples_text(examples, keys)} Fix: {fix}"
        )
    return CheckOutcome(
        name,
        passed,
        rule.severity,
        description,
        {
            "failed_rows": failed,
            "fraction": fraction,
            "threshold": rule.max_fraction,
            "threshold_key": threshold_key,
            "examples": examples,
            "source": keys.file,
        },
    )


def _null_rate_outcome(
    rule: RuleConfig, scan: _Summary, rows: int, evidence: _Evidence, keys: _Keys
) -> CheckOutcome:
    """The threshold applies to each column; the worst column decides."""
    rates = {column: count / rows for column, count in scan.null_counts.items()}
    worst = max(rates, key=rates.__getitem__)
    failed = scan.failed["required_columns"]
    threshold_key = f"{keys.validation}null_rate.max_fraction"
    passed = rates[worst] <= rule.max_fraction
    description = (
        f"worst column {worst}: {scan.null_counts[worst]:,} of {rows:,} rows null "
        f"({_pct(rates[worst])}); {'within' if passed else 'above'} max_fraction "
        f"{_pct(rule.max_fraction)} per column ({threshold_key})"
    )
    if failed:
        nulls = ", ".join(f"{c} {n:,}" for c, n in scan.null_counts.items() if n)
        description += (
            f". Null values: {nulls}; the {_rows(failed)} with any are quarantined as "
            f"'required_columns'. {_examples_text(evidence.examples['required_columns'], keys)} "
            f"Fix: fill the values at the source or map the source column that holds them "
            f"({keys.source}column_mapping)."
        )
    return CheckOutcome(
        "null_rate",
        passed,
        rule.severity,
        description,
        {
            "failed_rows": failed,
            "fraction": failed / rows,
            "threshold": rule.max_fraction,
            "threshold_key": threshold_key,
            "null_fraction_by_column": rates,
        },
    )


def _freshness_outcome(
    rule: FreshnessConfig, newest: pd.Timestamp | None, keys: _Keys
) -> CheckOutcome:
    reference = rule.reference_time or datetime.now(UTC)
    if newest is None:
        return CheckOutcome(
            "freshness",
            False,
            rule.severity,
            "no valid event is left to date the data: every row was quarantined (the "
            "failing row checks say why)",
            {"threshold": rule.max_age_days, "threshold_key": f"{keys.validation}freshness"},
        )
    age_days = (pd.Timestamp(reference) - newest).total_seconds() / SECONDS_PER_DAY
    return CheckOutcome(
        "freshness",
        age_days <= rule.max_age_days,
        rule.severity,
        f"newest event {newest.isoformat()} is {age_days:.1f} days old at "
        f"{reference.isoformat()}; threshold {rule.max_age_days:g} days "
        f"({keys.validation}freshness.max_age_days)",
        {
            "age_days": age_days,
            "threshold": rule.max_age_days,
            "newest_timestamp": newest.isoformat(),
            "reference_time": reference.isoformat(),
        },
    )


def _row_count_outcome(rule: RowCountChangeConfig, rows: int, ctx: TaskContext) -> CheckOutcome:
    last = ctx.previous
    previous = last.metrics.get("rows_in") if last else None
    if last is None or not previous:
        return CheckOutcome(
            "row_count_change",
            True,
            rule.severity,
            f"{rows:,} rows; no previous run to compare with",
            {"rows": rows, "previous_rows": None, "threshold": rule.max_relative_change},
        )
    change = abs(rows - previous) / previous
    return CheckOutcome(
        "row_count_change",
        change <= rule.max_relative_change,
        rule.severity,
        f"{rows:,} rows vs {previous:,} in run {last.run_id} ({change:+.1%} change in "
        f"size); threshold {rule.max_relative_change:.0%}",
        {
            "rows": rows,
            "previous_rows": previous,
            "relative_change": change,
            "threshold": rule.max_relative_change,
        },
    )


def _outcomes(
    config: Config, scan: _Summary, evidence: _Evidence, ctx: TaskContext, keys: _Keys
) -> list[CheckOutcome]:
    rows = scan.rows
    limit = _future_limit(config)
    outcomes = []
    for name in ROW_RULES:
        failed = scan.failed[name]
        explanation = _explanation(name, config, evidence, keys, limit) if failed else ("", "")
        rule = getattr(config, name)
        examples = evidence.examples[name]
        outcomes.append(_rule_outcome(name, rule, failed, rows, explanation, examples, keys))
    outcomes.append(_null_rate_outcome(config.null_rate, scan, rows, evidence, keys))
    outcomes.append(_freshness_outcome(config.freshness, scan.newest, keys))
    outcomes.append(_row_count_outcome(config.row_count_change, rows, ctx))
    return outcomes


def _keys(ctx: TaskContext, source: Path) -> _Keys:
    """Config keys of this task and of its producer, and the file the rows came from."""
    producers = ctx.resolved.get(RAW_INTERACTIONS.name) or []
    producer = producers[0].producer if producers else "ingestion"
    return _Keys(
        validation=f"tasks.{ctx.task_name}.config.",
        source=f"tasks.{producer}.config.source.interactions.",
        file=_source_name(source),
    )


def _source_name(path: Path) -> str:
    """Ingestion records where it read the table in its checkpoint; else the raw file's name."""
    try:
        result = json.loads((path.parent / RESULT_FILE).read_text())
        recorded = result.get("metadata", {}).get("interactions_source")
    except (OSError, ValueError, AttributeError):
        recorded = None
    return str(recorded) if recorded else path.name


def _report(
    scan: _Summary,
    valid_rows: int,
    items: dict[str, int],
    users: dict[str, int],
    checks: list[CheckOutcome],
    evidence: _Evidence,
    keys: _Keys,
) -> ValidationReport:
    """Per-rule counts; only input-derived values, so reruns write identical bytes."""
    rows = scan.rows
    return ValidationReport.model_validate(
        {
            "interactions": {
                "rows_in": rows,
                "rows_valid": valid_rows,
                "rows_quarantined": rows - valid_rows,
                "oldest_timestamp": scan.oldest.isoformat() if scan.oldest is not None else None,
                "newest_timestamp": scan.newest.isoformat() if scan.newest is not None else None,
                "null_counts": scan.null_counts,
                "source": keys.file,
            },
            "rules": {
                check.name: {
                    "failed_rows": check.metadata["failed_rows"],
                    "fraction": check.metadata["fraction"],
                    "threshold": check.metadata["threshold"],
                    "threshold_key": check.metadata["threshold_key"],
                    "examples": evidence.examples.get(check.name, []),
                }
                for check in checks
                if "failed_rows" in check.metadata
            },
            "items": items,
            "users": users,
        }
    )


def _require_rows(rows: int, source: Path) -> None:
    if rows == 0:
        raise DataValidationError(
            f"the interactions input {source} has no rows",
            hint="check the ingestion source; an empty feed cannot train a model",
        )


def run(ctx: TaskContext[Config]) -> TaskResult:
    """Check the interactions against the contract; split them into valid and quarantined."""
    config = ctx.config
    source = ctx.input(RAW_INTERACTIONS)
    ctx.logger.info("validation started", extra={"fields": {"source": str(source)}})
    _check_columns(source)
    items, item_stats = _typed_items(ctx.input(RAW_ITEMS))
    users, user_stats = _typed_users(ctx.input(RAW_USERS))
    refs = _References(pa.array(items["item_id"]), pa.array(users["user_id"]))
    engine = engine_for(ctx, lambda: raw_columns_are_text(source), "interactions are not all text")
    if engine in SQL_ENGINES:
        scan, valid_path, quarantine_path, valid_rows, evidence = _validate_sql(
            ctx, source, config, refs, engine
        )
    else:
        full_scan = _scan(source, config, refs)
        _require_rows(len(full_scan.flags), source)
        valid_path, quarantine_path, valid_rows, evidence = _write_interactions(
            ctx, source, config, full_scan, refs
        )
        scan = _Summary.of(full_scan)
    rows = scan.rows
    keys = _keys(ctx, source)
    checks = _outcomes(config, scan, evidence, ctx, keys)
    report_path = ctx.write_document(
        "validation_report.json",
        _report(scan, valid_rows, item_stats, user_stats, checks, evidence, keys),
    )
    metrics = {
        "rows_in": rows,
        "rows_valid": valid_rows,
        "rows_quarantined": rows - valid_rows,
        "quarantine_fraction": (rows - valid_rows) / rows,
        "checks_failed": sum(not c.passed for c in checks),
        "items_rows": item_stats["rows_out"],
        "users_rows": user_stats["rows_out"],
    }
    ctx.logger.info(f"row rules ran on the {engine} engine")
    for outcome in checks:
        log = ctx.logger.info if outcome.passed else ctx.logger.warning
        log(
            f"check {outcome.name}: {'passed' if outcome.passed else 'FAILED'} — {outcome.description}"
        )
    ctx.logger.info("validation finished", extra={"fields": metrics})
    return TaskResult(
        outputs={
            "interactions": valid_path,
            "quarantine": quarantine_path,
            "items": write_frame(ctx.output_path("items.parquet"), items, TYPED_SCHEMAS["items"]),
            "users": write_frame(ctx.output_path("users.parquet"), users, TYPED_SCHEMAS["users"]),
            "validation_report": report_path,
        },
        metrics=metrics,
        checks=checks,
        # Which engine ran the row rules: recorded with the checkpoint (not a metric, so
        # that the engines' metrics stay comparable).
        metadata={"engine": engine},
    )
