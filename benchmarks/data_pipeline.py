"""Benchmark of the data side: generate → ingestion → validation → preparation → features.

Each step runs in its own subprocess, so its peak RSS (``os.wait4``) is its own and not the
high-water mark of everything before it. Results are merged into
``benchmarks/results/data_pipeline.json`` under the size's name::

    python benchmarks/data_pipeline.py              # 1M interactions
    python benchmarks/data_pipeline.py --size 20m   # 20M interactions (~5 minutes, < 6 GiB)

Scratch data goes to ``benchmarks/results/tmp/`` (git-ignored) and is deleted afterwards
unless ``--keep`` is given.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from recomart_pipeline.contract.catalog import builtin_spec
from recomart_pipeline.datagen import generate_dataset
from recomart_pipeline.runtime.artifacts import ArtifactStore
from recomart_pipeline.runtime.attempt import task_context

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "data_pipeline.json"
SCRATCH = HERE / "results" / "tmp"
RUN_ID = "benchmark"
SIZES: dict[str, dict[str, int]] = {
    "1m": {"users": 100_000, "items": 20_000, "interactions": 1_000_000},
    "20m": {"users": 1_000_000, "items": 100_000, "interactions": 20_000_000},
}
CHAIN: dict[str, str | None] = {
    "ingestion": None,
    "validation": "ingestion",
    "preparation": "validation",
    "features": "preparation",
}
DIRTY_FRACTION = 0.01
SEED = 7


def _task_config(task: str, data: Path) -> dict[str, Any]:
    if task == "ingestion":
        return {
            "source": {t: str(data / f"{t}.parquet") for t in ("interactions", "items", "users")}
        }
    return {}


def worker_generate(size: str, data: Path) -> None:
    generate_dataset(data, seed=SEED, dirty_fraction=DIRTY_FRACTION, **SIZES[size])


def worker_task(task: str, data: Path, storage: Path) -> None:
    """Run one task exactly as the runtime would and publish its checkpoint."""
    logging.basicConfig(level=logging.WARNING)
    store = ArtifactStore(storage)
    dependency = CHAIN[task]
    upstream = {dependency: store.load_upstream(dependency, RUN_ID)} if dependency else {}
    spec = builtin_spec(task)
    ctx = task_context(
        spec,
        task,
        RUN_ID,
        spec.config.model_validate(_task_config(task, data)),
        upstream,
        store.new_staging_dir(RUN_ID, task),
        HERE.parent,
        storage,
        logging.getLogger(task),
    )
    result = spec.function()(ctx)
    failed = [c.name for c in result.checks if not c.passed and c.severity == "ERROR"]
    if failed:
        raise SystemExit(f"{task}: blocking checks failed: {failed}")
    store.publish(RUN_ID, task, ctx.output_dir, result.outputs, result.metrics, result.metadata)


def _measure(step: list[str]) -> dict[str, float]:
    """Run this script as a worker for ``step``; wall time and the child's own peak RSS."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, __file__, "--worker", *step])
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"step {step[0]} failed with exit code {process.returncode}")
    return {"seconds": round(seconds, 2), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}


def _disk_mib(path: Path) -> float:
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20, 1)


def benchmark(size: str, keep: bool) -> dict[str, Any]:
    scratch = SCRATCH / size
    shutil.rmtree(scratch, ignore_errors=True)
    data, storage = scratch / "data", scratch / "storage"
    steps: dict[str, Any] = {"generate": _measure(["generate", size, str(data)])}
    steps["generate"]["output_mib"] = _disk_mib(data)
    store = ArtifactStore(storage)
    for task in CHAIN:
        steps[task] = _measure(["task", task, str(data), str(storage)])
        checkpoint = store.find_checkpoint(task, RUN_ID)
        steps[task]["output_mib"] = _disk_mib(storage / "runs" / RUN_ID / task)
        steps[task]["metrics"] = checkpoint.metrics if checkpoint else {}
        print(
            f"{size} {task:<12} {steps[task]['seconds']:>8.1f} s {steps[task]['peak_rss_mib']:>8.0f} MiB"
        )
    if not keep:
        shutil.rmtree(scratch, ignore_errors=True)
    tasks = [steps[t] for t in CHAIN]
    return {
        "dataset": {
            **SIZES[size],
            "dirty_fraction": DIRTY_FRACTION,
            "seed": SEED,
            "format": "parquet",
        },
        "steps": steps,
        "total_task_seconds": round(sum(s["seconds"] for s in tasks), 2),
        "max_task_peak_rss_mib": max(s["peak_rss_mib"] for s in tasks),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "pandas": pd.__version__,
            "pyarrow": pa.__version__,
        },
    }


def _save(size: str, result: dict[str, Any]) -> None:
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results[size] = result
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="1m")
    parser.add_argument("--keep", action="store_true", help="keep the scratch data and outputs")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        kind, *rest = args.worker
        if kind == "generate":
            worker_generate(rest[0], Path(rest[1]))
        else:
            worker_task(rest[0], Path(rest[1]), Path(rest[2]))
        return 0
    result = benchmark(args.size, args.keep)
    _save(args.size, result)
    print(f"wrote {RESULTS.relative_to(HERE.parent)} [{args.size}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
