"""`sensor_outage`: a sensor whose coverage includes a site stops heartbeating.

Sensor states come from the service's liveness tracking, e.g.
{"radar-1": {"state": "lost", "site": (lat, lon, alt), "max_range_m": 40000, "last_hb_s": t}};
coverage is a range around the sensor's site (`max_range_m`, also accepted under `coverage`)
or a polygon (`coverage: {"polygon": [[lat, lon], ...]}`). A sensor is out when its state is
"lost" or "down", or when its last heartbeat is older than the site's timeout_s. A sensor
that never said where it is or what it covers cannot be placed and is not cued.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import shapely
from shapely.geometry import Point, Polygon

from fusion.rules.base import Findings, ScanContext
from fusion.rules.text import duration_text
from fusion.sites import Site, SiteSet

NAME = "sensor_outage"
_OUT_STATES = ("lost", "down")


class SensorOutage:
    name = NAME

    def __init__(self, sites: SiteSet) -> None:
        self.sites = sites
        self.geoms = np.array([s.geometry for s in sites.sites], dtype=object)
        self.enabled = np.array([NAME in s.rules for s in sites.sites], dtype=bool)
        self.timeout_s = np.array(
            [s.rules[NAME]["timeout_s"] if NAME in s.rules else np.inf for s in sites.sites]
        )
        self._coverage: dict[str, tuple[str, np.ndarray]] = {}
        self.rejected = 0  # sensor states that could not be read (bad site, range, polygon)

    def _covered(self, sensor: str, st: dict[str, Any]) -> np.ndarray | None:
        cov = st.get("coverage") or {}
        site = st.get("site")
        rng = st.get("max_range_m", cov.get("max_range_m"))
        poly = cov.get("polygon")
        sig = json.dumps([site, rng, poly], default=float)
        cached = self._coverage.get(sensor)
        if cached is not None and cached[0] == sig:
            return cached[1]
        covered = None
        if poly:
            llh = np.array([[p[0], p[1], 0.0] for p in poly], dtype=np.float64)
            shape = Polygon(self.sites.to_enu_xy(llh))
            covered = shapely.intersects(self.geoms, shape.buffer(0))
        elif site is not None and rng is not None:
            xy = self.sites.to_enu_xy(np.asarray(site, dtype=np.float64)[:3])[0]
            covered = shapely.distance(self.geoms, Point(*xy)) <= float(rng)
        if covered is not None:
            covered = covered & self.enabled
            self._coverage[sensor] = (sig, covered)
        return covered

    def evaluate(self, ctx: ScanContext) -> Findings:
        site_out, subjects, infos = [], [], []
        for sensor in sorted(ctx.sensor_states):
            st = ctx.sensor_states[sensor] or {}
            try:
                covered = self._covered(sensor, st)
                last = st.get("last_hb_s")
                last = None if last is None else float(last)
                if last is not None and not np.isfinite(last):
                    raise ValueError("non-finite last_hb_s")
            except (TypeError, ValueError, AttributeError, IndexError, KeyError):
                self.rejected += 1
                continue
            if covered is None or not covered.any():
                continue
            state = str(st.get("state", "ok"))
            silent_s = None if last is None else max(ctx.now_s - last, 0.0)
            for j in np.flatnonzero(covered):
                timed_out = silent_s is not None and silent_s > self.timeout_s[j]
                if state not in _OUT_STATES and not timed_out:
                    continue
                site = st.get("site")
                llh = [float(x) for x in site][:3] if site is not None else None
                site_out.append(int(j))
                subjects.append(sensor)
                infos.append(
                    {
                        "pos_llh": llh,
                        "vel": [0.0, 0.0, 0.0],
                        "sigma_m": 0.0,
                        "confidence": 0.95 if state in _OUT_STATES else 0.8,
                        "evidence": {
                            "sensor": sensor,
                            "state": state,
                            "silent_s": None if silent_s is None else round(silent_s, 1),
                        },
                    }
                )
        return Findings(
            rule=NAME,
            site=np.asarray(site_out, dtype=np.int64),
            subject=subjects,
            enter=np.ones(len(subjects), bool),
            info=infos,
        )


def sentence(state: str, site: Site, ev: dict[str, Any]) -> str:
    sensor = ev["sensor"]
    if state == "close":
        return f"Sensor {sensor} covering {site.name} is heartbeating again"
    silent = ev.get("silent_s")
    since = f" for {duration_text(silent)}" if silent is not None else ""
    verb = "has been silent" if state == "open" else "is still silent"
    return f"Sensor {sensor} covering {site.name} {verb}{since} (state {ev['state']})"
