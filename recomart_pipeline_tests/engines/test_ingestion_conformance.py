"""Conformance: ingestion's rules after the read on the local (DuckDB) and spark (Spark SQL)
engines equal the pandas/pyarrow reference.

Each case ingests the same sources on pandas and on the engine and compares every raw table
byte for byte (same schema, rows, order and values, written by the same ``ParquetSink``),
every metric and check, and the metadata; a bad source must fail with the same error
(type, message, hint). The cases that must run on the engine assert it did (the checkpoint
metadata's ``engine``; for spark, that Spark ran jobs); the cases the engine hands back to
the reference assert that too, with the reason recorded. Data shapes are generated here:
the bundled sample, generated dirty data, MovieLens ``ratings.dat`` (``::``), invoice lines
(quoted Latin-1 CSV with a strptime time format; Parquet with float ids and real
timestamps), a Unix-ms event log, hostile names and values, empty files.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recomart_pipeline.contract.catalog import builtin_spec
from recomart_pipeline.contract.errors import TaskError
from recomart_pipeline.contract.task import TaskResult
from recomart_pipeline.datagen import generate_dataset
from recomart_pipeline.runtime.artifacts import ArtifactStore
from recomart_pipeline_tests.data.helpers import REPO_ROOT, TaskHarness, sources
from recomart_pipeline_tests.engines.conformance import spark_jobs
from recomart_pipeline_tests.real_shapes import (
    write_event_log,
    write_ratings_dat,
    write_retail_csv,
    write_retail_parquet,
)

ENGINE_KEYS = ("engine", "engine_fallbacks")


@pytest.fixture(params=["local", pytest.param("spark", marks=pytest.mark.slow)])
def engine(request: pytest.FixtureRequest) -> str:
    """Each SQL engine in turn; spark on the module's local[2] session."""
    if request.param == "spark":
        request.getfixturevalue("spark_session")
    return str(request.param)


def ingest_on(harness: TaskHarness, engine: str, config: dict[str, Any]) -> TaskResult:
    """Ingest on ``engine`` with a store of its own, so that each engine's schema approval
    sees the same history (the first run records the schema, later ones compare)."""
    store = ArtifactStore(harness.store.root.parent / f"{harness.store.root.name}-{engine}")
    ctx = TaskHarness(store, project_root=harness.project_root).context("ingestion", config)
    ctx.engine = engine
    result = builtin_spec("ingestion").function()(ctx)
    assert isinstance(result, TaskResult)
    return result


def _seen(result: TaskResult) -> dict[str, Any]:
    """What downstream tasks and operators see of an ingestion run (bar the engine)."""
    return {
        "files": {
            name: hashlib.sha256(Path(path).read_bytes()).hexdigest()
            for name, path in result.outputs.items()
        },
        "metrics": result.metrics,
        "metadata": {k: v for k, v in result.metadata.items() if k not in ENGINE_KEYS},
        "checks": [(c.name, c.passed, c.severity, c.description) for c in result.checks],
    }


def assert_conform(
    harness: TaskHarness,
    engine: str,
    config: dict[str, Any],
    ran: str | None = None,
    sql: bool = True,
) -> TaskResult:
    """Ingest on pandas and on ``engine``; the same files, metrics, checks and metadata.
    ``ran``: the engine the metadata must name (default: ``engine`` itself, no fallback);
    ``sql``: whether the rules leave the engine anything to compute (False: every file only
    picks and renames columns, so its read batches are the rows and no Spark job runs)."""
    reference = ingest_on(harness, "pandas", config)
    jobs = spark_jobs() if engine == "spark" else 0
    found = ingest_on(harness, engine, config)
    assert reference.metadata["engine"] == "pandas"
    assert found.metadata["engine"] == (ran or engine), found.metadata.get("engine_fallbacks")
    if engine == "spark" and found.metadata["engine"] == "spark":
        assert (spark_jobs() > jobs) == sql, "a Spark job ran" if not sql else "no Spark job ran"
    if found.metadata["engine"] == engine:
        assert found.metadata["engine_fallbacks"] == []
    expected, seen = _seen(reference), _seen(found)
    for table, digest in expected["files"].items():
        if seen["files"][table] != digest:  # say which rows differ, not only the hash
            assert (
                pq.read_table(found.outputs[table]).to_pylist()
                == pq.read_table(reference.outputs[table]).to_pylist()
            ), table
            assert pq.read_schema(found.outputs[table]) == pq.read_schema(reference.outputs[table])
        assert seen["files"][table] == digest, table
    assert seen == expected
    return found


