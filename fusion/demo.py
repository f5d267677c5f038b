"""The demo run behind `fusion demo` (and `make demo`): the whole product on loopback.

This module owns the orchestration of one demo run: a fresh run directory with CURVE keys
and a run-specific configuration derived from configs/fusion.toml (free loopback ports), the
real fusion service as a subprocess, the demo scenario's simulated sensors streamed through
one real adapter link each, the cue and track streams read back through `fusion.client`, a
clean stop (links flushed, SIGTERM, the service drains and exits 0) and the scoring of the
stored cues against the scenario's scripted breaches. It draws nothing on the screen: a view
object (fusion.commands.demo) is told what happens.

Time. The simulated sensors are paced by `sensors.sim.realtime` at `speed` times real time.
Their measurement times are shifted by one constant, `shift_s`, chosen so that no stamp is
ever ahead of the wall clock (the service rejects data from the future); a scenario played
faster than real time therefore starts in the past and ends at about the present. Every
time shown or scored is scenario time again: wire time minus `shift_s`.

Run directory: fusion.toml, keys/, cues.sqlite (the service's store), service.log, and at
the end cues.jsonl and tracks.npz (scenario time, the `fusion replay` layout), truth/ (the
`fusion scenario` layout, so `fusion evaluate RUN --truth RUN/truth` works), summary.json and
map.png.
"""

from __future__ import annotations

import json
import math
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from fusion.commands.run import DEFAULT_CONFIG

ADAPTER_KEY = "sim"  # configs/fusion.toml admits this adapter key for every sensor id
SUBSCRIBER_KEY = "subscriber"
PLAY_WALL_S = 45.0  # the scenario plays in this much wall time by default
FAST_SPEED = 60.0  # --fast: tests
TRACK_PUBLISH_HZ = 10.0  # at least; and once per scenario second, to sample the picture
SAMPLE_HOLD_S = 5.0  # a track picture older than this (scenario s) is not used for a sample
DEMO_DURATION_S = 600.0  # long enough for the scripted loiter (5 min dwell)
# The service's reorder lag is wall time, and so is the jitter between the links of one busy
# process; played N times faster, that jitter is N times more scenario time, so the lag grows
# with the speed (cues are on measurement time: the lag does not delay them in scenario time).
REORDER_LAG_PER_SPEED_S = 0.025


class DemoError(RuntimeError):
    """The demo could not run; the message says what failed (with the service's log tail)."""


class View(Protocol):
    """What the demo tells its display (fusion.commands.demo has the rich one)."""

    def phase(self, text: str) -> None: ...
    def start_stream(self, duration_s: float, speed: float) -> None: ...
    def progress(self, t_rel_s: float, detections: int, tracks: int) -> None: ...
    def cue(self, body: dict[str, Any], t_rel_s: float) -> None: ...
    def stop_stream(self) -> None: ...


@dataclass
class DemoOptions:
    run_dir: Path | None = None  # None: out/demo-<UTC time stamp>
    template: Path = DEFAULT_CONFIG
    speed: float | None = None  # None: the scenario plays in PLAY_WALL_S
    fast: bool = False
    seed: int = 7
    startup_timeout_s: float = 180.0  # a cold numba cache compiles every kernel first
    drain_timeout_s: float = 30.0


@dataclass
class DemoResult:
    run_dir: Path
    speed: float
    shift_s: float
    t0_s: float = 0.0  # the scenario's start, epoch s (scenario time)
    wall_s: dict[str, float] = field(default_factory=dict)
    sent: dict[str, int] = field(default_factory=dict)  # detections sent per sensor
    counters: dict[str, Any] = field(default_factory=dict)  # the service's, before SIGTERM
    service_exit: int | None = None
    cues_live: int = 0  # cue events received through the socket
    cues_stored: list[dict[str, Any]] = field(default_factory=list)  # scenario time
    missing_live: int = 0  # stored cue events the stream did not deliver
    tracks_confirmed: int = 0
    breaches: list[Any] = field(default_factory=list)
    cue_score: Any = None
    track_score: Any = None
    map_png: Path | None = None
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return self.service_exit == 0 and not self.interrupted


# --------------------------------------------------------------------------- the run directory


