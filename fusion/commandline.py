"""The machinery shared by the `fusion` and `sensors` commands: sub-commands from modules, and
the parsing of option values both take (a `LAT,LON,ALT` position).

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


def parse_llh(text: str) -> tuple[float, float, float]:
    """`"46.5,31.0,12"` -> (46.5, 31.0, 12.0): exactly three comma-separated numbers (latitude
    and longitude in degrees, altitude in metres); ValueError otherwise."""
    parts = [float(v) for v in text.split(",")]
    if len(parts) != 3:
        raise ValueError(f"{text!r}: want three numbers LAT,LON,ALT")
    return parts[0], parts[1], parts[2]
