"""The shared Parquet writer (``ParquetSink``): which columns carry min/max statistics and
which are dictionary-encoded.

String statistics are left out (they cost ~1 s per 20M-row file and prune nothing: rows
are never sorted by an id); numeric and timestamp statistics stay for readers that prune.
Only text is dictionary-encoded (numbers and timestamps are mostly distinct: the attempt
cost more than it saved). The rows read back unchanged, and the same rows still give the
same bytes.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recomart_pipeline.tasks._tables import (
    TYPED_SCHEMAS,
    ParquetSink,
    dictionary_columns,
    raw_schema,
    statistics_columns,
    writer_options,
)
from recomart_pipeline.tasks.specs.tables import TableLayout


def _interactions(rows: int) -> pa.Table:
    return pa.table(
        {
            "user_id": [f"u{i % 7}" for i in range(rows)],
            "item_id": [f"i{i % 5}" for i in range(rows)],
            "event_type": ["view"] * rows,
            "timestamp": pa.array(range(rows), pa.int64()).cast(pa.timestamp("ns", tz="UTC")),
            "rating": pa.array([float(i % 5) for i in range(rows)], pa.float32()),
            "weight": pa.array([None] * rows, pa.float32()),
        },
        schema=TYPED_SCHEMAS["interactions"],
    )


def _stats_set(path: Path) -> dict[str, bool]:
    meta = pq.ParquetFile(path).metadata
    return {
        meta.row_group(g).column(c).path_in_schema: meta.row_group(g).column(c).is_stats_set
        for g in range(meta.num_row_groups)
        for c in range(meta.num_columns)
    }


def _dictionary_encoded(path: Path) -> dict[str, bool]:
    meta = pq.ParquetFile(path).metadata
    encoded: dict[str, bool] = {}
    for g in range(meta.num_row_groups):
        for c in range(meta.num_columns):
            column = meta.row_group(g).column(c)
            has = column.dictionary_page_offset is not None
            assert encoded.setdefault(column.path_in_schema, has) == has  # alike in every group
    return encoded


def test_typed_file_statistics_for_numbers_dictionaries_for_text(tmp_path: Path) -> None:
    table = _interactions(25)
    path = tmp_path / "typed.parquet"
    with ParquetSink(path, table.schema, row_group_rows=10) as sink:
        sink.write(table)
    assert _stats_set(path) == {
        "user_id": False,
        "item_id": False,
        "event_type": False,
        "timestamp": True,
        "rating": True,
        "weight": True,
    }
    assert _dictionary_encoded(path) == {
        "user_id": True,
        "item_id": True,
        "event_type": True,
        "timestamp": False,
        "rating": False,  # five distinct values: pyarrow would have made a dictionary
        "weight": False,
    }
    assert pq.read_table(path).equals(table)
    meta = pq.ParquetFile(path).metadata.row_group(1).column(3).statistics
    assert meta.min == table["timestamp"][10].as_py() and meta.max == table["timestamp"][19].as_py()


def test_all_text_file_has_no_statistics(tmp_path: Path) -> None:
    schema = raw_schema(TableLayout(("a",), ("b",)))
    assert statistics_columns(schema) is False
    table = pa.table({"a": ["x", None, "z"], "b": ["1", "2", ""]}, schema=schema)
    path = tmp_path / "raw.parquet"
    with ParquetSink(path, schema) as sink:
        sink.write(table)
    assert not any(_stats_set(path).values())
    assert pq.read_table(path).equals(table)


def test_dictionary_text_is_textual() -> None:
    schema = pa.schema(
        [("d", pa.dictionary(pa.int32(), pa.string())), ("n", pa.int64()), ("b", pa.binary())]
    )
    assert statistics_columns(schema) == ["n"]


def test_dictionary_columns_of_schemas() -> None:
    assert (
        dictionary_columns(pa.schema([("n", pa.int32()), ("t", TYPED_SCHEMAS["users"][1].type)]))
        is False
    )
    schema = pa.schema(
        [("d", pa.dictionary(pa.int32(), pa.string())), ("n", pa.int64()), ("b", pa.binary())]
    )
    assert dictionary_columns(schema) == ["d", "b"]


def test_same_rows_same_bytes_whatever_the_batches(tmp_path: Path) -> None:
    table = _interactions(23)
    paths = []
    for batch_rows in (1, 4, 23):
        path = tmp_path / f"b{batch_rows}.parquet"
        with ParquetSink(path, table.schema, row_group_rows=10) as sink:
            for batch in table.to_batches(batch_rows):
                sink.write(batch)
        paths.append(path.read_bytes())
    assert paths[0] == paths[1] == paths[2]


def test_rows_written_behind_give_the_bytes_of_a_direct_write(tmp_path: Path) -> None:
    """Row groups are written on the sink's thread while the caller goes on: the file is
    byte for byte what pyarrow's writer gives when called directly, row group by row group."""
    table = _interactions(95)
    behind = tmp_path / "behind.parquet"
    with ParquetSink(behind, table.schema, row_group_rows=10) as sink:
        for start in range(0, 95, 7):  # batches that straddle the row groups
            sink.write(table.slice(start, 7))
    direct = tmp_path / "direct.parquet"
    with pq.ParquetWriter(direct, table.schema, **writer_options(table.schema)) as writer:
        for start in range(0, 95, 10):
            writer.write_table(table.slice(start, 10).combine_chunks(), row_group_size=10)
    assert behind.read_bytes() == direct.read_bytes()
    assert pq.ParquetFile(behind).metadata.num_row_groups == 10


class _FailingWriter:
    """pyarrow's writer whose second row group fails (a full disk, say)."""

    def __init__(self, writer: pq.ParquetWriter) -> None:
        self.writer, self.calls, self.closed = writer, 0, False

    def write_table(self, table: pa.Table, row_group_size: int) -> None:
        self.calls += 1
        if self.calls == 2:
            raise OSError("No space left on device")
        self.writer.write_table(table, row_group_size=row_group_size)

    def close(self) -> None:
        self.closed = True
        self.writer.close()


def test_a_failed_row_group_is_raised_in_the_caller_and_the_file_closed(tmp_path: Path) -> None:
    table = _interactions(40)
    sink = ParquetSink(tmp_path / "t.parquet", table.schema, row_group_rows=10)
    failing = _FailingWriter(sink._writer)
    sink._writer = failing  # type: ignore[assignment]
    with pytest.raises(OSError, match="No space left"), sink:
        for start in range(0, 40, 10):
            sink.write(table.slice(start, 10))
    assert failing.closed and failing.calls == 2  # nothing written after the failure
    assert sink._thread._shutdown  # the writer thread is gone
