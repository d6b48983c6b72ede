"""Where the pipeline writes: config fields marked as write paths, found by walking the models.

A config is data a user (or an attacker) edits, so a folder such as ``report.output_dir:
../../..`` must not quietly put files outside the project. Rather than a hand-kept list of
keys in the config layer, which a new setting would forget, every field the pipeline writes
to is typed ``WritePath`` where it is declared (the pipeline's sections and each task's own
``Config``); ``write_paths`` finds them all, and the config layer checks each one against the
project folder and ``storage.allowed_roots`` when the file is loaded. A user task's config
model can use the same type and gets the same check.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Annotated

from pydantic import BaseModel


@dataclass(frozen=True)
class _WriteLocation:
    """The marker in a field's ``Annotated`` metadata (no validation of its own: the check
    needs the project folder, which only the loaded config knows)."""


WRITE_PATH = _WriteLocation()
WritePath = Annotated[str, WRITE_PATH]
OptionalWritePath = Annotated[str | None, WRITE_PATH]

KeyPath = tuple[str, ...]


@cache
def _marked(model: type[BaseModel]) -> tuple[frozenset[str], tuple[str, ...]]:
    """The ``WritePath`` fields of a model class, and its other fields (looked into)."""
    fields = model.model_fields
    marked = frozenset(name for name, info in fields.items() if WRITE_PATH in info.metadata)
    return marked, tuple(name for name in fields if name not in marked)


def write_paths(model: BaseModel, prefix: KeyPath = ()) -> Iterator[tuple[KeyPath, str]]:
    """Every ``WritePath`` value in ``model`` and the models nested in it (also inside
    mappings, e.g. ``tasks.<name>.config``), with its key path."""
    marked, others = _marked(type(model))
    for name in marked:
        value = getattr(model, name)
        if isinstance(value, str):
            yield (*prefix, name), value
    for name in others:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            yield from write_paths(value, (*prefix, name))
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, BaseModel):
                    yield from write_paths(item, (*prefix, name, str(key)))
