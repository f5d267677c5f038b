"""The machinery shared by the `fusion` and `sensors` commands: sub-commands from modules.

Each sub-command lives in its own module with `register(subparsers)`, which adds its parser and
sets `func` to a callable taking the parsed arguments and returning an exit code.
"""

from __future__ import annotations

import argparse
import importlib


def build_parser(
    prog: str, description: str, package: str, commands: list[str]
) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in commands:
        importlib.import_module(f"{package}.{name}").register(sub)
    return parser


def run(parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    """Parses `argv` and runs the chosen sub-command; no sub-command prints the help (exit 2)."""
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
