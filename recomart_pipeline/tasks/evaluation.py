"""Evaluate every trained candidate against the popularity baseline, pick one, gate it.

Reads ``training_summary`` and the ``model_<name>`` files from training (each verified
against the sha256 training recorded) and ``test_ratings``, ``test_interactions`` and
``train_implicit`` from features. Every candidate gets RMSE/MAE and the ranking metrics at
``k`` (train items excluded; for at most ``max_eval_users`` test users, a seeded sample
recorded in ``evaluation.json``). The best non-baseline candidate by ``selection_metric``
becomes the ``model`` output: the deploy candidate. Each configured quality gate is a
blocking (ERROR) check, so a model that fails one is never deployed.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from recomart_pipeline.ml.data import read_implicit, read_interactions, read_ratings
from recomart_pipeline.ml.evaluate import evaluate_model, evaluation_users
from recomart_pipeline.ml.metrics import LOWER_IS_BETTER, json_safe, metric_names
from recomart_pipeline.ml.persistence import (
    FILE_SUFFIX,
    ModelIntegrityError,
    load_model,
    sidecar_path,
)
from recomart_pipeline.runtime.artifacts import sha256_file, write_json_atomic, write_text_atomic
from recomart_pipeline.runtime.context import CheckOutcome, CheckSpec, TaskContext, TaskResult
from recomart_pipeline.runtime.errors import QualityGateError, UpstreamArtifactError

GATE_KINDS: tuple[str, ...] = ("min", "max", "beat_baseline")
DEFAULT_MAX_EVAL_USERS = 100_000


class GatesConfig(BaseModel):
    """Thresholds the selected model must meet; each entry is one blocking check."""

    model_config = ConfigDict(extra="forbid")

    min: dict[str, float] = Field(
        default_factory=dict, description="metric -> lowest acceptable value (ndcg_at_10: 0.05)."
    )
    max: dict[str, float] = Field(
        default_factory=dict, description="metric -> highest acceptable value (rmse: 1.2)."
    )
    beat_baseline: dict[str, float] = Field(
        default_factory=dict,
        description="metric -> required relative improvement over the popularity baseline "
        "(0.10: at least 10% better; lower is better for rmse/mae).",
    )


class Config(BaseModel):
    """How candidates are compared, which one is chosen, and what it must achieve."""

    model_config = ConfigDict(extra="forbid")

    k: int = Field(10, ge=1, le=1000, description="Cut-off of the ranking metrics.")
    selection_metric: str | None = Field(
        None,
        description="Metric that picks the best candidate (default ndcg_at_<k>), e.g. "
        "ndcg_at_10, map_at_10, rmse.",
    )
    higher_is_better: bool | None = Field(
        None, description="Direction of selection_metric; inferred (rmse/mae: lower is better)."
    )
    include_baseline: bool = Field(
        False, description="Let the popularity baseline itself be selected."
    )
    gates: GatesConfig = Field(
        default_factory=GatesConfig, description="Quality gates (blocking checks)."
    )
    max_eval_users: int | None = Field(
        DEFAULT_MAX_EVAL_USERS,
        ge=1,
        description="Rank for a seeded sample of this many test users when there are more "
        "(null: always all users). Ranking costs users x items, which grows with the square "
        "of the data; a per-user metric such as NDCG lies in [0, 1], so its standard "
        "deviation is at most 0.5 and the standard error of a 100,000-user mean at most "
        "0.0016 (0.0005 measured on a generated shop). Every candidate is ranked for the "
        "same users, so comparisons and baseline gates are paired.",
    )
    seed: int = Field(42, description="Seed of the evaluation-user sample.")

    @model_validator(mode="after")
    def _known_metrics(self) -> Config:
        known = metric_names(self.k)
        used = {"selection_metric": [self.metric]}
        used.update({f"gates.{kind}": list(getattr(self.gates, kind)) for kind in GATE_KINDS})
        for where, names in used.items():
            unknown = [n for n in names if n not in known]
            if unknown:
                raise ValueError(
                    f"{where}: unknown metric(s) {unknown}; with k={self.k} the metrics are "
                    f"{', '.join(known)}"
                )
        return self

    @property
    def metric(self) -> str:
        return self.selection_metric or f"ndcg_at_{self.k}"

    @property
    def maximise(self) -> bool:
        if self.higher_is_better is not None:
            return self.higher_is_better
        return self.metric not in LOWER_IS_BETTER


def _gate_specs(config: Config) -> list[tuple[str, str, str, float]]:
    """(check name, kind, metric, threshold) for every configured gate."""
    return [
        (f"gate_{kind}_{metric}", kind, metric, threshold)
        for kind in GATE_KINDS
        for metric, threshold in getattr(config.gates, kind).items()
    ]


def declare_checks(config: Config) -> list[CheckSpec]:
    """One blocking check per quality gate, visible before the task runs."""
    describe = {
        "min": "selected model's {m} >= {t}",
        "max": "selected model's {m} <= {t}",
        "beat_baseline": "selected model's {m} beats the popularity baseline by >= {t:.0%}",
    }
    return [
        CheckSpec(name, describe[kind].format(m=metric, t=threshold), "ERROR")
        for name, kind, metric, threshold in _gate_specs(config)
    ]


def _evaluate_gate(
    kind: str, metric: str, threshold: float, best: dict[str, float], baseline: dict[str, float]
) -> tuple[bool, str]:
    value = best.get(metric, math.nan)
    if math.isnan(value):
        return False, f"{metric} is not available for the selected model"
    if kind == "min":
        return value >= threshold, f"{metric}={value:.4f}, required >= {threshold}"
    if kind == "max":
        return value <= threshold, f"{metric}={value:.4f}, required <= {threshold}"
    reference = baseline.get(metric, math.nan)
    if math.isnan(reference):
        return False, f"{metric} is not available for the baseline"
    lower = metric in LOWER_IS_BETTER
    target = reference * (1 - threshold) if lower else reference * (1 + threshold)
    passed = value <= target if lower else value >= target
    relation = "<=" if lower else ">="
    return passed, (
        f"{metric}={value:.4f} vs baseline {reference:.4f}: required {relation} {target:.4f} "
        f"({threshold:.0%} better)"
    )


def _select(
    results: dict[str, dict[str, float]], pool: list[str], metric: str, maximise: bool
) -> str:
    scored = [(results[name][metric], name) for name in pool]
    scored = [(value, name) for value, name in scored if not math.isnan(value)]
    if not scored:
        raise QualityGateError(
            f"no candidate has a value for selection metric '{metric}' "
            f"(candidates: {', '.join(pool)})",
            hint="rmse/mae are undefined for implicit models: select by a ranking metric",
        )
    # Best value first; ties go to the candidate listed first (stable, deterministic).
    order = sorted(scored, key=lambda vn: -vn[0] if maximise else vn[0])
    return order[0][1]


def _copy_selected(ctx: TaskContext, entry: dict[str, Any]) -> tuple[Path, str]:
    """Copy the chosen candidate's file to the ``model`` output, re-checking its hash."""
    source = ctx.find_input(entry["artifact"])
    target = ctx.output_path(f"model{source.suffix}")
    shutil.copyfile(source, target)
    digest = sha256_file(target)
    if digest != entry["sha256"]:
        raise ModelIntegrityError(
            f"{source} changed while it was being evaluated (sha256 {digest[:12]}… != "
            f"{entry['sha256'][:12]}…)",
            hint="re-run training; nothing may modify its outputs",
        )
    if entry["file"].endswith(FILE_SUFFIX["pickle"]):
        write_text_atomic(sidecar_path(target), f"{digest}  {target.name}\n")
    return target, digest


