"""CoT bridge: error figures against references, event schema, lifecycle, and real sockets."""

from __future__ import annotations

import math
import shutil
import socket
import ssl
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm

from fusion.cot import (
    CE_ONE_SIGMA_P,
    AffiliationPolicy,
    circular_error_m,
    cot_time,
    dimension_letter,
)
from fusion.cot_bridge import BridgeConfig, CotBridge
from fusion.cot_transport import (
    MultiSender,
    TcpSender,
    TlsOptions,
    UdpSender,
    open_sender,
    parse_endpoint,
)
from fusion.messages import CLS_AIR, CLS_GROUND, CLS_SURFACE, CLS_UNKNOWN, CueEvent, TrackUpdate

EVENT_ATTRS = ("version", "uid", "type", "time", "start", "stale", "how")
POINT_ATTRS = ("lat", "lon", "hae", "ce", "le")
T0 = 1_790_000_000.0


def parse_time(s: str) -> float:
    assert s.endswith("Z"), s
    return datetime.fromisoformat(s[:-1] + "+00:00").timestamp()


def check_schema(xml: bytes) -> ET.Element:
    """The CoT event schema's required attributes, present and well formed."""
    ev = ET.fromstring(xml)
    assert ev.tag == "event"
    for a in EVENT_ATTRS:
        assert ev.get(a), f"missing event attribute {a}"
    assert ev.get("version") == "2.0"
    t, start, stale = (parse_time(ev.get(k)) for k in ("time", "start", "stale"))
    assert start <= stale and t <= stale + 1e-3
    pt = ev.find("point")
    assert pt is not None
    for a in POINT_ATTRS:
        float(pt.get(a))  # present and numeric
    assert -90 <= float(pt.get("lat")) <= 90 and -180 <= float(pt.get("lon")) <= 180
    assert float(pt.get("ce")) >= 0 and float(pt.get("le")) >= 0
    return ev


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def make_update(t_s, ids, pos, P=None, status=2, ident=b"", cls=CLS_GROUND, vel=None):
    n = len(ids)
    if P is None:
        P = np.tile(np.diag([100.0, 100.0, 25.0, 1.0, 1.0, 1.0]), (n, 1, 1))
    return TrackUpdate(
        t_s=t_s,
        id=np.asarray(ids, np.int64),
        pos=np.asarray(pos, np.float64).reshape(n, 3),
        vel=np.zeros((n, 3)) if vel is None else np.asarray(vel, np.float64).reshape(n, 3),
        P=np.asarray(P, np.float64),
        status=np.full(n, status, np.uint8),
        ident=np.full(n, ident, "S24"),
        cls=np.full(n, cls, np.uint8),
        n_sensors=np.full(n, 2, np.uint8),
    )


CUE = {
    "id": "incursion:plant-1:17",
    "seq": 5,
    "state": "open",
    "rule": "line_crossing",
    "site": "plant-1",
    "site_name": "Zaporizhzhia NPP",
    "track": 17,
    "t_s": T0,
    "severity": "high",
    "confidence": 0.82,
    "pos": [47.5123456789012, 34.5876543210987, 60.0],
    "sigma_m": 35.0,
    "text": "Track 17 crossed the line of contact toward plant-1 at 6 m/s.",
}


# ----------------------------------------------------------------- error figures


def test_circular_error_circular_case_is_sigma():
    for sigma in (0.5, 12.0, 800.0):
        P = np.diag([sigma**2, sigma**2])[None]
        assert circular_error_m(P)[0] == pytest.approx(sigma, rel=1e-9)
        # CEP (50 %) of a circular normal is sigma * sqrt(2 ln 2)
        cep = circular_error_m(P, p=0.5)[0]
        assert cep == pytest.approx(sigma * math.sqrt(2 * math.log(2)), rel=1e-9)


def test_circular_error_degenerate_ellipse_is_one_dimensional():
    # all the spread on one axis: P(|x| <= r) = 2 Phi(r / a) - 1
    a = 40.0
    r = circular_error_m(np.diag([a * a, 0.0])[None])[0]
    assert r == pytest.approx(a * norm.ppf(0.5 + CE_ONE_SIGMA_P / 2), rel=1e-6)
    assert circular_error_m(np.zeros((1, 2, 2)))[0] == 0.0


