"""Which candidate wins on a split: one rule, used by training and evaluation.

Evaluation chooses the deploy candidate on the validation figures; training, before that,
refits on all its data only the candidates that choice can fall on (the best personalised
candidate and the baseline). Both must rank candidates the same way — the same metric
direction, missing values never winning, ties going to the candidate listed first — or
evaluation could pick a model training did not refit. So the rule lives here, once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

Figures = Mapping[str, Mapping[str, float]]
"""Candidate → metric → value (NaN: not measured for that candidate)."""


@dataclass(frozen=True)
class Choice:
    """The deploy candidate, the best personalised one, and whether the baseline stands in."""

    best: str
    personal: str | None
    fallback: bool


def as_figures(
    measured: Mapping[str, Mapping[str, float | None] | None],
) -> dict[str, dict[str, float]]:
    """Recorded metrics (None: not measured, as JSON holds them) as ``Figures``: NaN there."""
    return {
        name: {key: math.nan if value is None else value for key, value in (metrics or {}).items()}
        for name, metrics in measured.items()
    }


def best_of(figures: Figures, pool: Sequence[str], metric: str, maximise: bool) -> str | None:
    """The candidate of ``pool`` with the best ``metric`` (None: no candidate has a value).

    Ties go to the candidate listed first, so the choice is deterministic and follows the
    order of the YAML."""
    scored = [(figures[name].get(metric, math.nan), name) for name in pool]
    scored = [(value, name) for value, name in scored if not math.isnan(value)]
    if not scored:
        return None
    return sorted(scored, key=lambda vn: -vn[0] if maximise else vn[0])[0][1]


def beats(figures: Figures, a: str, b: str, metric: str, maximise: bool) -> bool:
    """Is ``a`` strictly better than ``b`` by ``metric`` (a missing value never is)?"""
    va, vb = figures[a].get(metric, math.nan), figures[b].get(metric, math.nan)
    if math.isnan(va):
        return False
    if math.isnan(vb):
        return True
    return va > vb if maximise else va < vb


def personalised(names: Sequence[str], baseline: str, figures: Figures) -> list[str]:
    """The candidates other than the baseline that have figures, in order."""
    return [name for name in names if name != baseline and name in figures]
