"""`fusion demo`: the whole product on loopback in about a minute (the default of `make demo`).

This module owns the command line and what the demo shows: the live cue table with the
scenario clock while the simulated sensors play, and the summary tables at the end. The run
itself (service, keys, links, scoring) is fusion.demo.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from fusion.commands.run import DEFAULT_CONFIG

DESCRIPTION = """\
Runs the fusion service and simulated radar, AIS, ADS-B and acoustic sensors on loopback, on
the demo scenario with its scripted breaches (a line crossing, drones approaching, entering and
loitering at sites, a dark vessel in the corridor, artillery fire at a site). The run gets its
own directory with CURVE keys and a configuration on free ports; every sensor talks to the
service through a real, encrypted adapter link, and the cues come back through the service's
stream. Cues are shown as they open, update and close; at the end a summary names the breaches
caught and how fast (scenario time), and the map of the run is written as a PNG.
Exit code 0 when the pipeline ran (a missed breach is reported, not an error); 1 when the demo
could not run; 130 when interrupted (Ctrl-C stops the sensors and the service cleanly)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="the service and simulated sensors on loopback: live cues, summary, map (~1 min)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--run-dir",
        type=Path,
        default=None,
        help="directory for this run (new or empty; default out/demo-<UTC time stamp>)",
    )
    p.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG,
        help="configuration the run's own is derived from (ports, paths replaced; "
        "default configs/fusion.toml)",
    )
    pace = p.add_mutually_exclusive_group()
    pace.add_argument(
        "--speed",
        type=float,
        default=None,
        help="times real time (default: the 600 s scenario plays in about 45 s)",
    )
    pace.add_argument("--fast", action="store_true", help="play at 60x (about 10 s; for tests)")
    p.add_argument("--seed", type=int, default=7, help="scenario seed (default 7)")
    p.add_argument(
        "--startup-timeout",
        type=float,
        default=180.0,
        help="seconds to wait for the service to answer (first run compiles; default 180)",
    )
    p.add_argument("--no-live", action="store_true", help="plain lines, no live table")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from rich.console import Console

    from fusion.demo import DemoError, DemoOptions, run_demo

    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(width=140)  # a log or a pipe: no need to fold at 80 columns
    opts = DemoOptions(
        run_dir=args.run_dir,
        template=args.config,
        speed=args.speed,
        fast=args.fast,
        seed=args.seed,
        startup_timeout_s=args.startup_timeout,
    )
    view = DemoView(console, live=console.is_terminal and not args.no_live)
    try:
        result = run_demo(opts, view)
    except DemoError as exc:
        view.stop_stream()
        console.print(f"[bold red]fusion demo: {exc}[/]", highlight=False)
        return 1
    except KeyboardInterrupt:  # a second Ctrl-C while stopping
        view.stop_stream()
        return 130
    finally:
        view.stop_stream()
    if result.interrupted:
        console.print(f"interrupted; service exit code {result.service_exit}")
        return 130
    print_summary(console, result)
    if result.service_exit != 0:
        console.print(
            f"[bold red]the fusion service exited with code {result.service_exit}; "
            f"see {result.run_dir / 'service.log'}[/]"
        )
        return 1
    return 0


def _clock(t_rel_s: float) -> str:
    m, s = divmod(max(t_rel_s, 0.0), 60.0)
    return f"{int(m):02d}:{s:04.1f}"


STATE_STYLE = {"open": "bold red", "update": "yellow", "close": "green"}


