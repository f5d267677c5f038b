"""Acoustic arrays: located point events (gunfire, launch, impact) as JSON lines -> `event`.

This module owns the JSON-lines event format and its validation. One object per line:

    {"t_s": 1700000000.25, "event": "gunfire", "lat_deg": 47.1, "lon_deg": 37.5,
     "alt_m": 80.0, "sigma_m": 25.0, "sigma_alt_m": 50.0}

`t_s` may instead be `time`, an ISO 8601 string with a zone (``2024-03-01T12:00:00.25Z``);
`lat`/`lon`/`alt` are accepted for the position; `alt_m` defaults to 0 with `sigma_alt_m`
defaulting to 100 m (an array locating on the ground knows little about height); `sigma_m` is
the horizontal 1-sigma in metres (default 50); other keys are ignored. Each event becomes one
`event` measurement (R diagonal in ENU m^2) whose batch carries ``meta {"event": kind}``.
Bad lines are counted by reason and skipped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from datetime import datetime

from fusion.messages import CLS_UNKNOWN, KIND_EVENT
from sensors.batching import Measurement

EVENT_KINDS = ("gunfire", "launch", "impact", "explosion")
DEFAULT_SIGMA_M, DEFAULT_SIGMA_ALT_M = 50.0, 100.0
OUTCOMES = ("events", "empty", "undecodable", "unknown_event", "out_of_range", "no_time")


def _number(obj: dict, *names: str) -> float | None:
    for n in names:
        if n in obj and obj[n] is not None:
            v = obj[n]
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise TypeError(n)
            return float(v)
    return None


class AcousticDecoder:
    def __init__(self, kinds: Iterable[str] = EVENT_KINDS) -> None:
        self.kinds = frozenset(kinds)
        self.stats: dict[str, int] = dict.fromkeys(OUTCOMES, 0)

    def feed(self, line: bytes, recv_t_s: float) -> list[Measurement]:
        if not line.strip():
            self.stats["empty"] += 1
            return []
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict):
                raise TypeError("not an object")
            kind = obj.get("event")
            t_s = _number(obj, "t_s")
            if t_s is None and isinstance(obj.get("time"), str):
                dt = datetime.fromisoformat(obj["time"].replace("Z", "+00:00"))
                if dt.tzinfo is None:
                    raise ValueError("time without a zone")
                t_s = dt.timestamp()
            lat, lon = _number(obj, "lat_deg", "lat"), _number(obj, "lon_deg", "lon")
            alt = _number(obj, "alt_m", "alt")
            sigma = _number(obj, "sigma_m")
            sigma_alt = _number(obj, "sigma_alt_m")
        except (ValueError, TypeError, UnicodeDecodeError):
            self.stats["undecodable"] += 1
            return []
        if kind not in self.kinds:
            self.stats["unknown_event"] += 1
            return []
        if t_s is None or not math.isfinite(t_s) or t_s < 0:
            self.stats["no_time"] += 1
            return []
        sigma = DEFAULT_SIGMA_M if sigma is None else sigma
        sigma_alt = DEFAULT_SIGMA_ALT_M if sigma_alt is None else sigma_alt
        alt = 0.0 if alt is None else alt
        values = (lat, lon, alt, sigma, sigma_alt)
        if (
            lat is None
            or lon is None
            or not all(math.isfinite(v) for v in values)  # type: ignore[arg-type]
            or not (-90 <= lat <= 90 and -180 <= lon <= 180 and abs(alt) < 1e5)
            or not (0 < sigma < 1e6 and 0 < sigma_alt < 1e6)
        ):
            self.stats["out_of_range"] += 1
            return []
        self.stats["events"] += 1
        return [
            Measurement(
                KIND_EVENT,
                t_s,
                (lat, lon, alt),
                (sigma * sigma, sigma * sigma, sigma_alt * sigma_alt),
                b"",
                CLS_UNKNOWN,
                event=kind,
            )
        ]


def decode_events(
    lines: Iterable[tuple[float, bytes]], decoder: AcousticDecoder | None = None
) -> Iterator[Measurement]:
    dec = decoder or AcousticDecoder()
    for t, line in lines:
        yield from dec.feed(line, t)