def assert_same_error(harness: TaskHarness, engine: str, config: dict[str, Any]) -> str:
    """Both engines refuse the sources with the same error and hint; the message."""
    errors = []
    for name in ("pandas", engine):
        with pytest.raises(TaskError) as caught:
            ingest_on(harness, name, config)
        errors.append((type(caught.value), str(caught.value), caught.value.hint))
    assert errors[0] == errors[1]
    assert "duckdb" not in errors[1][1].lower() and "spark" not in errors[1][1].lower()
    return errors[1][1]


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def _interactions(source: dict[str, Any]) -> dict[str, Any]:
    """A config whose items and users are derived from the interactions."""
    return {"source": {"interactions": source, "items": None, "users": None}}


# --- the bundled sample and generated data ------------------------------------------------


def test_bundled_sample(harness: TaskHarness, engine: str) -> None:
    """The bundled files need no rule (their columns are the canonical ones, times already
    ISO text): the read batches are the rows, on either engine."""
    raw = {t: REPO_ROOT / "data" / f"{t}.csv" for t in ("interactions", "items", "users")}
    result = assert_conform(harness, engine, sources(raw), sql=False)
    assert result.metrics["interactions_rows"] > 0


def test_rules_that_only_pick_and_rename_columns(
    tmp_path: Path, harness: TaskHarness, engine: str
) -> None:
    """Columns renamed by column_mapping (names with quotes, ``;`` and ``--``), an optional
    column absent, an extra column left out, blanks, nulls and hostile values: the read
    batches, picked and renamed, are the reference's rows, the engine computing nothing."""
    table = pa.table(
        {
            "extra": ["x", "y", "z", None],
            "wh'en": ["2026-01-02T03:04:05Z", "", None, "2026-01-02"],
            "what": ["view", HOSTILE, None, "view"],
            'who "id"; --': ["u1", "", "用户", None],
            "item": ["i1", "i2", HOSTILE, "i4"],
        }
    )
    pq.write_table(table, tmp_path / "events.parquet")
    mapping = {
        'who "id"; --': "user_id",
        "item": "item_id",
        "what": "event_type",
        "wh'en": "timestamp",
    }
    config = _interactions({"path": str(tmp_path / "events.parquet"), "column_mapping": mapping})
    result = assert_conform(harness, engine, config, sql=False)
    assert result.metrics["interactions_rows"] == 4
    rows = pq.read_table(result.outputs["interactions"]).to_pylist()
    assert [(r["user_id"], r["item_id"], r["timestamp"]) for r in rows] == [
        ("u1", "i1", "2026-01-02T03:04:05Z"),
        ("", "i2", ""),
        ("用户", HOSTILE, None),
        (None, "i4", "2026-01-02"),
    ]


@pytest.mark.parametrize("file_format", ["csv", "parquet"])
@pytest.mark.parametrize("chunk_rows", [1_000_000, 700])
def test_generated_dirty_data(
    tmp_path: Path, harness: TaskHarness, engine: str, file_format: str, chunk_rows: int
) -> None:
    """Every fault the generator makes, read in one batch or in many on the reference side."""
    data = generate_dataset(
        tmp_path / "gen",
        users=200,
        items=80,
        interactions=5000,
        seed=11,
        dirty_fraction=0.05,
        file_format=file_format,  # type: ignore[arg-type]
    )
    config: dict[str, Any] = {**sources(data), "chunk_rows": chunk_rows}
    config["source"]["interactions"] = {
        "path": str(data["interactions"]),
        "timestamp": {"unit": "iso"},
        "filter": [{"column": "event_type", "op": "!=", "value": "view"}],
        "value_mapping": {"event_type": {"purchase": "buy"}},
    }
    # The generated Parquet catalogues hold floats (price) and timestamps (signup_date),
    # whose text the reference spells itself: those two files are read by pandas.
    result = assert_conform(harness, engine, config, "mixed" if file_format == "parquet" else None)
    assert result.metrics["interactions_rows_filtered"] > 0
    fallbacks = {f["table"] for f in result.metadata["engine_fallbacks"]}
    assert fallbacks == ({"items", "users"} if file_format == "parquet" else set())