def _score_candidates(
    ctx: TaskContext, config: Config, entries: dict[str, dict[str, Any]], baseline: str
) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """Metrics of every candidate on the features' test split, and who they were ranked for
    (``eval_users`` of ``test_users``, ``eval_users_sampled``)."""
    exclude = read_implicit(ctx.find_input("train_implicit"))
    test_ratings = read_ratings(ctx.find_input("test_ratings"))
    test_interactions = read_interactions(ctx.find_input("test_interactions"), exclude.shape)
    users = evaluation_users(test_interactions, config.max_eval_users, config.seed)
    test_users = int(np.count_nonzero(np.diff(test_interactions.indptr)))
    population = {
        "eval_users": int(users.size),
        "test_users": test_users,
        "eval_users_sampled": int(users.size) < test_users,
    }
    setup = {
        "candidates": list(entries),
        "baseline": baseline,
        "k": config.k,
        **population,
        "test_ratings": len(test_ratings),
        "selection_metric": config.metric,
    }
    ctx.logger.info("evaluating candidates", extra={"fields": setup})
    if population["eval_users_sampled"]:
        ctx.logger.info(
            f"ranking metrics on a seeded sample of {users.size:,} of {test_users:,} test users "
            f"(max_eval_users={config.max_eval_users}, seed={config.seed}); RMSE/MAE use every "
            "test rating"
        )
    results: dict[str, dict[str, float]] = {}
    for name, entry in entries.items():
        model = load_model(ctx.find_input(entry["artifact"]), expected_sha256=entry["sha256"])
        results[name] = evaluate_model(
            model,
            test_ratings=test_ratings,
            test_interactions=test_interactions,
            exclude=exclude,
            k=config.k,
            users=users,
        )
        fields = {"candidate": name, **json_safe(results[name])}
        ctx.logger.info(f"evaluated '{name}'", extra={"fields": fields})
    return results, population


