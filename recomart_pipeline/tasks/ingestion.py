"""Ingestion: copy the interactions, items and users sources into raw Parquet tables.

Each source is a CSV or Parquet file, a directory or glob of such files (read in sorted
order and concatenated, e.g. one file per day), or an http(s) URL (downloaded in streamed
chunks). Columns are renamed with ``column_mapping`` and reduced to the canonical ones.

Ingestion does not clean: every column is written as nullable text (the *raw* layout of
``tasks/_tables.py``) so that values such as ``five`` or ``not-a-date`` reach validation
unchanged and end up in its quarantine instead of failing a type conversion here. Sources
are read in batches of ``chunk_rows`` and written incrementally, so memory stays bounded
whatever the input size.
"""

from __future__ import annotations

import contextlib
import difflib
import glob
import http.client
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from recomart_pipeline.contract.errors import (
    SchemaError,
    SourceConnectionError,
    SourceNotFoundError,
)
from recomart_pipeline.contract.task import CheckOutcome, TaskContext, TaskResult
from recomart_pipeline.runtime.circuit_breaker import CircuitBreaker, CircuitOpenError
from recomart_pipeline.tasks import schema_approval as approval
from recomart_pipeline.tasks._tables import ParquetSink, raw_schema, to_text
from recomart_pipeline.tasks.specs.ingestion import (
    Config,
    TableSource,
    declare_checks,
)
from recomart_pipeline.tasks.specs.tables import TABLES, TableLayout

CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zst")
PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_BYTES_PER_ROW = 64  # turns chunk_rows into a CSV block size
DOWNLOAD_CHUNK_BYTES = 1 << 20
MISSING_HTTP_STATUSES = (404, 410)


@dataclass(frozen=True)
class _SourceFiles:
    """The local files of one source, its URI and its config key (for messages)."""

    key: str
    files: list[Path]
    uri: str


def _is_url(path: str) -> bool:
    return path.startswith(("http://", "https://"))


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


def _local_files(pattern: str, resolved: Path, key: str) -> list[Path]:
    if any(char in pattern for char in "*?["):
        files = sorted(Path(p) for p in glob.glob(str(resolved), recursive=True))
        files = [f for f in files if f.is_file()]
        what = "no files match the glob"
    elif resolved.is_dir():
        files = sorted(
            f for f in resolved.rglob("*") if f.is_file() and not f.name.startswith((".", "_"))
        )
        what = "the directory contains no data files"
    elif resolved.is_file():
        return [resolved]
    else:
        files, what = [], "the file does not exist"
    if not files:
        raise SourceNotFoundError(
            f"source {resolved} not found: {what} (config key {key})",
            hint="fix the path (relative paths start at the project root) or recreate the "
            "sample with `python -m recomart_pipeline generate-data --format csv "
            "--dirty-fraction 0.01 --out data` (see data/README.md)",
        )
    return files


def _locate(
    ctx: TaskContext, table: str, source: TableSource, scratch: contextlib.ExitStack
) -> _SourceFiles:
    """The files of a source; a URL is downloaded into a scratch dir that ``scratch`` removes."""
    key = f"tasks.{ctx.task_name}.config.source.{table}"
    if _is_url(source.path):
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
    return _SourceFiles(key, _local_files(source.path, resolved, key), str(resolved))


def _file_format(path: Path, source: TableSource, key: str) -> Literal["csv", "parquet"]:
    if source.format != "auto":
        return source.format
    name = path.name.lower()
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    raise SchemaError(
        f"cannot tell the format of {path} from its name ({key})",
        hint=f"set {key}.format to 'csv' or 'parquet'",
    )


def _canonical_names(
    names: list[str], layout: TableLayout, source: TableSource, path: Path, key: str
) -> dict[str, str]:
    """Map canonical column → source column, or explain what is missing."""
    renamed = {source.column_mapping.get(name, name): name for name in names}
    if len(renamed) < len(names):
        raise SchemaError(
            f"{path}: column_mapping maps two source columns onto one name (columns: {names})",
            hint=f"fix {key}.column_mapping",
        )
    missing = [column for column in layout.required if column not in renamed]
    if missing:
        close = {m: difflib.get_close_matches(m, names, n=3, cutoff=0.4) for m in missing}
        suggestions = "; ".join(f"{m}: {c or 'no close match'}" for m, c in close.items())
        raise SchemaError(
            f"{path} lacks required column(s) {missing} after column_mapping; columns found: "
            f"{names}; close matches: {suggestions}",
            hint=f"add the source names to {key}.column_mapping, e.g. "
            f"{{{next((c[0] for c in close.values() if c), 'source_name')}: {missing[0]}}}",
        )
    return {column: renamed[column] for column in layout.columns if column in renamed}


