"""`line_crossing`: a confirmed track that crossed a line of contact toward its protected side.

Per line and track, the rule remembers the last side it believes the track is on. A side is
believed only when the signed distance s (positive on the protected side) exceeds
max(hysteresis_m, k_sigma * sigma), sigma the track's position standard deviation across the
line; in between, the belief stays as it was. A crossing is a belief changing from the far
side to the protected side: then the cue opens. It holds while the belief stays protected
(even past band_m from the line, while the track lives) and ends once the track is believed
back on the far side. A track first seen on the protected side never cues, and a track
wandering along the line under measurement noise never reaches belief on both sides, so it
opens at most one cue.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fusion.rules.base import Findings, PairMemory, ScanContext
from fusion.rules.text import distance_text
from fusion.sites import Site, SiteSet

NAME = "line_crossing"
_FORGET_S = 300.0  # memory of tracks not seen for this long is dropped


class LineCrossing:
    name = NAME

    def __init__(self, sites: SiteSet) -> None:
        self.sites = sites
        self.lines = [
            (n, int(j)) for n, j in enumerate(sites.line_site) if NAME in sites.sites[j].rules
        ]
        # per line: side +1 protected, -1 far side, 0 not yet believed; crossed: a cue holds
        self.memory = {j: self._new_memory() for _, j in self.lines}

    @staticmethod
    def _new_memory() -> PairMemory:
        return PairMemory(
            {"side": np.int8(0), "pend": np.int8(0), "pend_n": np.int16(0), "crossed": False,
             "t_seen": 0.0, "t_cross": 0.0, "s": 0.0, "sigma": 0.0}
        )  # fmt: skip

    def evaluate(self, ctx: ScanContext) -> Findings:
        found_i, found_site, found_enter = [], [], []
        found_s, found_sigma, found_since = [], [], []
        band_mask = np.zeros(ctx.n, bool)  # scratch: the tracks in the current line's band
        for n, j in self.lines:
            prm = self.sites.sites[j].rules[NAME]
            idx, s, u = self.sites.line_sides(n, ctx.xy, band_m=prm["band_m"])
            sigma = ctx.sigma_along(idx, u)
            thr = np.maximum(prm["hysteresis_m"], prm["k_sigma"] * sigma)
            belief = np.where(s > thr, 1, np.where(s < -thr, -1, 0)).astype(np.int8)
            memory = self.memory[j]
            codes = ctx.ids[idx]  # one memory per line: keyed by the track id alone
            found, slot = memory.lookup(codes)
            old = memory.values(found, slot)
            # a change of side must persist for confirm_scans scans; the first belief is free
            change = (belief != 0) & (belief != old["side"])
            pend_n = np.where(change & (old["pend"] == belief), old["pend_n"] + 1, 1)
            pend_n = np.where(change, pend_n, 0).astype(np.int16)
            pend = np.where(change, belief, 0).astype(np.int8)
            flip = change & ((old["side"] == 0) | (pend_n >= prm["confirm_scans"]))
            side = np.where(flip, belief, old["side"]).astype(np.int8)
            pend[flip] = 0
            pend_n[flip] = 0
            crossing = flip & (old["side"] == -1) & (belief == 1)
            crossed = (old["crossed"] | crossing) & (side == 1)
            t_cross = np.where(crossing, ctx.now_s, old["t_cross"])
            memory.put(
                codes,
                {"side": side, "pend": pend, "pend_n": pend_n, "crossed": crossed,
                 "t_seen": np.full(len(idx), ctx.now_s),
                 "t_cross": t_cross, "s": s, "sigma": sigma},
                (found, slot),
            )  # fmt: skip
            # every crossed track of this line still in the picture, in the band or beyond it
            cols = memory.cols
            mine = np.flatnonzero(cols["crossed"])
            rows = ctx.index_of(memory.codes[mine])
            live = rows >= 0
            slots = mine[live]
            rows = rows[live]
            cols["t_seen"][slots] = ctx.now_s
            # s and sigma are this scan's only for the tracks in the band
            band_mask[idx] = True
            in_band = band_mask[rows]
            band_mask[idx] = False  # clean for the next line
            cross_now = in_band & (cols["t_cross"][slots] == ctx.now_s)
            found_i.append(rows)
            found_site.append(np.full(len(rows), j))
            found_enter.append(cross_now)
            found_s.append(np.where(in_band, cols["s"][slots], np.nan))
            found_sigma.append(cols["sigma"][slots])
            found_since.append(ctx.now_s - cols["t_cross"][slots])
            keep = ctx.now_s - cols["t_seen"] <= _FORGET_S
            if not keep.all():
                memory.keep(keep)
        if not found_i:
            return Findings.for_tracks(NAME, ctx, [], [], [])
        s = np.concatenate(found_s)
        sigma = np.concatenate(found_sigma)
        conf = np.clip(np.where(np.isnan(s), 1.0, s / np.maximum(3.0 * sigma, 1e-9)), 0.5, 1.0)
        return Findings.for_tracks(
            NAME,
            ctx,
            np.concatenate(found_i),
            np.concatenate(found_site),
            np.concatenate(found_enter),
            metrics={
                "beyond_m": s,
                "sigma_m": sigma,
                "since_crossing_s": np.concatenate(found_since),
            },
            conf=conf,
        )


def sentence(state: str, site: Site, ev: dict[str, Any]) -> str:
    who = ev["who_text"]
    if state == "close":
        return f"{who} is back across {site.name} or no longer tracked"
    beyond = ev.get("beyond_m")
    where = "" if beyond is None else f", {distance_text(beyond)} beyond it"
    verb = "crossed" if state == "open" else "remains across"
    return f"{who} {verb} {site.name} toward the protected side{where}"
