"""Model types by name, so configs, persistence and serving never need an if-ladder.

A new model type is a ``Recommender`` subclass passed to ``register_model``; from then on
``model_type: <its name>`` works in training candidates and its files load everywhere.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from recomart_pipeline.ml.als import ALSRecommender
from recomart_pipeline.ml.base import Recommender
from recomart_pipeline.ml.popularity import PopularityRecommender
from recomart_pipeline.ml.svd import SVDRecommender

MODEL_TYPES: dict[str, type[Recommender]] = {}
# Short names accepted wherever a model type is expected ("svd" for the guide's long name).
MODEL_ALIASES: dict[str, str] = {}


def register_model(cls: type[Recommender]) -> type[Recommender]:
    """Make ``cls`` available under its ``model_type`` (and ``short_name`` as an alias)."""
    MODEL_TYPES[cls.model_type] = cls
    if cls.short_name != cls.model_type:
        MODEL_ALIASES[cls.short_name] = cls.model_type
    return cls


for _cls in (SVDRecommender, PopularityRecommender, ALSRecommender):
    register_model(_cls)


def get_model_class(model_type: str) -> type[Recommender]:
    """The class registered for ``model_type`` (or its alias); ValueError lists the choices."""
    name = MODEL_ALIASES.get(model_type, model_type)
    try:
        return MODEL_TYPES[name]
    except KeyError:
        choices = sorted(MODEL_TYPES)
        close = difflib.get_close_matches(model_type, [*choices, *MODEL_ALIASES], n=1)
        suggestion = f"; did you mean '{close[0]}'?" if close else ""
        raise ValueError(
            f"unknown model_type '{model_type}' (known: {', '.join(choices)}){suggestion}"
        ) from None


def create_model(
    model_type: str, params: BaseModel | Mapping[str, Any] | None = None
) -> Recommender:
    """A new, unfitted model of ``model_type`` with validated ``params``."""
    return get_model_class(model_type)(params)
