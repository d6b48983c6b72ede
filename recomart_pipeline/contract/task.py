"""The task contract: what a task declares, what it is given, and what it hands back.

A task is a ``TaskSpec``: its config model, the inputs it reads from its dependencies, the
outputs it writes, the checks it answers and the function that runs it. Because inputs and
outputs are declared, ``depends_on`` in the YAML is checked against them when the config is
loaded, and the runtime resolves and verifies every input before the task starts: a task
reads ``ctx.input(TRAIN_RATINGS)`` with the very ``Input`` object it declared, never an
artifact name it hopes some dependency produced.

This module is a leaf (pydantic and the standard library only): the config layer, the
runtime, the model library and user code can all import it without importing each other.
"""

from __future__ import annotations

import fnmatch
import importlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Generic, Literal, Protocol

from pydantic import BaseModel, ConfigDict, ValidationError
from typing_extensions import TypeVar  # TypeVar(default=...) is in typing from 3.13

from recomart_pipeline.contract.errors import TaskError, UpstreamArtifactError
from recomart_pipeline.contract.files import verify_artifact, write_text_atomic

Severity = Literal["ERROR", "WARN"]
ArtifactKind = Literal["parquet", "json", "npz", "model", "markdown", "html", "text", "file"]
ConfigT = TypeVar("ConfigT", bound=BaseModel)
# An Input/Output without a document model (a parquet file, a model) is Input[BaseModel].
DocT = TypeVar("DocT", bound=BaseModel, default=BaseModel)


class FreeConfig(BaseModel):
    """The config of a task function that declares no model: any keys, kept as given."""

    model_config = ConfigDict(extra="allow")

    def __getitem__(self, key: str) -> Any:
        return (self.model_extra or {})[key]

    def get(self, key: str, default: Any = None) -> Any:
        return (self.model_extra or {}).get(key, default)


@dataclass(frozen=True)
class Output(Generic[DocT]):
    """An artifact a task publishes. A name ending in ``*`` is a family (``model_*``): any
    number of artifacts whose names start with the part before the star."""

    name: str
    kind: ArtifactKind = "file"
    description: str = ""
    document: type[DocT] | None = None
    optional: bool = False

    @property
    def is_family(self) -> bool:
        return self.name.endswith("*")

    def matches(self, artifact: str) -> bool:
        return fnmatch.fnmatchcase(artifact, self.name) if self.is_family else artifact == self.name


@dataclass(frozen=True)
class Input(Generic[DocT]):
    """An artifact a task reads from one of its dependencies, matched by name to a
    dependency's declared ``Output``. ``many``: read it from every dependency that makes it
    (a fan-in); ``optional``: the task also runs when no dependency makes it."""

    name: str
    kind: ArtifactKind = "file"
    description: str = ""
    document: type[DocT] | None = None
    optional: bool = False
    many: bool = False

    @property
    def is_family(self) -> bool:
        return self.name.endswith("*")


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


@dataclass(frozen=True)
class PreviousRun:
    """The task's own last successful result (for drift, row-count change, fallbacks)."""

    run_id: str
    outputs: dict[str, Path]
    sha256: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def has(self, name: str) -> bool:
        return name in self.outputs

    def path(self, name: str) -> Path:
        try:
            return self.outputs[name]
        except KeyError:
            raise UpstreamArtifactError(
                f"the previous run {self.run_id} has no output '{name}'",
                hint="it was written by an older version; re-run the task",
            ) from None

    def verify(self) -> None:
        """Hash-check every output (they may be read long after they were written)."""
        for name, path in self.outputs.items():
            verify_artifact(name, path, self.sha256[name])


class SharedStore(Protocol):
    """The shared copy of storage when it is an object store (runtime.object_store)."""

    @property
    def url(self) -> str:
        """Where the store is (``s3://bucket/prefix``); holds no credentials."""
        ...

    def child(self, name: str) -> SharedStore: ...

    def upload(self, local: Path, relative: str | PurePosixPath) -> None: ...

    def download(self, relative: str | PurePosixPath, local: Path) -> bool:
        """Copy ``relative`` to ``local``; False when the store does not have it."""
        ...

    def list(self, relative: str | PurePosixPath, pattern: str = "**") -> list[PurePosixPath]:
        """Keys under ``relative`` matching ``pattern``, relative to this store."""
        ...


