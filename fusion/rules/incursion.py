"""`incursion`: a confirmed track inside a site or its buffer.

Opens when the track's distance to the site is within buffer_m; holds until it is beyond
buffer_m + exit_margin_m (hysteresis, so a track skimming the buffer does not flap).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fusion.rules.base import Findings, ScanContext, area_param, within_exit_margin
from fusion.rules.text import distance_text, zone_text
from fusion.sites import Site, SiteSet

NAME = "incursion"


class Incursion:
    name = NAME

    def __init__(self, sites: SiteSet) -> None:
        self.sites = sites
        self.exit_m = area_param(sites, NAME, "exit_margin_m")  # NaN: rule off

    def evaluate(self, ctx: ScanContext) -> Findings:
        p = ctx.pairs
        b = self.sites.buffer_m[p.a]
        k = np.flatnonzero(within_exit_margin(ctx, self.sites.buffer_m, self.exit_m))
        return Findings.for_tracks(
            NAME,
            ctx,
            p.i[k],
            p.site[k],
            p.d_now_m[k] <= b[k],
            metrics={
                "distance_m": p.d_now_m[k],
                "inside_site": p.inside[k],
                "boundary_m": p.d_edge_m[k],
            },
        )


def sentence(state: str, site: Site, ev: dict[str, Any]) -> str:
    who = ev["who_text"]
    zone = zone_text(site)
    if state == "close":
        return f"{who} is no longer inside {zone}"
    if ev.get("inside_site"):
        verb = "entered" if state == "open" else "is inside"
        return f"{who} {verb} {site.name}"
    if state == "open":
        return f"{who} entered {zone}"
    return f"{who} is inside {zone}, {distance_text(ev['distance_m'])} from {site.name}"