def default_run_dir(now: datetime | None = None) -> Path:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return Path("out") / f"demo-{stamp}"


def free_ports(n: int) -> list[int]:
    """`n` distinct loopback TCP ports free right now (held open together while choosing)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _set(text: str, key: str, value: str, where: str) -> str:
    """Replaces the value of `key = ...` (one line, comments kept); the key must be there."""
    pattern = re.compile(rf"^(\s*{re.escape(key)}\s*=\s*)([^#\n]*?)(\s*(#.*)?)$", re.M)
    out, n = pattern.subn(lambda m: f"{m.group(1)}{value}{m.group(3)}", text, count=1)
    if n != 1:
        raise DemoError(f"{where}: no `{key} = ...` line to adapt for the demo run")
    return out


def write_run_config(template: Path, run_dir: Path, ports: list[int], speed: float = 1.0) -> Path:
    """`run_dir/fusion.toml`: the template with this run's ports, run directory, absolute
    sites path, a faster track publication and a reorder lag for `speed`; validated by
    fusion.config."""
    import tomllib

    from fusion.config import ConfigError, load_config

    text = template.read_text(encoding="utf-8")
    data = tomllib.loads(text)
    sites = data.get("theatre", {}).get("sites")
    if not sites:
        raise DemoError(f"{template}: [theatre] sites is needed for the demo")
    sites_path = (template.resolve().parent / sites).resolve()
    ingest, publish, query, metrics = ports
    lag_s = data.get("service", {}).get("reorder_lag_s", 0.25)
    lag_s = round(max(float(lag_s), REORDER_LAG_PER_SPEED_S * speed), 3)
    for key, value in (
        ("run_dir", json.dumps(str(run_dir.resolve()))),
        ("ingest", json.dumps(f"tcp://127.0.0.1:{ingest}")),
        ("publish", json.dumps(f"tcp://127.0.0.1:{publish}")),
        ("query", json.dumps(f"tcp://127.0.0.1:{query}")),
        ("metrics_port", str(metrics)),
        ("track_publish_hz", repr(max(TRACK_PUBLISH_HZ, float(round(speed))))),
        ("reorder_lag_s", repr(lag_s)),
        ("sites", json.dumps(str(sites_path))),
    ):
        text = _set(text, key, value, str(template))
    header = f"# Written by `fusion demo` from {template} for the run in this directory.\n"
    path = run_dir / "fusion.toml"
    path.write_text(header + text, encoding="utf-8")
    try:
        load_config(path, run_dir=run_dir)
    except ConfigError as exc:
        raise DemoError(f"the demo's configuration is not valid: {exc}") from None
    return path


def make_keys(config: Any) -> None:
    """The service key and every allowlisted key named by file, in the run's keys_dir."""
    from fusion.security import generate_keys

    names = {config.security.server_key}
    names.update(a.key for a in config.security.allow if len(a.key) != 40)
    for needed in (ADAPTER_KEY, SUBSCRIBER_KEY):
        if needed not in names:
            raise DemoError(f"{config.source}: security.allow has no `{needed}` key")
    for name in sorted(names):
        if not (config.security.keys_dir / f"{name}.key_secret").exists():
            generate_keys(name, config.security.keys_dir)


# --------------------------------------------------------------------------- the service


def _terminate_with_parent() -> None:
    """In the child before exec: SIGTERM when the demo dies (even by SIGKILL), so a killed
    demo leaves no service behind. Linux only; elsewhere the demo's own cleanup must do."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class ServiceProcess:
    """`fusion run` as a child process in its own session (a Ctrl-C in the terminal reaches
    only the demo, which then stops the service itself), its output in service.log."""

    def __init__(self, config_path: Path, run_dir: Path) -> None:
        self.log_path = run_dir / "service.log"
        self._log = self.log_path.open("wb")
        cmd = [sys.executable, "-m", "fusion.cli", "run", "--config", str(config_path)]
        cmd += ["--run-dir", str(run_dir)]
        self.proc = subprocess.Popen(
            cmd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_terminate_with_parent,
        )

    def tail(self, n: int = 25) -> str:
        try:
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def wait_ready(self, client: Any, timeout_s: float) -> float:
        """Seconds until the query socket answers; DemoError if it exits or never answers."""
        from fusion.client import QueryError

        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            self.check_running()
            try:
                client.status()
                return time.monotonic() - t0
            except QueryError:
                continue
        raise DemoError(
            f"the fusion service did not answer within {timeout_s:.0f} s; "
            f"last lines of {self.log_path}:\n{self.tail()}"
        )

    def check_running(self) -> None:
        code = self.proc.poll()
        if code is not None:
            raise DemoError(
                f"the fusion service exited with code {code}; "
                f"last lines of {self.log_path}:\n{self.tail()}"
            )

    def stop(self, timeout_s: float) -> int:
        """SIGTERM (the service drains, snapshots and exits 0); SIGKILL after `timeout_s`."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5.0)
        self._log.close()
        return int(self.proc.returncode)


