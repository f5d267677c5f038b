"""`sensors replay FEED --endpoint ... [--speed N | --fast]`: a recorded feed sent to fusion
through the same link a live adapter uses."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "replay", help="send a recorded feed file to fusion at real time, N times faster or fast"
    )
    p.add_argument("feed", type=Path, help="feed file or directory of *.feed files")
    p.add_argument("--endpoint", required=True, help="fusion ingest endpoint, tcp://HOST:PORT")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--speed", type=float, default=1.0, help="times real time (1.0)")
    pace.add_argument("--fast", action="store_true", help="as fast as possible")
    p.add_argument("--retime", action="store_true", help="shift measurement times to now")
    p.add_argument("--sensor", default="replay", help="sensor id for heartbeats (replay)")
    p.add_argument("--client-cert", help="this node's .key_secret certificate file")
    p.add_argument("--server-key", help="fusion's public .key file (or Z85 text)")
    p.add_argument("--plaintext", action="store_true", help="no CURVE (loopback endpoints only)")
    p.add_argument("--drain-s", type=float, default=10.0, help="wait for acks at the end (10 s)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from sensors.base import Link, LinkConfig
    from sensors.replay import replay_feed

    try:
        link = Link(
            LinkConfig(
                endpoint=args.endpoint,
                sensor=args.sensor,
                client_cert=args.client_cert,
                server_key=args.server_key,
                plaintext=args.plaintext,
                overflow="block",
            )
        )
    except (ValueError, OSError) as e:
        print(f"sensors replay: {e}", file=sys.stderr)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    link.start()
    try:
        st = replay_feed(
            args.feed,
            link.submit,
            speed=None if args.fast else args.speed,
            retime=args.retime,
            stop=stop.is_set,
        )
    except (OSError, ValueError) as e:
        print(f"sensors replay: {e}", file=sys.stderr)
        link.close(0.5)
        return 1
    delivered = link.flush(args.drain_s)
    link.close(0.5)
    print(
        f"replayed {st.batches} batches, {st.detections} detections in {st.wall_s:.1f} s; "
        f"{'all acknowledged' if delivered else f'{link.pending} batches unacknowledged'}"
        + (f"; skipped {st.skipped}" if st.skipped else "")
    )
    return 0 if delivered else 1
