"""Ingestion: copy the interactions, items and users sources into raw Parquet tables.

Each source is a CSV or Parquet file, a directory or glob of such files (read in sorted
order and concatenated, e.g. one file per day), or an http(s) URL (downloaded in streamed
chunks). The config describes the file as it is — delimiter, header or column names,
encoding — and how it becomes canonical: rows are kept by ``filter`` (on the file's own
columns), columns renamed with ``column_mapping`` and reduced to the canonical ones, values
replaced by ``value_mapping``, missing columns filled from ``constants``, and the time column
converted to ISO-8601 UTC text as ``timestamp`` describes. Items and users may be derived
from the interactions instead (ids plus any catalogue columns the interactions carry).

Ingestion does not clean: every column is written as nullable text (the *raw* layout of
``tasks/_tables.py``) so that values such as ``five`` or ``not-a-date`` reach validation
unchanged and end up in its quarantine instead of failing a type conversion here. Sources
are read in batches of ``chunk_rows`` and written incrementally, so memory stays bounded
whatever the input size.

A file that cannot be read as configured (empty, binary, a byte the encoding does not know,
a line longer than one read, a ragged row, a damaged Parquet file, ids that cannot be ids)
is a bad file, not a crash: the error names the file and, where the parser knows it, the
line, row or column, in the config's terms, with every control character escaped (a file's
bytes never reach a terminal or a log raw), and it is a ``schema_error``, which no retry can
fix. The parser's own message rarely says where; the first fault is found by walking the
file again, with bounded memory, only after it failed. With ``on_bad_file: skip`` a bad file
of a directory or glob is quarantined whole (its batches wait in a scratch file until it
has read to the end) and reported in the ``source_files`` check and the checkpoint's
``quarantined_files``; by default the task fails naming every bad file.

That is the ``pandas`` engine, the reference. On ``local`` (DuckDB) and ``spark`` (Spark SQL)
the rules after the read (filter, mapping, constants, value_mapping, the time conversion)
run as one SQL text (``recomart_pipeline.engines.ingestion``; ``_Engine`` below), after the
same checks of each file by the same code, so outputs and errors are the reference's
(``recomart_pipeline_tests/engines``). A file the SQL cannot reproduce exactly is read by
the reference; the checkpoint's ``engine`` and ``engine_fallbacks`` say which ran where.
"""

from __future__ import annotations

import contextlib
import difflib
import http.client
import re
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from recomart_pipeline.contract.errors import (
    DataValidationError,
    SchemaError,
    SourceConnectionError,
    SourceNotFoundError,
)
from recomart_pipeline.contract.files import link_or_copy
from recomart_pipeline.contract.task import CheckOutcome, TaskContext, TaskResult
from recomart_pipeline.engines.ingestion import (
    POSITION,
    CanonicalRows,
    FileRules,
    NotExact,
    TimeRule,
)
from recomart_pipeline.engines.ingestion import Condition as SqlCondition
from recomart_pipeline.engines.ingestion import Parsers as SqlParsers
from recomart_pipeline.engines.ingestion import Rows as SqlRows
from recomart_pipeline.engines.sql import SqlSession
from recomart_pipeline.runtime.circuit_breaker import CircuitBreaker, CircuitOpenError
from recomart_pipeline.tasks import schema_approval as approval
from recomart_pipeline.tasks._bad_files import (
    CONVERSION_ERRORS,
    LISTED_FILES,
    READ_ERRORS,
    BadFile,
    FileRead,
    Keys,
    block_bytes,
    cell_bad_file,
    check_parquet_types,
    check_whole_ids,
    file_problems,
    float_id_columns,
    shown_path,
    sniff,
    whole_number_ids,
)
from recomart_pipeline.tasks._engines import SQL_ENGINES, sql_session
from recomart_pipeline.tasks._tables import ParquetSink, raw_schema, to_text
from recomart_pipeline.tasks.specs.ingestion import (
    DERIVED_TABLES,
    SOURCE_FILES_CHECK,
    TIME_COLUMNS,
    Aggregate,
    Config,
    RowCondition,
    TableSource,
    TimestampFormat,
    declare_checks,
    file_format,
    is_url,
    local_files,
)
from recomart_pipeline.tasks.specs.tables import EVENT_TYPES, TABLES, WEIGHT

PROBE_BYTES = 1 << 20  # CSV block parsed to learn a file's header
DOWNLOAD_CHUNK_BYTES = 1 << 20
MISSING_HTTP_STATUSES = (404, 410)
SAMPLE_ROWS = 1_000  # values looked at before a column is proposed for a canonical one
NUMERIC_COLUMNS = ("rating", "price")
# ISO text that carries its own offset ("Z", "+01:00", "-0500") is not given a timezone.
OFFSET_PATTERN = r"(?:[zZ]|[+-]\d{2}:?\d{2})$"
# Validation's typed layout stores nanoseconds: 1677-09-21 .. 2262-04-11.
EARLIEST = pd.Timestamp("1678-01-01", tz="UTC")
LATEST = pd.Timestamp("2262-01-01", tz="UTC")
COMPARE: dict[str, Callable[..., Any]] = {
    "==": pc.equal,
    "!=": pc.not_equal,
    "<": pc.less,
    "<=": pc.less_equal,
    ">": pc.greater,
    ">=": pc.greater_equal,
}
ROW = "__row"
AMOUNT = "__amount"  # the number aggregate.weight: sum:<column> adds up, carried per row
DERIVED_URI = "derived from interactions"


@dataclass(frozen=True)
class _SourceFiles:
    """The local files of one source, its URI and its config key (for messages)."""

    key: str
    files: list[Path]
    uri: str

    @property
    def keys(self) -> Keys:
        return Keys(self.key, self.key.rsplit(".source.", 1)[0])