# --------------------------------------------------------------------------- the sensors


def sensor_links(scenario: Any, config: Any) -> dict[str, Any]:
    """One started adapter link per simulated sensor, CURVE with the adapter key; each link's
    heartbeats carry its sensor's site and range (the tracker's coverage)."""
    from fusion.client import _connectable
    from sensors.base import Link, LinkConfig
    from sensors.sim import SimSensors

    keys = config.security.keys_dir
    sites = SimSensors(scenario).sensor_sites_llh()
    links = {}
    for spec in scenario.sensors:
        cfg = LinkConfig(
            endpoint=_connectable(config.service.ingest),
            sensor=spec.id,
            client_cert=str(keys / f"{ADAPTER_KEY}.key_secret"),
            server_key=str(keys / f"{config.security.server_key}.key"),
            overflow="block",
            unacked_max=20_000,
            ack_timeout_s=10.0,  # acks follow 1 s snapshots; a busy 2-core box is slow
            site=sites[spec.id],
            coverage={"max_range_m": float(spec.max_range_m)},
        )
        links[spec.id] = Link(cfg).start()
    return links


class Streamer(threading.Thread):
    """Plays the scenario's simulated sensors through their links at `speed`."""

    def __init__(self, scenario: Any, links: dict[str, Any], speed: float, shift_s: float):
        super().__init__(name="demo-sensors", daemon=True)
        self.scenario, self.links, self.speed, self.shift_s = scenario, links, speed, shift_s
        self.stop_event = threading.Event()
        self.sent: dict[str, int] = dict.fromkeys(links, 0)
        self.t_rel_s = 0.0  # scenario time reached
        self.playing = threading.Event()  # set once the first message is out
        self.error: BaseException | None = None

    def run(self) -> None:
        from fusion.messages import Heartbeat
        from sensors.sim import realtime

        t0 = self.scenario.t0_s
        try:
            messages = realtime(
                self.scenario,
                speed=self.speed,
                sleep=self.stop_event.wait,
                sensors=set(self.links),
            )
            for msg in messages:
                self.playing.set()
                if self.stop_event.is_set():
                    return
                if isinstance(msg, Heartbeat):
                    # The links heartbeat themselves; the simulated ones only mark time.
                    self.t_rel_s = max(self.t_rel_s, msg.t_s - t0)
                    continue
                self.t_rel_s = max(self.t_rel_s, float(msg.t.max()) - t0)
                msg.t = msg.t + self.shift_s
                if self.links[msg.sensor].submit(msg):
                    self.sent[msg.sensor] += len(msg)
        except BaseException as exc:  # reported by the demo, which then stops cleanly
            self.error = exc
        finally:
            self.playing.set()


# --------------------------------------------------------------------------- the streams


