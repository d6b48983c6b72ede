"""One error type for every mistake in a user's config, reported all at once.

Modelled on Dagster Components' and blueprint's config errors: each issue carries the file,
line, column and key path, says what is wrong and the value given, and how to fix it; the
CLI prints them without a traceback and exits with code 2.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path


def format_key_path(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "<root>"


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{matches[0]}'?" if matches else None


SOURCE_WIDTH = 120


def _window(line: str, column: int | None) -> tuple[str, int | None]:
    """At most ``SOURCE_WIDTH`` characters of a source line around ``column`` (a hostile
    file can have a line of megabytes), and the column within what is shown."""
    if len(line) <= SOURCE_WIDTH:
        return line, column
    start = max(0, min((column or 1) - 1 - SOURCE_WIDTH // 2, len(line) - SOURCE_WIDTH))
    shown = line[start : start + SOURCE_WIDTH]
    prefix = "…" if start else ""
    suffix = "…" if start + SOURCE_WIDTH < len(line) else ""
    return f"{prefix}{shown}{suffix}", column - start + len(prefix) if column else None


@dataclass(frozen=True)
class ConfigIssue:
    """One problem at one place in a config file."""

    message: str
    key_path: tuple[str | int, ...] = ()
    file: Path | None = None
    line: int | None = None
    column: int | None = None
    hint: str | None = None
    source_line: str | None = field(default=None, compare=False)

    @property
    def location(self) -> str:
        name = self.file.name if self.file else "<config>"
        return f"{name}:{self.line}" if self.line else name

    def render(self, *, context: bool = True) -> str:
        head = f"{self.location} {format_key_path(self.key_path)}: {self.message}"
        lines = [head]
        if context and self.source_line is not None and self.line:
            source, column = _window(self.source_line, self.column)
            lines.append(f"    {self.line:>4} | {source}")
            if column:
                lines.append(f"         | {' ' * (column - 1)}^")
        if self.hint:
            lines.append(f"    hint: {self.hint}")
        return "\n".join(lines)


class ConfigError(Exception):
    """The config is wrong; ``issues`` lists every problem found in one pass."""

    def __init__(self, issues: Sequence[ConfigIssue]) -> None:
        self.issues = list(issues)
        super().__init__(self.render())

    def render(self, *, context: bool = True) -> str:
        count = len(self.issues)
        header = f"Invalid pipeline config ({count} error{'s' if count != 1 else ''}):"
        return "\n".join([header, *(issue.render(context=context) for issue in self.issues)])