def _download(url: str, target: Path, timeout: float, key: str) -> Path:
    """Stream ``url`` to ``target``; network trouble becomes SourceConnectionError."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, target.open("wb") as out:
            shutil.copyfileobj(response, out, DOWNLOAD_CHUNK_BYTES)
    except urllib.error.HTTPError as exc:
        if exc.code in MISSING_HTTP_STATUSES:
            raise SourceNotFoundError(
                f"{url} returned HTTP {exc.code} ({key})", hint="check the URL in the config"
            ) from exc
        raise SourceConnectionError(
            f"downloading {url} failed with HTTP {exc.code} {exc.reason} ({key})",
            hint="the server refused or failed the request; retry later or check access",
        ) from exc
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SourceConnectionError(
            f"cannot download {url}: {reason} ({key})",
            hint="check the URL, the network and http_timeout_seconds",
        ) from exc
    return target


def _url_suffix(url: str) -> str:
    name = PurePosixPath(urllib.parse.urlparse(url).path).name
    return "".join(PurePosixPath(name).suffixes) or ".data"


def _locate(
    ctx: TaskContext, table: str, source: TableSource, scratch: contextlib.ExitStack
) -> _SourceFiles:
    """The files of a source; a URL is downloaded into a scratch dir that ``scratch`` removes."""
    key = f"tasks.{ctx.task_name}.config.source.{table}"
    if is_url(source.path):
        folder = scratch.enter_context(
            tempfile.TemporaryDirectory(prefix=".download-", dir=ctx.output_dir)
        )
        target = Path(folder) / f"{table}{_url_suffix(source.path)}"
        ctx.logger.info(
            "downloading source", extra={"fields": {"table": table, "uri": source.path}}
        )
        _download(source.path, target, ctx.config.http_timeout_seconds, key)
        return _SourceFiles(key, [target], source.path)
    resolved = ctx.resolve_project_path(source.path)
    return _SourceFiles(key, local_files(source.path, resolved, key), str(resolved))


def _file_format(path: Path, source: TableSource, key: str) -> Literal["csv", "parquet"]:
    found = file_format(path, source)
    if found is None:
        raise SchemaError(
            f"cannot tell the format of {path} from its name ({key})",
            hint=f"set {key}.format to 'csv' or 'parquet'",
        )
    return found


# --- time columns -------------------------------------------------------------------------


def _utc_text(stamps: pd.Series) -> pa.Array:
    """UTC datetimes as ISO-8601 text with a ``Z``, at the coarsest exact precision."""
    naive = pa.array(stamps.dt.tz_convert(None).to_numpy(), from_pandas=True)
    array = naive.cast(pa.timestamp(naive.type.unit, tz="UTC"))
    for unit in ("s", "ms", "us"):
        with contextlib.suppress(pa.ArrowInvalid):
            return to_text(array.cast(pa.timestamp(unit, tz="UTC")))
    return to_text(array)


def _localize(stamps: pd.Series, zone: str) -> pd.Series:
    """Naive wall-clock times in ``zone``; an ambiguous hour reads as its first occurrence."""
    dst_first = np.ones(len(stamps), dtype=bool)
    return stamps.dt.tz_localize(zone, ambiguous=dst_first, nonexistent="shift_forward")


def _parse_text_times(text: pd.Series, spec: TimestampFormat) -> pd.Series:
    if spec.format is not None:
        if "%z" in spec.format or "%Z" in spec.format:
            return pd.to_datetime(text, format=spec.format, utc=True, errors="coerce")
        naive = pd.to_datetime(text, format=spec.format, errors="coerce")
        return _localize(naive, spec.timezone)
    with_offset = text.str.contains(OFFSET_PATTERN, regex=True, na=False)
    aware = pd.to_datetime(text.where(with_offset), format="ISO8601", utc=True, errors="coerce")
    naive = pd.to_datetime(text.where(~with_offset), format="ISO8601", errors="coerce")
    return aware.where(with_offset, _localize(naive, spec.timezone).dt.tz_convert("UTC"))


def convert_times(column: pa.Array | pa.ChunkedArray, spec: TimestampFormat) -> pa.Array:
    """A time column as ISO-8601 UTC text; values that do not convert keep their own text."""
    original = to_text(column)
    if isinstance(original, pa.ChunkedArray):
        original = original.combine_chunks()
    if pa.types.is_timestamp(column.type):
        stamps = column.to_pandas()
        if column.type.tz is None:
            stamps = _localize(stamps, spec.timezone)
    elif spec.unit != "iso":
        numbers = pd.to_numeric(
            original.to_pandas(), errors="coerce", dtype_backend="numpy_nullable"
        )
        stamps = pd.to_datetime(numbers, unit=spec.unit, utc=True, errors="coerce")
    else:
        stamps = _parse_text_times(original.to_pandas().astype(object), spec)
    stamps = stamps.where(stamps.between(EARLIEST, LATEST))
    converted = _utc_text(pd.Series(stamps, dtype="datetime64[ns, UTC]"))
    return pc.if_else(pc.is_valid(converted), converted, original)


# --- row filter -----------------------------------------------------------------------------


def _blank(text: pa.Array) -> pa.Array:
    return pc.fill_null(pc.equal(text, ""), True)


def _as_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _meets(column: pa.Array | pa.ChunkedArray, condition: RowCondition) -> pa.Array:
    """Rows meeting ``condition`` (True/False, never null)."""
    text = to_text(column)
    op, value = condition.op, condition.value
    if op == "is_null":
        return _blank(text)
    if op == "not_null":
        return pc.invert(_blank(text))
    if op in ("in", "not_in"):
        assert isinstance(value, list)
        hit = pc.is_in(text, value_set=pa.array([_as_text(v) for v in value], pa.string()))
        result = hit if op == "in" else pc.invert(hit)
    elif op in ("startswith", "not_startswith"):
        hit = pc.starts_with(text, _as_text(value))
        result = hit if op == "startswith" else pc.invert(hit)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
            numbers = column.cast(pa.float64())
        else:
            numbers = pa.array(_text_numbers(text))
            numbers = pc.if_else(pc.is_nan(numbers), None, numbers)
        result = COMPARE[op](numbers, float(value))
    else:
        result = COMPARE[op](text, _as_text(value))
    return pc.and_kleene(pc.invert(_blank(text)), pc.fill_null(result, False))


def _numbers(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """A column as float64; what is not a finite number becomes null."""
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        values = column.to_numpy(zero_copy_only=False).astype(np.float64)
    else:
        values = _text_numbers(column)
    return pa.array(values, mask=~np.isfinite(values))


def _keep(batch: pa.RecordBatch, conditions: list[RowCondition]) -> pa.RecordBatch:
    if not conditions:
        return batch
    mask = pa.array(np.ones(batch.num_rows, dtype=bool))
    for condition in conditions:
        mask = pc.and_(mask, _meets(batch.column(condition.column), condition))
    return batch.filter(mask)


# --- reading ----------------------------------------------------------------------------------


def _read_options(source: TableSource, block_bytes: int) -> pacsv.ReadOptions:
    options = pacsv.ReadOptions(encoding=source.encoding, block_size=block_bytes)
    if not source.header:
        options.column_names = source.columns
    return options


def _source_schema(path: Path, file_format: str, names: list[str]) -> dict[str, str]:
    """Column → type as the source declares it (CSV has no declared types: names only)."""
    if file_format == "parquet":
        schema = pq.ParquetFile(path).schema_arrow
        return {field.name: str(field.type) for field in schema}
    return dict.fromkeys(names, "csv")


def _split_options(source: TableSource) -> dict[str, Any]:
    """pandas' options for a separator of several characters (pyarrow splits on one only):
    the Python parser, the separator escaped so that '|' or '.' stay literal characters."""
    return {
        "sep": re.escape(source.delimiter),
        "engine": "python",
        "dtype": str,
        # The null spellings pyarrow uses for every other CSV, no more and no fewer.
        "keep_default_na": False,
        "na_values": list(pacsv.ConvertOptions().null_values),
        "encoding": source.encoding,
        "header": 0 if source.header else None,
        "names": None if source.header else source.columns,
    }


def _split_batches(
    path: Path, source: TableSource, chunk_rows: int, columns: list[str]
) -> Iterator[pa.RecordBatch]:
    """Stream the wanted columns of a multi-character-separated file as text (empty fields
    and the usual null spellings become null, as pyarrow reads them). A line with fewer
    fields than the header reads as nulls in the missing ones, which validation then
    quarantines; a line with more is a bad file."""
    schema = pa.schema([pa.field(c, pa.string()) for c in columns])
    try:
        # No usecols: with it pandas would pass a line with too many fields silently.
        reader = pd.read_csv(path, chunksize=chunk_rows, **_split_options(source))
        with reader:
            for chunk in reader:
                yield pa.RecordBatch.from_pandas(chunk[columns], schema, preserve_index=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        # The Arrow error type routes it to the bad-file report like any parser refusal.
        raise pa.ArrowInvalid(str(exc)) from exc


def _split_names(path: Path, source: TableSource) -> list[str]:
    try:
        return [str(c) for c in pd.read_csv(path, nrows=0, **_split_options(source)).columns]
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise pa.ArrowInvalid(str(exc)) from exc


def _source_names(path: Path, file_format: str, source: TableSource, chunk_rows: int) -> list[str]:
    if file_format == "parquet":
        return pq.ParquetFile(path).schema_arrow.names
    if not source.header:
        assert source.columns is not None
        return list(source.columns)
    if len(source.delimiter) > 1:
        return _split_names(path, source)
    parse = pacsv.ParseOptions(delimiter=source.delimiter)
    try:
        # pyarrow parses the whole first block to learn the header: keep it small
        # (a 32 MB block costs ~300 MB), unless a first record is longer than that.
        options = _read_options(source, min(PROBE_BYTES, block_bytes(chunk_rows)))
        with pacsv.open_csv(path, read_options=options, parse_options=parse) as probe:
            return probe.schema.names
    except pa.ArrowInvalid as exc:
        if "straddl" not in str(exc):
            raise
    options = _read_options(source, block_bytes(chunk_rows))
    with pacsv.open_csv(path, read_options=options, parse_options=parse) as probe:
        return probe.schema.names


def _csv_batches(
    path: Path, source: TableSource, chunk_rows: int, columns: list[str]
) -> Iterator[pa.RecordBatch]:
    """Stream the wanted CSV columns as text; empty fields become null."""
    parse = pacsv.ParseOptions(delimiter=source.delimiter)
    convert = pacsv.ConvertOptions(
        column_types=dict.fromkeys(columns, pa.string()),
        include_columns=columns,
        strings_can_be_null=True,
    )
    options = _read_options(source, block_bytes(chunk_rows))
    with pacsv.open_csv(
        path, read_options=options, parse_options=parse, convert_options=convert
    ) as reader:
        yield from reader


def _parquet_batches(path: Path, chunk_rows: int, columns: list[str]) -> Iterator[pa.RecordBatch]:
    yield from pq.ParquetFile(path).iter_batches(batch_size=chunk_rows, columns=columns)


def _batches(
    path: Path, file_format: str, source: TableSource, chunk_rows: int, columns: list[str]
) -> Iterator[pa.RecordBatch]:
    if file_format == "csv":
        if len(source.delimiter) > 1:
            return _split_batches(path, source, chunk_rows, columns)
        return _csv_batches(path, source, chunk_rows, columns)
    return _parquet_batches(path, chunk_rows, columns)


# --- column names -----------------------------------------------------------------------------


def _sample(path: Path, file_format: str, source: TableSource, column: str) -> pa.Array:
    """The first values of one source column (to test a proposed column_mapping); none if
    they cannot be read (the file's own fault is then reported, not the proposal's)."""
    with contextlib.suppress(*READ_ERRORS):
        for batch in _batches(path, file_format, source, SAMPLE_ROWS, [column]):
            return batch.column(0).slice(0, SAMPLE_ROWS)
    return pa.nulls(0, pa.string())


def _fits(canonical: str, values: pa.Array, source: TableSource, table: str) -> bool:
    """Whether a sample's values could be the canonical column (names alone can mislead)."""
    text = to_text(values)
    filled = text.filter(pc.invert(_blank(text)))
    if canonical.endswith("_id"):
        return len(filled) > 0 and len(filled) >= len(text) / 2
    if not len(filled):
        return False
    if canonical == "event_type":
        known = pa.array(list(EVENT_TYPES) + list(source.value_mapping.get("event_type", {})))
        return bool(pc.all(pc.is_in(filled, value_set=known)).as_py())
    if canonical == TIME_COLUMNS.get(table):
        converted = convert_times(values.filter(pc.invert(_blank(text))), _time_spec(source))
        parsed = pd.to_datetime(converted.to_pandas(), utc=True, format="ISO8601", errors="coerce")
        return bool(parsed.notna().all())
    if canonical in NUMERIC_COLUMNS:
        return bool(pd.to_numeric(filled.to_pandas(), errors="coerce").notna().all())
    return True


