"""Ground-truth trajectories: a steered point mass sampled densely, then interpolated.

This module owns how a simulated object moves: a pilot steers toward waypoints with the turn
rate, acceleration and climb rate of its class, or flies an orbit. It knows nothing of sensors
or sites. Positions are in the theatre's local ENU frame (m), velocities in m/s, times in
scenario seconds (0 = scenario start).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Dense sampling step of the integrated path; sensors interpolate between samples, so this
# bounds the interpolation error at about v * dt^2 * turn_rate, well under a metre.
DT_S = 0.1


@dataclass(frozen=True)
class Dynamics:
    """Limits of one class of mover."""

    max_turn_rate_dps: float
    max_accel_mps2: float
    max_climb_mps: float


# Typical limits: a truck on a road, a ship's rudder, a standard-rate airliner turn, a quadcopter.
DYNAMICS = {
    "ground": Dynamics(max_turn_rate_dps=12.0, max_accel_mps2=1.5, max_climb_mps=0.0),
    "vessel": Dynamics(max_turn_rate_dps=2.0, max_accel_mps2=0.1, max_climb_mps=0.0),
    "aircraft": Dynamics(max_turn_rate_dps=3.0, max_accel_mps2=1.0, max_climb_mps=12.0),
    "drone": Dynamics(max_turn_rate_dps=25.0, max_accel_mps2=3.0, max_climb_mps=4.0),
}


@dataclass(frozen=True, eq=False)
class Trajectory:
    """A densely sampled path: `t_s (k,)`, `pos (k, 3)`, `vel (k, 3)`; undefined outside."""

    t_s: np.ndarray
    pos: np.ndarray
    vel: np.ndarray

    @property
    def start_s(self) -> float:
        return float(self.t_s[0])

    @property
    def end_s(self) -> float:
        return float(self.t_s[-1])

    def alive(self, t_s: np.ndarray | float) -> np.ndarray:
        t = np.asarray(t_s, dtype=np.float64)
        return (t >= self.t_s[0]) & (t <= self.t_s[-1])

    def at(self, t_s: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """Position (n, 3) and velocity (n, 3) at the times `t_s`, linearly interpolated;
        times outside the path are clamped to its ends (check `alive` first)."""
        t = np.atleast_1d(np.asarray(t_s, dtype=np.float64))
        f = (t - self.t_s[0]) / DT_S
        i = np.clip(np.floor(f).astype(np.int64), 0, len(self.t_s) - 2)
        w = np.clip(f - i, 0.0, 1.0)[:, None]
        pos = self.pos[i] * (1.0 - w) + self.pos[i + 1] * w
        vel = self.vel[i] * (1.0 - w) + self.vel[i + 1] * w
        return pos, vel


@dataclass(frozen=True)
class Leg:
    """Go to `to` (e, n, u) at `speed_mps`; `orbit_s` > 0 instead orbits `to` with radius
    `radius_m` for that long; `hold_s` > 0 waits in place (a parked vehicle)."""

    to: tuple[float, float, float]
    speed_mps: float
    orbit_s: float = 0.0
    radius_m: float = 0.0
    hold_s: float = 0.0


def _wrap(a: float) -> float:
    return (a + math.pi) % (2.0 * math.pi) - math.pi


def fly(
    start: tuple[float, float, float],
    heading_deg: float,
    speed_mps: float,
    legs: list[Leg],
    dyn: Dynamics,
    *,
    start_s: float = 0.0,
    end_s: float | None = None,
    arrive_m: float = 30.0,
) -> Trajectory:
    """Integrates a pilot that flies `legs` in order from `start` with the limits `dyn`.

    Heights are above the ellipsoid; the result is in theatre ENU (see `curved`). Heading is
    clockwise from north. The path ends when the last leg is done, or at `end_s`
    (the object then leaves the scenario).
    """
    e, n, u = (float(v) for v in start)
    hdg = math.radians(heading_deg)
    spd = float(speed_mps)
    max_turn = math.radians(dyn.max_turn_rate_dps) * DT_S
    max_dv = dyn.max_accel_mps2 * DT_S
    max_du = dyn.max_climb_mps * DT_S
    t = float(start_s)
    ts, ps, vs = [], [], []
    vu = 0.0

    def record() -> None:
        ts.append(t)
        ps.append((e, n, u))
        vs.append((spd * math.sin(hdg), spd * math.cos(hdg), vu))

    record()
    for leg in legs:
        tx, ty, tz = leg.to
        leg_start = t
        while True:
            if end_s is not None and t >= end_s:
                return curved(_trajectory(ts, ps, vs))
            if leg.hold_s > 0.0:
                if t - leg_start >= leg.hold_s:
                    break
                target_spd, desired = 0.0, hdg
            elif leg.orbit_s > 0.0:
                if t - leg_start >= leg.orbit_s:
                    break
                # Steer toward the tangent point of the orbit circle (counter-clockwise seen
                # from above, i.e. turning left), a pursuit law that settles onto the circle.
                dx, dy = e - tx, n - ty
                r = math.hypot(dx, dy)
                ang = math.atan2(dx, dy)  # bearing from centre, clockwise from north
                lead = math.radians(25.0)
                aim_ang = ang - lead
                ax = tx + leg.radius_m * math.sin(aim_ang)
                ay = ty + leg.radius_m * math.cos(aim_ang)
                if r > 3.0 * leg.radius_m:
                    ax, ay = tx, ty
                desired = math.atan2(ax - e, ay - n)
                target_spd = leg.speed_mps
            else:
                dist = math.hypot(tx - e, ty - n)
                if dist < arrive_m:
                    break
                desired = math.atan2(tx - e, ty - n)
                target_spd = leg.speed_mps
            turn = max(-max_turn, min(max_turn, _wrap(desired - hdg)))
            hdg = _wrap(hdg + turn)
            spd += max(-max_dv, min(max_dv, target_spd - spd))
            du = max(-max_du, min(max_du, tz - u))
            vu = du / DT_S
            e += spd * math.sin(hdg) * DT_S
            n += spd * math.cos(hdg) * DT_S
            u += du
            t = round(t + DT_S, 9)
            record()
    if end_s is not None:
        # Keep going straight until the scenario's end, so objects do not vanish mid-picture.
        while t < end_s:
            e += spd * math.sin(hdg) * DT_S
            n += spd * math.cos(hdg) * DT_S
            vu = 0.0
            t = round(t + DT_S, 9)
            record()
    return curved(_trajectory(ts, ps, vs))


EARTH_RADIUS_M = 6_371_000.0


def curved(traj: Trajectory) -> Trajectory:
    """The path with its third coordinate turned from height above the ellipsoid into the
    theatre's ENU up: the ground falls away from the origin's tangent plane by about
    d^2 / 2R (70 m at 30 km), and a truck on the ground must not fly."""
    e, n = traj.pos[:, 0], traj.pos[:, 1]
    pos = traj.pos.copy()
    vel = traj.vel.copy()
    pos[:, 2] -= (e * e + n * n) / (2.0 * EARTH_RADIUS_M)
    vel[:, 2] -= (e * traj.vel[:, 0] + n * traj.vel[:, 1]) / EARTH_RADIUS_M
    return Trajectory(t_s=traj.t_s, pos=pos, vel=vel)


def _trajectory(ts: list, ps: list, vs: list) -> Trajectory:
    if len(ts) < 2:
        raise ValueError("a trajectory needs at least two samples")
    return Trajectory(
        t_s=np.asarray(ts, dtype=np.float64),
        pos=np.asarray(ps, dtype=np.float64),
        vel=np.asarray(vs, dtype=np.float64),
    )
