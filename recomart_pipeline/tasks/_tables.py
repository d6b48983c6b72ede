"""Table layouts and Parquet helpers shared by the data tasks (not a task itself).

Two layouts exist. The *raw* layout, written by ingestion, carries every column as nullable
text, so faulty values ("five", "not-a-date") survive until validation can report them. The
*typed* layout, written by validation and later tasks, has real types (see the schemas
below).

Outputs are written deterministically — no pandas metadata, fixed row-group size, combined
chunks — so the same input always gives byte-identical files and content hashes, however
the input was chunked on the way.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import scipy.sparse as sp

from recomart_pipeline.contract.closing import ClosedOnExit
from recomart_pipeline.tasks.specs.tables import TableLayout

TIMESTAMP = pa.timestamp("ns", tz="UTC")
TYPED_SCHEMAS: dict[str, pa.Schema] = {
    "interactions": pa.schema(
        [
            ("user_id", pa.string()),
            ("item_id", pa.string()),
            ("event_type", pa.string()),
            ("timestamp", TIMESTAMP),
            ("rating", pa.float32()),
            # How many events the row stands for (ingestion's aggregate); null means 1.
            ("weight", pa.float32()),
        ]
    ),
    "items": pa.schema(
        [
            ("item_id", pa.string()),
            ("category", pa.string()),
            ("price", pa.float64()),
            ("title", pa.string()),
        ]
    ),
    "users": pa.schema(
        [("user_id", pa.string()), ("signup_date", TIMESTAMP), ("region", pa.string())]
    ),
}


def raw_schema(layout: TableLayout) -> pa.Schema:
    """Raw tables keep every column as text: dirty values survive for validation to judge."""
    return pa.schema([pa.field(name, pa.string()) for name in layout.columns])


ROW_GROUP_ROWS = 1_000_000
COMPRESSION = "zstd"
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def to_text(array: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Any column as text; tz-aware timestamps become ISO-8601 UTC with a ``Z``."""
    kind = array.type
    if pa.types.is_dictionary(kind):
        return to_text(array.cast(kind.value_type))
    if pa.types.is_timestamp(kind) and kind.tz is not None:
        naive = array.cast(pa.timestamp(kind.unit)).cast(pa.string())
        iso = pc.replace_substring(naive, " ", "T", max_replacements=1)
        return pc.binary_join_element_wise(iso, "Z", "")
    return array if kind == pa.string() else array.cast(pa.string())


def strip_metadata(table: pa.Table) -> pa.Table:
    """Drop schema metadata (pandas writes versions and index info there)."""
    return table.replace_schema_metadata(None)


# Typed columns a frame may lack (null in the table): a frame built without aggregation
# (a hand-made upstream, an older checkpoint) has no weight, which means one event a row.
OPTIONAL_TYPED = ("weight",)