def _time_spec(source: TableSource) -> TimestampFormat:
    return source.timestamp if source.timestamp is not None else TimestampFormat()


@dataclass(frozen=True)
class _Names:
    """How one file's columns become canonical ones, and which source columns to read."""

    mapping: dict[str, str]  # canonical → source column
    read: list[str]
    amount: str | None = None  # the source column aggregate.weight sums


def _canonical_names(
    names: list[str],
    table: str,
    source: TableSource,
    path: Path,
    key: str,
    extras: tuple[str, ...],
    sample: Callable[[str], pa.Array],
) -> _Names:
    """Map canonical column → source column, or explain what is missing."""
    layout = TABLES[table]
    renamed = {source.column_mapping.get(name, name): name for name in names}
    if len(renamed) < len(names):
        raise SchemaError(
            f"{path}: column_mapping maps two source columns onto one name (columns: {names})",
            hint=f"fix {key}.column_mapping",
        )
    both = sorted(c for c in source.constants if c in renamed)
    if both:
        raise SchemaError(
            f"{path}: {both} come both from the file (column(s) "
            f"{[renamed[c] for c in both]}) and from {key}.constants",
            hint=f"drop them from {key}.constants, or map the file's column elsewhere in "
            f"{key}.column_mapping",
        )
    missing = [c for c in layout.required if c not in renamed and c not in source.constants]
    if missing:
        message, hint = _missing_message(missing, names, table, source, path, key, sample)
        raise SchemaError(message, hint=hint)
    absent_filters = [c.column for c in source.filter if c.column not in names]
    if absent_filters:
        raise SchemaError(
            f"{path} has no column(s) {absent_filters} named in {key}.filter; columns found: "
            f"{names}",
            hint=f"{key}.filter names the file's own columns (before column_mapping)",
        )
    amount = source.aggregate.sum_column if source.aggregate is not None else None
    if amount is not None and amount not in names:
        raise SchemaError(
            f"{path} has no column {amount!r} to sum into the weight ({key}.aggregate.weight); "
            f"columns found: {names}",
            hint=f"{key}.aggregate.weight names the file's own column (before column_mapping), "
            "e.g. sum:Quantity; or use weight: count",
        )
    wanted = [c for c in (*layout.columns, *extras) if c in renamed]
    mapping = {column: renamed[column] for column in wanted}
    read = [*mapping.values(), *(c.column for c in source.filter), *([amount] if amount else [])]
    return _Names(mapping, list(dict.fromkeys(read)), amount)