def test_circular_error_against_monte_carlo_and_rotation():
    rng = np.random.default_rng(7)
    for _ in range(5):
        A = rng.normal(size=(2, 2)) * rng.uniform(1, 100)
        P = A @ A.T
        samples = rng.multivariate_normal([0, 0], P, size=400_000)
        dist = np.hypot(samples[:, 0], samples[:, 1])
        for p in (CE_ONE_SIGMA_P, 0.5, 0.9):
            r = circular_error_m(P[None], p=p)[0]
            assert np.mean(dist <= r) == pytest.approx(p, abs=0.003)
        th = rng.uniform(0, np.pi)
        Rm = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
        r0, r1 = circular_error_m(np.stack([P, Rm @ P @ Rm.T]))
        assert r0 == pytest.approx(r1, rel=1e-9)


def test_circular_error_rejects_bad_shapes():
    with pytest.raises(ValueError):
        circular_error_m(np.zeros((3, 3)))
    with pytest.raises(ValueError):
        circular_error_m(np.zeros((1, 2, 2)), p=1.0)


def test_cot_time_format():
    assert cot_time(0.0) == "1970-01-01T00:00:00.000Z"
    assert cot_time(T0 + 0.1234) == "2026-09-21T14:13:20.123Z"
    assert parse_time(cot_time(T0 + 0.5)) == pytest.approx(T0 + 0.5)


# ----------------------------------------------------------------- types


def test_type_letters():
    pol = AffiliationPolicy(friendly=frozenset({"mmsi:111", "icao:4ca*"}))
    assert pol.letter("mmsi:111") == "f"
    assert pol.letter("icao:4ca1fa") == "f"
    assert pol.letter("mmsi:222") == "n"
    assert pol.letter("") == "u"
    assert pol.letter("", ["line_crossing"]) == "h"
    assert pol.letter("", ["approach"]) == "u"
    assert pol.letter("mmsi:111", ["fire_event"]) == "f"
    assert dimension_letter(CLS_AIR, "", 0, 0) == "A"
    assert dimension_letter(CLS_SURFACE, "", 0, 0) == "S"
    assert dimension_letter(CLS_GROUND, "", 5000, 300) == "G"
    assert dimension_letter(CLS_UNKNOWN, "mmsi:1", 0, 0) == "S"
    assert dimension_letter(CLS_UNKNOWN, "icao:abc", 0, 0) == "A"
    assert dimension_letter(CLS_UNKNOWN, "", 3000, 150) == "A"
    assert dimension_letter(CLS_UNKNOWN, "", 100, 10) == "G"


# ----------------------------------------------------------------- events and lifecycle


def test_track_event_values_full_precision_and_errors():
    out: list[bytes] = []
    clock = Clock(T0 + 0.25)
    bridge = CotBridge(out.append, clock=clock)
    lat, lon, alt = 47.51234567890123, 34.58765432109876, 61.25
    P = np.diag([30.0**2, 30.0**2, 8.0**2, 1.0, 1.0, 1.0])[None]
    upd = make_update(
        T0,
        [3],
        [lat, lon, alt],
        P=P,
        ident=b"mmsi:235070762",
        cls=CLS_SURFACE,
        vel=[[3.0, 4.0, 0.0]],
    )
    assert bridge.on_message("trk", upd) == 1
    ev = check_schema(out[0])
    assert ev.get("type") == "a-n-S"
    assert ev.get("how") == "m-f"
    assert ev.get("uid") == "fusion.track.3"
    pt = ev.find("point")
    assert float(pt.get("lat")) == lat and float(pt.get("lon")) == lon  # bit for bit
    assert float(pt.get("hae")) == alt
    assert float(pt.get("ce")) == pytest.approx(30.0, abs=0.01)
    assert float(pt.get("le")) == pytest.approx(8.0, abs=0.01)
    trk = ev.find("detail/track")
    assert float(trk.get("speed")) == pytest.approx(5.0)
    assert float(trk.get("course")) == pytest.approx(math.degrees(math.atan2(3, 4)), abs=0.01)
    assert parse_time(ev.get("start")) == pytest.approx(T0)
    assert parse_time(ev.get("time")) == pytest.approx(T0 + 0.25)


