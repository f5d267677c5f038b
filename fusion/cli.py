"""The `fusion` command: one sub-command per module in fusion/commands.

Each module in COMMANDS defines `register(subparsers)`, which adds its parser and sets
`func` to a callable taking the parsed args and returning an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = [
    # one line per sub-command module in fusion/commands
    "bench",
    "run",
    "keys",
    "subscribe",
    "cot",
    "export",
    "map",
    "scenario",
    "replay",
    "evaluate",
    "cues",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fusion",
        description="Remote-surveillance sensor fusion: tracking, breach cues, replay, service.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"fusion.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
