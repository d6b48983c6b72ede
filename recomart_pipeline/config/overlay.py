"""Environment overlays: a file may ``extends:`` another and is deep-merged over it.

Mappings merge key by key; any other value (lists included) replaces the base value, so an
overlay can shorten a list. ``extends`` paths are relative to the file that names them.

The user guide shows environment files without any ``extends:`` line (``pipeline_config.
prod.yaml`` holding only what changes in production), so a file named ``NAME.<env>.yaml``
next to ``NAME.yaml`` that does not say ``extends:`` is an overlay of ``NAME.yaml``; the
loader says so in ``notes`` (``validate`` and ``plan`` print it), and ``extends: null``
makes such a file stand alone. Its environment is ``<env>`` unless it sets
``pipeline.environment``. ``PIPELINE_CONFIG=pipeline_config.prod.yaml`` and ``--env prod``
therefore load the same thing.

``extends`` is data from the file, so it may only name a YAML file inside the project folder
(the folder of the file being run) or one of the shipped configs next to the package (the
documented way to start a project of your own): ``extends: /etc/passwd`` is refused before
the file is opened, so nothing of a foreign file can appear in an error.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recomart_pipeline.config.errors import ConfigError, ConfigIssue
from recomart_pipeline.config.yaml_source import SourceMap, load_yaml_file

EXTENDS_KEY = "extends"
# The folder of the shipped pipeline_config.yaml and its .dev/.test/.prod overlays.
SHIPPED_CONFIG_DIR = Path(__file__).resolve().parents[2]
SHIPPED_CONFIG_NAME = re.compile(r"pipeline_config(\.[A-Za-z0-9_-]+)?\.yaml")
YAML_SUFFIXES = (".yaml", ".yml")
# NAME.<env>.yaml: an environment file of NAME.yaml.
ENVIRONMENT_FILE = re.compile(r"(?P<base>[^.]+)\.(?P<env>[A-Za-z0-9_-]+)(?P<suffix>\.ya?ml)")


@dataclass
class LoadedConfig:
    """The merged data of a config file and every file under it."""

    data: dict[str, Any]
    source_map: SourceMap
    files: list[Path]  # base first, the file the user named last
    notes: list[str] = field(default_factory=list)  # said once by validate/plan


# A Dagster component file (dg's defs.yaml) holds the pipeline config under `attributes:`
# next to `type:`; neither is a config section, so such a file is read as its attributes and
# the file a dg project declares the pipeline in is a config file for the CLI too.
COMPONENT_KEYS = frozenset({"type", "attributes"})


def component_attributes(data: Any, source_map: SourceMap) -> tuple[Any, SourceMap]:
    """The pipeline config in ``data``: its ``attributes`` when it is a component file,
    with positions re-rooted there (errors still name the component file and its lines)."""
    if not (isinstance(data, dict) and data.keys() >= COMPONENT_KEYS):
        return data, source_map
    prefix = ("attributes",)
    positions = {
        key[1:]: position for key, position in source_map.positions.items() if key[:1] == prefix
    }
    return data["attributes"], SourceMap(positions, source_map.lines)


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


def environment_of(path: Path) -> tuple[Path, str] | None:
    """``(NAME.yaml, env)`` when ``path`` is ``NAME.<env>.yaml`` and ``NAME.yaml`` exists."""
    match = ENVIRONMENT_FILE.fullmatch(path.name)
    if match is None:
        return None
    base = path.with_name(f"{match['base']}{match['suffix']}")
    return (base, match["env"]) if base.is_file() else None


def may_extend(target: Path, project_root: Path) -> bool:
    """A YAML file inside the project folder, or a shipped config."""
    if target.suffix not in YAML_SUFFIXES:
        return False
    if target.is_relative_to(project_root):
        return True
    return target.parent == SHIPPED_CONFIG_DIR and bool(SHIPPED_CONFIG_NAME.fullmatch(target.name))


def load_with_overlays(path: Path) -> LoadedConfig:
    """Load ``path`` and every file it extends (explicitly or by its name)."""
    path = path.resolve()
    loaded = _load(path, path.parent, ())
    found = environment_of(path)
    own = loaded.source_map.positions.get(("pipeline", "environment"))
    if found is not None and len(loaded.files) > 1 and (own is None or own.file != path):
        # The file's name says which environment it is, unless the file itself says so.
        section = loaded.data.get("pipeline")
        if section is None or isinstance(section, dict):
            loaded.data["pipeline"] = {**(section or {}), "environment": found[1]}
    return loaded


def _load(path: Path, project_root: Path, chain: tuple[Path, ...]) -> LoadedConfig:
    if path in chain:
        cycle = " -> ".join(p.name for p in (*chain, path))
        raise ConfigError([ConfigIssue(f"'extends' forms a cycle: {cycle}", (EXTENDS_KEY,), path)])
    data, source_map = component_attributes(*load_yaml_file(path))
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
    notes: list[str] = []
    if EXTENDS_KEY in data:
        parent = data.pop(EXTENDS_KEY)
        if parent is None:
            return LoadedConfig(data, source_map, [path])  # stands alone on purpose
        parent_path = _extended(parent, path, project_root, source_map)
    else:
        found = environment_of(path)
        if found is None or found[0].resolve() in chain:
            return LoadedConfig(data, source_map, [path])
        parent_path = found[0].resolve()
        notes.append(
            f"{path.name}: overlay of {found[0].name} (environment '{found[1]}'; "
            "write 'extends: null' to load it alone)"
        )
    base = _load(parent_path, project_root, (*chain, path))
    base.source_map.overlay(source_map)
    return LoadedConfig(
        deep_merge(base.data, data), base.source_map, [*base.files, path], [*base.notes, *notes]
    )


def _extended(parent: Any, path: Path, project_root: Path, source_map: SourceMap) -> Path:
    """The file ``extends: parent`` in ``path`` names, if it may be read."""
    if not isinstance(parent, str) or not parent:
        raise ConfigError(
            [source_map.issue("'extends' must be a file path string", (EXTENDS_KEY,))]
        )
    parent_path = (path.parent / parent).resolve()
    if not may_extend(parent_path, project_root):
        raise ConfigError(
            [
                source_map.issue(
                    f"'extends' may only name a YAML file inside the project folder "
                    f"{project_root} or a shipped config; {parent!r} is not one (not read)",
                    (EXTENDS_KEY,),
                    hint="copy the base config into the project folder, or extend "
                    f"{SHIPPED_CONFIG_DIR / 'pipeline_config.yaml'}",
                )
            ]
        )
    if not parent_path.is_file():
        raise ConfigError(
            [
                source_map.issue(
                    f"extended file not found: {parent_path}",
                    (EXTENDS_KEY,),
                    hint="paths in 'extends' are relative to the file that names them",
                )
            ]
        )
    return parent_path
