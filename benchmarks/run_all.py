"""Every pipeline benchmark in one command; results to benchmarks/results/, report to BENCHMARKS.md.

    python benchmarks/run_all.py            # 100k, 1M, 5M, 20M interactions, both engines
    python benchmarks/run_all.py --quick    # small sizes, one repeat (CI; < 3 min)
    python benchmarks/run_all.py --sizes 1M,20M --engines local   # choose (fits 30 min)
    python benchmarks/run_all.py --sizes 100M --engines local     # issue 19's 100M (~1 h)

With ``--sizes``, only the end-to-end runs are measured; they replace the saved results of
the same size and engine, and every other saved result (other sizes, the overhead, config
scale, the peers) is kept and reported with its own date and load average.

Measures, through Dagster as users run it (``run_pipeline``: in-process executor, each task in
its own isolated process): wall time and peak RSS per task and in total for the default
pipeline, on each data engine chosen (``execution.engine``: ``pandas``, the reference, and
``local``, DuckDB; the same run, sizes taking turns); the orchestration overhead (the same tasks called directly vs through the job, in
one run); config scale (load + validate + plan + build Definitions for 250–1,000 tasks); and
training against scikit-surprise and the popularity baseline (``train_vs_surprise.py``, run
as a step of this command). Each figure is the median of the repeats with min and max.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
SCRATCH = RESULTS / "tmp"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

import serving as serving_benchmark  # noqa: E402
import timeout_enforcement  # noqa: E402
import validate_startup  # noqa: E402
from report_blocks import markers, replace_block  # noqa: E402

from recomart_pipeline import PipelineConfig, TaskDependencyGraph  # noqa: E402
from recomart_pipeline.datagen import generate_dataset  # noqa: E402
from recomart_pipeline.orchestration import build_definitions  # noqa: E402
from recomart_pipeline.orchestration.execution import run_pipeline  # noqa: E402
from recomart_pipeline.runtime.records import MANIFEST  # noqa: E402
from recomart_pipeline.runtime.runner import run_task  # noqa: E402

SIZES = {"quick": [20_000, 100_000], "full": [100_000, 1_000_000, 5_000_000, 20_000_000]}
REPEATS = 3
USERS_PER_INTERACTION, ITEMS_PER_INTERACTION = 20, 200  # generated shop: n/20 users, n/200 items
LARGE_FROM, LARGE_REPEATS = 20_000_000, 2  # fewer runs there: the command stays < 30 min
HUGE_FROM = 100_000_000  # one run there (about an hour on 2 cores)
# Sizes whose shop is not n/20 users x n/200 items: issue 19 defines its 100M data set as
# 1M users x 200k items (20M is 1M users x 100k items, so 20M -> 100M adds items, not users).
SHAPES = {100_000_000: (1_000_000, 200_000)}
ENGINES = ("pandas", "local")
# The tasks whose rules run on the engine (issue 19's "data tasks"); the others run pandas
# or numba whatever the engine.
DATA_TASKS = ("ingestion", "validation", "preparation", "features")
SUFFIXES = {"k": 1_000, "m": 1_000_000}


def parse_size(text: str) -> int:
    """``100k``, ``1M``, ``20m`` or a plain count of interactions."""
    text = text.strip().lower().replace("_", "")
    number, unit = (text[:-1], SUFFIXES[text[-1]]) if text[-1:] in SUFFIXES else (text, 1)
    try:
        value = int(float(number) * unit)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 100k, 1M, 20M)") from None
    if value < 1_000:
        raise argparse.ArgumentTypeError(f"size {text!r}: at least 1k interactions")
    return value


def _stats(values: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": len(values),
    }


def _project(n: int, engine: str = "pandas") -> PipelineConfig:
    """The shipped default pipeline on ``engine`` on a generated data set of ``n``
    interactions (generated once per size: the engines read the same files)."""
    root = SCRATCH / f"e2e_{n}"
    data = root / "data"
    if not (data / "interactions.parquet").exists():
        shutil.rmtree(root, ignore_errors=True)
        _generate(data, n)
    config = yaml.safe_load((REPO / "pipeline_config.yaml").read_text())
    config["tasks"]["ingestion"]["config"] = {
        "source": {t: f"data/{t}.parquet" for t in ("interactions", "items", "users")}
    }
    config["logging"]["level"] = "WARNING"
    config["execution"]["timeout_seconds"] = 7200
    config["execution"]["engine"] = engine
    config["storage"]["base_dir"] = f"storage-{engine}"
    for task in config["tasks"].values():
        task["timeout_seconds"] = 3600
    if n >= HUGE_FROM:
        # Room for this size (the shipped 8 GB / 2 GB fit up to 20M). max_memory_gb bounds
        # a task's address space, not its RSS: with DuckDB in the process the address space
        # ran ~1.7x the RSS (features at 100M: 10.0 GiB RSS, 17.5 GiB mapped), so issue 19's
        # "peak RSS <= 12 GiB" is checked on the measured peak, under a 20 GB bound.
        config["resources"] |= {"max_memory_gb": 20, "max_disk_gb": 20}
    path = root / f"pipeline_config_{engine}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return PipelineConfig(path)


def shape(n: int) -> tuple[int, int]:
    """The generated shop's (users, items) for ``n`` interactions."""
    if n in SHAPES:
        return SHAPES[n]
    return max(200, n // USERS_PER_INTERACTION), max(100, n // ITEMS_PER_INTERACTION)


def _generate(data: Path, n: int) -> None:
    users, items = shape(n)
    generate_dataset(
        data,
        users=users,
        items=items,
        interactions=n,
        seed=11,
        dirty_fraction=0.01,
        file_format="parquet",
    )


def _manifest(config: PipelineConfig, run_id: str) -> Path:
    return config.storage_root / "runs" / run_id / MANIFEST


def _tasks_of(config: PipelineConfig, run_id: str) -> dict[str, dict[str, float]]:
    manifest = json.loads(_manifest(config, run_id).read_text())
    return {
        task: {
            "seconds": entry["duration_s"],
            "peak_rss_mib": entry.get("metrics", {}).get("peak_rss_mib", 0.0),
        }
        for task, entry in manifest["tasks"].items()
    }


class LoadSampler:
    """The 1-minute load average every ``SAMPLE_SECONDS`` while inside ``with``, on a
    thread: how busy the machine was during the runs (our own tasks count: ~1-2 on 2 cores
    when nothing else runs)."""

    SAMPLE_SECONDS = 15.0

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.wait(self.SAMPLE_SECONDS):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self) -> LoadSampler:
        self.samples.append(os.getloadavg()[0])  # on entering: a run shorter than a period
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()

    def mean(self) -> float:
        return statistics.fmean(self.samples)


