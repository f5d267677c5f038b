"""Wording shared by the rules' sentences: distances, durations, the track's description."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from fusion.messages import CLASS_NAMES
from fusion.rules.base import SENSOR_KIND_NAMES

if TYPE_CHECKING:
    from fusion.sites import Site


def distance_text(d_m: float) -> str:
    """`2 km`, `1.5 km`, `850 m`."""
    if d_m >= 1000.0:
        return f"{d_m / 1000.0:.1f}".rstrip("0").rstrip(".") + " km"
    return f"{d_m:.0f} m"


def duration_text(t_s: float) -> str:
    """`45 s`, `4 min 10 s`, `2 h 5 min`."""
    t = int(round(max(t_s, 0.0)))
    if t < 60:
        return f"{t} s"
    if t < 3600:
        m, s = divmod(t, 60)
        return f"{m} min {s} s" if s else f"{m} min"
    h, rem = divmod(t, 3600)
    return f"{h} h {rem // 60} min"


@lru_cache(maxsize=4096)
def site_distance_text(d_m: float) -> str:
    """distance_text of a site's own, fixed distance (its buffer), cached."""
    return distance_text(d_m)


def zone_text(site: Site) -> str:
    """`the 2 km buffer of Port Alpha`, or the site's name when it has no buffer: the zone an
    area rule (incursion, loiter) watches."""
    if site.buffer_m:
        return f"the {site_distance_text(site.buffer_m)} buffer of {site.name}"
    return site.name


@lru_cache(maxsize=1024)
def sensors_text(n_sensors: int, kinds_mask: int) -> str:
    """`radar x2`, or `position reports+radar, 3 sensors` when kinds are mixed."""
    kinds = [name for bit, name in SENSOR_KIND_NAMES if kinds_mask & bit]
    if not kinds:
        return f"{n_sensors} sensor" + ("s" if n_sensors != 1 else "")
    if len(kinds) == 1:
        return f"{kinds[0]} x{n_sensors}"
    return "+".join(kinds) + f", {n_sensors} sensors"


@lru_cache(maxsize=65536)
def track_head(track_id: int, cls: int, ident: str) -> str:
    """`Unidentified surface track 4821`, `Surface track 17 [mmsi:235070762]`: the part of
    a track's description that does not change between its updates (cached)."""
    cls_name = CLASS_NAMES[cls] if cls < len(CLASS_NAMES) else "unknown"
    noun = "track" if cls_name == "unknown" else f"{cls_name} track"
    head = f"{noun} {track_id}"
    if ident:
        return head[0].upper() + head[1:] + f" [{ident}]"
    return f"Unidentified {head}"


def track_text(
    track_id: int, cls: int, ident: str, speed_mps: float, n_sensors: int, kinds_mask: int
) -> str:
    """`Unidentified surface track 4821 (11.2 m/s, radar x2)`, or with its identity:
    `Surface track 17 [mmsi:235070762] (6.0 m/s, position reports x1)`."""
    head = track_head(track_id, cls, ident)
    return f"{head} ({speed_mps:.1f} m/s, {sensors_text(n_sensors, kinds_mask)})"
