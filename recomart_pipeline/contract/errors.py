"""Task error classes.

Every exception a task raises is mapped to one error class name. The retry policy's
``retry_on_errors`` / ``no_retry_on`` lists speak these names, so a task author raises
e.g. ``SchemaError`` and the orchestration layer decides whether another attempt can help.
"""

from __future__ import annotations

import errno
from typing import Literal, get_args


class TaskError(Exception):
    """Base class of errors a task raises on purpose; ``error_class`` names it for retries."""

    error_class = "task_error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base} (hint: {self.hint})" if self.hint else base


class TaskTimeoutError(TaskError):
    error_class = "timeout"


class SourceConnectionError(TaskError):
    error_class = "connection_error"


class SourceNotFoundError(TaskError):
    error_class = "file_not_found"


class SchemaError(TaskError):
    error_class = "schema_error"


class DataValidationError(TaskError):
    error_class = "validation_error"


class UpstreamArtifactError(TaskError):
    """An upstream checkpoint is missing or its content hash no longer matches."""

    error_class = "upstream_artifact_error"


class DiskFullError(TaskError):
    error_class = "disk_full"


class QualityGateError(TaskError):
    error_class = "quality_gate_failed"


class TaskCrashedError(TaskError):
    """The task's process died without reporting (killed by a signal, segfault, OOM killer)."""

    error_class = "crashed"


ErrorClass = Literal[
    "timeout",
    "connection_error",
    "memory_error",
    "file_not_found",
    "schema_error",
    "validation_error",
    "upstream_artifact_error",
    "disk_full",
    "quality_gate_failed",
    "crashed",
    "task_error",
    "unexpected_error",
]
ERROR_CLASSES: tuple[str, ...] = get_args(ErrorClass)


def classify_exception(exc: BaseException) -> str:
    """Map any exception to an error class name (builtin exceptions included)."""
    if isinstance(exc, TaskError):
        return exc.error_class
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, FileNotFoundError):
        return "file_not_found"
    if isinstance(exc, MemoryError):
        return "memory_error"
    if isinstance(exc, ConnectionError):
        return "connection_error"
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "disk_full"
    if isinstance(exc, OSError) and exc.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH):
        return "connection_error"
    return "unexpected_error"
