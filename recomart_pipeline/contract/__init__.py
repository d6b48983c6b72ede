"""The task contract (a leaf: pydantic and the standard library only).

What every layer agrees on: task specs with declared inputs and outputs, the typed task
context and result, error classes, atomic files, and the JSON documents tasks exchange.
"""

from recomart_pipeline.contract.errors import TaskError, classify_exception
from recomart_pipeline.contract.task import (
    CheckOutcome,
    CheckSpec,
    FreeConfig,
    Input,
    Output,
    TaskContext,
    TaskResult,
    TaskSpec,
    pipeline_task,
)

__all__ = [
    "CheckOutcome",
    "CheckSpec",
    "FreeConfig",
    "Input",
    "Output",
    "TaskContext",
    "TaskError",
    "TaskResult",
    "TaskSpec",
    "classify_exception",
    "pipeline_task",
]
