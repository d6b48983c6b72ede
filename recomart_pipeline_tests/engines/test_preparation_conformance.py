"""Conformance: the local (DuckDB) and spark (Spark SQL) engines' preparation equals the
pandas reference (so pandas, local and spark all agree).

Not "roughly the same": the same bytes in train, test (its split-protocol footer included)
and fold_in, the same metrics and metadata, and the same errors — on the bundled sample and
on generated dirty data, for every split protocol with several seeds and fractions (the
seeded draws are numpy's, so a seed must pick the very same events), for the k-core loop,
and on typed rows chosen where SQL and pandas could disagree (NaN and null, -0.0 and 0.0,
nanosecond timestamps, ties in time).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from recomart_pipeline.contract.catalog import builtin_spec
from recomart_pipeline.contract.errors import DataValidationError
from recomart_pipeline.contract.task import TaskResult
from recomart_pipeline.datagen import generate_dataset
from recomart_pipeline.runtime.artifacts import ArtifactStore, Checkpoint
from recomart_pipeline.tasks import preparation
from recomart_pipeline.tasks._tables import TYPED_SCHEMAS, split_of, write_frame
from recomart_pipeline_tests.data.helpers import (
    REPO_ROOT,
    TaskHarness,
    events,
    sources,
)
from recomart_pipeline_tests.engines.conformance import PINNED, fingerprint, spark_jobs

# Every protocol, several seeds and fractions.
SPLITS: list[dict[str, Any]] = [
    {},
    {"split": {"test_fraction": 0.35}},
    {"split": {"cutoff": "2026-03-01T12:00:00+02:00"}},
    {"split": {"method": "temporal_per_user", "n": 2}},
    {"split": {"method": "last_n_per_user", "per_user_fraction": 0.3}},
    {"split": {"method": "random", "seed": 1}},
    {"split": {"method": "random", "seed": 2024, "test_fraction": 0.1}},
    {"split": {"method": "user_holdout", "seed": 3, "fold_in_fraction": 0.7}},
    {"split": {"method": "user_holdout", "test_fraction": 0.4, "fold_in_fraction": 0.8}},
]
# The k-core on top, with minimums that make it take several rounds on the generated data.
K_CORES: list[dict[str, Any]] = [
    {"min_user_interactions": 5, "min_item_interactions": 30},
    {"min_user_interactions": 12, "min_item_interactions": 2, "split": {"method": "random"}},
    {"min_user_interactions": 3, "split": {"method": "user_holdout", "seed": 9}},
]
# Spark takes ~10-30 s a configuration on a busy 2-core machine: it runs every
# configuration on the generated data, and one per protocol on the other inputs.
ONE_PER_PROTOCOL = [SPLITS[0], SPLITS[3], SPLITS[5], SPLITS[7], K_CORES[0]]


def _configs(engine: str, every: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return every if engine == "local" else [c for c in ONE_PER_PROTOCOL if c in every]


@pytest.fixture(params=["local", pytest.param("spark", marks=pytest.mark.slow)])
def engine(request: pytest.FixtureRequest) -> str:
    """Each SQL engine in turn; spark on the module's local[2] session."""
    if request.param == "spark":
        request.getfixturevalue("spark_session")
    return str(request.param)


def _validated(harness: TaskHarness, data: dict[str, Path]) -> Checkpoint:
    _, ingested = harness.run("ingestion", sources(data))
    _, validated = harness.run("validation", PINNED, {"ingestion": ingested})
    return validated


@pytest.fixture(scope="module")
def upstreams(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Checkpoint]:
    """Validation's outputs for the bundled sample and for generated dirty data (5% dirty),
    made once for the module."""
    root = tmp_path_factory.mktemp("prepared-upstreams")
    harness = TaskHarness(ArtifactStore(root / "storage"), project_root=root)
    bundled = {t: REPO_ROOT / "data" / f"{t}.csv" for t in ("interactions", "items", "users")}
    generated = generate_dataset(
        root / "gen", users=250, items=90, interactions=6000, seed=23, dirty_fraction=0.05
    )
    return {
        "bundled": _validated(harness, bundled),
        "generated": _validated(harness, generated),
    }


def prepare_on(
    harness: TaskHarness, upstream: Checkpoint, engine: str, config: dict[str, Any]
) -> TaskResult:
    ctx = harness.context("preparation", config, {"validation": upstream})
    ctx.engine = engine
    result = builtin_spec("preparation").function()(ctx)
    assert isinstance(result, TaskResult)
    return result


def assert_conform(
    harness: TaskHarness,
    upstream: Checkpoint,
    engine: str,
    config: dict[str, Any],
    expected_engine: str | None = None,
) -> TaskResult:
    """The engine's run equals the reference's, byte for byte; and the engine really ran."""
    reference = prepare_on(harness, upstream, "pandas", config)
    jobs = spark_jobs() if engine == "spark" else 0
    found = prepare_on(harness, upstream, engine, config)
    if engine == "spark" and expected_engine is None:
        assert spark_jobs() > jobs, "no Spark job ran"
    assert reference.metadata.pop("engine") == "pandas"
    assert found.metadata.pop("engine") == (expected_engine or engine)
    assert fingerprint(found) == fingerprint(reference)
    assert found.metadata == reference.metadata
    return found


