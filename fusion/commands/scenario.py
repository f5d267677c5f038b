"""`fusion scenario [--out DIR] [--seed N] [--duration S]`: write a simulated feed and its truth.

Builds the demo scenario on a site file, simulates its sensors and writes `demo.feed` (frames
as the service would receive them) and the truth (`fusion.scenario.files`) into DIR, ready for
`fusion replay DIR/demo.feed --sites SITES --out DIR` and `fusion evaluate DIR --truth DIR`.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "scenario",
        help="write the simulated demo scenario as a feed file plus its ground truth",
        description="Simulate the demo scenario's sensors into a feed file, with ground truth.",
    )
    p.add_argument("--sites", type=Path, default=None, help="site file (default: the demo's)")
    p.add_argument("--out", type=Path, default=Path("run/scenario"), help="output directory")
    p.add_argument("--seed", type=int, default=7, help="scenario and noise seed")
    p.add_argument("--duration", type=float, default=480.0, help="scenario length, s")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from rich.console import Console

    from fusion.scenario import DEMO_SITES, build_demo
    from fusion.scenario.files import write_truth
    from sensors.sim import write_feed

    console = Console()
    sc = build_demo(args.sites or DEMO_SITES, seed=args.seed, duration_s=args.duration)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    n = write_feed(sc, out / "demo.feed")
    write_truth(sc, out)
    console.print(
        f"[bold]scenario[/] {sc.name} seed {sc.seed}: {len(sc.targets)} objects, "
        f"{len(sc.sensors)} sensors, {n} frames -> {out / 'demo.feed'}"
    )
    for b in sc.breaches:
        console.print(f"  breach at {b.t_s:7.1f} s  {b.rule:<14} {b.site:<16} {b.name}")
    return 0
