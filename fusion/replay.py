"""Replay: a recorded feed through the tracker and the rules, in-process and deterministic.

This module owns offline processing of recorded frames. Each frame goes through
`fusion.protocol.decode` (the same validation as the live service, with the feed's receipt
time as the clock, so a replay never reads the wall clock), then a small reorder buffer
releases messages in measurement-time order, and the service's own `FusionCore` (tracker +
rule engine) processes each batch. The same feed gives the same tracks and cues, bit for bit.

Outputs (`write_run`), read back by `fusion.replay_output` and `fusion evaluate`:

    cues.jsonl     every cue lifecycle event (a cue body) in the order the rules made them
    tracks.jsonl   one whole track update per sample instant (WGS84 positions, for the map)
    tracks.npz     the same samples as flat ENU arrays (t_s, id, pos, vel, sigma_m, status,
                   ident, cls), positions extrapolated to the sample instant
    idents.npz     with `strip_ident`: per stripped detection its time, identity and the
                   confirmed track it updated (-1 none), for `score_identities`; a report the
                   tracker dropped as a re-sent position (`fusion.tracker_repeats`) is scored
                   with the track of the report it repeats
    summary.json   counts, origin, sites path, rejects by reason
"""

from __future__ import annotations

import dataclasses
import heapq
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from fusion.evaluate import picture_states, stack_states
from fusion.messages import (
    CLASS_NAMES,
    KIND_EVENT,
    KIND_POS,
    TRACK_STATUS_NAMES,
    Detections,
    Heartbeat,
)

CONFIRMED_CODES = (2, 3)  # confirmed, coasting


@dataclass
class ReplayResult:
    origin: tuple[float, float, float]
    sites: str | None
    frames: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    detections: int = 0
    heartbeats: int = 0
    events: int = 0
    t_first_s: float = math.nan
    t_last_s: float = math.nan
    cues: list[dict[str, Any]] = field(default_factory=list)
    tracks: dict[str, np.ndarray] = field(default_factory=dict)
    idents: dict[str, np.ndarray] | None = None
    confirmed_track_ids: int = 0

    def summary(self) -> dict[str, Any]:
        by_rule: dict[str, int] = {}
        for b in self.cues:
            if b.get("state") == "open":
                by_rule[str(b.get("rule"))] = by_rule.get(str(b.get("rule")), 0) + 1
        return {
            "origin": list(self.origin),
            "sites": self.sites,
            "frames": self.frames,
            "rejected": dict(sorted(self.rejected.items())),
            "batches": self.batches,
            "detections": self.detections,
            "heartbeats": self.heartbeats,
            "events": self.events,
            "t_first_s": self.t_first_s,
            "t_last_s": self.t_last_s,
            "duration_s": self.t_last_s - self.t_first_s,
            "tracks_confirmed": self.confirmed_track_ids,
            "cue_events": len(self.cues),
            "cues_opened_by_rule": dict(sorted(by_rule.items())),
        }


