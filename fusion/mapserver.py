"""The operator map's HTTP server: the static page, its data, and a live stream.

This module owns the HTTP side of `fusion map` (the model is `fusion.mapstate.MapState`):

    GET /                 the page (fusion/web/index.html; app.js and style.css beside it)
    GET /sites.geojson    the sites and lines of contact, as loaded
    GET /state.json       the current snapshot: tracks with history and ellipse, open and
                          recently closed cues
    GET /events           Server-Sent Events: `snapshot` first, then `tracks`, `cue`, `sites`
                          and `reset` deltas as the fusion stream (or a replay) moves

Standard library only (http.server in a thread); everything is served from the package, so the
page works on an air-gapped network with no tiles and no CDN. A feeder thread drains any
iterator of (topic, message) pairs into the state: the PUB stream client or a replay player.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Iterable, Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from fusion.mapstate import MapState

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).parent / "web"
STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
KEEPALIVE_S = 15.0


class PushSource:
    """An iterator of (topic, message) fed by `push`; `close` ends it. For tests and for
    in-process producers such as a live replay."""

    _END = object()

    def __init__(self) -> None:
        self._q: queue.Queue = queue.Queue()

    def push(self, topic: str, msg: Any) -> None:
        self._q.put((topic, msg))

    def close(self) -> None:
        self._q.put(self._END)

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        while True:
            item = self._q.get()
            if item is self._END:
                return
            yield item


def _sse(event: str, payload: Any) -> bytes:
    data = json.dumps(payload, separators=(",", ":"), allow_nan=False)
    return f"event: {event}\ndata: {data}\n\n".encode()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: Any) -> None:  # quiet by default
        log.debug("map http: " + fmt, *args)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = self.path.split("?", 1)[0]
        state = self.server.state
        if path in STATIC:
            name, ctype = STATIC[path]
            self._send(HTTPStatus.OK, (WEB_DIR / name).read_bytes(), ctype)
        elif path == "/sites.geojson":
            self._json(state.sites, "application/geo+json")
        elif path == "/state.json":
            self._json(state.snapshot())
        elif path == "/events":
            self._events()
        elif path == "/healthz":
            self._send(HTTPStatus.OK, b"ok\n", "text/plain")
        else:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")

    def _send(self, status: HTTPStatus, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, obj: Any, ctype: str = "application/json") -> None:
        body = json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()
        self._send(HTTPStatus.OK, body, ctype)

    def _events(self) -> None:
        state = self.server.state
        q = state.subscribe()  # before the snapshot, so no delta falls between the two
        try:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            self.wfile.write(_sse("snapshot", state.snapshot()))
            self.wfile.flush()
            idle_s = 0.0
            while not self.server.stopping.is_set():
                try:
                    event, payload = q.get(timeout=0.5)
                except queue.Empty:
                    idle_s += 0.5
                    if idle_s >= KEEPALIVE_S:
                        self.wfile.write(b": keepalive\n\n")
                        self.wfile.flush()
                        idle_s = 0.0
                    continue
                idle_s = 0.0
                if event == "reset":
                    self.wfile.write(_sse("snapshot", state.snapshot()))
                else:
                    self.wfile.write(_sse(event, payload))
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass
        finally:
            state.unsubscribe(q)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], state: MapState) -> None:
        super().__init__(addr, _Handler)
        self.state = state
        self.stopping = threading.Event()


class MapServer:
    """Serves `state` on http://host:port/ (port 0 picks a free one) and, when `source` is
    given, feeds it into the state from a background thread.

    Use as a context manager or call start()/stop(). `feed_errors` counts messages whose
    application raised; the feeder carries on.
    """

    def __init__(
        self,
        state: MapState,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        source: Iterable[tuple[str, Any]] | None = None,
    ) -> None:
        self.state = state
        self.source = source
        self.httpd = _Server((host, port), state)
        self.feed_errors = 0
        self.feed_done = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        host = self.httpd.server_address[0]
        return f"http://{host}:{self.port}/"

    def start(self) -> MapServer:
        t = threading.Thread(target=self.httpd.serve_forever, name="map-http", daemon=True)
        t.start()
        self._threads.append(t)
        if self.source is not None:
            f = threading.Thread(target=self._feed, name="map-feed", daemon=True)
            f.start()
            self._threads.append(f)
        return self

    def _feed(self) -> None:
        try:
            for topic, msg in self.source:
                if self.httpd.stopping.is_set():
                    break
                try:
                    self.state.apply(topic, msg)
                except Exception:  # one bad message must not stop the map
                    self.feed_errors += 1
                    log.exception("map feed: message on %r failed", topic)
        finally:
            self.feed_done.set()

    def stop(self) -> None:
        self.httpd.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        for t in self._threads:
            # the feeder may sit in a blocking source; it is a daemon and stops at its next item
            t.join(timeout=2.0 if t.name == "map-http" else 0.1)

    def __enter__(self) -> MapServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
