"""Public data sets in their usual shapes run by configuration alone.

Each test writes a few rows in the exact layout of a well-known public data set (no
third-party data is committed), ingests it with the YAML block a user would write — shown
in each test's ``CONFIG`` — and runs validation on the result: the rows must arrive valid.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from recomart_pipeline.contract.errors import SchemaError
from recomart_pipeline.runtime.artifacts import Checkpoint
from recomart_pipeline_tests.data.helpers import TaskHarness

PINNED = {"freshness": {"reference_time": "2026-01-02T00:00:00Z"}}


def ingestion_config(block: str, **paths: Path) -> dict[str, Any]:
    """The ``source:`` YAML a user writes, with ``{name}`` placeholders for file paths."""
    return {"source": yaml.safe_load(block.format(**{k: str(v) for k, v in paths.items()}))}


def ingest_and_validate(
    harness: TaskHarness, config: dict[str, Any]
) -> tuple[dict[str, pd.DataFrame], dict[str, Any], dict[str, Any], Checkpoint]:
    """Raw tables and metrics of ingestion, metrics and checkpoint of validation after it."""
    ingested_result, ingested = harness.run("ingestion", config)
    raw = {t: pd.read_parquet(ingested.path(t)) for t in ("interactions", "items", "users")}
    validated_result, validated = harness.run("validation", PINNED, {"ingestion": ingested})
    return raw, ingested_result.metrics, validated_result.metrics, validated


# --- MovieLens 100K u.data: tab separated, no header, user item rating unix-seconds -----------

U_DATA_CONFIG = """
interactions:
  path: "{data}"
  format: csv            # u.data has no suffix
  delimiter: tab
  header: false
  columns: [user_id, item_id, rating, timestamp]
  constants: {{event_type: rating}}
  timestamp: {{unit: s}}
items: null              # derived from the interactions
users: null
"""


def test_movielens_100k_u_data(harness: TaskHarness, tmp_path: Path) -> None:
    path = tmp_path / "u.data"
    path.write_text("196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n")
    raw, metrics, validated, _ = ingest_and_validate(
        harness, ingestion_config(U_DATA_CONFIG, data=path)
    )
    assert raw["interactions"].to_dict("records")[0] == {
        "user_id": "196",
        "item_id": "242",
        "event_type": "rating",
        "timestamp": "1997-12-04T15:55:49Z",
        "rating": "3",
    }
    assert raw["items"]["item_id"].tolist() == ["242", "302", "377"]
    assert raw["users"]["user_id"].tolist() == ["196", "186", "22"]
    assert metrics["items_files"] == 0 and metrics["interactions_rows_filtered"] == 0
    assert validated["rows_valid"] == 3 and validated["rows_quarantined"] == 0


# --- MovieLens ratings.csv (+ movies.csv): header, camelCase ids, half-star ratings ----------

RATINGS_CONFIG = """
interactions:
  path: "{ratings}"
  column_mapping: {{userId: user_id, movieId: item_id}}
  constants: {{event_type: rating}}
  timestamp: {{unit: s}}
items:
  path: "{movies}"
  column_mapping: {{movieId: item_id, genres: category}}
