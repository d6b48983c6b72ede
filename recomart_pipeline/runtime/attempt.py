"""One attempt of a task function, in whichever process runs it: resolve its declared inputs,
build its typed context, call it and check what it hands back against its spec.

Shared by the in-process path (runtime.runner) and the isolated child (runtime.isolation),
so both enforce the same contract.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from recomart_pipeline.contract.errors import TaskError, UpstreamArtifactError
from recomart_pipeline.contract.task import (
    CheckOutcome,
    Input,
    PreviousRun,
    ResolvedInput,
    SharedStore,
    TaskContext,
    TaskResult,
    TaskSpec,
)
from recomart_pipeline.runtime.artifacts import Checkpoint

if TYPE_CHECKING:
    from recomart_pipeline.config import PipelineConfig


@dataclass(frozen=True)
class AttemptRequest:
    """Everything one attempt needs besides the config; picklable for a child process."""

    task: str
    run_id: str
    attempt: int
    partition_key: str | None
    upstream: dict[str, Checkpoint]
    staging: Path
    storage_root: Path
    previous: Checkpoint | None
    object_store: SharedStore | None = None


def _declares(declared: Input[Any], artifact: str) -> bool:
    """Whether ``declared`` is the upstream artifact named ``artifact`` (a family: a match)."""
    if declared.is_family:
        return fnmatch.fnmatchcase(artifact, declared.name)
    return artifact == declared.name


def _matching(declared: Input[Any], checkpoint: Checkpoint) -> dict[str, Path]:
    return {
        name: record.path
        for name, record in sorted(checkpoint.artifacts.items())
        if _declares(declared, name)
    }


def reads(spec: TaskSpec) -> Callable[[str], bool]:
    """Whether a task of ``spec`` can open an upstream artifact of a given name: only its
    declared inputs reach its context, so only those need verifying before it starts."""
    return lambda artifact: any(_declares(declared, artifact) for declared in spec.inputs)


def resolve_inputs(
    task: str, spec: TaskSpec, upstream: dict[str, Checkpoint]
) -> dict[str, list[ResolvedInput]]:
    """Each declared input's files among the task's (already hash-checked) upstream
    checkpoints; a required input nobody made fails here, before the task starts."""
    resolved: dict[str, list[ResolvedInput]] = {}
    for declared in spec.inputs:
        entries = [
            ResolvedInput(producer, files)
            for producer, checkpoint in upstream.items()
            if (files := _matching(declared, checkpoint))
        ]
        if not entries and not (declared.optional or declared.is_family):
            raise UpstreamArtifactError(
                f"task '{task}' needs input '{declared.name}', but its upstream "
                f"({', '.join(upstream) or 'none'}) published none",
                hint="re-materialize the task that makes it",
            )
        if len(entries) > 1 and not declared.many:
            raise UpstreamArtifactError(
                f"task '{task}' reads one '{declared.name}' but got it from "
                f"{', '.join(e.producer for e in entries)}"
            )
        resolved[declared.name] = entries
    return resolved


def previous_run(checkpoint: Checkpoint | None) -> PreviousRun | None:
    if checkpoint is None:
        return None
    return PreviousRun(
        run_id=checkpoint.run_id,
        outputs={name: record.path for name, record in checkpoint.artifacts.items()},
        sha256={name: record.sha256 for name, record in checkpoint.artifacts.items()},
        metrics=checkpoint.metrics,
        metadata=checkpoint.metadata,
    )


def _normalise(task: str, value: Any) -> TaskResult:
    if value is None:
        return TaskResult()
    if isinstance(value, TaskResult):
        return value
    if isinstance(value, dict):
        return TaskResult(**value)
    raise TaskError(
        f"task '{task}' returned {type(value).__name__}; expected TaskResult, dict or None",
        hint="return TaskResult(outputs={...}, metrics={...})",
    )


def check_outputs(task: str, spec: TaskSpec, result: TaskResult) -> None:
    """What the task wrote must be what it declared: no undeclared output, every required one
    present, every JSON document valid for its model."""
    for name, path in result.outputs.items():
        declared = spec.output_for(name)
        if declared is None:
            known = ", ".join(o.name for o in spec.outputs) or "none"
            raise TaskError(
                f"task '{task}' wrote an undeclared output '{name}' (declared: {known})",
                hint="declare it in the task's outputs (TaskSpec / @pipeline_task(outputs=...))",
            )
        if declared.document is not None:
            try:
                declared.document.model_validate_json(Path(path).read_bytes())
            except ValidationError as exc:
                first = exc.errors()[0]
                raise TaskError(
                    f"task '{task}' wrote '{name}' that is not a valid "
                    f"{declared.document.__name__}: {first['loc']} {first['msg']}"
                ) from None
    missing = [
        o.name
        for o in spec.outputs
        if not (o.optional or o.is_family) and o.name not in result.outputs
    ]
    if missing:
        raise TaskError(f"task '{task}' did not write its declared output(s) {missing}")


def _complete_checks(spec: TaskSpec, config: Any, result: TaskResult) -> None:
    """Every declared check must be answered; an unanswered one counts as failed."""
    reported = {c.name for c in result.checks}
    for check in spec.declared_checks(config):
        if check.name not in reported:
            result.checks.append(
                CheckOutcome(
                    check.name, False, check.severity, "the task did not report this check"
                )
            )


def task_context(
    spec: TaskSpec,
    task: str,
    run_id: str,
    config: BaseModel,
    upstream: dict[str, Checkpoint],
    staging: Path,
    project_root: Path,
    storage_root: Path,
    logger: logging.Logger,
    **extra: Any,
) -> TaskContext[Any]:
    """The context of one attempt, its declared inputs resolved from ``upstream``; ``extra``
    sets the optional fields (attempt, partition_key, pipeline_name, previous, object_store)."""
    return TaskContext(
        task_name=task,
        run_id=run_id,
        config=config,
        output_dir=staging,
        project_root=project_root,
        storage_root=storage_root,
        logger=logger,
        resolved=resolve_inputs(task, spec, upstream),
        **extra,
    )


def execute_attempt(
    config: PipelineConfig, request: AttemptRequest, logger: logging.Logger
) -> TaskResult:
    """Call the task function with its context and check its result against its spec."""
    task = request.task
    spec = config.specs[task]
    task_config = config.task_config(task)
    ctx = task_context(
        spec,
        task,
        request.run_id,
        task_config,
        request.upstream,
        request.staging,
        config.project_root,
        request.storage_root,
        logger,
        attempt=request.attempt,
        partition_key=request.partition_key,
        pipeline_name=config.name,
        previous=previous_run(request.previous),
        object_store=request.object_store,
        engine=config.engine_of(task),
        engine_options=(
            config.settings.execution.spark.session_options()
            if config.engine_of(task) == "spark"
            else {}
        ),
    )
    result = _normalise(task, spec.function()(ctx))
    check_outputs(task, spec, result)
    _complete_checks(spec, task_config, result)
    return result
