"""`approach`: a track outside a site's buffer whose straight-line prediction comes inside it
within the horizon.

For each (track, site) pair outside the buffer and moving faster than min_speed_mps, the
closest point of approach (CPA) of the path p + v t, t in [0, horizon_s], to the site is
compared with buffer_m plus an allowance of k_sigma cross-track standard deviations at the CPA
time (capped at max_slack_m): a target predicted to graze the buffer within its uncertainty
cues, one predicted to miss it clearly does not. The cue carries the closest distance and the
ETA (time until the path enters the buffer, else until the CPA). It holds while the CPA stays
within buffer_m + allowance + exit_margin_m and the track is still outside the buffer; inside
the buffer `incursion` takes over.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fusion.kernels import sites as K
from fusion.rules.base import Findings, ScanContext, area_param
from fusion.rules.text import distance_text, duration_text, site_distance_text
from fusion.sites import Site, SiteSet

NAME = "approach"


class Approach:
    name = NAME

    def __init__(self, sites: SiteSet) -> None:
        self.sites = sites
        self.horizon_s = area_param(sites, NAME, "horizon_s")
        self.k_sigma = area_param(sites, NAME, "k_sigma")
        self.max_slack_m = area_param(sites, NAME, "max_slack_m")
        self.min_speed_mps = area_param(sites, NAME, "min_speed_mps")
        self.exit_m = area_param(sites, NAME, "exit_margin_m")

    def evaluate(self, ctx: ScanContext) -> Findings:
        p = ctx.pairs
        a = p.a
        b = self.sites.buffer_m[a]
        speed = np.hypot(ctx.v[p.i, 0], ctx.v[p.i, 1])
        with np.errstate(invalid="ignore"):
            cand = (
                (self.horizon_s[a] > 0.0)  # False where NaN: rule off
                & (speed >= self.min_speed_mps[a])
                & (p.d_now_m > b)
                & (p.t_cpa_s > 0.0)
            )
        k = np.flatnonzero(cand)
        i, ak, t = p.i[k], a[k], p.t_cpa_s[k]
        # cross-track sigma at the CPA time, from the full 6x6 covariance
        sigma = _cross_track_sigma(ctx, i, t)
        slack = np.minimum(self.k_sigma[ak] * sigma, self.max_slack_m[ak])
        hold = p.d_cpa_m[k] <= b[k] + slack + self.exit_m[ak]
        k, i, ak, t, sigma, slack = k[hold], i[hold], ak[hold], t[hold], sigma[hold], slack[hold]
        bk = b[k]
        enter = p.d_cpa_m[k] <= bk + slack
        # ETA: entry into the buffer where the path reaches it, else the CPA time. Only the
        # cues that emit a body need it, so it is computed for those (see Findings.metrics).
        sites, xy, v, d_cpa = self.sites, ctx.xy, ctx.v, p.d_cpa_m[k]

        def eta_of(sel: np.ndarray) -> np.ndarray:
            eta = t[sel].copy()
            reach = d_cpa[sel] <= bk[sel]
            if reach.any():
                kk = k[sel][reach]
                eta[reach] = sites.entry_times(p, kk, xy, v, bk[sel][reach], t[sel][reach])
            return eta

        miss_sigma = np.where(sigma > 0, (p.d_cpa_m[k] - bk) / np.maximum(sigma, 1e-9), -np.inf)
        # confidence: certain when the path enters the buffer, lower for a graze within sigma
        conf = np.clip(1.0 - 0.25 * np.maximum(miss_sigma, 0.0), 0.3, 1.0)
        return Findings.for_tracks(
            NAME,
            ctx,
            i,
            p.site[k],
            enter,
            metrics={
                "distance_m": p.d_now_m[k],
                "closest_m": p.d_cpa_m[k],
                "eta_s": eta_of,
                "t_cpa_s": t,
                "sigma_cross_m": sigma,
            },
            conf=conf,
        )


def _cross_track_sigma(ctx: ScanContext, i: np.ndarray, t_s: np.ndarray) -> np.ndarray:
    """Std (m) across the velocity of the predicted position t_s ahead (no process noise)."""
    if len(i) == 0:
        return np.zeros(0)
    rows = ctx.rows[i]
    dt = t_s + np.maximum(ctx.now_s - ctx.picture.t_upd_s[rows], 0.0)
    out = np.empty(len(i))
    K.cross_track_sigma(
        np.ascontiguousarray(ctx.picture.P), rows, dt, np.ascontiguousarray(ctx.v[i]), out
    )
    return out


def sentence(state: str, site: Site, ev: dict[str, Any]) -> str:
    who = ev["who_text"]
    if state == "close":
        return f"{who} is no longer approaching {site.name}"
    verb = "is approaching" if state == "open" else "is still approaching"
    closest = ev["closest_m"]
    where = (
        f"into its {site_distance_text(site.buffer_m)} buffer"
        if closest <= site.buffer_m
        else f"to within {distance_text(closest)}"
    )
    return f"{who} {verb} {site.name}: predicted {where} in {duration_text(ev['eta_s'])}"
