"""Operator map: the state model, the HTTP/SSE server, and the page in a real headless chromium.

The browser test drives Debian's chromium through Playwright (never a downloaded browser). It
skips, saying why, when /usr/bin/chromium is absent; `make browser` installs it on a root CI
machine. The screenshot lands in test-artifacts/map.png.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from fusion.commands.map import CHROMIUM_ARGS  # the page is tested as `fusion map` runs it
from fusion.mapserver import MapServer, PushSource
from fusion.mapstate import ELLIPSE_K, MapState, error_ellipse
from fusion.messages import CLS_GROUND, CLS_SURFACE, CueEvent, TrackUpdate

CHROMIUM = os.environ.get("FUSION_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
T0 = 1_790_000_000.0

SITES = {
    "type": "FeatureCollection",
    "features": [
        {
            "type": "Feature",
            "properties": {"id": "plant-1", "name": "Power plant", "kind": "site"},
            "geometry": {
                "type": "Polygon",
                "coordinates": [
                    [[34.58, 47.49], [34.62, 47.49], [34.62, 47.52], [34.58, 47.52], [34.58, 47.49]]
                ],
            },
        },
        {
            "type": "Feature",
            "properties": {"id": "bridge-2", "name": "Bridge", "kind": "site", "radius_m": 800},
            "geometry": {"type": "Point", "coordinates": [34.45, 47.45]},
        },
        {
            "type": "Feature",
            "properties": {"id": "loc", "name": "Line of contact", "kind": "line_of_contact"},
            "geometry": {
                "type": "LineString",
                "coordinates": [[34.30, 47.60], [34.50, 47.57], [34.70, 47.58], [34.85, 47.55]],
            },
        },
    ],
}


def track_update(t_s: float, ids, lats, lons, status=2, cls=CLS_GROUND) -> TrackUpdate:
    n = len(ids)
    P = np.tile(np.diag([120.0**2, 60.0**2, 30.0**2, 4.0, 4.0, 1.0]), (n, 1, 1))
    return TrackUpdate(
        t_s=t_s,
        id=np.asarray(ids, np.int64),
        pos=np.column_stack([lats, lons, np.zeros(n)]),
        vel=np.tile([3.0, -4.0, 0.0], (n, 1)),
        P=P,
        status=np.full(n, status, np.uint8),
        ident=np.array([b"mmsi:235070762" if i % 2 else b"" for i in range(n)], "S24"),
        cls=np.full(n, cls, np.uint8),
        n_sensors=np.full(n, 2, np.uint8),
    )


def cue(state: str, t_s: float, cid: str = "line_crossing:plant-1:7") -> dict:
    return {
        "id": cid,
        "seq": 1,
        "state": state,
        "rule": "line_crossing",
        "site": "plant-1",
        "site_name": "Power plant",
        "track": 7,
        "t_s": t_s,
        "severity": "high",
        "confidence": 0.9,
        "pos": [47.55, 34.60, 0.0],
        "sigma_m": 40.0,
        "text": "Track 7 crossed the line of contact toward Power plant.",
        "evidence": {"sensors": np.array([1, 2])},
    }


# ----------------------------------------------------------------- state model


def test_error_ellipse():
    a, b, bearing = error_ellipse(np.diag([100.0**2, 20.0**2]))
    assert (a, b) == pytest.approx((ELLIPSE_K * 100, ELLIPSE_K * 20))
    assert bearing == pytest.approx(90.0)  # major axis east-west
    th = math.radians(30)  # major axis 30 degrees clockwise from north
    u = np.array([math.sin(th), math.cos(th)])
    v = np.array([math.cos(th), -math.sin(th)])
    P = 50.0**2 * np.outer(u, u) + 10.0**2 * np.outer(v, v)
    a, b, bearing = error_ellipse(P)
    assert bearing == pytest.approx(30.0)
    assert ELLIPSE_K == pytest.approx(math.sqrt(5.991464547), rel=1e-9)  # chi2(2).ppf(0.95)


def test_state_tracks_history_and_removal():
    st = MapState(SITES, history_len=3)
    for k in range(5):
        st.apply("trk.ground", track_update(T0 + k, [7, 8], [47.5 + 0.001 * k] * 2, [34.5, 34.6]))
    snap = st.snapshot()
    assert [t["id"] for t in snap["tracks"]] == [7, 8]
    t7 = snap["tracks"][0]
    assert len(t7["history"]) == 3 and t7["history"][-1][0] == pytest.approx(47.504)
    assert t7["speed_mps"] == pytest.approx(5.0)
    assert t7["ellipse"]["a_m"] == pytest.approx(ELLIPSE_K * 120)
    # the service publishes its picture per class: absent from its class's update = gone,
    # while tracks of other classes stay
    st.apply("trk.surface", track_update(T0 + 5, [3], [47.4], [34.4], cls=CLS_SURFACE))
    deltas = st.apply("trk.ground", track_update(T0 + 6, [7], [47.5], [34.5]))
    assert deltas[0][1]["removed"] == [8]
    assert [t["id"] for t in st.snapshot()["tracks"]] == [3, 7]
    # status free removes; tentative tracks are not shown
    deltas = st.apply("trk.surface", track_update(T0 + 7, [3], [47.4], [34.4], 0, CLS_SURFACE))
    assert deltas[0][1]["removed"] == [3]
    st.apply("trk.air", track_update(T0 + 7, [9], [47.5], [34.7], status=1, cls=1))
    assert [t["id"] for t in st.snapshot()["tracks"]] == [7]
    # silent for longer than the timeout (data time): dropped
    st.apply("trk.surface", track_update(T0 + 500, [4], [47.4], [34.4], cls=CLS_SURFACE))
    assert [t["id"] for t in st.snapshot()["tracks"]] == [4]
    json.dumps(st.snapshot(), allow_nan=False)


def test_state_full_updates_for_replays():
    st = MapState(SITES, full_updates=True)
    st.apply("trk", track_update(T0, [1, 2], [47.5, 47.6], [34.5, 34.6]))
    st.apply("trk", track_update(T0 + 1, [2], [47.6], [34.6], cls=CLS_SURFACE))
    assert [t["id"] for t in st.snapshot()["tracks"]] == [2]


def test_state_cue_lifecycle_and_bad_input():
    st = MapState(SITES)
    q = st.subscribe()
    st.apply("cue.line_crossing.plant-1", CueEvent(body=cue("open", T0)))
    st.apply("cue.line_crossing.plant-1", CueEvent(body=cue("update", T0 + 5)))
    snap = st.snapshot()
    assert [c["id"] for c in snap["open_cues"]] == ["line_crossing:plant-1:7"]
    c = snap["open_cues"][0]
    assert c["opened_t_s"] == T0 and c["t_s"] == T0 + 5 and c["lat"] == 47.55
    st.apply("cue.line_crossing.plant-1", CueEvent(body=cue("close", T0 + 9)))
    snap = st.snapshot()
    assert snap["open_cues"] == [] and snap["closed_cues"][0]["opened_t_s"] == T0
    assert snap["counts"]["cues_opened"] == 1 and snap["counts"]["cues_closed"] == 1
    assert [q.get_nowait()[0] for _ in range(3)] == ["cue", "cue", "cue"]
    bad = track_update(T0, [1], [float("nan")], [34.0])
    assert st.apply("trk.ground", bad) == [] and st.snapshot()["counts"]["bad"] == 1
    json.dumps(st.snapshot(), allow_nan=False)


def test_state_is_deterministic():
    def run():
        st = MapState(SITES)
        for k in range(4):
            st.apply("trk", track_update(T0 + k, [1, 2], [47.5, 47.6], [34.5 + k * 1e-3, 34.6]))
            st.apply("cue", cue("open" if k < 3 else "close", T0 + k))
        return json.dumps(st.snapshot(), sort_keys=True)

    assert run() == run()


# ----------------------------------------------------------------- HTTP and SSE


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read()


def test_http_endpoints_and_event_stream():
    src = PushSource()
    with MapServer(MapState(SITES), source=src) as server:
        assert b"fusionMap" not in _get(server.url)  # the page, not the script
        assert b"<svg" in _get(server.url)
        assert b"window.fusionMap" in _get(server.url + "app.js")
        assert json.loads(_get(server.url + "sites.geojson")) == SITES
        with pytest.raises(urllib.error.HTTPError):
            _get(server.url + "../pyproject.toml")
        # the stream: a snapshot first, then the cue we push
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        sock.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        buf = b""
        deadline = time.monotonic() + 5
        while b"event: snapshot" not in buf and time.monotonic() < deadline:
            buf += sock.recv(65536)
        src.push("cue.line_crossing.plant-1", CueEvent(body=cue("open", T0)))
        while b"event: cue" not in buf and time.monotonic() < deadline:
            buf += sock.recv(65536)
        sock.close()
        assert b"text/event-stream" in buf and b"event: cue" in buf
        data = buf.split(b"event: cue\ndata: ", 1)[1].split(b"\n\n", 1)[0]
        assert json.loads(data)["id"] == "line_crossing:plant-1:7"
        state = json.loads(_get(server.url + "state.json"))
        assert [c["id"] for c in state["open_cues"]] == ["line_crossing:plant-1:7"]
        src.close()


# ----------------------------------------------------------------- the page in chromium


@pytest.fixture(scope="module")
def browser():
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(
            f"no chromium at {CHROMIUM}: run `make browser` as root (apt-get install chromium)"
        )
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=30_000)
        try:
            yield b
        finally:
            b.close()


def test_map_page_in_chromium(browser):
    src = PushSource()
    state = MapState(SITES)
    with MapServer(state, source=src) as server:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.set_default_timeout(10_000)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        external: list[str] = []
        page.on(
            "request",
            lambda r: None if r.url.startswith(server.url) else external.append(r.url),
        )
        page.goto(server.url)
        page.wait_for_function("window.fusionMap && window.fusionMap.state.connected")
        # sites drawn: every site id present as SVG, the line of contact as a dashed path
        page.wait_for_selector("#layer-sites [data-site-id='plant-1']")
        ids = page.eval_on_selector_all(
            "#layer-sites [data-site-id]", "els => [...new Set(els.map(e => e.dataset.siteId))]"
        )
        assert sorted(ids) == ["bridge-2", "loc", "plant-1"]
        assert page.locator("#layer-sites path.site-line[data-site-id='loc']").count() == 1
        # live tracks with tails and ellipses
        for k in range(4):
            src.push(
                "trk.ground", track_update(T0 + k, [7, 8], [47.53 + 0.003 * k] * 2, [34.55, 34.65])
            )
        page.wait_for_function("document.querySelectorAll('#layer-tracks g.track').length == 2")
        page.wait_for_function(
            "document.querySelectorAll('#layer-tracks polyline.trk-tail').length == 2"
        )
        assert page.locator("#layer-tracks ellipse.trk-ellipse").count() == 2
        # a cue happens: it shows in the open list and on the map
        cid = "line_crossing:plant-1:7"
        src.push("cue.line_crossing.plant-1", CueEvent(body=cue("open", T0 + 4)))
        item = page.locator(f"#cue-list li[data-cue-id='{cid}']")
        item.wait_for()
        assert "crossed the line of contact" in item.inner_text()
        assert page.locator(f"#layer-cues circle.cue-mark[data-cue-id='{cid}']").count() == 1
        assert page.inner_text("#open-count") == "1"
        # pan away, then click the cue: the map centres on it
        page.evaluate("() => { window.fusionMap.view.cx += 20000; }")
        item.click()
        page.wait_for_function(f"window.fusionMap.state.selected === '{cid}'")
        centre = page.evaluate(
            "() => { const m = window.fusionMap; const p = m.project(47.55, 34.60);"
            " return [m.view.cx - p[0], m.view.cy - p[1]]; }"
        )
        assert centre == pytest.approx([0.0, 0.0], abs=1e-6)
        page.wait_for_selector(f"#cue-list li.selected[data-cue-id='{cid}']")
        mark = page.locator(f"circle.cue-mark[data-cue-id='{cid}']").bounding_box()
        box = page.locator("#map").bounding_box()
        assert mark["x"] + mark["width"] / 2 == pytest.approx(box["x"] + box["width"] / 2, abs=2)
        assert "Track 7 crossed" in page.inner_text("#detail")
        # zoom out a little so the screenshot shows the theatre around the cue
        page.evaluate("() => { window.fusionMap.view.mpp = 25; }")
        page.wait_for_timeout(150)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "map.png"))
        # the cue closes: it leaves the open list and joins the closed one
        src.push("cue.line_crossing.plant-1", CueEvent(body=cue("close", T0 + 9)))
        page.wait_for_selector(f"#cue-list li[data-cue-id='{cid}']", state="detached")
        page.wait_for_selector(f"#closed-list li[data-cue-id='{cid}']")
        assert page.inner_text("#open-count") == "0"
        assert errors == [], errors
        assert external == [], f"the page fetched from outside: {external}"
        page.close()
        src.close()
    assert (ARTIFACTS / "map.png").stat().st_size > 10_000


def test_chromium_binary_is_debian_not_downloaded():
    # the browser comes from Debian's package: the test never falls back to a browser download
    if shutil.which("chromium") is None:
        pytest.skip("chromium not installed here")
    assert "ms-playwright" not in os.path.realpath(CHROMIUM)


def test_map_command_replay_screenshot(tmp_path):
    """`fusion map --replay DIR --screenshot` on a small replay with the demo sites (in its own
    process: Playwright's sync API allows one driver per thread, and the fixture holds one)."""
    if not os.path.isfile(CHROMIUM):
        pytest.skip(f"no chromium at {CHROMIUM}: run `make browser` as root")

    demo_sites = Path(__file__).resolve().parent.parent / "configs" / "sites" / "demo.geojson"
    d = tmp_path / "run"
    d.mkdir()
    body = {**cue("open", T0 + 2), "pos": [46.75, 31.25, 0.0], "evidence": {}}
    (d / "cues.jsonl").write_text(json.dumps(body) + "\n")
    frames = [
        {
            "t_s": T0 + k,
            "id": [1],
            "pos": [[46.7 + 0.002 * k, 31.2, 0.0]],
            "vel": [[0.0, 20.0, 0.0]],
            "sigma_m": [150.0],
            "status": ["confirmed"],
            "ident": [""],
            "cls": ["ground"],
        }
        for k in range(5)
    ]
    (d / "tracks.jsonl").write_text("\n".join(json.dumps(f) for f in frames) + "\n")
    (d / "summary.json").write_text(json.dumps({"sites": str(demo_sites)}))
    png = tmp_path / "shot.png"
    cmd = [sys.executable, "-m", "fusion.cli", "map", "--replay", str(d), "--port", "0"]
    proc = subprocess.run(
        [*cmd, "--screenshot", str(png)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert png.stat().st_size > 10_000


def test_map_fed_live_from_the_service(tmp_path):
    """The map's live path: FusionService -> fusion.client -> MapState -> /state.json."""
    import threading

    from fusion.commands.cot import subscription_pairs
    from fusion.service.server import FusionService, run_in_thread
    from fusion.service.testing import (
        CountingCore,
        RawAdapter,
        make_batch,
        subscriber_client,
        write_config,
    )

    config, _ = write_config(tmp_path, adapters={"adapter": ["s1"]})
    svc = FusionService(config, core=CountingCore(cue_every=1, n_tracks=2))
    svc.start()
    svc_thread = run_in_thread(svc)
    adapter = RawAdapter.for_config(config, svc.endpoints["ingest"], "adapter")
    client = subscriber_client(config, svc)
    stop = threading.Event()
    sub = client.subscribe(["cue", "trk"])
    server = MapServer(MapState(SITES), source=subscription_pairs(sub, stop)).start()
    try:
        adapter.send_msg(make_batch("s1", 1, n=2))
        deadline = time.monotonic() + 5
        state = {}
        while time.monotonic() < deadline:
            state = json.loads(_get(server.url + "state.json"))
            if state["open_cues"] and len(state["tracks"]) == 2:
                break
            time.sleep(0.1)
        assert [c["id"] for c in state["open_cues"]] == ["s1-1"]
        assert [t["id"] for t in state["tracks"]] == [0, 1]
    finally:
        stop.set()
        server.feed_done.wait(3)  # the feeder owns the SUB socket until it returns
        server.stop()
        sub.close()
        client.close()
        adapter.close()
        svc.request_stop()
        svc_thread.join(15)


def test_slow_page_gets_a_reset_not_a_drift():
    st = MapState(SITES, queue_len=3)
    q = st.subscribe()
    for k in range(6):
        st.apply("cue", cue("open", T0 + k, cid=f"c{k}"))
    items = []
    while not q.empty():
        items.append(q.get_nowait())
    assert ("reset", {"version": 4}) in items  # the page reloads the snapshot
    assert len(items) <= 3
    st.unsubscribe(q)
    st.apply("cue", cue("open", T0 + 9, cid="c9"))
    assert q.empty()
