"""Reading what `fusion replay --out DIR` leaves behind, for export and for the map.

This module owns the reader side of a replay's output directory (fusion.replay writes it):

    cues.jsonl     one cue lifecycle event (a cue body) per line, in publication order
    tracks.jsonl   the tracks over time, one JSON object per line, either a whole update
                   {"t_s", "id": [...], "pos": [[lat, lon, alt], ...], "vel", "P", "status",
                   "ident", "cls", "n_sensors"} or one track per line {"t_s", "id", "lat_deg",
                   "lon_deg", "alt_m", "vel", "P", "status", "ident", "cls", "n_sensors"}
                   (lines with the same t_s form one update); status and cls may be codes or
                   names; uncertainty is `P` (6x6), `P_h` (2x2 east-north) or `sigma_m`
                   (sqrt of the trace of the position covariance, read as isotropic)
    tracks.npz     read when tracks.jsonl is absent (a `fusion demo` run directory): flat
                   theatre-ENU arrays t_s, id, pos, vel, sigma_m, status, ident, cls and the
                   frame's `origin`
    sites          `sites.geojson` in the directory, the path named by "sites" in
                   summary.json / manifest.json / run.json, or the theatre.sites of the
                   directory's fusion.toml

Each sample instant holds the whole picture at that time (a track absent from it is gone).
It gives the final picture, the cues still open, and the whole run as (topic, message) pairs
in time order, which is what the map and the CoT bridge consume (with full_updates on).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fusion.messages import CLASS_NAMES, TRACK_STATUS_NAMES, CueEvent, TrackUpdate

MANIFESTS = ("summary.json", "manifest.json", "run.json")


class ReplayOutputError(ValueError):
    """The directory is not a readable replay output; the message says what is wrong where."""


@dataclass
class ReplayOutput:
    path: Path
    cues: list[dict[str, Any]] = field(default_factory=list)
    track_frames: list[TrackUpdate] = field(default_factory=list)
    sites_path: Path | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    bad_lines: int = 0

    def final_tracks(self) -> TrackUpdate | None:
        """The tracks of the last sample instant (each line of tracks.jsonl, or each group of
        rows with one t_s, is the whole picture at that instant), without those ended free."""
        if not self.track_frames:
            return None
        last = self.track_frames[-1]
        rows = [(last, i) for i in np.argsort(last.id, kind="stable") if int(last.status[i])]
        return _stack(last.t_s, rows)

    def open_cues(self) -> list[dict[str, Any]]:
        from fusion.export import open_cues

        return open_cues(self.cues)

    def pairs(self) -> Iterator[tuple[str, Any]]:
        """Track updates and cue events merged in time order (cues after tracks of the same
        time, as the service publishes them after the step that caused them)."""
        items: list[tuple[float, int, int, str, Any]] = []
        for k, fr in enumerate(self.track_frames):
            items.append((float(fr.t_s), 0, k, "trk", fr))
        for k, body in enumerate(self.cues):
            t = body.get("t_s")
            t = float(t) if isinstance(t, int | float) else 0.0
            topic = f"cue.{body.get('rule')}.{body.get('site')}"
            items.append((t, 1, k, topic, CueEvent(body=body)))
        items.sort(key=lambda x: (x[0], x[1], x[2]))
        for _t, _, _, topic, msg in items:
            yield topic, msg


def _stack(t_s: float, rows: list[tuple[TrackUpdate, int]]) -> TrackUpdate:
    def col(name: str, dtype: Any, shape: tuple[int, ...]) -> np.ndarray:
        if not rows:
            return np.zeros((0, *shape), dtype)
        return np.stack([np.asarray(getattr(fr, name)[i], dtype) for fr, i in rows])

    return TrackUpdate(
        t_s=t_s,
        id=col("id", np.int64, ()),
        pos=col("pos", np.float64, (3,)),
        vel=col("vel", np.float64, (3,)),
        P=col("P", np.float64, (6, 6)),
        status=col("status", np.uint8, ()),
        ident=col("ident", "S24", ()),
        cls=col("cls", np.uint8, ()),
        n_sensors=col("n_sensors", np.uint8, ()),
    )


def _code(value: Any, names: tuple[str, ...], default: int) -> int:
    if isinstance(value, str):
        return names.index(value) if value in names else default
    if value is None:
        return default
    return int(value)


def _row_update(rows: list[dict[str, Any]]) -> TrackUpdate:
    n = len(rows)
    pos = np.zeros((n, 3))
    vel = np.zeros((n, 3))
    P = np.zeros((n, 6, 6))
    for k, r in enumerate(rows):
        if "pos" in r:
            p = list(r["pos"]) + [0.0] * (3 - len(r["pos"]))
            pos[k] = p[:3]
        else:
            pos[k] = (
                r.get("lat_deg", r.get("lat")),
                r.get("lon_deg", r.get("lon")),
                r.get("alt_m", r.get("alt", 0.0)) or 0.0,
            )
        if r.get("vel") is not None:
            vel[k] = r["vel"]
        if r.get("P") is not None:
            P[k] = np.asarray(r["P"], dtype=np.float64).reshape(6, 6)
        elif r.get("P_h") is not None:
            P[k, :2, :2] = np.asarray(r["P_h"], dtype=np.float64).reshape(2, 2)
        elif r.get("sigma_m") is not None:
            # fusion.replay writes sqrt(trace) of the position covariance: without the
            # shape, the best reading is an isotropic error, sigma^2 / 3 on each axis
            var = float(r["sigma_m"]) ** 2 / 3.0
            P[k, 0, 0] = P[k, 1, 1] = P[k, 2, 2] = var
    return TrackUpdate(
        t_s=float(rows[0]["t_s"]),
        id=np.array([int(r["id"]) for r in rows], np.int64),
        pos=pos,
        vel=vel,
        P=P,
        status=np.array([_code(r.get("status"), TRACK_STATUS_NAMES, 2) for r in rows], np.uint8),
        ident=np.array([str(r.get("ident") or "").encode() for r in rows], "S24"),
        cls=np.array([_code(r.get("cls"), CLASS_NAMES, 0) for r in rows], np.uint8),
        n_sensors=np.array([int(r.get("n_sensors", 1) or 0) for r in rows], np.uint8),
    )


def _whole_update(d: dict[str, Any]) -> TrackUpdate:
    ids = np.asarray(d["id"], np.int64).reshape(-1)
    n = ids.shape[0]
    rows = [
        {
            "t_s": d["t_s"],
            "id": int(ids[k]),
            "pos": d["pos"][k],
            "vel": d["vel"][k] if d.get("vel") is not None else None,
            "P": d["P"][k] if d.get("P") is not None else None,
            "P_h": d["P_h"][k] if d.get("P_h") is not None else None,
            "sigma_m": d["sigma_m"][k] if d.get("sigma_m") is not None else None,
            "status": (d.get("status") or [2] * n)[k],
            "ident": (d.get("ident") or [""] * n)[k],
            "cls": (d.get("cls") or [0] * n)[k],
            "n_sensors": (d.get("n_sensors") or [1] * n)[k],
        }
        for k in range(n)
    ]
    if not rows:
        return _stack(float(d["t_s"]), [])
    return _row_update(rows)


def _read_jsonl(path: Path) -> tuple[list[dict[str, Any]], int]:
    out, bad = [], 0
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                bad += 1
                continue
            if isinstance(obj, dict):
                out.append(obj)
            else:
                bad += 1
    return out, bad


def read_replay_dir(path: str | Path) -> ReplayOutput:
    """Read a replay output directory; raises ReplayOutputError when it holds neither cues
    nor tracks. Malformed lines are skipped and counted in `bad_lines`."""
    root = Path(path)
    if not root.is_dir():
        raise ReplayOutputError(f"{root}: not a directory")
    out = ReplayOutput(path=root)
    for name in MANIFESTS:
        if (root / name).is_file():
            try:
                out.manifest = json.loads((root / name).read_text())
            except json.JSONDecodeError as exc:
                raise ReplayOutputError(f"{root / name}: not JSON: {exc}") from exc
            break
    cue_file = root / "cues.jsonl"
    if cue_file.is_file():
        out.cues, bad = _read_jsonl(cue_file)
        out.bad_lines += bad
        out.cues = [c for c in out.cues if "id" in c]
    trk_file = root / "tracks.jsonl"
    if trk_file.is_file():
        lines, bad = _read_jsonl(trk_file)
        out.bad_lines += bad
        pending: list[dict[str, Any]] = []
        for d in lines:
            try:
                if isinstance(d.get("id"), list):
                    if pending:
                        out.track_frames.append(_row_update(pending))
                        pending = []
                    out.track_frames.append(_whole_update(d))
                else:
                    if pending and d.get("t_s") != pending[0].get("t_s"):
                        out.track_frames.append(_row_update(pending))
                        pending = []
                    pending.append(d)
            except (KeyError, TypeError, ValueError, IndexError):
                out.bad_lines += 1
        if pending:
            try:
                out.track_frames.append(_row_update(pending))
            except (KeyError, TypeError, ValueError, IndexError):
                out.bad_lines += 1
    npz_file = root / "tracks.npz"
    if not trk_file.is_file() and npz_file.is_file():
        try:
            out.track_frames, origin = _frames_from_npz(npz_file)
        except (OSError, KeyError, ValueError) as exc:
            raise ReplayOutputError(f"{npz_file}: {exc}") from exc
        out.manifest.setdefault("origin", origin)
    if not cue_file.is_file() and not trk_file.is_file() and not npz_file.is_file():
        raise ReplayOutputError(f"{root}: no cues.jsonl, tracks.jsonl or tracks.npz")
    if (root / "sites.geojson").is_file():
        out.sites_path = root / "sites.geojson"
    elif isinstance(out.manifest.get("sites"), str):
        p = Path(out.manifest["sites"])
        out.sites_path = p if p.is_absolute() else (root / p if (root / p).exists() else p)
    elif (root / "fusion.toml").is_file():
        from fusion.config import ConfigError, load_config

        try:
            out.sites_path = load_config(root / "fusion.toml", run_dir=root).theatre.sites
        except ConfigError:
            pass
    return out


def _frames_from_npz(path: Path) -> tuple[list[TrackUpdate], list[float]]:
    """Track updates (one per sample instant) from the flat ENU arrays of tracks.npz."""
    from fusion.geo import LocalFrame

    with np.load(path) as z:
        arr = {k: z[k] for k in z.files}
    origin = [float(v) for v in np.asarray(arr["origin"], dtype=np.float64).reshape(-1)[:3]]
    t = np.asarray(arr["t_s"], dtype=np.float64)
    n = t.shape[0]
    if n == 0:
        return [], origin
    llh = LocalFrame(*origin).to_geodetic(np.asarray(arr["pos"], dtype=np.float64).reshape(n, 3))
    var = np.asarray(arr.get("sigma_m", np.zeros(n)), dtype=np.float64) ** 2 / 3.0
    P = np.zeros((n, 6, 6))
    P[:, 0, 0] = P[:, 1, 1] = P[:, 2, 2] = var  # sqrt(trace) only: read as isotropic
    order = np.argsort(t, kind="stable")
    times, starts = np.unique(t[order], return_index=True)
    bounds = list(starts[1:]) + [n]
    frames = []
    for t_s, a, b in zip(times, starts, bounds, strict=True):
        rows = order[a:b]
        frames.append(
            TrackUpdate(
                t_s=float(t_s),
                id=np.asarray(arr["id"], np.int64)[rows],
                pos=llh[rows],
                vel=np.asarray(arr["vel"], np.float64).reshape(n, 3)[rows],
                P=P[rows],
                status=np.asarray(arr["status"], np.uint8)[rows],
                ident=np.asarray(arr["ident"], "S24")[rows],
                cls=np.asarray(arr["cls"], np.uint8)[rows],
                n_sensors=np.ones(len(rows), np.uint8),
            )
        )
    return frames, origin
