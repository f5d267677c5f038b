"""`fusion evaluate RUN_DIR [--truth DIR] [--plots]`: score a replay.

Against a scenario's truth (a directory written by `fusion scenario`): GOSPA over time,
track-to-truth scores and cue scores (recall, false cues per target-hour, latency). For a
replay run with `--strip-ident`: association purity, identity switches per object-hour,
fragmentation and completeness against the stripped identities. Writes evaluation.json into
RUN_DIR (and PNG plots with --plots) and prints the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="score a replay against scenario truth or stripped identities",
        description="Score a replay output directory.",
    )
    p.add_argument("run_dir", type=Path, help="output directory of `fusion replay`")
    p.add_argument("--truth", type=Path, default=None, help="truth directory (fusion scenario)")
    p.add_argument("--assoc", type=float, default=250.0, help="track-truth distance, m")
    p.add_argument("--plots", action="store_true", help="also write map.png and gospa.png")
    p.add_argument("--sites", type=Path, default=None, help="site file for the map plot")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from rich.console import Console

    from fusion.evaluate_run import evaluate_run

    console = Console()
    try:
        report = evaluate_run(
            args.run_dir, truth_dir=args.truth, assoc_m=args.assoc, plots=args.plots,
            sites=args.sites,
        )  # fmt: skip
    except (FileNotFoundError, ValueError) as exc:
        print(f"fusion evaluate: {exc}", file=sys.stderr)
        return 2
    (Path(args.run_dir) / "evaluation.json").write_text(json.dumps(report, indent=2))
    for section, figures in report.items():
        console.print(f"[bold]{section}[/]")
        if isinstance(figures, dict):
            for k, v in figures.items():
                if isinstance(v, float):
                    v = f"{v:.4g}"
                console.print(f"  {k:<28} {v}")
    return 0
