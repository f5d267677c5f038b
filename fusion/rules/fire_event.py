"""`fire_event`: a located event (gunshot, launch, explosion) within range of a site, or
originating across a line of contact.

Events come as `Detections` of kind "event" (z = lat, lon, alt; meta {"event": type}). An
event within range_m of an area site cues that site; an event on the far side of a line of
contact within range_m of the line cues the line. Events close together are one incident:
an event within cluster_m and cluster_s of the previous event of an incident at the same site
joins it (the cue updates, counting events) instead of opening another cue. An incident's cue
closes once no event has joined it for the cue's hold time.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fusion.messages import KIND_EVENT
from fusion.rules.base import Findings, ScanContext, area_param
from fusion.rules.text import distance_text
from fusion.sites import Site, SiteSet

NAME = "fire_event"


class FireEvent:
    name = NAME

    def __init__(self, sites: SiteSet) -> None:
        self.sites = sites
        rng = area_param(sites, NAME, "range_m")
        self.area_range_m = np.where(np.isnan(rng), -1.0, rng)  # -1: never within
        self.lines = [
            (n, int(j)) for n, j in enumerate(sites.line_site) if NAME in sites.sites[j].rules
        ]
        # site index -> open incidents [subject, x, y, t_last, count]
        self.incidents: dict[int, list[list[Any]]] = {}
        self.rejected = 0  # event rows that could not be placed (non-finite, out of range)

    def evaluate(self, ctx: ScanContext) -> Findings:
        ev, bad = _collect(ctx.events)
        self.rejected += bad
        found: list[tuple[float, int, int, float, bool]] = []  # (t, event, site, dist, across)
        if ev is not None:
            xy = self.sites.to_enu_xy(ev["llh"])
            if len(self.sites.area_site):
                pairs = self.sites.points_near_areas(xy, self.area_range_m)
                for e, j, d in zip(pairs.i, pairs.site, pairs.d_now_m, strict=True):
                    found.append((ev["t"][e], int(e), int(j), float(d), False))
            for n, j in self.lines:
                r = self.sites.sites[j].rules[NAME]["range_m"]
                idx, s, _ = self.sites.line_sides(n, xy, band_m=r)
                for e, sd in zip(idx, s, strict=True):
                    if sd < 0.0 and -sd <= r:
                        found.append((ev["t"][e], int(e), j, float(-sd), True))
            # one deterministic order whatever order the batches came in
            found.sort(key=lambda f: (f[0], ev["key"][f[1]], f[2]))
        sites_out, subjects, infos = [], [], []
        for t, e, j, d, across in found:
            prm = self.sites.sites[j].rules[NAME]
            x, y = xy[e]
            incidents = self.incidents.setdefault(j, [])
            incidents[:] = [c for c in incidents if t - c[3] <= prm["cluster_s"]]
            for c in incidents:
                if np.hypot(x - c[1], y - c[2]) <= prm["cluster_m"]:
                    c[1], c[2], c[3], c[4] = x, y, t, c[4] + 1
                    break
            else:
                c = [ev["key"][e], x, y, t, 1]
                incidents.append(c)
            sites_out.append(j)
            subjects.append(c[0])
            infos.append(
                {
                    "pos_llh": ev["llh"][e].tolist(),
                    "vel": [0.0, 0.0, 0.0],
                    "sigma_m": float(ev["sigma_m"][e]),
                    "confidence": 0.9 if across else 0.8,
                    "evidence": {
                        "event": ev["type"][e],
                        "sensor": ev["sensor"][e],
                        "event_key": ev["key"][e],
                        "t_event_s": float(t),
                        "distance_m": round(d, 1),
                        "across_line": across,
                        "events_in_incident": int(c[4]),
                    },
                }
            )
        # incidents with no event for long enough are over
        now = ctx.now_s
        for j in list(self.incidents):
            keep_s = self.sites.sites[j].rules[NAME]["cluster_s"]
            self.incidents[j] = [c for c in self.incidents[j] if now - c[3] <= keep_s]
        return Findings(
            rule=NAME,
            site=np.asarray(sites_out, dtype=np.int64),
            subject=subjects,
            enter=np.ones(len(subjects), bool),
            info=infos,
        )


def _collect(events) -> tuple[dict[str, Any] | None, int]:
    """The scan's located events in a deterministic order, and how many rows were unusable."""
    rows = []
    bad = 0
    for det in events or ():
        if det.kind != KIND_EVENT or len(det) == 0:
            continue
        etype = str((det.meta or {}).get("event", "event"))
        for r in range(len(det)):
            try:
                z = np.asarray(det.z[r, :3], dtype=np.float64)
                R = np.asarray(det.R[r], dtype=np.float64)
                t = float(det.t[r])
            except (IndexError, TypeError, ValueError):
                bad += 1
                continue
            if (
                z.shape != (3,)
                or not (np.isfinite(z).all() and np.isfinite(R).all() and np.isfinite(t))
                or abs(z[0]) > 90.0
                or R.ndim != 2
            ):
                bad += 1
                continue
            var = np.linalg.eigvalsh(0.5 * (R[:2, :2] + R[:2, :2].T)) if R.shape[0] >= 2 else [0]
            rows.append(
                (
                    t,
                    f"{det.sensor}#{det.seq}#{r}",
                    z,
                    float(np.sqrt(max(float(np.max(var)), 0.0))),
                    etype,
                    det.sensor,
                )
            )
    if not rows:
        return None, bad
    rows.sort(key=lambda x: (x[0], x[1]))
    return {
        "t": np.array([x[0] for x in rows]),
        "key": [x[1] for x in rows],
        "llh": np.array([x[2] for x in rows]),
        "sigma_m": np.array([x[3] for x in rows]),
        "type": [x[4] for x in rows],
        "sensor": [x[5] for x in rows],
    }, bad


def sentence(state: str, site: Site, ev: dict[str, Any]) -> str:
    kind = str(ev.get("event", "event"))
    what = kind[0].upper() + kind[1:]
    if state == "close":
        return f"No further {kind} near {site.name} (incident of {ev['events_in_incident']})"
    where = (
        f"{distance_text(ev['distance_m'])} across {site.name}"
        if ev.get("across_line")
        else f"{distance_text(ev['distance_m'])} from {site.name}"
    )
    if state == "open":
        return f"{what} located {where} ({ev['sensor']})"
    return f"{what} located {where} ({ev['sensor']}), {ev['events_in_incident']} in this incident"
