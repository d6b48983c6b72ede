"""What the runner announces about task attempts, and who listens.

The runner only announces; side channels outside the runtime (MLflow tracking, slow-task
alerts) subscribe from their own packages. So the runtime depends on none of them, and a
deployment without MLflow or alerts carries none of their imports into a task.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from recomart_pipeline.runtime.artifacts import Checkpoint

if TYPE_CHECKING:
    from recomart_pipeline.config import PipelineConfig


@dataclass(frozen=True)
class Published:
    """A task attempt succeeded and its checkpoint is published."""

    config: PipelineConfig
    task: str
    run_id: str
    checkpoint: Checkpoint
    upstream: dict[str, Checkpoint]
    logger: logging.Logger


@dataclass(frozen=True)
class Slow:
    """A task took longer than ``monitoring.performance.slow_task_threshold_seconds``."""

    config: PipelineConfig
    task: str
    run_id: str
    duration_s: float


class AttemptListener:
    """Override what you need; a listener's error in ``published`` fails the attempt (a
    tracking server the config requires), in ``slow`` it is only logged by the runner."""

    def published(self, event: Published) -> None:
        """Called inside the attempt, after its outputs are published."""

    def slow(self, event: Slow) -> None:
        """Called after a slow attempt finished."""


_listeners: list[AttemptListener] = []


def subscribe(listener: AttemptListener) -> None:
    """Add ``listener`` once (subscribing the same kind twice is a no-op)."""
    if not any(type(existing) is type(listener) for existing in _listeners):
        _listeners.append(listener)


def listeners() -> tuple[AttemptListener, ...]:
    return tuple(_listeners)
