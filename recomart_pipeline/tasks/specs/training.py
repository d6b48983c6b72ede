"""The training task's declaration: config, inputs, outputs, checks (light: no pandas/numpy)."""

from dataclasses import dataclass
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from recomart_pipeline.contract.documents import TrainingSummary
from recomart_pipeline.contract.task import Input, Output, TaskSpec
from recomart_pipeline.ml.params import (
    BIAS,
    POPULARITY,
    ALSHyperParams,
    BiasParams,
    EASEParams,
    ItemKNNParams,
    ModelTypeInfo,
    PopularityParams,
    SearchDimension,
    SVDHyperParams,
    check_metrics,
    check_search_space,
    metric_names,
    model_type_info,
)

CANDIDATE_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"


class EarlyStoppingConfig(BaseModel):
    """Stop iterative models once validation error stops improving."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Stop early on the validation split.")
    patience: int = Field(
        3, ge=1, description="Epochs without validation improvement before stopping."
    )
    min_delta: float = Field(
        1e-4, ge=0, description="Smallest validation RMSE drop that counts as an improvement."
    )
    refit: bool = Field(
        True,
        description="With early stopping on, refit on all training ratings (the validation "
        "split included) for the best validation epoch's number of epochs, same seed.",
    )


class ValidationConfig(BaseModel):
    """The validation split candidates are compared on, cut from the training data, so the
    test split is scored only by the selected model and the baseline (an unbiased figure)."""

    model_config = ConfigDict(extra="forbid")

    method: Literal[
        "auto", "temporal_per_user", "temporal_global", "per_user", "random", "none"
    ] = Field(
        "auto",
        description="auto: the protocol of the test split (preparation's split.method, "
        "recorded in the features task's tables), so validation mirrors it (user_holdout and "
        "unrecorded: temporal_per_user). temporal_per_user: each user's latest 'fraction' of "
        "train events (at least one; users who keep one); temporal_global: train events "
        "at or after one cut-off (the 1 - fraction quantile of their times); both follow "
        "the features task's rules and need its train_events (without them: per_user, "
        "with a warning). per_user: each user with two or more training pairs holds out "
        "'fraction' of them at random; random: a seeded share of all training pairs, "
        "like the random protocol; none: no validation split (evaluation then selects "
        "on the test split, an optimistic figure, and says so).",
    )
    fraction: float = Field(
        0.2,
        gt=0,
        lt=1,
        description="Share of the train events (temporal methods) or pairs held out for "
        "validation.",
    )
    k: int = Field(
        10,
        ge=1,
        le=1000,
        description="Cut-off of the validation ranking metrics; must equal the evaluation "
        "task's k for selection on validation.",
    )
    max_users: int | None = Field(
        100_000,
        ge=1,
        description="Rank for a seeded sample of this many validation users when there are "
        "more (null: all).",
    )
    screen_users: int | None = Field(
        20_000,
        ge=500,
        description="Screening: every candidate is first ranked for a seeded sample of "
        "this many of the validation users; the best personalised one on the sample is then "
        "ranked for every user, and each other one but the baseline that is more than "
        "screen_margin standard errors (of the paired per-user difference) behind it there, "
        "with a lower figure than its, stops: its figures are over the sample, it cannot be "
        "selected, and the rest of the users are not ranked for it. The others are ranked "
        "for every user, with the figures ranking them all at once gives. Applies when the "
        "selection metric "
        "is a per-user ranking metric (precision, recall, ndcg, map or hit_rate at k) and "
        "there are more validation users than this; null: no screening.",
    )
    screen_margin: float = Field(
        5.0,
        gt=0,
        description="How far behind a screened candidate must be to stop, in standard "
        "errors of its paired per-user difference to the leader on the screening sample.",
    )
    refit: Literal["best", "all"] = Field(
        "best",
        description="Which validated candidates are refitted on all the training data and "
        "saved. best: the best personalised candidate by selection_metric and the baseline "
        "(the only ones evaluation can select), so a losing candidate costs one fit, not "
        "two; all: every candidate (e.g. to compare their files by hand). Without a "
        "validation split every candidate is refitted.",
    )
    selection_metric: str | None = Field(
        None,
        description="The metric refit: best picks on (default ndcg_at_<k>); set it to the "
        "evaluation task's selection_metric when that is not the default (evaluation stops "
        "with a hint when it selects a candidate that was not refitted).",
    )

    @model_validator(mode="after")
    def _known_metric(self) -> Self:
        check_metrics("selection_metric", [self.metric], self.k)
        return self

    @property
    def metric(self) -> str:
        return self.selection_metric or f"ndcg_at_{self.k}"


class CandidateConfig(BaseModel):
    """One model to train and compare. A candidate that does not apply to the data (a rating
    model when there are no rating events) is skipped with its reason, not fatal."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(
        None,
        pattern=CANDIDATE_NAME_PATTERN,
        description="Candidate name; its file is the artifact 'model_<name>'. Defaults to the "
        "model type's short name (svd, als, ease, item_knn, bias, popularity).",
    )
    model_type: str = Field(
        "collaborative_filtering_svd",
        description="Registered model type: collaborative_filtering_svd (alias svd), als, "
        "ease (closed-form item-item, catalogues up to ease.max_items), item_knn (item "
        "neighbours, any catalogue size), baseline_bias (alias bias: mean + user/item biases, "
        "the RMSE yardstick), popularity.",
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Parameters overriding the model's block and the task-wide seed, "
        "validation and early-stopping settings.",
    )


