"""`fusion run --config FILE`: the fusion service in the foreground until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "fusion.toml"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "run",
        help="run the fusion service (ingest, tracker, rules, cue store, streams, metrics)",
        description="Runs the fusion service until SIGTERM or SIGINT, then drains, snapshots "
        "and exits 0.",
    )
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="TOML configuration")
    p.add_argument("--run-dir", help="directory for keys, store and feeds (overrides run_dir)")
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from fusion.config import ConfigError, load_config

    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = load_config(args.config, run_dir=args.run_dir)
        from fusion.service.server import FusionService

        service = FusionService(config)
    except ConfigError as exc:
        print(f"fusion run: {exc}", file=sys.stderr)
        return 2
    import zmq

    try:
        return service.serve()
    except (zmq.ZMQError, OSError) as exc:
        # Typically an endpoint or the metrics port already in use.
        print(f"fusion run: cannot start: {exc}", file=sys.stderr)
        return 1
