"""The fusion service's configuration: a TOML file validated into frozen dataclasses.

This module owns the configuration schema, its defaults and its error messages; it does not
open sockets or read keys (fusion.security does). Every problem in a file is reported as a
`ConfigError` naming the file, the key and what was expected, never as a KeyError.

Paths: `sites` is resolved against the directory of the config file (the file ships beside its
sites); `keys_dir`, `store` and `recording.dir` are resolved against `run_dir`, which itself is
resolved against the current directory and can be overridden (``--run-dir`` or the environment
variable FUSION_RUN_DIR), so one config serves several runs.

Layout (configs/fusion.toml is the annotated example)::

    run_dir = "run"
    [service]   ingest, publish, query (ZeroMQ endpoints), metrics_host, metrics_port,
                reorder_lag_s, late_policy, track_publish_hz, status_interval_s,
                snapshot_interval_s, snapshot_max_age_s, store, pub_hwm, dedup_window,
                heartbeat_late_s, heartbeat_lost_s, max_batch_detections
    [security]  plaintext_loopback, keys_dir, server_key, [[security.allow]] name, key,
                role (adapter | subscriber), sensors (list of ids; "*" for any)
    [recording] enabled, dir, rotate_mb
    [theatre]   origin = [lat_deg, lon_deg, alt_m], sites
    [tracker]   overrides for fusion.tracker_config.TrackerConfig (field = value)
    [rules]     overrides passed to the rule engine
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROLES = ("adapter", "subscriber")
LATE_POLICIES = ("process", "drop")


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message says where and why."""


@dataclass(frozen=True)
class AllowEntry:
    """One admitted public key: `key` is a Z85 public key (40 characters) or the name of a
    certificate in keys_dir; adapters may speak only for `sensors` ("*" for any sensor)."""

    name: str
    key: str
    role: str = "adapter"
    sensors: tuple[str, ...] = ()


@dataclass(frozen=True)
class SecurityConfig:
    plaintext_loopback: bool = False
    keys_dir: Path = Path("run/keys")
    server_key: str = "fusion"
    allow: tuple[AllowEntry, ...] = ()


@dataclass(frozen=True)
class ServiceConfig:
    ingest: str = "tcp://127.0.0.1:5555"
    publish: str = "tcp://127.0.0.1:5556"
    query: str = "tcp://127.0.0.1:5557"
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9108  # 0: no HTTP endpoint
    reorder_lag_s: float = 0.25
    late_policy: str = "process"
    track_publish_hz: float = 2.0
    status_interval_s: float = 1.0
    snapshot_interval_s: float = 1.0
    snapshot_max_age_s: float = 3600.0  # older snapshots are not restored
    store: Path = Path("run/cues.sqlite")
    pub_hwm: int = 10_000
    dedup_window: int = 4096
    heartbeat_late_s: float = 5.0
    heartbeat_lost_s: float = 30.0
    max_batch_detections: int = 100_000


@dataclass(frozen=True)
class RecordingConfig:
    enabled: bool = False
    dir: Path = Path("run/feeds")
    rotate_mb: float = 64.0


@dataclass(frozen=True)
class TheatreConfig:
    origin: tuple[float, float, float] = (46.5, 31.0, 0.0)
    sites: Path | None = None


