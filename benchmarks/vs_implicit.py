"""Our ranking models against implicit, the reference implicit-feedback library, side by side.

Why: issue 20 wants the project's candidates to *beat* the reference libraries, not just match
them; that claim needs implicit's models trained on exactly the data ours see and scored by
exactly our metric code. This script does that. Data, split, the fit-and-score loop and
scoring are ``benchmarks/quality.py``'s (imported, not copied): distinct (user, item) pairs,
Surprise's seeded random 80/20 split (``perm = RandomState(0).permutation(n)``, the last
``ceil(0.2 n)`` pairs are test), test pairs of unknown users or items dropped, train items
excluded from the rankings, NDCG@10 / precision@10 / recall@10 from
``ml.evaluate.evaluate_model``.

implicit's models are fitted on the same binary train matrix and wrapped as our
``Recommender`` (their factors, or their item-item similarity matrix), so our ``recommend``
ranks them. Each wrapper is checked against implicit's own ``recommend`` on a sample of users
(the same top-10 scores), or the comparison is void. The models (``THEIRS``):

- ``implicit_als``: ``AlternatingLeastSquares`` with our ALS defaults (16 factors,
  regularization 5, 15 iterations, alpha 1, CG with 3 steps). implicit's confidence is the
  stored value times alpha, c = alpha·m (its CG weighs a positive by c - 1), ours is
  c = 1 + alpha·m, so on binary data the same nominal alpha gives implicit c = 1 and ours c = 2;
  ``implicit_als_alpha2`` (alpha 2) is the same objective as our default ALS.
- ``implicit_als_bm25``: the same after ``bm25_weight(item_users, K1=100, B=0.8)`` (implicit's
  defaults and usage; our ``als_bm25`` uses the same weighting).
- ``implicit_als_64f``: issue 20's reference setting (64 factors, regularization 0.01,
  15 iterations, alpha 1), as ``quality.py`` runs it.
- ``implicit_cosine`` / ``implicit_bm25``: ``CosineRecommender`` / ``BM25Recommender``
  (K1 1.2, B 0.75) with 200 neighbours, our item-kNN's defaults (implicit's own default is 20);
  ``item_knn_plain`` is our cosine without its shrinkage (``shrinkage: 0``), implicit's cosine.

Fit seconds time ``fit`` alone (best of ``--repeats``), after one untimed warm-up fit of
every model on a tiny set (numba compilation is not counted). implicit runs its ALS with BLAS
limited to one thread, as it asks; both libraries use every core for their own loops. ``--tune-als SECONDS`` adds our
ALS tuned as ``quality.py --tune`` tunes it (on a validation split of the train pairs; the test
pairs scored once).

Data: ``--generate USERS,ITEMS,INTERACTIONS`` (the project's generator, seed 7),
``--data FILE`` (``user_id``/``item_id`` columns), ``--movielens-shaped`` (the tests'
MovieLens 100K ``u.data`` writer, ``recomart_pipeline_tests/real_shapes.py``: 300 users,
120 items) and ``--latent USERS,ITEMS,PER_USER`` (the same latent-factor world at another
size, e.g. MovieLens 100K's 943,1682,106). On a latent world ``known_scores`` ranks by the
generator's own noiseless key: what a perfect model would score, the ceiling of that data.

implicit comes with the ``bench`` extra (part of ``dev``). Run:
``.venv/bin/python benchmarks/vs_implicit.py --generate 5000,1000,100000 --json out.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict
from threadpoolctl import threadpool_limits

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import quality  # noqa: E402

from recomart_pipeline.datagen import generate_dataset  # noqa: E402
from recomart_pipeline.ml.base import (  # noqa: E402
    EpochCallback,
    FitReport,
    Ratings,
    Recommender,
    StateShape,
    TrainingData,
)
from recomart_pipeline.ml.models import create_model  # noqa: E402
from recomart_pipeline.ml.params import ALSHyperParams, ItemKNNParams  # noqa: E402

K = quality.K
RESULTS = HERE / "results" / "vs_implicit.json"
# Our candidates: quality.py's defaults plus the BM25 options of item-kNN and ALS, the
# counterparts of implicit's BM25 models.
OURS: dict[str, tuple[str, dict[str, Any]]] = {
    **quality.CANDIDATES,
    "item_knn_plain": ("item_knn", {"shrinkage": 0.0}),  # implicit's cosine: no shrinkage
    "item_knn_bm25": ("item_knn", {"weighting": "bm25"}),
    "als_bm25": ("als", {"weighting": "bm25"}),
}
_ALS = ALSHyperParams()
_KNN = ItemKNNParams()


class ImplicitParams(BaseModel):
    """One implicit model: which class and the arguments it is built with."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["als", "cosine", "bm25"]
    factors: int = _ALS.n_factors
    regularization: float = _ALS.regularization
    iterations: int = _ALS.n_iterations
    alpha: float = _ALS.alpha
    bm25_weight: bool = False
    neighbours: int = _KNN.k
    K1: float = _KNN.bm25_k1
    B: float = _KNN.bm25_b


