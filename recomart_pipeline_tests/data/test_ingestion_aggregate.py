"""Ingestion's ``aggregate`` (repeated events → one weighted interaction) and separators of
several characters (MovieLens-1M ``::``), down to the implicit matrix the features build."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp
from pydantic import ValidationError

from recomart_pipeline.config import ConfigError, PipelineConfig
from recomart_pipeline.contract.errors import SchemaError
from recomart_pipeline.runtime.artifacts import Checkpoint
from recomart_pipeline.tasks.specs import ingestion as spec
from recomart_pipeline_tests.data.helpers import TaskHarness, artifact_hashes
from recomart_pipeline_tests.engines.conformance import assert_conform

KEY = "tasks.ingestion.config.source.interactions"
DAY = 86_400


def _source(path: Path, **block: Any) -> dict[str, Any]:
    return {"source": {"interactions": {"path": str(path), **block}, "items": None, "users": None}}


def _lines(path: Path, rows: list[tuple[Any, ...]], header: str) -> Path:
    path.write_text(header + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


def _invoice_lines(path: Path) -> Path:
    """Invoice lines: c1 buys A three times (2+3+5), B once; c2 buys A once, returns it
    (-1) and once more (1); a line without a quantity; a line with an unreadable date; c1's
    last line, C, is the only one after the tests' split cut-off."""
    rows = [
        ("c1", "A", 2, "2026-01-01T10:00:00Z"),
        ("c1", "B", 1, "2026-01-01T11:00:00Z"),
        ("c1", "A", 3, "2026-01-03T10:00:00Z"),
        ("c2", "A", 1, "2026-01-02T09:00:00Z"),
        ("c1", "A", 5, "2026-01-02T10:00:00Z"),
        ("c2", "A", -1, "2026-01-04T09:00:00Z"),
        ("c2", "B", "", "2026-01-04T09:30:00Z"),
        ("c2", "B", 4, "yesterday"),
        ("c1", "C", 1, "2026-01-05T08:00:00Z"),
    ]
    return _lines(path, rows, "CustomerID,StockCode,Quantity,InvoiceDate")


RETAIL = {
    "column_mapping": {"CustomerID": "user_id", "StockCode": "item_id", "InvoiceDate": "timestamp"},
    "constants": {"event_type": "purchase"},
}


def _interactions(harness: TaskHarness, config: dict[str, Any]) -> tuple[Any, pd.DataFrame]:
    result, checkpoint = harness.run("ingestion", config)
    return result, pd.read_parquet(checkpoint.path("interactions"))


# --- the config model -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("aggregate", "where", "words"),
    [
        (
            {"by": ["user_id", "StockCode"]},
            "aggregate.by",
            "['StockCode'], which are not canonical",
        ),
        ({"by": ["item_id", "event_type"]}, "aggregate.by", "must include user_id and item_id"),
        ({"by": ["user_id", "item_id", "item_id"]}, "aggregate.by", "repeats a column"),
        ({"weight": "mean:Quantity"}, "aggregate.weight", "'mean:Quantity' is neither"),
        ({"weight": "sum:"}, "aggregate.weight", "neither 'count' nor 'sum:<column>'"),
        ({"keep": "middle"}, "aggregate.keep", "'last' or 'first'"),
        ({"weights": "count"}, "aggregate.weights", "Extra inputs"),
    ],
)
def test_aggregate_mistakes_name_the_key(aggregate: dict[str, Any], where: str, words: str) -> None:
    with pytest.raises(ValidationError) as raised:
        spec.Config.model_validate(_source(Path("x.csv"), aggregate=aggregate))
    assert f"source.interactions.{where}" in str(raised.value)
    assert words in str(raised.value)


def test_aggregate_reads_naturally() -> None:
    def parsed(value: Any) -> spec.Aggregate | None:
        config = spec.Config.model_validate(_source(Path("x.csv"), aggregate=value))
        return config.source.interactions.aggregate

    assert parsed(True) == spec.Aggregate(by=["user_id", "item_id", "event_type"])
    assert parsed(False) is None
    assert parsed({"weight": {"sum": "Quantity"}}) == spec.Aggregate(weight="sum:Quantity")
    assert spec.Aggregate(weight="sum:Quantity").sum_column == "Quantity"
    assert parsed({"weight": " sum: Qty "}) == spec.Aggregate(weight="sum:Qty")
    assert parsed({"weight": "COUNT", "keep": "first"}) == spec.Aggregate(keep="first")
    assert spec.Aggregate().sum_column is None


