"""Validation: each rule catches its own kind of bad row, with its configured severity."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recomart_pipeline.contract.errors import DataValidationError, SchemaError
from recomart_pipeline.contract.task import CheckOutcome
from recomart_pipeline.tasks import validation
from recomart_pipeline.tasks._tables import TYPED_SCHEMAS
from recomart_pipeline.tasks.specs import validation as validation_spec
from recomart_pipeline_tests.data.helpers import TaskHarness, artifact_hashes, publish_raw

Row = dict[str, Any]
ITEMS: list[Row] = [
    {"item_id": f"i{k}", "category": "books", "price": "9.5", "title": f"Book {k}"}
    for k in range(5)
]
USERS: list[Row] = [
    {"user_id": f"u{k}", "signup_date": "2025-01-01", "region": "north"} for k in range(5)
]
EVENTS = ("view", "add_to_cart", "purchase", "rating")
PINNED = {"freshness": {"reference_time": "2026-01-02T00:00:00Z"}}


def clean_rows(n: int = 100) -> list[Row]:
    """Distinct valid events, one second apart from 2026-01-01."""
    rows = []
    for k in range(n):
        event = EVENTS[k % 4]
        rows.append(
            {
                "user_id": f"u{k % 5}",
                "item_id": f"i{(k * 3) % 5}",
                "event_type": event,
                "rating": "4" if event == "rating" else None,
                "timestamp": (
                    pd.Timestamp("2026-01-01", tz="UTC") + pd.Timedelta(seconds=k)
                ).isoformat(),
            }
        )
    return rows


def rating_row(rating: str | None) -> Row:
    return {**clean_rows(4)[3], "rating": rating}


BAD_ROWS: dict[str, Callable[[list[Row]], list[Row]]] = {
    "required_columns": lambda base: [
        {**base[0], "user_id": None},
        {**base[1], "item_id": ""},
        {**base[2], "timestamp": None},
    ],
    "timestamp_parse": lambda base: [
        {**base[0], "timestamp": "not-a-date"},
        {**base[1], "timestamp": "2026-13-45"},
        {**base[2], "timestamp": "9999-01-01T00:00:00Z"},
        {**base[3], "timestamp": "1767225600"},
    ],
    "future_timestamps": lambda base: [
        {**base[0], "timestamp": "2026-01-03T00:00:01Z"},
        {**base[1], "timestamp": "2030-06-01T00:00:00Z"},
    ],
    "rating_range": lambda base: [
        rating_row("7"),
        rating_row("0"),
        rating_row("-1"),
        rating_row(None),
        rating_row("five"),
        {**base[0], "rating": "n/a"},
    ],
    "event_type_values": lambda base: [
        {**base[0], "event_type": "clicked"},
        {**base[1], "event_type": "VIEW"},
    ],
    "duplicates": lambda base: [dict(base[5]), dict(base[5]), dict(base[9])],
    "referential_integrity": lambda base: [
        {**base[0], "item_id": "i999"},
        {**base[1], "user_id": "u999"},
    ],
}


def _run(
    harness: TaskHarness,
    tmp_path: Path,
    rows: list[Row],
    config: dict[str, Any] | None = None,
    **kwargs: Any,
) -> tuple[Any, Any]:
    upstream = publish_raw(harness, tmp_path, rows, ITEMS, USERS)
    return harness.run(
        "validation", {**PINNED, **(config or {})}, {"ingestion": upstream}, **kwargs
    )


def _by_name(checks: list[CheckOutcome]) -> dict[str, CheckOutcome]:
    return {check.name: check for check in checks}


def test_clean_data_passes_every_check(harness: TaskHarness, tmp_path: Path) -> None:
    result, checkpoint = _run(harness, tmp_path, clean_rows())
    assert all(check.passed for check in result.checks), result.checks
    assert result.metrics["rows_valid"] == 100
    assert pq.read_schema(checkpoint.path("interactions")) == TYPED_SCHEMAS["interactions"]
    frame = pd.read_parquet(checkpoint.path("interactions"))
    assert str(frame["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert str(frame["rating"].dtype) == "float32"
    assert frame["rating"].notna().sum() == 25
    assert len(pd.read_parquet(checkpoint.path("quarantine"))) == 0


@pytest.mark.parametrize("rule", sorted(BAD_ROWS))
def test_each_rule_catches_its_own_bad_rows(
    harness: TaskHarness, tmp_path: Path, rule: str
) -> None:
    base = clean_rows()
    bad = BAD_ROWS[rule](base)
    result, checkpoint = _run(harness, tmp_path, base + bad)
    checks = _by_name(result.checks)
    assert checks[rule].metadata["failed_rows"] == len(bad)
    assert checks[rule].metadata["fraction"] == pytest.approx(len(bad) / (len(base) + len(bad)))
    for other in validation.ROW_RULES:
        if other != rule:
            assert checks[other].metadata["failed_rows"] == 0, other
    # Defaults: 1% of rows, except duplicates and required_columns (5%), so only those pass.
    assert checks[rule].passed is (rule in {"duplicates", "required_columns"})
    quarantine = pd.read_parquet(checkpoint.path("quarantine"))
    assert len(quarantine) == len(bad)
    assert set(quarantine["reason"]) == {rule}
    assert quarantine["row_number"].tolist() == list(range(len(base), len(base) + len(bad)))
    assert result.metrics["rows_valid"] == len(base)


def test_null_rate_threshold_applies_per_column(harness: TaskHarness, tmp_path: Path) -> None:
    base = clean_rows()
    bad = [{**row, "user_id": None} for row in base[:4]]
    result, _ = _run(harness, tmp_path, base[4:] + bad, {"null_rate": {"max_fraction": 0.05}})
    check = _by_name(result.checks)["null_rate"]
    assert check.passed and check.metadata["null_fraction_by_column"]["user_id"] == 0.04
    result, _ = _run(harness, tmp_path, base[4:] + bad, {"null_rate": {"max_fraction": 0.03}})
    assert not _by_name(result.checks)["null_rate"].passed


@pytest.mark.parametrize("severity", ["ERROR", "WARN"])
def test_failed_check_carries_the_configured_severity(
    harness: TaskHarness, tmp_path: Path, severity: str
) -> None:
    rows = clean_rows() + BAD_ROWS["referential_integrity"](clean_rows())
    config = {"referential_integrity": {"severity": severity, "max_fraction": 0.0}}
    result, _ = _run(harness, tmp_path, rows, config)
    check = _by_name(result.checks)["referential_integrity"]
    assert (check.passed, check.severity) == (False, severity)
    assert {k: check.metadata[k] for k in ("failed_rows", "fraction", "threshold")} == {
        "failed_rows": 2,
        "fraction": 2 / 102,
        "threshold": 0.0,
    }
    assert check.metadata["threshold_key"] == (
        "tasks.validation.config.referential_integrity.max_fraction"
    )
    assert [e["row_number"] for e in check.metadata["examples"]] == [100, 101]


def test_bad_rows_under_the_threshold_pass_but_are_still_quarantined(
    harness: TaskHarness, tmp_path: Path
) -> None:
    rows = clean_rows() + BAD_ROWS["event_type_values"](clean_rows())
    result, checkpoint = _run(
        harness, tmp_path, rows, {"event_type_values": {"max_fraction": 0.05}}
    )
    assert _by_name(result.checks)["event_type_values"].passed
    assert len(pd.read_parquet(checkpoint.path("quarantine"))) == 2
    assert result.metrics["rows_valid"] == 100


def test_a_row_breaking_several_rules_lists_them_all(harness: TaskHarness, tmp_path: Path) -> None:
    rows = [*clean_rows(), {**rating_row("7"), "user_id": None, "item_id": "i999"}]
    _, checkpoint = _run(harness, tmp_path, rows)
    quarantine = pd.read_parquet(checkpoint.path("quarantine"))
    assert quarantine["reason"].tolist() == ["required_columns;rating_range;referential_integrity"]
    assert quarantine["user_id"].isna().all() and quarantine["rating"].tolist() == ["7"]


def test_custom_vocabulary_and_rating_bounds(harness: TaskHarness, tmp_path: Path) -> None:
    rows = [
        *clean_rows(),
        {**clean_rows()[0], "event_type": "clicked", "timestamp": "2026-01-02T00:00:00Z"},
    ]
    rows.append(rating_row("9"))
    config = {
        "event_type_values": {"allowed": [*EVENTS, "clicked"]},
        "rating_range": {"min_rating": 0, "max_rating": 10},
    }
    result, _ = _run(harness, tmp_path, rows, config)
    assert result.metrics["rows_quarantined"] == 0


def test_freshness_compares_the_newest_event_with_the_reference_time(
    harness: TaskHarness, tmp_path: Path
) -> None:
    stale = {"freshness": {"reference_time": "2026-01-20T00:00:00", "max_age_days": 7}}
    result, _ = _run(harness, tmp_path, clean_rows(), stale)
    check = _by_name(result.checks)["freshness"]
    assert (check.passed, check.severity) == (False, "WARN")
    assert check.metadata["age_days"] == pytest.approx(19 - 99 / 86_400)
    assert check.metadata["newest_timestamp"] == "2026-01-01T00:01:39+00:00"
    result, _ = _run(
        harness, tmp_path, clean_rows(), {"freshness": {"reference_time": "2026-01-05T00:00:00Z"}}
    )
    assert _by_name(result.checks)["freshness"].passed


def test_row_count_change_compares_with_the_previous_run(
    harness: TaskHarness, tmp_path: Path
) -> None:
    first, previous = _run(harness, tmp_path, clean_rows(), run_id="run-1")
    assert _by_name(first.checks)["row_count_change"].passed
    assert _by_name(first.checks)["row_count_change"].metadata["previous_rows"] is None
    grown, _ = _run(harness, tmp_path, clean_rows(220), previous=previous, run_id="run-2")
    check = _by_name(grown.checks)["row_count_change"]
    assert (check.passed, check.severity) == (False, "WARN")
    assert check.metadata["relative_change"] == pytest.approx(1.2)
    same, _ = _run(harness, tmp_path, clean_rows(120), previous=previous, run_id="run-3")
    assert _by_name(same.checks)["row_count_change"].passed


def test_outcomes_answer_every_declared_check(harness: TaskHarness, tmp_path: Path) -> None:
    config = validation_spec.Config.model_validate({"duplicates": {"severity": "ERROR"}})
    declared = {(spec.name, spec.severity) for spec in validation_spec.declare_checks(config)}
    result, _ = _run(harness, tmp_path, clean_rows(), {"duplicates": {"severity": "ERROR"}})
    assert {(check.name, check.severity) for check in result.checks} == declared
    assert len(declared) == 10
    assert all(name.isidentifier() and name.islower() for name, _ in declared)


def test_report_counts_rules_and_reruns_are_byte_identical(
    harness: TaskHarness, tmp_path: Path
) -> None:
    rows = clean_rows()
    for builder in BAD_ROWS.values():
        rows += builder(clean_rows())
    _, first = _run(harness, tmp_path, rows, run_id="a")
    _, second = _run(harness, tmp_path, rows, run_id="b")
    assert artifact_hashes(first) == artifact_hashes(second)
    report = json.loads(first.path("validation_report").read_text())
    assert report["interactions"]["rows_in"] == len(rows)
    assert report["interactions"]["rows_quarantined"] == len(rows) - 100
    assert {
        rule: counts["failed_rows"] for rule, counts in report["rules"].items() if rule in BAD_ROWS
    } == {rule: len(builder(clean_rows())) for rule, builder in BAD_ROWS.items()}
    assert set(report["rules"]) == {*validation.ROW_RULES, "null_rate"}
    assert report["rules"]["timestamp_parse"]["examples"][0] == {
        "row_number": 103,
        "column": "timestamp",
        "value": "not-a-date",
        "copy_of_row": None,
    }


def test_items_and_users_are_typed_and_keyed(harness: TaskHarness, tmp_path: Path) -> None:
    items = [*ITEMS, dict(ITEMS[0]), {"item_id": None}, {"item_id": "i5", "price": "cheap"}]
    upstream = publish_raw(harness, tmp_path, clean_rows(), items, USERS)
    _, checkpoint = harness.run("validation", PINNED, {"ingestion": upstream})
    typed = pd.read_parquet(checkpoint.path("items"))
    assert typed["item_id"].tolist() == [f"i{k}" for k in range(6)]
    assert typed["price"].dtype == "float64" and pd.isna(typed["price"].iloc[5])
    report = json.loads(checkpoint.path("validation_report").read_text())
    assert report["items"] == {
        "rows_in": 8,
        "rows_out": 6,
        "null_id": 1,
        "duplicate_id": 1,
        "unparseable_price": 1,
    }
    users = pd.read_parquet(checkpoint.path("users"))
    assert str(users["signup_date"].dtype) == "datetime64[ns, UTC]"


def test_empty_input_is_a_validation_error(harness: TaskHarness, tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match="no rows"):
        _run(harness, tmp_path, [])


def test_missing_column_is_a_schema_error(harness: TaskHarness, tmp_path: Path) -> None:
    upstream = publish_raw(harness, tmp_path, clean_rows(), ITEMS, USERS)
    narrow = tmp_path / "narrow.parquet"
    pq.write_table(pa.table({"user_id": ["u1"]}), narrow)
    files = {
        "interactions": narrow,
        "items": upstream.path("items"),
        "users": upstream.path("users"),
    }
    broken = harness.publish("ingestion", files)
    with pytest.raises(SchemaError, match="item_id"):
        harness.run("validation", PINNED, {"ingestion": broken})


def test_dirty_generated_data_is_quarantined_exactly(
    harness: TaskHarness, small_dataset: dict[str, Path]
) -> None:
    config = {"source": {table: str(path) for table, path in small_dataset.items()}}
    _, ingested = harness.run("ingestion", config)
    result, checkpoint = harness.run("validation", {}, {"ingestion": ingested})
    assert result.metrics["rows_quarantined"] == round(0.02 * 6000)
    reasons = pd.read_parquet(checkpoint.path("quarantine"))["reason"]
    # The generator writes no future timestamps; every other rule has its own dirty rows.
    assert set(reasons) == set(validation.ROW_RULES) - {"future_timestamps"}
    assert not reasons.str.contains(";").any()
    assert all(check.passed for check in result.checks)
