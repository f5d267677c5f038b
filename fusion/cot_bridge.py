"""The CoT bridge: the fusion output stream in, CoT events out.

This module owns the state the translation needs (fusion.cot owns the translation itself):
each track's update interval, from which its stale time follows; which tracks and cues are on
the air; which open cues make a track hostile; and the withdrawal of closed cues and deleted
tracks, by an event whose stale time is now and/or a `t-x-d-d` delete.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fusion.cot import (
    DEFAULT_CUE_TYPES,
    UNKNOWN_ERROR_M,
    AffiliationPolicy,
    TrackRow,
    cue_event,
    delete_event,
    dimension_letter,
    rows_from_picture,
    rows_from_update,
    track_event,
    withdrawn,
)
from fusion.messages import TRACK_STATUS_NAMES, CueEvent, TrackUpdate
from fusion.picture import TrackPicture

_CONFIRMED = TRACK_STATUS_NAMES.index("confirmed")
_COASTING = TRACK_STATUS_NAMES.index("coasting")
_FREE = TRACK_STATUS_NAMES.index("free")


@dataclass
class BridgeConfig:
    """Settings of the CoT bridge.

    Stale time of a track = its latest state time (or now, when later) plus
    clamp(stale_factor * update interval, min_stale_s, max_stale_s); the interval is a moving
    average of the gaps between the track's successive updates, `initial_interval_s` before
    the second one. Cues stay `cue_stale_s` and are re-sent every `cue_refresh_s` while open.
    """

    uid_prefix: str = "fusion"
    affiliation: AffiliationPolicy = field(default_factory=AffiliationPolicy)
    cue_types: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_CUE_TYPES))
    send_tracks: bool = True
    confirmed_only: bool = True
    stale_factor: float = 3.0
    min_stale_s: float = 5.0
    max_stale_s: float = 300.0
    initial_interval_s: float = 5.0
    interval_smoothing: float = 0.3  # weight of the newest gap in the moving average
    cue_stale_s: float = 300.0
    cue_refresh_s: float = 60.0
    withdraw: str = "both"  # "stale" (stale=now event), "delete" (t-x-d-d) or "both"

    def __post_init__(self) -> None:
        if self.withdraw not in ("stale", "delete", "both"):
            raise ValueError(f"withdraw must be stale, delete or both, not {self.withdraw!r}")
        if not (0.0 < self.interval_smoothing <= 1.0):
            raise ValueError("interval_smoothing must be in (0, 1]")
        if self.min_stale_s <= 0 or self.max_stale_s < self.min_stale_s:
            raise ValueError("need 0 < min_stale_s <= max_stale_s")


@dataclass
class _TrackState:
    t_s: float
    interval_s: float
    uid: str
    cot_type: str
    stale_s: float
    last_xml: bytes
    point: tuple[float, float, float, float, float]  # lat, lon, hae, ce, le
    cls: int = 0


@dataclass
class _CueState:
    uid: str
    cot_type: str
    body: dict[str, Any]
    sent_s: float
    last_xml: bytes
    link: tuple[str, str] | None
    point: tuple[float, float, float, float, float] | None


@dataclass
class BridgeStats:
    events: int = 0
    track_events: int = 0
    cue_events: int = 0
    withdrawals: int = 0
    bad_input: dict[str, int] = field(default_factory=dict)


class CotBridge:
    """Turns the fusion output stream into CoT events and hands each to `send(bytes)`.

    Feed it with `on_message(topic, msg)` (or `run(source)` over an iterator of pairs), where a
    message is a `TrackUpdate`, a `CueEvent`, a cue body dict or a `TrackPicture`. Tracks that
    leave (status free, absent from a full picture, or silent past their stale time) and cues
    that close are withdrawn. `clock` gives the sending time and is injectable for tests;
    `origin` is the theatre origin, used to rotate TrackUpdate covariances to each track;
    `full_updates` makes every TrackUpdate a whole picture; `site_points` (site id -> lat, lon)
    places cues that carry no position of their own.
    """

    def __init__(
        self,
        send: Callable[[bytes], Any],
        config: BridgeConfig | None = None,
        clock: Callable[[], float] = time.time,
        origin: tuple[float, float, float] | None = None,
        full_updates: bool = False,
        site_points: dict[str, tuple[float, float]] | None = None,
    ) -> None:
        self.send_fn = send
        self.full_updates = full_updates
        self.site_points = dict(site_points or {})
        self._frame = None
        if origin is not None:
            from fusion.geo import LocalFrame

            self._frame = LocalFrame(*origin)
        self.config = config or BridgeConfig()
        self.clock = clock
        self.stats = BridgeStats()
        self._tracks: dict[int, _TrackState] = {}
        self._cues: dict[str, _CueState] = {}
        self._open_rules_by_track: dict[int, set[str]] = {}

    # ---- inputs

    def on_message(self, topic: str, msg: Any) -> int:
        """Dispatch one message; returns the number of events sent. Bad input is counted."""
        try:
            if isinstance(msg, CueEvent):
                return self.on_cue(msg.body)
            if isinstance(msg, dict) and "rule" in msg and "id" in msg:
                return self.on_cue(msg)
            if isinstance(msg, TrackUpdate):
                return self.on_tracks(msg)
            if isinstance(msg, TrackPicture):
                return self.on_picture(msg)
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            reason = type(exc).__name__
            self.stats.bad_input[reason] = self.stats.bad_input.get(reason, 0) + 1
            return 0
        return 0  # heartbeats, status and the like have no CoT form here

    def on_tracks(self, upd: TrackUpdate) -> int:
        """The update is the whole picture of the classes it carries: tracks of those classes
        absent from it are withdrawn; with `full_updates` (a replay's samples) every absent
        track is."""
        # The service publishes its whole confirmed picture split by class (trk.<class>): a
        # track of a class this update carries, absent from it, has gone.
        scope = None if self.full_updates else {int(c) for c in upd.cls}
        rows = rows_from_update(upd, self._frame)
        return self._tracks_in(rows, full=self.full_updates, scope=scope)

    def on_picture(self, pic: TrackPicture) -> int:
        """A full picture: tracks absent from it are withdrawn."""
        return self._tracks_in(rows_from_picture(pic), full=True)

    def on_cue(self, body: dict[str, Any]) -> int:
        cfg = self.config
        cue_id = str(body["id"])
        state = str(body.get("state", "open"))
        rule = str(body.get("rule", ""))
        now = self.clock()
        uid = f"{cfg.uid_prefix}.cue.{cue_id}"
        cot_type = cfg.cue_types.get(rule, "b-a-g")
        track = body.get("track")
        link = None
        # where to put a cue that has no position: its track, else its site
        point = None
        if track is not None and int(track) in self._tracks:
            ts = self._tracks[int(track)]
            link = (ts.uid, ts.cot_type)
            point = ts.point
        elif track is not None:
            link = (f"{cfg.uid_prefix}.track.{int(track)}", "a-u-G")
        site = body.get("site")
        if point is None and site is not None and str(site) in self.site_points:
            lat, lon = self.site_points[str(site)]
            point = (lat, lon, 0.0, UNKNOWN_ERROR_M, UNKNOWN_ERROR_M)
        if state == "close":
            self._cues.pop(cue_id, None)
            self._forget_rule(track, rule, cue_id)
            xml = cue_event(body, uid, cot_type, now, now, link, point)
            self._send(xml)
            n = 1
            if cfg.withdraw in ("delete", "both"):
                self._send(delete_event(uid, cot_type, now, f"{uid}.delete"))
                n += 1
            self.stats.withdrawals += 1
            self.stats.cue_events += 1
            return n
        xml = cue_event(body, uid, cot_type, now, now + cfg.cue_stale_s, link, point)
        self._cues[cue_id] = _CueState(uid, cot_type, dict(body), now, xml, link, point)
        if track is not None:
            self._open_rules_by_track.setdefault(int(track), set()).add(f"{rule}\0{cue_id}")
        self._send(xml)
        self.stats.cue_events += 1
        return 1

    def expire(self) -> int:
        """Withdraw tracks silent past their stale time; re-send open cues due a refresh."""
        cfg = self.config
        now = self.clock()
        sent = 0
        for tid in [tid for tid, ts in self._tracks.items() if ts.stale_s <= now]:
            sent += self._withdraw_track(tid, now)
        for cs in self._cues.values():
            if now - cs.sent_s >= cfg.cue_refresh_s:
                cs.last_xml = cue_event(
                    cs.body, cs.uid, cs.cot_type, now, now + cfg.cue_stale_s, cs.link, cs.point
                )
                cs.sent_s = now
                self._send(cs.last_xml)
                sent += 1
        return sent

    def run(self, source: Iterable[tuple[str, Any]], stop: Callable[[], bool] | None = None) -> int:
        """Bridge every (topic, message) of `source`; returns the number of events sent."""
        sent = 0
        last_expire = self.clock()
        for topic, msg in source:
            sent += self.on_message(topic, msg)
            now = self.clock()
            if now - last_expire >= 1.0:
                sent += self.expire()
                last_expire = now
            if stop is not None and stop():
                break
        return sent

    @property
    def open_cues(self) -> list[str]:
        return sorted(self._cues)

    @property
    def live_tracks(self) -> list[int]:
        return sorted(self._tracks)

    # ---- internals

    def _send(self, xml: bytes) -> None:
        self.send_fn(xml)
        self.stats.events += 1

    def _forget_rule(self, track: Any, rule: str, cue_id: str) -> None:
        if track is None:
            return
        rules = self._open_rules_by_track.get(int(track))
        if rules is not None:
            rules.discard(f"{rule}\0{cue_id}")
            if not rules:
                del self._open_rules_by_track[int(track)]

    def _open_rules(self, tid: int) -> list[str]:
        return [r.split("\0", 1)[0] for r in self._open_rules_by_track.get(tid, ())]

    def _tracks_in(
        self, rows: Sequence[TrackRow], full: bool, scope: set[int] | None = None
    ) -> int:
        cfg = self.config
        now = self.clock()
        sent = 0
        seen: set[int] = set()
        for row in rows:
            if row.status == _FREE:
                sent += self._withdraw_track(row.id, now)
                continue
            if cfg.confirmed_only and row.status not in (_CONFIRMED, _COASTING):
                continue
            seen.add(row.id)
            if not cfg.send_tracks:
                continue
            speed_mps = math.hypot(row.vel_enu[0], row.vel_enu[1])
            aff = cfg.affiliation.letter(row.ident, self._open_rules(row.id))
            dim = dimension_letter(row.cls, row.ident, row.alt_m, speed_mps)
            cot_type = f"a-{aff}-{dim}"
            prev = self._tracks.get(row.id)
            if prev is None:
                interval = cfg.initial_interval_s
            elif row.t_s > prev.t_s:
                a = cfg.interval_smoothing
                interval = (1.0 - a) * prev.interval_s + a * (row.t_s - prev.t_s)
            else:
                interval = prev.interval_s
            horizon = min(max(cfg.stale_factor * interval, cfg.min_stale_s), cfg.max_stale_s)
            stale = max(row.t_s, now) + horizon
            uid = f"{cfg.uid_prefix}.track.{row.id}"
            callsign = f"T{row.id}" + (f" {row.ident}" if row.ident else "")
            xml = track_event(row, uid, cot_type, now, stale, callsign)
            point = (row.lat_deg, row.lon_deg, row.alt_m, row.ce_m, row.le_m)
            self._tracks[row.id] = _TrackState(
                row.t_s, interval, uid, cot_type, stale, xml, point, row.cls
            )
            self._send(xml)
            self.stats.track_events += 1
            sent += 1
        if full or scope:
            gone = [
                t for t, ts in self._tracks.items() if t not in seen and (full or ts.cls in scope)
            ]
            for tid in gone:
                sent += self._withdraw_track(tid, now)
        return sent

    def _withdraw_track(self, tid: int, now: float) -> int:
        ts = self._tracks.pop(tid, None)
        if ts is None:
            return 0
        n = 0
        if self.config.withdraw in ("stale", "both"):
            self._send(withdrawn(ts.last_xml, now))
            n += 1
        if self.config.withdraw in ("delete", "both"):
            self._send(delete_event(ts.uid, ts.cot_type, now, f"{ts.uid}.delete"))
            n += 1
        self.stats.withdrawals += 1
        return n


def site_points(sites: Any) -> dict[str, tuple[float, float]]:
    """Site id -> (lat, lon) of a representative point (on the site) of a fusion.sites.SiteSet."""
    out = {}
    for s in sites:
        p = s.geometry_ll.representative_point()
        out[s.id] = (float(p.y), float(p.x))
    return out
