"""What a scenario is made of: objects with their truth, sensors, events and scripted breaches.

This module owns the scenario's value types and the ground-truth queries over them; the demo
layout (`fusion.scenario.demo`) fills them and `sensors.sim` observes them. Positions are in the
theatre's ENU frame (m); times are scenario seconds, and `t0_s` (epoch seconds) maps them to
wire time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fusion.messages import CLS_AIR, CLS_GROUND, CLS_SURFACE
from fusion.scenario.motion import Trajectory
from fusion.scenario.theatre import Theatre

# Mover class -> wire class code.
WIRE_CLASS = {"ground": CLS_GROUND, "vessel": CLS_SURFACE, "aircraft": CLS_AIR, "drone": CLS_AIR}


@dataclass(eq=False)
class Target:
    """One simulated object. `ident` is its cooperative identity (``mmsi:...`` or
    ``icao:...``) or "" for a non-cooperative object; `transponder_off` lists scenario-time
    intervals during which it does not report (a vessel going dark)."""

    id: int
    name: str
    kind: str  # ground | vessel | aircraft | drone
    traj: Trajectory
    ident: str = ""
    transponder_off: list[tuple[float, float]] = field(default_factory=list)
    rcs_m2: float = 10.0

    @property
    def wire_cls(self) -> int:
        return WIRE_CLASS[self.kind]

    def reporting(self, t_s: np.ndarray) -> np.ndarray:
        """Whether the transponder is on at each time (False for non-cooperative objects)."""
        t = np.asarray(t_s, dtype=np.float64)
        if not self.ident:
            return np.zeros(t.shape, dtype=bool)
        on = np.ones(t.shape, dtype=bool)
        for a, b in self.transponder_off:
            on &= ~((t >= a) & (t < b))
        return on


@dataclass(frozen=True)
class PointEvent:
    """A located point event (a gun or rocket launch, an impact) at scenario time `t_s`."""

    t_s: float
    pos: tuple[float, float, float]  # ENU m
    event: str  # "launch" | "impact" | "gunshot"
    sigma_m: float = 40.0


@dataclass(frozen=True)
class Breach:
    """A scripted breach: the cue the rule engine is expected to raise.

    `t_s` is the scenario time at which the truth first satisfies the rule's condition; a cue
    for `rule` at `site` about `target` (or about the event, for `fire_event`) opened at or
    after it is a hit, and its delay is the latency.
    """

    name: str
    rule: str
    site: str
    t_s: float
    target: int | None = None  # Target.id; None for event-driven breaches
    note: str = ""


@dataclass(frozen=True)
class SensorSpec:
    """A simulated sensor node. kind: radar | ais | adsb | acoustic.

    Radar: rotating, `period_s` per scan, batches every `period_s / sectors`, range and
    angle noise, Pd per class, clutter per scan. AIS / ADS-B: receivers of every cooperative
    object of their class within `max_range_m`, each reporting every `interval_s`.
    Acoustic: reports located events within range with `sigma_m` noise.
    """

    id: str
    kind: str
    site: tuple[float, float, float]  # ENU m
    max_range_m: float
    latency_s: float = 0.3
    period_s: float = 1.0
    sectors: int = 4
    sigma_range_m: float = 15.0
    sigma_az_rad: float = 0.004
    sigma_el_rad: float = 0.01
    pd: dict[str, float] = field(default_factory=dict)
    clutter_per_scan: float = 0.0
    min_el_rad: float = -0.2
    classes: tuple[str, ...] = ()
    interval_s: float = 1.0
    sigma_pos_m: float = 10.0
    sigma_alt_m: float = 15.0
    sigma_vel_mps: float = 0.5
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "site", tuple(float(v) for v in self.site))


@dataclass(eq=False)
class Scenario:
    """A complete, seeded scenario: theatre, objects, sensors, events and breaches."""

    name: str
    seed: int
    t0_s: float
    duration_s: float
    theatre: Theatre
    targets: list[Target]
    sensors: list[SensorSpec]
    events: list[PointEvent]
    breaches: list[Breach]

    @property
    def origin(self) -> tuple[float, float, float]:
        return self.theatre.origin

    def target(self, tid: int) -> Target:
        for tg in self.targets:
            if tg.id == tid:
                return tg
        raise KeyError(tid)

    def truth_at(self, t_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Object ids (n,), positions (n, 3) and velocities (n, 3) alive at scenario time
        `t_s`, in id order."""
        ids, pos, vel = [], [], []
        for tg in self.targets:
            if tg.traj.alive(t_s):
                p, v = tg.traj.at(t_s)
                ids.append(tg.id)
                pos.append(p[0])
                vel.append(v[0])
        if not ids:
            return np.zeros(0, np.int64), np.zeros((0, 3)), np.zeros((0, 3))
        return np.asarray(ids, np.int64), np.asarray(pos), np.asarray(vel)

    def truth_table(self, dt_s: float = 1.0) -> dict[str, np.ndarray]:
        """Ground truth on a regular grid, as flat arrays: `t_s` (epoch s), `id`, `pos`
        (ENU m), `vel` (ENU m/s) — the form `fusion.evaluate` and truth files use."""
        times = np.arange(0.0, self.duration_s + 1e-9, dt_s)
        ts, ids, pos, vel = [], [], [], []
        for tg in self.targets:
            alive = tg.traj.alive(times)
            if not alive.any():
                continue
            p, v = tg.traj.at(times[alive])
            ts.append(times[alive] + self.t0_s)
            ids.append(np.full(int(alive.sum()), tg.id, np.int64))
            pos.append(p)
            vel.append(v)
        t = np.concatenate(ts)
        order = np.lexsort((np.concatenate(ids), t))
        return {
            "t_s": t[order],
            "id": np.concatenate(ids)[order],
            "pos": np.concatenate(pos)[order],
            "vel": np.concatenate(vel)[order],
        }
