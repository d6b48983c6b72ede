"""Load, merge, interpolate and validate a pipeline config: the ``PipelineConfig`` object.

Every problem is collected in one pass and raised as a single ConfigError, so a user fixes
their file once instead of once per error.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError

from recomart_pipeline.config.errors import ConfigError, ConfigIssue, did_you_mean
from recomart_pipeline.config.interpolation import interpolate
from recomart_pipeline.config.overlay import load_with_overlays
from recomart_pipeline.config.overrides import RUN_CONFIG_SOURCE, apply_overrides
from recomart_pipeline.config.pydantic_errors import translate
from recomart_pipeline.config.schema import PipelineSettings
from recomart_pipeline.config.task_edges import check_edges
from recomart_pipeline.config.write_paths import check_write_paths
from recomart_pipeline.config.yaml_source import SourceMap
from recomart_pipeline.contract.catalog import (
    TaskLookupError,
    allowed_task_packages,
    builtin_names,
    builtin_spec,
    callable_spec,
    is_standard_library,
    spec_for,
)
from recomart_pipeline.contract.redaction import REDACTED, strip_url_credentials, url_credentials
from recomart_pipeline.contract.task import TaskSpec
from recomart_pipeline.graph import find_cycle

CONFIG_ENV_VAR = "PIPELINE_CONFIG"
DEFAULT_CONFIG_FILE = "pipeline_config.yaml"


def resolve_config_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The argument, else ``$PIPELINE_CONFIG``, else ``./pipeline_config.yaml``."""
    if path is not None:
        return Path(path)
    return Path(os.environ.get(CONFIG_ENV_VAR) or DEFAULT_CONFIG_FILE)


def environment_config_path(base: str | os.PathLike[str] | None, environment: str) -> Path:
    """The overlay of ``environment`` next to the base file: ``pipeline_config.<env>.yaml``."""
    base_path = resolve_config_path(base)
    overlay = base_path.with_name(f"{base_path.stem}.{environment}{base_path.suffix}")
    if not overlay.is_file():
        known = sorted(
            p.name.removeprefix(f"{base_path.stem}.").removesuffix(base_path.suffix)
            for p in base_path.parent.glob(f"{base_path.stem}.*{base_path.suffix}")
            if p.name.count(".") == base_path.name.count(".") + 1
        )
        raise ConfigError(
            [
                ConfigIssue(
                    f"environment '{environment}' has no overlay file {overlay.name}",
                    file=overlay,
                    hint=f"environments found next to {base_path.name}: "
                    f"{', '.join(known) or 'none'}; create {overlay.name} next to it with "
                    f"what changes in '{environment}' (it is an overlay of {base_path.name})",
                )
            ]
        )
    return overlay


