"""`sensors run NODE.toml`: runs the adapters a node config lists until stopped (SIGTERM or
Ctrl-C), or until every file source has been read and delivered."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("run", help="run the sensor adapters of a node config (TOML)")
    p.add_argument("config", type=Path, help="node config, see configs/nodes/*.toml")
    p.add_argument("--log-level", default="INFO", help="logging level (INFO)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from sensors.node import ConfigError, is_file_source, load_node_config, run_node

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config = load_node_config(args.config)
    except ConfigError as e:
        print(f"sensors run: {e}", file=sys.stderr)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        runners = run_node(config, stop)
    except (ValueError, OSError) as e:
        print(f"sensors run: {e}", file=sys.stderr)
        return 2
    files_only = all(is_file_source(a.source) for a in config.adapters)
    try:
        while not stop.wait(0.5):
            if files_only and all(r.finished.is_set() for r in runners):
                break
    except KeyboardInterrupt:
        pass
    ok = True
    for r in runners:
        ok &= r.link.flush(10.0 if files_only else 2.0)
        r.close()
        logging.getLogger("sensors.run").info(
            "%s: %s; link %s", r.config.sensor, r.stats, r.link.stats
        )
    return 0 if ok or not files_only else 1
