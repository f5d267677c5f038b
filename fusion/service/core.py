"""The integration point between the service and the fusion core (tracker + rules).

The service hands released batches to `FusionCore.process`, which is the one place that calls
the tracker and the rule engine; everything else in fusion/service is delivery (sockets,
ordering, duplicates, persistence). The core is deterministic for a given sequence of batches:
it never reads the wall clock (the service passes `now_s`).

Any object with the same methods can stand in for FusionCore (the service tests use a counting
core to check delivery in isolation from tracking).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from fusion.config import FusionConfig, tracker_config
from fusion.messages import KIND_EVENT, TRACK_STATUS_NAMES, Detections, Heartbeat, TrackUpdate
from fusion.picture import TrackPicture

log = logging.getLogger(__name__)


class FusionCore:
    """Tracker and rules behind `process(batches, sensor_states, now_s) -> cue bodies`."""

    def __init__(self, config: FusionConfig) -> None:
        from fusion.geo import LocalFrame
        from fusion.tracker import Tracker

        self.origin = config.theatre.origin
        self.frame = LocalFrame(*self.origin)
        self.tracker = Tracker(tracker_config(config), origin=self.origin)
        self.rules = None
        if config.theatre.sites is not None:
            self.rules = _build_rules(config, self.frame)
        self._picture: TrackPicture | None = None

    # -- the integration point ------------------------------------------------------------

    def process(
        self, batches: list[Detections], sensor_states: dict[str, Any], now_s: float
    ) -> list[dict[str, Any]]:
        """Steps the tracker with each batch in order, then runs the rules once over the
        resulting picture and the located events; returns the cue bodies produced."""
        events = []
        for batch in batches:
            if batch.kind == KIND_EVENT:
                events.append(batch)
            else:
                self.tracker.step(batch)
        self._picture = None
        if self.rules is None:
            return []
        return list(self.rules.evaluate(self.picture(), events, sensor_states, now_s))

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

    def cue_counts(self) -> dict[tuple[str, str], int]:
        """Open cues by (rule, state) when the engine exposes them."""
        fn = getattr(self.rules, "open_counts", None)
        return dict(fn()) if callable(fn) else {}

    # -- persistence --------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        snap: dict[str, Any] = {"tracker": self.tracker.snapshot()}
        if self.rules is not None and hasattr(self.rules, "snapshot"):
            snap["rules"] = self.rules.snapshot()
        return snap

    def restore(self, snap: dict[str, Any]) -> None:
        from fusion.tracker import Tracker

        self.tracker = Tracker.restore(snap["tracker"], self.tracker.config)
        if self.rules is not None and "rules" in snap and hasattr(self.rules, "restore"):
            self.rules.restore(snap["rules"])
        self._picture = None

    def warm_up(self) -> None:
        """Compiles every numba kernel on tiny arrays of the real dtypes (before binding), by
        running a throw-away tracker and rule engine through each measurement kind."""
        from fusion.tracker import Tracker

        warm = getattr(Tracker, "warm_up", None)
        if callable(warm):
            warm()
        else:
            _warm_tracker(Tracker(self.tracker.config, origin=self.origin), self.origin)
        if self.rules is not None:
            fn = getattr(self.rules, "warm_up", None)
            if callable(fn):
                fn()


def _build_rules(config: FusionConfig, frame: Any) -> Any:
    from fusion.rules.engine import RuleEngine
    from fusion.sites import load_sites

    sites = load_sites(Path(config.theatre.sites), frame)
    return RuleEngine(sites, config.rules or None)


def _warm_tracker(tracker: Any, origin: tuple[float, float, float]) -> None:
    lat0, lon0, alt0 = origin
    t0 = 1.0e9
    for i, (kind, z, R) in enumerate(_warm_batches(lat0, lon0, alt0)):
        for k in range(3):
            tracker.step(
                Detections(
                    sensor=f"warm-{kind}",
                    seq=i * 10 + k,
                    kind=kind,
                    t=np.full(z.shape[0], t0 + k),
                    z=z,
                    R=R,
                    site=(lat0, lon0, alt0),
                    ident=np.array([b"mmsi:1", b""], "S24"),
                    cls=np.array([2, 1], np.uint8),
                )
            )
    tracker.picture(confirmed_only=False)


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
