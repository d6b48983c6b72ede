"""The ingestion task's declaration: config, inputs, outputs, checks (light: no pandas/numpy)."""

import bz2
import codecs
import csv
import glob
import gzip
import io
import itertools
import zoneinfo
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from recomart_pipeline.contract.errors import SourceNotFoundError
from recomart_pipeline.contract.task import CheckSpec, Output, PreflightIssue, TaskSpec
from recomart_pipeline.tasks import schema_approval as approval
from recomart_pipeline.tasks.specs.tables import TABLES, WEIGHT

FileFormat = Literal["auto", "csv", "parquet"]
TimeUnit = Literal["iso", "s", "ms", "us", "ns"]
FilterOp = Literal[
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "in",
    "not_in",
    "startswith",
    "not_startswith",
    "is_null",
    "not_null",
]
LIST_OPS = ("in", "not_in")
NULL_OPS = ("is_null", "not_null")
DELIMITER_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}
Scalar = str | int | float | bool


class TimestampFormat(BaseModel):
    """How the source writes its time column; ingestion turns it into ISO 8601 UTC text."""

    model_config = ConfigDict(extra="forbid")

    unit: TimeUnit = Field(
        "iso",
        description="'iso' for date-time text (or a Parquet timestamp column); 's', 'ms', "
        "'us' or 'ns' for Unix epoch numbers (e.g. MovieLens seconds, event logs in ms).",
    )
    format: str | None = Field(
        None,
        description="A strptime pattern for text that is not ISO 8601, e.g. "
        "'%m/%d/%Y %H:%M'. Only with unit 'iso'.",
    )
    timezone: str = Field(
        "UTC",
        description="IANA zone of times written without an offset, e.g. Europe/London. "
        "Epoch numbers are UTC by definition and ignore it.",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown time zone {value!r}: use an IANA name such as UTC or Europe/London"
            ) from exc
        return value

    @model_validator(mode="after")
    def _format_needs_text(self) -> Self:
        if self.format is not None and self.unit != "iso":
            raise ValueError(
                f"timestamp.format applies to text times only: remove it or set unit: iso "
                f"(unit is {self.unit!r})"
            )
        return self


class RowCondition(BaseModel):
    """One condition a source row must meet to be kept (on the file's own column names)."""

    model_config = ConfigDict(extra="forbid")

    column: str = Field(description="A column of the source file, as named there.")
    op: FilterOp = Field(
        description="==, !=, <, <=, >, >= (numeric when value is a number, else text), "
        "in / not_in (value is a list, compared as text), startswith / not_startswith "
        "(text), is_null / not_null (no value)."
    )
    value: Scalar | list[Scalar] | None = Field(
        None, description="What to compare with; a list for in / not_in; none for null tests."
    )

    @model_validator(mode="after")
    def _value_fits_op(self) -> Self:
        if self.op in NULL_OPS:
            if self.value is not None:
                raise ValueError(f"op {self.op} takes no value (column {self.column})")
        elif self.op in LIST_OPS:
            if not isinstance(self.value, list):
                raise ValueError(f"op {self.op} needs a list value (column {self.column})")
        elif self.value is None or isinstance(self.value, list):
            raise ValueError(f"op {self.op} needs one value (column {self.column})")
        return self


def _delimiter(value: Any) -> Any:
    """Accept 'tab' (and YAML's literal backslash-t) for a tab character."""
    return DELIMITER_NAMES.get(value.lower(), value) if isinstance(value, str) else value


def _plain_delimiter(value: str) -> str:
    """A separator the readers can split on: no line break, no quote, not blank spaces
    alone (which a multi-character reader would take for a pattern of any whitespace)."""
    if any(char in value for char in '\r\n"'):
        raise ValueError(
            f"delimiter {value!r} holds a line break or a quote: use the separator "
            "written between the fields, e.g. ',', 'tab', '::'"
        )
    return value


AGGREGATE_KEYS = ("user_id", "item_id", "event_type", "timestamp", "rating")
SUM_PREFIX = "sum:"


def _aggregate_shorthand(value: Any) -> Any:
    """``aggregate: true`` means the defaults; ``false`` means no aggregation."""
    if value is True:
        return {}
    if value is False:
        return None
    return value


