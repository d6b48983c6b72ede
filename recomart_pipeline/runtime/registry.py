"""Finding a task's code: built-ins by name, user functions by ``module:function``.

A built-in task is a module in ``recomart_pipeline.tasks`` exposing ``Config`` (a pydantic
model for its ``config:`` block), ``run(ctx)`` and, optionally, ``declare_checks(config)``.
A user task is any function ``fn(ctx)``; ``@pipeline_task(config=Model)`` gives it a schema.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from recomart_pipeline.runtime.context import CheckSpec, TaskContext, TaskResult

TaskFunction = Callable[[TaskContext], "TaskResult | dict[str, Any] | None"]
ChecksFunction = Callable[[Any], list[CheckSpec]]
SourcesFunction = Callable[[Any], list[str]]

BUILTIN_TASKS: dict[str, str] = {
    "ingestion": "recomart_pipeline.tasks.ingestion",
    "validation": "recomart_pipeline.tasks.validation",
    "preparation": "recomart_pipeline.tasks.preparation",
    "features": "recomart_pipeline.tasks.features",
    "training": "recomart_pipeline.tasks.training",
    "evaluation": "recomart_pipeline.tasks.evaluation",
    "inference": "recomart_pipeline.tasks.inference",
    "report": "recomart_pipeline.tasks.report",
    "deploy": "recomart_pipeline.tasks.deploy",
    "monitoring": "recomart_pipeline.tasks.monitoring",
}


class TaskLookupError(LookupError):
    """The YAML names a task whose code cannot be found; the message says why."""


@dataclass(frozen=True)
class TaskDefinition:
    """A resolved task: the function to call and the schema of its ``config:`` block."""

    reference: str
    run: TaskFunction
    config_model: type[BaseModel] | None
    declare_checks: ChecksFunction | None = None
    description: str = ""
    watched_sources: SourcesFunction | None = None

    def checks(self, config: Any) -> list[CheckSpec]:
        return list(self.declare_checks(config)) if self.declare_checks else []

    def sources(self, config: Any) -> list[str]:
        """External data this task reads (paths, globs, URLs): what a data sensor watches."""
        return list(self.watched_sources(config)) if self.watched_sources else []


def pipeline_task(
    config: type[BaseModel] | None = None,
    checks: ChecksFunction | None = None,
    sources: SourcesFunction | None = None,
) -> Callable[[TaskFunction], TaskFunction]:
    """Attach a config schema, declared checks and watched data sources to a user task."""

    def attach(fn: TaskFunction) -> TaskFunction:
        fn.config_model = config  # type: ignore[attr-defined]
        fn.declare_checks = checks  # type: ignore[attr-defined]
        fn.watched_sources = sources  # type: ignore[attr-defined]
        return fn

    return attach


def _first_doc_line(obj: object) -> str:
    doc = (getattr(obj, "__doc__", None) or "").strip()
    return doc.splitlines()[0] if doc else ""


def resolve_builtin(name: str) -> TaskDefinition:
    module_name = BUILTIN_TASKS.get(name)
    if module_name is None:
        raise TaskLookupError(f"'{name}' is not a built-in task")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise TaskLookupError(
            f"built-in task '{name}' is not available in this version ({exc})"
        ) from exc
    return TaskDefinition(
        reference=f"builtin:{name}",
        run=module.run,
        config_model=module.Config,
        declare_checks=getattr(module, "declare_checks", None),
        description=_first_doc_line(module),
        watched_sources=getattr(module, "watched_sources", None),
    )


def resolve_callable(reference: str) -> TaskDefinition:
    module_name, sep, attr = reference.partition(":")
    if not sep or not module_name or not attr:
        raise TaskLookupError(f"callable {reference!r} must look like 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TaskLookupError(f"cannot import module '{module_name}': {exc}") from exc
    fn = getattr(module, attr, None)
    if fn is None or not callable(fn):
        raise TaskLookupError(f"module '{module_name}' has no function '{attr}'")
    return TaskDefinition(
        reference=reference,
        run=fn,
        config_model=getattr(fn, "config_model", None),
        declare_checks=getattr(fn, "declare_checks", None),
        description=_first_doc_line(fn),
        watched_sources=getattr(fn, "watched_sources", None),
    )