def test_stale_follows_update_rate():
    out: list[bytes] = []
    clock = Clock(T0)
    cfg = BridgeConfig(min_stale_s=1.0, initial_interval_s=5.0, interval_smoothing=0.5)
    bridge = CotBridge(out.append, cfg, clock=clock)

    def horizon(ev):
        return parse_time(ev.get("stale")) - parse_time(ev.get("time"))

    # a fast track updated every 1 s: the stale horizon shrinks toward 3 x 1 s
    for k in range(12):
        clock.t = T0 + k
        bridge.on_tracks(make_update(T0 + k, [1], [47.0, 34.0, 0.0]))
    fast = horizon(ET.fromstring(out[-1]))
    assert fast == pytest.approx(3.0, abs=0.05)
    # a slow one updated every 20 s grows toward 60 s
    for k in range(12):
        clock.t = T0 + 100 + 20 * k
        bridge.on_tracks(make_update(T0 + 100 + 20 * k, [2], [47.0, 34.0, 0.0]))
    slow = horizon(ET.fromstring(out[-1]))
    assert slow == pytest.approx(60.0, abs=0.5)


def test_tentative_tracks_not_sent_and_deleted_tracks_withdrawn():
    out: list[bytes] = []
    clock = Clock(T0)
    bridge = CotBridge(out.append, clock=clock)
    assert bridge.on_tracks(make_update(T0, [9], [47.0, 34.0, 0.0], status=1)) == 0
    bridge.on_tracks(make_update(T0, [4], [47.0, 34.0, 0.0]))
    assert bridge.live_tracks == [4]
    out.clear()
    clock.t = T0 + 2
    assert bridge.on_tracks(make_update(T0 + 2, [4], [47.0, 34.0, 0.0], status=0)) == 2
    stale_ev, delete_ev = (check_schema(x) for x in out)
    assert stale_ev.get("uid") == "fusion.track.4"
    assert stale_ev.get("stale") == stale_ev.get("time") == cot_time(T0 + 2)
    assert delete_ev.get("type") == "t-x-d-d"
    assert delete_ev.find("detail/link").get("uid") == "fusion.track.4"
    assert delete_ev.find("detail/__forcedelete") is not None
    assert bridge.live_tracks == []


def test_silent_tracks_expire():
    out: list[bytes] = []
    clock = Clock(T0)
    bridge = CotBridge(out.append, BridgeConfig(withdraw="stale"), clock=clock)
    bridge.on_tracks(make_update(T0, [4], [47.0, 34.0, 0.0]))
    clock.t = T0 + 10
    assert bridge.expire() == 0
    clock.t = T0 + 16  # initial 5 s interval x 3 = 15 s
    assert bridge.expire() == 1
    assert bridge.live_tracks == []


def test_cue_lifecycle_alert_and_withdrawal():
    out: list[bytes] = []
    clock = Clock(T0 + 0.05)
    bridge = CotBridge(out.append, clock=clock)
    bridge.on_tracks(make_update(T0, [17], [47.5, 34.5, 0.0]))
    assert bridge.on_message("cue.line_crossing.plant-1", CueEvent(body=dict(CUE))) == 1
    ev = check_schema(out[-1])
    assert ev.get("type") == "b-a-g"
    assert ev.get("how") == "m-f"
    assert ev.get("uid") == "fusion.cue.incursion:plant-1:17"
    assert ev.find("detail/remarks").text == CUE["text"]
    pt = ev.find("point")
    assert float(pt.get("lat")) == CUE["pos"][0] and float(pt.get("lon")) == CUE["pos"][1]
    assert float(pt.get("ce")) == pytest.approx(35.0)
    assert ev.find("detail/link").get("uid") == "fusion.track.17"
    assert ev.find("detail/_fusion_cue").get("rule") == "line_crossing"
    assert "Zaporizhzhia" in ev.find("detail/contact").get("callsign")
    assert bridge.open_cues == [CUE["id"]]
    # an open line-crossing cue makes its track hostile
    bridge.on_tracks(make_update(T0 + 1, [17], [47.5, 34.5, 0.0]))
    assert ET.fromstring(out[-1]).get("type") == "a-h-G"
    out.clear()
    clock.t = T0 + 30
    assert bridge.on_cue({**CUE, "state": "close", "t_s": T0 + 29}) == 2
    closed = check_schema(out[0])
    assert closed.get("stale") == closed.get("time") == cot_time(T0 + 30)
    assert closed.find("detail/remarks").text.startswith("CLOSED")
    assert check_schema(out[1]).get("type") == "t-x-d-d"
    assert bridge.open_cues == []
    bridge.on_tracks(make_update(T0 + 31, [17], [47.5, 34.5, 0.0]))
    assert ET.fromstring(out[-1]).get("type") == "a-u-G"