def _weight_rule(value: Any) -> Any:
    """``{sum: Quantity}`` reads as ``sum:Quantity``; spaces around the column are dropped."""
    if isinstance(value, dict) and list(value) == ["sum"]:
        return f"{SUM_PREFIX}{value['sum']}"
    if isinstance(value, str) and value.strip().lower().startswith(SUM_PREFIX):
        return SUM_PREFIX + value.strip()[len(SUM_PREFIX) :].strip()
    if isinstance(value, str):
        return "count" if value.strip().lower() == "count" else value.strip()
    return value


class Aggregate(BaseModel):
    """Fold repeated events into one interaction that carries a weight.

    Events with equal ``by`` values become one row; its ``weight`` is how many events it
    stands for (``count``) or the sum of a number column of the file (``sum:Quantity``).
    The features count a weighted interaction as ``weight`` times its event type's weight.
    """

    model_config = ConfigDict(extra="forbid")

    by: list[str] = Field(
        default_factory=lambda: ["user_id", "item_id", "event_type"],
        min_length=2,
        description="Canonical columns (after column_mapping and constants) whose equal values "
        "make one interaction; must include user_id and item_id. Default [user_id, item_id, "
        "event_type]: a purchase and a view of one item stay apart.",
    )
    weight: Annotated[str, BeforeValidator(_weight_rule)] = Field(
        "count",
        description="The interaction's weight: 'count' (the number of events folded) or "
        "'sum:<column>' (the sum of a number column of the file, named as in the file, e.g. "
        "sum:Quantity for invoice lines). An interaction whose sum is not positive is "
        "dropped and counted; a row whose number is missing or not a number is dropped and "
        "counted.",
    )
    keep: Literal["last", "first"] = Field(
        "last",
        description="Which event of a group gives the interaction its timestamp (and its "
        "rating and every other column not in by): the latest ('last') or the earliest.",
    )

    @field_validator("by")
    @classmethod
    def _canonical_by(cls, value: list[str]) -> list[str]:
        unknown = [c for c in value if c not in AGGREGATE_KEYS]
        if unknown:
            raise ValueError(
                f"aggregate.by names {unknown}, which are not canonical interactions columns "
                f"{list(AGGREGATE_KEYS)} (map a file column to one in column_mapping first)"
            )
        missing = [c for c in ("user_id", "item_id") if c not in value]
        if missing:
            raise ValueError(
                f"aggregate.by must include user_id and item_id (missing {missing}): an "
                "interaction is one user and one item"
            )
        if len(set(value)) < len(value):
            raise ValueError(f"aggregate.by repeats a column: {value}")
        return value

    @field_validator("weight")
    @classmethod
    def _known_weight(cls, value: str) -> str:
        if value == "count":
            return value
        if value.startswith(SUM_PREFIX) and value[len(SUM_PREFIX) :]:
            return value
        raise ValueError(
            f"aggregate.weight {value!r} is neither 'count' nor 'sum:<column>' (e.g. "
            "sum:Quantity, with the file's own column name)"
        )

    @property
    def sum_column(self) -> str | None:
        """The file column summed into the weight, or None for ``count``."""
        return self.weight[len(SUM_PREFIX) :] if self.weight.startswith(SUM_PREFIX) else None


