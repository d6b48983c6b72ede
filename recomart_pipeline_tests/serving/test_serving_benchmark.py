"""benchmarks/serving.py cannot rot: its quick mode runs here and yields a complete result.

No throughput or latency thresholds: on a shared 2-core machine they would measure the
neighbours. What must hold is that every service started, answered every request of the
load (0 errors), that the figures are consistent with each other, and that a worker of this
checkout stays light (its private memory under a bound and no training library mapped:
memory, which a busy machine does not change).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from recomart_pipeline_tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow


def test_quick_serving_benchmark_runs_and_writes_its_results(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "benchmarks" / "serving.py"),
            "--quick",
            "--results-dir",
            str(tmp_path),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    results = json.loads((tmp_path / "serving_quick.json").read_text())
    services = {s["service"]: s for s in results["services"]}
    assert {"current", "current_2_workers"} <= set(services)
    for service in services.values():
        assert service["first_request_status"] == 200, service["service"]
        # the first request's like-for-like reference: the same client's next requests
        assert 0 < service["later_request_ms"] <= service["later_request_p90_ms"]
        assert service["after_idle_request_ms"] > 0  # and after a quiet spell
        # later requests each right after a /ready, as the first one was
        assert 0 < service["after_ready_request_ms"] <= service["after_ready_request_p90_ms"]
        # the pause control: after a quiet spell and /health, and after one and /ready
        for kind in ("health", "ready"):
            median, p90 = (service[f"paused_{kind}_request{p}_ms"] for p in ("", "_p90"))
            assert 0 < median <= p90, (service["service"], kind)
        for endpoint in ("health", "recommendations"):
            figures = service[endpoint]
            assert figures["errors"] == 0, (service["service"], endpoint, figures)
            assert figures["requests"] > 0
            assert 0 < figures["p50_ms"] <= figures["p95_ms"] <= figures["p99_ms"]
            assert len(figures["rounds_requests_per_second"]) == results["rounds"]
        assert all(p["rss_mib"] >= p["uss_mib"] > 0 for p in service["processes"])
    assert len(services["current_2_workers"]["processes"]) >= 3  # supervisor + 2 workers
    # memory, which load cannot make flaky: the script exits 1 when a worker of this
    # checkout holds more private memory than QUICK_WORKER_USS_MIB or maps a library of
    # training's (numba/llvmlite, pyarrow, pandas, scipy); here, that the figures exist
    for name, count in (("current", 1), ("current_2_workers", 2)):
        workers = [p for p in services[name]["processes"] if p["role"] == "worker"]
        assert len(workers) == count, services[name]["processes"]
        for worker in workers:
            assert worker["heavy_libraries"] == [], (name, worker)
            assert worker["mapped_rss_mib"] > 0, (name, worker)  # the registry's files
    assert "## Serving" in done.stdout  # the BENCHMARKS.md section renders
