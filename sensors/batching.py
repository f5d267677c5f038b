"""Measurements as decoders produce them, and their grouping into `Detections` batches.

This module owns the one record every decoder emits (`Measurement`), the conversion of
reported speed and course into an ENU velocity, and `Batcher`, which groups measurements into
wire batches by size and by age, and `window_batches`, the per-window batches of a recorded
file's measurements that the evaluation replays. It does no I/O and reads no clock of its
own: the caller passes the time, so the same code batches a live sensor on the wall clock
and a recorded file on measurement time (`sensors convert`).

A batch holds measurements of one kind only, from one site, of one event type, and either all
with a reported velocity or all without, because `Detections` carries each of those once per
batch (fusion/messages.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from fusion.messages import IDENT_DTYPE, KIND_EVENT, KIND_POS, Detections

KNOT_MPS = 1852.0 / 3600.0
FOOT_M = 0.3048


class Measurement(NamedTuple):
    """One decoded report. `z` and `r_diag` follow fusion/messages.py for the kind: for `pos`
    and `event` (lat_deg, lon_deg, alt_m) with a diagonal ENU covariance in m^2; for `polar`
    (range_m, az_rad, el_rad) with variances in m^2 and rad^2."""

    kind: str
    t_s: float
    z: tuple[float, float, float]
    r_diag: tuple[float, float, float]
    ident: bytes = b""
    cls: int = 0
    vel: tuple[float, float, float] | None = None  # ENU m/s
    vel_var: tuple[float, float, float] | None = None  # (m/s)^2, diagonal
    site: tuple[float, float, float] | None = None  # sensor site for polar/bearing
    event: str | None = None  # event type for `event` measurements


def enu_velocity(speed_mps: float, course_deg: float, up_mps: float = 0.0) -> tuple:
    """(east, north, up) m/s from ground speed and course over ground (clockwise from north)."""
    c = math.radians(course_deg)
    return (speed_mps * math.sin(c), speed_mps * math.cos(c), up_mps)


def velocity_variance(
    speed_mps: float, speed_sigma_mps: float, course_sigma_deg: float, up_var: float
) -> tuple[float, float, float]:
    """A diagonal, direction-free bound of the velocity covariance: the larger of the
    along-track (speed) and cross-track (speed * course error) variances on both horizontal
    axes, so the bound holds whatever the course."""
    cross = speed_mps * math.radians(course_sigma_deg)
    h = max(speed_sigma_mps**2, cross**2)
    return (h, h, up_var)


_GroupKey = tuple[str, tuple | None, str | None, bool]


class Batcher:
    """Groups measurements into `Detections`, flushing a group when it holds `batch_max`
    measurements or when its oldest one has waited `max_wait_s` (by the caller's clock).

    `next_seq(sensor)` gives each flushed batch its sequence number; the default counts from
    `seq_start`. Flushed batches keep measurement order within a group.
    """

    def __init__(
        self,
        sensor: str,
        *,
        batch_max: int = 256,
        max_wait_s: float = 0.05,
        seq_start: int = 1,
        next_seq: Callable[[str], int] | None = None,
        meta: dict | None = None,
    ) -> None:
        if batch_max < 1:
            raise ValueError("batch_max must be at least 1")
        if max_wait_s < 0:
            raise ValueError("max_wait_s must be non-negative")
        self.sensor = sensor
        self.batch_max = int(batch_max)
        self.max_wait_s = float(max_wait_s)
        self._seq = int(seq_start) - 1
        self._next_seq = next_seq or self._count_seq
        self._meta = dict(meta) if meta else None
        self._groups: dict[_GroupKey, tuple[float, list[Measurement]]] = {}

    def _count_seq(self, sensor: str) -> int:
        self._seq += 1
        return self._seq

    def __len__(self) -> int:
        return sum(len(rows) for _, rows in self._groups.values())

    def add(self, m: Measurement, now_s: float) -> list[Detections]:
        """Adds one measurement; returns the batches that became full (zero or one)."""
        key = (m.kind, m.site, m.event, m.vel is not None)
        group = self._groups.get(key)
        if group is None:
            group = (now_s, [])
            self._groups[key] = group
        rows = group[1]
        rows.append(m)
        if len(rows) >= self.batch_max:
            del self._groups[key]
            return [self._build(key, rows)]
        return []

    def due(self, now_s: float) -> list[Detections]:
        """Flushes every group whose oldest measurement has waited at least `max_wait_s`."""
        out = []
        for key in [k for k, (t0, _) in self._groups.items() if now_s - t0 >= self.max_wait_s]:
            _, rows = self._groups.pop(key)
            out.append(self._build(key, rows))
        return out

    def next_due_s(self) -> float | None:
        """When the oldest open group falls due, or None when nothing waits."""
        if not self._groups:
            return None
        return min(t0 for t0, _ in self._groups.values()) + self.max_wait_s

    def flush(self) -> list[Detections]:
        """Flushes every open group."""
        out = [self._build(k, rows) for k, (_, rows) in self._groups.items()]
        self._groups.clear()
        return out

    def _build(self, key: _GroupKey, rows: list[Measurement]) -> Detections:
        kind, site, event, has_vel = key
        n = len(rows)
        t = np.fromiter((r.t_s for r in rows), dtype=np.float64, count=n)
        z = np.array([r.z for r in rows], dtype=np.float64).reshape(n, 3)
        R = np.zeros((n, 3, 3), dtype=np.float64)
        d = np.array([r.r_diag for r in rows], dtype=np.float64).reshape(n, 3)
        idx = np.arange(3)
        R[:, idx, idx] = d
        vel = vel_R = None
        if has_vel:
            vel = np.array([r.vel for r in rows], dtype=np.float64).reshape(n, 3)
            vel_R = np.zeros((n, 3, 3), dtype=np.float64)
            vel_R[:, idx, idx] = np.array([r.vel_var for r in rows], dtype=np.float64)
        ident = None
        if any(r.ident for r in rows):
            ident = np.array([r.ident for r in rows], dtype=IDENT_DTYPE)
        cls = np.fromiter((r.cls for r in rows), dtype=np.uint8, count=n)
        meta = dict(self._meta) if self._meta else None
        if kind == KIND_EVENT and event is not None:
            meta = {**(meta or {}), "event": event}
        return Detections(
            sensor=self.sensor,
            seq=self._next_seq(self.sensor),
            kind=kind,
            t=t,
            z=z,
            R=R,
            site=site,
            vel=vel,
            vel_R=vel_R,
            ident=ident,
            cls=cls,
            meta=meta,
        )


# A report without a velocity, in a batch of reports with one: zero, with a variance that
# leaves it uninformative (100 m/s sigma per axis).
NO_VEL_VAR_M2S2 = (1e4, 1e4, 1e4)


def window_batches(
    meas: list[Measurement], sensor: str, window_s: float | None = 1.0
) -> list[Detections]:
    """Recorded `pos` measurements as the evaluation replays them: time-ordered batches of the
    reports in each `window_s` window of measurement time (None: one batch per report), every
    batch with velocities (a report without one gets zero and NO_VEL_VAR_M2S2) and
    identities (the replay strips them before tracking)."""
    meas = sorted(meas, key=lambda m: m.t_s)
    out: list[Detections] = []
    i = 0
    while i < len(meas):
        j = i + 1
        if window_s is not None:
            edge = math.floor(meas[i].t_s / window_s) * window_s + window_s
            while j < len(meas) and meas[j].t_s < edge:
                j += 1
        chunk, i = meas[i:j], j
        vel = np.array([m.vel if m.vel is not None else (0.0, 0.0, 0.0) for m in chunk])
        vvar = np.array([m.vel_var if m.vel_var is not None else NO_VEL_VAR_M2S2 for m in chunk])
        out.append(
            Detections(
                sensor=sensor,
                seq=len(out) + 1,
                kind=KIND_POS,
                t=np.array([m.t_s for m in chunk]),
                z=np.array([m.z for m in chunk]),
                R=np.array([np.diag(m.r_diag) for m in chunk]),
                vel=vel,
                vel_R=np.einsum("ni,ij->nij", vvar, np.eye(3)),
                ident=np.array([m.ident for m in chunk], dtype=IDENT_DTYPE),
                cls=np.array([m.cls for m in chunk], dtype=np.uint8),
            )
        )
    return out
