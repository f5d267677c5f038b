"""The integration point between the service and the fusion core (tracker + rules).

The service hands released batches to `FusionCore.process`, which is the one place that calls
the tracker and the rule engine; everything else in fusion/service is delivery (sockets,
ordering, duplicates, persistence). The core is deterministic for a given sequence of batches:
it never reads the wall clock; the wall time the service passes only dates the idle scans.

Any object with the same methods can stand in for FusionCore (the service tests use a counting
core to check delivery in isolation from tracking).
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import numpy as np

from fusion.config import ConfigError, FusionConfig, tracker_config
from fusion.messages import KIND_EVENT, TRACK_STATUS_NAMES, Detections, Heartbeat, TrackUpdate
from fusion.picture import TrackPicture

log = logging.getLogger(__name__)


class FusionCore:
    """Tracker and rules behind `process(batches, sensor_states, wall_s) -> cue bodies`.

    The rules' clock is measurement time: each scan is evaluated at the newest measurement
    time processed (never going back), so the cues a sequence of batches produces (ids, times)
    are the same live, after a restart that replays batches, and in `fusion replay`. When no
    data arrives for `idle_s`, `tick` runs an idle scan on a clock extrapolated from the last
    measurement time by the wall time since, so that sensor outages are seen and cues close.
    """

    def __init__(self, config: FusionConfig, idle_s: float = 2.0) -> None:
        from fusion.geo import LocalFrame
        from fusion.tracker import Tracker

        self.origin = config.theatre.origin
        self.frame = LocalFrame(*self.origin)
        self.tracker = Tracker(tracker_config(config), origin=self.origin)
        self.rules = None
        if config.theatre.sites is not None:
            self.rules = _build_rules(config, self.frame)
        self.idle_s = float(idle_s)
        self.now_s = -np.inf  # the rules' clock (measurement time)
        self._data_wall_s: float | None = None  # wall time of the last data scan
        self._data_now_s = -np.inf
        self._picture: TrackPicture | None = None

    # -- the integration point ------------------------------------------------------------

    def process(
        self, batches: list[Detections], sensor_states: dict[str, Any], wall_s: float
    ) -> list[dict[str, Any]]:
        """Steps the tracker with each batch in order, then runs the rules once over the
        resulting picture and the located events; returns the cue bodies produced."""
        events = []
        t_max = self.now_s
        for batch in map(_writable, batches):
            if batch.kind == KIND_EVENT:
                events.append(batch)
            else:
                self.tracker.step(batch)
            t_max = max(t_max, float(batch.t.max()))
        self._picture = None
        self.now_s = t_max
        self._data_wall_s, self._data_now_s = wall_s, t_max
        if self.rules is None:
            return []
        return list(self.rules.evaluate(self.picture(), events, sensor_states, self.now_s))

    def tick(self, sensor_states: dict[str, Any], wall_s: float) -> list[dict[str, Any]]:
        """An idle scan when no data has come for `idle_s` (see the class docstring)."""
        if self.rules is None or self._data_wall_s is None:
            return []
        idle = wall_s - self._data_wall_s
        if idle < self.idle_s:
            return []
        now = max(self.now_s, self._data_now_s + idle)
        self.now_s = now
        return list(self.rules.evaluate(self.picture(), [], sensor_states, now))

    def restore_cues(self, open_bodies: list[dict[str, Any]]) -> int:
        """Cues a previous run left open continue under their ids (CueStore.open_cues())."""
        if self.rules is None:
            return 0
        return int(self.rules.restore(open_bodies))

    def heartbeat(self, hb: Heartbeat) -> None:
        """A sensor's declared coverage reaches the tracker (misses count only inside it)."""
        self.tracker.apply_heartbeat(hb)

    # -- views ------------------------------------------------------------------------------

    def picture(self) -> TrackPicture:
        if self._picture is None:
            self._picture = self.tracker.picture(confirmed_only=True)
        return self._picture

    def track_update(self) -> TrackUpdate:
        return picture_to_update(self.picture(), self.frame)

    def track_counts(self) -> dict[str, int]:
        full = self.tracker.picture(confirmed_only=False)
        counts = np.bincount(full.status.astype(np.int64), minlength=len(TRACK_STATUS_NAMES))
        return {name: int(counts[i]) for i, name in enumerate(TRACK_STATUS_NAMES) if i > 0}

    # -- persistence --------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {"tracker": self.tracker.snapshot(), "now_s": float(self.now_s)}

    def restore(self, snap: dict[str, Any]) -> None:
        from fusion.tracker import Tracker

        self.tracker = Tracker.restore(snap["tracker"], self.tracker.config)
        self.now_s = float(snap.get("now_s", -np.inf))
        self._picture = None

    def warm_up(self) -> None:
        """Compiles every numba kernel on tiny arrays of the real dtypes (before binding): a
        throw-away tracker takes each measurement kind until tracks confirm, and a throw-away
        rule engine on the same sites scans its picture with an event and a sensor state."""
        from fusion.tracker import Tracker

        warm = Tracker(self.tracker.config, origin=self.origin)
        t_s = _warm_tracker(warm, self.origin)
        if self.rules is None:
            return
        from fusion.rules.engine import RuleEngine

        engine = RuleEngine(self.rules.sites, self.rules.config)
        lat0, lon0, alt0 = self.origin
        event = Detections(
            sensor="warm-event",
            seq=1,
            kind=KIND_EVENT,
            t=np.array([t_s]),
            z=np.array([[lat0, lon0, alt0]]),
            R=np.eye(3)[None] * 100.0,
            meta={"event": "gunshot"},
        )
        states = {
            "warm-radar": {
                "state": "lost",
                "site": [lat0, lon0, alt0],
                "coverage": {"max_range_m": 10_000.0},
                "last_hb_s": t_s - 100.0,
            }
        }
        engine.evaluate(warm.picture(confirmed_only=True), [event], states, t_s)
        engine.evaluate(warm.picture(confirmed_only=True), [], states, t_s + 30.0)


