"""The inference task's declaration: config, inputs, outputs, checks (light: no pandas/numpy)."""

from pydantic import BaseModel, ConfigDict, Field

from recomart_pipeline.contract.documents import EvaluationReport
from recomart_pipeline.contract.task import Input, Output, TaskSpec


class Config(BaseModel):
    """How many items per user and how the work is chunked."""

    model_config = ConfigDict(extra="forbid")

    k: int = Field(10, ge=1, le=1000, description="Recommendations per user.")
    exclude_seen: bool = Field(
        True, description="Never recommend items the user already interacted with in training."
    )
    chunk_size: int | None = Field(
        None,
        ge=1,
        description="Users scored together per worker thread (default: 64, fewer when 64 rows "
        "of scores exceed 64 MiB; item_knn, which makes no dense scores: 2048); the answer "
        "does not depend on it.",
    )


EVALUATION = Input("evaluation", "json", document=EvaluationReport)
MODEL = Input("model", "model")
USER_INDEX = Input("user_index", "parquet")
ITEM_INDEX = Input("item_index", "parquet")
TRAIN_IMPLICIT = Input("train_implicit", "npz")

SPEC = TaskSpec(
    name="inference",
    description="Top-K recommendations for every user with the selected model.",
    run="recomart_pipeline.tasks.inference:run",
    config=Config,
    inputs=(EVALUATION, MODEL, USER_INDEX, ITEM_INDEX, TRAIN_IMPLICIT),
    outputs=(
        Output("recommendations", "parquet", "user_id, rank, item_id, score"),
        Output(
            "serving_topk",
            "npz",
            "every user's top 100 unseen items and scores, which deploy registers as the "
            "service's precomputed answers (not written by the spark engine or without "
            "exclude_seen)",
            optional=True,
        ),
    ),
    # spark: users scored in blocks by Spark tasks, same file (docs/spark_training.md).
    engines=("pandas", "spark"),
)
