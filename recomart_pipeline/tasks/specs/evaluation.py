"""The evaluation task's declaration: config, inputs, outputs, checks (light: no pandas/numpy)."""

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from recomart_pipeline.contract.documents import EvaluationReport, TrainingSummary
from recomart_pipeline.contract.task import CheckSpec, Input, Output, TaskSpec
from recomart_pipeline.ml.params import LOWER_IS_BETTER, check_metrics

GATE_KINDS: tuple[str, ...] = ("min", "max", "beat_baseline")

DEFAULT_MAX_EVAL_USERS = 100_000


class GatesConfig(BaseModel):
    """Thresholds the selected model must meet; each entry is one blocking check."""

    model_config = ConfigDict(extra="forbid")

    min: dict[str, float] = Field(
        default_factory=dict, description="metric -> lowest acceptable value (ndcg_at_10: 0.05)."
    )
    max: dict[str, float] = Field(
        default_factory=dict, description="metric -> highest acceptable value (rmse: 1.2)."
    )
    beat_baseline: dict[str, float] = Field(
        default_factory=dict,
        description="metric -> required relative improvement over the popularity baseline "
        "(0.10: at least 10% better; lower is better for rmse/mae).",
    )
    inconclusive: Literal["warn", "block"] = Field(
        "warn",
        description="What a gate whose 95 % bootstrap interval straddles its target does "
        "(the evaluated users are too few to tell): warn (a WARN check; the model may be "
        "deployed) or block (an ERROR check, as a failed gate). A gate passes only when the "
        "whole interval clears the target and fails only when the whole interval misses it; "
        "with bootstrap_resamples: 0 (and for rmse/mae) the point estimate decides.",
    )


class Config(BaseModel):
    """How candidates are compared, which one is chosen, and what it must achieve."""

    model_config = ConfigDict(extra="forbid")

    k: int = Field(10, ge=1, le=1000, description="Cut-off of the ranking metrics.")
    selection_metric: str | None = Field(
        None,
        description="Metric that picks the best candidate (default ndcg_at_<k>), e.g. "
        "ndcg_at_10, map_at_10, rmse.",
    )
    higher_is_better: bool | None = Field(
        None, description="Direction of selection_metric; inferred (rmse/mae: lower is better)."
    )
    include_baseline: bool = Field(
        False, description="Let the popularity baseline itself be selected."
    )
    baseline_fallback: bool = Field(
        True,
        description="When no personalised candidate beats the baseline on the selection "
        "split, make the baseline the deploy candidate (marked as such): deploy keeps the "
        "current champion, or serves the baseline when there is none, and the gates, "
        "evaluated on the best personalised candidate for the record, do not block. false: "
        "the best personalised candidate is selected anyway and its gates block as usual.",
    )
    gates: GatesConfig = Field(
        default_factory=GatesConfig, description="Quality gates (blocking checks)."
    )
    max_eval_users: int | None = Field(
        DEFAULT_MAX_EVAL_USERS,
        ge=1,
        description="Rank for a seeded sample of this many test users when there are more "
        "(null: always all users). Ranking costs users x items, which grows with the square "
        "of the data; a per-user metric such as NDCG lies in [0, 1], so its standard "
        "deviation is at most 0.5 and the standard error of a 100,000-user mean at most "
        "0.0016 (0.0005 measured on a generated shop). Every candidate is ranked for the "
        "same users, so comparisons and baseline gates are paired.",
    )
    seed: int = Field(42, description="Seed of the evaluation-user sample and the bootstrap.")
    bootstrap_resamples: int = Field(
        200,
        ge=0,
        description="Resamples of the evaluated users for each ranking metric's 95 % "
        "interval and the gates' intervals (0: no intervals; gates judge point estimates).",
    )

    @model_validator(mode="after")
    def _known_metrics(self) -> Self:
        used = {"selection_metric": [self.metric]}
        used.update({f"gates.{kind}": list(getattr(self.gates, kind)) for kind in GATE_KINDS})
        for where, names in used.items():
            check_metrics(where, names, self.k)
        return self

    @property
    def metric(self) -> str:
        return self.selection_metric or f"ndcg_at_{self.k}"

    @property
    def maximise(self) -> bool:
        if self.higher_is_better is not None:
            return self.higher_is_better
        return self.metric not in LOWER_IS_BETTER


def gate_specs(config: Config) -> list[tuple[str, str, str, float]]:
    """(check name, kind, metric, threshold) for every configured gate."""
    return [
        (f"gate_{kind}_{metric}", kind, metric, threshold)
        for kind in GATE_KINDS
        for metric, threshold in getattr(config.gates, kind).items()
    ]


def declare_checks(config: Config) -> list[CheckSpec]:
    """One blocking check per quality gate, visible before the task runs."""
    describe = {
        "min": "selected model's {m} >= {t}",
        "max": "selected model's {m} <= {t}",
        "beat_baseline": "selected model's {m} beats the popularity baseline by >= {t:.0%}",
    }
    if config.gates.inconclusive == "warn" and config.bootstrap_resamples > 0:
        describe = {
            kind: text + " (95 % interval; a warning when the data cannot tell)"
            for kind, text in describe.items()
        }
    fallback_note = (
        " (warning only when the baseline is deployed as the fallback)"
        if config.baseline_fallback
        else ""
    )
    describe = {kind: text + fallback_note for kind, text in describe.items()}
    return [
        CheckSpec(name, describe[kind].format(m=metric, t=threshold), "ERROR")
        for name, kind, metric, threshold in gate_specs(config)
    ]


TRAINING_SUMMARY = Input("training_summary", "json", document=TrainingSummary)
CANDIDATE_MODELS = Input("model_*", "model")
TRAIN_IMPLICIT = Input("train_implicit", "npz")
TEST_RATINGS = Input("test_ratings", "parquet")
TEST_INTERACTIONS = Input("test_interactions", "parquet")
# user_holdout: the held-out users' fold-in history and targets (optional: older features runs)
HOLDOUT_HISTORY = Input("holdout_history", "npz", optional=True)
HOLDOUT_HISTORY_RATINGS = Input("holdout_history_ratings", "parquet", optional=True)
HOLDOUT_TEST_INTERACTIONS = Input("holdout_test_interactions", "parquet", optional=True)

SPEC = TaskSpec(
    name="evaluation",
    description="Score every candidate on held-out data, select one, answer the quality gates.",
    run="recomart_pipeline.tasks.evaluation:run",
    config=Config,
    inputs=(
        TRAINING_SUMMARY,
        CANDIDATE_MODELS,
        TRAIN_IMPLICIT,
        TEST_RATINGS,
        TEST_INTERACTIONS,
        HOLDOUT_HISTORY,
        HOLDOUT_HISTORY_RATINGS,
        HOLDOUT_TEST_INTERACTIONS,
    ),
    outputs=(
        Output("model", "model", "the selected candidate's file"),
        Output("evaluation", "json", "metrics, gates, selection", document=EvaluationReport),
    ),
    checks=declare_checks,
)
