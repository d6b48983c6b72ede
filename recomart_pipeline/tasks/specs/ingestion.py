"""The ingestion task's declaration: config, inputs, outputs, checks (light: no pandas/numpy)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from recomart_pipeline.contract.task import CheckSpec, Output, TaskSpec
from recomart_pipeline.tasks import schema_approval as approval
from recomart_pipeline.tasks.specs.tables import TABLES

FileFormat = Literal["auto", "csv", "parquet"]


class TableSource(BaseModel):
    """Where one table comes from and how its columns are named there."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(
        description="A CSV/Parquet file, a directory or glob of them (concatenated in sorted "
        "order), or an http(s):// URL. Relative paths resolve against the project root."
    )
    format: FileFormat = Field(
        "auto",
        description="'csv' or 'parquet'; 'auto' decides by file suffix (.csv, .csv.gz, "
        ".parquet, .pq).",
    )
    column_mapping: dict[str, str] = Field(
        default_factory=dict,
        description="Source column name → canonical name, e.g. {customer: user_id}. "
        "Columns that are neither canonical nor mapped are dropped.",
    )
    delimiter: str = Field(",", min_length=1, max_length=1, description="CSV field separator.")


def _path_shorthand(value: Any) -> Any:
    """Let ``interactions: data/x.csv`` stand for ``interactions: {path: data/x.csv}``."""
    return {"path": value} if isinstance(value, str) else value


Source = Annotated[
    TableSource, BeforeValidator(_path_shorthand, json_schema_input_type=str | TableSource)
]


class Sources(BaseModel):
    """The three input tables; each value is a path/URL string or a full source block."""

    model_config = ConfigDict(extra="forbid")

    interactions: Source = Field(
        default_factory=lambda: TableSource(path="data/interactions.csv"),
        description="Events: user_id, item_id, event_type, timestamp, optional rating.",
    )
    items: Source = Field(
        default_factory=lambda: TableSource(path="data/items.csv"),
        description="Catalog: item_id, optional category, price, title.",
    )
    users: Source = Field(
        default_factory=lambda: TableSource(path="data/users.csv"),
        description="Users: user_id, optional signup_date, region.",
    )


class CircuitBreakerConfig(BaseModel):
    """When a source keeps failing, stop calling it for a while and use the fallback."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Guard the sources with a circuit breaker.")
    failure_threshold: int = Field(
        3, ge=1, description="Consecutive failed reads that open the circuit."
    )
    cooldown_seconds: float = Field(
        300, gt=0, description="How long the circuit stays open before one trial read."
    )
    fallback: Literal["last_good", "none"] = Field(
        "last_good",
        description="While the circuit is open: 'last_good' re-publishes the last good "
        "snapshot (marked degraded), 'none' fails the task.",
    )


class Config(BaseModel):
    """Configuration of the ingestion task."""

    model_config = ConfigDict(extra="forbid")

    source: Sources = Field(default_factory=Sources, description="Input tables.")
    chunk_rows: int = Field(
        500_000,
        ge=100,
        description="Rows read per batch (approximate for CSV); bounds memory use.",
    )
    http_timeout_seconds: float = Field(
        60.0, gt=0, description="Socket timeout of URL downloads, in seconds."
    )
    circuit_breaker: CircuitBreakerConfig = Field(default_factory=CircuitBreakerConfig)
    schema_approval: approval.Mode = Field(
        "block",
        description="A changed source schema: 'block' stops downstream tasks until "
        "`approve-schema`, 'warn' only warns, 'off' does not check.",
    )


def declare_checks(config: Config) -> list[CheckSpec]:
    return approval.check_spec(config.schema_approval)


def watched_sources(config: Config) -> list[str]:
    """What the data-arrival sensor watches: the three sources' paths, globs or URLs."""
    return [getattr(config.source, table).path for table in TABLES]


INTERACTIONS = Output("interactions", "parquet", "raw interactions, every column text")
ITEMS = Output("items", "parquet", "raw item catalogue, every column text")
USERS = Output("users", "parquet", "raw user table, every column text")

SPEC = TaskSpec(
    name="ingestion",
    description="Read the interaction, item and user sources into raw Parquet tables.",
    run="recomart_pipeline.tasks.ingestion:run",
    config=Config,
    outputs=(INTERACTIONS, ITEMS, USERS),
    checks=declare_checks,
    sources=watched_sources,
)
