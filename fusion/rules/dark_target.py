"""`dark_target`: a confirmed track without cooperative identity inside a zone that requires
one (a maritime corridor, an air exclusion zone).

Tracks need min_hits updates first, so a fresh radar plot does not cue before the tracker has
had a chance to associate the vessel's AIS reports. Opens inside buffer_m, holds until
buffer_m + exit_margin_m or until the track gains an identity.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fusion.rules.base import Findings, ScanContext, area_param, within_exit_margin
from fusion.sites import Site, SiteSet

NAME = "dark_target"


class DarkTarget:
    name = NAME

    def __init__(self, sites: SiteSet) -> None:
        self.sites = sites
        self.exit_m = area_param(sites, NAME, "exit_margin_m")
        self.min_hits = area_param(sites, NAME, "min_hits")
        needs = np.array([sites.sites[j].requires_ident for j in sites.area_site], dtype=bool)
        self.exit_m[~needs] = np.nan

    def evaluate(self, ctx: ScanContext) -> Findings:
        p = ctx.pairs
        rows = ctx.rows[p.i]
        b = self.sites.buffer_m[p.a]
        dark = ctx.picture.ident[rows] == b""
        with np.errstate(invalid="ignore"):  # NaN min_hits where the rule is off: False
            hits_ok = ctx.picture.hits[rows] >= self.min_hits[p.a]
        hold = dark & hits_ok & within_exit_margin(ctx, self.sites.buffer_m, self.exit_m)
        k = np.flatnonzero(hold)
        return Findings.for_tracks(
            NAME,
            ctx,
            p.i[k],
            p.site[k],
            p.d_now_m[k] <= b[k],
            metrics={"distance_m": p.d_now_m[k]},
        )


def sentence(state: str, site: Site, ev: dict[str, Any]) -> str:
    who = ev["who_text"]
    if state == "close":
        return f"{who} has left {site.name} or shows an identity"
    verb = "entered" if state == "open" else "is in"
    return f"{who} {verb} {site.name}, which requires cooperative identity, without one"