THEIRS: dict[str, ImplicitParams] = {
    "implicit_als": ImplicitParams(kind="als"),
    "implicit_als_alpha2": ImplicitParams(kind="als", alpha=1.0 + _ALS.alpha),
    "implicit_als_bm25": ImplicitParams(kind="als", bm25_weight=True),
    "implicit_als_64f": ImplicitParams(kind="als", factors=64, regularization=0.01),
    "implicit_cosine": ImplicitParams(kind="cosine"),
    "implicit_bm25": ImplicitParams(kind="bm25"),
}


class ImplicitALS(Recommender):
    """implicit's ``AlternatingLeastSquares``; its factors are the state our code ranks by."""

    model_type = "implicit_als"
    short_name = "implicit_als"
    Params = ImplicitParams
    predicts_ratings = False
    state_shapes: ClassVar[dict[str, StateShape]] = {
        "user_factors": "users",
        "item_factors": "items",
    }
    native: Any = None

    def _fit(
        self, train: TrainingData, on_epoch: EpochCallback
    ) -> tuple[dict[str, np.ndarray], FitReport]:
        from implicit.cpu.als import AlternatingLeastSquares
        from implicit.nearest_neighbours import bm25_weight

        params: ImplicitParams = self.params  # type: ignore[assignment]
        matrix = sp.csr_matrix(train.interactions(), dtype=np.float32)
        if params.bm25_weight:
            # implicit's usage: weight the item x user matrix (idf per user, length per item)
            matrix = sp.csr_matrix(bm25_weight(matrix.T, K1=100, B=0.8).T, dtype=np.float32)
        with threadpool_limits(1, "blas"):  # implicit checks (and warns) when built
            self.native = AlternatingLeastSquares(
                factors=params.factors,
                regularization=params.regularization,
                iterations=params.iterations,
                alpha=params.alpha,
                random_state=0,
            )
            self.native.fit(matrix, show_progress=False)
        state = {
            "user_factors": np.asarray(self.native.user_factors, np.float32),
            "item_factors": np.asarray(self.native.item_factors, np.float32),
        }
        return state, FitReport(0.0, n_train=int(matrix.nnz))

    def _predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        x, y = self._state["user_factors"], self._state["item_factors"]
        return np.einsum("nk,nk->n", x[users], y[items]).astype(np.float32)

    def _score_items(self, users: np.ndarray) -> np.ndarray:
        scores: np.ndarray = self._state["user_factors"][users] @ self._transposed_state(
            "item_factors"
        )
        return scores.astype(np.float32, copy=False)


class ImplicitItemItem(Recommender):
    """implicit's ``CosineRecommender`` / ``BM25Recommender``: a user's score for an item is
    their train row times the item-item similarity matrix, as implicit's scorer computes it."""

    model_type = "implicit_item_item"
    short_name = "implicit_item_item"
    Params = ImplicitParams
    predicts_ratings = False
    state_shapes: ClassVar[dict[str, StateShape]] = {
        "indptr": "item_offsets",
        "indices": "entries",
        "data": "entries",
    }
    native: Any = None
    _history: sp.csr_matrix | None = None
    _similarity: sp.csr_matrix | None = None

    def _fit(
        self, train: TrainingData, on_epoch: EpochCallback
    ) -> tuple[dict[str, np.ndarray], FitReport]:
        from implicit.nearest_neighbours import BM25Recommender, CosineRecommender

        params: ImplicitParams = self.params  # type: ignore[assignment]
        matrix = sp.csr_matrix(train.interactions(), dtype=np.float32)
        if params.kind == "cosine":
            self.native = CosineRecommender(K=params.neighbours)
        else:
            self.native = BM25Recommender(K=params.neighbours, K1=params.K1, B=params.B)
        with warnings.catch_warnings():
            # implicit converts its own COO weighting to CSR inside fit and warns about it
            warnings.filterwarnings("ignore", message="Method expects CSR input")
            self.native.fit(matrix, show_progress=False)
        self._history = matrix
        self._similarity = sp.csr_matrix(self.native.similarity, dtype=np.float32)
        state = {
            "indptr": self._similarity.indptr,
            "indices": self._similarity.indices,
            "data": self._similarity.data,
        }
        return state, FitReport(0.0, n_train=int(matrix.nnz))

    def _predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self._score_items(users)[np.arange(users.size), items]

    def _score_items(self, users: np.ndarray) -> np.ndarray:
        assert self._history is not None and self._similarity is not None
        scores: np.ndarray = (self._history[users] @ self._similarity).toarray()
        return scores.astype(np.float32, copy=False)


