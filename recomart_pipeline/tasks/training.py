"""Train the candidate recommenders (and the popularity baseline) on the features' train split.

Reads ``train_ratings`` and ``train_implicit`` from the features task. Writes one
``model_<name>`` file per candidate and ``training_summary`` (per candidate: type, params,
seed, per-epoch history, file and sha256), which evaluation reads. Both are byte-identical
when inputs, config, code and seeds are: fit times are the metrics ``<name>_fit_seconds``,
and which run trained a model is in the run's manifest, not in the files.

A candidate's parameters are the model's hyper-parameter block (``svd:``, ``als:``,
``popularity:``) plus the task-wide ``seed`` / ``train_test_split`` / ``early_stopping`` /
``biases`` (where the model has such a parameter), overridden by the candidate's own
``params`` (which may set any of them).

Model selection is honest: unless ``validation.method`` is ``none``, a validation split is
cut from the training data by the test split's protocol (``ml.holdout``: temporal ones from
the features task's ``train_events``), every candidate is also fitted without it and
scored on it (``validation`` in its summary entry, ``<name>_validation_<metric>`` in the metrics),
and evaluation selects on those figures, touching the test split only with the selected
model and the baseline. The saved model is the fit on all training data. Only the candidates
evaluation can select are refitted on it (``validation.refit: best``): the best personalised
candidate by ``validation.selection_metric`` and the baseline (``ml.selection``, evaluation's
own rule); the others keep their validation figures and get ``not_refit: <reason>`` instead
of a file, so a losing candidate costs one fit, not two. A model that fits on one core
(``Recommender.serial_fit``: SVD's SGD) has its validation fit run on a side thread while the
other candidates validate, and is scored after them; its figures are the same either way.

With a ``tuning:`` section, each listed candidate's hyper-parameters are searched first
(``ml.tuning``: Optuna's TPE sampler, seeded, trials one at a time within ``n_trials`` and a
wall-clock budget): every trial fits on the training data without the validation split and
scores the validation split, never the test split; the best setting then goes through the
path above (fitted on all training data, saved), its validation figures are the best
trial's, and the search is ``tuning`` in the summary (trials: params, metric, seconds), the
task's metadata (best, curve) and metrics (``<name>_tuning_trials``/``_seconds``/``_best_*``).

A candidate that does not apply to the data (``Recommender.skip_reason``: a rating model when
the data has no rating events, any model when there are no interactions at all) is skipped:
it gets ``skipped: <reason>`` in the summary, the task's metadata and metrics, and a warning in
the log; evaluation leaves it out. The run fails only if the baseline itself cannot train.

With the ``spark`` engine (``execution.engine`` or ``tasks.training.engine``), the ``als``
candidates, their validation fits and tuning trials train with Spark MLlib's implicit ALS
(``engines.spark_als``) and land in the same ``ALSRecommender`` and model file; every other
model trains here, on this machine, from the same features. The task's metadata says where
each candidate trained (``trained_on``), and a Spark-trained model file's header says so too
(docs/spark_training.md).
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
from pydantic import BaseModel

from recomart_pipeline.contract.documents import TrainingSummary
from recomart_pipeline.contract.errors import DataValidationError
from recomart_pipeline.contract.task import TaskContext, TaskResult
from recomart_pipeline.ml.als import ALSRecommender
from recomart_pipeline.ml.base import EpochCallback, FitReport, Recommender, TrainingData
from recomart_pipeline.ml.data import load_training_data
from recomart_pipeline.ml.evaluate import evaluation_users
from recomart_pipeline.ml.holdout import (
    TEMPORAL_METHODS,
    Holdout,
    HoldoutMethod,
    TrainEvents,
    holdout_split,
    read_train_events,
)
from recomart_pipeline.ml.metrics import json_safe
from recomart_pipeline.ml.models import create_model
from recomart_pipeline.ml.params import LOWER_IS_BETTER, ALSParams
from recomart_pipeline.ml.persistence import FILE_SUFFIX, save_model
from recomart_pipeline.ml.screening import (
    HeldOut,
    Leader,
    Sampled,
    Screen,
    Screened,
    finish,
    sample,
    validate,
)
from recomart_pipeline.ml.selection import as_figures, best_of, personalised
from recomart_pipeline.ml.tuning import Direction, Trial, TuningResult, tune
from recomart_pipeline.tasks._tables import split_of
from recomart_pipeline.tasks.specs.training import (
    TRAIN_EVENTS,
    TRAIN_IMPLICIT,
    TRAIN_RATINGS,
    Config,
    ResolvedCandidate,
    TuningConfig,
)


class _Trainer:
    """Fits models: on this machine (``Recommender.fit``), or, when the task's engine is
    ``spark``, the ``als`` candidates with MLlib's ALS on the cluster
    (``engines.spark_als``; one Spark session for the task, started on first use)."""

    def __init__(self, ctx: TaskContext) -> None:
        self.ctx = ctx
        self.spark = ctx.engine == "spark"
        self._stack = ExitStack()
        self._work: Any = None
        # Validation fits of serial_fit models (SVD's SGD: one core, ~20 s at 20M events) run
        # on this thread while the other candidates validate on the task's threads, instead of
        # leaving the second core idle. Their figures do not depend on where they ran.
        self._side = ThreadPoolExecutor(1, thread_name_prefix="side-fit")
        self._side_fits: dict[str, Future[Recommender]] = {}

    def engine_of(self, model: Recommender) -> str:
        """Where ``model`` trains: ``spark`` (MLlib) or ``local`` (this machine)."""
        return "spark" if self.spark and model.model_type == ALSRecommender.model_type else "local"

    def fit(
        self, model: Recommender, train: TrainingData, on_epoch: EpochCallback | None = None
    ) -> tuple[Recommender, FitReport]:
        """The fitted model (a new object when Spark trained it) and its report."""
        if self.engine_of(model) == "local":
            return model, model.fit(train, on_epoch=on_epoch)
        from recomart_pipeline.engines import spark_als

        if self._work is None:
            self._work = self._stack.enter_context(
                spark_als.spark_work(self.ctx.engine_options, self.ctx.task_name)
            )
        params = model.params
        assert isinstance(params, ALSParams)
        return spark_als.fit_als(self._work, train, params, on_epoch)

    def read_events_beside(self, path: Path) -> Future[TrainEvents]:
        """Start reading the train events (pyarrow's read releases the GIL) on the side
        thread, before any fit is started there."""
        return self._side.submit(read_train_events, path)

    def fit_beside(self, name: str, model: Recommender, train: TrainingData) -> None:
        """Start fitting ``model`` (a local, ``serial_fit`` one) on the side thread."""

        def fit() -> Recommender:
            model.fit(train)
            return model

        self._side_fits[name] = self._side.submit(fit)

    def fitted_beside(self, name: str) -> Recommender | None:
        """The model started for ``name`` once fitted (its failure is raised here), or None."""
        future = self._side_fits.pop(name, None)
        return None if future is None else future.result()

    @property
    def spark_version(self) -> str | None:
        return None if self._work is None else str(self._work.version)

    def close(self) -> None:
        try:
            self._side.shutdown(wait=True, cancel_futures=True)
        finally:
            self._stack.close()


def _entry(candidate: ResolvedCandidate, model: Recommender, report: FitReport) -> dict[str, Any]:
    params = candidate.params.model_dump(mode="json")
    fit = {k: v for k, v in report.to_dict().items() if k != "fit_seconds"}  # a run fact
    return {
        "model_type": model.model_type,
        "params": params,
        "seed": params.get("seed"),
        "baseline": candidate.is_baseline,
        "predicts_ratings": model.predicts_ratings,
        **fit,
        "artifact": None,
        "file": None,
        "sha256": None,
    }


def _skip_entry(
    ctx: TaskContext, candidate: ResolvedCandidate, model: Recommender, reason: str
) -> dict[str, Any]:
    """The summary entry of a candidate that does not apply to the data (nothing fitted)."""
    fields = {"candidate": candidate.name, "model_type": model.model_type, "reason": reason}
    ctx.logger.warning(f"skipped candidate '{candidate.name}': {reason}", extra={"fields": fields})
    return {**_entry(candidate, model, FitReport(0.0, n_train=0)), "skipped": reason}


def _train_candidate(
    ctx: TaskContext,
    config: Config,
    candidate: ResolvedCandidate,
    model: Recommender,
    train: TrainingData,
    trainer: _Trainer,
) -> tuple[dict[str, Any], FitReport, Path | None]:
    """Fit one candidate (logging every epoch) and save it; return its summary entry."""
    name = candidate.name
    start_fields = {
        "candidate": name,
        "model_type": candidate.model.model_type,
        "params": candidate.params.model_dump(mode="json"),
    }
    ctx.logger.info(f"training candidate '{name}'", extra={"fields": start_fields})

    def log_epoch(record: dict[str, Any]) -> None:
        fields = {"candidate": name, **record}
        ctx.logger.info(f"{name} epoch {record['epoch']}", extra={"fields": fields})

    engine = trainer.engine_of(model)
    model, report = trainer.fit(model, train, log_epoch)
    entry = _entry(candidate, model, report)
    path = None
    if config.save_model:
        path = ctx.output_path(f"model_{name}{FILE_SUFFIX[config.model_format]}")
        metadata = {"model_name": config.model_name, "candidate": name, "task": ctx.task_name}
        if engine == "spark":  # the file says what trained it (one-machine files unchanged)
            metadata.update(engine="spark", spark_version=str(trainer.spark_version))
        entry["sha256"] = save_model(
            model, path, model_format=config.model_format, metadata=metadata
        )
        entry["artifact"], entry["file"] = f"model_{name}", path.name
    done_fields = {
        "candidate": name,
        "engine": engine,
        "fit_seconds": report.fit_seconds,
        "epochs": len(report.history),
        "best_epoch": report.best_epoch,
        "stopped_early": report.stopped_early,
        "train_rmse": report.final("train_rmse"),
        "val_rmse": report.final("val_rmse"),
        "refit_epochs": report.refit["epochs"] if report.refit else None,
    }
    ctx.logger.info(
        f"trained '{name}' in {report.fit_seconds:.2f}s", extra={"fields": json_safe(done_fields)}
    )
    return entry, report, path


# The validation protocol that mirrors each test protocol (validation is cut from the
# training users' events, so held-out users are mirrored by the leave-last-out protocol).
MIRRORED: dict[str, HoldoutMethod] = {
    "temporal_global": "temporal_global",
    "temporal_per_user": "temporal_per_user",
    "random": "random",
    "user_holdout": "temporal_per_user",
}


def _validation_method(ctx: TaskContext[Config], configured: str) -> HoldoutMethod:
    """``configured``, or for ``auto`` the test split's protocol that features recorded."""
    if configured != "auto":
        return cast(HoldoutMethod, configured)
    split = split_of(ctx.input(TRAIN_EVENTS)) if ctx.has_input(TRAIN_EVENTS) else None
    protocol = str((split or {}).get("protocol", ""))
    method = MIRRORED.get(protocol, "temporal_per_user")
    ctx.logger.info(
        f"validation split: {method}, mirroring the test split's protocol"
        + (f" ({protocol})" if protocol else " (not recorded: the default)")
    )
    return method


@dataclass(frozen=True)
class _SplitPlan:
    """How the validation split will be cut: its method and, for a temporal one, the train
    events being read on the trainer's side thread (None: the run has none)."""

    method: HoldoutMethod
    events: Future[TrainEvents] | None


def _validation_plan(ctx: TaskContext[Config], trainer: _Trainer) -> _SplitPlan | None:
    """The validation split's plan (None: no split). The events' read (~1.6 s of one core
    at 20M events) overlaps the training data's, which the split needs too."""
    settings = ctx.config.validation
    if settings.method == "none":
        ctx.logger.warning(
            "no validation split (validation.method: none): evaluation will select on the "
            "test split, and the selected model's test figure is then optimistic"
        )
        return None
    method = _validation_method(ctx, settings.method)
    if method not in TEMPORAL_METHODS or not ctx.has_input(TRAIN_EVENTS):
        return _SplitPlan(method, None)
    return _SplitPlan(method, trainer.read_events_beside(ctx.input(TRAIN_EVENTS)))


def _validation_split(
    ctx: TaskContext[Config],
    train: TrainingData,
    plan: _SplitPlan | None,
) -> tuple[Holdout, np.ndarray, dict[str, Any]] | None:
    """The validation split, the users it ranks for, and its description for the summary."""
    if plan is None:
        return None
    settings = ctx.config.validation
    chosen = method = plan.method
    events = None if plan.events is None else plan.events.result()
    if method in TEMPORAL_METHODS and events is None:
        ctx.logger.warning(
            f"validation.method {method} needs the features task's train_events, which "
            "this run has not got: the validation split holds out random pairs per user "
            "(per_user) instead"
        )
        method = "per_user"
    holdout = holdout_split(train, method, settings.fraction, ctx.config.seed, events)
    if holdout.interactions.nnz == 0:
        raise DataValidationError(
            f"the {method} validation split has no held-out positive whose user and item "
            "keep training events: candidates cannot be compared on it",
            hint="set tasks.training.config.validation.method to temporal_per_user (every "
            "user with two or more events), raise validation.fraction, or set it to none",
        )
    users = evaluation_users(holdout.interactions, settings.max_users, ctx.config.seed)
    described: dict[str, Any] = {
        "method": method,
        "fraction": settings.fraction,
        "seed": ctx.config.seed,
        "k": settings.k,
        "users": int(users.size),
        "held_out_pairs": int(holdout.interactions[users].nnz),
        "held_out_ratings": len(holdout.ratings),
        "fit_pairs": int(holdout.fit.interactions().nnz),
    }
    if method != chosen:
        described["requested_method"] = chosen
    if holdout.cutoff is not None:
        described["cutoff"] = str(np.datetime64(holdout.cutoff, "ns")) + "Z"
    ctx.logger.info("validation split cut", extra={"fields": described})
    return holdout, users, described


def _start_fits_beside(
    config: Config,
    train: TrainingData,
    split: tuple[Holdout, np.ndarray, dict[str, Any]] | None,
    trainer: _Trainer,
) -> set[str]:
    """Start the validation fits of the untuned ``serial_fit`` candidates that apply to the
    data on the trainer's side thread; their names (validated after the other candidates,
    so that the fits overlap them)."""
    if split is None:
        return set()
    tuned = set(config.tuning.candidates) if config.tuning is not None else set()
    started: set[str] = set()
    for candidate in config.resolved_candidates():
        model = create_model(candidate.model.model_type, candidate.params)
        if (
            candidate.name in tuned
            or not model.serial_fit
            or trainer.engine_of(model) != "local"
            or model.skip_reason(train) is not None
            or model.skip_reason(split[0].fit) is not None
        ):
            continue
        trainer.fit_beside(candidate.name, model, split[0].fit)
        started.add(candidate.name)
    return started


def _validation_model(
    ctx: TaskContext[Config],
    candidate: ResolvedCandidate,
    params: BaseModel,
    holdout: Holdout,
    trainer: _Trainer,
) -> Recommender | None:
    """``candidate`` with ``params`` fitted on the validation split's fit part (or its fit
    beside), or None when it does not apply to the reduced data."""
    fitted = trainer.fitted_beside(candidate.name)
    if fitted is not None:
        model = fitted
    else:
        model = create_model(candidate.model.model_type, params)
        reason = model.skip_reason(holdout.fit)
        if reason is not None:
            ctx.logger.warning(f"'{candidate.name}' not validated: {reason}")
            return None
        model, _ = trainer.fit(model, holdout.fit)
    return model


def _held_out(
    ctx: TaskContext[Config], split: tuple[Holdout, np.ndarray, dict[str, Any]]
) -> HeldOut:
    """What the validation split ranks against."""
    holdout, users, _ = split
    return HeldOut(
        holdout.ratings,
        holdout.interactions,
        holdout.fit.interactions(),
        ctx.config.validation.k,
        users,
    )


def _validation_metrics(
    ctx: TaskContext[Config],
    candidate: ResolvedCandidate,
    params: BaseModel,
    split: tuple[Holdout, np.ndarray, dict[str, Any]],
    trainer: _Trainer,
) -> dict[str, float | None] | None:
    """``candidate``'s metrics with ``params`` on the validation split (fitted without it),
    or None when it does not apply to the reduced data."""
    model = _validation_model(ctx, candidate, params, split[0], trainer)
    if model is None:
        return None
    metrics: dict[str, float | None] = json_safe(validate(model, _held_out(ctx, split)).metrics)
    return metrics


class _Screening:
    """Validation on the split, screened (``ml.screening``): every candidate is ranked for
    the screening block as it is fitted; once all are, the best personalised one on the
    block is ranked for every user and leads, and each other one is stopped behind it or
    ranked for every user too. Without a screen, each candidate is validated as it comes."""

    def __init__(
        self, ctx: TaskContext[Config], split: tuple[Holdout, np.ndarray, dict[str, Any]]
    ) -> None:
        settings = ctx.config.validation
        self.ctx = ctx
        self.split = split
        self.held = _held_out(ctx, split)
        self.screen = Screen.plan(
            self.held.users.size,
            settings.screen_users,
            settings.metric,
            settings.k,
            settings.screen_margin,
            ctx.config.seed,
        )
        self.sampled: dict[str, Sampled] = {}
        self.stopped: dict[str, str] = {}
        if self.screen is not None:
            split[2]["screen_users"] = int(self.screen.block.size)

    def take(
        self, candidate: ResolvedCandidate, trainer: _Trainer
    ) -> dict[str, float | None] | None:
        """Fit ``candidate`` on the split; its figures now (no screen), or None: not
        validated (it does not apply to the split) or sampled, figures from ``conclude``."""
        model = _validation_model(self.ctx, candidate, candidate.params, self.split[0], trainer)
        if model is None:
            return None
        if self.screen is None:
            return self._log(candidate.name, validate(model, self.held))
        self.sampled[candidate.name] = sample(model, self.held, self.screen)
        return None

    def conclude(self, order: list[ResolvedCandidate]) -> dict[str, dict[str, float | None]]:
        """The sampled candidates' figures: the leader's first, then the others in order.
        (Their fitted models waited for this: at 20M the peak memory did not grow, as the
        ranking of the rest no longer runs for most of them.)"""
        if self.screen is None:
            return {}
        sampled = [c for c in order if c.name in self.sampled]
        personal = [c for c in sampled if not c.is_baseline]
        leader: Leader | None = None
        if personal:  # the best on the block, by the selection rule (else the first listed)
            on_block = {c.name: {"block": self.sampled[c.name].figure} for c in personal}
            name = best_of(on_block, list(on_block), "block", maximise=True)
            best = next((c for c in personal if c.name == name), personal[0])
            sampled = [best, *(c for c in sampled if c is not best)]
        figures: dict[str, dict[str, float | None]] = {}
        for candidate in sampled:
            scored = finish(
                self.sampled.pop(candidate.name),
                self.held,
                self.screen,
                None if candidate.is_baseline else leader,
            )
            figures[candidate.name] = self._log(candidate.name, scored)
            figure = scored.metrics[self.screen.metric]
            if (
                scored.values is not None
                and not candidate.is_baseline
                and (leader is None or figure > leader.figure)
            ):
                leader = Leader(candidate.name, figure, scored.values)
        return figures

    def _log(self, name: str, scored: Screened) -> dict[str, float | None]:
        metrics: dict[str, float | None] = json_safe(scored.metrics)
        fields = {"candidate": name, **metrics, "users": scored.users}
        if scored.behind is None or self.screen is None:
            self.ctx.logger.info(f"validated '{name}'", extra={"fields": fields})
            return metrics
        why = scored.behind
        self.stopped[name] = (
            f"stopped after {why.users:,} of {self.held.users.size:,} validation users: "
            f"{self.screen.metric} {why.figure:.4g} against '{why.leader}' "
            f"{why.leader_figure:.4g}, {why.standard_errors:.1f} standard errors behind on "
            "the same users (validation.screen_users)"
        )
        self.ctx.logger.info(f"validated '{name}': {self.stopped[name]}", extra={"fields": fields})
        return metrics


class _Budget:
    """The search's shared wall-clock budget: each tuned candidate gets what is left over
    the candidates still to tune (time one leaves unused goes to the next)."""

    def __init__(self, tuning: TuningConfig) -> None:
        self.total = tuning.timeout_seconds
        self.candidates = set(tuning.candidates)
        self.remaining_candidates = len(tuning.candidates)
        self.spent = 0.0

    def share(self, own: float | None) -> float | None:
        shares = [own] if own is not None else []
        if self.total is not None:
            shares.append(max(0.0, self.total - self.spent) / max(1, self.remaining_candidates))
        return min(shares) if shares else None

    def used(self, seconds: float) -> None:
        self.spent += seconds
        self.remaining_candidates -= 1


def _tune_candidate(
    ctx: TaskContext[Config],
    candidate: ResolvedCandidate,
    split: tuple[Holdout, np.ndarray, dict[str, Any]],
    budget: _Budget,
    trainer: _Trainer,
) -> tuple[ResolvedCandidate, dict[str, Any], TuningResult, dict[str, float | None] | None]:
    """Search the candidate's space on the validation split; return the candidate with the
    best parameters, the search's summary record, and the best trial's validation metrics
    (the candidate's validation figures: the same fit, so not measured twice)."""
    tuning = ctx.config.tuning
    assert tuning is not None
    search = tuning.candidates[candidate.name]
    metric = tuning.metric_for(ctx.config.validation.k)
    direction: Direction = "minimize" if metric in LOWER_IS_BETTER else "maximize"
    seed = tuning.seed if tuning.seed is not None else ctx.config.seed
    n_trials = search.n_trials or tuning.n_trials
    seconds = budget.share(search.timeout_seconds)
    configured = candidate.params.model_dump(mode="json")
    scored: list[dict[str, float | None] | None] = []  # per trial, in order (trial.number)

    def objective(values: dict[str, Any]) -> float | None:
        params = candidate.model.params.model_validate({**configured, **values})
        metrics = _validation_metrics(ctx, candidate, params, split, trainer)
        scored.append(metrics)
        return None if metrics is None else metrics.get(metric)

    def log_trial(trial: Trial, best: float | None) -> None:
        fields = {"candidate": candidate.name, **trial.to_dict(), "metric": metric, "best": best}
        ctx.logger.info(
            f"{candidate.name} trial {trial.number}: {metric} {trial.value}",
            extra={"fields": json_safe(fields)},
        )

    ctx.logger.info(
        f"tuning '{candidate.name}'",
        extra={
            "fields": json_safe(
                {
                    "candidate": candidate.name,
                    "metric": metric,
                    "n_trials": n_trials,
                    "budget_seconds": seconds,
                    "seed": seed,
                }
            )
        },
    )
    result = tune(
        search.space,
        objective,
        direction=direction,
        seed=seed,
        n_trials=n_trials,
        budget_seconds=seconds,
        start=configured,
        on_trial=log_trial,
    )
    budget.used(result.seconds)
    best = result.best(direction)
    if best is not None:
        params = candidate.model.params.model_validate({**configured, **best.params})
        tuned = replace(candidate, params=params)
    else:
        tuned = candidate
    record = {
        "metric": metric,
        "direction": direction,
        "seed": seed,
        "n_trials": n_trials,
        "budget_seconds": seconds,
        "space": {n: d.model_dump(mode="json") for n, d in search.space.items()},
        "configured": {n: configured[n] for n in search.space},
        "best": best.to_dict() if best is not None else None,
        "stopped": result.stopped,
        "trials": [t.to_dict() for t in result.trials],
    }
    done = {
        "candidate": candidate.name,
        "trials": len(result.trials),
        "stopped": result.stopped,
        "best": record["best"],
        "seconds": round(result.seconds, 3),
    }
    ctx.logger.info(f"tuned '{candidate.name}'", extra={"fields": json_safe(done)})
    # the best trial's metrics are the tuned candidate's validation figures
    best_metrics = scored[best.number] if best is not None else None
    return tuned, record, result, best_metrics


def _tuning_metrics(name: str, record: dict[str, Any], result: TuningResult) -> dict[str, Any]:
    """The search's run facts as task metrics (its wall time lives here, not in the report)."""
    best = record["best"]
    return {
        f"{name}_tuning_trials": len(result.trials),
        f"{name}_tuning_seconds": round(result.seconds, 3),
        f"{name}_tuning_best_{record['metric']}": best["value"] if best else None,
    }


def _refit_set(
    ctx: TaskContext[Config],
    config: Config,
    validated: list[tuple[ResolvedCandidate, dict[str, float | None] | None]],
    baseline: str | None,
    has_split: bool,
) -> tuple[set[str], str]:
    """The candidates to fit on all the training data, and why the others are not: with
    ``refit: best``, the baseline and the best personalised candidate on validation, by the
    rule evaluation selects with (``ml.selection``). When no personalised candidate has a
    value for the metric, every candidate is refitted and evaluation says what is wrong
    with the metric."""
    names = [candidate.name for candidate, _ in validated]
    settings = config.validation
    everything = set(names), ""
    if not has_split or settings.refit == "all" or baseline is None:
        return everything
    metric = settings.metric
    figures = as_figures({candidate.name: measured for candidate, measured in validated})
    best = best_of(
        figures, personalised(names, baseline, figures), metric, metric not in LOWER_IS_BETTER
    )
    if best is None:
        return everything
    why = f"'{best}' was better by {metric} on the validation split (validation.refit: best)"
    left = [name for name in names if name not in (best, baseline)]
    if left:
        ctx.logger.info(
            f"refitting '{best}' and the baseline '{baseline}' on all training data; not "
            f"{', '.join(repr(n) for n in left)}: {why}",
            extra={"fields": {"refit": [best, baseline], "not_refit": left, "metric": metric}},
        )
    return {best, baseline}, why


def run(ctx: TaskContext[Config]) -> TaskResult:
    """Fit every candidate, save its file, and summarise how each fit went."""
    trainer = _Trainer(ctx)
    try:
        return _run(ctx, trainer)
    finally:
        trainer.close()


def _run(ctx: TaskContext[Config], trainer: _Trainer) -> TaskResult:
    config = ctx.config
    plan = _validation_plan(ctx, trainer)
    train = load_training_data(ctx.input(TRAIN_RATINGS), ctx.input(TRAIN_IMPLICIT))
    data_fields = {
        "n_users": train.n_users,
        "n_items": train.n_items,
        "n_ratings": len(train.ratings),
        "implicit_nnz": train.implicit.nnz if train.implicit is not None else 0,
    }
    ctx.logger.info("training data loaded", extra={"fields": data_fields})
    split = _validation_split(ctx, train, plan)
    outputs: dict[str, Path] = {}
    metrics: dict[str, Any] = {"n_users": train.n_users, "n_items": train.n_items}
    candidates: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    baseline = None
    tuning: dict[str, dict[str, Any]] = {}
    curves: dict[str, list[float | None]] = {}
    engines: dict[str, str] = {}  # where each trained candidate was fitted
    budget = _Budget(config.tuning) if config.tuning is not None else None
    validated: list[tuple[ResolvedCandidate, dict[str, float | None] | None]] = []
    beside = _start_fits_beside(config, train, split, trainer)
    screening = _Screening(ctx, split) if split is not None else None
    for candidate in config.resolved_candidates():
        name = candidate.name
        tuned = split is not None and budget is not None and name in budget.candidates
        model = create_model(candidate.model.model_type, candidate.params)
        reason = model.skip_reason(train)
        if reason is not None:
            if candidate.is_baseline:
                raise DataValidationError(
                    f"no candidate can train: even the baseline '{name}' cannot ({reason})",
                    hint="check the features task's output: the training data has no "
                    "usable interactions",
                )
            candidates[name] = _skip_entry(ctx, candidate, model, reason)
            skipped[name] = reason
            if tuned and budget is not None:
                budget.used(0.0)  # its share goes to the candidates still to tune
            continue
        candidates[name] = {}  # its place in the YAML's order; filled below
        figures: dict[str, float | None] | None = None
        if tuned and split is not None and budget is not None:
            candidate, tuning[name], result, figures = _tune_candidate(
                ctx, candidate, split, budget, trainer
            )
            metrics.update(_tuning_metrics(name, tuning[name], result))
            curves[name] = result.curve(tuning[name]["direction"])
        elif screening is not None and name not in beside:  # those: once the others are done
            figures = screening.take(candidate, trainer)
        # where its fits run (the validation fit's too, whether or not it is refitted)
        engines[name] = trainer.engine_of(
            create_model(candidate.model.model_type, candidate.params)
        )
        validated.append((candidate, figures))
        if candidate.is_baseline:
            baseline = name
    if screening is not None:
        validated = [
            (candidate, screening.take(candidate, trainer))
            if candidate.name in beside
            else (candidate, figures)
            for candidate, figures in validated
        ]
        finished = screening.conclude([candidate for candidate, _ in validated])
        validated = [
            (candidate, finished.get(candidate.name, figures)) for candidate, figures in validated
        ]
    refit, not_refit = _refit_set(ctx, config, validated, baseline, split is not None)
    for candidate, figures in validated:
        name = candidate.name
        model = create_model(candidate.model.model_type, candidate.params)
        if name in refit:
            entry, report, path = _train_candidate(ctx, config, candidate, model, train, trainer)
            if path is not None:
                outputs[entry["artifact"]] = path
            metrics[f"{name}_fit_seconds"] = round(report.fit_seconds, 4)
            metrics[f"{name}_train_rmse"] = json_safe(report.final("train_rmse"))
            metrics[f"{name}_val_rmse"] = json_safe(report.final("val_rmse"))
            if report.refit:
                metrics[f"{name}_refit_epochs"] = report.refit["epochs"]
        else:
            entry = {**_entry(candidate, model, FitReport(0.0, n_train=0)), "not_refit": not_refit}
        if split is not None:
            entry["validation"] = figures
            if screening is not None and name in screening.stopped:
                entry["screened_out"] = screening.stopped[name]
            for metric, value in (figures or {}).items():
                metrics[f"{name}_validation_{metric}"] = value
        candidates[name] = entry
    trained = [name for name in candidates if name not in skipped]
    metrics["candidates_trained"] = len(trained)
    metrics["candidates_refitted"] = len(refit)
    metrics["candidates_skipped"] = len(skipped)
    metadata: dict[str, Any] = {
        "candidates": list(candidates),
        "baseline": baseline,
        "engine": ctx.engine,
        "trained_on": engines,
    }
    if trainer.spark_version is not None:
        metadata["spark_version"] = trainer.spark_version
    if tuning:
        metadata["tuning"] = {
            name: {
                "metric": record["metric"],
                "best": record["best"],
                "trials": len(record["trials"]),
                "stopped": record["stopped"],
                "curve": curves[name],
            }
            for name, record in tuning.items()
        }
    if skipped:
        metadata["skipped"] = skipped
        if trained == [baseline]:
            note = (
                f"every candidate but the baseline was skipped ({', '.join(skipped)}); "
                f"the run goes on with the baseline '{baseline}' alone"
            )
            ctx.logger.warning(note, extra={"fields": {"skipped": skipped}})
            metadata["note"] = note
    summary = {
        "model_name": config.model_name,
        "model_format": config.model_format,
        "baseline": baseline,
        "candidate_order": list(candidates),  # the JSON writer sorts keys; this keeps YAML order
        "candidates": candidates,
        "validation": split[2] if split is not None else None,
        "tuning": tuning or None,
    }
    summary_path = ctx.write_document(
        "training_summary.json", TrainingSummary.model_validate(json_safe(summary))
    )
    outputs["training_summary"] = summary_path
    return TaskResult(
        outputs=outputs,
        metrics=metrics,
        metadata=metadata,
    )
