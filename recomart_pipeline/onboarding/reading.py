"""Find the user's data files and read them the way ingestion will: sniffed, not assumed.

A CSV's delimiter, header and encoding are guessed from its head (the delimiter that splits
every line into the same number of fields, a separator of several characters such as
MovieLens-1M's ``::`` before its single characters, which would split it into empty fields; a header unless the first line holds numbers or
dates; UTF-8, else Windows-1252, else Latin-1), because ingestion needs them spelled out and a
wrong guess there fails every later step. Files are read as text (ids keep their leading
zeros, a mixed ``StockCode`` stays text); Parquet keeps its own types. At most ``MAX_ROWS``
rows are read for inference; the time column can still be scanned whole (``iter_column``) so
the newest event is the data's real newest event.
"""

from __future__ import annotations

import bz2
import glob
import gzip
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pyarrow.parquet as pq

from recomart_pipeline.tasks.specs.ingestion import split_lines

MAX_ROWS = 2_000_000
HEAD_BYTES = 1 << 18
HEAD_LINES = 200
DELIMITERS = (",", "\t", ";", "|", ":")
# Tried first: "1::1193::5" also splits on ":" (into empty fields between the values).
LONG_DELIMITERS = ("::", "||", ";;", "~~", "|~|")
ENCODINGS = ("utf-8", "cp1252", "latin-1")
CSV_SUFFIXES = (".csv", ".tsv", ".tab", ".txt", ".dat", ".data")
COMPRESSED = (".gz", ".bz2")
PARQUET_SUFFIXES = (".parquet", ".pq")
JSON_SUFFIXES = (".json", ".jsonl", ".ndjson")
# What ingestion's format: auto recognises by name; anything else needs format: csv.
AUTO_CSV = (".csv", ".csv.gz", ".csv.bz2", ".csv.zst")
NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
EXTRA_FIELDS = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
DATE_LIKE = re.compile(r"^\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}")


class OnboardingError(Exception):
    """A data file init-data cannot read or describe; the message says which and why."""


@dataclass(frozen=True)
class CsvLayout:
    """How a text file is written: what ingestion's delimiter/header/encoding keys say."""

    delimiter: str
    header: bool
    encoding: str
    width: int


@dataclass
class DataFile:
    """One source: a file, or a directory/glob of files of one shape, read for inspection."""

    path: str  # as the user named it (a file, directory or glob)
    files: list[Path]
    kind: Literal["csv", "parquet"]
    layout: CsvLayout | None
    frame: pd.DataFrame
    truncated: bool
    needs_format: bool = False  # the name does not tell ingestion the format
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.files[0].name if len(self.files) == 1 else self.path

    def iter_column(self, column: str) -> Iterator[pd.Series]:
        """Every value of one column, in chunks, across all files (for a truncated read)."""
        for path in self.files:
            if self.kind == "parquet":
                table = pq.ParquetFile(path)
                for batch in table.iter_batches(batch_size=500_000, columns=[column]):
                    yield batch.column(0).to_pandas()
                continue
            assert self.layout is not None
            reader = pd.read_csv(path, chunksize=500_000, **_csv_options(self.layout, self.frame))
            for chunk in reader:
                yield chunk[column]


def _csv_options(layout: CsvLayout, frame: pd.DataFrame | None = None) -> dict[str, Any]:
    long = len(layout.delimiter) > 1  # read as ingestion reads it: escaped, Python parser
    options: dict[str, Any] = {
        "sep": re.escape(layout.delimiter) if long else layout.delimiter,
        "dtype": str,
        "keep_default_na": False,
        "na_values": [""],
        "encoding": layout.encoding,
        "header": 0 if layout.header else None,
        "engine": "python" if long else "c",
    }
    if frame is not None and not layout.header:
        options["names"] = list(frame.columns)
    return options


def _is_data_name(path: Path) -> bool:
    name = path.name.lower()
    for suffix in COMPRESSED:
        name = name.removesuffix(suffix)
    return name.endswith(CSV_SUFFIXES + PARQUET_SUFFIXES)


def expand(argument: str) -> tuple[str, list[Path]]:
    """The files one command-line argument names (file, directory or glob), sorted."""
    if any(char in argument for char in "*?["):
        files = sorted(Path(p) for p in glob.glob(argument, recursive=True) if Path(p).is_file())
        files = [f for f in files if not f.name.startswith((".", "_"))]
        if not files:
            raise OnboardingError(f"{argument}: no file matches this glob")
        return argument, files
    path = Path(argument)
    if path.is_dir():
        files = sorted(
            f
            for f in path.rglob("*")
            if f.is_file() and not f.name.startswith((".", "_")) and _is_data_name(f)
        )
        if not files:
            raise OnboardingError(
                f"{argument}: the directory holds no CSV/TSV or Parquet file "
                f"(looked for {', '.join(CSV_SUFFIXES + PARQUET_SUFFIXES)})"
            )
        return argument, files
    if not path.is_file():
        raise OnboardingError(f"{argument}: no such file or directory")
    return argument, [path]


