"""`validate` reads the head of a CSV (its columns and first rows) from a first small read,
and reads on only when that read holds fewer complete records than it needs: the rows it
returns are those a full CSV parse of the file starts with, whatever the records' sizes."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from recomart_pipeline.tasks.specs.ingestion import (
    FIRST_READ_CHARS,
    HEAD_ROWS,
    TableSource,
    _csv_head,
)


def _write(tmp_path: Path, rows: list[list[str]]) -> Path:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    path = tmp_path / "events.csv"
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def _note(size: int) -> str:
    """A quoted field's text of ``size`` characters with line breaks in it."""
    return ("line\n" * (size // 5 + 1))[:size]


def _rows(note_size: int, count: int = HEAD_ROWS + 10, first: int | None = None) -> list[list[str]]:
    """Rows whose ``note`` has ``note_size`` characters (the first row's: ``first``)."""
    sizes = [note_size if first is None or n else first for n in range(count)]
    header = ["user_id", "item_id", "note"]
    return [header] + [[f"u{n}", f"i{n}", _note(size)] for n, size in enumerate(sizes)]


@pytest.mark.parametrize(
    ("note_size", "first"),
    [
        (10, None),  # the first read holds every row needed
        (FIRST_READ_CHARS // (HEAD_ROWS + 1), None),  # the needed rows end around the cut
        (FIRST_READ_CHARS // 10, None),  # the first read holds ~10 rows: reads on
        (10, FIRST_READ_CHARS + 7),  # the first row is longer than the first read
    ],
)
def test_the_head_is_what_a_full_parse_starts_with(tmp_path, note_size, first):
    rows = _rows(note_size, first=first)
    path = _write(tmp_path, rows)
    columns, head = _csv_head(path, TableSource(path=str(path)))
    assert columns == rows[0]
    assert head == rows[1 : HEAD_ROWS + 1]


def test_without_a_header_the_rows_start_at_the_first_line(tmp_path):
    rows = _rows(FIRST_READ_CHARS // 10)[1:]
    path = _write(tmp_path, rows)
    source = TableSource(path=str(path), header=False, columns=["user_id", "item_id", "note"])
    columns, head = _csv_head(path, source)
    assert columns == ["user_id", "item_id", "note"]
    assert head == rows[:HEAD_ROWS]


def test_a_short_file_is_read_whole(tmp_path):
    rows = _rows(10, count=3)
    path = _write(tmp_path, rows)
    assert _csv_head(path, TableSource(path=str(path))) == (rows[0], rows[1:])
