"""Sensor liveness from heartbeats: alive, late or lost per sensor.

This module owns the liveness rule; the service feeds it heartbeats and detection batches, and
the rules (sensor_outage), the `status` topic and the metrics read it. Times are the receipt
clock (`now_s` passed in), so a sensor with a wrong clock is still judged by when we heard it.

A sensor is `alive` when a heartbeat arrived within `late_s`, `late` within `lost_s`, `lost`
after that. A heartbeat reporting status `down` makes it `lost` at once. Detections count as a
sign of life only for sensors that have never sent a heartbeat (adapters that do not send
them would otherwise look lost forever).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

STATES = ("alive", "late", "lost")


@dataclass
class SensorLiveness:
    sensor: str
    last_hb_s: float | None = None
    last_det_s: float | None = None
    reported: str = "ok"  # the adapter's own status: ok | degraded | down
    site: tuple[float, float, float] | None = None
    coverage: dict[str, Any] = field(default_factory=dict)
    heartbeats: int = 0


class Liveness:
    def __init__(self, late_s: float = 5.0, lost_s: float = 30.0) -> None:
        if not 0 < late_s < lost_s:
            raise ValueError("need 0 < late_s < lost_s")
        self.late_s = float(late_s)
        self.lost_s = float(lost_s)
        self.sensors: dict[str, SensorLiveness] = {}

    def _get(self, sensor: str) -> SensorLiveness:
        s = self.sensors.get(sensor)
        if s is None:
            s = self.sensors[sensor] = SensorLiveness(sensor)
        return s

    def heartbeat(
        self,
        sensor: str,
        now_s: float,
        status: str = "ok",
        site: tuple[float, float, float] | None = None,
        coverage: dict[str, Any] | None = None,
    ) -> None:
        s = self._get(sensor)
        s.last_hb_s = now_s
        s.reported = status
        s.heartbeats += 1
        if site is not None:
            s.site = tuple(site)
        if coverage:
            s.coverage = dict(coverage)

    def detections(self, sensor: str, now_s: float) -> None:
        self._get(sensor).last_det_s = now_s

    def state(self, sensor: str, now_s: float) -> str:
        s = self.sensors.get(sensor)
        if s is None:
            return "lost"
        if s.reported == "down":
            return "lost"
        last = s.last_hb_s if s.last_hb_s is not None else s.last_det_s
        if last is None:
            return "lost"
        age = now_s - last
        if age <= self.late_s:
            return "alive"
        if age <= self.lost_s:
            return "late"
        return "lost"

    def states(self, now_s: float) -> dict[str, str]:
        return {name: self.state(name, now_s) for name in sorted(self.sensors)}

    def counts(self, now_s: float) -> dict[str, int]:
        out = dict.fromkeys(STATES, 0)
        for st in self.states(now_s).values():
            out[st] += 1
        return out

    def report(self, now_s: float) -> dict[str, dict[str, Any]]:
        """Per sensor: state, reported status, ages, site and coverage (the `status` topic and
        the rules' sensor_states)."""
        out = {}
        for name in sorted(self.sensors):
            s = self.sensors[name]
            out[name] = {
                "state": self.state(name, now_s),
                "reported": s.reported,
                "last_hb_s": s.last_hb_s,
                "hb_age_s": None if s.last_hb_s is None else now_s - s.last_hb_s,
                "last_det_s": s.last_det_s,
                "site": list(s.site) if s.site is not None else None,
                "coverage": s.coverage,
            }
        return out
