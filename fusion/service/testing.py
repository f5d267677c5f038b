"""Helpers for the service's tests and benchmarks: configs in a temp dir, a counting core, a raw
adapter, batch builders. Nothing here is used by the running service.

`CountingCore` stands in for FusionCore where a test checks delivery (exactly once, ordering,
rejects) rather than tracking: it records every batch it is given, persists its counts in the
snapshot like the real core persists the tracker, and can emit one cue per `cue_every`
batches so that the store-then-publish path and the subscribers' catch-up are exercised.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from fusion import protocol
from fusion.client import FusionClient
from fusion.config import FusionConfig, load_config
from fusion.messages import Ack, Detections, TrackUpdate
from fusion.security import KeyPair, generate_keys, load_keypair, load_secret, secure_client


def write_config(
    directory: Path,
    *,
    adapters: dict[str, list[str]] | None = None,
    subscribers: tuple[str, ...] = ("subscriber",),
    plaintext: bool = False,
    service: dict[str, Any] | None = None,
    extra: str = "",
    ports: tuple[int, int, int] | None = None,
) -> tuple[FusionConfig, Path]:
    """A config file in `directory` with keys generated under directory/keys; endpoints on
    ephemeral loopback ports unless `ports` is given (a restart test needs fixed ones)."""
    directory = Path(directory)
    adapters = adapters if adapters is not None else {"adapter": ["s1"]}
    keys = directory / "keys"
    if not plaintext:
        for name in ("fusion", *adapters, *subscribers):
            if not (keys / f"{name}.key").exists():
                generate_keys(name, keys)
    eps = [f"tcp://127.0.0.1:{p}" for p in ports] if ports else ["tcp://127.0.0.1:*"] * 3
    svc = {
        "ingest": eps[0],
        "publish": eps[1],
        "query": eps[2],
        "metrics_port": 0,
        "reorder_lag_s": 0.02,
        "snapshot_interval_s": 0.2,
        "status_interval_s": 0.2,
    }
    svc.update(service or {})
    lines = [f'run_dir = "{directory}"', "[service]"]
    for k, v in svc.items():
        lines.append(f"{k} = {_toml(v)}")
    lines += ["[security]", f"plaintext_loopback = {_toml(plaintext)}"]
    if not plaintext:
        for name, sensors in adapters.items():
            lines += ["[[security.allow]]", f'name = "{name}"', f"sensors = {_toml(sensors)}"]
        for name in subscribers:
            lines += ["[[security.allow]]", f'name = "{name}"', 'role = "subscriber"']
    text = "\n".join(lines) + "\n" + extra
    path = directory / "fusion.toml"
    path.write_text(text)
    return load_config(path), path


def subscriber_client(config: FusionConfig, svc: Any, name: str = "subscriber") -> FusionClient:
    """A FusionClient to the running test service `svc` (a FusionService): its
    bound query and publish endpoints (the config's ephemeral `*` ports do not name them),
    with the CURVE secret of `name` from the config's keys_dir."""
    return FusionClient(
        svc.endpoints["query"],
        svc.endpoints["publish"],
        keys=load_secret(name, config.security.keys_dir),
        server_public=svc.server_keys.public,
    )


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return repr(v)


def make_batch(
    sensor: str,
    seq: int,
    n: int = 10,
    t_s: float | None = None,
    lat_deg: float = 46.5,
    lon_deg: float = 31.0,
    rng: np.random.Generator | None = None,
) -> Detections:
    t = time.time() if t_s is None else t_s
    rng = rng or np.random.default_rng(seq)
    z = np.column_stack(
        [
            lat_deg + rng.uniform(-0.2, 0.2, n),
            lon_deg + rng.uniform(-0.2, 0.2, n),
            np.zeros(n),
        ]
    )
    return Detections(
        sensor=sensor,
        seq=seq,
        kind="pos",
        t=np.full(n, t),
        z=z,
        R=np.tile(np.diag([100.0, 100.0, 400.0]), (n, 1, 1)),
    )


class CountingCore:
    """Records batches instead of tracking them (see the module docstring)."""

    def __init__(self, cue_every: int = 0, n_tracks: int = 0) -> None:
        self.counts: dict[str, int] = {}
        self.seen: list[tuple[str, int]] = []
        self.cue_every = cue_every
        self.n_tracks = n_tracks
        self.batches = 0
        self.restored = False

    def process(self, batches: list[Detections], sensor_states: Any, now_s: float) -> list:
        cues = []
        for b in batches:
            self.counts[b.sensor] = self.counts.get(b.sensor, 0) + len(b)
            self.seen.append((b.sensor, b.seq))
            self.batches += 1
            if self.cue_every and b.seq % self.cue_every == 0:
                cues.append(
                    {
                        "id": f"{b.sensor}-{b.seq}",
                        "rule": "incursion",
                        "state": "open",
                        "site": "port-alpha",
                        "track": int(b.seq),
                        "t_s": float(b.t.max()),
                        "text": f"batch {b.seq} of {b.sensor}",
                    }
                )
        return cues

    def track_update(self) -> TrackUpdate:
        n = self.n_tracks
        return TrackUpdate(
            t_s=time.time(),
            id=np.arange(n, dtype=np.int64),
            pos=np.tile([46.5, 31.0, 0.0], (n, 1)),
            vel=np.zeros((n, 3)),
            P=np.tile(np.eye(6), (n, 1, 1)),
            status=np.full(n, 2, np.uint8),
            ident=np.zeros(n, "S24"),
            cls=np.zeros(n, np.uint8),
            n_sensors=np.ones(n, np.uint8),
        )

    def track_counts(self) -> dict[str, int]:
        return {"confirmed": self.n_tracks}

    def snapshot(self) -> dict[str, Any]:
        return {"counts": dict(self.counts), "batches": self.batches}

    def restore(self, snap: dict[str, Any]) -> None:
        self.counts = dict(snap["counts"])
        self.batches = int(snap["batches"])
        self.restored = True

    def warm_up(self) -> None:
        pass


class RawAdapter:
    """A bare DEALER for tests: sends frames as given, collects acks."""

    def __init__(
        self,
        endpoint: str,
        *,
        keys: KeyPair | None = None,
        server_public: bytes | None = None,
        context: zmq.Context | None = None,
    ) -> None:
        self.ctx = context or zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.linger = 0
        self.sock.sndhwm = 0  # unbounded: a test sends bursts
        secure_client(self.sock, keys, server_public)
        self.sock.connect(endpoint)
        self.acks: dict[str, int] = {}

    @classmethod
    def for_config(cls, config: FusionConfig, endpoint: str, name: str | None) -> RawAdapter:
        keys = server = None
        if name is not None:
            kd = config.security.keys_dir
            keys = load_secret(name, kd)
            server = load_keypair(kd / f"{config.security.server_key}.key").public
        return cls(endpoint, keys=keys, server_public=server)

    def send(self, frame: bytes) -> None:
        self.sock.send(frame)

    def send_msg(self, msg: Any) -> None:
        self.sock.send(protocol.encode(msg))

    def read_acks(self, timeout_s: float = 0.0) -> dict[str, int]:
        deadline = time.monotonic() + timeout_s
        while True:
            wait = max(0.0, deadline - time.monotonic())
            if not self.sock.poll(int(wait * 1000)):
                return self.acks
            while True:
                try:
                    frame = self.sock.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                msg = protocol.decode(frame)
                if isinstance(msg, Ack):
                    self.acks[msg.sensor] = max(self.acks.get(msg.sensor, -1), msg.seq)
            if time.monotonic() >= deadline:
                return self.acks

    def wait_ack(self, sensor: str, seq: int, timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.read_acks(0.05)
            if self.acks.get(sensor, -1) >= seq:
                return True
        return False

    def close(self) -> None:
        self.sock.close(0)


def straight_targets(
    n_targets: int,
    n_scans: int,
    *,
    t0_s: float,
    dt_s: float = 1.0,
    sensor: str = "radar",
    origin: tuple[float, float, float] = (46.5, 31.0, 0.0),
    spread_m: float = 20_000.0,
    seed: int = 1,
    cls: int = 2,
    start: tuple[float, float] | None = None,
    velocity: tuple[float, float] | None = None,
) -> list[Detections]:
    """Scans of `n_targets` moving in straight lines, as `pos` batches (one per scan, the
    targets spread at least 1 km apart so association is unambiguous)."""
    from fusion.geo import LocalFrame

    rng = np.random.default_rng(seed)
    frame = LocalFrame(*origin)
    side = int(np.ceil(np.sqrt(n_targets)))
    step = max(spread_m * 2 / side, 1000.0)
    grid = np.array([(i % side, i // side) for i in range(n_targets)], float)
    p0 = np.column_stack([grid * step - spread_m, np.zeros(n_targets)])
    if start is not None:
        p0[:, :2] += np.asarray(start)
    speed = rng.uniform(5.0, 15.0, n_targets)
    heading = rng.uniform(0, 2 * np.pi, n_targets)
    v = np.column_stack([speed * np.sin(heading), speed * np.cos(heading), np.zeros(n_targets)])
    if velocity is not None:
        v[:, 0], v[:, 1] = velocity
    R = np.diag([100.0, 100.0, 400.0])
    out = []
    for k in range(n_scans):
        t = t0_s + k * dt_s
        enu = p0 + v * (k * dt_s) + rng.normal(0, 1, (n_targets, 3)) * [10.0, 10.0, 20.0]
        out.append(
            Detections(
                sensor=sensor,
                seq=k + 1,
                kind="pos",
                t=np.full(n_targets, t),
                z=frame.to_geodetic(enu),
                R=np.tile(R, (n_targets, 1, 1)),
                cls=np.full(n_targets, cls, np.uint8),
            )
        )
    return out
