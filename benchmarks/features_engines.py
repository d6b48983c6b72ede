"""Benchmark of the features task's engines: pandas (the reference) against local (DuckDB).

Generated data goes through ingestion, validation and preparation once; then the features
task runs on each engine in the same run, one after the other, each in its own subprocess
(wall time and the child's own peak RSS, ``os.wait4``), and their outputs are compared byte
for byte. Prints one line per size and a JSON summary::

    python benchmarks/features_engines.py                 # 1m interactions
    python benchmarks/features_engines.py --sizes 1m 5m

Scratch data goes to ``benchmarks/results/tmp/features_engines/`` (git-ignored), deleted
afterwards. benchmarks/engines.py does the same for validation.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SCRATCH = HERE / "results" / "tmp" / "features_engines"
SIZES = {"quick": 50_000, "1m": 1_000_000, "5m": 5_000_000}
ENGINES = ("pandas", "local")
SEED = 7
UPSTREAM = {"validation": "ingestion", "preparation": "validation", "features": "preparation"}
CONFIGS: dict[str, dict[str, Any]] = {
    "validation": {"freshness": {"reference_time": "2026-06-01T00:00:00Z"}},
    "preparation": {},
    "features": {},
}


def worker_generate(interactions: int, data: Path) -> None:
    from recomart_pipeline.datagen import generate_dataset

    generate_dataset(
        data,
        users=max(interactions // 20, 10),
        items=max(interactions // 200, 10),
        interactions=interactions,
        seed=SEED,
        dirty_fraction=0.01,
    )


def worker_task(task: str, engine: str, data: Path, storage: Path, run_id: str) -> None:
    """Run one task as the runtime would, on ``engine``; publish it under ``run_id``."""
    from recomart_pipeline.contract.catalog import builtin_spec
    from recomart_pipeline.runtime.artifacts import ArtifactStore
    from recomart_pipeline.runtime.attempt import task_context

    logging.basicConfig(level=logging.WARNING)
    store = ArtifactStore(storage)
    if task == "ingestion":
        config: dict[str, Any] = {
            "source": {t: str(data / f"{t}.parquet") for t in ("interactions", "items", "users")}
        }
        upstream = {}
    else:
        config = CONFIGS[task]
        upstream = {UPSTREAM[task]: store.load_upstream(UPSTREAM[task], "prepare")}
    spec = builtin_spec(task)
    ctx = task_context(
        spec,
        task,
        run_id,
        spec.config.model_validate(config),
        upstream,
        store.new_staging_dir(run_id, task),
        REPO,
        storage,
        logging.getLogger(task),
        engine=engine,
    )
    result = spec.function()(ctx)
    store.publish(run_id, task, ctx.output_dir, result.outputs, result.metrics, result.metadata)


def _measure(step: list[str]) -> dict[str, float]:
    """Run this script as a worker for ``step``; wall time and the child's own peak RSS."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, __file__, "--worker", *step])
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"step {step} failed with exit code {os.waitstatus_to_exitcode(status)}")
    return {"seconds": round(seconds, 2), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}


def _digests(storage: Path, run_id: str) -> dict[str, str]:
    folder = storage / "runs" / run_id / "features"
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.iterdir())
        if path.suffix in (".parquet", ".npz")
    }


def benchmark(size: str) -> dict[str, Any]:
    interactions = SIZES[size]
    scratch = SCRATCH / size
    shutil.rmtree(scratch, ignore_errors=True)
    data, storage = scratch / "data", scratch / "storage"
    try:
        _measure(["generate", str(interactions), str(data)])
        for task, engine in (("ingestion", "pandas"), ("validation", "local")):
            _measure(["task", task, engine, str(data), str(storage), "prepare"])
        _measure(["task", "preparation", "pandas", str(data), str(storage), "prepare"])
        runs = {e: _measure(["task", "features", e, str(data), str(storage), e]) for e in ENGINES}
        digests = {engine: _digests(storage, engine) for engine in ENGINES}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    identical = digests["pandas"] == digests["local"] and bool(digests["pandas"])
    ratio = runs["pandas"]["seconds"] / runs["local"]["seconds"]
    print(
        f"{size}: features pandas {runs['pandas']['seconds']} s "
        f"({runs['pandas']['peak_rss_mib']} MiB), local {runs['local']['seconds']} s "
        f"({runs['local']['peak_rss_mib']} MiB) (×{ratio:.2f}); identical outputs: {identical}"
    )
    return {
        "interactions": interactions,
        "features": runs,
        "speedup": round(ratio, 2),
        "identical_outputs": identical,
        "compared_files": sorted(digests["pandas"]),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", choices=sorted(SIZES), default=["1m"])
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        kind, *rest = args.worker
        if kind == "generate":
            worker_generate(int(rest[0]), Path(rest[1]))
        else:
            task, engine, data, storage, run_id = rest
            worker_task(task, engine, Path(data), Path(storage), run_id)
        return 0
    results = {size: benchmark(size) for size in args.sizes}
    print(json.dumps(results, indent=2))
    return 0 if all(r["identical_outputs"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