def test_only_interactions_aggregate_and_nothing_maps_onto_weight() -> None:
    with pytest.raises(ValidationError, match=r"source\.items\.aggregate: only the interactions"):
        spec.Config.model_validate({"source": {"items": {"path": "x.csv", "aggregate": True}}})
    with pytest.raises(ValidationError, match="which only aggregation writes"):
        spec.Config.model_validate(_source(Path("x.csv"), column_mapping={"n": "weight"}))
    with pytest.raises(ValidationError, match="not canonical interactions columns"):
        spec.Config.model_validate(_source(Path("x.csv"), constants={"weight": "2"}))


def test_an_unknown_by_column_is_a_config_error_with_the_key(tmp_path: Path) -> None:
    config = tmp_path / "pipeline_config.yaml"
    config.write_text(
        "tasks:\n  ingestion:\n    config:\n      source:\n        interactions:\n"
        "          path: x.csv\n          aggregate: {by: [customer, item_id]}\n"
    )
    with pytest.raises(ConfigError) as raised:
        PipelineConfig(config)
    message = raised.value.render()
    assert f"{KEY}.aggregate.by" in message and "['customer']" in message


@pytest.mark.parametrize(("written", "kept"), [("::", "::"), ("|.", "|."), ("tab", "\t")])
def test_delimiters_of_several_characters_are_kept_literally(written: str, kept: str) -> None:
    assert spec.TableSource(path="x", delimiter=written).delimiter == kept


# --- aggregation in the task --------------------------------------------------------------------


def test_count_folds_repeats_and_keeps_the_last_time(harness: TaskHarness, tmp_path: Path) -> None:
    path = _invoice_lines(tmp_path / "lines.csv")
    result, checkpoint = harness.run("ingestion", _source(path, **RETAIL, aggregate=True))
    frame = pd.read_parquet(checkpoint.path("interactions"))
    folded = frame[frame["timestamp"] != "yesterday"].set_index(["user_id", "item_id"])
    assert folded.loc[("c1", "A"), "weight"] == "3"
    assert folded.loc[("c1", "A"), "timestamp"] == "2026-01-03T10:00:00Z"
    assert folded.loc[("c2", "A"), "weight"] == "2"
    assert folded.loc[("c2", "B"), "weight"] == "1"  # its quantity is blank: count ignores it
    # The unreadable date passes through unfolded, last, for validation to quarantine.
    assert pq.read_table(checkpoint.path("interactions")).to_pylist()[-1] == {
        "user_id": "c2",
        "item_id": "B",
        "event_type": "purchase",
        "timestamp": "yesterday",
        "rating": None,
        "weight": "1",
    }
    assert frame["timestamp"].iloc[:-1].is_monotonic_increasing
    stats = result.metadata["interactions_aggregation"]
    assert stats["rows_in"] == 9 and stats["rows_folded"] == 8
    assert stats["interactions_folded"] == 5 and stats["rows_passed_through"] == 1
    assert result.metrics["interactions_rows"] == 6
    assert result.metrics["interactions_rows_aggregated"] == 9


def test_keep_first_takes_the_earliest_event(harness: TaskHarness, tmp_path: Path) -> None:
    path = _invoice_lines(tmp_path / "lines.csv")
    _, frame = _interactions(harness, _source(path, **RETAIL, aggregate={"keep": "first"}))
    first = frame.set_index(["user_id", "item_id"]).loc[("c1", "A")]
    assert first["timestamp"] == "2026-01-01T10:00:00Z" and first["weight"] == "3"