def implicit_model(params: ImplicitParams) -> Recommender:
    return ImplicitALS(params) if params.kind == "als" else ImplicitItemItem(params)


def check_agrees_with_implicit(model: Recommender, train: TrainingData, sample: int = 200) -> None:
    """The wrapper's top-k scores equal implicit's own ``recommend`` for a sample of users,
    so our ranking of implicit's model is implicit's ranking (ids may differ only on ties)."""
    native = model.native  # type: ignore[attr-defined]
    history = sp.csr_matrix(train.interactions(), dtype=np.float32)
    active = np.flatnonzero(np.diff(history.indptr))
    users = active[:: max(1, active.size // sample)]
    _, ours_scores = model.recommend(users, K, history)
    theirs_items, theirs_scores = native.recommend(
        users, history[users], N=K, filter_already_liked_items=True
    )
    theirs_scores = np.asarray(theirs_scores, np.float64)
    filled = np.isfinite(theirs_scores) & (theirs_items >= 0)
    # implicit returns fewer than K items when a user's neighbourhood runs out (score 0)
    filled &= theirs_scores != 0
    np.testing.assert_allclose(
        ours_scores[filled], theirs_scores[filled], rtol=2e-3, atol=1e-5, err_msg=str(model)
    )


def models() -> dict[str, Recommender]:
    ours = {label: create_model(kind, params) for label, (kind, params) in OURS.items()}
    return {**ours, **{label: implicit_model(params) for label, params in THEIRS.items()}}


def warm_up() -> None:
    """One fit and ranking of every model on a tiny set: compilation is not fit time."""
    rng = np.random.default_rng(0)
    dense = (rng.random((40, 30)) < 0.3).astype(np.float32)
    users, items = np.nonzero(dense)
    tiny = TrainingData(40, 30, Ratings(users, items, np.ones(users.size)), sp.csr_matrix(dense))
    for model in models().values():
        model.fit(tiny)
        model.recommend(np.arange(40), 5, tiny.implicit)


def _check(label: str, model: Recommender, train: TrainingData) -> None:
    if label in THEIRS:
        check_agrees_with_implicit(model, train)


def benchmark(
    name: str,
    frame: pd.DataFrame,
    tune_als: float | None = None,
    repeats: int = 1,
    truth: np.ndarray | None = None,
) -> dict[str, Any]:
    """Every model on ``frame``'s split; with ``truth`` (a generator's noiseless scores by raw
    user and item id), also ``known_scores``: ranking by it, the data's ceiling."""
    train, held, result = quality.prepare(name, frame)
    result["load_average_before"] = round(os.getloadavg()[0], 2)
    ranked = models()
    if truth is not None:
        train_frame, _ = quality.surprise_split(frame)
        users = np.sort(train_frame["user_id"].unique()).astype(int)
        items = np.sort(train_frame["item_id"].unique()).astype(int)
        ranked["known_scores"] = KnownScores(truth[np.ix_(users, items)])
    result["models"] = quality.fit_and_score(name, ranked, train, held, repeats, _check)
    if tune_als is not None:
        spaces = {"als": quality.SPACES["als"]}
        result["models"].update(quality.tuned(name, train, held, tune_als, spaces))
        result["tune_als_budget_seconds"] = tune_als
    result["load_average_after"] = round(os.getloadavg()[0], 2)
    return result


class KnownScores(Recommender):
    """Ranks by scores given up front: the latent world's own ranking key (the generator's
    ``true_scores``), the ceiling no model trained on its samples can beat."""

    model_type = "known_scores"
    short_name = "known_scores"
    Params = ImplicitParams  # unused: the scores are the whole model
    predicts_ratings = False
    state_shapes: ClassVar[dict[str, StateShape]] = {"scores": "users"}

    def __init__(self, scores: np.ndarray) -> None:
        super().__init__(ImplicitParams(kind="als"))
        self.scores = np.ascontiguousarray(scores, np.float32)

    def _fit(
        self, train: TrainingData, on_epoch: EpochCallback
    ) -> tuple[dict[str, np.ndarray], FitReport]:
        return {"scores": self.scores}, FitReport(0.0, n_train=0)

    def _predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self._state["scores"][users, items]

    def _score_items(self, users: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self._state["scores"][users])


def movielens_shaped(spec: str | None = None) -> tuple[str, pd.DataFrame, np.ndarray | None]:
    """Pairs of the tests' MovieLens-shaped world: ``u.data`` as written and read back (no
    spec), or the same latent-factor generator at ``USERS,ITEMS,PER_USER`` with its
    noiseless ranking key (users x items, by raw id)."""
    from recomart_pipeline_tests.ml.synthetic import make_synthetic
    from recomart_pipeline_tests.real_shapes import write_u_data

    truth = None
    if spec is None:
        with tempfile.TemporaryDirectory() as folder:
            path = write_u_data(Path(folder))
            raw = pd.read_csv(path, sep="\t", header=None, names=["user_id", "item_id", "r", "t"])
        label = "MovieLens-shaped u.data (real_shapes.py)"
    else:
        n_users, n_items, per_user = (int(part) for part in spec.split(","))
        data = make_synthetic(n_users=n_users, n_items=n_items, per_user=per_user, seed=4)
        users = np.concatenate([data.train.ratings.users, data.test_ratings.users])
        items = np.concatenate([data.train.ratings.items, data.test_ratings.items])
        order = np.lexsort((items, users))
        raw = pd.DataFrame({"user_id": users[order], "item_id": items[order]})
        label = f"latent-factor world {n_users:,} users x {n_items:,} items, {per_user}/user"
        truth = data.true_scores
    pairs = raw[["user_id", "item_id"]].astype(str).drop_duplicates().reset_index(drop=True)
    return label, pairs, truth


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--data", nargs="*", type=Path, default=[], help="interactions files")
    parser.add_argument(
        "--generate",
        nargs="*",
        default=[],
        metavar="USERS,ITEMS,INTERACTIONS",
        help="generated shops (the project's generator, seed 7)",
    )
    parser.add_argument(
        "--movielens-shaped", action="store_true", help="the tests' MovieLens u.data world"
    )
    parser.add_argument(
        "--latent",
        nargs="*",
        default=[],
        metavar="USERS,ITEMS,PER_USER",
        help="that latent-factor world at another size",
    )
    parser.add_argument("--tune-als", type=float, metavar="SECONDS", help="also tune our ALS")
    parser.add_argument("--repeats", type=int, default=1, help="fits per model; best counts")
    parser.add_argument("--json", type=Path, default=RESULTS, help="write the results here")
    args = parser.parse_args(argv)
    import implicit

    warm_up()
    data: list[tuple[str, pd.DataFrame, np.ndarray | None]] = []
    data += [(path.name, quality.read_pairs(path), None) for path in args.data]
    for spec in args.generate:
        users, items, interactions = (int(part) for part in spec.split(","))
        with tempfile.TemporaryDirectory() as folder:
            paths = generate_dataset(
                Path(folder), users=users, items=items, interactions=interactions, seed=7
            )
            frame = quality.read_pairs(paths["interactions"])
        data.append((f"generated {users:,} users x {items:,} items", frame, None))
    if args.movielens_shaped:
        data.append(movielens_shaped())
    data += [movielens_shaped(spec) for spec in args.latent]
    output = {
        "k": K,
        "split": "Surprise train_test_split(test_size=0.2, random_state=0) on distinct pairs",
        "timing": f"fit() only, best of {args.repeats}, after an untimed warm-up fit of every "
        "model",
        "implicit_parameters": {label: p.model_dump() for label, p in THEIRS.items()},
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "implicit": implicit.__version__,
        },
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "datasets": [
            benchmark(label, frame, args.tune_als, args.repeats, truth)
            for label, frame, truth in data
        ],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(output, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
