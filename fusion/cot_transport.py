"""Senders that carry CoT events to TAK endpoints: UDP (unicast or multicast), TCP, TLS.

This module owns only bytes on sockets: one datagram per event over UDP; over TCP and TLS the
events follow each other on the stream, as TAK Server's streaming inputs expect. A TCP sender
reconnects on failure with a bounded backoff and counts what it had to drop; it never raises
into the bridge, so a dead TAK server never stops the fusion node's other consumers.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

SCHEMES = ("udp", "tcp", "tls", "ssl")


@dataclass(frozen=True)
class TlsOptions:
    """Client TLS for TAK Server's streaming port (usually 8089): the CA that signed the
    server's certificate, and our client certificate and key when the server asks for one."""

    cafile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    password: str | None = None
    verify: bool = True
    server_hostname: str | None = None

    def context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.cafile)
        if not self.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.certfile:
            ctx.load_cert_chain(self.certfile, self.keyfile, self.password)
        return ctx


@dataclass
class SenderStats:
    sent: int = 0
    bytes: int = 0
    dropped: int = 0
    connects: int = 0
    errors: int = 0


def parse_endpoint(url: str) -> tuple[str, str, int]:
    """`udp://host:port`, `tcp://host:port`, `tls://host:port` -> (scheme, host, port)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ValueError(f"unsupported CoT endpoint scheme {parts.scheme!r} in {url!r}")
    if not parts.hostname or parts.port is None:
        raise ValueError(f"CoT endpoint needs host and port: {url!r}")
    return ("tls" if scheme == "ssl" else scheme), parts.hostname, parts.port


class UdpSender:
    """One datagram per event. A multicast group gets a TTL and, optionally, an interface."""

    def __init__(self, host: str, port: int, *, ttl: int = 1, interface: str | None = None) -> None:
        self.address = (host, port)
        self.stats = SenderStats()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            multicast = ipaddress.ip_address(host).is_multicast
        except ValueError:
            multicast = False
        if multicast and family == socket.AF_INET:
            self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
            self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
            if interface:
                self.sock.setsockopt(
                    socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(interface)
                )
        self.multicast = multicast

    def send(self, data: bytes) -> bool:
        try:
            self.sock.sendto(data, self.address)
        except OSError as exc:
            self.stats.errors += 1
            self.stats.dropped += 1
            log.warning("CoT UDP send to %s failed: %s", self.address, exc)
            return False
        self.stats.sent += 1
        self.stats.bytes += len(data)
        return True

    def close(self) -> None:
        self.sock.close()


class TcpSender:
    """Events on one TCP (or TLS) stream. Connects lazily; after a failure, waits `backoff_s`
    (doubling up to `max_backoff_s`) before the next attempt and drops events meanwhile."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        tls: TlsOptions | None = None,
        timeout_s: float = 2.0,
        backoff_s: float = 0.5,
        max_backoff_s: float = 10.0,
        clock=time.monotonic,
    ) -> None:
        self.address = (host, port)
        self.tls = tls
        self.timeout_s = timeout_s
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.clock = clock
        self.stats = SenderStats()
        self._ctx = tls.context() if tls is not None else None
        self._sock: socket.socket | None = None
        self._next_try = 0.0
        self._delay = backoff_s

    def _connect(self) -> socket.socket | None:
        now = self.clock()
        if now < self._next_try:
            return None
        try:
            raw = socket.create_connection(self.address, timeout=self.timeout_s)
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._ctx is not None:
                name = self.tls.server_hostname or self.address[0]
                sock = self._ctx.wrap_socket(raw, server_hostname=name)
            else:
                sock = raw
        except (OSError, ssl.SSLError) as exc:
            self.stats.errors += 1
            self._next_try = now + self._delay
            self._delay = min(self._delay * 2.0, self.max_backoff_s)
            log.warning("CoT connect to %s failed: %s", self.address, exc)
            return None
        self._delay = self.backoff_s
        self.stats.connects += 1
        self._sock = sock
        return sock

    def send(self, data: bytes) -> bool:
        sock = self._sock or self._connect()
        if sock is None:
            self.stats.dropped += 1
            return False
        try:
            sock.sendall(data)
        except (OSError, ssl.SSLError) as exc:
            self.stats.errors += 1
            self.stats.dropped += 1
            log.warning("CoT send to %s failed, reconnecting: %s", self.address, exc)
            self._drop_socket()
            return False
        self.stats.sent += 1
        self.stats.bytes += len(data)
        return True

    def _drop_socket(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
        self._sock = None

    def close(self) -> None:
        self._drop_socket()


class MultiSender:
    """Fans one event out to several senders."""

    def __init__(self, senders: list[UdpSender | TcpSender]) -> None:
        self.senders = senders

    def send(self, data: bytes) -> bool:
        ok = True
        for s in self.senders:
            ok = s.send(data) and ok
        return ok

    def close(self) -> None:
        for s in self.senders:
            s.close()


def open_sender(
    url: str, *, tls: TlsOptions | None = None, ttl: int = 1, interface: str | None = None
) -> UdpSender | TcpSender:
    """A sender for `udp://`, `tcp://` or `tls://` (a `tcp://` URL with `tls` given is TLS)."""
    scheme, host, port = parse_endpoint(url)
    if scheme == "udp":
        if tls is not None:
            raise ValueError("TLS needs a stream endpoint (tcp:// or tls://), not udp://")
        return UdpSender(host, port, ttl=ttl, interface=interface)
    if scheme == "tls" and tls is None:
        tls = TlsOptions()
    return TcpSender(host, port, tls=tls)
