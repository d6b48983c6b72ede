"""``init-data``: write the config overlay that runs the pipeline on the user's own files.

The inference lives in ``recomart_pipeline.onboarding`` (pandas, imported inside the body so
the CLI starts fast); this command finds the base config, writes the overlay next to it,
checks it the way ``validate`` does (the data's head included) and prints what it guessed.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import click

from recomart_pipeline.cli.options import EXIT_CONFIG, EXIT_OK
from recomart_pipeline.config import ConfigError, PipelineConfig
from recomart_pipeline.contract.files import write_text_atomic

BASE_NAME = "pipeline_config.yaml"


def _fail(message: str) -> int:
    print(f"init-data: {message}", file=sys.stderr)
    return EXIT_CONFIG


def _base(base: str | None, folder: Path, output: Path | None) -> Path | str:
    """The config to extend, inside the overlay's project folder (a str: why not)."""
    path = (Path(base) if base else folder / BASE_NAME).resolve()
    if not path.is_file():
        return (
            f"no base config at {path}: copy the shipped {BASE_NAME} into {folder} "
            "(or pass --base FILE inside that folder)"
        )
    if not path.is_relative_to(folder.resolve()):
        return (
            f"the base config {path} is outside the overlay's folder {folder.resolve()}, and "
            "extends may not leave the project folder: copy it into that folder"
        )
    if output is not None and path == output.resolve():
        return f"--output {output} is the base config itself: write the overlay to another file"
    return path


@click.command("init-data")
@click.argument("paths", nargs=-1, required=True, metavar="PATH [PATH ...]")
@click.option(
    "--output",
    metavar="FILE",
    type=click.Path(path_type=Path),
    help="write the overlay to FILE (default: print it); data paths are relative to its folder",
)
@click.option(
    "--base",
    metavar="FILE",
    help=f"config the overlay extends (default: {BASE_NAME} in the output's folder)",
)
@click.option("--force", is_flag=True, help="overwrite an existing --output file")
def init_data(paths: tuple[str, ...], output: Path | None, base: str | None, force: bool) -> int:
    """write a config overlay that runs the pipeline on your data files as they are

    PATH is a CSV/TSV (any delimiter, with or without header) or Parquet file, a directory
    or a glob. Column roles, time format, rating scale, rows that are not interactions and
    the evaluation protocol are inferred from the names and values; every guess is printed
    with its confidence and the config key that changes it.
    """
    from recomart_pipeline.onboarding import (
        OnboardingError,
        propose,
        read_inputs,
        render_overlay,
        render_summary,
    )

    folder = output.parent if output is not None else Path.cwd()
    found = _base(base, folder, output)
    if isinstance(found, str):
        return _fail(found)
    if output is not None and output.exists() and not force:
        return _fail(f"{output} exists: pass --force to overwrite it")
    try:
        proposal = propose(read_inputs(list(paths)))
    except OnboardingError as exc:
        return _fail(str(exc))
    given = [
        *paths,
        *(["--output", str(output)] if output else []),
        *(["--base", base] if base else []),
    ]
    command = "python -m recomart_pipeline init-data " + shlex.join(given)
    text = render_overlay(
        proposal, os.path.relpath(found, folder.resolve()).replace(os.sep, "/"), folder, command
    )
    summary = render_summary(proposal)
    if output is None:
        print(summary, file=sys.stderr)
        sys.stdout.write(text)
        return EXIT_OK
    write_text_atomic(output, text)
    print(summary)
    try:
        PipelineConfig(output).check_data()
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return _fail(f"wrote {output}, but validate rejects it (above): please report this")
    print(f"\nwrote {output}; next: python -m recomart_pipeline run {output}")
    return EXIT_OK
