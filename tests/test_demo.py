"""`fusion demo` end to end (service subprocess, CURVE links, cue stream, store, map) and its
parts: the run configuration, start-up failures, the picture sampling, Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fusion.commands.run import DEFAULT_CONFIG
from fusion.config import load_config
from fusion.demo import (
    DemoError,
    Recorder,
    ServiceProcess,
    free_ports,
    make_keys,
    scenario_time,
    write_run_config,
)

ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))
    env["COLUMNS"] = "220"  # rich wraps to 80 columns without a terminal
    return env


def _demo(run_dir: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "fusion.cli", "demo", "--fast", "--run-dir", str(run_dir)]
    return subprocess.Popen(
        [*cmd, *extra],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.timeout(120)
def test_demo_end_to_end(tmp_path) -> None:
    run = tmp_path / "run"
    t0 = time.monotonic()
    proc = _demo(run)
    out, _ = proc.communicate(timeout=110)
    wall_s = time.monotonic() - t0
    assert proc.returncode == 0, out[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["ok"] and summary["service_exit"] == 0
    # Every detection the sensors sent went through the links and was processed.
    sent = summary["detections_sent"]
    assert sum(sent.values()) > 10_000
    assert summary["detections_accepted"] == sent
    assert set(sent) >= {"acoustic-1", "adsb-1", "ais-1", "radar-line"}
    # Cues came through the stream, and the store holds exactly those.
    assert summary["cue_events_live"] > 0
    assert summary["cue_events_live"] == summary["cue_events_stored"]
    assert summary["cue_events_missing_live"] == 0
    from fusion.store import CueStore

    store = CueStore(run / "cues.sqlite")
    try:
        stored = store.since(0, limit=100_000)
    finally:
        store.close()
    assert len(stored) == summary["cue_events_stored"]
    assert {b["state"] for b in stored} >= {"open", "update"}
    # The summary names every scripted breach, and the pipeline caught some of them.
    breaches = json.loads((run / "truth" / "breaches.json").read_text())
    assert len(breaches) >= 5
    for br in breaches:
        assert br["name"] in out
    assert [b["name"] for b in summary["breaches"]] == [b["name"] for b in breaches]
    assert summary["cues"]["n_detected"] >= 1
    assert "breaches caught" in out and "scripted breaches" in out
    assert summary["tracks_confirmed"] > 0
    # The map, and a service that drained on SIGTERM.
    png = run / "map.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    assert str(png) in out
    assert "fusion service stopped" in (run / "service.log").read_text()
    assert wall_s < 100


@pytest.mark.timeout(60)
def test_ctrl_c_stops_everything(tmp_path) -> None:
    proc = _demo(tmp_path / "run", "--no-live")
    pid = None
    lines = []
    deadline = time.monotonic() + 50
    for line in proc.stdout:
        lines.append(line)
        m = re.search(r"pid (\d+)", line)
        if m:
            pid = int(m.group(1))
        if "playing" in line or time.monotonic() > deadline:
            break
    assert pid is not None, "".join(lines)
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=40)
    assert proc.returncode == 130, "".join(lines) + rest
    assert "interrupted" in rest
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)
    assert "fusion service stopped" in (tmp_path / "run" / "service.log").read_text()


def test_run_config_ports_paths_and_lag(tmp_path) -> None:
    ports = free_ports(4)
    assert len(set(ports)) == 4
    path = write_run_config(DEFAULT_CONFIG, tmp_path, ports, speed=60.0)
    cfg = load_config(path, run_dir=tmp_path)
    assert cfg.service.ingest == f"tcp://127.0.0.1:{ports[0]}"
    assert cfg.service.publish == f"tcp://127.0.0.1:{ports[1]}"
    assert cfg.service.query == f"tcp://127.0.0.1:{ports[2]}"
    assert cfg.service.metrics_port == ports[3]
    assert cfg.service.reorder_lag_s == pytest.approx(1.5)
    assert cfg.theatre.sites.is_file() and cfg.theatre.sites.is_absolute()
    assert cfg.service.store == tmp_path.resolve() / "cues.sqlite"
    assert not cfg.security.plaintext_loopback
    # The template's comments survive (the run's file reads like the shipped one).
    assert "# ROUTER: adapters connect with DEALER" in path.read_text()
    make_keys(cfg)
    for name in ("fusion", "sim", "subscriber"):
        assert (cfg.security.keys_dir / f"{name}.key_secret").is_file()
    make_keys(cfg)  # existing keys are kept, not an error


def test_template_without_a_key_is_a_clear_error(tmp_path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(DEFAULT_CONFIG.read_text().replace("track_publish_hz", "# gone"))
    with pytest.raises(DemoError, match="track_publish_hz"):
        write_run_config(bad, tmp_path, free_ports(4))


@pytest.mark.timeout(60)
def test_service_that_cannot_start_reports_its_log(tmp_path) -> None:
    template = tmp_path / "template.toml"
    text = DEFAULT_CONFIG.read_text().replace('sites = "', f'sites = "{DEFAULT_CONFIG.parent}/')
    template.write_text(text.replace("[tracker]\n", "[tracker]\nno_such_setting = 1\n"))
    run = tmp_path / "run"
    run.mkdir()
    path = write_run_config(template, run, free_ports(4))
    cfg = load_config(path, run_dir=run)
    make_keys(cfg)
    from fusion.client import FusionClient

    service = ServiceProcess(path, run)
    client = FusionClient.from_config(cfg, timeout_s=0.3)
    try:
        with pytest.raises(DemoError, match=r"(?s)exited with code 2.*no_such_setting"):
            service.wait_ready(client, 45.0)
    finally:
        client.close()
        service.stop(5.0)


class _Msg:
    def __init__(self, message) -> None:
        self.message = message


def test_recorder_merges_class_messages_and_samples_the_picture() -> None:
    from fusion.geo import LocalFrame
    from fusion.messages import CueEvent, TrackUpdate

    frame = LocalFrame(46.5, 31.0, 0.0)
    shift = 1000.0

    def update(t_s, ids, enu, vel, cls):
        n = len(ids)
        return TrackUpdate(
            t_s=t_s + shift,
            id=np.asarray(ids, np.int64),
            pos=frame.to_geodetic(np.asarray(enu, np.float64)),
            vel=np.asarray(vel, np.float64),
            P=np.broadcast_to(np.eye(6), (n, 6, 6)).copy(),
            status=np.full(n, 2, np.uint8),
            ident=np.zeros(n, "S24"),
            cls=np.full(n, cls, np.uint8),
            n_sensors=np.ones(n, np.uint8),
        )

    rec = Recorder(frame, shift)
    # One picture at t=10 published as two class messages, then a later one at t=20.
    rec.add(_Msg(update(10.0, [1], [[0.0, 0.0, 0.0]], [[10.0, 0.0, 0.0]], 1)))
    rec.add(_Msg(update(10.0, [2], [[500.0, 0.0, 0.0]], [[0.0, 5.0, 0.0]], 3)))
    assert rec.n_tracks == 2
    rec.add(_Msg(update(20.0, [1], [[100.0, 0.0, 0.0]], [[10.0, 0.0, 0.0]], 1)))
    body = {"id": "c1", "state": "open", "t_s": 1012.0, "opened_t_s": 1012.0, "rule": "x"}
    assert rec.add(_Msg(CueEvent(body=body))) == body
    s = rec.sampled(np.array([9.0, 11.0, 11.0, 12.0, 21.0, 40.0]))
    assert list(s["t_s"]) == [11.0, 11.0, 12.0, 12.0, 21.0]  # none before 10 or 5 s after 20
    assert list(s["id"]) == [1, 2, 1, 2, 1]
    np.testing.assert_allclose(s["pos"][:, :2], [[10, 0], [500, 5], [20, 0], [500, 10], [110, 0]],
                               atol=1e-3)  # fmt: skip
    assert list(s["cls"]) == [1, 3, 1, 3, 1]
    assert rec.confirmed == {1, 2}
    back = scenario_time(body, shift)
    assert back["t_s"] == 12.0 and back["opened_t_s"] == 12.0 and body["t_s"] == 1012.0


def test_help_lists_the_options() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "fusion.cli", "demo", "--help"],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    for opt in ("--run-dir", "--config", "--speed", "--fast", "--seed", "--startup-timeout"):
        assert opt in out
    assert "Ctrl-C" in out
