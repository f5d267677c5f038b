"""TrackPicture: a read-only view of the tracks at one instant, as arrays.

The tracker produces it, the rules, the publisher, the snapshots and the evaluation consume it.
It is the one contract between the tracking core and everything downstream, so nothing
downstream reads the TrackTable's internals. Positions are in the theatre's local ENU frame
(origin in `origin`), metres; velocities in m/s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class TrackPicture:
    t_s: float  # time the picture was taken (latest measurement time processed)
    origin: tuple[float, float, float]  # theatre origin lat_deg, lon_deg, alt_m
    id: np.ndarray  # (n,) int64 stable track ids
    x: np.ndarray  # (n, 6) float64 e, n, u, ve, vn, vu at `t_upd_s`
    P: np.ndarray  # (n, 6, 6) float64
    t_upd_s: np.ndarray  # (n,) float64 time of the last update of each track
    status: np.ndarray  # (n,) uint8 index into messages.TRACK_STATUS_NAMES
    ident: np.ndarray  # (n,) S24 cooperative identity, b"" when none
    cls: np.ndarray  # (n,) uint8 class code (messages.CLS_*)
    n_sensors: np.ndarray  # (n,) uint8 distinct sensors that contributed
    sensor_kinds: np.ndarray  # (n,) uint8 bit mask: 1 pos-coop, 2 polar (radar), 4 bearing
    hits: np.ndarray  # (n,) int32 updates so far
    quality: np.ndarray  # (n,) float64 in [0, 1], higher is better

    def __len__(self) -> int:
        return int(self.id.shape[0])

    @staticmethod
    def empty(t_s: float = 0.0, origin: tuple[float, float, float] = (0.0, 0.0, 0.0)):
        n = 0
        return TrackPicture(
            t_s=t_s,
            origin=origin,
            id=np.zeros(n, np.int64),
            x=np.zeros((n, 6)),
            P=np.zeros((n, 6, 6)),
            t_upd_s=np.zeros(n),
            status=np.zeros(n, np.uint8),
            ident=np.zeros(n, "S24"),
            cls=np.zeros(n, np.uint8),
            n_sensors=np.zeros(n, np.uint8),
            sensor_kinds=np.zeros(n, np.uint8),
            hits=np.zeros(n, np.int32),
            quality=np.zeros(n),
        )