def test_open_cues_are_refreshed_before_stale():
    out: list[bytes] = []
    clock = Clock(T0)
    bridge = CotBridge(out.append, BridgeConfig(cue_refresh_s=60.0), clock=clock)
    bridge.on_cue(dict(CUE))
    clock.t = T0 + 30
    assert bridge.expire() == 0
    clock.t = T0 + 61
    assert bridge.expire() == 1
    ev = check_schema(out[-1])
    assert parse_time(ev.get("stale")) == pytest.approx(T0 + 61 + 300)


def test_bad_input_is_counted_not_raised():
    bridge = CotBridge(lambda b: None)
    bad = {"id": "x", "rule": "incursion", "t_s": T0, "pos": [float("nan"), 34.0]}
    assert bridge.on_message("cue.x", bad) == 0
    assert bridge.on_message("cue.x", {**bad, "pos": [47.0, 34.0], "track": "seven"}) == 0
    assert bridge.stats.bad_input == {"ValueError": 2}
    assert bridge.on_message("status", object()) == 0


def test_cue_without_position_goes_to_its_track_or_site():
    out: list[bytes] = []
    bridge = CotBridge(out.append, clock=Clock(T0), site_points={"bridge-east": (46.7, 31.1)})
    bridge.on_tracks(make_update(T0, [3], [47.25, 34.75, 12.0]))
    body = {"id": "o1", "rule": "incursion", "site": "bridge-east", "t_s": T0}
    pt = check_schema(out[-1] if bridge.on_cue({**body, "track": 3}) else b"").find("point")
    assert (float(pt.get("lat")), float(pt.get("lon")), float(pt.get("hae"))) == (47.25, 34.75, 12)
    assert float(pt.get("ce")) == pytest.approx(10.0)  # the track's own 1-sigma
    bridge.on_cue({**body, "id": "o2", "rule": "sensor_outage"})
    ev = check_schema(out[-1])
    assert ev.get("type") == "b-a"
    assert float(ev.find("point").get("lat")) == 46.7
    assert float(ev.find("point").get("ce")) == 9999999.0
    bridge.on_cue({**body, "id": "o3", "site": "elsewhere"})
    pt = check_schema(out[-1]).find("point")
    assert (float(pt.get("lat")), float(pt.get("ce"))) == (0.0, 9999999.0)


def test_site_points_lie_on_the_sites():
    from shapely.geometry import Point

    from fusion.cot_bridge import site_points
    from fusion.sites import load_sites

    ss = load_sites(Path(__file__).resolve().parent.parent / "configs/sites/demo.geojson")
    pts = site_points(ss)
    assert set(pts) == {s.id for s in ss}
    for s in ss:
        lat, lon = pts[s.id]
        assert s.geometry_ll.distance(Point(lon, lat)) < 1e-9


def test_picture_input_rotates_into_local_frame():
    geo = pytest.importorskip("fusion.geo")
    from fusion.picture import TrackPicture

    origin = (47.0, 34.0, 0.0)
    frame = geo.LocalFrame(*origin)
    llh = np.array([[47.4, 34.9, 120.0]])
    enu = frame.to_enu(llh)
    Rt = frame.rotation_at(llh)[0]  # local -> theatre
    P_local = np.diag([20.0**2, 50.0**2, 5.0**2, 1, 1, 1])
    T = np.zeros((6, 6))
    T[:3, :3] = Rt
    T[3:, 3:] = Rt
    pic = TrackPicture(
        t_s=T0,
        origin=origin,
        id=np.array([8]),
        x=np.hstack([enu, [[0.0, 0.0, 0.0]]]),
        P=(T @ P_local @ T.T)[None],
        t_upd_s=np.array([T0]),
        status=np.array([2], np.uint8),
        ident=np.array([b""], "S24"),
        cls=np.array([CLS_GROUND], np.uint8),
        n_sensors=np.array([1], np.uint8),
        sensor_kinds=np.array([2], np.uint8),
        hits=np.array([5], np.int32),
        quality=np.array([0.9]),
    )
    out: list[bytes] = []
    bridge = CotBridge(out.append, clock=Clock(T0))
    bridge.on_picture(pic)
    pt = check_schema(out[0]).find("point")
    assert float(pt.get("lat")) == pytest.approx(47.4, abs=1e-9)
    assert float(pt.get("le")) == pytest.approx(5.0, abs=0.01)
    ce = circular_error_m(P_local[None, :2, :2])[0]
    assert float(pt.get("ce")) == pytest.approx(ce, abs=0.01)
    # absent from the next full picture: withdrawn
    out.clear()
    bridge.on_picture(TrackPicture.empty(T0 + 1, origin))
    assert [ET.fromstring(x).get("type") for x in out] == ["a-u-G", "t-x-d-d"]


