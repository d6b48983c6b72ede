"""What the data says: column roles, time format, feedback kind, rows to drop, the protocol.

Every role is proposed from the column's name *and* checked against its values before it is
made (a numeric ``Quantity`` is never an event type; a ``rating`` that is not a number is not
a rating), because a proposal the data contradicts quarantines every row. Columns without a
telling name (a header-less file) get roles from their values alone: the time column by
magnitude or format, the rating by its small set of values, then the first two id-like
columns as user and item, with a lower confidence. Each decision is a ``Choice`` with the
config key that changes it, so the user can review what was guessed.

The split protocol is chosen by simulating each one on the data (the users a model could be
evaluated on), in the order of realism: ``temporal_global`` (one cut-off, nothing trains on
the future), ``temporal_per_user`` (each user's latest events), then ``random``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

import numpy as np
import pandas as pd

from recomart_pipeline.onboarding.reading import DataFile, OnboardingError
from recomart_pipeline.tasks.specs.features import Config as FeaturesConfig
from recomart_pipeline.tasks.specs.preparation import SplitConfig
from recomart_pipeline.tasks.specs.tables import TABLES
from recomart_pipeline.tasks.specs.validation import FreshnessConfig, RatingRangeConfig

Confidence = Literal["high", "medium", "low"]
SOURCE_KEY = "tasks.ingestion.config.source"


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _names(*names: str) -> frozenset[str]:
    return frozenset(_norm(n) for n in names)


USER_NAMES = _names(
    "user_id", "user", "uid", "customer_id", "customer", "customer_no", "client_id", "client",
    "visitor_id", "visitor", "member_id", "member", "account_id", "account", "buyer_id",
    "buyer", "person_id", "reader_id", "viewer_id", "reviewer_id", "profile_id", "shopper_id",
    "user_idx", "users",
)  # fmt: skip
ITEM_NAMES = _names(
    "item_id", "item", "iid", "movie_id", "movie", "product_id", "product", "product_no",
    "sku", "stock_code", "article_id", "article", "asin", "book_id", "isbn", "track_id",
    "track", "song_id", "song", "artist_id", "content_id", "offer_id", "listing_id",
    "recipe_id", "game_id", "anime_id", "video_id", "item_no", "product_code", "item_code",
    "items",
)  # fmt: skip
TIME_NAMES = _names(
    "timestamp", "time", "datetime", "date", "ts", "event_time", "event_date", "created_at",
    "created", "unix_time", "epoch", "signup_date", "signup", "registered", "joined",
)  # fmt: skip
TIME_ENDINGS = ("time", "date", "timestamp", "datetime")
RATING_NAMES = _names(
    "rating", "ratings", "score", "stars", "star", "rate", "review_score", "rating_value",
    "user_rating", "grade", "overall",
)  # fmt: skip
EVENT_NAMES = _names(
    "event", "events", "event_type", "type", "action", "action_type", "interaction",
    "interaction_type", "behavior", "behaviour", "behavior_type", "activity", "event_name",
)  # fmt: skip
QUANTITY_NAMES = _names("quantity", "qty", "units", "units_sold", "count", "num_items")
PRICE_NAMES = _names("price", "unit_price", "cost", "amount", "sale_price", "list_price")
TITLE_NAMES = _names(
    "title", "name", "description", "product_name", "item_name", "movie_title", "desc"
)
CATEGORY_NAMES = _names(
    "category", "categories", "genre", "genres", "department", "category_name",
    "category_id", "product_category", "section",
)  # fmt: skip
INVOICE_NAMES = _names(
    "invoice", "invoice_no", "invoice_number", "invoice_id", "order", "order_id", "order_no",
    "order_number", "transaction_id", "transaction", "basket_id", "receipt_id",
)  # fmt: skip
REGION_NAMES = _names("region", "country", "state", "city", "location")

# Normalised source values of an event column → canonical event types.
EVENT_SYNONYMS: dict[str, str] = {
    **dict.fromkeys(
        _names("view", "views", "viewed", "click", "clicks", "clicked", "pageview",
               "detail", "detailview", "visit", "browse", "open", "play", "watch", "listen"),
        "view",
    ),
    **dict.fromkeys(
        _names("add_to_cart", "addtocart", "cart", "add_to_basket", "basket", "cartadd"),
        "add_to_cart",
    ),
    **dict.fromkeys(
        _names("purchase", "purchased", "transaction", "buy", "bought", "order", "checkout",
               "sale", "conversion"),
        "purchase",
    ),
    **dict.fromkeys(_names("rating", "rate", "rated", "review"), "rating"),
}  # fmt: skip

EpochUnit = Literal["s", "ms", "us", "ns"]
EPOCH_UNITS: tuple[tuple[EpochUnit, float, float], ...] = (
    ("s", 1e8, 1e10),
    ("ms", 1e11, 1e13),
    ("us", 1e14, 1e16),
    ("ns", 1e17, 1e19),
)
TEXT_FORMATS = (
    "%m/%d/%Y %H:%M", "%d/%m/%Y %H:%M", "%m/%d/%Y %H:%M:%S", "%d/%m/%Y %H:%M:%S",
    "%d.%m.%Y %H:%M", "%d.%m.%Y %H:%M:%S", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M",
    "%m/%d/%Y", "%d/%m/%Y", "%d.%m.%Y", "%Y/%m/%d", "%d-%m-%Y", "%d-%m-%Y %H:%M:%S",
    "%d %b %Y", "%d %b %Y %H:%M:%S", "%b %d, %Y", "%Y%m%d%H%M%S",
    # Two-digit years, as spreadsheets export them ("12/1/10 8:26" in a Parquet or CSV saved
    # from the UCI Online Retail workbook); a four-digit year never parses as these.
    "%m/%d/%y %H:%M", "%d/%m/%y %H:%M", "%m/%d/%y %H:%M:%S", "%d/%m/%y %H:%M:%S",
    "%d.%m.%y %H:%M", "%m/%d/%y", "%d/%m/%y", "%d.%m.%y",
    # A zone name after the time ("2019-10-01 00:00:00 UTC"): BigQuery's text export, as in
    # the REES46 e-commerce event logs.
    "%Y-%m-%d %H:%M:%S %Z", "%Y-%m-%d %H:%M:%S.%f %Z", "%Y-%m-%d %H:%M %Z",
)  # fmt: skip
# Times ingestion passes through unchanged and validation reads as they are.
PLAIN_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$")
OFFSET = re.compile(r"(?:Z|[+-]\d{2}:?\d{2})$")
EARLIEST_YEAR, LATEST_YEARS_AHEAD = 1970, 5
PARSE_SHARE = 0.95  # a column is a time/number column when this share of its values parse
RARE_SHARE = 0.005  # values rarer than this are noise for validation to quarantine
DEFAULT_SPLIT = SplitConfig()
DEFAULT_FEATURES = FeaturesConfig()
DEFAULT_RATINGS = RatingRangeConfig()
DEFAULT_FRESHNESS = FreshnessConfig()
TEST_SHARE = 0.2
# Aggregation is proposed when at least this share of the rows repeat a user's earlier item
# and a quantity column can weigh them (invoice lines, baskets).
REPEAT_SHARE = 0.1


@dataclass(frozen=True)
class Choice:
    """One decision for the user to confirm: what, how sure, the evidence, the key."""

    what: str
    confidence: Confidence
    why: str
    key: str


@dataclass(frozen=True)
class TimeGuess:
    """How a column's times are written, and the times themselves (UTC)."""

    unit: Literal["iso", "s", "ms", "us", "ns"]
    format: str | None
    aware: bool
    plain: bool  # ISO text ingestion can pass through unchanged
    typed: bool  # a Parquet timestamp column
    times: pd.Series
    share: float
    ambiguous: bool = False  # another format (day/month swapped) reads the values as well

    def describe(self) -> str:
        if self.typed:
            return "a timestamp column" + ("" if self.aware else " without time zone")
        if self.unit != "iso":
            return f"Unix epoch in {self.unit}"
        if self.format:
            return f"text in the format {self.format}"
        return "ISO-8601 text" + (" with offsets" if self.aware else " without time zone")


