"""A Dagster console logger that prints task events as short lines.

Dagster's default console logger prints every task log event as its message followed by the
event's fields as inline JSON (runtime.task_logging forwards them that way so the UI keeps
them). This logger, given to a job as its ``console`` logger, prints the same short line as
the project CLI (``task_logging.console_text``) and leaves Dagster's DEBUG step events out
unless ``log_level: DEBUG`` is asked for; ``verbose: true`` prints the events whole. Only
the console changes: Dagster's event log (the UI) keeps every field.

A job uses it when its definitions register it (``Definitions(loggers={"console":
short_console_logger})``) and its run config names it (``loggers: {console: {}}``, which a
job's default run config can carry): Dagster instantiates only the loggers a run configures.
"""

from __future__ import annotations

import logging
import sys
from datetime import datetime

from dagster import Field, InitLoggerContext, logger
from dagster._core.utils import coerce_valid_log_level

from recomart_pipeline.runtime.task_logging import console_text


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
            return f"{event.event_type_value}: {lines[0] if lines else ''}".rstrip(": ")
        return console_text(message, self.verbose, step_line_shown=self.steps_shown)

    def format(self, record: logging.LogRecord) -> str:
        meta = getattr(record, "dagster_meta", None)
        where = ""
        if isinstance(meta, dict):
            where = f"{str(meta.get('run_id') or '')[:8]} {meta.get('step_key') or '-'}: "
        stamp = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        return f"{stamp} {record.levelname:<7} {where}{self.text(record) or ''}"


class _SkipEmpty(logging.Filter):
    def __init__(self, formatter: ShortDagsterFormatter) -> None:
        super().__init__()
        self.formatter = formatter

    def filter(self, record: logging.LogRecord) -> bool:
        return self.formatter.text(record) is not None


@logger(
    Field(
        {
            "log_level": Field(str, is_required=False, default_value="INFO"),
            "name": Field(str, is_required=False, default_value="dagster"),
            "verbose": Field(
                bool,
                is_required=False,
                default_value=False,
                description="print task events whole, with their JSON fields",
            ),
        }
    ),
    description="Short console lines for task events (their fields stay in the event log).",
)
def short_console_logger(init_context: InitLoggerContext) -> logging.Logger:
    settings = init_context.logger_config
    level = coerce_valid_log_level(settings["log_level"])
    console = logging.Logger(settings["name"], level)
    handler = logging.StreamHandler(sys.stderr)
    formatter = ShortDagsterFormatter(settings["verbose"], steps_shown=level <= logging.DEBUG)
    handler.setFormatter(formatter)
    handler.addFilter(_SkipEmpty(formatter))
    console.addHandler(handler)
    return console