users: null
"""


def test_movielens_ratings_csv_with_movies(harness: TaskHarness, tmp_path: Path) -> None:
    ratings = tmp_path / "ratings.csv"
    ratings.write_text(
        "userId,movieId,rating,timestamp\n"
        "1,1,4.0,964982703\n1,3,3.5,964981247\n2,1,1.5,1445714835\n"
    )
    movies = tmp_path / "movies.csv"
    movies.write_text(
        "movieId,title,genres\n"
        '1,Toy Story (1995),Adventure|Animation|Children\n3,"American President, The (1995)",'
        "Comedy|Drama|Romance\n"
    )
    config = ingestion_config(RATINGS_CONFIG, ratings=ratings, movies=movies)
    raw, _, validated, checkpoint = ingest_and_validate(harness, config)
    assert raw["interactions"]["rating"].tolist() == ["4.0", "3.5", "1.5"]
    assert raw["interactions"]["timestamp"].iloc[0] == "2000-07-30T18:45:03Z"
    assert raw["items"]["title"].tolist() == [
        "Toy Story (1995)",
        "American President, The (1995)",
    ]
    assert raw["users"]["user_id"].tolist() == ["1", "2"]
    assert validated["rows_valid"] == 3 and validated["rows_quarantined"] == 0
    typed = pd.read_parquet(checkpoint.path("interactions"))
    assert typed["rating"].tolist() == [4.0, 3.5, 1.5]


# --- Online Retail invoice lines: cancellations, mixed StockCode, float CustomerID ------------

RETAIL_CONFIG = """
interactions:
  path: "{invoices}"       # a directory of monthly Parquet files
  column_mapping:
    CustomerID: user_id
    StockCode: item_id
    InvoiceDate: timestamp
    Description: title     # carried into the derived items table
    UnitPrice: price
  constants: {{event_type: purchase}}
  timestamp: {{timezone: Europe/London}}   # InvoiceDate is UK wall-clock time
  filter:
    - {{column: Quantity, op: ">", value: 0}}
    - {{column: InvoiceNo, op: not_startswith, value: C}}
    - {{column: CustomerID, op: not_null}}
items: null
users: null
"""

RETAIL_COLUMNS = [
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
]
DECEMBER = [
    (
        "536365",
        "85123A",
        "WHITE HANGING HEART T-LIGHT HOLDER",
        6,
        "2010-12-01 08:26",
        2.55,
        17850.0,
    ),
    ("536365", "71053", "WHITE METAL LANTERN", 6, "2010-12-01 08:26", 3.39, 17850.0),
    ("C536379", "D", "Discount", -1, "2010-12-01 09:41", 27.5, 14527.0),
    ("536381", "22139", "RETROSPOT TEA SET CERAMIC 11 PC", 1, "2010-12-01 09:41", 4.95, None),
    ("536390", "22941", "CHRISTMAS LIGHTS 10 REINDEER", 0, "2010-12-01 10:19", 8.5, 17511.0),
]
JUNE = [  # a month whose StockCodes happen to be all numbers: the column is int64 here
    (556000, 71053, "WHITE METAL LANTERN", 2, "2011-06-08 12:00", 3.75, 13047.0),
    (556001, 22423, "REGENCY CAKESTAND 3 TIER", 1, "2011-06-08 12:30", 12.75, 17850.0),
]


def _invoices(rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=RETAIL_COLUMNS[:-1]).assign(Country="United Kingdom")
    return frame.assign(InvoiceDate=pd.to_datetime(frame["InvoiceDate"]))


def test_online_retail_invoice_lines_parquet(harness: TaskHarness, tmp_path: Path) -> None:
    folder = tmp_path / "invoices"
    folder.mkdir()
    _invoices(DECEMBER).to_parquet(folder / "2010-12.parquet", index=False)
    _invoices(JUNE).to_parquet(folder / "2011-06.parquet", index=False)
    assert pq.read_schema(folder / "2011-06.parquet").field("StockCode").type == pa.int64()
    raw, metrics, validated, _ = ingest_and_validate(
        harness, ingestion_config(RETAIL_CONFIG, invoices=folder)
    )
    interactions = raw["interactions"]
    # cancelled C536379, the line without a customer and the zero-quantity line are dropped
    assert metrics["interactions_rows_filtered"] == 3
    assert interactions["user_id"].tolist() == ["17850", "17850", "13047", "17850"]
    assert interactions["item_id"].tolist() == ["85123A", "71053", "71053", "22423"]
    assert set(interactions["event_type"]) == {"purchase"}
    # GMT in December, BST (UTC+1) in June
    assert interactions["timestamp"].tolist()[1:3] == [
        "2010-12-01T08:26:00Z",
        "2011-06-08T11:00:00Z",
    ]
    items = raw["items"].set_index("item_id")
    assert items.index.tolist() == ["85123A", "71053", "22423"]
    assert items.loc["71053", "title"] == "WHITE METAL LANTERN"
    assert items.loc["85123A", "price"] == "2.55"
    assert raw["users"]["user_id"].tolist() == ["17850", "13047"]
    assert validated["rows_valid"] == 4 and validated["rows_quarantined"] == 0


RETAIL_CSV_CONFIG = """
interactions:
  path: "{invoices}"       # the original export: Latin-1 text, US-style dates
  encoding: latin-1
  column_mapping: {{CustomerID: user_id, StockCode: item_id, InvoiceDate: timestamp,
                   Description: title, UnitPrice: price}}
  constants: {{event_type: purchase}}
  timestamp: {{format: "%m/%d/%Y %H:%M", timezone: Europe/London}}
  filter:
    - {{column: Quantity, op: ">", value: 0}}
    - {{column: InvoiceNo, op: not_startswith, value: C}}
    - {{column: CustomerID, op: not_null}}
