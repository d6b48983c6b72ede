"""Ranking quality of every model type on the same split: EASE, item-kNN, ALS, popularity.

Each data set is an interactions table with ``user_id`` and ``item_id`` columns (CSV or
Parquet; what the project's generator writes), or a synthetic shop generated on the spot
(``--generate USERS,ITEMS,INTERACTIONS``, the generator's ``seed`` 7). Events are reduced to
distinct (user, item) pairs and split the way ``surprise.model_selection.train_test_split(
test_size=0.2, random_state=0)`` splits: ``perm = RandomState(0).permutation(n)``, the last
``ceil(0.2 n)`` pairs of the permutation are test. Test pairs whose user or item is not in
train are dropped (no model can score them); train items are excluded from the rankings.

Every candidate is fitted with its defaults on the train pairs (binary) and scored by the
evaluation task's code (``ml.evaluate.evaluate_model``): NDCG@10, precision@10, recall@10,
and the fit seconds (one warm-up fit on a tiny set first, so numba compilation is not
counted). ``implicit``'s ``AlternatingLeastSquares`` (64 factors, 15 iterations,
regularization 0.01, alpha 1) joins when that library is installed (it is optional and not
needed for CI), through ``vs_implicit.py``'s wrapper (checked there against implicit's own
ranking). ``vs_implicit.py`` runs its models through this script's ``fit_and_score``.

``--tune SECONDS`` adds a tuned version of each candidate with a search space (``SPACES``):
the training task's tuning (``ml.tuning``: seeded TPE, the defaults as trial 0) on a
validation split cut from the train pairs by the same protocol (``random``, 20 %, seed 0),
the budget shared by the candidates in order; the best setting is refitted on all train
pairs and scored on the test pairs once. Its ``fit_seconds`` is that refit; ``tune_seconds``
the search.

``--max-users N`` scores a seeded sample of N test users (``evaluation_users``' sample, seed
0; the validation users of ``--tune`` too) instead of all: the 5M-event shop in time.

Run: ``.venv/bin/python benchmarks/quality.py --generate 2000,500,50000 --json out.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recomart_pipeline.datagen import generate_dataset
from recomart_pipeline.ml.base import Ratings, Recommender, TrainingData
from recomart_pipeline.ml.evaluate import evaluate_model, evaluation_users
from recomart_pipeline.ml.holdout import Holdout, holdout_split
from recomart_pipeline.ml.models import create_model
from recomart_pipeline.ml.params import Choice, FloatRange, IntRange
from recomart_pipeline.ml.tuning import tune

CANDIDATES: dict[str, tuple[str, dict[str, Any]]] = {
    "ease": ("ease", {}),
    "item_knn": ("item_knn", {}),
    "als": ("als", {}),
    "popularity": ("popularity", {}),
}
K = 10
RANKING = (f"ndcg_at_{K}", f"precision_at_{K}", f"recall_at_{K}")
# The searches --tune runs (also the examples of docs/models.md).
SPACES: dict[str, dict[str, Any]] = {
    "ease": {"regularization": FloatRange(type="float", low=5.0, high=5000.0, log=True)},
    "item_knn": {
        "k": IntRange(type="int", low=10, high=1000, log=True),
        "weighting": Choice(type="categorical", choices=["cosine", "bm25", "tfidf"]),
    },
    "als": {
        "n_factors": IntRange(type="int", low=8, high=128, log=True),
        "regularization": FloatRange(type="float", low=0.01, high=100.0, log=True),
        "alpha": FloatRange(type="float", low=0.1, high=50.0, log=True),
        "confidence": Choice(type="categorical", choices=["linear", "log"]),
        "weighting": Choice(type="categorical", choices=["none", "bm25"]),
    },
}


def read_pairs(path: Path) -> pd.DataFrame:
    """Distinct (user_id, item_id) pairs of an interactions table, in file order."""
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path, columns=["user_id", "item_id"])
    else:
        frame = pd.read_csv(path, usecols=["user_id", "item_id"], dtype=str)
    frame = frame.dropna().astype(str)
    return frame.drop_duplicates().reset_index(drop=True)


def surprise_split(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Surprise's ``train_test_split(test_size=0.2, random_state=0)`` on the rows of frame."""
    n = len(frame)
    perm = np.random.RandomState(0).permutation(n)
    n_test = math.ceil(0.2 * n)
    return frame.iloc[perm[:-n_test]], frame.iloc[perm[-n_test:]]


