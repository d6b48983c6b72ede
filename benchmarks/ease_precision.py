"""EASE solved in float32 against float64: the same rankings for less memory and time?

EASE's fit inverts ``XᵀX + λI`` (n_items x n_items). ``ml/ease.py`` solves it in float32
(``SOLVE_DTYPE``); this script fits the same data once in each precision, each in its own
process (so each peak RSS is its own), on ``quality.py``'s split (Surprise's seeded random
80/20 of the distinct pairs, binary), and reports per precision: fit seconds (wall, and the
CPU seconds of all threads, steadier on a shared machine), the process's RSS before the fit
and its peak during the fit, NDCG/precision/recall@10 on the test pairs (a seeded sample of
``--max-users`` test users, scored by the evaluation task's code), and between the two: the
largest metric difference and the share of the sampled users whose top 10 is the same set
of items.

    python benchmarks/ease_precision.py --generate 100000,10000,2000000 --max-users 30000 \\
        --json benchmarks/results/ease_precision.json

(the generator's shape, 20 events per user and 200 per item, seed 7 as ``quality.py``. At
``ease.max_items``' 20,000 items float64 crashed scipy's OpenBLAS before the fit ran its
solve on one thread: BENCHMARKS.md, "EASE in float32".)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import quality  # noqa: E402
from process_memory import reset_peak, status_mib  # noqa: E402

from recomart_pipeline.datagen import generate_dataset  # noqa: E402
from recomart_pipeline.ml import ease  # noqa: E402
from recomart_pipeline.ml.evaluate import evaluation_users  # noqa: E402
from recomart_pipeline.ml.models import create_model  # noqa: E402

PRECISIONS: dict[str, type[np.floating[Any]]] = {"float64": np.float64, "float32": np.float32}


def worker(precision: str, pairs: Path, max_users: int | None, out: Path) -> None:
    """One fit in ``precision``: its time, memory, figures and the sampled users' top 10."""
    frame = quality.read_pairs(pairs)
    train, held, header = quality.prepare(pairs.name, frame)
    users = None if max_users is None else evaluation_users(held, max_users, seed=0)
    ease.SOLVE_DTYPE = PRECISIONS[precision]
    model = create_model("ease", {"max_items": train.n_items})
    reset_peak()
    rss_before = status_mib("VmRSS")
    started, cpu_started = time.perf_counter(), time.process_time()
    model.fit(train)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    peak = status_mib("VmHWM")
    scored = quality.figures(model, train, held, users)
    top = users if users is not None else np.arange(train.n_users)
    items, _ = model.recommend(top, quality.K, train.implicit)
    np.save(out.with_suffix(".npy"), items)
    result = {
        **header,
        "precision": precision,
        "fit_seconds": round(seconds, 2),
        "fit_cpu_seconds": round(cpu_seconds, 2),
        "load_average": os.getloadavg()[0],
        "rss_before_fit_mib": round(rss_before),
        "peak_rss_mib": round(peak),
        **scored,
    }
    out.write_text(json.dumps(result))


def compare(pairs: Path, max_users: int | None, scratch: Path) -> dict[str, Any]:
    runs: dict[str, Any] = {}
    for precision in PRECISIONS:
        out = scratch / f"{precision}.json"
        command = [sys.executable, __file__, "--worker", precision, str(pairs), str(out)]
        if max_users is not None:
            command += ["--max-users", str(max_users)]
        subprocess.run(command, check=True)
        runs[precision] = json.loads(out.read_text())
        print(runs[precision], flush=True)
    tops = {p: np.load((scratch / f"{p}.json").with_suffix(".npy")) for p in PRECISIONS}
    same = [set(a) == set(b) for a, b in zip(tops["float64"], tops["float32"], strict=True)]
    return {
        "runs": runs,
        "max_metric_difference": max(
            abs(runs["float64"][m] - runs["float32"][m]) for m in quality.RANKING
        ),
        "same_top10_share": round(float(np.mean(same)), 4),
        "load_average": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, help="an interactions file (CSV or Parquet)")
    parser.add_argument("--generate", metavar="USERS,ITEMS,INTERACTIONS")
    parser.add_argument("--max-users", type=int, metavar="N")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        precision, pairs, out = args.worker
        worker(precision, Path(pairs), args.max_users, Path(out))
        return
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        if args.generate:
            users, items, interactions = (int(part) for part in args.generate.split(","))
            paths = generate_dataset(
                scratch / "data", users=users, items=items, interactions=interactions, seed=7
            )
            pairs = paths["interactions"]
        elif args.data:
            pairs = args.data
        else:
            parser.error("give --data FILE or --generate USERS,ITEMS,INTERACTIONS")
        result = compare(pairs, args.max_users, scratch)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
