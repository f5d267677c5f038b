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


# Memory keys: line number (position in LineCrossing.lines) * _LINE_KEY + track id +
# _ID_OFFSET, so the sorted keys run line by line, tracks in id order (ids within +-2**47)
_LINE_KEY = 1 << 48
_ID_OFFSET = 1 << 47


class LineCrossing:
    name = NAME

    def __init__(self, sites: SiteSet) -> None:
        self.sites = sites
        self.lines = [
            (n, int(j)) for n, j in enumerate(sites.line_site) if NAME in sites.sites[j].rules
        ]
        prm = [sites.sites[j].rules[NAME] for _, j in self.lines]
        self.line_site = np.array([j for _, j in self.lines], dtype=np.int64)
        self.hysteresis_m = np.array([p["hysteresis_m"] for p in prm], dtype=np.float64)
        self.k_sigma = np.array([p["k_sigma"] for p in prm], dtype=np.float64)
        self.confirm_scans = np.array([p["confirm_scans"] for p in prm], dtype=np.float64)
        # per (line, track): side +1 protected, -1 far side, 0 not yet believed; crossed: a
        # cue holds. One memory for all lines, so a scan looks it up once.
        self.memory = PairMemory(
            {"side": np.int8(0), "pend": np.int8(0), "pend_n": np.int16(0), "crossed": False,
             "t_seen": 0.0, "t_cross": 0.0, "s": 0.0, "sigma": 0.0}
        )  # fmt: skip

    def evaluate(self, ctx: ScanContext) -> Findings:
        if not self.lines:
            return Findings.for_tracks(NAME, ctx, [], [], [])
        now = ctx.now_s
        parts = [
            self.sites.line_sides(n, ctx.xy, band_m=self.sites.sites[j].rules[NAME]["band_m"])
            for n, j in self.lines
        ]
        idx = np.concatenate([p[0] for p in parts])
        s = np.concatenate([p[1] for p in parts])
        u = np.concatenate([p[2] for p in parts])
        q = np.repeat(np.arange(len(self.lines), dtype=np.int64), [len(p[0]) for p in parts])
        sigma = ctx.sigma_along(idx, u)
        thr = np.maximum(self.hysteresis_m[q], self.k_sigma[q] * sigma)
        belief = np.where(s > thr, 1, np.where(s < -thr, -1, 0)).astype(np.int8)
        memory = self.memory
        codes = q * _LINE_KEY + (ctx.ids[idx] + _ID_OFFSET)
        looked_up = memory.lookup(codes)
        old = memory.values(*looked_up)
        # a change of side must persist for confirm_scans scans; the first belief is free
        change = (belief != 0) & (belief != old["side"])
        pend_n = np.where(change & (old["pend"] == belief), old["pend_n"] + 1, 1)
        pend_n = np.where(change, pend_n, 0).astype(np.int16)
        pend = np.where(change, belief, 0).astype(np.int8)
        flip = change & ((old["side"] == 0) | (pend_n >= self.confirm_scans[q]))
        side = np.where(flip, belief, old["side"]).astype(np.int8)
        pend[flip] = 0
        pend_n[flip] = 0
        crossing = flip & (old["side"] == -1) & (belief == 1)
        crossed = (old["crossed"] | crossing) & (side == 1)
        t_cross = np.where(crossing, now, old["t_cross"])
        memory.put(
            codes,
            {"side": side, "pend": pend, "pend_n": pend_n, "crossed": crossed,
             "t_seen": np.full(len(idx), now), "t_cross": t_cross, "s": s, "sigma": sigma},
            looked_up,
        )  # fmt: skip
        # every crossed track still in the picture, in its line's band or beyond it
        cols = memory.cols
        mine = np.flatnonzero(cols["crossed"])
        line_no, track_id = np.divmod(memory.codes[mine], _LINE_KEY)
        rows = ctx.index_of(track_id - _ID_OFFSET)
        live = rows >= 0
        slots = mine[live]
        rows = rows[live]
        line_no = line_no[live]
        cols["t_seen"][slots] = now
        # s is this scan's only for the (line, track) pairs in the band now
        band = np.zeros(len(memory), bool)
        band[memory.lookup(codes)[1]] = True
        in_band = band[slots]
        cross_now = in_band & (cols["t_cross"][slots] == now)
        s_out = np.where(in_band, cols["s"][slots], np.nan)
        sigma_out = cols["sigma"][slots]
        since = now - cols["t_cross"][slots]
        keep = now - cols["t_seen"] <= _FORGET_S
        if not keep.all():
            memory.keep(keep)
        conf = np.clip(
            np.where(np.isnan(s_out), 1.0, s_out / np.maximum(3.0 * sigma_out, 1e-9)), 0.5, 1.0
        )
        return Findings.for_tracks(
            NAME,
            ctx,
            rows,
            self.line_site[line_no],
            cross_now,
            metrics={"beyond_m": s_out, "sigma_m": sigma_out, "since_crossing_s": since},
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