@dataclass
class Column:
    """What a column's values look like."""

    name: str
    values: pd.Series  # the raw values, nulls included
    filled: pd.Series  # non-null, non-blank
    numbers: pd.Series | None  # floats when PARSE_SHARE of the filled values are numbers
    time: TimeGuess | None

    @property
    def null_share(self) -> float:
        return 1 - len(self.filled) / max(1, len(self.values))

    @property
    def whole(self) -> bool:
        numbers = self.numbers
        return numbers is not None and bool(np.all(np.mod(numbers.dropna(), 1) == 0))

    @property
    def id_like(self) -> bool:
        if len(self.filled) < len(self.values) / 2 or self.filled.nunique() < 2:
            return False
        return self.numbers is None or self.whole

    def text(self) -> pd.Series:
        return self.filled.astype(str).str.strip()


def _numbers(filled: pd.Series) -> pd.Series | None:
    if not len(filled):
        return None
    if pd.api.types.is_bool_dtype(filled) or pd.api.types.is_datetime64_any_dtype(filled):
        return None
    parsed = pd.to_numeric(filled, errors="coerce")
    if parsed.notna().mean() < PARSE_SHARE:
        return None
    return parsed.dropna().astype(float)


def _plausible(times: pd.Series) -> pd.Series:
    latest = pd.Timestamp.now(tz="UTC") + pd.DateOffset(years=LATEST_YEARS_AHEAD)
    return times.where((times.dt.year >= EARLIEST_YEAR) & (times <= latest))


def _epoch(numbers: pd.Series) -> TimeGuess | None:
    if not len(numbers) or not bool(np.all(np.mod(numbers, 1) == 0)):
        return None
    middle = float(numbers.median())
    for unit, low, high in EPOCH_UNITS:
        if low <= middle < high:
            stamps = pd.to_datetime(numbers.to_numpy(), unit=unit, utc=True, errors="coerce")
            times = _plausible(pd.Series(stamps, index=numbers.index))
            share = float(times.notna().mean())
            if share >= PARSE_SHARE:
                return TimeGuess(unit, None, True, False, False, times, share)
    return None


TIME_SAMPLE = 20_000
# Each format is first tried on this many of the sample's values; only those that read at
# least PROBE_SHARE of them are tried on the whole sample. Ids, names and countries are
# text columns too, and trying all formats on 20,000 of their values cost seconds each.
PROBE_SIZE, PROBE_SHARE = 500, 0.5


