"""What every rule shares: the scan context it reads, the findings it returns, pair memory.

A rule reads one `ScanContext` (the confirmed tracks as arrays, predicted to the scan time,
their (track, area) pairs from fusion.sites, the scan's events and sensor states) and returns
`Findings`: the (site, subject) pairs for which its condition holds now, each marked `enter`
when the stricter opening condition also holds. fusion.cues turns that into the lifecycle:
an open cue stays open while its condition holds (hysteresis), a new cue opens only on
`enter`. Rules never know which cues are open.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fusion.kernels import sites as K
from fusion.messages import Detections
from fusion.picture import TrackPicture
from fusion.sites import AreaPairs, SiteSet

# Track statuses the rules look at (messages.TRACK_STATUS_NAMES): confirmed and coasting.
RULE_STATUSES = (2, 3)

# Bits of TrackPicture.sensor_kinds and how the cue text names them.
SENSOR_KIND_NAMES = ((1, "position reports"), (2, "radar"), (4, "bearing"))


@dataclass(eq=False)
class ScanContext:
    """One scan's inputs, prepared once for all rules. Arrays are over the n tracks the rules
    consider (rows `rows` of the picture), positions predicted to `now_s`."""

    sites: SiteSet
    now_s: float
    picture: TrackPicture
    rows: np.ndarray  # (n,) int64 picture rows
    ids: np.ndarray  # (n,) int64 track ids
    xy: np.ndarray  # (n, 2) ENU m at now_s
    v: np.ndarray  # (n, 2) m/s
    Pxy: np.ndarray  # (n, 2, 2) horizontal position covariance at now_s, m^2
    pairs: AreaPairs
    events: list[Detections] = field(default_factory=list)
    sensor_states: dict[str, dict[str, Any]] = field(default_factory=dict)
    _order: np.ndarray | None = None

    @property
    def n(self) -> int:
        return int(self.ids.shape[0])

    def index_of(self, track_ids: np.ndarray) -> np.ndarray:
        """Row in this context (0..n-1) of each track id, -1 when absent."""
        if self._order is None:
            self._order = np.argsort(self.ids, kind="stable")
        sorted_ids = self.ids[self._order]
        k = np.searchsorted(sorted_ids, track_ids)
        k = np.minimum(k, max(len(sorted_ids) - 1, 0))
        found = (
            (len(sorted_ids) > 0) & (sorted_ids[k] == track_ids)
            if len(sorted_ids)
            else (np.zeros(len(track_ids), bool))
        )
        return np.where(found, self._order[k] if len(sorted_ids) else -1, -1)

    def sigma_along(self, i: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Standard deviation (m) of track i's position along unit vectors u (k, 2)."""
        out = np.empty(len(i))
        K.sigma_along(self.Pxy, np.asarray(i, np.int64), np.ascontiguousarray(u), out)
        return out


@dataclass(eq=False)
class Findings:
    """The (site, subject) pairs for which one rule's condition holds at this scan.

    Track rules give `i` (rows of the ScanContext) and subjects = track ids; event and sensor
    rules give subjects as strings and a small `info` dict per finding with pos_llh, vel,
    sigma_m and their evidence. `metrics` are per-finding numbers for evidence and text."""

    rule: str
    site: np.ndarray  # (k,) int64 site index
    subject: list[Any]  # (k,) hashable: track id (int) or a string key
    enter: np.ndarray  # (k,) bool: the opening condition holds too
    i: np.ndarray | None = None  # (k,) int64 context rows (track rules)
    # per-finding numbers; a callable (selected findings -> values) is computed only for the
    # findings whose cue emits a body this scan
    metrics: dict[str, Any] = field(default_factory=dict)
    conf: np.ndarray | None = None  # (k,) rule's own confidence factor in [0, 1]
    info: list[dict[str, Any]] | None = None  # (k,) event and sensor rules

    def __len__(self) -> int:
        return int(self.site.shape[0])

    @staticmethod
    def for_tracks(rule: str, ctx: ScanContext, i, site, enter, metrics=None, conf=None):
        i = np.asarray(i, dtype=np.int64)
        return Findings(
            rule=rule,
            site=np.asarray(site, dtype=np.int64),
            subject=ctx.ids[i].tolist(),
            enter=np.asarray(enter, dtype=bool),
            i=i,
            metrics=metrics or {},
            conf=conf,
        )


