"""Monitoring: how this run's data and model differ from the previous run's.

Drift of the rating distribution and of item popularity (population stability index), the
share of users and items never seen before, and the change of the deployed model's metrics.
Thresholds come from the config; a breach fails a non-blocking (WARN) check, so it shows in
the UI and the logs without stopping anything.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from recomart_pipeline.runtime.context import CheckOutcome, CheckSpec, TaskContext, TaskResult

EPSILON = 1e-6
POPULARITY_BUCKETS = 10


class Config(BaseModel):
    """Configuration of the monitoring task."""

    model_config = ConfigDict(extra="forbid")

    psi_threshold: float = Field(
        0.2, gt=0, description="PSI above this is drift (0.1 small, 0.25 large)."
    )
    max_new_user_share: float = Field(0.5, ge=0, le=1, description="Largest share of unseen users.")
    max_new_item_share: float = Field(0.5, ge=0, le=1, description="Largest share of unseen items.")
    max_metric_drop: float = Field(
        0.1, ge=0, description="Largest relative drop of the selection metric vs the previous run."
    )


def declare_checks(config: Config) -> list[CheckSpec]:
    return [
        CheckSpec(
            "rating_drift", f"PSI of the rating distribution ≤ {config.psi_threshold}", "WARN"
        ),
        CheckSpec("popularity_drift", f"PSI of item popularity ≤ {config.psi_threshold}", "WARN"),
        CheckSpec("new_entities", "share of unseen users/items within limits", "WARN"),
        CheckSpec(
            "metric_change", f"selection metric dropped ≤ {config.max_metric_drop:.0%}", "WARN"
        ),
    ]


def psi(expected: list[float], actual: list[float]) -> float:
    """Population stability index of two distributions over the same buckets."""
    p = np.asarray(expected, dtype=float) + EPSILON
    q = np.asarray(actual, dtype=float) + EPSILON
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum((q - p) * np.log(q / p)))


def _snapshot(ctx: TaskContext) -> tuple[dict[str, Any], pd.DataFrame]:
    events = pd.concat(
        [
            pd.read_parquet(ctx.find_input(name), columns=["user_id", "item_id", "rating"])
            for name in ("train", "test")
        ]
    )
    ratings = events["rating"].dropna().round().clip(1, 5).astype(int).value_counts()
    rating_dist = [int(ratings.get(r, 0)) for r in range(1, 6)]
    counts = np.sort(events["item_id"].value_counts().to_numpy())[::-1]
    buckets = np.array_split(counts, POPULARITY_BUCKETS)
    popularity = [float(b.sum()) / max(1, counts.sum()) for b in buckets]
    evaluation = json.loads(ctx.find_input("evaluation").read_text())
    metric = evaluation.get("selection_metric", "ndcg_at_10")
    best = evaluation.get("models", {}).get(evaluation.get("best_model"), {})
    snapshot = {
        "run_id": ctx.run_id,
        "rating_distribution": rating_dist,
        "popularity_distribution": popularity,
        "metric": metric,
        "metric_value": best.get(metric),
        "users": int(events["user_id"].nunique()),
        "items": int(events["item_id"].nunique()),
    }
    entities = pd.concat(
        [
            pd.DataFrame({"kind": "user", "id": events["user_id"].drop_duplicates().astype(str)}),
            pd.DataFrame({"kind": "item", "id": events["item_id"].drop_duplicates().astype(str)}),
        ]
    ).sort_values(["kind", "id"], ignore_index=True)
    return snapshot, entities


def _new_share(now: pd.DataFrame, before: pd.DataFrame, kind: str) -> float:
    current = set(now.loc[now["kind"] == kind, "id"])
    known = set(before.loc[before["kind"] == kind, "id"])
    return len(current - known) / max(1, len(current))


def run(ctx: TaskContext) -> TaskResult:
    config: Config = ctx.config
    snapshot, entities = _snapshot(ctx)
    snapshot_path = ctx.output_path("monitoring_snapshot.json")
    snapshot_path.write_text(json.dumps(snapshot, indent=2))
    entities_path = ctx.output_path("known_entities.parquet")
    entities.to_parquet(entities_path, index=False)
    previous = ctx.previous
    report: dict[str, Any] = {"run_id": ctx.run_id, "baseline_run_id": None}
    if previous is None or "monitoring_snapshot" not in previous.artifacts:
        checks = [
            CheckOutcome(s.name, True, "WARN", "no baseline yet") for s in declare_checks(config)
        ]
    else:
        before = json.loads(previous.path("monitoring_snapshot").read_text())
        known = pd.read_parquet(previous.path("known_entities"))
        report["baseline_run_id"] = before.get("run_id")
        rating_psi = psi(before["rating_distribution"], snapshot["rating_distribution"])
        popularity_psi = psi(before["popularity_distribution"], snapshot["popularity_distribution"])
        new_users, new_items = (
            _new_share(entities, known, "user"),
            _new_share(entities, known, "item"),
        )
        old_value, new_value = before.get("metric_value"), snapshot.get("metric_value")
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
                f"{snapshot['metric']} changed by {-drop:+.1%}",
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
