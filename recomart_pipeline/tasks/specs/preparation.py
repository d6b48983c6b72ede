"""The preparation task's declaration: config, inputs, outputs, checks (light: no pandas/numpy)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from recomart_pipeline.contract.task import Input, Output, TaskSpec


class SplitConfig(BaseModel):
    """How the train/test split is made."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["time_cutoff", "last_n_per_user", "random"] = Field(
        "time_cutoff", description="time_cutoff (global), last_n_per_user, or random."
    )
    test_fraction: float = Field(
        0.2, gt=0, lt=1, description="Share of events in test (time_cutoff and random)."
    )
    cutoff: datetime | None = Field(
        None,
        description="Explicit cut-off time for time_cutoff (ISO-8601, no zone means UTC); "
        "overrides test_fraction.",
    )
    n: int = Field(1, ge=1, description="Events per user held out by last_n_per_user.")
    seed: int = Field(42, description="Seed of the random method.")

    @field_validator("cutoff")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)


class Config(BaseModel):
    """Configuration of the preparation task."""

    model_config = ConfigDict(extra="forbid")

    min_user_interactions: int = Field(
        1, ge=1, description="Keep users with at least this many events (1 = no filter)."
    )
    min_item_interactions: int = Field(
        1, ge=1, description="Keep items with at least this many events (1 = no filter)."
    )
    split: SplitConfig = Field(default_factory=SplitConfig, description="Train/test split.")


VALID_INTERACTIONS = Input("interactions", "parquet")
ITEMS = Input("items", "parquet")
USERS = Input("users", "parquet")

SPEC = TaskSpec(
    name="preparation",
    description="De-duplicate and type the valid events; split them into train and test.",
    run="recomart_pipeline.tasks.preparation:run",
    config=Config,
    inputs=(VALID_INTERACTIONS, ITEMS, USERS),
    outputs=(
        Output("train", "parquet", "training events"),
        Output("test", "parquet", "held-out events"),
        Output("items", "parquet", "items, passed on"),
        Output("users", "parquet", "users, passed on"),
    ),
)
