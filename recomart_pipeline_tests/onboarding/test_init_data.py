"""init-data: the overlay it writes for each public data shape, read back as YAML and as the
effective config, and the command's refusals. Fast: small generated files, no pipeline run
(the end-to-end runs are in e2e/test_init_data_end_to_end.py)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from recomart_pipeline.cli import main
from recomart_pipeline.config import PipelineConfig
from recomart_pipeline.onboarding import propose, read_inputs
from recomart_pipeline_tests.conftest import REPO_ROOT
from recomart_pipeline_tests.real_shapes import (
    START,
    write_event_log,
    write_ratings_csv,
    write_retail_csv,
    write_retail_parquet,
    write_u_data,
)

Writer = Callable[[Path], Path]


def _project(tmp_path: Path) -> Path:
    shutil.copy(REPO_ROOT / "pipeline_config.yaml", tmp_path / "pipeline_config.yaml")
    (tmp_path / "data").mkdir(exist_ok=True)
    return tmp_path


def _init(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], *paths: Path, extra: tuple[str, ...] = ()
) -> tuple[dict[str, Any], str]:
    """Run init-data into tmp_path/cfg.yaml; the overlay and what was printed. The command
    validates what it wrote (the data's head included), so exit 0 means validate accepts it."""
    output = tmp_path / "cfg.yaml"
    code = main(["init-data", *map(str, paths), "--output", str(output), *extra])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    return yaml.safe_load(output.read_text()), printed.out


def _source(overlay: dict[str, Any], table: str = "interactions") -> Any:
    return overlay["tasks"]["ingestion"]["config"]["source"][table]


def _setting(overlay: dict[str, Any], task: str, *path: str) -> Any:
    node: Any = overlay["tasks"].get(task, {}).get("config", {})
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
    return node


def test_movielens_u_data_tab_separated_without_header_in_unix_seconds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _project(tmp_path)
    overlay, printed = _init(project, capsys, write_u_data(project / "data"))
    assert overlay["extends"] == "pipeline_config.yaml"
    assert _source(overlay) == {
        "path": "data/u.data",
        "format": "csv",
        "delimiter": "tab",
        "header": False,
        "columns": ["user_id", "item_id", "rating", "timestamp"],
        "constants": {"event_type": "rating"},
        "timestamp": {"unit": "s"},
    }
    assert _source(overlay, "items") is None and _source(overlay, "users") is None
    # Guessed by position, so it is flagged with the key that changes it.
    assert "[low   ] user_id ← column_1" in printed
    assert "key: tasks.ingestion.config.source.interactions.columns" in printed


def test_movielens_ratings_csv_maps_camel_case_ids(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _project(tmp_path)
    overlay, _ = _init(project, capsys, write_ratings_csv(project / "data"))
    source = _source(overlay)
    assert source["column_mapping"] == {"userId": "user_id", "movieId": "item_id"}
    assert source["constants"] == {"event_type": "rating"}
    assert source["timestamp"] == {"unit": "s"}
    assert "format" not in source and "delimiter" not in source and "header" not in source


def test_half_star_scale_from_half_a_star_sets_the_rating_range(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _project(tmp_path)
    rng = np.random.default_rng(0)
    n = 3000
    pd.DataFrame(
        {
            "userId": rng.integers(1, 200, n),
            "movieId": rng.integers(1, 80, n),
            "rating": rng.integers(1, 11, n) / 2,  # 0.5 .. 5.0
            "timestamp": START + rng.integers(0, 86_400 * 30, n),
        }
    ).to_csv(project / "data" / "ratings.csv", index=False)
    overlay, printed = _init(project, capsys, project / "data" / "ratings.csv")
    assert _setting(overlay, "validation", "rating_range") == {
        "min_rating": 0.5,
        "max_rating": 5.0,
    }
    assert "ratings: mostly 0.5–5 in steps of 0.5" in printed
    assert "key: tasks.validation.config.rating_range" in printed
    # 0.5 + 0.75 * 4.5 = 3.875, on the half-star grid: 4, the default threshold.
    assert _setting(overlay, "features", "positive_rating_threshold") is None


@pytest.mark.parametrize("writer", [write_retail_parquet, write_retail_csv])
def test_retail_invoice_lines_drop_cancellations_returns_and_guests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], writer: Writer
) -> None:
    project = _project(tmp_path)
    overlay, printed = _init(project, capsys, writer(project / "data"))
    source = _source(overlay)
    assert source["column_mapping"] == {
        "InvoiceDate": "timestamp",
        "CustomerID": "user_id",
        "StockCode": "item_id",
        "UnitPrice": "price",
        "Description": "title",
        "Country": "region",
    }
    # Quantity is numeric: never the event type; the feedback is implicit purchases.
    assert "Quantity" not in source["column_mapping"]
    assert source["constants"] == {"event_type": "purchase"}
    assert source["filter"] == [
        {"column": "Quantity", "op": ">", "value": 0},
        {"column": "InvoiceNo", "op": "not_startswith", "value": "C"},
        {"column": "CustomerID", "op": "not_null"},
    ]
    assert "drop rows whose InvoiceNo starts with C: 3.5% of invoice numbers" in printed
    assert "key: tasks.ingestion.config.source.interactions.timestamp.timezone" in printed


def test_retail_csv_dates_and_encoding_are_spelled_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _project(tmp_path)
    overlay, printed = _init(project, capsys, write_retail_csv(project / "data"))
    source = _source(overlay)
    assert source["timestamp"] == {"format": "%m/%d/%Y %H:%M", "timezone": "UTC"}
    assert source["encoding"] in ("cp1252", "latin-1")  # the file has a Latin-1 pound sign
    assert "times written as %m/%d/%Y %H:%M" in printed


def test_event_log_maps_event_names_and_millisecond_times(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _project(tmp_path)
    overlay, _ = _init(project, capsys, write_event_log(project / "data"))
    source = _source(overlay)
    assert source["column_mapping"] == {
        "event": "event_type",
        "visitorid": "user_id",
        "itemid": "item_id",
    }
    assert source["value_mapping"] == {
        "event_type": {"addtocart": "add_to_cart", "transaction": "purchase"}
    }
    assert source["timestamp"] == {"unit": "ms"}
    assert "constants" not in source and "filter" not in source


def test_bundled_sample_gives_the_default_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _project(tmp_path)
    shutil.rmtree(project / "data")
    shutil.copytree(REPO_ROOT / "data", project / "data")
    _init(project, capsys, project / "data")
    generated = PipelineConfig(project / "cfg.yaml")
    default = PipelineConfig(project / "pipeline_config.yaml")
    for task, part in (
        ("ingestion", "source"),
        ("validation", "rating_range"),
        ("validation", "freshness"),
        ("validation", "event_type_values"),
        ("preparation", "split"),
        ("features", None),
    ):
        mine, theirs = generated.task_config(task), default.task_config(task)
        if part is not None:
            mine, theirs = getattr(mine, part), getattr(theirs, part)
        assert mine.model_dump() == theirs.model_dump(), (task, part)


def test_old_data_pins_freshness_to_its_newest_event(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    n = 4000
    times = pd.Timestamp("2010-12-01", tz="UTC") + pd.to_timedelta(
        rng.integers(0, 86_400 * 300, n), unit="s"
    )
    path = tmp_path / "old.csv"
    pd.DataFrame(
        {
            "user": rng.integers(0, 300, n),
            "item": rng.integers(0, 90, n),
            "time": times.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    ).to_csv(path, index=False)
    proposal = propose(read_inputs([str(path)]))
    newest = times.max().strftime("%Y-%m-%dT%H:%M:%SZ")
    assert proposal.tasks["validation"]["freshness"] == {"reference_time": newest}
    assert any(c.key.endswith("freshness.reference_time") for c in proposal.choices)


def test_view_only_log_counts_views_as_held_out_positives(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    n = 4000
    path = tmp_path / "clicks.csv"
    pd.DataFrame(
        {
            "user_id": rng.integers(0, 300, n),
            "item_id": rng.integers(0, 90, n),
            "action": "click",
            "ts": START + rng.integers(0, 86_400 * 30, n),
        }
    ).to_csv(path, index=False)
    proposal = propose(read_inputs([str(path)]))
    assert proposal.tables["interactions"].source["value_mapping"] == {
        "event_type": {"click": "view"}
    }
    assert proposal.tasks["features"] == {"positive_event_types": ["view"]}


def test_numeric_columns_are_never_proposed_as_event_types(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    n = 3000
    path = tmp_path / "lines.csv"
    pd.DataFrame(
        {
            "customer": rng.integers(0, 300, n),
            "product": rng.integers(0, 90, n),
            "event": rng.integers(1, 4, n),  # a code, not view/cart/purchase
            "date": pd.Timestamp("2026-02-01") + pd.to_timedelta(rng.integers(0, 30, n), unit="D"),
        }
    ).to_csv(path, index=False)
    proposal = propose(read_inputs([str(path)]))
    source = proposal.tables["interactions"].source
    assert "event_type" not in source.get("column_mapping", {}).values()
    assert source["constants"] == {"event_type": "purchase"}


def test_a_global_cutoff_that_strands_users_gives_a_per_user_split(tmp_path: Path) -> None:
    # Each user is active for two days only, users one after another: after a global
    # cut-off almost every test user is new, so the protocol must be per user.
    rows = [
        (u, (u * 7 + k) % 60, START + u * 86_400 + k * 600) for u in range(400) for k in range(8)
    ]
    path = tmp_path / "sessions.csv"
    pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).to_csv(path, index=False)
    proposal = propose(read_inputs([str(path)]))
    assert proposal.tasks["preparation"]["split"] == {
        "method": "temporal_per_user",
        "per_user_fraction": 0.2,
    }


def test_semicolon_file_without_header_with_text_ids(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    n = 3000
    path = tmp_path / "export.txt"
    frame = pd.DataFrame(
        {
            "u": [f"c{x:04d}" for x in rng.integers(0, 300, n)],
            "i": [f"p{x:03d}" for x in rng.integers(0, 90, n)],
            "t": (START + rng.integers(0, 86_400 * 30, n)) * 1000,
        }
    )
    frame.to_csv(path, sep=";", header=False, index=False)
    source = propose(read_inputs([str(path)])).tables["interactions"].source
    assert source["delimiter"] == ";" and source["header"] is False
    assert source["columns"] == ["user_id", "item_id", "timestamp"]
    assert source["timestamp"] == {"unit": "ms"} and source["format"] == "csv"


def test_refusals_name_the_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_ratings_csv(tmp_path)
    # No base config next to the output.
    assert main(["init-data", str(data), "--output", str(tmp_path / "cfg.yaml")]) == 2
    assert "no base config at" in capsys.readouterr().err
    # A base outside the output's project folder.
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(REPO_ROOT / "pipeline_config.yaml", tmp_path / "pipeline_config.yaml")
    code = main(
        [
            "init-data",
            str(data),
            "--output",
            str(project / "cfg.yaml"),
            "--base",
            str(tmp_path / "pipeline_config.yaml"),
        ]
    )
    assert code == 2 and "may not leave the project folder" in capsys.readouterr().err
    # An existing overlay is not overwritten without --force.
    _project(project)
    (project / "cfg.yaml").write_text("keep me\n")
    assert main(["init-data", str(data), "--output", str(project / "cfg.yaml")]) == 2
    assert "pass --force" in capsys.readouterr().err
    assert (project / "cfg.yaml").read_text() == "keep me\n"
    # JSON lines: ingestion cannot read them; the message says how to convert.
    lines = tmp_path / "events.jsonl"
    lines.write_text('{"user": 1, "item": 2}\n')
    assert main(["init-data", str(lines)]) == 2
    assert "JSON lines are not read by ingestion" in capsys.readouterr().err
