"""What several commands share, declared once: exit codes, the config source and list options.

Every command that reads the pipeline config gets it through one of two decorators —
``config_file_options`` (``[FILE] --env --set``, for validate/plan/run) or ``config_option``
(``--config FILE``, for the rest) — which load the ``PipelineConfig`` before the command body
runs. So the config is resolved the same way everywhere, and a ``ConfigError`` (exit 2) comes
before a body's heavy imports.

``ListOption`` keeps argparse's ``--select a b c`` (``nargs="+"``), which click has no option for.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from typing import Any

import click

from recomart_pipeline.config import PipelineConfig, environment_config_path

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2
EXIT_INTERRUPTED = 130

CommandBody = Callable[..., int]

CONFIG_HELP = "pipeline config (default: $PIPELINE_CONFIG or ./pipeline_config.yaml)"


def _loading_config(body: CommandBody) -> CommandBody:
    """``body`` called with ``config=PipelineConfig(...)`` instead of the raw source options."""

    @functools.wraps(body)
    def with_config(
        *args: Any,
        config_path: str | None,
        env: str | None = None,
        overrides: tuple[str, ...] = (),
        **kwargs: Any,
    ) -> int:
        if env:
            config_path = str(environment_config_path(config_path, env))
        return body(*args, config=PipelineConfig(config_path, overrides=overrides), **kwargs)

    return with_config


def config_file_options(body: CommandBody) -> CommandBody:
    """``[FILE] [--env NAME] [--set KEY=VALUE]...``: the config of validate, plan and run."""
    decorators = (
        click.option(
            "--set",
            "overrides",
            multiple=True,
            metavar="KEY=VALUE",
            help="override a config value without editing the file, e.g. "
            "tasks.training.config.svd.n_factors=64 (repeatable)",
        ),
        click.option(
            "--env",
            metavar="NAME",
            help="use the environment overlay next to the config, e.g. --env prod reads "
            "pipeline_config.prod.yaml",
        ),
        click.argument("config_path", metavar="[FILE]", required=False, type=click.Path()),
    )
    command = _loading_config(body)
    for decorate in decorators:
        command = decorate(command)
    return command


def config_option(body: CommandBody) -> CommandBody:
    """``--config FILE``: the config of every other command that reads one."""
    return click.option(
        "--config", "config_path", metavar="FILE", type=click.Path(), help=CONFIG_HELP
    )(_loading_config(body))


class ListOption(click.Option):
    """An option followed by one or more values, argparse's ``nargs="+"``: ``--select a b c``.

    Needs a ``ListOptionCommand``, which spreads the values into ``--select a --select b …``
    before click parses them (click options take a fixed number of values).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["multiple"] = True
        super().__init__(*args, **kwargs)


class ListOptionCommand(click.Command):
    """A command that accepts its ``ListOption``s argparse-style (see ``ListOption``)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        names = {
            name for param in self.params if isinstance(param, ListOption) for name in param.opts
        }
        return super().parse_args(ctx, _spread_lists(ctx, args, names))


def _spread_lists(ctx: click.Context, args: list[str], names: set[str]) -> list[str]:
    """``--select a b --json`` -> ``--select a --select b --json`` for the option ``names``.

    A list ends at the next token that starts with ``-``; ``--`` ends option parsing as usual.
    """
    spread: list[str] = []
    index = 0
    while index < len(args):
        token = args[index]
        index += 1
        if token == "--":
            spread.extend(args[index - 1 :])
            break
        if token not in names:
            spread.append(token)
            continue
        values = list(itertools.takewhile(lambda arg: not arg.startswith("-"), args[index:]))
        if not values:
            raise click.BadOptionUsage(token, f"Option '{token}' expects at least one value.", ctx)
        index += len(values)
        spread.extend(itertools.chain.from_iterable((token, value) for value in values))
    return spread
