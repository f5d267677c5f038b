"""Process noise that grows with a track's speed, for the classes that ask for it.

This module owns one rule of the prediction: the horizontal white-acceleration density of a
track of class c moving at horizontal speed v (its estimated state) is

    q_h = q_h_m2s3[c] + q_h_per_speed2_s[c] * max(v - v0[c], 0)^2
                                  (m^2/s^3; v in m/s, the factor in 1/s, v0 = q_h_speed_floor_mps)

A vessel's acceleration comes from its turns and its changes of speed, and a turn at rate w
accelerates it by v w: a ferry at 10 m/s turning 3 deg/s accelerates at 0.5 m/s^2, a moored
vessel not at all. One noise for the whole class must choose between the two: small (a
moored vessel's prediction stays tight between its 3-minute reports, and neighbours 12-60 m
apart stay out of its gate) or large (a fast craft seen every one to four minutes, or a
ferry leaving its berth, stays inside its gate). With the speed term both hold.

An aircraft on the ground (class ground) taxis at up to about 15 m/s, turning among parked
aircraft, but on a runway it brakes from 75 m/s or accelerates to 80 m/s at 2-3 m/s^2: the
ground class's small noise (0.5 m^2/s^3, which keeps a parked or taxiing aircraft's gate
tight) left a landing or departing aircraft's track 100-400 m off its positions. Its term
counts only the speed above v0 = 20 m/s, so only runway speeds raise it (60 m/s: 0.5 + 16).

The value is
read from the track's state before its prediction, so the rule is deterministic; it is
applied where the tracker predicts per row (gating, and the update of a batch with reported
velocities or of identities), and the deletion test keeps the class's own noise.
"""

from __future__ import annotations

import numpy as np

from fusion.tracks import TrackTable


def track_q_h(tab: TrackTable, rows: np.ndarray, p: dict[str, np.ndarray]) -> np.ndarray:
    """(len(rows),) horizontal process noise (m^2/s^3) of the tracks in `rows`."""
    cls = tab.cls[rows]
    q = p["q_h_m2s3"][cls]
    k = p["q_h_per_speed2_s"][cls]
    if not k.any():
        return q
    speed2 = tab.x[rows, 3] ** 2 + tab.x[rows, 4] ** 2
    v0 = p["q_h_speed_floor_mps"][cls]
    if not v0.any():
        return q + k * speed2  # the same operations as before the floor (bit for bit)
    over = np.maximum(np.sqrt(speed2) - v0, 0.0)
    return q + k * np.where(v0 > 0.0, over * over, speed2)