class Recorder:
    """Cue events and track pictures read from the service's streams (scenario time).

    The service publishes one picture as one message per class (topics trk.<class>) with the
    picture's time; the messages of one time are merged back into one picture here. Positions
    stay WGS84 until `sampled`: converting them as they arrive could compile a numba kernel on
    a cold cache, and a compile holds the GIL for seconds, starving the sensors' links."""

    def __init__(self, frame: Any, shift_s: float) -> None:
        self.frame, self.shift_s = frame, shift_s
        self.cues: list[dict[str, Any]] = []
        self.pictures: dict[float, dict[int, tuple]] = {}  # t (scenario epoch s) -> id -> row
        self.confirmed: set[int] = set()
        self.n_tracks = 0

    def add(self, received: Any) -> dict[str, Any] | None:
        """Records one message; returns the cue body when it was a cue."""
        from fusion.messages import CueEvent, TrackUpdate

        m = received.message
        if isinstance(m, CueEvent):
            self.cues.append(m.body)
            return m.body
        if isinstance(m, TrackUpdate) and len(m):
            self.confirmed.update(int(i) for i in m.id)
            pic = self.pictures.setdefault(float(m.t_s) - self.shift_s, {})
            for i in range(len(m)):
                pic[int(m.id[i])] = (m.pos[i], m.vel[i], m.status[i], m.ident[i], m.cls[i])
            self.n_tracks = len(pic)
        return None

    def sampled(self, times_s: np.ndarray) -> dict[str, np.ndarray]:
        """The tracks at `times_s` (the truth's instants), each from the latest picture at or
        before the instant, extrapolated at constant velocity (the `fusion replay` layout)."""
        from fusion.evaluate import stack_states

        pt = np.array(sorted(self.pictures))
        rows = []
        for t in np.unique(times_s):
            i = int(np.searchsorted(pt, t, side="right")) - 1
            if i < 0 or t - pt[i] > SAMPLE_HOLD_S:
                continue
            pic = self.pictures[float(pt[i])]
            ids = np.fromiter(pic, np.int64, len(pic))
            llh, vel, status, ident, cls = (np.array(c) for c in zip(*pic.values(), strict=True))
            pos = self.frame.to_enu(llh.reshape(-1, 3))
            rows.append(
                {"t_s": np.full(len(ids), t), "id": ids, "pos": pos + vel * (t - pt[i]),
                 "vel": vel, "sigma_m": np.zeros(len(ids)), "status": status.astype(np.uint8),
                 "ident": ident.astype("S24"), "cls": cls.astype(np.uint8)}
            )  # fmt: skip
        return stack_states(rows)


def scenario_time(body: dict[str, Any], shift_s: float) -> dict[str, Any]:
    """A cue body with its times back in scenario epoch seconds."""
    out = dict(body)
    for k in ("t_s", "opened_t_s"):
        if isinstance(out.get(k), int | float):
            out[k] = float(out[k]) - shift_s
    return out


# --------------------------------------------------------------------------- the run


def choose_speed(opts: DemoOptions, duration_s: float) -> float:
    if opts.speed is not None:
        if not (opts.speed > 0 and math.isfinite(opts.speed)):
            raise DemoError(f"--speed must be a positive number, not {opts.speed}")
        return float(opts.speed)
    return FAST_SPEED if opts.fast else duration_s / PLAY_WALL_S


