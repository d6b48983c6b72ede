"""Validation: the data contract between ingestion and everything downstream.

Every rule is a declared check with a configurable severity (ERROR blocks downstream tasks,
WARN does not) and threshold. Row-level rules look at each interaction; a row that breaks
any of them goes to the ``quarantine`` artifact with the rule names in its ``reason`` column
(joined by ``;``) and never reaches ``interactions``. A check passes while the share of rows
breaking its rule stays within ``max_fraction`` — the quarantine removes them either way, so
a few bad rows do not stop the pipeline but a broken feed does.

Row-level rules:
  required_columns       required columns present; timestamps ISO-8601, ratings numeric
  null_rate              null/empty values in a required column (threshold per column)
  rating_range           rating events carry a rating within [min_rating, max_rating]
  event_type_values      event_type is one of ``allowed``
  duplicates             exact copies of an earlier raw row (the first copy is kept)
  referential_integrity  item_id exists in items and user_id in users
Dataset-level rules (nothing is quarantined):
  freshness              the newest valid event is at most max_age_days old
  row_count_change       the input row count moved at most max_relative_change since the
                         previous successful run of this task

Interactions are read twice in batches of ``chunk_rows`` (once to find faults and
duplicates, once to write), so memory holds only per-row flags and 64-bit row hashes. Two
different rows share a hash with probability ~n²/2⁶⁵ (about 1e-5 for 20M rows).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from recomart_pipeline.contract.documents import ValidationReport
from recomart_pipeline.contract.errors import DataValidationError, SchemaError
from recomart_pipeline.contract.task import (
    CheckOutcome,
    TaskContext,
    TaskResult,
)
from recomart_pipeline.tasks._tables import (
    TYPED_SCHEMAS,
    ParquetSink,
    iter_text_batches,
    to_text,
    write_frame,
)
from recomart_pipeline.tasks.specs.tables import TABLES
from recomart_pipeline.tasks.specs.validation import (
    RAW_INTERACTIONS,
    RAW_ITEMS,
    RAW_USERS,
    Config,
    FreshnessConfig,
    RowCountChangeConfig,
    RuleConfig,
)

# Row-level rules in bit order: a row's flags are the OR of the bits of the rules it breaks.
ROW_RULES: tuple[str, ...] = (
    "required_columns",
    "null_rate",
    "rating_range",
    "event_type_values",
    "duplicates",
    "referential_integrity",
)
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
    unparseable: np.ndarray


@dataclass
class _Scan:
    """What the first pass learns about the whole interactions table."""

    flags: np.ndarray
    hashes: np.ndarray
    null_counts: dict[str, int] = field(default_factory=dict)
    oldest: pd.Timestamp | None = None
    newest: pd.Timestamp | None = None


def _blank(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Null or empty string."""
    return pc.fill_null(pc.equal(column, ""), True).to_numpy(zero_copy_only=False)


def _parse(raw: pa.Table) -> _Parsed:
    """Timestamps (ISO-8601, UTC) and ratings (numeric); failures become NaT/NaN."""
    timestamps = pd.to_datetime(
        raw["timestamp"].to_pandas(), utc=True, format="ISO8601", errors="coerce"
    )
    timestamps = timestamps.where(timestamps.between(EARLIEST, LATEST))
    bad_timestamp = timestamps.isna().to_numpy() & ~_blank(raw["timestamp"])
    rating_blank = _blank(raw["rating"])
    parsed = pd.to_numeric(raw["rating"].to_pandas(), errors="coerce")
    parsed = parsed.to_numpy(dtype=np.float64, na_value=np.nan)
    bad_rating = ~np.isfinite(parsed) & ~rating_blank
    ratings = np.where(bad_rating, np.nan, parsed)
    return _Parsed(timestamps, ratings, rating_blank, bad_timestamp | bad_rating)


