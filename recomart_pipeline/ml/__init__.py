"""Recommender models and ranking/rating metrics (numpy/scipy/numba, no dagster).

The public surface: ``Recommender`` (one interface for every model type), ``TrainingData`` /
``Ratings`` (what models train on), the model-type registry and versioned persistence.
"""

from recomart_pipeline.ml.base import FitReport, Ratings, Recommender, TrainingData
from recomart_pipeline.ml.persistence import (
    ModelFormatError,
    ModelIntegrityError,
    load_model,
    read_header,
    save_model,
)
from recomart_pipeline.ml.registry import MODEL_TYPES, create_model, get_model_class, register_model

__all__ = [
    "MODEL_TYPES",
    "FitReport",
    "ModelFormatError",
    "ModelIntegrityError",
    "Ratings",
    "Recommender",
    "TrainingData",
    "create_model",
    "get_model_class",
    "load_model",
    "read_header",
    "register_model",
    "save_model",
]
