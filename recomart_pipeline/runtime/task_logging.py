"""Structured task logs: one JSON object per line in ``logs/{task}.log`` (and a combined file).

Records carry the fields the orchestration plan asks for (run_id, ts, task, level, attempt,
…); extra fields are passed with ``logger.info(msg, extra={"fields": {...}})``. A forwarding
handler lets the orchestration layer show the same events in Dagster's run log without this
module importing dagster.
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
    """A logger for one task attempt; its handlers are closed when the block ends."""
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
        console.setFormatter(TextFormatter(static, redact))
        handlers.append(console)
    for handler in handlers:
        logger.addHandler(handler)
    try:
        yield logger
    finally:
        for handler in handlers:
            logger.removeHandler(handler)
            handler.close()
