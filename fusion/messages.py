"""The wire protocol's message types (version 1) as Python values.

This module owns the shape of every message; `fusion.protocol` owns their bytes and their
validation. Arrays are numpy arrays in the dtypes named here, so a batch of detections moves
from the socket to the tracker without a Python object per detection.

Frames and units (DESIGN.md): times are float64 seconds since the Unix epoch (UTC) at the
moment of measurement; geodetic positions are WGS84 (lat_deg, lon_deg, alt_m above the
ellipsoid); angles are radians with azimuth clockwise from true north; velocities are
east, north, up in m/s; covariances of positions are in the local east-north-up frame at the
detection, in m^2.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

VERSION = 1

# Detection kinds and the width m of z for each.
KIND_POS = "pos"  # z = (lat_deg, lon_deg, alt_m); R in local ENU m^2
KIND_POLAR = "polar"  # z = (range_m, az_rad, el_rad) from `site`; R in m^2 / rad^2
KIND_BEARING = "bearing"  # z = (az_rad,) or (az_rad, el_rad) from `site`
KIND_EVENT = "event"  # z = (lat_deg, lon_deg, alt_m) of a point event; not tracked
KINDS = (KIND_POS, KIND_POLAR, KIND_BEARING, KIND_EVENT)
Z_WIDTH = {KIND_POS: (3,), KIND_POLAR: (3,), KIND_BEARING: (1, 2), KIND_EVENT: (3,)}

# Target classes travel as uint8 codes.
CLS_UNKNOWN, CLS_AIR, CLS_SURFACE, CLS_GROUND = 0, 1, 2, 3
CLASS_NAMES = ("unknown", "air", "surface", "ground")

IDENT_DTYPE = np.dtype("S24")  # cooperative identity, e.g. b"mmsi:235070762"; b"" = none
TRACK_STATUS_NAMES = ("free", "tentative", "confirmed", "coasting")


@dataclass(eq=False)
class Detections:
    """`det`: one batch of detections from one sensor, all of one kind."""

    sensor: str
    seq: int
    kind: str
    t: np.ndarray  # (n,) float64, s
    z: np.ndarray  # (n, m) float64
    R: np.ndarray  # (n, m, m) float64
    site: tuple[float, float, float] | None = None  # sensor (lat_deg, lon_deg, alt_m)
    vel: np.ndarray | None = None  # (n, 3) float64 reported velocity, ENU m/s
    vel_R: np.ndarray | None = None  # (n, 3, 3) float64, (m/s)^2
    ident: np.ndarray | None = None  # (n,) S24
    cls: np.ndarray | None = None  # (n,) uint8
    meta: dict[str, Any] | None = None  # small: event type, source file, ...

    type = "det"

    def __len__(self) -> int:
        return int(self.t.shape[0])


@dataclass(eq=False)
class Heartbeat:
    """`hb`: a sensor is alive; coverage is {"max_range_m": r} around `site`, or
    {"polygon": [[lat_deg, lon_deg], ...]}."""

    sensor: str
    t_s: float
    status: str = "ok"  # ok | degraded | down
    site: tuple[float, float, float] | None = None
    coverage: dict[str, Any] = field(default_factory=dict)
    type = "hb"


@dataclass(eq=False)
class Ack:
    """`ack`: fusion has accepted every batch of `sensor` up to and including `seq`."""

    sensor: str
    seq: int
    type = "ack"


@dataclass(eq=False)
class TrackUpdate:
    """`trk`: the current state of some tracks."""

    t_s: float
    id: np.ndarray  # (n,) int64 stable track ids
    pos: np.ndarray  # (n, 3) float64 lat_deg, lon_deg, alt_m
    vel: np.ndarray  # (n, 3) float64 ENU m/s
    P: np.ndarray  # (n, 6, 6) float64 ENU covariance of (e, n, u, ve, vn, vu)
    status: np.ndarray  # (n,) uint8, index into TRACK_STATUS_NAMES
    ident: np.ndarray  # (n,) S24
    cls: np.ndarray  # (n,) uint8
    n_sensors: np.ndarray  # (n,) uint8 distinct sensors that contributed
    type = "trk"

    def __len__(self) -> int:
        return int(self.id.shape[0])


@dataclass(eq=False)
class CueEvent:
    """`cue`: one step of a cue's lifecycle. `body` holds the cue's fields (docs/protocol.md):
    id, seq, state, rule, site, track, t_s, severity, confidence, pos, vel, sigma_m,
    evidence, text."""

    body: dict[str, Any]
    type = "cue"


@dataclass(eq=False)
class Status:
    """`status`: service and sensor status (sensor liveness, counters)."""

    t_s: float
    sensors: dict[str, Any] = field(default_factory=dict)
    counters: dict[str, Any] = field(default_factory=dict)
    type = "status"


Message = Detections | Heartbeat | Ack | TrackUpdate | CueEvent | Status
