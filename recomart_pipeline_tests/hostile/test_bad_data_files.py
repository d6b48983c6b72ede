"""Bad data files fail clearly and once, and never reach a terminal raw.

Each file is built here in its real hostile shape and read by the ingestion task through the
runtime (``run_task``), so the error class, the retry decision and the log files are the
real ones. Every error must name the file (and the line, row or column where the parser
knows it), be a class the default retry policy does not retry, and leave no control byte in
the message or in any text file the run wrote. With ``on_bad_file: skip`` a directory or
glob keeps its good files and reports each bad one with its reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recomart_pipeline import ConfigError, PipelineConfig
from recomart_pipeline.contract.errors import classify_exception
from recomart_pipeline.runtime.runner import TaskFailure, TaskOutcome, run_task

HEADER = "user_id,item_id,event_type,timestamp,rating\n"
KEY = "tasks.ingestion.config.source.interactions"
# Terminal escape, bell and NUL: what a hostile file plants to act on whoever reads the log.
PLANTED = b"\x1b[31m\x07\x00\x1b]0;owned\x07"
CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
TEXT_SUFFIXES = {".log", ".json", ".jsonl", ".csv", ".prom", ".txt", ".md"}


def _rows(first: int, count: int) -> str:
    return "".join(
        f"u{n % 13},i{n % 7},view,2026-01-{1 + n % 28:02d}T00:00:00Z,\n"
        for n in range(first, first + count)
    )


def _project(tmp_path: Path, source: str, **config: str) -> PipelineConfig:
    """A project whose ingestion reads ``source`` (items and users derived from it)."""
    extra = "".join(f", {key}: {value}" for key, value in config.items())
    (tmp_path / "pipeline_config.yaml").write_text(
        "tasks:\n  ingestion:\n    config: {source: {interactions: "
        f"{source}, items: null, users: null}}{extra}}}\n"
        "  validation: {depends_on: [ingestion]}\n"
    )
    return PipelineConfig(tmp_path / "pipeline_config.yaml")


def _written_text(project: Path) -> list[Path]:
    """Every text file the run wrote (logs, manifests, metrics, results), not the inputs."""
    return [
        path
        for path in project.rglob("*")
        if path.is_file() and path.suffix in TEXT_SUFFIXES and "data" not in path.parts
    ]


def _fails(project: Path, config: PipelineConfig) -> TaskFailure:
    """Run ingestion, which must fail once, unretried, without control bytes anywhere."""
    with pytest.raises(TaskFailure) as raised:
        run_task(config, "ingestion", "r1")
    failure = raised.value
    cause = failure.__cause__
    assert cause is not None
    assert classify_exception(cause) == failure.error_class
    assert failure.error_class in ("schema_error", "validation_error")
    assert not config.settings.retry_policy.is_retryable(failure.error_class)
    assert not CONTROL.search(str(failure).encode())
    logs = _written_text(project)
    assert any(p.suffix == ".log" for p in logs)
    for path in logs:
        assert not CONTROL.search(path.read_bytes()), f"control bytes in {path}"
    assert "ingestion" not in {p.parent.name for p in (project / "storage").rglob("*.parquet")}
    return failure


def _csv(name: str, content: bytes) -> Callable[[Path], str]:
    def make(data: Path) -> str:
        (data / name).write_bytes(content)
        return f"data/{name}"

    return make


def _parquet(name: str, table: pa.Table) -> Callable[[Path], str]:
    def make(data: Path) -> str:
        pq.write_table(table, data / name)
        return f"data/{name}"

    return make


def _events(**columns: pa.Array) -> pa.Table:
    base = {
        "user_id": pa.array(["u1", "u2", "u3"]),
        "item_id": pa.array(["i1", "i2", "i3"]),
        "event_type": pa.array(["view"] * 3),
        "timestamp": pa.array(["2026-01-01T00:00:00Z"] * 3),
    }
    return pa.table({**base, **columns})


def _truncated_parquet(data: Path) -> str:
    pq.write_table(_events(), data / "cut.parquet")
    whole = (data / "cut.parquet").read_bytes()
    (data / "cut.parquet").write_bytes(whole[: len(whole) // 2])
    return "data/cut.parquet"


CASES: dict[str, tuple[Callable[[Path], str], list[str]]] = {
    "empty file": (_csv("empty.csv", b""), ["data/empty.csv is empty (0 bytes)"]),
    "header only": (
        _csv("header.csv", HEADER.encode()),
        ["data/header.csv holds no data rows, only column names"],
    ),
    "latin-1 bytes read as utf-8": (
        _csv(
            "latin.csv", (HEADER + _rows(0, 3) + "José,café,view,2026-01-01,\n").encode("latin-1")
        ),
        ["data/latin.csv: line 5, byte 4: 0xe9 is not valid utf-8 text", f"{KEY}.encoding"],
    ),
    "binary garbage with NUL bytes": (
        _csv("garbage.csv", PLANTED * 500),
        ["data/garbage.csv holds binary data, not CSV text: a NUL byte on line 1"],
    ),
    "escape sequences in an otherwise text file": (
        _csv("escapes.csv", (HEADER + _rows(0, 2)).encode() + b"\x1b[2J\x1b[31m,\xff\xfe\x07\n"),
        ["data/escapes.csv: line 4, byte 11: 0xff is not valid utf-8 text"],
    ),
    "a Parquet file named .csv": (
        _parquet("events.csv", _events()),
        ["data/events.csv is a Parquet file, not CSV text", f"{KEY}.format: parquet"],
    ),
    "50 MB on one line without a newline": (
        _csv("oneline.csv", b"x" * (50 << 20)),
        ["data/oneline.csv: line 1 is longer than 32,000,000 bytes without a line break"],
    ),
    "a row with too many fields": (
        _csv(
            "wide.csv", (HEADER + _rows(0, 2) + "u9,i9,view,2026-01-01T00:00:00Z,,oops\n").encode()
        ),
        ["data/wide.csv: line 4 has 6 fields where the header has 5"],
    ),
    "a row with too few fields": (
        _csv("narrow.csv", (HEADER + _rows(0, 1) + "u9,i9\n" + _rows(1, 1)).encode()),
        ["data/narrow.csv: line 3 has 2 fields where the header has 5 ('u9,i9')"],
    ),
    "an unclosed quote": (
        _csv(
            "quote.csv",
            (HEADER + _rows(0, 2) + 'u9,"i9,view,2026-01-01,\n' + _rows(2, 9000)).encode(),
        ),
        ["data/quote.csv: the record starting on line 4 runs on to line", "an unclosed quote?"],
    ),
    "UTF-16 text read as utf-8": (
        _csv("wide16.csv", (HEADER + _rows(0, 3)).encode("utf-16")),
        ["data/wide16.csv is UTF-16 text", f"{KEY}.encoding: utf-16"],
    ),
    "random bytes named .csv.gz": (
        _csv("noise.csv.gz", PLANTED * 100),
        ["data/noise.csv.gz does not read as the CSV the config describes: zlib inflate failed"],
    ),
    "random bytes named .parquet": (
        _csv("noise.parquet", PLANTED * 100),
        ["data/noise.parquet is not a readable Parquet file"],
    ),
    "a Parquet file cut in half": (
        _truncated_parquet,
        ["data/cut.parquet is not a readable Parquet file"],
    ),
    "float user_id that is not whole": (
        _parquet("float.parquet", _events(user_id=pa.array([1.0, 2.5, 3.0]))),
        ["data/float.parquet: row 2, column 'user_id' is 2.5: ids must be text or whole numbers"],
    ),
    "bytes user_id that are not UTF-8": (
        _parquet("bytes.parquet", _events(user_id=pa.array([b"u1", PLANTED + b"\xff", b"u3"]))),
        ["data/bytes.parquet: row 2, column 'user_id' holds bytes that are not UTF-8 text"],
    ),
    "a list column mapped to user_id": (
        _parquet("nested.parquet", _events(user_id=pa.array([["a"], ["b"], ["c"]]))),
        ["data/nested.parquet: column 'user_id' holds list<element: string> values"],
    ),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_a_bad_file_fails_once_naming_the_file_and_the_place(tmp_path: Path, case: str) -> None:
    make, expected = CASES[case]
    data = tmp_path / "data"
    data.mkdir()
    source = make(data)
    failure = _fails(tmp_path, _project(tmp_path, source))
    message = str(failure).replace(str(tmp_path) + "/", "")
    for text in expected:
        assert text in message
    assert len(message) < 3_000  # a file's content is never quoted at length


def test_a_file_name_full_of_escape_sequences_is_shown_escaped(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_text(HEADER + _rows(0, 5))
    (data / "b\x1b[31m\x07.csv").write_bytes(b"")
    failure = _fails(tmp_path, _project(tmp_path, "data"))
    assert "b\\x1b[31m\\x07.csv is empty (0 bytes)" in str(failure)


def _mixed_directory(data: Path) -> dict[str, int]:
    """Good daily files and bad ones; returns the good files' row counts."""
    data.mkdir()
    good = {"2026-01-01.csv": 40, "2026-01-03.csv": 25}
    start = 0
    for name, count in good.items():
        (data / name).write_text(HEADER + _rows(start, count))
        start += count
    (data / "2026-01-02.csv").write_bytes(b"")
    # Its first 998 rows are fine: none of them may be ingested once its last line breaks.
    (data / "2026-01-04.csv").write_text(HEADER + _rows(500, 998) + "u1,i1\n")
    (data / "2026-01-05.csv").write_bytes(PLANTED * 50)
    return good


