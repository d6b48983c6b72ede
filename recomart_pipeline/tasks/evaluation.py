"""Select the deploy candidate on the validation split, score it and the baseline on test, gate it.

Reads ``training_summary`` and the ``model_<name>`` files from training (each verified
against the sha256 training recorded) and ``test_ratings``, ``test_interactions`` and
``train_implicit`` from features. Under the ``user_holdout`` protocol (features wrote a
non-empty ``holdout_history``) the test users are the held-out ones instead: each is ranked
from their fold-in history (``holdout_history`` and its ratings; never trained on) against
``holdout_test_interactions``, and the report says ``protocol: user_holdout``.

Selection is honest: the candidates are compared on the validation figures training measured
(a split cut from the training data; ``CandidateSummary.validation``), the best non-baseline
candidate by ``selection_metric`` is chosen there, and only then is the test split touched,
once, by that candidate and the popularity baseline: their RMSE/MAE and ranking metrics at
``k`` (train items excluded; for at most ``max_eval_users`` test users, a seeded sample) are
what the report, the gates and the registry record. A training summary without validation
figures (``validation.method: none``, or an older run) falls back to scoring every candidate
on test and choosing there, and ``selected_on: test`` says the figure is optimistic.

The baseline is a real candidate: when the best personalised candidate does not beat it on
the selection split (``baseline_fallback``, on by default), the baseline becomes the deploy
candidate, marked ``baseline_fallback``; the gates are still evaluated on the personalised
candidate for the record, as warnings, and deploy keeps the current champion or, with none,
serves the baseline. Otherwise each configured quality gate is a blocking (ERROR) check, so
a model that fails one is never deployed. Gates are judged on bootstrap intervals over the
evaluated users (``ml/gates.py``): noise alone neither passes nor fails one; a gate the data
cannot decide is a warning (or, with ``gates.inconclusive: block``, blocks). Candidates that training skipped (not applicable
to the data) are left out; with only the baseline left, it is the deploy candidate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from recomart_pipeline.contract.documents import CandidateSummary, EvaluationReport
from recomart_pipeline.contract.errors import QualityGateError, UpstreamArtifactError
from recomart_pipeline.contract.files import link_or_copy, sha256_file, write_text_atomic
from recomart_pipeline.contract.task import CheckOutcome, TaskContext, TaskResult
from recomart_pipeline.ml.base import History
from recomart_pipeline.ml.data import read_implicit, read_interactions, read_ratings
from recomart_pipeline.ml.evaluate import Evaluation, evaluate_model, evaluation_users
from recomart_pipeline.ml.gates import GateVerdict, judge_gate
from recomart_pipeline.ml.metrics import json_safe
from recomart_pipeline.ml.persistence import (
    FILE_SUFFIX,
    ModelIntegrityError,
    load_model,
    sidecar_path,
)
from recomart_pipeline.ml.selection import (
    Choice,
    Figures,
    as_figures,
    beats,
    best_of,
    personalised,
)
from recomart_pipeline.tasks._tables import split_of
from recomart_pipeline.tasks.specs.evaluation import (
    CANDIDATE_MODELS,
    HOLDOUT_HISTORY,
    HOLDOUT_HISTORY_RATINGS,
    HOLDOUT_TEST_INTERACTIONS,
    TEST_INTERACTIONS,
    TEST_RATINGS,
    TRAIN_IMPLICIT,
    TRAINING_SUMMARY,
    Config,
    gate_specs,
)


def _blocks(verdict: GateVerdict, config: Config) -> bool:
    """Does this verdict stop the model from being deployed?"""
    if verdict.outcome == "inconclusive":
        return config.gates.inconclusive == "block"
    return verdict.outcome == "failed"


def _select(results: Figures, pool: list[str], metric: str, maximise: bool) -> str:
    best = best_of(results, pool, metric, maximise)
    if best is None:
        raise QualityGateError(
            f"no candidate has a value for selection metric '{metric}' "
            f"(candidates: {', '.join(pool)})",
            hint="rmse/mae are undefined for implicit models: select by a ranking metric",
        )
    return best


def _model_file(ctx: TaskContext[Config], entry: CandidateSummary) -> Path:
    files = ctx.family(CANDIDATE_MODELS)
    if entry.artifact not in files:
        raise UpstreamArtifactError(
            f"training lists model file '{entry.artifact}' but did not publish it",
            hint="re-run training",
        )
    return files[entry.artifact]


def _selected_model(ctx: TaskContext[Config], entry: CandidateSummary) -> tuple[Path, str]:
    """The chosen candidate's file as the ``model`` output (linked, or copied), its hash
    checked again."""
    source = _model_file(ctx, entry)
    target = ctx.output_path(f"model{source.suffix}")
    link_or_copy(source, target)
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


def _holdout_history(ctx: TaskContext[Config], n_items: int) -> History | None:
    """The held-out users' fold-in history (user_holdout), or None when features wrote none
    (another protocol, or an older features run)."""
    declared = (HOLDOUT_HISTORY, HOLDOUT_HISTORY_RATINGS, HOLDOUT_TEST_INTERACTIONS)
    if not all(ctx.has_input(d) for d in declared):
        return None
    matrix = read_implicit(ctx.input(HOLDOUT_HISTORY))
    if matrix.shape[0] == 0:
        return None
    if matrix.shape[1] != n_items:
        raise UpstreamArtifactError(
            f"holdout_history has {matrix.shape[1]} item columns but train_implicit has {n_items}",
            hint="both must come from the same features run: re-run features",
        )
    return History(matrix, read_ratings(ctx.input(HOLDOUT_HISTORY_RATINGS)))


def _protocol(ctx: TaskContext[Config], holdout: bool) -> str | None:
    """The split protocol features recorded with the test interactions (None: older runs)."""
    split = split_of(ctx.input(HOLDOUT_TEST_INTERACTIONS if holdout else TEST_INTERACTIONS))
    protocol = (split or {}).get("protocol")
    return str(protocol) if protocol else ("user_holdout" if holdout else None)


def _score_candidates(
    ctx: TaskContext[Config],
    config: Config,
    entries: dict[str, CandidateSummary],
    baseline: str,
) -> tuple[dict[str, Evaluation], dict[str, Any]]:
    """Metrics (with bootstrap intervals) of the given candidates on the features' test split,
    and who they were ranked for (``eval_users`` of ``test_users``, ``eval_users_sampled``, and
    their ``test_interactions``)."""
    train_implicit = read_implicit(ctx.input(TRAIN_IMPLICIT))
    test_ratings = read_ratings(ctx.input(TEST_RATINGS))
    history = _holdout_history(ctx, train_implicit.shape[1])
    exclude = train_implicit if history is None else None  # a history excludes its own items
    if history is None:
        test_interactions = read_interactions(ctx.input(TEST_INTERACTIONS), train_implicit.shape)
    else:
        test_interactions = read_interactions(
            ctx.input(HOLDOUT_TEST_INTERACTIONS), history.interactions.shape
        )
    users = evaluation_users(test_interactions, config.max_eval_users, config.seed)
    test_users = int(np.count_nonzero(np.diff(test_interactions.indptr)))
    population = {
        "eval_users": int(users.size),
        "test_users": test_users,
        "eval_users_sampled": int(users.size) < test_users,
        "test_interactions": int(test_interactions[users].nnz),
        "protocol": _protocol(ctx, history is not None),
    }
    setup = {
        "candidates": list(entries),
        "baseline": baseline,
        "k": config.k,
        **population,
        "test_ratings": len(test_ratings),
        "selection_metric": config.metric,
    }
    ctx.logger.info("scoring on the test split", extra={"fields": setup})
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
            history=history,
        )
        fields = {"candidate": name, **json_safe(results[name].metrics)}
        ctx.logger.info(f"evaluated '{name}'", extra={"fields": fields})
    return results, population


def _validation_metrics(
    ctx: TaskContext[Config], config: Config, entries: dict[str, CandidateSummary]
) -> dict[str, dict[str, float]] | None:
    """Every candidate's validation metrics, or None when selection must use the test split
    (no validation figures, or none for the selection metric), with a warning saying why."""
    measured = {n: e.validation for n, e in entries.items() if e.validation is not None}
    if not measured:
        ctx.logger.warning(
            "training measured no validation figures (validation.method: none, or an older "
            "training run): selecting on the test split, so the selected model's test "
            "figure is optimistic"
        )
        return None
    if not any(config.metric in metrics for metrics in measured.values()):
        ctx.logger.warning(
            f"the validation figures have no '{config.metric}' (set "
            f"tasks.training.config.validation.k to {config.k}): selecting on the test "
            "split, so the selected model's test figure is optimistic"
        )
        return None
    return as_figures(measured)


def _choose(config: Config, on: Figures, names: list[str], baseline: str) -> Choice:
    """The deploy candidate, the best personalised candidate and whether the baseline stands
    in, by the selection metric on ``on`` (the validation or the test figures)."""
    personal = personalised(names, baseline, on)
    if not personal:
        return Choice(baseline, None, False)
    metric, up = config.metric, config.maximise
    best = _select(on, personal, metric, up)
    if config.include_baseline and beats(on, baseline, best, metric, up):
        return Choice(baseline, best, False)
    if config.baseline_fallback and not beats(on, best, baseline, metric, up):
        return Choice(baseline, best, True)
    return Choice(best, best, False)


def _not_refit(choice: Choice, entries: dict[str, CandidateSummary], config: Config) -> None:
    """Training refits on all its data only the candidates its own rule picked on validation
    (``validation.refit: best``); a different choice here means the two rules disagree."""
    for name in {choice.best, choice.personal} - {None}:
        entry = entries[str(name)]
        if entry.not_refit is not None:
            raise QualityGateError(
                f"evaluation selects '{name}' by {config.metric}, but training did not refit "
                f"it on all training data ({entry.not_refit})",
                hint=f"set tasks.training.config.validation.selection_metric to "
                f"{config.metric} (the evaluation's selection metric), or "
                "validation.refit to all, and re-run training",
            )


def run(ctx: TaskContext[Config]) -> TaskResult:
    """Choose the deploy candidate, score it and the baseline on test, answer the gates."""
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
    unsaved = [name for name, entry in summary.refitted().items() if not entry.artifact]
    if unsaved:
        raise UpstreamArtifactError(
            f"training did not save model files for {unsaved} (save_model: false)",
            hint="set tasks.training.config.save_model: true to evaluate and deploy models",
        )
    validation = _validation_metrics(ctx, config, entries)
    if validation is not None:
        choice = _choose(config, validation, list(entries), baseline_name)
        _not_refit(choice, entries, config)
        tested = {
            n: entries[n] for n in entries if n in (choice.best, choice.personal, baseline_name)
        }
        scored, population = _score_candidates(ctx, config, tested, baseline_name)
        results = {name: evaluation.metrics for name, evaluation in scored.items()}
    else:
        scored, population = _score_candidates(ctx, config, entries, baseline_name)
        results = {name: evaluation.metrics for name, evaluation in scored.items()}
        choice = _choose(config, results, list(entries), baseline_name)
    best, personal, fallback = choice.best, choice.personal, choice.fallback
    gated = personal if fallback and personal is not None else best
    gates: list[dict[str, Any]] = []
    checks: list[CheckOutcome] = []
    for check_name, kind, metric, threshold in gate_specs(config):
        verdict = judge_gate(
            kind,
            metric,
            threshold,
            scored[gated],
            scored[baseline_name],
            resamples=config.bootstrap_resamples,
            seed=config.seed,
        )
        detail = verdict.detail
        if fallback:
            detail += f" (for '{gated}'; the baseline is the deploy candidate)"
        blocks = _blocks(verdict, config) and not fallback
        gates.append(
            {
                "name": check_name,
                "passed": verdict.outcome == "passed",
                "outcome": verdict.outcome,
                "blocks": blocks,
                "interval": verdict.interval,
                "detail": detail,
            }
        )
        checks.append(
            CheckOutcome(
                check_name,
                verdict.outcome == "passed",
                "WARN"
                if fallback or (verdict.outcome == "inconclusive" and not blocks)
                else "ERROR",
                detail,
                {"metric": metric, "kind": kind, "outcome": verdict.outcome},
            )
        )
        log = ctx.logger.info if verdict.outcome == "passed" else ctx.logger.warning
        log(f"gate {check_name}: {verdict.outcome.upper()} ({detail})")
    if fallback:
        ctx.logger.warning(
            f"no personalised candidate beat the baseline '{baseline_name}' by "
            f"{config.metric} (best: '{personal}'): the baseline is the deploy candidate",
            extra={"fields": {"best_personalised": personal, "baseline": baseline_name}},
        )

    model_path, model_sha = _selected_model(ctx, entries[best])
    passed = not any(gate["blocks"] for gate in gates)
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
        "selected_on": "validation" if validation is not None else "test",
        "validation": validation or {},
        "best_personalised": personal,
        "baseline_fallback": fallback,
    }
    evaluation_path = ctx.write_document(
        "evaluation.json", EvaluationReport.model_validate(json_safe(report))
    )
    ctx.logger.info(
        f"selected '{best}' by {config.metric} on the {report['selected_on']} split",
        extra={"fields": {"best_model": best, "passed": passed, **json_safe(results[best])}},
    )
    metadata: dict[str, Any] = {
        "best_model": best,
        "model_type": entries[best].model_type,
        "passed": passed,
        "model_sha256": model_sha,
        "selected_on": report["selected_on"],
        "baseline_fallback": fallback,
    }
    if validation is not None:
        metadata["validation"] = json_safe(validation)
    if skipped:
        metadata["skipped"] = skipped
    return TaskResult(
        outputs={"model": model_path, "evaluation": evaluation_path},
        metrics=json_safe(results[best]),
        metadata=metadata,
        checks=checks,
    )
