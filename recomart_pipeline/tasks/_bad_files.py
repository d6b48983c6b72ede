"""Bad source files: what is wrong with one, where, and how to fix it, never echoing its bytes.

Ingestion's parser (pyarrow) refuses a bad file with a message that rarely names the file,
the line or the column, and may quote binary bytes. Only after it refused is the file walked
again here, with bounded memory, to find the first fault and say it in the config's terms
(the keys to change), with every control character escaped. Kept apart from ingestion so
the reading path stays readable and this diagnosis can grow without touching it.
"""

from __future__ import annotations

import contextlib
import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from recomart_pipeline.contract.errors import SchemaError
from recomart_pipeline.tasks._tables import to_text
from recomart_pipeline.tasks.specs.ingestion import TableSource, printable

CSV_BYTES_PER_ROW = 64  # turns chunk_rows into a CSV block size
# Bad files: how much of them is looked at, and how much of a message may quote.
READ_BYTES = 1 << 20  # read at a time while a refused CSV is searched for its first fault
SNIFF_BYTES = 1 << 16  # head of a CSV checked for binary content before it is parsed
ARROW_CHARS = 300  # of a parser's own message
PATH_CHARS = 500
EXCERPT_CHARS = 40  # of a row or a column name
LISTED_FILES = 20  # bad files named in one error (the log names every one)
EXACT_FLOAT = 2**53  # float ids from here on may not be the integers they were written as
UTF16_MARKS = (b"\xff\xfe", b"\xfe\xff")
SIGNATURES = {
    b"PAR1": ("a Parquet file", "set {key}.format: parquet (or name the file .parquet)"),
    b"\x1f\x8b": ("gzip-compressed", "name the file .csv.gz so that it is decompressed"),
    b"PK\x03\x04": ("a zip archive", "unpack the archive and point {key}.path at its CSV"),
}


def block_bytes(chunk_rows: int) -> int:
    """The CSV bytes pyarrow parses at once; no record (line) may be longer."""
    return max(chunk_rows * CSV_BYTES_PER_ROW, 1 << 16)


class BadFile(Exception):
    """One source file that cannot be read as configured: what is wrong, naming the file
    (and the line, row or column where that is known), and how to fix it."""

    def __init__(self, path: Path, message: str, hint: str) -> None:
        super().__init__(printable(message))
        self.path = path
        self.message = printable(message)
        self.hint = printable(hint)


