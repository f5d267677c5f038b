"""Re-sent positions: reports that repeat a position their sensor already sent.

This module owns one input rule of `fusion.tracker.Tracker.step`. Position reports that are
state vectors (a batch carrying reported velocities or identities: AIS, ADS-B, feeds of such
reports, with or without their identities) are often forwarded once a second whether
or not the position was refreshed: the last known position comes again with a new time. Such a
report is not a measurement at its time (for an aircraft at 150 m/s a position 3 s stale is
450 m behind), so it would fall outside its track's gate and start a duplicate track. A
report whose horizontal position is bit-identical to one its sensor sent within the last
`window_s` is therefore dropped before association and counted (`StepResult.repeated`).
Fresh measurements of distinct targets never coincide to the last bit of a float64, and a
stationary target re-reporting the same fix loses nothing (its first report was used; one
after the window is used again).

Positions are compared through a 64-bit hash of the (lat, lon) bit patterns; a collision
between two different positions within the window is about 1e-14 for 10^5 reports.

Distinct targets do coincide where positions are coarse: ADS-B surface positions come on a
grid of a few metres, and an aircraft taxiing behind another along the same centre line
reports, bit for bit, positions the leader sent 10-20 s before. Those are fresh. For the
classes with `ClassParams.repeat_gap_s` (> 0; ground: 5 s) a report is a re-sent position
only while its position keeps coming: it was last sent (first sent or re-sent) within
`repeat_gap_s` of the report. A parked aircraft re-sending its fix every second or two stays
dropped; a follower passing the leader's grid points 10 s later is used (on the Paris
recording such followers were dropped, and scored with the leader's track, by the thousand).
After a pause longer than the gap the position is used once more, then dropped again.
"""

from __future__ import annotations

import numpy as np

_MIX = np.uint64(0x9E3779B97F4A7C15)


def position_keys(z: np.ndarray) -> np.ndarray:
    """(n,) uint64 hash of the (lat, lon) columns of z (n, >=2) float64, bit for bit."""
    bits = np.ascontiguousarray(z[:, :2], dtype=np.float64).view(np.uint64)
    with np.errstate(over="ignore"):
        h = bits[:, 0] * _MIX
        h ^= bits[:, 1] + (h << np.uint64(6)) + (h >> np.uint64(2))
        h *= _MIX
    return h


class RepeatFilter:
    """Per sensor, the positions sent within the window (hash, first and last time sent)."""

    def __init__(self, window_s: float) -> None:
        self.window_s = float(window_s)
        self._seen: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def mark(
        self,
        sensor: str,
        z: np.ndarray,
        t: np.ndarray,
        usable: np.ndarray,
        gap_s: np.ndarray | None = None,
    ) -> int:
        """Clears usable[j] for the repeats among the usable detections; returns their count.

        Within the batch the earliest of equal positions (stable by batch order) is kept.
        `gap_s` (n,): per detection, the longest pause after which its position is fresh
        again (0: none; the module docstring); None: no gap for any.
        """
        if self.window_s <= 0 or z.shape[0] == 0:
            return 0
        keys = position_keys(z)
        t_max = float(t.max())
        empty = (np.zeros(0, np.uint64), np.zeros(0), np.zeros(0))
        old_k, old_t, old_l = self._seen.get(sensor, empty)
        live = old_t >= t_max - self.window_s
        old_k, old_t, old_l = old_k[live], old_t[live], old_l[live]
        cand = np.flatnonzero(usable)
        order = cand[np.lexsort((cand, t[cand]))]  # time order, ties in batch order
        k = keys[order]
        _, first = np.unique(k, return_index=True)
        fresh_in_batch = np.zeros(order.shape[0], dtype=np.bool_)
        fresh_in_batch[first] = True
        known = np.isin(k, old_k)
        if gap_s is not None and known.any():
            # The last time each known position was sent; past its gap it is fresh again.
            srt = np.argsort(old_k, kind="stable")
            at = srt[np.searchsorted(old_k[srt], k[known])]
            g = np.asarray(gap_s, dtype=np.float64)[order[known]]
            paused = (g > 0.0) & (old_l[at] < t[order[known]] - g)
            if paused.any():
                keep = np.ones(old_k.shape[0], dtype=np.bool_)
                keep[at[paused]] = False  # sent again below as a new first sending
                old_k, old_t, old_l = old_k[keep], old_t[keep], old_l[keep]
                known = np.isin(k, old_k)
        fresh = fresh_in_batch & ~known
        rep = order[~fresh]
        usable[rep] = False
        if rep.shape[0] and old_k.shape[0]:
            # A re-sent position keeps its first time (the window) and refreshes its last.
            srt = np.argsort(old_k, kind="stable")
            hit = np.isin(keys[rep], old_k)
            at = srt[np.searchsorted(old_k[srt], keys[rep][hit])]
            old_l = old_l.copy()
            np.maximum.at(old_l, at, t[rep][hit])
        add = order[fresh]
        self._seen[sensor] = (
            np.concatenate([old_k, keys[add]]),
            np.concatenate([old_t, t[add]]),
            np.concatenate([old_l, t[add]]),
        )
        return int(rep.shape[0])

    def to_dict(self) -> dict[str, list]:
        out: dict[str, list] = {}
        for s, (k, t, last) in sorted(self._seen.items()):
            out[s] = [k.tolist(), t.tolist(), last.tolist()]
        return out

    def load(self, d: dict) -> None:
        """The inverse of `to_dict`; a snapshot without the last times (written before the
        gap) takes the first times for them."""
        self._seen = {}
        for s, lists in d.items():
            k = np.asarray(lists[0], dtype=np.uint64)
            t = np.asarray(lists[1], dtype=np.float64)
            last = np.asarray(lists[2], dtype=np.float64) if len(lists) > 2 else t.copy()
            self._seen[s] = (k, t, last)