def run(ctx: TaskContext) -> TaskResult:
    """Score all candidates, choose the deploy candidate and answer the gate checks."""
    config = ctx.config if isinstance(ctx.config, Config) else Config.model_validate(ctx.config)
    summary = json.loads(ctx.find_input("training_summary").read_text())
    entries = {name: summary["candidates"][name] for name in summary["candidate_order"]}
    baseline_name = summary["baseline"]
    unsaved = [name for name, entry in entries.items() if not entry.get("artifact")]
    if unsaved:
        raise UpstreamArtifactError(
            f"training did not save model files for {unsaved} (save_model: false)",
            hint="set tasks.training.config.save_model: true to evaluate and deploy models",
        )
    results, population = _score_candidates(ctx, config, entries, baseline_name)
    pool = [n for n in entries if config.include_baseline or n != baseline_name] or [baseline_name]
    best = _select(results, pool, config.metric, config.maximise)
    gates: list[dict[str, Any]] = []
    checks: list[CheckOutcome] = []
    for check_name, kind, metric, threshold in _gate_specs(config):
        passed, detail = _evaluate_gate(
            kind, metric, threshold, results[best], results[baseline_name]
        )
        gates.append({"name": check_name, "passed": passed, "detail": detail})
        checks.append(
            CheckOutcome(check_name, passed, "ERROR", detail, {"metric": metric, "kind": kind})
        )
        log = ctx.logger.info if passed else ctx.logger.warning
        log(f"gate {check_name}: {'passed' if passed else 'FAILED'} ({detail})")

    model_path, model_sha = _copy_selected(ctx, entries[best])
    passed = all(gate["passed"] for gate in gates)
    report = {
        "k": config.k,
        "selection_metric": config.metric,
        "higher_is_better": config.maximise,
        "best_model": best,
        "model_type": entries[best]["model_type"],
        "model_name": summary.get("model_name"),
        "model_format": summary.get("model_format"),
        "params": entries[best]["params"],
        "baseline": baseline_name,
        **population,
        "models": results,
        "gates": gates,
        "passed": passed,
        "model_sha256": model_sha,
    }
    evaluation_path = ctx.output_path("evaluation.json")
    write_json_atomic(evaluation_path, json_safe(report))
    ctx.logger.info(
        f"selected '{best}' by {config.metric}",
        extra={"fields": {"best_model": best, "passed": passed, **json_safe(results[best])}},
    )
    metadata = {
        "best_model": best,
        "model_type": entries[best]["model_type"],
        "passed": passed,
        "model_sha256": model_sha,
    }
    return TaskResult(
        outputs={"model": model_path, "evaluation": evaluation_path},
        metrics=json_safe(results[best]),
        metadata=metadata,
        checks=checks,
    )