def _source_schema(path: Path, file_format: str, source: TableSource) -> dict[str, str]:
    """Column → type as the source declares it (CSV has no declared types: names only)."""
    if file_format == "parquet":
        schema = pq.ParquetFile(path).schema_arrow
        return {field.name: str(field.type) for field in schema}
    return dict.fromkeys(_source_names(path, file_format, source), "csv")


def _source_names(path: Path, file_format: str, source: TableSource) -> list[str]:
    if file_format == "parquet":
        return pq.ParquetFile(path).schema_arrow.names
    parse = pacsv.ParseOptions(delimiter=source.delimiter)
    with pacsv.open_csv(path, parse_options=parse) as probe:
        return probe.schema.names


def _csv_batches(
    path: Path, source: TableSource, chunk_rows: int, columns: list[str]
) -> Iterator[pa.RecordBatch]:
    """Stream the wanted CSV columns as text; empty fields become null."""
    read = pacsv.ReadOptions(block_size=max(chunk_rows * CSV_BYTES_PER_ROW, 1 << 16))
    parse = pacsv.ParseOptions(delimiter=source.delimiter)
    convert = pacsv.ConvertOptions(
        column_types=dict.fromkeys(columns, pa.string()),
        include_columns=columns,
        strings_can_be_null=True,
    )
    with pacsv.open_csv(
        path, read_options=read, parse_options=parse, convert_options=convert
    ) as reader:
        yield from reader


def _parquet_batches(path: Path, chunk_rows: int, columns: list[str]) -> Iterator[pa.RecordBatch]:
    yield from pq.ParquetFile(path).iter_batches(batch_size=chunk_rows, columns=columns)


def _raw_batches(
    files: _SourceFiles, source: TableSource, layout: TableLayout, chunk_rows: int
) -> Iterator[pa.Table]:
    """Batches of one source in the raw layout: canonical names, all text, nulls filled in."""
    for path in files.files:
        file_format = _file_format(path, source, files.key)
        names = _source_names(path, file_format, source)
        mapping = _canonical_names(names, layout, source, path, files.key)
        wanted = list(mapping.values())
        batches = (
            _csv_batches(path, source, chunk_rows, wanted)
            if file_format == "csv"
            else _parquet_batches(path, chunk_rows, wanted)
        )
        for batch in batches:
            yield pa.table(
                {
                    column: to_text(batch.column(mapping[column]))
                    if column in mapping
                    else pa.nulls(batch.num_rows, pa.string())
                    for column in layout.columns
                }
            )


def _of_day(batch: pa.RecordBatch, day: str) -> pa.RecordBatch:
    """Events of one daily partition: ISO timestamps that start with the partition's date.

    Rows whose timestamp cannot be read belong to no day and are left out of partitioned runs.
    """
    timestamps = batch.column("timestamp")
    return batch.filter(pc.fill_null(pc.starts_with(timestamps, day), False))


def _ingest_table(
    ctx: TaskContext, table: str, source: TableSource
) -> tuple[Path, int, _SourceFiles, dict[str, str]]:
    layout = TABLES[table]
    output = ctx.output_path(f"{table}.parquet")
    with contextlib.ExitStack() as scratch:
        files = _locate(ctx, table, source, scratch)
        schema = _source_schema(
            files.files[0], _file_format(files.files[0], source, files.key), source
        )
        ctx.logger.info(
            "reading source",
            extra={"fields": {"table": table, "uri": files.uri, "files": len(files.files)}},
        )
        day = ctx.partition_key if table == "interactions" else None
        with ParquetSink(output, raw_schema(layout)) as sink:
            for batch in _raw_batches(files, source, layout, ctx.config.chunk_rows):
                sink.write(_of_day(batch, day) if day else batch)
    ctx.logger.info("table ingested", extra={"fields": {"table": table, "rows": sink.rows}})
    return output, sink.rows, files, schema


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
        shutil.copyfile(previous.path(table), target)
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
    outputs: dict[str, Path] = {}
    metrics: dict[str, Any] = {}
    metadata: dict[str, Any] = {"degraded": False}
    schemas: dict[str, dict[str, str]] = {}
    for table in TABLES:
        path, rows, files, schemas[table] = _ingest_table(ctx, table, getattr(config.source, table))
        outputs[table] = path
        metrics[f"{table}_rows"] = rows
        metrics[f"{table}_files"] = len(files.files)
        metadata[f"{table}_source"] = files.uri
    ctx.logger.info("ingestion finished", extra={"fields": metrics})
    outcome = approval.review(
        ctx.storage_root, ctx.task_name, ctx.run_id, config.schema_approval, schemas
    )
    if outcome is not None and not outcome.passed:
        ctx.logger.warning(outcome.description)
    checks = [outcome] if outcome is not None else []
    return TaskResult(outputs=outputs, metrics=metrics, metadata=metadata, checks=checks)
