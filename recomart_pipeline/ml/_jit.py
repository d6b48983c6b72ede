"""numba's ``njit`` with an on-disk cache when one can be written, in-memory otherwise.

The SGD and ALS kernels are sequential per rating / per user, which NumPy cannot vectorise,
so they are compiled with numba. ``cache=True`` saves the compiled code next to the module
(or in ``NUMBA_CACHE_DIR``) so later processes skip compilation; on a read-only install
numba refuses ``cache=True`` at decoration time, and we fall back to compiling per process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import numba

if TYPE_CHECKING:
    from numba.core.dispatcher import Dispatcher

F = TypeVar("F", bound=Callable[..., Any])

# fastmath minus "nnan"/"ninf": reassociation lets LLVM vectorise the float32 dot products,
# while NaN/inf keep their meaning (top-k skips -inf scores; divergence must surface as NaN).
FASTMATH = frozenset({"reassoc", "contract", "arcp", "nsz", "afn"})


def kernel(fn: F) -> Dispatcher[F]:
    """Compile ``fn`` in nopython mode with FASTMATH, cached on disk when possible.

    The dispatcher is called like ``fn`` (numba's stubs carry ``fn``'s signature over)."""
    try:
        return numba.njit(cache=True, fastmath=set(FASTMATH), nogil=True)(fn)
    except RuntimeError:  # "cannot cache function ...: no locator available" (read-only)
        return numba.njit(cache=False, fastmath=set(FASTMATH), nogil=True)(fn)


def exact_kernel(fn: F) -> Dispatcher[F]:
    """Compile ``fn`` like ``kernel`` but with IEEE arithmetic (no fastmath): for kernels
    whose sums must equal another implementation's bit for bit (the same operations in the
    same order; fastmath's ``contract`` would fuse a multiply-add into one rounding)."""
    try:
        return numba.njit(cache=True, nogil=True)(fn)
    except RuntimeError:  # read-only install: compile per process, as ``kernel`` does
        return numba.njit(cache=False, nogil=True)(fn)
