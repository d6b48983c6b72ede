"""The synthetic data generator: determinism, shape of the data and planted signal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recomart_pipeline import datagen
from recomart_pipeline.cli import main
from recomart_pipeline.datagen import generate_dataset


def _generate(out: Path, **overrides: object) -> dict[str, Path]:
    options: dict = dict(users=200, items=80, interactions=4000, seed=11)
    options.update(overrides)
    return generate_dataset(out, **options)


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """A clean, typed dataset big enough for statistics (about a second to make)."""
    paths = generate_dataset(
        tmp_path_factory.mktemp("clean"), users=600, items=200, interactions=60_000, seed=5
    )
    return pd.read_parquet(paths["interactions"])


@pytest.mark.parametrize("file_format", ["csv", "parquet"])
def test_same_seed_gives_identical_files(tmp_path: Path, file_format: str) -> None:
    first = _generate(tmp_path / "a", file_format=file_format, dirty_fraction=0.05)
    second = _generate(tmp_path / "b", file_format=file_format, dirty_fraction=0.05)
    assert set(first) == {"interactions", "items", "users"}
    for table in first:
        assert first[table].name == f"{table}.{file_format}"
        assert first[table].read_bytes() == second[table].read_bytes()


def test_different_seed_gives_different_data(tmp_path: Path) -> None:
    first = _generate(tmp_path / "a", seed=1)
    second = _generate(tmp_path / "b", seed=2)
    for table in first:
        assert first[table].read_bytes() != second[table].read_bytes()


def test_clean_parquet_is_typed_and_well_formed(tmp_path: Path) -> None:
    paths = _generate(tmp_path)
    schema = pq.read_schema(paths["interactions"])
    assert pa.types.is_timestamp(schema.field("timestamp").type)
    assert schema.field("timestamp").type.tz == "UTC"
    assert schema.field("rating").type == pa.float32()
    frame = pd.read_parquet(paths["interactions"])
    assert len(frame) == 4000
    assert frame["user_id"].str.fullmatch(r"u\d{6}").all()
    assert frame["item_id"].str.fullmatch(r"i\d{5}").all()
    assert set(frame["event_type"]) == set(datagen.EVENT_TYPES)
    assert frame["timestamp"].is_monotonic_increasing
    assert frame["timestamp"].min() >= pd.Timestamp("2026-01-01", tz="UTC")
    assert frame["timestamp"].max() < pd.Timestamp("2026-04-01", tz="UTC")
    is_rating = frame["event_type"] == "rating"
    assert frame.loc[~is_rating, "rating"].isna().all()
    assert frame.loc[is_rating, "rating"].isin([1.0, 2.0, 3.0, 4.0, 5.0]).all()
    items, users = pd.read_parquet(paths["items"]), pd.read_parquet(paths["users"])
    assert items["item_id"].is_unique and len(items) == 80
    assert set(items["category"]) <= set(datagen.CATEGORIES)
    assert (items["price"] > 0).all()
    assert users["user_id"].is_unique and len(users) == 200
    assert set(users["region"]) <= set(datagen.REGIONS)
    assert set(frame["user_id"]) <= set(users["user_id"])
    assert set(frame["item_id"]) <= set(items["item_id"])


def test_popularity_is_long_tailed_and_activity_skewed(clean: pd.DataFrame) -> None:
    item_counts = clean["item_id"].value_counts()
    top_items = item_counts.iloc[: len(item_counts) // 10].sum() / item_counts.sum()
    assert top_items > 0.4
    user_counts = clean["user_id"].value_counts()
    top_users = user_counts.iloc[: len(user_counts) // 10].sum() / user_counts.sum()
    assert top_users > 0.25


def _biased_als(train: pd.DataFrame, n_users: int, n_items: int, factors: int = 8) -> tuple:
    """A small biased ALS, enough to show the ratings have low-rank structure."""
    rng = np.random.default_rng(0)
    mean = train["rating"].mean()
    p, q = rng.normal(0, 0.1, (n_users, factors)), rng.normal(0, 0.1, (n_items, factors))
    bu, bi = np.zeros(n_users), np.zeros(n_items)
    u, i, r = train["u"].to_numpy(), train["i"].to_numpy(), train["rating"].to_numpy()
    by_user = pd.Series(np.arange(len(u))).groupby(u).indices
    by_item = pd.Series(np.arange(len(i))).groupby(i).indices
    for _ in range(10):
        for fixed, groups, keys, target, bias in ((q, by_user, i, p, bu), (p, by_item, u, q, bi)):
            other_bias = bi[i] if bias is bu else bu[u]
            design = np.hstack([fixed, np.ones((len(fixed), 1))])
            for key, rows in groups.items():
                a = design[keys[rows]]
                sol = np.linalg.solve(
                    a.T @ a + 5.0 * np.eye(factors + 1), a.T @ (r[rows] - mean - other_bias[rows])
                )
                target[key], bias[key] = sol[:factors], sol[factors]
    return mean, p, q, bu, bi


def test_ratings_are_learnable_by_matrix_factorisation(clean: pd.DataFrame) -> None:
    ratings = clean[clean["event_type"] == "rating"].copy()
    ratings["u"] = ratings["user_id"].str[1:].astype(int)
    ratings["i"] = ratings["item_id"].str[1:].astype(int)
    held_out = np.random.default_rng(1).random(len(ratings)) < 0.2
    train, test = ratings[~held_out], ratings[held_out]
    item_mean = train.groupby("i")["rating"].mean()
    baseline = test["i"].map(item_mean).fillna(train["rating"].mean())
    mean, p, q, bu, bi = _biased_als(train, 600, 200)
    u, i = test["u"].to_numpy(), test["i"].to_numpy()
    predicted = np.clip(mean + bu[u] + bi[i] + (p[u] * q[i]).sum(axis=1), 1, 5)

    def rmse(prediction: np.ndarray) -> float:
        return float(np.sqrt(np.mean((test["rating"].to_numpy() - prediction) ** 2)))

    assert rmse(predicted) < 0.9 * rmse(baseline.to_numpy())


def test_carts_and_purchases_lean_towards_items_the_user_rates_highly(clean: pd.DataFrame) -> None:
    rated = clean[clean["event_type"] == "rating"]
    pair_rating = rated.groupby(["user_id", "item_id"])["rating"].mean().rename("pair_rating")
    others = clean[clean["event_type"] != "rating"].join(pair_rating, on=["user_id", "item_id"])
    by_type = others.groupby("event_type")["pair_rating"].mean()
    assert by_type["purchase"] > by_type["add_to_cart"] > by_type["view"] + 0.2


def test_generation_in_chunks_keeps_time_order_and_dirty_share(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(datagen, "CHUNK_EVENTS", 700)
    paths = _generate(tmp_path, interactions=5000, dirty_fraction=0.1, file_format="csv")
    frame = pd.read_csv(paths["interactions"], dtype=str, keep_default_na=False)
    parsed = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601", errors="coerce")
    assert parsed.dropna().is_monotonic_increasing
    assert (frame["timestamp"] == datagen.BAD_TIMESTAMP).sum() > 0
    assert (frame["rating"] == datagen.BAD_RATING).sum() > 0
    assert (frame["event_type"] == datagen.BAD_EVENT_TYPE).sum() > 0
    assert frame.duplicated().sum() > 0


def test_invalid_arguments_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="dirty_fraction"):
        _generate(tmp_path, dirty_fraction=0.9)
    with pytest.raises(ValueError, match="file_format"):
        _generate(tmp_path, file_format="json")
    with pytest.raises(ValueError, match="users"):
        _generate(tmp_path, users=0)


def test_cli_arguments_generate_the_same_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = (
        "generate-data --users 200 --items 80 --interactions 4000 --seed 11 "
        f"--dirty-fraction 0.05 --format csv --out {tmp_path / 'cli'}"
    ).split()
    assert main(args) == 0
    assert "interactions" in capsys.readouterr().out
    direct = _generate(tmp_path / "direct", dirty_fraction=0.05, file_format="csv")
    for table, path in direct.items():
        assert (tmp_path / "cli" / path.name).read_bytes() == path.read_bytes(), table


@pytest.mark.parametrize("items", [1, 7, 1_000, 200_000])
def test_item_draws_land_where_a_binary_search_puts_them(items: int) -> None:
    """The guide table gives searchsorted's answer exactly: so the generated bytes of a seed
    do not depend on how the draws are looked up."""
    rng = np.random.default_rng(items)
    model = datagen.build_latent_model(rng, users=3, items=items)
    buckets = datagen._guide_buckets(items)
    draws = np.concatenate(
        [
            rng.random(200_000),
            model.item_cdf[:-1],  # a draw equal to a CDF value: it belongs to the next item
            np.nextafter(model.item_cdf[:-1], 0),  # just below one: to that item
            np.arange(buckets) / buckets,  # the slices' own edges
            np.nextafter(np.arange(1, buckets + 1) / buckets, 0),  # and just below them
            [0.0, np.nextafter(1.0, 0)],
        ]
    ).reshape(-1, 1)
    found = model.items_at(draws)
    assert found.shape == draws.shape
    np.testing.assert_array_equal(found, np.searchsorted(model.item_cdf, draws, side="right"))
    assert found.min() >= 0 and found.max() < items