# ----------------------------------------------------------------- sockets


def test_parse_endpoint():
    assert parse_endpoint("udp://239.2.3.1:6969") == ("udp", "239.2.3.1", 6969)
    assert parse_endpoint("ssl://tak.example:8089") == ("tls", "tak.example", 8089)
    for bad in ("http://x:1", "tcp://hostonly", "udp://:5"):
        with pytest.raises(ValueError):
            parse_endpoint(bad)
    with pytest.raises(ValueError):
        open_sender("udp://127.0.0.1:9", tls=TlsOptions())


class TcpListener:
    """A TAK-like TCP input: accepts one client and splits the stream into events."""

    def __init__(self, ssl_ctx: ssl.SSLContext | None = None) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(3.0)
        self.port = self.server.getsockname()[1]
        self.ssl_ctx = ssl_ctx
        self.events: list[tuple[float, bytes]] = []
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            conn, _ = self.server.accept()
        except OSError:
            return
        if self.ssl_ctx is not None:
            try:
                conn = self.ssl_ctx.wrap_socket(conn, server_side=True)
            except (ssl.SSLError, OSError):
                conn.close()  # a refused handshake: nothing arrives
                return
        conn.settimeout(3.0)
        buf = b""
        with conn:
            while True:
                try:
                    chunk = conn.recv(65536)
                except OSError:
                    return
                if not chunk:
                    return
                buf += chunk
                while b"</event>" in buf:
                    one, buf = buf.split(b"</event>", 1)
                    with self.cond:
                        self.events.append((time.perf_counter(), one + b"</event>"))
                        self.cond.notify_all()

    def wait(self, n: int, timeout_s: float = 3.0) -> list[tuple[float, bytes]]:
        with self.cond:
            self.cond.wait_for(lambda: len(self.events) >= n, timeout_s)
            return list(self.events)

    def close(self) -> None:
        self.server.close()


def test_cue_reaches_tcp_and_udp_listeners_quickly():
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(3.0)
    tcp = TcpListener()
    sender = MultiSender(
        [
            open_sender(f"tcp://127.0.0.1:{tcp.port}"),
            open_sender(f"udp://127.0.0.1:{udp.getsockname()[1]}"),
        ]
    )
    try:
        bridge = CotBridge(sender.send)
        t_pub = time.perf_counter()
        assert bridge.on_message("cue.line_crossing.plant-1", CueEvent(body=dict(CUE))) == 1
        data, _ = udp.recvfrom(65536)
        t_udp = time.perf_counter()
        ((t_tcp, tcp_xml),) = tcp.wait(1)
        for xml in (data, tcp_xml):
            ev = check_schema(xml)
            assert ev.get("type") == "b-a-g"
            assert ev.find("detail/remarks").text == CUE["text"]
        # loose bound here; benchmarks/cot.py measures the distribution
        assert t_udp - t_pub < 0.1 and t_tcp - t_pub < 0.1
        bridge.on_cue({**CUE, "state": "close"})
        events = tcp.wait(3)
        assert [ET.fromstring(x).get("type") for _, x in events] == ["b-a-g", "b-a-g", "t-x-d-d"]
    finally:
        sender.close()
        tcp.close()
        udp.close()


def test_tcp_sender_survives_a_dead_endpoint_and_reconnects():
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    clock = Clock(0.0)
    s = TcpSender("127.0.0.1", port, timeout_s=0.5, backoff_s=1.0, clock=clock)
    assert s.send(b"<event/>") is False
    assert s.send(b"<event/>") is False  # inside the backoff: no new attempt
    assert s.stats.dropped == 2 and s.stats.errors == 1
    server = socket.create_server(("127.0.0.1", port))
    try:
        clock.t = 1.5
        assert s.send(b"<event/>") is True
        conn, _ = server.accept()
        conn.settimeout(2.0)
        assert conn.recv(100) == b"<event/>"
        conn.close()
    finally:
        s.close()
        server.close()


