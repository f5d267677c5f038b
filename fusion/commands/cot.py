"""`fusion cot --to udp://host:port|tcp://host:port|tls://host:port`: the CoT/TAK bridge.

Subscribes to the fusion node's PUB stream (fusion.client, catching up on cues from the store
first) and sends each cue and confirmed track to TAK as Cursor on Target (fusion.cot,
fusion.cot_bridge, fusion.cot_transport). `--replay DIR` bridges a replay's output instead.
Also holds the small helpers the other downstream commands (map, export) share: client options
and a (topic, message) source over a subscription.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fusion.commandline import parse_llh
from fusion.commands.run import DEFAULT_CONFIG

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- shared helpers


def add_client_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="service configuration")
    p.add_argument("--run-dir", help="run directory of the service (keys)")
    p.add_argument("--key", default="subscriber", help="subscriber key name in keys_dir")
    p.add_argument(
        "--endpoint",
        "--connect",
        dest="endpoint",
        help="fusion PUB endpoint (default: the config's service.publish)",
    )
    p.add_argument("--query", help="fusion query endpoint (default: the config's service.query)")


def open_client(args: argparse.Namespace) -> tuple[Any, Any]:
    """(FusionClient, FusionConfig) from the common options."""
    from fusion.client import FusionClient
    from fusion.config import load_config

    config = load_config(args.config, run_dir=args.run_dir)
    client = FusionClient.from_config(config, key=args.key)
    if getattr(args, "endpoint", None):
        client.publish_endpoint = args.endpoint
    if getattr(args, "query", None):
        client.query_endpoint = args.query
    return client, config


def subscribe_stream(args: argparse.Namespace, command: str) -> tuple[Any, Any] | None:
    """(Subscription to the cue and track topics, FusionConfig) from the common options, for
    the commands that follow the fusion stream; None, after saying why on stderr as
    `fusion <command>: ...`, when the config or the service cannot be had."""
    from fusion.client import QueryError
    from fusion.config import ConfigError

    try:
        client, config = open_client(args)
        return client.subscribe(["cue", "trk"]), config
    except (ConfigError, QueryError) as exc:
        print(f"fusion {command}: {exc}", file=sys.stderr)
        return None


def open_replay(args: argparse.Namespace, command: str) -> Any | None:
    """The replay output directory `args.replay` (fusion.replay_output.ReplayOutput); None,
    after saying why on stderr as `fusion <command>: ...`, when it cannot be read."""
    from fusion.replay_output import ReplayOutputError, read_replay_dir

    try:
        return read_replay_dir(args.replay)
    except ReplayOutputError as exc:
        print(f"fusion {command}: {exc}", file=sys.stderr)
        return None


def subscription_pairs(
    sub: Any, stop: threading.Event, idle_s: float = 0.5
) -> Iterator[tuple[str, Any]]:
    """(topic, message) pairs from a fusion.client Subscription; ("", None) when nothing came
    for `idle_s`, so consumers get a chance to expire state; ends when `stop` is set."""
    while not stop.is_set():
        r = sub.next(timeout_s=idle_s)
        yield ("", None) if r is None else (r.topic, r.message)


def replay_pairs(
    pairs: Iterator[tuple[str, Any]],
    speed: float,
    stop: threading.Event,
    max_gap_s: float = 2.0,
    until_s: float | None = None,
) -> Iterator[tuple[str, Any]]:
    """Pace a replay's time-ordered pairs at `speed` x real time (0: no pacing); long quiet
    gaps are cut to `max_gap_s` of wall time; with `until_s`, stop that many seconds of data
    time after the first message."""
    last_t = first_t = None
    for topic, msg in pairs:
        if stop.is_set():
            return
        t = getattr(msg, "t_s", None)
        if t is None and hasattr(msg, "body"):
            t = msg.body.get("t_s")
        if isinstance(t, int | float):
            first_t = t if first_t is None else first_t
            if until_s is not None and t > first_t + until_s:
                return
        if speed > 0 and isinstance(t, int | float):
            if last_t is not None and t > last_t:
                stop.wait(min((t - last_t) / speed, max_gap_s))
            last_t = t
        yield topic, msg


# --------------------------------------------------------------------------- the command


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "cot",
        help="bridge cues and tracks to TAK as Cursor on Target over UDP/TCP/TLS",
        description="Send cues (alerts, b-a-g) and confirmed tracks (a-<aff>-<dim>) to TAK.",
    )
    add_client_args(p)
    p.add_argument(
        "--to",
        action="append",
        required=True,
        metavar="URL",
        help="udp://host:port (unicast or multicast), tcp://host:port, tls://host:port; "
        "repeatable",
    )
    p.add_argument("--replay", type=Path, help="bridge a replay output directory instead")
    p.add_argument("--speed", type=float, default=0.0, help="replay pacing (x real time; 0 none)")
    p.add_argument("--sites", type=Path, help="site file, to place cues without a position")
    p.add_argument("--tls", action="store_true", help="use TLS on tcp:// endpoints")
    p.add_argument("--tls-ca", help="CA file that signed the TAK server's certificate")
    p.add_argument("--tls-cert", help="client certificate (PEM)")
    p.add_argument("--tls-key", help="client private key (PEM)")
    p.add_argument("--tls-password", help="password of the client key")
    p.add_argument("--tls-server-name", help="expected server name (default: the host)")
    p.add_argument(
        "--tls-no-verify", action="store_true", help="do not verify the server (testing only)"
    )
    p.add_argument("--ttl", type=int, default=1, help="multicast TTL")
    p.add_argument("--interface", help="multicast interface address")
    p.add_argument("--uid-prefix", default="fusion", help="prefix of CoT uids")
    p.add_argument(
        "--friendly", action="append", default=[], help="friendly identity or prefix* (repeatable)"
    )
    p.add_argument("--origin", help="theatre origin lat,lon,alt (default: the config's)")
    p.add_argument("--no-tracks", action="store_true", help="send cues only")
    p.add_argument(
        "--withdraw",
        choices=("stale", "delete", "both"),
        default="both",
        help="how closed cues and deleted tracks are withdrawn",
    )
    p.add_argument("--cue-stale", type=float, default=300.0, help="stale of open cues, s")
    p.add_argument("--duration", type=float, default=0.0, help="stop after S seconds (0 never)")
    p.set_defaults(func=main)


def _site_points(path: Path | None) -> dict[str, tuple[float, float]]:
    """Where cues without a position go: a point on their site (none when no site file)."""
    if path is None:
        return {}
    from fusion.cot_bridge import site_points
    from fusion.sites import SiteError, load_sites

    try:
        return site_points(load_sites(path))
    except SiteError as exc:
        log.warning("fusion cot: sites %s not usable (%s); positionless cues go to 0, 0", path, exc)
        return {}


def build_sender(args: argparse.Namespace):
    from fusion.cot_transport import MultiSender, TlsOptions, open_sender

    tls = None
    if args.tls or args.tls_ca or args.tls_cert or args.tls_no_verify:
        tls = TlsOptions(
            cafile=args.tls_ca,
            certfile=args.tls_cert,
            keyfile=args.tls_key,
            password=args.tls_password,
            verify=not args.tls_no_verify,
            server_hostname=args.tls_server_name,
        )
    senders = []
    for url in args.to:
        stream = not url.lower().startswith("udp://")
        senders.append(
            open_sender(url, tls=tls if stream else None, ttl=args.ttl, interface=args.interface)
        )
    return MultiSender(senders)


def main(args: argparse.Namespace) -> int:
    from fusion.cot import AffiliationPolicy
    from fusion.cot_bridge import BridgeConfig, CotBridge

    try:
        sender = build_sender(args)
    except (ValueError, OSError) as exc:
        print(f"fusion cot: {exc}", file=sys.stderr)
        return 2
    origin = None
    if args.origin:
        try:
            origin = parse_llh(args.origin)
        except ValueError:
            print("fusion cot: --origin must be lat,lon,alt", file=sys.stderr)
            return 2
    cfg = BridgeConfig(
        uid_prefix=args.uid_prefix,
        affiliation=AffiliationPolicy(friendly=frozenset(args.friendly)),
        send_tracks=not args.no_tracks,
        withdraw=args.withdraw,
        cue_stale_s=args.cue_stale,
    )
    stop = threading.Event()
    if args.duration > 0:
        timer = threading.Timer(args.duration, stop.set)
        timer.daemon = True
        timer.start()
    sub = None
    try:
        if args.replay:
            out = open_replay(args, "cot")
            if out is None:
                return 2
            source = replay_pairs(out.pairs(), args.speed, stop)
            sites_path = args.sites or out.sites_path
            if origin is None:
                from fusion.commands.map import _origin

                origin = _origin(out.manifest)
        else:
            opened = subscribe_stream(args, "cot")
            if opened is None:
                return 1
            sub, config = opened
            origin = origin or config.theatre.origin
            sites_path = args.sites or config.theatre.sites
            source = subscription_pairs(sub, stop)
        bridge = CotBridge(
            sender.send,
            cfg,
            origin=origin,
            full_updates=bool(args.replay),
            site_points=_site_points(sites_path),
        )
        t0 = time.monotonic()
        n = bridge.run(source, stop=stop.is_set)
        s = bridge.stats
        print(
            f"fusion cot: {n} events in {time.monotonic() - t0:.1f} s "
            f"({s.cue_events} cue, {s.track_events} track, {s.withdrawals} withdrawals, "
            f"bad input {sum(s.bad_input.values())}); dropped by senders "
            f"{sum(x.stats.dropped for x in sender.senders)}",
            file=sys.stderr,
        )
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        if sub is not None:
            sub.close()
        sender.close()
    return 0
