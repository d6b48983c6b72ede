"""A task module that takes seconds to import, as one pulling in heavy libraries does on a
cold worker. The delay (``SLOW_IMPORT_SECONDS``, default none) is the import itself, not a
stand-in for synchronisation."""

from __future__ import annotations

import os
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from recomart_pipeline.contract import TaskContext, pipeline_task

time.sleep(float(os.environ.get("SLOW_IMPORT_SECONDS", "0")))


class MarkerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    marker: str | None = None


@pipeline_task(config=MarkerConfig)
def wait_forever(ctx: TaskContext) -> None:
    """Leaves ``marker`` (its body ran), then blocks far past any limit."""
    if ctx.config.marker:
        Path(ctx.config.marker).write_text(str(ctx.attempt))
    time.sleep(600)