def test_udp_multicast_sender_options():
    s = UdpSender("239.2.3.1", 6969, ttl=3)
    try:
        assert s.multicast
        assert s.sock.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL) == 3
    finally:
        s.close()


def _self_signed(tmp_path, name: str) -> tuple[str, str]:
    cert, key = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return str(cert), str(key)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI needed to make a cert")
def test_tls_stream_with_client_certificate(tmp_path):
    """TAK Server's streaming TLS port: the server is verified against its CA and asks for
    our client certificate (mutual TLS)."""
    cert, key = _self_signed(tmp_path, "localhost")
    client_cert, client_key = _self_signed(tmp_path, "bridge")
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    server_ctx.load_verify_locations(client_cert)
    tcp = TcpListener(server_ctx)
    sender = open_sender(
        f"tls://127.0.0.1:{tcp.port}",
        tls=TlsOptions(
            cafile=cert, certfile=client_cert, keyfile=client_key, server_hostname="localhost"
        ),
    )
    try:
        CotBridge(sender.send).on_cue(dict(CUE))
        ((_, xml),) = tcp.wait(1)
        assert check_schema(xml).get("type") == "b-a-g"
        assert sender.stats.sent == 1
    finally:
        sender.close()
        tcp.close()
    # a server whose certificate the CA file does not vouch for is refused, not sent to
    tcp2 = TcpListener(server_ctx)
    bad = open_sender(
        f"tls://127.0.0.1:{tcp2.port}",
        tls=TlsOptions(cafile=client_cert, certfile=client_cert, keyfile=client_key),
    )
    try:
        assert bad.send(b"<event/>") is False
        assert bad.stats.errors == 1 and bad.stats.sent == 0
    finally:
        bad.close()
        tcp2.close()


def test_service_cue_reaches_tak_through_fusion_cot(tmp_path):
    """The production path on loopback with CURVE: an adapter's batch -> FusionService (a
    counting core that cues every batch) -> store -> PUB -> `fusion cot` (client with catch-up,
    bridge, TCP sender) -> a TAK-like listener. Each cue is checked against its publish time."""
    from fusion.cli import main as fusion_main
    from fusion.service.server import FusionService, run_in_thread
    from fusion.service.testing import CountingCore, RawAdapter, make_batch, write_config

    config, path = write_config(tmp_path, adapters={"adapter": ["s1"]})
    svc = FusionService(config, core=CountingCore(cue_every=1, n_tracks=2))
    svc.start()
    svc_thread = run_in_thread(svc)
    adapter = RawAdapter.for_config(config, svc.endpoints["ingest"], "adapter")
    tcp = TcpListener()
    args = [
        "cot",
        "--config",
        str(path),
        "--endpoint",
        svc.endpoints["publish"],
        "--query",
        svc.endpoints["query"],
        "--to",
        f"tcp://127.0.0.1:{tcp.port}",
        "--duration",
        "3",
    ]
    rc: list[int] = []
    bridge_thread = threading.Thread(target=lambda: rc.append(fusion_main(args)), daemon=True)
    try:
        adapter.send_msg(make_batch("s1", 1, n=3))  # before the bridge: reaches it from the store
        assert adapter.wait_ack("s1", 1)
        bridge_thread.start()
        time.sleep(0.5)
        for seq in range(2, 6):
            adapter.send_msg(make_batch("s1", seq, n=3))
            time.sleep(0.05)
        deadline = time.monotonic() + 5
        cues: dict[str, float] = {}
        while len(cues) < 5 and time.monotonic() < deadline:
            for t_arr, xml in tcp.wait(len(tcp.events) + 1, 0.2):
                ev = check_schema(xml)
                if ev.get("type") == "b-a-g":
                    cues.setdefault(ev.get("uid"), t_arr)
        assert sorted(cues) == [f"fusion.cue.s1-{k}" for k in range(1, 6)]
        tracks = [ET.fromstring(x) for _, x in tcp.events]
        assert {e.get("uid") for e in tracks if e.get("type", "").startswith("a-")} == {
            "fusion.track.0",
            "fusion.track.1",
        }
        bridge_thread.join(10)
        assert rc == [0]
    finally:
        adapter.close()
        tcp.close()
        svc.request_stop()
        svc_thread.join(15)


