"""Hyper-parameter search within a budget: Optuna's TPE sampler, seeded, one trial at a time.

Why Optuna: TPE (a model of which regions scored well) finds good settings in far fewer
trials than a grid or random search when a few parameters matter and the rest do not, which
is the usual case here (regularisation and factors matter; CG steps barely do); it is small
(its other dependencies, SQLAlchemy, alembic, tqdm, PyYAML, are already Dagster's, and an
in-memory study imports none of them) and well kept.

Determinism: trials run one after another in this process through the ask/tell interface,
so the sampler sees exactly the same history on every run; with the same seed, space and
objective the same parameters are proposed and the same best is chosen. Trial 0 is the
candidate's configured parameters (where they lie in the space), so tuning never picks
something worse on validation than not tuning.

The budget: ``n_trials`` and/or ``budget_seconds``. No new trial starts once the budget is
spent; a running trial is never interrupted (the task's own timeout stays the hard limit).
With a time budget, how many trials fit depends on the machine, so only an ``n_trials``
search is reproducible to the byte; the summary records which limit stopped the search.

What a trial is worth comes from ``objective``: the training task fits on the training data
without the validation split and scores the validation split (never the test split).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from recomart_pipeline.ml.params import Choice, FloatRange, IntRange

Direction = Literal["maximize", "minimize"]


@dataclass(frozen=True)
class Trial:
    """One evaluated setting: its parameters, the metric (None: the model could not be
    scored) and its wall time (a run fact)."""

    number: int
    params: dict[str, Any]
    value: float | None
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "params": self.params,
            "value": self.value,
            "seconds": round(self.seconds, 4),
        }


@dataclass
class TuningResult:
    """Every trial in order, the best one, and which limit ended the search."""

    trials: list[Trial] = field(default_factory=list)
    stopped: Literal["n_trials", "budget"] = "n_trials"
    seconds: float = 0.0

    def best(self, direction: Direction) -> Trial | None:
        """The best scored trial; the earliest one on a tie (trial 0 is the configured
        setting, so a tie keeps it)."""
        scored = [t for t in self.trials if t.value is not None]
        if not scored:
            return None
        sign = 1.0 if direction == "maximize" else -1.0
        return max(scored, key=lambda t: (sign * (t.value or 0.0), -t.number))

    def curve(self, direction: Direction) -> list[float | None]:
        """The best value so far after each trial (the search's progress)."""
        return best_so_far([t.value for t in self.trials], direction)


def best_so_far(values: Sequence[float | None], direction: Direction) -> list[float | None]:
    """The running best of ``values`` (unscored trials are None and change nothing)."""
    best: float | None = None
    out: list[float | None] = []
    for value in values:
        if value is not None and (
            best is None or (value > best if direction == "maximize" else value < best)
        ):
            best = value
        out.append(best)
    return out


def _distribution(dimension: BaseModel) -> Any:
    import optuna

    if isinstance(dimension, IntRange):
        return optuna.distributions.IntDistribution(
            dimension.low, dimension.high, log=dimension.log
        )
    if isinstance(dimension, FloatRange):
        return optuna.distributions.FloatDistribution(
            dimension.low, dimension.high, log=dimension.log
        )
    if isinstance(dimension, Choice):
        return optuna.distributions.CategoricalDistribution(dimension.choices)
    raise TypeError(f"unknown search dimension {dimension!r}")


def _in_space(value: Any, dimension: BaseModel) -> bool:
    if isinstance(dimension, Choice):
        return any(type(value) is type(c) and value == c for c in dimension.choices)
    if isinstance(dimension, IntRange):
        return isinstance(value, int) and dimension.low <= value <= dimension.high
    if isinstance(dimension, FloatRange):
        return isinstance(value, (int, float)) and dimension.low <= value <= dimension.high
    return False


def tune(
    space: Mapping[str, BaseModel],
    objective: Callable[[dict[str, Any]], float | None],
    *,
    direction: Direction,
    seed: int,
    n_trials: int | None,
    budget_seconds: float | None,
    start: Mapping[str, Any] | None = None,
    on_trial: Callable[[Trial, float | None], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> TuningResult:
    """Search ``space`` for the parameters ``objective`` scores best.

    ``start``: the configured values, tried first (those inside the space; the rest are
    sampled). ``on_trial(trial, best_so_far)`` runs after each trial (logging).
    """
    if n_trials is None and budget_seconds is None:
        raise ValueError("a search needs n_trials or budget_seconds (or both)")
    try:
        import optuna
    except ImportError as exc:  # an environment installed before tuning existed
        raise ImportError(
            "tuning needs optuna, a runtime dependency of recomart-pipeline: reinstall the "
            "locked requirements (make setup, or pip install -r requirements.txt)"
        ) from exc

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed)
    study = optuna.create_study(direction=direction, sampler=sampler)
    distributions = {name: _distribution(dim) for name, dim in space.items()}
    if start:
        first = {n: v for n, v in start.items() if n in space and _in_space(v, space[n])}
        if first:
            study.enqueue_trial(first)
    result = TuningResult()
    began = clock()
    while n_trials is None or len(result.trials) < n_trials:
        if budget_seconds is not None and clock() - began >= budget_seconds:
            result.stopped = "budget"
            break
        asked = study.ask(distributions)
        trial_start = clock()
        value = objective(dict(asked.params))
        if value is not None and not math.isfinite(value):
            value = None
        if value is None:
            study.tell(asked, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(asked, value)
        trial = Trial(asked.number, dict(asked.params), value, clock() - trial_start)
        result.trials.append(trial)
        if on_trial is not None:
            on_trial(trial, result.curve(direction)[-1])
    result.seconds = clock() - began
    return result
