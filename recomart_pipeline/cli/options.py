"""What several commands share, declared once: exit codes, the config source and list options.

Every command that reads the pipeline config takes it the same way, as its last positional
argument ``[FILE]`` or as ``--config FILE``, through one of two decorators:
``config_file_options`` (adds ``--env`` and ``--set``, for validate/plan/run) or
``config_option`` (the rest). Both load the ``PipelineConfig`` before the command body runs, so
the config is resolved the same way everywhere, and a ``ConfigError`` (exit 2) comes before a
body's heavy imports.

``ListOption`` keeps argparse's ``--select a b c`` (``nargs="+"``), which click has no option
for; its list ends at the first token that cannot be a task name, so options and FILE may come
in any order (``run --select a b pipeline_config.yaml``).
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Callable
from typing import Any

import click

from recomart_pipeline.config import PipelineConfig, environment_config_path
from recomart_pipeline.config.schema import NAME_PATTERN

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
        config_flag: str | None = None,
        env: str | None = None,
        overrides: tuple[str, ...] = (),
        **kwargs: Any,
    ) -> int:
        if config_path and config_flag and config_path != config_flag:
            raise click.UsageError(
                f"two config files given ({config_path} and --config {config_flag}): "
                "name the config once, as FILE or as --config FILE"
            )
        config_path = config_path or config_flag
        if env:
            config_path = str(environment_config_path(config_path, env))
        return body(*args, config=PipelineConfig(config_path, overrides=overrides), **kwargs)

    return with_config


ArgumentCallback = Callable[[click.Context, click.Parameter, Any], Any]


def _config_source(body: CommandBody, callback: ArgumentCallback | None = None) -> CommandBody:
    """``[FILE]`` and its alias ``--config FILE``, read by ``_loading_config``."""
    command = _loading_config(body)
    command = click.option(
        "--config", "config_flag", metavar="FILE", type=click.Path(), help=CONFIG_HELP
    )(command)
    return click.argument(
        "config_path", metavar="[FILE]", required=False, type=click.Path(), callback=callback
    )(command)


def config_file_options(body: CommandBody) -> CommandBody:
    """``[FILE] [--config FILE] [--env NAME] [--set KEY=VALUE]...``: validate, plan and run."""
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
    )
    command = body
    for decorate in decorators:
        command = decorate(command)
    return _config_source(command)


def config_option(
    body: CommandBody | None = None, *, callback: ArgumentCallback | None = None
) -> Any:
    """``[FILE] [--config FILE]``: the config of every other command that reads one.

    The file is the command's last positional argument (``task NAME [FILE]``,
    ``reproduce RUN_ID [FILE]``); ``callback`` lets a command whose earlier positionals are
    optional sort its positionals out (see ``runs``).
    """
    if body is None:
        return functools.partial(config_option, callback=callback)
    return _config_source(body, callback)


verbose_option = click.option(
    "--verbose",
    "-v",
    is_flag=True,
    help="print each task log event in full (all its fields, as the log files hold them) "
    "instead of one short line",
)


class ListOption(click.Option):
    """An option followed by one or more values, argparse's ``nargs="+"``: ``--select a b c``.

    Needs a ``ListOptionCommand``, which spreads the values into ``--select a --select b …``
    before click parses them (click options take a fixed number of values). The values are
    task names by default (``value_pattern``): the list ends at the first token that is not
    one, so a FILE after the list stays the command's argument.
    """

    def __init__(self, *args: Any, value_pattern: str = NAME_PATTERN, **kwargs: Any) -> None:
        kwargs["multiple"] = True
        super().__init__(*args, **kwargs)
        self.value_pattern = re.compile(value_pattern)


class ListOptionCommand(click.Command):
    """A command that accepts its ``ListOption``s argparse-style (see ``ListOption``)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        lists = {
            name: param
            for param in self.params
            if isinstance(param, ListOption)
            for name in param.opts
        }
        return super().parse_args(ctx, _spread_lists(ctx, args, lists))


def _spread_lists(ctx: click.Context, args: list[str], lists: dict[str, ListOption]) -> list[str]:
    """``--select a b --json`` -> ``--select a --select b --json`` for the options ``lists``.

    A list ends at the next token that starts with ``-`` or does not match the option's
    ``value_pattern`` (``--select a b pipeline_config.yaml``); ``--`` ends option parsing as
    usual.
    """
    spread: list[str] = []
    index = 0
    while index < len(args):
        token = args[index]
        index += 1
        if token == "--":
            spread.extend(args[index - 1 :])
            break
        option = lists.get(token)
        if option is None:
            spread.append(token)
            continue
        values: list[str] = []
        while (
            index < len(args)
            and not args[index].startswith("-")
            and option.value_pattern.match(args[index])
        ):
            values.append(args[index])
            index += 1
        if not values:
            following = args[index] if index < len(args) and args[index] != "--" else None
            detail = (
                f"; '{following}' is not a task name (letters, digits and underscores)"
                if following and not following.startswith("-")
                else ""
            )
            raise click.BadOptionUsage(
                token, f"Option '{token}' expects at least one value{detail}.", ctx
            )
        spread.extend(itertools.chain.from_iterable((token, value) for value in values))
    return spread
