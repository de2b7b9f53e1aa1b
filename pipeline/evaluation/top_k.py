"""The official AVA script's per-keyframe heaps: its cap of 50 detections, and its order.

The reference pushes each keyframe's detections, in file order, into a min-heap of tuples
``(score, action_id, y1, x1, y2, x2)`` of capacity ``k``; when full, a new detection replaces
the heap's smallest tuple only if its score is strictly greater than the smallest score.
Which detections survive follows in closed form. Let ``s`` be the k-th largest score of the
keyframe. Every detection scoring above ``s`` survives and every one below it is lost. Of the
detections scoring exactly ``s``, those arriving after the k-th detection scoring ``>= s`` are
rejected (the heap is then full of scores ``>= s``), and of the earlier ones the largest
tuples survive, because each later higher-scoring arrival evicts the smallest tuple.
"""

from __future__ import annotations

import heapq

import numpy as np


def cap_per_frame(frame_key: np.ndarray, score: np.ndarray, action_id: np.ndarray,
                  boxes: np.ndarray, k: int) -> np.ndarray:
    """Indices (ascending) of the detections the reference's heap keeps, at most ``k`` per frame.

    ``boxes`` are ``[N, 4]`` x1, y1, x2, y2; rows are in file order.
    """
    _, group, counts = np.unique(frame_key, return_inverse=True, return_counts=True)
    over = counts[group] > k
    rows = np.flatnonzero(over)
    if rows.size == 0:
        return np.arange(len(frame_key))
    g, s = group[rows], score[rows]
    by_score = np.lexsort((-s, g))
    g_sorted = g[by_score]
    rank = np.arange(len(rows)) - np.searchsorted(g_sorted, g_sorted, side="left")
    kth_score = np.zeros(counts.size)
    kth_score[g_sorted[rank == k - 1]] = s[by_score][rank == k - 1]
    threshold = kth_score[g]
    higher, tied = s > threshold, s == threshold
    need = k - np.bincount(g, weights=higher, minlength=counts.size).astype(np.int64)
    # Arrival (in file order) of the k-th detection scoring >= the threshold, per frame.
    by_arrival = np.argsort(g, kind="stable")
    ge = (higher | tied)[by_arrival]
    g_arrival = g[by_arrival]
    cum = np.cumsum(ge)
    group_start = np.searchsorted(g_arrival, g_arrival, side="left")
    cum_in_group = cum - np.where(group_start > 0, cum[group_start - 1], 0)
    reaches_k = ge & (cum_in_group == k)
    last_admitted = np.full(counts.size, -1, dtype=np.int64)
    last_admitted[g_arrival[reaches_k]] = by_arrival[reaches_k]
    admitted = np.flatnonzero(tied & (np.arange(len(rows)) <= last_admitted[g]))
    a_boxes = boxes[rows[admitted]].astype(np.float64)
    by_tuple = np.lexsort((-a_boxes[:, 2], -a_boxes[:, 3], -a_boxes[:, 0], -a_boxes[:, 1],
                           -action_id[rows[admitted]].astype(np.int64), g[admitted]))
    a_group = g[admitted][by_tuple]
    a_rank = np.arange(len(admitted)) - np.searchsorted(a_group, a_group, side="left")
    survivors = admitted[by_tuple][a_rank < need[a_group]]
    keep = ~over
    keep[rows[np.flatnonzero(higher)]] = True
    keep[rows[survivors]] = True
    return np.flatnonzero(keep)


def reference_list_rank(frame_key: np.ndarray, score: np.ndarray, action_id: np.ndarray,
                        boxes: np.ndarray, k: int | None,
                        matters: np.ndarray | None = None) -> np.ndarray:
    """Position of each row in its keyframe's list as the 2020 reader builds it; -1 if dropped.

    The reader pushes each keyframe's tuples ``(score, action_id, y1, x1, y2, x2)`` in file
    order into a heap (of capacity ``k``, as in :func:`cap_per_frame`, or unbounded), then lists
    ``sorted(heap, key=-score)``: descending score, equal scores in the heap's internal layout,
    which no closed form gives. That layout only matters between rows of one keyframe with the
    same action and score and different boxes (identical tuples are interchangeable wherever
    they go), so only keyframes holding such rows are replayed through ``heapq``; the others are
    ranked by descending score, then file order. ``matters`` (optional, per row) marks the rows
    whose place can change a result (e.g. detections of a class the keyframe has ground truth
    of: misses listed in any order give the same AP); ties among the others are not replayed.
    """
    n = len(frame_key)
    kept = cap_per_frame(frame_key, score, action_id, boxes, k) if k is not None \
        else np.arange(n)
    rank = np.full(n, -1, dtype=np.int64)
    frame, s, a = frame_key[kept], score[kept], action_id[kept]
    order = np.lexsort((kept, -s, frame))
    frame_sorted = frame[order]
    rank[kept[order]] = np.arange(len(order)) - np.searchsorted(frame_sorted, frame_sorted)
    # Keyframes where the heap's layout decides: same (action, score), different boxes.
    b = boxes[kept].astype(np.float64)
    if matters is not None:
        relevant = matters[kept]
        frame, s, a, b = frame[relevant], s[relevant], a[relevant], b[relevant]
    by_tuple = np.lexsort((b[:, 3], b[:, 2], b[:, 1], b[:, 0], s, a, frame))
    f, a, s, b = frame[by_tuple], a[by_tuple], s[by_tuple], b[by_tuple]
    tied = ((f[1:] == f[:-1]) & (a[1:] == a[:-1]) & (s[1:] == s[:-1])
            & (b[1:] != b[:-1]).any(axis=1))
    tied_frames = np.unique(f[1:][tied])
    if tied_frames.size == 0:
        return rank
    rows = np.flatnonzero(np.isin(frame_key, tied_frames))
    rows = rows[np.argsort(frame_key[rows], kind="stable")]  # by keyframe, file order inside
    rank[rows] = -1
    boxes64 = boxes[rows].astype(np.float64)
    entries = list(zip(score[rows].tolist(), action_id[rows].tolist(), boxes64[:, 1].tolist(),
                       boxes64[:, 0].tolist(), boxes64[:, 3].tolist(), boxes64[:, 2].tolist()))
    row_of = {id(entry): row for entry, row in zip(entries, rows.tolist())}
    starts = np.flatnonzero(np.r_[True, frame_key[rows][1:] != frame_key[rows][:-1]])
    for start, end in zip(starts.tolist(), [*starts[1:].tolist(), len(rows)]):
        heap: list[tuple] = []
        for entry in entries[start:end]:
            if k is None or len(heap) < k:
                heapq.heappush(heap, entry)
            elif entry[0] > heap[0][0]:
                heapq.heapreplace(heap, entry)
        for position, entry in enumerate(sorted(heap, key=lambda e: -e[0])):
            rank[row_of[id(entry)]] = position
    return rank
