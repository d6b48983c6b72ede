"""Safe YAML loading that remembers where every key came from.

PyYAML silently keeps the last of two equal keys and reports no positions for values; we
compose the node tree ourselves so duplicate keys become errors and every key path maps to
its file and line. Only plain YAML types are built (``SafeLoader``): ``!!python/...`` and
other object-constructing tags are refused.

A config is data from outside, so it is read within limits before anything is built from it:
its size in bytes, how deep it nests and how many values it stands for once every alias is
expanded (PyYAML shares an alias's object, but everything after it — the position map,
interpolation, validation — walks the expanded tree, so a "billion laughs" file of a few
hundred bytes would otherwise take minutes and gigabytes). The limits are checked on the
parser's event stream, which needs no recursion and holds one event at a time, so a hostile
file is refused at the line where it crosses a limit, in time and memory proportional to
that line's position; a recursive alias (a block containing an alias of itself) is refused
the same way instead of ending in a RecursionError.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from recomart_pipeline.config.errors import ConfigError, ConfigIssue

KeyPath = tuple[str | int, ...]

MIB = 1024 * 1024


@dataclass(frozen=True)
class YamlLimits:
    """What one config file may be: generous for any real pipeline (the shipped config is
    5 KB, 6 levels deep and 300 values; a 1,000-task config 160 KB and 13,000 values), far
    below what would hurt the machine (100,000 values load in about 1.6 s and 110 MB)."""

    max_bytes: int = 5 * MIB
    max_depth: int = 64
    max_values: int = 100_000


LIMITS = YamlLimits()


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


def load_yaml_file(path: Path, limits: YamlLimits = LIMITS) -> tuple[Any, SourceMap]:
    """Parse one YAML file safely; raise ConfigError on syntax errors, bad tags, duplicates
    and files beyond ``limits``."""
    try:
        with path.open("rb") as handle:
            # Never more than the limit (+1 to notice it) is read: /dev/zero is refused too.
            data = handle.read(limits.max_bytes + 1)
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
    except OSError as exc:
        raise ConfigError(
            [ConfigIssue(f"cannot read config file: {exc.strerror or exc}", file=path)]
        ) from None
    if len(data) > limits.max_bytes:
        raise ConfigError(
            [
                ConfigIssue(
                    f"the file is larger than {limits.max_bytes // MIB} MiB, the limit for a "
                    "config file (it crosses the limit on this line)",
                    (),
                    path,
                    data[: limits.max_bytes].count(b"\n") + 1,
                    hint="a pipeline config is a few kilobytes; is this the right file?",
                )
            ]
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            [
                ConfigIssue(
                    f"not UTF-8 text (byte 0x{data[exc.start]:02x} cannot be decoded)",
                    (),
                    path,
                    line,
                    hint="save the file as UTF-8",
                )
            ]
        ) from None
    return load_yaml_text(text, path, limits)


# libyaml's parser when PyYAML has it (about 8x faster); both build plain types only and
# give the same marks and errors.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _limit_issue(message: str, mark: Any, path: Path, lines: list[str], hint: str) -> ConfigError:
    """The error for a crossed limit at ``mark`` (a ``yaml.Mark``, or libyaml's untyped one)."""
    line = mark.line + 1
    return ConfigError(
        [
            ConfigIssue(
                message,
                (),
                path,
                line,
                mark.column + 1,
                hint,
                source_line=lines[line - 1] if line <= len(lines) else None,
            )
        ]
    )


def check_limits(text: str, path: Path, limits: YamlLimits = LIMITS) -> None:
    """Raise ConfigError at the first place ``text`` nests too deep, expands to too many
    values or holds a recursive alias. Syntax errors are left to the real parse, which
    reports them with their position."""
    lines = text.splitlines()
    loader = _Loader(text)
    total = 0  # values so far, every alias counted as the block it stands for
    heights: dict[str, int] = {}  # anchor -> levels of its block
    sizes: dict[str, int] = {}  # anchor -> values in its block (aliases expanded)
    # One entry per open collection: its anchor, ``total`` before it, its children's height.
    open_blocks: list[list[Any]] = []
    try:
        while True:
            event = loader.get_event()
            height: int | None = 0  # levels the event adds to the block around it
            if isinstance(event, yaml.CollectionStartEvent):
                total += 1
                open_blocks.append([event.anchor, total - 1, 0])
                height = None  # known when it ends
                depth = len(open_blocks)
            elif isinstance(event, yaml.CollectionEndEvent):
                anchor, before, children = open_blocks.pop()
                height = children + 1
                if anchor is not None:
                    heights[anchor], sizes[anchor] = height, total - before
                depth = len(open_blocks) + height
            elif isinstance(event, yaml.ScalarEvent):
                total += 1
                if event.anchor is not None:
                    heights[event.anchor], sizes[event.anchor] = 0, 1
                depth = len(open_blocks)
            elif isinstance(event, yaml.AliasEvent):
                if any(block[0] == event.anchor for block in open_blocks):
                    raise _limit_issue(
                        f"alias '*{event.anchor}' is inside the block '&{event.anchor}' it "
                        "repeats (a recursive alias)",
                        event.start_mark,
                        path,
                        lines,
                        "an alias can only repeat a block that is complete before it",
                    )
                if event.anchor not in sizes:
                    continue  # undefined: the parse below reports it at its place
                height = heights[event.anchor]
                total += sizes[event.anchor]
                depth = len(open_blocks) + height
            elif isinstance(event, yaml.StreamEndEvent):
                return
            else:
                continue
            if height is not None and open_blocks:
                open_blocks[-1][2] = max(open_blocks[-1][2], height)
            if depth > limits.max_depth:
                raise _limit_issue(
                    f"the YAML nests deeper than {limits.max_depth} levels (aliases expanded), "
                    "the limit for a config file",
                    event.start_mark,
                    path,
                    lines,
                    "a pipeline config needs a handful of levels; flatten this value",
                )
            if total > limits.max_values:
                raise _limit_issue(
                    f"the YAML stands for more than {limits.max_values:,} values once its "
                    "aliases are expanded, the limit for a config file",
                    event.start_mark,
                    path,
                    lines,
                    "each use of an alias (*name) counts its whole block; aliases of "
                    "blocks made of aliases multiply: write the values out instead",
                )
    except yaml.MarkedYAMLError as exc:
        # libyaml stops at 1,000 levels on its own, sometimes before an event shows it.
        if "maximum nesting depth" in str(exc.problem) and exc.problem_mark is not None:
            raise _limit_issue(
                f"the YAML nests deeper than {limits.max_depth} levels, the limit for a "
                "config file",
                exc.problem_mark,
                path,
                lines,
                "a pipeline config needs a handful of levels; flatten this value",
            ) from None
        return
    except yaml.YAMLError:
        return
    finally:
        loader.dispose()


def load_yaml_text(text: str, path: Path, limits: YamlLimits = LIMITS) -> tuple[Any, SourceMap]:
    source_map = SourceMap(lines={path: text.splitlines()})
    issues: list[ConfigIssue] = []
    check_limits(text, path, limits)
    loader = _Loader(text)
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
