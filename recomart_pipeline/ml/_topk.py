"""Exact top-k selection per user, skipping the user's seen items; ties go to the lower item.

A plain scan with a k-sized heap does one scalar compare-and-branch per score (~1 ns), and
under cProfile it was the largest cost of evaluation and batch inference at 5M interactions
(23 of 52 s). ``top_k_rows`` instead splits a row of ``n`` scores into ``STRIPES`` interleaved
groups (group ``j`` holds items ``j, j + L, j + 2L, ...`` with ``L = ceil(n / STRIPES)``) and
takes each group's maximum in one vectorisable pass. The k-th largest group maximum ``T`` is
a lower bound of the k-th largest score (the best ``k`` groups each hold a score ``>= T``), so
any item whose group maximum is below ``T`` is strictly beaten by ``k`` others: the heap only
sees the groups that reach ``T`` (about ``k · STRIPES`` scores), in any order, which is why it
compares (score, item) pairs rather than relying on scan order for ties. The result is
identical to a full sort by (score descending, item ascending), whatever the chunking.

The kernels are serial: ``Recommender.recommend`` runs one chunk per worker thread (they
release the GIL), which measured faster than a numba ``prange`` alternating with a
multi-threaded BLAS (their idle threads spin and steal the cores from each other).
"""

from __future__ import annotations

import numpy as np

from recomart_pipeline.ml._jit import exact_kernel, kernel

# 32 interleaved groups per row: fewer makes the group-maximum heap longer, more makes the
# candidate groups longer; 16-64 measured within 20% of each other at 25k-100k items.
STRIPES = 32
# Up to this k the threshold comes from a heap of the group maxima, above it by selection
# (np.partition): at 25k items the heap was ~1.5x faster at k=10, selection ~2x at k=100.
HEAP_THRESHOLD_MAX_K = 32
_NEG_INF = np.float32(-np.inf)  # float32, so the group-maximum pass stays float32 (vectorised)


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
def _offer(values: np.ndarray, items: np.ndarray, size: int, value: float, item: int) -> int:
    """Keep (value, item) if it is among the best ``len(values)`` seen; returns the new size."""
    if size < values.shape[0]:
        values[size] = value
        items[size] = item
        _sift_up(values, items, size)
        return size + 1
    if _before(value, item, values[0], items[0]):
        values[0] = value
        items[0] = item
        _sift_down(values, items, size)
    return size


@kernel
def _drain(
    values: np.ndarray, items: np.ndarray, size: int, items_out: np.ndarray, scores_out: np.ndarray
) -> None:
    """Pop the heap worst-first into the first ``size`` slots, so the output is best-first."""
    for slot in range(size - 1, -1, -1):
        items_out[slot] = items[0]
        scores_out[slot] = values[0]
        size -= 1
        values[0] = values[size]
        items[0] = items[size]
        _sift_down(values, items, size)


@kernel
def _top_k_row(
    row: np.ndarray,
    heap_values: np.ndarray,
    heap_items: np.ndarray,
    items_out: np.ndarray,
    scores_out: np.ndarray,
) -> None:
    """Top ``len(heap_values)`` finite scores of ``row`` (excluded items already ``-inf``)."""
    n = row.shape[0]
    width = (n + STRIPES - 1) // STRIPES
    # allocated here, not passed in: LLVM only vectorises the pass below when it can see that
    # group_max does not alias row (4x slower otherwise)
    group_max = np.full(width, _NEG_INF, np.float32)
    for stripe in range(STRIPES):
        base = stripe * width
        for j in range(min(width, n - base)):
            value = row[base + j]
            value = value if value < np.inf else _NEG_INF  # NaN and +inf are never selected
            group_max[j] = value if value > group_max[j] else group_max[j]
    # T = the k-th largest group maximum (-inf when fewer than k groups hold a finite score),
    # for large k found by selection (linear), not by a heap of the group maxima. Every one
    # of the best k scores is >= T, so only scores >= T are offered to the heap: ~k to 2k,
    # where offering every score of the candidate groups made ~k·ln(k·STRIPES) heap inserts
    # (the cost that grew with k: 3x the k=10 time at k=100).
    k = heap_values.shape[0]
    threshold = _NEG_INF
    if k <= HEAP_THRESHOLD_MAX_K:  # a heap of k group maxima: cheaper than a copy for small k
        size = 0
        for j in range(width):
            value = group_max[j]
            if value > -np.inf and (size < k or value > heap_values[0]):
                size = _offer(heap_values, heap_items, size, value, j)
        if size == k:
            threshold = heap_values[0]
    else:
        finite = group_max[group_max > -np.inf]
        if finite.size >= k:
            threshold = np.partition(finite, finite.size - k)[finite.size - k]
    size = 0
    for j in range(width):
        if group_max[j] > -np.inf and group_max[j] >= threshold:
            for item in range(j, n, width):
                value = row[item]
                if (
                    value >= threshold
                    and np.isfinite(value)
                    and (size < k or value >= heap_values[0])
                ):
                    size = _offer(heap_values, heap_items, size, value, item)
    _drain(heap_values, heap_items, size, items_out, scores_out)