class TableSource(BaseModel):
    """Where one table comes from and how its file is written."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(
        description="A CSV/Parquet file, a directory or glob of them (concatenated in sorted "
        "order), or an http(s):// URL. Relative paths resolve against the project root."
    )
    format: FileFormat = Field(
        "auto",
        description="'csv' or 'parquet'; 'auto' decides by file suffix (.csv, .csv.gz, "
        ".parquet, .pq).",
    )
    column_mapping: dict[str, str] = Field(
        default_factory=dict,
        description="Source column name → canonical name, e.g. {customer: user_id}. "
        "Columns that are neither canonical nor mapped are dropped. The interactions "
        "source may also map catalogue columns (title, price, category; region, "
        "signup_date) used when the items or users table is derived from it.",
    )
    delimiter: Annotated[str, BeforeValidator(_delimiter), AfterValidator(_plain_delimiter)] = (
        Field(
            ",",
            min_length=1,
            max_length=8,
            description="CSV field separator: a character, 'tab' (also '\\t'), or several "
            "characters written literally, e.g. '::' for MovieLens-1M ratings.dat (such a file "
            "is read by pandas' Python parser: slower, and quotes are not special).",
        )
    )
    header: bool = Field(
        True, description="CSV only: the first line names the columns. If false, set columns."
    )
    columns: list[str] | None = Field(
        None,
        min_length=1,
        description="CSV only, with header: false: the names of the file's columns in order, "
        "e.g. [user_id, item_id, rating, timestamp] for MovieLens u.data.",
    )
    encoding: str = Field("utf-8", description="CSV text encoding, e.g. latin-1, cp1252.")
    constants: dict[str, str] = Field(
        default_factory=dict,
        description="Canonical column → value for every row, for a column the file lacks, "
        "e.g. {event_type: rating} for a ratings file or {event_type: purchase} for order "
        "lines.",
    )
    value_mapping: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="Canonical column → {source value: canonical value}, e.g. "
        "{event_type: {addtocart: add_to_cart, transaction: purchase}}. Values not listed "
        "are kept as they are.",
    )
    timestamp: TimestampFormat | None = Field(
        None,
        description="How the time column (interactions.timestamp, users.signup_date) is "
        "written; it is converted to ISO 8601 UTC text. Values that do not convert are kept "
        "as written, so validation quarantines them. Unset: passed through unchanged.",
    )
    aggregate: Annotated[Aggregate | None, BeforeValidator(_aggregate_shorthand)] = Field(
        None,
        description="Interactions only: fold repeated events into one interaction with a "
        "weight. Keys: by (canonical columns whose equal values make one interaction; "
        "default [user_id, item_id, event_type]), weight ('count' of events, the default, or "
        "'sum:<file column>', e.g. sum:Quantity for invoice lines), keep ('last', the "
        "default, or 'first': the event that gives the time and rating). true means the "
        "defaults. The features count an interaction of weight w as w events. Rows with an "
        "empty required column or a timestamp that does not read pass through unfolded, so "
        "validation still quarantines them. Unset: every row is one interaction.",
    )
    filter: list[RowCondition] = Field(
        default_factory=list,
        description="Conditions on the file's own column names that a row must all meet to "
        "be kept, e.g. [{column: Quantity, op: '>', value: 0}, {column: InvoiceNo, op: "
        "not_startswith, value: C}]. A null value meets only is_null; a value that is not "
        "a number fails a numeric comparison. Dropped rows are counted in "
        "<table>_rows_filtered.",
    )

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError as exc:
            raise ValueError(f"unknown encoding {value!r}: e.g. utf-8, latin-1, cp1252") from exc
        return value

    @model_validator(mode="after")
    def _names_without_header(self) -> Self:
        if not self.header and self.columns is None:
            raise ValueError("header: false needs columns: [name, ...] in file order")
        if self.header and self.columns is not None:
            raise ValueError("columns names a header-less file: set header: false or drop it")
        return self


def _path_shorthand(value: Any) -> Any:
    """Let ``interactions: data/x.csv`` stand for ``interactions: {path: data/x.csv}``."""
    return {"path": value} if isinstance(value, str) else value


Source = Annotated[
    TableSource, BeforeValidator(_path_shorthand, json_schema_input_type=str | TableSource)
]
OptionalSource = Annotated[
    TableSource | None,
    BeforeValidator(_path_shorthand, json_schema_input_type=str | TableSource | None),
]
CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zst")
PARQUET_SUFFIXES = (".parquet", ".pq")
TIME_COLUMNS = {"interactions": "timestamp", "users": "signup_date"}
DERIVED_TABLES = ("items", "users")


class Sources(BaseModel):
    """The input tables; each value is a path/URL string or a full source block.

    Only interactions is required: with ``items: null`` / ``users: null`` (or the key left
    out and its default file absent) the table is derived from the interactions — its ids
    plus any catalogue columns the interactions source maps.
    """

    model_config = ConfigDict(extra="forbid")

    interactions: Source = Field(
        default_factory=lambda: TableSource(path="data/interactions.csv"),
        description="Events: user_id, item_id, event_type, timestamp, optional rating.",
    )
    items: OptionalSource = Field(
        default_factory=lambda: TableSource(path="data/items.csv"),
        description="Catalog: item_id, optional category, price, title. null: derived from "
        "the interactions (so is a missing default file).",
    )
    users: OptionalSource = Field(
        default_factory=lambda: TableSource(path="data/users.csv"),
        description="Users: user_id, optional signup_date, region. null: derived from the "
        "interactions (so is a missing default file).",
    )

    @model_validator(mode="after")
    def _canonical_keys(self) -> Self:
        for table, layout in TABLES.items():
            source: TableSource | None = getattr(self, table)
            if source is None:
                continue
            for key in ("constants", "value_mapping"):
                unknown = sorted(set(getattr(source, key)) - set(layout.columns))
                if unknown:
                    raise ValueError(
                        f"source.{table}.{key} names {unknown}, which are not canonical "
                        f"{table} columns {list(layout.columns)}"
                    )
            if source.timestamp is not None and table not in TIME_COLUMNS:
                raise ValueError(f"source.{table}.timestamp: the {table} table has no time column")
            if source.aggregate is not None and table != "interactions":
                raise ValueError(
                    f"source.{table}.aggregate: only the interactions source aggregates"
                )
            if WEIGHT in source.column_mapping.values():
                raise ValueError(
                    f"source.{table}.column_mapping maps a column to {WEIGHT!r}, which only "
                    f"aggregation writes: use source.{table}.aggregate: {{weight: "
                    "sum:<that column>}} to carry a per-row count"
                )
        return self

    def derives(self, table: str) -> bool:
        """Whether ``table`` is explicitly configured as derived (``null``)."""
        return table in DERIVED_TABLES and getattr(self, table) is None

    def is_default(self, table: str) -> bool:
        """Whether the user left ``table`` out, so a missing default file means 'derive'."""
        return table not in self.model_fields_set


class CircuitBreakerConfig(BaseModel):
    """When a source keeps failing, stop calling it for a while and use the fallback."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Guard the sources with a circuit breaker.")
    failure_threshold: int = Field(
        3, ge=1, description="Consecutive failed reads that open the circuit."
    )
    cooldown_seconds: float = Field(
        300, gt=0, description="How long the circuit stays open before one trial read."
    )
    fallback: Literal["last_good", "none"] = Field(
        "last_good",
        description="While the circuit is open: 'last_good' re-publishes the last good "
        "snapshot (marked degraded), 'none' fails the task.",
    )


