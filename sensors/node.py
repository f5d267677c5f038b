"""A surveillance node: its TOML config, and the adapters it runs (one reader thread and one
link to fusion per adapter).

This module owns the node config format and wiring a source to a decoder to a `Link`. It must
not decode formats (the decoder modules do) nor speak ZeroMQ (sensors.base does).

```toml
[node]
name = "solent-1"
endpoint = "tcp://fusion.example.org:5555"
client_cert = "/etc/ceasefire/keys/solent-1.key_secret"   # zmq.auth certificate files
server_key = "/etc/ceasefire/keys/fusion.key"
metrics_port = 9101                                       # optional, Prometheus text

[[adapter]]
kind = "ais"                     # ais | sbs | opensky | asterix | acoustic
sensor = "ais.solent-1"          # the sensor id fusion knows this feed by
source = "tcp://10.0.0.20:10110" # file:PATH | tcp://H:P | udp://BIND:P[?group=G&iface=I]
                                 # | serial:///dev/ttyUSB0?baud=38400 | pcap:PATH
site = [50.80, -1.10, 20.0]      # receiver or radar position (lat, lon, alt_m)
max_range_m = 40000              # coverage announced in heartbeats
[adapter.link]                   # optional LinkConfig overrides
batch_wait_s = 0.05
```

ASTERIX adapters add `[adapter.radars]` entries ``"SAC/SIC" = [lat, lon, alt_m]`` (else
`site` serves every radar) and may set `date = "YYYY-MM-DD"` for raw files. An optional
`[adapter.options]` table passes keyword arguments to the decoder: `sigma_range_m`,
`sigma_az_deg`, `engine` (ASTERIX), `utc_offset_s` (SBS: dump1090 writes local time),
`plausibility` (AIS, SBS), `kinds` (acoustic event types).
"""

from __future__ import annotations

import logging
import threading
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CollectorRegistry

from sensors import sources
from sensors.base import Link, LinkConfig
from sensors.batching import Measurement

log = logging.getLogger(__name__)

KINDS = ("ais", "sbs", "opensky", "asterix", "acoustic")
_LINK_FIELDS = {f.name for f in fields(LinkConfig)}


@dataclass(frozen=True)
class AdapterConfig:
    kind: str
    sensor: str
    source: str
    site: tuple[float, float, float] | None = None
    max_range_m: float | None = None
    radars: dict[tuple[int, int], tuple[float, float, float]] = field(default_factory=dict)
    date: str | None = None
    link: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)  # decoder keyword arguments


@dataclass(frozen=True)
class NodeConfig:
    name: str
    endpoint: str
    client_cert: str | None = None
    server_key: str | None = None
    plaintext: bool = False
    metrics_port: int | None = None
    adapters: tuple[AdapterConfig, ...] = ()


class ConfigError(ValueError):
    """A node config that cannot run, with the place and the reason."""


def load_node_config(path: str | Path) -> NodeConfig:
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{p}: {e}") from e
    node = raw.get("node")
    if not isinstance(node, dict):
        raise ConfigError(f"{p}: missing [node] table")
    for key in ("name", "endpoint"):
        if not isinstance(node.get(key), str):
            raise ConfigError(f"{p}: [node] needs a string `{key}`")
    base = p.parent

    def rel(v: str | None) -> str | None:
        # key files are resolved against the config's directory when relative
        if v is None or len(v) == 40 and not (base / v).exists():
            return v
        q = Path(v)
        return str(q if q.is_absolute() else base / q)

    adapters = []
    for i, a in enumerate(raw.get("adapter", [])):
        where = f"{p}: adapter #{i + 1}"
        if a.get("kind") not in KINDS:
            raise ConfigError(f"{where}: kind must be one of {KINDS}, not {a.get('kind')!r}")
        for key in ("sensor", "source"):
            if not isinstance(a.get(key), str):
                raise ConfigError(f"{where}: needs a string `{key}`")
        site = a.get("site")
        if site is not None and (
            len(site) != 3 or not all(isinstance(x, int | float) for x in site)
        ):
            raise ConfigError(f"{where}: site must be [lat_deg, lon_deg, alt_m]")
        radars = {}
        for key, pos in a.get("radars", {}).items():
            try:
                sac, sic = (int(x) for x in key.split("/"))
                radars[(sac, sic)] = tuple(float(x) for x in pos)
            except (ValueError, TypeError) as e:
                raise ConfigError(
                    f'{where}: radars key {key!r}: want "SAC/SIC" = [lat, lon, alt]'
                ) from e
        link = dict(a.get("link", {}))
        unknown = set(link) - _LINK_FIELDS
        if unknown:
            raise ConfigError(f"{where}: unknown link settings {sorted(unknown)}")
        adapters.append(
            AdapterConfig(
                kind=a["kind"],
                sensor=a["sensor"],
                source=a["source"],
                site=tuple(float(x) for x in site) if site else None,
                max_range_m=a.get("max_range_m"),
                radars=radars,
                date=a.get("date"),
                link=link,
                options=dict(a.get("options", {})),
            )
        )
        try:
            make_decoder(adapters[-1])
        except TypeError as e:
            raise ConfigError(f"{where}: [adapter.options]: {e}") from e
    if not adapters:
        raise ConfigError(f"{p}: no [[adapter]] listed")
    return NodeConfig(
        name=node["name"],
        endpoint=node["endpoint"],
        client_cert=rel(node.get("client_cert")),
        server_key=rel(node.get("server_key")),
        plaintext=bool(node.get("plaintext", False)),
        metrics_port=node.get("metrics_port"),
        adapters=tuple(adapters),
    )


# -- sources and decoders -----------------------------------------------------------------


