"""How late a task timeout stops the task, on a cold and a warm worker, idle and loaded.

The delay is what the runtime recorded for the attempt (its duration in the run manifest,
from the attempt's start until the task's process is gone) minus the configured limit. The
target is under 1 s in every case. Each repeat runs in a fresh interpreter, so its first
attempt meets a cold worker (the forkserver not started, its preloads not imported):

- ``cold_starting``: the limit (0.5 s) fires while that worker is still starting;
- ``cold_running``: a longer limit (8 s) fires after the cold start, while the task runs;
- ``warm``: later attempts in the same process (2 s);
- ``warm_deaf``: a task that ignores SIGTERM (the SIGKILL after the grace period stops it);
- ``worker_start_cold`` / ``_warm``: how long a trivial isolated task takes, for context.

``--load`` also runs every case beside one busy process per CPU (a loaded 2-core machine).

    python benchmarks/timeout_enforcement.py [--repeats 3] [--no-load] [--output FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SAMPLE = "recomart_pipeline_tests.sample_tasks"
LIMIT_S = 2.0
COLD_STARTING_LIMIT_S = 0.5
COLD_RUNNING_LIMIT_S = 8.0
WARM_REPEATS = 3
TARGET_S = 1.0
BUSY = [sys.executable, "-c", "while True: pass"]


def _attempt(task: str, timeout: float, config: str, run_id: str) -> tuple[float, str]:
    """One attempt of ``task`` in this process: the duration the runtime recorded and the
    phase the timeout stopped it in (``starting``, ``running``, or ``-`` without one)."""
    from recomart_pipeline import PipelineConfig
    from recomart_pipeline.runtime.records import MANIFEST
    from recomart_pipeline.runtime.runner import TaskFailure, run_task

    project = Path(tempfile.mkdtemp(prefix="timeouts-"))
    path = project / "pipeline_config.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            tasks:
              {task}:
                callable: "{SAMPLE}:{task}"
                timeout_seconds: {timeout}
                {config}
            """
        )
    )
    phase = "-"
    try:
        run_task(PipelineConfig(path), task, run_id)
    except TaskFailure as failure:
        assert failure.error_class == "timeout", failure.message
        phase = "starting" if "still starting" in failure.message else "running"
    manifest = json.loads((project / "storage" / "runs" / run_id / MANIFEST).read_text())
    shutil.rmtree(project, ignore_errors=True)
    return float(manifest["tasks"][task]["attempts"][-1]["duration_s"]), phase


def _delay(task: str, timeout: float, config: str, run_id: str) -> float:
    return _attempt(task, timeout, config, run_id)[0] - timeout


def child(cold_limit: float) -> dict[str, Any]:
    """A fresh interpreter's sequence: one cold attempt, then warm ones."""
    hang = "config: {seconds: 600}"
    deaf = "config: {seconds: 600, ignore_sigterm: true}"
    cold, phase = _attempt("hang", cold_limit, hang, "cold")
    return {
        "cold": cold - cold_limit,
        "cold_phase": phase,
        "warm": [_delay("hang", LIMIT_S, hang, f"warm{i}") for i in range(WARM_REPEATS)],
        "warm_deaf": _delay("hang", LIMIT_S, deaf, "deaf"),
    }


def start_child() -> dict[str, float]:
    """A trivial isolated task, cold then warm: the cost of starting the worker."""
    config = "config: {count: 3}"
    return {
        "cold": _attempt("make_numbers", 600, config, "start-cold")[0],
        "warm": _attempt("make_numbers", 600, config, "start-warm")[0],
    }


def _in_fresh_interpreter(function: str, *args: object) -> Any:
    code = (
        "import json, sys\n"
        f"sys.path[:0] = [{str(REPO)!r}, {str(HERE)!r}]\n"
        "import timeout_enforcement as t\n"
        f"print(json.dumps(t.{function}(*{list(args)!r})))\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _stats(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
        "runs": len(values),
    }