def test_directory_in_sorted_order_with_derived_tables(
    tmp_path: Path, harness: TaskHarness, engine: str
) -> None:
    """A directory of daily files (read in name order) with catalogue columns for the derived
    items and users tables."""
    folder = tmp_path / "days"
    for day in (3, 1, 2):
        rows = "".join(
            f"u{(day * 7 + k) % 5},i{k % 4},view,2026-01-0{day}T0{k}:00:00Z,c{k}\n"
            for k in range(6)
        )
        _write(folder / f"day-{day}.csv", "user_id,item_id,event_type,timestamp,category\n" + rows)
    config = _interactions({"path": str(folder), "value_mapping": {"event_type": {"view": "v"}}})
    result = assert_conform(harness, engine, config)
    assert result.metrics["interactions_files"] == 3


# --- real data shapes -----------------------------------------------------------------------


def test_movielens_ratings_dat(tmp_path: Path, harness: TaskHarness, engine: str) -> None:
    """``UserID::MovieID::Rating::Timestamp``, no header, Unix seconds, one kind of event."""
    path = write_ratings_dat(tmp_path)
    config = _interactions(
        {
            "path": str(path),
            "format": "csv",
            "delimiter": "::",
            "header": False,
            "columns": ["user_id", "item_id", "rating", "timestamp"],
            "timestamp": {"unit": "s"},
            "constants": {"event_type": "rating"},
        }
    )
    result = assert_conform(harness, engine, config)
    first = pq.read_table(result.outputs["interactions"]).slice(0, 1).to_pylist()[0]
    assert first["timestamp"].endswith("Z") and first["event_type"] == "rating"


def test_online_retail_csv(tmp_path: Path, harness: TaskHarness, engine: str) -> None:
    """Quoted Latin-1 invoice lines: cancellations filtered out, a strptime date format in
    London time (every distinct time goes through the reference's parser), value_mapping,
    and aggregation summing the quantities."""
    path = write_retail_csv(tmp_path)
    config = _interactions(
        {
            "path": str(path),
            "encoding": "latin-1",
            "column_mapping": {
                "CustomerID": "user_id",
                "StockCode": "item_id",
                "InvoiceDate": "timestamp",
                "Description": "title",
                "Country": "event_type",
            },
            "filter": [
                {"column": "InvoiceNo", "op": "not_startswith", "value": "C"},
                {"column": "Quantity", "op": ">", "value": 0},
                {"column": "CustomerID", "op": "not_null"},
            ],
            "value_mapping": {"event_type": {"United Kingdom": "purchase"}},
            "timestamp": {"format": "%m/%d/%Y %H:%M", "timezone": "Europe/London"},
            "aggregate": {"weight": "sum:Quantity"},
        }
    )
    result = assert_conform(harness, engine, config)
    assert result.metrics["interactions_rows_filtered"] > 0
    assert result.metadata["interactions_aggregation"]["rows_folded"] > 0


def test_online_retail_parquet_falls_back(
    tmp_path: Path, harness: TaskHarness, engine: str
) -> None:
    """Float customer ids and real timestamps: the reference's own text for them is not the
    SQL's, so the file is read by pandas, and the metadata says why."""
    path = write_retail_parquet(tmp_path)
    config = _interactions(
        {
            "path": str(path),
            "column_mapping": {
                "CustomerID": "user_id",
                "StockCode": "item_id",
                "InvoiceDate": "timestamp",
            },
            "constants": {"event_type": "purchase"},
            "timestamp": {"unit": "iso", "timezone": "Europe/London"},
        }
    )
    result = assert_conform(harness, engine, config, ran="pandas")
    (fallback,) = result.metadata["engine_fallbacks"]
    assert "CustomerID" in fallback["reason"] and "InvoiceDate" in fallback["reason"]