class CandidateTuning(BaseModel):
    """The search of one candidate: its space and, optionally, its own limits."""

    model_config = ConfigDict(extra="forbid")

    space: dict[str, SearchDimension] = Field(
        min_length=1,
        description="Hyper-parameter -> {type: int|float, low, high, log} or {type: "
        "categorical, choices: [...]}; names are the model type's hyper-parameters.",
    )
    n_trials: int | None = Field(
        None, ge=1, description="Trials for this candidate (default: tuning.n_trials)."
    )
    timeout_seconds: float | None = Field(
        None,
        gt=0,
        description="Seconds this candidate's search may take at most (it also gets no more "
        "than its share of tuning.timeout_seconds).",
    )


class TuningConfig(BaseModel):
    """Hyper-parameter search on the validation split (Optuna's TPE sampler, seeded).

    Each trial fits the candidate on the training data without the validation split and
    scores the validation split; the best setting is then fitted on all the training data,
    as an untuned candidate is. Trial 0 is the configured setting, so tuning never chooses
    worse on validation. A search stops starting trials once its trials or seconds are spent.
    """

    model_config = ConfigDict(extra="forbid")

    candidates: dict[str, CandidateTuning] = Field(
        min_length=1,
        description="Candidate name -> its search (space, and optional n_trials / "
        "timeout_seconds overriding the ones below).",
    )
    n_trials: int | None = Field(
        20, ge=1, description="Trials per tuned candidate (null: as many as the time allows)."
    )
    timeout_seconds: float | None = Field(
        None,
        gt=0,
        description="Wall-clock budget of the whole search, shared by the tuned candidates in "
        "order (a candidate gets what is left over the candidates still to tune). null: no "
        "time limit. With a time budget the number of trials depends on the machine; "
        "n_trials alone is reproducible to the byte.",
    )
    metric: str | None = Field(
        None,
        description="The validation metric to optimise (ndcg_at_10, recall_at_10, rmse, ...); "
        "default ndcg_at_<validation.k>. Use the evaluation task's selection metric.",
    )
    seed: int | None = Field(None, description="Seed of the sampler (default: the task's seed).")

    def metric_for(self, k: int) -> str:
        return self.metric or f"ndcg_at_{k}"


@dataclass(frozen=True)
class ResolvedCandidate:
    """A candidate with its model class and fully validated parameters."""

    name: str
    model: ModelTypeInfo
    params: BaseModel
    is_baseline: bool