@kernel
def top_k_rows(
    scores: np.ndarray,
    users: np.ndarray,
    seen_indptr: np.ndarray,
    seen_indices: np.ndarray,
    seen_stored: np.ndarray,
    k: int,
    items_out: np.ndarray,
    scores_out: np.ndarray,
) -> None:
    """Write each row's ``k`` best finite scores, best first, into the outputs.

    Row ``r`` of ``scores`` belongs to user ``users[r]``; that user's entries of the seen CSR
    arrays whose ``seen_stored`` flag is set are excluded (``scores`` is overwritten with
    ``-inf`` there). Non-finite scores are never selected; slots left unfilled keep whatever
    the caller put there (item -1, score NaN).
    """
    heap_values = np.empty(k, np.float32)
    heap_items = np.empty(k, np.int32)
    for r in range(scores.shape[0]):
        user = users[r]
        for nz in range(seen_indptr[user], seen_indptr[user + 1]):
            if seen_stored[nz]:
                scores[r, seen_indices[nz]] = _NEG_INF
        _top_k_row(scores[r], heap_values, heap_items, items_out[r], scores_out[r])


def rank_items(values: np.ndarray) -> np.ndarray:
    """The items with a finite value, by value descending, equal values by item (int32):
    the shared list ``top_k_ranked`` and ``top_k_shifted`` walk."""
    finite = np.flatnonzero(np.isfinite(values))
    ranked: np.ndarray = finite[np.argsort(-values[finite], kind="stable")].astype(np.int32)
    return ranked


@kernel
def _mark_seen(
    seen: np.ndarray,
    seen_indices: np.ndarray,
    seen_stored: np.ndarray,
    start: int,
    stop: int,
    value: bool,
) -> None:
    """Set a user's seen items (stored entries ``start:stop``) in ``seen`` to ``value``;
    marking skips stored zeros (not interactions), clearing clears every entry."""
    for nz in range(start, stop):
        if seen_stored[nz] or not value:
            seen[seen_indices[nz]] = value


@kernel
def top_k_ranked(
    ranked_items: np.ndarray,
    ranked_scores: np.ndarray,
    users: np.ndarray,
    seen_indptr: np.ndarray,
    seen_indices: np.ndarray,
    seen_stored: np.ndarray,
    n_items: int,
    k: int,
    items_out: np.ndarray,
    scores_out: np.ndarray,
) -> None:
    """Top ``k`` for users who all share one ranking: the first unseen items of the list.

    ``ranked_items`` is every selectable item, best first; the same outputs as scoring each
    user densely and calling ``top_k_rows``, without the users x items score matrix.
    """
    seen = np.zeros(n_items, np.bool_)
    for r in range(users.shape[0]):
        start, stop = seen_indptr[users[r]], seen_indptr[users[r] + 1]
        _mark_seen(seen, seen_indices, seen_stored, start, stop, True)
        slot = 0
        for pos in range(ranked_items.shape[0]):
            if slot == k:
                break
            if not seen[ranked_items[pos]]:
                items_out[r, slot] = ranked_items[pos]
                scores_out[r, slot] = ranked_scores[pos]
                slot += 1
        _mark_seen(seen, seen_indices, seen_stored, start, stop, False)


