"""The project CLI: ``recomart-pipeline`` / ``python -m recomart_pipeline``, built on click.

Each command declares its options next to its body (``pipeline``, ``operations``, ``tools``
and ``models``); this module registers them explicitly
and turns every outcome into the style guide's exit codes: 0 success, 1 the run failed,
2 the config or the command line is wrong. Config errors are printed without a traceback.

Shell completion is click's: ``eval "$(_RECOMART_PIPELINE_COMPLETE=bash_source
recomart-pipeline)"`` (``zsh_source``/``fish_source`` for the other shells).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from recomart_pipeline.cli import models, onboarding, operations, pipeline, tools
from recomart_pipeline.cli.options import EXIT_CONFIG, EXIT_INTERRUPTED
from recomart_pipeline.config import ConfigError

PROG_NAME = "recomart-pipeline"

cli = click.Group(
    PROG_NAME,
    help="Validate, plan and run the RecoMart pipeline; look after its runs, data and models.",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    no_args_is_help=False,  # a missing command is a usage error (exit 2), as with argparse
    commands=[
        pipeline.validate,
        pipeline.plan,
        pipeline.run,
        pipeline.task,
        pipeline.backfill,
        tools.schema,
        tools.config_reference,
        tools.generate_data,
        onboarding.init_data,
        operations.runs,
        operations.reproduce,
        operations.watchdog,
        operations.housekeeping,
        operations.approve_schema,
        operations.schedule_resume,
        models.serve,
        models.approve,
        models.rollback,
        models.models,
    ],
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI on ``argv`` (default: ``sys.argv[1:]``) and return its exit code.

    Returning instead of exiting lets tests call ``main([...])`` in-process; the console
    script and ``python -m recomart_pipeline`` exit with the result.
    """
    try:
        return cli.main(
            args=None if argv is None else list(argv), prog_name=PROG_NAME, standalone_mode=False
        )
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_CONFIG
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:  # click's form of Ctrl-C
        return EXIT_INTERRUPTED