def test_event_log_in_unix_ms(tmp_path: Path, harness: TaskHarness, engine: str) -> None:
    """Unix milliseconds (whole seconds), events renamed by value_mapping, an empty column."""
    path = write_event_log(tmp_path)
    config = _interactions(
        {
            "path": str(path),
            "column_mapping": {"visitorid": "user_id", "itemid": "item_id", "event": "event_type"},
            "value_mapping": {
                "event_type": {"addtocart": "add_to_cart", "transaction": "purchase"}
            },
            "timestamp": {"unit": "ms"},
            "filter": [{"column": "transactionid", "op": "is_null"}],
        }
    )
    result = assert_conform(harness, engine, config)
    assert result.metrics["interactions_rows_filtered"] > 0


# --- spellings on the border between the SQL and the reference's parsers -------------------

ISO_TIMES = [
    "2026-01-01T10:00:00Z",
    "2026-01-01 10:00Z",
    "2026-01-01T10:00:05+05:45",
    "2026-06-30T23:59:59-00:00",
    "2026-06-30",
    "1678-01-01",
    "2261-12-31T23:00:00-05:00",  # past the typed layout's range once in UTC: kept as text
    "2026-02-30T00:00:00",  # no such day
    "2026-01-01T10:00:00.000Z",  # a zero fraction: whole seconds
    "2026-01-01t10:00:00z",  # lowercase: the reference parses it
    "2026-01-01T10:00:00+0200",
    "20260101T100000",
    "not-a-date",
    "",
    " 2026-01-01",
    "1500-01-01",
    # The output's own spelling is kept as read when it names a real instant in range; the
    # same length and shape otherwise goes through the conversion or the reference.
    "2024-02-29T23:59:59Z",
    "2026-02-29T12:00:00Z",  # no such day, in the output's spelling
    "2026-01-01 10:00:00Z",  # a space where the output has T
    "1678-01-01T00:00:00Z",
    "2261-12-31T23:59:59Z",
    "2262-12-31T23:59:59Z",  # past the typed range
    "2026-13-01T00:00:00Z",
]


def _times_file(tmp_path: Path, times: list[str]) -> Path:
    rows = "".join(f"u{k % 3},i{k % 5},view,{t}\n" for k, t in enumerate(times))
    return _write(tmp_path / "times.csv", "user_id,item_id,event_type,timestamp\n" + rows)


@pytest.mark.parametrize("timezone", ["UTC", "America/New_York"])
def test_iso_spellings(tmp_path: Path, harness: TaskHarness, engine: str, timezone: str) -> None:
    path = _times_file(tmp_path, ISO_TIMES)
    config = _interactions({"path": str(path), "timestamp": {"timezone": timezone}})
    result = assert_conform(harness, engine, config)
    written = pq.read_table(result.outputs["interactions"]).column("timestamp").to_pylist()
    assert "not-a-date" in written and "2026-02-30T00:00:00" in written
    assert "2024-02-29T23:59:59Z" in written and "2026-01-01T10:00:00Z" in written
    assert "2026-01-01 10:00:00Z" not in written


# Seconds (scaled to each unit): past the typed range, leading zeros and a sign, the
# reference's number spellings that are not plain integers, and text that is no number.
EPOCH_SECONDS = ["1767225600", "0", "-86400", "007", "9220000000", "1.5e9", "", "abc", "+5"]


