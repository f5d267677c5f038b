"""The `fusion` command: one sub-command per module in fusion/commands.

Each module in COMMANDS defines `register(subparsers)`, which adds its parser and sets
`func` to a callable taking the parsed args and returning an exit code.
"""

from __future__ import annotations

import argparse
import sys

from fusion import commandline

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
    "demo",
]


def build_parser() -> argparse.ArgumentParser:
    return commandline.build_parser(
        "fusion",
        "Remote-surveillance sensor fusion: tracking, breach cues, replay, service.",
        "fusion.commands",
        COMMANDS,
    )


def main(argv: list[str] | None = None) -> int:
    return commandline.run(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
