"""Validation explains itself: what broke, how much, which values, which key to change.

Each test feeds data a real user could have (epoch timestamps, half-star ratings, clocks
running ahead, repeated rows) and reads the check's description the way that user would.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from recomart_pipeline.contract.task import CheckOutcome, TaskResult
from recomart_pipeline.tasks import validation
from recomart_pipeline_tests.data.helpers import TaskHarness, sources
from recomart_pipeline_tests.data.test_validation import (
    ITEMS,
    PINNED,
    USERS,
    Row,
    _run,
    clean_rows,
    rating_row,
)

KEY = "tasks.validation.config."
SOURCE_KEY = "tasks.ingestion.config.source.interactions."
START = 1_767_225_600  # 2026-01-01T00:00:00Z in Unix seconds


def _checks(result: TaskResult) -> dict[str, CheckOutcome]:
    return {check.name: check for check in result.checks}


def _csv(path: Path, rows: list[Row]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _ingest_and_validate(
    harness: TaskHarness, tmp_path: Path, interactions: list[Row], config: dict[str, Any]
) -> TaskResult:
    """The user's path: CSV files through ingestion, then validation."""
    paths = {
        "interactions": _csv(tmp_path / "events_export.csv", interactions),
        "items": _csv(tmp_path / "items.csv", ITEMS),
        "users": _csv(tmp_path / "users.csv", USERS),
    }
    _, ingested = harness.run("ingestion", sources(paths))
    result, _ = harness.run("validation", {**PINNED, **config}, {"ingestion": ingested})
    return result


def _epoch_rows(values: list[str]) -> list[Row]:
    return [
        {**row, "timestamp": value}
        for row, value in zip(clean_rows(len(values)), values, strict=True)
    ]


def test_unix_seconds_are_a_timestamp_parse_failure_that_names_values_file_and_unit_key(
    harness: TaskHarness, tmp_path: Path
) -> None:
    rows = _epoch_rows([str(START + k) for k in range(100)])
    checks = _checks(_ingest_and_validate(harness, tmp_path, rows, {}))

    assert checks["required_columns"].metadata["failed_rows"] == 0
    assert checks["required_columns"].passed
    parse = checks["timestamp_parse"]
    assert not parse.passed and parse.metadata["failed_rows"] == 100
    text = parse.description
    assert text.startswith(
        f"100 of 100 rows (100 %) quarantined, above max_fraction 1 % "
        f"({KEY}timestamp_parse.max_fraction): they have a timestamp that does not parse."
    )
    assert "Examples from " in text and "events_export.csv" in text
    assert f"row 0 timestamp='{START}', row 1 timestamp='{START + 1}'" in text
    assert "row 5 " not in text  # five examples at most
    assert "Unix epoch seconds" in text and "2026-01-01T00:00:00+00:00" in text
    assert f"set {SOURCE_KEY}timestamp.unit: s." in text
    assert [e["row_number"] for e in parse.metadata["examples"]] == [0, 1, 2, 3, 4]
    assert parse.metadata["source"].endswith("events_export.csv")
    assert "every row was quarantined" in checks["freshness"].description


def test_epoch_milliseconds_propose_the_millisecond_unit(
    harness: TaskHarness, tmp_path: Path
) -> None:
    rows = _epoch_rows([str((START + k) * 1000) for k in range(100)])
    result, _ = _run(harness, tmp_path, rows)
    assert f"{SOURCE_KEY}timestamp.unit: ms." in _checks(result)["timestamp_parse"].description


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        # Mixed with dates in another format: one epoch unit would contradict the rest.
        ([str(START), "31/12/2025 10:00", *[str(START + k) for k in range(98)]], "format"),
        # Spreadsheet serial days: as seconds they fall in 1970, so no unit is proposed.
        ([str(46023 + k % 28) for k in range(100)], "no epoch unit"),
        # Seconds and milliseconds mixed: no single unit fits both.
        ([str(START), str(START * 1000), *[str(START + k) for k in range(98)]], "no epoch unit"),
    ],
)
def test_no_unit_is_proposed_when_the_data_contradicts_it(
    harness: TaskHarness, tmp_path: Path, values: list[str], expected: str
) -> None:
    result, _ = _run(harness, tmp_path, _epoch_rows(values))
    text = _checks(result)["timestamp_parse"].description
    assert "timestamp.unit: " not in text
    assert expected in text
    assert _checks(result)["required_columns"].metadata["failed_rows"] == 0