class Config(BaseModel):
    """Configuration of the ingestion task."""

    model_config = ConfigDict(extra="forbid")

    source: Sources = Field(default_factory=Sources, description="Input tables.")
    chunk_rows: int = Field(
        500_000,
        ge=100,
        description="Rows read per batch (approximate for CSV); bounds memory use.",
    )
    http_timeout_seconds: float = Field(
        60.0, gt=0, description="Socket timeout of URL downloads, in seconds."
    )
    circuit_breaker: CircuitBreakerConfig = Field(default_factory=CircuitBreakerConfig)
    schema_approval: approval.Mode = Field(
        "block",
        description="A changed source schema: 'block' stops downstream tasks until "
        "`approve-schema`, 'warn' only warns, 'off' does not check.",
    )
    on_bad_file: Literal["fail", "skip"] = Field(
        "fail",
        description="A source file that cannot be read (empty, binary, wrong encoding, "
        "ragged rows, damaged Parquet...): 'fail' stops the task with every bad file and its "
        "reason; 'skip' quarantines it whole, ingests the other files of a directory or glob "
        "and reports it in the source_files check (WARN). A source with no readable file "
        "fails either way.",
    )


SOURCE_FILES_CHECK = "source_files"


def declare_checks(config: Config) -> list[CheckSpec]:
    checks = approval.check_spec(config.schema_approval)
    if config.on_bad_file == "skip":
        checks.append(
            CheckSpec(
                SOURCE_FILES_CHECK,
                "every source file was read (on_bad_file: skip leaves bad ones out)",
                "WARN",
            )
        )
    return checks


def watched_sources(config: Config) -> list[str]:
    """What the data-arrival sensor watches: the configured sources' paths, globs or URLs."""
    sources = (getattr(config.source, table) for table in TABLES)
    return [source.path for source in sources if source is not None]


# --- files and the preflight check (light: stdlib; pyarrow only for a Parquet header) --------


def is_url(path: str) -> bool:
    return path.startswith(("http://", "https://"))