class Fault(Exception):
    """Where a refused CSV first goes wrong (raised while its lines are walked)."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass(frozen=True)
class Keys:
    """The config keys a message about one source points at."""

    source: str  # tasks.<name>.config.source.<table>
    task: str  # tasks.<name>.config

    def parse_hint(self) -> str:
        return (
            f"check {self.source}.delimiter, {self.source}.header / {self.source}.columns "
            f"(names in file order) and {self.source}.encoding"
        )


def shown_path(path: Path) -> str:
    return printable(str(path), PATH_CHARS)


def _ascii_newlines(encoding: str) -> bool:
    """Whether lines of this encoding can be split at the byte b'\\n' (utf-16 cannot)."""
    return "\n,;|\t".encode(encoding, errors="replace") == b"\n,;|\t"


def _open_stream(path: Path) -> Any:
    """The file's bytes, decompressed as pyarrow's CSV reader would (by suffix)."""
    return pa.input_stream(str(path), compression="detect")


class _Lines:
    """The decoded lines of a CSV, walked with bounded memory; ``number`` is the line just
    given (1 = first line). Raises Fault at an over-long line, a NUL byte or a byte the
    encoding does not know."""

    def __init__(self, stream: Any, limit: int, encoding: str, keys: Keys) -> None:
        self.stream = stream
        self.limit = limit
        self.encoding = encoding
        self.keys = keys
        self.number = 0

    def __iter__(self) -> Iterator[str]:
        buffer = bytearray()
        while chunk := self.stream.read(READ_BYTES):
            start = 0
            while (cut := chunk.find(b"\n", start)) >= 0:
                buffer += chunk[start:cut]
                yield self._line(bytes(buffer))
                buffer.clear()
                start = cut + 1
            buffer += chunk[start:]
            if len(buffer) > self.limit:
                self.number += 1
                raise self._too_long()
        if buffer:
            yield self._line(bytes(buffer))

    def _line(self, raw: bytes) -> str:
        self.number += 1
        if len(raw) > self.limit:
            raise self._too_long()
        if b"\x00" in raw:
            raise Fault(
                f"line {self.number} holds binary data (a NUL byte at byte "
                f"{raw.index(0) + 1}), not CSV text",
                f"check {self.keys.source}.path (a stray binary file?) and "
                f"{self.keys.source}.format",
            )
        try:
            return raw.decode(self.encoding) + "\n"
        except UnicodeDecodeError as exc:
            raise Fault(
                f"line {self.number}, byte {exc.start + 1}: 0x{raw[exc.start]:02x} is not "
                f"valid {self.encoding} text",
                f"set {self.keys.source}.encoding to the file's encoding, e.g. latin-1 or "
                "cp1252 for Western European text",
            ) from None

    def _too_long(self) -> Fault:
        return Fault(
            f"line {self.number} is longer than {self.limit:,} bytes without a line break",
            "is it a CSV file with one record per line? If its records really are that long, "
            f"raise {self.keys.task}.chunk_rows (each read holds chunk_rows × "
            f"{CSV_BYTES_PER_ROW} bytes)",
        )


def _csv_fault(path: Path, source: TableSource, chunk_rows: int, keys: Keys) -> Fault | None:
    """The first place a CSV that pyarrow refused goes wrong, in the user's terms (line
    numbers count physical lines from 1, the header included); None if it is not found.

    Runs only after a failure, so the common path pays nothing for it. A separator of
    several characters is read by pandas, whose own message names the line.
    """
    if not _ascii_newlines(source.encoding) or len(source.delimiter) > 1:
        return None
    expected = None if source.header else len(source.columns or [])
    ended = 0  # the line the last whole record ended on
    with _open_stream(path) as stream:
        lines = _Lines(stream, block_bytes(chunk_rows), source.encoding, keys)
        try:
            for record in csv.reader(lines, delimiter=source.delimiter):
                ended = lines.number
                if not record:
                    continue  # an empty line, skipped by the reader too
                if expected is None:
                    expected = len(record)
                elif len(record) != expected:
                    what = "the header has" if source.header else f"{keys.source}.columns names"
                    excerpt = printable(source.delimiter.join(record), EXCERPT_CHARS)
                    return Fault(
                        f"line {lines.number} has {len(record)} fields where {what} "
                        f"{expected} ('{excerpt}')",
                        f"a field holding the delimiter must be quoted; else {keys.parse_hint()}",
                    )
        except Fault as fault:
            return fault
        except csv.Error as exc:
            return Fault(
                f"the record starting on line {ended + 1} runs on to line {lines.number} "
                f"({exc}): an unclosed quote?",
                f'close or escape the quote ("" inside a quoted field); else {keys.parse_hint()}',
            )
    return None


def sniff(path: Path, source: TableSource, keys: Keys) -> None:
    """Refuse what is plainly not CSV text before the parser sees it (and echoes it)."""
    if path.stat().st_size == 0:
        raise BadFile(
            path,
            f"{shown_path(path)} is empty (0 bytes): no header line, no rows",
            f"remove the file or fix {keys.source}.path",
        )
    with _open_stream(path) as stream:
        head = stream.read(SNIFF_BYTES)
    for signature, (what, fix) in SIGNATURES.items():
        if head.startswith(signature):
            raise BadFile(
                path,
                f"{shown_path(path)} is {what}, not CSV text",
                fix.format(key=keys.source),
            )
    if _ascii_newlines(source.encoding) and head.startswith(UTF16_MARKS):
        raise BadFile(
            path,
            f"{shown_path(path)} is UTF-16 text (it starts with a UTF-16 byte-order mark)",
            f"set {keys.source}.encoding: utf-16",
        )
    if _ascii_newlines(source.encoding) and b"\x00" in head:
        at = head.index(0)
        line = head.count(b"\n", 0, at) + 1
        raise BadFile(
            path,
            f"{shown_path(path)} holds binary data, not CSV text: a NUL byte on line {line}",
            f"check {keys.source}.path (a stray binary file?) and {keys.source}.format",
        )


def csv_bad_file(
    path: Path, source: TableSource, chunk_rows: int, keys: Keys, exc: BaseException
) -> BadFile:
    """A CSV the parser refused, described by where it first goes wrong."""
    try:
        fault = _csv_fault(path, source, chunk_rows, keys)
    except READ_ERRORS:
        fault = None  # e.g. a .gz that is not gzip: the parser's own reason says so
    if fault is not None:
        return BadFile(path, f"{shown_path(path)}: {fault.message}", fault.hint)
    if "Empty CSV file" in str(exc):
        return BadFile(
            path,
            f"{shown_path(path)} holds no text: no header line, no rows",
            f"remove the file or fix {keys.source}.path",
        )
    return BadFile(
        path,
        f"{shown_path(path)} does not read as the CSV the config describes: "
        f"{printable(str(exc), ARROW_CHARS)}",
        keys.parse_hint(),
    )


NESTED = (
    pa.types.is_list,
    pa.types.is_large_list,
    pa.types.is_fixed_size_list,
    pa.types.is_struct,
    pa.types.is_map,
    pa.types.is_union,
)


def check_parquet_types(path: Path, mapping: dict[str, str], keys: Keys) -> None:
    """Columns whose Parquet type cannot become the canonical text are refused by name."""
    schema = pq.ParquetFile(path).schema_arrow
    for canonical, column in mapping.items():
        kind = schema.field(schema.get_field_index(column)).type
        if pa.types.is_dictionary(kind):
            kind = kind.value_type
        shown = f"column '{printable(column, EXCERPT_CHARS)}'" + (
            f" (read as {canonical})" if column != canonical else ""
        )
        if any(test(kind) for test in NESTED):
            raise BadFile(
                path,
                f"{shown_path(path)}: {shown} holds {kind} values, not single values",
                f"write {column} as one value per row, or map another column in "
                f"{keys.source}.column_mapping",
            )


def float_id_columns(path: Path, mapping: dict[str, str]) -> dict[str, str]:
    """Id columns a Parquet file stores as floats (pandas does so for integer ids with gaps)."""
    schema = pq.ParquetFile(path).schema_arrow
    return {
        canonical: column
        for canonical, column in mapping.items()
        if canonical.endswith("_id")
        and pa.types.is_floating(schema.field(schema.get_field_index(column)).type)
    }


def check_whole_ids(
    path: Path, batch: pa.RecordBatch, float_ids: dict[str, str], first_row: int
) -> None:
    """Float ids are read as whole numbers (12.0 is id '12'); one that is not names its row."""
    for canonical, column in float_ids.items():
        values = batch.column(column).to_numpy(zero_copy_only=False).astype(np.float64)
        finite = np.isfinite(values)
        broken = np.isinf(values) | (
            finite & ((values != np.trunc(values)) | (np.abs(values) >= EXACT_FLOAT))
        )
        if broken.any():
            row = int(np.flatnonzero(broken)[0])
            shown = f"column '{printable(column, EXCERPT_CHARS)}'" + (
                f" (read as {canonical})" if column != canonical else ""
            )
            raise BadFile(
                path,
                f"{shown_path(path)}: row {first_row + row + 1:,}, {shown} is {float(values[row])!r}: "
                "ids must be text or whole numbers",
                f"write {column} as an integer or string column",
            )


def whole_number_ids(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Float ids as integers (checked whole by check_whole_ids); NaN is a missing id."""
    if not pa.types.is_floating(values.type):
        return values
    missing = pc.fill_null(pc.is_nan(values), True)
    return pc.if_else(missing, pa.scalar(None, values.type), values).cast(pa.int64())