def frame_to_table(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """A pandas frame as an Arrow table of exactly ``schema``, without the index."""
    absent = [c for c in OPTIONAL_TYPED if c in schema.names and c not in frame.columns]
    if absent:
        frame = frame.assign(**dict.fromkeys(absent, np.nan))
    table = pa.Table.from_pandas(frame[schema.names], preserve_index=False)
    return strip_metadata(table).cast(schema)


def _textual(kind: pa.DataType) -> bool:
    if pa.types.is_dictionary(kind):
        return _textual(kind.value_type)
    return (
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_string_view(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
        or pa.types.is_binary_view(kind)
    )


def statistics_columns(schema: pa.Schema) -> list[str] | bool:
    """The columns whose min/max statistics are worth writing: all but text and binary.

    Rows are never sorted by an id, so a string column's min/max prunes nothing for any
    reader, yet computing them is ~1 s of a 20M-row file's ~4 s single-threaded write.
    Numeric and timestamp statistics stay (cheap, and a reader may prune on them).
    """
    kept = [field.name for field in schema if not _textual(field.type)]
    return kept or False


def dictionary_columns(schema: pa.Schema) -> list[str] | bool:
    """The columns worth dictionary-encoding: text only.

    Ids and event types repeat within a row group, so a dictionary shrinks them. Timestamps,
    scores and index codes are mostly distinct: pyarrow builds a dictionary for each of them
    anyway and falls back to plain encoding once it overflows, and that attempt was the
    costliest part of writing them (20M-row files, 2 cores: validation's output 6.4 → 5.6 s,
    features' train events 3.8 → 2.4 s, and every file measured came out smaller).
    """
    kept = [field.name for field in schema if _textual(field.type)]
    return kept or False


def writer_options(schema: pa.Schema) -> dict[str, Any]:
    """pyarrow ``ParquetWriter`` settings of every table the tasks write (see above)."""
    return {
        "compression": COMPRESSION,
        "write_statistics": statistics_columns(schema),
        "use_dictionary": dictionary_columns(schema),
    }


class ParquetSink(ClosedOnExit):
    """Writes a Parquet file incrementally in fixed-size row groups.

    Row groups do not follow the incoming batch boundaries, so the file's bytes depend only
    on its rows — reading the source in 1,000-row or 1,000,000-row chunks gives one hash.
    """

    def __init__(self, path: Path, schema: pa.Schema, row_group_rows: int = ROW_GROUP_ROWS):
        self.path = path
        self.schema = schema
        self.rows = 0
        self._row_group_rows = row_group_rows
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._writer = pq.ParquetWriter(path, schema, **writer_options(schema))
        # Row groups are encoded and written on a thread of their own while the caller makes
        # the next one: pyarrow's writer is single-threaded and releases the GIL, and it was
        # ~3 s of each 20M-row output, spent with the query that feeds it waiting. One group
        # at most is in flight, in order, so memory holds two and the bytes are unchanged.
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="parquet-sink")
        self._in_flight: Future[None] | None = None
        self._failed = False

    def write(self, data: pa.Table | pa.RecordBatch) -> None:
        if data.num_rows == 0:
            return
        table = data if isinstance(data, pa.Table) else pa.Table.from_batches([data])
        self._pending.append(strip_metadata(table).cast(self.schema))
        self._pending_rows += table.num_rows
        self.rows += table.num_rows
        while self._pending_rows >= self._row_group_rows:
            pending = pa.concat_tables(self._pending)
            self._flush(pending.slice(0, self._row_group_rows))
            rest = pending.slice(self._row_group_rows)
            self._pending, self._pending_rows = [rest], rest.num_rows

    def _flush(self, table: pa.Table) -> None:
        group = table.combine_chunks()
        self._finish_in_flight()
        self._in_flight = self._thread.submit(
            self._writer.write_table, group, row_group_size=self._row_group_rows
        )

    def _finish_in_flight(self) -> None:
        """Wait for the row group being written; its failure is raised here, in the caller."""
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is not None:
            try:
                in_flight.result()
            except BaseException:
                self._failed = True  # the file is lost: close() writes nothing more
                raise

    def close(self) -> None:
        try:
            if self._pending_rows and not self._failed:
                self._flush(pa.concat_tables(self._pending))
            self._finish_in_flight()
        finally:
            self._pending, self._pending_rows = [], 0
            self._thread.shutdown(wait=True)
            self._writer.close()


def write_parquet(path: Path, table: pa.Table) -> Path:
    """Write a whole table deterministically (see ParquetSink)."""
    with ParquetSink(path, table.schema) as sink:
        sink.write(table)
    return path


# The evaluation protocol travels with the held-out tables (preparation -> features ->
# evaluation) in their Parquet footers, so evaluation can name it without reading the
# preparation task's config or depending on it.
SPLIT_KEY = b"recomart.split"


def write_frame(
    path: Path, frame: pd.DataFrame, schema: pa.Schema, *, split: dict[str, Any] | None = None
) -> Path:
    """Write ``frame`` in ``schema``; ``split`` (the protocol that made it) in the footer."""
    table = frame_to_table(frame, schema)
    return write_parquet(
        path, table.replace_schema_metadata(with_split(table.schema, split).metadata)
    )


def with_split(schema: pa.Schema, split: dict[str, Any] | None) -> pa.Schema:
    """``schema`` carrying ``split`` (the protocol that made the table) for its footer."""
    if split is None:
        return schema
    return schema.with_metadata({**(schema.metadata or {}), SPLIT_KEY: json.dumps(split).encode()})


def split_of(path: Path) -> dict[str, Any] | None:
    """The split protocol recorded in a table's footer (None: an older or unsplit table)."""
    raw = (pq.read_schema(path).metadata or {}).get(SPLIT_KEY)
    if raw is None:
        return None
    record = json.loads(raw)
    return record if isinstance(record, dict) else None


def read_categorical(path: Path, categorical: Iterable[str]) -> pa.Table:
    """Read a Parquet file with the ``categorical`` string columns dictionary-encoded.

    Encoding after the read gives one dictionary per column; ``read_dictionary=`` gives one
    per row group, which pandas then has to unify — several times slower at 20M rows.
    """
    table = pq.read_table(path)
    for name in categorical:
        position = table.schema.get_field_index(name)
        table = table.set_column(position, name, pc.dictionary_encode(table[name]))
    return table


def iter_text_batches(path: Path, batch_rows: int, columns: Iterable[str]) -> Iterable[pa.Table]:
    """Read ``columns`` of a Parquet file in batches, every column as text."""
    names = list(columns)
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=names):
        yield pa.table({name: to_text(batch.column(name)) for name in names})


def save_npz(path: Path, matrix: sp.csr_matrix) -> Path:
    """``scipy.sparse.save_npz(compressed=False)`` without numpy's wall-clock zip stamps.

    The file loads with ``scipy.sparse.load_npz``; identical matrices give identical bytes.
    Entries are stored uncompressed: deflating 20M non-zeros costs more time than it saves.
    """
    arrays = {
        "indices": matrix.indices,
        "indptr": matrix.indptr,
        "format": np.asarray(matrix.format.encode("ascii")),
        "shape": np.asarray(matrix.shape),
        "data": matrix.data,
    }
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
            with archive.open(info, "w", force_zip64=True) as handle:
                np.lib.format.write_array(handle, np.asanyarray(array), allow_pickle=False)
    return path