def end_to_end(n: int, repeats: int, engine: str = "pandas") -> dict[str, Any]:
    config = _project(n, engine)
    walls, per_task = [], {}
    loads = LoadSampler()
    for _ in range(repeats):
        started = time.perf_counter()
        with loads:
            report = run_pipeline(config, quiet=True)
        walls.append(time.perf_counter() - started)
        if not report.success:
            raise RuntimeError(f"benchmark run at {n} failed: {report.rows}")
        recorded = json.loads(_manifest(config, report.run_id).read_text())["engine"]
        if recorded != engine:  # the figures are labelled by what ran, not by what was asked
            raise RuntimeError(f"run at {n} recorded engine {recorded!r}, not {engine!r}")
        for task, figures in _tasks_of(config, report.run_id).items():
            per_task.setdefault(task, {"seconds": [], "peak_rss_mib": []})
            for key, value in figures.items():
                per_task[task][key].append(value)
    tasks = {t: {k: _stats(v) for k, v in figures.items()} for t, figures in per_task.items()}
    peak = max(f["peak_rss_mib"]["max"] for f in tasks.values())
    users, items = shape(n)
    return {
        "interactions": n,
        "users": users,
        "items": items,
        "engine": engine,
        "measured": time.strftime("%Y-%m-%d"),
        "load_average": loads.mean(),
        "wall_seconds": _stats(walls),
        "peak_rss_mib": peak,
        "tasks": tasks,
    }


