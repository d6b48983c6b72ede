"""Per-run task settings from the Dagster launchpad: a typed run config per task asset.

Each asset's ``config_schema`` mirrors its task's pydantic config model (nested sections,
ints, floats, enums, lists, optional values) with every field optional and no default, so a
run config holds only what the user changed. The values are turned into
``tasks.<task>.config.<key>=<value>`` overrides and the whole pipeline config is validated
again with them, so a launchpad value obeys exactly the rules (ranges, cross-field checks)
and error format of the YAML file and of ``run --set``.

Dagster's config types express types, not ranges or cross-field rules, and its ``Config``
classes cannot be derived from arbitrary pydantic models (unions, constrained types), hence
this small JSON-Schema-to-Dagster translation. The rules are still part of Dagster's config
validation: each task's schema is a ``Shape`` (``RuleCheckedShape``, shared with the
resources) whose ``post_process`` hook (the one Dagster's own ``StringSource``/``EnumValue``
use) validates the values with the task's model. Dagster runs it in the code location when
it builds a run's execution plan, which happens before the run is created, so a launchpad
value breaking a rule refuses the launch (``launchRun`` answers with the config error, no
run exists), as does ``dagster job execute`` and ``execute_in_process``. The launchpad's as-you-type check works on a serialized copy of
the schema without the code location and so still sees types only.
"""

import json
import re
from collections.abc import Mapping
from functools import cache
from typing import Any

from dagster import (
    Any as AnyType,
)
from dagster import (
    Array,
    Bool,
    Enum,
    EnumValue,
    Field,
    Float,
    Int,
    Noneable,
    Permissive,
    Shape,
    String,
)
from pydantic import BaseModel

from recomart_pipeline.config import PipelineConfig
from recomart_pipeline.contract.redaction import strip_url_credentials
from recomart_pipeline.contract.task import FreeConfig
from recomart_pipeline.orchestration.resources import RuleCheckedShape, resource_overrides

_SCALARS = {"string": String, "integer": Int, "number": Float, "boolean": Bool}
_BOUNDS = {
    "minimum": "≥",
    "exclusiveMinimum": ">",
    "maximum": "≤",
    "exclusiveMaximum": "<",
}
_SHOWN_VALUE_CHARS = 80


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    return defs[ref.rsplit("/", 1)[-1]] if ref else schema


def _dagster_type(schema: dict[str, Any], defs: dict[str, Any], name: str, current: Any) -> Any:
    schema = _resolve(schema, defs)
    variants = schema.get("anyOf") or schema.get("oneOf")
    if variants:
        present = [v for v in variants if _resolve(v, defs).get("type") != "null"]
        if len(present) == 1:
            inner = _dagster_type(present[0], defs, name, current)
            return Noneable(inner) if len(present) < len(variants) else inner
        return AnyType  # e.g. "a path or a mapping": our validation decides
    kind = schema.get("type", "")
    if "enum" in schema and all(isinstance(v, str) for v in schema["enum"]):
        # Dagster enum names are global to the code location and must be identifiers.
        return Enum(re.sub(r"\W", "_", name), [EnumValue(v) for v in schema["enum"]])
    if kind == "object" and "properties" in schema:
        return Shape(_fields(schema, defs, name, current if isinstance(current, dict) else {}))
    if kind == "object":
        return Permissive()
    if kind == "array":
        return Array(_dagster_type(schema.get("items", {}), defs, name, None))
    return _SCALARS.get(kind, AnyType)


def _describe(schema: dict[str, Any], current: Any) -> str:
    parts = [schema.get("description", "").strip()]
    bounds = [f"{sign} {schema[key]}" for key, sign in _BOUNDS.items() if key in schema]
    if bounds:
        parts.append(f"Allowed: {', '.join(bounds)}.")
    shown = strip_url_credentials(json.dumps(current, default=str))
    if len(shown) > _SHOWN_VALUE_CHARS:
        shown = shown[: _SHOWN_VALUE_CHARS - 1] + "…"
    parts.append(f"In the YAML: {shown}. Leave unset to keep it.")
    return " ".join(p for p in parts if p)


def _fields(
    schema: dict[str, Any], defs: dict[str, Any], prefix: str, current: dict[str, Any]
) -> dict[str, Field]:
    fields: dict[str, Field] = {}
    for name, prop in schema.get("properties", {}).items():
        resolved = _resolve(prop, defs)
        if resolved.get("format") == "password" or resolved.get("writeOnly"):
            continue  # secrets come from the environment, never from the UI
        value = current.get(name, resolved.get("default"))
        fields[name] = Field(
            _dagster_type(prop, defs, f"{prefix}__{name}", value),
            is_required=False,
            description=_describe({**resolved, **prop}, value),
        )
    return fields


@cache
def _json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """One JSON Schema per model class: many tasks share a model (built-ins, generated
    configs), and generating it is most of the cost of building the launchpad schemas."""
    return model.model_json_schema()


def task_config_schema(config: PipelineConfig, task: str) -> Any:
    """The launchpad schema of one task: its config model's fields, all optional."""
    model = config.specs[task].config
    if model is FreeConfig:
        return Permissive()  # a function without a config model takes any mapping
    values = config.task_config(task).model_dump(mode="json")
    schema = _json_schema(model)
    fields = _fields(schema, schema.get("$defs", {}), f"{config.name}__{task}", values)
    # The shape's key must differ per task too: Dagster caches the enclosing op's type by
    # key, and a cached one would run another task's check.
    return RuleCheckedShape(
        config,
        fields,
        f"Settings of task '{task}' for this run, checked against the task's rules before "
        "the run is created",
        lambda value: run_config_overrides({"ops": {task: {"config": value}}}, [task]),
    )


def _leaves(value: Any, path: tuple[str, ...]) -> list[tuple[tuple[str, ...], Any]]:
    """Nested mappings become one override per leaf, so unset siblings keep their YAML values."""
    if isinstance(value, dict) and value:
        return [leaf for key, item in value.items() for leaf in _leaves(item, (*path, key))]
    return [(path, value)]


def run_config_overrides(run_config: Mapping[str, Any], tasks: list[str]) -> list[str]:
    """``tasks.<task>.config.<key>=<json value>`` for every value the run config sets."""
    overrides: list[str] = []
    ops = run_config.get("ops") or {}
    for task in tasks:
        task_config = (ops.get(task) or {}).get("config") or {}
        for path, value in _leaves(task_config, ("tasks", task, "config")):
            if len(path) > 3:
                overrides.append(f"{'.'.join(path)}={json.dumps(value)}")
    return overrides


def config_for_run(config: PipelineConfig, run_config: Mapping[str, Any]) -> PipelineConfig:
    """The pipeline config this run uses: ``config`` plus the launchpad's task and resource
    values.

    Every asset of a run derives the same config from the whole run config (not only its
    own op's), so one run has one config hash, one manifest and one set of overrides, and a
    bad value fails the first task instead of the one it belongs to.
    """
    return config.with_run_config(
        run_config_overrides(run_config, list(config.settings.tasks))
        + resource_overrides(config, run_config)
    )
