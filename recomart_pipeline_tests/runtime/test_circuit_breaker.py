"""Circuit breaker: opens after N failures, fails fast while open, half-opens after cool-down."""

from __future__ import annotations

import pytest

from recomart_pipeline.runtime.circuit_breaker import CircuitBreaker, CircuitOpenError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _failing() -> None:
    raise ConnectionError("source down")


def test_opens_after_threshold_and_state_survives_a_new_instance(tmp_path):
    clock = Clock()
    breaker = CircuitBreaker("src", tmp_path, failure_threshold=2, cooldown_seconds=60, clock=clock)
    for _ in range(2):
        with pytest.raises(ConnectionError):
            breaker.call(_failing)
    again = CircuitBreaker("src", tmp_path, failure_threshold=2, cooldown_seconds=60, clock=clock)
    calls = []
    with pytest.raises(CircuitOpenError, match="open after 2 consecutive failures"):
        again.call(lambda: calls.append(1))
    assert calls == []  # the source was not touched while open


def test_half_open_trial_closes_on_success_and_reopens_on_failure(tmp_path):
    clock = Clock()
    breaker = CircuitBreaker("src", tmp_path, failure_threshold=1, cooldown_seconds=60, clock=clock)
    with pytest.raises(ConnectionError):
        breaker.call(_failing)
    clock.now += 61
    with pytest.raises(ConnectionError):
        breaker.call(_failing)  # trial failed: open again
    assert breaker.is_open
    clock.now += 61
    assert breaker.call(lambda: "data") == "data"
    assert not breaker.is_open and breaker.state().failures == 0