def test_a_few_bad_timestamps_among_iso_ones_point_at_the_format_key(
    harness: TaskHarness, tmp_path: Path
) -> None:
    rows = clean_rows()
    rows[7] = {**rows[7], "timestamp": "01/02/2026 10:00"}
    result, _ = _run(harness, tmp_path, rows)
    parse = _checks(result)["timestamp_parse"]
    assert parse.passed  # 1 of 100 is within max_fraction 1 %
    assert parse.description.startswith(
        "1 of 100 rows (1 %) quarantined, within max_fraction 1 % "
        f"({KEY}timestamp_parse.max_fraction): they have a timestamp that does not parse."
    )
    assert "row 7 timestamp='01/02/2026 10:00'" in parse.description
    assert f"{SOURCE_KEY}timestamp.format" in parse.description


def _rated(ratings: list[str], n: int = 200) -> list[Row]:
    """``n`` clean rows whose first rating events carry ``ratings`` (in that order)."""
    rows = clean_rows(n)
    rating_rows = [k for k, row in enumerate(rows) if row["event_type"] == "rating"]
    for position, value in zip(rating_rows, ratings, strict=False):
        rows[position] = {**rows[position], "rating": value}
    return rows


def test_half_star_ratings_name_the_values_and_the_min_rating_key(
    harness: TaskHarness, tmp_path: Path
) -> None:
    rows = _rated(["0.5", "1.5", "4.5", "0.5", "2.5", "0.5", "3.5"])
    result, _ = _run(harness, tmp_path, rows)
    check = _checks(result)["rating_range"]
    text = check.description
    assert check.metadata["failed_rows"] == 3 and not check.passed
    assert text.startswith("3 of 200 rows (1.5 %) quarantined")
    assert "they have a rating outside [1, 5]" in text
    assert "values seen: '0.5' (3 rows)" in text
    assert "row 3 rating='0.5', row 15 rating='0.5', row 23 rating='0.5'" in text
    assert f"set {KEY}rating_range.min_rating: 0.5" in text
    assert "max_rating" not in text.split("Fix:")[1]
    assert f"above max_fraction 1 % ({KEY}rating_range.max_fraction)" in text


def test_a_rule_quarantining_rows_under_its_threshold_says_how_many(
    harness: TaskHarness, tmp_path: Path
) -> None:
    result, checkpoint = _run(harness, tmp_path, _rated(["0.5"], n=400))
    check = _checks(result)["rating_range"]
    assert check.passed
    assert check.description.startswith(
        f"1 of 400 rows (0.25 %) quarantined, within max_fraction 1 % "
        f"({KEY}rating_range.max_fraction): they have a rating outside [1, 5]"
    )
    assert "values seen: '0.5' (1 row)" in check.description
    quarantine = pd.read_parquet(checkpoint.path("quarantine"))
    assert quarantine["rating"].tolist() == ["0.5"]


def test_the_proposed_bound_is_the_lowest_value_seen_not_one_the_data_contradicts(
    harness: TaskHarness, tmp_path: Path
) -> None:
    result, _ = _run(harness, tmp_path, _rated(["0.5", "0", "10", "five"]))
    text = _checks(result)["rating_range"].description
    assert f"{KEY}rating_range.min_rating: 0;" in text
    assert "min_rating: 0.5" not in text
    assert f"{KEY}rating_range.max_rating: 10" in text
    assert "1 rating(s) are not numbers" in text and "'five' (1 row)" in text


