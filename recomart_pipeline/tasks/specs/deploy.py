"""The deploy task's declaration: config, inputs, outputs, checks (light: no pandas/numpy)."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from recomart_pipeline.contract.documents import Deployment, EvaluationReport, ReportSummary
from recomart_pipeline.contract.paths import OptionalWritePath
from recomart_pipeline.contract.task import Input, Output, TaskSpec


class ServiceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["verify", "url", "none"] = Field(
        "verify",
        description="verify: start the real service on a free port, check it, stop it; "
        "url: check that the service running at `url` picks up the new champion; none: no check.",
    )
    url: str = Field("http://127.0.0.1:8000", description="Running service (mode: url).")
    admin_token_env: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Environment variable holding the service's admin token: `serve` requires "
        "it on POST /admin/reload, and mode url sends it to reload the service at once. "
        "Unset: admin endpoints are disabled and mode url waits for the service to notice.",
    )
    host: str = Field("127.0.0.1", description="Interface of the verification service.")
    port: int = Field(0, ge=0, le=65535, description="Port of the verification service; 0 = free.")
    startup_timeout_seconds: float = Field(60, gt=0, description="How long /health may take.")


class Config(BaseModel):
    """Configuration of the deploy task."""

    model_config = ConfigDict(extra="forbid")

    registry_dir: OptionalWritePath = Field(
        None, description="Model registry folder; default <storage.base_dir>/registry."
    )
    require_approval: bool = Field(
        False,
        description="Wait for `python -m recomart_pipeline approve VERSION` before promoting.",
    )
    require_better_than_champion: bool = Field(
        True, description="Promote only a model that beats the current champion."
    )
    comparison_metric: str | None = Field(
        None,
        description="Metric compared with the champion; default the evaluation's selection metric.",
    )
    service: ServiceConfig = Field(default_factory=ServiceConfig)


EVALUATION = Input("evaluation", "json", document=EvaluationReport)
MODEL = Input("model", "model")
USER_INDEX = Input("user_index", "parquet")
ITEM_INDEX = Input("item_index", "parquet")
TRAIN_IMPLICIT = Input("train_implicit", "npz")
REPORT_SUMMARY = Input("report_summary", "json", document=ReportSummary, optional=True)
# inference's ranking of every user: when deploy depends on inference, the serving arrays
# are built from it instead of ranking every user a second time
SERVING_TOPK = Input("serving_topk", "npz", optional=True)

SPEC = TaskSpec(
    name="deploy",
    description="Register the selected model, promote it when it is better, verify the service.",
    run="recomart_pipeline.tasks.deploy:run",
    config=Config,
    inputs=(
        EVALUATION,
        MODEL,
        USER_INDEX,
        ITEM_INDEX,
        TRAIN_IMPLICIT,
        REPORT_SUMMARY,
        SERVING_TOPK,
    ),
    outputs=(
        Output("deployment", "json", document=Deployment),
        Output(
            "service_marker", "text", "written when the served model is this one", optional=True
        ),
    ),
)
