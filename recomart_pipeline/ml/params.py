"""Every model type's parameters and names, without the models (pydantic only).

The training task's config is validated against these when a config is loaded, so that
needs neither numpy nor numba; ``ml.models`` ties each model class to its entry here.
"""

import difflib
import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Self, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class SVDHyperParams(BaseModel):
    """The model-specific hyper-parameters (defaults are Surprise's); the training task's
    ``svd:`` block. Seed, validation and early stopping come from task-wide settings."""

    model_config = ConfigDict(extra="forbid")

    n_factors: int = Field(100, ge=1, description="Number of latent factors.")
    n_epochs: int = Field(20, ge=1, description="Maximum number of passes over the ratings.")
    learning_rate: float = Field(0.005, gt=0, description="SGD step size for biases and factors.")
    regularization: float = Field(
        0.02, ge=0, description="L2 penalty on biases and factors (Surprise's reg_all)."
    )
    init_std: float = Field(
        0.1, ge=0, description="Standard deviation of the normal initialisation of the factors."
    )


class SVDParams(SVDHyperParams):
    """Everything an SVD fit depends on: hyper-parameters plus seed, biases, validation."""

    biased: bool = Field(
        True, description="Learn the global mean and user/item biases (Surprise's 'biased')."
    )
    seed: int = Field(0, description="Seed of the initialisation, validation split and shuffles.")
    validation_fraction: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Share of the ratings held out to track validation RMSE and stop early.",
    )
    patience: int = Field(
        3,
        ge=0,
        description="Stop after this many epochs without validation improvement (0: never).",
    )
    min_delta: float = Field(
        1e-4, ge=0, description="Smallest drop of validation RMSE that counts as an improvement."
    )
    refit_after_early_stopping: bool = Field(
        True,
        description="When early stopping chose the number of epochs, refit on every rating "
        "(validation split included) for that many epochs with the same seed.",
    )


class ALSHyperParams(BaseModel):
    """Hyper-parameters of confidence-weighted ALS (the training task's ``als:`` block).

    The defaults (few factors, strong regularisation, alpha 1) were the best of a small grid
    on the bundled sample and on generated shops, where popularity is a strong baseline;
    larger catalogues usually want more factors.
    """

    model_config = ConfigDict(extra="forbid")

    n_factors: int = Field(16, ge=1, description="Number of latent factors.")
    n_iterations: int = Field(15, ge=1, description="Alternating sweeps (users then items).")
    regularization: float = Field(5.0, ge=0, description="L2 penalty λ on all factors.")
    alpha: float = Field(
        1.0,
        gt=0,
        description="Confidence scale: c = 1 + alpha · m (linear) or 1 + alpha · log(1 + m/eps) "
        "(log), m the stored interaction value (after BM25 when weighting: bm25).",
    )
    confidence: Literal["linear", "log"] = Field(
        "linear",
        description="How a stored value becomes a confidence. linear: 1 + alpha·m (Hu et al.'s "
        "default). log: 1 + alpha·log(1 + m/eps), which damps heavy repeat counts (a user "
        "who viewed an item 200 times is not 200x as sure); helps when event weights or "
        "counts are long-tailed.",
    )
    epsilon: float = Field(
        1.0, gt=0, description="The eps of confidence: log (the count that doubles the log)."
    )
    weighting: Literal["none", "bm25"] = Field(
        "none",
        description="Reweight the interaction matrix before the confidence: none, or bm25 "
        "(Okapi BM25 over each item's users, as implicit's bm25_weight): damps very active "
        "users and very popular items; helps when popularity dominates the factors.",
    )
    bm25_k1: float = Field(100.0, ge=0, description="BM25 term saturation (weighting: bm25).")
    bm25_b: float = Field(
        0.8, ge=0, le=1, description="BM25 length normalisation (weighting: bm25)."
    )
    cg_steps: int = Field(3, ge=1, description="Conjugate-gradient steps per row and sweep.")
    init_std: float = Field(0.01, gt=0, description="Standard deviation of the initial factors.")


class ALSParams(ALSHyperParams):
    """Everything an ALS fit depends on: hyper-parameters plus the seed."""

    seed: int = Field(0, description="Seed of the factor initialisation.")


class PopularityParams(BaseModel):
    """How popularity is counted and how strongly item means are shrunk."""

    model_config = ConfigDict(extra="forbid")

    count: Literal["interactions", "confidence"] = Field(
        "interactions",
        description="Rank by number of interacting users ('interactions') or by summed "
        "implicit confidence ('confidence').",
    )
    damping: float = Field(
        5.0, ge=0, description="Pseudo-count shrinking each item's mean rating to the global mean."
    )


class BiasParams(BaseModel):
    """The bias-only rating baseline (global mean + regularised user/item biases); the
    training task's ``bias:`` block. Defaults are Surprise's ALS baseline estimates."""

    model_config = ConfigDict(extra="forbid")

    n_iterations: int = Field(
        10, ge=1, description="Alternating sweeps (item biases, then user biases)."
    )
    user_regularization: float = Field(
        15.0, ge=0, description="Pseudo-count shrinking each user bias towards 0."
    )
    item_regularization: float = Field(
        10.0, ge=0, description="Pseudo-count shrinking each item bias towards 0."
    )