def test_non_numeric_ratings_propose_no_bounds(harness: TaskHarness, tmp_path: Path) -> None:
    rows = [*clean_rows(), rating_row("five"), rating_row("★★★")]
    result, _ = _run(harness, tmp_path, rows)
    text = _checks(result)["rating_range"].description
    assert "'five'" in text and "'★★★'" in text
    assert "min_rating:" not in text and "max_rating:" not in text
    assert f"{SOURCE_KEY}column_mapping" in text
    assert _checks(result)["required_columns"].metadata["failed_rows"] == 0


def test_future_timestamps_are_quarantined_beyond_the_skew(
    harness: TaskHarness, tmp_path: Path
) -> None:
    rows = clean_rows()
    rows[4] = {**rows[4], "timestamp": "2026-01-03T00:00:01Z"}  # 1 day 1 s after the pin
    rows[9] = {**rows[9], "timestamp": "2026-01-02T23:00:00Z"}  # within the 1-day skew
    result, checkpoint = _run(harness, tmp_path, rows)
    check = _checks(result)["future_timestamps"]
    assert check.metadata["failed_rows"] == 1 and check.passed
    text = check.description
    assert "1 of 100 rows (1 %) quarantined, within max_fraction 1 %" in text
    assert "they are dated after 2026-01-03T00:00:00+00:00" in text
    assert "now + max_future_skew P1D" in text
    assert "row 4 timestamp='2026-01-03T00:00:01Z'" in text
    assert f"{KEY}future_timestamps.max_future_skew" in text
    assert f"({KEY}future_timestamps.max_fraction)" in text
    quarantine = pd.read_parquet(checkpoint.path("quarantine"))
    assert quarantine["reason"].tolist() == ["future_timestamps"]

    wider, _ = _run(harness, tmp_path, rows, {"future_timestamps": {"max_future_skew": "P2D"}})
    assert _checks(wider)["future_timestamps"].metadata["failed_rows"] == 0
    assert wider.metrics["rows_quarantined"] == 0


def test_future_timestamps_fail_above_the_threshold_with_the_configured_severity(
    harness: TaskHarness, tmp_path: Path
) -> None:
    rows = [{**row, "timestamp": "2031-01-01T00:00:00Z"} for row in clean_rows(3)]
    config = {"future_timestamps": {"severity": "WARN"}}
    result, _ = _run(harness, tmp_path, [*clean_rows(), *rows], config)
    check = _checks(result)["future_timestamps"]
    assert (check.passed, check.severity) == (False, "WARN")
    assert "the latest is 2031-01-01T00:00:00+00:00" in check.description


def test_rows_dated_2099_and_2199_are_future_and_do_not_make_stale_data_fresh(
    harness: TaskHarness, tmp_path: Path
) -> None:
    """A stale feed with a few far-future rows: the rows are quarantined as future, and
    freshness is measured on what is left, so it fails as the feed deserves."""
    stale = [{**row, "timestamp": "2020-01-01T00:00:00Z"} for row in clean_rows(200)]
    stale[3] = {**stale[3], "timestamp": "2099-01-01T00:00:00Z"}
    stale[7] = {**stale[7], "timestamp": "2199-06-01T00:00:00+02:00"}
    result = _ingest_and_validate(harness, tmp_path, stale, {})
    checks = _checks(result)
    future = checks["future_timestamps"]
    assert future.metadata["failed_rows"] == 2
    assert "the latest is 2199-05-31T22:00:00+00:00" in future.description
    assert "events_export.csv: row 3 timestamp='2099-01-01T00:00:00Z'" in future.description
    freshness = checks["freshness"]
    assert not freshness.passed
    assert freshness.metadata["newest_timestamp"] == "2020-01-01T00:00:00+00:00"