def _kind(path: Path) -> Literal["csv", "parquet"]:
    name = path.name.lower()
    if name.endswith(JSON_SUFFIXES):
        raise OnboardingError(
            f"{path}: JSON lines are not read by ingestion (it reads CSV and Parquet); convert "
            "it once, e.g. pandas.read_json(path, lines=True).to_parquet('events.parquet')"
        )
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic == b"PAR1":
        return "parquet"
    return "csv"


def _head_bytes(path: Path) -> bytes:
    opener: Any = {".gz": gzip.open, ".bz2": bz2.open}.get(path.suffix.lower(), open)
    with opener(path, "rb") as handle:
        raw: bytes = handle.read(HEAD_BYTES)
    return raw


def _decode(raw: bytes, path: Path) -> tuple[str, str]:
    """The head as text and the first encoding that reads it."""
    if b"\x00" in raw[:4096]:
        raise OnboardingError(f"{path}: binary content (NUL bytes); not a CSV or Parquet file")
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:].decode("utf-8", errors="ignore"), "utf-8-sig"
    cut = raw[: raw.rfind(b"\n") + 1] if len(raw) == HEAD_BYTES and b"\n" in raw else raw
    for encoding in ENCODINGS:
        try:
            return cut.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    raise AssertionError("latin-1 decodes every byte")  # pragma: no cover


def _delimiter(lines: list[str], path: Path) -> tuple[str, int]:
    """The delimiter that splits (nearly) every line into the same number (> 1) of fields."""
    best: tuple[float, int, str] | None = None
    text = "\n".join(lines)
    # A separator of several characters that fits wins over its parts.
    for candidates in (LONG_DELIMITERS, DELIMITERS):
        for delimiter in candidates:
            widths = [len(row) for row in split_lines(text, delimiter) if row]
            if not widths:
                continue
            width = max(set(widths), key=widths.count)
            share = widths.count(width) / len(widths)
            if width < 2 or share < 0.95:
                continue
            # Most consistent first, then the widest; the candidates' order breaks ties.
            score = (share, width, delimiter)
            if best is None or score[:2] > best[:2]:
                best = score
        if best is not None:
            break
    if best is None:
        raise OnboardingError(
            f"{path}: no delimiter among {', '.join(repr(d) for d in (*DELIMITERS, *LONG_DELIMITERS))} splits its "
            "lines into the same number of columns; a data file needs at least a user and an "
            "item column"
        )
    return best[2], best[1]


def _has_header(rows: list[list[str]]) -> bool:
    """A header names columns: it holds no numbers or dates, and differs from the rows below."""
    first, rest = rows[0], rows[1:]
    if any(NUMBER.match(value.strip()) or DATE_LIKE.match(value.strip()) for value in first):
        return False
    if not rest:
        return True
    for index, value in enumerate(first):
        below = [row[index] for row in rest if len(row) > index and row[index]]
        if below and all(NUMBER.match(v.strip()) for v in below):
            return True  # a word over a column of numbers
        if value in below:
            return False  # the "name" reappears as a value: it is data
    return True


def sniff_csv(path: Path) -> CsvLayout:
    """Delimiter, header and encoding of a text file, from its head."""
    text, encoding = _decode(_head_bytes(path), path)
    lines = [line for line in text.splitlines()[:HEAD_LINES] if line.strip()]
    if not lines:
        raise OnboardingError(f"{path}: the file is empty")
    delimiter, width = _delimiter(lines, path)
    rows = [row for row in split_lines("\n".join(lines), delimiter) if row]
    return CsvLayout(delimiter, _has_header(rows), encoding, width)


def _csv_refusal(path: Path, delimiter: str, exc: Exception) -> str:
    """pandas' parser error in the file's terms: which line, what is wrong, what to do."""
    found = EXTRA_FIELDS.search(str(exc))
    if found is None:
        return f"{path}: cannot be read as CSV ({str(exc).strip()})"
    expected, line, saw = found.groups()
    return (
        f"{path}: line {line} has {saw} fields where the lines before it have {expected} "
        f"(separated by {delimiter!r}): a delimiter too many, such as a stray one at the end "
        f"of the line, or a value containing the delimiter without quotes; fix or remove "
        f"that line"
    )


