"""Benchmark of the engines: validation, preparation and features on pandas (the reference)
against local (DuckDB).

Both engines validate the same ingested data in the same run, one after the other, each in
its own subprocess (its peak RSS is its own, ``os.wait4``), and their outputs are compared
byte for byte. Then both prepare the same validated data (the pandas run's), once per
preparation config (the default, and a k-core with the seeded random split), outputs
compared likewise; then both build the features from the same prepared data (the pandas
run's default), every table and matrix compared. Results are merged into ``benchmarks/results/engines.json`` under the
size's name, and the "Engines" section of BENCHMARKS.md is rewritten from them::

    python benchmarks/engines.py                 # 1m and 5m interactions (~4 minutes)
    python benchmarks/engines.py --sizes 1m      # one size
    python benchmarks/engines.py --quick         # 50k, to engines_quick.json (CI)

Scratch data goes to ``benchmarks/results/tmp/engines/`` (git-ignored), deleted afterwards.
"""

from __future__ import annotations

import argparse
import hashlib
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

from report_blocks import markers, replace_block  # benchmarks/ is this script's folder

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
SCRATCH = RESULTS / "tmp" / "engines"
SIZES = {"quick": 50_000, "1m": 1_000_000, "5m": 5_000_000}
ENGINES = ("pandas", "local")
DIRTY_FRACTION = 0.01
SEED = 7
# Replaying generated data: a pinned clock keeps the freshness check's verdict stable.
VALIDATION_CONFIG = {"freshness": {"reference_time": "2026-06-01T00:00:00Z"}}
# Preparation as the default pipeline runs it, and the iterative k-core with the split whose
# draws are joined in.
PREPARATION_CONFIGS: dict[str, dict[str, Any]] = {
    "default": {},
    "kcore_random": {
        "min_user_interactions": 5,
        "min_item_interactions": 5,
        "split": {"method": "random", "seed": 7},
    },
}
BEGIN, END = markers("engines", "benchmarks/engines.py")


def worker_generate(interactions: int, data: Path) -> None:
    from recomart_pipeline.datagen import generate_dataset

    generate_dataset(
        data,
        users=max(interactions // 20, 10),
        items=max(interactions // 200, 10),
        interactions=interactions,
        seed=SEED,
        dirty_fraction=DIRTY_FRACTION,
    )


def worker_task(task: str, engine: str, data: Path, storage: Path, variant: str = "") -> None:
    """Run one task as the runtime would, on ``engine``; publish under the run id ``engine``
    (preparation: ``engine-variant``, reading the pandas run's validation; features:
    ``features-engine``, reading the pandas run's default preparation)."""
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
        run_id = "ingest"
    elif task == "validation":
        config = VALIDATION_CONFIG
        upstream = {"ingestion": store.load_upstream("ingestion", "ingest")}
        run_id = engine
    elif task == "preparation":
        config = PREPARATION_CONFIGS[variant]
        upstream = {"validation": store.load_upstream("validation", "pandas")}
        run_id = f"{engine}-{variant}"
    else:
        config = {}
        upstream = {"preparation": store.load_upstream("preparation", "pandas-default")}
        run_id = f"features-{engine}"
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


def _digests(storage: Path, run_id: str, task: str) -> dict[str, str]:
    folder = storage / "runs" / run_id / task
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.iterdir())
        if path.suffix in (".parquet", ".json", ".npz") and not path.name.startswith("_")
    }


def benchmark(size: str) -> dict[str, Any]:
    interactions = SIZES[size]
    scratch = SCRATCH / size
    shutil.rmtree(scratch, ignore_errors=True)
    data, storage = scratch / "data", scratch / "storage"
    try:
        generate = _measure(["generate", str(interactions), str(data)])
        ingestion = _measure(["task", "ingestion", "pandas", str(data), str(storage)])
        runs = {e: _measure(["task", "validation", e, str(data), str(storage)]) for e in ENGINES}
        digests = {engine: _digests(storage, engine, "validation") for engine in ENGINES}
        preparation: dict[str, Any] = {}
        for variant in PREPARATION_CONFIGS:
            timed = {
                e: _measure(["task", "preparation", e, str(data), str(storage), variant])
                for e in ENGINES
            }
            files = {e: _digests(storage, f"{e}-{variant}", "preparation") for e in ENGINES}
            preparation[variant] = _compared(f"{size}: preparation ({variant})", timed, files)
        timed = {e: _measure(["task", "features", e, str(data), str(storage)]) for e in ENGINES}
        files = {e: _digests(storage, f"features-{e}", "features") for e in ENGINES}
        features = _compared(f"{size}: features", timed, files)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    validation = _compared(f"{size}: validation", runs, digests)
    return {
        "interactions": interactions,
        "dirty_fraction": DIRTY_FRACTION,
        "generate": generate,
        "ingestion": ingestion,
        "validation": runs,
        "speedup": validation["speedup"],
        "validation_identical": validation["identical_outputs"],
        "preparation": preparation,
        "features": features,
        "identical_outputs": validation["identical_outputs"]
        and features["identical_outputs"]
        and all(run["identical_outputs"] for run in preparation.values()),
        "compared_files": sorted(digests["pandas"]),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }


def _compared(
    label: str, runs: dict[str, dict[str, float]], digests: dict[str, dict[str, str]]
) -> dict[str, Any]:
    """Both engines' runs of one step, their speed-up and whether their files are equal."""
    identical = digests["pandas"] == digests["local"] and bool(digests["pandas"])
    ratio = runs["pandas"]["seconds"] / runs["local"]["seconds"]
    print(
        f"{label}: pandas {runs['pandas']['seconds']} s, local {runs['local']['seconds']} s "
        f"(×{ratio:.2f}); identical outputs: {identical}"
    )
    return {
        **runs,
        "speedup": round(ratio, 2),
        "identical_outputs": identical,
        "compared_files": sorted(digests["pandas"]),
    }


def _row(interactions: int, step: str, run: dict[str, Any], identical: bool, load: float) -> str:
    return (
        f"| {interactions:,} | {step} "
        f"| {run['pandas']['seconds']:.2f} / {run['pandas']['peak_rss_mib']:.0f} "
        f"| {run['local']['seconds']:.2f} / {run['local']['peak_rss_mib']:.0f} "
        f"| ×{run['pandas']['seconds'] / run['local']['seconds']:.2f} "
        f"| {'yes' if identical else 'NO'} | {load} |"
    )


def section(results: dict[str, Any]) -> str:
    """The BENCHMARKS.md section, from the saved results."""
    lines = [
        "## Engines: validation, preparation and features on pandas vs local "
        "(`benchmarks/engines.py`)",
        "",
        "Same run, same ingested data (the generator, 20 interactions per user, 200 per item, "
        "1% dirty rows); each engine in its own process. Preparation reads the same validated "
        "data on both engines: *default* is the default pipeline's (temporal_global split), "
        "*kcore_random* keeps the 5-core and splits at random (seed 7). *identical*: every "
        "output file (validation: interactions, quarantine, items, users, report; "
        "preparation: train, test, fold_in, items, users; features: every table and matrix) has "
        "the same bytes. Features reads the pandas run's default preparation on both engines.",
        "",
        "| interactions | step | pandas s / MiB | local s / MiB | speed-up | identical "
        "| load avg |",
        "|---|---|---|---|---|---|---|",
    ]
    for result in sorted(results.values(), key=lambda r: r["interactions"]):
        size, load = result["interactions"], result["load_average_1m"]
        # results from before preparation was measured have one verdict, validation's
        validated = result.get("validation_identical", result["identical_outputs"])
        lines.append(_row(size, "validation", result["validation"], validated, load))
        for variant, run in result.get("preparation", {}).items():
            lines.append(
                _row(size, f"preparation ({variant})", run, run["identical_outputs"], load)
            )
        if "features" in result:
            run = result["features"]
            lines.append(_row(size, "features", run, run["identical_outputs"], load))
    lines += ["", "Why these numbers and what comes next: docs/engines.md."]
    return "\n".join(lines)


def write_section(results: dict[str, Any], report: Path) -> None:
    """Replace this script's block of BENCHMARKS.md (report_blocks), or append it."""
    replace_block(report, BEGIN, END, section(results))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", choices=sorted(SIZES), default=["1m", "5m"])
    parser.add_argument("--quick", action="store_true", help="one small size (CI)")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        kind, *rest = args.worker
        if kind == "generate":
            worker_generate(int(rest[0]), Path(rest[1]))
        else:
            worker_task(rest[0], rest[1], Path(rest[2]), Path(rest[3]), *rest[4:])
        return 0
    sizes = ["quick"] if args.quick else args.sizes
    path = RESULTS / ("engines_quick.json" if args.quick else "engines.json")
    results = json.loads(path.read_text()) if path.exists() else {}
    for size in sizes:
        results[size] = benchmark(size)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    if not args.quick:
        write_section(results, REPO / "BENCHMARKS.md")
    print(f"wrote {path.relative_to(REPO)}")
    return 0 if all(results[s]["identical_outputs"] for s in sizes) else 1


if __name__ == "__main__":
    sys.exit(main())
