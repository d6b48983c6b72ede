"""Screening on validation: stop ranking a candidate that is already clearly behind.

Ranking every validation user is most of what validating a candidate costs at scale (the
factor models score the whole catalogue for each user: at 20M interactions, SVD's ranking of
100,000 users takes longer than its fit). Most candidates are not close calls: a rating model
ranked by predicted rating, or a bias baseline, trails the best item model by dozens of
standard errors after a few thousand users. Screening (the idea of racing in algorithm
configuration) ranks every candidate for a seeded block of the users first (``sample``).
The candidate best on the block is then ranked for every user and leads; each other one is
compared with the leader on the block's users and stopped there (``finish``) when the paired
per-user difference of the selection metric puts it more than ``margin`` standard errors
behind *and* its figure on the block is below the leader's full figure. The second
condition is what makes stopping safe for selection: a stopped candidate's recorded figure
is lower than a figure that is in the running, so the selection rule (``ml.selection``) can
never pick it. Candidates that are not clearly behind are ranked for the remaining users, and
their figures are exactly those of ranking every user at once (a user's list does not depend
on which users are ranked with it; the rows are put back in the users' order before the
metrics are taken).

Only the per-user ranking metrics (precision, recall, NDCG, MAP, hit rate at k) average over
users and can be screened; coverage and the rating errors cannot, and screening is then off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recomart_pipeline.ml.base import Ratings, Recommender
from recomart_pipeline.ml.evaluate import rating_errors, recommend_for
from recomart_pipeline.ml.metrics import ranking_metrics, ranking_values
from recomart_pipeline.ml.params import RANKING_METRICS

PER_USER_METRICS: frozenset[str] = frozenset(name for name in RANKING_METRICS if name != "coverage")


def screens(metric: str, k: int) -> bool:
    """Can selection on ``metric`` be screened (a mean over users of a per-user value)?"""
    return any(metric == f"{name}_at_{k}" for name in PER_USER_METRICS)


@dataclass(frozen=True)
class Screen:
    """The screening block (positions into the validation users, sorted) and the rule."""

    block: np.ndarray
    rest: np.ndarray
    metric: str
    margin: float

    @classmethod
    def plan(
        cls, n_users: int, block_users: int | None, metric: str, k: int, margin: float, seed: int
    ) -> Screen | None:
        """A seeded block of ``block_users`` of ``n_users`` validation users; None when
        screening would not save anything (no block, or no more users than the block) or
        ``metric`` is not a per-user ranking metric."""
        if block_users is None or n_users <= block_users or not screens(metric, k):
            return None
        order = np.random.default_rng(seed).permutation(n_users)
        return cls(np.sort(order[:block_users]), np.sort(order[block_users:]), metric, margin)


@dataclass(frozen=True)
class HeldOut:
    """What validation ranks against: the held-out ratings and interactions, the items to
    exclude (the fit part's), the cut-off and the users ranked (sorted)."""

    ratings: Ratings | None
    interactions: sp.csr_matrix
    exclude: sp.csr_matrix
    k: int
    users: np.ndarray

    def relevant(self, positions: np.ndarray | None = None) -> sp.csr_matrix:
        """The held-out items of the users (at ``positions`` of ``users``), row for row."""
        users = self.users if positions is None else self.users[positions]
        relevant: sp.csr_matrix = sp.csr_matrix(self.interactions)[users]
        return relevant

    def recommend(self, model: Recommender, positions: np.ndarray | None = None) -> np.ndarray:
        """``model``'s lists for the users (at ``positions``)."""
        users = self.users if positions is None else self.users[positions]
        return recommend_for(model, users, self.k, self.exclude)


@dataclass(frozen=True)
class Leader:
    """The best candidate validated on every user so far: its name, figure and per-user
    values of the selection metric (in the validation users' order)."""

    name: str
    figure: float
    values: np.ndarray


@dataclass(frozen=True)
class Behind:
    """Why a candidate was stopped after the screening block."""

    leader: str
    figure: float
    leader_figure: float
    standard_errors: float
    users: int


@dataclass(frozen=True)
class Sampled:
    """A candidate ranked for the screening block: its lists there, the block's per-user
    values of the selection metric and their mean (its figure on the block)."""

    model: Recommender
    first: np.ndarray
    values: np.ndarray
    figure: float


@dataclass(frozen=True)
class Screened:
    """A candidate's validation figures: over every user (``values`` set when screened:
    the per-user selection metric, to lead with), or over the block only (``behind``)."""

    metrics: dict[str, float]
    users: int
    values: np.ndarray | None = None
    behind: Behind | None = None


def standard_errors_behind(candidate: np.ndarray, leader: np.ndarray) -> float:
    """How many standard errors of the paired mean difference ``leader - candidate`` the
    candidate trails by (inf when every user trails by the same positive amount)."""
    differences = leader - candidate
    mean = float(differences.mean())
    spread = float(differences.std(ddof=1)) if differences.size > 1 else 0.0
    if spread == 0.0:
        return math.inf if mean > 0 else 0.0
    return mean / (spread / math.sqrt(differences.size))


def validate(model: Recommender, held: HeldOut) -> Screened:
    """``model``'s validation figures over every user, unscreened."""
    return _over_all(model, held, held.recommend(model), None)


def sample(model: Recommender, held: HeldOut, screen: Screen) -> Sampled:
    """Rank ``model`` for the screening block."""
    first = held.recommend(model, screen.block)
    values = ranking_values(first, held.relevant(screen.block), held.k)[screen.metric]
    return Sampled(model, first, values, float(values.mean()))


def finish(sampled: Sampled, held: HeldOut, screen: Screen, leader: Leader | None) -> Screened:
    """The sampled candidate stopped behind ``leader`` (see the module docstring), or ranked
    for the rest of the users: then the figures of ranking them all at once."""
    model = sampled.model
    if leader is not None:
        behind = standard_errors_behind(sampled.values, leader.values[screen.block])
        if behind > screen.margin and sampled.figure < leader.figure:
            metrics = {
                **rating_errors(model, held.ratings),
                **ranking_metrics(
                    sampled.first, held.relevant(screen.block), held.k, model.n_items
                ),
            }
            why = Behind(leader.name, sampled.figure, leader.figure, behind, int(screen.block.size))
            return Screened(metrics, int(screen.block.size), behind=why)
    recommended = np.empty((held.users.size, sampled.first.shape[1]), sampled.first.dtype)
    recommended[screen.block] = sampled.first
    recommended[screen.rest] = held.recommend(model, screen.rest)
    return _over_all(model, held, recommended, screen.metric)


def _over_all(
    model: Recommender, held: HeldOut, recommended: np.ndarray, metric: str | None
) -> Screened:
    relevant = held.relevant()
    metrics = {
        **rating_errors(model, held.ratings),
        **ranking_metrics(recommended, relevant, held.k, model.n_items),
    }
    values = None if metric is None else ranking_values(recommended, relevant, held.k)[metric]
    return Screened(metrics, int(held.users.size), values=values)
