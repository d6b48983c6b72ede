"""Run a kernel over fixed blocks of rows on the runtime's CPU share.

The numba kernels release the GIL, so plain threads run them in parallel without copying
their (large) inputs into other processes. Each block is computed by one thread alone and the
blocks are fixed by the caller, not by the number of threads: a kernel whose rows do not read
each other's results gives the same output bit for bit on one thread or many.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numba


def run_blocks(run: Callable[[int], None], starts: range, *, name: str) -> None:
    """Call ``run(start)`` for every block start, on up to ``numba.get_num_threads()``
    threads (the runtime sets it to the task's CPU cap); a failure in any block re-raises
    here. ``name`` prefixes the threads' names (seen in profiles and stack dumps)."""
    workers = min(len(starts), numba.get_num_threads())
    if workers <= 1:
        for start in starts:
            run(start)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix=name) as pool:
        list(pool.map(run, starts))  # consuming the results re-raises a failure
