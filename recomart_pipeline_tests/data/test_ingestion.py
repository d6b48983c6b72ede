"""Ingestion: sources (file, directory, glob, URL), column mapping, chunking and errors."""

from __future__ import annotations

import functools
import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from recomart_pipeline.contract.errors import (
    SchemaError,
    SourceConnectionError,
    SourceNotFoundError,
)
from recomart_pipeline.runtime.artifacts import ArtifactStore
from recomart_pipeline.tasks._tables import raw_schema
from recomart_pipeline.tasks.specs import ingestion as ingestion_spec
from recomart_pipeline.tasks.specs.tables import TABLES
from recomart_pipeline_tests.data.helpers import REPO_ROOT, TaskHarness, artifact_hashes, sources


def test_defaults_read_the_bundled_sample(tmp_path: Path) -> None:
    harness = TaskHarness(ArtifactStore(tmp_path / "storage"), REPO_ROOT)
    result, checkpoint = harness.run("ingestion")
    assert result.metrics["interactions_rows"] == 50_000
    assert result.metrics["items_rows"] == 400
    assert result.metrics["users_rows"] == 1_000
    assert result.metadata["interactions_source"] == str(REPO_ROOT / "data" / "interactions.csv")
    for table, layout in TABLES.items():
        assert pq.read_schema(checkpoint.path(table)) == raw_schema(layout)


def test_dirty_values_survive_as_text(harness: TaskHarness, small_dataset: dict[str, Path]) -> None:
    _, checkpoint = harness.run("ingestion", sources(small_dataset))
    raw = pd.read_parquet(checkpoint.path("interactions"))
    source = pd.read_csv(small_dataset["interactions"], dtype=str)
    assert len(raw) == len(source) == 6000
    assert (raw["rating"] == "five").sum() == (source["rating"] == "five").sum() > 0
    assert (raw["timestamp"] == "not-a-date").sum() > 0
    assert raw["user_id"].isna().sum() == source["user_id"].isna().sum() > 0


