"""Per-run overrides (``run --set tasks.training.config.svd.n_factors=64``).

Applied to the merged YAML data before interpolation and validation, so an override is
checked by exactly the same rules as the file and its errors point at the ``--set`` that
caused them (``--set:1 tasks.training.config.svd.n_factors: must be ≥ 1 (got -5)``).
Values set in the Dagster launchpad arrive the same way, labelled ``run config``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from recomart_pipeline.config.errors import ConfigError, ConfigIssue
from recomart_pipeline.config.yaml_source import Position, SourceMap

OVERRIDE_SOURCE = Path("--set")
RUN_CONFIG_SOURCE = Path("run config")


def parse_override(
    text: str, index: int, source: Path = OVERRIDE_SOURCE
) -> tuple[tuple[str, ...], Any]:
    key, sep, raw_value = text.partition("=")
    path = tuple(part for part in key.strip().split("."))
    if not sep or not all(path):
        raise ConfigError(
            [
                ConfigIssue(
                    f"override {text!r} must look like dotted.key=value",
                    file=source,
                    line=index,
                    hint="e.g. --set tasks.training.config.svd.n_factors=64",
                )
            ]
        )
    try:
        value = yaml.safe_load(raw_value) if raw_value.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(
            [ConfigIssue(f"override value is not valid YAML: {exc}", path, source, index)]
        ) from None
    return path, value


def apply_overrides(
    data: dict[str, Any],
    source_map: SourceMap,
    overrides: Sequence[str],
    source: Path = OVERRIDE_SOURCE,
) -> None:
    """Set each dotted key in ``data`` (creating mappings on the way) and record its origin."""
    source_map.lines[source] = list(overrides)
    for index, text in enumerate(overrides, start=1):
        path, value = parse_override(text, index, source)
        node = data
        for depth, part in enumerate(path[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(
                    [
                        ConfigIssue(
                            f"cannot set '{'.'.join(path)}': '{'.'.join(path[: depth + 1])}' is "
                            f"not a mapping",
                            path,
                            source,
                            index,
                            source_line=text,
                        )
                    ]
                )
            node = child
        node[path[-1]] = value
        for end in range(1, len(path) + 1):
            source_map.positions[path[:end]] = Position(source, index, 1)
