"""Kinematic plausibility of cooperative reports: a position an identity cannot have reached.

A transponder that reports a valid-looking but impossible position (the Solent recording has a
vessel jumping 3,800 km east for one report and back) would start a false track and corrupt a
true one. This filter keeps, per identity, the last accepted report and rejects a report whose
great-circle distance from it implies a speed above `max_speed_mps`. After `reset_after`
consecutive rejections that agree with each other the earlier history is taken to be the bad
one and the filter accepts again, so one bad first report cannot lock an identity out.
"""

from __future__ import annotations

import math

EARTH_RADIUS_M = 6_371_008.8


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


class JumpFilter:
    """Rejects reports implying more than `max_speed_mps` (plus `slack_m` for position noise)."""

    def __init__(
        self,
        max_speed_mps: float,
        *,
        slack_m: float = 500.0,
        reset_after: int = 3,
        max_idents: int = 100_000,
    ) -> None:
        self.max_idents = int(max_idents)
        self.max_speed_mps = float(max_speed_mps)
        self.slack_m = float(slack_m)
        self.reset_after = int(reset_after)
        # ident -> (t_s, lat, lon, consecutive rejects, last rejected (t, lat, lon) or None)
        self._last: dict[bytes, tuple[float, float, float, int, tuple | None]] = {}

    def accept(self, ident: bytes, t_s: float, lat_deg: float, lon_deg: float) -> bool:
        prev = self._last.get(ident)
        if prev is None:
            if len(self._last) >= self.max_idents:
                self._forget_oldest()
            self._last[ident] = (t_s, lat_deg, lon_deg, 0, None)
            return True
        t0, lat0, lon0, rejects, last_bad = prev
        limit_m = self.max_speed_mps * abs(t_s - t0) + self.slack_m
        if haversine_m(lat0, lon0, lat_deg, lon_deg) <= limit_m:
            self._last[ident] = (t_s, lat_deg, lon_deg, 0, None)
            return True
        consistent = (
            last_bad is None
            or haversine_m(last_bad[1], last_bad[2], lat_deg, lon_deg)
            <= self.max_speed_mps * abs(t_s - last_bad[0]) + self.slack_m
        )
        rejects = rejects + 1 if consistent else 1
        if rejects >= self.reset_after:
            self._last[ident] = (t_s, lat_deg, lon_deg, 0, None)
            return True
        self._last[ident] = (t0, lat0, lon0, rejects, (t_s, lat_deg, lon_deg))
        return False

    def _forget_oldest(self) -> None:
        # A long-running adapter meets ever new identities: keep memory bounded by dropping
        # the half heard from longest ago (a forgotten identity just starts afresh).
        by_age = sorted(self._last.items(), key=lambda kv: kv[1][0])
        for ident, _ in by_age[: len(by_age) // 2 + 1]:
            del self._last[ident]
