"""Model classes by type name, so configs, persistence and serving never need an if-ladder.

A new model type is a ``Recommender`` subclass passed to ``register_model``; from then on
``model_type: <its name>`` works in training candidates and its files load everywhere. Its
names and parameters are registered in ``ml.params`` too, where config validation reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from recomart_pipeline.ml.als import ALSRecommender
from recomart_pipeline.ml.base import Recommender
from recomart_pipeline.ml.bias import BiasRecommender
from recomart_pipeline.ml.ease import EASERecommender
from recomart_pipeline.ml.knn import ItemKNNRecommender
from recomart_pipeline.ml.params import ModelTypeInfo, model_type_info, register_model_type
from recomart_pipeline.ml.popularity import PopularityRecommender
from recomart_pipeline.ml.svd import SVDRecommender

MODEL_TYPES: dict[str, type[Recommender]] = {}


def register_model(cls: type[Recommender], *, baseline: bool = False) -> type[Recommender]:
    """Make ``cls`` available under its ``model_type`` (and ``short_name`` as an alias)."""
    register_model_type(ModelTypeInfo(cls.model_type, cls.short_name, cls.Params, baseline))
    MODEL_TYPES[cls.model_type] = cls
    return cls


register_model(SVDRecommender)
register_model(ALSRecommender)
register_model(BiasRecommender)
register_model(EASERecommender)
register_model(ItemKNNRecommender)
register_model(PopularityRecommender, baseline=True)


def get_model_class(model_type: str) -> type[Recommender]:
    """The class registered for ``model_type`` (or its alias); ValueError lists the choices."""
    return MODEL_TYPES[model_type_info(model_type).model_type]


def create_model(
    model_type: str, params: BaseModel | Mapping[str, Any] | None = None
) -> Recommender:
    """A new, unfitted model of ``model_type`` with validated ``params``."""
    return get_model_class(model_type)(params)
