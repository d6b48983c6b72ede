"""RecoMart Pipeline: a YAML-driven recommender pipeline on Dagster.

``PipelineConfig`` and ``TaskDependencyGraph`` are pure Python; the Dagster-backed
``execute_pipeline_programmatically`` is imported on first use so that loading or
validating a config never pays for importing dagster.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from recomart_pipeline.config import ConfigError, PipelineConfig
from recomart_pipeline.graph import TaskDependencyGraph

if TYPE_CHECKING:
    from recomart_pipeline.orchestration.execution import execute_pipeline_programmatically

__all__ = [
    "ConfigError",
    "PipelineConfig",
    "TaskDependencyGraph",
    "execute_pipeline_programmatically",
]


def __getattr__(name: str) -> Any:
    if name == "execute_pipeline_programmatically":
        from recomart_pipeline.orchestration.execution import execute_pipeline_programmatically

        return execute_pipeline_programmatically
    raise AttributeError(f"module 'recomart_pipeline' has no attribute {name!r}")