def _binary_row(values: pa.Array | pa.ChunkedArray) -> int | None:
    """The first row of a bytes column that is not UTF-8 text."""
    for row, value in enumerate(values.to_pylist()):
        if isinstance(value, bytes):
            try:
                value.decode("utf-8")
            except UnicodeDecodeError:
                return row
    return None


def cell_bad_file(path: Path, batch: pa.RecordBatch, first_row: int, names: Any) -> BadFile:
    """A value that cannot become text, found in the raw batch: row, column and why."""
    for canonical, column in names.mapping.items():
        values = batch.column(column)
        try:
            to_text(values)
        except CONVERSION_ERRORS as exc:
            shown = f"column '{printable(column, EXCERPT_CHARS)}'" + (
                f" (read as {canonical})" if column != canonical else ""
            )
            row = _binary_row(values) if pa.types.is_binary(values.type) else None
            if row is not None:
                return BadFile(
                    path,
                    f"{shown_path(path)}: row {first_row + row + 1:,}, {shown} holds bytes that "
                    "are not UTF-8 text",
                    f"write {column} as UTF-8 text (a string column) in the Parquet file",
                )
            return BadFile(
                path,
                f"{shown_path(path)}: {shown} of type {values.type} cannot be read as text "
                f"({printable(str(exc), ARROW_CHARS)})",
                f"write {column} as a string or number column in the Parquet file",
            )
    return BadFile(
        path,
        f"{shown_path(path)}: rows after {first_row:,} cannot be converted",
        "check the file's column types",
    )


@dataclass
class FileRead:
    """What reading one file produced: rows before the filter, rows it dropped, its schema."""

    rows: int = 0
    filtered: int = 0
    schema: dict[str, str] = field(default_factory=dict)


READ_ERRORS = (pa.ArrowException, OSError, UnicodeError, csv.Error)
# What converting a batch's values can raise: a value of a type that cannot become text.
CONVERSION_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError)


@contextlib.contextmanager
def file_problems(
    path: Path, file_format: str, source: TableSource, chunk_rows: int, keys: Keys, done: FileRead
) -> Iterator[None]:
    """Whatever goes wrong reading ``path`` becomes a BadFile naming it, escaped."""
    try:
        yield
    except (BadFile, MemoryError):
        raise
    except SchemaError as exc:
        raise BadFile(path, str(exc.args[0]), exc.hint or keys.parse_hint()) from exc
    except READ_ERRORS as exc:
        if file_format == "csv":
            raise csv_bad_file(path, source, chunk_rows, keys, exc) from exc
        reason = printable(str(exc), ARROW_CHARS)
        where = f"rows after {done.rows:,}" if done.rows else "it"
        raise BadFile(
            path,
            f"{shown_path(path)} is not a readable Parquet file: {where} cannot be read ({reason})",
            f"check {keys.source}.path and {keys.source}.format; re-export the file if it was "
            "cut short",
        ) from exc