@pytest.mark.parametrize("unit", ["s", "ms", "ns"])
def test_epoch_spellings(tmp_path: Path, harness: TaskHarness, engine: str, unit: str) -> None:
    """Plain integers are the SQL's; '1.5e9' makes the reference read its whole batch as
    floats, which a whole-file statement cannot mirror: that file goes to the reference."""
    scale = {"s": "", "ms": "000", "ns": "000000000"}[unit]
    plain = [f"{t}{scale}" if t.lstrip("+-").isdigit() else t for t in EPOCH_SECONDS]
    clean = [t for t in plain if t != "1.5e9"]
    config = _interactions({"path": str(_times_file(tmp_path, clean)), "timestamp": {"unit": unit}})
    assert_conform(harness, engine, config)
    odd = tmp_path / "odd"
    config = _interactions({"path": str(_times_file(odd, plain)), "timestamp": {"unit": unit}})
    result = assert_conform(harness, engine, config, ran="pandas")
    assert "plain integers" in result.metadata["engine_fallbacks"][0]["reason"]


def test_fractions_of_a_second_fall_back(tmp_path: Path, harness: TaskHarness, engine: str) -> None:
    """The reference writes each read batch at its own precision: sub-second times go to it."""
    path = _times_file(tmp_path, ["1767225600123", "1767225601000"])
    config = _interactions({"path": str(path), "timestamp": {"unit": "ms"}})
    result = assert_conform(harness, engine, config, ran="pandas")
    assert "fractions of a second" in result.metadata["engine_fallbacks"][0]["reason"]


def test_a_batch_with_fractions_is_the_references(
    tmp_path: Path, harness: TaskHarness, engine: str
) -> None:
    """Read in 100-row batches, only the second has sub-second times: the reference writes
    that batch in milliseconds and the others in seconds. On DuckDB the engine runs each
    batch the reference reads and hands that one batch back, so the file is still equal
    (``mixed``); Spark, which reads the whole file at once, hands back the whole file."""
    stamps = [str(1_767_225_600_000 + 1_000 * k + (7 if 100 <= k < 200 else 0)) for k in range(300)]
    path = tmp_path / "ms.parquet"
    pq.write_table(
        pa.table(
            {
                "user_id": [f"u{k % 7}" for k in range(300)],
                "item_id": [f"i{k % 11}" for k in range(300)],
                "event_type": ["view"] * 300,
                "timestamp": stamps,
            }
        ),
        path,
    )
    config = {
        **_interactions({"path": str(path), "timestamp": {"unit": "ms"}}),
        "chunk_rows": 100,
    }
    result = assert_conform(harness, engine, config, "mixed" if engine == "local" else "pandas")
    written = pq.read_table(result.outputs["interactions"]).column("timestamp").to_pylist()
    assert written[0] == "2026-01-01T00:00:00Z" and written[100] == "2026-01-01T00:01:40.007Z"
    (fallback,) = result.metadata["engine_fallbacks"]
    assert fallback["reason"].startswith("1 of 3 read batch" if engine == "local" else "")


def test_numeric_filters_on_odd_spellings(
    tmp_path: Path, harness: TaskHarness, engine: str
) -> None:
    amounts = ["5", "0.5", "1e2", " 7", "-3", "inf", "nan", "abc", "", "010", "2.50", "-0"]
    rows = "".join(f"u{k},i{k},view,2026-01-01T00:00:00Z,{a}\n" for k, a in enumerate(amounts))
    path = _write(tmp_path / "q.csv", "user_id,item_id,event_type,timestamp,qty\n" + rows)
    for op, value in ((">", 1), ("<=", 2.5), ("==", 100), ("!=", 5), ("in", [5, "abc", True])):
        config = _interactions(
            {"path": str(path), "filter": [{"column": "qty", "op": op, "value": value}]}
        )
        assert_conform(harness, engine, config)
    config = _interactions({"path": str(path), "aggregate": {"weight": "sum:qty"}})
    assert_conform(harness, engine, config)


# --- hostile names and values ---------------------------------------------------------------

HOSTILE = "x'; DROP TABLE src; --\"é"


