"""Train the candidate recommenders (and the popularity baseline) on the features' train split.

Reads ``train_ratings`` and ``train_implicit`` from the features task. Writes one
``model_<name>`` file per candidate and ``training_summary`` (per candidate: type, params,
seed, fit time, per-epoch history, file and sha256), which evaluation reads.

A candidate's parameters are the model's hyper-parameter block (``svd:``, ``als:``,
``popularity:``) plus the task-wide ``seed`` / ``train_test_split`` / ``early_stopping`` /
``biases`` (where the model has such a parameter), overridden by the candidate's own
``params`` (which may set any of them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from recomart_pipeline.ml.als import ALSHyperParams
from recomart_pipeline.ml.base import FitReport, Recommender, TrainingData
from recomart_pipeline.ml.data import load_training_data
from recomart_pipeline.ml.metrics import json_safe
from recomart_pipeline.ml.persistence import FILE_SUFFIX, save_model
from recomart_pipeline.ml.popularity import PopularityParams, PopularityRecommender
from recomart_pipeline.ml.registry import get_model_class
from recomart_pipeline.ml.svd import SVDHyperParams
from recomart_pipeline.runtime.artifacts import write_json_atomic
from recomart_pipeline.runtime.context import TaskContext, TaskResult

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


class CandidateConfig(BaseModel):
    """One model to train and compare."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(
        None,
        pattern=CANDIDATE_NAME_PATTERN,
        description="Candidate name; its file is the artifact 'model_<name>'. Defaults to the "
        "model type's short name (svd, als, popularity).",
    )
    model_type: str = Field(
        "collaborative_filtering_svd",
        description="Registered model type: collaborative_filtering_svd (alias svd), als, "
        "popularity.",
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Parameters overriding the model's block and the task-wide seed, "
        "validation and early-stopping settings.",
    )


@dataclass(frozen=True)
class ResolvedCandidate:
    """A candidate with its model class and fully validated parameters."""

    name: str
    cls: type[Recommender]
    params: BaseModel
    is_baseline: bool


