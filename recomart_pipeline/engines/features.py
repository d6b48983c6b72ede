"""The features task's relational part as SQL, run by DuckDB (``local``) or Spark SQL (``spark``).

What is relational is written here once: the index maps (distinct ids, sorted, numbered from
0), every event joined to its indices, its confidence weight (the event type's weight, or
the rating's, times ingestion's aggregate ``weight``) and whether it is a held-out positive,
the latest rating per pair, the distinct positive pairs, and the per-user and per-item
statistics (counts, last event, favourite category, ranks). The same
text runs on both engines; ``Dialect`` (``sql.py``) holds the one spelling they differ on
here (a Parquet nanosecond timestamp as epoch nanoseconds).

What is not SQL, on purpose (the task does it with numpy/scipy from the Arrow this module
streams): sums of floating-point values. The confidence matrix sums its pairs' float32
weights and ``mean_rating`` sums float32 ratings in float64; the reference adds them in row
order (scipy, ``numpy.bincount``), whereas a SQL ``sum`` adds in whatever order its threads
meet and in its own precision, which changes the last bit of some sums (8,403 of 657,903
matrix entries at 1M generated interactions with weights 0.1/0.7/2.3). The distinct
partners per user and item (``n_items``, ``n_users``) also come from the matrix build: its
pairs before zero sums are dropped. Everything SQL computes here is exact in any order:
integer counts and maxima, comparisons, and one float32 product per event (a product of two
float32 values is exact in double, so it rounds to float32 the same way on every engine).

Exactness notes, where engines and numpy could disagree:
- Ids sort by code point (Python's order) on both engines: binary string comparison of
  UTF-8 is code-point order.
- Comparisons with NaN: numpy says false, SQL engines sort NaN above every number. A rating
  counts only if it is a number (``is_rating`` excludes null and NaN), so no NaN is compared.
- numpy compares a float32 rating with the threshold in float32 (NumPy 2's weak Python
  scalars): the threshold and the low-rating weight are rounded to float32 here as well,
  in Python, and event weights reach the SQL as a float32 table.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from recomart_pipeline.contract.closing import ClosedOnExit
from recomart_pipeline.engines.sql import SqlSession, parquet_column_types

ID_COLUMNS: tuple[str, ...] = ("user_id", "item_id", "event_type")
# Timestamps the SQL reads as epoch nanoseconds without loss (Parquet TIMESTAMP(NANOS)).
NS_TIMESTAMPS = ("TIMESTAMP_NS", "TIMESTAMPTZ_NS")


@dataclass(frozen=True)
class WeightRules:
    """The features config as plain values (the engine knows no config model)."""

    event_weights: Mapping[str, float]
    positive_rating_threshold: float
    low_rating_weight: float
    positive_event_types: Sequence[str]


@dataclass(frozen=True)
class Inputs:
    """The features task's input files (``fold_in``: None when preparation wrote none)."""

    train: Path
    test: Path
    fold_in: Path | None
    items: Path
    users: Path


def readable(path: Path) -> bool:
    """The SQL reads the typed layout preparation writes: text ids and event types and a
    nanosecond timestamp. Anything else (a hand-made upstream) is the reference's to read."""
    types = parquet_column_types(path)
    return (
        all(types.get(column) == "VARCHAR" for column in ID_COLUMNS)
        and types.get("timestamp") in NS_TIMESTAMPS
        and "rating" in types
    )


def _float32(value: float) -> float:
    """``value`` rounded to float32, as numpy rounds a Python scalar met by float32 data
    (the SQL casts it to FLOAT too; rounding here first keeps a value past float32's range
    an infinity, as in numpy, where DuckDB's cast would refuse it)."""
    return float(np.float32(value))


# Category codes stay below this: a user's favourite is one integer key (``_top_category``).
_CODE_SPAN = 2**32


