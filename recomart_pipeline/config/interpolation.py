"""``${VAR}`` / ``${VAR:-default}`` interpolation on parsed YAML values.

Interpolating after parsing (not on the raw file text, as dag-factory does) means a value
can never inject YAML structure, and each missing variable is reported at its own key.
``$${`` escapes a literal ``${``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from recomart_pipeline.config.errors import ConfigIssue
from recomart_pipeline.config.yaml_source import KeyPath, SourceMap

_PATTERN = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


def interpolate(
    data: Any,
    source_map: SourceMap,
    environ: Mapping[str, str] | None = None,
    path: KeyPath = (),
    issues: list[ConfigIssue] | None = None,
    used: dict[KeyPath, str] | None = None,
) -> tuple[Any, list[ConfigIssue], dict[KeyPath, str]]:
    """Return ``data`` with variables substituted, the issues found, and, for every value
    that took something from the environment, the environment's part of it (so a secret that
    is only part of a value, like a token in a URL, can be redacted on its own too)."""
    env = os.environ if environ is None else environ
    issues = [] if issues is None else issues
    used = {} if used is None else used
    if isinstance(data, dict):
        out = {
            k: interpolate(v, source_map, env, (*path, k), issues, used)[0] for k, v in data.items()
        }
        return out, issues, used
    if isinstance(data, list):
        out_list = [
            interpolate(v, source_map, env, (*path, i), issues, used)[0] for i, v in enumerate(data)
        ]
        return out_list, issues, used
    if not isinstance(data, str) or "$" not in data:
        return data, issues, used

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        name, default = match.group(1), match.group(2)
        if name in env:
            used[(*path, name)] = env[name]
            return env[name]
        if default is not None:
            return default
        issues.append(
            source_map.issue(
                f"environment variable '{name}' is not set",
                path,
                hint=f"export {name}=... before running, or write ${{{name}:-default}}",
            )
        )
        return ""

    return _PATTERN.sub(substitute, data), issues, used
