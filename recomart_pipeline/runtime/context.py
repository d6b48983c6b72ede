"""The contract between the runtime and a task function.

A task is ``run(ctx: TaskContext) -> TaskResult``; it never imports dagster. It reads its
dependencies' outputs through ``ctx.input(...)``, writes files under ``ctx.output_path(...)``
and returns which of them are outputs, plus metrics and check outcomes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel

from recomart_pipeline.runtime.artifacts import Checkpoint
from recomart_pipeline.runtime.errors import UpstreamArtifactError
from recomart_pipeline.runtime.object_store import ObjectStore

Severity = Literal["ERROR", "WARN"]


@dataclass(frozen=True)
class CheckSpec:
    """A check a task declares before it runs, so the UI can show it (and block on it)."""

    name: str
    description: str
    severity: Severity = "ERROR"

    @property
    def blocking(self) -> bool:
        return self.severity == "ERROR"


@dataclass(frozen=True)
class CheckOutcome:
    """The result of one declared check."""

    name: str
    passed: bool
    severity: Severity = "ERROR"
    description: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class TaskResult:
    """What a task hands back: output files (inside its output dir), metrics, checks."""

    outputs: dict[str, Path] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    checks: list[CheckOutcome] = field(default_factory=list)


@dataclass
class TaskContext:
    """Everything a task may use; built by the runtime for each attempt."""

    task_name: str
    run_id: str
    config: BaseModel | dict[str, Any]
    upstream: dict[str, Checkpoint]
    output_dir: Path
    project_root: Path
    storage_root: Path
    logger: logging.Logger
    attempt: int = 1
    partition_key: str | None = None
    pipeline_name: str = "recomart_pipeline"
    previous: Checkpoint | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # The shared copy of storage_root when storage is an object store (see object_store).
    object_store: ObjectStore | None = None

    def input(self, task: str, artifact: str) -> Path:
        """Path of ``artifact`` written by dependency ``task`` (hash already verified)."""
        try:
            checkpoint = self.upstream[task]
        except KeyError:
            known = ", ".join(sorted(self.upstream)) or "none"
            raise UpstreamArtifactError(
                f"task '{self.task_name}' reads from '{task}', which is not among its "
                f"dependencies ({known})",
                hint=f"add '{task}' to tasks.{self.task_name}.depends_on",
            ) from None
        return checkpoint.path(artifact)

    def find_input(self, artifact: str) -> Path:
        """Path of ``artifact`` from whichever dependency produced it (first match)."""
        for checkpoint in self.upstream.values():
            if artifact in checkpoint.artifacts:
                return checkpoint.artifacts[artifact].path
        known = sorted({a for c in self.upstream.values() for a in c.artifacts})
        raise UpstreamArtifactError(
            f"task '{self.task_name}' needs an input named '{artifact}', but none of its "
            f"dependencies ({', '.join(sorted(self.upstream)) or 'none'}) produced one "
            f"(available: {', '.join(known) or 'none'})",
            hint=f"make tasks.{self.task_name}.depends_on include the task that produces it",
        )

    def output_path(self, name: str) -> Path:
        """A path inside this attempt's private output dir; refuses names that escape it."""
        relative = PurePosixPath(name)
        if relative.is_absolute() or ".." in relative.parts:
            raise ValueError(f"output name {name!r} must be a relative path inside the output dir")
        path = self.output_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def resolve_project_path(self, value: str | Path) -> Path:
        """Resolve a path from the config: relative paths are relative to the project root."""
        path = Path(value)
        return path if path.is_absolute() else self.project_root / path
