"""Duplicate-track pruning for `fusion.tracker.Tracker`: the bookkeeping around
`fusion.kernels.prune.duplicate_pairs`.

This module owns which of two duplicate tracks survives and how long a pair must look like one
target before it is merged. Every `merge_every_s` of tracker time the firm (confirmed or
coasting) tracks are checked for pairs whose states differ insignificantly
(`TrackerConfig.merge_d2`, within `merge_sep_m`, both moving at `merge_min_speed_mps`, or
both of a class whose stationary duplicates merge too, `ClassParams.merge_stationary`); a
pair found on `merge_checks` consecutive checks is merged: the older track (the lower id,
born first) is kept and takes the younger one's cooperative identity if it had none, and its
sensors and kinds; the younger is deleted.
The consecutive counts are kept per pair of track ids (a handful at any time) and travel in
the tracker's snapshot, so a restored tracker merges exactly as the original would.
"""

from __future__ import annotations

import math

import numpy as np

from fusion.kernels.gating import ident_words
from fusion.kernels.prune import firm_duplicate_pairs
from fusion.tracks import TrackTable

_NONE = np.zeros(0, np.int64)


class DuplicatePruner:
    """Finds and merges duplicate tracks; state: the running counts of candidate pairs."""

    def __init__(
        self, every_s: float, checks: int, d2_max: float, sep_m: float, min_speed_mps: float
    ) -> None:
        self.every_s = float(every_s)
        self.checks = int(checks)
        self.d2_max = float(d2_max)
        self.sep_m = float(sep_m)
        self.min_speed_mps = float(min_speed_mps)
        self.counts: dict[tuple[int, int], int] = {}
        self.last_check_s = -math.inf

    def due(self, t_now_s: float) -> bool:
        return self.checks > 0 and t_now_s - self.last_check_s >= self.every_s

    def check(
        self,
        tab: TrackTable,
        p: dict[str, np.ndarray],
        t_now_s: float,
        tw: np.ndarray | None = None,
    ) -> np.ndarray:
        """One check at t_now_s; returns the table slots to delete (merged into their pair).
        tw: `ident_words(tab.ident)` when the caller keeps it (the tracker does)."""
        # The per-class rule of stationary pairs (merge_stationary) is applied in the kernel.
        a, b, _ = firm_duplicate_pairs(
            tab.status, t_now_s, tab.x, tab.P, tab.t_s, tab.cls,
            ident_words(tab.ident) if tw is None else tw, p["q_h_m2s3"], p["q_v_m2s3"],
            self.d2_max, self.sep_m, self.min_speed_mps, p["merge_stationary"],
        )  # fmt: skip
        return self.merge(tab, a, b, t_now_s)

    def merge(self, tab: TrackTable, a: np.ndarray, b: np.ndarray, t_now_s: float) -> np.ndarray:
        """The check at t_now_s of the pairs (a, b) that `firm_duplicate_pairs` found in `tab`
        (with this pruner's thresholds; the tracker's fused scan kernel finds them in the same
        call as the scan): counts them, merges those found often enough; returns the table
        slots to delete."""
        self.last_check_s = t_now_s
        if a.shape[0] == 0:  # the common case: nothing to count
            self.counts = {}
            return _NONE
        ids_a, ids_b = tab.id[a], tab.id[b]
        counts: dict[tuple[int, int], int] = {}
        gone: list[int] = []
        dead: set[int] = set()
        rows = zip(a.tolist(), b.tolist(), ids_a.tolist(), ids_b.tolist(), strict=True)
        for ra, rb, ia, ib in rows:
            key = (min(ia, ib), max(ia, ib))
            n = self.counts.get(key, 0) + 1
            if n < self.checks:
                counts[key] = n
                continue
            if ra in dead or rb in dead:
                continue
            keep, drop = (ra, rb) if ia < ib else (rb, ra)
            if tab.ident[keep] == b"" and tab.ident[drop] != b"":
                tab.ident[keep] = tab.ident[drop]
            tab.sensors[keep] |= tab.sensors[drop]
            tab.kinds[keep] |= tab.kinds[drop]
            dead.add(drop)
            gone.append(drop)
        self.counts = counts
        return np.asarray(sorted(gone), dtype=np.int64)

    def to_list(self) -> list[list[int]]:
        return [[a, b, n] for (a, b), n in sorted(self.counts.items())]

    def load(self, rows: list, last_check_s: float) -> None:
        self.counts = {(int(a), int(b)): int(n) for a, b, n in rows}
        self.last_check_s = float(last_check_s)
