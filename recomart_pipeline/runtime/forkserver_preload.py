"""Imported first by the tasks' forkserver (``isolation.py``) and nowhere else: importing it
is what it does.

Before a forkserver child unpickles its target, multiprocessing re-runs the parent's main
script in it (spawn's "main fix-up"), in case the target was defined there. Ours never is:
the target is ``isolation._child_main`` and task specs travel by module reference. The
script is often heavy — Dagster's CLI under ``dagster job execute`` and in a Dagster run
worker (~0.8 s here), a whole benchmark or orchestration script (~2 s) — and the fix-up ran
it in every task's process, inside the task's time and deadline. Naming that script as the
server's own ``__main__`` file makes the fix-up see it as already there.
"""

from __future__ import annotations

import os
import sys

from recomart_pipeline.runtime.isolation import MAIN_SCRIPT_VARIABLE

_script = os.environ.pop(MAIN_SCRIPT_VARIABLE, None)
if _script:
    sys.modules["__main__"].__file__ = _script