def _small(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` for small data: a handful of evaluation users is enough (the guard has
    its own test)."""
    return {**config, "split": {"min_eval_users": 1, **config.get("split", {})}}


@pytest.mark.parametrize("data", ["bundled", "generated"])
def test_every_protocol_matches_the_reference(
    harness: TaskHarness, upstreams: dict[str, Checkpoint], data: str, engine: str
) -> None:
    configs = SPLITS + K_CORES
    for config in configs if data == "generated" else _configs(engine, configs):
        result = assert_conform(harness, upstreams[data], engine, _small(config))
        # The comparison means something only if every part was made.
        metrics = result.metrics
        assert metrics["train_rows"] > 0 and metrics["test_rows"] > 0, config
        if config.get("split", {}).get("method") == "user_holdout":
            assert metrics["fold_in_rows"] > 0, config
        if "min_user_interactions" in config:
            assert metrics["kcore_dropped"] > 0 and metrics["kcore_rounds"] > 1, config
    assert split_of(result.outputs["test"]) is not None


def _edge_rows() -> pa.Table:
    """Typed rows on the border between SQL's and pandas' semantics, in no time order.
    Missing ratings and weights are NaN where ``nan`` is set, else null (Parquet keeps the
    difference; pandas reads both as NaN)."""
    base = pd.Timestamp("2026-01-01T00:00:00Z")
    rows: list[dict[str, Any]] = []
    for user in range(40):
        for event in range(6 + user % 5):
            rows.append(
                {
                    "user_id": f"u{user:02d}",
                    "item_id": f"i{(user * 7 + event * 3) % 23}",
                    "event_type": "rating" if event % 2 else "view",
                    # events in tied pairs (input order decides), nanosecond precision
                    "timestamp": base + pd.Timedelta(days=24 * (event // 2), nanoseconds=user % 3),
                    "rating": float(event % 5 + 1) if event % 2 else None,
                    "weight": float(event % 3) if user % 4 else None,
                    "nan": user % 3 == 0,
                }
            )
    same = {"user_id": "u01", "item_id": "i1", "event_type": "view", "timestamp": base}
    rows += [
        {**same, "rating": 0.0, "weight": 1.0},
        {**same, "rating": -0.0, "weight": 1.0},  # equal to 0.0: a duplicate, as in pandas
        {**same, "rating": None, "weight": 2.0, "nan": True},
        {**same, "rating": None, "weight": 2.0},  # NaN and null: a duplicate, as in pandas
        {**same, "rating": None, "weight": -0.0},  # -0.0 weight, kept as written
        {**same, "user_id": None, "rating": 3.0},
        {**same, "timestamp": pd.NaT},
        {**same, "event_type": None},
    ]
    frame = pd.DataFrame(rows).sample(frac=1, random_state=4)
    nan = frame.pop("nan").fillna(False).to_numpy(dtype=bool)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    for column in ("rating", "weight"):
        values = frame[column].to_numpy(dtype=np.float32)
        kept = pa.array(values, mask=np.isnan(values) & ~nan, from_pandas=False)
        table = table.set_column(table.schema.get_field_index(column), column, kept)
    return table.cast(TYPED_SCHEMAS["interactions"])


def _publish_interactions(harness: TaskHarness, tmp_path: Path, table: pa.Table) -> Checkpoint:
    folder = tmp_path / "typed"
    folder.mkdir(exist_ok=True)
    files = {"interactions": folder / "interactions.parquet"}
    pq.write_table(table, files["interactions"])
    for name, frame in (
        ("items", pd.DataFrame({"item_id": ["i1"], "category": "c", "price": 1.0, "title": "t"})),
        ("users", pd.DataFrame({"user_id": ["u01"], "signup_date": pd.NaT, "region": "r"})),
    ):
        files[name] = write_frame(folder / f"{name}.parquet", frame, TYPED_SCHEMAS[name])
    return harness.publish("validation", files)


def test_edge_values_are_judged_like_the_reference(
    harness: TaskHarness, tmp_path: Path, engine: str
) -> None:
    table = _edge_rows()
    assert pc.sum(pc.is_nan(table["rating"])).as_py() > 0 < table["rating"].null_count
    upstream = _publish_interactions(harness, tmp_path, table)
    for config in [
        *_configs(engine, SPLITS),
        {"min_user_interactions": 7, "min_item_interactions": 8},
    ]:
        result = assert_conform(harness, upstream, engine, _small(config))
        assert result.metrics["nulls_dropped"] == 3, config
        assert result.metrics["duplicates_dropped"] == 2, config
    # NaN was written as null (the reference's own conversion), so no NaN is left
    train = pq.read_table(result.outputs["train"])
    assert train["rating"].null_count > 0 and not np.isnan(train["rating"].drop_null()).any()


def test_times_at_the_ends_of_the_range_keep_their_order(
    harness: TaskHarness, tmp_path: Path, engine: str
) -> None:
    """The parts stream sorted on one key, ``ts * 2**40 + rn``: it must stay exact and
    ordered where ``ts`` is far from zero (both ends of validation's typed range, 1678 to
    2261, and before 1970) and break ties by input order (the same instant written more
    than once; instants a nanosecond apart)."""
    instants = [
        pd.Timestamp("1678-01-01T00:00:00.000000001Z"),
        pd.Timestamp("1678-01-01T00:00:00.000000001Z"),
        pd.Timestamp("1969-12-31T23:59:59.999999999Z"),
        pd.Timestamp("1970-01-01T00:00:00Z"),
        pd.Timestamp("1970-01-01T00:00:00.000000001Z"),
        pd.Timestamp("2261-12-31T23:59:59.999999999Z"),
        pd.Timestamp("2261-12-31T23:59:59.999999998Z"),
    ]
    frame = pd.DataFrame(
        {
            "user_id": [f"u{n % 3}" for n in range(len(instants) * 3)],
            "item_id": [f"i{n % 4}" for n in range(len(instants) * 3)],
            "event_type": "view",
            "timestamp": [instants[(n * 5) % len(instants)] for n in range(len(instants) * 3)],
            "rating": None,
            "weight": [float(n) for n in range(len(instants) * 3)],  # no two rows equal
        }
    )
    table = pa.Table.from_pandas(frame, preserve_index=False).cast(TYPED_SCHEMAS["interactions"])
    upstream = _publish_interactions(harness, tmp_path, table)
    for config in _configs(engine, SPLITS):
        result = assert_conform(harness, upstream, engine, _small(config))
        for part in ("train", "test"):
            times = pq.read_table(result.outputs[part])["timestamp"].cast(pa.int64()).to_numpy()
            assert len(times) and (np.diff(times) >= 0).all(), (config, part)
    first = assert_conform(harness, upstream, engine, _small({}))  # train: the earliest
    assert pq.read_table(first.outputs["train"])["timestamp"].cast(pa.int64())[0].as_py() < 0


def test_a_table_without_weights_is_read_like_the_reference(
    harness: TaskHarness, tmp_path: Path, engine: str
) -> None:
    """Validated before weights existed: no weight column, every row one event."""
    upstream = _publish_interactions(harness, tmp_path, _edge_rows().drop_columns("weight"))
    result = assert_conform(harness, upstream, engine, _small({}))
    assert (
        pq.read_table(result.outputs["train"])["weight"].null_count == result.metrics["train_rows"]
    )


def test_an_unstable_k_core_stops_after_the_same_rounds(
    harness: TaskHarness, tmp_path: Path, engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chain that loses one user per round: both stop at the round limit, unstable."""
    rows: list[tuple[str, str, str, float | None, str]] = [
        (f"u{n}", f"i{n}", "view", None, f"2026-01-{n + 1:02d}") for n in range(12)
    ]
    rows += [(f"u{n + 1}", f"i{n}", "view", None, f"2026-02-{n + 1:02d}") for n in range(11)]
    schema = TYPED_SCHEMAS["interactions"]
    frame = events(rows).assign(weight=np.float32(1))[schema.names]
    table = pa.Table.from_pandas(frame, preserve_index=False).cast(schema)
    upstream = _publish_interactions(harness, tmp_path, table)
    monkeypatch.setattr(preparation, "MAX_KCORE_ROUNDS", 3)
    config = _small({"min_user_interactions": 2, "min_item_interactions": 2})
    result = assert_conform(harness, upstream, engine, config)
    assert result.metrics["kcore_rounds"] == 3 and result.metrics["kcore_dropped"] > 0


def _errors(harness: TaskHarness, upstream: Checkpoint, engine: str, config: dict) -> Iterator[str]:
    for each in ("pandas", engine):
        with pytest.raises(DataValidationError) as caught:
            prepare_on(harness, upstream, each, config)
        yield f"{caught.value} | {caught.value.hint}"


@pytest.mark.parametrize(
    "config",
    [
        {"min_user_interactions": 50},  # nothing left
        {"split": {"cutoff": "2020-01-01"}},  # train empty
        {"split": {"method": "random", "test_fraction": 0.01, "min_eval_users": 100}},
        {"split": {"method": "user_holdout", "min_eval_users": 100}},
    ],
)
def test_errors_are_the_references(
    harness: TaskHarness, tmp_path: Path, engine: str, config: dict[str, Any]
) -> None:
    upstream = _publish_interactions(harness, tmp_path, _edge_rows())
    reference, found = _errors(harness, upstream, engine, config)
    assert found == reference


def test_a_table_in_another_layout_is_read_by_the_reference(
    harness: TaskHarness, tmp_path: Path, engine: str
) -> None:
    """Only validation's typed layout is read by SQL; other types go through pandas."""
    table = _edge_rows()
    upstream = _publish_interactions(
        harness, tmp_path, table.set_column(4, "rating", table["rating"].cast(pa.float64()))
    )
    result = assert_conform(harness, upstream, engine, _small({}), "pandas")
    assert result.metrics["train_rows"] > 0
