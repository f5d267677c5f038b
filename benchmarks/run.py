"""`make bench`: runs every benchmark, then rewrites BENCHMARKS.md.

Each benchmark is a module ``benchmarks.<name>`` run in its own process with ``--json``; its
written analysis lives in ``benchmarks/results/<name>.md`` and the figures of this run are
appended under it as a table, with the exact command, so every number has its command beside it.

    python -m benchmarks.run [--only NAME ...] [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"

# name -> (arguments of the full run, arguments of a quick run)
BENCHMARKS: dict[str, tuple[list[str], list[str]]] = {
    "protocol": (["--batches", "2000"], ["--batches", "200"]),
    "geo": (["--points", "200000", "--tracks", "20000"], ["--points", "20000", "--tracks", "2000"]),
    "tracker": (
        ["--targets", "1000", "--scans", "20", "--peers", "filterpy"],
        ["--targets", "200", "--scans", "5"],
    ),
    "scaling": ([], ["--sizes", "100,1000"]),
    "rules": ([], []),
    "decoders": ([], []),
    "pipeline": ([], []),
    "evaluation": ([], []),
    "cot": ([], ["--cues", "100", "--burst", "500"]),
}


def _flatten(d: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        elif isinstance(v, int | float | str | bool) or v is None:
            out[key] = v
    return out


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:,.3f}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def run_one(name: str, args: list[str], out_dir: Path) -> tuple[str, dict | None, str]:
    json_path = out_dir / f"{name}.json"
    cmd = [sys.executable, "-m", f"benchmarks.{name}", *args, "--json", str(json_path)]
    shown = " ".join(["python", "-m", f"benchmarks.{name}", *args])
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0 or not json_path.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        return shown, None, "\n".join(tail)
    return shown, json.loads(json_path.read_text()), ""


def render(
    results: dict[str, tuple[str, dict | None, str]], seconds: float, when: str | None = None
) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python -m benchmarks.run`). Each section holds the analysis and",
        "the recorded figures of that benchmark, then the latest run's figures with its command.",
        (
            f"Latest run: {when or time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
            f"{platform.machine()}, Python {platform.python_version()}, {seconds:.0f} s in all."
            if seconds
            else "Assembled with `--render-only` from the recorded figures and the JSON of the "
            "latest full run."
        ),
        "",
    ]
    for name in BENCHMARKS:
        fragment = RESULTS / f"{name}.md"
        if fragment.exists():
            lines += [fragment.read_text().rstrip(), ""]
        else:
            lines += [f"## {name}", ""]
        if name not in results:
            continue
        cmd, result, error = results[name]
        lines += [f"Latest run: `{cmd}`", ""]
        if result is None:
            lines += ["The latest run failed:", "", "```", error, "```", ""]
            continue
        lines += ["| figure | value |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in _flatten(result).items()]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the benchmarks and rewrite BENCHMARKS.md.")
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHMARKS), help="run only these")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--out", default=str(ROOT / "out" / "bench"), help="JSON results folder")
    parser.add_argument(
        "--no-write", action="store_true", help="do not rewrite BENCHMARKS.md (print only)"
    )
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="rewrite BENCHMARKS.md from the recorded fragments without running anything",
    )
    args = parser.parse_args(argv)
    if args.render_only:
        # Reuse the JSON of the latest full run where it is there, so the tables survive an
        # edit of the written analysis.
        saved: dict[str, tuple[str, dict | None, str]] = {}
        for name, (full, _) in BENCHMARKS.items():
            path = Path(args.out) / f"{name}.json"
            if path.exists():
                cmd = " ".join(["python", "-m", f"benchmarks.{name}", *full])
                saved[name] = (cmd, json.loads(path.read_text()), "")
        meta_path = Path(args.out) / "run.json"
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        text = render(saved, meta.get("seconds", 0.0), meta.get("when"))
        (ROOT / "BENCHMARKS.md").write_text(text + "\n")
        print(f"wrote {ROOT / 'BENCHMARKS.md'}")
        return 0
    names = args.only or list(BENCHMARKS)
    names = [n for n in names if (Path(__file__).parent / f"{n}.py").exists()]
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, tuple[str, dict | None, str]] = {}
    t0 = time.perf_counter()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    ) as progress:
        task = progress.add_task("benchmarks", total=len(names))
        for name in names:
            progress.update(task, description=f"benchmark {name}")
            full, quick = BENCHMARKS[name]
            results[name] = run_one(name, quick if args.quick else full, out_dir)
            status = "ok" if results[name][1] is not None else "FAILED"
            progress.console.print(f"{name}: {status}  ({results[name][0]})")
            progress.advance(task)
    seconds = time.perf_counter() - t0
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    if not args.only and not args.quick:
        (out_dir / "run.json").write_text(json.dumps({"seconds": seconds, "when": when}))
    text = render(results, seconds, when)
    if args.no_write:
        print(text)
    else:
        (ROOT / "BENCHMARKS.md").write_text(text + "\n")
        print(f"wrote {ROOT / 'BENCHMARKS.md'}")
    return 0 if all(r[1] is not None for r in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