class DemoView:
    """Live cues and the scenario clock. Opens and closes are printed as lines (they stay in
    the scroll-back); a live table holds the latest state of the recent cues, updates included,
    above a progress bar of scenario time. Without a terminal: the lines only."""

    def __init__(self, console: Any, live: bool = True) -> None:
        self.console = console
        self.use_live = live
        self.live = None
        self.bar = None
        self.task = None
        self.latest: dict[str, tuple[float, dict[str, Any]]] = {}
        self.n_events = 0
        self.duration_s = 0.0
        self.printed_tenth = 0

    def phase(self, text: str) -> None:
        self.console.print(f"[dim]- {text}[/]", highlight=False)

    def start_stream(self, duration_s: float, speed: float) -> None:
        self.duration_s = duration_s
        if not self.use_live:
            self.console.print(f"[dim]- playing {duration_s:.0f} s of scenario at {speed:.1f}x[/]")
            return
        from rich.live import Live
        from rich.progress import BarColumn, Progress, TextColumn

        self.bar = Progress(
            TextColumn("scenario [bold]{task.fields[clock]}[/]"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%  {task.fields[info]}"),
        )
        self.task = self.bar.add_task("play", total=duration_s, clock="00:00.0", info="")
        self.live = Live(self._render(), console=self.console, refresh_per_second=8)
        self.live.start()

    def progress_text(self, detections: int, tracks: int) -> str:
        return f"{detections} detections sent, {tracks} tracks, {self.n_events} cue events"

    def progress(self, t_rel_s: float, detections: int, tracks: int) -> None:
        if self.live is None:
            if self.use_live or self.duration_s <= 0:
                return
            # Without a terminal: one line per tenth of the scenario.
            tenth = int(10 * t_rel_s / self.duration_s)
            if tenth > self.printed_tenth:
                self.printed_tenth = tenth
                self.console.print(
                    f"[dim]- scenario {_clock(t_rel_s)} ({min(tenth, 10) * 10}%): "
                    f"{self.progress_text(detections, tracks)}[/]",
                    highlight=False,
                )
            return
        self.bar.update(
            self.task,
            completed=t_rel_s,
            clock=_clock(t_rel_s),
            info=self.progress_text(detections, tracks),
        )
        self.live.update(self._render())

    def cue(self, body: dict[str, Any], t_rel_s: float) -> None:
        self.n_events += 1
        state = str(body.get("state"))
        self.latest[str(body.get("id"))] = (t_rel_s, body)
        if state in ("open", "close"):
            style = STATE_STYLE.get(state, "")
            self.console.print(
                f"{_clock(t_rel_s)}  [{style}]{state:<6}[/] {body.get('rule', ''):<13} "
                f"{body.get('site', ''):<15} track {body.get('track') or '-':<5} "
                f"{body.get('text', '')}",
                highlight=False,
            )
        if self.live is not None:
            self.live.update(self._render())

    def _render(self) -> Any:
        from rich.console import Group
        from rich.table import Table

        table = Table(title="cues (latest state, newest first)", expand=True, title_justify="left")
        for col in ("time", "state", "rule", "site", "track"):
            table.add_column(col, no_wrap=True)
        table.add_column("why", overflow="ellipsis", no_wrap=True, ratio=1)
        recent = sorted(self.latest.values(), key=lambda x: -x[0])[:8]
        for t_rel, b in recent:
            state = str(b.get("state"))
            table.add_row(
                _clock(t_rel),
                f"[{STATE_STYLE.get(state, '')}]{state}[/]",
                str(b.get("rule", "")),
                str(b.get("site", "")),
                str(b.get("track") or "-"),
                str(b.get("text", "")),
            )
        return Group(table, self.bar) if self.bar is not None else table

    def stop_stream(self) -> None:
        if self.live is not None:
            self.live.update(self._render())
            self.live.stop()
            self.live = None


def print_summary(console: Any, result: Any) -> None:
    """The tables at the end of a run."""
    from rich.table import Table

    from fusion.demo import breach_rows, cues_by_rule

    c = result.counters
    accepted = c.get("processed_detections", {})
    pipe = Table(title="pipeline", title_justify="left")
    pipe.add_column("sensor")
    pipe.add_column("detections sent", justify="right")
    pipe.add_column("accepted", justify="right")
    for sensor in sorted(result.sent):
        pipe.add_row(sensor, str(result.sent[sensor]), str(accepted.get(sensor, 0)))
    pipe.add_row(
        "[bold]all[/]",
        f"[bold]{sum(result.sent.values())}[/]",
        f"[bold]{sum(accepted.values())}[/]",
    )
    console.print(pipe)
    rejects = c.get("rejects") or {}
    lat = c.get("latency") or {}
    p50 = lat.get("cue_p50_s")
    console.print(
        f"batches {c.get('batches', 0)}, duplicates {c.get('duplicates', 0)}, late "
        f"{c.get('late', 0)}, rejected {sum(rejects.values())}{f' {rejects}' if rejects else ''}; "
        f"tracks confirmed {result.tracks_confirmed}; cue events {len(result.cues_stored)} "
        f"stored, {result.cues_live} received live"
        + (f", {result.missing_live} not received live" if result.missing_live else "")
        + ("" if p50 is None else f"; receipt-to-cue p50 {p50 * 1000:.0f} ms (wall)"),
        highlight=False,
    )
    by_rule = Table(title="cue events by rule and state", title_justify="left")
    by_rule.add_column("rule")
    for st in ("open", "update", "close"):
        by_rule.add_column(st, justify="right")
    for rule, states in cues_by_rule(result.cues_stored).items():
        by_rule.add_row(rule, *(str(states.get(st, 0)) for st in ("open", "update", "close")))
    console.print(by_rule)

    cs = result.cue_score
    br = Table(title="scripted breaches (scenario time)", title_justify="left")
    br.add_column("breach", overflow="fold")
    for col in ("rule", "site", "at"):
        br.add_column(col, no_wrap=True)
    br.add_column("cued after", justify="right")
    for row in breach_rows(result):
        if row["latency_s"] is None:
            caught = "[bold red]MISSED[/]"
        else:
            caught = f"[green]{row['latency_s']:.2f} s[/]"
        br.add_row(row["name"], row["rule"], row["site"], _clock(row["t_s"]), caught)
    console.print(br)
    if cs is None:
        console.print("[bold red]no cue score[/]")
        return
    median = cs.latency_median_s
    console.print(
        f"breaches caught {cs.n_detected}/{cs.n_breaches}, median latency "
        f"{'n/a' if median != median else f'{median:.2f} s'} (scenario time), "
        f"false cues {cs.n_false}",
        highlight=False,
    )
    if cs.missed:
        console.print(f"[bold red]MISSED: {', '.join(cs.missed)}[/]", highlight=False)
    for f in cs.false:
        console.print(
            f"[yellow]false cue: {f.get('rule')} at {f.get('site')} track {f.get('track')}: "
            f"{f.get('text')}[/]",
            highlight=False,
        )
    if result.track_score is not None:
        ts = result.track_score
        console.print(
            f"tracks vs truth: completeness {ts.completeness:.2f}, spurious "
            f"{ts.spuriousness:.2f}, mean GOSPA {ts.gospa_mean:.0f} m",
            highlight=False,
        )
    console.print(f"map: {result.map_png}", highlight=False)
    console.print(f"run directory: {result.run_dir} (summary.json, service.log)", highlight=False)