BAD_FILES = {
    "2026-01-02.csv": "is empty (0 bytes)",
    "2026-01-04.csv": ": line 1000 has 2 fields where the header has 5",
    "2026-01-05.csv": "holds binary data, not CSV text",
}


@pytest.mark.parametrize("source", ["data", "'data/*.csv'"])
def test_by_default_a_mixed_directory_fails_listing_every_bad_file(
    tmp_path: Path, source: str
) -> None:
    _mixed_directory(tmp_path / "data")
    failure = _fails(tmp_path, _project(tmp_path, source))
    message = str(failure)
    assert f"3 of 5 files of {KEY} cannot be read" in message
    for name, reason in BAD_FILES.items():
        assert f"{tmp_path / 'data' / name}{' ' if reason[0] != ':' else ''}{reason}" in message
    assert "tasks.ingestion.config.on_bad_file: skip" in message


@pytest.mark.parametrize("source", ["data", "'data/*.csv'"])
def test_on_bad_file_skip_ingests_the_good_files_and_reports_the_bad_ones(
    tmp_path: Path, source: str
) -> None:
    good = _mixed_directory(tmp_path / "data")
    config = _project(tmp_path, source, on_bad_file="skip")
    outcome: TaskOutcome = run_task(config, "ingestion", "r1")
    frame = pd.read_parquet(outcome.checkpoint.path("interactions"))
    assert len(frame) == sum(good.values())
    assert set(frame["user_id"]) <= {f"u{n}" for n in range(13)}
    expected_ids = {f"u{n % 13}" for n in range(sum(good.values()))}
    assert set(frame["user_id"]) == expected_ids
    assert outcome.result.metrics["interactions_files_quarantined"] == len(BAD_FILES)
    reported = {
        Path(q["file"]).name: q["reason"] for q in outcome.checkpoint.metadata["quarantined_files"]
    }
    assert set(reported) == set(BAD_FILES)
    for name, reason in BAD_FILES.items():
        assert reason in reported[name]
    check = {c.name: c for c in outcome.result.checks}["source_files"]
    assert not check.passed and check.severity == "WARN"
    assert "3 source file(s) quarantined" in check.description
    for path in _written_text(tmp_path):
        assert not CONTROL.search(path.read_bytes()), f"control bytes in {path}"
    log = (tmp_path / "logs" / "ingestion.log").read_text()
    assert all(name in log for name in BAD_FILES)