def matrices(
    train: pd.DataFrame, test: pd.DataFrame
) -> tuple[TrainingData, sp.csr_matrix, int, int]:
    users = pd.Index(sorted(train["user_id"].unique()))
    items = pd.Index(sorted(train["item_id"].unique()))
    shape = (len(users), len(items))
    tu, ti = users.get_indexer(train["user_id"]), items.get_indexer(train["item_id"])
    ones = np.ones(len(train), np.float32)
    implicit = sp.csr_matrix((ones, (tu, ti)), shape=shape)
    su, si = users.get_indexer(test["user_id"]), items.get_indexer(test["item_id"])
    known = (su >= 0) & (si >= 0)
    held = sp.csr_matrix((np.ones(known.sum(), np.float32), (su[known], si[known])), shape=shape)
    data = TrainingData(shape[0], shape[1], Ratings(tu, ti, ones), implicit)
    return data, held, int(known.sum()), int((~known).sum())


def _models() -> dict[str, Recommender]:
    models = {name: create_model(kind, params) for name, (kind, params) in CANDIDATES.items()}
    try:
        import implicit  # noqa: F401
    except ImportError:
        return models
    # vs_implicit's wrapper (checked there against implicit's own recommend), with issue
    # 20's reference setting; imported here only when implicit is installed
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from vs_implicit import THEIRS, implicit_model

    models["implicit_als"] = implicit_model(THEIRS["implicit_als_64f"])
    return models


def _warm_up() -> None:
    rng = np.random.default_rng(0)
    dense = (rng.random((40, 30)) < 0.3).astype(np.float32)
    users, items = np.nonzero(dense)
    tiny = TrainingData(40, 30, Ratings(users, items, np.ones(users.size)), sp.csr_matrix(dense))
    for model in _models().values():
        model.fit(tiny)
        model.recommend(np.arange(40), 5, tiny.implicit)


def prepare(name: str, frame: pd.DataFrame) -> tuple[TrainingData, sp.csr_matrix, dict[str, Any]]:
    """The split of ``frame``'s pairs, its matrices, and the facts every result starts with."""
    train_frame, test_frame = surprise_split(frame)
    train, held, n_test, dropped = matrices(train_frame, test_frame)
    header = {
        "data": name,
        "pairs": len(frame),
        "users": train.n_users,
        "items": train.n_items,
        "test_pairs": n_test,
        "test_pairs_dropped_unknown": dropped,
    }
    return train, held, header


def figures(
    model: Recommender, train: TrainingData, held: sp.csr_matrix, users: np.ndarray | None = None
) -> dict[str, float]:
    """NDCG, precision and recall at ``K`` on the test pairs (of ``users``, default all),
    train items excluded."""
    metrics = evaluate_model(
        model, test_ratings=None, test_interactions=held, exclude=train.implicit, k=K, users=users
    ).metrics
    return {name: round(metrics[name], 4) for name in RANKING}


def fit_and_score(
    name: str,
    models: Mapping[str, Recommender],
    train: TrainingData,
    held: sp.csr_matrix,
    repeats: int = 1,
    check: Callable[[str, Recommender, TrainingData], None] | None = None,
    users: np.ndarray | None = None,
) -> dict[str, Any]:
    """Each model fitted on ``train`` (the best of ``repeats`` fits is its fit time; the last
    fit is scored), ``check(label, model, train)`` run on it, then scored on ``held``; a
    model that does not apply gets its skip reason; ``users``: the test users scored (default
    all). Printed as it goes."""
    results: dict[str, Any] = {}
    for label, model in models.items():
        reason = model.skip_reason(train)
        if reason is not None:
            results[label] = {"skipped": reason}
            continue
        fit_seconds = math.inf
        for _ in range(repeats):
            started = time.perf_counter()
            model.fit(train)
            fit_seconds = min(fit_seconds, time.perf_counter() - started)
        if check is not None:
            check(label, model, train)
        scored = figures(model, train, held, users)
        results[label] = {**scored, "fit_seconds": round(fit_seconds, 3)}
        print(f"{name} {label}: {results[label]}", flush=True)
    return results


def benchmark(
    name: str,
    frame: pd.DataFrame,
    tune_seconds: float | None = None,
    max_users: int | None = None,
) -> dict[str, Any]:
    train, held, result = prepare(name, frame)
    users = None
    if max_users is not None:
        users = evaluation_users(held, max_users, seed=0)
        result["evaluated_users"] = int(users.size)
    result["models"] = fit_and_score(name, _models(), train, held, users=users)
    if tune_seconds is not None:
        started = time.perf_counter()
        result["models"].update(tuned(name, train, held, tune_seconds, max_users=max_users))
        result["tune_budget_seconds"] = tune_seconds
        result["tune_wall_seconds"] = round(time.perf_counter() - started, 3)
    return result