def test_column_mapping_renames_source_columns(harness: TaskHarness, tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("uid,pid,action,stars,when,extra\nu1,i1,rating,4,2026-01-01T00:00:00Z,x\n")
    config = sources({"items": path, "users": path})
    config["source"]["interactions"] = {
        "path": str(path),
        "column_mapping": {
            "uid": "user_id",
            "pid": "item_id",
            "action": "event_type",
            "stars": "rating",
            "when": "timestamp",
        },
    }
    config["source"]["items"] = {"path": str(path), "column_mapping": {"pid": "item_id"}}
    config["source"]["users"] = {"path": str(path), "column_mapping": {"uid": "user_id"}}
    _, checkpoint = harness.run("ingestion", config)
    frame = pd.read_parquet(checkpoint.path("interactions"))
    assert list(frame.columns) == list(TABLES["interactions"].columns)
    assert frame.iloc[0].to_dict() == {
        "user_id": "u1",
        "item_id": "i1",
        "event_type": "rating",
        "timestamp": "2026-01-01T00:00:00Z",
        "rating": "4",
    }
    items = pd.read_parquet(checkpoint.path("items"))
    assert items["item_id"].tolist() == ["i1"] and items["category"].isna().all()


def test_missing_required_column_names_found_columns_and_close_matches(
    harness: TaskHarness, small_dataset: dict[str, Path], tmp_path: Path
) -> None:
    path = tmp_path / "events.csv"
    path.write_text("userid,item_id,event_type,timestamp\nu1,i1,view,2026-01-01T00:00:00Z\n")
    with pytest.raises(SchemaError) as raised:
        harness.run("ingestion", sources({**small_dataset, "interactions": path}))
    message = str(raised.value)
    assert "['user_id']" in message and "userid" in message
    assert "tasks.ingestion.config.source.interactions.column_mapping" in message


def test_missing_file_names_path_and_config_key(
    harness: TaskHarness, small_dataset: dict[str, Path], tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere" / "interactions.csv"
    with pytest.raises(SourceNotFoundError) as raised:
        harness.run("ingestion", sources({**small_dataset, "interactions": missing}))
    assert str(missing) in str(raised.value)
    assert "tasks.ingestion.config.source.interactions" in str(raised.value)
    assert raised.value.error_class == "file_not_found"


def test_relative_paths_resolve_against_the_project_root(
    harness: TaskHarness, small_dataset: dict[str, Path]
) -> None:
    target = harness.project_root / "inputs"
    target.mkdir()
    for path in small_dataset.values():
        (target / path.name).write_bytes(path.read_bytes())
    config = {"source": {t: f"inputs/{p.name}" for t, p in small_dataset.items()}}
    result, _ = harness.run("ingestion", config)
    assert result.metrics["interactions_rows"] == 6000


@pytest.mark.parametrize("file_format", ["csv", "parquet"])
def test_chunked_reading_gives_the_same_bytes(
    harness: TaskHarness, small_dataset: dict[str, Path], tmp_path: Path, file_format: str
) -> None:
    paths = dict(small_dataset)
    if file_format == "parquet":
        paths["interactions"] = tmp_path / "interactions.parquet"
        table = pa.Table.from_pandas(
            pd.read_csv(small_dataset["interactions"], dtype=str), preserve_index=False
        )
        pq.write_table(table, paths["interactions"], row_group_size=777)
    _, whole = harness.run("ingestion", {**sources(paths), "chunk_rows": 1_000_000}, run_id="whole")
    _, chunked = harness.run("ingestion", {**sources(paths), "chunk_rows": 100}, run_id="chunked")
    assert artifact_hashes(whole) == artifact_hashes(chunked)


def _split_by_day(csv: Path, folder: Path) -> None:
    """Write the interactions as one CSV per day, named so sorted order is time order."""
    frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
    day = frame["timestamp"].str[:10].where(frame["timestamp"].str.match(r"\d{4}-"), "")
    # Rows with a broken timestamp stay with the day of the row before them.
    day = day.replace("", pd.NA).ffill().fillna("0000")
    folder.mkdir()
    for name, part in frame.groupby(day, sort=True):
        part.to_csv(folder / f"day={name}.csv", index=False)


def test_directory_and_glob_sources_concatenate_in_sorted_order(
    harness: TaskHarness, small_dataset: dict[str, Path], tmp_path: Path
) -> None:
    days = tmp_path / "days"
    _split_by_day(small_dataset["interactions"], days)
    assert len(list(days.iterdir())) > 30
    _, single = harness.run("ingestion", sources(small_dataset), run_id="single")
    _, folder = harness.run(
        "ingestion", sources({**small_dataset, "interactions": days}), run_id="folder"
    )
    _, globbed = harness.run(
        "ingestion", sources({**small_dataset, "interactions": f"{days}/day=*.csv"}), run_id="glob"
    )
    assert artifact_hashes(folder) == artifact_hashes(single) == artifact_hashes(globbed)
    assert folder.metrics["interactions_files"] == len(list(days.iterdir()))


def test_glob_without_matches_is_not_found(
    harness: TaskHarness, small_dataset: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(SourceNotFoundError, match="no files match"):
        harness.run("ingestion", sources({**small_dataset, "interactions": f"{tmp_path}/*.csv"}))


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real HTTP server on 127.0.0.1 serving a folder."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", folder
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_http_source_matches_the_local_file(
    harness: TaskHarness, small_dataset: dict[str, Path], http_root: tuple[str, Path]
) -> None:
    base, folder = http_root
    (folder / "interactions.csv").write_bytes(small_dataset["interactions"].read_bytes())
    _, local = harness.run("ingestion", sources(small_dataset), run_id="local")
    url = f"{base}/interactions.csv"
    result, remote = harness.run(
        "ingestion", sources({**small_dataset, "interactions": url}), run_id="remote"
    )
    assert artifact_hashes(remote) == artifact_hashes(local)
    assert result.metadata["interactions_source"] == url
    task_dir = remote.path("interactions").parent
    assert sorted(p.name for p in task_dir.iterdir()) == sorted(
        ["_result.json", "interactions.parquet", "items.parquet", "users.parquet"]
    )


def test_http_404_is_not_found(
    harness: TaskHarness, small_dataset: dict[str, Path], http_root: tuple[str, Path]
) -> None:
    url = f"{http_root[0]}/missing.csv"
    with pytest.raises(SourceNotFoundError, match="404"):
        harness.run("ingestion", sources({**small_dataset, "interactions": url}))


def test_unreachable_url_is_a_connection_error(
    harness: TaskHarness, small_dataset: dict[str, Path]
) -> None:
    with socket.socket() as probe:  # a port nobody listens on once the probe closes
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/interactions.csv"
    config = {**sources({**small_dataset, "interactions": url}), "http_timeout_seconds": 2}
    with pytest.raises(SourceConnectionError) as raised:
        harness.run("ingestion", config)
    assert url in str(raised.value)
    assert raised.value.error_class == "connection_error"


def test_typed_parquet_columns_become_text(
    harness: TaskHarness, small_dataset: dict[str, Path], tmp_path: Path
) -> None:
    path = tmp_path / "typed.parquet"
    table = pa.table(
        {
            "user_id": ["u1", "u2"],
            "item_id": pa.array(["i1", "i2"]).dictionary_encode(),
            "event_type": ["rating", "view"],
            "rating": pa.array([4.5, None], pa.float32()),
            "timestamp": pa.array([0, 1_767_225_605], pa.timestamp("s", tz="UTC")),
        }
    )
    pq.write_table(table, path)
    _, checkpoint = harness.run("ingestion", sources({**small_dataset, "interactions": path}))
    frame = pd.read_parquet(checkpoint.path("interactions"))
    assert frame["timestamp"].str.endswith("Z").all()
    parsed = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
    assert parsed.tolist() == [pd.Timestamp(0, tz="UTC"), pd.Timestamp("2026-01-01T00:00:05Z")]
    assert frame["rating"].iloc[0] == "4.5" and pd.isna(frame["rating"].iloc[1])
    assert frame["item_id"].tolist() == ["i1", "i2"]


def test_unknown_suffix_needs_an_explicit_format(
    harness: TaskHarness, small_dataset: dict[str, Path], tmp_path: Path
) -> None:
    path = tmp_path / "interactions.data"
    path.write_bytes(small_dataset["interactions"].read_bytes())
    with pytest.raises(SchemaError, match="format"):
        harness.run("ingestion", sources({**small_dataset, "interactions": path}))
    config = sources(small_dataset)
    config["source"]["interactions"] = {"path": str(path), "format": "csv"}
    result, _ = harness.run("ingestion", config)
    assert result.metrics["interactions_rows"] == 6000


def test_config_accepts_path_shorthand_and_rejects_unknown_keys() -> None:
    config = ingestion_spec.Config.model_validate({"source": {"interactions": "x.csv"}})
    assert config.source.interactions.path == "x.csv"
    assert config.source.items.path == "data/items.csv"
    with pytest.raises(ValidationError):
        ingestion_spec.Config.model_validate({"source": {"interactions": {"path": "x", "typo": 1}}})
    schema = ingestion_spec.Config.model_json_schema()
    assert "description" in schema["properties"]["chunk_rows"]
