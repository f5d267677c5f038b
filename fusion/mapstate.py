"""The operator map's state: what the page shows, as plain JSON-able Python.

This module owns the model behind `fusion map`: the sites (a GeoJSON FeatureCollection), the
live tracks with a bounded history tail and an uncertainty ellipse each, and the cues with their
lifecycle (open, update, close). `MapState.apply(topic, message)` folds one message of the fusion
stream in and returns the deltas to push to browsers; `snapshot()` is what a page loads first.
It touches no socket and no clock (time comes from the data), so it is tested without a browser,
and the same input gives the same state.
"""

from __future__ import annotations

import math
import queue
import threading
from collections import deque
from collections.abc import Iterable
from typing import Any

import numpy as np

from fusion.cot import course_speed, ident_str, picture_geodetic, update_geodetic
from fusion.messages import CLASS_NAMES, TRACK_STATUS_NAMES, CueEvent, TrackUpdate
from fusion.picture import TrackPicture

# The ellipse drawn around each track holds 95 % of the horizontal position probability:
# for a 2-D normal the scale on the 1-sigma ellipse is sqrt(chi2_2(0.95)) = sqrt(-2 ln 0.05).
ELLIPSE_LEVEL = 0.95
ELLIPSE_K = math.sqrt(-2.0 * math.log(1.0 - ELLIPSE_LEVEL))
_FREE = TRACK_STATUS_NAMES.index("free")
_TENTATIVE = TRACK_STATUS_NAMES.index("tentative")


