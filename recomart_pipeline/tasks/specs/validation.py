"""The validation task's declaration: config, inputs, outputs, checks (light: no pandas/numpy)."""

from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, field_validator

from recomart_pipeline.contract.documents import ValidationReport
from recomart_pipeline.contract.task import (
    CheckSpec,
    Input,
    Output,
    Severity,
    TaskSpec,
)
from recomart_pipeline.tasks.specs.tables import EVENT_TYPES


class RuleConfig(BaseModel):
    """Severity and threshold of a row-level rule.

    Each rule has its own subclass so that its defaults live on its fields: the documented
    defaults (``config-reference``) are read from these fields, so they are the applied ones.
    """

    model_config = ConfigDict(extra="forbid")

    severity: Severity = Field("ERROR", description="ERROR blocks downstream tasks; WARN does not.")
    max_fraction: float = Field(
        0.01, ge=0, le=1, description="Largest share of rows breaking the rule that still passes."
    )


class RequiredColumnsConfig(RuleConfig):
    """Rows missing a value in a required column.

    These rows used to be governed by null_rate alone (5 % per column), so the default
    share stays 5 %: a feed that passed before still passes.
    """

    max_fraction: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Largest share of rows lacking a required value that still passes.",
    )


class TimestampParseConfig(RuleConfig):
    """Timestamps that are present but do not parse."""


class FutureTimestampsConfig(RuleConfig):
    """Timestamps later than the run's clock allows."""

    max_future_skew: timedelta = Field(
        timedelta(days=1),
        ge=timedelta(0),
        description="How far past now (freshness.reference_time when set) a timestamp may "
        "lie; ISO-8601 duration (P1D, PT6H) or seconds.",
    )


class NullRateConfig(RuleConfig):
    """Null share of each required column."""

    max_fraction: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Largest share of null values in any one required column that still passes.",
    )


class RatingRangeConfig(RuleConfig):
    """Rating bounds of rating events."""

    min_rating: float = Field(1.0, description="Smallest valid rating.")
    max_rating: float = Field(5.0, description="Largest valid rating.")


class EventTypeConfig(RuleConfig):
    """The event vocabulary."""

    allowed: list[str] = Field(
        default_factory=lambda: list(EVENT_TYPES), min_length=1, description="Valid event types."
    )


class DuplicatesConfig(RuleConfig):
    """Exact duplicate events."""

    severity: Severity = Field("WARN", description="ERROR blocks downstream tasks; WARN does not.")
    max_fraction: float = Field(
        0.05, ge=0, le=1, description="Largest share of rows breaking the rule that still passes."
    )


class ReferentialIntegrityConfig(RuleConfig):
    """Ids unknown to the items/users tables."""


class FreshnessConfig(BaseModel):
    """How old the newest event may be."""

    model_config = ConfigDict(extra="forbid")

    severity: Severity = Field("WARN", description="ERROR blocks downstream tasks; WARN does not.")
    max_age_days: float = Field(
        730.0, gt=0, description="Largest allowed age of the newest valid event, in days."
    )
    reference_time: datetime | None = Field(
        None,
        description="Time the age is measured from (ISO-8601; no zone means UTC); "
        "default: now. Pin it to replay old data.",
    )

    @field_validator("reference_time")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)


class RowCountChangeConfig(BaseModel):
    """How much the input may grow or shrink between runs."""

    model_config = ConfigDict(extra="forbid")

    severity: Severity = Field("WARN", description="ERROR blocks downstream tasks; WARN does not.")
    max_relative_change: float = Field(
        0.5, ge=0, description="Largest |rows - previous rows| / previous rows that passes."
    )


class Config(BaseModel):
    """Configuration of the validation task: one block per rule."""

    model_config = ConfigDict(extra="forbid")

    required_columns: RequiredColumnsConfig = Field(
        default_factory=RequiredColumnsConfig,
        description="Rows missing a value in a required column (user_id, item_id, event_type, "
        "timestamp).",
    )
    timestamp_parse: TimestampParseConfig = Field(
        default_factory=TimestampParseConfig,
        description="Timestamps that are present but not ISO-8601 within 1678..2262.",
    )
    future_timestamps: FutureTimestampsConfig = Field(
        default_factory=FutureTimestampsConfig,
        description="Timestamps later than now + max_future_skew.",
    )
    null_rate: NullRateConfig = Field(
        default_factory=NullRateConfig,
        description="Null share per required column (max_fraction applies to each column).",
    )
    rating_range: RatingRangeConfig = Field(
        default_factory=RatingRangeConfig,
        description="Ratings are numbers; rating events carry one within [min_rating, max_rating].",
    )
    event_type_values: EventTypeConfig = Field(
        default_factory=EventTypeConfig, description="event_type is from the vocabulary."
    )
    duplicates: DuplicatesConfig = Field(
        default_factory=DuplicatesConfig,
        description="Exact duplicate events (later copies are quarantined).",
    )
    referential_integrity: ReferentialIntegrityConfig = Field(
        default_factory=ReferentialIntegrityConfig,
        description="item_id in items and user_id in users.",
    )
    freshness: FreshnessConfig = Field(
        default_factory=FreshnessConfig, description="Newest event not too old."
    )
    row_count_change: RowCountChangeConfig = Field(
        default_factory=RowCountChangeConfig,
        description="Input size compared with the previous successful run.",
    )
    chunk_rows: int = Field(
        1_000_000, ge=100, description="Interactions processed per batch; bounds memory use."
    )


_DESCRIPTIONS = {
    "required_columns": "every row has a value in each required column",
    "timestamp_parse": "every present timestamp parses as ISO-8601",
    "future_timestamps": "no timestamp lies beyond now + max_future_skew",
    "null_rate": "share of null values per required column is within max_fraction",
    "rating_range": "ratings are numbers; rating events carry one in [min_rating, max_rating]",
    "event_type_values": "event_type values belong to the allowed vocabulary",
    "duplicates": "share of exact duplicate events is within max_fraction",
    "referential_integrity": "item_id exists in items and user_id exists in users",
    "freshness": "the newest valid event is at most max_age_days old",
    "row_count_change": "input row count changed at most max_relative_change since last run",
}


def declare_checks(config: Config) -> list[CheckSpec]:
    """One check per rule, with the configured severity."""
    return [
        CheckSpec(name, _DESCRIPTIONS[name], getattr(config, name).severity)
        for name in _DESCRIPTIONS
    ]


RAW_INTERACTIONS = Input("interactions", "parquet")
RAW_ITEMS = Input("items", "parquet")
RAW_USERS = Input("users", "parquet")
REPORT = Output("validation_report", "json", "rule counts", document=ValidationReport)

SPEC = TaskSpec(
    name="validation",
    description="Check interactions against the data contract; quarantine broken rows.",
    run="recomart_pipeline.tasks.validation:run",
    config=Config,
    inputs=(RAW_INTERACTIONS, RAW_ITEMS, RAW_USERS),
    outputs=(
        Output("interactions", "parquet", "valid, typed interactions"),
        Output("quarantine", "parquet", "broken rows with the rule(s) each broke"),
        Output("items", "parquet", "typed, de-duplicated items"),
        Output("users", "parquet", "typed, de-duplicated users"),
        REPORT,
    ),
    checks=declare_checks,
    engines=("pandas", "local", "spark"),
)
