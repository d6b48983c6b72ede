"""Small files in the exact layouts of well-known public data sets, generated (never committed).

Each writer draws from one latent-factor world (so personalised models have signal to find:
a model that works beats popularity) and writes it the way the public set is written: the
MovieLens 100K ``u.data`` (tab separated, no header, unix seconds), MovieLens ``ratings.csv``
(half stars), retail invoice lines (cancellations ``C…``, negative quantities, mixed-type
``StockCode``, float ``CustomerID`` with gaps) and a view/cart/purchase event log (unix ms).
Shared by the end-to-end tests of hand-written overlays and of ``init-data``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recomart_pipeline_tests.helpers import DEFAULT_TASKS, run_in_project, task_rows
from recomart_pipeline_tests.ml.synthetic import make_synthetic

START = 1_767_225_600  # 2026-01-01T00:00:00Z in unix seconds


def world() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Users, items, 1-5 ratings and unix times (each user's events over 60 days)."""
    data = make_synthetic(n_users=300, n_items=120, per_user=25, seed=4)
    users = np.concatenate([data.train.ratings.users, data.test_ratings.users])
    items = np.concatenate([data.train.ratings.items, data.test_ratings.items])
    ratings = np.concatenate([data.train.ratings.values, data.test_ratings.values])
    times = START + np.random.default_rng(4).integers(0, 60 * 86_400, users.size)
    return users, items, ratings, times


def write_u_data(folder: Path) -> Path:
    """MovieLens 100K ``u.data``: user, item, rating, unix seconds; tabs, no header."""
    users, items, ratings, times = world()
    path = folder / "u.data"
    pd.DataFrame({"u": users + 1, "i": items + 1, "r": ratings.astype(int), "t": times}).to_csv(
        path, sep="\t", header=False, index=False
    )
    return path


def write_ratings_dat(folder: Path) -> Path:
    """MovieLens 1M ``ratings.dat``: ``UserID::MovieID::Rating::Timestamp``, no header, unix
    seconds (a separator of two characters)."""
    users, items, ratings, times = world()
    path = folder / "ratings.dat"
    lines = (
        f"{u}::{i}::{r}::{t}\n"
        for u, i, r, t in zip(users + 1, items + 1, ratings.astype(int), times, strict=True)
    )
    path.write_text("".join(lines))
    return path


def write_ratings_csv(folder: Path) -> Path:
    """MovieLens ``ratings.csv``: ``userId,movieId,rating,timestamp`` with half stars."""
    users, items, ratings, times = world()
    half = np.clip(ratings - 0.5 * (np.arange(ratings.size) % 2), 1, 5)
    path = folder / "ratings.csv"
    pd.DataFrame(
        {"userId": users + 1, "movieId": items + 1, "rating": half, "timestamp": times}
    ).to_csv(path, index=False)
    return path