class Config(BaseModel):
    """Keys of the user guide's training block, plus candidates and reproducibility knobs."""

    model_config = ConfigDict(extra="forbid")

    model_type: str = Field(
        "collaborative_filtering_svd",
        description="Model trained when 'candidates' is not given (next to the bias-only and "
        "popularity baselines).",
    )
    svd: SVDHyperParams = Field(
        default_factory=SVDHyperParams,
        description="Hyper-parameters of collaborative_filtering_svd (n_factors, n_epochs, "
        "learning_rate, regularization, ...).",
    )
    als: ALSHyperParams = Field(
        default_factory=ALSHyperParams, description="Hyper-parameters of als."
    )
    ease: EASEParams = Field(
        default_factory=EASEParams,
        description="Hyper-parameters of ease (regularization, max_items, binary).",
    )
    item_knn: ItemKNNParams = Field(
        default_factory=ItemKNNParams,
        description="Hyper-parameters of item_knn (k, weighting, shrinkage, bm25_k1, bm25_b, "
        "binary).",
    )
    bias: BiasParams = Field(
        default_factory=BiasParams,
        description="Settings of the bias-only rating baseline (baseline_bias).",
    )
    popularity: PopularityParams = Field(
        default_factory=PopularityParams, description="Settings of the popularity baseline."
    )
    train_test_split: float = Field(
        0.8,
        gt=0,
        le=1,
        description="Share of train_ratings used for fitting; the rest is the validation split "
        "for per-epoch validation RMSE and early stopping (1.0: no validation). The test "
        "split itself is made by the features task.",
    )
    early_stopping: EarlyStoppingConfig = Field(
        default_factory=EarlyStoppingConfig, description="Early stopping on the validation split."
    )
    biases: bool = Field(True, description="Learn global mean and user/item biases (SVD).")
    seed: int = Field(42, description="Seed of initialisation, validation split and shuffles.")
    validation: ValidationConfig = Field(
        default_factory=ValidationConfig,
        description="The validation split candidates are compared on (model selection).",
    )
    tuning: TuningConfig | None = Field(
        None,
        description="Hyper-parameter search within a budget, per candidate, on the "
        "validation split (null: the configured parameters are used as they are).",
    )
    candidates: list[CandidateConfig] | None = Field(
        None,
        description="Models to train and compare. Omitted: 'model_type', the bias-only "
        "baseline (for RMSE) and the popularity baseline. A popularity candidate is added when "
        "none is listed.",
    )
    save_model: bool = Field(
        True,
        description="Write the model files. false trains and reports only (evaluation then "
        "has nothing to load).",
    )
    model_format: Literal["npz", "pickle"] = Field(
        "npz",
        description="npz (arrays + JSON header, loads without pickle) or pickle (written with "
        "a .sha256 sidecar; loaded only after the hash matches).",
    )
    model_name: str = Field(
        "collaborative_filtering",
        min_length=1,
        description="Name the selected model is registered and served under.",
    )

    @model_validator(mode="after")
    def _candidates_resolve(self) -> Self:
        resolved = self.resolved_candidates()
        if self.tuning is not None:
            self._check_tuning(self.tuning, {c.name: c for c in resolved})
        return self

    def _check_tuning(self, tuning: TuningConfig, resolved: dict[str, ResolvedCandidate]) -> None:
        """Tuning needs the validation split, a metric it measures, known candidates and
        spaces over each model type's hyper-parameters."""
        if self.validation.method == "none":
            raise ValueError(
                "tuning needs the validation split, but validation.method is none: set it to "
                "the test split's protocol (or remove tuning)"
            )
        metrics = metric_names(self.validation.k)
        metric = tuning.metric_for(self.validation.k)
        if metric not in metrics:
            raise ValueError(
                f"tuning.metric '{metric}' is not measured on validation (validation.k is "
                f"{self.validation.k}); valid: {', '.join(metrics)}"
            )
        for name, search in tuning.candidates.items():
            where = f"tuning.candidates.{name}"
            candidate = resolved.get(name)
            if candidate is None:
                raise ValueError(
                    f"{where}: there is no candidate '{name}' (candidates: {', '.join(resolved)})"
                )
            if (
                tuning.n_trials is None
                and search.n_trials is None
                and (tuning.timeout_seconds is None and search.timeout_seconds is None)
            ):
                raise ValueError(
                    f"{where}: no limit: set n_trials or timeout_seconds (here or in tuning)"
                )
            base = candidate.params.model_dump()
            try:
                check_search_space(candidate.model, base, search.space)
            except ValueError as exc:
                raise ValueError(f"{where}.space: {exc}") from None

    def _shared_params(self) -> dict[str, Any]:
        stopping = self.early_stopping
        return {
            "seed": self.seed,
            "validation_fraction": round(1.0 - self.train_test_split, 12),
            "patience": stopping.patience if stopping.enabled else 0,
            "min_delta": stopping.min_delta,
            "refit_after_early_stopping": stopping.refit,
            "biased": self.biases,
        }

    def resolved_candidates(self) -> list[ResolvedCandidate]:
        """Candidates with validated params; the first popularity model is the baseline."""
        listed = self.candidates or [CandidateConfig(model_type=self.model_type)]
        if self.candidates is None and model_type_info(self.model_type) != BIAS:
            listed.append(CandidateConfig(model_type=BIAS.model_type))
        resolved: list[ResolvedCandidate] = []
        for candidate in listed:
            model = model_type_info(candidate.model_type)
            name = candidate.name or model.short_name
            block = getattr(self, model.short_name, None)
            merged = {
                k: v for k, v in self._shared_params().items() if k in model.params.model_fields
            }
            if isinstance(block, BaseModel):
                merged.update(block.model_dump())
            merged.update(candidate.params)
            try:
                params = model.params.model_validate(merged)
            except ValueError as exc:
                raise ValueError(f"candidate '{name}' ({model.model_type}): {exc}") from None
            is_baseline = model.baseline and not any(c.is_baseline for c in resolved)
            resolved.append(ResolvedCandidate(name, model, params, is_baseline))
        if not any(c.is_baseline for c in resolved):
            params = self.popularity
            resolved.append(ResolvedCandidate("popularity", POPULARITY, params, True))
        names = [c.name for c in resolved]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(
                f"candidate names must be unique, repeated: {duplicates} (set 'name' on each)"
            )
        return resolved


TRAIN_RATINGS = Input("train_ratings", "parquet")
TRAIN_IMPLICIT = Input("train_implicit", "npz")
TRAIN_EVENTS = Input(
    "train_events",
    "parquet",
    "the train events in time order (temporal validation split)",
    optional=True,
)
SUMMARY = Output("training_summary", "json", "every candidate's fit", document=TrainingSummary)
MODELS = Output("model_*", "model", "one file per candidate: model_<candidate>")

SPEC = TaskSpec(
    name="training",
    description="Fit every candidate model and save it with its fit history.",
    run="recomart_pipeline.tasks.training:run",
    config=Config,
    inputs=(TRAIN_RATINGS, TRAIN_IMPLICIT, TRAIN_EVENTS),
    outputs=(SUMMARY, MODELS),
    # spark: the als candidates train with Spark MLlib's ALS (engines.spark_als); the others,
    # and every candidate under pandas, on this machine (docs/spark_training.md).
    engines=("pandas", "spark"),
)