class FeatureTables(ClosedOnExit):
    """The features' tables of one split, computed in a SQL session; use as a context
    manager (closing it closes the session).

    Kept in the session: ``user_index``, ``item_index`` (with ``category_code``, the
    category's rank by name), ``holdout_index`` and the three encoded event tables
    ``train_enc``, ``test_enc``, ``fold_enc`` (indices, the item's category code, weight,
    rating, flags; no id strings but test's user), from which every output is a query.
    """

    def __init__(self, session: SqlSession, inputs: Inputs, rules: WeightRules) -> None:
        self._session = session
        self._sql = session.dialect
        try:
            self._prepare(inputs, rules)
        except BaseException:
            session.close()
            raise

    def close(self) -> None:
        self._session.close()

    # -- setting up -------------------------------------------------------------------------

    def _prepare(self, inputs: Inputs, rules: WeightRules) -> None:
        session = self._session
        session.scan("train", inputs.train)
        session.scan("test", inputs.test)
        session.scan("items", inputs.items)
        session.scan("users", inputs.users)
        types = sorted({*rules.event_weights, *rules.positive_event_types})
        session.register(
            "event_types",
            pa.table(
                {
                    "event_type": pa.array(types, pa.string()),
                    # numpy's map(...).astype(float32): each weight rounded to float32 once
                    "w": pa.array(
                        np.array([rules.event_weights.get(t, 0.0) for t in types], np.float32)
                    ),
                    "positive": pa.array([t in rules.positive_event_types for t in types]),
                }
            ),
        )
        params = {
            "threshold": _float32(rules.positive_rating_threshold),
            "low": _float32(rules.low_rating_weight),
        }
        fold_in = inputs.fold_in or inputs.train
        if inputs.fold_in is not None:
            session.scan("fold_in", inputs.fold_in)
        else:  # no fold-in: an empty table of the same columns
            session.keep("fold_in", "SELECT * FROM train WHERE 1 = 0", {})
        session.keep("user_index", self._index("train", "user_id", "user_idx"), {})
        # The catalog's first row per item gives its category and price; category_code
        # ranks categories by name (only the non-null ranks' order matters: the engines
        # sort nulls differently).
        session.keep(
            "item_index",
            f"""
            SELECT ids.item_id, ids.item_idx, c.category, CAST(c.price AS DOUBLE) AS price,
                   CASE WHEN c.category IS NOT NULL
                        THEN dense_rank() OVER (ORDER BY c.category) END AS category_code
            FROM ({self._index("train", "item_id", "item_idx")}) ids
            LEFT JOIN (SELECT item_id, category, price FROM (
                           SELECT item_id, category, price,
                                  row_number() OVER (PARTITION BY item_id ORDER BY rn) AS k
                           FROM items) numbered
                       WHERE k = 1) c ON c.item_id = ids.item_id
            """,
            {},
        )
        # Held-out users: fold-in users with no train event, numbered by id apart.
        session.keep(
            "holdout_index",
            self._index(
                f"(SELECT f.user_id FROM fold_in f {self._sql.anti_join} user_index u "
                "ON u.user_id = f.user_id)",
                "user_id",
                "history_row",
            ),
            {},
        )
        train = self._typed("train", inputs.train)
        session.keep("train_enc", self._encoded(train, "user_index", "user_idx"), params)
        test = self._encoded(self._typed("test", inputs.test), "user_index", "user_idx", True)
        session.keep(
            "test_enc",
            f"SELECT e.*, h.history_row FROM ({test}) e "
            "LEFT JOIN holdout_index h ON h.user_id = e.user_id",
            params,
        )
        fold = self._typed("fold_in", fold_in)
        session.keep("fold_enc", self._encoded(fold, "holdout_index", "history_row"), params)

    @staticmethod
    def _index(source: str, column: str, index: str) -> str:
        """The distinct non-null ``column`` values of ``source``, sorted, numbered from 0."""
        return (
            f"SELECT {column}, CAST(row_number() OVER (ORDER BY {column}) - 1 AS INT) AS {index} "
            f"FROM (SELECT DISTINCT {column} FROM {source} ids "
            f"WHERE {column} IS NOT NULL) distinct_ids"
        )

    def _typed(self, view: str, path: Path) -> str:
        """Every event of ``view`` with its weight (float32) and flags, still with its ids.

        weight = (is_rating ? (rating >= threshold ? rating : low) : event type's weight)
        × aggregate weight (null or NaN: one event), each step in float32 as the reference.
        """
        p = self._sql.param
        columns = parquet_column_types(path)
        times = "CAST(e.weight AS FLOAT)" if "weight" in columns else "CAST(NULL AS FLOAT)"
        liked = f"rating >= CAST({p('threshold')} AS FLOAT)"
        return f"""
            SELECT rn, user_id, item_id, ts_ns, rating, is_rating,
                   CAST(CASE WHEN is_rating THEN
                                 CASE WHEN {liked} THEN rating
                                      ELSE CAST({p("low")} AS FLOAT) END
                             ELSE type_weight END AS FLOAT)
                   * CASE WHEN times IS NULL OR isnan(times) THEN CAST(1 AS FLOAT)
                          ELSE times END AS weight,
                   (type_positive OR (is_rating AND {liked})) AS positive
            FROM (SELECT e.rn, e.user_id, e.item_id,
                         {self._sql.ns_timestamp('e."timestamp"')} AS ts_ns,
                         CAST(e.rating AS FLOAT) AS rating,
                         coalesce(e.event_type = 'rating' AND e.rating IS NOT NULL
                                  AND NOT isnan(e.rating), false) AS is_rating,
                         {times} AS times,
                         coalesce(t.w, CAST(0 AS FLOAT)) AS type_weight,
                         coalesce(t.positive, false) AS type_positive
                  FROM {view} e LEFT JOIN event_types t ON t.event_type = e.event_type) typed
        """

    @staticmethod
    def _encoded(typed: str, users: str, user_key: str, keep_user_id: bool = False) -> str:
        """``typed`` with the dense indices (-1: not in the index) instead of the ids, and
        the item's category code (taken in the same join: the favourite category then needs
        no second join of every event with the item index)."""
        user_id = "e.user_id, " if keep_user_id else ""
        return f"""
            SELECT e.rn, {user_id}coalesce(u.{user_key}, -1) AS user_idx,
                   coalesce(i.item_idx, -1) AS item_idx, i.category_code, e.ts_ns, e.rating,
                   e.is_rating, e.weight, e.positive
            FROM ({typed}) e
            LEFT JOIN {users} u ON u.user_id = e.user_id
            LEFT JOIN item_index i ON i.item_id = e.item_id
        """

    # -- results -----------------------------------------------------------------------------

    def user_index(self) -> pa.Table:
        return self._session.fetch("SELECT user_id, user_idx FROM user_index ORDER BY user_idx")

    def item_index(self) -> pa.Table:
        return self._session.fetch(
            "SELECT item_id, item_idx, category, price FROM item_index ORDER BY item_idx"
        )

    def holdout_index(self) -> pa.Table:
        return self._session.fetch(
            "SELECT user_id, history_row FROM holdout_index ORDER BY history_row"
        )

    def train_events(self, batch_rows: int) -> Iterator[pa.RecordBatch]:
        """Every train event in input order: ``user_idx``, ``item_idx``, ``timestamp``
        (epoch ns), ``weight``, ``rating`` (null unless a rating event), ``positive``."""
        yield from self._events("train_enc", "TRUE", batch_rows)

    def history_events(self, batch_rows: int) -> Iterator[pa.RecordBatch]:
        """The held-out users' fold-in events with a known item, in input order, as
        ``train_events`` (``user_idx`` is the history row)."""
        yield from self._events("fold_enc", "user_idx >= 0 AND item_idx >= 0", batch_rows)

    def _events(self, view: str, where: str, batch_rows: int) -> Iterator[pa.RecordBatch]:
        query = (
            'SELECT rn, CAST(user_idx AS INT) AS user_idx, item_idx, ts_ns AS "timestamp", '
            "weight, CASE WHEN is_rating THEN rating END AS rating, positive "
            f"FROM {view} WHERE {where}"
        )
        yield from self._session.stream(query, {}, ("rn",), batch_rows)

    def ratings(self, which: str) -> pa.Table:
        """Explicit ratings of known pairs, the latest per pair (input order), by pair."""
        return self._session.fetch(
            f"""
            SELECT user_idx, item_idx, rating FROM (
                SELECT user_idx, item_idx, rating,
                       row_number() OVER (PARTITION BY user_idx, item_idx ORDER BY rn DESC) AS k
                FROM {self._view(which)} WHERE is_rating AND user_idx >= 0 AND item_idx >= 0
            ) latest WHERE k = 1 ORDER BY user_idx, item_idx
            """
        )

    def positive_pairs(self, which: str) -> pa.Table:
        """Distinct (user_idx, item_idx) of the known positives of ``which`` test users
        (``test``: train users; ``holdout``: held-out users by history row), by pair."""
        users = "user_idx" if which == "test" else "history_row"
        return self._session.fetch(
            f"SELECT DISTINCT CAST({users} AS INT) AS user_idx, item_idx FROM test_enc "
            f"WHERE positive AND {users} >= 0 AND item_idx >= 0 ORDER BY user_idx, item_idx"
        )

    def _view(self, which: str) -> str:
        return {"train": "train_enc", "test": "test_enc", "holdout": "fold_enc"}[which]

    def counts(self) -> dict[str, int]:
        """Rows of each split, and test and fold-in rows dropped for an id unknown to train
        (for the log and the metrics)."""
        train = self._session.fetch("SELECT count(*) AS train_rows FROM train_enc")
        test = self._session.fetch(
            """
            SELECT count(*) AS test_rows,
                   count_if(user_idx < 0 AND history_row IS NULL) AS unknown_user,
                   count_if(user_idx >= 0 AND item_idx < 0) AS unknown_item,
                   count_if(history_row IS NOT NULL AND item_idx < 0) AS holdout_unknown_item
            FROM test_enc
            """
        )
        fold = self._session.fetch(
            "SELECT count(*) AS fold_in_rows, "
            "count_if(user_idx >= 0 AND item_idx < 0) AS fold_in_unknown_item FROM fold_enc"
        )
        return {
            name: int(table[name][0].as_py() or 0)
            for table in (train, test, fold)
            for name in table.column_names
        }

    def user_stats(self) -> pa.Table:
        """Per user (by index): counts, last event (epoch ns), rank by events (ties: index
        order), most frequent item category (ties: by name), region (the users table's
        first row). ``mean_rating`` (a float sum) and ``n_items`` (the matrix's pairs) are
        the caller's."""
        return self._session.fetch(
            f"""
            SELECT s.user_idx, x.user_id, s.n_interactions, s.n_ratings, s.last_ns,
                   CAST(row_number() OVER (
                       ORDER BY s.n_interactions DESC, s.user_idx) AS INT) AS activity_rank,
                   top.category AS top_category, r.region
            FROM ({self._group_stats("user_idx")}) s
            JOIN user_index x ON x.user_idx = s.user_idx
            LEFT JOIN ({self._top_category()}) top ON top.user_idx = s.user_idx
            LEFT JOIN (SELECT user_id, region FROM (
                           SELECT user_id, region,
                                  row_number() OVER (PARTITION BY user_id ORDER BY rn) AS k
                           FROM users) numbered
                       WHERE k = 1) r ON r.user_id = x.user_id
            ORDER BY s.user_idx
            """
        )

    def item_stats(self) -> pa.Table:
        """Per item (by index): counts, last event, rank by events (ties: index order),
        category and price from the item index (``n_users``: the caller's, as ``n_items``)."""
        return self._session.fetch(
            f"""
            SELECT s.item_idx, x.item_id, s.n_interactions, s.n_ratings, s.last_ns,
                   CAST(row_number() OVER (
                       ORDER BY s.n_interactions DESC, s.item_idx) AS INT) AS popularity_rank,
                   x.category, x.price
            FROM ({self._group_stats("item_idx")}) s
            JOIN item_index x ON x.item_idx = s.item_idx
            ORDER BY s.item_idx
            """
        )

    @staticmethod
    def _group_stats(key: str) -> str:
        """Events, ratings and last event per ``key``."""
        return f"""
            SELECT {key}, count(*) AS n_interactions, count_if(is_rating) AS n_ratings,
                   max(ts_ns) AS last_ns
            FROM train_enc GROUP BY {key}
        """

    @staticmethod
    def _top_category() -> str:
        """Each user's category with the most train events; ties: by name (its code).

        One exact key orders a user's categories as the rule does, ``n * 2^32 - code``
        (more events first, then the smaller code; codes are 1.. and below 2^32, counts
        below 2^31), so a ``max`` per user picks the category: ~0.6 s less at 20M than
        numbering each user's categories with a window."""
        return f"""
            SELECT best.user_idx, names.category FROM (
                SELECT user_idx, max(n * {_CODE_SPAN} - category_code) AS key
                FROM (SELECT user_idx, category_code, count(*) AS n FROM train_enc
                      WHERE category_code IS NOT NULL
                      GROUP BY user_idx, category_code) per_category
                GROUP BY user_idx
            ) best
            JOIN (SELECT DISTINCT category_code, category FROM item_index) names
                ON names.category_code = {_CODE_SPAN} - best.key % {_CODE_SPAN}
        """