@dataclass(frozen=True)
class ResolvedInput:
    """One declared input as the runtime found it: the producing task and its files."""

    producer: str
    artifacts: dict[str, Path]


@dataclass
class TaskContext(Generic[ConfigT]):
    """Everything a task may use; built by the runtime for each attempt."""

    task_name: str
    run_id: str
    config: ConfigT
    output_dir: Path
    project_root: Path
    storage_root: Path
    logger: logging.Logger
    # declared input name -> where each dependency that makes it put it (hashes verified)
    resolved: dict[str, list[ResolvedInput]] = field(default_factory=dict)
    attempt: int = 1
    partition_key: str | None = None
    pipeline_name: str = "recomart_pipeline"
    previous: PreviousRun | None = None
    object_store: SharedStore | None = None
    # execution.engine: which engine runs the data rules ("local" = DuckDB, "pandas").
    engine: str = "pandas"
    # The chosen engine's settings as plain values (execution.spark for spark).
    engine_options: dict[str, Any] = field(default_factory=dict)

    def _entries(self, declared: Input[Any]) -> list[ResolvedInput]:
        try:
            return self.resolved[declared.name]
        except KeyError:
            raise TaskError(
                f"task '{self.task_name}' reads input '{declared.name}' without declaring it",
                hint="list the Input in the task's TaskSpec(inputs=...)",
            ) from None

    def input(self, declared: Input[Any]) -> Path:
        """The file of a declared single input."""
        entries = self._entries(declared)
        if declared.many or declared.is_family:
            raise TaskError(f"input '{declared.name}' has several files: use inputs()/family()")
        if not entries:
            raise UpstreamArtifactError(
                f"optional input '{declared.name}' of task '{self.task_name}' is absent",
                hint="check has_input() before reading an optional input",
            )
        return next(iter(entries[0].artifacts.values()))

    def has_input(self, declared: Input[Any]) -> bool:
        return bool(self._entries(declared))

    def inputs(self, declared: Input[Any]) -> dict[str, Path]:
        """A fan-in input (``many=True``): producing task -> its file."""
        return {e.producer: next(iter(e.artifacts.values())) for e in self._entries(declared)}

    def family(self, declared: Input[Any]) -> dict[str, Path]:
        """A family input (``model_*``): artifact name -> file."""
        return {name: path for e in self._entries(declared) for name, path in e.artifacts.items()}

    def document(self, declared: Input[DocT]) -> DocT:
        """A declared JSON input, parsed and validated by its document model."""
        if declared.document is None:
            raise TaskError(f"input '{declared.name}' declares no document model")
        path = self.input(declared)
        try:
            return declared.document.model_validate_json(path.read_bytes())
        except ValidationError as exc:
            raise UpstreamArtifactError(
                f"{path} is not a valid {declared.document.__name__} document: "
                f"{exc.errors()[0]['loc']} {exc.errors()[0]['msg']}",
                hint="re-materialize the task that produces it with this version",
            ) from None

    def output_path(self, name: str) -> Path:
        """A path inside this attempt's private output dir; refuses names that escape it."""
        relative = PurePosixPath(name)
        if relative.is_absolute() or ".." in relative.parts:
            raise ValueError(f"output name {name!r} must be a relative path inside the output dir")
        path = self.output_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def write_document(self, name: str, document: BaseModel) -> Path:
        """Write a JSON document output atomically; returns its path."""
        path = self.output_path(name)
        write_text_atomic(path, document.model_dump_json(indent=2) + "\n")
        return path

    def resolve_project_path(self, value: str | Path) -> Path:
        """Resolve a path from the config: relative paths are relative to the project root."""
        path = Path(value)
        return path if path.is_absolute() else self.project_root / path


