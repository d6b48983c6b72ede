"""How verification polls a starting service: often while nothing listens, gently once it
answers, and never past its timeout (a fake clock: no real waiting)."""

from __future__ import annotations

import urllib.error
from typing import Any

import pytest

from recomart_pipeline.deployment import verification
from recomart_pipeline.deployment.verification import (
    CONNECT_POLL_SECONDS,
    READY_POLL_SECONDS,
    VerificationError,
    wait_for_version,
)


class _Clock:
    """time.monotonic and time.sleep of a clock that moves only when slept on."""

    def __init__(self) -> None:
        self.now = 0.0
        self.pauses: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    fake = _Clock()
    monkeypatch.setattr(verification.time, "monotonic", fake.monotonic)
    monkeypatch.setattr(verification.time, "sleep", fake.sleep)
    return fake


def _answers(monkeypatch: pytest.MonkeyPatch, answers: list[dict[str, Any] | None]) -> None:
    """The service's /ready answers in turn; None: the connection is refused."""
    queue = iter(answers)

    def readiness(base_url: str) -> dict[str, Any]:
        answer = next(queue)
        if answer is None:
            raise urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))
        return answer

    monkeypatch.setattr(verification, "_readiness", readiness)


def test_polls_often_while_nothing_listens_and_gently_once_it_answers(clock, monkeypatch):
    starting = {"ready": False, "model_version": None}
    ready = {"ready": True, "model_version": "v0002"}
    _answers(monkeypatch, [None, None, None, starting, ready])
    assert wait_for_version("http://service", "v0002", 60) == ready
    assert clock.pauses == [CONNECT_POLL_SECONDS] * 3 + [READY_POLL_SECONDS]
    assert CONNECT_POLL_SECONDS < READY_POLL_SECONDS


def test_a_service_that_never_gets_ready_fails_at_its_timeout(clock, monkeypatch):
    _answers(monkeypatch, [None] * 10_000)
    with pytest.raises(VerificationError) as excinfo:
        wait_for_version("http://service", "v0002", 5)
    assert "did not serve model v0002 within 5s" in str(excinfo.value)
    assert "Connection refused" in str(excinfo.value)
    assert clock.now >= 5  # it waited the whole timeout, in pauses
    assert set(clock.pauses) == {CONNECT_POLL_SECONDS}


def test_a_service_serving_another_model_fails_at_its_timeout(clock, monkeypatch):
    _answers(monkeypatch, [{"ready": True, "model_version": "v0001"}] * 10_000)
    with pytest.raises(VerificationError) as excinfo:
        wait_for_version("http://service", "v0002", 5)
    assert "(last: serving v0001)" in str(excinfo.value)
    assert set(clock.pauses) == {READY_POLL_SECONDS}