class Config(BaseModel):
    """Keys of the user guide's training block, plus candidates and reproducibility knobs."""

    model_config = ConfigDict(extra="forbid")

    model_type: str = Field(
        "collaborative_filtering_svd",
        description="Model trained when 'candidates' is not given (next to the popularity "
        "baseline).",
    )
    svd: SVDHyperParams = Field(
        default_factory=SVDHyperParams,
        description="Hyper-parameters of collaborative_filtering_svd (n_factors, n_epochs, "
        "learning_rate, regularization, ...).",
    )
    als: ALSHyperParams = Field(
        default_factory=ALSHyperParams, description="Hyper-parameters of als."
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
    candidates: list[CandidateConfig] | None = Field(
        None,
        description="Models to train and compare. Omitted: 'model_type' plus the popularity "
        "baseline. A popularity candidate is added when none is listed.",
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
    def _candidates_resolve(self) -> Config:
        self.resolved_candidates()
        return self

    def _shared_params(self) -> dict[str, Any]:
        stopping = self.early_stopping
        return {
            "seed": self.seed,
            "validation_fraction": round(1.0 - self.train_test_split, 12),
            "patience": stopping.patience if stopping.enabled else 0,
            "min_delta": stopping.min_delta,
            "biased": self.biases,
        }

    def resolved_candidates(self) -> list[ResolvedCandidate]:
        """Candidates with validated params; the first popularity model is the baseline."""
        listed = self.candidates or [CandidateConfig(model_type=self.model_type)]
        resolved: list[ResolvedCandidate] = []
        for candidate in listed:
            cls = get_model_class(candidate.model_type)
            name = candidate.name or cls.short_name
            block = getattr(self, cls.short_name, None)
            merged = {
                k: v for k, v in self._shared_params().items() if k in cls.Params.model_fields
            }
            if isinstance(block, BaseModel):
                merged.update(block.model_dump())
            merged.update(candidate.params)
            try:
                params = cls.Params.model_validate(merged)
            except ValueError as exc:
                raise ValueError(f"candidate '{name}' ({cls.model_type}): {exc}") from None
            is_baseline = cls is PopularityRecommender and not any(c.is_baseline for c in resolved)
            resolved.append(ResolvedCandidate(name, cls, params, is_baseline))
        if not any(c.is_baseline for c in resolved):
            params = self.popularity
            resolved.append(ResolvedCandidate("popularity", PopularityRecommender, params, True))
        names = [c.name for c in resolved]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(
                f"candidate names must be unique, repeated: {duplicates} (set 'name' on each)"
            )
        return resolved


def _train_candidate(
    ctx: TaskContext, config: Config, candidate: ResolvedCandidate, train: TrainingData
) -> tuple[dict[str, Any], FitReport, Path | None]:
    """Fit one candidate (logging every epoch) and save it; return its summary entry."""
    name, params = candidate.name, candidate.params.model_dump(mode="json")
    start_fields = {"candidate": name, "model_type": candidate.cls.model_type, "params": params}
    ctx.logger.info(f"training candidate '{name}'", extra={"fields": start_fields})

    def log_epoch(record: dict[str, Any]) -> None:
        fields = {"candidate": name, **record}
        ctx.logger.info(f"{name} epoch {record['epoch']}", extra={"fields": fields})

    model = candidate.cls(candidate.params)
    report = model.fit(train, on_epoch=log_epoch)
    entry: dict[str, Any] = {
        "model_type": model.model_type,
        "params": params,
        "seed": params.get("seed"),
        "baseline": candidate.is_baseline,
        "predicts_ratings": model.predicts_ratings,
        **report.to_dict(),
        "artifact": None,
        "file": None,
        "sha256": None,
    }
    path = None
    if config.save_model:
        path = ctx.output_path(f"model_{name}{FILE_SUFFIX[config.model_format]}")
        metadata = {
            "model_name": config.model_name,
            "candidate": name,
            "run_id": ctx.run_id,
            "task": ctx.task_name,
        }
        entry["sha256"] = save_model(
            model, path, model_format=config.model_format, metadata=metadata
        )
        entry["artifact"], entry["file"] = f"model_{name}", path.name
    done_fields = {
        "candidate": name,
        "fit_seconds": report.fit_seconds,
        "epochs": len(report.history),
        "best_epoch": report.best_epoch,
        "stopped_early": report.stopped_early,
        "train_rmse": report.final("train_rmse"),
        "val_rmse": report.final("val_rmse"),
    }
    ctx.logger.info(
        f"trained '{name}' in {report.fit_seconds:.2f}s", extra={"fields": json_safe(done_fields)}
    )
    return entry, report, path


def run(ctx: TaskContext) -> TaskResult:
    """Fit every candidate, save its file, and summarise how each fit went."""
    config = ctx.config if isinstance(ctx.config, Config) else Config.model_validate(ctx.config)
    train = load_training_data(ctx.find_input("train_ratings"), ctx.find_input("train_implicit"))
    data_fields = {
        "n_users": train.n_users,
        "n_items": train.n_items,
        "n_ratings": len(train.ratings),
        "implicit_nnz": train.implicit.nnz if train.implicit is not None else 0,
    }
    ctx.logger.info("training data loaded", extra={"fields": data_fields})
    outputs: dict[str, Path] = {}
    metrics: dict[str, Any] = {"n_users": train.n_users, "n_items": train.n_items}
    candidates: dict[str, dict[str, Any]] = {}
    baseline = None
    for candidate in config.resolved_candidates():
        name = candidate.name
        entry, report, path = _train_candidate(ctx, config, candidate, train)
        candidates[name] = entry
        if path is not None:
            outputs[entry["artifact"]] = path
        if candidate.is_baseline:
            baseline = name
        metrics[f"{name}_fit_seconds"] = round(report.fit_seconds, 4)
        metrics[f"{name}_train_rmse"] = json_safe(report.final("train_rmse"))
        metrics[f"{name}_val_rmse"] = json_safe(report.final("val_rmse"))
    summary = {
        "model_name": config.model_name,
        "model_format": config.model_format,
        "baseline": baseline,
        "candidate_order": list(candidates),  # the JSON writer sorts keys; this keeps YAML order
        "candidates": candidates,
    }
    summary_path = ctx.output_path("training_summary.json")
    write_json_atomic(summary_path, json_safe(summary))
    outputs["training_summary"] = summary_path
    return TaskResult(
        outputs=outputs,
        metrics=metrics,
        metadata={"candidates": list(candidates), "baseline": baseline},
    )