def measure(repeats: int) -> dict[str, Any]:
    samples: dict[str, list[float]] = {
        k: []
        for k in (
            "cold_starting",
            "cold_running",
            "warm",
            "warm_deaf",
            "worker_start_cold",
            "worker_start_warm",
        )
    }
    phases: dict[str, list[str]] = {"cold_starting": [], "cold_running": []}
    for _ in range(repeats):
        starting = _in_fresh_interpreter("child", COLD_STARTING_LIMIT_S)
        running = _in_fresh_interpreter("child", COLD_RUNNING_LIMIT_S)
        started = _in_fresh_interpreter("start_child")
        samples["cold_starting"].append(starting["cold"])
        samples["cold_running"].append(running["cold"])
        phases["cold_starting"].append(starting["cold_phase"])
        phases["cold_running"].append(running["cold_phase"])
        samples["warm"] += starting["warm"] + running["warm"]
        samples["warm_deaf"] += [starting["warm_deaf"], running["warm_deaf"]]
        samples["worker_start_cold"].append(started["cold"])
        samples["worker_start_warm"].append(started["warm"])
    return {
        "load_average_1min": round(os.getloadavg()[0], 2),
        **{name: _stats(values) for name, values in samples.items()},
        "phases": phases,
    }


def measure_loaded(repeats: int) -> dict[str, Any]:
    """``measure`` beside one busy process per CPU (stopped afterwards, by their pids)."""
    busy = [subprocess.Popen(BUSY) for _ in range(os.cpu_count() or 2)]
    try:
        return measure(repeats)
    finally:
        for process in busy:
            process.kill()
            process.wait()


def report_lines(results: dict[str, Any] | None) -> list[str]:
    """The BENCHMARKS.md section (``run_all.py`` renders it from the saved results)."""
    if not results:
        return []

    def cell(stats: dict[str, float]) -> str:
        return f"{stats['median']:.2f} ({stats['min']:.2f}–{stats['max']:.2f})"

    rows = [
        ("cold worker, limit fires while it starts (0.5 s)", "cold_starting"),
        ("cold worker, limit fires while the task runs (8 s)", "cold_running"),
        ("warm worker (2 s)", "warm"),
        ("warm worker, task ignores SIGTERM (2 s)", "warm_deaf"),
    ]
    conditions = [c for c in ("as_found", "loaded") if c in results]
    names = {"as_found": "as found", "loaded": "+1 busy process per CPU"}
    lines = [
        "",
        "## Timeout enforcement (`benchmarks/timeout_enforcement.py`)",
        "",
        "Seconds from a task's limit to the end of its attempt (its recorded duration minus the "
        "limit; the task's process is gone by then), median (min–max); target under "
        f"{results['target_s']:g} s. Measured on {results['cpus']} CPUs as found (load "
        "average "
        + " and ".join(f"{results[c]['load_average_1min']:g}" for c in conditions)
        + " at the end of each set: other jobs shared the machine) and beside one busy "
        "process per CPU. Where the cold cases' limits fired (worker still starting, or task "
        "running): "
        + "; ".join(
            f"{names[c]}: "
            + ", ".join(
                f"{key} {'/'.join(sorted(set(results[c]['phases'][key])))}"
                for key in ("cold_starting", "cold_running")
            )
            for c in conditions
        )
        + ".",
        "",
        "| case | " + " | ".join(names[c] for c in conditions) + " |",
        "|---|" + "---|" * len(conditions),
    ]
    for label, key in rows:
        lines.append(f"| {label} | " + " | ".join(cell(results[c][key]) for c in conditions) + " |")
    lines += [
        "",
        "For context, a trivial isolated task takes "
        + "; ".join(
            f"{names[c]}: {results[c]['worker_start_cold']['median']:.2f} s on a cold worker, "
            f"{results[c]['worker_start_warm']['median']:.2f} s on a warm one"
            for c in conditions
        )
        + " — the cold start (the forkserver importing pandas, pyarrow, scipy, numba, "
        "scikit-learn) is what the deadline no longer waits for.",
    ]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-load", action="store_true", help="skip the loaded measurements")
    parser.add_argument(
        "--output", type=Path, default=HERE / "results" / "timeout_enforcement.json"
    )
    args = parser.parse_args()
    results: dict[str, Any] = {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "limit_s": LIMIT_S,
        "target_s": TARGET_S,
        "as_found": measure(args.repeats),
    }
    if not args.no_load:
        results["loaded"] = measure_loaded(args.repeats)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print("\n".join(report_lines(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
