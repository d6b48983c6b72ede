"""Evaluate every trained candidate against the popularity baseline, pick one, gate it.

Reads ``training_summary`` and the ``model_<name>`` files from training (each verified
against the sha256 training recorded) and ``test_ratings``, ``test_interactions`` and
``train_implicit`` from features. Every candidate gets RMSE/MAE and the ranking metrics at
``k`` (train items excluded; for at most ``max_eval_users`` test users, a seeded sample
recorded in ``evaluation.json``). The best non-baseline candidate by ``selection_metric``
becomes the ``model`` output: the deploy candidate. Candidates that training skipped (not
applicable to the data) are left out; with only the baseline left, it is evaluated and
selected. Each configured quality gate is a blocking (ERROR) check, so a model that fails one
is never deployed.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from recomart_pipeline.contract.documents import CandidateSummary, EvaluationReport
from recomart_pipeline.contract.errors import QualityGateError, UpstreamArtifactError
from recomart_pipeline.contract.files import sha256_file, write_text_atomic
from recomart_pipeline.contract.task import CheckOutcome, TaskContext, TaskResult
from recomart_pipeline.ml.data import read_implicit, read_interactions, read_ratings
from recomart_pipeline.ml.evaluate import Evaluation, evaluate_model, evaluation_users
from recomart_pipeline.ml.metrics import json_safe
from recomart_pipeline.ml.params import LOWER_IS_BETTER
from recomart_pipeline.ml.persistence import (
    FILE_SUFFIX,
    ModelIntegrityError,
    load_model,
    sidecar_path,
)
from recomart_pipeline.tasks.specs.evaluation import (
    CANDIDATE_MODELS,
    TEST_INTERACTIONS,
    TEST_RATINGS,
    TRAIN_IMPLICIT,
    TRAINING_SUMMARY,
    Config,
    _gate_specs,
)


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


def _model_file(ctx: TaskContext[Config], entry: CandidateSummary) -> Path:
    files = ctx.family(CANDIDATE_MODELS)
    if entry.artifact not in files:
        raise UpstreamArtifactError(
            f"training lists model file '{entry.artifact}' but did not publish it",
            hint="re-run training",
        )
    return files[entry.artifact]


def _copy_selected(ctx: TaskContext[Config], entry: CandidateSummary) -> tuple[Path, str]:
    """Copy the chosen candidate's file to the ``model`` output, re-checking its hash."""
    source = _model_file(ctx, entry)
    target = ctx.output_path(f"model{source.suffix}")
    shutil.copyfile(source, target)
    digest = sha256_file(target)
    if digest != entry.sha256:
        raise ModelIntegrityError(
            f"{source} changed while it was being evaluated (sha256 {digest[:12]}… != "
            f"{(entry.sha256 or '')[:12]}…)",
            hint="re-run training; nothing may modify its outputs",
        )
    if (entry.file or "").endswith(FILE_SUFFIX["pickle"]):
        write_text_atomic(sidecar_path(target), f"{digest}  {target.name}\n")
    return target, digest


def _score_candidates(
    ctx: TaskContext[Config],
    config: Config,
    entries: dict[str, CandidateSummary],
    baseline: str,
) -> tuple[dict[str, Evaluation], dict[str, Any]]:
    """Metrics (with bootstrap intervals) of every candidate on the features' test split, and
    who they were ranked for (``eval_users`` of ``test_users``, ``eval_users_sampled``, and
    their ``test_interactions``)."""
    exclude = read_implicit(ctx.input(TRAIN_IMPLICIT))
    test_ratings = read_ratings(ctx.input(TEST_RATINGS))
    test_interactions = read_interactions(ctx.input(TEST_INTERACTIONS), exclude.shape)
    users = evaluation_users(test_interactions, config.max_eval_users, config.seed)
    test_users = int(np.count_nonzero(np.diff(test_interactions.indptr)))
    population = {
        "eval_users": int(users.size),
        "test_users": test_users,
        "eval_users_sampled": int(users.size) < test_users,
        "test_interactions": int(test_interactions[users].nnz),
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
    results: dict[str, Evaluation] = {}
    for name, entry in entries.items():
        model = load_model(_model_file(ctx, entry), expected_sha256=entry.sha256)
        results[name] = evaluate_model(
            model,
            test_ratings=test_ratings,
            test_interactions=test_interactions,
            exclude=exclude,
            k=config.k,
            users=users,
            resamples=config.bootstrap_resamples,
            seed=config.seed,
        )
        fields = {"candidate": name, **json_safe(results[name].metrics)}
        ctx.logger.info(f"evaluated '{name}'", extra={"fields": fields})
    return results, population


def run(ctx: TaskContext[Config]) -> TaskResult:
    """Score all candidates, choose the deploy candidate and answer the gate checks."""
    config = ctx.config
    summary = ctx.document(TRAINING_SUMMARY)
    entries = summary.trained()  # skipped candidates (not applicable to the data) have no model
    skipped = summary.skipped()
    for name, reason in skipped.items():
        ctx.logger.info(
            f"not evaluating '{name}': skipped by training ({reason})",
            extra={"fields": {"candidate": name, "skipped": reason}},
        )
    if summary.baseline is None:
        raise UpstreamArtifactError("training named no baseline candidate", hint="re-run training")
    baseline_name = summary.baseline
    unsaved = [name for name, entry in entries.items() if not entry.artifact]
    if unsaved:
        raise UpstreamArtifactError(
            f"training did not save model files for {unsaved} (save_model: false)",
            hint="set tasks.training.config.save_model: true to evaluate and deploy models",
        )
    scored, population = _score_candidates(ctx, config, entries, baseline_name)
    results = {name: evaluation.metrics for name, evaluation in scored.items()}
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
        "model_type": entries[best].model_type,
        "model_name": summary.model_name,
        "model_format": summary.model_format,
        "params": entries[best].params,
        "baseline": baseline_name,
        **population,
        "models": results,
        "intervals": {name: evaluation.intervals for name, evaluation in scored.items()},
        "bootstrap_resamples": config.bootstrap_resamples,
        "gates": gates,
        "passed": passed,
        "model_sha256": model_sha,
    }
    evaluation_path = ctx.write_document(
        "evaluation.json", EvaluationReport.model_validate(json_safe(report))
    )
    ctx.logger.info(
        f"selected '{best}' by {config.metric}",
        extra={"fields": {"best_model": best, "passed": passed, **json_safe(results[best])}},
    )
    metadata: dict[str, Any] = {
        "best_model": best,
        "model_type": entries[best].model_type,
        "passed": passed,
        "model_sha256": model_sha,
    }
    if skipped:
        metadata["skipped"] = skipped
    return TaskResult(
        outputs={"model": model_path, "evaluation": evaluation_path},
        metrics=json_safe(results[best]),
        metadata=metadata,
        checks=checks,
    )