def open_source(url: str, stop: threading.Event, *, datagrams: bool = False) -> Iterator:
    """(recv_t_s, bytes) items from a source URL: lines, or datagrams when `datagrams`."""
    parts = urlsplit(url)
    q = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    scheme = parts.scheme
    if scheme in ("", "file"):
        path = parts.path if scheme else url
        if datagrams:
            from sensors.asterix import raw_file_datagrams

            return raw_file_datagrams(path)
        return sources.file_lines(path)
    if scheme == "pcap":
        return sources.pcap_udp(parts.path or parts.netloc)
    if scheme == "tcp":
        return sources.tcp_lines(parts.hostname, parts.port, stop)
    if scheme == "udp":
        kw = {"group": q.get("group"), "interface": q.get("iface", "0.0.0.0")}
        if datagrams:
            return sources.udp_datagrams(parts.hostname or "0.0.0.0", parts.port, stop, **kw)
        return sources.udp_lines(parts.hostname or "0.0.0.0", parts.port, stop, **kw)
    if scheme == "serial":
        return sources.serial_lines(parts.path, int(q.get("baud", 38400)), stop)
    raise ConfigError(f"source {url!r}: unknown scheme {scheme!r}")


def is_file_source(url: str) -> bool:
    return urlsplit(url).scheme in ("", "file", "pcap")


def make_decoder(a: AdapterConfig) -> tuple[Callable[[bytes, float], list[Measurement]], dict]:
    """(feed function, its stats dict) for an adapter's kind."""
    if a.kind == "ais":
        from sensors.ais import AisDecoder

        d = AisDecoder(**a.options)
        return d.feed, d.stats
    if a.kind == "sbs":
        from sensors.adsb import SbsDecoder

        d = SbsDecoder(**a.options)
        return d.feed, d.stats
    if a.kind == "asterix":
        from sensors.asterix import AsterixDecoder

        d = AsterixDecoder(sites=a.radars, default_site=a.site, date=a.date, **a.options)
        return d.feed, d.stats
    if a.kind == "acoustic":
        from sensors.acoustic import AcousticDecoder

        d = AcousticDecoder(**a.options)
        return d.feed, d.stats
    if a.kind == "opensky":
        from sensors.adsb import AdsbDecoder

        d = AdsbDecoder(**a.options)
        return _whole_file, d.stats
    raise ConfigError(f"{a.sensor}: unknown kind {a.kind!r}")


def _whole_file(data: bytes, recv_t_s: float) -> list[Measurement]:
    raise AssertionError("opensky adapters read whole files (see AdapterRunner._read)")


def opensky_measurements(path: str, stats: dict) -> Iterator[Measurement]:
    """OpenSky state vectors from a JSON(.gz) or CSV file, in measurement-time order."""
    from sensors.adsb import AdsbDecoder, decode_opensky_csv, decode_opensky_json

    dec = AdsbDecoder()
    stats.update(dec.stats)
    dec.stats = stats  # the caller's dict, so its counts are live
    with sources.open_maybe_gzip(path) as f:
        head = f.read(64).lstrip()
    if head[:1] in (b"[", b"{"):
        ms = list(decode_opensky_json(path, dec))
    else:
        ms = list(decode_opensky_csv(sources.file_lines(path), dec))
    ms.sort(key=lambda m: m.t_s)
    return iter(ms)


class AdapterRunner:
    """One adapter: a reader thread (source -> decoder -> link.submit) and its link."""

    def __init__(self, node: NodeConfig, a: AdapterConfig, registry: CollectorRegistry) -> None:
        self.config = a
        self.stop = threading.Event()
        self.feed, self.stats = make_decoder(a)
        link_kw = dict(a.link)
        if is_file_source(a.source):
            link_kw.setdefault("overflow", "block")  # a file can wait; a live sensor cannot
        coverage = {"max_range_m": float(a.max_range_m)} if a.max_range_m else {}
        self.link = Link(
            LinkConfig(
                endpoint=node.endpoint,
                sensor=a.sensor,
                client_cert=node.client_cert,
                server_key=node.server_key,
                plaintext=node.plaintext,
                site=a.site,
                coverage=coverage,
                **link_kw,
            ),
            registry=registry,
            source_stats=lambda: dict(self.stats),
        )
        self._thread: threading.Thread | None = None
        self.finished = threading.Event()

    def start(self) -> AdapterRunner:
        self.link.start()
        self._thread = threading.Thread(target=self._read, name=f"read-{self.config.sensor}")
        self._thread.daemon = True
        self._thread.start()
        return self

    def _read(self) -> None:
        try:
            if self.config.kind == "opensky":
                path = urlsplit(self.config.source).path or self.config.source
                for m in opensky_measurements(path, self.stats):
                    if self.stop.is_set():
                        break
                    self.link.submit(m)
                return
            items = open_source(
                self.config.source, self.stop, datagrams=self.config.kind == "asterix"
            )
            for recv_t, data in items:
                if self.stop.is_set():
                    break
                for m in self.feed(data, recv_t):
                    self.link.submit(m)
        except Exception:
            log.exception("adapter %s: reader failed", self.config.sensor)
            self.link.set_status("down")
        finally:
            self.finished.set()

    def close(self, drain_s: float = 2.0) -> None:
        self.stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self.link.close(drain_s)


def run_node(config: NodeConfig, stop: threading.Event, *, registry=None) -> list[AdapterRunner]:
    """Starts every adapter of a node; returns them (call `close` on each to stop)."""
    registry = registry if registry is not None else CollectorRegistry()
    if config.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(int(config.metrics_port), registry=registry)
    return [AdapterRunner(config, a, registry).start() for a in config.adapters]
