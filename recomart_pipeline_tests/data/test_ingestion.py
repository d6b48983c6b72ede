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
from recomart_pipeline.tasks import ingestion
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


# --- describing real files: one test per key, and the messages that name it -------------------

KEY = "tasks.ingestion.config.source.interactions"


def _one_source(path: Path | str, **block: object) -> dict[str, object]:
    """Interactions from ``path`` described by ``block``; items and users derived."""
    return {"source": {"interactions": {"path": str(path), **block}, "items": None, "users": None}}


def _raw(
    harness: TaskHarness, config: dict[str, object], table: str = "interactions"
) -> pd.DataFrame:
    _, checkpoint = harness.run("ingestion", config)
    return pd.read_parquet(checkpoint.path(table))


@pytest.mark.parametrize("written", ["tab", "TAB", "\\t", "\t"])
def test_delimiter_accepts_tab_by_name(written: str) -> None:
    source = ingestion_spec.TableSource(path="x", delimiter=written)
    assert source.delimiter == "\t"


def test_header_false_takes_the_column_names_from_config(
    harness: TaskHarness, tmp_path: Path
) -> None:
    path = tmp_path / "events.csv"
    path.write_text("u1;i1;view;2026-01-01T00:00:00Z\nu2;i2;purchase;2026-01-02T00:00:00Z\n")
    config = _one_source(
        path, delimiter=";", header=False, columns=["user_id", "item_id", "event_type", "timestamp"]
    )
    frame = _raw(harness, config)
    assert frame["user_id"].tolist() == ["u1", "u2"]  # the first line is data, not a header


@pytest.mark.parametrize(
    ("block", "words"),
    [
        ({"header": False}, "header: false needs columns"),
        ({"columns": ["a"]}, "set header: false"),
        ({"encoding": "klingon"}, "unknown encoding"),
        ({"delimiter": '""'}, "delimiter"),
        ({"timestamp": {"unit": "s", "format": "%Y"}}, "timestamp.format"),
        ({"timestamp": {"timezone": "Mars/Olympus"}}, "IANA"),
        ({"filter": [{"column": "q", "op": ">"}]}, "needs one value"),
        ({"filter": [{"column": "q", "op": "in", "value": 1}]}, "needs a list"),
        ({"filter": [{"column": "q", "op": "not_null", "value": 1}]}, "takes no value"),
        ({"filter": [{"column": "q", "op": "=~", "value": 1}]}, "op"),
        ({"constants": {"colour": "red"}}, "source.interactions.constants"),
        ({"value_mapping": {"colour": {"r": "red"}}}, "source.interactions.value_mapping"),
    ],
)
def test_config_mistakes_name_the_key(block: dict[str, object], words: str) -> None:
    with pytest.raises(ValidationError) as raised:
        ingestion_spec.Config.model_validate(_one_source("x.csv", **block))
    assert words in str(raised.value)


def test_items_cannot_have_a_timestamp() -> None:
    with pytest.raises(ValidationError, match=r"source\.items\.timestamp"):
        ingestion_spec.Config.model_validate(
            {"source": {"items": {"path": "x.csv", "timestamp": {"unit": "s"}}}}
        )


