"""A circuit breaker whose state survives across runs (a JSON file under the storage root).

A source that keeps failing opens the circuit: for ``cooldown_seconds`` calls fail fast
with CircuitOpenError instead of hammering the source, so the caller can use its fallback.
After the cool-down one trial call is let through (half-open): success closes the circuit,
failure opens it again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from recomart_pipeline.contract.errors import SourceConnectionError
from recomart_pipeline.contract.files import write_json_atomic
from recomart_pipeline.contract.redaction import strip_url_credentials

T = TypeVar("T")


class CircuitOpenError(SourceConnectionError):
    """The circuit is open: the source is not called until the cool-down has passed."""


@dataclass
class CircuitState:
    failures: int = 0
    opened_at: float | None = None
    last_error: str = ""


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        state_dir: Path,
        *,
        failure_threshold: int,
        cooldown_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.path = state_dir / f"{name}.json"
        self.failure_threshold = failure_threshold
        self.cooldown_seconds = cooldown_seconds
        self.clock = clock

    def state(self) -> CircuitState:
        if not self.path.exists():
            return CircuitState()
        try:
            return CircuitState(**json.loads(self.path.read_text()))
        except (OSError, json.JSONDecodeError, TypeError):
            return CircuitState()

    def _save(self, state: CircuitState) -> None:
        write_json_atomic(self.path, state.__dict__)

    @property
    def is_open(self) -> bool:
        state = self.state()
        return (
            state.opened_at is not None and self.clock() - state.opened_at < self.cooldown_seconds
        )

    def call(
        self, fn: Callable[[], T], counts: tuple[type[BaseException], ...] = (Exception,)
    ) -> T:
        """Call ``fn`` through the breaker; only exceptions in ``counts`` are source failures."""
        state = self.state()
        if self.is_open:
            remaining = self.cooldown_seconds - (self.clock() - (state.opened_at or 0))
            raise CircuitOpenError(
                f"circuit '{self.name}' is open after {state.failures} consecutive failures "
                f"(last: {state.last_error}); retrying the source in {remaining:.0f}s",
                hint="the fallback source is used meanwhile; fix the source or wait",
            )
        try:
            value = fn()
        except counts as exc:
            state.failures += 1
            state.last_error = strip_url_credentials(str(exc))[:300]  # stored on disk
            if state.failures >= self.failure_threshold:
                state.opened_at = self.clock()
            self._save(state)
            raise
        if state.failures or state.opened_at is not None:
            self._save(CircuitState())
        return value
