"""`loiter`: a track that has stayed inside a site (or its buffer) longer than dwell_s.

Per (track, site) the rule remembers when the current stay began; a stay continues while the
track is within buffer_m + exit_margin_m, forgiving gaps (the track outside, coasting out of
the picture) up to grace_s. The cue opens once the stay reaches dwell_s with the track inside
the buffer, and holds while the stay goes on.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fusion.rules.base import Findings, PairMemory, ScanContext, area_param, within_exit_margin
from fusion.rules.text import duration_text, zone_text
from fusion.sites import Site, SiteSet

NAME = "loiter"


class Loiter:
    name = NAME

    def __init__(self, sites: SiteSet) -> None:
        self.sites = sites
        self.dwell_s = area_param(sites, NAME, "dwell_s")
        self.grace_s = area_param(sites, NAME, "grace_s")
        self.exit_m = area_param(sites, NAME, "exit_margin_m")
        self.grace_by_site = np.full(len(sites), np.nan)
        self.grace_by_site[sites.area_site] = self.grace_s
        self.memory = PairMemory({"t_first": 0.0, "t_last": 0.0})

    def evaluate(self, ctx: ScanContext) -> Findings:
        p = ctx.pairs
        b = self.sites.buffer_m[p.a]
        k = np.flatnonzero(within_exit_margin(ctx, self.sites.buffer_m, self.exit_m))
        codes = PairMemory.code(ctx.ids[p.i[k]], p.site[k])
        looked_up = self.memory.lookup(codes)
        found = looked_up[0]
        old = self.memory.values(*looked_up)
        resumed = found & (ctx.now_s - old["t_last"] <= self.grace_s[p.a[k]])
        t_first = np.where(resumed, old["t_first"], ctx.now_s)
        self.memory.put(
            codes, {"t_first": t_first, "t_last": np.full(len(k), ctx.now_s)}, looked_up
        )
        # forget stays whose grace has run out
        _, site = PairMemory.split(self.memory.codes)
        alive = ctx.now_s - self.memory.cols["t_last"] <= self.grace_by_site[site]
        if not alive.all():
            self.memory.keep(alive)
        dwell = ctx.now_s - t_first
        hold = dwell >= self.dwell_s[p.a[k]]
        k, dwell = k[hold], dwell[hold]
        return Findings.for_tracks(
            NAME,
            ctx,
            p.i[k],
            p.site[k],
            p.d_now_m[k] <= b[k],
            metrics={"dwell_s": dwell, "distance_m": p.d_now_m[k]},
        )


def sentence(state: str, site: Site, ev: dict[str, Any]) -> str:
    who = ev["who_text"]
    zone = zone_text(site)
    if state == "close":
        return f"{who} stopped loitering in {zone}"
    verb = "has loitered" if state == "open" else "is still loitering,"
    return f"{who} {verb} {duration_text(ev['dwell_s'])} in {zone}"