def _score(model: Recommender, test: sp.csr_matrix, seen: sp.csr_matrix, users: Any) -> float:
    scored = evaluate_model(
        model, test_ratings=None, test_interactions=test, exclude=seen, k=K, users=users
    )
    return float(scored.metrics[f"ndcg_at_{K}"])


def _objective(
    kind: str, base: dict[str, Any], holdout: Holdout, users: np.ndarray
) -> Callable[[dict[str, Any]], float | None]:
    """A trial: fit on the train pairs without the validation split, NDCG on it."""

    def objective(values: dict[str, Any]) -> float | None:
        model = create_model(kind, {**base, **values})
        if model.skip_reason(holdout.fit) is not None:
            return None
        model.fit(holdout.fit)
        return _score(model, holdout.interactions, holdout.fit.interactions(), users)

    return objective


def tuned(
    name: str,
    train: TrainingData,
    held: sp.csr_matrix,
    budget_seconds: float,
    spaces: dict[str, dict[str, Any]] | None = None,
    max_users: int | None = None,
) -> dict[str, Any]:
    """Each searchable candidate (of ``spaces``, default ``SPACES``) tuned on a validation
    split of ``train``, then refitted on all of ``train`` and scored on ``held`` (the test
    pairs) once; ``max_users``: a seeded sample of the validation and test users scored."""
    spaces = SPACES if spaces is None else spaces
    holdout = holdout_split(train, "random", 0.2, seed=0)
    users = evaluation_users(holdout.interactions, max_users, seed=0)
    test_users = None if max_users is None else evaluation_users(held, max_users, seed=0)
    results: dict[str, Any] = {}
    spent = 0.0
    for position, (label, space) in enumerate(spaces.items()):
        kind, base = CANDIDATES[label]
        share = (budget_seconds - spent) / (len(spaces) - position)
        configured = create_model(kind, base).params.model_dump()
        # a share already spent (an earlier trial overran the budget) still runs trial 0,
        # the defaults, so every tuned row is a fit and a figure, not an empty search
        search = tune(
            space,
            _objective(kind, base, holdout, users),
            direction="maximize",
            seed=0,
            n_trials=None if share > 0 else 1,
            budget_seconds=share if share > 0 else None,
            start=configured,
        )
        spent += search.seconds
        best = search.best("maximize")
        chosen = best.params if best is not None else {}
        model = create_model(kind, {**base, **chosen})
        started = time.perf_counter()
        model.fit(train)
        fit_seconds = time.perf_counter() - started
        results[f"{label}_tuned"] = {
            **figures(model, train, held, test_users),
            "fit_seconds": round(fit_seconds, 3),
            "tune_seconds": round(search.seconds, 3),
            "trials": len(search.trials),
            "validation_ndcg_configured": search.trials[0].value if search.trials else None,
            "validation_ndcg_best": best.value if best is not None else None,
            "params": chosen,
        }
        print(f"{name} {label}_tuned: {results[f'{label}_tuned']}", flush=True)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", nargs="*", type=Path, default=[], help="interactions files")
    parser.add_argument(
        "--generate",
        nargs="*",
        default=[],
        metavar="USERS,ITEMS,INTERACTIONS",
        help="generated shops to benchmark (the project's generator, seed 7)",
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument(
        "--tune",
        type=float,
        metavar="SECONDS",
        help="also tune each searchable candidate within this budget per data set",
    )
    parser.add_argument(
        "--max-users",
        type=int,
        metavar="N",
        help="score a seeded sample of N test (and validation) users instead of all of them "
        "(for time on large data sets)",
    )
    args = parser.parse_args(argv)
    _warm_up()
    results = []
    for path in args.data:
        results.append(benchmark(path.name, read_pairs(path), args.tune, args.max_users))
    for spec in args.generate:
        users, items, interactions = (int(part) for part in spec.split(","))
        with tempfile.TemporaryDirectory() as folder:
            paths = generate_dataset(
                Path(folder), users=users, items=items, interactions=interactions, seed=7
            )
            frame = read_pairs(paths["interactions"])
        label = f"generated {users:,} users x {items:,} items"
        results.append(benchmark(label, frame, args.tune, args.max_users))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