def _build_rules(config: FusionConfig, frame: Any) -> Any:
    """The rule engine over the configured sites; a bad sites file or [rules] table is a
    ConfigError naming it."""
    from fusion.rules.engine import RuleEngine
    from fusion.sites import load_sites

    try:
        sites = load_sites(Path(config.theatre.sites), frame)
    except (ValueError, OSError) as exc:  # SiteError is a ValueError
        raise ConfigError(f"{config.source}: theatre.sites {config.theatre.sites}: {exc}") from None
    try:
        return RuleEngine(sites, config.rules or None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{config.source}: [rules]: {exc}") from None


def _writable(batch: Detections) -> Detections:
    """The batch with writable copies of its read-only arrays (the codec's views of the
    frame). numba compiles read-only arrays as types of their own: without the copies, the
    first batches from the wire would compile every kernel again after the warm-up, a stall
    of tens of seconds on a cold cache. The copies cost microseconds per batch."""
    names = ("t", "z", "R", "vel", "vel_R", "ident", "cls")
    frozen = [n for n in names if isinstance(getattr(batch, n, None), np.ndarray)
              and not getattr(batch, n).flags.writeable]  # fmt: skip
    if not frozen:
        return batch
    out = copy.copy(batch)
    for n in frozen:
        setattr(out, n, getattr(batch, n).copy())
    return out


def _warm_tracker(tracker: Any, origin: tuple[float, float, float]) -> float:
    """Steps `tracker` through every kind until its tracks confirm; returns the last time."""
    lat0, lon0, alt0 = origin
    t0 = 1.0e9
    k = 0
    for i, (kind, z, R) in enumerate(_warm_batches(lat0, lon0, alt0)):
        for k in range(6):
            tracker.step(
                Detections(
                    sensor=f"warm-{kind}",
                    seq=i * 10 + k,
                    kind=kind,
                    t=np.full(z.shape[0], t0 + 6 * i + k),
                    z=z,
                    R=R,
                    site=(lat0, lon0, alt0),
                    ident=np.array([b"mmsi:1", b""], "S24"),
                    cls=np.array([2, 1], np.uint8),
                )
            )
    tracker.picture(confirmed_only=False)
    return t0 + 6 * i + k


def _warm_batches(lat0: float, lon0: float, alt0: float) -> list:
    pos = np.array([[lat0 + 0.01, lon0, alt0], [lat0, lon0 + 0.01, alt0 + 1000.0]])
    Rpos = np.tile(np.diag([100.0, 100.0, 400.0]), (2, 1, 1))
    polar = np.array([[2000.0, 0.5, 0.01], [3000.0, 1.0, 0.02]])
    Rpolar = np.tile(np.diag([100.0, 1e-4, 1e-4]), (2, 1, 1))
    bearing = np.array([[0.5], [1.0]])
    Rb = np.tile(np.array([[1e-4]]), (2, 1, 1))
    return [("pos", pos, Rpos), ("polar", polar, Rpolar), ("bearing", bearing, Rb)]


def picture_to_update(picture: TrackPicture, frame: Any) -> TrackUpdate:
    """The wire form of a picture: positions back to WGS84, ENU velocities and covariances."""
    n = len(picture)
    pos = frame.to_geodetic(picture.x[:, :3]) if n else np.zeros((0, 3))
    return TrackUpdate(
        t_s=float(picture.t_s),
        id=np.ascontiguousarray(picture.id, np.int64),
        pos=np.ascontiguousarray(pos, np.float64).reshape(n, 3),
        vel=np.ascontiguousarray(picture.x[:, 3:6], np.float64),
        P=np.ascontiguousarray(picture.P, np.float64),
        status=np.ascontiguousarray(picture.status, np.uint8),
        ident=np.ascontiguousarray(picture.ident, "S24"),
        cls=np.ascontiguousarray(picture.cls, np.uint8),
        n_sensors=np.ascontiguousarray(picture.n_sensors, np.uint8),
    )
