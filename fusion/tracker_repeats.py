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
    """Per sensor, the positions sent within the window (hash and first time)."""

    def __init__(self, window_s: float) -> None:
        self.window_s = float(window_s)
        self._seen: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def mark(self, sensor: str, z: np.ndarray, t: np.ndarray, usable: np.ndarray) -> int:
        """Clears usable[j] for the repeats among the usable detections; returns their count.

        Within the batch the earliest of equal positions (stable by batch order) is kept.
        """
        if self.window_s <= 0 or z.shape[0] == 0:
            return 0
        keys = position_keys(z)
        t_max = float(t.max())
        old_k, old_t = self._seen.get(sensor, (np.zeros(0, np.uint64), np.zeros(0)))
        live = old_t >= t_max - self.window_s
        old_k, old_t = old_k[live], old_t[live]
        cand = np.flatnonzero(usable)
        order = cand[np.lexsort((cand, t[cand]))]  # time order, ties in batch order
        k = keys[order]
        _, first = np.unique(k, return_index=True)
        fresh_in_batch = np.zeros(order.shape[0], dtype=np.bool_)
        fresh_in_batch[first] = True
        fresh = fresh_in_batch & ~np.isin(k, old_k)
        rep = order[~fresh]
        usable[rep] = False
        add = order[fresh]
        self._seen[sensor] = (np.concatenate([old_k, keys[add]]), np.concatenate([old_t, t[add]]))
        return int(rep.shape[0])

    def to_dict(self) -> dict[str, list]:
        return {s: [k.tolist(), t.tolist()] for s, (k, t) in sorted(self._seen.items())}

    def load(self, d: dict) -> None:
        self._seen = {
            s: (np.asarray(k, dtype=np.uint64), np.asarray(t, dtype=np.float64))
            for s, (k, t) in d.items()
        }
