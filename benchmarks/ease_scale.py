"""EASE at larger catalogues: fit time and peak memory of fit + save, and of save and load.

EASE's state is an n_items x n_items float32 matrix, so what a catalogue costs is mostly
memory: the fit's one n x n matrix, then the model file written from it, then every reader
loading it. Each measurement runs in a fresh process (so its peak RSS, /proc VmHWM, is its
own), on ``quality.py``'s split of a generated shop (binary, Surprise's seeded 80/20):

- ``fit``: the data prepared, then ``fit`` (wall and CPU seconds, peak RSS) and ``save_model``
  (its own peak, measured from a reset high-water mark), the model file kept for the others;
- ``save``: that file loaded, the high-water mark reset, the model saved again;
- ``load``: ``load_model`` of that file from a fresh start.

``save`` and ``load`` run with the current ``recomart_pipeline.ml.persistence`` ("after")
and, given ``--baseline FILE`` (e.g. ``git show REV:recomart_pipeline/ml/persistence.py``),
with that version too ("before"), taking turns so both sides see the same machine load.

    python benchmarks/ease_scale.py --generate 200000,20000,4000000 250000,25000,5000000 \\
        --baseline /tmp/persistence_before.py --repeats 2 \\
        --json benchmarks/results/ease_scale.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
# This checkout's package first: the environment may have another checkout installed, and
# "after" must be the code next to this script (each result names the file it measured).
sys.path[:0] = [str(HERE.parent), str(HERE)]

import quality  # noqa: E402
from process_memory import reset_peak, status_mib  # noqa: E402

from recomart_pipeline.datagen import generate_dataset  # noqa: E402
from recomart_pipeline.ml import persistence  # noqa: E402
from recomart_pipeline.ml.models import create_model  # noqa: E402


def _persistence(baseline: Path | None) -> ModuleType:
    """The persistence module measured: the current one, or the file of an older version."""
    if baseline is None:
        return persistence
    spec = importlib.util.spec_from_file_location("persistence_baseline", baseline)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _timed_save(module: ModuleType, model: Any, path: Path) -> dict[str, Any]:
    """Save from a reset high-water mark: the save's seconds, RSS before it and its peak."""
    reset_peak()
    before = status_mib("VmRSS")
    started = time.perf_counter()
    digest = module.save_model(model, path)
    return {
        "save_seconds": round(time.perf_counter() - started, 2),
        "rss_before_save_mib": round(before),
        "save_peak_rss_mib": round(status_mib("VmHWM")),
        "sha256": digest,
        "persistence_file": module.__file__,
    }


def fit_worker(pairs: Path, model_path: Path) -> dict[str, Any]:
    frame = quality.read_pairs(pairs)
    train, _, header = quality.prepare(pairs.name, frame)
    del frame
    model = create_model("ease", {"max_items": train.n_items})
    reset_peak()
    rss_before = status_mib("VmRSS")
    started, cpu_started = time.perf_counter(), time.process_time()
    model.fit(train)
    fit = {
        "fit_seconds": round(time.perf_counter() - started, 1),
        "fit_cpu_seconds": round(time.process_time() - cpu_started, 1),
        "rss_before_fit_mib": round(rss_before),
        "fit_peak_rss_mib": round(status_mib("VmHWM")),
    }
    saved = _timed_save(persistence, model, model_path)
    return {**header, **fit, **saved, "file_mib": round(model_path.stat().st_size / 2**20)}


def save_worker(model_path: Path, baseline: Path | None) -> dict[str, Any]:
    model = persistence.load_model(model_path)
    return _timed_save(_persistence(baseline), model, model_path.with_suffix(".again.npz"))


def load_worker(model_path: Path, baseline: Path | None) -> dict[str, Any]:
    module = _persistence(baseline)
    before = status_mib("VmRSS")
    started = time.perf_counter()
    module.load_model(model_path)
    return {
        "load_seconds": round(time.perf_counter() - started, 2),
        "rss_before_load_mib": round(before),
        "load_peak_rss_mib": round(status_mib("VmHWM")),
        "persistence_file": module.__file__,
    }


WORKERS = {"fit": fit_worker, "save": save_worker, "load": load_worker}


def _run(kind: str, *args: Path | None) -> dict[str, Any]:
    """One worker in its own process; its result with the 1-minute load average around it."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        command = [sys.executable, __file__, "--worker", kind, out.name]
        command += ["" if arg is None else str(arg) for arg in args]
        load_before = os.getloadavg()[0]
        subprocess.run(command, check=True)
        result: dict[str, Any] = json.loads(Path(out.name).read_text())
    result["load_average"] = round((load_before + os.getloadavg()[0]) / 2, 2)
    print(kind, result, flush=True)
    return result


def measure(pairs: Path, scratch: Path, baseline: Path | None, repeats: int) -> dict[str, Any]:
    model_path = scratch / f"ease_{pairs.parent.name}.npz"
    result: dict[str, Any] = {"fit": _run("fit", pairs, model_path)}
    sides = {"after": None} if baseline is None else {"before": baseline, "after": None}
    for kind in ("save", "load"):
        turns: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
        for _ in range(repeats):
            for side, module_file in sides.items():
                turns[side].append(_run(kind, model_path, module_file))
        result[kind] = turns
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--generate", nargs="+", metavar="USERS,ITEMS,INTERACTIONS")
    parser.add_argument("--data", nargs="+", type=Path, help="interactions files instead")
    parser.add_argument("--baseline", type=Path, help="an older persistence.py to compare")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        kind, out, *paths = args.worker
        inputs = [Path(path) if path else None for path in paths]
        Path(out).write_text(json.dumps(WORKERS[kind](*inputs)))
        return
    results: dict[str, Any] = {"cpus": os.cpu_count(), "runs": []}
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        datasets = list(args.data or [])
        for spec in args.generate or []:
            users, items, interactions = (int(part) for part in spec.split(","))
            paths = generate_dataset(
                scratch / str(items), users=users, items=items, interactions=interactions, seed=7
            )
            datasets.append(paths["interactions"])
        if not datasets:
            parser.error("give --generate USERS,ITEMS,INTERACTIONS or --data FILE")
        for pairs in datasets:
            results["runs"].append(measure(pairs, scratch, args.baseline, args.repeats))
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