@dataclass(frozen=True)
class FusionConfig:
    service: ServiceConfig = field(default_factory=ServiceConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    recording: RecordingConfig = field(default_factory=RecordingConfig)
    theatre: TheatreConfig = field(default_factory=TheatreConfig)
    tracker: dict[str, Any] = field(default_factory=dict)
    rules: dict[str, Any] = field(default_factory=dict)
    run_dir: Path = Path("run")
    source: str = "<defaults>"

    @property
    def snapshot_path(self) -> Path:
        """Track snapshots live beside the cue store."""
        return self.service.store.with_suffix(".snapshot")

    def endpoints(self) -> dict[str, str]:
        return {
            "ingest": self.service.ingest,
            "publish": self.service.publish,
            "query": self.service.query,
        }


# --------------------------------------------------------------------------- parsing helpers


class _Section:
    """Reads one TOML table, type-checking each key and remembering which ones were used."""

    def __init__(self, data: Any, where: str, source: str) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: [{where}] must be a table")
        self.data = data
        self.where = where
        self.source = source
        self.used: set[str] = set()

    def _err(self, key: str, msg: str) -> ConfigError:
        return ConfigError(f"{self.source}: {self.where}.{key}: {msg}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any) -> Any:
        self.used.add(key)
        if key not in self.data:
            return default
        value = self.data[key]
        # bool is an int in Python; a switch written as 1 or a number written as true is a typo.
        if kind is bool and type(value) is not bool:
            raise self._err(key, f"expected true or false, got {value!r}")
        if kind in (int, float, (int, float)) and type(value) is bool:
            raise self._err(key, f"expected a number, got {value!r}")
        if kind is float and isinstance(value, int):
            value = float(value)
        if not isinstance(value, kind):
            name = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            raise self._err(key, f"expected {name}, got {type(value).__name__} {value!r}")
        return value

    def positive(self, key: str, default: float, *, allow_zero: bool = False) -> float:
        value = self.get(key, float, default)
        if (
            not (value > 0 or (allow_zero and value == 0))
            or value != value
            or value == float("inf")
        ):
            raise self._err(
                key, f"must be {'>= 0' if allow_zero else '> 0'} and finite, got {value}"
            )
        return value

    def count(self, key: str, default: int, lo: int, hi: int) -> int:
        value = self.get(key, int, default)
        if not lo <= value <= hi:
            raise self._err(key, f"must be between {lo} and {hi}, got {value}")
        return value

    def endpoint(self, key: str, default: str) -> str:
        value = self.get(key, str, default)
        try:
            check_endpoint(value)
        except ValueError as exc:
            raise self._err(key, str(exc)) from None
        return value

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise ConfigError(
                f"{self.source}: [{self.where}] has unknown key(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(self.used))}"
            )


def check_endpoint(endpoint: str) -> None:
    """Raises ValueError unless `endpoint` is a bindable tcp://host:port, ipc:// or inproc://."""
    if endpoint.startswith(("ipc://", "inproc://")):
        return
    parts = urlsplit(endpoint)
    if parts.scheme == "tcp" and parts.netloc.endswith(":*") and len(parts.netloc) > 2:
        return  # an ephemeral port chosen at bind time (tests)
    if parts.scheme != "tcp":
        raise ValueError(f"endpoint {endpoint!r} must be tcp://host:port, ipc:// or inproc://")
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None:
        raise ValueError(
            f"endpoint {endpoint!r} needs a host and a port (or :* for an ephemeral port)"
        )


def is_loopback(endpoint: str) -> bool:
    """True when `endpoint` cannot be reached from another host."""
    if endpoint.startswith(("ipc://", "inproc://")):
        return True
    host = urlsplit(endpoint).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _resolve(base: Path, value: str | os.PathLike[str]) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p


# --------------------------------------------------------------------------- loading


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    run_dir: str | os.PathLike[str] | None = None,
    text: str | None = None,
) -> FusionConfig:
    """Reads and validates a configuration file (or `text` when given, for tests and the
    embedded default). `run_dir` overrides the file's run_dir and FUSION_RUN_DIR."""
    if text is not None:
        source = str(path) if path is not None else "<text>"
        config_dir = Path(path).resolve().parent if path is not None else Path.cwd()
    else:
        if path is None:
            raise ConfigError("no configuration file given")
        p = Path(path)
        source = str(p)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read: {exc.strerror or exc}") from None
        config_dir = p.resolve().parent
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    return parse_config(data, source=source, config_dir=config_dir, run_dir=run_dir)


def parse_config(
    data: dict[str, Any],
    *,
    source: str = "<dict>",
    config_dir: Path | None = None,
    run_dir: str | os.PathLike[str] | None = None,
) -> FusionConfig:
    """Validates an already-parsed TOML document."""
    config_dir = config_dir or Path.cwd()
    top = _Section(data, "<top>", source)
    file_run_dir = top.get("run_dir", str, "run")
    chosen = run_dir if run_dir is not None else os.environ.get("FUSION_RUN_DIR") or file_run_dir
    run = _resolve(Path.cwd(), chosen)

    svc = _Section(top.get("service", dict, {}), "service", source)
    d = ServiceConfig()
    service = ServiceConfig(
        ingest=svc.endpoint("ingest", d.ingest),
        publish=svc.endpoint("publish", d.publish),
        query=svc.endpoint("query", d.query),
        metrics_host=svc.get("metrics_host", str, d.metrics_host),
        metrics_port=svc.count("metrics_port", d.metrics_port, 0, 65535),
        reorder_lag_s=svc.positive("reorder_lag_s", d.reorder_lag_s, allow_zero=True),
        late_policy=svc.get("late_policy", str, d.late_policy),
        track_publish_hz=svc.positive("track_publish_hz", d.track_publish_hz),
        status_interval_s=svc.positive("status_interval_s", d.status_interval_s),
        snapshot_interval_s=svc.positive("snapshot_interval_s", d.snapshot_interval_s),
        snapshot_max_age_s=svc.positive("snapshot_max_age_s", d.snapshot_max_age_s),
        store=_resolve(run, svc.get("store", str, str(d.store.name))),
        pub_hwm=svc.count("pub_hwm", d.pub_hwm, 1, 10_000_000),
        dedup_window=svc.count("dedup_window", d.dedup_window, 16, 10_000_000),
        heartbeat_late_s=svc.positive("heartbeat_late_s", d.heartbeat_late_s),
        heartbeat_lost_s=svc.positive("heartbeat_lost_s", d.heartbeat_lost_s),
        max_batch_detections=svc.count("max_batch_detections", d.max_batch_detections, 1, 10**7),
    )
    if service.late_policy not in LATE_POLICIES:
        raise ConfigError(
            f"{source}: service.late_policy: expected one of {LATE_POLICIES}, "
            f"got {service.late_policy!r}"
        )
    if service.heartbeat_lost_s <= service.heartbeat_late_s:
        raise ConfigError(f"{source}: service.heartbeat_lost_s must exceed heartbeat_late_s")
    eps = [service.ingest, service.publish, service.query]
    fixed = [ep for ep in eps if not ep.endswith(":*")]
    if len(set(fixed)) != len(fixed):
        raise ConfigError(f"{source}: service: ingest, publish and query must be distinct")
    svc.finish()

    sec = _Section(top.get("security", dict, {}), "security", source)
    allow_raw = sec.get("allow", list, [])
    allow: list[AllowEntry] = []
    for i, entry in enumerate(allow_raw):
        s = _Section(entry, f"security.allow[{i}]", source)
        name = s.get("name", str, "")
        key = s.get("key", str, name)
        role = s.get("role", str, "adapter")
        sensors = s.get("sensors", list, [])
        s.finish()
        if not name:
            raise ConfigError(f"{source}: security.allow[{i}].name is required")
        if role not in ROLES:
            raise ConfigError(f"{source}: security.allow[{i}].role: expected one of {ROLES}")
        if not all(isinstance(x, str) and x for x in sensors):
            raise ConfigError(f"{source}: security.allow[{i}].sensors must be non-empty strings")
        if role == "adapter" and not sensors:
            raise ConfigError(
                f"{source}: security.allow[{i}] ({name}): an adapter needs the sensor ids it "
                f'may speak for (sensors = ["radar-1"], or ["*"])'
            )
        allow.append(AllowEntry(name=name, key=key, role=role, sensors=tuple(sensors)))
    names = [a.name for a in allow]
    if len(set(names)) != len(names):
        raise ConfigError(f"{source}: security.allow: duplicate names")
    security = SecurityConfig(
        plaintext_loopback=sec.get("plaintext_loopback", bool, False),
        keys_dir=_resolve(run, sec.get("keys_dir", str, "keys")),
        server_key=sec.get("server_key", str, "fusion"),
        allow=tuple(allow),
    )
    sec.finish()
    if security.plaintext_loopback:
        for ep in eps:
            if not is_loopback(ep):
                raise ConfigError(
                    f"{source}: security.plaintext_loopback is set but {ep} is not a loopback "
                    "endpoint; plain text is allowed only on loopback"
                )

    rec = _Section(top.get("recording", dict, {}), "recording", source)
    recording = RecordingConfig(
        enabled=rec.get("enabled", bool, False),
        dir=_resolve(run, rec.get("dir", str, "feeds")),
        rotate_mb=rec.positive("rotate_mb", 64.0),
    )
    rec.finish()

    th = _Section(top.get("theatre", dict, {}), "theatre", source)
    origin_raw = th.get("origin", list, list(TheatreConfig().origin))
    if len(origin_raw) != 3 or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in origin_raw
    ):
        raise ConfigError(f"{source}: theatre.origin must be [lat_deg, lon_deg, alt_m]")
    origin = (float(origin_raw[0]), float(origin_raw[1]), float(origin_raw[2]))
    if not (-90 <= origin[0] <= 90 and -180 <= origin[1] <= 180):
        raise ConfigError(f"{source}: theatre.origin {origin} is outside lat/lon range")
    sites_raw = th.get("sites", str, "")
    theatre = TheatreConfig(
        origin=origin, sites=_resolve(config_dir, sites_raw) if sites_raw else None
    )
    th.finish()

    tracker = dict(top.get("tracker", dict, {}))
    rules = dict(top.get("rules", dict, {}))
    top.finish()
    return FusionConfig(
        service=service,
        security=security,
        recording=recording,
        theatre=theatre,
        tracker=tracker,
        rules=rules,
        run_dir=run,
        source=source,
    )


def tracker_config(config: FusionConfig) -> Any:
    """The TrackerConfig with this file's [tracker] overrides (``[tracker.classes.air]`` for one
    class); an unknown name or a bad value is a ConfigError."""
    from fusion.tracker_config import TrackerConfig  # imported late: the tracker's module

    known = {f.name for f in fields(TrackerConfig)}
    unknown = sorted(set(config.tracker) - known)
    if unknown:
        raise ConfigError(
            f"{config.source}: [tracker] has unknown key(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(known))}"
        )
    try:
        return TrackerConfig.from_dict(config.tracker)
    except (TypeError, ValueError, KeyError) as exc:
        raise ConfigError(f"{config.source}: [tracker]: {exc}") from None