def merged(saved: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``saved`` with each (size, engine) measured anew replaced by its new result."""
    key = lambda r: (r["interactions"], r.get("engine", "pandas"))  # noqa: E731
    fresh = {key(r) for r in new}
    return [r for r in saved if key(r) not in fresh] + new


def overhead(n: int, repeats: int) -> dict[str, Any]:
    """The same tasks called directly (our runtime, no Dagster) vs through the job."""
    config = _project(n)
    order = TaskDependencyGraph(config).get_execution_order()
    direct, dagster, inside = [], [], []
    for index in range(repeats):
        started = time.perf_counter()
        for task in order:
            run_task(config, task, f"direct-{index}")
        direct.append(time.perf_counter() - started)
        started = time.perf_counter()
        report = run_pipeline(config, quiet=True)
        dagster.append(time.perf_counter() - started)
        # Within the same Dagster run: its wall time minus the time the tasks themselves
        # took (as the runtime measured them), so task-to-task noise between the direct and
        # the Dagster runs does not hide or inflate the orchestration cost.
        inside.append(sum(t["seconds"] for t in _tasks_of(config, report.run_id).values()))
    ratio = statistics.median(dagster) / statistics.median(direct)
    in_run = [d - t for d, t in zip(dagster, inside, strict=True)]
    return {
        "interactions": n,
        "direct_seconds": _stats(direct),
        "dagster_seconds": _stats(dagster),
        "ratio": ratio,
        "in_run_task_seconds": _stats(inside),
        "in_run_ratio": statistics.median(d / t for d, t in zip(dagster, inside, strict=True)),
        "per_task_overhead_seconds": statistics.median(in_run) / len(order),
        "tasks": len(order),
    }


def config_scale(counts: list[int], repeats: int) -> list[dict[str, Any]]:
    rows = []
    for count in counts:
        rng = random.Random(count)
        tasks = {}
        for i in range(count):
            deps = sorted(rng.sample(range(i), k=min(i, rng.randint(0, 3))))
            tasks[f"t{i}"] = {
                "callable": "recomart_pipeline_tests.sample_tasks:merge_numbers",
                "depends_on": [f"t{d}" for d in deps],
            }
        path = SCRATCH / f"scale_{count}.yaml"
        # The sample tasks live in the test package, which a config must allow by name (the
        # test suite allows it through the environment; a shell running this script does not).
        pipeline = {"allowed_task_packages": ["recomart_pipeline_tests"]}
        path.write_text(yaml.safe_dump({"pipeline": pipeline, "tasks": tasks}))
        timings = []
        for _ in range(repeats):
            started = time.perf_counter()
            config = PipelineConfig(path)
            graph = TaskDependencyGraph(config)
            graph.get_execution_order(), graph.get_parallel_groups()
            build_definitions(config).resolve_job_def("automated_pipeline_job")
            timings.append(time.perf_counter() - started)
        edges = sum(len(t["depends_on"]) for t in tasks.values())
        rows.append({"tasks": count, "edges": edges, "seconds": _stats(timings)})
    return rows


def _by_engine(e2e: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The end-to-end results per engine, sizes ascending (results saved before the engines
    were measured side by side are the pandas engine's)."""
    runs: dict[str, list[dict[str, Any]]] = {}
    for r in sorted(e2e, key=lambda r: r["interactions"]):
        runs.setdefault(r.get("engine", "pandas"), []).append(r)
    return runs


def _chart(path: Path, e2e: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    for engine, results in _by_engine(e2e).items():
        reference = engine == "pandas"
        sizes = [r["interactions"] for r in results]
        for task in results[0]["tasks"]:
            if not reference and task not in DATA_TASKS:
                continue  # the same code on every engine: one line is enough
            axis.plot(
                sizes,
                [r["tasks"][task]["seconds"]["median"] for r in results],
                marker="o" if reference else "x",
                linestyle="-" if reference else "--",
                label=task if reference else f"{task} ({engine})",
            )
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("interactions")
    axis.set_ylabel("seconds (median)")
    axis.set_title("Task time vs data size")
    axis.legend(fontsize=6, ncol=2)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def write_report(
    e2e: list[dict[str, Any]], over: dict[str, Any], scale: list[dict[str, Any]], mode: str
) -> None:
    _chart(RESULTS / "end_to_end.png", e2e)
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `python benchmarks/run_all.py{' --quick' if mode == 'quick' else ''}` on "
        f"{platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} CPUs. "
        "Figures are medians of the repeats (min–max in brackets); every size runs "
        f"{REPEATS} times except {LARGE_FROM:,} interactions and more, which run "
        f"{LARGE_REPEATS} times to keep the whole command under 30 minutes, and "
        f"{HUGE_FROM:,} and more, which run once (`--sizes`). The machine is shared: each row "
        "gives the day it was measured and the mean of the 1-minute load average sampled every "
        "15 s during its runs (2 cores; the pipeline's own tasks make ~1–2: above that, other "
        "jobs took CPU time from it).",
        "",
        "## Default pipeline end to end (through Dagster)",
        "",
        "| interactions | users × items | engine | wall seconds | peak RSS of any task (MiB) "
        "| measured | load |",
        "|---|---|---|---|---|---|---|",
    ]
    runs = _by_engine(e2e)
    for r in sorted(e2e, key=lambda r: (r["interactions"], r.get("engine", "pandas"))):
        w = r["wall_seconds"]
        users, items = r.get("users"), r.get("items")
        lines.append(
            f"| {r['interactions']:,} | "
            + (f"{users:,} × {items:,}" if users else "–")
            + f" | {r.get('engine', 'pandas')} | {w['median']:.1f} "
            f"({w['min']:.1f}–{w['max']:.1f}) | {r['peak_rss_mib']:.0f} | "
            f"{r.get('measured', '–')} | "
            + (f"{r['load_average']:.1f}" if "load_average" in r else "–")
            + ("\\*" if "load_note" in r else "")
            + " |"
        )
    notes = sorted({r["load_note"] for r in e2e if "load_note" in r})
    lines += [f"\n\\* {note}" for note in notes]
    lines += [
        "",
        f"Data: the project's generator with {USERS_PER_INTERACTION} interactions per user and "
        f"{ITEMS_PER_INTERACTION} per item (100,000,000: 1,000,000 users × 200,000 items, "
        "issue 19's shape, run with `resources.max_memory_gb: 20` and `max_disk_gb: 20`: the "
        "memory bound is on each task's address space, which with DuckDB in the process runs "
        "~1.7× its RSS, so the 12 GiB target is checked on the measured peak RSS), 1% dirty "
        "rows, Parquet. The engine "
        "(`execution.engine`) runs the data tasks' rules (ingestion, validation, preparation, "
        "features; docs/engines.md); the other tasks run the same code on every engine. "
        "Batch inference ranks every "
        "item for every user, so it grows with users × items — with the square of the data; "
        "evaluation ranks a seeded sample of at most 100,000 test users, so past that it grows "
        "with the catalogue only. At the small sizes each task's time is mostly fixed cost "
        "(its process, reading its inputs, recording the attempt).",
        "",
        "![task time vs size](benchmarks/results/end_to_end.png)",
        "",
    ]
    for engine, results in runs.items():
        lines += [f"Per task, engine `{engine}` (median seconds / peak RSS MiB):", ""]
        lines.append("| task | " + " | ".join(f"{r['interactions']:,}" for r in results) + " |")
        lines.append("|---|" + "---|" * len(results))
        for task in results[0]["tasks"]:
            cells = [
                f"{r['tasks'][task]['seconds']['median']:.2f} s / "
                f"{r['tasks'][task]['peak_rss_mib']['max']:.0f}"
                for r in results
            ]
            lines.append(f"| {task} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += _engine_lines(runs)
    lines += [
        "",
        "## Orchestration overhead",
        "",
        f"At {over['interactions']:,} interactions: direct {over['direct_seconds']['median']:.2f} s, "
        f"through Dagster {over['dagster_seconds']['median']:.2f} s — ratio **{over['ratio']:.3f}**, "
        f"{over['per_task_overhead_seconds'] * 1000:.0f} ms per task ({over['tasks']} tasks).",
        "",
        "The direct and the Dagster runs are separate runs of the same tasks, so their ratio "
        "carries the tasks' own run-to-run noise. Within each Dagster run, its wall time over "
        "the time its tasks took (as the runtime measured them) isolates the orchestration: "
        f"**{over['in_run_ratio']:.3f}**; the per-task figure above is that difference "
        "divided by the number of tasks.",
        "",
        "## Config scale (load + validate + plan + build Definitions)",
        "",
        "| tasks | edges | seconds |",
        "|---|---|---|",
        *(
            f"| {r['tasks']} | {r['edges']} | {r['seconds']['median']:.2f} ({r['seconds']['min']:.2f}–{r['seconds']['max']:.2f}) |"
            for r in scale
        ),
    ]
    peers = RESULTS / "train_vs_surprise.json"
    if peers.exists():
        data = json.loads(peers.read_text())
        lines += [
            "",
            "## Training against scikit-surprise (`benchmarks/train_vs_surprise.py`)",
            "",
            "| set | model | RMSE | NDCG@10 | fit seconds |",
            "|---|---|---|---|---|",
        ]
        for name, dataset in data.get("datasets", {}).items():
            for model, m in dataset["models"].items():
                rmse = f"{m['rmse']:.4f}" if m.get("rmse") is not None else "–"
                lines.append(
                    f"| {name} | {model} | {rmse} | {m['ndcg_at_10']:.4f} | {m['fit_seconds']:.3f} |"
                )
    startup = _load_if_present("validate_startup")
    if startup:
        lines += [
            "",
            "## Config validation start-up (`benchmarks/validate_startup.py`)",
            "",
            f"`python -m recomart_pipeline validate` on the default config: "
            f'{startup["validate_seconds"]:.2f} s; `python -c "import pydantic, yaml"`: '
            f"{startup['baseline_seconds']:.2f} s; ratio **{startup['ratio']:.2f}** "
            f"({startup['ratio_min']:.2f}–{startup['ratio_max']:.2f} over {startup['runs']} "
            "alternating pairs). Heavy libraries imported: "
            f"{', '.join(startup['heavy_imports']) or 'none'}.",
            "",
            "`import pydantic` loads none of pydantic's model machinery; a click command that "
            f"defines and validates one pydantic model already takes {startup['floor_seconds']:.2f} s "
            f"({startup['floor_ratio']:.2f}x the baseline). The rest is the config's own ~60 "
            "models (sections, task configs, model parameters) and reading the file.",
        ]
    lines += timeout_enforcement.report_lines(_load_if_present("timeout_enforcement"))
    lines += serving_benchmark.report_lines(_load_if_present("serving"))
    for engine, results in runs.items():
        lines += _growth_lines(results, engine if len(runs) > 1 else None)
    lines += _target_lines(runs, over, scale, startup)
    # Only this script's block: the engines table and the quality sections stay as written.
    begin, end = markers("pipeline", "benchmarks/run_all.py")
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines))  # sections end and begin blank
    replace_block(REPO / "BENCHMARKS.md", begin, end, text, first=True)


