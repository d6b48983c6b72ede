"""Structured task logs: one JSON object per line in ``logs/{task}.log`` (and a combined file).

Records carry the fields the orchestration plan asks for (run_id, ts, task, level, attempt,
…); extra fields are passed with ``logger.info(msg, extra={"fields": {...}})``. A forwarding
handler lets the orchestration layer show the same events in Dagster's run log without this
module importing dagster: there each event is its message followed by its fields as inline
JSON, so the UI keeps every field.

The console is for people: one short line per event, the message and at most a few scalar
fields (``short_line``), unless the user asks for ``--verbose``; ``console_text`` turns a
forwarded event back into that line, so the CLI can print Dagster's stored events briefly.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

Forward = Callable[[int, str], None]
# At most this many fields follow the message on a short console line; longer text is cut.
SHORT_FIELDS = 3
SHORT_TEXT = 60
# Fields a short line leaves out: the message already says them.
SHORT_HIDDEN = frozenset({"status", "run_id", "task", "attempt", "correlation_id", "git_sha"})


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _short_value(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    text = str(value).replace("\n", " ")
    return text if len(text) <= SHORT_TEXT else text[: SHORT_TEXT - 1] + "…"


def short_line(message: str, fields: dict[str, Any] | None) -> str:
    """``message (key=value, …)``: the first few scalar fields, then scalar metrics; nested
    values (paths, configs) stay in the log files and the UI."""
    fields = fields or {}
    metrics = fields.get("metrics")
    candidates = [
        *((k, v) for k, v in fields.items() if k not in SHORT_HIDDEN and _scalar(v)),
        *((k, v) for k, v in (metrics.items() if isinstance(metrics, dict) else ()) if _scalar(v)),
    ]
    shown = ", ".join(f"{k}={_short_value(v)}" for k, v in candidates[:SHORT_FIELDS])
    first = message.strip().splitlines()[0] if message.strip() else ""
    return f"{first} ({shown})" if shown else first


def split_fields(text: str) -> tuple[str, dict[str, Any]]:
    """The message and fields of an event as ``ForwardHandler`` joined them (``msg {json}``);
    a text without trailing JSON fields is all message."""
    start = text.find(" {")
    while start != -1:
        try:
            fields = json.loads(text[start + 1 :])
        except ValueError:
            start = text.find(" {", start + 1)
            continue
        if isinstance(fields, dict):
            return text[:start], fields
        break
    return text, {}


# The runtime's "task started" event (runtime.runner) carries only nested fields (input paths,
# config); where Dagster's own step line already says "started", the short console omits it.
STARTED_MESSAGE = "task started"


def console_text(text: str, verbose: bool, step_line_shown: bool = False) -> str | None:
    """A forwarded event as the console shows it: short, or whole with ``verbose``; None for
    the start event when ``step_line_shown`` (the progress printer printed "started")."""
    if verbose:
        return text
    message, fields = split_fields(text)
    if step_line_shown and message == STARTED_MESSAGE:
        return None
    return short_line(message, fields)


@lru_cache(maxsize=8)
def git_sha(root: Path) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


class JsonLineFormatter(logging.Formatter):
    def __init__(self, static: dict[str, Any], redact: Callable[[str], str]) -> None:
        super().__init__()
        self.static = static
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "message": record.getMessage(),
            **self.static,
        }
        payload.update(getattr(record, "fields", {}) or {})
        if record.exc_info and record.exc_info[1] is not None:
            payload["exception"] = repr(record.exc_info[1])
        return self.redact(json.dumps(payload, default=str, sort_keys=False))


class TextFormatter(logging.Formatter):
    def __init__(self, static: dict[str, Any], redact: Callable[[str], str]) -> None:
        super().__init__("%(asctime)s %(levelname)-7s [%(task)s] %(message)s")
        self.static = static
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        record.task = self.static.get("task", "-")
        fields = getattr(record, "fields", None)
        text = super().format(record)
        if fields:
            text += " " + json.dumps(fields, default=str)
        return self.redact(text)


def console_forward(task: str, verbose: bool) -> Forward:
    """Print each event of ``task`` on stderr as the console shows it (``console_text``)."""

    def forward(level: int, message: str) -> None:
        stamp = datetime.now().strftime("%H:%M:%S")
        name = logging.getLevelName(level)
        print(f"{stamp} {name:<7} [{task}] {console_text(message, verbose)}", file=sys.stderr)

    return forward


class ShortFormatter(logging.Formatter):
    """The console's line: time, level, task and ``short_line`` (no JSON)."""

    def __init__(self, static: dict[str, Any], redact: Callable[[str], str]) -> None:
        super().__init__("%(asctime)s %(levelname)-7s [%(task)s] %(message)s", "%H:%M:%S")
        self.static = static
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        record.task = self.static.get("task", "-")
        short = logging.makeLogRecord(record.__dict__)
        short.msg, short.args = short_line(record.getMessage(), getattr(record, "fields", None)), ()
        short.exc_info = short.exc_text = None
        return self.redact(super().format(short))


class ForwardHandler(logging.Handler):
    """Send each record to a callback (e.g. Dagster's context.log) after redaction."""

    def __init__(self, forward: Forward, redact: Callable[[str], str]) -> None:
        super().__init__()
        self.forward = forward
        self.redact = redact

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        fields = getattr(record, "fields", None)
        if fields:
            message += " " + json.dumps(fields, default=str)
        self.forward(record.levelno, self.redact(message))


@contextmanager
def task_logger(
    *,
    task: str,
    run_id: str,
    attempt: int,
    log_dir: Path,
    combined_file: Path | None,
    level: str,
    fmt: str,
    redact: Callable[[str], str],
    forward: Forward | None = None,
    project_root: Path | None = None,
) -> Iterator[logging.Logger]:
    """A logger for one task attempt; its handlers are closed when the block ends.

    Events go to the log files in ``fmt``, and to ``forward`` (Dagster's run log, or
    ``console_forward``) in full; without one, to the console as short lines.
    """
    static = {"run_id": run_id, "task": task, "attempt": attempt, "correlation_id": run_id}
    if project_root is not None:
        static["git_sha"] = git_sha(project_root)
    formatter_cls = JsonLineFormatter if fmt == "json" else TextFormatter
    logger = logging.getLogger(f"recomart.task.{task}.{run_id}.{attempt}")
    logger.setLevel(level)
    logger.propagate = False
    handlers: list[logging.Handler] = []
    log_dir.mkdir(parents=True, exist_ok=True)
    for path in filter(None, (log_dir / f"{task}.log", combined_file)):
        path.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(path, encoding="utf-8")
        file_handler.setFormatter(formatter_cls(static, redact))
        handlers.append(file_handler)
    if forward is not None:
        handlers.append(ForwardHandler(forward, redact))
    else:
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(ShortFormatter(static, redact))
        handlers.append(console)
    for handler in handlers:
        logger.addHandler(handler)
    try:
        yield logger
    finally:
        for handler in handlers:
            logger.removeHandler(handler)
            handler.close()