@dataclass(frozen=True)
class PreflightIssue:
    """A problem a task's preflight found in its inputs before anything ran: ``key`` is the
    path inside the task's ``config:`` block that needs changing."""

    key: tuple[str, ...]
    message: str
    hint: str | None = None


TaskFunction = Callable[[TaskContext[Any]], "TaskResult | dict[str, Any] | None"]
ChecksFunction = Callable[[Any], Sequence[CheckSpec]]
SourcesFunction = Callable[[Any], Sequence[str]]
# Cheap checks of a task's external inputs (files exist, columns present) for `validate`.
PreflightFunction = Callable[[Any, Path], Sequence[PreflightIssue]]


@dataclass(frozen=True)
class TaskSpec:
    """A task's whole declaration. ``run`` is the function or its ``module:function``
    reference, imported only when the task runs, so validating a config stays light."""

    name: str
    run: TaskFunction | str
    config: type[BaseModel] = FreeConfig
    inputs: tuple[Input[Any], ...] = ()
    outputs: tuple[Output[Any], ...] = ()
    description: str = ""
    checks: ChecksFunction | None = None
    sources: SourcesFunction | None = None
    preflight: PreflightFunction | None = None
    # A read-only account of the run (the report): when an upstream task's blocking check
    # fails, it still runs without the tasks that check stopped, so users see why; its own
    # output is then kept for inspection like the blocked one.
    explains_failures: bool = False
    # How the spec is found again in another process: "builtin:<name>" or "module:function".
    reference: str = ""
    # The execution engines its rules run on; a task set to another (tasks.<name>.engine)
    # is refused when the config loads. Under execution.engine such a task runs pandas.
    engines: tuple[str, ...] = ("pandas",)

    def function(self) -> TaskFunction:
        if not isinstance(self.run, str):
            return self.run
        module_name, _, attr = self.run.partition(":")
        function: TaskFunction = getattr(importlib.import_module(module_name), attr)
        return function

    def declared_checks(self, config: BaseModel) -> list[CheckSpec]:
        return list(self.checks(config)) if self.checks else []

    def watched_sources(self, config: BaseModel) -> list[str]:
        """External data this task reads (paths, globs, URLs): what a data sensor watches."""
        return list(self.sources(config)) if self.sources else []

    def output_for(self, artifact: str) -> Output[Any] | None:
        return next((o for o in self.outputs if o.matches(artifact)), None)

    def produces(self, name: str) -> Output[Any] | None:
        """The declared output an input called ``name`` would read."""
        return next((o for o in self.outputs if o.name == name), None)


def pipeline_task(
    config: type[BaseModel] | None = None,
    checks: ChecksFunction | None = None,
    sources: SourcesFunction | None = None,
    inputs: Sequence[Input[Any]] = (),
    outputs: Sequence[Output[Any]] = (),
) -> Callable[[TaskFunction], TaskFunction]:
    """Declare a user task function's config model, inputs, outputs, checks and sources."""

    def attach(fn: TaskFunction) -> TaskFunction:
        fn.task_spec = TaskSpec(  # type: ignore[attr-defined]
            name=getattr(fn, "__name__", "task"),
            run=fn,
            config=config or FreeConfig,
            inputs=tuple(inputs),
            outputs=tuple(outputs),
            description=first_doc_line(fn),
            checks=checks,
            sources=sources,
        )
        return fn

    return attach


def first_doc_line(obj: object) -> str:
    doc = (getattr(obj, "__doc__", None) or "").strip()
    return doc.splitlines()[0] if doc else ""


def spec_of_function(fn: TaskFunction, reference: str) -> TaskSpec:
    """The spec of a user function: what ``@pipeline_task`` declared, or nothing but the
    function (no inputs, no outputs, any config)."""
    declared: TaskSpec | None = getattr(fn, "task_spec", None)
    base = declared or TaskSpec(name=reference, run=fn, description=first_doc_line(fn))
    return TaskSpec(**{**base.__dict__, "reference": reference})