def data_seconds(run: dict[str, Any]) -> float:
    """The data tasks' time in one end-to-end result (sum of their medians)."""
    return sum(run["tasks"][t]["seconds"]["median"] for t in DATA_TASKS if t in run["tasks"])


def _engine_lines(runs: dict[str, list[dict[str, Any]]]) -> list[str]:
    """The engines side by side at each size both ran: the data tasks' time and the whole
    run's, and pandas' time over each other engine's (above 1: faster than pandas)."""
    reference = {r["interactions"]: r for r in runs.get("pandas", [])}
    rows = [
        (r, reference[r["interactions"]])
        for engine, results in runs.items()
        if engine != "pandas"
        for r in results
        if r["interactions"] in reference
    ]
    if not rows:
        return []
    lines = [
        "## Engines side by side (same run)",
        "",
        "Data tasks: " + ", ".join(DATA_TASKS) + " (sum of their medians). Speed-up: pandas' "
        "seconds over the engine's.",
        "",
        "| interactions | engine | data tasks s | pandas data tasks s | speed-up | "
        "end to end s | pandas end to end s | speed-up |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run, ref in rows:
        mine, theirs = data_seconds(run), data_seconds(ref)
        wall, ref_wall = run["wall_seconds"]["median"], ref["wall_seconds"]["median"]
        lines.append(
            f"| {run['interactions']:,} | {run['engine']} | {mine:.1f} | {theirs:.1f} | "
            f"{theirs / mine:.2f}× | {wall:.1f} | {ref_wall:.1f} | {ref_wall / wall:.2f}× |"
        )
    return [*lines, ""]


def _growth_lines(e2e: list[dict[str, Any]], engine: str | None = None) -> list[str]:
    """Each task's time growth against the data's growth between neighbouring sizes: 1.0 is
    linear, above 1 super-linear."""
    if len(e2e) < 2:
        return []
    lines = [
        "",
        "## Growth (time ratio ÷ size ratio between neighbouring sizes; 1.0 = linear)"
        + (f": engine `{engine}`" if engine else ""),
        "",
        "| task | "
        + " | ".join(
            f"{a['interactions']:,}→{b['interactions']:,}" for a, b in itertools.pairwise(e2e)
        )
        + " |",
        "|---|" + "---|" * (len(e2e) - 1),
    ]
    for task in e2e[0]["tasks"]:
        cells = []
        for a, b in itertools.pairwise(e2e):
            before, after = (r["tasks"][task]["seconds"]["median"] for r in (a, b))
            cells.append(f"{(after / before) / (b['interactions'] / a['interactions']):.2f}")
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    return lines


def _scale_targets(runs: dict[str, list[dict[str, Any]]]) -> list[tuple[str, str, bool]]:
    """Issue 19's targets, for the sizes measured: 20M end to end ≤ 120 s; the data tasks at
    20M ≤ 30 s and ≥ 4× pandas' in the same run; at 100M peak RSS ≤ 12 GiB and every data
    task's growth from 20M within 1.2× of linear."""
    rows = []
    reference = {r["interactions"]: r for r in runs.get("pandas", [])}
    for engine, results in runs.items():
        sized = {r["interactions"]: r for r in results}
        if (at20 := sized.get(20_000_000)) is not None:
            wall = at20["wall_seconds"]["median"]
            rows.append((f"20,000,000 end to end ≤ 120 s ({engine})", f"{wall:.0f} s", wall <= 120))
            if engine != "pandas" and 20_000_000 in reference:
                mine, theirs = data_seconds(at20), data_seconds(reference[20_000_000])
                rows.append(
                    (
                        f"data tasks at 20,000,000 ≤ 30 s and ≥ 4× pandas ({engine})",
                        f"{mine:.1f} s, {theirs / mine:.2f}×",
                        mine <= 30 and theirs / mine >= 4,
                    )
                )
        if (at100 := sized.get(100_000_000)) is not None:
            peak = at100["peak_rss_mib"] / 1024
            rows.append(
                (
                    f"100,000,000 peak RSS of any task ≤ 12 GiB ({engine})",
                    f"{peak:.2f} GiB",
                    peak <= 12,
                )
            )
            if at20 is not None:
                growth = max(
                    at100["tasks"][t]["seconds"]["median"]
                    / at20["tasks"][t]["seconds"]["median"]
                    / 5
                    for t in DATA_TASKS
                )
                rows.append(
                    (
                        f"data tasks 20M→100M within 1.2× of linear ({engine})",
                        f"worst {growth:.2f}",
                        growth <= 1.2,
                    )
                )
    return rows


def _load_if_present(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _target_lines(
    runs: dict[str, list[dict[str, Any]]],
    over: dict[str, Any],
    scale: list[dict[str, Any]],
    startup: dict[str, Any] | None,
) -> list[str]:
    thousand = next((r for r in scale if r["tasks"] == 1000), None)
    rows = []
    for engine, results in runs.items():
        # the full command's largest size (20M); 100M has issue 19's own bound, 12 GiB
        regular = [r for r in results if r["interactions"] < HUGE_FROM]
        if not regular:
            continue
        largest = regular[-1]
        rows.append(
            (
                f"{largest['interactions']:,} interactions end to end ({engine}), peak RSS < 8 GiB",
                f"{largest['peak_rss_mib'] / 1024:.2f} GiB",
                largest["peak_rss_mib"] < 8 * 1024,
            )
        )
    rows += _scale_targets(runs)
    # Judged within each Dagster run (its wall over its own tasks' time): the separate
    # direct runs differ from the Dagster runs by the tasks' run-to-run noise as well, which
    # has put that ratio anywhere from 0.89 to 1.18 on this machine — below 1 is no
    # orchestration cost at all, so it measures the noise, not Dagster. Both are shown.
    rows.append(
        (
            f"Dagster run ≤ 1.15 × bare task time at {over['interactions']:,} "
            "(within each run: wall ÷ its tasks' own time)",
            f"{over['in_run_ratio']:.3f} (separate direct runs: {over['ratio']:.3f})",
            over["in_run_ratio"] <= 1.15,
        )
    )
    if thousand:
        rows.append(
            (
                "1,000-task config: load + validate + plan + Definitions < 3 s",
                f"{thousand['seconds']['median']:.2f} s",
                thousand["seconds"]["median"] < 3,
            )
        )
    if startup:
        rows.append(
            (
                "`validate` ≤ 3 × `import pydantic, yaml`, no heavy imports",
                f"{startup['ratio']:.2f}, heavy: {', '.join(startup['heavy_imports']) or 'none'}",
                startup["ratio"] <= startup["target_ratio"] and not startup["heavy_imports"],
            )
        )
    return [
        "",
        "## Targets",
        "",
        "| target | measured | met |",
        "|---|---|---|",
        *(f"| {what} | {value} | {'yes' if met else '**no**'} |" for what, value, met in rows),
    ]


def report_from_results() -> None:
    """Rebuild BENCHMARKS.md from the saved results without measuring again."""
    load = lambda name: json.loads((RESULTS / f"{name}.json").read_text())  # noqa: E731
    write_report(load("end_to_end"), load("overhead"), load("config_scale"), "full")


def _runs(n: int, repeats: int) -> int:
    """How many times a size runs: fewer at the large sizes, so the command stays usable."""
    if n >= HUGE_FROM:
        return 1
    return min(LARGE_REPEATS, repeats) if n >= LARGE_FROM else repeats


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat (CI)")
    parser.add_argument(
        "--report", action="store_true", help="only rebuild BENCHMARKS.md from saved results"
    )
    parser.add_argument(
        "--sizes",
        type=lambda text: [parse_size(part) for part in text.split(",")],
        help="comma-separated interaction counts (100k,1M,20M); default: all sizes of the mode",
    )
    parser.add_argument(
        "--engines",
        type=lambda text: [part.strip() for part in text.split(",")],
        default=list(ENGINES),
        help=f"comma-separated data engines to run end to end (default: {','.join(ENGINES)})",
    )
    args = parser.parse_args()
    if args.report:
        report_from_results()
        return 0
    unknown = sorted(set(args.engines) - set(ENGINES))
    if unknown or not args.engines:
        parser.error(f"--engines: choose among {', '.join(ENGINES)} (got {args.engines})")
    mode = "quick" if args.quick else "full"
    logging.getLogger("dagster").setLevel(logging.WARNING)
    SCRATCH.mkdir(parents=True, exist_ok=True)
    repeats = 1 if args.quick else REPEATS
    suffix = "_quick" if args.quick else ""

    def save(name: str, payload: Any) -> None:
        (RESULTS / f"{name}{suffix}.json").write_text(json.dumps(payload, indent=2))

    if args.sizes and not args.quick:
        # Chosen sizes: the end-to-end runs only, merged into the saved results.
        e2e = json.loads((RESULTS / "end_to_end.json").read_text())
        for n in sorted(args.sizes):
            for engine in args.engines:
                e2e = merged(e2e, [end_to_end(n, _runs(n, repeats), engine)])
                save("end_to_end", e2e)  # each as soon as it is measured
        report_from_results()
        shutil.rmtree(SCRATCH, ignore_errors=True)
        return 0
    # Cheap results first, and each size saved as soon as it is measured: a long run that is
    # stopped keeps everything measured so far.
    save("validate_startup", validate_startup.measure(3 if args.quick else 9))
    scale = config_scale([100, 250] if args.quick else [250, 500, 1000], repeats)
    save("config_scale", scale)
    over = overhead(SIZES[mode][0] if args.quick else 1_000_000, repeats)
    save("overhead", over)
    peers = [sys.executable, str(HERE / "train_vs_surprise.py")]
    if args.quick:
        peers += [
            "--sizes",
            "20k",
            "--repeats",
            "1",
            "--output",
            str(RESULTS / "train_vs_surprise_quick.json"),
        ]
    subprocess.run(peers, check=True)
    e2e: list[dict[str, Any]] = []
    for n in sorted(args.sizes or SIZES[mode]):
        for engine in args.engines:  # the engines take turns at each size: the same load
            e2e.append(end_to_end(n, _runs(n, repeats), engine))
            save("end_to_end", e2e)
    if not args.quick:
        write_report(e2e, over, scale, mode)
    print(
        json.dumps(
            {
                "end_to_end": [
                    (r["interactions"], r["engine"], r["wall_seconds"]["median"], r["peak_rss_mib"])
                    for r in e2e
                ],
                "overhead_ratio": over["ratio"],
                "config_scale": [(r["tasks"], r["seconds"]["median"]) for r in scale],
            }
        )
    )
    shutil.rmtree(SCRATCH, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
