"""Synthetic sensors driven by a scenario: radar, AIS, ADS-B and acoustic nodes.

This module owns how the simulated sensors observe a `fusion.scenario.Scenario`: coverage,
detection probability, noise, clutter, reporting intervals, identities switched off, and the
latency from measurement to delivery. It yields the same wire messages (`Detections`,
`Heartbeat`) a real adapter sends, so the tracker, the service and the replay cannot tell them
apart. Everything is drawn from generators seeded by (scenario seed, sensor index): the same
scenario gives the same messages, bit for bit.

Three ways to use it:
- in-process: ``SimSensors(scenario).messages()`` yields messages in measurement-time order;
- as a feed: ``write_feed(scenario, path)`` records the encoded frames with their arrival times;
- live: ``realtime(scenario, speed=4.0)`` yields batches at wall-clock pace.
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fusion.geo import LocalFrame, enu_to_aer
from fusion.messages import (
    IDENT_DTYPE,
    KIND_EVENT,
    KIND_POLAR,
    KIND_POS,
    Detections,
    Heartbeat,
)
from fusion.scenario.model import Scenario, SensorSpec

HEARTBEAT_S = 1.0  # every sensor heartbeats this often (scenario seconds)
REPORT_BATCH_S = 1.0  # AIS / ADS-B receivers forward what they heard once a second


@dataclass(eq=False)
class Timed:
    """A message with the scenario times that order it: `meas_t_s` (last measurement in it,
    epoch s) and `arrival_t_s` (when it reaches fusion, epoch s)."""

    meas_t_s: float
    arrival_t_s: float
    msg: Detections | Heartbeat


class SimSensors:
    """The scenario's sensors. `seed` overrides the scenario's seed for the noise draws."""

    def __init__(self, scenario: Scenario, seed: int | None = None) -> None:
        self.scenario = scenario
        self.seed = scenario.seed if seed is None else int(seed)
        self.frame: LocalFrame = scenario.theatre.frame
        self._timed: list[Timed] | None = None
        self.counts: dict[str, int] = {}

    # ------------------------------------------------------------------ public
    def timed(self, order: str = "measurement") -> list[Timed]:
        """Every message with its times, sorted by `order` ("measurement" or "arrival");
        ties break by sensor id and sequence number, so the order is total."""
        if self._timed is None:
            out: list[Timed] = []
            for i, spec in enumerate(self.scenario.sensors):
                rng = np.random.default_rng([self.seed, i, 7])
                out.extend(self._simulate(spec, rng))
            self._timed = out
        key = (
            (lambda m: (m.meas_t_s, _sid(m.msg), _seq(m.msg)))
            if order == "measurement"
            else (lambda m: (m.arrival_t_s, _sid(m.msg), _seq(m.msg)))
        )
        return sorted(self._timed, key=key)

    def messages(self, order: str = "measurement") -> Iterator[Detections | Heartbeat]:
        """Detections and Heartbeats in time order (see `timed`)."""
        for m in self.timed(order):
            yield m.msg

    def sensor_sites_llh(self) -> dict[str, tuple[float, float, float]]:
        return {spec.id: self._site_llh(spec) for spec in self.scenario.sensors}

    # ------------------------------------------------------------------ simulation
    def _simulate(self, spec: SensorSpec, rng: np.random.Generator) -> list[Timed]:
        sim = {
            "radar": self._radar,
            "ais": self._reports,
            "adsb": self._reports,
            "acoustic": self._acoustic,
        }[spec.kind]
        dets = sim(spec, rng)
        self.counts[spec.id] = sum(len(m.msg) for m in dets)
        return dets + self._heartbeats(spec)

    def _site_llh(self, spec: SensorSpec) -> tuple[float, float, float]:
        # A sensor's site is (e, n) on the map and its height above the ellipsoid.
        e, n, h = spec.site
        llh = self.frame.to_geodetic(np.asarray([[e, n, 0.0]], dtype=np.float64))[0]
        return float(llh[0]), float(llh[1]), float(h)

    def _heartbeats(self, spec: SensorSpec) -> list[Timed]:
        sc = self.scenario
        site = self._site_llh(spec)
        out = []
        for k in range(int(sc.duration_s // HEARTBEAT_S) + 1):
            t = sc.t0_s + k * HEARTBEAT_S
            hb = Heartbeat(
                sensor=spec.id,
                t_s=t,
                status="ok",
                site=site,
                coverage={"max_range_m": float(spec.max_range_m)},
            )
            out.append(Timed(t, t + spec.latency_s, hb))
        return out

    def _radar(self, spec: SensorSpec, rng: np.random.Generator) -> list[Timed]:
        """A rotating radar: one batch per scan, each plot stamped with the time the beam
        crossed it. Plots are (range, azimuth, elevation) in the radar's own ENU frame."""
        sc = self.scenario
        site = self._site_llh(spec)
        M, c = self.frame.sensor_transform(np.asarray(site, dtype=np.float64))
        T = spec.period_s
        n_scans = int(sc.duration_s // T)
        t_scan = np.arange(n_scans) * T
        two_pi = 2.0 * math.pi
        # The antenna's azimuth at scan start is a fixed random phase per radar.
        phase = float(rng.uniform(0.0, two_pi))
        n_tg = len(sc.targets)
        t_det = np.zeros((n_tg, n_scans))
        aer = np.zeros((n_tg, n_scans, 3))
        seen = np.zeros((n_tg, n_scans), dtype=bool)
        for k, tg in enumerate(sc.targets):
            ok = tg.traj.alive(t_scan) & tg.traj.alive(t_scan + T)
            if not ok.any():
                continue
            # When does the beam cross the target? From its azimuth at scan start, then
            # re-evaluated at that time (a target moves little in one scan).
            p0, _ = tg.traj.at(t_scan)
            az0 = enu_to_aer(p0 @ M.T + c)[:, 1]
            t_k = t_scan + ((az0 - phase) % two_pi) / two_pi * T
            p, _ = tg.traj.at(t_k)
            aer[k] = enu_to_aer(p @ M.T + c)
            t_det[k] = t_k
            seen[k] = ok & (aer[k, :, 0] <= spec.max_range_m) & (aer[k, :, 2] >= spec.min_el_rad)
        # Pd is drawn for every (target, scan) so the draws do not depend on coverage.
        pd = np.array([spec.pd.get(tg.kind, 0.9) for tg in sc.targets])[:, None]
        detected = seen & (rng.uniform(size=(n_tg, n_scans)) <= pd)
        # Radars that classify (micro-Doppler, for air targets) label a plot with its class
        # with the given probability, else "unknown"; clutter is always unknown.
        classify = spec.options.get("classify", {})
        p_cls = np.array([float(classify.get(tg.kind, 0.0)) for tg in sc.targets])[:, None]
        labelled = rng.uniform(size=(n_tg, n_scans)) < p_cls
        wire = np.array([tg.wire_cls for tg in sc.targets], dtype=np.uint8)
        n_clutter = rng.poisson(spec.clutter_per_scan, size=n_scans)
        n_c = int(n_clutter.sum())
        c_r = spec.max_range_m * np.sqrt(rng.uniform(0.05, 1.0, n_c))
        c_az = rng.uniform(0.0, two_pi, n_c)
        c_el = rng.uniform(-0.002, 0.02, n_c)
        c_start = np.concatenate([[0], np.cumsum(n_clutter)])
        sig = np.array([spec.sigma_range_m, spec.sigma_az_rad, spec.sigma_el_rad])
        R1 = np.diag(sig**2)
        out: list[Timed] = []
        seq = 0
        for j in range(n_scans):
            tk = np.flatnonzero(detected[:, j])
            a, b = c_start[j], c_start[j + 1]
            t = np.concatenate(
                [t_det[tk, j], t_scan[j] + ((c_az[a:b] - phase) % two_pi) / two_pi * T]
            )
            if len(t) == 0:
                continue
            z = np.concatenate([aer[tk, j], np.column_stack([c_r[a:b], c_az[a:b], c_el[a:b]])])
            cls = np.concatenate([np.where(labelled[tk, j], wire[tk], 0), np.zeros(b - a)]).astype(
                np.uint8
            )
            z = z + rng.standard_normal(z.shape) * sig
            z[:, 0] = np.abs(z[:, 0])
            z[:, 1] %= two_pi
            order = np.argsort(t, kind="stable")
            t, z, cls = t[order] + sc.t0_s, z[order], cls[order]
            seq += 1
            det = Detections(
                sensor=spec.id,
                seq=seq,
                kind=KIND_POLAR,
                t=t,
                z=z,
                R=np.broadcast_to(R1, (len(t), 3, 3)).copy(),
                site=site,
                cls=cls if classify else None,
            )
            t_end = sc.t0_s + t_scan[j] + T
            out.append(Timed(t_end, t_end + spec.latency_s, det))
        return out

    def _reports(self, spec: SensorSpec, rng: np.random.Generator) -> list[Timed]:
        """AIS or ADS-B: cooperative objects of the receiver's classes report their own
        (noisy GNSS) position and velocity every `interval_s`, while their transponder is on."""
        sc = self.scenario
        rows: list[tuple[float, int, np.ndarray, np.ndarray, bytes, int]] = []
        for tg in sc.targets:
            if not tg.ident or tg.kind not in spec.classes:
                continue
            interval = float(spec.options.get(f"interval_{tg.kind}_s", spec.interval_s))
            first = float(rng.uniform(0.0, interval))
            times = np.arange(first, sc.duration_s, interval)
            times = times[tg.traj.alive(times) & tg.reporting(times)]
            if len(times) == 0:
                continue
            p, v = tg.traj.at(times)
            rng_m = np.hypot(p[:, 0] - spec.site[0], p[:, 1] - spec.site[1])
            keep = rng_m <= spec.max_range_m
            ident = tg.ident.encode()
            for t, pi, vi in zip(times[keep], p[keep], v[keep], strict=True):
                rows.append((float(t), tg.id, pi, vi, ident, tg.wire_cls))
        rows.sort(key=lambda r: (r[0], r[1]))
        out: list[Timed] = []
        seq = 0
        i = 0
        n_batches = int(math.ceil(sc.duration_s / REPORT_BATCH_S))
        sig_pos = np.array([spec.sigma_pos_m, spec.sigma_pos_m, spec.sigma_alt_m])
        R1 = np.diag(sig_pos**2)
        vR1 = np.eye(3) * spec.sigma_vel_mps**2
        for k in range(n_batches):
            t_end = (k + 1) * REPORT_BATCH_S
            j = i
            while j < len(rows) and rows[j][0] < t_end:
                j += 1
            if j == i:
                continue
            chunk = rows[i:j]
            i = j
            n = len(chunk)
            t = np.array([r[0] for r in chunk]) + sc.t0_s
            pos = np.array([r[2] for r in chunk]) + rng.standard_normal((n, 3)) * sig_pos
            vel = np.array([r[3] for r in chunk]) + rng.standard_normal((n, 3)) * spec.sigma_vel_mps
            llh = self.frame.to_geodetic(pos)
            if spec.kind == "ais":
                llh[:, 2] = 0.0  # AIS carries no altitude; the report says sea level
                vel[:, 2] = 0.0
            seq += 1
            det = Detections(
                sensor=spec.id,
                seq=seq,
                kind=KIND_POS,
                t=t,
                z=llh,
                R=np.broadcast_to(R1, (n, 3, 3)).copy(),
                vel=vel,
                vel_R=np.broadcast_to(vR1, (n, 3, 3)).copy(),
                ident=np.array([r[4] for r in chunk], dtype=IDENT_DTYPE),
                cls=np.array([r[5] for r in chunk], dtype=np.uint8),
            )
            out.append(Timed(sc.t0_s + t_end, sc.t0_s + t_end + spec.latency_s, det))
        return out

    def _acoustic(self, spec: SensorSpec, rng: np.random.Generator) -> list[Timed]:
        """An acoustic array: every located event within range, one batch per event, delivered
        after the sound's travel time to the array plus processing latency."""
        sc = self.scenario
        out: list[Timed] = []
        seq = 0
        for ev in sorted(sc.events, key=lambda e: e.t_s):
            d = math.dist(ev.pos[:2], spec.site[:2])
            if d > spec.max_range_m:
                continue
            pos = np.asarray(ev.pos, dtype=np.float64) + rng.standard_normal(3) * np.array(
                [ev.sigma_m, ev.sigma_m, 0.0]
            )
            llh = self.frame.to_geodetic(np.array([[pos[0], pos[1], 0.0]]))
            llh[0, 2] = pos[2]  # events are placed by height above the ellipsoid
            t = sc.t0_s + ev.t_s
            R = np.diag([ev.sigma_m**2, ev.sigma_m**2, 100.0**2])[None, :, :]
            seq += 1
            det = Detections(
                sensor=spec.id,
                seq=seq,
                kind=KIND_EVENT,
                t=np.array([t]),
                z=llh,
                R=R,
                meta={"event": ev.event},
            )
            # The array locates the event once the sound has reached it (343 m/s).
            ready = t + d / 343.0
            out.append(Timed(ready, ready + spec.latency_s, det))
        return out


def _sid(msg: Detections | Heartbeat) -> tuple[str, int]:
    # Heartbeats sort after detections of the same sensor at the same time.
    return (msg.sensor, 0 if isinstance(msg, Detections) else 1)


def _seq(msg: Detections | Heartbeat) -> int:
    return msg.seq if isinstance(msg, Detections) else 0


def write_feed(scenario: Scenario, path: str | Path, *, order: str = "arrival") -> int:
    """Records the scenario's sensor messages as a feed file (frames encoded with
    `fusion.protocol.encode`, receipt time = arrival time); returns the number of frames."""
    from fusion.feed import FeedWriter
    from fusion.protocol import encode

    n = 0
    with FeedWriter(path) as w:
        for m in SimSensors(scenario).timed(order):
            w.write(encode(m.msg), m.arrival_t_s)
            n += 1
    return n


def realtime(
    scenario: Scenario,
    *,
    speed: float = 1.0,
    start_wall_s: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    sensors: set[str] | None = None,
) -> Iterator[Detections | Heartbeat]:
    """Yields the scenario's messages at wall-clock pace: a message is released when
    `speed` x the elapsed wall time passes its arrival time (scenario start = `start_wall_s`
    on `clock`, default now). `sensors` restricts the output to some sensor ids (one adapter
    per sensor)."""
    if speed <= 0:
        raise ValueError("speed must be positive")
    sim = SimSensors(scenario)
    heap: list = []
    for i, m in enumerate(sim.timed("arrival")):
        if sensors is not None and m.msg.sensor not in sensors:
            continue
        heapq.heappush(heap, (m.arrival_t_s, i, m))
    # The clock starts once the messages exist: simulating takes seconds, and starting the
    # clock before would release that many seconds (times `speed`) of scenario in one burst.
    start = clock() if start_wall_s is None else start_wall_s
    while heap:
        arrival, _, m = heapq.heappop(heap)
        due = start + (arrival - scenario.t0_s) / speed
        wait = due - clock()
        if wait > 0:
            sleep(wait)
        yield m.msg
