"""Dagster-free task runtime: context, artifacts, error classes, execution."""

from recomart_pipeline.runtime.context import (
    CheckOutcome,
    CheckSpec,
    TaskContext,
    TaskResult,
)
from recomart_pipeline.runtime.errors import TaskError, classify_exception
from recomart_pipeline.runtime.registry import pipeline_task

__all__ = [
    "CheckOutcome",
    "CheckSpec",
    "TaskContext",
    "TaskError",
    "TaskResult",
    "classify_exception",
    "pipeline_task",
]
