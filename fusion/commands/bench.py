"""`fusion bench tracker --targets N --scans S [--peers stonesoup,filterpy] [--json PATH]`.

Runs a benchmark of `benchmarks/` in-process; each benchmark kind is a sub-command of `bench`.
The benchmark code lives beside the package (benchmarks/, in the source checkout), so this
module only finds it and hands over its arguments.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[2]


def _benchmark(name: str):
    try:
        return importlib.import_module(f"benchmarks.{name}")
    except ModuleNotFoundError:
        if str(_ROOT) not in sys.path and (_ROOT / "benchmarks").is_dir():
            sys.path.insert(0, str(_ROOT))
            return importlib.import_module(f"benchmarks.{name}")
        raise


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench",
        help="run a benchmark (tracker against Stone Soup and filterpy)",
        description="Benchmarks with their standard scenarios; see benchmarks/results/*.md.",
    )
    sub = p.add_subparsers(dest="bench", metavar="BENCHMARK")
    t = sub.add_parser(
        "tracker",
        help="the numba tracker on a constant-density CV scenario, optionally against peers",
        description="Times only the tracking; GOSPA and peak RSS per tracker; --json writes "
        "targets, scans, detections, seconds, detections_per_s, ms_per_scan, gospa_mean, "
        "peak_rss_mb and the same keys per peer under 'peers'.",
    )
    t.add_argument("--targets", type=int, default=1000, help="number of targets N")
    t.add_argument("--scans", type=int, default=20, help="number of scans")
    t.add_argument("--peers", default="", help="comma-separated: stonesoup,filterpy")
    t.add_argument("--seed", type=int, default=1, help="scenario seed")
    t.add_argument("--json", type=Path, default=None, help="write the figures here")
    t.set_defaults(func=_tracker)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _tracker(args: argparse.Namespace) -> int:
    try:
        mod = _benchmark("tracker")
    except ModuleNotFoundError:
        print("fusion bench: benchmarks/ not found (run from the source checkout)", file=sys.stderr)
        return 2
    try:
        return mod.main(args)
    except ValueError as exc:
        print(f"fusion bench tracker: {exc}", file=sys.stderr)
        return 2
