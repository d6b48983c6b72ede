"""The preparation task's declaration: config, inputs, outputs, checks (light: no pandas/numpy)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from recomart_pipeline.contract.task import Input, Output, TaskSpec

# Older names of the protocols, still accepted in configs.
PROTOCOL_ALIASES = {"time_cutoff": "temporal_global", "last_n_per_user": "temporal_per_user"}


class SplitConfig(BaseModel):
    """The evaluation protocol: how the train/test split is made."""

    model_config = ConfigDict(extra="forbid")

    method: Literal[
        "temporal_global",
        "temporal_per_user",
        "random",
        "user_holdout",
        "time_cutoff",
        "last_n_per_user",
    ] = Field(
        "temporal_global",
        description="temporal_global: every event after one cut-off time is test (today's "
        "default; time_cutoff is its old name); temporal_per_user: each user's last n events "
        "(or last per_user_fraction of them) are test, the usual leave-last-out protocol "
        "(old name last_n_per_user); random: a seeded share of all events; user_holdout: a "
        "seeded share of the users is held out whole (cold-start users, none of their events "
        "in train): each one's earlier events (fold_in_fraction) are given to the models at "
        "scoring time only, and the rest are their test events.",
    )
    test_fraction: float = Field(
        0.2,
        gt=0,
        lt=1,
        description="Share of events in test (temporal_global and random), or of users "
        "(user_holdout).",
    )
    cutoff: datetime | None = Field(
        None,
        description="Explicit cut-off time for temporal_global (ISO-8601, no zone means UTC); "
        "overrides test_fraction.",
    )
    n: int = Field(1, ge=1, description="Events per user held out by temporal_per_user.")
    per_user_fraction: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="temporal_per_user: hold out this share of each user's latest events "
        "(at least one) instead of n.",
    )
    fold_in_fraction: float = Field(
        0.8,
        gt=0,
        lt=1,
        description="user_holdout: the share of each held-out user's earliest events given to "
        "the models as their history at scoring time (never trained on); the later events "
        "(at least one) are the user's test events. A held-out user with a single event has "
        "no test event and is not evaluated.",
    )
    seed: int = Field(42, description="Seed of the random and user_holdout methods.")
    min_eval_users: int = Field(
        100,
        ge=1,
        description="Fewest users with events in both train and test (the users a model can "
        "be evaluated on; with user_holdout, the held-out users with both a fold-in history "
        "and test events); fewer is an error before any model is trained, naming the other "
        "protocols.",
    )

    @field_validator("cutoff")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)

    @property
    def protocol(self) -> str:
        """The protocol's current name (old names map to it)."""
        return PROTOCOL_ALIASES.get(self.method, self.method)


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
        Output(
            "fold_in",
            "parquet",
            "user_holdout: the held-out users' earlier events, given to models at scoring "
            "time only (empty for the other protocols)",
        ),
        Output("items", "parquet", "items, passed on"),
        Output("users", "parquet", "users, passed on"),
    ),
    # The cleaning and the split run as SQL on local and spark too (docs/engines.md).
    engines=("pandas", "local", "spark"),
)