def retail_frame() -> pd.DataFrame:
    """Invoice lines: ``InvoiceNo, StockCode, Description, Quantity, InvoiceDate, UnitPrice,
    CustomerID, Country``; every 29th line a cancellation (``C…``, quantity -1), a third of
    the stock codes with a letter suffix, every 97th customer missing (NaN in a float column)."""
    users, items, _, times = world()
    n = users.size
    cancelled = np.arange(n) % 29 == 0
    return pd.DataFrame(
        {
            "InvoiceNo": [
                ("C" if c else "") + str(536365 + k // 4) for k, c in enumerate(cancelled)
            ],
            "StockCode": [str(85000 + i) if i % 3 else f"{85000 + i}B" for i in items],
            "Description": [f"ITEM {i}" for i in items],
            "Quantity": np.where(cancelled, -1, 1 + np.arange(n) % 4),
            "InvoiceDate": pd.to_datetime(times, unit="s"),
            "UnitPrice": 1.25 + items % 7,
            "CustomerID": np.where(np.arange(n) % 97 == 0, np.nan, 12000.0 + users),
            "Country": "United Kingdom",
        }
    )


def write_retail_parquet(folder: Path) -> Path:
    path = folder / "online_retail.parquet"
    retail_frame().to_parquet(path, index=False)
    return path


def write_repeat_purchases(folder: Path) -> Path:
    """Invoice lines where customers come back for what they bought: each line's customer
    buys the same StockCode again on one to three later invoices (as in the public set, where
    a third of the lines repeat a customer's earlier product)."""
    first = retail_frame()
    rng = np.random.default_rng(7)
    again = first[first["Quantity"] > 0].sample(frac=0.6, random_state=7)
    repeats = again.loc[again.index.repeat(rng.integers(1, 4, len(again)))].copy()
    days = rng.integers(1, 20, len(repeats))
    repeats["InvoiceDate"] = repeats["InvoiceDate"] + pd.to_timedelta(days, unit="D")
    repeats["InvoiceNo"] = [str(600000 + k) for k in range(len(repeats))]
    repeats["Quantity"] = rng.integers(1, 13, len(repeats))
    lines = pd.concat([first, repeats], ignore_index=True).sort_values("InvoiceDate")
    path = folder / "online_retail.parquet"
    lines.to_parquet(path, index=False)
    return path


def write_retail_csv(folder: Path) -> Path:
    """The invoice lines as the public CSV writes them: ``12/1/2010 8:26``-style dates
    (month first, no leading zeros) in Latin-1."""
    frame = retail_frame()
    stamps = frame["InvoiceDate"]
    frame["InvoiceDate"] = [f"{t.month}/{t.day}/{t.year} {t.hour}:{t.minute:02d}" for t in stamps]
    frame["Description"] = frame["Description"] + " £"
    path = folder / "online_retail.csv"
    frame.to_csv(path, index=False, encoding="latin-1")
    return path


def write_event_log(folder: Path) -> Path:
    """A view/cart/purchase log: ``timestamp,visitorid,event,itemid,transactionid`` in unix
    ms, events ``view``/``addtocart``/``transaction`` by how much the user likes the item."""
    users, items, ratings, times = world()
    event = np.where(ratings >= 5, "transaction", np.where(ratings >= 4, "addtocart", "view"))
    path = folder / "events.csv"
    pd.DataFrame(
        {
            "timestamp": times * 1000,
            "visitorid": users,
            "event": event,
            "itemid": items,
            "transactionid": np.where(event == "transaction", np.arange(users.size), None),
        }
    ).to_csv(path, index=False)
    return path


def run_pipeline(project: Path, config: Path) -> tuple[dict[str, str], dict[str, Any], str, str]:
    """``run config`` through the real CLI in ``project``: the task table, evaluation.json,
    the Markdown report and stdout."""
    done = run_in_project(
        [sys.executable, "-m", "recomart_pipeline", "run", str(config)], project, timeout=600
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-3000:]
    storage = project / "storage"
    pointer = json.loads((storage / "latest" / "evaluation.json").read_text())
    evaluation = json.loads((storage / pointer["artifacts"]["evaluation"]["path"]).read_text())
    report = (project / "reports" / "latest.md").read_text()
    return task_rows(done.stdout), evaluation, report, done.stdout


def assert_good_run(rows: dict[str, str], evaluation: dict[str, Any], report: str) -> None:
    """Every task succeeded, the selected model beats popularity on the selection metric,
    and the report says how many users it was evaluated on (at least 100)."""
    assert rows == dict.fromkeys(DEFAULT_TASKS, "SUCCESS")
    best, baseline = evaluation["best_model"], evaluation["baseline"]
    assert best != baseline
    metric = evaluation["selection_metric"]
    assert evaluation["models"][best][metric] > evaluation["models"][baseline][metric]
    assert evaluation["eval_users"] >= 100
    assert f"- evaluated on {evaluation['eval_users']:,} users" in report
