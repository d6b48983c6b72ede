"""Running the service under uvicorn, kept apart from the app so that the process that only
supervises workers (``serve --workers N``) does not import what a worker needs: with two
workers the supervisor held ~60 MiB of numpy, FastAPI and pydantic it never used."""

from __future__ import annotations

import copy
import os
from typing import Any

# Where `python -m recomart_pipeline.serving` tells its worker processes what to serve.
REGISTRY_ENV = "RECOMART_SERVE_REGISTRY"
TOKEN_ENV_ENV = "RECOMART_SERVE_ADMIN_TOKEN_ENV"
# The service's own logger (refused champions, swaps): serving.state logs to it.
LOGGER_NAME = "recomart_pipeline.serving"


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging setup plus the service's own logger, so its records reach the same
    stream in the same format."""
    import uvicorn.config

    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["loggers"][LOGGER_NAME] = {
        "handlers": ["default"],
        "level": level.upper(),
        "propagate": False,
    }
    return config


def run_server(
    factory: str,
    env: dict[str, str],
    host: str,
    port: int,
    workers: int,
    log_level: str,
    access_log: bool = True,
) -> None:
    """Run the app ``factory`` (``module:function``) under uvicorn with ``workers`` processes
    sharing one listening socket; ``env`` tells each process what to serve. With one worker
    the app runs in this process; with more, each worker imports ``factory``'s module and
    maps the model's arrays itself (the pages are shared through the page cache)."""
    import uvicorn

    os.environ.update(env)
    uvicorn.run(
        factory,
        factory=True,
        host=host,
        port=port,
        workers=workers if workers > 1 else None,
        log_level=log_level,
        log_config=log_config(log_level),
        access_log=access_log,
    )