def test_sum_of_quantity_drops_what_has_no_number_or_nets_to_nothing(
    harness: TaskHarness, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _invoice_lines(tmp_path / "lines.csv")
    config = _source(
        path, **RETAIL, aggregate={"by": ["user_id", "item_id"], "weight": "sum:Quantity"}
    )
    result, frame = _interactions(harness, config)
    weights = dict(
        zip(zip(frame["user_id"], frame["item_id"], strict=True), frame["weight"], strict=True)
    )
    # c1/A sums 2+3+5; c2/A nets 1-1+... = 0 and is dropped; c2/B's blank quantity is dropped.
    assert weights == {("c1", "A"): "10", ("c1", "B"): "1", ("c2", "B"): "4", ("c1", "C"): "1"}
    stats = result.metadata["interactions_aggregation"]
    assert stats["rows_without_number"] == 1 and stats["interactions_not_positive"] == 1
    warned = " ".join(r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert f"{KEY}.aggregate.weight" in warned and "summed to zero or less" in warned


def test_a_missing_sum_column_names_the_key(harness: TaskHarness, tmp_path: Path) -> None:
    path = _invoice_lines(tmp_path / "lines.csv")
    with pytest.raises(SchemaError) as raised:
        harness.run("ingestion", _source(path, **RETAIL, aggregate={"weight": "sum:Qty"}))
    assert f"{KEY}.aggregate.weight" in str(raised.value) and "'Qty'" in str(raised.value)
    issues = spec.preflight(
        spec.Config.model_validate(_source(path, **RETAIL, aggregate={"weight": "sum:Qty"})),
        tmp_path,
    )
    assert [i.key for i in issues] == [("source", "interactions", "aggregate", "weight")]


def test_aggregation_does_not_depend_on_the_batch_size(
    harness: TaskHarness, tmp_path: Path
) -> None:
    rng = np.random.default_rng(4)
    rows = [
        (
            f"u{rng.integers(30)}",
            f"i{rng.integers(20)}",
            int(rng.integers(1, 4)),
            1_767_225_600 + int(t),
        )
        for t in rng.integers(0, 90 * DAY, 3_000)
    ]
    path = _lines(tmp_path / "clicks.csv", rows, "user_id,item_id,n,timestamp")
    block = {"constants": {"event_type": "view"}, "timestamp": {"unit": "s"}}
    hashes = []
    for chunk_rows in (100, 1_000_000):
        config = {**_source(path, **block, aggregate={"weight": "sum:n"}), "chunk_rows": chunk_rows}
        _, checkpoint = harness.run("ingestion", config, run_id=f"chunks-{chunk_rows}")
        hashes.append(artifact_hashes(checkpoint)["interactions"])
        frame = pd.read_parquet(checkpoint.path("interactions"))
        assert frame.duplicated(["user_id", "item_id"]).sum() == 0
        assert frame["weight"].astype(float).sum() == sum(r[2] for r in rows)
    assert hashes[0] == hashes[1]


# --- down the chain: validation (both engines) and the implicit matrix ----------------------------


def _chain(
    harness: TaskHarness, ingestion: dict[str, Any], engine: str = "pandas"
) -> dict[str, Checkpoint]:
    done: dict[str, Checkpoint] = {}
    upstream: dict[str, Checkpoint] = {}
    configs: dict[str, dict[str, Any]] = {
        "ingestion": ingestion,
        "validation": {},
        "preparation": {"split": {"cutoff": "2026-01-04T00:00:00Z", "min_eval_users": 1}},
        "features": {},
    }
    for task, config in configs.items():
        _, checkpoint = harness.run(task, config, upstream)
        done[task] = checkpoint
        upstream = {task: checkpoint}
    return done


def _implicit(done: dict[str, Checkpoint]) -> dict[tuple[str, str], float]:
    features = done["features"]
    matrix = sp.load_npz(features.path("train_implicit")).tocoo()
    users = pd.read_parquet(features.path("user_index")).set_index("user_idx")["user_id"]
    items = pd.read_parquet(features.path("item_index")).set_index("item_idx")["item_id"]
    return {
        (users[u], items[i]): float(v)
        for u, i, v in zip(matrix.row, matrix.col, matrix.data, strict=True)
    }


def test_the_implicit_matrix_counts_a_weighted_row_as_that_many_events(
    harness: TaskHarness, tmp_path: Path
) -> None:
    path = _invoice_lines(tmp_path / "lines.csv")
    plain = _implicit(
        _chain(
            harness, _source(path, **RETAIL, filter=[{"column": "Quantity", "op": ">", "value": 0}])
        )
    )
    counted = _implicit(
        _chain(
            harness,
            _source(
                path,
                **RETAIL,
                filter=[{"column": "Quantity", "op": ">", "value": 0}],
                aggregate=True,
            ),
        )
    )
    summed = _implicit(
        _chain(harness, _source(path, **RETAIL, aggregate={"weight": "sum:Quantity"}))
    )
    purchase = 5.0  # the default event weight
    assert plain == counted  # folding by count changes nothing the models see
    assert counted[("c1", "A")] == 3 * purchase
    assert summed[("c1", "A")] == (2 + 3 + 5) * purchase and summed[("c1", "B")] == purchase


def test_both_validation_engines_carry_the_weight(harness: TaskHarness, tmp_path: Path) -> None:
    path = _invoice_lines(tmp_path / "lines.csv")
    config = _source(path, **RETAIL, aggregate={"weight": "sum:Quantity"})
    _, raw = harness.run("ingestion", config)
    result = assert_conform(harness, raw, "local")  # the same bytes from pandas and DuckDB
    typed = pd.read_parquet(result.outputs["interactions"])
    weights = dict(
        zip(zip(typed["user_id"], typed["item_id"], strict=True), typed["weight"], strict=True)
    )
    # c2/B's date does not read: quarantined, not folded
    assert weights == {("c1", "A"): 10.0, ("c1", "B"): 1.0, ("c1", "C"): 1.0}
    quarantine = pq.read_table(result.outputs["quarantine"]).to_pylist()
    assert [(r["timestamp"], r["reason"]) for r in quarantine] == [("yesterday", "timestamp_parse")]


# --- separators of several characters ---------------------------------------------------------

ML1M = ["user_id", "item_id", "rating", "timestamp"]


@pytest.mark.parametrize("delimiter", ["::", "|.", "||"])
def test_a_separator_of_several_characters_splits_literally(
    harness: TaskHarness, tmp_path: Path, delimiter: str
) -> None:
    path = tmp_path / "ratings.dat"
    lines = [
        ("1", "1193", "5", "978300760"),
        ("1", "661", "3.5", "978302109"),
        ("2", "3.1", "", "978298413"),
    ]
    path.write_text("".join(delimiter.join(line) + "\n" for line in lines))
    config = _source(
        path,
        format="csv",
        delimiter=delimiter,
        header=False,
        columns=ML1M,
        constants={"event_type": "rating"},
        timestamp={"unit": "s"},
    )
    assert spec.preflight(spec.Config.model_validate(config), tmp_path) == []
    rows = pq.read_table(harness.run("ingestion", config)[1].path("interactions")).to_pylist()
    assert [(r["user_id"], r["item_id"], r["rating"]) for r in rows] == [
        ("1", "1193", "5"),
        ("1", "661", "3.5"),
        ("2", "3.1", None),  # '.' in a value is not a separator; an empty field is null
    ]
    assert rows[0]["timestamp"] == "2000-12-31T22:12:40Z"


def test_a_header_and_a_ragged_line_with_a_long_separator(
    harness: TaskHarness, tmp_path: Path
) -> None:
    path = tmp_path / "ratings.dat"
    path.write_text("uid::mid::stars::ts\n1::10::4::978300760\n2::11::3::978300761::extra\n")
    block = {
        "format": "csv",
        "delimiter": "::",
        "column_mapping": {
            "uid": "user_id",
            "mid": "item_id",
            "stars": "rating",
            "ts": "timestamp",
        },
        "constants": {"event_type": "rating"},
        "timestamp": {"unit": "s"},
    }
    with pytest.raises(SchemaError) as raised:
        harness.run("ingestion", _source(path, **block))
    assert "ratings.dat" in str(raised.value) and "line 3" in str(raised.value)
    path.write_text("uid::mid::stars::ts\n1::10::4::978300760\n2::11::3::978300761\n")
    frame = _interactions(harness, _source(path, **block))[1]
    assert frame["item_id"].tolist() == ["10", "11"] and frame["rating"].tolist() == ["4", "3"]


def test_a_long_separator_reads_nulls_as_every_other_csv(
    harness: TaskHarness, tmp_path: Path
) -> None:
    rows = [
        ("u1", "i1", "NA", "2026-01-01T00:00:00Z"),
        ("u2", "None", "null", "2026-01-02T00:00:00Z"),
    ]
    results = []
    for delimiter, name in ((",", "events.csv"), ("::", "events.dat")):
        path = tmp_path / name
        path.write_text("".join(delimiter.join(row) + "\n" for row in rows))
        block = {
            "format": "csv",
            "delimiter": delimiter,
            "header": False,
            "columns": ["user_id", "item_id", "rating", "timestamp"],
        }
        config = _source(path, **block, constants={"event_type": "rating"})
        results.append(
            pq.read_table(
                harness.run("ingestion", config, run_id=name)[1].path("interactions")
            ).to_pylist()
        )
    assert results[0] == results[1]
    assert [r["rating"] for r in results[1]] == [None, None] and results[1][1]["item_id"] == "None"
