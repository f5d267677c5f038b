"""`fusion map [--replay DIR] [--connect ENDPOINT] [--port N]`: the live operator map.

Serves the page (fusion/web) with the sites, the live tracks and the cues, fed from the
fusion PUB stream (default) or from a replay's output directory, paced with `--speed`.
`--screenshot FILE` renders the page once in headless Debian chromium and exits (for the docs).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path
from typing import Any

from fusion.commands.cot import (
    add_client_args,
    open_replay,
    replay_pairs,
    subscribe_stream,
    subscription_pairs,
)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # containers (CI) often give /dev/shm only 64 MB, too little for chromium's renderer
    "--disable-dev-shm-usage",
]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "map",
        help="serve the live operator map (sites, tracks, cues) over HTTP",
        description="A self-contained web map: no tiles, no CDN; live over Server-Sent Events.",
    )
    add_client_args(p)
    p.add_argument("--replay", type=Path, help="play a replay output directory instead")
    p.add_argument("--speed", type=float, default=10.0, help="replay pacing, x real time (0: all)")
    p.add_argument("--until", type=float, help="replay only the first S seconds of data")
    p.add_argument("--sites", type=Path, help="site file (default: the replay's or the config's)")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on")
    p.add_argument("--port", type=int, default=8080, help="HTTP port (0: any free)")
    p.add_argument("--duration", type=float, default=0.0, help="stop after S seconds (0 never)")
    p.add_argument("--screenshot", type=Path, help="save a screenshot of the page and exit")
    p.add_argument("--size", default="1400x900", help="screenshot size WxH")
    p.set_defaults(func=main)


def _sites(args: argparse.Namespace, default: Path | None) -> tuple[dict[str, Any], Any]:
    from fusion.export import sites_geojson
    from fusion.sites import load_sites

    path = args.sites or default
    if path is None:
        try:
            from fusion.config import load_config

            path = load_config(args.config, run_dir=args.run_dir).theatre.sites
        except Exception:  # no config: the map simply has no sites
            path = None
    if path is None:
        return sites_geojson(None), None
    siteset = load_sites(path)
    return sites_geojson(siteset), siteset


def _origin(manifest: dict[str, Any]) -> tuple[float, float, float] | None:
    """The theatre origin a replay ran in (its summary.json), when it says."""
    o = manifest.get("origin")
    if isinstance(o, list) and len(o) in (2, 3) and all(isinstance(v, int | float) for v in o):
        return (float(o[0]), float(o[1]), float(o[2]) if len(o) > 2 else 0.0)
    return None


def main(args: argparse.Namespace) -> int:
    from fusion.mapserver import MapServer
    from fusion.mapstate import MapState
    from fusion.sites import SiteError

    stop = threading.Event()
    sub = None
    try:
        if args.replay:
            out = open_replay(args, "map")
            if out is None:
                return 2
            sites, siteset = _sites(args, out.sites_path)
            origin = _origin(out.manifest) or (siteset.frame.origin if siteset else None)
            speed = 0.0 if args.screenshot else args.speed
            source = replay_pairs(out.pairs(), speed, stop, until_s=args.until)
        else:
            opened = subscribe_stream(args, "map")
            if opened is None:
                return 1
            sub, config = opened
            sites, _ = _sites(args, config.theatre.sites)
            origin = config.theatre.origin
            source = subscription_pairs(sub, stop)
    except SiteError as exc:
        print(f"fusion map: sites: {exc}", file=sys.stderr)
        return 2
    state = MapState(sites, origin=origin, full_updates=bool(args.replay))
    try:
        server = MapServer(state, host=args.host, port=args.port, source=source).start()
    except OSError as exc:
        print(f"fusion map: cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    try:
        if args.screenshot:
            server.feed_done.wait(timeout=120)
            return screenshot(server.url, args.screenshot, args.size)
        print(f"fusion map: serving {server.url}  (Ctrl-C to stop)", file=sys.stderr)
        deadline = time.monotonic() + args.duration if args.duration > 0 else None
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        # the feeder thread owns the SUB socket until it returns (within its idle poll)
        server.feed_done.wait(3)
        server.stop()
        if sub is not None:
            sub.close()
    return 0


def screenshot(url: str, path: Path, size: str = "1400x900", select_first_cue: bool = True) -> int:
    """Render `url` in headless Debian chromium (Playwright) and save a PNG."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("fusion map: --screenshot needs the playwright package", file=sys.stderr)
        return 2
    if not Path(CHROMIUM).exists():
        print(f"fusion map: --screenshot needs chromium at {CHROMIUM}", file=sys.stderr)
        return 2
    w, h = (int(v) for v in size.lower().split("x"))
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": w, "height": h})
            page.goto(url)
            page.wait_for_function("window.fusionMap && window.fusionMap.state.connected")
            page.wait_for_timeout(500)
            if select_first_cue:
                first = page.locator("#cue-list li").first
                if first.count():
                    first.click()
                    page.evaluate("() => { window.fusionMap.fit(); }")
            page.wait_for_timeout(400)
            path.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(path))
        finally:
            browser.close()
    print(f"fusion map: screenshot {path}", file=sys.stderr)
    return 0
