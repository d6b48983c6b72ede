"""Monitoring: how this run's data and model differ from the previous run's.

Drift of the rating distribution and of item popularity (population stability index), the
share of users and items never seen before, and the change of the deployed model's metrics.
Thresholds come from the config; a breach fails a non-blocking (WARN) check, so it shows in
the UI and the logs without stopping anything.

``monitoring_snapshot`` and ``known_entities`` describe this run's data only, so a reproduced
run writes the same bytes. ``monitoring_report`` is a comparison with the previous run (the
run it names as ``baseline_run_id``): reproducing a run gives it another baseline, so
``reproduce`` does not compare it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from recomart_pipeline.contract.documents import MonitoringSnapshot
from recomart_pipeline.contract.task import CheckOutcome, TaskContext, TaskResult
from recomart_pipeline.tasks._engines import sql_session
from recomart_pipeline.tasks.specs.monitoring import (
    DEPLOYMENT,
    EVALUATION,
    RECOMMENDATIONS,
    TEST,
    TRAIN,
    Config,
    declare_checks,
)

EPSILON = 1e-6
POPULARITY_BUCKETS = 10


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Population stability index of two distributions over the same buckets."""
    p = np.asarray(expected, dtype=float) + EPSILON
    q = np.asarray(actual, dtype=float) + EPSILON
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum((q - p) * np.log(q / p)))


@dataclass(frozen=True)
class _Counts:
    """What the snapshot needs of the events: each distinct rating value and its count, each
    item id (a null one included) and its count, the distinct user ids (null included)."""

    ratings: np.ndarray
    rating_counts: np.ndarray
    item_ids: pa.Array
    item_counts: np.ndarray
    user_ids: pa.Array
    recommended_items: int | None


def _count(ctx: TaskContext[Config]) -> _Counts:
    """The train and test events' counts, aggregated by DuckDB (the ``local`` engine's, used
    here whatever the engine: these are exact counts, not rules an engine defines).

    It reads the Parquet files itself and hashes the ids on every core: at 20M events this
    took 4.4-5.1 s where reading the columns into Arrow and ``value_counts``/``unique`` took
    10.4-12.8 s, the same afternoon (the id strings are most of that work). Ratings are
    grouped by their exact value, rounded afterwards in numpy (DuckDB rounds half away from
    zero, numpy and pandas half to even)."""
    with sql_session(ctx, "local") as session:
        for name, split in (("train", TRAIN), ("test", TEST)):
            session.scan(name, ctx.input(split))
        events = (
            "SELECT user_id, item_id, rating FROM train "
            "UNION ALL SELECT user_id, item_id, rating FROM test"
        )
        ratings = session.fetch(
            f"SELECT rating, count(*) AS n FROM ({events}) WHERE rating IS NOT NULL GROUP BY 1"
        )
        items = session.fetch(f"SELECT item_id, count(*) AS n FROM ({events}) GROUP BY 1")
        users = session.fetch(f"SELECT DISTINCT user_id FROM ({events})")
        recommended = None
        if ctx.has_input(RECOMMENDATIONS):
            session.scan("recommendations", ctx.input(RECOMMENDATIONS))
            distinct = session.fetch("SELECT count(DISTINCT item_id) AS n FROM recommendations")
            recommended = int(distinct["n"][0].as_py())
        session.close()
    return _Counts(
        ratings=ratings["rating"].to_numpy(),
        rating_counts=ratings["n"].to_numpy(),
        item_ids=items["item_id"].combine_chunks(),
        item_counts=items["n"].to_numpy(),
        user_ids=users["user_id"].combine_chunks(),
        recommended_items=recommended,
    )


def _entities(kind: str, distinct: pa.Array) -> pd.DataFrame:
    """One kind's distinct ids as strings, as ``drop_duplicates().astype(str)`` of the whole
    column gave (at the cost of the distinct values only), in ascending order.

    Arrow sorts strings by their UTF-8 bytes, which is code point order, the order of
    Python's (and so pandas') string comparison; pandas' two-key sort of both kinds took
    1.8 s at 20M events (1.1M ids), mostly factorising the strings again."""
    ids = distinct.to_pandas().astype(str)
    order = pc.array_sort_indices(pa.array(ids, pa.string()))
    return pd.DataFrame({"kind": kind, "id": ids.take(order.to_numpy()).to_numpy()})