def _read_csv(files: list[Path], layout: CsvLayout) -> tuple[pd.DataFrame, bool, str]:
    """Up to MAX_ROWS rows as text; the encoding is widened if a later byte needs it."""
    names = None if layout.header else [f"column_{i + 1}" for i in range(layout.width)]
    tried = ENCODINGS[ENCODINGS.index(layout.encoding) :] if layout.encoding in ENCODINGS else ()
    for encoding in tried or (layout.encoding,):
        frames: list[pd.DataFrame] = []
        rows = 0
        path = files[0]
        try:
            for path in files:
                read_as = CsvLayout(layout.delimiter, layout.header, encoding, layout.width)
                options = _csv_options(read_as)
                if names is not None:
                    options["names"] = names
                frame = pd.read_csv(path, nrows=MAX_ROWS + 1 - rows, **options)
                frames.append(frame)
                rows += len(frame)
                if rows > MAX_ROWS:
                    break
        except UnicodeDecodeError:
            continue
        except (pd.errors.ParserError, ValueError) as exc:
            raise OnboardingError(_csv_refusal(path, layout.delimiter, exc)) from exc
        frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        return frame.iloc[:MAX_ROWS], rows > MAX_ROWS, encoding
    raise AssertionError("latin-1 decodes every byte")  # pragma: no cover


def _read_parquet(files: list[Path]) -> tuple[pd.DataFrame, bool]:
    frames: list[pd.DataFrame] = []
    rows = 0
    for path in files:
        try:
            parquet = pq.ParquetFile(path)
            for batch in parquet.iter_batches(batch_size=min(MAX_ROWS + 1 - rows, 500_000)):
                frames.append(batch.to_pandas())
                rows += batch.num_rows
                if rows > MAX_ROWS:
                    break
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise OnboardingError(f"{path}: cannot be read as Parquet ({exc})") from exc
        if rows > MAX_ROWS:
            break
    if not frames:
        raise OnboardingError(f"{files[0]}: the Parquet file has no rows")
    frame = pd.concat(frames, ignore_index=True)
    return frame.iloc[:MAX_ROWS], rows > MAX_ROWS


def _columns_of(path: Path) -> tuple[Literal["csv", "parquet"], tuple[str, ...], CsvLayout | None]:
    kind = _kind(path)
    if kind == "parquet":
        return kind, tuple(pq.read_schema(path).names), None
    layout = sniff_csv(path)
    if not layout.header:
        return kind, tuple(f"column_{i + 1}" for i in range(layout.width)), layout
    text, _ = _decode(_head_bytes(path), path)
    first = next(split_lines(text, layout.delimiter))
    return kind, tuple(first), layout


def _load(path: str, files: list[Path]) -> DataFile:
    kind, _, layout = _columns_of(files[0])
    needs_format = (
        not files[0].name.lower().endswith(AUTO_CSV if kind == "csv" else PARQUET_SUFFIXES)
    )
    if kind == "parquet":
        frame, truncated = _read_parquet(files)
        return DataFile(path, files, kind, None, frame, truncated, needs_format)
    assert layout is not None
    frame, truncated, encoding = _read_csv(files, layout)
    layout = CsvLayout(layout.delimiter, layout.header, encoding, layout.width)
    if frame.empty:
        raise OnboardingError(f"{files[0]}: the file has a header but no rows")
    return DataFile(path, files, kind, layout, frame, truncated, needs_format)


def read_inputs(arguments: list[str]) -> list[DataFile]:
    """One DataFile per source the arguments name.

    Files of one argument (a directory or glob) that share their columns are one source, read
    through that directory or glob when it names nothing else; files of different shapes (an
    interactions file next to an items file) are separate sources.
    """
    sources: list[DataFile] = []
    for argument in arguments:
        path, files = expand(argument)
        shapes: dict[tuple[Any, ...], list[Path]] = {}
        for file in files:
            kind, columns, layout = _columns_of(file)
            delimiter = layout.delimiter if layout else None
            shapes.setdefault((kind, columns, delimiter), []).append(file)
        if len(shapes) == 1 and len(files) > 1:
            sources.append(_load(_covering_path(path, files), files))
            continue
        sources.extend(_load(str(file), [file]) for file in files)
    return sources


def _covering_path(path: str, files: list[Path]) -> str:
    """A path ingestion reads as exactly ``files``: the argument itself, else a glob of their
    common suffix in the directory (which also holds, say, a README)."""
    if _names_only(path, files):
        return path
    suffixes = {"".join(f.suffixes[-2:]) if f.suffix in COMPRESSED else f.suffix for f in files}
    if len(suffixes) == 1:
        pattern = str(Path(path) / "**" / f"*{suffixes.pop()}")
        matched = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
        if matched == sorted(files):
            return pattern
    raise OnboardingError(
        f"{path}: its data files cannot be named by one path without also naming other files; "
        "move them into a folder of their own"
    )


def _names_only(path: str, files: list[Path]) -> bool:
    """Whether ingestion, given ``path``, would read exactly ``files`` (a directory with
    nothing else in it, or a glob)."""
    if any(char in path for char in "*?["):
        return True
    folder = Path(path)
    everything = [f for f in folder.rglob("*") if f.is_file() and not f.name.startswith((".", "_"))]
    return sorted(everything) == sorted(files)
