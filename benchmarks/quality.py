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
needed for CI).

``--tune SECONDS`` adds a tuned version of each candidate with a search space (``SPACES``):
the training task's tuning (``ml.tuning``: seeded TPE, the defaults as trial 0) on a
validation split cut from the train pairs by the same protocol (``random``, 20 %, seed 0),
the budget shared by the candidates in order; the best setting is refitted on all train
pairs and scored on the test pairs once. Its ``fit_seconds`` is that refit; ``tune_seconds``
the search.

Run: ``.venv/bin/python benchmarks/quality.py --generate 2000,500,50000 --json out.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from collections.abc import Callable
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


class _ImplicitALS(Recommender):
    """implicit's ALS wrapped so the same evaluation code scores it (factors as state)."""

    model_type = "implicit_als"
    short_name = "implicit_als"
    predicts_ratings = False
    state_shapes = {"user_factors": "users", "item_factors": "items"}  # noqa: RUF012

    def _fit(self, train: TrainingData, on_epoch: Any) -> Any:  # pragma: no cover - optional
        from implicit.cpu.als import AlternatingLeastSquares

        model = AlternatingLeastSquares(
            factors=64, iterations=15, regularization=0.01, alpha=1.0, random_state=0
        )
        model.fit(train.interactions(), show_progress=False)
        from recomart_pipeline.ml.base import FitReport

        state = {
            "user_factors": np.asarray(model.user_factors, np.float32),
            "item_factors": np.asarray(model.item_factors, np.float32),
        }
        return state, FitReport(0.0, n_train=train.interactions().nnz)

    def _predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        x, y = self._state["user_factors"], self._state["item_factors"]
        return np.einsum("nk,nk->n", x[users], y[items]).astype(np.float32)

    def _score_items(self, users: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(
            self._state["user_factors"][users] @ self._state["item_factors"].T, np.float32
        )


def _models() -> dict[str, Recommender]:
    models = {name: create_model(kind, params) for name, (kind, params) in CANDIDATES.items()}
    try:
        import implicit  # noqa: F401
    except ImportError:
        return models
    from pydantic import BaseModel

    class _NoParams(BaseModel):
        """implicit's ALS is configured in _ImplicitALS itself: no params to validate."""

    _ImplicitALS.Params = _NoParams
    models["implicit_als"] = _ImplicitALS()
    return models


def _warm_up() -> None:
    rng = np.random.default_rng(0)
    dense = (rng.random((40, 30)) < 0.3).astype(np.float32)
    users, items = np.nonzero(dense)
    tiny = TrainingData(40, 30, Ratings(users, items, np.ones(users.size)), sp.csr_matrix(dense))
    for model in _models().values():
        model.fit(tiny)
        model.recommend(np.arange(40), 5, tiny.implicit)


def benchmark(name: str, frame: pd.DataFrame, tune_seconds: float | None = None) -> dict[str, Any]:
    train_frame, test_frame = surprise_split(frame)
    train, held, n_test, dropped = matrices(train_frame, test_frame)
    result: dict[str, Any] = {
        "data": name,
        "pairs": len(frame),
        "users": train.n_users,
        "items": train.n_items,
        "test_pairs": n_test,
        "test_pairs_dropped_unknown": dropped,
        "models": {},
    }
    for label, model in _models().items():
        reason = model.skip_reason(train)
        if reason is not None:
            result["models"][label] = {"skipped": reason}
            continue
        started = time.perf_counter()
        model.fit(train)
        fit_seconds = time.perf_counter() - started
        scored = evaluate_model(
            model, test_ratings=None, test_interactions=held, exclude=train.implicit, k=K
        )
        metrics = scored.metrics
        result["models"][label] = {
            f"ndcg_at_{K}": round(metrics[f"ndcg_at_{K}"], 4),
            f"precision_at_{K}": round(metrics[f"precision_at_{K}"], 4),
            f"recall_at_{K}": round(metrics[f"recall_at_{K}"], 4),
            "fit_seconds": round(fit_seconds, 3),
        }
        print(f"{name} {label}: {result['models'][label]}", flush=True)
    if tune_seconds is not None:
        started = time.perf_counter()
        result["models"].update(tuned(name, train, held, tune_seconds))
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
) -> dict[str, Any]:
    """Each searchable candidate (of ``spaces``, default ``SPACES``) tuned on a validation
    split of ``train``, then refitted on all of ``train`` and scored on ``held`` (the test
    pairs) once."""
    spaces = SPACES if spaces is None else spaces
    holdout = holdout_split(train, "random", 0.2, seed=0)
    users = evaluation_users(holdout.interactions)
    results: dict[str, Any] = {}
    spent = 0.0
    for position, (label, space) in enumerate(spaces.items()):
        kind, base = CANDIDATES[label]
        share = (budget_seconds - spent) / (len(spaces) - position)
        configured = create_model(kind, base).params.model_dump()
        search = tune(
            space,
            _objective(kind, base, holdout, users),
            direction="maximize",
            seed=0,
            n_trials=None,
            budget_seconds=max(share, 0.0),
            start=configured,
        )
        spent += search.seconds
        best = search.best("maximize")
        chosen = best.params if best is not None else {}
        model = create_model(kind, {**base, **chosen})
        started = time.perf_counter()
        model.fit(train)
        fit_seconds = time.perf_counter() - started
        scored = evaluate_model(
            model, test_ratings=None, test_interactions=held, exclude=train.implicit, k=K
        )
        metrics = scored.metrics
        results[f"{label}_tuned"] = {
            f"ndcg_at_{K}": round(metrics[f"ndcg_at_{K}"], 4),
            f"precision_at_{K}": round(metrics[f"precision_at_{K}"], 4),
            f"recall_at_{K}": round(metrics[f"recall_at_{K}"], 4),
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
    args = parser.parse_args(argv)
    _warm_up()
    results = []
    for path in args.data:
        results.append(benchmark(path.name, read_pairs(path), args.tune))
    for spec in args.generate:
        users, items, interactions = (int(part) for part in spec.split(","))
        with tempfile.TemporaryDirectory() as folder:
            paths = generate_dataset(
                Path(folder), users=users, items=items, interactions=interactions, seed=7
            )
            frame = read_pairs(paths["interactions"])
        label = f"generated {users:,} users x {items:,} items"
        results.append(benchmark(label, frame, args.tune))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