def test_on_bad_file_skip_still_fails_when_no_file_reads(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_bytes(b"")
    (data / "b.csv").write_bytes(PLANTED)
    failure = _fails(tmp_path, _project(tmp_path, "data", on_bad_file="skip"))
    assert f"none of the 2 files of {KEY} can be read" in str(failure)
    assert "a.csv is empty" in str(failure) and "b.csv holds binary data" in str(failure)


def test_a_clean_directory_passes_the_source_files_check(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_text(HEADER + _rows(0, 10))
    (data / "b.csv").write_text(HEADER + _rows(10, 10))
    outcome = run_task(_project(tmp_path, "data", on_bad_file="skip"), "ingestion", "r1")
    assert outcome.result.metrics["interactions_rows"] == 20
    assert outcome.checkpoint.metadata["quarantined_files"] == []
    assert {c.name: c.passed for c in outcome.result.checks}["source_files"] is True


def test_float_ids_that_are_whole_numbers_read_as_integer_ids(tmp_path: Path) -> None:
    """pandas writes integer ids with gaps as float64: 17850.0 is id '17850', NaN none."""
    data = tmp_path / "data"
    data.mkdir()
    _parquet("ids.parquet", _events(user_id=pa.array([17850.0, float("nan"), 3.0])))(data)
    outcome = run_task(_project(tmp_path, "data/ids.parquet"), "ingestion", "r1")
    frame = pd.read_parquet(outcome.checkpoint.path("interactions"))
    assert frame["user_id"].tolist()[::2] == ["17850", "3"]
    assert frame["user_id"].isna().tolist() == [False, True, False]


def test_a_timestamp_text_that_does_not_parse_is_quarantined_naming_file_and_row(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    times = ["2026-01-01T00:00:00Z", "next tuesday", "2026-01-02T00:00:00Z"]
    _parquet("times.parquet", _events(timestamp=pa.array(times)))(data)
    config = _project(tmp_path, "data/times.parquet")
    run_task(config, "ingestion", "r1")
    outcome = run_task(config, "validation", "r1")
    check = {c.name: c for c in outcome.result.checks}["timestamp_parse"]
    assert not check.passed
    assert "data/times.parquet: row 1 timestamp='next tuesday'" in check.description


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "is empty (0 bytes)"),
        (b"x" * (50 << 20), "its first line is longer than 1,048,576 characters"),
        (b"\x1b[31m,\x07,\x1b]0;t\x07\n1,2,3\n", "has no column for"),
    ],
    ids=["empty", "50 MB line", "escape sequences as column names"],
)
def test_validate_reads_a_bad_file_head_cheaply_and_never_echoes_control_bytes(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "events\x1b[1m.csv").write_bytes(content)
    config = _project(tmp_path, '"data/events\\e[1m.csv"')
    with pytest.raises(ConfigError) as caught:
        config.check_data()
    rendered = "\n".join(issue.render(context=False) for issue in caught.value.issues)
    assert expected in rendered and "events\\x1b[1m.csv" in rendered
    assert not CONTROL.search(rendered.replace("\n", "").encode())
    assert len(rendered) < 3_000
