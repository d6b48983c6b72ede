"""Conformance: the local (DuckDB) and spark (Spark SQL) engines' validation equals the
pandas reference (so pandas, local and spark all agree).

Not "roughly the same": the same bytes in every output file (valid interactions,
quarantine with its reasons and row numbers, typed items/users, the report) and the same
check outcomes, descriptions and examples included — on the bundled sample, on generated
dirty data and on spellings chosen to sit where SQL casts and pandas parsers disagree.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from recomart_pipeline.datagen import generate_dataset
from recomart_pipeline.tasks import validation
from recomart_pipeline.tasks._tables import TYPED_SCHEMAS, write_frame
from recomart_pipeline_tests.data.helpers import (
    REPO_ROOT,
    TaskHarness,
    events,
    publish_raw,
    raw_table,
    sources,
)
from recomart_pipeline_tests.engines.conformance import (
    PINNED,
    assert_conform,
)


@pytest.fixture(params=["local", pytest.param("spark", marks=pytest.mark.slow)])
def engine(request: pytest.FixtureRequest) -> str:
    """Each SQL engine in turn; spark on the module's local[2] session."""
    if request.param == "spark":
        request.getfixturevalue("spark_session")
    return str(request.param)


def test_bundled_sample(harness: TaskHarness, engine: str) -> None:
    raw = {t: REPO_ROOT / "data" / f"{t}.csv" for t in ("interactions", "items", "users")}
    _, upstream = harness.run("ingestion", sources(raw))
    result = assert_conform(harness, upstream, engine)
    assert result.metrics["rows_in"] > 0


@pytest.mark.parametrize("chunk_rows", [1_000_000, 700])
def test_generated_dirty_data(
    tmp_path: Path, harness: TaskHarness, chunk_rows: int, engine: str
) -> None:
    """Every fault the generator makes, in several batches (chunk_rows) on both sides."""
    data = generate_dataset(
        tmp_path / "gen", users=200, items=80, interactions=5000, seed=11, dirty_fraction=0.05
    )
    _, upstream = harness.run("ingestion", sources(data))
    result = assert_conform(harness, upstream, engine, {**PINNED, "chunk_rows": chunk_rows})
    failed = {c.name: c.metadata.get("failed_rows", 0) for c in result.checks}
    # The comparison means something only if each rule had rows to judge.
    for rule in validation.ROW_RULES:
        if rule != "future_timestamps":
            assert failed[rule] > 0, rule
    quarantine = pq.read_table(result.outputs["quarantine"])
    assert quarantine.num_rows == result.metrics["rows_quarantined"] > 0


CLEAN = {
    "user_id": "u0",
    "item_id": "i0",
    "event_type": "view",
    "timestamp": "2026-01-01T00:00:00Z",
}
# Spellings on the border between what DuckDB's casts and pandas' parsers accept.
ODD_TIMESTAMPS = [
    # canonical spellings the SQL parses itself (edges of the pattern)
    "2026-01-01 10:00Z",
    "2026-01-01T10:00:05.1+05:45",
    "2026-06-30T23:59:59.999999-00:00",
    "1678-01-01",
    "2261-12-31T23:59:59Z",
    "2026-04-31",
    "2026-02-29T00:00",
    "2024-02-29T12:00:00+14:00",
    # the rest go to the reference parser
    "2026-01-01T10:00:05+02:00",
    "2026-01-01T10:00:05+0200",
    "2026-01-01T10:00:05.123456789Z",
    "2026-01-01t10:00:05z",
    "2026-01-01T10",
    "2026-01-01 10:00",
    "2026-01",
    "2026",
    "20260101",
    "2026-02-29",
    "2026-01-01T24:00:00",
    "2026-01-01T23:59:60Z",
    "1677-12-31T00:00:00Z",
    "1678-01-01T00:30:00+01:00",
    "2261-12-31T23:30:00-01:00",
    "2262-04-12T00:00:00Z",
    "9999-01-01T00:00:00Z",
    "0001-01-01",
    "1767225600",
    " 2026-01-01",
    "not-a-date",
    "",
]
ODD_RATINGS = [
    "4", "4.0", "+3", ".5", "5.", "1e0", "1E-2", " 3", "3 ", "-0", "0x10", "1_0", "inf",
    "-inf", "nan", "NaN", "five", "", "3,5", "00004", "4.00000000001", "000000001.5",
    "5.000000001", "0.1", "4.999999999",
]  # fmt: skip


def test_odd_spellings_are_judged_like_the_reference(
    harness: TaskHarness, tmp_path: Path, engine: str
) -> None:
    rows = [
        {**CLEAN, "timestamp": ts, "user_id": f"u{i % 3}"} for i, ts in enumerate(ODD_TIMESTAMPS)
    ]
    rows += [
        {**CLEAN, "event_type": event, "rating": rating, "item_id": f"i{i % 2}"}
        for event in ("rating", "view")
        for i, rating in enumerate(ODD_RATINGS)
    ]
    # Exact duplicates, and near ones: null and "" are different values.
    rows += [dict(CLEAN), dict(CLEAN), {**CLEAN, "rating": ""}, {**CLEAN, "rating": ""}]
    rows += [{**CLEAN, "item_id": "i9"}, {**CLEAN, "user_id": ""}, {**CLEAN, "event_type": "VIEW"}]
    items = [{"item_id": "i0"}, {"item_id": "i1"}]
    users = [{"user_id": f"u{i}"} for i in range(3)]
    upstream = publish_raw(harness, tmp_path, rows, items, users)
    result = assert_conform(harness, upstream, engine, {**PINNED, "chunk_rows": 100})
    assert result.metrics["rows_valid"] > 0 and result.metrics["rows_quarantined"] > 0
    # A future limit beyond what nanoseconds can hold (year 3026) is still judged alike.
    far = {**PINNED, "future_timestamps": {"max_future_skew": "P365000D"}}
    assert assert_conform(harness, upstream, engine, far).metrics["rows_valid"] > 0


def test_a_typed_interactions_input_is_read_by_the_reference(
    harness: TaskHarness, tmp_path: Path, engine: str
) -> None:
    """Only ingestion's all-text layout is read by SQL; a typed table goes through pandas."""
    files = {
        "interactions": write_frame(
            tmp_path / "interactions.parquet",
            events([("u0", "i0", "view", None, "2026-01-01T00:00:00Z")]),
            TYPED_SCHEMAS["interactions"],
        ),
        "items": tmp_path / "items.parquet",
        "users": tmp_path / "users.parquet",
    }
    pq.write_table(raw_table("items", [{"item_id": "i0"}]), files["items"])
    pq.write_table(raw_table("users", [{"user_id": "u0"}]), files["users"])
    upstream = harness.publish("ingestion", files)
    assert not validation.raw_columns_are_text(upstream.path("interactions"))
    result = assert_conform(harness, upstream, engine, expected_engine="pandas")
    assert result.metrics["rows_valid"] == 1
