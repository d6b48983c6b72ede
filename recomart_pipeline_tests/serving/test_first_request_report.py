"""How ``benchmarks/serving.py`` judges the first request from its repeated runs: against
the next requests in a stream, and against later requests in the same position (each right
after a ``/ready`` of its own), which separates a first-time cost from the pause that any
request after ``/ready`` follows. Runs saved before a figure existed still render."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

from recomart_pipeline_tests.helpers import benchmark_module


@pytest.fixture(scope="module")
def serving() -> ModuleType:
    return benchmark_module("serving")


def _run(
    first: float,
    stream: float,
    after_ready: float | None,
    paused: tuple[float, float] | None = None,
) -> dict[str, Any]:
    figures = {
        "first_request_app_ms": first,
        "later_request_app_ms": stream,
        "later_request_p90_app_ms": stream * 1.5,
        "after_idle_request_app_ms": stream * 3,
    }
    if after_ready is not None:
        figures |= {
            "after_ready_request_app_ms": after_ready,
            "after_ready_request_p90_app_ms": after_ready * 1.2,
        }
    if paused is not None:  # (after the pause and /health, after the pause and /ready)
        figures |= {
            "paused_health_request_app_ms": paused[0],
            "paused_health_request_p90_app_ms": paused[0] * 1.2,
            "paused_ready_request_app_ms": paused[1],
            "paused_ready_request_p90_app_ms": paused[1] * 1.2,
        }
    return {"at": "2026-11-29T10:00:00Z", "load_average": 3.0, "services": {"current": figures}}


def test_a_first_request_like_the_later_ones_after_ready_meets_the_position_target(
    serving: ModuleType,
) -> None:
    # 0.090 ms first; the stream's median 0.056 (p90 0.084): above the stream's spread, but
    # the requests after a /ready take 0.088 (p90 0.1056): the pause, not a first-time cost
    runs = [_run(0.090, 0.056, 0.088), _run(0.095, 0.056, 0.090), _run(0.080, 0.050, 0.085)]
    stream = serving.first_request_target({}, runs, "_app_ms")
    assert stream[2] is False and "90.0 µs vs median 56.0, p90 84.0 µs" in stream[1]
    what, shown, met = serving.after_ready_target(runs, "_app_ms")
    assert met is True
    assert "Server-Timing" in what
    assert (
        shown
        == "medians of 3 runs: 90.0 µs vs median 88.0, p90 105.6 µs (within p90 in 3 of 3 runs)"
    )


def test_a_first_time_cost_fails_the_position_target(serving: ModuleType) -> None:
    runs = [_run(0.300, 0.056, 0.088), _run(0.250, 0.056, 0.090), _run(0.080, 0.050, 0.085)]
    _, shown, met = serving.after_ready_target(runs, "_app_ms")
    assert met is False and "(within p90 in 1 of 3 runs)" in shown


def test_runs_saved_before_the_after_ready_figures_render_and_are_not_judged(
    serving: ModuleType, tmp_path
) -> None:
    import json

    old, new = _run(0.090, 0.056, None), _run(0.092, 0.055, 0.089)
    assert serving.after_ready_target([old], "_app_ms") is None
    # only the run that measured it counts
    assert "medians of 1 runs" in serving.after_ready_target([old, new], "_app_ms")[1]
    (tmp_path / serving.FIRST_REQUEST_RUNS).write_text(json.dumps([old, new]))
    table = "\n".join(serving.first_request_runs_lines(tmp_path))
    assert "| 90.0 / 56.0 / 84.0 / 168.0 / – / – |" in table  # the old run: no figure
    assert "92.0 / 55.0 / 82.5 / 165.0 / 89.0 / 106.8" in table


def test_a_first_request_like_those_after_a_pause_and_health_meets_the_warm_up_target(
    serving: ModuleType,
) -> None:
    # above the stream's spread (the pause), as fast as requests after the same pause and
    # /health on the warmed service: no warm-up
    runs = [
        _run(0.090, 0.056, 0.088, (0.092, 0.089)),
        _run(0.095, 0.056, 0.090, (0.090, 0.091)),
        _run(0.080, 0.050, 0.085, (0.088, 0.087)),
    ]
    assert serving.first_request_target({}, runs, "_app_ms")[2] is False
    what, shown, met = serving.paused_target(runs, "_app_ms")
    assert met is True
    assert "`/health`" in what and "Server-Timing" in what
    assert shown == (
        "medians of 3 runs: 90.0 µs vs median 90.0, p90 108.0 µs (within p90 in 3 of 3 runs); "
        "after the pause and `/ready`, the same way: median 89.0 µs"
    )


def test_a_warm_up_fails_the_paused_target_and_older_runs_are_not_judged(
    serving: ModuleType,
) -> None:
    warm_up = [
        _run(0.300, 0.056, 0.088, (0.090, 0.089)),
        _run(0.250, 0.056, 0.090, (0.092, 0.090)),
        _run(0.080, 0.050, 0.085, (0.088, 0.087)),
    ]
    _, shown, met = serving.paused_target(warm_up, "_app_ms")
    assert met is False and "(within p90 in 1 of 3 runs)" in shown
    older = _run(0.090, 0.056, 0.088)
    assert serving.paused_target([older], "_app_ms") is None
    assert "medians of 1 runs" in serving.paused_target([older, *warm_up[2:]], "_app_ms")[1]


def test_only_the_latest_protocols_runs_are_shown_and_judged(serving: ModuleType, tmp_path) -> None:
    import json

    # an earlier protocol's run (no pause before the first /ready) is kept in the file but
    # not pooled with runs taken with the pause
    old = _run(0.300, 0.056, 0.088)
    new = {**_run(0.090, 0.056, 0.088, (0.092, 0.089)), "protocol": serving.FIRST_REQUEST_PROTOCOL}
    (tmp_path / serving.FIRST_REQUEST_RUNS).write_text(json.dumps([old, new]))
    runs = serving.first_request_runs(tmp_path)
    assert runs == [new]
    assert "medians of 1 runs: 90.0 µs" in serving.after_ready_target(runs, "_app_ms")[1]
    table = "\n".join(serving.first_request_runs_lines(tmp_path))
    assert "(`--first-request-only`, 1 runs" in table and "300.0" not in table
