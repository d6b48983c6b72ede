"""Finding a task's spec: built-ins and plugins by name, user functions by ``module:function``.

Built-in tasks are registered as entry points of the group ``recomart_pipeline.tasks``
(``pyproject.toml``), each naming a light module's ``SPEC``: its config model, inputs,
outputs and checks, but not its implementation, which is imported only when the task runs.
So validating a config imports no pandas, numpy or dagster; and an installed package can
add tasks under its own names the same way, with no change here.

A ``callable:`` is text from a config file, so it is treated as data: it must name a function
in an allowed package (the project's own tasks, the packages the config lists in
``pipeline.allowed_task_packages``, or the operator's ``$RECOMART_TASK_PACKAGES``), never a
standard library module, and that is decided from the name alone, then the module is
located without running it. Only a module that passes both is imported. So ``os:system`` or
``builtins:exec`` in a config are refused, and a module outside the list never has its
top-level code run.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Mapping, Sequence
from functools import cache
from importlib.machinery import ModuleSpec
from importlib.metadata import EntryPoint, PackageNotFoundError, distribution, entry_points

from recomart_pipeline.contract.task import TaskSpec, spec_of_function

ENTRY_POINT_GROUP = "recomart_pipeline.tasks"
DISTRIBUTION = "recomart-pipeline"
BUILTIN_PREFIX = "builtin:"


class TaskLookupError(LookupError):
    """The YAML names a task whose code cannot be found or may not be used; the message
    says why, ``hint`` (when known) how to fix it."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


@cache
def _entry_points() -> dict[str, EntryPoint]:
    """Every installed package's tasks (a scan of all installed distributions)."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


@cache
def _own_entry_points() -> dict[str, EntryPoint]:
    """This package's own tasks, read from its metadata alone: ~0.5 ms against ~10 ms for
    the scan above, and the built-ins are what almost every config names."""
    try:
        own = distribution(DISTRIBUTION).entry_points.select(group=ENTRY_POINT_GROUP)
    except PackageNotFoundError:
        return {}
    return {ep.name: ep for ep in own}


def builtin_names() -> list[str]:
    """Names usable as a task name or ``builtin:`` (this package's and installed plugins')."""
    return list(_entry_points())


def builtin_spec(name: str) -> TaskSpec:
    entry = _own_entry_points().get(name) or _entry_points().get(name)
    if entry is None:
        raise TaskLookupError(f"'{name}' is not a built-in task")
    try:
        spec = entry.load()
    except ImportError as exc:
        raise TaskLookupError(f"built-in task '{name}' cannot be loaded ({exc})") from exc
    if not isinstance(spec, TaskSpec):
        raise TaskLookupError(f"entry point '{name}' ({entry.value}) is not a TaskSpec")
    return TaskSpec(**{**spec.__dict__, "reference": f"{BUILTIN_PREFIX}{name}"})


# The project's own task implementations: always allowed as ``callable:``.
PROJECT_TASK_PACKAGES = ("recomart_pipeline.tasks",)
# Packages this machine's operator trusts for ``callable:``, comma-separated (the test suite
# allows its sample tasks this way); a config lists its own in pipeline.allowed_task_packages.
ALLOWED_PACKAGES_ENV = "RECOMART_TASK_PACKAGES"
ALLOWED_PACKAGES_KEY = "pipeline.allowed_task_packages"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_reference(reference: str) -> tuple[str, str]:
    """``package.module:function`` split in two, checked as plain names (no code involved)."""
    module_name, sep, attr = reference.partition(":")
    if (
        not sep
        or not all(_IDENTIFIER.fullmatch(part) for part in module_name.split("."))
        or not _IDENTIFIER.fullmatch(attr)
        or attr.startswith("__")
    ):
        raise TaskLookupError(
            f"callable {reference!r} must look like 'package.module:function'",
            hint="a dotted module path, a colon, and the name of a function in that module",
        )
    return module_name, attr


def is_standard_library(module_name: str) -> bool:
    """``os``, ``subprocess``, ``builtins``…: never a task package, whatever a config lists."""
    return module_name.partition(".")[0] in sys.stdlib_module_names


def allowed_task_packages(
    configured: Sequence[str] = (), environ: Mapping[str, str] | None = None
) -> tuple[str, ...]:
    """The project's task packages, the config's own list and the operator's (environment)."""
    env = (os.environ if environ is None else environ).get(ALLOWED_PACKAGES_ENV, "")
    from_env = tuple(name.strip() for name in env.split(",") if name.strip())
    return (*PROJECT_TASK_PACKAGES, *configured, *from_env)


