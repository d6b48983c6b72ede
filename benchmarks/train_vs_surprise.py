"""Our SGD SVD against scikit-surprise's SVD on the same generated data, side by side.

For each size (100k and 1M ratings) the project's generator (``recomart_pipeline.datagen``)
writes a synthetic shop; its rating events are de-duplicated per (user, item), sampled to
exactly that many ratings and split 80/20 at random (test users and items all appear in
train). Both SVDs get the same hyper-parameters (100 factors, 20 epochs, lr 0.005,
reg 0.02, init std 0.1, biased) and the whole train split; the popularity baseline and
implicit ALS (64 factors, fed only the rated pairs, so its ranking numbers say little about
ALS on full event data) run on the same split for reference. Every model is scored by the same code
the evaluation task uses (Surprise's factors are wrapped into our ``SVDRecommender``, whose
predictions are checked against Surprise's own ``predict``): RMSE, MAE and NDCG@10 against
the test ratings >= 4 with train items excluded.

Timing: only ``fit`` is timed, best of ``--repeats``. Our kernels are JIT-compiled by numba;
one warm-up fit on a tiny data set runs first so compilation is not counted as fit time.
The cold first-call cost (empty numba cache, fresh process) is measured separately and
reported as ``svd_first_call_compile_seconds``.

scikit-surprise comes with the `bench` extra (part of `dev`, so `make setup` installs it).
Run: ``.venv/bin/python benchmarks/train_vs_surprise.py`` (writes
``benchmarks/results/train_vs_surprise.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recomart_pipeline.datagen import generate_dataset
from recomart_pipeline.ml.base import Ratings, Recommender, TrainingData
from recomart_pipeline.ml.evaluate import evaluate_model
from recomart_pipeline.ml.metrics import json_safe
from recomart_pipeline.ml.models import create_model
from recomart_pipeline.ml.svd import SVDRecommender

HYPER = {"n_factors": 100, "n_epochs": 20, "learning_rate": 0.005, "regularization": 0.02}
ALS_PARAMS = {"n_factors": 64, "n_iterations": 15}  # implicit ALS on the rated pairs, for timing
# (ratings, users, items, generated events): sized so de-duplicated ratings exceed the target.
SIZES: dict[str, tuple[int, int, int, int]] = {
    "20k": (20_000, 400, 600, 240_000),  # run_all.py --quick: keeps the script from rotting
    "100k": (100_000, 2_000, 3_000, 900_000),
    "1m": (1_000_000, 20_000, 10_000, 9_000_000),
}
RELEVANT_RATING = 4.0
K = 10
RESULTS = Path(__file__).parent / "results" / "train_vs_surprise.json"

COLD_COMPILE_SNIPPET = """
import time
import numpy as np
from recomart_pipeline.ml.base import Ratings, TrainingData
from recomart_pipeline.ml.svd import SVDRecommender
rng = np.random.default_rng(0)
train = TrainingData(20, 20, Ratings(rng.integers(0, 20, 200), rng.integers(0, 20, 200),
                                     rng.integers(1, 6, 200)))
started = time.perf_counter()
SVDRecommender({"n_epochs": 1}).fit(train)
print(time.perf_counter() - started)
"""


def _split(size: str, seed: int, workdir: Path) -> tuple[TrainingData, Ratings, sp.csr_matrix]:
    """Generate, de-duplicate, sample and split one data set."""
    target, users, items, events = SIZES[size]
    paths = generate_dataset(
        workdir / size, users=users, items=items, interactions=events, seed=seed
    )
    frame = pd.read_parquet(
        paths["interactions"],
        columns=["user_id", "item_id", "rating"],
        filters=[("event_type", "=", "rating")],
    ).drop_duplicates(["user_id", "item_id"], keep="last")
    if len(frame) < target:
        raise SystemExit(f"{size}: only {len(frame)} distinct ratings generated; raise SIZES")
    frame = frame.sample(n=target, random_state=seed)
    user_idx = frame["user_id"].astype("category").cat.codes.to_numpy(np.int32)
    item_idx = frame["item_id"].astype("category").cat.codes.to_numpy(np.int32)
    ratings = frame["rating"].to_numpy(np.float32)
    is_test = np.random.default_rng(seed).random(target) < 0.2
    known_users = np.isin(user_idx, user_idx[~is_test])
    known_items = np.isin(item_idx, item_idx[~is_test])
    is_test &= known_users & known_items
    n_users, n_items = int(user_idx.max()) + 1, int(item_idx.max()) + 1
    train = TrainingData(
        n_users, n_items, Ratings(user_idx[~is_test], item_idx[~is_test], ratings[~is_test])
    )
    test = Ratings(user_idx[is_test], item_idx[is_test], ratings[is_test])
    positive = test.values >= RELEVANT_RATING
    relevant = sp.csr_matrix(
        (np.ones(positive.sum(), np.float32), (test.users[positive], test.items[positive])),
        shape=(n_users, n_items),
    )
    return train, test, relevant


def _timed_fit(make: Any, fit: Any, repeats: int) -> tuple[Any, float]:
    best, model = np.inf, None
    for _ in range(repeats):
        model = make()
        started = time.perf_counter()
        fit(model)
        best = min(best, time.perf_counter() - started)
    return model, best


def _surprise_as_ours(algo: Any, trainset: Any, train: TrainingData) -> SVDRecommender:
    """Wrap Surprise's fitted factors in our class so both are scored by the same code."""
    users = np.array([int(trainset.to_raw_uid(i)) for i in range(trainset.n_users)])
    items = np.array([int(trainset.to_raw_iid(i)) for i in range(trainset.n_items)])
    k = HYPER["n_factors"]
    arrays = {
        "user_factors": np.zeros((train.n_users, k), np.float32),
        "item_factors": np.zeros((train.n_items, k), np.float32),
        "user_bias": np.zeros(train.n_users, np.float32),
        "item_bias": np.zeros(train.n_items, np.float32),
        "global_mean": np.asarray(trainset.global_mean, np.float32),
        "rating_min": np.asarray(1.0, np.float32),
        "rating_max": np.asarray(5.0, np.float32),
    }
    arrays["user_factors"][users], arrays["user_bias"][users] = algo.pu, algo.bu
    arrays["item_factors"][items], arrays["item_bias"][items] = algo.qi, algo.bi
    return SVDRecommender.from_arrays(HYPER, train.n_users, train.n_items, arrays)