items: null
users: null
"""


def test_online_retail_csv_export(harness: TaskHarness, tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(
        (
            "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
            "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,12/1/2010 8:26,2.55,17850,"
            "United Kingdom\n"
            "C536379,D,Discount,-1,12/1/2010 9:41,27.5,14527,United Kingdom\n"
            "536370,22728,ALARM CLOCK BAKELIKE PINK,24,12/1/2010 8:45,3.75,12583,France\n"
            "536373,21730,GLASS STAR FROSTED T-LIGHT HOLDER £,6,12/1/2010 9:02,4.25,,"
            "United Kingdom\n"
            "556001,22423,CAFÉ CAKESTAND,1,6/8/2011 12:30,12.75,17850,United Kingdom\n"
        ).encode("latin-1")
    )
    raw, metrics, validated, _ = ingest_and_validate(
        harness, ingestion_config(RETAIL_CSV_CONFIG, invoices=path)
    )
    assert metrics["interactions_rows_filtered"] == 2
    assert raw["interactions"]["timestamp"].tolist() == [
        "2010-12-01T08:26:00Z",
        "2010-12-01T08:45:00Z",
        "2011-06-08T11:30:00Z",
    ]
    assert raw["items"]["title"].iloc[-1] == "CAFÉ CAKESTAND"
    assert validated["rows_valid"] == 3 and validated["rows_quarantined"] == 0


def test_unmapped_retail_file_never_proposes_quantity_for_event_type(
    harness: TaskHarness, tmp_path: Path
) -> None:
    folder = tmp_path / "invoices"
    folder.mkdir()
    _invoices(DECEMBER).to_parquet(folder / "2010-12.parquet", index=False)
    config = {"source": {"interactions": str(folder), "items": None, "users": None}}
    with pytest.raises(SchemaError) as raised:
        harness.run("ingestion", config)
    message = str(raised.value)
    assert "event_type: no close match whose values fit" in message
    assert "Quantity: event_type" not in message
    assert "user_id: ['CustomerID']" in message  # its values do fit
    assert "tasks.ingestion.config.source.interactions.constants" in message
    assert "generate-data" not in message


# --- Retailrocket events.csv: unix-ms timestamps, its own event names --------------------------

EVENTS_CONFIG = """
interactions:
  path: "{events}"
  column_mapping: {{visitorid: user_id, itemid: item_id, event: event_type}}
  value_mapping:
    event_type: {{addtocart: add_to_cart, transaction: purchase}}
  timestamp: {{unit: ms}}
items: null
users: null
"""


def test_retailrocket_event_log(harness: TaskHarness, tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(
        "timestamp,visitorid,event,itemid,transactionid\n"
        "1433221332117,257597,view,355908,\n"
        "1433224214164,992329,view,248676,\n"
        "1433221999827,111016,addtocart,10572,\n"
        "1433222276276,111016,transaction,10572,4000\n"
    )
    raw, _, validated, _ = ingest_and_validate(
        harness, ingestion_config(EVENTS_CONFIG, events=path)
    )
    interactions = raw["interactions"]
    assert interactions["event_type"].tolist() == ["view", "view", "add_to_cart", "purchase"]
    assert interactions["timestamp"].iloc[0] == "2015-06-02T05:02:12.117Z"
    assert interactions["rating"].isna().all()
    assert raw["items"]["item_id"].tolist() == ["355908", "248676", "10572"]
    assert validated["rows_valid"] == 4 and validated["rows_quarantined"] == 0