def test_cot_command_bridges_a_replay_directory(tmp_path):
    import json

    from fusion.cli import main as fusion_main

    d = tmp_path / "run"
    d.mkdir()
    (d / "cues.jsonl").write_text(
        "\n".join(json.dumps(c) for c in (CUE, {**CUE, "state": "close", "t_s": T0 + 5})) + "\n"
    )
    frames = [
        {
            "t_s": T0 + k,
            "id": [17, 18],
            "pos": [[47.5, 34.5, 0.0], [47.6, 34.6, 0.0]],
            "vel": [[1.0, 0.0, 0.0]] * 2,
            "sigma_m": [20.0, 30.0],
            "status": ["confirmed"] * 2,
            "ident": ["", "mmsi:1"],
            "cls": ["ground", "surface"],
        }
        for k in range(3)
    ]
    frames.append(
        {
            **frames[-1],
            "t_s": T0 + 3,
            "id": [17],
            "pos": [[47.5, 34.5, 0.0]],
            "vel": [[1.0, 0.0, 0.0]],
            "sigma_m": [20.0],
            "status": ["confirmed"],
            "ident": [""],
            "cls": ["ground"],
        }
    )
    (d / "tracks.jsonl").write_text("\n".join(json.dumps(f) for f in frames) + "\n")
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(0.5)
    tcp = TcpListener()
    try:
        rc = fusion_main(
            [
                "cot",
                "--replay",
                str(d),
                "--to",
                f"tcp://127.0.0.1:{tcp.port}",
                "--to",
                f"udp://127.0.0.1:{udp.getsockname()[1]}",
            ]
        )
        assert rc == 0
        datagrams = []
        while True:
            try:
                datagrams.append(udp.recvfrom(65536)[0])
            except TimeoutError:
                break
        got = [check_schema(x) for _, x in tcp.wait(len(datagrams))]
        assert [e.get("uid") for e in got] == [ET.fromstring(x).get("uid") for x in datagrams]
        kinds = [(e.get("uid"), e.get("type")) for e in got]
        # tracks each instant, the cue (which makes 17 hostile), track 18 withdrawn when it
        # leaves the picture, the cue closed and deleted
        assert ("fusion.track.18", "a-n-S") in kinds and ("fusion.track.17", "a-u-G") in kinds
        assert ("fusion.cue.incursion:plant-1:17", "b-a-g") in kinds
        assert ("fusion.track.17", "a-h-G") in kinds
        assert ("fusion.track.18.delete", "t-x-d-d") in kinds
        assert kinds[-1] == ("fusion.cue.incursion:plant-1:17.delete", "t-x-d-d")
        ce = [float(e.find("point").get("ce")) for e in got if e.get("uid") == "fusion.track.18"]
        assert ce[0] == pytest.approx(circular_error_m(np.diag([300.0, 300.0])[None])[0], abs=0.01)
    finally:
        tcp.close()
        udp.close()


def test_tracks_absent_from_their_class_update_are_withdrawn():
    out: list[bytes] = []
    bridge = CotBridge(out.append, BridgeConfig(withdraw="delete"), clock=Clock(T0))
    bridge.on_tracks(make_update(T0, [1, 2], [[47.0, 34.0, 0.0], [47.1, 34.1, 0.0]]))
    bridge.on_tracks(make_update(T0, [5], [47.2, 34.2, 0.0], cls=CLS_SURFACE))
    out.clear()
    bridge.on_tracks(make_update(T0 + 1, [1], [47.0, 34.0, 0.0]))  # ground: 2 has gone
    assert [ET.fromstring(x).get("type") for x in out] == ["a-u-G", "t-x-d-d"]
    assert bridge.live_tracks == [1, 5]


def test_serialiser_matches_elementtree_and_escapes():
    from fusion.cot import _bytes

    ev = ET.Element("event", {"uid": 'a"<&>\n', "type": "b-a-g"})
    d = ET.SubElement(ev, "detail")
    ET.SubElement(d, "remarks").text = "crossed <line> & \"fled\" 'east'\u00e9"
    ET.SubElement(d, "empty", {"k": "v"})
    ours = _bytes(ev)
    assert ET.tostring(ET.fromstring(ours)) == ET.tostring(ev)
    assert ours.startswith(b"<?xml version='1.0' encoding='UTF-8'?>\n<event ")
