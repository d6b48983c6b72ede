"""The shared Parquet writer (``ParquetSink``): which columns carry min/max statistics.

String statistics are left out (they cost ~1 s per 20M-row file and prune nothing: rows
are never sorted by an id); numeric and timestamp statistics stay for readers that prune.
The rows read back unchanged, and the same rows still give the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from recomart_pipeline.tasks._tables import (
    TYPED_SCHEMAS,
    ParquetSink,
    raw_schema,
    statistics_columns,
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


def test_typed_file_keeps_numeric_statistics_only(tmp_path: Path) -> None:
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
