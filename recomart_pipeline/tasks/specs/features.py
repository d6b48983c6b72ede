"""The features task's declaration: config, inputs, outputs, checks (light: no pandas/numpy)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from recomart_pipeline.contract.task import Input, Output, TaskSpec


class Config(BaseModel):
    """Configuration of the features task."""

    model_config = ConfigDict(extra="forbid")

    event_weights: dict[str, float] = Field(
        default_factory=lambda: {"view": 1.0, "add_to_cart": 3.0, "purchase": 5.0},
        description="Implicit confidence added per event type (rating events: see "
        "positive_rating_threshold / low_rating_weight). Unlisted types add 0.",
    )
    positive_rating_threshold: float = Field(
        4.0, description="A rating at or above this is a liked item (weight = the rating)."
    )
    low_rating_weight: float = Field(
        0.5, ge=0, description="Implicit weight of a rating below positive_rating_threshold."
    )
    positive_event_types: list[str] = Field(
        default_factory=lambda: ["add_to_cart", "purchase"],
        description="Test event types counted as held-out positives (besides liked ratings).",
    )
    exclude_seen_in_train: bool = Field(
        True, description="Leave out test positives the user already interacted with in train."
    )

    @field_validator("event_weights")
    @classmethod
    def _no_rating_weight(cls, weights: dict[str, float]) -> dict[str, float]:
        if "rating" in weights:
            raise ValueError(
                "rating events are weighted by positive_rating_threshold/low_rating_weight; "
                "remove 'rating' from event_weights"
            )
        if any(weight < 0 for weight in weights.values()):
            raise ValueError("event weights must be >= 0")
        return weights


TRAIN = Input("train", "parquet")
TEST = Input("test", "parquet")
# user_holdout's fold-in histories; optional, so a custom preparation without it still works.
FOLD_IN = Input("fold_in", "parquet", optional=True)
ITEMS = Input("items", "parquet")
USERS = Input("users", "parquet")

SPEC = TaskSpec(
    name="features",
    description="Index users and items; build the training matrix, rating triples and stats.",
    run="recomart_pipeline.tasks.features:run",
    config=Config,
    inputs=(TRAIN, TEST, FOLD_IN, ITEMS, USERS),
    # local/spark: indices, weights, ratings and statistics as SQL (engines/features.py).
    engines=("pandas", "local", "spark"),
    outputs=(
        Output("user_index", "parquet", "user_id -> row of the matrix"),
        Output("item_index", "parquet", "item_id -> column of the matrix, with category"),
        Output("train_ratings", "parquet", "explicit rating triples for training"),
        Output("test_ratings", "parquet", "held-out rating triples"),
        Output("test_interactions", "parquet", "held-out positive (user, item) pairs"),
        Output("user_stats", "parquet", "per-user counts and favourite category"),
        Output("item_stats", "parquet", "per-item counts and popularity rank"),
        Output("train_implicit", "npz", "sparse user x item confidence matrix"),
        Output(
            "holdout_user_index",
            "parquet",
            "user_holdout: held-out user_id -> row of holdout_history (empty otherwise)",
        ),
        Output(
            "holdout_history",
            "npz",
            "user_holdout: held-out user x item confidences of their fold-in events, weighed as "
            "train_implicit; given to models at scoring time only",
        ),
        Output(
            "holdout_history_ratings",
            "parquet",
            "user_holdout: explicit rating triples of the fold-in events (user_idx = history row)",
        ),
        Output(
            "holdout_test_interactions",
            "parquet",
            "user_holdout: held-out positive pairs of the held-out users (user_idx = history row)",
        ),
        Output(
            "train_events",
            "parquet",
            "train events in time order with their weight and whether each is a positive "
            "(training cuts a temporal validation split from them)",
        ),
    ),
)
