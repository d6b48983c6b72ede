"""Environment overlays: a file may ``extends:`` another and is deep-merged over it.

Mappings merge key by key; any other value (lists included) replaces the base value, so an
overlay can shorten a list. ``extends`` paths are relative to the file that names them.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from recomart_pipeline.config.errors import ConfigError, ConfigIssue
from recomart_pipeline.config.yaml_source import SourceMap, load_yaml_file

EXTENDS_KEY = "extends"


def deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        elif value is None and isinstance(merged.get(key), dict):
            continue  # an empty section in an overlay changes nothing
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_with_overlays(
    path: Path, _chain: tuple[Path, ...] = ()
) -> tuple[dict[str, Any], SourceMap, list[Path]]:
    """Load ``path`` and every file it extends; return merged data, positions, file chain."""
    path = path.resolve()
    if path in _chain:
        cycle = " -> ".join(p.name for p in (*_chain, path))
        raise ConfigError([ConfigIssue(f"'extends' forms a cycle: {cycle}", (EXTENDS_KEY,), path)])
    data, source_map = load_yaml_file(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            [
                source_map.issue(
                    f"the top level must be a mapping of sections (got {type(data).__name__})", ()
                )
            ]
        )
    parent = data.pop(EXTENDS_KEY, None)
    if parent is None:
        return data, source_map, [path]
    if not isinstance(parent, str):
        raise ConfigError(
            [source_map.issue("'extends' must be a file path string", (EXTENDS_KEY,))]
        )
    parent_path = (path.parent / parent).resolve()
    if not parent_path.exists():
        raise ConfigError(
            [
                source_map.issue(
                    f"extended file not found: {parent_path}",
                    (EXTENDS_KEY,),
                    hint="paths in 'extends' are relative to the file that names them",
                )
            ]
        )
    base, base_map, chain = load_with_overlays(parent_path, (*_chain, path))
    base_map.overlay(source_map)
    return deep_merge(base, data), base_map, [*chain, path]