@exact_kernel
def top_k_shifted(
    ranked_items: np.ndarray,
    ranked_values: np.ndarray,
    offsets: np.ndarray,
    users: np.ndarray,
    seen_indptr: np.ndarray,
    seen_indices: np.ndarray,
    seen_stored: np.ndarray,
    n_items: int,
    k: int,
    items_out: np.ndarray,
    scores_out: np.ndarray,
) -> None:
    """Top ``k`` when row ``r`` scores item ``i`` as ``offsets[r] + value_i`` (float32):
    the same outputs as those dense scores through ``top_k_rows``, walking one shared list.

    ``ranked_items`` is every selectable item by value descending, ties by item. A float32
    addition is monotone, so along the list each row's scores never increase; but two close
    values can round to the same score, which must then rank by item, not by value. So the
    walk keeps going past the ``k``-th unseen item while the score still equals the ``k``-th
    one, and each run of equal scores is then put in item order. IEEE arithmetic (no
    fastmath), so each score is the one addition the dense scores make."""
    seen = np.zeros(n_items, np.bool_)
    taken_items = np.empty(ranked_items.shape[0], np.int32)
    taken_scores = np.empty(ranked_items.shape[0], np.float32)
    for r in range(users.shape[0]):
        start, stop = seen_indptr[users[r]], seen_indptr[users[r] + 1]
        _mark_seen(seen, seen_indices, seen_stored, start, stop, True)
        size = 0
        kth = np.float32(0.0)
        for pos in range(ranked_items.shape[0]):
            item = ranked_items[pos]
            if seen[item]:
                continue
            score = offsets[r] + ranked_values[pos]
            if size >= k and score < kth:
                break
            taken_items[size] = item
            taken_scores[size] = score
            size += 1
            if size == k:
                kth = score
        run = 0
        while run < size:  # runs of equal scores, each in item order
            end = run + 1
            while end < size and taken_scores[end] == taken_scores[run]:
                end += 1
            taken_items[run:end] = np.sort(taken_items[run:end])
            run = end
        for slot in range(min(k, size)):
            items_out[r, slot] = taken_items[slot]
            scores_out[r, slot] = taken_scores[slot]
        _mark_seen(seen, seen_indices, seen_stored, start, stop, False)


# Sort keys of (score, item) pairs: the score's float32 bits mapped so that unsigned order is
# descending score order, in the high half; the item in the low half. Ascending keys are then
# the ranking (higher score, then lower item) of every finite score.
_LOW_HALF = np.uint64(0xFFFFFFFF)
_SIGN_BIT = np.uint64(0x80000000)
_HALF = np.uint64(32)


# Selection by a sampled threshold (``_keep_smallest``) pays off from this many candidates,
# and when they are at least this many times k; below either, one partition of them all.
SAMPLED_SELECTION_MIN = 2048
SAMPLED_SELECTION_RATIO = 4
SELECTION_SAMPLE = 128  # about how many keys the threshold is chosen from


@kernel
def _fill_keys(values: np.ndarray, items: np.ndarray, count: int, keys: np.ndarray) -> None:
    """Write the candidates' sort keys into ``keys[:count]`` (ascending is best first)."""
    bits = values[:count].view(np.uint32)
    for c in range(count):
        b = np.uint64(bits[c])
        ascending = (~b & _LOW_HALF) if b & _SIGN_BIT else (b | _SIGN_BIT)
        keys[c] = ((_LOW_HALF - ascending) << _HALF) | np.uint64(items[c])


