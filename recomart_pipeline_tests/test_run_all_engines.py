"""``benchmarks/run_all.py`` measures the engines side by side: its size option, and the
ratios and issue-19 targets it reports from the results (the quick run itself is in
``test_benchmarks.py``)."""

from __future__ import annotations

import argparse
from types import ModuleType
from typing import Any

import pytest

from recomart_pipeline_tests.helpers import benchmark_module


@pytest.fixture(scope="module")
def run_all() -> ModuleType:
    return benchmark_module("run_all")


def _run(n: int, engine: str, seconds: dict[str, float], peak: float = 500.0) -> dict[str, Any]:
    return {
        "interactions": n,
        "engine": engine,
        "wall_seconds": {"median": sum(seconds.values()) + 1.0},
        "peak_rss_mib": peak,
        "tasks": {
            t: {"seconds": {"median": s}, "peak_rss_mib": {"max": peak}} for t, s in seconds.items()
        },
    }


def test_sizes_are_read_as_users_write_them(run_all: ModuleType) -> None:
    assert [run_all.parse_size(t) for t in ("100k", "1M", "20m", "2.5M", "50_000")] == [
        100_000,
        1_000_000,
        20_000_000,
        2_500_000,
        50_000,
    ]
    for bad in ("lots", "1G", "10", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="size"):
            run_all.parse_size(bad)


def test_engines_side_by_side_and_the_scale_targets(run_all: ModuleType) -> None:
    data = {"ingestion": 10.0, "validation": 80.0, "preparation": 30.0, "features": 40.0}
    other = {"training": 60.0, "inference": 70.0}
    fast = {"ingestion": 4.0, "validation": 8.0, "preparation": 6.0, "features": 7.0}
    runs = run_all._by_engine(
        [
            _run(20_000_000, "local", {**fast, **other}),
            _run(20_000_000, "pandas", {**data, **other}),
            _run(100_000_000, "local", {**{t: 5.5 * s for t, s in fast.items()}, **other}, 11_000),
        ]
    )
    assert list(runs) == ["local", "pandas"] and len(runs["local"]) == 2
    table = "\n".join(run_all._engine_lines(runs))
    # 160 s of pandas data tasks against 25 s: 6.40x; end to end 291 s against 156 s
    assert "| 20,000,000 | local | 25.0 | 160.0 | 6.40× | 156.0 | 291.0 | 1.87× |" in table
    targets = {what: (value, met) for what, value, met in run_all._scale_targets(runs)}
    assert targets["20,000,000 end to end ≤ 120 s (local)"] == ("156 s", False)
    assert targets["20,000,000 end to end ≤ 120 s (pandas)"] == ("291 s", False)
    assert targets["data tasks at 20,000,000 ≤ 30 s and ≥ 4× pandas (local)"] == (
        "25.0 s, 6.40×",
        True,
    )
    assert targets["100,000,000 peak RSS of any task ≤ 12 GiB (local)"] == ("10.74 GiB", True)
    assert targets["data tasks 20M→100M within 1.2× of linear (local)"] == ("worst 1.10", True)


def test_results_saved_before_engines_were_compared_are_pandas_runs(run_all: ModuleType) -> None:
    old = _run(1_000_000, "pandas", {"validation": 3.0})
    del old["engine"]
    assert list(run_all._by_engine([old])) == ["pandas"]
    assert run_all._engine_lines(run_all._by_engine([old])) == []


def test_the_100m_size_is_the_issues_shop_and_runs_once(run_all: ModuleType) -> None:
    # issue 19: 100M interactions are 1M users x 200k items; the other sizes keep n/20 x n/200
    assert run_all.shape(100_000_000) == (1_000_000, 200_000)
    assert run_all.shape(20_000_000) == (1_000_000, 100_000)
    assert run_all.shape(1_000) == (200, 100)  # the floor of a usable shop
    assert [run_all._runs(n, 3) for n in (1_000_000, 20_000_000, 100_000_000)] == [3, 2, 1]
    assert run_all._runs(20_000_000, 1) == 1  # --quick's single repeat is never raised


def test_chosen_sizes_replace_their_own_results_and_keep_the_rest(run_all: ModuleType) -> None:
    old_local = _run(20_000_000, "local", {"validation": 9.0})
    old_pandas = _run(20_000_000, "pandas", {"validation": 80.0})
    older = _run(1_000_000, "pandas", {"validation": 3.0})
    del older["engine"]  # saved before the engines were compared: a pandas run
    new_local = _run(20_000_000, "local", {"validation": 7.0})
    new_pandas_1m = _run(1_000_000, "pandas", {"validation": 2.5})
    saved = [old_local, old_pandas, older]
    assert run_all.merged(saved, [new_local]) == [old_pandas, older, new_local]
    assert run_all.merged(saved, [new_pandas_1m]) == [old_local, old_pandas, new_pandas_1m]
    assert run_all.merged([], [new_local]) == [new_local]


def test_the_load_is_sampled_during_the_runs_not_after(run_all: ModuleType) -> None:
    sampler = run_all.LoadSampler()
    with sampler:  # a sample on entering, then one every SAMPLE_SECONDS until the exit
        during = len(sampler.samples)
    assert during >= 1
    assert sampler.mean() == pytest.approx(sum(sampler.samples) / len(sampler.samples))
    with sampler:  # a second run adds its own samples
        again = len(sampler.samples)
    assert again > during


def test_the_8_gib_bound_is_the_full_commands_and_100m_has_its_own(run_all: ModuleType) -> None:
    runs = run_all._by_engine(
        [
            _run(20_000_000, "local", dict.fromkeys(run_all.DATA_TASKS, 20.0), 3_000),
            _run(100_000_000, "local", dict.fromkeys(run_all.DATA_TASKS, 100.0), 10_000),
        ]
    )
    over = {"interactions": 1_000_000, "ratio": 1.1, "in_run_ratio": 1.05}
    rows = {line.split(" | ")[0] for line in run_all._target_lines(runs, over, [], None)}
    assert "| 20,000,000 interactions end to end (local), peak RSS < 8 GiB" in rows
    assert not any("100,000,000 interactions end to end" in row for row in rows)
    assert "| 100,000,000 peak RSS of any task ≤ 12 GiB (local)" in rows


def test_the_overhead_target_is_judged_within_each_dagster_run(run_all: ModuleType) -> None:
    """Separate direct runs carry the tasks' own noise (that ratio has read 0.89 here, no
    cost at all); the in-run ratio is the Dagster run's wall over its own tasks' time."""

    def verdict(ratio: float, in_run: float) -> list[str]:
        over = {"interactions": 1_000_000, "ratio": ratio, "in_run_ratio": in_run}
        lines = run_all._target_lines({}, over, [], None)
        return [line for line in lines if "Dagster run ≤ 1.15" in line]

    (noisy,) = verdict(1.18, 1.06)
    assert noisy.endswith("| 1.060 (separate direct runs: 1.180) | yes |")
    (slow,) = verdict(1.0, 1.2)
    assert slow.endswith("| **no** |")
