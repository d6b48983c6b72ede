"""Synthetic e-commerce data with a known structure, for demos, tests and benchmarks.

The generator plants the signal a recommender is supposed to find, so a pipeline run on it
means something: ratings come from a latent-factor model (user/item factors plus biases plus
noise), so matrix factorisation clearly beats a popularity baseline; which items a user
touches and how far they go (view → cart → purchase) also follow the latent score, so
implicit-feedback ranking has signal too. Popularity is long-tailed (Zipf) and user activity
skewed (log-normal), like real shops.

Everything is vectorised numpy/pyarrow and written in time-ordered chunks, so tens of
millions of events fit in bounded memory. A seed fixes every byte of the output.

``dirty_fraction`` replaces that share of events with the faults the validation task must
catch (nulls, out-of-range or non-numeric ratings, duplicates, unknown ids, bad timestamps,
unknown event types). Columns that may carry such values are written as text.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

FileFormat = Literal["parquet", "csv"]

EVENT_TYPES: tuple[str, ...] = ("view", "add_to_cart", "purchase", "rating")
CATEGORIES: tuple[str, ...] = (
    "electronics",
    "books",
    "home",
    "fashion",
    "sports",
    "beauty",
    "toys",
    "grocery",
    "garden",
    "music",
    "automotive",
    "health",
)
REGIONS: tuple[str, ...] = ("north", "south", "east", "west", "central", "international")
REGION_SHARES = np.array([0.22, 0.2, 0.18, 0.18, 0.14, 0.08])

N_FACTORS = 8
FACTOR_SCALE = 0.56  # factor entries ~ N(0, 0.56): the dot product has std ~0.9 rating points
BIAS_SCALE = 0.35
GLOBAL_MEAN = 3.2
RATING_NOISE = 0.35
ZIPF_EXPONENT = 1.0
ACTIVITY_SIGMA = 1.0
CANDIDATES_PER_EVENT = 32  # an event picks the best-liked of this many popularity draws
CHOICE_TEMPERATURE = 0.5  # lower: taste matters more than popularity in what users pick
# Baseline event mix and how strongly each type leans on the user's affinity for the item.
EVENT_BASE_SHARES = np.array([0.58, 0.14, 0.05, 0.23])
EVENT_AFFINITY_SLOPES = np.array([0.0, 0.8, 1.2, 0.3])
SIGNUP_SPAN_DAYS = 730
CHUNK_EVENTS = 1_000_000
UNKNOWN_ID_POOL = 100

# Kinds of dirty rows; each dirty row gets exactly one.
DIRTY_KINDS: tuple[str, ...] = (
    "null_user_id",
    "null_item_id",
    "null_event_type",
    "null_timestamp",
    "rating_out_of_range",
    "rating_not_numeric",
    "duplicate",
    "unknown_item",
    "unknown_user",
    "bad_timestamp",
    "bad_event_type",
)
OUT_OF_RANGE_RATINGS = np.array([0.0, 7.0, -1.0])
BAD_EVENT_TYPE = "clicked"
BAD_TIMESTAMP = "not-a-date"
BAD_RATING = "five"


@dataclass(frozen=True)
class LatentModel:
    """The hidden truth behind the data: factors, biases and sampling weights."""

    user_factors: np.ndarray
    item_factors: np.ndarray
    user_bias: np.ndarray
    item_bias: np.ndarray
    user_activity: np.ndarray
    item_cdf: np.ndarray

    @cached_property
    def _item_guide(self) -> np.ndarray:
        """For each of ``_guide_buckets`` equal slices of [0, 1), the index the slice's
        lower edge falls at in ``item_cdf``: where a draw's search can start."""
        buckets = _guide_buckets(len(self.item_cdf))
        edges = np.arange(buckets, dtype=np.float64) / buckets  # exact: a power of two
        return np.searchsorted(self.item_cdf, edges, side="right")

    def items_at(self, draws: np.ndarray) -> np.ndarray:
        """``np.searchsorted(item_cdf, draws, side="right")`` for draws in [0, 1), exactly,
        through a guide table: a binary search over a 100k+-item CDF misses the cache at
        every step (half the generator's time at 200k items); here a draw starts at its
        slice's index and steps over the few CDF values left in the slice."""
        flat = draws.ravel()
        guide = self._item_guide
        found = guide[(flat * len(guide)).astype(np.int64)]
        cdf = self.item_cdf
        behind = np.flatnonzero(cdf[found] <= flat)
        while behind.size:  # cdf[-1] == 1.0 > every draw: the steps stop inside the CDF
            found[behind] += 1
            behind = behind[cdf[found[behind]] <= flat[behind]]
        return found.reshape(draws.shape)

    def affinity(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """How much each user likes each item, rating bias excluded (broadcasts)."""
        dot = np.einsum("...f,...f->...", self.user_factors[users], self.item_factors[items])
        return dot + self.item_bias[items]


@dataclass
class _Events:
    """One chunk of events as index arrays (ids, event codes, ratings, epoch seconds)."""

    users: np.ndarray
    items: np.ndarray
    events: np.ndarray
    ratings: np.ndarray
    seconds: np.ndarray


def _guide_buckets(items: int) -> int:
    """A power of two (so each slice edge is an exact double) of at least 4 slices per
    item: even the Zipf tail's rarest items then share a slice with only a few others."""
    return 1 << max(10, (4 * items - 1).bit_length())


def _normalised(weights: np.ndarray) -> np.ndarray:
    return weights / weights.sum()


def _cdf(weights: np.ndarray) -> np.ndarray:
    cdf = np.cumsum(_normalised(weights))
    cdf[-1] = 1.0
    return cdf


def build_latent_model(rng: np.random.Generator, users: int, items: int) -> LatentModel:
    """Draw factors, biases, Zipf item popularity and log-normal user activity."""
    popularity = 1.0 / np.arange(1, items + 1) ** ZIPF_EXPONENT
    return LatentModel(
        user_factors=rng.normal(0, FACTOR_SCALE, (users, N_FACTORS)).astype(np.float32),
        item_factors=rng.normal(0, FACTOR_SCALE, (items, N_FACTORS)).astype(np.float32),
        user_bias=rng.normal(0, BIAS_SCALE, users).astype(np.float32),
        item_bias=rng.normal(0, BIAS_SCALE, items).astype(np.float32),
        user_activity=_normalised(rng.lognormal(0, ACTIVITY_SIGMA, users)),
        item_cdf=_cdf(rng.permutation(popularity)),
    )


def _sample_items(rng: np.random.Generator, model: LatentModel, users: np.ndarray) -> np.ndarray:
    """Popularity proposes candidates; the user's taste picks one (Gumbel-max softmax)."""
    draws = rng.random((len(users), CANDIDATES_PER_EVENT))
    candidates = model.items_at(draws)
    scores = model.affinity(users[:, None], candidates) / CHOICE_TEMPERATURE
    scores += rng.gumbel(size=scores.shape).astype(np.float32)
    return candidates[np.arange(len(users)), scores.argmax(axis=1)]


def _sample_event_types(rng: np.random.Generator, affinity: np.ndarray) -> np.ndarray:
    """Cart and purchase get likelier the more the user likes the item."""
    logits = np.log(EVENT_BASE_SHARES) + np.outer(affinity, EVENT_AFFINITY_SLOPES)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    cdf = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
    draws = rng.random(len(affinity))[:, None]
    return np.minimum((draws > cdf).sum(axis=1), len(EVENT_TYPES) - 1).astype(np.int8)


def _ratings(
    rng: np.random.Generator, model: LatentModel, users: np.ndarray, affinity: np.ndarray
) -> np.ndarray:
    raw = GLOBAL_MEAN + model.user_bias[users] + affinity
    raw += rng.normal(0, RATING_NOISE, len(users))
    return np.clip(np.rint(raw), 1, 5)


def _sample_events(
    rng: np.random.Generator, model: LatentModel, n: int, window: tuple[int, int]
) -> _Events:
    """``n`` events in the time window [start, end) seconds, sorted by time."""
    # Events per user are multinomial; the time sort below shuffles them.
    users = np.repeat(np.arange(len(model.user_activity)), rng.multinomial(n, model.user_activity))
    items = _sample_items(rng, model, users)
    affinity = model.affinity(users, items)
    events = _sample_event_types(rng, affinity)
    ratings = np.where(
        events == EVENT_TYPES.index("rating"), _ratings(rng, model, users, affinity), np.nan
    )
    seconds = rng.integers(window[0], window[1], n)
    order = np.argsort(seconds, kind="stable")
    return _Events(users[order], items[order], events[order], ratings[order], seconds[order])


def _id_strings(prefix: str, count: int, total: int) -> pa.Array:
    """Zero-padded ids such as ``u000123``; ``total`` fixes the width for a whole dataset."""
    width = max(5 if prefix == "i" else 6, len(str(total - 1)))
    numbers = np.strings.zfill(np.arange(count).astype(np.str_), width)
    return pa.array(np.strings.add(prefix, numbers))


def _dirty_plan(rng: np.random.Generator, n: int, count: int) -> dict[str, np.ndarray]:
    """Which rows of a chunk become dirty, and how.

    Only odd positions are made dirty, so a ``duplicate`` (a copy of the row before it)
    always copies a clean row and every dirty row carries exactly one fault.
    """
    positions = rng.choice(n // 2, size=min(count, n // 2), replace=False) * 2 + 1
    kinds = rng.permutation(np.arange(len(positions)) % len(DIRTY_KINDS))
    return {kind: np.sort(positions[kinds == k]) for k, kind in enumerate(DIRTY_KINDS)}


def _apply_numeric_faults(
    rng: np.random.Generator, events: _Events, plan: dict[str, np.ndarray], users: int, items: int
) -> None:
    """Faults expressible in the index arrays: duplicates, unknown ids, bad ratings/types."""
    dup = plan["duplicate"]
    for column in (events.users, events.items, events.events, events.ratings, events.seconds):
        column[dup] = column[dup - 1]
    events.items[plan["unknown_item"]] = items + rng.integers(
        0, UNKNOWN_ID_POOL, len(plan["unknown_item"])
    )
    events.users[plan["unknown_user"]] = users + rng.integers(
        0, UNKNOWN_ID_POOL, len(plan["unknown_user"])
    )
    rating_code = EVENT_TYPES.index("rating")
    for kind in ("rating_out_of_range", "rating_not_numeric"):
        events.events[plan[kind]] = rating_code
    out_of_range = plan["rating_out_of_range"]
    events.ratings[out_of_range] = rng.choice(OUT_OF_RANGE_RATINGS, len(out_of_range))
    events.ratings[plan["rating_not_numeric"]] = 1.0
    events.events[plan["bad_event_type"]] = len(EVENT_TYPES)


def _mask(n: int, positions: np.ndarray) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    mask[positions] = True
    return mask


def _take(lookup: pa.Array, indices: np.ndarray, null_positions: np.ndarray) -> pa.Array:
    """Map indices to strings; positions in ``null_positions`` become null."""
    return lookup.take(pa.array(indices, mask=_mask(len(indices), null_positions)))


def _replace(array: pa.Array, positions: np.ndarray, value: str) -> pa.Array:
    return pc.if_else(pa.array(_mask(len(array), positions)), pa.scalar(value), array)


@dataclass(frozen=True)
class _Lookups:
    """String tables for ids and event types (including the unknown/bad values)."""

    users: pa.Array
    items: pa.Array
    events: pa.Array


def _iso_strings(seconds: np.ndarray) -> pa.Array:
    """``2026-01-01T00:00:05Z`` text (3x faster than strftime on a tz-aware column)."""
    naive = pa.array(seconds.astype("datetime64[s]")).cast(pa.string())
    return pc.binary_join_element_wise(
        pc.replace_substring(naive, " ", "T", max_replacements=1), "Z", ""
    )


def _events_table(
    events: _Events, plan: dict[str, np.ndarray], lookups: _Lookups, as_text: bool
) -> pa.Table:
    """Build the interactions chunk; ``as_text`` writes rating and timestamp as strings."""
    empty = np.empty(0, dtype=np.int64)
    ratings = pa.array(events.ratings, mask=np.isnan(events.ratings))
    if as_text:
        timestamps = _replace(
            _iso_strings(events.seconds), plan.get("bad_timestamp", empty), BAD_TIMESTAMP
        )
        ratings = _replace(
            ratings.cast(pa.string()), plan.get("rating_not_numeric", empty), BAD_RATING
        )
    else:
        timestamps = pa.array(events.seconds.astype("datetime64[s]")).cast(
            pa.timestamp("s", tz="UTC")
        )
    null_ts = _mask(len(events.seconds), plan.get("null_timestamp", empty))
    return pa.table(
        {
            "user_id": _take(lookups.users, events.users, plan.get("null_user_id", empty)),
            "item_id": _take(lookups.items, events.items, plan.get("null_item_id", empty)),
            "event_type": _take(lookups.events, events.events, plan.get("null_event_type", empty)),
            "rating": ratings,
            "timestamp": pc.if_else(
                pa.array(null_ts), pa.scalar(None, timestamps.type), timestamps
            ),
        }
    )


def _chunk_sizes(total: int) -> list[int]:
    chunks = max(1, -(-total // CHUNK_EVENTS))
    bounds = np.linspace(0, total, chunks + 1).round().astype(np.int64)
    return np.diff(bounds).tolist()


def _interaction_chunks(
    seed_seq: np.random.SeedSequence,
    model: LatentModel,
    interactions: int,
    dirty_fraction: float,
    window: tuple[int, int],
    as_text: bool,
) -> Iterator[pa.Table]:
    """Yield time-ordered chunks; chunk k covers the k-th slice of the time window."""
    users, items = len(model.user_bias), len(model.item_bias)
    lookups = _Lookups(
        users=_id_strings("u", users + UNKNOWN_ID_POOL, users),
        items=_id_strings("i", items + UNKNOWN_ID_POOL, items),
        events=pa.array([*EVENT_TYPES, BAD_EVENT_TYPE]),
    )
    sizes = _chunk_sizes(interactions)
    dirty_bounds = np.round(np.cumsum([0, *sizes]) * dirty_fraction).astype(np.int64)
    edges = np.linspace(window[0], window[1], len(sizes) + 1).round().astype(np.int64)
    for k, (size, child) in enumerate(zip(sizes, seed_seq.spawn(len(sizes)), strict=True)):
        rng = np.random.default_rng(child)
        events = _sample_events(rng, model, size, (int(edges[k]), int(edges[k + 1])))
        plan: dict[str, np.ndarray] = {}
        if dirty_fraction > 0:
            plan = _dirty_plan(rng, size, int(dirty_bounds[k + 1] - dirty_bounds[k]))
            _apply_numeric_faults(rng, events, plan, users, items)
        yield _events_table(events, plan, lookups, as_text)


def _items_table(rng: np.random.Generator, model: LatentModel) -> pa.Table:
    """Catalog: the category follows the item's factors, so it carries real signal."""
    n = len(model.item_bias)
    centroids = rng.normal(0, 1, (len(CATEGORIES), N_FACTORS)).astype(np.float32)
    scores = model.item_factors @ centroids.T + rng.gumbel(size=(n, len(CATEGORIES)))
    category = scores.argmax(axis=1)
    base_price = rng.lognormal(3.0, 0.8, len(CATEGORIES))
    price = np.round(base_price[category] * rng.lognormal(0, 0.5, n), 2)
    ids = _id_strings("i", n, n)
    categories = pa.array(CATEGORIES).take(pa.array(category))
    titles = pc.binary_join_element_wise(
        pc.utf8_capitalize(categories), "item", pc.utf8_slice_codeunits(ids, 1), " "
    )
    return pa.table({"item_id": ids, "category": categories, "price": price, "title": titles})


def _users_table(rng: np.random.Generator, users: int, start: str) -> pa.Table:
    signup = np.datetime64(start, "D") - rng.integers(1, SIGNUP_SPAN_DAYS, users).astype(
        "timedelta64[D]"
    )
    region = rng.choice(len(REGIONS), users, p=REGION_SHARES)
    return pa.table(
        {
            "user_id": _id_strings("u", users, users),
            "signup_date": pa.array(signup),
            "region": pa.array(REGIONS).take(pa.array(region)),
        }
    )


class _TableWriter:
    """Streams tables into one CSV or Parquet file."""

    def __init__(self, path: Path, schema: pa.Schema, file_format: FileFormat) -> None:
        if file_format == "csv":
            options = pacsv.WriteOptions(quoting_header="none", quoting_style="none")
            self._writer: pacsv.CSVWriter | pq.ParquetWriter = pacsv.CSVWriter(
                path, schema, write_options=options
            )
        else:
            self._writer = pq.ParquetWriter(path, schema, compression="zstd")

    def write(self, table: pa.Table) -> None:
        self._writer.write_table(table)

    def close(self) -> None:
        self._writer.close()


def _write_table(path: Path, table: pa.Table, file_format: FileFormat) -> None:
    writer = _TableWriter(path, table.schema, file_format)
    writer.write(table)
    writer.close()


def _time_window(start: str, days: int) -> tuple[int, int]:
    """Epoch seconds of [start, start + days) in UTC."""
    first = int(np.datetime64(start, "s").astype(np.int64))
    return first, first + days * 86_400


def generate_dataset(
    out_dir: Path,
    *,
    users: int,
    items: int,
    interactions: int,
    seed: int,
    dirty_fraction: float = 0.0,
    file_format: FileFormat = "parquet",
    start: str = "2026-01-01",
    days: int = 90,
) -> dict[str, Path]:
    """Write ``interactions``, ``items`` and ``users`` tables into ``out_dir``.

    Returns the path of each table. The same arguments always produce identical files.
    """
    if users < 1 or items < 1 or interactions < 2 or days < 1:
        raise ValueError("users, items and days must be >= 1 and interactions >= 2")
    if not 0.0 <= dirty_fraction <= 0.5:
        raise ValueError(f"dirty_fraction must be within [0, 0.5], got {dirty_fraction}")
    if file_format not in ("parquet", "csv"):
        raise ValueError(f"file_format must be 'parquet' or 'csv', got {file_format!r}")
    out_dir.mkdir(parents=True, exist_ok=True)
    model_seq, items_seq, users_seq, events_seq = np.random.SeedSequence(seed).spawn(4)
    model = build_latent_model(np.random.default_rng(model_seq), users, items)
    paths = {name: out_dir / f"{name}.{file_format}" for name in ("interactions", "items", "users")}
    _write_table(paths["items"], _items_table(np.random.default_rng(items_seq), model), file_format)
    _write_table(
        paths["users"], _users_table(np.random.default_rng(users_seq), users, start), file_format
    )
    as_text = file_format == "csv" or dirty_fraction > 0
    chunks = _interaction_chunks(
        events_seq, model, interactions, dirty_fraction, _time_window(start, days), as_text
    )
    writer: _TableWriter | None = None
    for chunk in chunks:
        writer = writer or _TableWriter(paths["interactions"], chunk.schema, file_format)
        writer.write(chunk)
    if writer is not None:
        writer.close()
    return paths
