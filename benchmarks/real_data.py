"""Real public data sets through ``init-data`` + ``run``, unedited: does the way in hold?

The project's tests generate files in the shapes of public data sets (never the data itself,
which may not be redistributed). This script is the other half: given the real files, which
live outside the repository, it does what a new user would, each in its own scratch project
(a copy of the shipped ``pipeline_config.yaml``):

    python -m recomart_pipeline init-data FILE --output cfg.yaml
    python -m recomart_pipeline run cfg.yaml

with no edit of the file or of the written config, and records what came out: the protocol
``init-data`` chose, rows/users/items, the number of evaluated users and held-out
interactions, the selected model's test NDCG@10 / recall@10 / hit rate@10 with their 95 %
bootstrap intervals next to the popularity baseline's, and the wall time of each command.
Only figures are written (``benchmarks/results/real_data.json``); no data, no config paths
beyond the file's name.

Run (data sets named ``NAME=PATH``; see docs/real_data.md for where each one comes from):

    PYTHONPATH=. .venv/bin/python benchmarks/real_data.py \\
        ml-100k=/tmp/realdata/ml-100k/u.data \\
        ml-latest-small=/tmp/realdata/ml-latest-small/ratings.csv \\
        --json benchmarks/results/real_data.json

An existing results file is updated by name, so data sets can be run one at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
METRICS = ("ndcg_at_10", "recall_at_10", "hit_rate_at_10")
MIN_EVAL_USERS = 100  # preparation's default min_eval_users: below it, metrics are noise
SUMMARY = re.compile(
    r"interactions: ([\d,]+) kept of ([\d,]+) rows read; ([\d,]+) users, ([\d,]+) items"
)


def _command(args: list[str], project: Path, log: Path) -> tuple[int, float]:
    """Run ``python -m recomart_pipeline ARGS`` in project, output to log: (exit code, wall s)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    started = time.perf_counter()
    with log.open("w") as out:
        done = subprocess.run(
            [sys.executable, "-m", "recomart_pipeline", *args],
            cwd=project,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    return done.returncode, round(time.perf_counter() - started, 1)


def _published(storage: Path, task: str) -> dict[str, Any]:
    """A task's latest pointer (metadata, metrics) from the run's storage."""
    return json.loads((storage / "latest" / f"{task}.json").read_text())


def _figures(project: Path) -> dict[str, Any]:
    """What the run published: data sizes, protocol, evaluation with intervals."""
    storage = project / "storage"
    ingestion = _published(storage, "ingestion")["metrics"]
    preparation = _published(storage, "preparation")
    pointer = _published(storage, "evaluation")
    evaluation = json.loads((storage / pointer["artifacts"]["evaluation"]["path"]).read_text())
    best, baseline = evaluation["best_model"], evaluation["baseline"]

    def scored(model: str) -> dict[str, Any]:
        intervals = evaluation.get("intervals", {}).get(model, {})
        return {
            metric: {
                "value": round(evaluation["models"][model][metric], 4),
                "interval_95": [round(x, 4) for x in intervals.get(metric, [])] or None,
            }
            for metric in METRICS
        }

    return {
        "interactions_ingested": ingestion["interactions_rows"],
        "rows_dropped_by_filter": ingestion["interactions_rows_filtered"],
        "users": preparation["metrics"]["users"],
        "items": preparation["metrics"]["items"],
        "protocol": preparation["metadata"]["split_method"],
        "eval_users": evaluation["eval_users"],
        "test_interactions": evaluation["test_interactions"],
        "selected_on": evaluation.get("selected_on"),
        "best_model": best,
        "baseline": baseline,
        "gates_passed": evaluation["passed"],
        "best": scored(best),
        "popularity": scored(baseline),
    }


def _init_data_summary(log: Path) -> dict[str, int]:
    """Rows read and kept, users and items, as init-data printed them."""
    found = SUMMARY.search(log.read_text())
    if found is None:
        return {}
    kept, read, users, items = (int(part.replace(",", "")) for part in found.groups())
    return {"file_rows": read, "rows_kept": kept, "file_users": users, "file_items": items}


def run_one(name: str, data: Path, workdir: Path) -> dict[str, Any]:
    """init-data + run of one file in a fresh scratch project under workdir."""
    project = workdir / name
    shutil.rmtree(project, ignore_errors=True)
    project.mkdir(parents=True)
    shutil.copy(REPO / "pipeline_config.yaml", project / "pipeline_config.yaml")
    result: dict[str, Any] = {"file": data.name, "bytes": data.stat().st_size}
    code, seconds = _command(
        ["init-data", str(data), "--output", "cfg.yaml"], project, project / "init-data.log"
    )
    result["init_data_seconds"] = seconds
    result.update(_init_data_summary(project / "init-data.log"))
    if code != 0:
        result["error"] = f"init-data exited {code}: see {project / 'init-data.log'}"
        return result
    code, seconds = _command(["run", "cfg.yaml"], project, project / "run.log")
    result["run_seconds"] = seconds
    if code != 0:
        result["error"] = f"run exited {code}: see {project / 'run.log'}"
        return result
    result.update(_figures(project))
    return result


def _cell(scored: dict[str, Any]) -> str:
    low, high = scored["interval_95"] or (None, None)
    return (
        f"{scored['value']:.3f} [{low:.3f}, {high:.3f}]"
        if low is not None
        else f"{scored['value']:.3f}"
    )


def render_table(results: dict[str, Any]) -> str:
    """The Markdown table of docs/real_data.md, from a results file."""
    lines = [
        "| data set | rows kept / read | users | items | protocol | evaluated users (held-out) "
        "| selected | NDCG@10 | recall@10 | hit rate@10 | init-data / run (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in sorted(results["datasets"].items()):
        if "error" in r:
            lines.append(f"| {name} | {r['error']} |" + " |" * 9)
            continue
        kept = f"{r['rows_kept']:,} / {r['file_rows']:,}"
        if r["eval_users"] < MIN_EVAL_USERS:  # a shape check: init-data + run work, no metrics
            lines.append(
                f"| {name} | {kept} | {r['users']:,} | {r['items']:,} | {r['protocol']} "
                f"| {r['eval_users']:,} ({r['test_interactions']:,}) | {r['best_model']} "
                f"| too few users to measure | | | {r['init_data_seconds']} / {r['run_seconds']} |"
            )
            continue
        for label, model in ((r["best_model"], r["best"]), ("popularity", r["popularity"])):
            first = label == r["best_model"]
            lines.append(
                "| "
                + " | ".join(
                    [
                        name if first else "",
                        kept if first else "",
                        f"{r['users']:,}" if first else "",
                        f"{r['items']:,}" if first else "",
                        r["protocol"] if first else "",
                        f"{r['eval_users']:,} ({r['test_interactions']:,})" if first else "",
                        label,
                        *(_cell(model[m]) for m in METRICS),
                        f"{r['init_data_seconds']} / {r['run_seconds']}" if first else "",
                    ]
                )
                + " |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("datasets", nargs="*", help="NAME=PATH of a data file (outside the repo)")
    parser.add_argument(
        "--table", action="store_true", help="print the Markdown table of the --json file"
    )
    parser.add_argument("--workdir", type=Path, help="scratch projects (default: a temp dir)")
    parser.add_argument("--json", type=Path, help="results file to write or update")
    args = parser.parse_args(argv)
    if args.table:
        if args.json is None or args.datasets:
            parser.error("--table reads --json and runs nothing")
        print(render_table(json.loads(args.json.read_text())))
        return 0
    if not args.datasets:
        parser.error("name at least one NAME=PATH")
    pairs = [item.split("=", 1) for item in args.datasets]
    if any(len(pair) != 2 for pair in pairs):
        parser.error("each data set is NAME=PATH")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="recomart-real-data-"))
    results: dict[str, Any] = {}
    if args.json and args.json.exists():
        results = json.loads(args.json.read_text())
    results.setdefault("datasets", {})
    for name, path in pairs:
        print(f"{name}: {path}", flush=True)
        figures = run_one(name, Path(path).resolve(), workdir)
        figures["measured"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        results["datasets"][name] = figures
        print(json.dumps(figures, indent=1), flush=True)
    results["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "note": "wall times on a shared 2-core machine; other work ran beside these runs",
    }
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    return 0 if all("error" not in r for r in results["datasets"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