def _fit_surprise(train: TrainingData, repeats: int, seed: int) -> tuple[SVDRecommender, float]:
    from surprise import SVD, Dataset, Reader

    frame = pd.DataFrame(
        {"u": train.ratings.users, "i": train.ratings.items, "r": train.ratings.values}
    )
    trainset = Dataset.load_from_df(frame, Reader(rating_scale=(1, 5))).build_full_trainset()
    algo, seconds = _timed_fit(
        lambda: SVD(
            n_factors=HYPER["n_factors"],
            n_epochs=HYPER["n_epochs"],
            lr_all=HYPER["learning_rate"],
            reg_all=HYPER["regularization"],
            random_state=seed,
        ),
        lambda a: a.fit(trainset),
        repeats,
    )
    wrapped = _surprise_as_ours(algo, trainset, train)
    # the wrapper must predict exactly what Surprise predicts, or the comparison is void
    sample = np.arange(0, len(train.ratings), max(1, len(train.ratings) // 200))
    users, items = train.ratings.users[sample], train.ratings.items[sample]
    theirs = [algo.predict(int(u), int(i)).est for u, i in zip(users, items, strict=True)]
    np.testing.assert_allclose(wrapped.predict(users, items), theirs, atol=1e-4)
    return wrapped, seconds


def _cold_compile_seconds() -> float:
    """Fit time of a 1-epoch toy SVD in a fresh process with an empty numba cache."""
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        done = subprocess.run(
            [sys.executable, "-c", COLD_COMPILE_SNIPPET],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    return float(done.stdout.strip())


def _score(model: Recommender, train: TrainingData, test: Ratings, relevant: sp.csr_matrix):
    metrics = evaluate_model(
        model, test_ratings=test, test_interactions=relevant, exclude=train.interactions(), k=K
    ).metrics
    return {key: metrics[key] for key in ("rmse", "mae", f"ndcg_at_{K}")}


def benchmark(size: str, repeats: int, seed: int, workdir: Path) -> dict[str, Any]:
    train, test, relevant = _split(size, seed, workdir)
    print(
        f"[{size}] {train.n_users} users x {train.n_items} items, "
        f"{len(train.ratings)} train / {len(test)} test ratings",
        flush=True,
    )
    warm = TrainingData(10, 10, Ratings(np.arange(10), np.arange(10), np.full(10, 3.0)))
    SVDRecommender({**HYPER, "n_epochs": 1}).fit(warm)  # JIT warm-up, not timed

    ours, ours_s = _timed_fit(
        lambda: SVDRecommender({**HYPER, "seed": seed}), lambda m: m.fit(train), repeats
    )
    theirs, theirs_s = _fit_surprise(train, repeats, seed)
    popularity, pop_s = _timed_fit(lambda: create_model("popularity"), lambda m: m.fit(train), 1)
    create_model("als", {"n_iterations": 1}).fit(warm)
    als, als_s = _timed_fit(
        lambda: create_model("als", {**ALS_PARAMS, "seed": seed}), lambda m: m.fit(train), 1
    )

    models = {
        "recomart_svd": {**_score(ours, train, test, relevant), "fit_seconds": ours_s},
        "surprise_svd": {**_score(theirs, train, test, relevant), "fit_seconds": theirs_s},
        "popularity": {**_score(popularity, train, test, relevant), "fit_seconds": pop_s},
        "recomart_als": {**_score(als, train, test, relevant), "fit_seconds": als_s},
    }
    for name, values in models.items():
        print(
            f"[{size}] {name:13s} " + "  ".join(f"{k}={v:.4f}" for k, v in values.items()),
            flush=True,
        )
    return {
        "n_users": train.n_users,
        "n_items": train.n_items,
        "n_train": len(train.ratings),
        "n_test": len(test),
        "n_relevant_test": int(relevant.nnz),
        "models": models,
        "surprise_fit_seconds_over_ours": theirs_s / ours_s,
        "rmse_ours_minus_surprise": models["recomart_svd"]["rmse"] - models["surprise_svd"]["rmse"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["100k", "1m"], choices=list(SIZES))
    parser.add_argument("--repeats", type=int, default=3, help="fits per SVD; best time counts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    import surprise

    results: dict[str, Any] = {
        "hyper_parameters": {**HYPER, "init_std": 0.1, "biased": True},
        "als_parameters": ALS_PARAMS,
        "k": K,
        "relevant_rating": RELEVANT_RATING,
        "repeats": args.repeats,
        "timing": "fit() only, best of repeats, after one untimed JIT warm-up fit",
        "svd_first_call_compile_seconds": _cold_compile_seconds(),
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "surprise": surprise.__version__,
        },
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "datasets": {},
    }
    with tempfile.TemporaryDirectory() as workdir:
        for size in args.sizes:
            results["datasets"][size] = benchmark(size, args.repeats, args.seed, Path(workdir))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(json_safe(results), indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