def area_param(sites: SiteSet, rule: str, key: str) -> np.ndarray:
    """(A,) parameter of `rule` per area (NaN where the rule is off for that area)."""
    out = np.full(len(sites.area_site), np.nan)
    for a, j in enumerate(sites.area_site):
        params = sites.sites[j].rules.get(rule)
        if params is not None:
            out[a] = params[key]
    return out


def within_exit_margin(ctx: ScanContext, buffer_m: np.ndarray, exit_m: np.ndarray) -> np.ndarray:
    """Mask over `ctx.pairs`: the track is within its area's buffer plus the rule's exit margin
    (per area, NaN where the rule is off, which gives False). An open cue holds while this is
    true, so a track skimming the buffer edge does not open and close it every scan."""
    p = ctx.pairs
    with np.errstate(invalid="ignore"):
        return p.d_now_m <= buffer_m[p.a] + exit_m[p.a]


class PairMemory:
    """Per-(track, site) state kept across scans as sorted int64 codes plus value columns,
    so that a scan reads and writes it for all its pairs at once."""

    def __init__(self, columns: dict[str, Any]) -> None:
        self.codes = np.zeros(0, np.int64)
        self.defaults = columns
        self.cols = {k: np.zeros(0, np.asarray(v).dtype) for k, v in columns.items()}

    @staticmethod
    def code(track_id: np.ndarray, site: np.ndarray) -> np.ndarray:
        return np.asarray(track_id, dtype=np.int64) * 65536 + np.asarray(site, dtype=np.int64)

    @staticmethod
    def split(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return codes // 65536, codes % 65536

    def lookup(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(found (k,) bool, slot (k,) int64) of each code."""
        k = np.searchsorted(self.codes, codes)
        kk = np.minimum(k, max(len(self.codes) - 1, 0))
        found = (
            (k < len(self.codes)) & (self.codes[kk] == codes)
            if len(self.codes)
            else (np.zeros(len(codes), bool))
        )
        return found, kk

    def get(self, codes: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(found, values): values of each code, defaults where absent."""
        found, slot = self.lookup(codes)
        return found, self.values(found, slot)

    def values(self, found: np.ndarray, slot: np.ndarray) -> dict[str, np.ndarray]:
        """Values at a lookup's result (found, slot), defaults where not found."""
        vals = {}
        sel = slot[found]
        for name, col in self.cols.items():
            v = np.full(len(found), self.defaults[name], dtype=col.dtype)
            v[found] = col[sel]
            vals[name] = v
        return vals

    def put(
        self,
        codes: np.ndarray,
        values: dict[str, np.ndarray],
        looked_up: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        """Write values for codes (inserting new codes), codes unique. `looked_up` is
        lookup(codes) when the caller already has it (the memory unchanged since)."""
        found, slot = self.lookup(codes) if looked_up is None else looked_up
        sel = slot[found]
        for name, col in self.cols.items():
            col[sel] = values[name][found]
        new = ~found
        if new.any():
            # merge the new codes in (none is present yet): inserted at their sorted places
            add = codes[new]
            o = np.argsort(add, kind="stable")
            add = add[o]
            at = np.searchsorted(self.codes, add)
            self.codes = np.insert(self.codes, at, add)
            for name, col in self.cols.items():
                vals = values[name][new][o]
                col = col.astype(np.result_type(col, vals), copy=False)  # as concatenate would
                self.cols[name] = np.insert(col, at, vals)

    def keep(self, mask: np.ndarray) -> None:
        """Drop the entries where mask is False."""
        self.codes = self.codes[mask]
        for name in self.cols:
            self.cols[name] = self.cols[name][mask]

    def __len__(self) -> int:
        return int(self.codes.shape[0])