def run_demo(opts: DemoOptions, view: View) -> DemoResult:
    """One demo run, start to summary. Raises DemoError when something cannot start; a
    KeyboardInterrupt stops everything cleanly and returns with `interrupted` set."""
    from fusion.client import FusionClient, QueryError
    from fusion.config import load_config
    from fusion.scenario import build_demo

    walls: dict[str, float] = {}
    t_start = time.monotonic()
    run_dir = opts.run_dir or default_run_dir()
    if (run_dir / "cues.sqlite").exists():
        raise DemoError(f"{run_dir} already holds a run; give a new --run-dir")
    run_dir.mkdir(parents=True, exist_ok=True)
    speed = choose_speed(opts, DEMO_DURATION_S)
    config_path = write_run_config(opts.template, run_dir, free_ports(4), speed)
    config = load_config(config_path, run_dir=run_dir)
    make_keys(config)
    view.phase(f"run directory {run_dir} (CURVE keys, {config_path.name} on free ports)")

    service = ServiceProcess(config_path, run_dir)
    links: dict[str, Any] = {}
    streamer: Streamer | None = None
    sub = None
    client = FusionClient.from_config(config, key=SUBSCRIBER_KEY, timeout_s=0.5)
    result = DemoResult(run_dir=run_dir, speed=0.0, shift_s=0.0)
    try:
        view.phase(f"fusion service starting (pid {service.proc.pid}); building the scenario")
        scenario = build_demo(config.theatre.sites, seed=opts.seed, duration_s=DEMO_DURATION_S)
        # Stamps never run ahead of the wall clock (see the module docstring).
        shift_s = time.time() - scenario.t0_s - scenario.duration_s * max(0.0, 1.0 - 1.0 / speed)
        result.speed, result.shift_s, result.t0_s = speed, shift_s, scenario.t0_s
        result.breaches = list(scenario.breaches)
        walls["scenario_built_s"] = time.monotonic() - t_start
        walls["service_ready_s"] = service.wait_ready(client, opts.startup_timeout_s)
        client.timeout_s = 5.0
        view.phase(f"fusion service up ({config.service.ingest}, CURVE)")
        sub = client.subscribe(["cue", "trk"], catch_up=True)
        recorder = Recorder(scenario.theatre.frame, shift_s)
        links = sensor_links(scenario, config)
        view.phase(
            f"{len(links)} simulated sensors linked; simulating {scenario.duration_s:.0f} s "
            f"of scenario, played at {speed:.1f}x"
        )
        streamer = Streamer(scenario, links, speed, shift_s)
        streamer.start()
        streamer.playing.wait()
        view.start_stream(scenario.duration_s, speed)
        t_play = time.monotonic()

        def pump(timeout_s: float) -> bool:
            """Reads one message; True when it was a cue event."""
            r = sub.next(timeout_s=timeout_s)
            body = None if r is None else recorder.add(r)
            if body is None:
                return False
            result.cues_live += 1
            view.cue(body, float(body.get("t_s", 0.0)) - shift_s - scenario.t0_s)
            return True

        while streamer.is_alive():
            pump(0.1)
            view.progress(streamer.t_rel_s, sum(streamer.sent.values()), recorder.n_tracks)
            service.check_running()
        walls["played_s"] = time.monotonic() - t_play
        if streamer.error is not None:
            raise DemoError(f"the simulated sensors failed: {streamer.error!r}")
        view.stop_stream()
        view.phase("flushing the links (every batch acknowledged)")
        flush_until = time.monotonic() + opts.drain_timeout_s
        for link in links.values():
            if not link.flush(max(flush_until - time.monotonic(), 0.1)):
                view.phase(f"link {link.config.sensor}: {link.pending} batches unacknowledged")
        service.check_running()
        # Everything is acknowledged, so processed; cues from the last scans are on the way.
        t_end = time.monotonic() + 10.0
        quiet_until = time.monotonic() + 1.0
        while time.monotonic() < min(quiet_until, t_end):
            if pump(0.1):
                quiet_until = time.monotonic() + 0.5
        try:
            result.counters = client.status().counters
        except QueryError as exc:
            view.phase(f"no final status from the service: {exc}")
    except KeyboardInterrupt:
        result.interrupted = True
        view.phase("interrupted: stopping the sensors and the service")
    finally:
        if streamer is not None:
            streamer.stop_event.set()
            streamer.join(5.0)
        for link in links.values():
            link.close(drain_s=0.5)  # flushed already on the normal path
        if sub is not None:
            sub.close()
        client.close()
        view.phase("stopping the fusion service (SIGTERM: it drains and exits)")
        result.service_exit = service.stop(opts.drain_timeout_s)
    if streamer is not None:
        result.sent = dict(streamer.sent)
    result.tracks_confirmed = len(recorder.confirmed) if not result.interrupted else 0
    if result.interrupted:
        return result
    finish(result, scenario, config, recorder, view)
    walls["total_s"] = time.monotonic() - t_start
    result.wall_s = walls
    write_summary(result)
    return result


