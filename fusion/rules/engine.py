"""RuleEngine: runs every rule over one scan and returns the cue events it causes.

This module owns the order of a scan: select the tracks the rules consider (confirmed and
coasting), predict them to the scan time, find their (track, area) pairs once, let each rule
produce its findings, and pass them to the cue lifecycle (fusion.cues). The output is a list
of cue bodies in a deterministic order; the caller stores them (fusion.store) and publishes
them. Nothing here touches sockets, files or the wall clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from fusion.cues import CueBook, CueConfig
from fusion.kernels.sites import predict_horizontal
from fusion.messages import Detections
from fusion.picture import TrackPicture
from fusion.rules.approach import Approach
from fusion.rules.base import RULE_STATUSES, ScanContext
from fusion.rules.dark_target import DarkTarget
from fusion.rules.fire_event import FireEvent
from fusion.rules.incursion import Incursion
from fusion.rules.line_crossing import LineCrossing
from fusion.rules.loiter import Loiter
from fusion.rules.sensor_outage import SensorOutage
from fusion.sites import SiteSet

__all__ = ["RuleEngine"]


class RuleEngine:
    """`RuleEngine(sites, config)`; `evaluate(picture, events, sensor_states, now_s)` per scan.

    config: a CueConfig or a mapping {"update_interval_s": 5.0, "close_after_s": {rule: s},
    "max_updates_per_scan": 200} (the [rules] table of fusion.toml).
    Scans should come in non-decreasing `now_s`; an earlier time is taken as the latest one
    seen (and counted), so a clock step back cannot reopen or close cues out of order.
    Bad inputs (non-finite tracks, unplaceable events or sensor states) are skipped and
    counted in `counters`. Not thread-safe: one engine per service.
    """

    def __init__(self, sites: SiteSet, config: CueConfig | Mapping[str, Any] | None = None):
        self.sites = sites
        if not isinstance(config, CueConfig):
            config = CueConfig.from_dict(config)
        self.config = config
        self.rules = [
            Incursion(sites),
            Approach(sites),
            LineCrossing(sites),
            Loiter(sites),
            DarkTarget(sites),
            FireEvent(sites),
            SensorOutage(sites),
        ]
        self.book = CueBook(sites, config)
        self.last_now_s = -np.inf
        self._time_regressions = 0
        self._tracks_non_finite = 0

    def evaluate(
        self,
        picture: TrackPicture,
        events: list[Detections] | None = None,
        sensor_states: dict[str, dict[str, Any]] | None = None,
        now_s: float | None = None,
    ) -> list[dict[str, Any]]:
        """Cue bodies (open, update, close) caused by this scan, in a deterministic order."""
        now = float(picture.t_s if now_s is None else now_s)
        if not np.isfinite(now):
            raise ValueError("evaluate: now_s must be finite")
        if now < self.last_now_s:
            self._time_regressions += 1
            now = self.last_now_s
        self.last_now_s = now
        ctx = self.context(picture, events or [], sensor_states or {}, now)
        findings = [rule.evaluate(ctx) for rule in self.rules]
        return self.book.step(findings, ctx)

    def context(self, picture, events, sensor_states, now_s: float) -> ScanContext:
        """The scan's prepared inputs: tracks predicted to now_s, their area pairs."""
        status = picture.status
        rows = np.flatnonzero((status == RULE_STATUSES[0]) | (status == RULE_STATUSES[1]))
        n = rows.shape[0]
        xy, v, Pxy, ok = np.empty((n, 2)), np.empty((n, 2)), np.empty((n, 2, 2)), np.empty(n, bool)
        n_ok = predict_horizontal(
            np.ascontiguousarray(picture.x), np.ascontiguousarray(picture.P),
            np.ascontiguousarray(picture.t_upd_s), rows, float(now_s), xy, v, Pxy, ok,
        )  # fmt: skip
        if n_ok < n:  # a broken track must not take the scan down
            self._tracks_non_finite += n - n_ok
            rows, xy, v, Pxy = rows[ok], xy[ok], v[ok], Pxy[ok]
        pairs = self.sites.area_pairs(xy, v)
        return ScanContext(
            sites=self.sites,
            now_s=now_s,
            picture=picture,
            rows=rows,
            ids=picture.id[rows].astype(np.int64),
            xy=xy,
            v=v,
            Pxy=Pxy,
            pairs=pairs,
            events=list(events),
            sensor_states=dict(sensor_states),
        )

    def restore(self, open_bodies: list[dict[str, Any]]) -> int:
        """Continue cues left open by a previous run (CueStore.open_cues())."""
        return self.book.restore(open_bodies)

    def open_cues(self) -> int:
        """How many cues are open."""
        return len(self.book.open)

    @property
    def counters(self) -> dict[str, int]:
        """Inputs skipped since start, by reason (for metrics)."""
        fire = next(r for r in self.rules if r.name == "fire_event")
        outage = next(r for r in self.rules if r.name == "sensor_outage")
        return {
            "time_regressions": self._time_regressions,
            "tracks_non_finite": self._tracks_non_finite,
            "events_rejected": fire.rejected,
            "sensor_states_rejected": outage.rejected,
        }