def test_encoding_reads_latin_1(harness: TaskHarness, tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_bytes(
        "user_id,item_id,event_type,timestamp\nJosé,café,view,2026-01-01T00:00:00Z\n".encode(
            "latin-1"
        )
    )
    with pytest.raises(SchemaError) as raised:  # read as utf-8 it does not decode
        harness.run("ingestion", _one_source(path))
    assert f"{KEY}.encoding" in str(raised.value)
    frame = _raw(harness, _one_source(path, encoding="latin-1"))
    assert frame[["user_id", "item_id"]].iloc[0].tolist() == ["José", "café"]


def test_wrong_column_count_names_header_and_columns(harness: TaskHarness, tmp_path: Path) -> None:
    path = tmp_path / "u.data"
    path.write_text("196\t242\t3\t881250949\n")
    config = _one_source(
        path,
        format="csv",
        delimiter="tab",
        header=False,
        columns=["user_id", "item_id", "timestamp"],  # the file has four fields
        constants={"event_type": "rating"},
    )
    with pytest.raises(SchemaError) as raised:
        harness.run("ingestion", config)
    assert f"{KEY}.header / {KEY}.columns" in str(raised.value)


def test_one_column_file_hints_at_the_delimiter(harness: TaskHarness, tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("user_id\titem_id\tevent_type\ttimestamp\nu1\ti1\tview\t2026-01-01\n")
    with pytest.raises(SchemaError) as raised:
        harness.run("ingestion", _one_source(path))
    assert f"check {KEY}.delimiter" in str(raised.value)


def test_constants_fill_a_column_the_file_lacks(harness: TaskHarness, tmp_path: Path) -> None:
    path = tmp_path / "ratings.csv"
    path.write_text("user_id,item_id,rating,timestamp\nu1,i1,4,2026-01-01T00:00:00Z\n")
    frame = _raw(harness, _one_source(path, constants={"event_type": "rating"}))
    assert frame["event_type"].tolist() == ["rating"]


def test_constants_that_clash_with_a_file_column_name_the_key(
    harness: TaskHarness, tmp_path: Path
) -> None:
    path = tmp_path / "events.csv"
    path.write_text("user_id,item_id,event_type,timestamp\nu1,i1,view,2026-01-01T00:00:00Z\n")
    with pytest.raises(SchemaError) as raised:
        harness.run("ingestion", _one_source(path, constants={"event_type": "rating"}))
    assert f"{KEY}.constants" in str(raised.value)


def test_value_mapping_replaces_listed_values_only(harness: TaskHarness, tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(
        "user_id,item_id,event_type,timestamp\n"
        "u1,i1,addtocart,2026-01-01T00:00:00Z\nu1,i1,view,2026-01-01T00:00:00Z\n"
        "u1,i1,,2026-01-01T00:00:00Z\nu1,i1,wishlist,2026-01-01T00:00:00Z\n"
    )
    config = _one_source(path, value_mapping={"event_type": {"addtocart": "add_to_cart"}})
    _, checkpoint = harness.run("ingestion", config)
    events = pq.read_table(checkpoint.path("interactions"))["event_type"].to_pylist()
    assert events == ["add_to_cart", "view", None, "wishlist"]


TIME_CASES = [
    (
        {"unit": "s"},
        ["0", "1767225605", "soon", None],
        ["1970-01-01T00:00:00Z", "2026-01-01T00:00:05Z", "soon", None],
    ),
    ({"unit": "ms"}, ["1433221332117"], ["2015-06-02T05:02:12.117Z"]),
    ({"unit": "us"}, ["1433221332117000"], ["2015-06-02T05:02:12.117Z"]),
    ({"unit": "ns"}, ["1433221332000000000"], ["2015-06-02T05:02:12Z"]),
    ({"unit": "s"}, ["99999999999999999"], ["99999999999999999"]),  # beyond 2262: kept
    (
        {},
        ["2026-07-01 12:00", "2026-07-01T12:00:00+02:00", "2026-07-01T12:00:00Z"],
        ["2026-07-01T12:00:00Z", "2026-07-01T10:00:00Z", "2026-07-01T12:00:00Z"],
    ),
    (
        {"timezone": "Europe/Berlin"},
        ["2026-07-01 12:00", "2026-01-01 12:00", "2026-07-01T12:00:00Z"],
        ["2026-07-01T10:00:00Z", "2026-01-01T11:00:00Z", "2026-07-01T12:00:00Z"],
    ),
    (
        {"format": "%d/%m/%Y %H:%M", "timezone": "America/New_York"},
        ["01/07/2026 08:00", "2026-07-01"],
        ["2026-07-01T12:00:00Z", "2026-07-01"],
    ),
    ({"format": "%Y%m%d %H%M%z"}, ["20260701 0800-0400"], ["2026-07-01T12:00:00Z"]),
]


@pytest.mark.parametrize(("spec", "written", "expected"), TIME_CASES)
def test_timestamp_converts_to_iso_utc_and_keeps_what_does_not_convert(
    spec: dict[str, str], written: list[str | None], expected: list[str | None]
) -> None:
    converted = ingestion.convert_times(
        pa.array(written, pa.string()), ingestion_spec.TimestampFormat.model_validate(spec)
    )
    assert converted.to_pylist() == expected


def test_timestamp_localizes_naive_parquet_times(harness: TaskHarness, tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    naive = pd.to_datetime(["2026-01-15 09:00", "2026-07-15 09:00"])
    frame = pd.DataFrame(
        {"user_id": ["u1", "u2"], "item_id": ["i1", "i2"], "event_type": "view", "timestamp": naive}
    )
    frame.to_parquet(path, index=False)
    raw = _raw(harness, _one_source(path, timestamp={"timezone": "Europe/London"}))
    assert raw["timestamp"].tolist() == ["2026-01-15T09:00:00Z", "2026-07-15T08:00:00Z"]


def test_filter_keeps_rows_meeting_every_condition(harness: TaskHarness, tmp_path: Path) -> None:
    path = tmp_path / "lines.csv"
    path.write_text(
        "cust,sku,when,qty,invoice,shop\n"
        "u1,i1,2026-01-01T00:00:00Z,2,A1,web\n"  # kept
        "u2,i2,2026-01-01T00:00:00Z,0,A2,web\n"  # qty not > 0
        "u3,i3,2026-01-01T00:00:00Z,-1,C3,web\n"  # qty, cancelled
        "u4,i4,2026-01-01T00:00:00Z,many,A4,web\n"  # qty not a number
        "u5,i5,2026-01-01T00:00:00Z,3,C5,web\n"  # cancelled
        "u6,i6,2026-01-01T00:00:00Z,3,A6,kiosk\n"  # shop not in list
        "u7,i7,2026-01-01T00:00:00Z,3,,web\n"  # invoice null
        "u8,i8,2026-01-01T00:00:00Z,10.5,A8,app\n"  # kept
    )
    config = _one_source(
        path,
        column_mapping={"cust": "user_id", "sku": "item_id", "when": "timestamp"},
        constants={"event_type": "purchase"},
        filter=[
            {"column": "qty", "op": ">", "value": 0},
            {"column": "invoice", "op": "not_startswith", "value": "C"},
            {"column": "shop", "op": "in", "value": ["web", "app"]},
            {"column": "invoice", "op": "not_null"},
        ],
    )
    result, checkpoint = harness.run("ingestion", config)
    frame = pd.read_parquet(checkpoint.path("interactions"))
    assert frame["user_id"].tolist() == ["u1", "u8"]
    assert result.metrics["interactions_rows_filtered"] == 6
    assert result.metrics["interactions_rows"] == 2


@pytest.mark.parametrize(
    ("condition", "kept"),
    [
        ({"op": "==", "value": "b"}, ["b"]),
        ({"op": "!=", "value": "b"}, ["a", "10"]),
        ({"op": "<", "value": "b"}, ["a", "10"]),  # text order
        ({"op": ">=", "value": 10}, ["10"]),  # numeric: letters fail
        ({"op": "<=", "value": 10.0}, ["10"]),
        ({"op": "not_in", "value": ["a", 10]}, ["b"]),
        ({"op": "startswith", "value": "1"}, ["10"]),
        ({"op": "is_null"}, [None, None]),
    ],
)
def test_filter_ops(
    harness: TaskHarness, tmp_path: Path, condition: dict[str, object], kept: list[str | None]
) -> None:
    path = tmp_path / "events.csv"
    path.write_text(
        "user_id,item_id,event_type,timestamp,tag\n"
        "u,a,view,2026-01-01T00:00:00Z,a\nu,b,view,2026-01-01T00:00:00Z,b\n"
        "u,10,view,2026-01-01T00:00:00Z,10\nu,n,view,2026-01-01T00:00:00Z,\n"
        "u,m,view,2026-01-01T00:00:00Z,\n"
    )
    frame = _raw(harness, _one_source(path, filter=[{"column": "tag", **condition}]))
    expected = [None if k is None else k for k in kept]
    if condition["op"] == "is_null":
        assert frame["item_id"].tolist() == ["n", "m"]
    else:
        assert frame["item_id"].tolist() == expected


def test_filter_on_an_absent_column_names_the_key(harness: TaskHarness, tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("user_id,item_id,event_type,timestamp\nu1,i1,view,2026-01-01T00:00:00Z\n")
    with pytest.raises(SchemaError) as raised:
        harness.run(
            "ingestion", _one_source(path, filter=[{"column": "Quantity", "op": ">", "value": 0}])
        )
    assert f"{KEY}.filter" in str(raised.value) and "Quantity" in str(raised.value)


def test_null_items_and_users_are_derived_with_catalogue_columns(
    harness: TaskHarness, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "events.csv"
    path.write_text(
        "user_id,item_id,event_type,timestamp,name,cost,region\n"
        "u1,i1,view,2026-01-01T00:00:00Z,Lamp,9.5,north\n"
        "u2,i1,view,2026-01-01T00:00:00Z,Lamp (new),9.9,south\n"
        "u1,i2,view,2026-01-01T00:00:00Z,Desk,120,north\n"
        ",,view,2026-01-01T00:00:00Z,,,\n"
    )
    config = _one_source(path, column_mapping={"name": "title", "cost": "price"})
    with caplog.at_level("INFO"):
        result, checkpoint = harness.run("ingestion", config, run_id="derive")
    items = pq.read_table(checkpoint.path("items"))
    assert items.to_pydict() == {
        "item_id": ["i1", "i2"],
        "category": [None, None],
        "price": ["9.5", "120"],
        "title": ["Lamp", "Desk"],
    }
    users = pq.read_table(checkpoint.path("users"))
    assert users.to_pydict() == {
        "user_id": ["u1", "u2"],
        "signup_date": [None, None],
        "region": ["north", "south"],
    }
    derived = [r for r in caplog.records if "derived from the interactions" in r.getMessage()]
    assert len(derived) == 2 and all(r.levelname == "INFO" for r in derived)
    assert result.metadata["items_source"] == "derived from interactions"
    assert result.metrics["items_rows"] == 2 and result.metrics["items_files"] == 0


def test_derived_tables_do_not_depend_on_the_chunking(harness: TaskHarness, tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    lines = [f"u{k % 37},i{k % 53},view,2026-01-01T00:00:{k % 60:02d}Z" for k in range(2000)]
    path.write_text("user_id,item_id,event_type,timestamp\n" + "\n".join(lines) + "\n")
    _, whole = harness.run("ingestion", {**_one_source(path), "chunk_rows": 100_000}, run_id="a")
    _, chunked = harness.run("ingestion", {**_one_source(path), "chunk_rows": 100}, run_id="b")
    assert artifact_hashes(whole) == artifact_hashes(chunked)
    assert pd.read_parquet(whole.path("items"))["item_id"].tolist()[:3] == ["i0", "i1", "i2"]


def test_default_items_and_users_are_derived_when_their_files_are_absent(
    harness: TaskHarness, small_dataset: dict[str, Path]
) -> None:
    target = harness.project_root / "data"
    target.mkdir()
    (target / "interactions.csv").write_bytes(small_dataset["interactions"].read_bytes())
    result, _ = harness.run("ingestion", {})
    assert (
        result.metadata["items_source"]
        == result.metadata["users_source"]
        == ("derived from interactions")
    )
    assert result.metrics["interactions_rows"] == 6000


def test_a_configured_items_path_that_does_not_exist_is_an_error(
    harness: TaskHarness, small_dataset: dict[str, Path], tmp_path: Path
) -> None:
    missing = tmp_path / "catalogue.csv"
    with pytest.raises(SourceNotFoundError) as raised:
        harness.run("ingestion", sources({**small_dataset, "items": missing}))
    message = str(raised.value)
    assert "tasks.ingestion.config.source.items" in message and str(missing) in message
    assert "set tasks.ingestion.config.source.items to null" in message
    assert "generate-data" not in message and "synthetic" not in message


def test_close_matches_are_checked_against_the_values(harness: TaskHarness, tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(
        "user_id,item_id,evt_type,event_count,timestamp\n"
        "u1,i1,view,3,2026-01-01T00:00:00Z\nu1,i2,purchase,1,2026-01-01T00:00:00Z\n"
    )
    with pytest.raises(SchemaError) as raised:
        harness.run("ingestion", _one_source(path))
    message = str(raised.value)
    assert "event_type: ['evt_type']" in message  # event_count is close by name, not by value
    assert f"{KEY}.column_mapping, e.g. {{evt_type: event_type}}" in message


def test_a_time_column_that_does_not_parse_is_not_proposed(
    harness: TaskHarness, tmp_path: Path
) -> None:
    path = tmp_path / "events.csv"
    path.write_text("user_id,item_id,event_type,timestamps_seen\nu1,i1,view,7\n")
    with pytest.raises(SchemaError) as raised:
        harness.run("ingestion", _one_source(path))
    assert "timestamp: no close match whose values fit" in str(raised.value)
    path.write_text("user_id,item_id,event_type,time_stamp\nu1,i1,view,1767225605\n")
    with pytest.raises(SchemaError) as raised:
        harness.run("ingestion", _one_source(path, timestamp={"unit": "s"}))
    assert "timestamp: ['time_stamp']" in str(raised.value)


def test_watched_sources_skip_derived_tables() -> None:
    config = ingestion_spec.Config.model_validate(_one_source("data/x.csv"))
    assert ingestion_spec.watched_sources(config) == ["data/x.csv"]