def _flags(
    raw: pa.Table, parsed: _Parsed, config: Config, refs: _References
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Row flags of every row-level rule but duplicates, plus the null mask per column."""
    flags = np.zeros(raw.num_rows, dtype=np.uint8)
    nulls = {column: _blank(raw[column]) for column in REQUIRED}
    flags[np.logical_or.reduce(list(nulls.values()))] |= BIT["null_rate"]
    flags[parsed.unparseable] |= BIT["required_columns"]

    bounds = config.rating_range
    is_rating = pc.fill_null(pc.equal(raw["event_type"], "rating"), False).to_numpy(
        zero_copy_only=False
    )
    outside = (parsed.ratings < bounds.min_rating) | (parsed.ratings > bounds.max_rating)
    flags[is_rating & (outside | parsed.rating_blank)] |= BIT["rating_range"]

    allowed = pa.array(config.event_type_values.allowed)
    known_event = pc.is_in(raw["event_type"], value_set=allowed).to_numpy(zero_copy_only=False)
    flags[~known_event & ~nulls["event_type"]] |= BIT["event_type_values"]

    known_item = pc.is_in(raw["item_id"], value_set=refs.item_ids).to_numpy(zero_copy_only=False)
    known_user = pc.is_in(raw["user_id"], value_set=refs.user_ids).to_numpy(zero_copy_only=False)
    orphan = (~known_item & ~nulls["item_id"]) | (~known_user & ~nulls["user_id"])
    flags[orphan] |= BIT["referential_integrity"]
    return flags, nulls


def _batches(path: Path, config: Config) -> Iterator[pa.Table]:
    yield from iter_text_batches(path, config.chunk_rows, RAW_COLUMNS)


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
    for raw in _batches(path, config):
        parsed = _parse(raw)
        batch_flags, nulls = _flags(raw, parsed, config, refs)
        flags.append(batch_flags)
        hashes.append(pd.util.hash_pandas_object(raw.to_pandas(), index=False).to_numpy())
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
        }
    )


def _quarantined_rows(raw: pa.Table, flags: np.ndarray, first_row: int) -> pa.Table:
    bad = np.flatnonzero(flags)
    columns = {name: raw[name].take(bad) for name in RAW_COLUMNS}
    columns["row_number"] = pa.array(bad + first_row, pa.int64())
    columns["reason"] = REASONS.take(pa.array(flags[bad]))
    return pa.table(columns)


def _write_interactions(
    ctx: TaskContext, path: Path, config: Config, flags: np.ndarray
) -> tuple[Path, Path, int]:
    """Second pass: valid rows, typed, to ``interactions``; the rest to ``quarantine``."""
    valid_path = ctx.output_path("interactions.parquet")
    quarantine_path = ctx.output_path("quarantine.parquet")
    start = 0
    with (
        ParquetSink(valid_path, TYPED_SCHEMAS["interactions"]) as valid,
        ParquetSink(quarantine_path, QUARANTINE_SCHEMA) as quarantine,
    ):
        for raw in _batches(path, config):
            batch_flags = flags[start : start + raw.num_rows]
            valid.write(_typed_rows(raw, _parse(raw), batch_flags == 0))
            quarantine.write(_quarantined_rows(raw, batch_flags, start))
            start += raw.num_rows
    return valid_path, quarantine_path, valid.rows


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


def _rule_outcome(name: str, rule: RuleConfig, failed: int, rows: int) -> CheckOutcome:
    fraction = failed / rows if rows else 0.0
    passed = fraction <= rule.max_fraction
    return CheckOutcome(
        name,
        passed,
        rule.severity,
        f"{failed:,} of {rows:,} rows ({fraction:.3%}) break '{name}'; threshold "
        f"{rule.max_fraction:.3%}",
        {"failed_rows": failed, "fraction": fraction, "threshold": rule.max_fraction},
    )


def _null_rate_outcome(rule: RuleConfig, scan: _Scan, rows: int) -> CheckOutcome:
    """The threshold applies to each column; the worst column decides."""
    rates = {column: count / rows for column, count in scan.null_counts.items()}
    worst = max(rates, key=rates.__getitem__)
    failed = int(np.count_nonzero(scan.flags & BIT["null_rate"]))
    return CheckOutcome(
        "null_rate",
        rates[worst] <= rule.max_fraction,
        rule.severity,
        f"{failed:,} of {rows:,} rows have a null required value; worst column {worst} at "
        f"{rates[worst]:.3%}; threshold {rule.max_fraction:.3%} per column",
        {
            "failed_rows": failed,
            "fraction": failed / rows,
            "threshold": rule.max_fraction,
            "null_fraction_by_column": rates,
        },
    )


def _freshness_outcome(rule: FreshnessConfig, newest: pd.Timestamp | None) -> CheckOutcome:
    reference = rule.reference_time or datetime.now(UTC)
    if newest is None:
        return CheckOutcome(
            "freshness",
            False,
            rule.severity,
            "no valid event has a timestamp",
            {"threshold": rule.max_age_days},
        )
    age_days = (pd.Timestamp(reference) - newest).total_seconds() / SECONDS_PER_DAY
    return CheckOutcome(
        "freshness",
        age_days <= rule.max_age_days,
        rule.severity,
        f"newest event {newest.isoformat()} is {age_days:.1f} days old at "
        f"{reference.isoformat()}; threshold {rule.max_age_days:g} days",
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


def _outcomes(config: Config, scan: _Scan, ctx: TaskContext) -> list[CheckOutcome]:
    rows = len(scan.flags)
    outcomes = []
    for name in ROW_RULES:
        if name == "null_rate":
            outcomes.append(_null_rate_outcome(config.null_rate, scan, rows))
            continue
        failed = int(np.count_nonzero(scan.flags & BIT[name]))
        outcomes.append(_rule_outcome(name, getattr(config, name), failed, rows))
    outcomes.append(_freshness_outcome(config.freshness, scan.newest))
    outcomes.append(_row_count_outcome(config.row_count_change, rows, ctx))
    return outcomes


def _report(
    scan: _Scan, valid_rows: int, items: dict[str, int], users: dict[str, int]
) -> ValidationReport:
    """Per-rule counts; only input-derived values, so reruns write identical bytes."""
    rows = len(scan.flags)
    return ValidationReport.model_validate(
        {
            "interactions": {
                "rows_in": rows,
                "rows_valid": valid_rows,
                "rows_quarantined": rows - valid_rows,
                "oldest_timestamp": scan.oldest.isoformat() if scan.oldest is not None else None,
                "newest_timestamp": scan.newest.isoformat() if scan.newest is not None else None,
                "null_counts": scan.null_counts,
            },
            "rules": {
                name: {
                    "failed_rows": int(np.count_nonzero(scan.flags & BIT[name])),
                    "fraction": int(np.count_nonzero(scan.flags & BIT[name])) / rows,
                }
                for name in ROW_RULES
            },
            "items": items,
            "users": users,
        }
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
    scan = _scan(source, config, refs)
    rows = len(scan.flags)
    if rows == 0:
        raise DataValidationError(
            f"the interactions input {source} has no rows",
            hint="check the ingestion source; an empty feed cannot train a model",
        )
    checks = _outcomes(config, scan, ctx)
    valid_path, quarantine_path, valid_rows = _write_interactions(ctx, source, config, scan.flags)
    report_path = ctx.write_document(
        "validation_report.json", _report(scan, valid_rows, item_stats, user_stats)
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
    )