def local_files(pattern: str, resolved: Path, key: str) -> list[Path]:
    """The files a local source names (a file, a directory or a glob), sorted."""
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
            f"source {printable(str(resolved))} not found: {what} (config key {key})",
            hint=f"fix {key}.path (relative paths start at the project root)"
            + (
                f", or set {key} to null to derive the table from the interactions"
                if key.endswith(DERIVED_TABLES)
                else ""
            ),
        )
    return files


def file_format(path: Path, source: TableSource) -> Literal["csv", "parquet"] | None:
    """The configured format, else the one the file name says (None: cannot tell)."""
    if source.format != "auto":
        return source.format
    name = path.name.lower()
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    return None


HEAD_ROWS = 50
HEAD_CHARS = 1 << 20  # read of a CSV's head: a file without line breaks stays cheap
FIRST_READ_CHARS = 1 << 16
MESSAGE_CHARS = 2_000


def printable(text: str, limit: int = MESSAGE_CHARS) -> str:
    """``text`` fit for a message or a log line: at most ``limit`` characters, and every
    control or other unprintable character escaped (``\\x1b``, ``\\x00``), because a file's
    bytes (or a file's name) must never reach a terminal or a log raw."""
    shown = "".join(
        ch if ch.isprintable() and ch != "\ufffd" else ascii(ch)[1:-1] for ch in text[:limit]
    )
    return shown + ("…" if len(text) > limit else "")


def _csv_head(path: Path, source: TableSource) -> tuple[list[str], list[list[str]]]:
    """Column names and up to HEAD_ROWS rows of a (possibly compressed) CSV, from at most
    HEAD_CHARS characters of it.

    A first read of FIRST_READ_CHARS is enough for almost every file: reading and wrapping
    the whole MiB took 6 ms of ``validate``'s 10 ms of own work on the bundled data."""
    opener: Any = {".gz": gzip.open, ".bz2": bz2.open}.get(path.suffix.lower(), open)
    with opener(path, "rt", encoding=source.encoding, newline="") as handle:
        text = handle.read(FIRST_READ_CHARS)
        if len(text) == FIRST_READ_CHARS:
            # One record more than needed proves the needed ones ended before the cut (a
            # quoted field may hold line breaks, so lines are not records).
            records = _records_before_cut(text, source.delimiter, HEAD_ROWS + 2)
            if len(records) == HEAD_ROWS + 2:
                return _columns_and_rows(records[:-1], source)
            text += handle.read(HEAD_CHARS - FIRST_READ_CHARS)
        more = len(text) == HEAD_CHARS and bool(handle.read(1))
    if more:
        if "\n" not in text:
            raise ValueError(f"its first line is longer than {HEAD_CHARS:,} characters")
        text = text[: text.rindex("\n") + 1]
    return _columns_and_rows(
        list(itertools.islice(split_lines(text, source.delimiter), HEAD_ROWS + 1)), source
    )


def _records_before_cut(text: str, delimiter: str, limit: int) -> list[list[str]]:
    """Up to ``limit`` records of ``text`` up to its last line break (none without one)."""
    end = text.rfind("\n")
    return list(itertools.islice(split_lines(text[: end + 1], delimiter), limit))


def _columns_and_rows(
    records: list[list[str]], source: TableSource
) -> tuple[list[str], list[list[str]]]:
    if source.header:
        return (records[0] if records else []), records[1:]
    return list(source.columns or []), records[:HEAD_ROWS]


def split_lines(text: str, delimiter: str) -> Iterator[list[str]]:
    """The records of CSV text: the csv module for one character (quotes honoured); a
    plain split for a longer separator, as pandas' Python parser reads it."""
    if len(delimiter) == 1:
        yield from csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        return
    for line in text.splitlines():
        if line:
            yield line.split(delimiter)


def _parquet_columns(path: Path) -> list[str]:
    import pyarrow.parquet as pq  # only when a Parquet source is configured

    return list(pq.read_schema(path).names)


def _head(path: Path, source: TableSource) -> tuple[list[str], list[list[str]]] | str:
    """Columns and sample rows, or why the file cannot be read as configured."""
    kind = file_format(path, source)
    try:
        if path.stat().st_size == 0:
            return "is empty (0 bytes)"
        if kind == "parquet":
            return _parquet_columns(path), []
        if kind == "csv":
            return _csv_head(path, source)
    except (OSError, UnicodeDecodeError, csv.Error, ValueError) as exc:
        return f"cannot be read as {kind} ({printable(str(exc), 300)})"
    return "has a name that says neither CSV nor Parquet"