def _snapshot(ctx: TaskContext[Config]) -> tuple[MonitoringSnapshot, pd.DataFrame]:
    counts = _count(ctx)
    # numpy's round is half-to-even, as pandas' was; ratings are bucketed 1..5
    buckets_1_to_5 = np.clip(np.round(counts.ratings), 1, 5).astype(int)
    rating_dist = [int(counts.rating_counts[buckets_1_to_5 == r].sum()) for r in range(1, 6)]
    item_ids, user_ids = counts.item_ids, counts.user_ids
    popular = np.sort(counts.item_counts[item_ids.is_valid().to_numpy(zero_copy_only=False)])
    popular = popular[::-1]
    buckets = np.array_split(popular, POPULARITY_BUCKETS)
    popularity = [float(b.sum()) / max(1, popular.sum()) for b in buckets]
    evaluation = ctx.document(EVALUATION)
    metric = evaluation.selection_metric
    served = ctx.document(DEPLOYMENT).champion if ctx.has_input(DEPLOYMENT) else None
    snapshot = MonitoringSnapshot(
        rating_distribution=rating_dist,
        popularity_distribution=popularity,
        metric=metric,
        metric_value=evaluation.best_metrics.get(metric),
        users=len(user_ids) - user_ids.null_count,
        items=len(item_ids) - item_ids.null_count,
        recommended_items=counts.recommended_items,
        served_version=served,
    )
    # ordered by kind ("item" before "user"), then id
    entities = pd.concat(
        [_entities("item", item_ids), _entities("user", user_ids)], ignore_index=True
    )
    return snapshot, entities


def _ids(entities: pa.Table, kind: str) -> pa.ChunkedArray:
    return entities.filter(pc.equal(entities["kind"], kind))["id"]


def _new_share(now: pa.Table, before: pa.Table, kind: str) -> float:
    """The share of this run's ``kind`` ids (distinct) that the previous run did not know."""
    current = _ids(now, kind)
    known = _ids(before, kind).combine_chunks()
    new = pc.sum(pc.invert(pc.is_in(current, value_set=known))).as_py() or 0
    return int(new) / max(1, len(current))


def run(ctx: TaskContext[Config]) -> TaskResult:
    config = ctx.config
    snapshot, entities = _snapshot(ctx)
    snapshot_path = ctx.write_document("monitoring_snapshot.json", snapshot)
    entities_path = ctx.output_path("known_entities.parquet")
    entities.to_parquet(entities_path, index=False)
    written = pa.Table.from_pandas(entities, preserve_index=False)
    previous = ctx.previous
    report: dict[str, Any] = {"baseline_run_id": None}
    if previous is None or not previous.has("monitoring_snapshot"):
        checks = [
            CheckOutcome(s.name, True, "WARN", "no baseline yet") for s in declare_checks(config)
        ]
    else:
        before = MonitoringSnapshot.model_validate_json(
            previous.path("monitoring_snapshot").read_bytes()
        )
        known = pq.read_table(previous.path("known_entities"), columns=["kind", "id"])
        report["baseline_run_id"] = previous.run_id
        rating_psi = psi(before.rating_distribution, snapshot.rating_distribution)
        popularity_psi = psi(before.popularity_distribution, snapshot.popularity_distribution)
        new_users, new_items = (
            _new_share(written, known, "user"),
            _new_share(written, known, "item"),
        )
        old_value, new_value = before.metric_value, snapshot.metric_value
        drop = (
            (old_value - new_value) / old_value
            if isinstance(old_value, (int, float))
            and isinstance(new_value, (int, float))
            and old_value
            else 0.0
        )
        report |= {
            "rating_psi": rating_psi,
            "popularity_psi": popularity_psi,
            "new_user_share": new_users,
            "new_item_share": new_items,
            "metric_drop": drop,
        }
        checks = [
            CheckOutcome(
                "rating_drift",
                rating_psi <= config.psi_threshold,
                "WARN",
                f"PSI {rating_psi:.4f} (threshold {config.psi_threshold})",
                {"psi": rating_psi},
            ),
            CheckOutcome(
                "popularity_drift",
                popularity_psi <= config.psi_threshold,
                "WARN",
                f"PSI {popularity_psi:.4f} (threshold {config.psi_threshold})",
                {"psi": popularity_psi},
            ),
            CheckOutcome(
                "new_entities",
                new_users <= config.max_new_user_share and new_items <= config.max_new_item_share,
                "WARN",
                f"new users {new_users:.1%}, new items {new_items:.1%}",
                {"new_user_share": new_users, "new_item_share": new_items},
            ),
            CheckOutcome(
                "metric_change",
                drop <= config.max_metric_drop,
                "WARN",
                f"{snapshot.metric} changed by {-drop:+.1%}",
                {"relative_drop": drop},
            ),
        ]
    for check in checks:
        if not check.passed:
            ctx.logger.warning(f"monitoring: {check.name} breached: {check.description}")
    report["checks"] = {c.name: {"passed": c.passed, "detail": c.description} for c in checks}
    report_path = ctx.output_path("monitoring_report.json")
    report_path.write_text(json.dumps(report, indent=2))
    metrics = {k: v for k, v in report.items() if isinstance(v, float)}
    return TaskResult(
        outputs={
            "monitoring_report": report_path,
            "monitoring_snapshot": snapshot_path,
            "known_entities": entities_path,
        },
        metrics=metrics,
        checks=checks,
    )