class PipelineConfig:
    """A validated pipeline config; constructing it raises ConfigError listing every problem."""

    def __init__(
        self,
        config_path: str | os.PathLike[str] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        overrides: Sequence[str] = (),
        run_config_overrides: Sequence[str] = (),
    ) -> None:
        self.path = resolve_config_path(config_path).resolve()
        loaded = load_with_overlays(self.path)
        # What was read, kept so launchpad values merge into this config without re-reading
        # files that may have changed since the code location loaded them (never mutated:
        # _build copies it before applying overrides).
        self._loaded = (loaded.data, loaded.source_map, loaded.files)
        # Facts about how the files were combined, for validate and plan to say once.
        self.notes = loaded.notes
        self._environ = environ
        self._build(*self._loaded, list(overrides), list(run_config_overrides))

    def with_run_config(self, run_config_overrides: Sequence[str]) -> PipelineConfig:
        """This config plus per-run values (the launchpad), validated like ``--set``."""
        if not run_config_overrides:
            return self
        merged = PipelineConfig.__new__(PipelineConfig)
        merged.path = self.path
        merged.notes = self.notes
        merged._loaded = self._loaded
        merged._environ = self._environ
        merged._build(*self._loaded, self.cli_overrides, list(run_config_overrides))
        return merged

    def _build(
        self,
        raw: dict[str, Any],
        source_map: SourceMap,
        files: list[Path],
        cli_overrides: list[str],
        run_config_overrides: list[str],
    ) -> None:
        self.cli_overrides = cli_overrides
        self.run_config_overrides = run_config_overrides
        # Both kinds are recorded together in manifests and tags; ``reproduce`` replays them
        # as --set, which means the same thing.
        self.overrides = self.cli_overrides + self.run_config_overrides
        if self.overrides:
            raw, source_map = copy.deepcopy((raw, source_map))
        if self.cli_overrides:
            apply_overrides(raw, source_map, self.cli_overrides)
        if self.run_config_overrides:
            apply_overrides(raw, source_map, self.run_config_overrides, RUN_CONFIG_SOURCE)
        self.files = files
        # The folder of the file the user runs: an overlay elsewhere (e.g. in their own
        # project, extending the shipped config) keeps its data, storage and logs there.
        self.project_root = files[-1].parent
        self.source_map = source_map
        data, issues, from_env = interpolate(raw, source_map, self._environ)
        raw_tasks = data.get("tasks") if isinstance(data.get("tasks"), dict) else {}
        # ``training:`` with nothing under it means "a task with all defaults".
        raw_tasks = {name: {} if task is None else task for name, task in raw_tasks.items()}
        if isinstance(data.get("tasks"), dict):
            data["tasks"] = raw_tasks
        settings: PipelineSettings | None = None
        try:
            settings = PipelineSettings.model_validate(data)
        except ValidationError as exc:
            issues.extend(translate(exc, PipelineSettings, source_map))
        self.specs: dict[str, TaskSpec] = {}
        task_configs: dict[str, BaseModel] = {}
        # Dependencies and task configs are checked on the raw data too, so a wrong type in
        # one section does not hide an unknown dependency or a bad task config elsewhere.
        allowed = allowed_task_packages(_configured_packages(data))
        issues.extend(self._resolve_tasks(raw_tasks, source_map, task_configs, allowed))
        dependency_issues = _check_dependencies(raw_tasks, source_map)
        issues.extend(dependency_issues)
        if not dependency_issues:
            issues.extend(check_edges(raw_tasks, self.specs, source_map))
        if settings is not None:
            # One validated config object per task: the model replaces the raw mapping.
            for name, task_config in task_configs.items():
                settings.tasks[name] = settings.tasks[name].model_copy(
                    update={"config": task_config}
                )
            self.settings = settings
            self.allowed_task_packages = allowed
            issues.extend(check_write_paths(settings, self.project_root, source_map))
        if issues:
            raise ConfigError(sorted(issues, key=lambda i: (str(i.file), i.line or 0)))
        self.secret_values = self._collect_secrets(from_env)
        # The variable a value was taken from whole (``${VAR}``): Dagster resources name it
        # (``EnvVar``) instead of showing the value.
        self.env_sources: dict[tuple[Any, ...], str] = {
            key[:-1]: str(key[-1])
            for key, value in from_env.items()
            if value and _value_at(data, key[:-1]) == value
        }

    # -- validation steps ------------------------------------------------------------------
    def _resolve_tasks(
        self,
        raw_tasks: dict[str, Any],
        source_map: SourceMap,
        task_configs: dict[str, BaseModel],
        allowed: Sequence[str],
    ) -> list[ConfigIssue]:
        issues: list[ConfigIssue] = []
        # User task modules live in the project folder, like Dagster's working_directory.
        if str(self.project_root) not in sys.path:
            sys.path.insert(0, str(self.project_root))
        for name, task in raw_tasks.items():
            if not isinstance(task, dict):
                continue  # the schema check reports it
            path = ("tasks", name)
            implementation = task.get("callable")
            builtin = task.get("builtin")
            try:
                if isinstance(implementation, str):
                    spec = callable_spec(implementation, allowed)
                else:
                    spec = builtin_spec(builtin if isinstance(builtin, str) else str(name))
            except TaskLookupError as exc:
                key = "callable" if implementation else ("builtin" if builtin else None)
                known = builtin_names()
                if implementation:
                    hint = exc.hint or (
                        f"the module must be importable from {self.project_root} or installed, "
                        "and define that function"
                    )
                elif str(builtin or name) in known or not known:
                    # No entry points at all: the package runs from a source tree it was never
                    # installed from, so the built-in tasks are not registered.
                    hint = "the installation is incomplete: reinstall it (pip install -e .)"
                else:
                    hint = did_you_mean(str(builtin or name), known) or (
                        f"built-in tasks are: {', '.join(known)}; or point at your own "
                        "function with callable: 'package.module:function'"
                    )
                issues.append(source_map.issue(str(exc), (*path, key) if key else path, hint))
                continue
            self.specs[name] = spec
            engine = task.get("engine")
            if isinstance(engine, str) and engine not in spec.engines:
                issues.append(
                    source_map.issue(
                        f"task '{name}' cannot run on the {engine} engine",
                        (*path, "engine"),
                        f"its rules run on {', '.join(spec.engines)}: choose one of them or "
                        f"remove tasks.{name}.engine (docs/engines.md)",
                    )
                )
            task_config = task.get("config") or {}
            if not isinstance(task_config, dict):
                continue  # the schema check reports it
            try:
                task_configs[name] = spec.config.model_validate(task_config)
            except ValidationError as exc:
                issues.extend(translate(exc, spec.config, source_map, (*path, "config")))
        return issues

    def _collect_secrets(self, from_env: dict[tuple[Any, ...], str]) -> set[str]:
        """Values to redact: every secret-typed field (settings and task configs), each
        environment value that went into one of them (a token inside a webhook URL), and the
        credentials inside any URL of the config (``https://user:password@host``)."""
        found: list[tuple[tuple[Any, ...], Any]] = [((), self.settings.model_dump(mode="python"))]
        secrets: set[str] = set()
        while found:
            path, value = found.pop()
            if isinstance(value, SecretStr):
                if value.get_secret_value():
                    secrets.add(value.get_secret_value())
                secrets.update(v for p, v in from_env.items() if p[:-1] == path and v)
            elif isinstance(value, str):
                secrets.update(url_credentials(value))
            elif isinstance(value, dict):
                found.extend(((*path, k), v) for k, v in value.items())
            elif isinstance(value, list):
                found.extend(((*path, i), v) for i, v in enumerate(value))
        return secrets

    # -- pickling (task processes) ---------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        """Task specs travel by reference: a user's lambda (e.g. in ``checks=``) cannot be
        pickled, and the child process imports the same modules anyway."""
        state = self.__dict__.copy()
        state["specs"] = {name: spec.reference for name, spec in self.specs.items()}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        references = state.pop("specs")
        self.__dict__.update(state)
        root = str(self.project_root)
        allowed = self.allowed_task_packages
        self.specs = {name: spec_for(ref, root, allowed) for name, ref in references.items()}

    # -- public API ------------------------------------------------------------------------
    @property
    def storage_root(self) -> Path:
        """The local storage folder: ``base_dir``, or ``cache_dir`` when ``base_dir`` is an
        object store URL (runtime.object_store keeps the two in step)."""
        storage = self.settings.storage
        return self.resolve_path(storage.cache_dir if storage.is_object_store else storage.base_dir)

    @property
    def dagster_home(self) -> Path:
        return self.resolve_path(self.settings.storage.dagster_home)

    def check_data(self) -> None:
        """Each enabled task's preflight (its data files exist, can be read as configured and
        have the columns it needs); raise ConfigError listing every problem at its key."""
        issues = [
            self.source_map.issue(found.message, ("tasks", name, "config", *found.key), found.hint)
            for name, spec in self.specs.items()
            if spec.preflight is not None and self.settings.tasks[name].enabled
            for found in spec.preflight(self.task_config(name), self.project_root)
        ]
        if issues:
            raise ConfigError(issues)

    def task_config(self, name: str) -> BaseModel:
        """The validated config model of task ``name`` (its ``config:`` block)."""
        task_config = self.settings.tasks[name].config
        assert isinstance(task_config, BaseModel), "replaced by the model when loaded"
        return task_config

    @property
    def name(self) -> str:
        return self.settings.pipeline.name

    def resolve_path(self, value: str | os.PathLike[str]) -> Path:
        path = Path(value)
        return path if path.is_absolute() else self.project_root / path

    def to_dict(self, *, reveal_secrets: bool = False) -> dict[str, Any]:
        """The effective config as plain data (secrets masked unless asked for)."""
        data = _mask_secrets(self.settings.model_dump(mode="python"), reveal_secrets)
        plain: dict[str, Any] = json.loads(json.dumps(data, default=str))
        return plain

    def engine_of(self, name: str) -> str:
        """The engine task ``name`` runs its rules on: its own setting, else
        execution.engine where its rules run on that, else pandas."""
        settings = self.settings
        own = settings.tasks[name].engine
        if own is not None:
            return own
        engine = settings.execution.engine
        spec = self.specs.get(name)
        return engine if spec is None or engine in spec.engines else "pandas"

    def task_code_version(self, name: str) -> str:
        """Changes whenever the task's settings (its config included) change."""
        # Only this task's settings: dumping the whole config per task made building the
        # Definitions of a 1,000-task pipeline quadratic.
        payload = _mask_secrets(self.settings.tasks[name].model_dump(mode="python"), False)
        payload["implementation"] = self.specs[name].reference
        blob = json.dumps(payload, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    @property
    def config_hash(self) -> str:
        blob = json.dumps(self.to_dict(), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()

    def redact(self, text: str) -> str:
        # Longest first: a secret that contains another is masked whole.
        for secret in sorted(self.secret_values, key=len, reverse=True):
            text = text.replace(secret, REDACTED)
        return strip_url_credentials(text)

    @property
    def safe_overrides(self) -> list[str]:
        """The overrides as they may be stored and shown: secret values masked."""
        return [self.redact(text) for text in self.overrides]

    def __repr__(self) -> str:
        return f"PipelineConfig({str(self.path)!r}, tasks={list(self.settings.tasks)})"


def _check_dependencies(raw_tasks: dict[str, Any], source_map: SourceMap) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    names = [str(n) for n in raw_tasks]
    graph: dict[str, list[str]] = {}
    for name, task in raw_tasks.items():
        deps = task.get("depends_on") if isinstance(task, dict) else None
        if not isinstance(deps, list):
            continue  # missing is fine; a wrong type is reported by the schema check
        graph[name] = [d for d in deps if isinstance(d, str)]
        seen: set[str] = set()
        for index, dep in enumerate(graph[name]):
            path = ("tasks", name, "depends_on", index)
            if dep in seen:
                issues.append(source_map.issue(f"'{dep}' is listed twice", path))
            seen.add(dep)
            if dep not in raw_tasks:
                hint = did_you_mean(dep, names) or f"known tasks: {', '.join(names)}"
                issues.append(source_map.issue(f"depends on unknown task '{dep}'", path, hint))
    cycle = find_cycle(graph)
    if cycle:
        issues.append(
            source_map.issue(
                f"dependency cycle: {' -> '.join(cycle)}",
                ("tasks", cycle[0], "depends_on"),
                hint="a task cannot (indirectly) depend on itself; remove one of these edges",
            )
        )
    return issues


def _configured_packages(data: dict[str, Any]) -> list[str]:
    """``pipeline.allowed_task_packages`` as written, also when another setting is wrong
    (so a wrong value elsewhere does not make every callable look forbidden); the entries
    the schema refuses are left out."""
    section = data.get("pipeline")
    listed = section.get("allowed_task_packages") if isinstance(section, dict) else None
    if not isinstance(listed, list):
        return []
    return [name for name in listed if isinstance(name, str) and not is_standard_library(name)]


def _value_at(data: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        in_mapping = isinstance(data, dict) and key in data
        in_list = isinstance(data, list) and isinstance(key, int) and 0 <= key < len(data)
        if not (in_mapping or in_list):
            return None
        data = data[key]
    return data


def _mask_secrets(value: Any, reveal: bool) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value() if reveal else REDACTED
    if isinstance(value, str) and not reveal:
        return strip_url_credentials(value)
    if isinstance(value, dict):
        return {k: _mask_secrets(v, reveal) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_secrets(v, reveal) for v in value]
    return value
