"""A Dagster console logger that prints task events as short lines.

Dagster's default console logger prints every task log event as its message followed by the
event's fields as inline JSON (runtime.task_logging forwards them that way so the UI keeps
them). This logger, given to a job as its ``console`` logger, prints the same short line as
the project CLI (``task_logging.console_text``) and leaves Dagster's DEBUG step events out
unless ``log_level: DEBUG`` is asked for; ``verbose: true`` (or ``RECOMART_VERBOSE_CONSOLE=1``
in the environment of the process running the run) prints the events whole. Only the
console changes: Dagster's event log (the UI) and the task log files keep every field.

Why a default run config: Dagster instantiates only the loggers a run's config names, and
falls back to its own colored console otherwise, so registering the logger
(``Definitions(loggers=CONSOLE_LOGGERS)``, which replaces Dagster's ``console`` for the
location's jobs) is not enough. The pipeline's job carries ``QUIET_CONSOLE`` as its default
run config (Dagster's documented way to give asset jobs a logger), so ``dagster job
execute``, ``dg launch --job``, the launchpad, schedules and sensors print short lines
without anyone writing ``loggers:``. A run config that sets ``loggers:`` itself replaces that
default. Dagster has no default run config for its implicit asset job (``dg launch
--assets``, the asset graph's *Materialize*), whose runs name the logger explicitly
(``--config-json '{"loggers": {"console": {}}}'``) or get Dagster's console.
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import datetime
from typing import Any

from dagster import (
    DagsterEventType,
    Field,
    InitLoggerContext,
    LoggerDefinition,
    Noneable,
    logger,
)
from dagster._core.utils import coerce_valid_log_level

from recomart_pipeline.runtime.task_logging import console_text

# Set to 1/true/yes in the environment of the process running a run (``dagster job execute``,
# ``dagster dev``, the daemon) to print task events whole, as ``verbose: true`` does.
VERBOSE_CONSOLE_ENV = "RECOMART_VERBOSE_CONSOLE"
_TRUE = frozenset({"1", "true", "yes", "on"})


def verbose_from_env() -> bool:
    """Whether ``RECOMART_VERBOSE_CONSOLE`` asks for whole task events."""
    return os.environ.get(VERBOSE_CONSOLE_ENV, "").strip().lower() in _TRUE


class ShortDagsterFormatter(logging.Formatter):
    """``HH:MM:SS LEVEL run step: text`` from the record's Dagster metadata."""

    def __init__(self, verbose: bool, steps_shown: bool) -> None:
        super().__init__()
        self.verbose = verbose
        self.steps_shown = steps_shown  # DEBUG: Dagster's STEP_START line says "started"

    def text(self, record: logging.LogRecord) -> str | None:
        """The line's text, or None for an event the console leaves out."""
        meta = getattr(record, "dagster_meta", None)
        if not isinstance(meta, dict):
            return record.getMessage()
        message = str(meta.get("orig_message") or "")
        event = meta.get("dagster_event")
        if event is not None:
            lines = message.strip().splitlines()
            return f"{event.event_type.name}: {lines[0] if lines else ''}".rstrip(": ")
        return console_text(message, self.verbose, step_line_shown=self.steps_shown)

    def format(self, record: logging.LogRecord) -> str:
        meta = getattr(record, "dagster_meta", None)
        where = ""
        if isinstance(meta, dict):
            where = f"{str(meta.get('run_id') or '')[:8]} {meta.get('step_key') or '-'}: "
        stamp = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        return f"{stamp} {record.levelname:<7} {where}{self.text(record) or ''}"


# Dagster logs a run's success at DEBUG; at INFO it is still the console's last word.
OUTCOME_EVENTS = frozenset({DagsterEventType.RUN_SUCCESS})


def _event_type(record: logging.LogRecord) -> DagsterEventType | None:
    meta = getattr(record, "dagster_meta", None)
    event = meta.get("dagster_event") if isinstance(meta, dict) else None
    return getattr(event, "event_type", None)


class _Shown(logging.Filter):
    """Records at ``level`` and above, the run's outcome up to INFO, and none whose line is
    empty (the start event Dagster's own step line already says)."""

    def __init__(self, formatter: ShortDagsterFormatter, level: int) -> None:
        super().__init__()
        self.formatter = formatter
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        wanted = record.levelno >= self.level or (
            self.level <= logging.INFO and _event_type(record) in OUTCOME_EVENTS
        )
        return wanted and self.formatter.text(record) is not None


@logger(
    Field(
        {
            "log_level": Field(str, is_required=False, default_value="INFO"),
            "name": Field(str, is_required=False, default_value="dagster"),
            "verbose": Field(
                Noneable(bool),
                is_required=False,
                default_value=None,
                description="true: print task events whole, with their JSON fields; unset: "
                f"whole only when ${VERBOSE_CONSOLE_ENV} is 1.",
            ),
        }
    ),
    description="Short console lines for task events (their fields stay in the event log); "
    "log_level: DEBUG adds Dagster's step events.",
)
def short_console_logger(init_context: InitLoggerContext) -> logging.Logger:
    settings = init_context.logger_config
    level = coerce_valid_log_level(settings["log_level"])
    console = logging.Logger(settings["name"], min(level, logging.DEBUG))  # _Shown decides
    handler = logging.StreamHandler(sys.stderr)
    verbose = settings["verbose"]
    formatter = ShortDagsterFormatter(
        verbose_from_env() if verbose is None else verbose, steps_shown=level <= logging.DEBUG
    )
    handler.setFormatter(formatter)
    handler.addFilter(_Shown(formatter, level))
    console.addHandler(handler)
    return console


# The location's loggers: ours in place of Dagster's ``console`` (it takes the same
# ``log_level`` and ``name`` settings, so a run config written for Dagster's stays valid).
CONSOLE_LOGGERS: dict[str, LoggerDefinition] = {"console": short_console_logger}
# The pipeline job's default run config: name the logger, or Dagster would not start it.
QUIET_CONSOLE: dict[str, Any] = {"loggers": {"console": {}}}