@kernel
def _keep_smallest(keys: np.ndarray, count: int, k: int) -> int:
    """Move some of the smallest of ``keys[:count]`` to the front and return how many:
    when that is at least ``k``, the ``k`` smallest keys are among them. Keys behind the
    returned count are overwritten.

    numba's ``np.partition`` costs ~10 ns a key on a row of 20,000 (~4 on 1,500): on long
    rows it is most of ranking an item-kNN row. A threshold taken from an evenly spaced
    sample of ~``SELECTION_SAMPLE`` keys (about twice the rank where the k-th key should
    fall, plus a margin) lets one branchless pass keep a few times ``k`` keys, and only
    those need partitioning: measured 1.2-1.3x faster at 2,000 keys, 1.2-1.8x at 3,000,
    8-10x at 20,000 (no faster below ~2,000). Fewer than ``k`` pass when the sample
    happened to hold the smallest keys: the caller then partitions every key, so the
    result is always exact."""
    step = count // SELECTION_SAMPLE
    sample = keys[0:count:step]
    rank = min(sample.size - 1, 2 * ((k * sample.size) // count) + 8)
    threshold = np.partition(sample, rank)[rank]
    kept = 0
    for c in range(count):  # kept <= c: a key is read before its place is written
        key = keys[c]
        keys[kept] = key
        kept += key <= threshold
    return kept


@kernel
def rank_candidates(
    values: np.ndarray,
    items: np.ndarray,
    count: int,
    keys: np.ndarray,
    items_out: np.ndarray,
    scores_out: np.ndarray,
) -> None:
    """Write the best ``len(items_out)`` of the ``count`` candidates (finite ``values``, no
    item twice, no -0.0) into the outputs, best first: a linear selection (narrowed first
    by ``_keep_smallest`` on long rows) and a sort of the chosen keys. A row's candidates
    are ~1k scores for a top 100 here, where a heap fed in scan order did ~k·ln(n/k) sifts
    of ~log k branchy steps each (the product kernel with the heap, and with a branch on
    first visits, took 1.35-1.45x this one's time on the 20M item-kNN's rows)."""
    k = items_out.shape[0]
    _fill_keys(values, items, count, keys)
    if count <= k:
        chosen = keys[:count].copy()
    else:
        kept = count
        if count >= SAMPLED_SELECTION_MIN and count >= SAMPLED_SELECTION_RATIO * k:
            kept = _keep_smallest(keys, count, k)
            if kept < k:  # the threshold kept too few, and overwrote the others: all again
                _fill_keys(values, items, count, keys)
                kept = count
        chosen = np.partition(keys[:kept], k - 1)[:k]
    chosen.sort()
    out_bits = scores_out.view(np.uint32)
    for slot in range(chosen.shape[0]):
        ascending = _LOW_HALF - (chosen[slot] >> _HALF)
        b = (ascending & ~_SIGN_BIT) if ascending & _SIGN_BIT else (~ascending & _LOW_HALF)
        out_bits[slot] = np.uint32(b)
        items_out[slot] = np.int32(chosen[slot] & _LOW_HALF)


@kernel
def _rank_with_zeros(
    values: np.ndarray,
    items: np.ndarray,
    count: int,
    positive: int,
    taken: np.ndarray,
    keys: np.ndarray,
    items_out: np.ndarray,
    scores_out: np.ndarray,
) -> None:
    """Rank a sparse row's ``count`` candidates (``positive`` of them above 0) and, when
    those do not fill the outputs with scores above 0, its implicit zeros: of those only the
    ``k`` lowest items not ``taken`` (stored or seen) can place, ties going to the lower item,
    so the walk from item 0 stops after ``k`` of them. ``values``/``items`` need room for
    ``k`` more entries."""
    k = items_out.shape[0]
    if positive < k:
        offered = 0
        for item in range(taken.shape[0]):
            if offered == k:
                break
            if not taken[item]:
                values[count] = 0.0
                items[count] = item
                count += 1
                offered += 1
    rank_candidates(values, items, count, keys, items_out, scores_out)


@kernel
def top_k_sparse_rows(
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    n_items: int,
    users: np.ndarray,
    seen_indptr: np.ndarray,
    seen_indices: np.ndarray,
    seen_stored: np.ndarray,
    k: int,
    items_out: np.ndarray,
    scores_out: np.ndarray,
) -> None:
    """``top_k_rows`` of the dense rows of a CSR score matrix, without densifying them.

    A model whose scores are sparse (item-kNN: a user's items' neighbours, ~1k of 25k items)
    leaves every other item at exactly 0. Row ``r`` ranks its stored finite unseen entries
    and, when they do not already fill ``k`` slots with scores above 0, the implicit zeros
    (``_rank_with_zeros``). Same outputs as ``top_k_rows`` on ``toarray()``, in time
    proportional to the stored entries instead of the catalogue.
    """
    values = np.empty(n_items + k, np.float32)
    items = np.empty(n_items + k, np.int32)
    keys = np.empty(n_items + k, np.uint64)
    taken = np.zeros(n_items, np.bool_)  # stored in the row or seen: not an implicit zero
    for r in range(users.shape[0]):
        first, last = seen_indptr[users[r]], seen_indptr[users[r] + 1]
        _mark_seen(taken, seen_indices, seen_stored, first, last, True)
        count = 0
        positive = 0
        for nz in range(indptr[r], indptr[r + 1]):
            item = indices[nz]
            if taken[item]:
                continue  # seen (or a duplicate entry, which scipy's CSR products never make)
            taken[item] = True
            value = data[nz]
            if np.isfinite(value):
                values[count] = value if value != 0.0 else 0.0  # -0.0 ties with 0.0
                items[count] = item
                count += 1
                positive += value > 0.0
        _rank_with_zeros(values, items, count, positive, taken, keys, items_out[r], scores_out[r])
        for nz in range(indptr[r], indptr[r + 1]):
            taken[indices[nz]] = False
        _mark_seen(taken, seen_indices, seen_stored, first, last, False)


@exact_kernel
def top_k_product_rows(
    left_indptr: np.ndarray,
    left_indices: np.ndarray,
    left_data: np.ndarray,
    right_indptr: np.ndarray,
    right_indices: np.ndarray,
    right_data: np.ndarray,
    n_items: int,
    users: np.ndarray,
    seen_indptr: np.ndarray,
    seen_indices: np.ndarray,
    seen_stored: np.ndarray,
    k: int,
    items_out: np.ndarray,
    scores_out: np.ndarray,
) -> None:
    """``top_k_sparse_rows`` of the float32 product ``left @ right`` (CSR × CSR), without
    building it: row ``r``'s scores are summed into one reused array and ranked at once.

    scipy's CSR product holds the GIL, so threads cannot share it (measured: two threads
    no faster than one), and it allocates and fills the product only for the ranking to read
    it once. Here each row is accumulated like scipy's ``csr_matmat`` does it — the left
    row's entries in order, each adding its weight times the right row's entries in order,
    in float32 and without fused multiply-adds (``exact_kernel``) — and entries that sum to
    exactly 0 are left out as scipy leaves them out, so the scores, and therefore the
    ranking, are bit for bit those of ``top_k_sparse_rows`` on the scipy product.
    """
    sums = np.zeros(n_items, np.float32)
    reached = np.zeros(n_items, np.bool_)
    order = np.empty(n_items + 1, np.int32)
    values = np.empty(n_items + k, np.float32)
    items = np.empty(n_items + k, np.int32)
    keys = np.empty(n_items + k, np.uint64)
    taken = np.zeros(n_items, np.bool_)
    for r in range(users.shape[0]):
        count = 0
        for a in range(left_indptr[r], left_indptr[r + 1]):
            item = left_indices[a]
            weight = left_data[a]
            for b in range(right_indptr[item], right_indptr[item + 1]):
                other = right_indices[b]
                # an item's first visit appends it, without a branch: which visits are first
                # is data-dependent, and mispredicting it was ~20% of the accumulation
                order[count] = other
                count += not reached[other]
                reached[other] = True
                sums[other] += weight * right_data[b]
        first, last = seen_indptr[users[r]], seen_indptr[users[r] + 1]
        _mark_seen(taken, seen_indices, seen_stored, first, last, True)
        stored = 0
        positive = 0
        for position in range(count):
            other = order[position]
            value = sums[other]
            sums[other] = 0.0
            reached[other] = False
            if value != 0.0 and not taken[other]:
                taken[other] = True
                if np.isfinite(value):
                    values[stored] = value
                    items[stored] = other
                    stored += 1
                    positive += value > 0.0
        _rank_with_zeros(values, items, stored, positive, taken, keys, items_out[r], scores_out[r])
        for position in range(count):
            taken[order[position]] = False
        _mark_seen(taken, seen_indices, seen_stored, first, last, False)