def check_allowed(module_name: str, allowed: Sequence[str]) -> None:
    """Refuse a module outside the allowed packages, by name alone (nothing is imported)."""
    top = module_name.partition(".")[0]
    if is_standard_library(module_name):
        raise TaskLookupError(
            f"'{module_name}' is part of Python's standard library, not a task package",
            hint="a callable task must be a function in your own package; standard library "
            "modules (os, subprocess, builtins…) can never be task packages",
        )
    if not any(module_name == name or module_name.startswith(f"{name}.") for name in allowed):
        raise TaskLookupError(
            f"package '{top}' is not an allowed task package "
            f"(allowed: {', '.join(allowed)}); it was not imported",
            hint=f"if you trust it, add it to {ALLOWED_PACKAGES_KEY} "
            f"(e.g. allowed_task_packages: [{top}] under pipeline:)",
        )


def locate_module(module_name: str) -> str | None:
    """Where ``module_name``'s code is, found without running any of it (its parents
    included: ``importlib.util.find_spec`` of a submodule imports the package first).

    Returns the file (or ``"built-in"``), None when nothing on ``sys.path`` provides it.
    """
    locations: list[str] | None = None  # top level: sys.path (the project folder is on it)
    found: ModuleSpec | None = None
    parts = module_name.split(".")
    for depth in range(1, len(parts) + 1):
        name = ".".join(parts[:depth])
        loaded = sys.modules.get(name)
        if loaded is not None:
            found = getattr(loaded, "__spec__", None)
            locations = list(getattr(loaded, "__path__", []) or []) or None
            if found is None:
                return getattr(loaded, "__file__", None) or "built-in"
        else:
            found = _find_spec(name, locations)
            if found is None:
                return None
            locations = list(found.submodule_search_locations or []) or None
        if depth < len(parts) and locations is None:
            return None  # a plain module has no submodules
    assert found is not None
    return found.origin or "built-in"


def _find_spec(name: str, locations: list[str] | None) -> ModuleSpec | None:
    """Ask each import finder, as the import system would, but without importing parents."""
    for finder in sys.meta_path:
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is None:
            continue
        try:
            spec: ModuleSpec | None = find_spec(name, locations)
        except (ImportError, ValueError):
            continue
        if spec is not None:
            return spec
    return None


def callable_spec(reference: str, allowed: Sequence[str] = PROJECT_TASK_PACKAGES) -> TaskSpec:
    """The spec of ``module:function``. The name is checked against the allowed packages
    and the module located before anything is imported; only then is it imported to read
    what the function declares (``@pipeline_task``)."""
    module_name, attr = parse_reference(reference)
    check_allowed(module_name, allowed)
    if locate_module(module_name) is None:
        raise TaskLookupError(
            f"cannot find module '{module_name}'",
            hint="the module must be in the project folder or installed, and define that function",
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TaskLookupError(f"cannot import module '{module_name}': {exc}") from exc
    fn = getattr(module, attr, None)
    if fn is None or not callable(fn):
        raise TaskLookupError(f"module '{module_name}' has no function '{attr}'")
    return spec_of_function(fn, reference)


def spec_for(
    reference: str, project_root: str | None = None, allowed: Sequence[str] = PROJECT_TASK_PACKAGES
) -> TaskSpec:
    """The spec behind a reference as recorded in ``TaskSpec.reference`` (other processes):
    checked against the same allowed packages as when the config was loaded."""
    if project_root and project_root not in sys.path:
        sys.path.insert(0, project_root)
    if reference.startswith(BUILTIN_PREFIX):
        return builtin_spec(reference.removeprefix(BUILTIN_PREFIX))
    return callable_spec(reference, allowed)