def finish(result: DemoResult, scenario: Any, config: Any, recorder: Recorder, view: View):
    """Reads the store, scores the cues against the breaches, writes the outputs and map."""
    from fusion.evaluate_run import evaluate_scenario
    from fusion.plots import plot_run
    from fusion.scenario.files import write_truth
    from fusion.store import CueStore

    store = CueStore(config.service.store)
    try:
        stored = store.since(0, limit=10_000_000)
    finally:
        store.close()
    live = {(str(b.get("id")), int(b.get("seq") or 0)) for b in recorder.cues}
    result.missing_live = sum(
        (str(b.get("id")), int(b.get("seq") or 0)) not in live for b in stored
    )
    result.cues_stored = [scenario_time(b, result.shift_s) for b in stored]
    view.phase("scoring the cues against the scripted breaches")
    truth = {**scenario.truth_table(1.0), "origin": np.asarray(scenario.origin)}
    tracks = {**recorder.sampled(truth["t_s"]), "origin": np.asarray(scenario.origin)}
    if len(tracks["t_s"]):
        result.track_score, result.cue_score = evaluate_scenario(
            result.cues_stored, tracks, truth, scenario.breaches, scenario.t0_s
        )
    else:  # no track ever published: cues are still scored (no track-to-truth check)
        from fusion.evaluate import score_cues

        result.cue_score = score_cues(
            result.cues_stored, scenario.breaches, target_hours=0.0, t0_s=scenario.t0_s
        )
    run = result.run_dir
    write_truth(scenario, run / "truth")
    with (run / "cues.jsonl").open("w", encoding="utf-8") as fh:
        for body in result.cues_stored:
            fh.write(json.dumps(body, sort_keys=True, default=_plain) + "\n")
    np.savez_compressed(run / "tracks.npz", **tracks)
    view.phase("drawing the map")
    result.map_png = plot_run(
        config.theatre.sites,
        tracks,
        result.cues_stored,
        run / "map.png",
        truth=truth,
        title=f"fusion demo {run.name}: tracks (by class), truth (grey), cues (markers)",
    )


def _plain(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, bytes):
        return x.decode("utf-8", "replace")
    return str(x)


def cues_by_rule(cues: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """rule -> state -> number of cue events."""
    out: dict[str, dict[str, int]] = {}
    for b in cues:
        per = out.setdefault(str(b.get("rule")), {})
        per[str(b.get("state"))] = per.get(str(b.get("state")), 0) + 1
    return dict(sorted(out.items()))


def breach_rows(result: DemoResult) -> list[dict[str, Any]]:
    """Per scripted breach: its time, the cue that caught it and the latency (scenario s)."""
    cs = result.cue_score
    first: dict[str, dict[str, Any]] = {}
    for b in result.cues_stored:
        first.setdefault(str(b.get("id")), b)
    rows = []
    for br in result.breaches:
        cid = cs.matches.get(br.name) if cs is not None else None
        cue = first.get(cid) if cid else None
        latency = None if cue is None else float(cue["t_s"]) - result.t0_s - br.t_s
        rows.append(
            {"name": br.name, "rule": br.rule, "site": br.site, "t_s": br.t_s, "cue": cid,
             "cue_text": None if cue is None else cue.get("text"), "latency_s": latency}
        )  # fmt: skip
    return rows


def summary_dict(result: DemoResult) -> dict[str, Any]:
    """Everything the demo measured, JSON-ready (NaN as null)."""
    cs = result.cue_score
    return _nan_to_none(
        {
            "run_dir": str(result.run_dir),
            "ok": result.ok,
            "speed": result.speed,
            "time_shift_s": result.shift_s,
            "wall_s": result.wall_s,
            "detections_sent": result.sent,
            "detections_accepted": result.counters.get("processed_detections", {}),
            "rejects": result.counters.get("rejects", {}),
            "service_counters": result.counters,
            "service_exit": result.service_exit,
            "tracks_confirmed": result.tracks_confirmed,
            "cue_events_live": result.cues_live,
            "cue_events_stored": len(result.cues_stored),
            "cue_events_missing_live": result.missing_live,
            "cues_by_rule": cues_by_rule(result.cues_stored),
            "breaches": breach_rows(result),
            "cues": None if cs is None else cs.summary(),
            "tracks": None if result.track_score is None else result.track_score.summary(),
            "map_png": None if result.map_png is None else str(result.map_png),
        }
    )


def write_summary(result: DemoResult) -> Path:
    path = result.run_dir / "summary.json"
    path.write_text(json.dumps(summary_dict(result), indent=2, default=_plain))
    return path


def _nan_to_none(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _nan_to_none(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_nan_to_none(v) for v in x]
    return x