def jsonable(value: Any) -> Any:
    """A copy of `value` that json.dumps accepts: numpy scalars and arrays become Python,
    bytes become text, non-finite floats become None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, bytes | np.bytes_):
        return ident_str(value)
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value


def error_ellipse(P_h: np.ndarray, k: float = ELLIPSE_K) -> tuple[float, float, float]:
    """(semi-major m, semi-minor m, major-axis bearing in degrees clockwise from north) of the
    k-sigma ellipse of a horizontal east-north covariance (2, 2)."""
    P_h = np.asarray(P_h, dtype=np.float64)
    w, V = np.linalg.eigh(0.5 * (P_h + P_h.T))
    w = np.maximum(w, 0.0)
    major = V[:, 1]  # eigh sorts ascending
    bearing = math.degrees(math.atan2(major[0], major[1])) % 180.0
    return k * math.sqrt(w[1]), k * math.sqrt(w[0]), bearing


def cue_view(body: dict[str, Any]) -> dict[str, Any]:
    """The fields of a cue body the page needs, flat and JSON-able."""
    pos = body.get("pos")
    lat = lon = None
    if isinstance(pos, dict):
        lat, lon = pos.get("lat", pos.get("lat_deg")), pos.get("lon", pos.get("lon_deg"))
    elif isinstance(pos, list | tuple | np.ndarray) and len(pos) >= 2:
        lat, lon = pos[0], pos[1]
    sigma = body.get("sigma_m")
    if isinstance(sigma, list | tuple | np.ndarray):
        sigma = float(np.sqrt(np.mean(np.square(np.asarray(sigma[:2], dtype=float)))))
    view = {
        k: body.get(k)
        for k in (
            "id",
            "seq",
            "state",
            "rule",
            "site",
            "site_name",
            "track",
            "t_s",
            "opened_t_s",
            "severity",
            "confidence",
            "text",
        )
    }
    view.update(lat=lat, lon=lon, sigma_m=sigma)
    return jsonable(view)


class MapState:
    """Tracks, cues and sites for the map, with change notification to subscribers.

    `history_len` points are kept per track; a track not updated for `track_timeout_s` of data
    time is dropped; a track absent from an update that carries its class is dropped at once
    (the service publishes its picture per class), and with `full_updates` (a replay's
    samples, each the whole picture) a track absent from any update. `closed_keep` closed cues
    are remembered for the page's history list.
    Thread-safe: the feeder thread applies messages while HTTP threads read snapshots.
    """

    def __init__(
        self,
        sites: dict[str, Any] | None = None,
        *,
        origin: tuple[float, float, float] | None = None,
        history_len: int = 60,
        track_timeout_s: float = 120.0,
        closed_keep: int = 50,
        confirmed_only: bool = True,
        full_updates: bool = False,
        queue_len: int = 1000,
    ) -> None:
        self.sites = sites or {"type": "FeatureCollection", "features": []}
        self.history_len = history_len
        self.track_timeout_s = track_timeout_s
        self.confirmed_only = confirmed_only
        self.full_updates = full_updates
        self.queue_len = queue_len
        self.t_s = 0.0
        self.version = 0
        self.tracks: dict[int, dict[str, Any]] = {}
        self.open_cues: dict[str, dict[str, Any]] = {}
        self.closed_cues: deque[dict[str, Any]] = deque(maxlen=closed_keep)
        self.counts = {"messages": 0, "bad": 0, "cues_opened": 0, "cues_closed": 0}
        self._history: dict[int, deque] = {}
        self._cls_code: dict[int, int] = {}
        self._lock = threading.RLock()
        self._subscribers: list[queue.Queue] = []
        self._frame = None
        if origin is not None:
            from fusion.geo import LocalFrame

            self._frame = LocalFrame(*origin)

    # ---- subscribers (server-sent events)

    def subscribe(self) -> queue.Queue:
        """A queue of (event name, JSON-able payload) deltas; a full queue gets a `reset` so
        the page reloads the snapshot rather than drifting."""
        q: queue.Queue = queue.Queue(maxsize=self.queue_len)
        with self._lock:
            self._subscribers.append(q)
        return q

    def unsubscribe(self, q: queue.Queue) -> None:
        with self._lock:
            if q in self._subscribers:
                self._subscribers.remove(q)

    def _publish(self, deltas: list[tuple[str, Any]]) -> None:
        for q in list(self._subscribers):
            for d in deltas:
                try:
                    q.put_nowait(d)
                except queue.Full:
                    while True:  # make room for one reset and let the page resync
                        try:
                            q.get_nowait()
                        except queue.Empty:
                            break
                    q.put_nowait(("reset", {"version": self.version}))
                    break

    # ---- inputs

    def apply(self, topic: str, msg: Any) -> list[tuple[str, Any]]:
        """Fold one message in; returns the deltas (also pushed to subscribers)."""
        with self._lock:
            self.counts["messages"] += 1
            try:
                if isinstance(msg, CueEvent):
                    deltas = self._cue(msg.body)
                elif isinstance(msg, dict) and "id" in msg and "rule" in msg:
                    deltas = self._cue(msg)
                elif isinstance(msg, TrackUpdate):
                    # The service publishes its whole confirmed picture split by class
                    # (topic trk.<class>): a track of a class the message carries, absent
                    # from it, has gone.
                    scope = None if self.full_updates else {int(c) for c in msg.cls}
                    deltas = self._tracks(
                        *self._update_rows(msg), full=self.full_updates, scope=scope
                    )
                elif isinstance(msg, TrackPicture):
                    deltas = self._tracks(*self._picture_rows(msg), full=True)
                else:
                    return []
            except (ValueError, KeyError, TypeError, IndexError):
                self.counts["bad"] += 1
                return []
            if deltas:
                self.version += 1
                self._publish(deltas)
            return deltas

    def apply_all(self, pairs: Iterable[tuple[str, Any]]) -> None:
        for topic, msg in pairs:
            self.apply(topic, msg)

    def set_sites(self, sites: dict[str, Any]) -> None:
        with self._lock:
            self.sites = sites
            self.version += 1
            self._publish([("sites", {"version": self.version})])

    # ---- reads

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "version": self.version,
                "t_s": self.t_s,
                "tracks": [self._track_json(t) for t in sorted(self.tracks)],
                "open_cues": sorted(
                    self.open_cues.values(), key=lambda c: (c.get("opened_t_s") or 0, c["id"])
                ),
                "closed_cues": list(self.closed_cues),
                "counts": dict(self.counts),
                "ellipse_level": ELLIPSE_LEVEL,
            }

    # ---- internals

    def _track_json(self, tid: int) -> dict[str, Any]:
        t = dict(self.tracks[tid])
        t["history"] = [list(p) for p in self._history.get(tid, ())]
        return t

    def _update_rows(self, upd: TrackUpdate):
        llh, vel, P = update_geodetic(upd, self._frame)
        t = np.full(len(upd), float(upd.t_s))
        return float(upd.t_s), upd, llh, vel, P, t

    def _picture_rows(self, pic: TrackPicture):
        llh, vel, P = picture_geodetic(pic)
        return float(pic.t_s), pic, llh, vel, P, np.asarray(pic.t_upd_s, dtype=np.float64)

    def _tracks(
        self, t_s, src, llh, vel, P, t_upd, full: bool, scope: set[int] | None = None
    ) -> list[tuple[str, Any]]:
        self.t_s = max(self.t_s, t_s)
        if not np.isfinite(llh).all() or not np.isfinite(P).all():
            raise ValueError("non-finite track state")
        course, speed = course_speed(vel) if len(vel) else (np.zeros(0), np.zeros(0))
        changed: list[dict[str, Any]] = []
        removed: list[int] = []
        seen: set[int] = set()
        for i in range(len(src.id)):
            tid = int(src.id[i])
            status = int(src.status[i])
            if status == _FREE or (self.confirmed_only and status == _TENTATIVE):
                if tid in self.tracks:
                    self._drop(tid)
                    removed.append(tid)
                continue
            seen.add(tid)
            a_m, b_m, bearing = error_ellipse(P[i, :2, :2])
            cls = int(src.cls[i])
            rec = {
                "id": tid,
                "t_s": float(t_upd[i]),
                "lat": float(llh[i, 0]),
                "lon": float(llh[i, 1]),
                "alt": float(llh[i, 2]),
                "course_deg": float(course[i]),
                "speed_mps": float(speed[i]),
                "cls": CLASS_NAMES[cls] if cls < len(CLASS_NAMES) else "unknown",
                "ident": ident_str(src.ident[i]),
                "status": TRACK_STATUS_NAMES[status],
                "n_sensors": int(src.n_sensors[i]),
                "ellipse": {"a_m": a_m, "b_m": b_m, "bearing_deg": bearing},
            }
            self.tracks[tid] = rec
            self._cls_code[tid] = cls
            hist = self._history.setdefault(tid, deque(maxlen=self.history_len))
            point = (rec["lat"], rec["lon"], rec["t_s"])
            if not hist or hist[-1] != point:
                hist.append(point)
            changed.append(self._track_json(tid))
        stale_before = self.t_s - self.track_timeout_s
        for tid in list(self.tracks):
            absent = tid not in seen
            gone = absent and (full or (scope is not None and self._cls_code[tid] in scope))
            if gone or self.tracks[tid]["t_s"] < stale_before:
                self._drop(tid)
                removed.append(tid)
        deltas: list[tuple[str, Any]] = []
        if changed or removed:
            deltas.append(("tracks", {"t_s": self.t_s, "tracks": changed, "removed": removed}))
        return deltas

    def _drop(self, tid: int) -> None:
        self._cls_code.pop(tid, None)
        self.tracks.pop(tid, None)
        self._history.pop(tid, None)

    def _cue(self, body: dict[str, Any]) -> list[tuple[str, Any]]:
        if "id" not in body:
            raise KeyError("cue without id")
        view = cue_view(body)
        cue_id = str(view["id"])
        view["id"] = cue_id
        state = view.get("state") or "open"
        t = view.get("t_s")
        if isinstance(t, int | float):
            self.t_s = max(self.t_s, float(t))
        if state == "close":
            prev = self.open_cues.pop(cue_id, None)
            if prev is not None and view.get("opened_t_s") is None:
                view["opened_t_s"] = prev.get("opened_t_s")
            self.closed_cues.appendleft(view)
            self.counts["cues_closed"] += 1
        else:
            prev = self.open_cues.get(cue_id)
            if view.get("opened_t_s") is None:
                view["opened_t_s"] = prev["opened_t_s"] if prev else view.get("t_s")
            if prev is None:
                self.counts["cues_opened"] += 1
            self.open_cues[cue_id] = view
        return [("cue", view)]
