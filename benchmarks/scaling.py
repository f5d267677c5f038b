"""Tracker throughput against target count, ours and the peers, as a table and a plot.

Runs the tracker benchmark (`benchmarks.tracker`, the standard constant-density scenario) at
several target counts, each in its own process so that peak memory and compiled state do not
leak between sizes, with the peers at the sizes where they finish in reasonable time:
Stone Soup up to 200 targets, the filterpy loop up to 1,000. Writes the figures as JSON and the
plot `benchmarks/results/throughput.png`.

    python -m benchmarks.scaling [--sizes 100,200,1000,10000,100000] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from fusion.plots import plot_throughput

RESULTS = Path(__file__).resolve().parent / "results"
PEER_LIMITS = {"stonesoup": 200, "filterpy": 1000}  # largest N each peer is run at


def scans_for(n: int) -> int:
    return 10 if n <= 1000 else (6 if n <= 10_000 else 3)


def run_size(n: int, peers: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        cmd = [
            sys.executable,
            "-m",
            "benchmarks.tracker",
            "--targets",
            str(n),
            "--scans",
            str(scans_for(n)),
            "--json",
            str(out),
        ]
        if peers:
            cmd += ["--peers", ",".join(peers)]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Tracker throughput against target count.")
    parser.add_argument("--sizes", default="100,200,1000,10000,100000", help="target counts")
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--png", default=str(RESULTS / "throughput.png"), help="plot path")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    series: dict[str, tuple[list[float], list[float]]] = {}
    rows = []
    for n in sizes:
        peers = [p for p, limit in PEER_LIMITS.items() if n <= limit]
        res = run_size(n, peers)
        row = {
            "targets": n,
            "ours_detections_per_s": res["detections_per_s"],
            "ours_ms_per_scan": res["ms_per_scan"],
        }
        series.setdefault("ours (numba)", ([], []))
        series["ours (numba)"][0].append(n)
        series["ours (numba)"][1].append(res["detections_per_s"])
        for name, peer in res["peers"].items():
            series.setdefault(name, ([], []))
            series[name][0].append(n)
            series[name][1].append(peer["detections_per_s"])
            row[f"{name}_detections_per_s"] = peer["detections_per_s"]
            row[f"ratio_over_{name}"] = res["detections_per_s"] / peer["detections_per_s"]
        rows.append(row)
        print(json.dumps(row))
    plot_throughput(series, args.png)
    result = {"sizes": rows, "plot": str(Path(args.png).name)}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
