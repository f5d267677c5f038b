"""`fusion subscribe [--topic cue] [--json]`: the live streams, after catching up from the store.

By default a live table (rich) of the latest cues, a track summary and sensor status; with
`--json`, one JSON object per line: ``{"topic", "seq", "history", "type", ...}`` where cue lines
carry the cue body, track lines the tracks (id, lat_deg, lon_deg, alt_m, vel, status, ident,
cls) and status lines the sensors and counters.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from fusion.commands.run import DEFAULT_CONFIG


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "subscribe",
        help="print the live cue/track/status stream (catching up from the store first)",
    )
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="service configuration")
    p.add_argument("--run-dir", help="run directory of the service (keys)")
    p.add_argument(
        "--topic",
        action="append",
        help="topic prefix: cue, cue.incursion, trk, status ... (repeatable; default all)",
    )
    p.add_argument("--json", action="store_true", help="JSON lines instead of the live table")
    p.add_argument("--key", default="subscriber", help="subscriber key name in keys_dir")
    p.add_argument("--since", type=int, default=0, help="catch up from this cue seq (0: all)")
    p.add_argument("--no-catch-up", action="store_true", help="live messages only")
    p.add_argument("--count", type=int, default=0, help="stop after N messages (0: never)")
    p.add_argument("--duration", type=float, default=0.0, help="stop after S seconds (0: never)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from fusion.client import FusionClient, QueryError
    from fusion.config import ConfigError, load_config

    try:
        config = load_config(args.config, run_dir=args.run_dir)
        client = FusionClient.from_config(config, key=args.key)
    except ConfigError as exc:
        print(f"fusion subscribe: {exc}", file=sys.stderr)
        return 2
    topics = args.topic or ["cue", "trk", "status"]
    deadline = time.monotonic() + args.duration if args.duration > 0 else None
    try:
        sub = client.subscribe(topics, since_seq=args.since, catch_up=not args.no_catch_up)
    except QueryError as exc:
        print(f"fusion subscribe: {exc}", file=sys.stderr)
        return 1
    view = None if args.json else _TableView()
    n = 0
    try:
        while deadline is None or time.monotonic() < deadline:
            r = sub.next(timeout_s=0.5)
            if r is None:
                if view is not None:
                    view.refresh(sub)
                continue
            n += 1
            if view is None:
                sys.stdout.write(json.dumps(to_json(r), default=_plain) + "\n")
                sys.stdout.flush()
            else:
                view.add(r, sub)
            if args.count and n >= args.count:
                break
    except KeyboardInterrupt:
        pass
    finally:
        if view is not None:
            view.close()
        sub.close()
        client.close()
    return 0


def _plain(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, bytes):
        return o.decode("utf-8", "replace")
    return str(o)


def to_json(r: Any) -> dict[str, Any]:
    """One received message as a JSON-ready dict."""
    from fusion.messages import TRACK_STATUS_NAMES, CueEvent, Status, TrackUpdate

    out: dict[str, Any] = {"topic": r.topic, "seq": r.pub_seq, "history": r.from_history}
    m = r.message
    if isinstance(m, CueEvent):
        out.update(type="cue", body=m.body)
    elif isinstance(m, TrackUpdate):
        out.update(
            type="trk",
            t_s=m.t_s,
            tracks=[
                {
                    "id": int(m.id[i]),
                    "lat_deg": float(m.pos[i, 0]),
                    "lon_deg": float(m.pos[i, 1]),
                    "alt_m": float(m.pos[i, 2]),
                    "vel_mps": [float(v) for v in m.vel[i]],
                    "status": TRACK_STATUS_NAMES[int(m.status[i])],
                    "ident": m.ident[i].decode("ascii", "replace"),
                    "cls": int(m.cls[i]),
                    "n_sensors": int(m.n_sensors[i]),
                }
                for i in range(len(m))
            ],
        )
    elif isinstance(m, Status):
        out.update(type="status", t_s=m.t_s, sensors=m.sensors, counters=m.counters)
    return out


class _TableView:
    """A rich live view: latest cues, tracks by class, sensor liveness, drops."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.live import Live

        self.cues: deque[dict[str, Any]] = deque(maxlen=20)
        self.tracks: dict[str, int] = {}
        self.sensors: dict[str, Any] = {}
        self.counters: dict[str, Any] = {}
        self.live = Live(self._render(None), console=Console(), refresh_per_second=4)
        self.live.start()

    def add(self, r: Any, sub: Any) -> None:
        from fusion.messages import CueEvent, Status, TrackUpdate

        m = r.message
        if isinstance(m, CueEvent):
            self.cues.appendleft(m.body)
        elif isinstance(m, TrackUpdate):
            self.tracks[r.topic] = len(m)
        elif isinstance(m, Status):
            self.sensors, self.counters = m.sensors, m.counters
        self.refresh(sub)

    def refresh(self, sub: Any) -> None:
        self.live.update(self._render(sub))

    def _render(self, sub: Any) -> Any:
        from rich.console import Group
        from rich.table import Table

        cues = Table(title="cues (newest first)", expand=True)
        for col in ("seq", "state", "rule", "site", "track", "severity", "why"):
            cues.add_column(col, overflow="fold")
        for b in self.cues:
            cues.add_row(
                str(b.get("seq", "")),
                str(b.get("state", "")),
                str(b.get("rule", "")),
                str(b.get("site", "")),
                str(b.get("track", "")),
                str(b.get("severity", "")),
                str(b.get("text", ""))[:120],
            )
        sensors = Table(title="sensors", expand=True)
        for col in ("sensor", "state", "reported", "heartbeat age s"):
            sensors.add_column(col)
        for name, s in sorted(self.sensors.items()):
            age = s.get("hb_age_s") if isinstance(s, dict) else None
            sensors.add_row(
                name,
                str(s.get("state", "")) if isinstance(s, dict) else "",
                str(s.get("reported", "")) if isinstance(s, dict) else "",
                "" if age is None else f"{age:.1f}",
            )
        tracks = ", ".join(f"{k}: {v}" for k, v in sorted(self.tracks.items())) or "none yet"
        missed = sub.missed if sub is not None else 0
        footer = f"tracks {tracks}   missed messages {missed}"
        return Group(cues, sensors, footer)

    def close(self) -> None:
        self.live.stop()
