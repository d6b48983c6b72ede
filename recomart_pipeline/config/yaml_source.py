"""Safe YAML loading that remembers where every key came from.

PyYAML silently keeps the last of two equal keys and reports no positions for values; we
compose the node tree ourselves so duplicate keys become errors and every key path maps to
its file and line. Only plain YAML types are built (``SafeLoader``): ``!!python/...`` and
other object-constructing tags are refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from recomart_pipeline.config.errors import ConfigError, ConfigIssue

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Position:
    file: Path
    line: int
    column: int


@dataclass
class SourceMap:
    """Key path → position of the value, plus each file's lines for error context."""

    positions: dict[KeyPath, Position] = field(default_factory=dict)
    lines: dict[Path, list[str]] = field(default_factory=dict)

    def locate(self, path: KeyPath) -> Position | None:
        """Position of ``path`` or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            position = self.positions.get(path[:end])
            if position is not None:
                return position
        return None

    def issue(self, message: str, path: KeyPath, hint: str | None = None) -> ConfigIssue:
        position = self.locate(path)
        if position is None:
            return ConfigIssue(message, path, hint=hint)
        file_lines = self.lines.get(position.file, [])
        source = file_lines[position.line - 1] if 0 < position.line <= len(file_lines) else None
        return ConfigIssue(
            message,
            path,
            position.file,
            position.line,
            position.column,
            hint,
            source_line=source,
        )

    def overlay(self, other: SourceMap) -> None:
        """Take ``other``'s positions where it defines a path (a deep-merged overlay)."""
        self.positions.update(other.positions)
        self.lines.update(other.lines)


def _mark_position(file: Path, mark: yaml.Mark) -> Position:
    return Position(file, mark.line + 1, mark.column + 1)


class _Composer:
    """Walks the composed node tree: records positions and finds duplicate keys."""

    def __init__(self, file: Path, source_map: SourceMap, issues: list[ConfigIssue]) -> None:
        self.file = file
        self.source_map = source_map
        self.issues = issues

    def walk(self, node: yaml.Node, path: KeyPath) -> None:
        self.source_map.positions.setdefault(path, _mark_position(self.file, node.start_mark))
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    # A list or mapping as a key: constructing the document reports it
                    # (unhashable key) with its position.
                    continue
                key: str = key_node.value
                if key == "<<":
                    continue
                child: KeyPath = (*path, key)
                line = key_node.start_mark.line + 1
                if key in seen:
                    position = _mark_position(self.file, key_node.start_mark)
                    lines = self.source_map.lines.get(self.file, [])
                    self.issues.append(
                        ConfigIssue(
                            f"duplicate key '{key}' (first defined on line {seen[key]})",
                            child,
                            self.file,
                            position.line,
                            position.column,
                            hint="YAML keeps only one of them; merge the two blocks into one",
                            source_line=lines[line - 1] if line <= len(lines) else None,
                        )
                    )
                    continue
                seen[key] = line
                self.source_map.positions[child] = _mark_position(self.file, key_node.start_mark)
                self.walk(value_node, child)
                self.source_map.positions.setdefault(
                    child, _mark_position(self.file, key_node.start_mark)
                )
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.walk(item, (*path, index))


def load_yaml_file(path: Path) -> tuple[Any, SourceMap]:
    """Parse one YAML file safely; raise ConfigError on syntax errors, bad tags, duplicates."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            [
                ConfigIssue(
                    f"config file not found: {path}",
                    file=path,
                    hint="pass the path of an existing file or set PIPELINE_CONFIG",
                )
            ]
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigIssue(f"cannot read config file: {exc}", file=path)]) from None
    return load_yaml_text(text, path)


def load_yaml_text(text: str, path: Path) -> tuple[Any, SourceMap]:
    source_map = SourceMap(lines={path: text.splitlines()})
    issues: list[ConfigIssue] = []
    # libyaml's parser when PyYAML has it (about 8x faster); both build plain types only and
    # give the same marks and errors.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return {}, source_map
        _Composer(path, source_map, issues).walk(node, ())
        if issues:
            raise ConfigError(issues)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        problem = exc.problem or "invalid YAML"
        hint = "check indentation, colons and quotes around this line"
        if "could not determine a constructor" in problem or "tag" in (exc.problem or ""):
            problem = f"{problem.strip()} (object-constructing YAML tags are not allowed)"
            hint = "use plain YAML values: strings, numbers, booleans, lists and mappings"
        lines = source_map.lines[path]
        raise ConfigError(
            [
                ConfigIssue(
                    f"invalid YAML: {problem}",
                    (),
                    path,
                    line,
                    column,
                    hint,
                    source_line=lines[line - 1] if line and line <= len(lines) else None,
                )
            ]
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigIssue(f"invalid YAML: {exc}", (), path)]) from None
    finally:
        loader.dispose()
    return data, source_map