def _spread(values: pd.Series, size: int) -> pd.Series:
    return values.iloc[:: max(1, len(values) // size)].iloc[:size]


def _parsed_share(values: pd.Series, pattern: str) -> float:
    utc = pattern == "ISO8601"
    return float(pd.to_datetime(values, format=pattern, utc=utc, errors="coerce").notna().mean())


def _text_time(text: pd.Series) -> TimeGuess | None:
    # Spread over the whole column, not its head: a file sorted by time would otherwise show
    # only its first days, and days 1-12 cannot tell day-first from month-first.
    sample = _spread(text, TIME_SAMPLE)
    probe = _spread(sample, PROBE_SIZE)
    iso = pd.Series(dtype="datetime64[ns, UTC]")
    if _parsed_share(probe, "ISO8601") >= PROBE_SHARE:
        iso = _plausible(pd.to_datetime(sample, format="ISO8601", utc=True, errors="coerce"))
    if len(iso) and iso.notna().mean() >= PARSE_SHARE:
        aware = bool(sample.str.contains(OFFSET).mean() > 0.5)
        plain = bool(sample.str.match(PLAIN_ISO).mean() >= PARSE_SHARE)
        times = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
        return TimeGuess(
            "iso", None, aware, plain, False, _plausible(times), float(iso.notna().mean())
        )
    tried = [p for p in TEXT_FORMATS if _parsed_share(probe, p) >= PROBE_SHARE]
    shares = {pattern: _parsed_share(sample, pattern) for pattern in tried}
    fitting = [p for p in tried if shares[p] >= PARSE_SHARE]
    if not fitting:
        return None
    best = max(fitting, key=lambda p: shares[p])  # ties: the first listed (month first)
    ambiguous = sum(shares[p] == shares[best] for p in fitting) > 1
    aware = "%Z" in best or "%z" in best  # ingestion reads these with their zone, as UTC
    times = pd.to_datetime(text, format=best, errors="coerce", utc=aware)
    if not aware:
        times = times.dt.tz_localize("UTC")
    return TimeGuess("iso", best, aware, False, False, _plausible(times), shares[best], ambiguous)


def _time(values: pd.Series, filled: pd.Series, numbers: pd.Series | None) -> TimeGuess | None:
    if pd.api.types.is_datetime64_any_dtype(values):
        aware = getattr(values.dt, "tz", None) is not None
        times = filled if aware else filled.dt.tz_localize("UTC")
        return TimeGuess(
            "iso", None, aware, False, True, _plausible(times.dt.tz_convert("UTC")), 1.0
        )
    if numbers is not None:
        return _epoch(numbers)
    if not len(filled):
        return None
    return _text_time(filled.astype(str).str.strip())


def profile(name: str, values: pd.Series) -> Column:
    """A column's values, as numbers and as times where they read as such."""
    filled = values.dropna()
    if filled.dtype == object:
        filled = filled[filled.astype(str).str.strip() != ""]
    numbers = _numbers(filled)
    return Column(str(name), values, filled, numbers, _time(values, filled, numbers))


# --- roles ------------------------------------------------------------------------------------


def _named(column: Column, names: frozenset[str], endings: tuple[str, ...] = ()) -> bool:
    normal = _norm(column.name)
    return normal in names or (bool(endings) and normal.endswith(endings))


def _typical(numbers: pd.Series) -> pd.Series:
    """Values making up at least RARE_SHARE of the column (the rest is noise)."""
    counts = numbers.value_counts(normalize=True)
    return pd.Series(counts[counts >= RARE_SHARE].index, dtype=float).sort_values()


def _rating_like(column: Column) -> bool:
    if column.numbers is None or (column.time is not None and column.time.unit != "iso"):
        return False
    typical = _typical(column.numbers)
    return 2 <= len(typical) <= 21 and typical.min() >= 0 and typical.max() <= 100


def _event_values(column: Column) -> dict[str, str]:
    """Source value → canonical event type, for the values that map."""
    if column.numbers is not None or column.time is not None:
        return {}
    shares = column.text().value_counts(normalize=True)
    if len(shares) > 50:
        return {}
    # A rare value is left as written: validation quarantines it if it is not canonical.
    mapping: dict[str, str] = {}
    for value, share in shares.items():
        canonical = EVENT_SYNONYMS.get(_norm(str(value)))
        if canonical is not None and (share >= RARE_SHARE or value == canonical):
            mapping[str(value)] = canonical
    return mapping


def _event_share(column: Column, mapping: dict[str, str]) -> float:
    return float(column.text().isin(list(mapping)).mean()) if len(column.filled) else 0.0


@dataclass
class Roles:
    """Canonical role → the source column that plays it."""

    columns: dict[str, Column] = field(default_factory=dict)
    choices: list[Choice] = field(default_factory=list)
    as_named: list[str] = field(default_factory=list)  # canonical names used as they are
    time_role: str = "timestamp"

    def used(self, column: Column) -> bool:
        return any(c is column for c in self.columns.values())

    def take(self, role: str, column: Column, confidence: Confidence, why: str, key: str) -> None:
        """Give ``column`` the role; a canonical name read as itself needs no confirming."""
        self.columns[role] = column
        label = self.time_role if role == "timestamp" else role
        if column.name == label and confidence == "high":
            self.as_named.append(label)
        else:
            self.choices.append(Choice(f"{label} ← {column.name}", confidence, why, key))


def assign_roles(
    columns: list[Column], key: str, headerless: bool = False, table: str = "interactions"
) -> Roles:
    """Which column is the user, the item, the time... checked against the values."""
    roles = Roles(time_role="signup_date" if table == "users" else "timestamp")
    mapping_key = f"{key}.columns" if headerless else f"{key}.column_mapping"

    def first(check: Any, names: frozenset[str], endings: tuple[str, ...] = ()) -> Column | None:
        named = [c for c in columns if not roles.used(c) and _named(c, names, endings)]
        fitting = [c for c in named if check(c)]
        return fitting[0] if fitting else None

    def by_name(role: str, check: Any, names: frozenset[str], evidence: Any) -> None:
        found = first(check, names)
        if found is not None:
            roles.take(role, found, "high", evidence(found), mapping_key)

    found = first(lambda c: c.time is not None, TIME_NAMES, TIME_ENDINGS)
    if found is not None and found.time is not None:
        roles.take("timestamp", found, "high", f"named so; {found.time.describe()}", mapping_key)
    by_name("rating", _rating_like, RATING_NAMES, lambda c: f"named so; values {_scale_text(c)}")
    found = first(lambda c: _event_share(c, _event_values(c)) >= 0.5, EVENT_NAMES)
    if found is not None:
        values = sorted(found.text().unique())[:8]
        roles.take("event_type", found, "high", f"named so; values {values}", mapping_key)
    for role, names, check in (
        ("quantity", QUANTITY_NAMES, lambda c: c.numbers is not None),
        ("invoice", INVOICE_NAMES, lambda c: len(c.filled) > 0),
    ):
        found = first(check, names)
        if found is not None:  # read for the row filter only; ingestion drops the column
            roles.take(
                role,
                found,
                "high",
                "named so; used to find rows that are not interactions",
                f"{key}.filter",
            )
    by_name(
        "user_id",
        lambda c: c.id_like,
        USER_NAMES,
        lambda c: f"named so; {c.filled.nunique():,} distinct ids",
    )
    by_name(
        "item_id",
        lambda c: c.id_like,
        ITEM_NAMES,
        lambda c: f"named so; {c.filled.nunique():,} distinct ids",
    )
    by_name("price", lambda c: c.numbers is not None, PRICE_NAMES, lambda c: "named so; numbers")
    by_name("title", lambda c: c.numbers is None, TITLE_NAMES, lambda c: "named so; text")
    by_name("category", lambda c: len(c.filled) > 0, CATEGORY_NAMES, lambda c: "named so")
    by_name("region", lambda c: c.numbers is None, REGION_NAMES, lambda c: "named so; text")
    _roles_by_values(columns, roles, mapping_key)
    return roles


def _scale_text(column: Column) -> str:
    assert column.numbers is not None
    typical = _typical(column.numbers)
    return f"{typical.min():g}–{typical.max():g} ({len(typical)} distinct)"


def _roles_by_values(columns: list[Column], roles: Roles, key: str) -> None:
    """Roles no column is named for, from the values alone (a header-less file)."""
    free = [c for c in columns if not roles.used(c)]
    if "timestamp" not in roles.columns:
        timed = [c for c in free if c.time is not None and c.time.share >= PARSE_SHARE]
        if timed and timed[0].time is not None:
            roles.take(
                "timestamp", timed[0], "medium", f"its values are {timed[0].time.describe()}", key
            )
    free = [c for c in columns if not roles.used(c)]
    if "rating" not in roles.columns and "event_type" not in roles.columns:
        rated = [c for c in free if _rating_like(c)]
        small = [c for c in rated if c.numbers is not None and _typical(c.numbers).max() <= 10]
        if small and len(free) >= 3:
            roles.take(
                "rating",
                small[-1],
                "medium",
                f"a small set of values {_scale_text(small[-1])}",
                key,
            )
    if "event_type" not in roles.columns:
        typed = [c for c in free if _event_share(c, _event_values(c)) >= 0.5]
        if typed and not roles.used(typed[0]):
            values = sorted(typed[0].text().unique())[:8]
            roles.take(
                "event_type", typed[0], "medium", f"its values {values} are event types", key
            )
    free = [c for c in columns if not roles.used(c) and c.id_like and c.time is None]
    for role in ("user_id", "item_id"):
        if role not in roles.columns and free:
            column = free.pop(0)
            roles.take(role, column, "low", "by position: the first id-like column left", key)


# --- the proposal -----------------------------------------------------------------------------


@dataclass
class TableProposal:
    """One table's source block, in YAML terms (path relative to the overlay later)."""

    table: str
    data: DataFile
    source: dict[str, Any]


@dataclass
class Proposal:
    """The overlay's content, the facts found and the choices to confirm."""

    tables: dict[str, TableProposal]
    tasks: dict[str, dict[str, Any]]
    facts: list[str]
    choices: list[Choice]
    warnings: list[str]


def _table_of(roles: Roles) -> str | None:
    has = set(roles.columns)
    if {"user_id", "item_id"} <= has:
        return "interactions"
    if "item_id" in has:
        return "items"
    if "user_id" in has:
        return "users"
    return None


CANONICAL_ROLES = {
    "interactions": ("user_id", "item_id", "event_type", "rating", "timestamp"),
    "items": ("item_id", "category", "price", "title"),
    "users": ("user_id", "signup_date", "region"),
}
CATALOGUE_ROLES = ("title", "price", "category", "region")


def _source_block(
    data: DataFile, table: str, roles: Roles, canonical_names: dict[str, str]
) -> dict[str, Any]:
    """format/delimiter/header/columns/encoding/column_mapping of one file."""
    block: dict[str, Any] = {"path": data.path}
    if data.needs_format:
        block["format"] = data.kind
    layout = data.layout
    if layout is not None:
        if layout.delimiter != ",":
            block["delimiter"] = "tab" if layout.delimiter == "\t" else layout.delimiter
        if not layout.header:
            block["header"] = False
            block["columns"] = [canonical_names.get(c, c) for c in data.frame.columns]
        if layout.encoding != "utf-8":
            block["encoding"] = layout.encoding
    if layout is None or layout.header:
        mapping = {source: name for source, name in canonical_names.items() if source != name}
        if mapping:
            block["column_mapping"] = mapping
    return block


def _canonical_names(
    data: DataFile, table: str, roles: Roles, derive_catalogue: bool
) -> dict[str, str]:
    """Source column → the name ingestion should see: the role's canonical name; a column
    that already has a canonical name but not that role is renamed away (ingestion would
    otherwise read it as that column)."""
    wanted = set(CANONICAL_ROLES[table]) | (set(CATALOGUE_ROLES) if derive_catalogue else set())
    names: dict[str, str] = {}
    for role, column in roles.columns.items():
        canonical = "signup_date" if table == "users" and role == "timestamp" else role
        if canonical in wanted:
            names[column.name] = canonical
    claimed = set(names.values())
    every_canonical = {c for layout in TABLES.values() for c in layout.columns}
    for source in map(str, data.frame.columns):
        if source not in names and (source in claimed or source in every_canonical):
            names[source] = f"unused_{source}"
    if data.layout is not None and not data.layout.header:
        for source in map(str, data.frame.columns):
            names.setdefault(source, source)
    return names


def _filters(roles: Roles, table: str, key: str, choices: list[Choice]) -> list[dict[str, Any]]:
    """Rows that are not interactions: cancellations, returns, rows without a user."""
    conditions: list[dict[str, Any]] = []
    quantity = roles.columns.get("quantity")
    if quantity is not None and quantity.numbers is not None and (quantity.numbers <= 0).any():
        share = float((quantity.numbers <= 0).mean())
        conditions.append({"column": quantity.name, "op": ">", "value": 0})
        choices.append(
            Choice(
                f"drop rows with {quantity.name} <= 0", "high",
                f"{share:.1%} of rows have a zero or negative quantity (returns/cancellations)",
                f"{key}.filter",
            )
        )  # fmt: skip
    invoice = roles.columns.get("invoice")
    if invoice is not None:
        text = invoice.text()
        cancelled = text.str.upper().str.startswith("C") & text.str[1:].str.match(r"^\d")
        if 0 < cancelled.mean() < 0.5:
            prefix = str(text[cancelled].iloc[0])[0]
            conditions.append({"column": invoice.name, "op": "not_startswith", "value": prefix})
            choices.append(
                Choice(
                    f"drop rows whose {invoice.name} starts with {prefix}", "high",
                    f"{cancelled.mean():.1%} of invoice numbers are cancellations "
                    f"(e.g. {text[cancelled].iloc[0]})",
                    f"{key}.filter",
                )
            )  # fmt: skip
    for role in ("user_id", "item_id"):
        column = roles.columns.get(role)
        if column is not None and table == "interactions" and column.null_share >= RARE_SHARE:
            conditions.append({"column": column.name, "op": "not_null"})
            choices.append(
                Choice(
                    f"drop rows without {column.name}", "high",
                    f"{column.null_share:.1%} of rows have no {role} (e.g. guest checkouts); "
                    "they cannot be attributed",
                    f"{key}.filter",
                )
            )  # fmt: skip
    return conditions


@dataclass
class Events:
    """The interactions as the pipeline will see them (after filters and mapping)."""

    users: np.ndarray
    items: np.ndarray
    types: np.ndarray
    ratings: np.ndarray
    times: pd.Series


def _keep_mask(frame: pd.DataFrame, conditions: list[dict[str, Any]]) -> np.ndarray:
    keep = np.ones(len(frame), dtype=bool)
    for condition in conditions:
        values = frame[condition["column"]]
        blank = values.isna() | (values.astype(str).str.strip() == "")
        op = condition["op"]
        if op == "not_null":
            keep &= ~blank.to_numpy()
        elif op == ">":
            numbers = pd.to_numeric(values, errors="coerce")
            keep &= (numbers > condition["value"]).fillna(False).to_numpy()
        elif op == "not_startswith":
            keep &= (
                ~values.astype(str).str.startswith(condition["value"]).to_numpy()
                & ~blank.to_numpy()
            )
        elif op == "in":
            keep &= values.astype(str).str.strip().isin(condition["value"]).to_numpy()
    return keep


def _rating_scale(column: Column) -> tuple[float, float, float | None]:
    assert column.numbers is not None
    typical = _typical(column.numbers)
    low, high = float(typical.min()), float(typical.max())
    step: float | None = None
    for candidate in (1.0, 0.5, 0.25, 0.1):
        if bool(np.all(np.isclose(np.round(typical / candidate) * candidate, typical))):
            step = candidate
            break
    return low, high, step


def _snap(value: float, step: float | None) -> float:
    return float(round(value / step) * step) if step else round(value, 2)


class _Builder:
    """Builds the proposal for the interactions source and the tasks' settings."""

    def __init__(self, data: DataFile, columns: list[Column], roles: Roles, derive: set[str]):
        self.data, self.columns, self.roles = data, columns, roles
        self.key = f"{SOURCE_KEY}.interactions"
        self.choices: list[Choice] = list(roles.choices)
        self.facts: list[str] = []
        self.warnings: list[str] = []
        self.tasks: dict[str, dict[str, Any]] = {}
        self.derive = derive

    def setting(self, task: str, path: tuple[str, ...], value: Any) -> None:
        node = self.tasks.setdefault(task, {})
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value

    def build(self) -> TableProposal:
        roles, key = self.roles, self.key
        names = _canonical_names(
            self.data, "interactions", roles, bool(self.derive & {"items", "users"})
        )
        block = _source_block(self.data, "interactions", roles, names)
        constants, value_mapping = self._feedback()
        if constants:
            block["constants"] = constants
        if value_mapping:
            block["value_mapping"] = {"event_type": value_mapping}
        timestamp = self._timestamp()
        if timestamp:
            block["timestamp"] = timestamp
        conditions = _filters(roles, "interactions", key, self.choices)
        conditions += self._event_filter(value_mapping)
        if conditions:
            # A header-less file's filter names the columns as its columns: list does.
            headerless = "columns" in block
            block["filter"] = [
                {**c, "column": names.get(c["column"], c["column"])} if headerless else c
                for c in conditions
            ]
        events = self._events(conditions, value_mapping, constants)
        aggregate = self._aggregate(events)
        if aggregate:
            block["aggregate"] = aggregate
        self._ratings(events)
        self._positives(events)
        self._freshness(events)
        self._split(events)
        return TableProposal("interactions", self.data, block)

    # feedback kind: explicit ratings, typed events, or one kind of implicit event
    def _feedback(self) -> tuple[dict[str, str], dict[str, str]]:
        roles, key = self.roles, self.key
        event = roles.columns.get("event_type")
        if event is not None:
            mapping = _event_values(event)
            renamed = {
                source: canonical for source, canonical in mapping.items() if source != canonical
            }
            kinds = sorted(set(mapping.values()))
            self.facts.append(f"feedback: typed events {kinds} from column {event.name}")
            if renamed:
                self.choices.append(
                    Choice(
                        f"event values {renamed}", "high", "synonyms of the canonical types",
                        f"{key}.value_mapping.event_type",
                    )
                )  # fmt: skip
            return {}, renamed
        if "rating" in roles.columns:
            self.facts.append("feedback: explicit ratings (every row is a rating event)")
            self.choices.append(
                Choice(
                    "event_type: rating for every row", "high",
                    "a rating column and no event column", f"{key}.constants.event_type",
                )
            )  # fmt: skip
            return {"event_type": "rating"}, {}
        retail = any(role in roles.columns for role in ("quantity", "invoice", "price"))
        self.facts.append("feedback: implicit (no rating or event column); every row is one event")
        self.choices.append(
            Choice(
                "event_type: purchase for every row", "high" if retail else "medium",
                "order lines (quantity/invoice/price columns)" if retail
                else "no event column: each row counts as a purchase (weight 5, a held-out "
                "positive); use view for clicks and set features.positive_event_types",
                f"{key}.constants.event_type",
            )
        )  # fmt: skip
        return {"event_type": "purchase"}, {}

    def _event_filter(self, renamed: dict[str, str]) -> list[dict[str, Any]]:
        """Unknown event values: rare ones are left for validation to quarantine; common
        ones (more than validation tolerates) are filtered out here, and said so."""
        event = self.roles.columns.get("event_type")
        if event is None:
            return []
        mapping = _event_values(event)
        text = event.text()
        unknown = text[~text.isin(list(mapping))]
        if len(unknown) / max(1, len(event.values)) <= RARE_SHARE:
            return []
        dropped = sorted(unknown.unique())[:8]
        self.choices.append(
            Choice(
                f"keep only events {sorted(mapping)}", "medium",
                f"{len(unknown) / len(event.values):.1%} of rows have other event values "
                f"({dropped}) that no canonical type matches",
                f"{self.key}.filter (or map them in value_mapping.event_type)",
            )
        )  # fmt: skip
        return [{"column": event.name, "op": "in", "value": sorted(mapping)}]

    def _timestamp(self) -> dict[str, Any]:
        column = self.roles.columns.get("timestamp")
        key = f"{self.key}.timestamp"
        if column is None or column.time is None:
            raise OnboardingError(
                f"{self.data.name}: no column reads as event times (columns: "
                f"{[c.name for c in self.columns]}); the pipeline splits by time"
            )
        guess = column.time
        spec: dict[str, Any] = {}
        if guess.unit != "iso":
            spec["unit"] = guess.unit
        elif guess.format:
            spec["format"] = guess.format
        elif not guess.plain and not guess.typed:
            spec["unit"] = "iso"
        if guess.unit == "iso" and not guess.aware:
            if spec or guess.typed:
                spec["timezone"] = "UTC"
            self.choices.append(
                Choice(
                    "times without a zone are read as UTC", "low",
                    f"{column.name} is {guess.describe()}", f"{key}.timezone",
                )
            )  # fmt: skip
        if guess.format:
            self.choices.append(
                Choice(
                    f"times written as {guess.format}", "low" if guess.ambiguous else "high",
                    "day and month could be either way round (no day above 12): check"
                    if guess.ambiguous else f"{guess.share:.1%} of the values read so",
                    f"{key}.format",
                )
            )  # fmt: skip
        if guess.unit != "iso":
            self.choices.append(
                Choice(f"times are Unix {guess.unit}", "high", "by their magnitude", f"{key}.unit")
            )
        return spec

    def _events(
        self, conditions: list[dict[str, Any]], renamed: dict[str, str], constants: dict[str, str]
    ) -> Events:
        keep = _keep_mask(self.data.frame, conditions)
        roles = self.roles
        time = roles.columns["timestamp"].time
        assert time is not None
        times = time.times.reindex(self.data.frame.index)[keep]
        valid = times.notna().to_numpy()

        def pick(role: str) -> np.ndarray:
            values = roles.columns[role].values
            text = values.astype(object).where(values.notna(), "").astype(str).str.strip()
            return text.to_numpy(dtype=object)[keep][valid]

        users, items = pick("user_id"), pick("item_id")
        if "event_type" in roles.columns:
            types = np.array([renamed.get(v, v) for v in pick("event_type")], dtype=object)
        else:
            types = np.full(users.size, constants["event_type"], dtype=object)
        if "rating" in roles.columns:
            rating = pd.to_numeric(roles.columns["rating"].values, errors="coerce").to_numpy()[
                keep
            ][valid]
        else:
            rating = np.full(users.size, np.nan)
        if not users.size:
            raise OnboardingError(
                f"{self.data.name}: no row is left once rows without a valid time or that are "
                "not interactions are dropped"
            )
        return Events(users, items, types, rating, times[valid].reset_index(drop=True))

    def _aggregate(self, events: Events) -> dict[str, Any] | None:
        """Fold repeated purchases into one interaction weighted by the summed quantity,
        when many rows repeat a user's item: otherwise a line of 12 counts as a line of 1."""
        quantity = self.roles.columns.get("quantity")
        if quantity is None or quantity.numbers is None or not events.users.size:
            return None
        pairs = pd.DataFrame({"user": events.users, "item": events.items, "type": events.types})
        repeats = int(pairs.duplicated().sum())
        share = repeats / len(pairs)
        if share < REPEAT_SHARE:
            return None
        self.facts.append(
            f"repeats: {share:.0%} of the rows repeat a user's earlier item "
            f"({len(pairs) - repeats:,} user-item pairs in {len(pairs):,} rows)"
        )
        self.choices.append(
            Choice(
                f"fold repeated user-item events into one interaction weighted by the sum of "
                f"{quantity.name}", "medium",
                f"{share:.0%} of the rows repeat a pair and {quantity.name} says how many; "
                "without it every line counts once, whatever its quantity (weight: count "
                "counts lines instead; remove the key to keep every line)",
                f"{self.key}.aggregate",
            )
        )  # fmt: skip
        # A quantity is only ever found by its name, so the file has a header to name it by.
        return {"weight": f"sum:{quantity.name}"}

    def _ratings(self, events: Events) -> None:
        column = self.roles.columns.get("rating")
        if column is None or column.numbers is None:
            return
        low, high, step = _rating_scale(column)
        scale = f"{low:g}–{high:g}" + (f" in steps of {step:g}" if step else "")
        within = low >= DEFAULT_RATINGS.min_rating and high <= DEFAULT_RATINGS.max_rating
        default = f"{DEFAULT_RATINGS.min_rating:g}–{DEFAULT_RATINGS.max_rating:g}"
        self.facts.append(
            f"ratings: mostly {scale}" + (f", within the default range {default}" if within else "")
        )
        key = "tasks.validation.config.rating_range"
        if low < DEFAULT_RATINGS.min_rating or high > DEFAULT_RATINGS.max_rating:
            self.setting("validation", ("rating_range", "min_rating"), low)
            self.setting("validation", ("rating_range", "max_rating"), high)
            self.choices.append(
                Choice(f"valid ratings {low:g}–{high:g}", "high", f"the values found: {scale}", key)
            )
            threshold = _snap(low + 0.75 * (high - low), step)
            if threshold != DEFAULT_FEATURES.positive_rating_threshold:
                self.setting("features", ("positive_rating_threshold",), threshold)
                self.choices.append(
                    Choice(
                        f"a rating of {threshold:g} or more is a liked item", "medium",
                        "the top quarter of the scale",
                        "tasks.features.config.positive_rating_threshold",
                    )
                )  # fmt: skip

    def _positives(self, events: Events) -> None:
        """Held-out positives need a type the features task counts; with views only (a click
        log), views become the positives."""
        kinds = set(np.unique(events.types)) - {"rating"}
        positive = set(DEFAULT_FEATURES.positive_event_types)
        if kinds and not kinds & positive:
            self.setting("features", ("positive_event_types",), sorted(kinds))
            self.choices.append(
                Choice(
                    f"held-out positives are {sorted(kinds)} events", "medium",
                    f"the data has no {sorted(positive)} events",
                    "tasks.features.config.positive_event_types",
                )
            )  # fmt: skip

    def _positive_mask(self, events: Events) -> np.ndarray:
        positive_types = self.tasks.get("features", {}).get(
            "positive_event_types", DEFAULT_FEATURES.positive_event_types
        )
        threshold = self.tasks.get("features", {}).get(
            "positive_rating_threshold", DEFAULT_FEATURES.positive_rating_threshold
        )
        liked = (events.types == "rating") & (
            np.nan_to_num(events.ratings, nan=-np.inf) >= threshold
        )
        mask: np.ndarray = np.isin(events.types, positive_types) | liked
        return mask

    def _freshness(self, events: Events) -> None:
        newest = self._newest(events)
        self.facts.append(
            f"time range: {events.times.min():%Y-%m-%d} to {newest:%Y-%m-%d %H:%M:%S} UTC"
        )
        now = pd.Timestamp.now(tz="UTC")
        key = "tasks.validation.config.freshness.reference_time"
        age_days = (now - newest).total_seconds() / 86_400
        if age_days > DEFAULT_FRESHNESS.max_age_days or newest > now + timedelta(days=1):
            stamp = newest.strftime("%Y-%m-%dT%H:%M:%SZ")
            self.setting("validation", ("freshness", "reference_time"), stamp)
            self.choices.append(
                Choice(
                    f"freshness measured from the newest event, {stamp}", "high",
                    f"the data ends {age_days:,.0f} days before today, so a freshness check "
                    "against today would fail (and later times would count as future); "
                    "remove the key once fresh data arrives",
                    key,
                )
            )  # fmt: skip

    def _newest(self, events: Events) -> pd.Timestamp:
        newest = pd.Timestamp(events.times.max())
        if not self.data.truncated:
            return newest
        column = self.roles.columns["timestamp"]
        for chunk in self.data.iter_column(column.name):
            part = profile(column.name, chunk).time
            if part is not None and part.times.notna().any():
                newest = max(newest, pd.Timestamp(part.times.max()))
        return newest

    def _split(self, events: Events) -> None:
        positive = self._positive_mask(events)
        order = np.argsort(events.times.to_numpy(), kind="stable")
        users, items = events.users[order], events.items[order]
        positive = positive[order]
        n = users.size
        codes = pd.factorize(users)[0]
        pairs = pd.factorize(pd.Series(users) + "\x1f" + pd.Series(items))[0]
        simulated: dict[str, tuple[int, float]] = {}
        cutoff = min(math.floor(n * (1 - TEST_SHARE)), n - 1)
        is_test = np.arange(n) >= cutoff
        simulated["temporal_global"] = _evaluable(codes, pairs, positive, is_test)
        rank_from_end = pd.Series(codes).groupby(codes).cumcount(ascending=False).to_numpy()
        counts = np.bincount(codes)[codes]
        held = np.maximum(1, np.floor(counts * TEST_SHARE))
        simulated["temporal_per_user"] = _evaluable(
            codes, pairs, positive, (rank_from_end < held) & (counts > held)
        )
        rng = np.random.default_rng(DEFAULT_SPLIT.seed)
        simulated["random"] = _evaluable(codes, pairs, positive, rng.random(n) < TEST_SHARE)
        self.facts.append(
            f"interactions: {n:,} kept of {len(self.data.frame):,} rows read"
            + (" (the head of the data)" if self.data.truncated else "")
            + f"; {np.unique(codes).size:,} users, {np.unique(items).size:,} items"
        )
        needed = DEFAULT_SPLIT.min_eval_users
        key = "tasks.preparation.config.split"
        found = ", ".join(f"{p} {u:,}" for p, (u, _) in simulated.items())
        chosen = None
        for protocol, (users_ok, unknown) in simulated.items():
            if users_ok >= needed * 1.2 and unknown <= 0.5:
                chosen = protocol
                break
        confidence: Confidence = "high"
        if chosen is None:
            chosen = max(simulated, key=lambda p: simulated[p][0])
            possible = simulated[chosen][0]
            confidence = "low"
            self.warnings.append(
                f"no protocol leaves {needed} users to evaluate on ({found}); "
                f"min_eval_users is lowered to {max(1, int(possible * 0.8))}: metrics on so "
                "few users are noise"
            )
            self.setting("preparation", ("split", "min_eval_users"), max(1, int(possible * 0.8)))
        self.setting("preparation", ("split", "method"), chosen)
        if chosen == "temporal_per_user":
            self.setting("preparation", ("split", "per_user_fraction"), TEST_SHARE)
        why = {
            "temporal_global": "one cut-off time leaves enough users on both sides; nothing "
            "trains on the future",
            "temporal_per_user": "a global cut-off leaves too few users with history on both "
            "sides; each user's latest 20 % of events are held out",
            "random": "too few users have enough events over time for a temporal split; "
            "random leaks time, so treat its metrics as optimistic",
        }[chosen]
        self.choices.append(
            Choice(
                f"split protocol {chosen}", confidence,
                f"{why} (users evaluable, estimated: {found})", f"{key}.method",
            )
        )  # fmt: skip


def _evaluable(
    codes: np.ndarray, pairs: np.ndarray, positive: np.ndarray, is_test: np.ndarray
) -> tuple[int, float]:
    """Users with a train event and a new held-out positive, and the share of test rows whose
    user has no train event (the features task drops those)."""
    train_users = np.zeros(codes.max() + 1 if codes.size else 1, dtype=bool)
    train_users[codes[~is_test]] = True
    seen = np.zeros(pairs.max() + 1 if pairs.size else 1, dtype=bool)
    seen[pairs[~is_test]] = True
    hit = is_test & positive & train_users[codes] & ~seen[pairs]
    unknown = float((~train_users[codes[is_test]]).mean()) if is_test.any() else 1.0
    return int(np.unique(codes[hit]).size), unknown


def _catalogue_block(data: DataFile, table: str, roles: Roles) -> TableProposal:
    names = _canonical_names(data, table, roles, False)
    block = _source_block(data, table, roles, names)
    time = roles.columns.get("timestamp")
    if table == "users" and time is not None and time.time is not None and not time.time.plain:
        guess = time.time
        block["timestamp"] = (
            {"unit": guess.unit}
            if guess.unit != "iso"
            else {"unit": "iso", **({"format": guess.format} if guess.format else {})}
        )
    return TableProposal(table, data, block)


def propose(sources: list[DataFile]) -> Proposal:
    """The overlay for these sources: one interactions source, optional items/users files."""
    found: dict[str, tuple[DataFile, list[Column], Roles]] = {}
    skipped: list[str] = []
    for data in sources:
        columns = [profile(str(name), data.frame[name]) for name in data.frame.columns]
        headerless = data.layout is not None and not data.layout.header
        roles = assign_roles(columns, f"{SOURCE_KEY}.interactions", headerless)
        table = _table_of(roles)
        if table is None:
            skipped.append(
                f"{data.name}: no user or item id column among {list(data.frame.columns)}"
            )
            continue
        if table in found:
            raise OnboardingError(
                f"{found[table][0].name} and {data.name} both look like the {table} table; "
                "ingestion reads one source per table: put files of one shape in a folder "
                "and name the folder"
            )
        if table != "interactions":
            roles = assign_roles(columns, f"{SOURCE_KEY}.{table}", headerless, table)
        found[table] = (data, columns, roles)
    if "interactions" not in found:
        raise OnboardingError(
            "no file has both a user and an item column, so none can be the interactions: "
            + "; ".join(skipped or [s.name for s in sources])
        )
    derive = {t for t in ("items", "users") if t not in found}
    data, columns, roles = found["interactions"]
    builder = _Builder(data, columns, roles, derive)
    tables = {"interactions": builder.build()}
    if roles.as_named:
        builder.facts.insert(
            0, f"interactions: {data.name}; columns as named: {', '.join(roles.as_named)}"
        )
    for table in ("items", "users"):
        if table in found:
            other, _, other_roles = found[table]
            tables[table] = _catalogue_block(other, table, other_roles)
            builder.choices.extend(other_roles.choices)
            builder.facts.append(
                f"{table}: {other.name} ({len(other.frame):,} rows)"
                + (
                    f"; columns as named: {', '.join(other_roles.as_named)}"
                    if other_roles.as_named
                    else ""
                )
            )
        else:
            builder.facts.append(f"{table}: derived from the interactions (no {table} file given)")
    for note in skipped:
        builder.warnings.append(f"not used: {note}")
    return Proposal(tables, builder.tasks, builder.facts, builder.choices, builder.warnings)
