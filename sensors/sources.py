"""Where sensor bytes come from: files, TCP, UDP (unicast or multicast), serial devices, pcap.

This module owns reading raw input and stamping it with its receipt time; it must not decode
any sensor format. Every source yields ``(recv_t_s, data)``: a line (without its line ending)
for text protocols, a datagram for UDP and pcap. Live sources check `stop` at least every
`poll_s` and reconnect with a doubling backoff, so a sensor that goes away never kills the
adapter. Garbage is the decoders' business; a source only ends when its input ends.
"""

from __future__ import annotations

import gzip
import logging
import os
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

MAX_LINE_BYTES = 64 * 1024  # a longer "line" is garbage; it is cut and passed on to be counted


def open_maybe_gzip(path: str | os.PathLike[str]):
    p = Path(path)
    with open(p, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    return gzip.open(p, "rb") if gz else open(p, "rb")  # noqa: SIM115 - caller closes


def file_lines(path: str | os.PathLike[str]) -> Iterator[tuple[float, bytes]]:
    """Lines of a (possibly gzipped) text file, stamped with the wall clock at reading."""
    with open_maybe_gzip(path) as f:
        for line in f:
            yield time.time(), line.rstrip(b"\r\n")


def _split_lines(buf: bytearray, chunk: bytes, now: float) -> Iterator[tuple[float, bytes]]:
    buf += chunk
    while True:
        i = buf.find(b"\n")
        if i < 0:
            if len(buf) > MAX_LINE_BYTES:
                yield now, bytes(buf[:MAX_LINE_BYTES])
                del buf[:]
            return
        line = bytes(buf[:i]).rstrip(b"\r")
        del buf[: i + 1]
        yield now, line


def tcp_lines(
    host: str,
    port: int,
    stop: threading.Event,
    *,
    poll_s: float = 0.2,
    backoff_max_s: float = 10.0,
) -> Iterator[tuple[float, bytes]]:
    """Lines from a TCP server (an AIS receiver, dump1090's port 30003), reconnecting."""
    backoff_s = 0.2
    while not stop.is_set():
        try:
            with socket.create_connection((host, port), timeout=max(poll_s, 1.0)) as s:
                s.settimeout(poll_s)
                backoff_s = 0.2
                buf = bytearray()
                while not stop.is_set():
                    try:
                        chunk = s.recv(65536)
                    except TimeoutError:
                        continue
                    if not chunk:
                        break
                    yield from _split_lines(buf, chunk, time.time())
        except OSError as e:
            log.info("tcp %s:%d: %s; retrying in %.1f s", host, port, e, backoff_s)
        stop.wait(backoff_s)
        backoff_s = min(backoff_s * 2.0, backoff_max_s)


def udp_datagrams(
    bind: str,
    port: int,
    stop: threading.Event,
    *,
    group: str | None = None,
    interface: str = "0.0.0.0",
    poll_s: float = 0.2,
) -> Iterator[tuple[float, bytes]]:
    """Datagrams on a UDP port; with `group`, joins that IPv4 multicast group."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        s.bind((group if group else bind, port))
        if group:
            mreq = struct.pack("=4s4s", socket.inet_aton(group), socket.inet_aton(interface))
            s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        s.settimeout(poll_s)
        while not stop.is_set():
            try:
                data = s.recv(65536)
            except TimeoutError:
                continue
            yield time.time(), data
    finally:
        s.close()


def udp_lines(
    bind: str, port: int, stop: threading.Event, **kw: object
) -> Iterator[tuple[float, bytes]]:
    """Text lines arriving in UDP datagrams (one or more lines per datagram)."""
    for t, data in udp_datagrams(bind, port, stop, **kw):  # type: ignore[arg-type]
        for line in data.splitlines():
            yield t, line


def serial_lines(
    device: str, baud: int, stop: threading.Event, *, poll_s: float = 0.2
) -> Iterator[tuple[float, bytes]]:
    """Lines from a serial device (pyserial, an optional dependency), reopening on error."""
    try:
        import serial  # type: ignore[import-not-found]
    except ImportError as e:
        raise RuntimeError("serial input needs pyserial: pip install pyserial") from e
    backoff_s = 0.5
    while not stop.is_set():
        try:
            with serial.Serial(device, baud, timeout=poll_s) as port:
                backoff_s = 0.5
                buf = bytearray()
                while not stop.is_set():
                    chunk = port.read(4096)
                    if chunk:
                        yield from _split_lines(buf, chunk, time.time())
        except (OSError, serial.SerialException) as e:
            log.info("serial %s: %s; retrying in %.1f s", device, e, backoff_s)
        stop.wait(backoff_s)
        backoff_s = min(backoff_s * 2.0, 10.0)


# -- pcap -----------------------------------------------------------------------------------

_PCAP_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
PCAP_MAGICS = tuple(_PCAP_MAGIC)
LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_LINUX_SLL = 1, 101, 113


class PcapError(ValueError):
    """Not a classic pcap file, or a link type this reader does not know."""


def pcap_udp(
    path: str | os.PathLike[str], stats: dict[str, int] | None = None
) -> Iterator[tuple[float, bytes]]:
    """(capture time, UDP payload) of every IPv4 UDP datagram in a classic pcap file.

    Ethernet (with 802.1Q tags), Linux cooked and raw IP captures are read. The payload is cut
    to the UDP length, which drops the padding Ethernet adds to short frames. Non-UDP packets,
    IP fragments and truncated records are counted in `stats` and skipped."""
    st = stats if stats is not None else {}
    with open_maybe_gzip(path) as f:
        head = f.read(24)
        if len(head) < 24 or head[:4] not in _PCAP_MAGIC:
            raise PcapError(f"{path}: not a classic pcap file (pcapng is not supported)")
        endian, tick_s = _PCAP_MAGIC[head[:4]]
        linktype = struct.unpack(endian + "I", head[20:24])[0] & 0x0FFFFFFF
        if linktype not in (LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_LINUX_SLL):
            raise PcapError(f"{path}: link type {linktype} not supported")
        rec = struct.Struct(endian + "IIII")
        while True:
            h = f.read(16)
            if not h:
                return
            if len(h) < 16:
                st["truncated"] = st.get("truncated", 0) + 1
                return
            sec, frac, incl, _orig = rec.unpack(h)
            pkt = f.read(incl)
            if len(pkt) < incl:
                st["truncated"] = st.get("truncated", 0) + 1
                return
            payload = _udp_payload(pkt, linktype)
            if payload is None:
                st["not_udp"] = st.get("not_udp", 0) + 1
                continue
            st["datagrams"] = st.get("datagrams", 0) + 1
            yield sec + frac * tick_s, payload


def _udp_payload(pkt: bytes, linktype: int) -> bytes | None:
    if linktype == LINKTYPE_ETHERNET:
        off, ethertype = 14, pkt[12:14]
        while ethertype == b"\x81\x00" and len(pkt) >= off + 4:  # 802.1Q VLAN tag
            ethertype = pkt[off + 2 : off + 4]
            off += 4
        if ethertype != b"\x08\x00":
            return None
    elif linktype == LINKTYPE_LINUX_SLL:
        if pkt[14:16] != b"\x08\x00":
            return None
        off = 16
    else:
        off = 0
    if len(pkt) < off + 20 or pkt[off] >> 4 != 4:
        return None
    ihl = (pkt[off] & 0x0F) * 4
    flags_frag = struct.unpack(">H", pkt[off + 6 : off + 8])[0]
    if pkt[off + 9] != 17 or flags_frag & 0x3FFF:  # not UDP, or a fragment
        return None
    u = off + ihl
    if len(pkt) < u + 8:
        return None
    udp_len = struct.unpack(">H", pkt[u + 4 : u + 6])[0]
    if udp_len < 8:
        return None
    return pkt[u + 8 : u + udp_len]