class EASEParams(BaseModel):
    """The closed-form item-item model (the training task's ``ease:`` block).

    Its fit solves an ``n_items x n_items`` system in float32: time grows with the cube and
    memory with the square of the catalogue (one n x n float32 matrix at the fit's peak,
    4·n² bytes: 1.6 GB at 20,000 items; the saved model is as large), so a catalogue above
    ``max_items`` skips the candidate with that reason instead of running the machine out
    of memory.
    """

    model_config = ConfigDict(extra="forbid")

    regularization: float = Field(
        200.0,
        gt=0,
        description="L2 penalty λ on the item-item weights (EASE's lambda); larger values "
        "lean towards popular items. Typical range 10-5000; grows with the data.",
    )
    max_items: int = Field(
        20_000,
        ge=1,
        description="Largest catalogue EASE is fitted on; above it the candidate is skipped "
        "with its reason (item-kNN scales to large catalogues).",
    )
    binary: bool = Field(
        True,
        description="Learn from which items a user interacted with (true) or from the "
        "summed implicit confidences (false).",
    )


class ItemKNNParams(BaseModel):
    """Item-based nearest neighbours (the training task's ``item_knn:`` block): each item
    keeps its ``k`` most similar items, and a user's score for an item sums the similarities
    to the items the user interacted with."""

    model_config = ConfigDict(extra="forbid")

    k: int = Field(200, ge=1, description="Neighbours kept per item.")
    weighting: Literal["cosine", "bm25", "tfidf"] = Field(
        "cosine",
        description="How interactions are weighted before item-item dot products: cosine "
        "(unit-length item vectors), bm25 (Okapi BM25: damps heavy users and popular items), "
        "tfidf (sqrt(count)·idf).",
    )
    shrinkage: Annotated[float, Field(ge=0)] | Literal["auto"] = Field(
        "auto",
        description="Cosine shrinkage h (weighting: cosine): similarity x_i·x_j / "
        "(‖x_i‖‖x_j‖ + h), so items seen by few users (a pair sharing one user) are not "
        "perfectly similar by chance; 0 is plain cosine. auto: h = 0.1 × users × items / "
        "interactions of the training matrix (0.1 / its density, counting users and items "
        "with an interaction), fixed at fit time and kept in the model: sparse long-tailed "
        "catalogues, where one-user coincidences crowd the top k, get a strong pull (about "
        "200 at 5M events), dense data where every item has tens of users almost none (under "
        "1 on MovieLens-shaped data, where a fixed 100 cost 10 %). A number: that h.",
    )
    bm25_k1: float = Field(1.2, ge=0, description="BM25 term saturation (weighting: bm25).")
    bm25_b: float = Field(
        0.75, ge=0, le=1, description="BM25 length normalisation (weighting: bm25)."
    )
    binary: bool = Field(
        True,
        description="Use which items a user interacted with (true) or the summed implicit "
        "confidences (false), both for the similarities and for scoring.",
    )


@dataclass(frozen=True)
class ModelTypeInfo:
    """What a config needs to know of a model type: its names, its parameters and whether
    it is the non-personalised baseline every evaluation compares against."""

    model_type: str
    short_name: str
    params: type[BaseModel]
    baseline: bool = False


MODEL_TYPE_INFO: dict[str, ModelTypeInfo] = {}
# Short names accepted wherever a model type is expected ("svd" for the guide's long name).
MODEL_ALIASES: dict[str, str] = {}


def register_model_type(info: ModelTypeInfo) -> ModelTypeInfo:
    MODEL_TYPE_INFO[info.model_type] = info
    if info.short_name != info.model_type:
        MODEL_ALIASES[info.short_name] = info.model_type
    return info


SVD = register_model_type(ModelTypeInfo("collaborative_filtering_svd", "svd", SVDParams))
ALS = register_model_type(ModelTypeInfo("als", "als", ALSParams))
BIAS = register_model_type(ModelTypeInfo("baseline_bias", "bias", BiasParams))
EASE = register_model_type(ModelTypeInfo("ease", "ease", EASEParams))
ITEM_KNN = register_model_type(ModelTypeInfo("item_knn", "item_knn", ItemKNNParams))
POPULARITY = register_model_type(
    ModelTypeInfo("popularity", "popularity", PopularityParams, baseline=True)
)


def model_type_info(model_type: str) -> ModelTypeInfo:
    """The entry for ``model_type`` (or its alias); ValueError lists the choices."""
    name = MODEL_ALIASES.get(model_type, model_type)
    try:
        return MODEL_TYPE_INFO[name]
    except KeyError:
        choices = sorted(MODEL_TYPE_INFO)
        close = difflib.get_close_matches(model_type, [*choices, *MODEL_ALIASES], n=1)
        suggestion = f"; did you mean '{close[0]}'?" if close else ""
        raise ValueError(
            f"unknown model_type '{model_type}' (known: {', '.join(choices)}){suggestion}"
        ) from None


