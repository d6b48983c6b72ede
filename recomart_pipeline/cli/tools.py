"""Commands that need no pipeline config: schema, config-reference, generate-data.

They write documentation and test data; their modules (numpy and pyarrow for the data
generator) are imported inside the bodies.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Literal

import click

from recomart_pipeline.cli.options import EXIT_CONFIG, EXIT_OK


@click.command("schema")
@click.option("--output", metavar="FILE", type=click.Path(), help="write the schema to FILE")
def schema(output: str | None) -> int:
    """print the JSON Schema of pipeline_config.yaml"""
    from recomart_pipeline.config.json_schema import config_json_schema

    text = json.dumps(config_json_schema(), indent=2) + "\n"
    if output:
        Path(output).write_text(text)
        print(f"wrote {output}")
    else:
        sys.stdout.write(text)
    return EXIT_OK


@click.command("config-reference")
def config_reference() -> int:
    """print the README's config reference (Markdown)"""
    from recomart_pipeline.config.reference import render_reference

    print(render_reference())
    return EXIT_OK


@click.command("generate-data")
@click.option("--users", type=int, default=1000, help="number of users (default 1000)")
@click.option("--items", type=int, default=400, help="number of items (default 400)")
@click.option("--interactions", type=int, default=50_000, help="number of events (default 50000)")
@click.option("--seed", type=int, default=42, help="random seed (default 42)")
@click.option(
    "--dirty-fraction",
    type=float,
    default=0.0,
    help="share of events replaced by faulty rows, 0..0.5 (default 0)",
)
@click.option(
    "--format",
    "file_format",
    type=click.Choice(["parquet", "csv"]),
    default="parquet",
    help="file format of the three tables (default parquet)",
)
@click.option("--start", default="2026-01-01", help="first day of events (ISO date)")
@click.option("--days", type=int, default=90, help="days of events (default 90)")
@click.option(
    "--out", type=click.Path(path_type=Path), default=Path("data"), help="output directory"
)
def generate_data(
    users: int,
    items: int,
    interactions: int,
    seed: int,
    dirty_fraction: float,
    file_format: Literal["parquet", "csv"],
    start: str,
    days: int,
    out: Path,
) -> int:
    """write a synthetic RecoMart data set (deterministic for a seed)"""
    from recomart_pipeline.datagen import generate_dataset

    try:
        paths = generate_dataset(
            out,
            users=users,
            items=items,
            interactions=interactions,
            seed=seed,
            dirty_fraction=dirty_fraction,
            file_format=file_format,
            start=start,
            days=days,
        )
    except ValueError as exc:
        print(f"generate-data: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    for name, path in paths.items():
        print(f"{name:<13} {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return EXIT_OK
