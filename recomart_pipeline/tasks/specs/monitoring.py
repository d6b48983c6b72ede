"""The monitoring task's declaration: config, inputs, outputs, checks (light: no pandas/numpy)."""

from pydantic import BaseModel, ConfigDict, Field

from recomart_pipeline.contract.documents import Deployment, EvaluationReport, MonitoringSnapshot
from recomart_pipeline.contract.task import CheckSpec, Input, Output, TaskSpec


class Config(BaseModel):
    """Configuration of the monitoring task."""

    model_config = ConfigDict(extra="forbid")

    psi_threshold: float = Field(
        0.2, gt=0, description="PSI above this is drift (0.1 small, 0.25 large)."
    )
    max_new_user_share: float = Field(0.5, ge=0, le=1, description="Largest share of unseen users.")
    max_new_item_share: float = Field(0.5, ge=0, le=1, description="Largest share of unseen items.")
    max_metric_drop: float = Field(
        0.1, ge=0, description="Largest relative drop of the selection metric vs the previous run."
    )


def declare_checks(config: Config) -> list[CheckSpec]:
    return [
        CheckSpec(
            "rating_drift", f"PSI of the rating distribution ≤ {config.psi_threshold}", "WARN"
        ),
        CheckSpec("popularity_drift", f"PSI of item popularity ≤ {config.psi_threshold}", "WARN"),
        CheckSpec("new_entities", "share of unseen users/items within limits", "WARN"),
        CheckSpec(
            "metric_change", f"selection metric dropped ≤ {config.max_metric_drop:.0%}", "WARN"
        ),
    ]


TRAIN = Input("train", "parquet")
TEST = Input("test", "parquet")
EVALUATION = Input("evaluation", "json", document=EvaluationReport)
RECOMMENDATIONS = Input("recommendations", "parquet", optional=True)
DEPLOYMENT = Input("deployment", "json", document=Deployment, optional=True)
SNAPSHOT = Output("monitoring_snapshot", "json", document=MonitoringSnapshot)

SPEC = TaskSpec(
    name="monitoring",
    description="Drift of ratings and popularity, new users and items, metric change.",
    run="recomart_pipeline.tasks.monitoring:run",
    config=Config,
    inputs=(TRAIN, TEST, EVALUATION, RECOMMENDATIONS, DEPLOYMENT),
    outputs=(
        SNAPSHOT,
        Output("known_entities", "parquet", "users and items seen so far"),
        Output("monitoring_report", "json", "drift measures against the previous run"),
    ),
    checks=declare_checks,
)