@pytest.mark.parametrize("extra", [None, "file_row_number", "N"])
def test_hostile_names_and_values_in_parquet(
    tmp_path: Path, harness: TaskHarness, engine: str, extra: str | None
) -> None:
    """Column names and filter/mapped values with quotes and semicolons are data, never SQL;
    Unicode ids pass through. An ``extra`` column named like the engines' own (a row number;
    ``N`` beside ``n``, one name to case-insensitive SQL) changes nothing."""
    path = tmp_path / "hostile.parquet"
    columns = {
        'user "id"; --': ["ü1", "ü2", HOSTILE, "用户", None],
        "it'em": ["i1", HOSTILE, "i3", "i4", "i5"],
        "ev;ent": ["view", "view", HOSTILE, "view", "buy"],
        "Ts": ["2026-01-01T00:00:00Z"] * 5,
        "n": pa.array([1, 2, 3, 4, 5], pa.int64()),
    }
    if extra is not None:
        columns[extra] = ["x"] * 5
    pq.write_table(pa.table(columns), path)
    config = _interactions(
        {
            "path": str(path),
            "column_mapping": {
                'user "id"; --': "user_id",
                "it'em": "item_id",
                "ev;ent": "event_type",
                "Ts": "timestamp",
            },
            "filter": [
                {"column": "it'em", "op": "!=", "value": "i3"},
                {"column": "ev;ent", "op": "not_in", "value": ["buy", "x'); DROP TABLE src; --"]},
                {"column": "n", "op": ">=", "value": 1},
            ],
            "value_mapping": {"event_type": {HOSTILE: "purchase"}, "user_id": {"ü1": HOSTILE}},
            "timestamp": {"unit": "iso"},
        }
    )
    result = assert_conform(harness, engine, config)
    users = pq.read_table(result.outputs["interactions"]).column("user_id").to_pylist()
    assert HOSTILE in users and "用户" in users


def test_hostile_names_in_csv(tmp_path: Path, harness: TaskHarness, engine: str) -> None:
    header = 'user;id,itém,"ev""t",ts\n'
    rows = f"ü1,i1,view,2026-01-01\n{HOSTILE.replace(',', '')},i2,view,2026-01-02\n"
    path = _write(tmp_path / "hostile.csv", header + rows.replace('"', ""))
    config = _interactions(
        {
            "path": str(path),
            "column_mapping": {
                "user;id": "user_id",
                "itém": "item_id",
                'ev"t': "event_type",
                "ts": "timestamp",
            },
            "filter": [{"column": "user;id", "op": "startswith", "value": "x'"}],
            "constants": {},
            "timestamp": {"unit": "iso"},
        }
    )
    assert_conform(harness, engine, config)


# --- bad and empty files: the same errors ----------------------------------------------------


def test_bad_files_fail_alike(tmp_path: Path, harness: TaskHarness, engine: str) -> None:
    header = "user_id,item_id,event_type,timestamp\n"
    cases = {
        "empty.csv": b"",
        "header_only.csv": header.encode(),
        "ragged.csv": (header + "u1,i1,view,2026-01-01\nu2,i2\n").encode(),
        "too_many.csv": (header + "u1,i1,view,2026-01-01,extra\n").encode(),
        "not_utf8.csv": header.encode() + b"u1,i\xff,view,2026-01-01\n",
    }
    messages = {}
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        messages[name] = assert_same_error(harness, engine, _interactions({"path": str(path)}))
    assert "empty" in messages["empty.csv"] and "no data rows" in messages["header_only.csv"]


def test_on_bad_file_skip(tmp_path: Path, harness: TaskHarness, engine: str) -> None:
    """A directory with a bad file: skipped whole on both, reported alike."""
    header = "user_id,item_id,event_type,timestamp\n"
    _write(tmp_path / "in" / "a.csv", header + "u1,i1,view,2026-01-01\n")
    _write(tmp_path / "in" / "b.csv", header + "u2,i2,view,2026-01-02\nu3,i3\n")
    _write(tmp_path / "in" / "c.csv", header + "u4,i4,view,2026-01-03\n")
    source = {"path": str(tmp_path / "in"), "value_mapping": {"event_type": {"view": "v"}}}
    config = {**_interactions(source), "on_bad_file": "skip"}
    result = assert_conform(harness, engine, config)
    assert result.metrics["interactions_files_quarantined"] == 1
    assert result.metrics["interactions_rows"] == 2