class Replayer:
    """Feeds messages to a FusionCore in measurement-time order and records what comes out.

    `sites`: a site file (rules run only with one). `origin`: the theatre origin (default the
    site file's, else the first position report's). `tracker`/`rules`: config overrides as in
    fusion.toml. `track_dt_s`: sampling interval of the recorded tracks (0: none).
    `strip_ident`: remove cooperative identities before tracking and keep them for scoring.
    `lag_s`: the reorder window (measurement time behind the newest receipt time).

    A stripped batch is given to the tracker as it is, without identities: the tracker counts
    misses only inside a coverage it knows (a heartbeat's or a radar's), so the stripped
    reports of a receiver without declared coverage never make misses."""

    def __init__(
        self,
        *,
        sites: str | Path | None = None,
        origin: tuple[float, float, float] | None = None,
        tracker: dict[str, Any] | None = None,
        rules: dict[str, Any] | None = None,
        track_dt_s: float = 1.0,
        strip_ident: bool = False,
        lag_s: float = 1.0,
    ) -> None:
        self.sites = str(sites) if sites is not None else None
        if origin is None and sites is not None:
            from fusion.sites import load_sites

            origin = tuple(load_sites(sites).frame.origin)
        self._origin = origin
        self._tracker_cfg = dict(tracker or {})
        self._rules_cfg = dict(rules or {})
        self.core = None
        self.track_dt_s = float(track_dt_s)
        self.strip_ident = strip_ident
        self.lag_s = float(lag_s)
        self._heap: list = []
        self._n = 0
        self._newest_recv = -math.inf
        self._now = -math.inf
        self._next_sample = math.nan
        self._samples: list[dict[str, np.ndarray]] = []
        self._ident_rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._confirmed_ids: set[int] = set()
        # Per sensor: position key -> (scored track, time) of the reports scored, so that a
        # re-sent position the tracker dropped is scored with its original's track.
        self._sent: dict[str, dict[int, tuple[int, float]]] = {}
        self.result = ReplayResult(origin=origin or (math.nan,) * 3, sites=self.sites)
        from fusion.service.liveness import Liveness

        self.liveness = Liveness()

    # ------------------------------------------------------------------ input
    def frame(self, frame: bytes, recv_t_s: float) -> None:
        """One encoded frame as received at `recv_t_s`; bad frames are counted by reason."""
        from fusion.protocol import ProtocolError, decode

        self.result.frames += 1
        try:
            msg = decode(frame, now_s=recv_t_s)
        except ProtocolError as exc:
            self.result.rejected[exc.reason] = self.result.rejected.get(exc.reason, 0) + 1
            return
        self.message(msg, recv_t_s)

    def message(self, msg: Any, recv_t_s: float | None = None) -> None:
        """One decoded message; `recv_t_s` None means 'as soon as measured' (no reordering
        beyond the message's own time)."""
        if isinstance(msg, Detections):
            t = float(np.max(msg.t))
        elif isinstance(msg, Heartbeat):
            t = float(msg.t_s)
        else:
            return  # acks, tracks, cues and status are outputs, not inputs
        recv = t if recv_t_s is None else float(recv_t_s)
        heapq.heappush(self._heap, (t, self._n, msg))
        self._n += 1
        self._newest_recv = max(self._newest_recv, recv)
        while self._heap and self._heap[0][0] <= self._newest_recv - self.lag_s:
            self._process(heapq.heappop(self._heap)[2])

    def finish(self) -> ReplayResult:
        while self._heap:
            self._process(heapq.heappop(self._heap)[2])
        res = self.result
        if self.core is not None and self.track_dt_s > 0 and math.isfinite(self._now):
            self._sample_until(self._now + 1e-9, final=True)
        res.tracks = stack_states(self._samples)
        res.confirmed_track_ids = len(self._confirmed_ids)
        if self.strip_ident:
            if self._ident_rows:
                t, i, k = (np.concatenate(c) for c in zip(*self._ident_rows, strict=True))
            else:
                t, i, k = np.zeros(0), np.zeros(0, "S24"), np.zeros(0, np.int64)
            res.idents = {"t_s": t, "ident": i, "track": k}
        return res

    # ------------------------------------------------------------------ processing
    def _ensure_core(self, msg: Any) -> None:
        if self.core is not None:
            return
        origin = self._origin
        if origin is None:
            if isinstance(msg, Detections) and msg.kind == KIND_POS:
                lat, lon = np.round(msg.z[0, :2], 2)
            elif msg.site is not None:
                lat, lon = np.round(msg.site[:2], 2)
            else:
                return
            origin = (float(lat), float(lon), 0.0)
        from fusion.config import FusionConfig, TheatreConfig
        from fusion.service.core import FusionCore

        cfg = FusionConfig(
            theatre=TheatreConfig(
                origin=tuple(origin), sites=Path(self.sites) if self.sites else None
            ),
            tracker=self._tracker_cfg,
            rules=self._rules_cfg,
        )
        self.core = FusionCore(cfg)
        self.result.origin = tuple(float(v) for v in origin)

    def _process(self, msg: Any) -> None:
        res = self.result
        self._ensure_core(msg)
        if self.core is None:
            return  # nothing to anchor the frame yet (a heartbeat without a site)
        t = float(np.max(msg.t)) if isinstance(msg, Detections) else float(msg.t_s)
        if not math.isfinite(res.t_first_s):
            res.t_first_s = t
            if self.track_dt_s > 0:
                self._next_sample = math.ceil(t / self.track_dt_s) * self.track_dt_s
        self._sample_until(t)
        self._now = max(self._now, t)
        res.t_last_s = self._now
        if isinstance(msg, Heartbeat):
            res.heartbeats += 1
            self.liveness.heartbeat(msg.sensor, msg.t_s, msg.status, msg.site, msg.coverage)
            self.core.heartbeat(msg)
            return
        res.batches += 1
        res.detections += len(msg)
        self.liveness.detections(msg.sensor, t)
        idents = None
        if msg.kind == KIND_EVENT:
            res.events += len(msg)
        elif self.strip_ident and msg.ident is not None:
            idents = np.asarray(msg.ident)
            msg = dataclasses.replace(msg, ident=None)
        cues = self.core.process([msg], self.liveness.report(self._now), self._now)
        res.cues.extend(_plain(c) for c in cues)
        pic = self.core.picture()
        self._confirmed_ids.update(int(i) for i in pic.id)
        if idents is not None:
            tracks = self._repeats_scored(msg, self._det_tracks(msg))
            self._ident_rows.append((np.asarray(msg.t), idents, tracks))

    def _repeats_scored(self, batch: Detections, tracks: np.ndarray) -> np.ndarray:
        """`tracks` with each unscored report (-1) that repeats, bit for bit, a position its
        sensor sent within the tracker's repeat window scored with that report's track."""
        if batch.kind != KIND_POS:
            return tracks
        from fusion.tracker_repeats import position_keys

        window = float(self.core.tracker.config.repeat_window_s)
        sent = self._sent.setdefault(batch.sensor, {})
        keys = position_keys(np.asarray(batch.z, dtype=np.float64)).tolist()
        t = np.asarray(batch.t, dtype=np.float64)
        out = tracks.copy()
        for j in np.argsort(t, kind="stable").tolist():
            prev = sent.get(keys[j])
            if out[j] < 0 and prev is not None and t[j] - prev[1] <= window:
                out[j] = prev[0]
            elif prev is None or t[j] - prev[1] > window:
                sent[keys[j]] = (int(out[j]), float(t[j]))
        if len(sent) > 100_000:  # forget what no longer falls in any window
            t_min = float(t.max()) - window
            self._sent[batch.sensor] = {k: v for k, v in sent.items() if v[1] >= t_min}
        return out

    def _sample_until(self, t: float, final: bool = False) -> None:
        if self.track_dt_s <= 0 or not math.isfinite(self._next_sample):
            return
        while self._next_sample <= t or (final and self._next_sample <= t + self.track_dt_s):
            if final and self._next_sample > self._now + 1e-6:
                break
            self._samples.append(picture_states(self.core.picture(), self._next_sample))
            self._next_sample += self.track_dt_s

    def _det_tracks(self, batch: Detections) -> np.ndarray:
        """The confirmed track each detection of `batch` updated (-1: none or tentative).

        The tracker reports counts, not pairs, so the pairs are recovered from the table: a
        track updated by this batch carries the detection's time as its update time and sits
        within a few sigma of it; several detections at one time are matched optimally."""
        full = self.core.tracker.picture(confirmed_only=False)
        out = np.full(len(batch), -1, np.int64)
        if len(full) == 0 or batch.kind != KIND_POS:
            return out
        z = self.core.frame.to_enu(np.asarray(batch.z, dtype=np.float64))
        t = np.asarray(batch.t)
        sig = np.sqrt(np.trace(np.asarray(batch.R), axis1=1, axis2=2))
        for tau in np.unique(t):
            dets = np.flatnonzero(t == tau)
            trks = np.flatnonzero(full.t_upd_s == tau)
            if len(trks) == 0:
                continue
            d = np.linalg.norm(z[dets, None, :] - full.x[None, trks, :3], axis=2)
            r, c = linear_sum_assignment(d)
            for a, b in zip(r, c, strict=True):
                if d[a, b] <= 5.0 * sig[dets[a]] + 50.0 and full.status[trks[b]] in CONFIRMED_CODES:
                    out[dets[a]] = int(full.id[trks[b]])
        return out


