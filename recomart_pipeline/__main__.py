"""The CLI as a process: ``python -m recomart_pipeline`` and the ``recomart-pipeline`` script."""

import gc
import sys


def run() -> int:
    """Import the CLI with the cyclic garbage collector paused, run the command, exit.

    Starting the CLI builds thousands of long-lived objects (modules, the config's pydantic
    models and their validators) and next to no garbage, yet CPython's collector walks them
    again and again while they are built (~15 ms) and once more at exit (~40 ms): a fifth of
    ``validate``'s time. So the collector is paused during the import, what the import built
    is frozen out of its sight (``gc.freeze``), and it runs as usual for the command's own
    work; what the command built is frozen before the exit. Atexit handlers and buffered
    output still run. ``cli.main`` itself leaves the collector alone, for in-process callers.
    """
    gc.disable()
    try:
        from recomart_pipeline.cli import main
    finally:
        gc.freeze()
        gc.enable()
    code = main()
    gc.freeze()
    return code


if __name__ == "__main__":
    sys.exit(run())
