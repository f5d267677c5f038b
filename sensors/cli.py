"""The `sensors` command: one sub-command per module in sensors/commands.

Each module in COMMANDS defines `register(subparsers)`, which adds its parser and sets
`func` to a callable taking the parsed args and returning an exit code.
"""

from __future__ import annotations

import argparse
import sys

from fusion import commandline

COMMANDS = [
    # one line per sub-command module in sensors/commands
    "run",
    "convert",
    "replay",
]


def build_parser() -> argparse.ArgumentParser:
    return commandline.build_parser(
        "sensors",
        "Sensor adapters for surveillance nodes: run, convert, replay.",
        "sensors.commands",
        COMMANDS,
    )


def main(argv: list[str] | None = None) -> int:
    return commandline.run(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
