"""The proposal as a config overlay (YAML) and as the summary ``init-data`` prints.

The overlay holds only what differs from the base config (plus the choices worth seeing, such
as the split protocol), so the shipped defaults keep applying to everything else. Its header
comment repeats the choices to confirm, so the file explains itself after the terminal output
is gone. Data paths are written relative to the overlay's folder, as the loader resolves
them; a file outside that folder keeps its absolute path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from recomart_pipeline.onboarding.inference import Choice, Proposal
from recomart_pipeline.tasks.specs.ingestion import printable

CONFIDENCE_MARK = {"high": "high  ", "medium": "medium", "low": "low   "}


def _relative(path: str, folder: Path) -> str:
    absolute = os.path.abspath(path)
    relative = os.path.relpath(absolute, folder.resolve())
    if relative == ".." or relative.startswith(".." + os.sep):
        return absolute
    return relative.replace(os.sep, "/")


def overlay_data(proposal: Proposal, base: str, folder: Path) -> dict[str, Any]:
    """The overlay as a mapping: ``extends`` the base, the source blocks, task settings."""
    sources: dict[str, Any] = {}
    for table in ("interactions", "items", "users"):
        found = proposal.tables.get(table)
        if found is None:
            sources[table] = None
            continue
        sources[table] = {**found.source, "path": _relative(found.source["path"], folder)}
    tasks: dict[str, Any] = {"ingestion": {"config": {"source": sources}}}
    for task, settings in proposal.tasks.items():
        tasks[task] = {"config": settings}
    return {"extends": base, "tasks": tasks}


def _choice_line(choice: Choice) -> str:
    return printable(
        f"[{CONFIDENCE_MARK[choice.confidence]}] {choice.what}: {choice.why} (key: {choice.key})"
    )


def render_overlay(proposal: Proposal, base: str, folder: Path, command: str) -> str:
    """The overlay's text, with the facts and the choices to confirm as a header comment."""
    header = [
        f"# Written by: {command}",
        "# Review the guesses below; each names the config key that changes it.",
        "#",
        *(f"# {printable(fact)}" for fact in proposal.facts),
        "#",
        "# Choices to confirm:",
        *(f"#   {_choice_line(choice)}" for choice in proposal.choices),
        *(f"# WARNING: {printable(warning)}" for warning in proposal.warnings),
    ]
    body = yaml.safe_dump(
        overlay_data(proposal, base, folder),
        sort_keys=False,
        default_flow_style=None,
        allow_unicode=True,
        width=100,
    )
    return "\n".join(header) + "\n" + body


def render_summary(proposal: Proposal) -> str:
    """What ``init-data`` prints: what it found, its choices with confidence and key."""
    lines = ["Found:", *(f"  {printable(fact)}" for fact in proposal.facts), ""]
    lines += ["Choices to confirm:", *(f"  {_choice_line(choice)}" for choice in proposal.choices)]
    lines += [f"WARNING: {printable(warning)}" for warning in proposal.warnings]
    return "\n".join(lines)