def _epoch_like(values: list[str]) -> bool:
    return bool(values) and all(v.strip().lstrip("-").replace(".", "", 1).isdigit() for v in values)


def preflight(config: Config, project_root: Path) -> list[PreflightIssue]:
    """Each local source exists, can be read as configured, has (after column_mapping and
    constants) the columns its table needs, and the head of its time column is readable:
    mistakes a run would only find after a minute, found when the config is validated."""
    issues: list[PreflightIssue] = []
    for table, layout in TABLES.items():
        source: TableSource | None = getattr(config.source, table)
        if source is None or is_url(source.path):
            continue  # derived, or read over the network when the task runs
        key = ("source", table)
        path = Path(source.path)
        try:
            first = local_files(
                source.path, path if path.is_absolute() else project_root / path, ""
            )[0]
        except SourceNotFoundError:
            if not (table in DERIVED_TABLES and config.source.is_default(table)):
                issues.append(
                    PreflightIssue(
                        (*key, "path"),
                        f"the {table} source {printable(source.path)} does not exist",
                        "fix the path (relative paths start at the project folder)"
                        + (
                            ", or set it to null to derive the table"
                            if table in DERIVED_TABLES
                            else ""
                        ),
                    )
                )
            continue
        head = _head(first, source)
        if isinstance(head, str):
            issues.append(
                PreflightIssue(
                    key,
                    f"{printable(first.name)} {head}",
                    "check format, delimiter, header/columns and encoding",
                )
            )
            continue
        names, rows = head
        if not names:
            issues.append(
                PreflightIssue(
                    (*key, "columns"),
                    f"{printable(first.name)} has no header: name its columns",
                    "set header: false and columns: [...]",
                )
            )
            continue
        canonical = {source.column_mapping.get(name, name): name for name in names}
        missing = [c for c in layout.required if c not in canonical and c not in source.constants]
        if missing:
            issues.append(
                PreflightIssue(
                    (*key, "column_mapping"),
                    f"{printable(first.name)} has no column for {missing} (its columns: "
                    f"{printable(str(names), 500)})",
                    "map the file's columns in column_mapping (file column: canonical name), or "
                    "give a value for every row in constants",
                )
            )
            continue
        amount = source.aggregate.sum_column if source.aggregate is not None else None
        if amount is not None and amount not in names:
            issues.append(
                PreflightIssue(
                    (*key, "aggregate", "weight"),
                    f"{printable(first.name)} has no column {printable(amount, 100)} to sum "
                    f"(its columns: {printable(str(names), 500)})",
                    "name a number column of the file as it is written there, e.g. "
                    "sum:Quantity, or use weight: count",
                )
            )
        time_column = canonical.get(TIME_COLUMNS.get(table, ""))
        if (
            time_column is not None
            and rows
            and (source.timestamp is None or source.timestamp.unit is None)
        ):
            index = names.index(time_column)
            values = [row[index] for row in rows if len(row) > index and row[index]]
            if _epoch_like(values):
                issues.append(
                    PreflightIssue(
                        (*key, "timestamp"),
                        f"{printable(first.name)}: {printable(time_column, 100)} holds numbers "
                        f"({printable(', '.join(values[:3]), 100)}), "
                        "not dates",
                        "if they are Unix epoch times, set timestamp: {unit: s} (or ms, us, ns)",
                    )
                )
    return issues


INTERACTIONS = Output("interactions", "parquet", "raw interactions, every column text")
ITEMS = Output("items", "parquet", "raw item catalogue, every column text")
USERS = Output("users", "parquet", "raw user table, every column text")

SPEC = TaskSpec(
    name="ingestion",
    description="Read the interaction, item and user sources into raw Parquet tables.",
    run="recomart_pipeline.tasks.ingestion:run",
    config=Config,
    outputs=(INTERACTIONS, ITEMS, USERS),
    checks=declare_checks,
    sources=watched_sources,
    preflight=preflight,
    # After the read, the rules (filter, mapping, constants, time conversion) run as SQL on
    # the SQL engines (recomart_pipeline.engines.ingestion); files they cannot reproduce
    # exactly are read by the pandas/pyarrow reference, and the metadata says so.
    engines=("pandas", "local", "spark"),
)
