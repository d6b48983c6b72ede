"""How long ``python -m recomart_pipeline validate`` takes, against importing pydantic and yaml.

Validating a config should cost about what its two libraries cost to import: the target is at
most 3x ``python -c "import pydantic, yaml"`` on the same machine. The two commands alternate
(so a busy moment hits both), each pair gives one ratio, and the median ratio is the figure.
Also lists the heavy libraries the command imported (the target: none).

    python benchmarks/validate_startup.py [--repeats 9] [--output FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
HEAVY = ("pandas", "numpy", "scipy", "numba", "pyarrow", "matplotlib", "sklearn", "dagster")
TARGET_RATIO = 3.0
VALIDATE = [sys.executable, "-m", "recomart_pipeline", "validate", "pipeline_config.yaml"]
BASELINE = [sys.executable, "-c", "import pydantic, yaml"]
# What any pydantic-validating click command pays before its own code: pydantic's model
# machinery (``import pydantic`` alone loads none of it) and click. Context for the ratio.
FLOOR = [
    sys.executable,
    "-c",
    "import click, yaml\nfrom pydantic import BaseModel\nclass A(BaseModel):\n    x: int\nA(x=1)",
]


# As users run it: Python caches bytecode (a shell or CI with PYTHONDONTWRITEBYTECODE set would
# recompile the project's modules on every start, while site-packages ship compiled).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _seconds(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=REPO, env=ENV, check=True, capture_output=True)
    return time.perf_counter() - started


def heavy_imports(command: list[str] | None = None) -> list[str]:
    """Top-level heavy packages ``command`` (``validate``) imports (from ``-X importtime``)."""
    command = command or VALIDATE
    done = subprocess.run(
        [command[0], "-X", "importtime", *command[1:]],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    )
    names = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    return sorted({name.split(".")[0] for name in names} & set(HEAVY))


def measure(repeats: int) -> dict[str, Any]:
    _seconds(VALIDATE)  # warm the file cache and bytecode once
    runs = [(_seconds(VALIDATE), _seconds(BASELINE), _seconds(FLOOR)) for _ in range(repeats)]
    ratios = [v / b for v, b, _ in runs]
    return {
        "validate_seconds": statistics.median(v for v, _, _ in runs),
        "baseline_seconds": statistics.median(b for _, b, _ in runs),
        "floor_seconds": statistics.median(f for _, _, f in runs),
        "floor_ratio": statistics.median(f / b for _, b, f in runs),
        "ratio": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "runs": repeats,
        "target_ratio": TARGET_RATIO,
        "heavy_imports": heavy_imports(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--output", type=Path, default=HERE / "results" / "validate_startup.json")
    args = parser.parse_args()
    result = measure(args.repeats)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
