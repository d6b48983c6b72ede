"""The report task's declaration: config, inputs, outputs, checks (light: no pandas/numpy)."""

from pydantic import BaseModel, ConfigDict, Field

from recomart_pipeline.contract.documents import (
    EvaluationReport,
    ReportSummary,
    TrainingSummary,
    ValidationReport,
)
from recomart_pipeline.contract.paths import WritePath
from recomart_pipeline.contract.task import Input, Output, TaskSpec


class Config(BaseModel):
    """Configuration of the report task."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field("RecoMart pipeline report", description="Report heading.")
    top_n_items: int = Field(10, ge=1, le=100, description="Rows in the top-items tables.")
    charts: bool = Field(True, description="Embed PNG charts in the HTML report.")
    output_dir: WritePath = Field("reports", description="Project folder that keeps every report.")


# Every input is optional: the report renders the sections whose data its dependencies made.
VALIDATION_REPORT = Input("validation_report", "json", document=ValidationReport, optional=True)
TRAIN = Input("train", "parquet", optional=True)
TEST = Input("test", "parquet", optional=True)
ITEM_INDEX = Input("item_index", "parquet", optional=True)
# the features task's numbering of the train ids: its row count is the train split's users
USER_INDEX = Input("user_index", "parquet", optional=True)
TRAINING_SUMMARY = Input("training_summary", "json", document=TrainingSummary, optional=True)
EVALUATION = Input("evaluation", "json", document=EvaluationReport, optional=True)
RECOMMENDATIONS = Input("recommendations", "parquet", optional=True)

SPEC = TaskSpec(
    name="report",
    description="A Markdown and HTML report of the run, with charts.",
    run="recomart_pipeline.tasks.report:run",
    config=Config,
    inputs=(
        VALIDATION_REPORT,
        TRAIN,
        TEST,
        USER_INDEX,
        ITEM_INDEX,
        TRAINING_SUMMARY,
        EVALUATION,
        RECOMMENDATIONS,
    ),
    outputs=(
        Output("report_md", "markdown"),
        Output("report_html", "html"),
        Output("report_summary", "json", document=ReportSummary),
    ),
    explains_failures=True,
)
