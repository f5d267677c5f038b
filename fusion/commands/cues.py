"""`fusion cues`: list cue events from the cue store, as a table or JSON.

    fusion cues [--db PATH] [--since WHEN] [--until WHEN] [--after-seq N] [--site ID]
                [--type RULE] [--state open|update|close] [--open] [--limit N] [--json]

WHEN is an ISO 8601 time (`2026-11-25T10:00:00Z`), Unix seconds (`1764064800`), or an age
relative to now (`90s`, `15m`, `2h`, `1d`). Without --db the store named by the service
configuration (`fusion.toml`, else `run/cues.sqlite`) is read. --json prints a JSON array of
cue bodies (with their seq); the default is a table, newest last.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from fusion.rules.params import RULES

_AGE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan"}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("cues", help="list cues from the cue store (table or JSON)")
    p.add_argument("--db", type=Path, help="cue store (default: the service's store)")
    p.add_argument("--config", type=Path, help="service configuration naming the store")
    p.add_argument("--since", help="from this time: ISO 8601, Unix s, or an age (15m, 2h)")
    p.add_argument("--until", help="up to this time (same forms as --since)")
    p.add_argument("--after-seq", type=int, help="only cues with seq greater than this")
    p.add_argument("--site", help="site id")
    p.add_argument("--type", choices=RULES, help="rule (cue type)")
    p.add_argument("--state", choices=("open", "update", "close"), help="lifecycle step")
    p.add_argument("--open", action="store_true", help="only cues still open (latest step)")
    p.add_argument("--limit", type=int, default=200, help="at most N, the newest (0: all)")
    p.add_argument("--json", action="store_true", help="print a JSON array of cue bodies")
    p.set_defaults(func=main)


def parse_when(text: str, now_s: float | None = None) -> float:
    """Unix seconds of an ISO 8601 time, a number of Unix seconds, or an age before now."""
    text = text.strip()
    m = _AGE.match(text)
    if m:
        now = time.time() if now_s is None else now_s
        return now - float(m.group(1)) * _UNIT_S[m.group(2)]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"cannot read time {text!r} (ISO 8601, Unix s, or 15m/2h/1d)") from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _default_db(config: Path | None) -> Path:
    try:
        from fusion.config import load_config

        return Path(load_config(config).service.store)
    except Exception:  # no readable configuration: the documented default
        return Path("run/cues.sqlite")


def main(args: argparse.Namespace) -> int:
    from fusion.store import CueStore

    db = args.db or _default_db(args.config)
    if not Path(db).exists():
        print(f"fusion cues: no cue store at {db}", file=sys.stderr)
        return 2
    try:
        t_from = parse_when(args.since) if args.since else None
        t_to = parse_when(args.until) if args.until else None
    except ValueError as exc:
        print(f"fusion cues: {exc}", file=sys.stderr)
        return 2
    with CueStore(db) as store:
        if args.open:
            rows = store.open_cues()
        else:
            rows = store.query(t_from_s=t_from, t_to_s=t_to, site=args.site, rule=args.type,
                               state=args.state)  # fmt: skip
    rows = [
        b
        for b in rows
        if (args.after_seq is None or b["seq"] > args.after_seq)
        and (not args.open or _matches(b, args, t_from, t_to))
    ]
    if args.limit and len(rows) > args.limit:
        rows = rows[-args.limit :]
    try:
        if args.json:
            print(json.dumps(rows, indent=1, sort_keys=True))
        else:
            _table(rows)
    except BrokenPipeError:  # `| head`: the reader has what it wanted
        sys.stderr.close()
    return 0


def _matches(b, args, t_from, t_to) -> bool:
    return (
        (args.site is None or b["site"] == args.site)
        and (args.type is None or b["rule"] == args.type)
        and (args.state is None or b["state"] == args.state)
        and (t_from is None or b["t_s"] >= t_from)
        and (t_to is None or b["t_s"] <= t_to)
    )


def _table(rows) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(rows)} cue event" + ("s" if len(rows) != 1 else ""))
    for col, kw in (
        ("seq", {"justify": "right", "no_wrap": True}),
        ("time (UTC)", {"no_wrap": True}),
        ("state", {"no_wrap": True}),
        ("rule", {"no_wrap": True}),
        ("site", {"no_wrap": True}),
        ("track", {"justify": "right", "no_wrap": True}),
        ("severity", {"no_wrap": True}),
        ("conf", {"justify": "right", "no_wrap": True}),
        ("why", {"ratio": 1, "min_width": 40}),
    ):
        table.add_column(col, **kw)
    for b in rows:
        t = datetime.fromtimestamp(float(b["t_s"]), UTC).strftime("%m-%d %H:%M:%S")
        sev = str(b.get("severity", ""))
        table.add_row(
            str(b["seq"]),
            t,
            b["state"],
            b["rule"],
            str(b.get("site", "")),
            "" if b.get("track") is None else str(b["track"]),
            f"[{_SEVERITY_STYLE.get(sev, '')}]{sev}[/]" if sev in _SEVERITY_STYLE else sev,
            f"{float(b.get('confidence', 0.0)):.2f}",
            str(b.get("text", "")),
        )
    console = Console()
    if not console.is_terminal:  # piped or redirected: do not squeeze into 80 columns
        console = Console(width=200)
    console.print(table)
