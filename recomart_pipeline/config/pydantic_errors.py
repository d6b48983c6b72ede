"""Turn pydantic validation errors into ConfigIssues with a location, the value and a hint.

Dagster Components does the same (``dagster/_utils/pydantic_yaml.py``); pydantic's own text
("Input should be greater than or equal to 0") says neither where nor what was given.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from recomart_pipeline.config.errors import ConfigIssue, did_you_mean
from recomart_pipeline.config.yaml_source import KeyPath, SourceMap

_TYPE_NAMES = {
    "int_parsing": "an integer",
    "int_type": "an integer",
    "int_from_float": "a whole number",
    "float_parsing": "a number",
    "float_type": "a number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a mapping of keys to values",
    "model_type": "a mapping of keys to values",
    "model_attributes_type": "a mapping of keys to values",
}


def _unwrap(annotation: Any) -> list[Any]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return [a for arg in typing.get_args(annotation) for a in _unwrap(arg)]
    return [annotation]


def allowed_keys(model: type[BaseModel], loc: Iterable[str | int]) -> list[str]:
    """Field names of the model found at ``loc`` (used for "did you mean")."""
    candidates: list[Any] = [model]
    for part in loc:
        next_candidates: list[Any] = []
        for candidate in candidates:
            for annotation in _unwrap(candidate):
                origin = typing.get_origin(annotation)
                if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                    field = annotation.model_fields.get(str(part))
                    if field is not None:
                        next_candidates.append(field.annotation)
                elif origin in (dict, list):
                    next_candidates.append(typing.get_args(annotation)[-1])
        candidates = next_candidates
    keys: list[str] = []
    for candidate in candidates:
        for annotation in _unwrap(candidate):
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                keys.extend(annotation.model_fields)
    return keys


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _message(
    error: ErrorDetails, model: type[BaseModel], loc: tuple[Any, ...]
) -> tuple[str, str | None]:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    value = error.get("input")
    if kind == "extra_forbidden":
        key = str(loc[-1])
        allowed = allowed_keys(model, loc[:-1])
        hint = did_you_mean(key, allowed)
        known = f"allowed keys: {', '.join(sorted(allowed))}" if allowed else None
        return f"unknown key '{key}'", "; ".join(x for x in (hint, known) if x) or None
    if loc and loc[-1] == "[key]":
        return (
            f"key {_shown(value)} is not a string",
            "YAML reads unquoted yes/no/on/off/true/false as booleans and bare digits as "
            f'numbers; quote the key: "{str(value).lower()}"',
        )
    if kind == "string_type" and isinstance(value, bool):
        return (
            f"expected a string (got {value!r}: YAML read an unquoted yes/no/on/off as a boolean)",
            "put the value in quotes",
        )
    if kind == "missing":
        return "required key is missing", None
    bounds = {
        "greater_than_equal": ("≥", "ge"),
        "greater_than": (">", "gt"),
        "less_than_equal": ("≤", "le"),
        "less_than": ("<", "lt"),
    }
    if kind in bounds:
        symbol, key = bounds[kind]
        return f"must be {symbol} {ctx.get(key)} (got {_shown(value)})", None
    if kind == "literal_error":
        expected = ctx.get("expected", "")
        choices = [c.strip().strip("'") for c in str(expected).replace(" or ", ",").split(",")]
        hint = did_you_mean(str(value), choices) if isinstance(value, str) else None
        return f"must be one of {expected} (got {_shown(value)})", hint
    if kind == "string_pattern_mismatch":
        return (
            f"{_shown(value)} is not allowed here",
            "use letters, digits and underscores, starting with a letter or underscore",
        )
    if kind in _TYPE_NAMES:
        return (
            f"expected {_TYPE_NAMES[kind]} (got {_shown(value)} of type {type(value).__name__})",
            None,
        )
    message = str(error.get("msg", "invalid value"))
    message = message.removeprefix("Value error, ")
    return message, None


def translate(
    exc: ValidationError, model: type[BaseModel], source_map: SourceMap, prefix: KeyPath = ()
) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        message, hint = _message(error, model, loc)
        # A dict-key error's loc ends in (key, "[key]"); report it at the key itself.
        path = loc[:-1] if loc and loc[-1] == "[key]" else loc
        issues.append(source_map.issue(message, (*prefix, *path), hint=hint))
    return issues