def _missing_message(
    missing: list[str],
    names: list[str],
    table: str,
    source: TableSource,
    path: Path,
    key: str,
    sample: Callable[[str], pa.Array],
) -> tuple[str, str]:
    """The message and hint for absent required columns; proposals fit the data."""
    unmapped = [n for n in names if n not in source.column_mapping]
    proposals: dict[str, list[str]] = {}
    for column in missing:
        close = difflib.get_close_matches(column, unmapped, n=3, cutoff=0.4)
        proposals[column] = [c for c in close if _fits(column, sample(c), source, table)]
    suggestions = "; ".join(
        f"{m}: {c or 'no close match whose values fit'}" for m, c in proposals.items()
    )
    message = (
        f"{path} lacks required column(s) {missing} after column_mapping; columns found: "
        f"{names}; close matches: {suggestions}"
    )
    fixes = [f"{{{c[0]}: {m}}}" for m, c in proposals.items() if c]
    hint = (
        f"add the source names to {key}.column_mapping, e.g. {fixes[0]}"
        if fixes
        else f"add the source names to {key}.column_mapping, e.g. {{source_name: {missing[0]}}}"
    )
    if "event_type" in missing:
        hint += (
            f"; a file of one kind of event can set {key}.constants, e.g. "
            "{event_type: rating} or {event_type: purchase}"
        )
    if len(names) == 1 and any(sep in names[0] for sep in "\t;|"):
        hint += f"; the file shows one column only: check {key}.delimiter (e.g. tab)"
    return message, hint


# --- canonical batches ------------------------------------------------------------------------


def _replace_values(text: pa.Array, replacements: dict[str, str]) -> pa.Array:
    if not replacements:
        return text
    keys = pa.array(list(replacements), pa.string())
    position = pc.index_in(text, value_set=keys)
    mapped = pc.take(pa.array(list(replacements.values()), pa.string()), position)
    return pc.if_else(pc.is_valid(position), mapped, text)


def _canonical_batch(
    batch: pa.RecordBatch, names: _Names, source: TableSource, table: str, columns: list[str]
) -> pa.Table:
    rows = batch.num_rows
    time_column = TIME_COLUMNS.get(table) if source.timestamp is not None else None
    out: dict[str, pa.Array | pa.ChunkedArray] = {}
    for column in columns:
        if column in names.mapping:
            values = batch.column(names.mapping[column])
            if column == time_column:
                assert source.timestamp is not None
                text = convert_times(values, source.timestamp)
            elif column.endswith("_id"):
                text = to_text(whole_number_ids(values))
            else:
                text = to_text(values)
            out[column] = _replace_values(text, source.value_mapping.get(column, {}))
        elif column in source.constants:
            out[column] = pa.array([source.constants[column]] * rows, pa.string())
        else:
            out[column] = pa.nulls(rows, pa.string())
    return pa.table(out)


# --- the local and spark engines ----------------------------------------------------------

# Parquet column types whose text both the SQL and the reference spell alike.
SQL_TYPES = (pa.string(), pa.large_string(), pa.int8(), pa.int16(), pa.int32(), pa.int64())