def test_duplicates_name_the_row_they_copy(harness: TaskHarness, tmp_path: Path) -> None:
    base = clean_rows()
    result, _ = _run(harness, tmp_path, [*base, dict(base[5]), dict(base[9])])
    check = _checks(result)["duplicates"]
    assert check.passed and check.severity == "WARN"
    text = check.description
    assert text.startswith(
        f"2 of 102 rows (1.96 %) quarantined, within max_fraction 5 % "
        f"({KEY}duplicates.max_fraction): they repeat an earlier row exactly"
    )
    assert "row 100 (copy of row 5), row 101 (copy of row 9)" in text
    assert check.metadata["examples"][0]["copy_of_row"] == 5


def test_missing_values_are_required_columns_and_null_rate_names_the_column(
    harness: TaskHarness, tmp_path: Path
) -> None:
    rows = clean_rows()
    for k in (3, 8):
        rows[k] = {**rows[k], "user_id": None}
    result, _ = _run(harness, tmp_path, rows)
    checks = _checks(result)
    assert "row 3 user_id=null, row 8 user_id=null" in checks["required_columns"].description
    null_rate = checks["null_rate"]
    assert null_rate.passed
    assert "worst column user_id: 2 of 100 rows null (2 %)" in null_rate.description
    assert f"within max_fraction 5 % per column ({KEY}null_rate.max_fraction)" in (
        null_rate.description
    )
    assert "quarantined as 'required_columns'" in null_rate.description


def test_event_types_outside_the_vocabulary_are_counted(
    harness: TaskHarness, tmp_path: Path
) -> None:
    rows = [*clean_rows(), *[{**row, "event_type": "click"} for row in clean_rows(3)]]
    result, _ = _run(harness, tmp_path, rows)
    text = _checks(result)["event_type_values"].description
    assert "values seen: 'click' (3 rows)" in text
    assert f"{KEY}event_type_values.allowed" in text


def test_every_rule_that_quarantines_rows_says_so(harness: TaskHarness, tmp_path: Path) -> None:
    from recomart_pipeline_tests.data.test_validation import BAD_ROWS

    rows = clean_rows(1000)
    for builder in BAD_ROWS.values():
        rows += builder(clean_rows())
    config = {rule: {"max_fraction": 0.5} for rule in validation.ROW_RULES}
    result, _ = _run(harness, tmp_path, rows, config)
    for name in validation.ROW_RULES:
        check = _checks(result)[name]
        failed = check.metadata["failed_rows"]
        assert check.passed and failed > 0, name
        assert check.description.startswith(
            f"{failed:,} of {len(rows):,} rows ({failed / len(rows) * 100:.3g} %) quarantined, "
            f"within max_fraction 50 % ({KEY}{name}.max_fraction): they "
        ), name
        assert "Examples from interactions.parquet: row " in check.description, name
        assert "Fix: " in check.description, name


def test_the_report_carries_examples_thresholds_and_keys(
    harness: TaskHarness, tmp_path: Path
) -> None:
    rows = _epoch_rows([str(START + k) for k in range(3)]) + clean_rows(97)
    _, checkpoint = _run(harness, tmp_path, rows)
    report = json.loads(checkpoint.path("validation_report").read_text())
    rule = report["rules"]["timestamp_parse"]
    assert rule["threshold"] == 0.01
    assert rule["threshold_key"] == f"{KEY}timestamp_parse.max_fraction"
    assert [e["value"] for e in rule["examples"]] == [str(START), str(START + 1), str(START + 2)]
    assert report["interactions"]["source"] == "interactions.parquet"


def test_no_hint_suggests_synthetic_data_for_a_users_file() -> None:
    for module in (validation, inspect.getmodule(validation.Config)):
        source = inspect.getsource(module).lower()
        for phrase in ("generate-data", "generate_data", "synthetic", "sample data"):
            assert phrase not in source, (module.__name__, phrase)