def _plain(x: Any) -> Any:
    """A cue body as plain JSON values (numpy arrays and scalars become lists and numbers)."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return _plain(x.tolist())
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, bytes):
        return x.decode(errors="replace")
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


# --------------------------------------------------------------------------- entry points


def replay_feed(path: str | Path, **options: Any) -> ReplayResult:
    """Replays a feed file (or a directory of them) with `Replayer(**options)`."""
    from fusion.feed import read_feed

    r = Replayer(**options)
    stats: dict[str, int] = {}
    for recv_t_s, frame in read_feed(path, stats):
        r.frame(frame, recv_t_s)
    res = r.finish()
    if stats.get("truncated"):
        res.rejected["truncated"] = stats["truncated"]
    return res


def replay_messages(messages: Iterable[Any], **options: Any) -> ReplayResult:
    """Replays decoded messages (e.g. `sensors.sim.SimSensors(...).messages()`) in order."""
    r = Replayer(**options)
    for m in messages:
        r.message(m)
    return r.finish()


def write_run(res: ReplayResult, out_dir: str | Path) -> Path:
    """Writes the replay outputs (see the module docstring) into `out_dir`."""
    from fusion.geo import LocalFrame

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "cues.jsonl").open("w", encoding="utf-8") as fh:
        for body in res.cues:
            fh.write(json.dumps(body, sort_keys=True) + "\n")
    tr = res.tracks
    np.savez_compressed(out / "tracks.npz", origin=np.asarray(res.origin), **tr)
    if res.idents is not None:
        np.savez_compressed(out / "idents.npz", **res.idents)
    with (out / "tracks.jsonl").open("w", encoding="utf-8") as fh:
        if len(tr.get("t_s", ())) and all(math.isfinite(v) for v in res.origin):
            llh = LocalFrame(*res.origin).to_geodetic(tr["pos"])
            times, starts = np.unique(tr["t_s"], return_index=True)
            bounds = list(starts[1:]) + [len(tr["t_s"])]
            for t, a, b in zip(times, starts, bounds, strict=True):
                rec = {
                    "t_s": float(t),
                    "id": tr["id"][a:b].tolist(),
                    "pos": np.round(llh[a:b], 7).tolist(),
                    "vel": np.round(tr["vel"][a:b], 3).tolist(),
                    "sigma_m": np.round(tr["sigma_m"][a:b], 2).tolist(),
                    "status": [TRACK_STATUS_NAMES[s] for s in tr["status"][a:b]],
                    "ident": [i.decode(errors="replace") for i in tr["ident"][a:b]],
                    "cls": [CLASS_NAMES[c] for c in tr["cls"][a:b]],
                }
                fh.write(json.dumps(rec) + "\n")
    (out / "summary.json").write_text(json.dumps(res.summary(), indent=2, sort_keys=True))
    return out