def _text_numbers(text: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Text as float64 the way the reference reads numbers (NaN where it reads none)."""
    parsed = pd.to_numeric(to_text(text).to_pandas(), errors="coerce")
    return parsed.to_numpy(dtype=np.float64, na_value=np.nan)


def _odd_numbers(values: pa.Array) -> pa.Array:
    """The reference's numbers of the spellings the SQL leaves to it (NaN as null)."""
    numbers = pa.array(_text_numbers(values))
    return pc.if_else(pc.is_nan(numbers), None, numbers)


def _odd_times(spec: TimestampFormat) -> Callable[[pa.Array], pa.Array]:
    """The reference's conversion of the time spellings the SQL leaves to it, refusing
    (``NotExact``) those whose text would depend on the reference's read batches."""

    def convert(values: pa.Array) -> pa.Array:
        if spec.unit != "iso":
            numbers = pd.to_numeric(
                values.to_pandas(), errors="coerce", dtype_backend="numpy_nullable"
            )
            if bool(numbers.notna().any()) and numbers.dtype != "Int64":
                # Such a value turns its whole read batch into floats in the reference.
                raise NotExact("epoch times not written as plain integers (e.g. 1.5e9)")
        converted = convert_times(values, spec)
        fraction = pc.and_(pc.not_equal(converted, values), pc.match_substring(converted, "."))
        if pc.any(fraction).as_py():
            raise NotExact(
                "times with fractions of a second (the reference writes each read batch's "
                "times at that batch's precision)"
            )
        return converted

    return convert


class _Engine:
    """The local (DuckDB) or spark (Spark SQL) engine for the rules after the read.

    Per file: the reference checks the file (names, mapping, types: the same errors) and its
    reader reads it (the same rows, batches and errors); the rules run as SQL
    (``engines.ingestion``). On DuckDB each read batch is handed over as it is (Arrow, no
    copy) and its canonical rows come back before the next is read: memory holds one batch,
    and a batch the SQL cannot reproduce exactly is converted by the reference instead,
    which gives the same rows because the batch is the reference's own. On Spark the read
    columns are copied into a scratch Parquet file that Spark scans (its own CSV reader is
    not pyarrow's), and a file the SQL cannot reproduce is read by the reference. A file
    whose columns are neither text nor integers is read by the reference (the text it
    writes for floats and timestamps is its own). ``fallbacks`` says which and why. A file
    whose rules only pick and rename columns is read by the reference too, as the engine's
    result rather than a fallback: it leaves nothing for the SQL to compute.
    """

    def __init__(self, ctx: TaskContext, session: SqlSession, scratch: Path) -> None:
        self.ctx = ctx
        self.name = ctx.engine
        self.session = session
        self.scratch = scratch
        self.files = 0
        self.whole_fallbacks = 0  # files whose every row the reference converted
        self.fallbacks: list[dict[str, str]] = []
        self._count = 0

    def summary(self) -> dict[str, Any]:
        if not self.fallbacks:
            engine = self.name
        else:
            engine = "pandas" if self.whole_fallbacks == self.files else "mixed"
        return {"engine": engine, "engine_fallbacks": self.fallbacks}

    def _fallback(self, table: str, path: Path, reason: str, whole: bool = True) -> None:
        self.whole_fallbacks += whole
        self.fallbacks.append({"table": table, "file": shown_path(path), "reason": reason})
        self.ctx.logger.info(
            f"{shown_path(path)}: converted by the pandas engine ({reason})",
            extra={"fields": {"table": table, "engine": "pandas"}},
        )

    def file(
        self,
        path: Path,
        file_format: str,
        source: TableSource,
        table: str,
        plan: _Names,
        columns: list[str],
        chunk_rows: int,
        done: FileRead,
    ) -> Iterator[pa.Table] | None:
        """The file's canonical batches from the engine, or None: read it with the reference."""
        self.files += 1
        self._count += 1
        name = f"ingest{self._count}"
        types = (
            pq.ParquetFile(path).schema_arrow
            if file_format == "parquet"
            else pa.schema([pa.field(c, pa.string()) for c in plan.read])
        )
        read_types = {c: types.field(c).type for c in plan.read}
        other = sorted(c for c, kind in read_types.items() if kind not in SQL_TYPES)
        if other:
            self._fallback(table, path, f"columns {other} are neither text nor integers")
            return None
        aliases = {column: f"c{i}" for i, column in enumerate(plan.read)}
        spec = _time_spec(source)
        rules = FileRules(
            outputs={
                c: aliases.get(plan.mapping[c]) if c in plan.mapping else None for c in columns
            },
            integers=frozenset(
                aliases[c] for c, kind in read_types.items() if pa.types.is_integer(kind)
            ),
            conditions=tuple(_condition(c, aliases) for c in source.filter),
            value_mapping=source.value_mapping,
            constants=source.constants,
            time_column=TIME_COLUMNS.get(table) if source.timestamp is not None else None,
            time=TimeRule(
                spec.unit,
                spec.unit == "iso" and spec.format is None and spec.timezone == "UTC",
                EARLIEST.value,
                LATEST.value,
            ),
            amount=aliases[plan.amount] if plan.amount is not None else None,
            amount_name=AMOUNT,
        )
        if rules.selects_only:
            # Nothing for the SQL to compute: the reference's own pass over the read batches
            # picks and renames the columns (passing 20M such rows through DuckDB unchanged
            # cost ~2.5 s of the task's 11-13 s). Not a fallback: the engine's result is this.
            return None
        parsers = SqlParsers(numbers=_odd_numbers, times=_odd_times(spec))
        schema = pa.schema(
            [pa.field(c, pa.string()) for c in columns]
            + ([pa.field(AMOUNT, pa.float64())] if plan.amount is not None else [])
        )
        read = _FileToRead(path, file_format, source, table, plan, columns, chunk_rows, aliases)
        if self.session.dialect.name == "duckdb":
            return self._batchwise(read, name, rules, parsers, schema, done)
        tidy: list[Callable[[], None]] = []
        rows = self._staged(read, name, done, tidy)
        try:
            canonical = CanonicalRows(self.session, rows, rules, parsers, name)
        except NotExact as exc:
            _undo(tidy)
            self._fallback(table, path, str(exc))
            done.rows = 0
            return None
        done.rows = canonical.rows
        done.filtered = canonical.rows - canonical.kept
        return self._streamed(canonical, schema, chunk_rows, tidy)

    def _batchwise(
        self,
        read: _FileToRead,
        name: str,
        rules: FileRules,
        parsers: SqlParsers,
        schema: pa.Schema,
        done: FileRead,
    ) -> Iterator[pa.Table]:
        """DuckDB: the rules on each batch the reference reader reads, in order."""
        relation = f"{name}_batch"
        reasons: list[str] = []
        batches = 0
        for batch in _batches(read.path, read.format, read.source, read.chunk_rows, read.plan.read):
            batches += 1
            rows = pa.Table.from_batches([batch]).rename_columns(list(read.aliases.values()))
            position = pa.array(np.arange(batch.num_rows, dtype=np.int64))
            # Registered under one name: each batch replaces (and frees) the one before.
            self.session.register(relation, rows.append_column(POSITION, position))
            try:
                canonical = CanonicalRows(
                    self.session, SqlRows(relation, f"src.{POSITION}"), rules, parsers, name
                )
            except NotExact as exc:
                reasons.append(str(exc))
                yield _canonical_rows(
                    read.path, batch, read.plan, read.source, read.table, read.columns, done
                )
                continue
            for found in canonical.batches(read.chunk_rows):
                yield pa.Table.from_batches([found]).cast(schema)
            done.rows += canonical.rows
            done.filtered += canonical.rows - canonical.kept
        self.session.register(relation, pa.table({POSITION: pa.array([], pa.int64())}))
        if reasons:
            share = "every" if len(reasons) == batches else f"{len(reasons):,} of {batches:,}"
            reason = f"{share} read batch(es): {reasons[0]}"
            self._fallback(read.table, read.path, reason, whole=len(reasons) == batches)

    @staticmethod
    def _streamed(
        canonical: CanonicalRows,
        schema: pa.Schema,
        chunk_rows: int,
        tidy: list[Callable[[], None]],
    ) -> Iterator[pa.Table]:
        try:
            for batch in canonical.batches(chunk_rows):
                yield pa.Table.from_batches([batch]).cast(schema)
        finally:
            _undo(tidy)

    def _staged(
        self, read: _FileToRead, name: str, done: FileRead, tidy: list[Callable[[], None]]
    ) -> SqlRows:
        """The columns the rules need, read by the reference reader (its errors) into a
        scratch Parquet file the engine scans."""
        target = self.scratch / f"{name}.parquet"
        writer: pq.ParquetWriter | None = None
        try:
            for batch in _batches(
                read.path, read.format, read.source, read.chunk_rows, read.plan.read
            ):
                renamed = pa.Table.from_batches([batch]).rename_columns(list(read.aliases.values()))
                if writer is None:
                    writer = pq.ParquetWriter(target, renamed.schema)
                writer.write_table(renamed)
                done.rows += batch.num_rows
        finally:
            if writer is not None:
                writer.close()
        if writer is None:
            empty = pa.schema([pa.field(a, pa.string()) for a in read.aliases.values()])
            pq.write_table(empty.empty_table(), target)
        self.session.scan(name, target)
        tidy.append(lambda: target.unlink(missing_ok=True))
        return SqlRows(name, f"src.{POSITION}")


@dataclass(frozen=True)
class _FileToRead:
    """One file as the engine reads it: what the reference found, and the SQL's names."""

    path: Path
    format: str
    source: TableSource
    table: str
    plan: _Names
    columns: list[str]
    chunk_rows: int
    aliases: dict[str, str]  # source column → c0, c1, ...


def _undo(tidy: list[Callable[[], None]]) -> None:
    for step in tidy:
        step()


def _condition(condition: RowCondition, aliases: dict[str, str]) -> SqlCondition:
    """A filter condition with its value as the reference compares it."""
    value = condition.value
    compared: str | float | list[str] | None
    if isinstance(value, list):
        compared = [_as_text(v) for v in value]
    elif isinstance(value, int | float) and not isinstance(value, bool):
        compared = (
            float(value) if condition.op not in ("startswith", "not_startswith") else str(value)
        )
    else:
        compared = None if value is None else _as_text(value)
    return SqlCondition(aliases[condition.column], condition.op, compared)


@contextlib.contextmanager
def _engine(ctx: TaskContext) -> Iterator[_Engine | None]:
    """The task's SQL engine for the run (None on pandas); its scratch files are removed."""
    if ctx.engine not in SQL_ENGINES:
        yield None
        return
    with (
        sql_session(ctx, ctx.engine) as session,
        contextlib.closing(session),
        tempfile.TemporaryDirectory(prefix=".engine-", dir=ctx.output_dir) as scratch,
    ):
        yield _Engine(ctx, session, Path(scratch))


def _file_batches(
    path: Path,
    files: _SourceFiles,
    source: TableSource,
    table: str,
    chunk_rows: int,
    extras: tuple[str, ...],
    done: FileRead,
    engine: _Engine | None = None,
) -> Iterator[pa.Table]:
    """Batches of one file: filtered, canonical names, all text, nulls filled in.

    The raw layout's columns come first, then ``extras`` (catalogue columns kept for a
    derived table); ``done`` counts the rows read and filtered and records the file's
    schema. Anything wrong with the file raises BadFile. With an ``engine`` the rules after
    the read run as SQL where that gives the reference's rows (``_Engine``), the names,
    schema and types being checked by the same code first, so a bad file fails alike.
    """
    keys = files.keys
    columns = [*TABLES[table].columns, *extras]
    file_format = _file_format(path, source, files.key)
    with file_problems(path, file_format, source, chunk_rows, keys, done):
        if file_format == "csv":
            sniff(path, source, keys)
        names = _source_names(path, file_format, source, chunk_rows)
        done.schema = _source_schema(path, file_format, names)

        def sample(column: str) -> pa.Array:
            return _sample(path, file_format, source, column)

        plan = _canonical_names(names, table, source, path, files.key, extras, sample)
        float_ids: dict[str, str] = {}
        if file_format == "parquet":
            check_parquet_types(path, plan.mapping, keys)
            float_ids = float_id_columns(path, plan.mapping)
        if engine is not None:
            ran = engine.file(path, file_format, source, table, plan, columns, chunk_rows, done)
            if ran is not None:
                yield from ran
                return
        for batch in _batches(path, file_format, source, chunk_rows, plan.read):
            check_whole_ids(path, batch, float_ids, done.rows)
            yield _canonical_rows(path, batch, plan, source, table, columns, done)


def _canonical_rows(
    path: Path,
    batch: pa.RecordBatch,
    plan: _Names,
    source: TableSource,
    table: str,
    columns: list[str],
    done: FileRead,
) -> pa.Table:
    """One read batch filtered and made canonical (the reference's rules), counted."""
    kept = _keep(batch, source.filter)
    try:
        canonical = _canonical_batch(kept, plan, source, table, columns)
        if plan.amount is not None:
            canonical = canonical.append_column(AMOUNT, _numbers(kept.column(plan.amount)))
    except CONVERSION_ERRORS:
        raise cell_bad_file(path, batch, done.rows, plan) from None
    done.rows += batch.num_rows
    done.filtered += batch.num_rows - kept.num_rows
    return canonical


def _of_day(batch: pa.Table, day: str) -> pa.Table:
    """Events of one daily partition: ISO timestamps that start with the partition's date.

    Rows whose timestamp cannot be read belong to no day and are left out of partitioned runs.
    """
    timestamps = batch.column("timestamp")
    return batch.filter(pc.fill_null(pc.starts_with(timestamps, day), False))


# --- derived tables ---------------------------------------------------------------------------


class _Derived:
    """A table derived from the interactions: each id once (first seen), with catalogue
    columns taken from the row where the id first appears."""

    def __init__(self, table: str) -> None:
        self.layout = TABLES[table]
        self.id_column = self.layout.required[0]
        self._parts: list[pa.Table] = []
        self._known = pa.array([], pa.string())

    def add(self, batch: pa.Table) -> None:
        ids = batch.column(self.id_column)
        part = batch.filter(pc.invert(_blank(ids)))
        part = part.append_column(ROW, pa.array(np.arange(part.num_rows)))
        first = part.group_by(self.id_column, use_threads=False).aggregate([(ROW, "min")])
        rows = first.column(f"{ROW}_min").combine_chunks()
        part = part.take(pc.take(rows, pc.sort_indices(rows)))
        new = part.filter(pc.invert(pc.is_in(part.column(self.id_column), self._known)))
        if new.num_rows:
            self._parts.append(
                pa.table(
                    {
                        c: new.column(c) if c in new.column_names else pa.nulls(new.num_rows)
                        for c in self.layout.columns
                    }
                )
            )
            self._known = pa.concat_arrays(
                [self._known, new.column(self.id_column).combine_chunks()]
            )

    def table(self) -> pa.Table:
        if not self._parts:
            return raw_schema(self.layout).empty_table()
        return pa.concat_tables(self._parts).cast(raw_schema(self.layout))


# --- aggregation -------------------------------------------------------------------------------

TIME_NS = "__ts"
EVENTS = "__events"
TOTAL = "__total"


class _Aggregator:
    """Folds repeated events into weighted interactions (``aggregate`` of the source).

    Batches are reduced as they come (one row per group, with its event count, its total and
    its representative row: the latest or earliest event) and the reductions are merged
    whenever they outgrow what is held, so memory follows the number of interactions, not
    of events. Rows that validation must see as they are — a required column empty, a
    timestamp that does not read — pass through unfolded with their own weight. The result
    is sorted by time (then the ``by`` columns), so it does not depend on the batch size.
    """

    def __init__(self, spec: Aggregate, columns: list[str], key: str) -> None:
        self.spec = spec
        self.columns = columns
        self.key = key
        self._held: pd.DataFrame | None = None
        self._pending: list[pd.DataFrame] = []
        self._pending_rows = 0
        self._loose: list[pa.Table] = []
        self.rows_in = 0
        self.no_number = 0

    def add(self, batch: pa.Table) -> None:
        amount = self.spec.sum_column is not None
        frame = batch.select([*self.columns, *([AMOUNT] if amount else [])]).to_pandas()
        self.rows_in += len(frame)
        if amount:
            numbered = frame[AMOUNT].notna().to_numpy()
            self.no_number += int((~numbered).sum())
            frame = frame[numbered]
            totals = frame.pop(AMOUNT).to_numpy(np.float64)
        else:
            totals = np.ones(len(frame))
        times = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601", errors="coerce")
        times = times.where(times.between(EARLIEST, LATEST))
        required = frame[list(TABLES["interactions"].required)]
        loose = (required.isna() | (required == "")).any(
            axis=1
        ).to_numpy() | times.isna().to_numpy()
        if loose.any():
            self._loose.append(self._with_weight(frame[loose], totals[loose]))
        folded = frame[~loose].assign(
            **{
                TIME_NS: pd.DatetimeIndex(times[~loose]).as_unit("ns").asi8,
                EVENTS: 1,
                TOTAL: totals[~loose],
            }
        )
        self._pending.append(self._reduce(folded))
        self._pending_rows += len(self._pending[-1])
        if self._pending_rows >= max(len(self._held) if self._held is not None else 0, 1):
            self._merge()

    def _reduce(self, frame: pd.DataFrame) -> pd.DataFrame:
        """One row per group: the representative event, with the group's count and total."""
        by = self.spec.by
        frame = frame.sort_values(TIME_NS, kind="stable")
        sums = frame.groupby(by, sort=False, dropna=False)[[EVENTS, TOTAL]].transform("sum")
        frame = frame.assign(**{EVENTS: sums[EVENTS], TOTAL: sums[TOTAL]})
        return frame.drop_duplicates(by, keep=self.spec.keep)

    def _merge(self) -> None:
        parts = ([self._held] if self._held is not None else []) + self._pending
        self._held = self._reduce(pd.concat(parts, ignore_index=True))
        self._pending, self._pending_rows = [], 0

    def _with_weight(self, frame: pd.DataFrame, weights: np.ndarray) -> pa.Table:
        columns = {c: pa.array(frame[c], pa.string(), from_pandas=True) for c in self.columns}
        columns[WEIGHT] = pa.array(weights, pa.float64()).cast(pa.string())
        return pa.table(columns)

    def table(self) -> tuple[pa.Table, dict[str, Any]]:
        """The interactions, then what became of the rows (for the log and the metadata)."""
        if self._pending:
            self._merge()
        held = (
            self._held
            if self._held is not None
            else pd.DataFrame({c: [] for c in (*self.columns, TIME_NS, EVENTS, TOTAL)})
        )
        weights = (held[EVENTS] if self.spec.sum_column is None else held[TOTAL]).astype(float)
        positive = (weights > 0).to_numpy()
        held = held.assign(**{WEIGHT: weights})[positive]
        folded = self._with_weight(held, held[WEIGHT].to_numpy(np.float64))
        # Arrow sorts text keys far faster than pandas (3 s → 0.3 s for 1M interactions).
        order = [(TIME_NS, "ascending"), *((c, "ascending") for c in self.spec.by)]
        keys = folded.append_column(TIME_NS, pa.array(held[TIME_NS].to_numpy(np.int64)))
        folded = folded.take(pc.sort_indices(keys, sort_keys=order))
        loose = sum(part.num_rows for part in self._loose)
        result = pa.concat_tables([folded, *self._loose]) if self._loose else folded
        stats = {
            "by": list(self.spec.by),
            "weight": self.spec.weight,
            "keep": self.spec.keep,
            "rows_in": self.rows_in,
            "rows_folded": int(held[EVENTS].sum()),
            "interactions_folded": folded.num_rows,
            "interactions": result.num_rows,
            "rows_passed_through": loose,
            "rows_without_number": self.no_number,
            "interactions_not_positive": int((~positive).sum()),
        }
        return result, stats


@dataclass
class _Ingested:
    path: Path
    rows: int
    files: int
    uri: str
    schema: dict[str, str]
    filtered: int
    bad: list[BadFile] = field(default_factory=list)
    aggregation: dict[str, Any] | None = None


@dataclass
class _SourceRead:
    """What reading all files of a source produced."""

    rows: int = 0
    filtered: int = 0
    schema: dict[str, str] | None = None
    bad: list[BadFile] = field(default_factory=list)


def _buffered(batches: Iterator[pa.Table], folder: Path, index: int) -> Iterator[pa.Table]:
    """A file's batches, handed on only once the whole file has read well.

    With ``on_bad_file: skip`` a file that breaks on its millionth line must leave no rows
    behind, so its batches wait in a scratch Parquet file until its last line is read.
    """
    scratch = folder / f"file-{index}.parquet"
    writer: pq.ParquetWriter | None = None
    try:
        for batch in batches:
            if writer is None:
                writer = pq.ParquetWriter(scratch, batch.schema)
            writer.write_table(batch)
    finally:
        if writer is not None:
            writer.close()
    if writer is not None:
        yield from (pa.table(b) for b in pq.ParquetFile(scratch).iter_batches())
        scratch.unlink()


def _read_source(
    ctx: TaskContext,
    table: str,
    files: _SourceFiles,
    source: TableSource,
    extras: tuple[str, ...],
    emit: Callable[[pa.Table], None],
    engine: _Engine | None,
) -> _SourceRead:
    """Read every file of a source into ``emit``; bad files are collected, not raised.

    ``on_bad_file: fail`` stops writing at the first bad file but still reads the rest, so
    the error can list every bad file at once; ``skip`` hands on the good files whole.
    """
    config: Config = ctx.config
    skip = config.on_bad_file == "skip" and len(files.files) > 1
    read = _SourceRead()
    with tempfile.TemporaryDirectory(prefix=".files-", dir=ctx.output_dir) as folder:
        for index, path in enumerate(files.files):
            done = FileRead()
            batches = _file_batches(
                path, files, source, table, config.chunk_rows, extras, done, engine
            )
            try:
                if read.bad and not skip:
                    for _ in batches:
                        pass  # the task fails anyway: only look for more bad files
                    continue
                for batch in _buffered(batches, Path(folder), index) if skip else batches:
                    emit(batch)
            except BadFile as bad:
                read.bad.append(bad)
                ctx.logger.warning(
                    f"bad source file: {bad.message}",
                    extra={"fields": {"table": table, "file": shown_path(bad.path)}},
                )
                continue
            read.rows += done.rows
            read.filtered += done.filtered
            if read.schema is None:
                read.schema = done.schema
    return read


def _bad_files_error(files: _SourceFiles, bad: list[BadFile]) -> SchemaError:
    """One error naming every bad file of a source, each with its reason."""
    if len(files.files) == 1:
        return SchemaError(f"{bad[0].message} ({files.key})", hint=bad[0].hint)
    listed = "; ".join(b.message for b in bad[:LISTED_FILES])
    if len(bad) > LISTED_FILES:
        listed += f"; and {len(bad) - LISTED_FILES:,} more (the log names each)"
    hints = "; ".join(dict.fromkeys(b.hint for b in bad[:LISTED_FILES]))
    if len(bad) == len(files.files):
        return SchemaError(
            f"none of the {len(files.files):,} files of {files.key} can be read: {listed}",
            hint=hints,
        )
    return SchemaError(
        f"{len(bad):,} of {len(files.files):,} files of {files.key} cannot be read: {listed}",
        hint=f"{hints}; or set {files.keys.task}.on_bad_file: skip to ingest the other files "
        "and report these",
    )


def _no_rows_error(files: _SourceFiles, table: str) -> DataValidationError:
    """A source whose files hold a header but no rows: nothing downstream can use it."""
    what = (
        shown_path(files.files[0])
        if len(files.files) == 1
        else f"none of the {len(files.files):,} files of the source"
    )
    return DataValidationError(
        f"{what} holds no data rows, only column names ({files.key})",
        hint=f"the {table} table cannot be empty: check {files.key}.path (or "
        f"{files.key}.header if the first line is data)",
    )


def _ingest_table(
    ctx: TaskContext,
    table: str,
    source: TableSource,
    derived: dict[str, _Derived],
    engine: _Engine | None,
) -> _Ingested:
    layout = TABLES[table]
    output = ctx.output_path(f"{table}.parquet")
    extras = tuple(c for t in derived for c in TABLES[t].columns if c not in layout.columns)
    extras = tuple(dict.fromkeys(extras))
    with contextlib.ExitStack() as scratch:
        files = _locate(ctx, table, source, scratch)
        ctx.logger.info(
            "reading source",
            extra={"fields": {"table": table, "uri": files.uri, "files": len(files.files)}},
        )
        day = ctx.partition_key if table == "interactions" else None
        schema = raw_schema(layout)
        aggregator = None
        if source.aggregate is not None:
            aggregator = _Aggregator(source.aggregate, list(layout.columns), files.key)
            schema = schema.append(pa.field(WEIGHT, pa.string()))
        aggregation = None
        with ParquetSink(output, schema) as sink:

            def emit(batch: pa.Table) -> None:
                rows = _of_day(batch, day) if day else batch
                for collector in derived.values():
                    collector.add(rows)
                if aggregator is not None:
                    aggregator.add(rows)
                else:
                    sink.write(rows.select(list(layout.columns)))

            read = _read_source(ctx, table, files, source, extras, emit, engine)
            if aggregator is not None:
                folded, aggregation = aggregator.table()
                sink.write(folded)
                _log_aggregation(ctx, files.key, aggregation)
    if read.bad and (ctx.config.on_bad_file == "fail" or len(read.bad) == len(files.files)):
        raise _bad_files_error(files, read.bad)
    if read.rows == 0:
        raise _no_rows_error(files, table)
    assert read.schema is not None
    ctx.logger.info(
        "table ingested",
        extra={
            "fields": {
                "table": table,
                "rows": sink.rows,
                "filtered": read.filtered,
                "files_quarantined": len(read.bad),
            }
        },
    )
    return _Ingested(
        output,
        sink.rows,
        len(files.files),
        files.uri,
        read.schema,
        read.filtered,
        read.bad,
        aggregation,
    )


def _log_aggregation(ctx: TaskContext, key: str, stats: dict[str, Any]) -> None:
    """Say once what aggregation did; warn about the rows it had to leave out."""
    ctx.logger.info(
        f"aggregated {stats['rows_folded']:,} rows into "
        f"{stats['interactions_folded']:,} interactions "
        f"(by {stats['by']}, weight {stats['weight']}, keep {stats['keep']}); "
        f"{stats['rows_passed_through']:,} rows passed through unfolded for validation",
        extra={"fields": {"table": "interactions", **stats}},
    )
    if stats["rows_without_number"]:
        ctx.logger.warning(
            f"{stats['rows_without_number']:,} rows have no number in the column "
            f"{key}.aggregate.weight sums and were dropped; add a filter such as "
            "{column: <it>, op: not_null} to say so in the config"
        )
    if stats["interactions_not_positive"]:
        ctx.logger.warning(
            f"{stats['interactions_not_positive']:,} interactions summed to zero or less "
            f"({key}.aggregate.weight) and were dropped (returns cancelling purchases?); "
            f"a filter such as {{column: <it>, op: '>', value: 0}} in {key}.filter keeps "
            "returns out of the sums"
        )


def _write_derived(ctx: TaskContext, table: str, collector: _Derived) -> _Ingested:
    output = ctx.output_path(f"{table}.parquet")
    data = collector.table()
    with ParquetSink(output, raw_schema(collector.layout)) as sink:
        sink.write(data)
    ctx.logger.info("table ingested", extra={"fields": {"table": table, "rows": sink.rows}})
    # The interactions' own schema is reviewed already; a derived table's shape follows it.
    schema = {"derived_from": "interactions"}
    return _Ingested(output, sink.rows, 0, DERIVED_URI, schema, 0)


def _tables_to_derive(ctx: TaskContext, config: Config) -> dict[str, _Derived]:
    """Items/users tables built from the interactions, each announced once in the log."""
    derived = {}
    for table in DERIVED_TABLES:
        source: TableSource | None = getattr(config.source, table)
        if source is None:
            reason = f"source.{table} is null"
        elif config.source.is_default(table) and _default_missing(ctx, source):
            reason = f"source.{table} is not configured and its default {source.path} is absent"
        else:
            continue
        ctx.logger.info(
            f"{table} table derived from the interactions ({reason})",
            extra={"fields": {"table": table, "derived_from": "interactions"}},
        )
        derived[table] = _Derived(table)
    return derived


def _default_missing(ctx: TaskContext, source: TableSource) -> bool:
    return not is_url(source.path) and not ctx.resolve_project_path(source.path).exists()


def _fallback(ctx: TaskContext, reason: CircuitOpenError) -> TaskResult:
    """Re-publish the last good snapshot, marked degraded, while the source is unavailable."""
    previous = ctx.previous
    if previous is None:
        raise SourceConnectionError(
            f"{reason}; and there is no earlier good snapshot to fall back to",
            hint="fix the source: the first ingestion needs it",
        ) from reason
    previous.verify()
    outputs = {}
    for table in TABLES:
        target = ctx.output_path(f"{table}.parquet")
        link_or_copy(previous.path(table), target)
        outputs[table] = target
    ctx.logger.warning(
        "source unavailable: using the last good snapshot",
        extra={
            "fields": {"degraded": True, "fallback_run_id": previous.run_id, "reason": str(reason)}
        },
    )
    metrics = {k: v for k, v in previous.metrics.items() if k.endswith(("_rows", "_files"))}
    metadata = {
        "degraded": True,
        "fallback_run_id": previous.run_id,
        "degraded_reason": str(reason),
    }
    checks = [
        CheckOutcome(spec.name, True, spec.severity, "last good snapshot used; schema as approved")
        for spec in declare_checks(ctx.config)
    ]
    return TaskResult(
        outputs=outputs, metrics={**metrics, "degraded": 1}, metadata=metadata, checks=checks
    )


def run(ctx: TaskContext[Config]) -> TaskResult:
    """Read the three sources and write them as raw Parquet tables."""
    config = ctx.config
    guard = config.circuit_breaker
    if not guard.enabled:
        return _ingest_all(ctx, config)
    breaker = CircuitBreaker(
        ctx.task_name,
        ctx.storage_root / "circuits",
        failure_threshold=guard.failure_threshold,
        cooldown_seconds=guard.cooldown_seconds,
    )
    try:
        return breaker.call(lambda: _ingest_all(ctx, config), counts=(SourceConnectionError,))
    except CircuitOpenError as exc:
        if guard.fallback == "none":
            raise
        return _fallback(ctx, exc)


def _ingest_all(ctx: TaskContext, config: Config) -> TaskResult:
    ctx.logger.info("ingestion started", extra={"fields": {"chunk_rows": config.chunk_rows}})
    derived = _tables_to_derive(ctx, config)
    outputs: dict[str, Path] = {}
    metrics: dict[str, Any] = {}
    metadata: dict[str, Any] = {"degraded": False}
    schemas: dict[str, dict[str, str]] = {}
    quarantined: list[dict[str, str]] = []
    with _engine(ctx) as engine:
        for table in TABLES:
            if table in derived:
                done = _write_derived(ctx, table, derived[table])
            else:
                done = _ingest_table(ctx, table, getattr(config.source, table), derived, engine)
            outputs[table] = done.path
            schemas[table] = done.schema
            metrics[f"{table}_rows"] = done.rows
            metrics[f"{table}_files"] = done.files
            metrics[f"{table}_rows_filtered"] = done.filtered
            metrics[f"{table}_files_quarantined"] = len(done.bad)
            metadata[f"{table}_source"] = done.uri
            if done.aggregation is not None:
                metadata[f"{table}_aggregation"] = done.aggregation
                metrics[f"{table}_rows_aggregated"] = done.aggregation["rows_in"]
            quarantined += [
                {"table": table, "file": shown_path(b.path), "reason": b.message, "hint": b.hint}
                for b in done.bad
            ]
        # Which engine ran the rules after the read (not a metric, so that the engines'
        # metrics stay comparable), and the files it left to the reference, with why.
        metadata.update(engine.summary() if engine is not None else {"engine": "pandas"})
    metadata["quarantined_files"] = quarantined
    ctx.logger.info("ingestion finished", extra={"fields": metrics})
    outcome = approval.review(
        ctx.storage_root, ctx.task_name, ctx.run_id, config.schema_approval, schemas
    )
    if outcome is not None and not outcome.passed:
        ctx.logger.warning(outcome.description)
    checks = [outcome] if outcome is not None else []
    if config.on_bad_file == "skip":
        checks.append(_source_files_outcome(ctx, quarantined))
    return TaskResult(outputs=outputs, metrics=metrics, metadata=metadata, checks=checks)


def _source_files_outcome(ctx: TaskContext, quarantined: list[dict[str, str]]) -> CheckOutcome:
    """With ``on_bad_file: skip`` the run goes on without its bad files; this WARN check
    keeps them in sight (run table, UI) with each file's reason."""
    if not quarantined:
        description = "every source file was read"
    else:
        listed = "; ".join(q["reason"] for q in quarantined[:LISTED_FILES])
        more = len(quarantined) - LISTED_FILES
        description = (
            f"{len(quarantined):,} source file(s) quarantined and left out "
            f"(tasks.{ctx.task_name}.config.on_bad_file: skip): {listed}"
            + (f"; and {more:,} more (the checkpoint's metadata lists each)" if more > 0 else "")
        )
    return CheckOutcome(
        SOURCE_FILES_CHECK,
        not quarantined,
        "WARN",
        description,
        {"quarantined_files": quarantined},
    )
