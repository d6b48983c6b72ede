"""The JSON documents tasks pass to each other, as pydantic models.

A writer builds the model (a wrong field fails the writer, not a reader three tasks later)
and a reader gets it back validated through ``ctx.document(INPUT)``. Unknown keys are
refused, so a renamed field is an error at once rather than a silent ``None``.

Documents hold what the run computed from its inputs, config, code and seeds, so the same
run gives the same bytes and ``reproduce`` can compare them by hash. Facts about the run
itself (its id, when it ran, how long things took, the host, a free port) are recorded in the
run's manifest and the task's metrics/metadata instead. Fields that used to carry such facts
are ``legacy_fields``: dropped when an older document is read, never written again. The few
fields that depend on state outside the run (the model registry, the previous run) are listed
in ``run_dependent`` with the reason; ``reproduce`` compares a document without them.
"""

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Metrics = dict[str, float | None]


class Document(BaseModel):
    # Built on first use: loading a config names these models (in task specs) but reads none.
    model_config = ConfigDict(extra="forbid", defer_build=True)

    # Fields older versions wrote and this one no longer does (run facts moved to the
    # manifest): ignored on read, so an earlier run's document still loads.
    legacy_fields: ClassVar[frozenset[str]] = frozenset()
    # Field -> why its value depends on more than the run's inputs, config, code and seeds.
    run_dependent: ClassVar[dict[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _drop_legacy_fields(cls, data: Any) -> Any:
        if isinstance(data, dict) and cls.legacy_fields & data.keys():
            return {k: v for k, v in data.items() if k not in cls.legacy_fields}
        return data


class InteractionStats(Document):
    rows_in: int
    rows_valid: int
    rows_quarantined: int
    oldest_timestamp: str | None
    newest_timestamp: str | None
    null_counts: dict[str, int]
    source: str | None = Field(
        None, description="Where ingestion read the table (file, glob or URL), when known."
    )


class RuleExample(Document):
    """One offending row: its ``row_number`` (as in the quarantine) and the value at fault."""

    row_number: int
    column: str = Field(description="The column at fault ('*' for a whole-row duplicate).")
    value: str | None
    copy_of_row: int | None = Field(None, description="duplicates: the row it repeats.")


class RuleStats(Document):
    failed_rows: int
    fraction: float
    threshold: float | None = Field(None, description="max_fraction the check applied.")
    threshold_key: str | None = Field(None, description="The config key that sets it.")
    examples: list[RuleExample] = Field(
        default_factory=list, description="Up to five offending rows, first ones first."
    )


class ValidationReport(Document):
    """validation → report: what the data contract found in the interactions."""

    interactions: InteractionStats
    rules: dict[str, RuleStats]
    items: dict[str, int]
    users: dict[str, int]


class CandidateSummary(Document):
    """How one training candidate was fitted, and where its file is.

    Its fit time is a run fact: the training task's metric ``<candidate>_fit_seconds``."""

    legacy_fields: ClassVar[frozenset[str]] = frozenset({"fit_seconds"})

    model_type: str
    params: dict[str, Any]
    seed: int | None
    baseline: bool
    predicts_ratings: bool
    n_train: int
    n_validation: int
    history: list[dict[str, Any]]
    best_epoch: int | None
    stopped_early: bool
    artifact: str | None = Field(description="The training output holding the model file.")
    file: str | None
    sha256: str | None
    refit: dict[str, Any] | None = Field(
        None,
        description="The refit on every training rating after early stopping (epochs, "
        "n_train, train_rmse); the history is the validation run's.",
    )
    skipped: str | None = Field(
        None, description="Why the candidate was not trained (it does not apply to the data)."
    )
    validation: Metrics | None = Field(
        None,
        description="Metrics on the validation split (a fit on the training data without "
        "it); what evaluation selects on. The saved model is refitted on all training data.",
    )
    not_refit: str | None = Field(
        None,
        description="Why the candidate has no model file although it was validated: it "
        "lost on the validation split, and training refits only the candidates evaluation "
        "can select (validation.refit: best).",
    )
    screened_out: str | None = Field(
        None,
        description="Why the candidate's validation figures are over the screening sample "
        "of users only: it was already clearly behind the leader there "
        "(validation.screen_users).",
    )


class TuningTrial(Document):
    """One trial of a hyper-parameter search: its setting, validation metric, wall time."""

    number: int
    params: dict[str, Any]
    value: float | None = Field(description="The metric on validation (null: not scored).")
    seconds: float


class TuningRecord(Document):
    """How one candidate's hyper-parameters were searched (on the validation split)."""

    metric: str
    direction: Literal["maximize", "minimize"]
    seed: int
    n_trials: int | None
    budget_seconds: float | None
    space: dict[str, Any]
    configured: dict[str, Any] = Field(description="The setting before tuning (trial 0).")
    best: TuningTrial | None
    stopped: Literal["n_trials", "budget"]
    trials: list[TuningTrial]


class TrainingSummary(Document):
    """training → evaluation, report: every candidate, in the order the YAML lists them."""

    run_dependent: ClassVar[dict[str, str]] = {
        "tuning": "trial wall times; with a time budget, how many trials ran",
    }

    model_name: str
    model_format: str
    baseline: str | None
    candidate_order: list[str]
    candidates: dict[str, CandidateSummary]
    validation: dict[str, Any] | None = Field(
        None,
        description="How the validation split was cut (method, fraction, seed, k) and its "
        "size (users ranked, held-out pairs); null: no validation split.",
    )
    tuning: dict[str, TuningRecord] | None = Field(
        None, description="Each tuned candidate's search (null: no tuning configured)."
    )

    def ordered(self) -> dict[str, CandidateSummary]:
        return {name: self.candidates[name] for name in self.candidate_order}

    def trained(self) -> dict[str, CandidateSummary]:
        """The candidates that were fitted, in order (skipped ones left out; those fitted
        only for validation, ``not_refit``, included)."""
        return {name: c for name, c in self.ordered().items() if c.skipped is None}

    def refitted(self) -> dict[str, CandidateSummary]:
        """The candidates fitted on all the training data (with a model file if saved)."""
        return {name: c for name, c in self.trained().items() if c.not_refit is None}

    def skipped(self) -> dict[str, str]:
        """Each skipped candidate's reason, in order."""
        return {name: c.skipped for name, c in self.ordered().items() if c.skipped is not None}


class GateResult(Document):
    """One quality gate's verdict on the selected model."""

    name: str
    passed: bool
    detail: str
    outcome: Literal["passed", "failed", "inconclusive"] | None = Field(
        None, description="Judged on the interval: inconclusive when it straddles the target."
    )
    blocks: bool | None = Field(None, description="Whether this verdict stops deployment.")
    interval: tuple[float, float] | None = Field(
        None, description="95 % bootstrap interval of the margin by which the model clears it."
    )

    def blocking(self) -> bool:
        """Does this gate stop deployment (documents from before outcomes: when it failed)?"""
        return self.blocks if self.blocks is not None else not self.passed


class EvaluationReport(Document):
    """evaluation → inference, report, deploy, monitoring: scores and the selected model."""

    k: int
    selection_metric: str
    higher_is_better: bool
    best_model: str
    model_type: str
    model_name: str | None
    model_format: str | None
    params: dict[str, Any]
    baseline: str
    eval_users: int
    test_users: int
    eval_users_sampled: bool
    models: dict[str, Metrics]
    test_interactions: int | None = Field(
        None, description="Held-out interactions of the evaluated users."
    )
    protocol: str | None = Field(
        None,
        description="The split protocol the test data came from (preparation's "
        "split.method). 'user_holdout': the evaluated users were held out of training whole "
        "and each was ranked from their fold-in history (cold start); otherwise users seen "
        "in training were ranked. None: an older features run that did not record it.",
    )
    intervals: dict[str, dict[str, tuple[float | None, float | None]]] = Field(
        default_factory=dict,
        description="Candidate -> ranking metric -> 95 % bootstrap interval over users.",
    )
    bootstrap_resamples: int = 0
    gates: list[GateResult]
    passed: bool = Field(description="No gate blocks deployment (an inconclusive one may warn).")
    model_sha256: str
    selected_on: Literal["validation", "test"] = Field(
        "test",
        description="The split the selection compared candidates on. 'validation': the test "
        "metrics in 'models' are those of the selected model and the baseline only, each "
        "scored once; 'test': every candidate was scored on test and the best one chosen, "
        "so its figure is optimistic.",
    )
    validation: dict[str, Metrics] = Field(
        default_factory=dict, description="Candidate -> its metrics on the validation split."
    )
    best_personalised: str | None = Field(
        None, description="The best candidate other than the baseline on the selection split."
    )
    baseline_fallback: bool = Field(
        False,
        description="No personalised candidate beat the baseline on the selection split, so "
        "the baseline is the deploy candidate (deploy keeps a current champion instead).",
    )

    @property
    def best_metrics(self) -> Metrics:
        return self.models[self.best_model]


class ReportSummary(Document):
    """report → deploy and the next report: the headline numbers and where the report is.

    The run it belongs to is the run whose folder holds it (``PreviousRun.run_id``)."""

    legacy_fields: ClassVar[frozenset[str]] = frozenset({"run_id"})
    run_dependent: ClassVar[dict[str, str]] = {
        "report_path": "named after the run id",
    }

    report_path: str | None = None
    train_rows: int | None = None
    test_rows: int | None = None
    users: int | None = None
    items: int | None = None
    rows_quarantined: int | None = None
    metrics: Metrics = Field(default_factory=dict)
    best_model: str | None = None


class Deployment(Document):
    """deploy → monitoring: what the registry holds and serves after this run.

    The URL the service was verified at (a free port in ``verify`` mode) is the deploy task's
    metadata ``service_url``; the registry's version records keep their own timestamps."""

    legacy_fields: ClassVar[frozenset[str]] = frozenset({"service_url"})
    run_dependent: ClassVar[dict[str, str]] = {
        "status": "the registry's state before deploy",  # a re-run finds it already champion
        "promoted": "the registry's state before deploy",
        "champion": "the registry's state after deploy",
        "report_path": "named after the run id",
    }

    status: str
    version: str
    champion: str | None
    promoted: bool
    comparison_metric: str
    metrics: Metrics
    registry: str
    report_path: str | None = None
    baseline_fallback: bool = Field(
        False,
        description="The version is the baseline, deployed because no personalised "
        "model beat it and there was no champion to keep.",
    )


class MonitoringSnapshot(Document):
    """monitoring → its next run: the distributions drift is measured against.

    The run it belongs to is the run whose folder holds it (``PreviousRun.run_id``)."""

    legacy_fields: ClassVar[frozenset[str]] = frozenset({"run_id"})
    run_dependent: ClassVar[dict[str, str]] = {
        "served_version": "the registry's state after deploy",
    }

    rating_distribution: list[int]
    popularity_distribution: list[float]
    metric: str
    metric_value: float | None
    users: int
    items: int
    recommended_items: int | None = Field(
        None, description="Distinct items in this run's recommendations (catalogue reach)."
    )
    served_version: str | None = Field(None, description="The registry's champion after deploy.")