# Metric names, here so configs can check a selection metric without importing numpy.
RANKING_METRICS: tuple[str, ...] = ("precision", "recall", "ndcg", "map", "hit_rate", "coverage")
RATING_METRICS: tuple[str, ...] = ("rmse", "mae")
LOWER_IS_BETTER: frozenset[str] = frozenset(RATING_METRICS)


def metric_names(k: int) -> list[str]:
    """Every metric key evaluation reports for cut-off ``k`` (``rmse``, ``ndcg_at_10``, ...)."""
    return [*RATING_METRICS, *(f"{name}_at_{k}" for name in RANKING_METRICS)]


def check_metrics(where: str, names: list[str], k: int) -> None:
    """Refuse (ValueError naming ``where`` and the valid names) metrics not measured at ``k``."""
    known = metric_names(k)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(
            f"{where}: unknown metric(s) {unknown}; with k={k} the metrics are {', '.join(known)}"
        )


# -- hyper-parameter search spaces (the training task's ``tuning:`` section) ----------------

# Parameters that are not hyper-parameters of a model: reproducibility, resource limits and
# the early-stopping machinery. A search over them would tune luck or memory, not the model.
NOT_TUNABLE: frozenset[str] = frozenset(
    {
        "seed",
        "max_items",
        "validation_fraction",
        "patience",
        "min_delta",
        "refit_after_early_stopping",
    }
)


class IntRange(BaseModel):
    """Whole numbers from ``low`` to ``high`` (both included), optionally on a log scale."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["int"]
    low: int
    high: int
    log: bool = Field(False, description="Sample on a log scale (low must be >= 1).")

    @model_validator(mode="after")
    def _sane(self) -> Self:
        _check_range(self.low, self.high, self.log)
        return self


class FloatRange(BaseModel):
    """Real numbers from ``low`` to ``high``, optionally on a log scale (for penalties and
    scales spanning orders of magnitude: regularization 0.01-100)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["float"]
    low: float
    high: float
    log: bool = Field(False, description="Sample on a log scale (low must be > 0).")

    @model_validator(mode="after")
    def _sane(self) -> Self:
        _check_range(self.low, self.high, self.log)
        return self


class Choice(BaseModel):
    """One of a list of values (a weighting scheme, a flag)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["categorical"]
    choices: list[str | bool | int | float] = Field(min_length=1)

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        seen = [repr(c) for c in self.choices]
        if len(set(seen)) != len(seen):
            raise ValueError(f"choices must be distinct, got {self.choices}")
        return self


SearchDimension = Annotated[IntRange | FloatRange | Choice, Field(discriminator="type")]


def _check_range(low: float, high: float, log: bool) -> None:
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"low and high must be finite numbers, got {low} and {high}")
    if low >= high:
        raise ValueError(
            f"low ({low}) must be below high ({high}); to fix a value, set it in "
            "the model's block instead"
        )
    if log and low <= 0:
        raise ValueError(f"a log scale needs low > 0, got {low}")


def _number_type(annotation: Any) -> Any:
    """``int`` or ``float`` if a field takes numbers, alone or besides a named setting
    (item_knn's ``shrinkage: float | "auto"``: a range searches its numbers), else None."""
    if get_origin(annotation) is Annotated:  # a constrained number: Annotated[float, ...]
        annotation = get_args(annotation)[0]
    if annotation in (int, float):
        return annotation
    numbers = [_number_type(arg) for arg in get_args(annotation)]
    numbers = [number for number in numbers if number is not None]
    return numbers[0] if len(numbers) == 1 else None


def tunable_names(info: ModelTypeInfo) -> list[str]:
    """The hyper-parameters of ``info``'s model type a search may vary, sorted."""
    return sorted(name for name in info.params.model_fields if name not in NOT_TUNABLE)


def check_search_space(info: ModelTypeInfo, base: dict[str, Any], space: dict[str, Any]) -> None:
    """ValueError naming the offending key unless every dimension of ``space`` is a
    hyper-parameter of the model type whose values (``low``, ``high``, every choice) are
    valid for it on top of the candidate's ``base`` parameters."""
    tunable = tunable_names(info)
    for name, dimension in space.items():
        if name not in tunable:
            raise ValueError(
                f"'{name}' is not a hyper-parameter of {info.model_type} "
                f"(valid names: {', '.join(tunable)})"
            )
        annotation = _number_type(info.params.model_fields[name].annotation)
        if isinstance(dimension, FloatRange) and annotation is int:
            raise ValueError(f"'{name}' of {info.model_type} is a whole number: use type: int")
        if isinstance(dimension, (IntRange, FloatRange)) and annotation is None:
            raise ValueError(
                f"'{name}' of {info.model_type} is not a number: use type: categorical with "
                "its choices"
            )
        values = (
            dimension.choices if isinstance(dimension, Choice) else [dimension.low, dimension.high]
        )
        for value in values:
            try:
                info.params.model_validate({**base, name: value})
            except ValidationError as exc:
                problem = "; ".join(e["msg"] for e in exc.errors())
                raise ValueError(
                    f"'{name}' of {info.model_type} cannot be {value!r}: {problem}"
                ) from None
